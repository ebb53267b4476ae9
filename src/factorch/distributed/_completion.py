"""Distributed CP completion: row-wise ALS on the observed entries, sharded over ranks.

The single-process method (:func:`factorch.completion.cp_als`, ``method="als"``) solves, for each
row ``i`` of ``A_n`` and with the other factors fixed, the ridge regression on the observed
entries of slice ``i``:

    (sum_p h_p h_p^T + l2 I) u_i = sum_p x_p h_p,    h_p = *_{m != n} A_m[i_m(p)].

Both sums are over entries, so they split over ranks like the MTTKRP of CP-ALS: each rank sums
over its block's entries for the rows it touches (upper triangle of the ``R x R`` system, the
right-hand side and the entry count: ``R (R + 3) / 2 + 1`` numbers per row), partial systems are
added at the row's owner inside the layer (:class:`~factorch.distributed._exchange.RowExchange`),
owners solve (batched Cholesky with ``l2`` and ``damping``, as :func:`factorch.completion.cp_als`;
minimum-norm pseudo-inverse for singular or, without a ridge, underdetermined rows: an unobserved
slice gets a zero row),
and send the new rows to the members that touch them. Training RMSE, the ridge objective and the
validation RMSE are sums over entries and rows, all-reduced as scalars.

Stopping, the best-epoch model on a validation set and the result are those of
:func:`factorch.completion.cp_als`: converged when the ridge objective changes by less than
``tol`` relatively; stopped early after ``patience`` epochs without a better validation RMSE; the
returned model is normalized (unit columns, norms in the weights).

Reference: Tomasi and Bro, Chemometr. Intell. Lab. Syst. 75, 2005; Zhou et al., "Large-scale
parallel collaborative filtering for the Netflix prize", 2008 (row-wise ALS); Smith et al., "An
exploration of optimization algorithms for high performance tensor completion", SC 2016.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from .._numerics import check_memory, no_autocast, power_of_two_scale, upcast, working_dtype
from .._timing import Stopwatch
from ..algebra.internal import ModeLayout, SparseLayout
from ..completion import CompletionCallback, CompletionResult, CompletionState
from ..decomp import cp_degeneracy
from ..tensors import CPTensor
from ._checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ._comm import Comm
from ._common import (
    agree_problem,
    check_init,
    check_run_options,
    check_shard,
    chunk_rows,
    gather_full,
    init_summary,
    problem_json,
)
from ._exchange import RowExchange
from ._shard import LocalCoordinates, SparseShard

__all__ = ["cp_als"]

_LOG = logging.getLogger("factorch.distributed")

_CHUNK_ELEMENTS = 1 << 20


@no_autocast
def cp_als(
    shard: SparseShard,
    rank: int,
    *,
    validation: SparseShard | None = None,
    l2: float = 0.0,
    damping: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    init: Literal["random"] | CPTensor = "random",
    checkpoint: Checkpoint | None = None,
    timeout: float = 600.0,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[CPTensor]:
    """CP completion by row-wise ALS on observed entries sharded over a ``torch.distributed``
    job: what :func:`factorch.completion.cp_als` (``method="als"``) computes on all of them.

    Args:
        shard: this rank's observed entries (:class:`SparseShard`; float16/bfloat16 are fitted
            in float32).
        rank: number of components ``R``.
        validation: held-out entries sharded on the same layout (the model with the lowest
            validation RMSE is returned; the run stops after ``patience`` epochs without
            improvement).
        l2: absolute ridge ``l2 sum_n ||A_n||_F^2`` (default 0: a slice with fewer than ``R``
            observations gets the minimum-norm row).
        damping: data-relative safeguard of the row solves, as in
            :func:`factorch.completion.cp_als`: ``damping`` times the mean diagonal of each
            determined row's Gram is added to its diagonal (0: exact least-squares rows).
        max_iter: maximum number of epochs (sweeps over every factor).
        tol: converged when the ridge objective changes by less than ``tol`` relatively.
        patience: epochs without validation improvement before stopping.
        init: ``"random"`` (Gaussian factors whose model has the RMS of the observed values,
            drawn on every rank from ``generator`` as :func:`factorch.completion.cp_als` draws
            them) or a :class:`CPTensor` (weights folded into the first factor). The spectral
            ``"svd"`` start of the single-process function is not offered.
        checkpoint: save every ``checkpoint.every`` epochs; resume when the file exists.
        timeout: seconds any collective waits before every rank stops with
            :class:`DistributedError`.
        generator: random source of ``init="random"`` (same state on every rank).
        callback: called on rank 0 after each epoch with a :class:`CompletionState` (full model
            gathered); True stops every rank.

    Returns:
        The same :class:`~factorch.completion.CompletionResult` on every rank: the normalized
        :class:`CPTensor`, train/validation RMSE per epoch, best epoch, ``converged``,
        ``stopped_early``; ``extras``: ``"empty_slices"`` (per mode, slices with no observed
        entry), ``"method"`` (``"als"``), ``"degeneracy"``, ``"comm_bytes"``,
        ``"comm_seconds"``, ``"comm_calls"``, ``"comm_injected_seconds"``, ``"grid"``,
        ``"resumed_from"``.

    Raises:
        TypeError, ValueError: bad arguments or ranks that disagree (the same error on every
            rank). DistributedError: a rank died or hung past ``timeout``.

    Not differentiable (closed-form solves under ``torch.no_grad``); autocast is ignored.

    Example:
        A one-rank job in this process (under ``torchrun --nproc-per-node=N`` every rank runs
        the same lines after :func:`init`, each with its own shard):

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x = torch.rand(8, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> mask = torch.rand(8, 6, 5, generator=torch.Generator().manual_seed(1)) < 0.6
        >>> observed = factorch.tensors.SparseTensor.from_dense(x, mask)
        >>> shard = SparseShard.from_full(observed, ShardLayout.even(x.shape, (1, 1, 1)), 0)
        >>> res = cp_als(shard, 2, generator=torch.Generator().manual_seed(0))
        >>> res.model.shape, res.train_rmse[-1] < res.train_rmse[0]
        ((8, 6, 5), True)
        >>> dist.destroy_process_group()
    """
    fn = "distributed.cp_als"
    device = getattr(shard, "device", torch.device("cpu"))
    comm = Comm.open(fn, timeout, device)
    error: Exception | None = None
    summary: dict[str, object] = {}
    try:
        checked = check_shard(shard, comm, fn, sparse_ok=True)
        if not isinstance(checked, SparseShard):
            raise TypeError(
                f"{fn}: shard must be a SparseShard of observed entries; got a DenseShard (build "
                "one from SparseTensor.from_dense(x, mask) with SparseShard.from_full)."
            )
        rank = check_positive_int(rank, fn, "rank")
        iters, tol_, l2_ = check_run_options(fn, max_iter, tol, l2, checkpoint, generator, callback)
        patience_ = check_positive_int(patience, fn, "patience")
        damping_ = _check_damping(damping, fn)
        check_init(init, checked.shape, rank, checked.dtype, fn)
        _check_validation(validation, checked, fn)
        check_memory(
            sum(checked.shape) * rank * 4 + checked.nnz * (rank + 8),
            working_dtype(checked.dtype),
            checked.device,
            fn,
            f"a rank-{rank} distributed CP completion of this shard",
        )
        summary = {
            "shape": checked.shape,
            "layout": checked.layout.fingerprint,
            "dtype": str(checked.dtype),
            "rank (components)": rank,
            "options": (iters, tol_, l2_, damping_, patience_),
            "validation": validation is not None,
            "checkpoint": None if checkpoint is None else (str(checkpoint.path), checkpoint.every),
            **init_summary(init, generator),
        }
    except (TypeError, ValueError, IndexError) as err:
        error = err
    comm.agree(error)
    agree_problem(comm, summary)
    if not isinstance(checked, SparseShard):  # unreachable after agree; narrows the type
        raise TypeError(f"{fn}: shard must be a SparseShard.")
    opts = _Options(
        rank, init, iters, tol_, l2_, damping_, patience_, checkpoint, generator, callback
    )
    with torch.no_grad():
        return _Run(comm, checked, validation, opts).fit()


def _check_damping(damping: object, fn: str) -> float:
    if isinstance(damping, bool) or not isinstance(damping, (int, float)):
        raise TypeError(f"{fn}: damping must be a number; got {type(damping).__name__}.")
    if not math.isfinite(damping) or damping < 0:
        raise ValueError(f"{fn}: damping must be a finite number >= 0; got {damping!r}.")
    return float(damping)


def _check_validation(validation: object, shard: SparseShard, fn: str) -> None:
    if validation is None:
        return
    if not isinstance(validation, SparseShard):
        raise TypeError(
            f"{fn}: validation must be a SparseShard of held-out entries or None; got "
            f"{type(validation).__name__}."
        )
    if validation.layout != shard.layout or validation.rank != shard.rank:
        raise ValueError(
            f"{fn}: validation must be sharded on the training shard's layout and rank (build "
            "it with SparseShard.from_full(validation, shard.layout, shard.rank))."
        )


@dataclass(frozen=True)
class _Options:
    rank: int
    init: Literal["random"] | CPTensor
    max_iter: int
    tol: float
    l2: float
    damping: float
    patience: int
    checkpoint: Checkpoint | None
    generator: torch.Generator | None
    callback: CompletionCallback | None


@dataclass
class _Monitor:
    """The bookkeeping of :func:`factorch.completion.cp_als`'s monitor (what a checkpoint
    restores): RMSE histories, the best validation epoch, patience and the objective."""

    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = math.inf
    bad: int = 0
    prev_objective: float | None = None
    converged: bool = False
    stopped_early: bool = False


def row_systems(
    lay: ModeLayout, others: list[torch.Tensor], rows: int, values: torch.Tensor
) -> torch.Tensor:
    """Per row, ``[upper triangle of sum_p h_p h_p^T, sum_p x_p h_p, count]``
    (``(rows, T + R + 1)``; the count of observed entries is exact below ``2**53``)."""
    rank = others[0].shape[1]
    dtype, device = values.dtype, values.device
    iu = torch.triu_indices(rank, rank, device=device)
    n_tri = iu.shape[1]
    out = torch.zeros(rows, n_tri + rank + 1, dtype=dtype, device=device)
    nnz = values.shape[0]
    if nnz == 0:
        return out
    chunk = max(64, _CHUNK_ELEMENTS // (n_tri + rank))
    bag = torch.arange(min(chunk, nnz), device=device)
    ones = torch.ones(min(chunk, nnz), dtype=dtype, device=device)
    for s in range(0, nnz, chunk):
        e = min(nnz, s + chunk)
        n = e - s
        h = others[0].index_select(0, lay.others[0][s:e].long())
        for f, col in zip(others[1:], lay.others[1:]):
            h.mul_(f.index_select(0, col[s:e].long()))
        r0, r1 = int(lay.rows[s]), int(lay.rows[e - 1])
        offs = lay.offsets[r0 : r1 + 2].clamp(s, e) - s
        tri = h.index_select(1, iu[0]).mul_(h.index_select(1, iu[1]))
        out[r0 : r1 + 1, :n_tri] += F.embedding_bag(
            bag[:n], tri, offs, mode="sum", per_sample_weights=ones[:n], include_last_offset=True
        )
        out[r0 : r1 + 1, n_tri:-1] += F.embedding_bag(
            bag[:n], h, offs, mode="sum", per_sample_weights=values[s:e], include_last_offset=True
        )
        out[r0 : r1 + 1, -1] += offs.diff().to(dtype)
    return out


def solve_rows(systems: torch.Tensor, rank: int, l2: float, damping: float) -> torch.Tensor:
    """Solve every row's ``(G + (l2 + damping mean(diag G)) I) u = b`` from its packed system
    (the rule of :func:`factorch.completion.cp_als`'s row solves): Cholesky; the minimum-norm
    least-squares row (pseudo-inverse, relative cutoff ``10 R eps``) where the system is
    numerically singular and, without a ridge, where the row has fewer than ``R`` entries."""
    rows = systems.shape[0]
    dtype, device = systems.dtype, systems.device
    iu = torch.triu_indices(rank, rank, device=device)
    n_tri = iu.shape[1]
    raw = torch.zeros(rows, rank, rank, dtype=dtype, device=device)
    raw[:, iu[0], iu[1]] = systems[:, :n_tri]
    raw[:, iu[1], iu[0]] = systems[:, :n_tri]
    rhs = systems[:, n_tri:-1]
    counts = systems[:, -1]
    eye = torch.eye(rank, dtype=dtype, device=device)
    gram = raw + l2 * eye if l2 else raw
    if damping:
        gram = gram + (damping * raw.diagonal(dim1=-2, dim2=-1).mean(-1))[:, None, None] * eye
    chol, info = torch.linalg.cholesky_ex(gram)
    diag = chol.diagonal(dim1=-2, dim2=-1).abs()
    eps = torch.finfo(dtype).eps
    bad = (info != 0) | ~(diag.amin(-1) > diag.amax(-1) * eps**0.5)
    bad |= ~torch.isfinite(diag).all(-1)
    if not l2:
        bad |= counts < rank
        gram = torch.where(bad[:, None, None], raw, gram)  # underdetermined: undamped
    out = torch.empty_like(rhs)
    good = ~bad
    if bool(good.any()):
        out[good] = torch.cholesky_solve(rhs[good].unsqueeze(-1), chol[good]).squeeze(-1)
    if bool(bad.any()):
        pinv = torch.linalg.pinv(gram[bad], hermitian=True, rtol=10.0 * rank * eps)
        out[bad] = (pinv @ rhs[bad].unsqueeze(-1)).squeeze(-1)
    return out


def predictions(factors: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
    """CP model values (unit weights) at block-relative ``indices`` ``(N, k)``."""
    k = indices.shape[1]
    rank = factors[0].shape[1]
    out = torch.empty(k, dtype=factors[0].dtype, device=factors[0].device)
    step = max(256, _CHUNK_ELEMENTS // max(rank, 1))
    for s in range(0, k, step):
        e = min(k, s + step)
        prod = factors[0].index_select(0, indices[0, s:e].long())
        for n in range(1, len(factors)):
            prod.mul_(factors[n].index_select(0, indices[n, s:e].long()))
        torch.sum(prod, 1, out=out[s:e])
    return out


def _scaled_ridge(l2: float, scale: float, n_modes: int, dtype: torch.dtype) -> float:
    """The ridge for the scaled values ``x = s x'``, ``A_n = s^(1/N) A_n'``: ``l2 s^(2/N - 2)``
    (as :func:`factorch.completion.cp_als` scales it), computed in log space (no overflow) and
    capped at the square root of the dtype's largest value, so that ``G + l2 I`` stays finite:
    a ridge that large dwarfs the data and the optimal factors are (numerically) zero anyway."""
    if l2 == 0.0 or scale == 1.0:
        return l2
    log2 = math.log2(l2) + (2.0 / n_modes - 2.0) * math.log2(scale)
    return 2.0 ** min(log2, math.log2(torch.finfo(dtype).max) / 2)


class _Run:
    """One distributed row-wise ALS fit."""

    def __init__(
        self, comm: Comm, shard: SparseShard, validation: SparseShard | None, opts: _Options
    ) -> None:
        self.comm, self.shard, self.opts = comm, shard, opts
        self.work = working_dtype(shard.dtype)
        self.device = shard.device
        coords = shard.local()
        peak = max((float(coords.values.abs().max()) if shard.nnz else 0.0), 0.0)
        top = comm.all_reduce(torch.tensor([peak], dtype=torch.float64), op="max")
        # completion.cp_als's exact scaling: the power of two that brings max|x| into [0.5, 1).
        self.scale = power_of_two_scale(top)
        n_modes = len(shard.shape)
        self.l2 = _scaled_ridge(opts.l2, self.scale, n_modes, self.work)
        vals = upcast(coords.values) / self.scale
        self.train = LocalCoordinates(coords.indices, vals, coords.shape)
        self.val: LocalCoordinates | None = None
        if validation is not None:
            v = validation.local()
            self.val = LocalCoordinates(v.indices, upcast(v.values) / self.scale, v.shape)
        self.layout = SparseLayout.build(self.train) if shard.nnz else None
        train_sq = float(torch.sum(vals.double() ** 2)) if shard.nnz else 0.0
        n_val = float(self.val.values.numel()) if self.val is not None else 0.0
        sums = comm.all_reduce_sum([float(shard.nnz), train_sq, n_val])
        self.nnz, self.sq_sum, self.n_val = int(sums[0]), sums[1], int(sums[2])
        if self.nnz == 0:
            raise ValueError(f"{comm.fn}: no rank holds an observed entry; nothing to fit.")
        comm.setup_layers([shard.layout.layers(n) for n in range(n_modes)])
        coords_g = shard.layout.coords(comm.rank)
        self.ex = [
            RowExchange.build(
                comm,
                n,
                shard.layout.chunk(n, coords_g[n])[0],
                self._touched(n),
                self.device,
            )
            for n in range(n_modes)
        ]

    def _touched(self, mode: int) -> torch.Tensor:
        size = self.shard.layout.block_shape(self.comm.rank)[mode]
        mask = torch.zeros(size, dtype=torch.bool)
        for c in (self.train, self.val):
            if c is not None and c.values.numel():
                mask |= torch.bincount(c.indices[mode].long().cpu(), minlength=size) > 0
        return mask

    # --- one epoch ---------------------------------------------------------------------------
    def update(self, factors: list[torch.Tensor], mode: int) -> None:
        rows = self.ex[mode].rows
        if self.layout is None:
            part = torch.zeros(
                rows,
                self.opts.rank * (self.opts.rank + 3) // 2 + 1,
                dtype=self.work,
                device=self.device,
            )
        else:
            lay = self.layout.mode(mode)
            others = [f for m, f in enumerate(factors) if m != mode]
            part = row_systems(lay, others, rows, lay.values)
        systems = self.ex[mode].reduce(self.comm, part)
        new = solve_rows(systems, self.opts.rank, self.l2, self.opts.damping)
        self.ex[mode].distribute(self.comm, new, factors[mode])

    def scores(self, factors: list[torch.Tensor]) -> tuple[float, float, float]:
        """Training RMSE, ridge objective and validation RMSE (scaled units)."""
        resid2 = 0.0
        if self.shard.nnz:
            resid2 = float(
                torch.sum((predictions(factors, self.train.indices) - self.train.values) ** 2)
            )
        params = sum(
            float(torch.sum(f.index_select(0, ex.owned) ** 2)) for f, ex in zip(factors, self.ex)
        )
        val2 = 0.0
        if self.val is not None and self.val.values.numel():
            err = predictions(factors, self.val.indices).double() - self.val.values.double()
            val2 = float(torch.sum(err * err))
        resid2, params, val2 = self.comm.all_reduce_sum([resid2, params, val2])
        val_rmse = math.sqrt(val2 / self.n_val) if self.n_val else math.nan
        return math.sqrt(resid2 / self.nnz), resid2 + self.l2 * params, val_rmse

    # --- start, checkpoints, result ----------------------------------------------------------
    def start(self) -> list[torch.Tensor]:
        opts = self.opts
        if isinstance(opts.init, CPTensor):
            full = [upcast(f.detach()).to(self.device).clone() for f in opts.init.factors]
            w = opts.init.weights.detach().to(device=self.device, dtype=torch.float64) / self.scale
            full[0] = full[0] * w.to(full[0].dtype)
        else:
            rms = math.sqrt(self.sq_sum / self.nnz)
            rms = rms if rms > 0 else 1.0
            std = (rms / math.sqrt(opts.rank)) ** (1.0 / len(self.shard.shape))
            full = [
                (
                    torch.randn((s, opts.rank), generator=opts.generator, dtype=torch.float64) * std
                ).to(device=self.device, dtype=self.work)
                for s in self.shard.shape
            ]
        return [chunk_rows(f, ex) for f, ex in zip(full, self.ex)]

    def problem(self) -> dict[str, object]:
        return problem_json(
            {
                "method": "distributed.cp_als",
                "shape": self.shard.shape,
                "rank": self.opts.rank,
                "dtype": str(self.shard.dtype),
                "scale": self.scale,
                "l2": self.opts.l2,
                "validation": self.val is not None,
            }
        )

    def full(self, factors: list[torch.Tensor]) -> list[torch.Tensor]:
        return [
            gather_full(self.comm, ex, f, s) for f, ex, s in zip(factors, self.ex, self.shard.shape)
        ]

    def model(self, factors: list[torch.Tensor], *, normalize: bool) -> CPTensor:
        full = self.full(factors)
        ones = torch.ones(self.opts.rank, dtype=self.work, device=self.device)
        m = CPTensor(ones, tuple(full))
        if normalize:
            m = m.normalize()
        weights = (m.weights.double() * self.scale).to(self.shard.dtype)
        return CPTensor(weights, tuple(f.to(self.shard.dtype) for f in m.factors))

    def save(
        self,
        factors: list[torch.Tensor],
        best: list[torch.Tensor] | None,
        mon: _Monitor,
        epoch: int,
    ) -> None:
        if self.opts.checkpoint is None:
            return
        tensors = {f"factor_{n}": f for n, f in enumerate(self.full(factors))}
        if best is not None:
            tensors.update({f"best_{n}": f for n, f in enumerate(self.full(best))})
        meta = {**self.problem(), "iteration": epoch, "monitor": vars(mon)}
        save_checkpoint(self.comm, self.opts.checkpoint, tensors, meta)

    def resume(
        self, factors: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None, _Monitor, int, int | None]:
        """Factors, best factors, monitor, first epoch and the epoch resumed from."""
        ckpt = self.opts.checkpoint
        loaded = (
            None if ckpt is None else load_checkpoint(self.comm, ckpt, self.problem(), self.device)
        )
        if loaded is None:
            return factors, None, _Monitor(), 1, None
        tensors, meta = loaded
        n_modes = len(self.shard.shape)
        factors = [chunk_rows(tensors[f"factor_{n}"], ex) for n, ex in enumerate(self.ex)]
        best = None
        if "best_0" in tensors:
            best = [chunk_rows(tensors[f"best_{n}"], ex) for n, ex in enumerate(self.ex[:n_modes])]
        mon = _Monitor(**meta["monitor"])
        return factors, best, mon, int(meta["iteration"]) + 1, int(meta["iteration"])

    def fit(self) -> CompletionResult[CPTensor]:
        clock = Stopwatch()
        comm, opts = self.comm, self.opts
        factors, best, mon, first, resumed = self.resume(self.start())
        has_callback = bool(comm.broadcast_object(opts.callback is not None))
        for epoch in range(first, opts.max_iter + 1):
            comm.phase = f"epoch {epoch}"
            for mode in range(len(factors)):
                self.update(factors, mode)
            train_rmse, objective, val_rmse = self.scores(factors)
            if not math.isfinite(objective):
                raise FloatingPointError(
                    f"{comm.fn}: the training objective became NaN or Inf at epoch {epoch}; "
                    "raise l2."
                )
            mon.train.append(train_rmse)
            if self.val is not None:
                mon.val.append(val_rmse)
                if val_rmse < mon.best_val:
                    mon.best_val, mon.best_epoch, mon.bad = val_rmse, epoch, 0
                    best = [f.clone() for f in factors]
                else:
                    mon.bad += 1
                    mon.stopped_early = mon.bad >= opts.patience
            else:
                mon.best_epoch = epoch
            prev = mon.prev_objective
            if prev is not None and abs(prev - objective) <= opts.tol * max(abs(prev), 1e-300):
                mon.converged = True
            mon.prev_objective = objective
            if comm.rank == 0:
                _LOG.info(
                    "epoch %d: train RMSE %.6g, validation RMSE %.6g (%.3f s)",
                    epoch,
                    train_rmse * self.scale,
                    val_rmse * self.scale,
                    clock.elapsed,
                )
            stop = False
            if has_callback:
                model = self.model(factors, normalize=False)
                if comm.rank == 0 and opts.callback is not None:
                    s = self.scale
                    state = CompletionState(epoch, train_rmse * s, val_rmse * s, model)
                    stop = bool(opts.callback(state))
                stop = bool(comm.broadcast_object(stop))
            if opts.checkpoint is not None and epoch % opts.checkpoint.every == 0:
                self.save(factors, best, mon, epoch)
            if stop or mon.converged or mon.stopped_early:
                break
        return self.result(factors, best, mon, clock.elapsed, resumed)

    def result(
        self,
        factors: list[torch.Tensor],
        best: list[torch.Tensor] | None,
        mon: _Monitor,
        time_s: float,
        resumed: int | None,
    ) -> CompletionResult[CPTensor]:
        comm = self.comm
        comm.phase = "gathering the model"
        keep = best if self.val is not None and best is not None else factors
        model = self.model(keep, normalize=True)
        s = self.scale
        empty = self._empty_slices()
        return CompletionResult(
            model=model,
            train_rmse=tuple(v * s for v in mon.train),
            val_rmse=tuple(v * s for v in mon.val),
            best_epoch=mon.best_epoch if self.val is not None else len(mon.train),
            epochs=len(mon.train),
            converged=mon.converged,
            stopped_early=mon.stopped_early,
            time_s=time_s,
            extras={
                "empty_slices": empty,
                "method": "als",
                "degeneracy": cp_degeneracy(model),
                "comm_bytes": comm.stats.snapshot(),
                "comm_seconds": comm.stats.seconds,
                "comm_calls": comm.stats.calls,
                "comm_injected_seconds": comm.stats.injected_seconds,
                "grid": self.shard.layout.grid,
                "resumed_from": resumed,
            },
        )

    def _empty_slices(self) -> tuple[torch.Tensor, ...]:
        """Per mode, the global indices of slices without an observed training entry."""
        out = []
        idx = self.shard.global_indices()
        for n, size in enumerate(self.shard.shape):
            counts = torch.bincount(idx[n].cpu(), minlength=size).to(torch.int64)
            total = self.comm.all_reduce(counts, kind="setup")
            out.append((total == 0).nonzero().squeeze(1).to(self.device))
        return tuple(out)
