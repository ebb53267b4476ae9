r"""1-D viscous Burgers on the unit circle: :math:`u_t + (u^2/2)_x = \nu u_{xx}`, periodic.

Pseudo-spectral in space (real FFT, products formed on the grid, the 2/3 rule against aliasing)
and fourth-order exponential time differencing in time (ETDRK4, Cox and Matthews 2002): the
diffusion :math:`L = -\nu (2\pi k)^2` is integrated exactly, the nonlinear term
:math:`N(\hat u) = -i\pi k\,\widehat{u^2}` by a fourth-order Runge--Kutta-like scheme whose
coefficients :math:`\varphi`-functions are evaluated by the contour integrals of Kassam and
Trefethen (SIAM J. Sci. Comput. 26(4), 2005), stable for every mode however stiff. Everything
(wavenumbers included) is built in float64: float32 wavenumbers cap the accuracy near 1e-4.

Checked in the tests against the Cole--Hopf solution
:math:`u = -2\nu\,\varphi_x/\varphi` with :math:`\varphi = 2 + e^{-4\pi^2\nu t}\cos 2\pi x`
(fourth-order convergence in ``dt``).
"""

from __future__ import annotations

import math

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

__all__ = ["burgers", "solve_burgers"]

_CONTOUR_POINTS = 32
_CFL = 0.5
_DT_MAX = 1e-2


def _etdrk4_coefficients(
    lin: torch.Tensor, dt: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``E, E2, Q, f1, f2, f3`` of ETDRK4 for the diagonal operator ``lin`` (Kassam--Trefethen)."""
    hl = dt * lin
    j = torch.arange(1, _CONTOUR_POINTS + 1, dtype=torch.float64, device=lin.device)
    roots = torch.exp(1j * math.pi * (j - 0.5) / _CONTOUR_POINTS)  # upper half circle
    lr = hl[:, None].to(torch.complex128) + roots[None, :]
    e = torch.exp(lr)

    def mean(z: torch.Tensor) -> torch.Tensor:
        return dt * z.mean(dim=1).real

    q = mean((torch.exp(lr / 2) - 1) / lr)
    f1 = mean((-4 - lr + e * (4 - 3 * lr + lr**2)) / lr**3)
    f2 = mean((2 + lr + e * (-2 + lr)) / lr**3)
    f3 = mean((-4 - 3 * lr - lr**2 + e * (4 - lr)) / lr**3)
    return torch.exp(hl), torch.exp(hl / 2), q, f1, f2, f3


def solve_burgers(
    u0: torch.Tensor,
    *,
    viscosity: float,
    t_final: float = 1.0,
    n_snapshots: int = 1,
    dt: float | None = None,
) -> torch.Tensor:
    r"""Solve viscous Burgers from ``u0`` on the periodic unit interval.

    Args:
        u0: initial values on the grid ``x_j = j / n``, ``(n,)`` or ``(batch, n)``, ``n >= 8``.
        viscosity: :math:`\nu > 0`.
        t_final: final time.
        n_snapshots: number of equally spaced output times ``t_final * j / n_snapshots``.
        dt: time step (rounded down so each snapshot interval is a whole number of steps);
            default: ``0.5 dx / max|u0|`` (Burgers obeys a maximum principle, so this advective
            CFL number holds throughout), at most ``1e-2``.

    Returns:
        ``(batch, n_snapshots, n)`` (``(n_snapshots, n)`` for 1-D ``u0``) in ``u0``'s dtype and
        device; the computation runs in float64.

    Raises:
        TypeError: an argument of the wrong type (named in the message).
        ValueError: an argument with a bad value (named in the message).

    Not differentiable (detached).

    Example:
        >>> x = torch.arange(64, dtype=torch.float64) / 64
        >>> u = solve_burgers(torch.sin(2 * torch.pi * x), viscosity=0.05, t_final=0.1)
        >>> u.shape
        torch.Size([1, 64])
    """
    fn = "solve_burgers"
    u = check_tensor(as_tensor(u0, fn, "u0"), fn, "u0")
    if u.is_complex():
        raise TypeError(f"{fn}: u0 must be real; got {u.dtype}.")
    given = tuple(u.shape)
    single = u.ndim == 1
    if single:
        u = u.unsqueeze(0)
    if u.ndim != 2 or u.shape[-1] < 8:
        raise ValueError(f"{fn}: u0 must have shape (n,) or (batch, n) with n >= 8; got {given}.")
    nu = check_positive_float(viscosity, fn, "viscosity")
    t_end = check_positive_float(t_final, fn, "t_final")
    snaps = check_positive_int(n_snapshots, fn, "n_snapshots")
    n = u.shape[-1]
    v = u.detach().to(torch.float64)
    interval = t_end / snaps
    if dt is None:
        peak = float(v.abs().max())
        step = min(_DT_MAX, _CFL / (n * peak)) if peak > 0 else _DT_MAX
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
        math.prod((v.shape[0], snaps, n)), torch.float64, u.device, fn, "the snapshots",
        hint="use fewer n_snapshots or a smaller batch",
    )  # fmt: skip
    h = interval / per_snap
    k = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64, device=v.device)  # 0 .. n/2
    lin = -nu * (2 * math.pi * k) ** 2
    e, e2, q, f1, f2, f3 = _etdrk4_coefficients(lin, h)
    dealias = (k <= n / 3).to(torch.float64)
    g = -1j * math.pi * k * dealias  # N(v) = g * fft(u^2): -(u^2/2)_x, 2/3 rule

    def nonlinear(vh: torch.Tensor) -> torch.Tensor:
        return g * torch.fft.rfft(torch.fft.irfft(vh, n=n) ** 2)

    vh = torch.fft.rfft(v)
    out = torch.empty((v.shape[0], snaps, n), dtype=torch.float64, device=v.device)
    for s in range(snaps):
        for _ in range(per_snap):
            nv = nonlinear(vh)
            a = e2 * vh + q * nv
            na = nonlinear(a)
            b = e2 * vh + q * na
            nb = nonlinear(b)
            c = e2 * a + q * (2 * nb - nv)
            nc = nonlinear(c)
            vh = e * vh + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        out[:, s] = torch.fft.irfft(vh, n=n)
    out = out.to(u.dtype)
    return out[0] if single else out


def burgers(
    n_samples: int,
    *,
    resolution: int = 256,
    solve_resolution: int | None = None,
    viscosity: float = 0.01,
    t_final: float = 1.0,
    n_snapshots: int = 1,
    dt: float | None = None,
    alpha: float = 2.5,
    tau: float = 7.0,
    sigma: float | None = None,
    max_modes: int = 64,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    cache_dir: str | None = None,
) -> PDEData:
    r"""Burgers pairs ``u(0) -> u(t)`` on the periodic unit interval, generated (never downloaded).

    Initial values: a periodic Gaussian random field (:func:`~factorch.datasets.pde.periodic_grf`,
    ``alpha``, ``tau`` and ``sigma = tau^((2 alpha - 1) / 2)`` by default: the FNO Burgers data's
    ``N(0, 49^2 (-Delta + 49)^-2.5)`` up to its normalisation); solution by
    :func:`solve_burgers`.

    Args:
        n_samples: number of pairs.
        resolution: grid points of the returned data (``>= 8``).
        solve_resolution: solve on this finer grid (a multiple of ``resolution``) and subsample.
        viscosity, t_final, n_snapshots, dt: as in :func:`solve_burgers`.
        alpha, tau, sigma, max_modes: the initial field (see :func:`periodic_grf`).
        dtype: real floating dtype of the returned data (the solve runs in float64).
        device: where the solve runs and the data lives (random numbers are drawn on the CPU).
        generator: CPU generator the initial fields are drawn from.
        cache_dir: a directory to cache the data in; ``None`` caches nothing.

    Returns:
        :class:`PDEData`: ``x = u(0)`` of shape ``(n_samples, 1, resolution)`` and ``y`` the
        ``n_snapshots`` later states, ``(n_samples, n_snapshots, resolution)``; ``periodic=True``.

    Raises:
        TypeError: an argument of the wrong type (a non-int size, a non-float dtype, a bad device
            or generator; the message names it).
        ValueError: a size, resolution or physical parameter out of range (the message names
            it), or a generator not on the CPU.

    Example:
        >>> data = burgers(4, resolution=64, generator=torch.Generator().manual_seed(0))
        >>> data.x.shape, data.y.shape
        (torch.Size([4, 1, 64]), torch.Size([4, 1, 64]))
    """
    fn = "burgers"
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
        tau_ ** ((2 * alpha_ - 1) / 2)
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
    }

    def compute(gen: torch.Generator) -> PDEData:
        u0 = periodic_grf(
            n,
            fine,
            dims=1,
            alpha=alpha_,
            tau=tau_,
            sigma=sigma_,
            max_modes=modes,
            generator=gen,
            device=dev,
        )
        traj = solve_burgers(u0, viscosity=nu, t_final=t_end, n_snapshots=snaps, dt=dt_)
        x, y = u0[:, None, ::step], traj[..., ::step]
        return PDEData(x.to(out_dtype), y.to(out_dtype), "burgers", True, params)

    data = cached("burgers", params, generator, cache_dir, compute, fn)
    return PDEData(data.x.to(dev), data.y.to(dev), data.problem, data.periodic, params)
