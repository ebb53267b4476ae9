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

from .._checks import check_mode
from .._numerics import check_memory, no_autocast, upcast
from ..tensors import TRTensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._truncate import auto_method, truncate
from ._tt import check_rank_entries, svd_option, tt_chain
from ._tucker_common import (
    SVDMethod,
    Work,
    as_int,
    check_callback,
    check_data,
    check_generator,
    check_iter_options,
    check_literal,
    converged,
    finish,
    is_int,
    prepare,
    randn,
    rel_error,
    scale_last_core,
    sq_norm,
)

__all__ = ["TRInit", "tr_als", "tr_svd"]

TRInit = Literal["svd", "random"]


def check_tr_rank(rank: object, n_cores: int, fn: str) -> list[int]:
    """TR ranks ``[r_0, ..., r_N]`` with ``r_N = r_0`` from an int or ``N + 1`` ints (numpy
    integers accepted)."""
    if is_int(rank):
        value = as_int(rank, fn, "rank")
        if value < 1:
            raise ValueError(f"{fn}: rank must be a positive int; got {value}.")
        return [value] * (n_cores + 1)
    ranks = check_rank_entries(rank, n_cores, fn, f"r_0 = r_{n_cores}")
    if ranks[0] != ranks[-1]:
        raise ValueError(f"{fn}: a tensor ring closes, r_0 = r_{n_cores}; got {tuple(ranks)}.")
    return ranks


@no_autocast
def tr_svd(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    start_mode: int = 0,
    svd: SVDMethod = "auto",
    generator: torch.Generator | None = None,
    method: SVDMethod | None = None,
) -> DecompositionResult[TRTensor]:
    """TR-SVD (Zhao et al. 2016, Alg. 1) with given ranks.

    The first unfolding ``X_(s)`` (``s = start_mode``, ``I_s x prod others``) is truncated to rank
    ``r_s r_{s+1}``; its left factor, reshaped ``(I_s, r_s, r_{s+1})``, is the first core, and the
    remainder ``(r_s r_{s+1}) x rest`` is reshaped ``(r_{s+1}, rest, r_s)`` and split by a TT-SVD
    sweep whose last core carries the closing rank ``r_s``. Every step is an orthogonal
    projection, so the reported error (from the discarded energies) is exact. Autocast is off,
    half precision is computed in float32 and the data are divided by an exact power of two
    first (any scale in the dtype's normal range decomposes alike).

    Args:
        tensor: real or complex floating tensor (or numpy array), at least 2-D, finite.
        rank: an int (every rank) or ``N + 1`` ints with ``r_0 = r_N`` (numpy integers accepted).
            ``r_s r_{s+1}`` must not exceed ``min(I_s, prod of the other sizes)``; other ranks are
            maxima, lowered silently where an unfolding is smaller.
        start_mode: the mode whose unfolding is split first (TensorLy's ``mode``).
        svd: per-unfolding factorisation, as in :func:`factorch.decomp.tt_svd`.
        generator: random source for ``svd="randomized"``.
        method: deprecated name of ``svd`` (warns).

    Returns:
        ``DecompositionResult`` with a ``TRTensor`` in the input dtype and one relative error.

    Raises:
        TypeError: for a non-tensor, integer dtype, bad rank or option types.
        ValueError: for NaN/Inf, empty dimensions, bad rank values, ``r_s r_{s+1}`` too large,
            or a model that overflows the input dtype.
        IndexError: ``start_mode`` out of range.

    Differentiable as :func:`factorch.decomp.tt_svd` (degenerate-safe thin SVDs).

    Example:
        >>> import torch
        >>> from factorch.decomp import tr_svd
        >>> x = torch.randn(4, 5, 6, dtype=torch.float64)
        >>> tr_svd(x, (2, 2, 3, 2)).model.rank
        (2, 2, 3, 2)
    """
    fn = "tr_svd"
    sw = Stopwatch()
    tensor = check_data(tensor, fn, min_ndim=2)
    choice = svd_option(svd, method, fn)
    gen = check_generator(generator, fn)
    ranks = check_tr_rank(rank, tensor.ndim, fn)
    if not is_int(start_mode):
        raise TypeError(f"{fn}: start_mode must be an int; got {type(start_mode).__name__}.")
    start = check_mode(as_int(start_mode, fn, "start_mode"), tensor.ndim, fn, "start_mode")
    work = prepare(tensor, detach=False)
    cores, err = _tr_svd(work.data, ranks, start, choice, gen, fn)
    model, errors = finish(work, TRTensor(tuple(cores)), scale_last_core, (err,), fn)
    return DecompositionResult(model, errors, 1, True, sw.elapsed)


def _tr_svd(
    tensor: torch.Tensor,
    ranks: list[int],
    start: int,
    method: str,
    generator: torch.Generator | None,
    fn: str,
    context: str = "",
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
            f"{fn}: {context}r_{start} * r_{(start + 1) % n} = {r0} * {r1} = {r0 * r1} exceeds "
            f"min(I_{start}, product of the other sizes) = {bound}: the first core splits the rank "
            f"of the mode-{start} unfolding into r_{start} x r_{(start + 1) % n}. Lower these "
            "ranks or choose another start_mode."
        )
    # the first split needs the singular-vector basis (its (r_0, r_1) grouping shapes every later
    # unfolding), never split()'s identity shortcut
    m = auto_method(a.shape[0], a.shape[1], None) if method == "auto" else method
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
    rank-deficient or wide design (more unknowns ``r_k r_{k+1}`` than rows), the minimum-norm
    solution by SVD. Returns ``(W, Q^H rhs or None)``."""
    if design.shape[0] < design.shape[1]:
        return torch.linalg.pinv(design) @ rhs, None
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


def _pad(core: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Zero-pad a ``(r, I, s)`` core to ``(left, I, right)`` (the represented ring is unchanged)."""
    out = core.new_zeros(left, core.shape[1], right)
    out[: core.shape[0], :, : core.shape[2]] = core
    return out


def _check_tr_memory(
    shape: Sequence[int], ranks: Sequence[int], dtype: torch.dtype, device: torch.device, fn: str
) -> None:
    """Refuse ranks whose working set cannot fit: per core, the subchain / design matrix
    ``prod_{m != k} I_m x r_k r_{k+1}`` and its QR, plus the cores."""
    n = len(shape)
    total = math.prod(shape)
    cores = sum(ranks[k] * shape[k] * ranks[k + 1] for k in range(n))
    design = max((total // shape[k]) * ranks[k] * ranks[k + 1] for k in range(n))
    check_memory(cores + 3 * design, dtype, device, fn, f"rank {tuple(ranks)}")


@no_autocast
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

    The data are detached, divided by an exact power of two (any scale in the dtype's normal
    range fits alike) and, for half precision, computed in float32; the model comes back in the
    input dtype with the true error of the returned model.

    Like every ALS for tensor rings, it can stall in a local minimum even on exactly low-rank data
    (measured on 20 planted rank-2 rings: shape (6, 7, 8): 4 from the TR-SVD start and 7 from
    random starts stalled; shape (6, 7, 8, 9): 1 and 5; TensorLy's ``tensor_ring_als`` behaves
    alike); restart with ``init="random"`` and other generators when the error stalls far above
    the noise level.

    Args:
        tensor: real or complex floating tensor (or numpy array), at least 2-D, finite.
        rank: an int or ``N + 1`` ints with ``r_0 = r_N`` (numpy integers accepted). Ranks whose
            working set (``prod_{m != k} I_m r_k r_{k+1}`` per core) cannot fit the device are
            refused before anything is allocated.
        init: ``"svd"`` (TR-SVD, zero-padded where an unfolding is smaller than a rank; needs
            ``r_0 r_1 <= min(I_0, prod others)``), ``"random"`` (Gaussian cores) or a ``TRTensor``
            of the same shape, ranks and dtype.
        max_iter: maximum number of sweeps.
        tol: stop when the relative error changes by less than ``tol`` (0: run all sweeps).
        generator: random source for ``init="random"``.
        callback: called after each sweep with an :class:`IterationState`; ``True`` stops.

    Returns:
        ``DecompositionResult`` with a ``TRTensor`` and the relative error after each sweep.

    Raises:
        TypeError: for a non-tensor, integer dtype, bad rank or option types.
        ValueError: for NaN/Inf, empty dimensions, bad rank values, ranks that cannot fit in
            memory, ``init="svd"`` with ``r_0 r_1`` too large, a bad ``init``, or a model that
            overflows the input dtype.

    Not differentiable: runs under ``torch.no_grad`` on the detached data.

    Example:
        >>> import torch
        >>> from factorch.decomp import tr_als
        >>> x = torch.randn(4, 5, 6, dtype=torch.float64)
        >>> tr_als(x, 2, max_iter=5).model.rank
        (2, 2, 2, 2)
    """
    fn = "tr_als"
    sw = Stopwatch()
    x = check_data(tensor, fn, min_ndim=2)
    ranks = check_tr_rank(rank, x.ndim, fn)
    iters, tol = check_iter_options(max_iter, tol, fn)
    gen = check_generator(generator, fn)
    check_callback(callback, fn)
    if isinstance(init, TRTensor):
        _check_tr_init(init, x, ranks, fn)
    elif isinstance(init, str):
        check_literal(init, get_args(TRInit), fn, "init")
    else:
        raise TypeError(
            f"{fn}: init must be one of {get_args(TRInit)} or a TRTensor; got "
            f"{type(init).__name__}."
        )
    _check_tr_memory(x.shape, ranks, x.dtype, x.device, fn)
    work = prepare(x, detach=True)
    cores = _tr_start(work, init, ranks, gen, fn)
    init_time = sw.elapsed
    errors: list[float] = []
    done = False
    for it in range(1, iters + 1):
        err, exact = _als_sweep(work.data, cores, ranks)
        errors.append(err)
        done = len(errors) > 1 and converged(errors[-2], err, tol, work.data.dtype, exact=exact)
        if callback is not None:
            shown = finish(work, TRTensor(tuple(cores)), scale_last_core, (), fn)[0]
            if callback(IterationState(it, err, shown)):
                break
        if done:
            break
    model, errs = finish(work, TRTensor(tuple(cores)), scale_last_core, errors, fn)
    return DecompositionResult(model, errs, len(errs), done, sw.elapsed, init_time)


def _tr_start(
    work: Work,
    init: str | TRTensor,
    ranks: list[int],
    generator: torch.Generator | None,
    fn: str,
) -> list[torch.Tensor]:
    """Starting cores for the scaled working data."""
    data = work.data
    n, shape = data.ndim, list(data.shape)
    if isinstance(init, TRTensor):
        cores = [upcast(c.detach()).clone() for c in init.cores]
        cores[-1] = cores[-1] / work.scale
        return cores
    if init == "svd":
        found, _ = _tr_svd(data, ranks, 0, "auto", generator, fn, "with init='svd', ")
        return [_pad(c, ranks[k], ranks[k + 1]) for k, c in enumerate(found)]
    return [
        randn((ranks[k], shape[k], ranks[k + 1]), data.dtype, data.device, generator)
        / math.sqrt(shape[k] * ranks[k])
        for k in range(n)
    ]


def _als_sweep(
    tensor: torch.Tensor, cores: list[torch.Tensor], ranks: list[int]
) -> tuple[float, bool]:
    """One ALS sweep over every core (in place); returns the error and whether it is exact
    (measured from the residual) rather than from the norm formula."""
    n, shape = tensor.ndim, list(tensor.shape)
    norm_x2 = sq_norm(tensor)
    eps = torch.finfo(tensor.real.dtype if tensor.is_complex() else tensor.dtype).eps
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
    return err, exact
