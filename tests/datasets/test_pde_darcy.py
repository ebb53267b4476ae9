"""Darcy flow: the five-point solver against analytic and manufactured solutions, and the data."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.datasets.pde import darcy_flow, solve_darcy


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return torch.meshgrid(t, t, indexing="ij")


def _manufactured(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``a``, ``f = -div(a grad u*)`` (by autograd) and ``u* = (1 + x) sin(pi x) sin(pi y)``."""
    x, y = (g.clone().requires_grad_() for g in _grid(n))
    a = 1 + 0.5 * torch.sin(2 * math.pi * x) * torch.cos(3 * y) + x * y
    u = torch.sin(math.pi * x) * torch.sin(math.pi * y) * (1 + x)
    ux, uy = torch.autograd.grad(u.sum(), (x, y), create_graph=True)
    fx = torch.autograd.grad((a * ux).sum(), x, retain_graph=True)[0]
    fy = torch.autograd.grad((a * uy).sum(), y)[0]
    return a.detach(), (-(fx + fy)).detach(), u.detach()


def test_torsion_maximum_matches_the_analytic_value() -> None:
    # -Delta u = 1 on the unit square: max u = 0.0736713 (series solution).
    u = solve_darcy(torch.ones(65, 65, dtype=torch.float64))
    assert abs(float(u.max()) - 0.0736713) < 2e-5
    assert float(u[0].abs().max()) == 0.0 and float(u[:, -1].abs().max()) == 0.0


def test_second_order_convergence_on_a_manufactured_solution() -> None:
    errors = []
    for n in (9, 17, 33):
        a, f, exact = _manufactured(n)
        errors.append(float((solve_darcy(a, forcing=f) - exact).abs().max()))
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.3 for p in orders), (errors, orders)


def test_batch_solve_equals_single_solves_and_keeps_dtype() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 12, 12, generator=g) + 0.5
    batch = solve_darcy(a)
    assert batch.dtype == torch.float32
    for b in range(3):
        torch.testing.assert_close(solve_darcy(a[b]), batch[b])


def test_generated_data_is_deterministic_and_two_valued() -> None:
    d1 = darcy_flow(6, resolution=16, generator=torch.Generator().manual_seed(1))
    d2 = darcy_flow(6, resolution=16, generator=torch.Generator().manual_seed(1))
    d3 = darcy_flow(6, resolution=16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(d1.x, d2.x) and torch.equal(d1.y, d2.y)
    assert not torch.equal(d1.x, d3.x)
    assert set(d1.x.unique().tolist()) == {3.0, 12.0}
    assert d1.x.shape == d1.y.shape == (6, 1, 16, 16) and not d1.periodic
    # The solution solves the PDE with the generated coefficient.
    torch.testing.assert_close(solve_darcy(d1.x[:, 0].double()).float(), d1.y[:, 0])


def test_one_coefficient_function_at_every_resolution() -> None:
    coarse = darcy_flow(3, resolution=9, generator=torch.Generator().manual_seed(0))
    fine = darcy_flow(3, resolution=33, generator=torch.Generator().manual_seed(0))
    assert torch.equal(coarse.x, fine.x[..., ::4, ::4])
    sub = darcy_flow(
        3, resolution=9, solve_resolution=33, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(sub.y, fine.y[..., ::4, ::4])


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: darcy_flow(0), ValueError, r"darcy_flow: n_samples must be a positive"),
        (
            lambda: darcy_flow(2, resolution=3),
            ValueError,
            r"darcy_flow: resolution must be an int >= 4",
        ),
        (
            lambda: darcy_flow(2, resolution=2.5),
            TypeError,
            r"darcy_flow: resolution must be an int",
        ),
        (
            lambda: darcy_flow(2, resolution=16, solve_resolution=40),
            ValueError,
            r"darcy_flow: solve_resolution - 1 must be a multiple of resolution - 1 = 15",
        ),
        (lambda: darcy_flow(2, contrast=(1.0, -1.0)), ValueError, r"darcy_flow: contrast must be"),
        (lambda: darcy_flow(2, dtype=torch.int32), TypeError, r"darcy_flow: dtype must be a real"),
        (lambda: darcy_flow(2, generator=0), TypeError, r"darcy_flow: generator must be a torch"),
        (lambda: darcy_flow(2, device=1.5), TypeError, r"darcy_flow: device must be"),
        (
            lambda: solve_darcy(-torch.ones(5, 5)),
            ValueError,
            r"solve_darcy: coefficient must be positive",
        ),
        (
            lambda: solve_darcy(torch.ones(5, 6)),
            ValueError,
            r"solve_darcy: coefficient must have shape",
        ),
        (
            lambda: solve_darcy(torch.ones(5, 5), forcing="1"),
            TypeError,
            r"solve_darcy: forcing must be",
        ),
        (
            lambda: solve_darcy(torch.ones(5, 5), forcing=torch.ones(4, 4)),
            ValueError,
            r"solve_darcy: forcing must be real with the coefficient's grid",
        ),
        (lambda: solve_darcy(torch.ones(5, 5), tol=0.0), ValueError, r"solve_darcy: tol must be"),
        (
            lambda: solve_darcy(torch.ones(40, 40, dtype=torch.float64), max_iter=2),
            ValueError,
            r"solve_darcy: conjugate gradients did not reach tol=1e-10 in 2 iterations",
        ),
    ],
)
def test_bad_arguments_are_refused(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()
