"""Argument checks of ``figure_to_png`` and ``normalized_cp_factors`` (issue 19)."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from factorch.plot import figure_to_png, normalized_cp_factors, plot_convergence


def test_figure_to_png_refuses_what_is_not_a_figure() -> None:
    with pytest.raises(TypeError, match=r"figure_to_png: fig must be a matplotlib figure"):
        figure_to_png("figure.png")  # type: ignore[arg-type]


def test_figure_to_png_refuses_a_bad_dpi() -> None:
    fig = plot_convergence([0.5, 0.1])
    with pytest.raises(ValueError, match=r"figure_to_png: dpi must be a positive int; got 0"):
        figure_to_png(fig, dpi=0)
    with pytest.raises(TypeError, match=r"figure_to_png: dpi must be a positive int; got float"):
        figure_to_png(fig, dpi=72.5)  # type: ignore[arg-type]


def test_normalized_cp_factors_needs_a_cp_tensor() -> None:
    with pytest.raises(TypeError, match=r"normalized_cp_factors: cp must be a CPTensor"):
        normalized_cp_factors([1, 2])  # type: ignore[arg-type]
