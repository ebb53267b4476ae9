"""Convergence, rank-scan and Tucker-core plots (``plot/_diagnostics.py``)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("matplotlib")

from factorch.decomp import DecompositionResult
from factorch.plot import figure_to_png, plot_convergence, plot_rank_scan, plot_tucker_core
from factorch.random import random_cp, random_tucker


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


def test_convergence_plot():
    errors = tuple(0.5 * 0.7**k + 0.1 for k in range(40))
    model = random_cp((4, 3, 2), 2, generator=torch.Generator().manual_seed(0))
    result = DecompositionResult(model=model, errors=errors, iterations=40, converged=True,
                                 time_s=0.1)  # fmt: skip
    fig = plot_convergence(result, title="CP-ALS")
    assert "CP-ALS" in fig._suptitle.get_text()
    assert "converged" in fig._suptitle.get_text()
    assert len(fig.get_axes()) == 2
    assert fig.get_axes()[1].get_yscale() == "log"
    _check_png(fig, figure_to_png(fig))


def test_convergence_plot_of_one_error():
    one = plot_convergence([0.25])
    assert len(one.get_axes()) == 1
    _check_png(one, figure_to_png(one))


def test_convergence_plot_needs_errors():
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


def test_tucker_core_plot_mode_names_error():
    t = random_tucker((4, 4, 4), (2, 2, 2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"plot_tucker_core: mode_names needs 3 names; got 1"):
        plot_tucker_core(t, mode_names=["a"])


def test_large_tucker_core_labels_only_a_few_ticks():
    t = random_tucker((60, 50, 3), (40, 40, 2), generator=torch.Generator().manual_seed(0))
    fig = plot_tucker_core(t)
    ax = fig.get_axes()[0]
    assert len(ax.get_yticks()) < 20  # matplotlib's locator, not one label per index
    assert fig.get_size_inches()[0] <= 40


def test_rank_scan_plot_with_many_ranks_keeps_the_default_ticks():
    ranks = tuple(range(1, 61))
    scan = SimpleNamespace(
        ranks=ranks,
        errors=tuple((1.0 / r,) for r in ranks),
        best_errors=tuple(1.0 / r for r in ranks),
        corcondia=tuple(100.0 - r for r in ranks),
        recommended=5,
        reason="rank 5.",
    )
    fig = plot_rank_scan(scan)
    assert len(fig.get_axes()[0].get_xticks()) < 20
