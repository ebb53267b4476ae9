"""Batched decompositions: many same-shaped small tensors decomposed in one vectorised call.

``cp_batch`` runs CP-ALS on a stack ``(B, I_0, ..., I_{N-1})``: MTTKRPs as batched ``einsum``
contractions, normal equations by batched Cholesky (pseudo-inverse fallback per failing member),
and per-member stopping (a member that met ``tol`` keeps its factors while the others go on).
``hosvd_batch`` computes a truncated HOSVD of every member with batched ``eigh`` of the mode Gram
matrices. Both give the same factors as a Python loop over the batch (up to ALS round-off and
eigenvector signs) at a fraction of the launch overhead: what TensorLy users ask for in
tensorly#199.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._checks import check_positive_int, check_tensor
from ..tensors import CPTensor, TuckerTensor
from ._result import Stopwatch

__all__ = ["BatchCPResult", "BatchTuckerResult", "cp_batch", "hosvd_batch"]

_L = "abcdefghijklmnopqstuvwxyz"


@dataclass(frozen=True)
class BatchCPResult:
    """Result of :func:`cp_batch`.

    Attributes:
        weights: ``(B, R)`` component weights.
        factors: per mode, ``(B, I_n, R)`` unit-norm factor columns.
        errors: ``(iterations, B)`` relative error of each member after each sweep.
        converged: ``(B,)`` bool, True where the member met ``tol``.
        iterations: sweeps run (the slowest member's count).
        time_s: wall-clock seconds.
    """

    weights: torch.Tensor
    factors: tuple[torch.Tensor, ...]
    errors: torch.Tensor
    converged: torch.Tensor
    iterations: int
    time_s: float

    @property
    def tensors(self) -> list[CPTensor]:
        """One :class:`CPTensor` per batch member."""
        return [
            CPTensor(self.weights[b], tuple(f[b] for f in self.factors))
            for b in range(self.weights.shape[0])
        ]

    @property
    def error(self) -> torch.Tensor:
        """``(B,)`` final relative errors."""
        return self.errors[-1]


def _batch_mttkrp(x: torch.Tensor, factors: Sequence[torch.Tensor], mode: int) -> torch.Tensor:
    n = x.ndim - 1
    idx = _L[:n]
    subs = ["Z" + idx] + [f"Z{idx[m]}r" for m in range(n) if m != mode]
    ops = [x] + [factors[m] for m in range(n) if m != mode]
    return torch.einsum(",".join(subs) + f"->Z{idx[mode]}r", *ops)


def _batch_solve(m: torch.Tensor, v: torch.Tensor, l2: float) -> torch.Tensor:
    if l2:
        v = v + l2 * torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
    chol, info = torch.linalg.cholesky_ex(v)
    out = torch.cholesky_solve(m.mT, chol).mT
    bad = info != 0
    if bool(bad.any()):
        out[bad] = m[bad] @ torch.linalg.pinv(v[bad], hermitian=True)
    return out


def cp_batch(
    tensors: torch.Tensor,
    rank: int,
    *,
    max_iter: int = 100,
    tol: float = 1e-8,
    l2: float = 0.0,
    generator: torch.Generator | None = None,
) -> BatchCPResult:
    """CP-ALS on every member of a stack ``tensors`` of shape ``(B, I_0, ..., I_{N-1})``.

    Random uniform initialisation from ``generator`` (drawn on the CPU, so results do not depend
    on the device). Stops each member when its relative error changes by less than ``tol``.
    Not differentiable; device and dtype follow the input.
    """
    fn = "cp_batch"
    check_tensor(tensors, fn, "tensors", min_ndim=3)
    if tensors.is_complex():
        raise TypeError(f"{fn}: complex tensors are not supported; got {tensors.dtype}.")
    check_positive_int(rank, fn, "rank")
    check_positive_int(max_iter, fn, "max_iter")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"{fn}: tol must be a non-negative number; got {tol!r}.")
    clock = Stopwatch()
    x = tensors
    batch, shape = x.shape[0], x.shape[1:]
    n = len(shape)
    with torch.no_grad():
        factors = [
            torch.rand(batch, s, rank, generator=generator, dtype=x.dtype).to(x.device)
            for s in shape
        ]
        weights = torch.ones(batch, rank, dtype=x.dtype, device=x.device)
        grams = [f.mT @ f for f in factors]
        norm_x = torch.linalg.vector_norm(x.reshape(batch, -1), dim=1)
        norm_x = norm_x.clamp_min(torch.finfo(x.dtype).tiny)
        idx = _L[:n]
        subs = ",".join(f"Z{i}r" for i in idx)
        active = torch.ones(batch, dtype=torch.bool, device=x.device)
        errors: list[torch.Tensor] = []
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007 (used after the loop)
            for mode in range(n):
                m = _batch_mttkrp(x, factors, mode)
                v = torch.ones_like(grams[0])
                for k in range(n):
                    if k != mode:
                        v = v * grams[k]
                new = _batch_solve(m, v, l2)
                norms = torch.linalg.vector_norm(new, dim=1)
                norms = torch.where(norms > 0, norms, torch.ones_like(norms))
                new = new / norms[:, None, :]
                keep = active[:, None, None]
                factors[mode] = torch.where(keep, new, factors[mode])
                weights = torch.where(active[:, None], norms, weights)
                grams[mode] = factors[mode].mT @ factors[mode]
            # Small members: the exact residual costs about one MTTKRP and, unlike the Gram
            # formula, stays accurate below sqrt(eps).
            recon = torch.einsum(f"Zr,{subs}->Z{idx}", weights, *factors)
            resid = (x - recon).reshape(batch, -1)
            err = torch.linalg.vector_norm(resid, dim=1) / norm_x
            if errors:
                err = torch.where(active, err, errors[-1])
                active = active & ((errors[-1] - err).abs() >= tol)
            errors.append(err)
            if not bool(active.any()):
                break
    return BatchCPResult(
        weights=weights,
        factors=tuple(factors),
        errors=torch.stack(errors),
        converged=~active,
        iterations=it,
        time_s=clock.elapsed,
    )


@dataclass(frozen=True)
class BatchTuckerResult:
    """Result of :func:`hosvd_batch`: ``core`` ``(B, R_0, ...)``, ``factors`` ``(B, I_n, R_n)``
    with orthonormal columns, ``errors`` ``(B,)`` relative errors, ``time_s``."""

    core: torch.Tensor
    factors: tuple[torch.Tensor, ...]
    errors: torch.Tensor
    time_s: float

    @property
    def tensors(self) -> list[TuckerTensor]:
        """One :class:`TuckerTensor` per batch member."""
        return [
            TuckerTensor(self.core[b], tuple(f[b] for f in self.factors))
            for b in range(self.core.shape[0])
        ]


def hosvd_batch(tensors: torch.Tensor, rank: int | Sequence[int]) -> BatchTuckerResult:
    """Truncated HOSVD of every member of ``tensors`` ``(B, I_0, ..., I_{N-1})``.

    ``rank`` is an int (same for all modes, capped at nothing: it must not exceed any mode size)
    or one int per mode. Factors are the leading eigenvectors of each member's mode Gram matrix
    (batched ``eigh``); the core is ``X x_n U_n^H``. Differentiable (through ``eigh``). Real and
    complex dtypes.
    """
    fn = "hosvd_batch"
    check_tensor(tensors, fn, "tensors", min_ndim=3)
    shape = tuple(tensors.shape[1:])
    n = len(shape)
    ranks = (rank,) * n if isinstance(rank, int) and not isinstance(rank, bool) else tuple(rank)
    if len(ranks) != n:
        raise ValueError(f"{fn}: rank needs {n} entries (one per mode); got {len(ranks)}.")
    for m, (r, s) in enumerate(zip(ranks, shape)):
        check_positive_int(r, fn, f"rank[{m}]")
        if r > s:
            raise ValueError(f"{fn}: rank[{m}] = {r} exceeds the mode size {s}; use at most {s}.")
    clock = Stopwatch()
    x = tensors
    idx = _L[:n]
    factors = []
    for m in range(n):
        other = idx[:m] + "Y" + idx[m + 1 :]
        gram = torch.einsum(f"Z{idx},Z{other}->Z{idx[m]}Y", x, x.conj())
        _, vecs = torch.linalg.eigh(gram)
        factors.append(vecs.flip(-1)[..., : ranks[m]])
    core = x
    for m in range(n):
        sub_in = idx[:m] + idx[m] + idx[m + 1 :]
        sub_out = idx[:m] + "Y" + idx[m + 1 :]
        core = torch.einsum(f"Z{sub_in},Z{idx[m]}Y->Z{sub_out}", core, factors[m].conj())
    recon = core
    for m in range(n):
        sub_in = idx[:m] + "Y" + idx[m + 1 :]
        sub_out = idx[:m] + idx[m] + idx[m + 1 :]
        recon = torch.einsum(f"Z{sub_in},Z{idx[m]}Y->Z{sub_out}", recon, factors[m])
    flat = (x - recon).reshape(x.shape[0], -1)
    errors = torch.linalg.vector_norm(flat, dim=1) / torch.linalg.vector_norm(
        x.reshape(x.shape[0], -1), dim=1
    )
    return BatchTuckerResult(core=core, factors=tuple(factors), errors=errors, time_s=clock.elapsed)
