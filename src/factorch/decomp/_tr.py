"""Tensor-ring decompositions: TR-SVD and TR-ALS.

A tensor ring has cores ``Z_k`` of shape ``(r_k, I_k, r_{k+1})`` with ``r_N = r_0`` and
``X[i_0, ..., i_{N-1}] = trace(Z_0[:, i_0, :] Z_1[:, i_1, :] ... Z_{N-1}[:, i_{N-1}, :])``.

References:
    Q. Zhao, G. Zhou, S. Xie, L. Zhang, A. Cichocki, "Tensor ring decomposition",
    arXiv:1606.05535, 2016 (TR-SVD, Alg. 1; TR-ALS, Alg. 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch

from .._checks import check_mode, check_tensor
from ..tensors import TRTensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._tt import TTMethod, _is_int, check_rank_entries, tt_chain
from ._tucker_common import (
    auto_method,
    check_callback,
    check_generator,
    check_iter_options,
    check_linalg_dtype,
    check_literal,
    converged,
    randn,
    rel_error,
    sq_norm,
    truncate,
)

__all__ = ["TRInit", "tr_als", "tr_svd"]

TRInit = Literal["svd", "random"]


def check_tr_rank(rank: object, n_cores: int, fn: str) -> list[int]:
    """TR ranks ``[r_0, ..., r_N]`` with ``r_N = r_0`` from an int or ``N + 1`` ints."""
    if _is_int(rank):
        if rank < 1:  # type: ignore[operator]
            raise ValueError(f"{fn}: rank must be a positive int; got {rank}.")
        return [rank] * (n_cores + 1)  # type: ignore[list-item]
    rank = check_rank_entries(rank, n_cores, fn, f"r_0 = r_{n_cores}")
    if rank[0] != rank[-1]:
        raise ValueError(f"{fn}: a tensor ring closes, r_0 = r_{n_cores}; got {tuple(rank)}.")
    return list(rank)


def tr_svd(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    start_mode: int = 0,
    method: TTMethod = "auto",
    generator: torch.Generator | None = None,
) -> DecompositionResult[TRTensor]:
    """TR-SVD (Zhao et al. 2016, Alg. 1) with given ranks.

    The first unfolding ``X_(s)`` (``s = start_mode``, ``I_s x prod others``) is truncated to rank
    ``r_s r_{s+1}``; its left factor, reshaped ``(I_s, r_s, r_{s+1})``, is the first core, and the
    remainder ``(r_s r_{s+1}) x rest`` is reshaped ``(r_{s+1}, rest, r_s)`` and split by a TT-SVD
    sweep whose last core carries the closing rank ``r_s``. Every step is an orthogonal
    projection, so the reported error (from the discarded energies) is exact.

    Args:
        tensor: real or complex floating tensor, at least 2-D, finite.
        rank: an int (every rank) or ``N + 1`` ints with ``r_0 = r_N``. ``r_s r_{s+1}`` must not
            exceed ``min(I_s, prod of the other sizes)``; other ranks are maxima, lowered silently
            where an unfolding is smaller.
        start_mode: the mode whose unfolding is split first (TensorLy's ``mode``).
        method: per-unfolding factorisation, as in :func:`factorch.decomp.tt_svd`.
        generator: random source for ``method="randomized"``.

    Returns:
        ``DecompositionResult`` with a ``TRTensor`` and one relative error.

    Differentiable through ``torch.linalg`` when the kept singular values are distinct.
    """
    fn = "tr_svd"
    sw = Stopwatch()
    check_tensor(tensor, fn, min_ndim=2)
    check_linalg_dtype(tensor, fn)
    check_literal(method, get_args(TTMethod), fn, "method")
    check_generator(generator, fn)
    ranks = check_tr_rank(rank, tensor.ndim, fn)
    start = check_mode(start_mode, tensor.ndim, fn, "start_mode")
    cores, err = _tr_svd(tensor, ranks, start, method, generator, fn)
    return DecompositionResult(TRTensor(tuple(cores)), (err,), 1, True, sw.elapsed)


def _tr_svd(
    tensor: torch.Tensor,
    ranks: list[int],
    start: int,
    method: str,
    generator: torch.Generator | None,
    fn: str,
) -> tuple[list[torch.Tensor], float]:
    n = tensor.ndim
    order = list(range(start, n)) + list(range(start))
    x = tensor.permute(order).contiguous() if start else tensor.contiguous()
    rk = [ranks[k] for k in order] + [ranks[start]]
    shape = list(x.shape)
    a = x.reshape(shape[0], -1)
    r0, r1 = rk[0], rk[1]
    bound = min(a.shape)
    if r0 * r1 > bound:
        raise ValueError(
            f"{fn}: r_{start} * r_{(start + 1) % n} = {r0} * {r1} = {r0 * r1} exceeds "
            f"min(I_{start}, product of the other sizes) = {bound}: the first core splits the rank "
            f"of the mode-{start} unfolding into r_{start} x r_{(start + 1) % n}. Lower these "
            "ranks or choose another start_mode."
        )
    # the first split needs the singular-vector basis (its (r_0, r_1) grouping shapes every later
    # unfolding), never split()'s identity shortcut
    m = auto_method(*a.shape, None, a.dtype) if method == "auto" else method
    tr = truncate(a, max_rank=r0 * r1, budget=None, method=m, generator=generator)
    first = tr.u.reshape(shape[0], r0, r1).permute(1, 0, 2).contiguous()
    rest = tr.b.reshape(r0, r1, -1).permute(1, 2, 0).contiguous()
    chain, discarded = tt_chain(rest, shape[1:], rk[1:], None, method, generator, None)
    cores = [first, *chain]
    # undo the rotation: rotated core j is original core order[j]
    out: list[torch.Tensor] = [torch.empty(0)] * n
    for j, k in enumerate(order):
        out[k] = cores[j]
    norm_x2 = sq_norm(tensor)
    total = tr.discarded + discarded
    err = math.sqrt(min(total / norm_x2, 1.0)) if norm_x2 > 0 else 0.0
    return out, err


# --- TR-ALS ----------------------------------------------------------------------------------
def _subchain(cores: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """Product of the cores after ``k`` around the ring: ``(r_{k+1}, prod_{m != k} I_m, r_k)``."""
    n = len(cores)
    first = cores[(k + 1) % n]
    left = first.shape[0]
    acc = first.reshape(-1, first.shape[2])
    for j in range(2, n):
        c = cores[(k + j) % n]
        acc = (acc @ c.reshape(c.shape[0], -1)).reshape(-1, c.shape[2])
    return acc.reshape(left, -1, acc.shape[-1])


def _lstsq(design: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``argmin_W ||design W - rhs||`` by Householder QR (backward stable); for a numerically
    rank-deficient design, the minimum-norm solution by SVD. Returns ``(W, Q^H rhs or None)``."""
    q, r = torch.linalg.qr(design)
    diag = r.diagonal().abs()
    eps = torch.finfo(design.dtype).eps
    if diag.numel() and float(diag.min()) > 100 * eps * max(design.shape) * float(diag.max()):
        qr_rhs = q.mH @ rhs
        return torch.linalg.solve_triangular(r, qr_rhs, upper=True), qr_rhs
    return torch.linalg.pinv(design) @ rhs, None


def _check_tr_init(init: TRTensor, tensor: torch.Tensor, ranks: list[int], fn: str) -> None:
    if tuple(init.shape) != tuple(tensor.shape) or list(init.rank) != ranks:
        raise ValueError(
            f"{fn}: init has shape {tuple(init.shape)} and rank {tuple(init.rank)}; expected "
            f"shape {tuple(tensor.shape)} and rank {tuple(ranks)}."
        )
    if init.dtype != tensor.dtype or init.device != tensor.device:
        raise ValueError(
            f"{fn}: init is {init.dtype} on {init.device} but the tensor is {tensor.dtype} on "
            f"{tensor.device}; convert it with init.to(...)."
        )


@torch.no_grad()
def tr_als(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    init: TRInit | TRTensor = "svd",
    max_iter: int = 100,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[TRTensor]:
    """Tensor ring by alternating least squares (Zhao et al. 2016, Alg. 2).

    Core ``k`` solves the linear least-squares problem
    ``min ||X_<k> - Z_k(2) D_k^T||`` where ``X_<k>`` is the ``I_k x prod_{m != k} I_m`` unfolding
    in ring order (``k+1, ..., N-1, 0, ..., k-1``) and ``D_k`` (``prod_{m != k} I_m x r_k r_{k+1}``)
    is the contraction of the other cores (the subchain). It is solved by a Householder QR of
    ``D_k`` (backward stable; the normal equations would square the condition number), with a
    minimum-norm SVD fallback when ``D_k`` is numerically rank-deficient. After each update the
    core is re-orthonormalised by a QR whose triangular factor moves into the next core (the
    represented tensor is unchanged), which keeps the subchains well conditioned. The error after
    each sweep comes free from the last projection, ``||X||^2 - ||Q^H X_<k>^T||^2`` (or, below
    ``1e3 sqrt(eps)`` where that formula runs out of digits, from the residual itself).

    Like every ALS for tensor rings, it can stall in a local minimum even on exactly low-rank data
    (measured on 20 planted rank-2 rings: shape (6, 7, 8): 4 from the TR-SVD start and 7 from
    random starts stalled; shape (6, 7, 8, 9): 1 and 5; TensorLy's ``tensor_ring_als`` behaves
    alike); restart with ``init="random"`` and other generators when the error stalls far above
    the noise level.

    Args:
        tensor: real or complex floating tensor, at least 2-D, finite.
        rank: an int or ``N + 1`` ints with ``r_0 = r_N``.
        init: ``"svd"`` (TR-SVD; needs ``r_0 r_1 <= min(I_0, prod others)``), ``"random"``
            (Gaussian cores) or a ``TRTensor`` of the same shape and ranks.
        max_iter: maximum number of sweeps.
        tol: stop when the relative error changes by less than ``tol`` (0: run all sweeps).
        generator: random source for ``init="random"``.
        callback: called after each sweep with an :class:`IterationState`; ``True`` stops.

    Returns:
        ``DecompositionResult`` with a ``TRTensor`` and the relative error after each sweep.

    Not differentiable (runs under ``torch.no_grad``).
    """
    fn = "tr_als"
    sw = Stopwatch()
    check_tensor(tensor, fn, min_ndim=2)
    check_linalg_dtype(tensor, fn)
    n = tensor.ndim
    ranks = check_tr_rank(rank, n, fn)
    max_iter, tol = check_iter_options(max_iter, tol, fn)
    check_generator(generator, fn)
    check_callback(callback, fn)
    shape, dtype, device = list(tensor.shape), tensor.dtype, tensor.device
    if isinstance(init, TRTensor):
        _check_tr_init(init, tensor, ranks, fn)
        cores = [c.clone() for c in init.cores]
    elif isinstance(init, str):
        check_literal(init, get_args(TRInit), fn, "init")
        if init == "svd":
            cores, _ = _tr_svd(tensor, ranks, 0, "auto", generator, fn + " (init='svd')")
        else:
            cores = [
                randn((ranks[k], shape[k], ranks[k + 1]), dtype, device, generator)
                / math.sqrt(shape[k] * ranks[k])
                for k in range(n)
            ]
    else:
        raise TypeError(
            f"{fn}: init must be one of {get_args(TRInit)} or a TRTensor; got "
            f"{type(init).__name__}."
        )
    init_time = sw.elapsed

    norm_x2 = sq_norm(tensor)
    errors: list[float] = []
    done = False
    eps = torch.finfo(dtype).eps
    for it in range(1, max_iter + 1):
        err, exact = 0.0, False
        for k in range(n):
            order = list(range(k, n)) + list(range(k))
            xk = tensor.permute(order).reshape(shape[k], -1)
            sub = _subchain(cores, k)  # (r_{k+1}, P, r_k)
            design = sub.permute(1, 2, 0).reshape(sub.shape[1], -1)  # columns (a = r_k, b)
            w, qr_rhs = _lstsq(design, xk.mT)  # (r_k r_{k+1}, I_k)
            rk, rk1 = ranks[k], ranks[k + 1]
            core = w.reshape(rk, rk1, shape[k]).permute(0, 2, 1)
            if k == n - 1:
                err = rel_error(norm_x2, sq_norm(qr_rhs)) if qr_rhs is not None else 0.0
                if qr_rhs is None or err < 1e3 * math.sqrt(eps):
                    # below ~1e3 sqrt(eps) the norm formula loses its digits: take the residual
                    exact = True
                    resid = xk.mT - design @ w
                    err = math.sqrt(sq_norm(resid) / norm_x2) if norm_x2 > 0 else 0.0
            if rk * shape[k] >= rk1:
                q, r = torch.linalg.qr(core.reshape(rk * shape[k], rk1))
                core = q.reshape(rk, shape[k], rk1)
                nxt = (k + 1) % n
                cores[nxt] = torch.tensordot(r, cores[nxt], dims=([1], [0]))
            cores[k] = core.contiguous()
        errors.append(err)
        if len(errors) > 1 and converged(errors[-2], err, tol, dtype, exact=exact):
            done = True
        if callback is not None and callback(IterationState(it, err, TRTensor(tuple(cores)))):
            break
        if done:
            break
    return DecompositionResult(
        TRTensor(tuple(cores)), tuple(errors), len(errors), done, sw.elapsed, init_time
    )
