"""Relative Lp / H1 losses: exact values on known functions, derivative orders, the anchor
(neuraloperator's LpLoss and, in the fine-grid limit, its H1Loss)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from factorch.train import H1Loss, LpLoss, gradients, relative_h1, relative_lp


@contextlib.contextmanager
def _neuralop() -> Iterator[Any]:
    """neuraloperator, imported with TensorLy's backend set to pytorch for its use and the
    previous backend restored after (its import switches TensorLy's global backend, which
    would leak into other tests that compare against TensorLy)."""
    tl = pytest.importorskip("tensorly")
    previous = tl.get_backend()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            neuralop = pytest.importorskip("neuralop")
        tl.set_backend("pytorch")
        yield neuralop
    finally:
        tl.set_backend(previous)


def _trig(n: int, periodic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(n, dtype=torch.float64) / (n if periodic else n - 1)
    x, y = torch.meshgrid(t, t, indexing="ij")
    return x, y


def test_relative_lp_matches_neuraloperator() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 2, 8, 9, generator=g), torch.randn(4, 2, 8, 9, generator=g)
    with _neuralop() as neuralop, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = neuralop.losses.LpLoss(d=2, p=2, reduction="sum")(pred, target) / 8
    torch.testing.assert_close(relative_lp(pred, target), theirs)
    torch.testing.assert_close(LpLoss(p=1)(pred, target), relative_lp(pred, target, p=1))
    assert relative_lp(pred, target, reduction="none").shape == (4, 2)


def test_spectral_derivative_is_exact_and_fd_is_second_order() -> None:
    x, y = _trig(16, True)
    u = torch.sin(2 * math.pi * x) * torch.cos(4 * math.pi * y)
    dx, dy = gradients(u, 2, periodic=True)
    torch.testing.assert_close(
        dx, 2 * math.pi * torch.cos(2 * math.pi * x) * torch.cos(4 * math.pi * y)
    )
    torch.testing.assert_close(
        dy, -4 * math.pi * torch.sin(2 * math.pi * x) * torch.sin(4 * math.pi * y)
    )
    errors = []
    for n in (17, 33, 65):
        x, y = _trig(n, False)
        # dims=1 differentiates along the last axis (y).
        (dy,) = gradients(torch.sin(x) * torch.exp(y), 1, periodic=False)
        errors.append(float((dy - torch.sin(x) * torch.exp(y)).abs().max()))
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.2 for p in orders), orders


def test_relative_h1_value_on_a_known_perturbation() -> None:
    # v = sin(2 pi x), e = 0.01 cos(2 pi x): |e|^2(1 + 4 pi^2) / |v|^2 (1 + 4 pi^2) = 1e-4.
    t = torch.arange(64, dtype=torch.float64) / 64
    v = torch.sin(2 * math.pi * t).expand(1, 1, 64)
    e = 0.01 * torch.cos(2 * math.pi * t)
    torch.testing.assert_close(
        relative_h1(v + e, v, periodic=True, dims=1), torch.tensor(0.01, dtype=torch.float64)
    )
    assert float(H1Loss(periodic=True, dims=1)(v, v)) == 0.0


@pytest.mark.parametrize("periodic", [True, False])
def test_relative_h1_agrees_with_neuraloperator_on_smooth_fields(periodic: bool) -> None:
    n = 128
    x, y = _trig(n, periodic)
    v = (
        torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)
        + 0.3 * torch.cos(2 * math.pi * (x + y))
    )[None, None]
    u = v + 0.05 * torch.sin(4 * math.pi * x)[None, None]
    with _neuralop() as neuralop, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = neuralop.losses.H1Loss(d=2, periodic_in_x=periodic, periodic_in_y=periodic)(u, v)
    assert abs(float(relative_h1(u, v, periodic=periodic)) - float(theirs)) < 1e-2 * float(theirs)


def test_losses_are_differentiable() -> None:
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 1, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 1, 6, 7, generator=g, dtype=torch.float64)
    for periodic in (True, False):
        assert torch.autograd.gradcheck(
            lambda p, periodic=periodic: relative_h1(p, target, periodic=periodic), (pred,)
        )
    assert torch.autograd.gradcheck(lambda p: relative_lp(p, target), (pred,))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: relative_lp(torch.ones(2, 3), torch.ones(2, 4)),
            ValueError,
            r"relative_lp: pred and target must have the same shape",
        ),
        (
            lambda: relative_lp(torch.ones(2, 3), "a"),
            TypeError,
            r"relative_lp: pred and target must be tensors",
        ),
        (
            lambda: relative_lp(torch.ones(2, 3), torch.ones(2, 3), p=0.5),
            ValueError,
            r"relative_lp: p must be a number >= 1",
        ),
        (
            lambda: relative_lp(torch.ones(2, 3), torch.ones(2, 3), dims=3),
            ValueError,
            r"relative_lp: dims must be an int in \[1, 2\]",
        ),
        (
            lambda: relative_lp(torch.ones(2, 3), torch.ones(2, 3), reduction="max"),
            ValueError,
            r"relative_lp: reduction must be one of",
        ),
        (
            lambda: relative_lp(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3)),
            TypeError,
            r"relative_lp: pred and target must be real floating-point tensors",
        ),
        (
            lambda: relative_h1(torch.ones(2, 1, 1), torch.ones(2, 1, 1), periodic=True, dims=1),
            ValueError,
            r"relative_h1: every grid dimension needs at least 2 points",
        ),
    ],
)
def test_bad_arguments(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
def test_losses_are_true_at_extreme_scales(dtype: torch.dtype, scale: float) -> None:
    g = torch.Generator().manual_seed(2)
    target = torch.randn(3, 1, 12, 12, generator=g, dtype=torch.float64)
    pred = target + 0.1 * torch.randn(3, 1, 12, 12, generator=g, dtype=torch.float64)
    for loss in (
        lambda p, t: relative_lp(p, t),
        lambda p, t: relative_h1(p, t, periodic=True),
        lambda p, t: relative_h1(p, t, periodic=False),
    ):
        reference = loss(pred, target)
        got = loss((pred * scale).to(dtype), (target * scale).to(dtype))
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), reference, rtol=1e-5, atol=0)


def test_half_inputs_are_computed_in_float32_and_a_zero_target_gives_the_absolute_error() -> None:
    g = torch.Generator().manual_seed(3)
    target = 300 * torch.randn(2, 1, 16, generator=g)  # squares overflow float16
    pred = target + 30 * torch.randn(2, 1, 16, generator=g)
    got = relative_lp(pred.half(), target.half(), dims=1)
    assert got.dtype == torch.float16
    torch.testing.assert_close(
        got.float(),
        relative_lp(pred.half().float(), target.half().float(), dims=1),
        rtol=1e-3,
        atol=0,
    )
    err = torch.ones(1, 1, 4)
    assert float(relative_lp(err, torch.zeros(1, 1, 4), dims=1)) == 2.0  # ||1||_2 over 4 points
    assert float(relative_h1(err, torch.zeros(1, 1, 4), periodic=True, dims=1)) == 2.0


def _h1_by_gradients(pred: torch.Tensor, target: torch.Tensor, d: int) -> torch.Tensor:
    """Per-(sample, channel) relative H1 from the explicit spectral derivatives (the definition
    the Parseval path of ``relative_h1(periodic=True)`` must reproduce)."""

    def energy(u: torch.Tensor) -> torch.Tensor:
        parts = [u, *gradients(u, d, periodic=True)]
        return sum(p.flatten(-d).pow(2).sum(-1) for p in parts)

    return (energy(pred - target) / energy(target)).sqrt()


@pytest.mark.parametrize(
    ("shape", "d"),
    [((3, 2, 8), 1), ((3, 2, 7), 1), ((2, 1, 2), 1), ((2, 2, 6, 5), 2), ((2, 7, 4), 2),
     ((1, 2, 3, 4, 5), 3), ((2, 1, 4, 6, 3), 3), ((1, 2, 3, 4, 5), 1)],
)  # fmt: skip
def test_periodic_h1_equals_the_explicit_derivatives(shape: tuple[int, ...], d: int) -> None:
    g = torch.Generator().manual_seed(7)
    pred = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(shape, generator=g, dtype=torch.float64)
    ours = relative_h1(pred, target, periodic=True, dims=d, reduction="none")
    ref = _h1_by_gradients(pred, target, d)
    torch.testing.assert_close(ours, ref, rtol=1e-13, atol=0)
    (g_ours,) = torch.autograd.grad(ours.sum(), pred)
    (g_ref,) = torch.autograd.grad(ref.sum(), pred)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-11, atol=1e-14)
