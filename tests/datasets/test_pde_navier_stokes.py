"""Navier--Stokes (vorticity): CNAB2 against Taylor--Green decay and a manufactured solution."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.datasets.pde import fno_forcing, navier_stokes, solve_navier_stokes

N = 16
NU = 0.01


def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(N, dtype=torch.float64) / N
    return torch.meshgrid(t, t, indexing="ij")


def _modes(t: float) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _grid()
    a = torch.sin(2 * math.pi * x) * torch.sin(4 * math.pi * y)
    b = 0.5 * torch.cos(2 * math.pi * (2 * x + y))
    return a, b


def _exact(t: float) -> torch.Tensor:
    a, b = _modes(t)
    return math.exp(-t) * a + math.cos(t) * b


def _forcing(t: float) -> torch.Tensor:
    """``f = w_t + u . grad w - nu Lap w`` for :func:`_exact`, computed spectrally (exact for
    these low modes on a 16-point grid)."""
    a, b = _modes(t)
    w = _exact(t)
    w_t = -math.exp(-t) * a - math.sin(t) * b
    kx = torch.fft.fftfreq(N, d=1 / N, dtype=torch.float64)[:, None] * 2j * math.pi
    ky = torch.fft.fftfreq(N, d=1 / N, dtype=torch.float64)[None, :] * 2j * math.pi
    lap = kx**2 + ky**2
    wh = torch.fft.fft2(w)
    psi = torch.where(lap == 0, 0, -wh / torch.where(lap == 0, 1, lap))
    u, v = torch.fft.ifft2(ky * psi).real, torch.fft.ifft2(-kx * psi).real
    wx, wy = torch.fft.ifft2(kx * wh).real, torch.fft.ifft2(ky * wh).real
    return w_t + u * wx + v * wy - NU * torch.fft.ifft2(lap * wh).real


def test_taylor_green_vortex_decays_exactly() -> None:
    x, y = _grid()
    w0 = torch.sin(2 * math.pi * x) * torch.sin(2 * math.pi * y)
    w = solve_navier_stokes(w0, viscosity=NU, t_final=1.0, forcing=None, dt=0.01)
    assert float((w[0] - w0 * math.exp(-8 * math.pi**2 * NU)).abs().max()) < 1e-5


def test_second_order_in_time_on_a_manufactured_solution() -> None:
    errors = []
    for dt in (0.04, 0.02, 0.01):
        w = solve_navier_stokes(_exact(0.0), viscosity=NU, t_final=0.6, forcing=_forcing, dt=dt)
        errors.append(float((w[0] - _exact(0.6)).abs().max()))
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.3 for p in orders), (errors, orders)


def test_fno_forcing_and_generated_data() -> None:
    f = fno_forcing(8)
    assert f.shape == (8, 8)
    assert abs(float(f[1, 1]) - 0.1 * (math.sin(math.pi / 2) + math.cos(math.pi / 2))) < 1e-12
    gen = torch.Generator().manual_seed(0)
    data = navier_stokes(2, resolution=16, t_final=0.4, n_snapshots=2, generator=gen)
    assert data.x.shape == (2, 1, 16, 16) and data.y.shape == (2, 2, 16, 16) and data.periodic
    again = navier_stokes(
        2, resolution=16, t_final=0.4, n_snapshots=2, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(data.y, again.y)
    # The vorticity mean is conserved (zero-mean forcing and initial field).
    assert float(data.y.mean((-2, -1)).abs().max()) < 1e-6


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: navier_stokes(2, viscosity=-1.0), ValueError, r"navier_stokes: viscosity must be"),
        (
            lambda: solve_navier_stokes(torch.zeros(8, 8), viscosity=0.1, t_final=1.0, forcing="x"),
            ValueError,
            r"solve_navier_stokes: forcing must be 'fno', None",
        ),
        (
            lambda: solve_navier_stokes(
                torch.zeros(8, 8), viscosity=0.1, t_final=1.0, forcing=torch.ones(4, 4)
            ),
            ValueError,
            r"solve_navier_stokes: forcing must be real on the \(8, 8\) grid",
        ),
        (
            lambda: solve_navier_stokes(torch.zeros(6, 6), viscosity=0.1, t_final=1.0),
            ValueError,
            r"solve_navier_stokes: w0 must have shape",
        ),
        (
            lambda: solve_navier_stokes(
                50 * torch.sin(2 * math.pi * _grid()[0]), viscosity=1e-4, t_final=1.0, dt=0.5
            ),
            ValueError,
            r"solve_navier_stokes: by t = .* the flow is too fast for the time step",
        ),
        (
            lambda: solve_navier_stokes(
                1e30 * torch.sin(2 * math.pi * _grid()[0]), viscosity=1e-3, t_final=1.0
            ),
            ValueError,
            r"solve_navier_stokes: the run needs .* time steps",
        ),
    ],
)
def test_bad_arguments_are_refused(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()
