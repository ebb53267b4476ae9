"""The ``factorch`` command line, end to end.

A few runs go through a real subprocess (``python -m factorch``: exit status, stdout/stderr, no
traceback); the many option and bad-input cases call ``factorch.cli.run`` in-process, which is
the same code path minus the interpreter start-up (about 2 s each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from factorch.cli import run
from factorch.datasets import load
from factorch.decomp import cp, rank_scan
from factorch.io import load_factorized

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # One BLAS/OpenMP thread: on a loaded CI machine, spinning thread pools make these small
    # problems 10-50x slower; results agree with the in-process references to ~1e-13.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "factorch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_same_cp(a, b, tol: float = 1e-10) -> None:
    torch.testing.assert_close(a.weights, b.weights, rtol=tol, atol=tol)
    for fa, fb in zip(a.factors, b.factors):
        torch.testing.assert_close(fa, fb, rtol=tol, atol=tol)


def assert_one_line_error(code: int, err: str, match: str) -> None:
    import re

    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("factorch: error: "), err
    assert "Traceback" not in err
    assert re.search(match, err), (match, err)


def planted(shape=(6, 5, 4), rank=2, seed=3) -> torch.Tensor:
    g = gen(seed)
    factors = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    return torch.einsum("ir,jr,kr->ijk", *factors)


# --- subprocess: the real process contract ----------------------------------------------------
def test_decompose_bundled_default_end_to_end(tmp_path):
    out = tmp_path / "out"
    args = (
        "decompose",
        "--out",
        str(out),
        "--max-iter",
        "30",
        "--threads",
        "1",
        "--json",
        "--quiet",
    )
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    summary = json.loads(proc.stdout)
    assert json.loads((out / "summary.json").read_text()) == summary
    names = {"factors.safetensors", "summary.json", "factors.png", "convergence.png"}
    assert {p.name for p in out.iterdir()} == names
    assert summary["input"] == {"dataset": "covid19_serology"}
    assert (summary["method"], summary["rank"], summary["shape"]) == ("cp", 2, [438, 6, 11])
    assert summary["versions"]["torch"] == torch.__version__
    assert summary["iterations"] == len(summary["errors"]) <= 30
    assert summary["fit"] == pytest.approx(1 - summary["error"])
    # the same library call gives the same model
    ds = load("covid19_serology")
    ref = cp(ds.tensor, 2, max_iter=30, tol=1e-8, generator=gen(0))
    model = load_factorized(out / "factors.safetensors")
    assert_same_cp(model, ref.model)
    assert summary["error"] == pytest.approx(ref.error, rel=1e-10)
    for png in ("factors.png", "convergence.png"):
        assert (out / png).read_bytes()[:8] == PNG
    # a second run without --force refuses and touches nothing
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = cli(*args[:-2])
    assert_one_line_error(again.returncode, again.stderr, r"already exist.*pass --force")
    assert again.stdout == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def write_all_formats(tmp_path, x: torch.Tensor) -> list[str]:
    paths = []
    np.save(tmp_path / "t.npy", x.numpy())
    np.savez_compressed(tmp_path / "t.npz", tensor=x.numpy(), other=np.zeros(3))
    torch.save(x, tmp_path / "t.pt")
    torch.save({"tensor": x}, tmp_path / "t.pth")
    save_file({"tensor": x}, tmp_path / "t.safetensors")
    rows = [",".join(map(str, idx)) + f",{x[idx].item()!r}" for idx in np.ndindex(*x.shape)]
    (tmp_path / "t.csv").write_text("i,j,k,value\n" + "\n".join(rows) + "\n")
    (tmp_path / "t.txt").write_text("\n".join(r.replace(",", " ") for r in rows) + "\n")
    for name in ("t.npy", "t.npz", "t.pt", "t.pth", "t.safetensors", "t.csv", "t.txt"):
        paths.append(str(tmp_path / name))
    return paths


def test_info_reads_every_format(tmp_path):
    x = planted()
    x[0, 0, 0] = 0.0
    paths = write_all_formats(tmp_path, x)
    proc = cli("info", *paths, "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert [e["format"] for e in entries] == ["npy", "npz", "pt", "pt", "safetensors", "coo", "coo"]
    for e in entries:
        assert e["shape"] == [6, 5, 4]
        assert e["dtype"] == "float64"
        assert e["nonzeros"] == 119 and e["density"] == pytest.approx(119 / 120)
        assert e["missing"] == 0
        assert e["norm_fro"] == pytest.approx(float(x.norm()), rel=1e-12)
        assert e["max"] == pytest.approx(float(x.max()), rel=1e-12)


def test_rank_scan_end_to_end(tmp_path):
    out = tmp_path / "scan"
    proc = cli(
        "rank-scan", "--ranks", "1-2", "--starts", "2", "--max-iter", "20",
        "--out", str(out), "--json", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert {p.name for p in out.iterdir()} == {"rank_scan.json", "rank_scan.png"}
    ds = load("covid19_serology")
    ref = rank_scan(ds.tensor, (1, 2), starts=2, max_iter=20, tol=1e-8, generator=gen(0))
    assert [r["rank"] for r in summary["ranks"]] == [1, 2]
    got = [r["best_error"] for r in summary["ranks"]]
    assert got == pytest.approx(list(ref.best_errors), rel=1e-9)
    got_cc = [r["corcondia"] for r in summary["ranks"]]
    assert got_cc == pytest.approx(list(ref.corcondia), rel=1e-6, abs=1e-6)
    assert summary["recommended"] == ref.recommended
    assert summary["reason"] == ref.reason


def test_datasets_and_bad_file_in_subprocesses(tmp_path):
    proc = cli("datasets", "--json")
    assert proc.returncode == 0, proc.stderr
    names = [d["name"] for d in json.loads(proc.stdout)]
    assert names == ["covid19_serology", "il2_response", "digits_counts"]
    out = tmp_path / "never"
    proc = cli("decompose", str(tmp_path / "missing.npy"), "--rank", "2", "--out", str(out))
    assert_one_line_error(proc.returncode, proc.stderr, r"FILE '.*missing.npy' does not exist")
    assert proc.stdout == ""
    assert not out.exists()


# --- in-process: formats, methods, options ---------------------------------------------------
@pytest.mark.parametrize("index", range(7))
def test_decompose_each_format_matches_library(tmp_path, capsys, index):
    x = planted()
    path = write_all_formats(tmp_path, x)[index]
    out = tmp_path / "out"
    code, stdout, err = call(
        capsys, "decompose", path, "--rank", "2", "--max-iter", "15", "--seed", "4",
        "--init", "random", "--out", str(out), "--no-plots", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"factors.safetensors", "summary.json"}
    ref = cp(x, 2, init="random", max_iter=15, tol=1e-8, generator=gen(4))
    assert_same_cp(load_factorized(out / "factors.safetensors"), ref.model)
    summary = json.loads(stdout)
    assert summary["options"] == {"init": "random", "max_iter": 15, "tol": 1e-8, "seed": 4}
    assert summary["input"]["file"].endswith(path.rsplit("/", 1)[1])


def test_decompose_tucker_writes_core_plot(tmp_path, capsys):
    tucker = pytest.importorskip("factorch.decomp._tucker").tucker
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    out = tmp_path / "out"
    code, stdout, err = call(
        capsys, "decompose", str(tmp_path / "x.npy"), "--method", "tucker", "--rank", "3,2,2",
        "--max-iter", "10", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {
        "factors.safetensors", "summary.json", "core.png", "convergence.png"
    }  # fmt: skip
    ref = tucker(x, (3, 2, 2), max_iter=10, tol=1e-8, generator=gen(0))
    model = load_factorized(out / "factors.safetensors")
    torch.testing.assert_close(model.to_dense(), ref.model.to_dense(), rtol=1e-10, atol=1e-10)
    assert "Tucker rank 3,2,2 of x.npy (6 × 5 × 4, float64)" in stdout
    assert "wrote " in stdout and "core.png" in stdout


def test_missing_values_nan_flag_and_mask_file_agree(tmp_path, capsys):
    x = planted()
    x[1, 2, 3] = x[4, 0, 1] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    observed = ~torch.isnan(x)
    np.save(tmp_path / "m.npy", observed.numpy().astype(np.uint8))
    ref = cp(torch.nan_to_num(x), 2, mask=observed, max_iter=15, tol=1e-8, generator=gen(0))
    for extra in (["--nan-as-missing"], ["--mask", str(tmp_path / "m.npy")]):
        out = tmp_path / extra[0].strip("-")
        code, stdout, err = call(
            capsys, "decompose", str(tmp_path / "x.npy"), "--rank", "2", "--max-iter", "15",
            "--out", str(out), "--no-plots", "--json", "--quiet", *extra,
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(stdout)["missing"] == 2
        assert_same_cp(load_factorized(out / "factors.safetensors"), ref.model)


def test_bundled_il2_uses_its_missing_value_mask(tmp_path, capsys):
    code, stdout, err = call(
        capsys, "decompose", "--dataset", "il2_response", "--max-iter", "5",
        "--out", str(tmp_path), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["missing"] == 192 and summary["rank"] == 3
    assert (tmp_path / "factors.png").read_bytes()[:8] == PNG


def test_force_overwrites_and_human_output(tmp_path, capsys):
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    out = tmp_path / "out"
    (out).mkdir()
    (out / "summary.json").write_text("old")
    args = ("decompose", str(tmp_path / "x.npy"), "--rank", "2", "--max-iter", "5",
            "--out", str(out))  # fmt: skip
    code, stdout, err = call(capsys, *args)
    assert_one_line_error(code, err, r"output file '.*summary.json' already exists")
    assert (out / "summary.json").read_text() == "old"
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    code, stdout, err = call(capsys, *args, "--force")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "CP rank 2 of x.npy (6 × 5 × 4, float64)"
    assert lines[1].startswith("  relative error ")
    assert lines[2].startswith("  wrote ") and lines[2].count(".png") == 2
    assert json.loads((out / "summary.json").read_text())["rank"] == 2


def test_interrupt_leaves_no_output(tmp_path, capsys, monkeypatch):
    import factorch.cli._decompose as mod

    def boom(tensor, rank, *, callback=None, max_iter=1):
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "find_function", lambda method: boom)
    code, _, err = call(capsys, "decompose", "--out", str(tmp_path / "o"), "--no-plots")
    assert code == 130
    assert err == "factorch: error: interrupted; no output was written.\n"
    assert not (tmp_path / "o").exists()


def test_help_version_and_no_arguments(capsys):
    code, out, _ = call(capsys, "--help")
    assert code == 0 and "decompose" in out and "rank-scan" in out
    code, out, _ = call(capsys)
    assert code == 0 and "Usage: factorch" in out
    code, out, _ = call(capsys, "--version")
    assert code == 0 and out.startswith("factorch ")
    code, out, _ = call(capsys, "decompose", "--help")
    assert code == 0 and "--nan-as-missing" in out


def test_info_and_datasets_human_output(tmp_path, capsys):
    x = planted()
    x[0, 0, 0] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    code, out, err = call(capsys, "info", str(tmp_path / "x.npy"), "--dataset", "il2_response")
    assert code == 0, err
    assert "il2_response: bundled, float64, shape 13 × 4 × 12 × 8 (4,992 entries)" in out
    assert "x.npy: npy, float64, shape 6 × 5 × 4 (120 entries)" in out
    assert "missing (NaN) 1 (0.8%)" in out
    code, out, err = call(capsys, "datasets")
    assert code == 0 and "digits_counts: 1797 image × 8 row × 8 column [CC-BY-4.0]" in out


def test_rank_scan_table(tmp_path, capsys):
    np.save(tmp_path / "x.npy", planted().numpy())
    code, out, err = call(
        capsys, "rank-scan", str(tmp_path / "x.npy"), "--ranks", "1,2", "--starts", "1",
        "--max-iter", "10", "--out", str(tmp_path / "o"), "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "CP rank scan of x.npy (6 × 5 × 4), 1 start per rank"
    assert lines[1].split() == ["rank", "best", "error", "fit", "core", "consistency"]
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]
    assert lines[4].startswith("recommended rank: ")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["rank_scan.json"]


def test_rank_scan_with_missing_values(tmp_path, capsys):
    x = planted()
    x[1, 2, 3] = x[4, 0, 1] = x[0, 4, 2] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = call(
        capsys, "rank-scan", str(tmp_path / "x.npy"), "--nan-as-missing", "--ranks", "1,2",
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
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["rank_scan.json"]


@pytest.mark.parametrize("method", ["tt", "tr"])
def test_tt_and_tr_methods(tmp_path, capsys, method):
    from factorch.cli._common import CLIError
    from factorch.cli._decompose import find_function

    try:
        find_function(method)
    except CLIError:
        pytest.skip(f"--method {method}: its decomposition is not in this build yet")
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = call(
        capsys, "decompose", str(tmp_path / "x.npy"), "--method", method, "--rank", "2",
        "--max-iter", "5", "--out", str(tmp_path / "o"), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    model = load_factorized(tmp_path / "o" / "factors.safetensors")
    assert type(model).__name__ == {"tt": "TTTensor", "tr": "TRTensor"}[method]
    assert json.loads(stdout)["model"] == type(model).__name__


# --- bad input: exit 2, one line, no traceback, no output --------------------------------------
class Opaque:
    """Not a tensor: torch.load(weights_only=True) must refuse it."""


def make_bad_inputs(tmp_path) -> None:
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    torch.save(x, tmp_path / "fake.npy")
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "x.mat").write_bytes(b"MATLAB 5.0")
    nan = x.clone()
    nan[0, 0, 0] = float("nan")
    np.save(tmp_path / "nan.npy", nan.numpy())
    inf = x.clone()
    inf[0, 0, 0] = float("inf")
    np.save(tmp_path / "inf.npy", inf.numpy())
    np.save(tmp_path / "mask_shape.npy", np.ones((2, 2), dtype=bool))
    np.save(tmp_path / "mask_vals.npy", np.full(x.shape, 2.0))
    np.save(tmp_path / "neg.npy", (x - 1.0).numpy())
    np.save(tmp_path / "vec.npy", np.arange(5.0))
    (tmp_path / "afile").write_text("")
    torch.save({"tensor": x, "x": Opaque()}, tmp_path / "obj.pt")


BAD = [
    (["decompose", "{d}/nope.npy", "--rank", "2"], r"FILE '.*nope.npy' does not exist"),
    (
        ["decompose", "{d}/fake.npy", "--rank", "2"],
        r"fake.npy is not a NumPy .npy array: its content looks like a PyTorch .pt file",
    ),
    (["decompose", "{d}/x.mat", "--rank", "2"], r"unsupported file extension '.mat'"),
    (["decompose", "{d}/obj.pt", "--rank", "2"], r"obj.pt: refused or unreadable PyTorch file"),
    (
        ["decompose", "{d}/nan.npy", "--rank", "2"],
        r"nan.npy contains 1 NaN entries; pass --nan-as-missing",
    ),
    (["decompose", "{d}/inf.npy", "--rank", "2"], r"inf.npy contains 1 infinite entries"),
    (
        ["decompose", "{d}/vec.npy", "--rank", "1"],
        r"vec.npy has shape \(5,\); a decomposition needs at least 2 modes",
    ),
    (
        ["decompose", "{d}/x.npy", "--rank", "31"],
        r"rank 31 is too large for a tensor of shape \(6, 5, 4\): at most 20",
    ),
    (["decompose", "--rank", "67"], r"rank 67 is too large .* \(438, 6, 11\): at most 66"),
    (
        ["decompose", "{d}/x.npy", "--method", "tucker", "--rank", "3,6,2"],
        r"rank 6 is too large for mode 1 of size 5",
    ),
    (
        ["decompose", "{d}/x.npy", "--method", "tucker", "--rank", "3,2"],
        r"--rank for tucker needs one entry per mode \(3\); got 2",
    ),
    (["decompose", "{d}/x.npy", "--rank", "2,2"], r"--method cp takes one integer rank"),
    (["decompose", "{d}/x.npy", "--rank", "two"], r"--rank must be a positive integer"),
    (["decompose", "{d}/x.npy", "--rank", "0"], r"--rank entries must be positive; got '0'"),
    (["decompose", "{d}/x.npy"], r"--rank is required when decomposing a FILE"),
    (
        ["decompose", "{d}/x.npy", "--rank", "2", "--method", "svd"],
        r"Invalid value for '--method': 'svd' is not one of",
    ),
    (
        ["decompose", "{d}/x.npy", "--rank", "2", "--max-iter", "0"],
        r"Invalid value for '--max-iter'",
    ),
    (["decompose", "{d}/x.npy", "--rank", "2", "--frobnicate"], r"No such option '--frobnicate'"),
    (["decompose", "{d}/x.npy", "--dataset", "il2_response"], r"give either FILE or --dataset"),
    (["decompose", "--dataset", "iris"], r"--dataset 'iris' is not a bundled dataset"),
    (["decompose", "--key", "t"], r"--key applies to FILE only"),
    (
        ["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/mask_shape.npy"],
        r"shape \(2, 2\) does not match the tensor's \(6, 5, 4\)",
    ),
    (
        ["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/mask_vals.npy"],
        r"entries must be 0/1 or boolean",
    ),
    (
        ["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/nope.npy"],
        r"--mask '.*nope.npy' does not exist",
    ),
    (
        ["decompose", "{d}/nan.npy", "--rank", "2", "--nan-as-missing", "--method", "tucker"],
        r"has 1 missing entries but --method tucker does not handle missing values",
    ),
    (
        ["decompose", "{d}/neg.npy", "--rank", "2", "--method", "ntf"],
        r"non_negative_cp: tensor has \d+ negative entries",
    ),
    (["decompose", "{d}/x.npy", "--rank", "2", "--device", "warp9"], r"--device 'warp9' is not"),
    (
        ["decompose", "{d}/x.npy", "--rank", "2", "--out", "{d}/afile"],
        r"--out '.*afile' exists and is not a directory",
    ),
    (["rank-scan", "--ranks", "3-1"], r"--ranks must look like 1-8"),
    (["rank-scan", "--ranks", "0,1"], r"--ranks must be positive"),
    (["rank-scan", "{d}/x.npy", "--ranks", "1-25"], r"rank 25 is too large"),
    (["info"], r"give at least one FILE"),
    (["info", "{d}/x.npy", "{d}/fake.npy"], r"fake.npy is not a NumPy .npy array"),
]


@pytest.mark.parametrize(("argv", "match"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, match):
    make_bad_inputs(tmp_path)
    out = tmp_path / "out"
    args = [a.format(d=tmp_path) for a in argv]
    if args[0] != "info" and "--out" not in args:
        args += ["--out", str(out)]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = call(capsys, *args)
    assert_one_line_error(code, err, match)
    assert stdout == ""
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
