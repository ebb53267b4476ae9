"""Tensor-train completion by alternating least squares over the cores on the observed entries.

Model ``m_p = G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]`` (cores ``(r_k, I_k,
r_{k+1})``, ``r_0 = r_N = 1``). With every core but ``G_k`` fixed, entry ``p`` is linear in the
slice ``G_k[:, i_k(p), :]``: ``m_p = l_p^T G_k[:, i_k, :] r_p`` with the left interface
``l_p = G_0[:, i_0, :] ... G_{k-1}[:, i_{k-1}, :]`` and the right interface ``r_p``, i.e.
``m_p = vec(G_k[:, i_k, :]) . (l_p kron r_p)``. Each slice is then a ridge regression on the
entries with ``i_k(p) = i`` (:mod:`factorch.completion._rowwise`, ``r_k r_{k+1}`` unknowns).
A sweep computes every right interface once, then goes left to right: solve core ``k``, make it
left-orthonormal by a QR of its ``(r_k I_k) x r_{k+1}`` unfolding (the ``R`` factor moves into
core ``k + 1``, leaving the model unchanged), and extend the left interfaces. Objective:

    sum_{p in Omega} (x_p - m_p)^2 + l2 sum_{solved slices} ||G_k[:, i, :]||_F^2.

Cost per sweep: ``O(nnz sum_k (r_k r_{k+1})^2)`` for the normal equations.

``l2`` is absolute (default 0; without it, an underdetermined slice gets the minimum-norm
least-squares solution). The fit runs on the values divided by an exact power of two ``s``; the
cores ``0..N-2`` keep a fixed scale and the last one carries the data's, so the ridge on the
first ``N - 1`` cores is divided by ``s^2``, which gives the iterates of the unscaled problem.

References: Grasedyck, Kluge and Krämer, "Variants of alternating least squares tensor
completion in the tensor train format", SIAM J. Sci. Comput. 37(5), 2015; Wang, Aggarwal and
Aeron, "Tensor completion by alternating minimization under the tensor train (TT) model", 2016.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from .._checks import as_index
from .._numerics import check_memory, no_autocast
from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..decomp.internal import check_tt_rank
from ..tensors import SparseTensor, TTTensor
from ._common import (
    LoopOptions,
    Monitor,
    check_fit_options,
    check_nonneg,
    data_alias,
    empty_slices,
    randn,
    rmse_of,
)
from ._observed import observe, observe_validation, scaled_ridge
from ._output import finish, present_tt, presenting
from ._result import CompletionCallback, CompletionResult
from ._rowwise import solve_rows
from ._spectral import leading_subspace

__all__ = ["tt_als"]

_CHUNK = 2**15


def _tt_ranks(rank: object, shape: tuple[int, ...], fn: str) -> list[int]:
    """Checked maximal TT ranks (numpy ints accepted), lowered to what the shape allows."""
    if isinstance(rank, (tuple, list)):
        rank = tuple(r if isinstance(r, (bool, int)) else _index(r, fn) for r in rank)
    elif not isinstance(rank, (bool, int)) and rank is not None:
        rank = _index(rank, fn)
    ranks = check_tt_rank(rank, len(shape), fn)
    if ranks is None:
        raise TypeError(f"{fn}: rank must be an int or a tuple of N + 1 ints; got None.")
    return _feasible(ranks, shape)


def _index(value: object, fn: str) -> object:
    try:
        return as_index(value, fn, "rank")
    except TypeError:
        return value  # check_tt_rank names the problem


def _feasible(ranks: list[int], shape: Sequence[int]) -> list[int]:
    """Lower ranks so that ``r_{k+1} <= r_k I_k`` and ``r_k <= I_k r_{k+1}``."""
    r = list(ranks)
    for k in range(len(shape)):
        r[k + 1] = min(r[k + 1], r[k] * shape[k])
    for k in range(len(shape) - 1, -1, -1):
        r[k] = min(r[k], shape[k] * r[k + 1])
    return r


def _check_tt_memory(train: SparseTensor, ranks: list[int], fn: str) -> None:
    rows = max(s * (ranks[k] * ranks[k + 1]) ** 2 for k, s in enumerate(train.shape))
    interfaces = train.nnz * (sum(ranks) + max(ranks))
    check_memory(
        2 * rows + interfaces,
        train.dtype,
        train.device,
        fn,
        f"a tensor train of ranks {tuple(ranks)}",
        hint="use smaller ranks",
    )


def _apply_left(vec: torch.Tensor, core: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``vec_p^T G[:, i_p, :]`` for every entry, in chunks: ``(nnz, r_k) -> (nnz, r_{k+1})``."""
    out = torch.empty(vec.shape[0], core.shape[2], dtype=vec.dtype, device=vec.device)
    slices = core.permute(1, 0, 2)  # (I, r_k, r_{k+1})
    for s in range(0, vec.shape[0], _CHUNK):
        e = min(vec.shape[0], s + _CHUNK)
        out[s:e] = torch.bmm(vec[s:e, None, :], slices.index_select(0, idx[s:e])).squeeze(1)
    return out


def _apply_right(vec: torch.Tensor, core: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``G[:, i_p, :] vec_p`` for every entry: ``(nnz, r_{k+1}) -> (nnz, r_k)``."""
    out = torch.empty(vec.shape[0], core.shape[0], dtype=vec.dtype, device=vec.device)
    slices = core.permute(1, 0, 2)
    for s in range(0, vec.shape[0], _CHUNK):
        e = min(vec.shape[0], s + _CHUNK)
        out[s:e] = torch.bmm(slices.index_select(0, idx[s:e]), vec[s:e, :, None]).squeeze(2)
    return out


def tt_values(cores: Sequence[torch.Tensor], pattern: SparseTensor) -> torch.Tensor:
    """TT model values at the listed entries of ``pattern`` (no autograd)."""
    vec = torch.ones(pattern.nnz, 1, dtype=cores[0].dtype, device=cores[0].device)
    for k, core in enumerate(cores):
        vec = _apply_left(vec, core, pattern.indices[k])
    return vec.squeeze(1)


@data_alias("tt_als")
@no_autocast
def tt_als(
    tensor: SparseTensor | torch.Tensor,
    rank: int | Sequence[int],
    *,
    mask: torch.Tensor | None = None,
    validation: SparseTensor | None = None,
    l2: float = 0.0,
    damping: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    init: Literal["svd", "random"] = "svd",
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[TTTensor]:
    """Tensor-train completion of a partially observed tensor by ALS over the cores.

    Args:
        tensor: observed entries (:class:`~factorch.tensors.SparseTensor` or torch sparse
            tensor) or a dense tensor / numpy array with ``mask`` (True = observed).
            ``data=`` is a deprecated alias.
        rank: maximal TT ranks: an int (every inner rank) or ``N + 1`` ints with
            ``r_0 = r_N = 1`` (numpy ints too); ranks above what the shape allows are lowered
            (read ``result.model.rank``).
        mask: bool tensor or array, True where a dense ``tensor`` is observed.
        validation: held-out entries for early stopping and model selection.
        l2: absolute ridge weight on each solved core slice (default 0).
        damping: data-relative safeguard of the slice solves, as in :func:`cp_als` (default
            1e-4; 0 for exact least squares).
        init: ``"svd"`` (a TT-SVD of the zero-filled observations rescaled by the inverse
            density, computed from the observed entries only) or ``"random"``.
        max_iter, tol, patience, generator, callback: as in :func:`tucker_als`.

    Returns:
        :class:`CompletionResult` with a :class:`TTTensor` (cores ``0..N-2`` left-orthonormal)
        in the input's dtype and device. A slice of mode ``k`` without observations gets a
        zero core slice (predictions 0 there): ``extras["empty_slices"]``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: bad values, or ranks whose normal equations cannot fit in memory.

    Not differentiable (data that require grad are detached). Runs with autocast off;
    half-precision data are fitted in float32 and the model returned in their dtype.

    Example:
        >>> import torch
        >>> from factorch.completion import tt_als
        >>> x = torch.rand(6, 5, 4, dtype=torch.float64)
        >>> res = tt_als(x, 2, mask=torch.rand(6, 5, 4) < 0.7, max_iter=5)
        >>> res.model.rank
        (1, 2, 2, 1)
    """
    fn = "tt_als"
    obs = observe(tensor, mask, fn)
    train = obs.train
    ranks = _tt_ranks(rank, train.shape, fn)
    l2, loop = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    damping = check_nonneg(damping, fn, "damping")
    if init not in ("svd", "random"):
        raise ValueError(f"{fn}: init must be 'svd' or 'random'; got {init!r}.")
    _check_tt_memory(train, ranks, fn)
    val = observe_validation(validation, obs, fn)
    with torch.no_grad():
        if init == "svd":
            cores = _spectral_cores(train, ranks, generator)
        else:
            cores = _random_cores(train, ranks, generator)
        inner_l2 = scaled_ridge(l2, obs.scale, -2.0, train.dtype)
        ridges = [inner_l2] * (train.ndim - 1) + [l2]
        callback = presenting(callback, obs, lambda m: present_tt(m, obs, fn, check=False))
        result = _fit(train, val, cores, ridges, damping, loop, callback)
    return finish(result, obs, val, lambda m: present_tt(m, obs, fn))


def _fit(
    train: SparseTensor,
    val: SparseTensor | None,
    cores: list[torch.Tensor],
    ridges: list[float],
    damping: float,
    loop: LoopOptions,
    callback: CompletionCallback | None,
) -> CompletionResult[TTTensor]:
    """The ALS sweeps from ``cores``; ``ridges[k]`` is the ridge on the slices of core ``k``,
    ``damping`` the relative damping of every slice solve."""
    clock = Stopwatch()
    n_modes = train.ndim
    # Working gauge: cores 0..N-2 orthogonal times sqrt(I_k), so that the interfaces (and
    # the ridge) stay on the scale of the data whatever the mode sizes.
    scales = [math.sqrt(s) for s in train.shape[:-1]]
    cores = _left_orthogonalize(cores, scales)
    monitor: Monitor[TTTensor] = Monitor(
        "tt_als", loop, has_validation=val is not None, callback=callback, snapshot=lambda m: m
    )
    idx = train.indices
    ones = torch.ones(train.nnz, 1, dtype=train.dtype, device=train.device)
    layout = SparseLayout.build(train)
    for it in range(1, loop.max_iter + 1):
        rights = [ones]
        for k in range(n_modes - 1, 0, -1):
            rights.append(_apply_right(rights[-1], cores[k], idx[k]))
        rights.reverse()  # rights[k]: interface to the right of core k
        left = ones
        for k in range(n_modes):
            shape = cores[k].shape
            cores[k] = _solve_core(layout, k, left, rights[k], shape, ridges[k], damping)
            if k < n_modes - 1:
                cores[k], cores[k + 1] = _move_right(cores[k], cores[k + 1], scales[k])
                left = _apply_left(left, cores[k], idx[k])
        resid2 = float(torch.sum((tt_values(cores, train) - train.values) ** 2))
        objective = resid2 + sum(r * float(torch.sum(c * c)) for r, c in zip(ridges, cores))
        val_rmse = rmse_of(tt_values(cores, val), val.values) if val is not None else math.nan
        model = _standard(cores, scales)
        if monitor.step(it, (resid2 / train.nnz) ** 0.5, val_rmse, model, objective):
            break
    return monitor.result(
        _standard(cores, scales), clock.elapsed, extras={"empty_slices": empty_slices(train)}
    )


def _move_right(
    core: torch.Tensor, nxt: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """QR of ``core``'s left unfolding; ``Q * scale`` stays, ``R / scale`` moves into ``nxt``."""
    r_k, size, r_next = core.shape
    q, r = torch.linalg.qr(core.reshape(r_k * size, r_next))
    return q.reshape(r_k, size, q.shape[1]) * scale, torch.tensordot(r / scale, nxt, dims=1)


def _left_orthogonalize(cores: list[torch.Tensor], scales: list[float]) -> list[torch.Tensor]:
    out = list(cores)
    for k in range(len(out) - 1):
        out[k], out[k + 1] = _move_right(out[k], out[k + 1], scales[k])
    return out


def _standard(cores: list[torch.Tensor], scales: list[float]) -> TTTensor:
    """The same model with left-orthonormal cores ``0..N-2`` (the scales moved to the last)."""
    out = [c / s for c, s in zip(cores[:-1], scales)]
    return TTTensor((*out, cores[-1] * math.prod(scales)))


def _random_cores(
    train: SparseTensor, ranks: list[int], generator: torch.Generator | None
) -> list[torch.Tensor]:
    cores = [
        randn((ranks[k], size, ranks[k + 1]), generator, train.dtype, train.device)
        for k, size in enumerate(train.shape)
    ]
    rms = float(torch.sqrt(torch.mean(train.values.double() ** 2))) or 1.0
    cores[-1] = cores[-1] * rms
    return cores


def _spectral_cores(
    train: SparseTensor, ranks: list[int], generator: torch.Generator | None
) -> list[torch.Tensor]:
    """TT-SVD of the zero-filled observations rescaled by ``1 / density``, on sparse data:
    each step takes the leading subspace of the current ``(r_k I_k) x rest`` unfolding
    (:func:`leading_subspace`) and projects the entries onto it (their number grows by at most
    ``r_{k+1}`` per step; repeated coordinates are summed)."""
    cur = train.with_values(train.values / train.density)
    cores = []
    r_prev = 1
    shape = train.shape
    for k in range(train.ndim - 1):
        r = ranks[k + 1]
        u = leading_subspace(cur, 0, r, generator=generator)
        if u.shape[1] < r:
            extra = torch.randn(
                u.shape[0], r - u.shape[1], generator=generator, dtype=torch.float64
            )
            u = torch.cat([u, extra.to(u) / math.sqrt(u.shape[0])], 1)
        cores.append(u.reshape(r_prev, shape[k], r))
        weights = u[cur.indices[0].long()] * cur.values[:, None]  # (nnz, r)
        first = torch.arange(r, device=u.device)[None, :] * shape[k + 1] + cur.indices[1][:, None]
        rest = cur.indices[2:].long().repeat_interleave(r, dim=1)
        cur = SparseTensor.from_coo(
            torch.cat([first.reshape(1, -1), rest], 0),
            weights.reshape(-1),
            (r * shape[k + 1], *shape[k + 2 :]),
            duplicates="sum",
        )
        r_prev = r
    last = cur.to_dense().reshape(r_prev, shape[-1], 1)
    cores.append(last)
    return cores


def _solve_core(
    layout: SparseLayout,
    k: int,
    left: torch.Tensor,
    right: torch.Tensor,
    core_shape: Sequence[int],
    l2: float,
    damping: float,
) -> torch.Tensor:
    lay = layout.mode(k)
    r_k, size, r_next = core_shape
    left_l, right_l = lay.permute(left), lay.permute(right)

    def features(s: int, e: int) -> torch.Tensor:
        a, b = left_l[s:e], right_l[s:e]
        return (a.unsqueeze(2) * b.unsqueeze(1)).reshape(e - s, r_k * r_next)

    rows = solve_rows(lay, size, r_k * r_next, features, l2, damping=damping)  # (I_k, P)
    return rows.reshape(size, r_k, r_next).permute(1, 0, 2).contiguous()
