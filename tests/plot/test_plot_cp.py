"""CP factor plots (``plot/_cp.py``): canonical display form, labels, a cap on components."""

from __future__ import annotations

import io

import pytest
import torch

pytest.importorskip("matplotlib")

from factorch.plot import figure_to_png, normalized_cp_factors, plot_cp_factors
from factorch.random import random_cp
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


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"labels": [None, None]}, ValueError, r"labels needs one entry per mode \(3\); got 2"),
        ({"labels": [None, ["a", "b"], None]}, ValueError,
         r"labels\[1\] has 2 entries but mode 1 has 6 indices"),
        ({"mode_names": ["x"]}, ValueError, r"mode_names needs one name per mode \(3\); got 1"),
        ({"max_components": 0}, ValueError,
         r"plot_cp_factors: max_components must be a positive int; got 0"),
        ({"max_components": 2.0}, TypeError,
         r"plot_cp_factors: max_components must be a positive int; got float"),
    ],
)  # fmt: skip
def test_cp_factor_plot_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_cp_factors(_cp(), **kwargs)


def test_cp_factor_plot_draws_at_most_max_components():
    cp = _cp(shape=(40, 6, 5), rank=5)
    fig = plot_cp_factors(cp, max_components=2)
    assert fig.get_suptitle() == "CP factors, rank 5 (the 2 strongest of 5 components shown)"
    assert len(fig.get_axes()) == 2 * 3
    weights, _ = normalized_cp_factors(cp)
    assert fig.get_axes()[0].get_ylabel() == f"component 1\nweight {weights[0]:.4g}"
    assert fig.get_axes()[3].get_ylabel() == f"component 2\nweight {weights[1]:.4g}"
    _check_png(fig, figure_to_png(fig))


def test_cp_factor_plot_caps_components_by_default():
    fig = plot_cp_factors(_cp(shape=(30, 20, 20), rank=15))
    assert fig.get_suptitle().endswith("(the 12 strongest of 15 components shown)")
    assert len(fig.get_axes()) == 12 * 3
    assert fig.get_size_inches()[1] <= 1.9 + 1.1 * 12 + 1e-9
