"""Plots: headless, non-empty PNGs of the expected pixel size; canonical CP display form."""

from __future__ import annotations

import io
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("matplotlib")

from factorch.decomp import DecompositionResult
from factorch.plot import (
    figure_to_png,
    normalized_cp_factors,
    plot_convergence,
    plot_cp_factors,
    plot_rank_scan,
    plot_tucker_core,
    save_figure,
)
from factorch.random import random_cp, random_tucker
from factorch.tensors import CPTensor


def _image(png: bytes):
    from matplotlib.image import imread

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(png), format="png")


def _check_png(fig, png: bytes) -> None:
    """Exactly figsize * dpi pixels, and not a blank canvas."""
    img = _image(png)
    width, height = (round(v * 100) for v in fig.get_size_inches())
    assert img.shape[:2] == (height, width)
    assert img[..., :3].std() > 0.05
    assert (img[..., :3] < 0.5).mean() > 0.002  # some dark ink: text, axes


def _cp(shape=(40, 6, 5), rank=3, seed=0) -> CPTensor:
    return random_cp(
        shape, rank, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalized_cp_factors_is_the_same_tensor(dtype):
    cp = _cp(seed=1)
    cp = CPTensor(
        cp.weights.to(dtype) * torch.tensor([1.0, -2.0, 0.5], dtype=dtype),
        tuple(f.to(dtype) for f in cp.factors),
    )
    w, fs = normalized_cp_factors(cp)
    back = CPTensor(torch.from_numpy(w), tuple(torch.from_numpy(f) for f in fs))
    tol = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(back.to_dense(), cp.to_dense().double(), rtol=tol, atol=tol)
    assert (w >= 0).all() and (w[:-1] >= w[1:]).all()
    for f in fs:
        torch.testing.assert_close(
            torch.from_numpy(f).norm(dim=0), torch.ones(3, dtype=torch.float64), rtol=tol, atol=tol
        )
    # every mode but the longest (mode 0, 40 indices) has non-negative column sums
    assert (fs[1].sum(0) >= 0).all() and (fs[2].sum(0) >= 0).all()


def test_cp_factor_plot_with_grouped_labels():
    cp = _cp()
    labels = (
        ["healthy"] * 15 + ["sick"] * 25,
        [f"antigen {i}" for i in range(6)],
        None,
    )
    fig = plot_cp_factors(cp, labels=labels, mode_names=("sample", "antigen", "time"), title="T")
    assert fig._suptitle.get_text() == "T"
    axes = fig.get_axes()
    assert len(axes) == 3 * 3
    assert axes[0].get_title() == "sample (40)"
    bottom_left = axes[6]
    assert [t.get_text() for t in bottom_left.get_xticklabels()] == ["healthy", "sick"]
    assert [t.get_text() for t in axes[7].get_xticklabels()][:2] == ["antigen 0", "antigen 1"]
    _check_png(fig, figure_to_png(fig))


def test_cp_factor_plot_without_labels_and_long_ungrouped_mode():
    cp = _cp(shape=(80, 3), rank=2)
    fig = plot_cp_factors(cp)
    assert fig._suptitle.get_text() == "CP factors, rank 2"
    assert fig.get_axes()[2].get_xlabel() == "index"
    _check_png(fig, figure_to_png(fig))


def test_cp_factor_plot_errors():
    cp = _cp()
    with pytest.raises(ValueError, match=r"labels needs one entry per mode \(3\); got 2"):
        plot_cp_factors(cp, labels=[None, None])
    with pytest.raises(ValueError, match=r"labels\[1\] has 2 entries but mode 1 has 6 indices"):
        plot_cp_factors(cp, labels=[None, ["a", "b"], None])
    with pytest.raises(ValueError, match=r"mode_names needs one name per mode \(3\); got 1"):
        plot_cp_factors(cp, mode_names=["x"])


def test_convergence_plot():
    errors = tuple(0.5 * 0.7**k + 0.1 for k in range(40))
    result = DecompositionResult(
        model=_cp(), errors=errors, iterations=40, converged=True, time_s=0.1
    )
    fig = plot_convergence(result, title="CP-ALS")
    assert "CP-ALS" in fig._suptitle.get_text()
    assert "converged" in fig._suptitle.get_text()
    assert len(fig.get_axes()) == 2
    assert fig.get_axes()[1].get_yscale() == "log"
    _check_png(fig, figure_to_png(fig))
    one = plot_convergence([0.25])
    assert len(one.get_axes()) == 1
    _check_png(one, figure_to_png(one))
    with pytest.raises(ValueError, match=r"plot_convergence: there are no errors to plot"):
        plot_convergence([])


def test_rank_scan_plot_pins_very_negative_core_consistency():
    scan = SimpleNamespace(
        ranks=(1, 2, 3, 4),
        errors=((0.6, 0.6), (0.4, 0.41), (0.3, 0.33), (0.25, 0.26)),
        best_errors=(0.6, 0.4, 0.3, 0.25),
        corcondia=(100.0, 97.0, 40.0, -900.0),
        recommended=2,
        reason="rank 2 is the largest rank whose core consistency stays above 80%.",
    )
    fig = plot_rank_scan(scan)
    ax_err, ax_cc = fig.get_axes()
    assert ax_cc.get_ylim()[0] >= -110
    assert any(t.get_text() == "-900%" for t in ax_cc.texts)
    assert ax_err.get_xlabel() == "rank"
    _check_png(fig, figure_to_png(fig))


@pytest.mark.parametrize("rank", [(3, 2), (3, 2, 4), (2, 2, 2, 2), (3, 2, 14)])
def test_tucker_core_plot(rank):
    shape = tuple(r + 2 for r in rank)
    t = random_tucker(shape, rank, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fig = plot_tucker_core(t)
    shape_text = "×".join(map(str, rank))
    assert fig._suptitle.get_text() == f"Tucker core ({shape_text})"
    _check_png(fig, figure_to_png(fig))
    with pytest.raises(ValueError, match=rf"mode_names needs {len(rank)} names; got 1"):
        plot_tucker_core(t, mode_names=["a"])


def test_save_figure_atomic_and_no_clobber(tmp_path):
    fig = plot_convergence([0.5, 0.3, 0.2])
    path = tmp_path / "c.png"
    save_figure(fig, path)
    first = path.read_bytes()
    _check_png(fig, first)
    with pytest.raises(FileExistsError, match=r"already exists; pass force=True"):
        save_figure(plot_convergence([0.9, 0.1]), path)
    assert path.read_bytes() == first
    save_figure(plot_convergence([0.9, 0.1]), path, force=True)
    assert path.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]


def test_import_factorch_needs_no_matplotlib_and_plots_avoid_pyplot():
    code = (
        "import sys, factorch, factorch.plot, factorch.cli;"
        "assert 'matplotlib' not in sys.modules, 'imported eagerly';"
        "from factorch.random import random_cp;"
        "fig = factorch.plot.plot_cp_factors(random_cp((5, 4, 3), 2));"
        "factorch.plot.figure_to_png(fig);"
        "assert 'matplotlib' in sys.modules;"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
