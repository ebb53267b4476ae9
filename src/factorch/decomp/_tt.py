"""Tensor-train decompositions: TT-SVD (deterministic or randomized), TT rounding, TT-matrix.

A tensor train has cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` with ``r_0 = r_N = 1`` and
``X[i_0, ..., i_{N-1}] = G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]``.

TT-SVD (Oseledets 2011, Alg. 1) peels off one core per step from the unfolding
``C_k`` of shape ``(r_{k-1} I_k) x (I_{k+1} ... I_{N-1})`` of the remainder: ``C_k ~= U B`` with
orthonormal ``U`` (the core) and ``B = U^H C_k`` (the next remainder). The cores on the left are
left-orthonormal, so the discarded energies add up exactly:
``||X - TT||^2 = sum_k ||C_k - U_k B_k||^2``. With accuracy ``eps`` each step may discard
``delta^2 = eps^2 ||X||^2 / (N - 1)``, which guarantees ``||X - TT|| <= eps ||X||`` (Oseledets
2011, Thm 2.2).

References:
    I. V. Oseledets, "Tensor-train decomposition", SIAM J. Sci. Comput. 33(5), 2011.
    B. Huber, R. Schneider, S. Wolf, "A randomized tensor train singular value decomposition",
    arXiv:1710.08513, 2017 (Gaussian sketch + QR per unfolding).
    I. V. Oseledets, "Approximation of 2^d x 2^d matrices using tensor decomposition", SIAM J.
    Matrix Anal. Appl. 31(4), 2010 (TT-matrix format).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import torch

from .._checks import check_finite
from .._numerics import HALF_DTYPES, no_autocast, upcast
from ..tensors import TTMatrix, TTTensor
from ._result import DecompositionResult, Stopwatch
from ._truncate import Truncation, auto_method, truncate
from ._tucker_common import (
    SVDMethod,
    as_int,
    check_data,
    check_generator,
    check_linalg_dtype,
    check_literal,
    check_rel_tol,
    finish,
    is_int,
    log2_scale,
    prepare,
    renamed,
    scale_last_core,
    sq_norm,
    times_power_of_two,
)

__all__ = ["TTMethod", "tt_matrix", "tt_round", "tt_svd"]

TTMethod = SVDMethod


def check_rank_entries(rank: object, n_cores: int, fn: str, boundary: str) -> list[int]:
    """A list or tuple of ``n_cores + 1`` positive ints (TT or TR ranks ``r_0..r_N``; numpy
    integers accepted); ``boundary`` states the boundary-rank rule in the length message, e.g.
    ``"r_0 = r_3 = 1"``. The boundary rule itself is checked by the caller."""
    if not isinstance(rank, (tuple, list)):
        raise TypeError(f"{fn}: rank must be an int or a tuple of ints; got {type(rank).__name__}.")
    if len(rank) != n_cores + 1:
        raise ValueError(
            f"{fn}: rank needs {n_cores + 1} entries for a {n_cores}-way tensor "
            f"({boundary}); got {tuple(rank)}."
        )
    out: list[int] = []
    for i, r in enumerate(rank):
        if not is_int(r):
            raise TypeError(f"{fn}: rank[{i}] must be an int; got {type(r).__name__}.")
        out.append(as_int(r, fn, f"rank[{i}]"))
    if min(out) < 1:
        raise ValueError(f"{fn}: rank entries must be positive; got {tuple(out)}.")
    return out


def check_tt_rank(rank: object, n_cores: int, fn: str) -> list[int] | None:
    """Maximal TT ranks ``[1, r_1, ..., r_{N-1}, 1]`` from an int or a tuple of ``N + 1`` ints."""
    if rank is None:
        return None
    if is_int(rank):
        value = as_int(rank, fn, "rank")
        if value < 1:
            raise ValueError(f"{fn}: rank must be a positive int; got {value}.")
        return [1] + [value] * (n_cores - 1) + [1]
    ranks = check_rank_entries(rank, n_cores, fn, f"r_0 = r_{n_cores} = 1")
    if ranks[0] != 1 or ranks[-1] != 1:
        raise ValueError(
            f"{fn}: a tensor train has boundary ranks r_0 = r_{n_cores} = 1; got {tuple(ranks)} "
            "(use tr_svd for a tensor ring)."
        )
    return ranks


def _check_rank_eps(rank: object, eps: object, fn: str) -> float | None:
    if rank is None and eps is None:
        raise ValueError(
            f"{fn}: give rank (maximal TT ranks), eps (relative accuracy) or both; got neither."
        )
    return None if eps is None else check_rel_tol(eps, fn, "eps")


def svd_option(svd: object, method: object, fn: str) -> str:
    """The ``svd=`` option, or its deprecated name ``method=`` (warns), checked."""
    given = renamed(None if svd == "auto" else svd, method, fn, "svd", "method", depth=1)
    choice = "auto" if given is None else given
    return check_literal(choice, get_args(SVDMethod), fn, "svd")


def split(
    c: torch.Tensor,
    max_rank: int,
    budget: float | None,
    method: str,
    generator: torch.Generator | None,
    rel_step: float | None,
) -> Truncation:
    """One TT-SVD step ``C ~= U B``. When nothing can be dropped (no accuracy target and a rank cap
    at least the row count of a wide ``C``), ``U`` is the identity and ``B = C``: no work at all."""
    m, n = c.shape
    if budget is None and max_rank >= m and m <= n:
        return Truncation(torch.eye(m, dtype=c.dtype, device=c.device), c, 0.0)
    if method == "auto":
        method = auto_method(m, n, rel_step)
    return truncate(c, max_rank=max_rank, budget=budget, method=method, generator=generator)


def tt_chain(
    y: torch.Tensor,
    sizes: Sequence[int],
    max_ranks: Sequence[int],
    budget: float | None,
    method: str,
    generator: torch.Generator | None,
    rel_step: float | None,
) -> tuple[list[torch.Tensor], float]:
    """TT-SVD sweep over a remainder ``y`` with ``max_ranks[0] * sizes[0]`` leading rows.

    ``max_ranks`` has ``len(sizes) + 1`` entries; the first and last are the fixed boundary ranks
    (the last is folded into the final core). Returns the cores and the discarded energy.
    """
    r_prev, r_last = max_ranks[0], max_ranks[-1]
    cores: list[torch.Tensor] = []
    discarded = 0.0
    c = y
    for k in range(len(sizes) - 1):
        c = c.reshape(r_prev * sizes[k], -1)
        tr = split(c, max_ranks[k + 1], budget, method, generator, rel_step)
        r = tr.u.shape[1]
        cores.append(tr.u.reshape(r_prev, sizes[k], r))
        discarded += tr.discarded
        c, r_prev = tr.b, r
    cores.append(c.reshape(r_prev, sizes[-1], r_last))
    return cores, discarded


@no_autocast
def tt_svd(
    tensor: torch.Tensor,
    rank: int | Sequence[int] | None = None,
    *,
    eps: float | None = None,
    svd: SVDMethod = "auto",
    generator: torch.Generator | None = None,
    method: SVDMethod | None = None,
) -> DecompositionResult[TTTensor]:
    """TT-SVD of a dense tensor with maximal ranks and/or a relative accuracy.

    Args:
        tensor: real or complex floating tensor (or numpy array), at least 1-D, finite. float16
            and bfloat16 are computed in float32; the model comes back in the input dtype.
        rank: maximal TT ranks: an int (every internal rank) or ``N + 1`` ints with
            ``r_0 = r_N = 1`` (numpy integers accepted). Ranks above what an unfolding allows are
            lowered silently (read the result's ``model.rank``), so an absurd rank such as
            ``10**9`` costs nothing: it is capped, never allocated.
        eps: relative accuracy in (0, 1): each of the ``N - 1`` truncations discards at most
            ``eps^2 ||X||^2 / (N - 1)`` energy, so ``||X - TT|| <= eps ||X||`` unless ``rank``
            caps a rank below what ``eps`` needs (then the error is reported, not guaranteed).
        svd: per-unfolding factorisation. ``"full"``: thin SVD. ``"gram"``: eigen-decomposition
            of the small Gram ``C C^H`` (float64 when ``eps`` is given); tall unfoldings use the
            thin SVD. ``"randomized"``: Gaussian sketch + QR range finder with 10 oversampling
            columns and one power iteration (Huber--Schneider--Wolf), needs ``rank``; with
            ``eps`` the energy the sketch misses counts as discarded. ``"auto"``: Gram for
            unfoldings at least as wide as tall (unless ``eps < 1e-6``), thin SVD otherwise.
        generator: random source for ``svd="randomized"``.
        method: deprecated name of ``svd`` (warns).

    Returns:
        ``DecompositionResult`` with a ``TTTensor`` (left-orthonormal cores) and one relative error,
        ``sqrt(sum of discarded energies) / ||X||`` (no reconstruction; for half precision, the
        error of the returned, rounded model).

    Raises:
        TypeError: for a non-tensor, integer or bool dtype, bad rank or option types, or both
            ``svd`` and its deprecated name ``method``.
        ValueError: for NaN/Inf, empty dimensions, bad rank values, neither ``rank`` nor ``eps``,
            ``svd="randomized"`` without ``rank``, or a model that overflows the input dtype.

    Differentiable (autocast off): with a ``tensor`` that requires grad, every truncation is a
    thin SVD (whatever ``svd`` says) whose backward stays finite on exactly low-rank data
    (repeated or zero singular values), and is exact wherever the truncation is differentiable;
    rank selection from ``eps`` is not differentiable.

    Example:
        >>> import torch
        >>> from factorch.decomp import tt_svd
        >>> x = torch.randn(4, 5, 6, dtype=torch.float64)
        >>> res = tt_svd(x, eps=1e-8)
        >>> res.model.rank, res.error < 1e-8
        ((1, 4, 6, 1), True)
    """
    fn = "tt_svd"
    sw = Stopwatch()
    tensor = check_data(tensor, fn)
    choice = svd_option(svd, method, fn)
    gen = check_generator(generator, fn)
    max_ranks = check_tt_rank(rank, tensor.ndim, fn)
    eps = _check_rank_eps(rank, eps, fn)
    if choice == "randomized" and max_ranks is None:
        raise ValueError(
            f"{fn}: svd='randomized' needs rank (a sketch needs a target size); pass rank "
            "(and eps, if you want the rank chosen below it)."
        )
    work = prepare(tensor, detach=False)
    cores, err = _tt_svd(work.data, max_ranks, eps, choice, gen)
    model, errors = finish(work, TTTensor(tuple(cores)), scale_last_core, (err,), fn)
    return DecompositionResult(model, errors, 1, True, sw.elapsed)


def _tt_svd(
    tensor: torch.Tensor,
    max_ranks: list[int] | None,
    eps: float | None,
    method: str,
    generator: torch.Generator | None,
) -> tuple[list[torch.Tensor], float]:
    shape = list(tensor.shape)
    n = len(shape)
    if max_ranks is None:
        max_ranks = [1] + [math.prod(shape)] * (n - 1) + [1]
    norm_x2 = sq_norm(tensor)
    budget = rel_step = None
    if eps is not None and n > 1:
        budget = eps**2 * norm_x2 / (n - 1)
        rel_step = eps / math.sqrt(n - 1)
    cores, discarded = tt_chain(
        tensor.contiguous(), shape, max_ranks, budget, method, generator, rel_step
    )
    err = math.sqrt(min(discarded / norm_x2, 1.0)) if norm_x2 > 0 else 0.0
    return cores, err


@no_autocast
def tt_round(
    tt: TTTensor,
    rank: int | Sequence[int] | None = None,
    *,
    eps: float | None = None,
) -> DecompositionResult[TTTensor]:
    """TT rounding: recompress a ``TTTensor`` to lower ranks or to relative accuracy ``eps``.

    Right-to-left QR makes cores 1..N-1 right-orthonormal (the norm then sits in core 0); a
    left-to-right sweep of truncated SVDs of the small ``(r_k I_k) x r_{k+1}`` core unfoldings then
    truncates each rank (Oseledets 2011, Alg. 2). The discarded singular values give the rounding
    error exactly, relative to the input TT's own norm, without densifying anything. Cost
    ``O(N I r^3)``. Each core is divided by an exact power of two first and the scale is carried
    as an integer exponent, so cores with entries near ``1e200`` or ``1e-200`` (whose products
    would over- or underflow) round correctly; half-precision cores are computed in float32.

    Args:
        tt: the tensor train to round (e.g. a sum ``a + b`` whose ranks have added up).
        rank: maximal ranks (int or ``N + 1`` ints with ends 1; numpy integers accepted; ranks
            above the current ones are capped at them).
        eps: relative accuracy in (0, 1): ``||tt - result|| <= eps ||tt||`` (unless ``rank``
            caps).

    Returns:
        ``DecompositionResult`` with the rounded ``TTTensor`` (left-orthonormal cores except the
        last) in ``tt``'s dtype and one error, ``||tt - result|| / ||tt||``.

    Raises:
        TypeError: ``tt`` not a ``TTTensor``, an unsupported dtype, or bad rank types.
        ValueError: a core with NaN or Inf entries, bad rank values, neither ``rank`` nor
            ``eps``, or a result that cannot be represented in ``tt``'s dtype.

    Differentiable through ``torch.linalg.qr`` and the truncations' degenerate-safe thin SVDs
    (see :func:`tt_svd`); the QR sweep needs cores of full rank for finite gradients.

    Example:
        >>> import torch
        >>> from factorch.decomp import tt_round
        >>> from factorch.random import random_tt
        >>> a = random_tt((4, 5, 6), 2, dtype=torch.float64)
        >>> (a + a).rank, tt_round(a + a, eps=1e-10).model.rank
        ((1, 4, 4, 1), (1, 2, 2, 1))
    """
    fn = "tt_round"
    sw = Stopwatch()
    if not isinstance(tt, TTTensor):
        raise TypeError(f"{fn}: tt must be a TTTensor; got {type(tt).__name__}.")
    check_linalg_dtype(tt.cores[0], fn, "tt")
    for k, core in enumerate(tt.cores):
        check_finite(core, fn, f"tt.cores[{k}]")
    max_ranks = check_tt_rank(rank, tt.ndim, fn)
    eps = _check_rank_eps(rank, eps, fn)
    cores, exponent, err = _round(tt, max_ranks, eps)
    last = times_power_of_two(cores[-1], exponent)
    if bool((cores[-1] != 0).any()) and not bool((last.to(tt.dtype) != 0).any()):
        raise ValueError(
            f"{fn}: the rounded tensor's entries are about 2**{exponent}, below what "
            f"{tt.dtype} can represent; convert the cores to a wider dtype first."
        )
    model = TTTensor((*cores[:-1], last)).to(dtype=tt.dtype)
    if not all(bool(torch.isfinite(c).all()) for c in model.cores):
        raise ValueError(
            f"{fn}: the rounded tensor's entries are about 2**{exponent}, beyond what "
            f"{tt.dtype} can represent; convert the cores to a wider dtype first."
        )
    if tt.dtype in HALF_DTYPES:  # the error of the rounded model, in float64 (no cancellation)
        wide = tt.to(dtype=torch.float64)
        norm = float(wide.norm())
        err = float((wide - model.to(dtype=torch.float64)).norm()) / norm if norm > 0 else 0.0
    return DecompositionResult(model, (err,), 1, True, sw.elapsed)


def _round(
    tt: TTTensor, max_ranks: list[int] | None, eps: float | None
) -> tuple[list[torch.Tensor], int, float]:
    """Rounding on cores divided by powers of two; returns the cores, the exponent the result
    must still be multiplied by (``2**exponent``), and the relative error."""
    cores: list[torch.Tensor] = []
    exponent = 0
    for c in tt.cores:
        e = log2_scale(c)
        cores.append(times_power_of_two(upcast(c), -e))
        exponent += e
    d = len(cores)
    for k in range(d - 1, 0, -1):
        r0, size, r1 = cores[k].shape
        q, r = torch.linalg.qr(cores[k].reshape(r0, size * r1).mH)
        cores[k] = q.mH.reshape(-1, size, r1)
        merged = torch.tensordot(cores[k - 1], r.mH, dims=([2], [0]))
        e = log2_scale(merged)  # keep the products O(1) as the norm moves left
        cores[k - 1] = times_power_of_two(merged, -e)
        exponent += e
    norm2 = sq_norm(cores[0])
    budget = None if eps is None or d == 1 else eps**2 * norm2 / (d - 1)
    discarded = 0.0
    for k in range(d - 1):
        r0, size, r1 = cores[k].shape
        cap = r1 if max_ranks is None else max_ranks[k + 1]
        tr = truncate(cores[k].reshape(r0 * size, r1), max_rank=cap, budget=budget, method="full")
        cores[k] = tr.u.reshape(r0, size, -1)
        cores[k + 1] = torch.tensordot(tr.b, cores[k + 1], dims=([1], [0]))
        discarded += tr.discarded
    err = math.sqrt(min(discarded / norm2, 1.0)) if norm2 > 0 else 0.0
    return cores, exponent, err


@no_autocast
def tt_matrix(
    matrix: torch.Tensor,
    row_shape: Sequence[int],
    col_shape: Sequence[int],
    rank: int | Sequence[int] | None = None,
    *,
    eps: float | None = None,
    svd: SVDMethod = "auto",
    generator: torch.Generator | None = None,
    method: SVDMethod | None = None,
) -> DecompositionResult[TTMatrix]:
    """TT-matrix (matrix product operator) decomposition of a dense ``(M, N)`` matrix.

    With ``M = prod(row_shape)`` and ``N = prod(col_shape)`` (``d`` factors each), the matrix is
    viewed as a ``d``-way tensor with mode sizes ``m_k n_k`` (indices interleaved
    ``(i_0 j_0)(i_1 j_1)...``, row-major, so row index ``i = (i_0, ..., i_{d-1})``) and
    decomposed by :func:`tt_svd`; core ``k`` is returned as ``(r_k, m_k, n_k, r_{k+1})``.
    ``rank``, ``eps``, ``svd``, ``generator``, the numerical guards (autocast off, half precision
    in float32, exact scaling) and the capping of ranks are as in :func:`tt_svd`; the error is
    relative to ``||matrix||_F``.

    Args:
        matrix: the ``(M, N)`` matrix (tensor or numpy array).
        row_shape: factors ``m_k`` of ``M`` (numpy integers accepted).
        col_shape: factors ``n_k`` of ``N``, as many as ``row_shape``.
        rank: maximal TT ranks (int or ``d + 1`` ints with ends 1).
        eps: relative accuracy in (0, 1).
        svd: per-unfolding factorisation, as in :func:`tt_svd`.
        generator: random source for ``svd="randomized"``.
        method: deprecated name of ``svd`` (warns).

    Returns:
        ``DecompositionResult`` with a ``TTMatrix`` and one relative error.

    Raises:
        TypeError: as :func:`tt_svd`, and for shapes that are not sequences of ints.
        ValueError: as :func:`tt_svd`, and for shapes that do not multiply to the matrix's.

    Differentiable as :func:`tt_svd`.

    Example:
        >>> import torch
        >>> from factorch.decomp import tt_matrix
        >>> w = torch.randn(6, 20, dtype=torch.float64)
        >>> tt_matrix(w, (2, 3), (4, 5), 3).model.shape
        (6, 20)
    """
    fn = "tt_matrix"
    sw = Stopwatch()
    matrix = check_data(matrix, fn, ndim=2, name="matrix")
    choice = svd_option(svd, method, fn)
    gen = check_generator(generator, fn)
    rows, cols = _check_shape(row_shape, fn, "row_shape"), _check_shape(col_shape, fn, "col_shape")
    if len(rows) != len(cols):
        raise ValueError(
            f"{fn}: row_shape and col_shape need the same number of factors; got {rows} and "
            f"{cols} (pad with 1s)."
        )
    if math.prod(rows) != matrix.shape[0] or math.prod(cols) != matrix.shape[1]:
        raise ValueError(
            f"{fn}: row_shape {rows} and col_shape {cols} multiply to "
            f"({math.prod(rows)}, {math.prod(cols)}) but the matrix is {tuple(matrix.shape)}."
        )
    d = len(rows)
    max_ranks = check_tt_rank(rank, d, fn)
    eps = _check_rank_eps(rank, eps, fn)
    if choice == "randomized" and max_ranks is None:
        raise ValueError(f"{fn}: svd='randomized' needs rank; pass rank (and optionally eps).")
    work = prepare(matrix, detach=False)
    perm = [p for k in range(d) for p in (k, d + k)]
    t = work.data.reshape(*rows, *cols).permute(perm).reshape([m * n for m, n in zip(rows, cols)])
    cores, err = _tt_svd(t, max_ranks, eps, choice, gen)
    cores4 = tuple(c.reshape(c.shape[0], m, n, c.shape[2]) for c, m, n in zip(cores, rows, cols))
    model, errors = finish(work, TTMatrix(cores4), scale_last_core, (err,), fn)
    return DecompositionResult(model, errors, 1, True, sw.elapsed)


def _check_shape(shape: object, fn: str, name: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) == 0:
        raise TypeError(f"{fn}: {name} must be a non-empty tuple of positive ints; got {shape!r}.")
    if not all(is_int(s) for s in shape) or any(as_int(s, fn, name) < 1 for s in shape):
        raise ValueError(f"{fn}: {name} must contain positive ints; got {tuple(shape)}.")
    return tuple(as_int(s, fn, name) for s in shape)
