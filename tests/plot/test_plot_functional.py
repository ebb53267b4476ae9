"""Plots of functional models: latent functions with bands, predicted-versus-observed maps."""

from __future__ import annotations

import pytest
import torch

from factorch.completion.functional import ContinuousData, funbat
from factorch.plot import figure_to_png, plot_functional_map, plot_latent_functions

F64 = torch.float64


@pytest.fixture(scope="module")
def fitted():
    g = torch.Generator().manual_seed(0)
    axes = [torch.rand(6, generator=g, dtype=F64) for _ in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    y = torch.sin(3 * grid[:, 0]) * torch.cos(2 * grid[:, 1]) + grid[:, 2]
    data = ContinuousData(grid, y, names=("lat", "lon", "t"), units=("deg", "deg", None))
    return data, funbat(data, 2, max_iter=4, generator=g).model


def test_latent_functions_one_panel_per_mode_with_bands(fitted):
    _, model = fitted
    fig = plot_latent_functions(model, points=50, level=0.9)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["lat [deg]", "lon [deg]", "t"]
    assert all(len(ax.collections) == 2 for ax in axes)  # one band per latent function
    assert figure_to_png(fig)[:4] == b"\x89PNG"


def test_map_holds_other_modes_at_their_most_frequent_coordinate(fitted):
    data, model = fitted
    fig = plot_functional_map(model, data, modes=(1, 0), grid=10)
    assert "predicted vs observed at t=" in fig.texts[0].get_text()
    obs = fig.axes[0]
    assert obs.get_title() == "observed (36 entries)"  # a 6 x 6 slice of the 6 x 6 x 6 grid
    at = float(data.coords[0, 2])
    fig = plot_functional_map(model, data, at=[at], grid=10)
    assert f"t={at:.4g}" in fig.texts[0].get_text()
    assert figure_to_png(fig)[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, d: plot_latent_functions("m"), TypeError, "model must be a FunctionalTensor"),
        (lambda m, d: plot_latent_functions(m, points=1), ValueError, r"points must be an int"),
        (lambda m, d: plot_latent_functions(m, level=1.0), ValueError, r"level must be a number"),
        (lambda m, d: plot_latent_functions(m, mode_names=["a"]), ValueError, "one name per mode"),
        (lambda m, d: plot_functional_map(m, "d"), TypeError, "data must be a ContinuousData"),
        (lambda m, d: plot_functional_map(m, d, modes=(0, 0)), ValueError, "two distinct modes"),
        (
            lambda m, d: plot_functional_map(m, d, at=[0.1, 0.2]),
            ValueError,
            r"at must give one coordinate per other mode \(1\)",
        ),
        (lambda m, d: plot_functional_map(m, d, grid=1000), ValueError, "grid must be an int"),
    ],
)
def test_bad_input(fitted, call, error, match):
    data, model = fitted
    with pytest.raises(error, match=match):
        call(model, data)
