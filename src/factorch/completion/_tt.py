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

References: Grasedyck, Kluge and Krämer, "Variants of alternating least squares tensor
completion in the tensor train format", SIAM J. Sci. Comput. 37(5), 2015; Wang, Aggarwal and
Aeron, "Tensor completion by alternating minimization under the tensor train (TT) model", 2016.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..decomp.internal import check_tt_rank
from ..tensors import SparseTensor, TTTensor
from ._common import (
    Monitor,
    check_fit_options,
    empty_slices,
    observations,
    randn,
    ridge_objective,
    rmse_of,
    validation_set,
)
from ._result import CompletionCallback, CompletionResult
from ._rowwise import solve_rows
from ._spectral import leading_subspace

__all__ = ["tt_als"]

_CHUNK = 2**15


def _feasible(ranks: list[int], shape: Sequence[int]) -> list[int]:
    """Lower ranks so that ``r_{k+1} <= r_k I_k`` and ``r_k <= I_k r_{k+1}``."""
    r = list(ranks)
    for k in range(len(shape)):
        r[k + 1] = min(r[k + 1], r[k] * shape[k])
    for k in range(len(shape) - 1, -1, -1):
        r[k] = min(r[k], shape[k] * r[k + 1])
    return r


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


def tt_als(
    data: SparseTensor | torch.Tensor,
    rank: int | Sequence[int],
    *,
    mask: torch.Tensor | None = None,
    validation: SparseTensor | None = None,
    l2: float = 1e-3,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    init: Literal["svd", "random"] = "svd",
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[TTTensor]:
    """Tensor-train completion of a partially observed tensor by ALS over the cores.

    Args:
        data: observed entries (:class:`~factorch.tensors.SparseTensor`) or a dense tensor with
            ``mask`` (True = observed).
        rank: maximal TT ranks: an int (every inner rank) or ``N + 1`` ints with
            ``r_0 = r_N = 1``; ranks above what the shape allows are lowered (read
            ``result.model.rank``).
        validation: held-out entries for early stopping and model selection.
        l2: ridge weight on each solved core slice.
        init: ``"svd"`` (a TT-SVD of the zero-filled observations rescaled by the inverse
            density, computed from the observed entries only) or ``"random"``.
        max_iter, tol, patience, generator, callback: as in :func:`tucker_als`.

    Returns:
        :class:`CompletionResult` with a :class:`TTTensor` (cores ``0..N-2`` left-orthonormal).
        A slice of mode ``k`` without observations gets a zero core slice (predictions 0 there):
        ``extras["empty_slices"]``.

    Not differentiable. Device and dtype follow the data.
    """
    fn = "tt_als"
    train = observations(data, mask, fn)
    ranks = check_tt_rank(rank, train.ndim, fn)
    if ranks is None:
        raise TypeError(f"{fn}: rank must be an int or a tuple of N + 1 ints; got None.")
    ranks = _feasible(ranks, train.shape)
    l2, max_iter, tol, patience = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    if init not in ("svd", "random"):
        raise ValueError(f"{fn}: init must be 'svd' or 'random'; got {init!r}.")
    val = validation_set(validation, train, fn)
    clock = Stopwatch()
    n_modes = train.ndim
    with torch.no_grad():
        if init == "svd":
            cores = _spectral_cores(train, ranks, generator)
        else:
            cores = _random_cores(train, ranks, generator)
        # Working gauge: cores 0..N-2 orthogonal times sqrt(I_k), so that the interfaces (and
        # the ridge) stay on the scale of the data whatever the mode sizes.
        scales = [math.sqrt(s) for s in train.shape[:-1]]
        cores = _left_orthogonalize(cores, scales)
        monitor: Monitor[TTTensor] = Monitor(
            has_validation=val is not None,
            patience=patience,
            tol=tol,
            callback=callback,
            snapshot=lambda m: m,
        )
        idx = train.indices
        layout = SparseLayout.build(train)
        for it in range(1, max_iter + 1):
            rights = [torch.ones(train.nnz, 1, dtype=train.dtype, device=train.device)]
            for k in range(n_modes - 1, 0, -1):
                rights.append(_apply_right(rights[-1], cores[k], idx[k]))
            rights.reverse()  # rights[k]: interface to the right of core k
            left = torch.ones(train.nnz, 1, dtype=train.dtype, device=train.device)
            for k in range(n_modes):
                cores[k] = _solve_core(layout, k, left, rights[k], cores[k].shape, l2)
                if k < n_modes - 1:
                    cores[k], cores[k + 1] = _move_right(cores[k], cores[k + 1], scales[k])
                    left = _apply_left(left, cores[k], idx[k])
            train_rmse, objective = ridge_objective(tt_values(cores, train), train, l2, cores)
            val_rmse = rmse_of(tt_values(cores, val), val.values) if val is not None else math.nan
            model = _standard(cores, scales)
            if monitor.step(it, train_rmse, val_rmse, model, objective):
                break
        return monitor.result(
            _standard(cores, scales), clock.elapsed, extras={"empty_slices": empty_slices(train)}
        )


def _move_right(core: torch.Tensor, nxt: torch.Tensor, scale: float):
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


def _random_cores(train, ranks, generator) -> list[torch.Tensor]:
    cores = [
        randn((ranks[k], size, ranks[k + 1]), generator, train.dtype, train.device)
        for k, size in enumerate(train.shape)
    ]
    rms = float(torch.sqrt(torch.mean(train.values.double() ** 2))) or 1.0
    cores[-1] = cores[-1] * rms
    return cores


def _spectral_cores(train: SparseTensor, ranks, generator) -> list[torch.Tensor]:
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


def _solve_core(layout, k, left, right, core_shape, l2) -> torch.Tensor:
    lay = layout.mode(k)
    r_k, size, r_next = core_shape
    if lay.perm is None:
        left_l, right_l = left, right
    else:
        left_l, right_l = left[lay.perm], right[lay.perm]

    def features(s: int, e: int) -> torch.Tensor:
        a, b = left_l[s:e], right_l[s:e]
        return (a.unsqueeze(2) * b.unsqueeze(1)).reshape(e - s, r_k * r_next)

    rows = solve_rows(lay, size, r_k * r_next, features, l2)  # (I_k, r_k r_{k+1})
    return rows.reshape(size, r_k, r_next).permute(1, 0, 2).contiguous()
