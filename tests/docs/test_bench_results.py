"""The benchmarks' result writer (``benchmarks/_common.py``): partial runs keep earlier sections."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_common() -> ModuleType:
    path = ROOT / "benchmarks" / "_common.py"
    spec = importlib.util.spec_from_file_location("bench_common", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def common(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = _load_common()
    monkeypatch.setattr(module, "RESULTS_DIR", tmp_path)
    return module


def _run(common: ModuleType, monkeypatch: pytest.MonkeyPatch, argv: list[str], **kw) -> dict:
    monkeypatch.setattr(sys, "argv", argv)
    path = common.write_sections("bench_x", {"machine": "m"}, kw.pop("sections"), **kw)
    return json.loads(path.read_text())


def test_partial_run_keeps_the_sections_it_did_not_rerun(common, monkeypatch) -> None:
    full = _run(common, monkeypatch, ["bench_x.py"], sections={"a": {"v": 1}, "b": {"v": 2}},
                partial=False)  # fmt: skip
    assert full["command"] == "python benchmarks/bench_x.py"
    assert full["a"]["command"] == full["command"]
    part = _run(common, monkeypatch, ["bench_x.py", "--only", "b"], sections={"b": {"v": 3}},
                partial=True)  # fmt: skip
    assert part["a"] == {"command": "python benchmarks/bench_x.py", "v": 1}
    assert part["b"] == {"command": "python benchmarks/bench_x.py --only b", "v": 3}
    assert part["command"] == "python benchmarks/bench_x.py"  # the file's full run
    again = _run(common, monkeypatch, ["bench_x.py"], sections={"b": {"v": 4}}, partial=False)
    assert "a" not in again  # a full run replaces the file


def test_sections_nested_under_a_key(common, monkeypatch) -> None:
    _run(common, monkeypatch, ["bench_x.py"], sections={"a": {"v": 1}}, key="results",
         partial=False)  # fmt: skip
    out = _run(common, monkeypatch, ["bench_x.py", "--cases", "b"], sections={"b": {"v": 2}},
               key="results", partial=True)  # fmt: skip
    assert sorted(out["results"]) == ["a", "b"]
    assert out["machine"] == "m"


def test_an_unreadable_result_file_is_moved_aside_not_lost(common, monkeypatch, tmp_path) -> None:
    (tmp_path / "bench_x.json").write_text("{not json")
    out = _run(common, monkeypatch, ["bench_x.py", "--only", "a"], sections={"a": {"v": 1}},
               partial=True)  # fmt: skip
    assert out["a"]["v"] == 1
    assert (tmp_path / "bench_x.json.unreadable").read_text() == "{not json"


def test_peak_allocated_bytes_replays_the_allocator_events() -> None:
    import torch

    common = _load_common()
    held = torch.ones(1 << 20)  # allocated before the call: not counted

    def step() -> torch.Tensor:
        a = torch.empty(1 << 20)  # 4 MiB
        b = torch.empty(1 << 21)  # 8 MiB: 12 MiB live
        del a
        c = torch.empty(1 << 19, dtype=torch.float64)  # 4 MiB: 12 MiB live again
        del c
        return b  # freed by the measurement once the call returns

    result = common.peak_allocated_bytes(step)
    assert result["bytes"] == 12 * 2**20
    assert result["end_bytes"] == 0
    assert result["method"] == "profiler"
    assert held.sum() == 1 << 20


def test_tables_keep_three_significant_digits_below_one() -> None:
    common = _load_common()
    table = common.format_table(["a", "b", "c", "d"], [[0.052658, 0.0496, 4.3907, None]])
    assert table.splitlines()[-1].split() == ["0.0527", "0.0496", "4.39", "-"]
