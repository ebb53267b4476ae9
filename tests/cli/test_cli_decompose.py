"""``factorch decompose`` (``cli/_decompose.py``): outputs, reports, degeneracy, plots.

One run goes through a real process (the console script's entry point: exit status, stdout and
stderr, no traceback); the others call ``factorch.cli.run`` in-process, the same code path minus the
interpreter start-up.
"""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest
import torch
from _cli_helpers import (
    FORMAT_FILES,
    PNG,
    assert_one_line_error,
    assert_same_cp,
    gen,
    invoke,
    planted,
    subprocess_cli,
    write_all_formats,
    write_partial_listing,
)

from factorch.datasets import load
from factorch.decomp import cp, cp_degeneracy, non_negative_cp, tr_als, tt_svd, tucker
from factorch.io import load_factorized


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG
    return struct.unpack(">II", data[16:24])


def test_bundled_default_end_to_end_in_a_real_process(tmp_path):
    out = tmp_path / "out"
    args = ("decompose", "--out", str(out), "--max-iter", "30", "--threads", "1")
    proc = subprocess_cli(*args, "--json", "--quiet")
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
    assert summary["degeneracy"]["degenerate"] is False
    ds = load("covid19_serology")
    ref = cp(ds.tensor, 2, max_iter=30, tol=1e-8, generator=gen(0))
    assert_same_cp(load_factorized(out / "factors.safetensors"), ref.model)
    assert summary["error"] == pytest.approx(ref.error, rel=1e-10)
    for png in ("factors.png", "convergence.png"):
        assert (out / png).read_bytes()[:8] == PNG
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = invoke(*args)  # a second run without --force refuses, touches nothing
    assert_one_line_error(code, err, r"already exist.*pass --force")
    assert stdout == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("name", FORMAT_FILES)
def test_each_format_matches_the_library(tmp_path, name):
    x = planted()
    write_all_formats(tmp_path, x)
    out = tmp_path / "out"
    code, stdout, err = invoke(
        "decompose", str(tmp_path / name), "--rank", "2", "--max-iter", "15", "--seed", "4",
        "--init", "random", "--out", str(out), "--no-plots", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"factors.safetensors", "summary.json"}
    ref = cp(x, 2, init="random", max_iter=15, tol=1e-8, generator=gen(4))
    assert_same_cp(load_factorized(out / "factors.safetensors"), ref.model)
    summary = json.loads(stdout)
    assert summary["options"] == {"init": "random", "max_iter": 15, "tol": 1e-8, "seed": 4}
    assert summary["input"]["file"].endswith(name)
    assert summary["unlisted"] is None and summary["missing"] == 0


METHOD_CASES = [
    ("tucker", "3,2,2", lambda x: tucker(x, (3, 2, 2), max_iter=10, tol=1e-8, generator=gen(0))),
    ("tt", "2", lambda x: tt_svd(x, 2, generator=gen(0))),
    ("tr", "2", lambda x: tr_als(x, 2, max_iter=10, tol=1e-8, generator=gen(0))),
    ("ntf", "2", lambda x: non_negative_cp(x, 2, max_iter=10, tol=1e-8, generator=gen(0))),
]


@pytest.mark.parametrize(("method", "rank", "reference"), METHOD_CASES, ids=lambda c: str(c))
def test_every_method_matches_its_library_function(tmp_path, method, rank, reference):
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    out = tmp_path / "out"
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--method", method, "--rank", rank,
        "--max-iter", "10", "--out", str(out), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    ref = reference(x)
    model = load_factorized(out / "factors.safetensors")
    assert type(model) is type(ref.model)
    torch.testing.assert_close(model.to_dense(), ref.model.to_dense(), rtol=1e-10, atol=1e-10)
    summary = json.loads(stdout)
    assert summary["model"] == type(model).__name__
    assert summary["error"] == pytest.approx(ref.error, rel=1e-10)
    plots = {"tucker": {"core.png"}, "ntf": {"factors.png"}}.get(method, set())
    plots |= {"convergence.png"} if method != "tt" else set()
    assert {p.name for p in out.iterdir()} == {"factors.safetensors", "summary.json"} | plots


def test_tucker_human_output(tmp_path):
    np.save(tmp_path / "x.npy", planted().numpy())
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--method", "tucker", "--rank", "3,2,2",
        "--max-iter", "10", "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0, err
    assert "Tucker rank 3,2,2 of x.npy (6 × 5 × 4, float64)" in stdout
    assert "wrote " in stdout and "core.png" in stdout


def test_missing_values_from_nan_flag_and_mask_file_agree(tmp_path):
    x = planted()
    x[1, 2, 3] = x[4, 0, 1] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    observed = ~torch.isnan(x)
    np.save(tmp_path / "m.npy", observed.numpy().astype(np.uint8))
    ref = cp(torch.nan_to_num(x), 2, mask=observed, max_iter=15, tol=1e-8, generator=gen(0))
    for extra in (["--nan-as-missing"], ["--mask", str(tmp_path / "m.npy")]):
        out = tmp_path / extra[0].strip("-")
        code, stdout, err = invoke(
            "decompose", str(tmp_path / "x.npy"), "--rank", "2", "--max-iter", "15",
            "--out", str(out), "--no-plots", "--json", "--quiet", *extra,
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(stdout)["missing"] == 2
        assert_same_cp(load_factorized(out / "factors.safetensors"), ref.model)


def test_tucker_fits_missing_values_by_em_imputation(tmp_path):
    x = planted()
    x[1, 2, 3] = x[4, 0, 1] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    observed = ~torch.isnan(x)
    ref = tucker(x, (2, 2, 2), mask=observed, max_iter=15, tol=1e-8, generator=gen(0))
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--method", "tucker", "--rank", "2,2,2",
        "--max-iter", "15", "--nan-as-missing", "--out", str(tmp_path / "o"), "--no-plots",
        "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["missing"] == 2
    got = load_factorized(tmp_path / "o" / "factors.safetensors")
    torch.testing.assert_close(got.to_dense(), ref.model.to_dense())


# --- coordinate files: unlisted entries (issue 9.3) -------------------------------------------
def rank_one(shape=(6, 5, 4)) -> torch.Tensor:
    g = gen(7)
    vecs = [torch.rand(n, generator=g, dtype=torch.float64) + 0.5 for n in shape]
    return torch.einsum("i,j,k->ijk", *vecs)


def test_coordinates_default_to_missing_and_say_so(tmp_path):
    x = rank_one()
    listed = write_partial_listing(tmp_path / "x.csv", x, 0.8)
    n_unlisted = int((~listed).sum())
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.csv"), "--rank", "1", "--out", str(tmp_path / "o"),
        "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    assert (
        f"x.csv lists {120 - n_unlisted} of 120 entries; the other {n_unlisted} are read as "
        "missing values (the listed values are not all counts; --unlisted zero to change)"
    ) in stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["missing"] == n_unlisted
    assert summary["unlisted"] == {
        "entries": n_unlisted,
        "read_as": "missing",
        "asked": "auto",
        "reason": "the listed values are not all counts",
    }
    assert summary["fit"] > 0.999999  # the rank-1 tensor is recovered from 80 % of it


def test_coordinates_read_as_zeros_when_asked(tmp_path):
    x = rank_one()
    listed = write_partial_listing(tmp_path / "x.csv", x, 0.8)
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.csv"), "--rank", "1", "--unlisted", "zero",
        "--out", str(tmp_path / "o"), "--no-plots", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["missing"] == 0
    assert summary["unlisted"]["read_as"] == "zero" and summary["unlisted"]["asked"] == "zero"
    ref = cp(torch.where(listed, x, 0.0), 1, max_iter=500, tol=1e-8, generator=gen(0))
    assert summary["error"] == pytest.approx(ref.error, rel=1e-9)
    assert summary["fit"] < 0.9  # zeros where values were unknown: a much worse model


def test_coordinates_of_counts_default_to_zeros(tmp_path):
    x = torch.round(10 * rank_one())
    write_partial_listing(tmp_path / "x.csv", x, 0.5)
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.csv"), "--rank", "1", "--out", str(tmp_path / "o"),
        "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    assert "are read as zeros (the listed values are counts (non-negative integers)" in stdout
    assert "--unlisted missing to change" in stdout


# --- degenerate models and the IL-2 dataset (issue 9.4) -----------------------------------------
def test_il2_fits_its_suggested_non_negative_cp_with_missing_values(tmp_path):
    """The IL-2 dataset suggests non-negative CP at rank 3; with its 192 missing entries the
    fit (EM on the observed entries) converges to a non-degenerate model (issue 11, item 5)."""
    code, stdout, err = invoke(
        "decompose", "--dataset", "il2_response", "--out", str(tmp_path / "o"), "--no-plots"
    )
    assert code == 0, err
    # No degeneracy warning (stderr may hold a progress bar, depending on earlier tests).
    assert "degenera" not in err.lower() and "warning" not in err.lower(), err
    assert "Non-negative CP rank 3 of il2_response" in stdout and "192 missing" in stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["method"] == "ntf" and summary["missing"] == 192
    assert summary["converged"] is True and summary["degeneracy"]["degenerate"] is False
    model = load_factorized(tmp_path / "o" / "factors.safetensors")
    assert all(bool((f >= 0).all()) for f in model.factors)
    data = load("il2_response")
    ref = non_negative_cp(data.tensor, 3, mask=data.mask, max_iter=500, generator=gen(0))
    assert summary["error"] == pytest.approx(ref.error, rel=1e-12)
    observed = data.mask
    resid = torch.where(observed, data.tensor - model.to_dense(), 0.0)
    true = float(resid.norm() / torch.where(observed, data.tensor, 0.0).norm())
    assert summary["error"] == pytest.approx(true, rel=1e-9) and summary["error"] < 0.26


def test_degenerate_cp_is_flagged(tmp_path):
    code, _stdout, err = invoke(
        "decompose", "--dataset", "il2_response", "--method", "cp", "--out", str(tmp_path),
        "--quiet", "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("factorch: warning: degenerate model: ")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["missing"] == 192 and summary["rank"] == 3
    deg = summary["degeneracy"]
    ref = cp_degeneracy(load_factorized(tmp_path / "factors.safetensors"))
    assert deg["degenerate"] is True and ref.degenerate
    assert (
        deg["min_congruence"] == pytest.approx(ref.min_congruence) and deg["min_congruence"] < -0.85
    )
    assert deg["message"] == ref.message


def test_non_degenerate_cp_has_no_warning(tmp_path):
    np.save(tmp_path / "x.npy", planted().numpy())
    code, _, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--rank", "2", "--out", str(tmp_path / "o"),
        "--no-plots", "--quiet",
    )  # fmt: skip
    assert code == 0 and err == ""
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["degeneracy"]["degenerate"] is False and summary["degeneracy"]["message"] is None


# --- plots (issue 9.14) -------------------------------------------------------------------------
def test_without_matplotlib_the_other_outputs_are_written(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    np.save(tmp_path / "x.npy", planted().numpy())
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--rank", "2", "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0, err
    assert err == (
        "factorch: note: matplotlib is not installed, so factors.png, convergence.png were not "
        "drawn; pip install 'factorch[plot]' to get plots, or pass --no-plots.\n"
    )
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"factors.safetensors", "summary.json"}
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["plots_skipped"] == ["factors.png", "convergence.png"]
    assert "wrote " in stdout


def test_high_rank_factor_plot_is_capped(tmp_path, monkeypatch):
    import factorch.cli._decompose as mod

    assert mod.MAX_PLOTTED_COMPONENTS == 12
    monkeypatch.setattr(mod, "MAX_PLOTTED_COMPONENTS", 3)  # the same path, a cheaper figure
    x = planted(shape=(20, 6, 5), rank=3)
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--rank", "25", "--max-iter", "2",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0, err
    assert "  factors.png shows the 3 strongest of 25 components" in stdout
    width, height = png_size((tmp_path / "o" / "factors.png").read_bytes())
    assert height == round(100 * (1.9 + 1.5 * 3)) and width <= 4000


def test_force_overwrites_and_human_output(tmp_path):
    np.save(tmp_path / "x.npy", planted().numpy())
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("old")
    args = ("decompose", str(tmp_path / "x.npy"), "--rank", "2", "--max-iter", "5",
            "--out", str(out))  # fmt: skip
    code, stdout, err = invoke(*args)
    assert_one_line_error(code, err, r"output file '.*summary.json' already exists")
    assert (out / "summary.json").read_text() == "old"
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    code, stdout, err = invoke(*args, "--force")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "CP rank 2 of x.npy (6 × 5 × 4, float64)"
    assert lines[1].startswith("  relative error ")
    assert lines[2].startswith("  wrote ") and lines[2].count(".png") == 2
    assert json.loads((out / "summary.json").read_text())["rank"] == 2


def test_interrupt_leaves_no_output(tmp_path, monkeypatch):
    import dataclasses

    import factorch.cli._methods as methods

    def boom(request):
        raise KeyboardInterrupt

    monkeypatch.setitem(methods.METHODS, "cp", dataclasses.replace(methods.METHODS["cp"], fit=boom))
    code, _, err = invoke("decompose", "--out", str(tmp_path / "o"), "--no-plots")
    assert code == 130
    assert err == "factorch: error: interrupted; no output was written.\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["cp", "tucker"])
def test_cuda_run_matches_the_cpu_run(tmp_path, method):
    np.save(tmp_path / "x.npy", planted().numpy())
    rank = "2" if method == "cp" else "3,2,2"
    models = []
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        code, stdout, err = invoke(
            "decompose", str(tmp_path / "x.npy"), "--method", method, "--rank", rank,
            "--max-iter", "20", "--device", device, "--out", str(out), "--json", "--quiet",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(stdout)["device"].startswith(device)
        models.append(load_factorized(out / "factors.safetensors"))
    torch.testing.assert_close(models[0].to_dense(), models[1].to_dense(), rtol=1e-8, atol=1e-8)
