"""Viscous Burgers: ETDRK4 against the Cole--Hopf solution (fourth order), and the data."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.datasets.pde import burgers, solve_burgers

NU = 0.02


def _cole_hopf(x: torch.Tensor, t: float) -> torch.Tensor:
    """``u = -2 nu phi_x / phi``, ``phi = 2 + exp(-4 pi^2 nu t) cos(2 pi x)`` (heat equation)."""
    e = math.exp(-4 * math.pi**2 * NU * t)
    return 4 * math.pi * NU * e * torch.sin(2 * math.pi * x) / (2 + e * torch.cos(2 * math.pi * x))


def test_fourth_order_in_time_against_cole_hopf() -> None:
    x = torch.arange(64, dtype=torch.float64) / 64
    errors = []
    for dt in (0.2, 0.1, 0.05):
        u = solve_burgers(_cole_hopf(x, 0.0), viscosity=NU, t_final=1.0, dt=dt)
        errors.append(float((u[0] - _cole_hopf(x, 1.0)).abs().max()))
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(3.6 < p < 4.4 for p in orders), (errors, orders)
    assert errors[-1] < 1e-8


def test_snapshots_and_default_step_match_the_exact_solution() -> None:
    x = torch.arange(64, dtype=torch.float64) / 64
    u = solve_burgers(_cole_hopf(x, 0.0).repeat(2, 1), viscosity=NU, t_final=0.5, n_snapshots=5)
    assert u.shape == (2, 5, 64)
    for s in range(5):
        assert float((u[0, s] - _cole_hopf(x, 0.1 * (s + 1))).abs().max()) < 1e-9


def test_generated_data_is_deterministic_and_resolution_consistent() -> None:
    kw = {"viscosity": 0.05, "t_final": 0.2, "max_modes": 12}
    d1 = burgers(3, resolution=32, generator=torch.Generator().manual_seed(0), **kw)
    d2 = burgers(3, resolution=64, generator=torch.Generator().manual_seed(0), **kw)
    assert d1.x.shape == (3, 1, 32) and d1.y.shape == (3, 1, 32) and d1.periodic
    torch.testing.assert_close(d1.x, d2.x[..., ::2], rtol=0, atol=1e-6)  # same function
    torch.testing.assert_close(d1.y, d2.y[..., ::2], rtol=0, atol=1e-5)  # spectral accuracy


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: burgers(2, viscosity=0.0),
            ValueError,
            r"burgers: viscosity must be a finite positive",
        ),
        (lambda: burgers(2, resolution=4), ValueError, r"burgers: resolution must be an int >= 8"),
        (
            lambda: burgers(2, resolution=64, solve_resolution=100),
            ValueError,
            r"burgers: solve_resolution must be a multiple of resolution 64",
        ),
        (lambda: burgers(2, n_snapshots=0), ValueError, r"burgers: n_snapshots must be a positive"),
        (
            lambda: solve_burgers(torch.ones(4), viscosity=0.1),
            ValueError,
            r"solve_burgers: u0 must have shape",
        ),
        (
            lambda: solve_burgers(torch.ones(8, dtype=torch.complex64), viscosity=0.1),
            TypeError,
            r"solve_burgers: u0 must be real",
        ),
        (
            lambda: solve_burgers(torch.ones(8), viscosity="a"),
            TypeError,
            r"solve_burgers: viscosity must be",
        ),
        (
            lambda: solve_burgers(1e30 * torch.ones(16), viscosity=0.1),
            ValueError,
            r"solve_burgers: the run needs .* time steps .* more than 1e\+07",
        ),
        (
            lambda: solve_burgers(torch.ones(16), viscosity=0.1, n_snapshots=10**12, dt=1.0),
            ValueError,
            r"solve_burgers: the run needs",
        ),
        (
            lambda: solve_burgers(torch.ones(2**16), viscosity=0.1, n_snapshots=10**6, dt=1.0),
            ValueError,
            r"solve_burgers: the snapshots needs about .* of memory",
        ),
        (lambda: solve_burgers([1.0] * 4, viscosity=0.1), ValueError, r"got \(4,\)"),
    ],
)
def test_bad_arguments_are_refused(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()
