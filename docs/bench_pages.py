"""Benchmark pages, written at build time from the JSON the benchmarks write.

Every ``benchmarks/results/<name>.json`` becomes ``benchmarks/generated/<name>.rst``: the command
that reproduces it, the script's own summary, the committed plots of ``docs/images/`` that belong
to it, one table per record list or per group of records found in the JSON, and the machine it
ran on. The rendering is generic (it follows the JSON's shape, not a per-benchmark template), so a
result file added later gets its page without editing anything here. Numbers are shown with four
significant digits; the JSON files keep every digit.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = DOCS / "images"
OUT = DOCS / "benchmarks" / "generated"

# Result files whose command is not ``python benchmarks/<script>.py [--quick]`` and not recorded
# in the JSON itself (the commands are the ones BENCHMARKS.md gives for them).
COMMANDS: dict[str, str] = {
    "bench_adapters_layer": "python benchmarks/bench_adapters.py --layer",
    "bench_algebra_explore": "python benchmarks/bench_algebra.py --explore",
    "bench_layers_floor": "python benchmarks/bench_layers.py --sections floor",
    "bench_layers_quick_floor": "python benchmarks/bench_layers.py --quick --sections floor",
    "bench_sparse_big_output": "python benchmarks/bench_sparse.py --big-output",
    "bench_completion_cp_mttkrp": "python benchmarks/bench_completion.py --sections mttkrp,cp",
    "bench_completion_mttkrp": "python benchmarks/bench_completion.py --sections mttkrp --compile",
    "bench_completion_real": "python benchmarks/bench_completion.py --sections real",
    "bench_completion_defaults": "python benchmarks/bench_completion.py --sections defaults",
    "bench_operator_darcy16": (
        'python benchmarks/bench_operator.py --problems darcy16 --variants "FNO dense,TFNO tucker'
        ' 5%" --seeds 3 --no-extras'
    ),
    "bench_operator_darcy16_10pct": (
        'python benchmarks/bench_operator.py --problems darcy16 --variants "FNO dense,TFNO tucker'
        ' 10%,TFNO cp 10%" --seeds 3 --no-extras  # then rename bench_operator_darcy16.json'
    ),
    "bench_operator_darcy16_d16_speed": (
        'python benchmarks/bench_operator.py --problems darcy16 --variants "FNO dense,TFNO'
        ' tucker 5%" --seeds 3 --no-extras --tag _d16_speed'
    ),
    "bench_operator_darcy32_d32_dense": (
        'python benchmarks/bench_operator.py --problems darcy32 --variants "FNO dense"'
        " --seeds 3 --no-extras --n-train 400 --n-test 100 --epochs 20 --tag _d32_dense"
    ),
    "bench_operator_darcy32_d32_tucker5": (
        'python benchmarks/bench_operator.py --problems darcy32 --variants "TFNO tucker 5%"'
        " --seeds 3 --no-extras --n-train 400 --n-test 100 --epochs 20 --tag _d32_tucker5"
    ),
    "bench_operator_burgers128_burgers": (
        'python benchmarks/bench_operator.py --problems burgers128 --variants "FNO dense,TFNO'
        ' tucker 5%" --seeds 3 --no-extras --n-train 500 --n-test 100 --epochs 20 --tag'
        " _burgers"
    ),
    "bench_operator_navier_stokes64_ns": (
        'python benchmarks/bench_operator.py --problems navier_stokes64 --variants "FNO'
        ' dense,MG-TFNO tucker 5% joint" --seeds 3 --no-extras --ns-solve 64 --n-train 80'
        " --n-test 20 --epochs 10 --tag _ns"
    ),
    "bench_operator_navier_stokes64_ns120": (
        'python benchmarks/bench_operator.py --problems navier_stokes64 --variants "FNO'
        ' dense,MG-TFNO tucker 5% joint" --seeds 3 --no-extras --ns-solve 64 --n-train 120'
        " --n-test 20 --epochs 15 --tag _ns120"
    ),
    "bench_operator_navier_stokes64_ns120_mgfix": (
        'python benchmarks/bench_operator.py --problems navier_stokes64 --variants "MG-TFNO'
        ' tucker 5% joint" --seeds 3 --no-extras --ns-solve 64 --n-train 120 --n-test 20'
        " --epochs 15 --tag _ns120_mgfix"
    ),
    "bench_operator_gap": (
        'python benchmarks/bench_operator.py --gap 20,60 --seeds 3 --variants "FNO dense,TFNO'
        ' tucker 10%,TFNO cp 10%,TFNO tucker 10% joint"'
    ),
}
# Keys shown in the page header or in the machine table instead of as data.
HEADER_KEYS = ("command", "note", "machine", "benchmark")
MAX_COLUMNS = 24  # a group of records flattening to more columns is shown record by record
MAX_LIST = 8  # longer lists of numbers are shortened in a cell
SHORT = 8  # a group of at most this many plain values is one line, not a table
HEADINGS = "=-~^"


def script_for(stem: str) -> Path | None:
    """The benchmark script that writes ``<stem>.json`` (the longest matching script name)."""
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"), key=lambda p: -len(p.stem))
    for script in scripts:
        if stem == script.stem or stem.startswith(script.stem + "_"):
            return script
    return None


def command_for(stem: str, data: Any) -> str:
    """The command that reproduces ``<stem>.json``."""
    recorded = data.get("command") if isinstance(data, dict) else None
    if isinstance(recorded, str):  # some scripts record only sys.argv
        return recorded if recorded.startswith("python ") else "python " + recorded
    if isinstance(recorded, list) and all(isinstance(a, str) for a in recorded):
        return "python " + " ".join(recorded)  # argv as recorded (may carry a remark)
    if stem in COMMANDS:
        return COMMANDS[stem]
    script = script_for(stem)
    if script is None:
        return f"(no script in benchmarks/ writes {stem}.json)"
    command = f"python benchmarks/{script.name}"
    return command + " --quick" if stem.endswith("_quick") else command


def _summary(script: Path | None) -> str:
    """The first paragraph of the script's docstring (reStructuredText already)."""
    if script is None:
        return ""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return doc.split("\n\n")[0].strip()


def _section_of(script: Path | None) -> str:
    """The heading of BENCHMARKS.md that discusses ``script`` (its first mention in a heading)."""
    if script is None:
        return ""
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("#") and f"benchmarks/{script.name}" in line:
            return line.lstrip("#").strip()
    return ""


# ---- cells and tables ---------------------------------------------------------------------------


def _text(value: str) -> str:
    """Plain text safe inside a table cell (inline markup characters escaped)."""
    text = re.sub(r"([\\`*_|<>\[\]])", r"\\\1", " ".join(value.split()))
    return "\\" + text if text[:1] in "-+:#=." else text


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _is_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_scalar(v) for v in value)


def cell(value: Any) -> str:
    """One value as table-cell text: four significant digits, short lists, ``-`` for null."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return _text(value) if value else "-"
    if _is_scalar_list(value):
        shown = [cell(v) for v in value[:MAX_LIST]]
        more = f", ... ({len(value)} values)" if len(value) > MAX_LIST else ""
        return "[" + ", ".join(shown) + more + "]"
    if isinstance(value, list):
        return f"({len(value)} records)"
    return _text(json.dumps(value)[:80])


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted columns; lists of records stay one (summarised) cell."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", "   :class: bench-table", ""]
    for i, row in enumerate([header, *rows]):
        for j, value in enumerate(row):
            text = _text(value) if i == 0 else cell(value)
            lines.append(("   * - " if j == 0 else "     - ") + (text or "-"))
    return [*lines, ""]


def _records_table(
    records: list[dict[str, Any]], first: str | None = None
) -> tuple[list[str], list[list[Any]]] | None:
    """A table with a row per record (``first``: a leading column of record names)."""
    flat = [flatten(r) for r in records]
    columns: list[str] = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    if len(columns) > MAX_COLUMNS:
        return None
    header = ([first] if first else []) + columns
    rows = [[*(row.get(c) for c in columns)] for row in flat]
    return header, rows


# ---- the page -----------------------------------------------------------------------------------


def _heading(title: str, depth: int) -> list[str]:
    text = _text(title)
    if depth >= len(HEADINGS):
        return [f".. rubric:: {text}", ""]
    return [text, HEADINGS[depth] * len(text), ""]


def render(key: str, value: Any, depth: int) -> list[str]:
    """reStructuredText for one JSON value under a heading ``key``."""
    lines = _heading(key, depth)
    if _is_scalar(value) or _is_scalar_list(value):
        return [*lines, cell(value), ""]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        made = _records_table(value)
        if made is not None:
            return lines + table(*made)
        for i, record in enumerate(value):
            lines += render(f"{key} [{i}]", record, depth + 1)
        return lines
    if isinstance(value, list):
        for i, item in enumerate(value):
            lines += render(f"{key} [{i}]", item, depth + 1)
        return lines
    if not value:
        return [*lines, "(empty)", ""]
    scalars = {k: v for k, v in value.items() if _is_scalar(v) or _is_scalar_list(v)}
    nested = {k: v for k, v in value.items() if k not in scalars}
    if 0 < len(scalars) <= SHORT:
        lines += ["; ".join(f"**{_text(str(k))}** {cell(v)}" for k, v in scalars.items()), ""]
    elif scalars:
        lines += table(["key", "value"], [[k, v] for k, v in scalars.items()])
    records = {k: v for k, v in nested.items() if isinstance(v, dict)}
    if len(records) == len(nested) >= 2:
        made = _records_table(list(records.values()), first=key)
        if made is not None:
            header, rows = made
            return lines + table(header, [[k, *r] for k, r in zip(records, rows)])
    for child, item in nested.items():
        lines += render(str(child), item, depth + 1)
    return lines


def _images(stem: str, stems: set[str]) -> list[str]:
    found = []
    for image in sorted(IMAGES.glob(f"{stem}*.png")):
        other = image.stem != stem and image.stem in stems  # e.g. bench_sweep_quick.png
        if image.stem == stem or (image.stem.startswith(stem + "_") and not other):
            found.append(image)
    lines: list[str] = []
    for image in found:
        lines += [
            f".. image:: /images/{image.name}",
            f"   :alt: {image.stem}",
            "   :width: 100%",
            "",
        ]
    return lines


def page(path: Path, stems: set[str]) -> str:
    stem = path.stem
    data = json.loads(path.read_text(encoding="utf-8"))
    script = script_for(stem)
    lines = [stem, "=" * len(stem), ""]
    summary = _summary(script)
    if summary:
        lines += [summary, ""]
    lines += ["Reproduce (from the repository root, in the test environment):", ""]
    lines += [".. code-block:: bash", "", "   " + command_for(stem, data), ""]
    section = _section_of(script)
    if section:
        title = re.sub(r"`([^`]+)`", r"``\1``", section)
        lines += [f'Discussed in ``BENCHMARKS.md``, section "{title}".', ""]
    if isinstance(data, dict) and isinstance(data.get("note"), str):
        lines += [f"Note recorded with the run: {_text(data['note'])}", ""]
    lines += _images(stem, stems)
    items = data.items() if isinstance(data, dict) else [("results", data)]
    for key, value in items:
        if key not in HEADER_KEYS:
            lines += render(str(key), value, 1)
    machine = data.get("machine") if isinstance(data, dict) else None
    if isinstance(machine, dict):
        lines += _heading("machine", 1)
        lines += table(["key", "value"], [[k, v] for k, v in flatten(machine).items()])
    return "\n".join(lines) + "\n"


def write_pages() -> list[str]:
    """Write one page per result file and an index; return the page names."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    paths = sorted(RESULTS.glob("*.json"))
    stems = {p.stem for p in paths}
    index = ["Benchmark results", "=================", ""]
    index += [
        "One page per file in ``benchmarks/results/``, rendered from the JSON when the site is "
        "built: the command that reproduces it, the plots committed under ``docs/images/``, "
        "and every table the file holds. Timings come from a shared, noisy machine (see each "
        "page's machine table); ``BENCHMARKS.md`` discusses them. Files ending in ``_quick`` "
        "are the short runs of ``--quick``.",
        "",
    ]
    rows = []
    for path in paths:
        (OUT / f"{path.stem}.rst").write_text(page(path, stems), encoding="utf-8")
        data = json.loads(path.read_text(encoding="utf-8"))
        rows.append([f":doc:`{path.stem}`", f"``{command_for(path.stem, data)}``"])
    index += [".. list-table::", "   :header-rows: 1", "   :widths: 30 70", ""]
    for row in [["result", "command"], *rows]:
        index += [f"   * - {row[0]}", f"     - {row[1]}"]
    index += ["", ".. toctree::", "   :hidden:", ""]
    index += [f"   {p.stem}" for p in paths]
    (OUT / "index.rst").write_text("\n".join(index) + "\n", encoding="utf-8")
    return [p.stem for p in paths]
