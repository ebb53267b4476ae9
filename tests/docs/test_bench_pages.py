"""The benchmark pages of the documentation (``docs/bench_pages.py``) render every result file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_pages", ROOT / "docs" / "bench_pages.py")
assert _spec is not None and _spec.loader is not None
bench_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_pages)

RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))


def test_there_are_results_to_render() -> None:
    assert len(RESULTS) > 10


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_every_result_file_gets_a_page_with_its_command(path: Path) -> None:
    stems = {p.stem for p in RESULTS}
    text = bench_pages.page(path, stems)
    command = bench_pages.command_for(path.stem, json.loads(path.read_text()))
    assert text.startswith(f"{path.stem}\n{'=' * len(path.stem)}\n")
    assert f".. code-block:: bash\n\n   {command}\n" in text
    assert command.startswith("python benchmarks/bench_"), command
    assert ".. list-table::" in text or "**" in text  # the data are shown


def test_commands_follow_the_file_name() -> None:
    assert bench_pages.command_for("bench_decomp", {}) == "python benchmarks/bench_decomp.py"
    assert bench_pages.command_for("bench_decomp_quick", {}) == (
        "python benchmarks/bench_decomp.py --quick"
    )
    # the longest script name wins: bench_decomp_nn.py, not bench_decomp.py
    assert bench_pages.command_for("bench_decomp_nn", {}).endswith("bench_decomp_nn.py")
    assert bench_pages.command_for("x", {"command": "python run.py"}) == "python run.py"
    assert bench_pages.command_for("x", {"command": ["a.py", "--quick"]}) == "python a.py --quick"


def test_every_result_file_with_a_suffix_has_its_command() -> None:
    # A suffix other than _quick means other options: the command must be recorded (in the
    # JSON or in COMMANDS), not guessed from the script name.
    for path in RESULTS:
        script = bench_pages.script_for(path.stem)
        assert script is not None, path.stem
        suffix = path.stem[len(script.stem) :]
        if suffix not in ("", "_quick") and "command" not in json.loads(path.read_text()):
            assert path.stem in bench_pages.COMMANDS, f"add {path.stem} to COMMANDS"


def test_listed_commands_name_existing_scripts_and_results() -> None:
    for stem, command in bench_pages.COMMANDS.items():
        assert (ROOT / "benchmarks" / "results" / f"{stem}.json").exists(), stem
        assert (ROOT / command.split()[1]).exists(), command


def test_cells_are_plain_text() -> None:
    assert bench_pages.cell(0.000123456) == "0.0001235"
    assert bench_pages.cell(None) == "-"
    assert bench_pages.cell(True) == "yes"
    assert bench_pages.cell(list(range(20))).endswith("... (20 values)]")
    assert bench_pages.cell("a_b *c* `d`") == r"a\_b \*c\* \`d\`"
    assert bench_pages.cell("- not a list") == r"\- not a list"


def test_images_belong_to_their_own_result_file() -> None:
    stems = {p.stem for p in RESULTS}
    full = "\n".join(bench_pages._images("bench_sweep", stems))
    assert "bench_sweep.png" in full and "bench_sweep_quick.png" not in full
    quick = "\n".join(bench_pages._images("bench_sweep_quick", stems))
    assert "bench_sweep_quick.png" in quick
