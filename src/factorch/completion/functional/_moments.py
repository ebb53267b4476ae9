"""Moments of the Tucker/CP interaction under a factorised Gaussian posterior.

FunBaT's likelihood of entry ``n`` is ``y_n ~ N(f_n, 1/tau)`` with

.. math::

    f_n = \\operatorname{vec}(\\mathcal W)^\\top \\big(\\mathbf u^1(t_{n1}) \\otimes
    \\cdots \\otimes \\mathbf u^K(t_{nK})\\big) \\quad\\text{(Tucker)}, \\qquad
    f_n = \\sum_r \\prod_k u^k_r(t_{nk}) \\quad\\text{(CP)}.

Under ``q(W) prod_k q(u^k)`` (Gaussians, independent across modes and the core) every quantity
the message updates need is a product of per-mode first and second moments
``mu = E[u]``, ``M = E[u u^T] = S + mu mu^T``:

* the message to ``u^k(t_{nk})`` needs ``E[a_n]`` and ``E[a_n a_n^T]`` where
  ``f_n = a_n^T u^k(t_{nk})``: for Tucker ``a_n = W_(k) z_n`` with ``z_n`` the Kronecker product of
  the other modes' functions, so ``E[a a^T]_{rs} = sum_{pq} E[W_{rp} W_{sq}] prod_{j != k}
  M^j_{p_j q_j}`` (the core's covariance included); for CP the Hadamard products of ``mu`` and
  ``M`` over the other modes;
* the noise and the predictive variance need ``E[f_n]`` and ``E[f_n^2] = <E[w w^T], (x)_k M^k>``;
* the core update needs ``sum_n (x)_k M^k_n`` and ``sum_n y_n (x)_k mu^k_n``.

Tucker contractions cost ``O(N prod_k R_k^2)`` and are evaluated in chunks of entries so that no
intermediate exceeds :data:`CHUNK_ELEMENTS` elements. All internal, float64.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import torch

__all__ = [
    "CHUNK_ELEMENTS",
    "cp_f_moments",
    "cp_mode_moments",
    "tucker_core_stats",
    "tucker_f_moments",
    "tucker_mode_moments",
]

CHUNK_ELEMENTS = 1 << 22

_L = string.ascii_letters


def _chunks(n: int, per_entry: int) -> list[slice]:
    step = max(1, CHUNK_ELEMENTS // max(1, per_entry))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


# --- CP ---------------------------------------------------------------------------------------
def cp_mode_moments(
    means: Sequence[torch.Tensor], seconds: Sequence[torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[a]`` ``(N, R)`` and ``E[a a^T]`` ``(N, R, R)`` for the CP message to mode ``k``
    (Hadamard products of the other modes' entry-wise moments)."""
    others = [j for j in range(len(means)) if j != k]
    ea = torch.ones_like(means[k])
    eaa = torch.ones_like(seconds[k])
    for j in others:
        ea = ea * means[j]
        eaa = eaa * seconds[j]
    return ea, eaa


def cp_f_moments(
    means: Sequence[torch.Tensor], seconds: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[f]`` and ``E[f^2]`` ``(N,)`` of the CP model at the entries."""
    ea, eaa = cp_mode_moments(means, seconds, 0)
    ef = (ea * means[0]).sum(1)
    ef2 = (eaa * seconds[0]).sum((1, 2))
    return ef, ef2


# --- Tucker -----------------------------------------------------------------------------------
def _second_tensor(core_mean: torch.Tensor, core_cov: torch.Tensor) -> torch.Tensor:
    """``E[w w^T]`` reshaped to a ``2K``-way tensor ``(R_1..R_K, R_1..R_K)``."""
    w = core_mean.reshape(-1)
    t = core_cov + torch.outer(w, w)
    return t.reshape(*core_mean.shape, *core_mean.shape)


def tucker_mode_moments(
    core_mean: torch.Tensor,
    core_cov: torch.Tensor,
    means: Sequence[torch.Tensor],
    seconds: Sequence[torch.Tensor],
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[a]`` ``(N, R_k)`` and ``E[a a^T]`` ``(N, R_k, R_k)`` for the Tucker message to mode
    ``k``; the core's covariance enters ``E[a a^T]``."""
    nmodes = core_mean.ndim
    n = means[0].shape[0]
    t = _second_tensor(core_mean, core_cov)
    a = _L[:nmodes]
    b = _L[nmodes : 2 * nmodes]
    others = [j for j in range(nmodes) if j != k]
    mean_expr = a + "," + ",".join("z" + a[j] for j in others) + "->z" + a[k]
    sec_expr = a + b + "," + ",".join("z" + a[j] + b[j] for j in others) + "->z" + a[k] + b[k]
    per_entry = int(t.numel()) // max(1, core_mean.shape[k] ** 2)
    ea = torch.empty(n, core_mean.shape[k], dtype=t.dtype, device=t.device)
    eaa = torch.empty(n, core_mean.shape[k], core_mean.shape[k], dtype=t.dtype, device=t.device)
    for sl in _chunks(n, per_entry):
        ea[sl] = torch.einsum(mean_expr, core_mean, *[means[j][sl] for j in others])
        eaa[sl] = torch.einsum(sec_expr, t, *[seconds[j][sl] for j in others])
    return ea, eaa


def tucker_f_moments(
    core_mean: torch.Tensor,
    core_cov: torch.Tensor,
    means: Sequence[torch.Tensor],
    seconds: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[f]`` and ``E[f^2]`` ``(N,)`` of the Tucker model at the entries."""
    nmodes = core_mean.ndim
    n = means[0].shape[0]
    t = _second_tensor(core_mean, core_cov)
    a = _L[:nmodes]
    b = _L[nmodes : 2 * nmodes]
    mean_expr = a + "," + ",".join("z" + c for c in a) + "->z"
    sec_expr = a + b + "," + ",".join("z" + a[j] + b[j] for j in range(nmodes)) + "->z"
    ef = torch.empty(n, dtype=t.dtype, device=t.device)
    ef2 = torch.empty(n, dtype=t.dtype, device=t.device)
    for sl in _chunks(n, int(t.numel())):
        ef[sl] = torch.einsum(mean_expr, core_mean, *[m[sl] for m in means])
        ef2[sl] = torch.einsum(sec_expr, t, *[s[sl] for s in seconds])
    return ef, ef2


def tucker_core_stats(
    means: Sequence[torch.Tensor], seconds: Sequence[torch.Tensor], y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_n (x)_k M^k_n`` as a ``(P, P)`` matrix and ``sum_n y_n (x)_k mu^k_n`` as ``(P,)``,
    ``P = prod_k R_k`` (row-major vectorisation of the core)."""
    nmodes = len(means)
    ranks = [m.shape[1] for m in means]
    p = 1
    for r in ranks:
        p *= r
    a = _L[:nmodes]
    b = _L[nmodes : 2 * nmodes]
    zz_expr = ",".join("z" + a[j] + b[j] for j in range(nmodes)) + "->" + a + b
    yz_expr = "z," + ",".join("z" + c for c in a) + "->" + a
    n = y.shape[0]
    zz = torch.zeros(*ranks, *ranks, dtype=y.dtype, device=y.device)
    yz = torch.zeros(*ranks, dtype=y.dtype, device=y.device)
    for sl in _chunks(n, p * p):
        zz += torch.einsum(zz_expr, *[s[sl] for s in seconds])
        yz += torch.einsum(yz_expr, y[sl], *[m[sl] for m in means])
    return zz.reshape(p, p), yz.reshape(p)
