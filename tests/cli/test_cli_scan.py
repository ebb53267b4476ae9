"""``factorch rank-scan`` (``cli/_scan.py``): the library's scan, a table, bounded ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _cli_helpers import assert_one_line_error, gen, invoke, planted

from factorch.cli._common import CLIError
from factorch.cli._scan import MAX_RANKS, parse_ranks
from factorch.datasets import load
from factorch.decomp import cp_degeneracy, rank_scan


def test_bundled_scan_matches_the_library(tmp_path):
    out = tmp_path / "scan"
    code, stdout, err = invoke(
        "rank-scan", "--ranks", "1-2", "--starts", "2", "--max-iter", "20",
        "--out", str(out), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert {p.name for p in out.iterdir()} == {"rank_scan.json", "rank_scan.png"}
    ds = load("covid19_serology")
    ref = rank_scan(ds.tensor, (1, 2), starts=2, max_iter=20, tol=1e-8, generator=gen(0))
    assert [r["rank"] for r in summary["ranks"]] == [1, 2]
    assert [r["best_error"] for r in summary["ranks"]] == pytest.approx(list(ref.best_errors))
    got_cc = [r["corcondia"] for r in summary["ranks"]]
    assert got_cc == pytest.approx(list(ref.corcondia), rel=1e-6, abs=1e-6)
    assert [r["degenerate"] for r in summary["ranks"]] == [
        cp_degeneracy(m).degenerate for m in ref.models
    ]
    assert summary["recommended"] == ref.recommended
    assert summary["reason"] == ref.reason


def test_table(tmp_path):
    np.save(tmp_path / "x.npy", planted().numpy())
    code, out, err = invoke(
        "rank-scan", str(tmp_path / "x.npy"), "--ranks", "1,2", "--starts", "1",
        "--max-iter", "10", "--out", str(tmp_path / "o"), "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "CP rank scan of x.npy (6 × 5 × 4), 1 start per rank"
    assert lines[1].split() == ["rank", "best", "error", "fit", "core", "consistency"]
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]
    assert lines[4].startswith("recommended rank: ")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["rank_scan.json"]


def test_missing_values_are_passed_as_a_mask(tmp_path):
    x = planted()
    x[1, 2, 3] = x[4, 0, 1] = x[0, 4, 2] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = invoke(
        "rank-scan", str(tmp_path / "x.npy"), "--nan-as-missing", "--ranks", "1,2",
        "--starts", "2", "--max-iter", "10", "--out", str(tmp_path / "o"), "--no-plots",
        "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["missing"] == 3
    observed = ~torch.isnan(x)
    ref = rank_scan(x, (1, 2), mask=observed, starts=2, max_iter=10, tol=1e-8, generator=gen(0))
    assert [r["errors"] for r in summary["ranks"]] == [list(e) for e in ref.errors]
    assert [r["corcondia"] for r in summary["ranks"]] == list(ref.corcondia)
    assert summary["recommended"] == ref.recommended


@pytest.mark.parametrize(
    ("text", "ranks"), [("1-3", (1, 2, 3)), ("1,2,4", (1, 2, 4)), ("1-3,6,2", (1, 2, 3, 6))]
)
def test_parse_ranks(text, ranks):
    assert parse_ranks(text, 10) == ranks


def test_parse_ranks_checks_before_expanding():
    with pytest.raises(CLIError, match=r"rank 100000000 is too large: at most 66"):
        parse_ranks("1-100000000", 66)
    with pytest.raises(CLIError, match=rf"--ranks lists more than {MAX_RANKS} ranks"):
        parse_ranks(f"1-{10**12}", 10**13)


BAD = [
    (["--ranks", "3-1"], r"--ranks must look like 1-8"),
    (["--ranks", "a"], r"--ranks must look like 1-8"),
    (["--ranks", ""], r"--ranks must look like 1-8"),
    (["--ranks", "0,1"], r"--ranks must be positive"),
    (["--ranks", "1-100000000"], r"rank 100000000 is too large: at most 66"),
    (["{d}/x.npy", "--ranks", "1-25"], r"rank 25 is too large: at most 20"),
    (["{d}/cube.npy", "--ranks", "1-101"], r"--ranks lists more than 100 ranks"),
    (["--starts", "100000"], r"Invalid value for '--starts'"),
    (["{d}/vec.npy"], r"vec.npy has shape \(5,\); a rank scan needs at least 2 modes"),
]


@pytest.mark.parametrize(("argv", "match"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_scans_exit_2_with_one_line(tmp_path, argv, match):
    np.save(tmp_path / "x.npy", planted().numpy())
    np.save(tmp_path / "vec.npy", np.arange(5.0))
    np.save(tmp_path / "cube.npy", np.ones((20, 20, 20)))
    args = ["rank-scan", *(a.format(d=tmp_path) for a in argv), "--out", str(tmp_path / "o")]
    code, stdout, err = invoke(*args)
    assert_one_line_error(code, err, match)
    assert stdout == "" and not (tmp_path / "o").exists()
