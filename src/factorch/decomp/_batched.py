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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import as_tensor, check_generator, check_positive_int, check_tensor
from .._numerics import check_memory, no_autocast, upcast, working_dtype
from ..tensors import CPTensor, TuckerTensor
from ._result import Stopwatch
from ._scale import batch_fit_scale

__all__ = ["BatchCPInit", "BatchCPResult", "BatchTuckerResult", "cp_batch", "hosvd_batch"]

_L = "abcdefghijklmnopqstuvwxyz"

BatchCPInit = Literal["svd", "random"]


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

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> stack = torch.stack([factorch.random.random_cp((4, 5, 6), 2, generator=g).to_dense()
        ...                      for _ in range(3)])
        >>> result = cp_batch(stack, 2, generator=g)
        >>> result.weights.shape, result.errors.shape[1], len(result.tensors)
        (torch.Size([3, 2]), 3, 3)
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


def _batch_solve(m: torch.Tensor, v: torch.Tensor, l2: float) -> torch.Tensor:
    if l2:
        v = v + l2 * torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
    chol, info = torch.linalg.cholesky_ex(v)
    out = torch.cholesky_solve(m.mT, chol).mT
    bad = info != 0
    if bool(bad.any()):
        out[bad] = m[bad] @ torch.linalg.pinv(v[bad], hermitian=True)
    return out


def _check_stack(tensors: object, fn: str) -> torch.Tensor:
    x = as_tensor(tensors, fn, "tensors")
    check_tensor(x, fn, "tensors", min_ndim=3)
    return x


@no_autocast
def cp_batch(
    tensors: torch.Tensor,
    rank: int,
    *,
    init: BatchCPInit = "svd",
    max_iter: int = 100,
    tol: float = 1e-8,
    l2: float = 0.0,
    generator: torch.Generator | None = None,
) -> BatchCPResult:
    """CP-ALS on every member of a stack ``tensors`` of shape ``(B, I_0, ..., I_{N-1})``.

    ``init="svd"`` (the default, as in :func:`~factorch.decomp.cp`) starts every member from the
    leading left singular vectors of its mode-n unfoldings, computed for all members at once by
    one batched symmetric eigensolver per mode (columns beyond the unfolding's rank are drawn from
    ``generator``); ``init="random"`` draws uniform factors from ``generator`` (on the CPU, so
    results do not depend on the device). Each member stops when its relative error (the exact
    residual, cheap for small members) changes by less than ``tol``, or by less than the rounding
    floor of two such errors (about ``1e-6`` in float32) when that is larger; ``tol=0`` runs all
    sweeps.

    numpy arrays are accepted; float16/bfloat16 stacks are fitted in float32 and returned in the
    input dtype (errors are those of the returned, rounded models); each member is scaled by its
    own power of four when its magnitude is far from 1, so tiny and huge members fit as well as
    others. An input that requires grad is detached. Not differentiable; autocast is ignored;
    device and dtype follow the input.

    Args:
        tensors: ``(B, I_0, ..., I_{N-1})`` real stack (at least 3 dimensions), or a numpy array.
        rank: components per member (any integral type).
        init: ``"svd"`` (leading singular vectors of the unfoldings) or ``"random"`` (uniform
            factors).
        max_iter: maximum number of sweeps.
        tol: per-member stopping tolerance on the change in relative error (0: run all sweeps).
        l2: ridge penalty added to each normal-equation solve (of unit-norm factors).
        generator: source of the random initial factors.

    Returns:
        :class:`BatchCPResult`: weights ``(B, R)``, factors ``(B, I_n, R)``, per-sweep errors
        ``(iterations, B)`` in the input dtype, per-member ``converged`` flags.

    Raises:
        TypeError: non-numeric, integer or complex input; a non-integral rank; a ``generator``
            that is not a ``torch.Generator``.
        ValueError: fewer than 3 dimensions, an empty dimension, NaN/Inf, bad option values, or
            a rank whose working set cannot fit in the device's memory.

    Example:
        >>> xs = torch.stack([factorch.random.random_cp((4, 5, 6), 2).to_dense() for _ in "ab"])
        >>> cp_batch(xs, 2, max_iter=500).error.shape
        torch.Size([2])
    """
    fn = "cp_batch"
    x_in = _check_stack(tensors, fn).detach()
    if x_in.is_complex():
        raise TypeError(f"{fn}: complex tensors are not supported; got {x_in.dtype}.")
    rank = check_positive_int(rank, fn, "rank")
    max_iter = check_positive_int(max_iter, fn, "max_iter")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"{fn}: tol must be a non-negative number; got {tol!r}.")
    if isinstance(l2, bool) or not (isinstance(l2, (int, float)) and l2 >= 0):
        raise ValueError(f"{fn}: l2 must be a non-negative number; got {l2!r}.")
    if not isinstance(init, str) or init not in get_args(BatchCPInit):
        raise ValueError(f"{fn}: init must be one of {get_args(BatchCPInit)}; got {init!r}.")
    generator = check_generator(generator, fn)
    batch, shape = x_in.shape[0], tuple(x_in.shape[1:])
    member = math.prod(shape)
    check_memory(
        batch * (sum(shape) * rank + (len(shape) + 2) * rank * rank + 3 * member * rank)
        + batch * (len(shape) + 2) * member,
        working_dtype(x_in.dtype),
        x_in.device,
        fn,
        f"a rank-{rank} CP fit of a {tuple(x_in.shape)} stack",
    )
    clock = Stopwatch()
    with torch.no_grad():
        x = upcast(x_in)
        scales = batch_fit_scale(x)
        if bool((scales != 1).any()):
            x = x / scales.to(x.dtype).reshape(-1, *(1,) * len(shape))
        start = _svd_init(x, rank, generator) if init == "svd" else _random_init(x, rank, generator)
        weights, factors, errors, active = _batch_als(x, start, max_iter, float(tol), float(l2))
        errors[-1] = _member_errors(x, weights, factors)  # the final errors exactly
        weights, factors = _batch_output(weights, factors, scales, x_in.dtype)
        if x_in.dtype != x.dtype:  # errors of the returned (rounded) models
            w = upcast(weights) / scales.to(x.dtype)[:, None]
            errors[-1] = _member_errors(x, w, [upcast(f) for f in factors])
    stacked = torch.stack(errors).to(x_in.dtype)
    return BatchCPResult(
        weights=weights,
        factors=tuple(factors),
        errors=stacked,
        converged=~active & torch.isfinite(stacked[-1]),
        iterations=len(errors),
        time_s=clock.elapsed,
    )


def _random_init(
    x: torch.Tensor, rank: int, generator: torch.Generator | None
) -> list[torch.Tensor]:
    """Uniform ``(B, I_n, R)`` factors drawn on the CPU (device-independent results)."""
    batch = x.shape[0]
    return [
        torch.rand(batch, s, rank, generator=generator, dtype=x.dtype).to(x.device)
        for s in x.shape[1:]
    ]


def _svd_init(x: torch.Tensor, rank: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Per mode, the leading ``R`` left singular vectors of every member's mode-n unfolding, from
    one batched ``eigh`` of the smaller of its two Gram matrices (as cp's SVD start does member
    by member); columns beyond the unfolding's rank are Gaussian from ``generator``."""
    batch = x.shape[0]
    factors = []
    for mode, size in enumerate(x.shape[1:]):
        unfolded = torch.movedim(x, mode + 1, 1).reshape(batch, size, -1)
        if size <= unfolded.shape[2]:  # wide: eigenvectors of the small Gram (as cp does)
            vecs = torch.linalg.eigh(unfolded @ unfolded.mT).eigenvectors
            u = vecs.flip(-1)[..., : min(rank, size)]
        else:  # tall: right vectors from the small Gram, mapped back and normalised
            vecs = torch.linalg.eigh(unfolded.mT @ unfolded).eigenvectors
            u = unfolded @ vecs.flip(-1)[..., : min(rank, unfolded.shape[2])]
            norms = torch.linalg.vector_norm(u, dim=1, keepdim=True)
            u = u / norms.clamp_min(torch.finfo(x.dtype).tiny)
        if u.shape[-1] < rank:
            extra = torch.randn(batch, size, rank - u.shape[-1], generator=generator, dtype=x.dtype)
            u = torch.cat([u, extra.to(x.device)], dim=-1)
        factors.append(u.contiguous())
    return factors


def _batch_als(
    x: torch.Tensor,
    factors: list[torch.Tensor],
    max_iter: int,
    tol: float,
    l2: float,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Batched CP-ALS from ``factors`` (updated in place); returns weights, factors, per-sweep
    errors and the still-active mask.

    The sweeps run on a working set of members: once an eighth of it has stopped, the stopped
    members are dropped from it, so a batch costs about what its members' own sweeps cost rather
    than the slowest member's count times the batch. Members that stopped but are still in the
    working set keep their factors.

    Errors come from the Gram identity ``||X - M||^2 = ||X||^2 - 2 <X, M> + ||M||^2`` (``<X, M>``
    from the last mode's MTTKRP, no reconstruction); members whose error is below
    ``1000 sqrt(eps)``, where that identity loses digits, get the exact residual instead.
    """
    batch = x.shape[0]
    rank = factors[0].shape[-1]
    weights = torch.ones(batch, rank, dtype=x.dtype, device=x.device)
    norm_x = torch.linalg.vector_norm(x.reshape(batch, -1), dim=1)
    tiny, eps = torch.finfo(x.dtype).tiny, torch.finfo(x.dtype).eps
    active = torch.ones(batch, dtype=torch.bool, device=x.device)
    errors: list[torch.Tensor] = []
    members = torch.arange(batch, device=x.device)
    x0 = x.reshape(batch, x.shape[1], -1)
    for _ in range(max_iter):
        live = active[members]
        if int(live.sum()) <= 0.875 * members.numel():
            kept = live.nonzero().squeeze(1)
            members, x0, live = members[kept], x0[kept], live[kept]
        sub, w, inner, gram_prod = _batch_sweep(
            x0, tuple(x.shape[2:]), [f[members] for f in factors], weights[members], live, l2
        )
        for mode, f in enumerate(sub):
            factors[mode][members] = f
        weights[members] = w
        nx = norm_x[members]
        model_sq = torch.einsum("Zr,Zrs,Zs->Z", w, gram_prod, w)
        resid = (nx.square() - 2 * inner + model_sq).clamp_min(0).sqrt()
        exact = live & (resid < 1e3 * math.sqrt(eps) * nx)
        if bool(exact.any()):
            rows = exact.nonzero().squeeze(1)
            recon = (sub[0][rows] * w[rows, None, :]) @ _batch_khatri_rao(
                [f[rows] for f in sub[1:]]
            ).mT
            resid[rows] = torch.linalg.vector_norm(x0[rows] - recon, dim=(1, 2))
        err = errors[-1].clone() if errors else torch.zeros_like(norm_x)
        err[members] = torch.where(nx > 0, resid / nx.clamp_min(tiny), resid)
        floor = 8.0 * eps * (1.0 + weights.abs().sum(1) / norm_x.clamp_min(tiny))
        if errors:
            err = torch.where(active, err, errors[-1])
            if tol > 0:
                active = active & ((errors[-1] - err).abs() > floor.clamp_min(tol))
        errors.append(err)
        if not bool(active.any()):
            break
    return weights, factors, errors, active


def _batch_khatri_rao(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per member, the Khatri--Rao product ``(B, prod I_m, R)`` of ``factors`` (the first
    factor's index varying slowest, as in a row-major unfolding)."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, :, None, :] * f[:, None, :, :]).reshape(out.shape[0], -1, out.shape[-1])
    return out


def _batch_sweep(
    x0: torch.Tensor,
    rest: tuple[int, ...],
    factors: list[torch.Tensor],
    weights: torch.Tensor,
    live: torch.Tensor,
    l2: float,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """One ALS sweep over every mode of the working set (``x0``: mode-0 unfoldings ``(B, I_0,
    prod rest)``); members not ``live`` keep their factors and weights.

    MTTKRPs read the data twice per sweep (a dimension tree of depth one): mode 0 is
    ``X_(0) (A_{N-1} (.) ... (.) A_1)``; then ``P = X_(0)^T A_0`` (with the updated ``A_0``) is
    contracted rank-wise with the small factors for every other mode. Returns the factors, the
    weights, ``<X, M>`` per member and the Hadamard product of the final Gram matrices.
    """
    n = len(factors)
    batch, rank = x0.shape[0], factors[0].shape[-1]
    grams = [f.mT @ f for f in factors]
    idx = _L[1:n]
    m = x0 @ _batch_khatri_rao(factors[1:])
    partial = m  # replaced after the mode-0 update
    for mode in range(n):
        if mode == 1:
            partial = (factors[0].mT @ x0).mT.reshape(batch, *rest, rank)
        if mode >= 1:
            others = [k for k in range(1, n) if k != mode]
            subs = ",".join(["Z" + idx + "r", *(f"Z{idx[k - 1]}r" for k in others)])
            m = torch.einsum(f"{subs}->Z{idx[mode - 1]}r", partial, *(factors[k] for k in others))
        v = torch.ones_like(grams[0])
        for k in range(n):
            if k != mode:
                v = v * grams[k]
        new = _batch_solve(m, v, l2)
        norms = torch.linalg.vector_norm(new, dim=1)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        new = new / norms[:, None, :]
        factors[mode] = torch.where(live[:, None, None], new, factors[mode])
        weights = torch.where(live[:, None], norms, weights)
        grams[mode] = factors[mode].mT @ factors[mode]
    inner = ((m * factors[-1]).sum(1) * weights).sum(1)
    gram_prod = grams[0]
    for g in grams[1:]:
        gram_prod = gram_prod * g
    return factors, weights, inner, gram_prod


def _member_errors(
    x: torch.Tensor, weights: torch.Tensor, factors: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``||X_b - [[w_b; A_b]]|| / ||X_b||`` per member (0 for an all-zero member and model)."""
    n = x.ndim - 1
    idx = _L[:n]
    subs = ",".join(f"Z{i}r" for i in idx)
    recon = torch.einsum(f"Zr,{subs}->Z{idx}", weights, *factors)
    resid = torch.linalg.vector_norm((x - recon).reshape(x.shape[0], -1), dim=1)
    norm_x = torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)
    return torch.where(norm_x > 0, resid / norm_x.clamp_min(torch.finfo(x.dtype).tiny), resid)


def _batch_output(
    weights: torch.Tensor, factors: list[torch.Tensor], scales: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weights with each member's scale restored and everything in ``dtype``; weights the dtype
    cannot hold are spread over the factor columns (as :func:`~factorch.decomp.cp` does)."""
    wide = weights.to(torch.float64) * scales[:, None]
    info = torch.finfo(dtype)
    size = wide.abs()
    if bool(((size <= info.max) & ((size >= info.tiny) | (size == 0))).all()):
        return wide.to(dtype), [f.to(dtype) for f in factors]
    n = len(factors)
    per_mode = weights.to(torch.float64).abs() ** (1.0 / n) * scales[:, None] ** (1.0 / n)
    spread = [(f.to(torch.float64) * per_mode[:, None, :]).to(dtype) for f in factors]
    if not all(bool(torch.isfinite(f).all()) for f in spread):
        raise ValueError(
            f"cp_batch: the fitted models cannot be represented in {dtype} (their components "
            "exceed the dtype's range); convert the tensors to a wider dtype first."
        )
    return torch.sign(weights).to(dtype), spread


@dataclass(frozen=True)
class BatchTuckerResult:
    """Result of :func:`hosvd_batch`.

    Attributes:
        core: ``(B, R_0, ..., R_{N-1})`` cores.
        factors: per mode, ``(B, I_n, R_n)`` factors with orthonormal columns.
        errors: ``(B,)`` relative error of each member.
        time_s: wall-clock seconds.

    Example:
        >>> result = hosvd_batch(torch.ones(3, 4, 5, 6, dtype=torch.float64), 1)
        >>> result.core.shape, result.errors.shape, result.tensors[0].rank
        (torch.Size([3, 1, 1, 1]), torch.Size([3]), (1, 1, 1))
    """

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


@no_autocast
def hosvd_batch(tensors: torch.Tensor, rank: int | Sequence[int]) -> BatchTuckerResult:
    """Truncated HOSVD of every member of ``tensors`` ``(B, I_0, ..., I_{N-1})``.

    ``rank`` is an int (the same for every mode; it must not exceed any mode size) or one int per
    mode (numpy integers accepted). Factors are the leading eigenvectors of each member's mode Gram
    matrix (batched ``eigh``); the core is ``X x_n U_n^H``. Real and complex dtypes; numpy arrays
    are accepted; float16/bfloat16 are computed in float32 and returned in the input dtype (with
    the errors of the returned, rounded models); members far from magnitude 1 are scaled by a
    power of four for the computation. Differentiable (through ``eigh``: the input's graph is
    kept); autocast is ignored.

    Args:
        tensors: ``(B, I_0, ..., I_{N-1})`` real or complex stack, or a numpy array.
        rank: an int for every mode, or one int per mode.

    Returns:
        :class:`BatchTuckerResult`: core ``(B, R_0, ...)``, factors ``(B, I_n, R_n)`` with
        orthonormal columns, relative errors ``(B,)``.

    Raises:
        TypeError: non-numeric or integer input; a non-integral rank.
        ValueError: fewer than 3 dimensions, an empty dimension, NaN/Inf, a rank of the wrong
            length or larger than its mode.

    Example:
        >>> hosvd_batch(torch.randn(3, 4, 5, 6), (2, 2, 2)).core.shape
        torch.Size([3, 2, 2, 2])
    """
    fn = "hosvd_batch"
    x_in = _check_stack(tensors, fn)
    shape = tuple(x_in.shape[1:])
    n = len(shape)
    if isinstance(rank, Sequence) and not isinstance(rank, str):
        ranks = tuple(check_positive_int(r, fn, f"rank[{m}]") for m, r in enumerate(rank))
    else:
        ranks = (check_positive_int(rank, fn, "rank"),) * n
    if len(ranks) != n:
        raise ValueError(f"{fn}: rank needs {n} entries (one per mode); got {len(ranks)}.")
    for m, (r, s) in enumerate(zip(ranks, shape)):
        if r > s:
            raise ValueError(f"{fn}: rank[{m}] = {r} exceeds the mode size {s}; use at most {s}.")
    clock = Stopwatch()
    x = upcast(x_in)
    scales = batch_fit_scale(x)
    if bool((scales != 1).any()):
        x = x / scales.to(x.real.dtype).reshape(-1, *(1,) * n)
    idx = _L[:n]
    factors = []
    for m in range(n):
        other = idx[:m] + "Y" + idx[m + 1 :]
        gram = torch.einsum(f"Z{idx},Z{other}->Z{idx[m]}Y", x, x.conj())
        _, vecs = torch.linalg.eigh(gram)
        factors.append(vecs.flip(-1)[..., : ranks[m]])
    core = _multi_mode(x, [f.conj() for f in factors], project=True)
    core_out = (core * scales.to(x.real.dtype).reshape(-1, *(1,) * n)).to(x_in.dtype)
    factors_out = tuple(f.to(x_in.dtype) for f in factors)
    if x_in.dtype != x.dtype:  # errors of the returned (rounded) models
        core = upcast(core_out) / scales.to(x.real.dtype).reshape(-1, *(1,) * n)
        factors = [upcast(f) for f in factors_out]
    recon = _multi_mode(core, factors, project=False)
    flat = (x - recon).reshape(x.shape[0], -1)
    norm_x = torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)
    resid = torch.linalg.vector_norm(flat, dim=1)
    errors = torch.where(
        norm_x > 0, resid / norm_x.clamp_min(torch.finfo(norm_x.dtype).tiny), resid
    )
    return BatchTuckerResult(
        core=core_out,
        factors=factors_out,
        errors=errors.to(x_in.real.dtype if x_in.is_complex() else x_in.dtype),
        time_s=clock.elapsed,
    )


def _multi_mode(x: torch.Tensor, factors: Sequence[torch.Tensor], *, project: bool) -> torch.Tensor:
    """``x`` multiplied in every mode: by ``factors[m]^T`` (``project``: ``(I_m, R_m)`` factors
    contract ``I_m``) or by ``factors[m]`` (expand ``R_m`` back to ``I_m``), batched over mode 0."""
    n = x.ndim - 1
    idx = _L[:n]
    for m in range(n):
        sub_in = idx[:m] + (idx[m] if project else "Y") + idx[m + 1 :]
        sub_out = idx[:m] + ("Y" if project else idx[m]) + idx[m + 1 :]
        x = torch.einsum(f"Z{sub_in},Z{idx[m]}Y->Z{sub_out}", x, factors[m])
    return x
