r"""2-D Darcy flow: :math:`-\nabla\cdot(a\nabla u) = f` on the unit square, :math:`u = 0` on its
boundary, solved by five-point finite differences and batched preconditioned conjugate gradients.

The grid has ``n x n`` nodes ``x_j = j h``, ``h = 1 / (n - 1)``, boundary included (``u = 0``
there). At an interior node

.. math::
    \frac{1}{h^2}\Big[a_{i+\frac12,j}(u_{ij} - u_{i+1,j}) + a_{i-\frac12,j}(u_{ij} - u_{i-1,j})
    + a_{i,j+\frac12}(u_{ij} - u_{i,j+1}) + a_{i,j-\frac12}(u_{ij} - u_{i,j-1})\Big] = f_{ij},

with face coefficients the arithmetic means of the two nodes (the FNO data script
``solve_gwf.m``). The matrix is symmetric positive definite; it is applied matrix-free and
solved by conjugate gradients with the Jacobi (diagonal) preconditioner for a whole batch at
once, each sample with its own step sizes, until every residual is below ``tol`` times its
right-hand side. Second order in ``h`` for smooth ``a`` (checked against a manufactured solution
in the tests).

Reference: Li et al., "Fourier neural operator for parametric partial differential equations"
(ICLR 2021), section 5.2: coefficients ``a = psi(N(0, (-Delta + 9 I)^-2))`` with ``psi`` 12 on
the positive and 3 on the negative reals, ``f = 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..._checks import as_tensor, check_positive_int, check_tensor
from ._data import (
    PDEData,
    cached,
    check_device,
    check_dtype,
    check_positive_float,
    check_resolution,
    solve_grid,
)
from ._grf import neumann_grf

__all__ = ["darcy_flow", "solve_darcy"]

_CHUNK = 1 << 21  # grid points per batch chunk of the CG solve


def _faces(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Face coefficients: ``(B, n - 1, n)`` between rows and ``(B, n, n - 1)`` between columns."""
    return 0.5 * (a[:, 1:, :] + a[:, :-1, :]), 0.5 * (a[:, :, 1:] + a[:, :, :-1])


def _apply(u: torch.Tensor, ay: torch.Tensor, ax: torch.Tensor) -> torch.Tensor:
    """``h^2 (A u)`` on the interior ``(B, n - 2, n - 2)`` (zero boundary values)."""
    full = F.pad(u, (1, 1, 1, 1))
    flux_y = ay * (full[:, 1:, :] - full[:, :-1, :])  # (B, n - 1, n)
    flux_x = ax * (full[:, :, 1:] - full[:, :, :-1])  # (B, n, n - 1)
    div = (flux_y[:, 1:, 1:-1] - flux_y[:, :-1, 1:-1]) + (
        flux_x[:, 1:-1, 1:] - flux_x[:, 1:-1, :-1]
    )
    return -div


def _pcg(a: torch.Tensor, rhs: torch.Tensor, tol: float, max_iter: int) -> tuple[torch.Tensor, int]:
    """Jacobi-preconditioned CG on one chunk; returns the interior solution and the iterations."""
    ay, ax = _faces(a)
    diag = ay[:, 1:, 1:-1] + ay[:, :-1, 1:-1] + ax[:, 1:-1, 1:] + ax[:, 1:-1, :-1]
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    z = r / diag
    p = z.clone()
    rz = (r * z).sum((1, 2))
    target = tol * torch.linalg.vector_norm(rhs, dim=(1, 2))
    active = torch.linalg.vector_norm(r, dim=(1, 2)) > target
    it = 0
    while bool(active.any()):
        if it == max_iter:
            worst = float((torch.linalg.vector_norm(r, dim=(1, 2)) / target * tol).max())
            raise ValueError(
                f"solve_darcy: conjugate gradients did not reach tol={tol:g} in {max_iter} "
                f"iterations (relative residual {worst:.2e}); pass a larger max_iter or a looser "
                "tol."
            )
        it += 1
        ap = _apply(p, ay, ax)
        pap = (p * ap).sum((1, 2))
        alpha = torch.where(active & (pap > 0), rz / torch.where(pap > 0, pap, 1.0), 0.0)
        x = x + alpha[:, None, None] * p
        r = r - alpha[:, None, None] * ap
        active = active & (torch.linalg.vector_norm(r, dim=(1, 2)) > target)
        z = r / diag
        rz_new = (r * z).sum((1, 2))
        beta = torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta[:, None, None] * p
        rz = rz_new
    return x, it


def solve_darcy(
    coefficient: torch.Tensor,
    *,
    forcing: float | torch.Tensor = 1.0,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> torch.Tensor:
    r"""Solve :math:`-\nabla\cdot(a\nabla u) = f` on the unit square with ``u = 0`` on the boundary.

    Args:
        coefficient: ``a`` at the grid nodes, ``(n, n)`` or ``(batch, n, n)``, boundary included
            (``h = 1 / (n - 1)``), finite and positive; ``n >= 3``.
        forcing: ``f``: a number, or node values of the coefficient's shape (boundary values are
            ignored).
        tol: relative residual ``||b - A u|| <= tol ||b||`` every sample must reach.
        max_iter: conjugate-gradient iterations allowed (default ``50 n + 500``).

    Returns:
        ``u`` at the nodes (boundary zeros included), the coefficient's shape, dtype and device.
        The solve runs in float64 (float32 and half inputs are upcast for it).

    Raises:
        TypeError: a non-tensor, non-floating coefficient or forcing.
        ValueError: wrong shapes, a non-positive or non-finite coefficient, bad ``tol`` /
            ``max_iter``, or no convergence within ``max_iter`` (the message says how far it got).

    Not differentiable (the solve is iterative and detached).

    Example:
        >>> u = solve_darcy(torch.ones(33, 33, dtype=torch.float64))
        >>> # the torsion function's maximum is 0.07367; second order: 33**2 points are 6e-5 off
        >>> abs(float(u.max()) - 0.07367) < 1e-4
        True
    """
    fn = "solve_darcy"
    a = check_tensor(as_tensor(coefficient, fn, "coefficient"), fn, "coefficient")
    if a.is_complex():
        raise TypeError(f"{fn}: coefficient must be real; got {a.dtype}.")
    given = tuple(a.shape)
    single = a.ndim == 2
    if single:
        a = a.unsqueeze(0)
    if a.ndim != 3 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 3:
        raise ValueError(
            f"{fn}: coefficient must have shape (n, n) or (batch, n, n) with n >= 3; got {given}."
        )
    if not bool((a > 0).all()):
        raise ValueError(
            f"{fn}: coefficient must be positive everywhere; got min {float(a.min())}."
        )
    tol = check_positive_float(tol, fn, "tol")
    n = a.shape[-1]
    iters = 50 * n + 500 if max_iter is None else check_positive_int(max_iter, fn, "max_iter")
    a64 = a.detach().to(torch.float64)
    h = 1.0 / (n - 1)
    if isinstance(forcing, torch.Tensor):
        f = check_tensor(forcing, fn, "forcing").detach().to(torch.float64)
        if f.is_complex() or f.shape[-2:] != a.shape[-2:]:
            raise ValueError(
                f"{fn}: forcing must be real with the coefficient's grid {tuple(a.shape[-2:])}; "
                f"got {tuple(f.shape)}, {f.dtype}."
            )
        f = f.expand_as(a64)
        rhs = h * h * f[:, 1:-1, 1:-1]
    elif isinstance(forcing, (int, float)) and not isinstance(forcing, bool):
        rhs = torch.full_like(a64[:, 1:-1, 1:-1], h * h * float(forcing))
    else:
        raise TypeError(
            f"{fn}: forcing must be a number or a tensor; got {type(forcing).__name__}."
        )
    out = torch.zeros_like(a64)
    step = max(1, _CHUNK // (n * n))
    for start in range(0, a64.shape[0], step):
        sl = slice(start, start + step)
        u, _ = _pcg(a64[sl], rhs[sl].contiguous(), tol, iters)
        out[sl, 1:-1, 1:-1] = u
    out = out.to(a.dtype)
    return out[0] if single else out


def darcy_flow(
    n_samples: int,
    *,
    resolution: int = 32,
    solve_resolution: int | None = None,
    contrast: tuple[float, float] = (12.0, 3.0),
    alpha: float = 2.0,
    tau: float = 3.0,
    max_modes: int = 32,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    cache_dir: str | None = None,
) -> PDEData:
    r"""Darcy-flow pairs ``a -> u`` as in the FNO paper, generated (never downloaded).

    ``a = psi(g)`` with ``g`` a Neumann Gaussian random field
    (:func:`~factorch.datasets.pde.neumann_grf`: covariance ``(-Delta + tau^2)^(-alpha)``) and
    ``psi`` the value ``contrast[0]`` where ``g >= 0`` and ``contrast[1]`` elsewhere; ``u`` solves
    :func:`solve_darcy` with ``f = 1``. The field has ``max_modes`` cosine modes per dimension
    whatever the grid, so one generator state gives the same coefficient at every resolution.

    Args:
        n_samples: number of pairs.
        resolution: nodes per side of the returned grid (boundary included), ``>= 4``.
        solve_resolution: solve on this finer node grid and subsample (``solve_resolution - 1``
            must be a multiple of ``resolution - 1``), for targets more accurate than the
            output grid's own solve.
        contrast: ``(a where g >= 0, a where g < 0)``, both positive.
        alpha, tau: smoothness and length scale of the field.
        max_modes: cosine modes per dimension of the field.
        dtype: real floating dtype of the returned data (the solve runs in float64).
        device: where the solve runs and the data lives (random numbers are drawn on the CPU).
        generator: CPU generator the random fields are drawn from (``None``: fresh entropy).
        cache_dir: a directory to cache the data in (see
            :func:`~factorch.datasets.pde.default_cache_dir`); ``None`` (default) caches nothing.

    Returns:
        :class:`PDEData` with ``x = a`` and ``y = u`` of shape ``(n_samples, 1, resolution,
        resolution)``, ``periodic=False``.

    Raises:
        TypeError: an argument of the wrong type (the message names it).
        ValueError: an argument with a bad value (the message names it).

    Example:
        >>> data = darcy_flow(8, resolution=16, generator=torch.Generator().manual_seed(0))
        >>> sorted(set(data.x.unique().tolist()))
        [3.0, 12.0]
    """
    fn = "darcy_flow"
    n = check_positive_int(n_samples, fn, "n_samples")
    res = check_resolution(resolution, fn, "resolution", 4)
    fine, step = solve_grid(res, solve_resolution, fn, periodic=False, minimum=4)
    if not (isinstance(contrast, (tuple, list)) and len(contrast) == 2):
        raise TypeError(f"{fn}: contrast must be a pair of positive numbers; got {contrast!r}.")
    hi, lo = (check_positive_float(c, fn, "contrast") for c in contrast)
    alpha_ = check_positive_float(alpha, fn, "alpha")
    tau_ = check_positive_float(tau, fn, "tau")
    modes = check_positive_int(max_modes, fn, "max_modes")
    out_dtype = check_dtype(dtype, fn)
    dev = check_device(device, fn)
    params = {
        "n_samples": n,
        "resolution": res,
        "solve_resolution": fine,
        "contrast": [hi, lo],
        "alpha": alpha_,
        "tau": tau_,
        "max_modes": modes,
    }

    def compute(gen: torch.Generator) -> PDEData:
        g = neumann_grf(n, fine, alpha=alpha_, tau=tau_, max_modes=modes, generator=gen, device=dev)
        a = torch.where(g >= 0, hi, lo)
        u = solve_darcy(a)
        sub = (slice(None), slice(None, None, step), slice(None, None, step))
        x, y = a[sub].unsqueeze(1), u[sub].unsqueeze(1)
        return PDEData(x.to(out_dtype), y.to(out_dtype), "darcy", False, params)

    data = cached("darcy", params, generator, cache_dir, compute, fn)
    return PDEData(data.x.to(dev), data.y.to(dev), data.problem, data.periodic, params)
