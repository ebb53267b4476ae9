r"""2-D incompressible Navier--Stokes in vorticity form on the unit torus.

.. math::
    \partial_t\omega + u\cdot\nabla\omega = \nu\Delta\omega + f,\qquad
    u = (\partial_y\psi, -\partial_x\psi),\qquad -\Delta\psi = \omega.

Pseudo-spectral in space (real 2-D FFTs; the velocity and the vorticity gradient from the stream
function spectrally, their product on the grid, the 2/3 rule against aliasing). In time,
Crank--Nicolson for the diffusion and second-order Adams--Bashforth for advection and forcing
(CNAB2; the first step is Crank--Nicolson/forward Euler):

.. math::
    \Big(1 - \tfrac{\Delta t}{2}\nu L\Big)\hat\omega^{n+1} =
    \Big(1 + \tfrac{\Delta t}{2}\nu L\Big)\hat\omega^{n}
    + \Delta t\Big(\tfrac32 \hat N^n - \tfrac12 \hat N^{n-1}\Big),\qquad
    N = -u\cdot\nabla\omega + f,\ L = -4\pi^2|k|^2,

second order in ``dt`` (the FNO data script ``ns_2d.py`` uses the same Crank--Nicolson diffusion
with a first-order explicit advection step and five times smaller steps). Checked in the tests
against the exact decay of a Taylor--Green vortex and a manufactured solution with a
time-dependent forcing (observed order 2).

Default forcing: the FNO paper's ``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``. Reference:
Li et al., "Fourier neural operator for parametric partial differential equations" (ICLR 2021),
section 5.3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from ..._checks import as_tensor, check_positive_int, check_tensor
from ..._numerics import check_memory
from ._data import (
    MAX_STEPS,
    PDEData,
    cached,
    check_device,
    check_dtype,
    check_positive_float,
    check_resolution,
    solve_grid,
)
from ._grf import periodic_grf

__all__ = ["fno_forcing", "navier_stokes", "solve_navier_stokes"]

Forcing = torch.Tensor | Callable[[float], torch.Tensor] | Literal["fno"] | None
_CFL = 0.5  # advective CFL number of the default time step
_CFL_LIMIT = 1.0  # refused beyond this (checked at every snapshot)
_DT_MAX = 1e-2


def fno_forcing(
    resolution: int, *, dtype: torch.dtype = torch.float64, device: object = None
) -> torch.Tensor:
    """The FNO paper's forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))`` on the
    ``resolution x resolution`` grid ``x_j = j / resolution``.

    Args:
        resolution: grid points per dimension.
        dtype: dtype of the result (computed in float64).
        device: where the result lives (default the CPU).

    Returns:
        ``(resolution, resolution)`` forcing values.

    Raises:
        TypeError: a device that is not a ``torch.device`` or a device name.

    Example:
        >>> fno_forcing(4)[0, :2]
        tensor([0.1000, 0.1000], dtype=torch.float64)
    """
    dev = check_device(device, "fno_forcing")
    t = torch.arange(resolution, dtype=torch.float64, device=dev) / resolution
    s = 2 * math.pi * (t[:, None] + t[None, :])
    return (0.1 * (torch.sin(s) + torch.cos(s))).to(dtype)


class _Spectral:
    """Wavenumbers, the Laplacian, the dealiasing mask and the nonlinear term on one grid."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.n = n
        kx = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)[:, None]
        ky = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)[None, :]
        self.ikx = 2j * math.pi * kx
        self.iky = 2j * math.pi * ky
        self.lap = -4 * math.pi**2 * (kx**2 + ky**2)
        inv = torch.where(self.lap == 0, 0.0, -1.0 / torch.where(self.lap == 0, 1.0, self.lap))
        self.inv_neg_lap = inv  # psi_hat = omega_hat / (4 pi^2 |k|^2), zero mean
        self.dealias = ((kx.abs() <= n / 3) & (ky <= n / 3)).to(torch.float64)

    def advection(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``-(u . grad omega)`` in Fourier space, dealiased."""
        n = self.n
        psi = w_hat * self.inv_neg_lap
        # One batched inverse FFT for u = psi_y, v = -psi_x, omega_x, omega_y.
        parts = torch.stack([self.iky * psi, -self.ikx * psi, self.ikx * w_hat, self.iky * w_hat])
        u, v, wx, wy = torch.fft.irfft2(parts, s=(n, n))
        return -torch.fft.rfft2(u * wx + v * wy) * self.dealias

    def max_speed(self, w_hat: torch.Tensor) -> float:
        n = self.n
        psi = w_hat * self.inv_neg_lap
        u = torch.fft.irfft2(self.iky * psi, s=(n, n))
        v = torch.fft.irfft2(-self.ikx * psi, s=(n, n))
        return float(torch.sqrt(u * u + v * v).max())


def _forcing_fn(
    forcing: Forcing, n: int, device: torch.device, fn: str
) -> Callable[[float], torch.Tensor] | None:
    """The forcing as a function of time returning its (dealiased) 2-D real FFT."""
    if forcing is None:
        return None
    if isinstance(forcing, str):
        if forcing != "fno":
            raise ValueError(
                f"{fn}: forcing must be 'fno', None, a tensor or a callable; got {forcing!r}."
            )
        fixed = torch.fft.rfft2(fno_forcing(n, device=device))
        return lambda t: fixed
    if isinstance(forcing, torch.Tensor):
        f = check_tensor(forcing, fn, "forcing")
        if f.is_complex() or tuple(f.shape[-2:]) != (n, n):
            raise ValueError(
                f"{fn}: forcing must be real on the ({n}, {n}) grid; got "
                f"{tuple(f.shape)}, {f.dtype}."
            )
        fixed = torch.fft.rfft2(f.detach().to(device=device, dtype=torch.float64))
        return lambda t: fixed
    if callable(forcing):
        fcall = forcing

        def timed(t: float) -> torch.Tensor:
            return torch.fft.rfft2(fcall(t).to(device=device, dtype=torch.float64))

        return timed
    raise TypeError(
        f"{fn}: forcing must be 'fno', None, a tensor or a callable; got {type(forcing).__name__}."
    )


def solve_navier_stokes(
    w0: torch.Tensor,
    *,
    viscosity: float,
    t_final: float,
    n_snapshots: int = 1,
    dt: float | None = None,
    forcing: Forcing = "fno",
) -> torch.Tensor:
    r"""Evolve vorticity ``w0`` on the periodic unit square (CNAB2, see the module docstring).

    Args:
        w0: initial vorticity on the grid ``(j / n, l / n)``, ``(n, n)`` or ``(batch, n, n)``,
            ``n >= 8`` (its mean is conserved; it should be zero for a periodic velocity).
        viscosity: :math:`\nu > 0`.
        t_final: final time.
        n_snapshots: equally spaced output times ``t_final * j / n_snapshots``.
        dt: time step (rounded down to divide each snapshot interval); default from the advective
            CFL number 0.5 of ``w0``'s velocity, at most ``1e-2``. The CFL number is checked at
            every snapshot: a run whose flow speeds up past CFL 1 is refused.
        forcing: ``"fno"`` (default, :func:`fno_forcing`), ``None``, a ``(n, n)`` tensor, or a
            callable ``t -> (n, n) tensor`` for time-dependent forcing.

    Returns:
        ``(batch, n_snapshots, n, n)`` (``(n_snapshots, n, n)`` for 2-D ``w0``) in ``w0``'s dtype
        and device; computed in float64.

    Raises:
        TypeError: an argument of the wrong type (the message names it).
        ValueError: an argument with a bad value, or a flow that outgrows the time step (CFL
            number above 1 or non-finite values: take a smaller ``dt``).

    Not differentiable (detached).

    Example:
        >>> w = solve_navier_stokes(torch.zeros(16, 16), viscosity=1e-3, t_final=0.5)
        >>> w.shape  # forced from rest
        torch.Size([1, 16, 16])
    """
    fn = "solve_navier_stokes"
    w = check_tensor(as_tensor(w0, fn, "w0"), fn, "w0")
    if w.is_complex():
        raise TypeError(f"{fn}: w0 must be real; got {w.dtype}.")
    given = tuple(w.shape)
    single = w.ndim == 2
    if single:
        w = w.unsqueeze(0)
    if w.ndim != 3 or w.shape[-1] != w.shape[-2] or w.shape[-1] < 8:
        raise ValueError(
            f"{fn}: w0 must have shape (n, n) or (batch, n, n) with n >= 8; got {given}."
        )
    nu = check_positive_float(viscosity, fn, "viscosity")
    t_end = check_positive_float(t_final, fn, "t_final")
    snaps = check_positive_int(n_snapshots, fn, "n_snapshots")
    n = w.shape[-1]
    dev = w.device
    grid = _Spectral(n, dev)
    force = _forcing_fn(forcing, n, dev, fn)
    w_hat = torch.fft.rfft2(w.detach().to(torch.float64))
    interval = t_end / snaps
    if dt is None:
        speed = grid.max_speed(w_hat)
        step = min(_DT_MAX, _CFL / (n * speed)) if speed > 0 else _DT_MAX
    else:
        step = check_positive_float(dt, fn, "dt")
    per_snap = max(1, math.ceil(interval / step - 1e-9))
    if per_snap * snaps > MAX_STEPS:
        raise ValueError(
            f"{fn}: the run needs {per_snap * snaps:.3g} time steps (dt = {step:.3g} for "
            f"t_final = {t_end}), more than {MAX_STEPS:.0e}; shorten t_final, lower the "
            "amplitude of the initial state, or pass a larger dt."
        )
    check_memory(
        math.prod((w.shape[0], snaps, n, n)), torch.float64, w.device, fn, "the snapshots",
        hint="use fewer n_snapshots or a smaller batch",
    )  # fmt: skip
    h = interval / per_snap
    implicit = 1.0 / (1.0 - 0.5 * h * nu * grid.lap)
    explicit = 1.0 + 0.5 * h * nu * grid.lap
    out = torch.empty((w.shape[0], snaps, n, n), dtype=torch.float64, device=dev)
    previous: torch.Tensor | None = None
    t = 0.0
    for s in range(snaps):
        for i in range(per_snap):
            rhs = grid.advection(w_hat)
            if force is not None:
                rhs = rhs + force(t)
            extrap = rhs if previous is None else 1.5 * rhs - 0.5 * previous
            w_hat = (explicit * w_hat + h * extrap) * implicit
            previous = rhs
            t = (s * per_snap + i + 1) * h
        out[:, s] = torch.fft.irfft2(w_hat, s=(n, n))
        cfl = h * n * grid.max_speed(w_hat)
        if not (bool(torch.isfinite(out[:, s]).all()) and cfl <= _CFL_LIMIT):
            raise ValueError(
                f"{fn}: by t = {t:g} the flow is too fast for the time step {h:g} (CFL number "
                f"{cfl:.2g} > {_CFL_LIMIT}); pass a smaller dt."
            )
    out = out.to(w.dtype)
    return out[0] if single else out


def navier_stokes(
    n_samples: int,
    *,
    resolution: int = 64,
    solve_resolution: int | None = None,
    viscosity: float = 1e-3,
    t_final: float = 10.0,
    n_snapshots: int = 1,
    dt: float | None = None,
    alpha: float = 2.5,
    tau: float = 7.0,
    sigma: float | None = None,
    max_modes: int = 32,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    cache_dir: str | None = None,
) -> PDEData:
    r"""Navier--Stokes pairs ``omega(0) -> omega(t)`` on the torus as in the FNO paper, generated.

    Initial vorticity: a periodic Gaussian random field (:func:`~factorch.datasets.pde.periodic_grf`
    with ``alpha = 2.5``, ``tau = 7``, ``sigma = tau^((2 alpha - 2) / 2)``: the FNO scripts'
    ``GaussianRF(2, s, alpha=2.5, tau=7)``), the FNO forcing, viscosity ``1e-3``, ``1e-4`` or
    ``1e-5`` in the paper (any positive value here); solved by :func:`solve_navier_stokes`.

    Args:
        n_samples: number of trajectories.
        resolution: grid points per side of the returned data (``>= 8``).
        solve_resolution: solve on this finer grid (a multiple of ``resolution``) and subsample.
        viscosity, t_final, n_snapshots, dt: as in :func:`solve_navier_stokes`.
        alpha, tau, sigma, max_modes: the initial field (see :func:`periodic_grf`).
        dtype: real floating dtype of the returned data (the solve runs in float64).
        device: where the solve runs and the data lives (random numbers are drawn on the CPU).
        generator: CPU generator the initial fields are drawn from.
        cache_dir: a directory to cache the data in; ``None`` caches nothing.

    Returns:
        :class:`PDEData`: ``x = omega(0)``, ``(n_samples, 1, r, r)``; ``y`` the ``n_snapshots``
        later vorticities, ``(n_samples, n_snapshots, r, r)``; ``periodic=True``.

    Raises:
        TypeError: an argument of the wrong type (a non-int size, a non-float dtype, a bad device
            or generator; the message names it).
        ValueError: a size, resolution or physical parameter out of range (the message names
            it), or a generator not on the CPU.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> data = navier_stokes(2, resolution=16, t_final=0.5, generator=gen)
        >>> data.y.shape
        torch.Size([2, 1, 16, 16])
    """
    fn = "navier_stokes"
    n = check_positive_int(n_samples, fn, "n_samples")
    res = check_resolution(resolution, fn, "resolution", 8)
    fine, step = solve_grid(res, solve_resolution, fn, periodic=True, minimum=8)
    nu = check_positive_float(viscosity, fn, "viscosity")
    t_end = check_positive_float(t_final, fn, "t_final")
    snaps = check_positive_int(n_snapshots, fn, "n_snapshots")
    dt_ = None if dt is None else check_positive_float(dt, fn, "dt")
    alpha_ = check_positive_float(alpha, fn, "alpha")
    tau_ = check_positive_float(tau, fn, "tau")
    sigma_ = (
        tau_ ** ((2 * alpha_ - 2) / 2)
        if sigma is None
        else check_positive_float(sigma, fn, "sigma")
    )
    modes = check_positive_int(max_modes, fn, "max_modes")
    out_dtype = check_dtype(dtype, fn)
    dev = check_device(device, fn)
    params = {
        "n_samples": n,
        "resolution": res,
        "solve_resolution": fine,
        "viscosity": nu,
        "t_final": t_end,
        "n_snapshots": snaps,
        "dt": dt_,
        "alpha": alpha_,
        "tau": tau_,
        "sigma": sigma_,
        "max_modes": modes,
        "forcing": "fno",
    }

    def compute(gen: torch.Generator) -> PDEData:
        w0 = periodic_grf(
            n,
            fine,
            dims=2,
            alpha=alpha_,
            tau=tau_,
            sigma=sigma_,
            max_modes=modes,
            generator=gen,
            device=dev,
        )
        traj = solve_navier_stokes(w0, viscosity=nu, t_final=t_end, n_snapshots=snaps, dt=dt_)
        x, y = w0[:, None, ::step, ::step], traj[..., ::step, ::step]
        return PDEData(x.to(out_dtype), y.to(out_dtype), "navier_stokes", True, params)

    data = cached("navier_stokes", params, generator, cache_dir, compute, fn)
    return PDEData(data.x.to(dev), data.y.to(dev), data.problem, data.periodic, params)
