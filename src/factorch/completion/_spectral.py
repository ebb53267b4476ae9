"""Spectral starting points: leading left singular subspaces of a sparse tensor's unfoldings.

For completion, the zero-filled observed tensor rescaled by ``1 / density`` has the expectation
of the full tensor, so the leading left singular vectors of its mode-``n`` unfolding estimate the
column space of the ``n``-th factor (the spectral initialisation of Jain and Oh, "Provable tensor
factorization with missing data", NeurIPS 2014). The subspace is computed by a randomized range
finder with power iterations (Halko, Martinsson and Tropp, SIAM Review 53(2), 2011) that only
touches the observed entries: with ``f(p)`` the mode-``n`` fibre of entry ``p`` (its other
coordinates), ``X_(n) Z`` and ``X_(n)^T Q`` are segment sums over entries,

    (X_(n) Z)[i] = sum_{p: i_n(p) = i} x_p Z[f(p)],   (X_(n)^T Q)[f] = sum_{p in f} x_p Q[i_n(p)],

so nothing of the size of the dense unfolding (``I_n x prod_{m != n} I_m``) is formed. Cost:
``O(nnz (k + oversample) (2 n_iter + 2))`` per mode. Not differentiable.
"""

from __future__ import annotations

import math

import torch

from ..tensors import SparseTensor
from ..tensors.internal import KEY_LIMIT as _KEY_LIMIT

__all__ = ["leading_subspace", "spectral_factors"]


def _fibres(sp: SparseTensor, mode: int) -> tuple[torch.Tensor, int]:
    """Fibre id of each entry (canonical order) along ``mode`` and the number of fibres."""
    others = [m for m in range(sp.ndim) if m != mode]
    sizes = [sp.shape[m] for m in others]
    if math.prod(sizes) < _KEY_LIMIT:
        key = sp.indices[others[0]].long()
        for m in others[1:]:
            key = key * sp.shape[m] + sp.indices[m].long()
        _, inverse = torch.unique(key, return_inverse=True)
    else:
        _, inverse = torch.unique(sp.indices[others].long(), dim=1, return_inverse=True)
    return inverse, int(inverse.max()) + 1


def leading_subspace(
    sp: SparseTensor,
    mode: int,
    k: int,
    *,
    n_iter: int = 2,
    oversample: int = 10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(I_mode, min(k, I_mode))`` orthonormal basis of the leading left singular subspace of
    the mode-``mode`` unfolding of ``sp`` (unlisted entries zero)."""
    size = sp.shape[mode]
    kk = min(size, k + oversample)
    fib, n_fib = _fibres(sp, mode)
    rows = sp.indices[mode].long()
    vals = sp.values
    dtype, device = vals.dtype, vals.device
    kk = min(kk, n_fib) if n_fib > 0 else kk

    def times_z(z: torch.Tensor) -> torch.Tensor:  # X_(n) Z
        out = torch.zeros(size, z.shape[1], dtype=dtype, device=device)
        return out.index_add_(0, rows, z[fib] * vals[:, None])

    def times_q(q: torch.Tensor) -> torch.Tensor:  # X_(n)^T Q on the fibres
        out = torch.zeros(n_fib, q.shape[1], dtype=dtype, device=device)
        return out.index_add_(0, fib, q[rows] * vals[:, None])

    omega = torch.randn(n_fib, kk, generator=generator, dtype=torch.float64).to(device, dtype)
    q = torch.linalg.qr(times_z(omega)).Q
    for _ in range(n_iter):
        q = torch.linalg.qr(times_z(times_q(q))).Q
    z = times_q(q)  # B^T = X^T Q, B B^T = Z^T Z
    evals, evecs = torch.linalg.eigh(z.mT @ z)
    order = torch.argsort(evals, descending=True)[: min(k, q.shape[1])]
    return q @ evecs[:, order]


def spectral_factors(
    sp: SparseTensor, ranks: list[int], generator: torch.Generator | None
) -> list[torch.Tensor]:
    """One ``(I_n, R_n)`` factor per mode: the leading subspace, completed by Gaussian columns
    when ``R_n`` exceeds what the data give (``R_n > I_n`` or few fibres)."""
    out = []
    for n, r in enumerate(ranks):
        u = leading_subspace(sp, n, r, generator=generator)
        if u.shape[1] < r:
            shape = (sp.shape[n], r - u.shape[1])
            extra = torch.randn(shape, generator=generator, dtype=torch.float64)
            extra = extra.to(u) / math.sqrt(sp.shape[n])
            u = torch.cat([u, extra], 1)
        out.append(u)
    return out
