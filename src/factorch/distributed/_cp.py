"""Distributed CP-ALS of a dense or sparse tensor sharded over ranks (medium-grained).

Every rank holds one block of the tensor (:class:`~factorch.distributed.DenseShard` or
:class:`~factorch.distributed.SparseShard`) and, per mode, the factor rows of its chunk. One
update of mode ``n`` is the single-process update (:func:`factorch.decomp.cp`) split by rows:

1. each rank computes the partial MTTKRP of its block (dense: the two-pass dimension tree of
   :mod:`factorch.decomp`, sparse: :func:`factorch.algebra.sparse_mttkrp`);
2. partial rows are summed at their owners, inside the layer only
   (:meth:`~factorch.distributed._exchange.RowExchange.reduce`);
3. owners solve ``A_n[rows] (*_{m != n} G_m + l2 I) = M_n[rows]`` (the R x R Grams ``G_m`` are
   replicated; Cholesky, pseudo-inverse when singular);
4. one all-reduce of ``A_n[owned]^T A_n[owned]`` (``R^2`` words) gives the column norms (the
   weights) and the new Gram; the last mode's also carries ``<M, A>`` for the error;
5. owners send the new rows to the layer members that touch them.

The error after a sweep, the switch to the exact error and the stopping rule are those of
:func:`factorch.decomp.cp` (one convergence rule): the free Gram formula while it resolves what
is asked of it, then the exact error -- the residual of each dense block summed over ranks, or,
for sparse data, ``||X||^2 - 2 <X, M> + ||M||^2`` evaluated in float64 from the nonzeros -- and
the last error is always the exact one. Given the same initial factors the iterates are those of
the single-process function up to rounding (float64: agree to ~1e-12).

Reference: S. Smith and G. Karypis, "A medium-grained algorithm for distributed sparse tensor
factorization", IPDPS 2016; T. Kolda and B. Bader, SIAM Review 51(3), 2009.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch

from .._checks import check_positive_int
from .._numerics import check_memory, no_autocast, upcast, working_dtype
from .._timing import Stopwatch
from ..decomp import Callback, DecompositionResult, IterationState, cp_degeneracy
from ..decomp.internal import (
    EXACT_ERROR_GAMMA,
    CPState,
    gram_error,
    gram_unresolved,
    hadamard_grams,
    output_model,
    solve_normal,
)
from ..tensors import CPTensor
from ._checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ._comm import Comm
from ._common import (
    Shard,
    agree_problem,
    check_init,
    check_run_options,
    check_shard,
    chunk_rows,
    gather_full,
    init_summary,
    open_local,
    problem_json,
)
from ._exchange import RowExchange
from ._local import DenseLocal, SparseLocal
from ._shard import DenseShard

__all__ = ["cp"]

_LOG = logging.getLogger("factorch.distributed")


@no_autocast
def cp(
    shard: Shard,
    rank: int,
    *,
    init: Literal["random"] | CPTensor = "random",
    max_iter: int = 100,
    tol: float = 1e-8,
    l2: float = 0.0,
    nonnegative: bool = False,
    checkpoint: Checkpoint | None = None,
    timeout: float = 600.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """CP-ALS of a tensor sharded over the ranks of a ``torch.distributed`` job.

    Every rank calls it with its own shard and the same options (checked: ranks that disagree
    on the layout, shape, dtype, rank or options all raise the same ``ValueError``). See the
    module docstring for the algorithm; it computes what :func:`factorch.decomp.cp` computes
    on the full tensor (a sparse tensor's unlisted entries are zeros, as in
    :func:`factorch.completion.sparse_cp`).

    Args:
        shard: this rank's :class:`DenseShard` or :class:`SparseShard` (float16/bfloat16 data
            are fitted in float32).
        rank: number of components ``R`` (any integral type).
        init: ``"random"`` (uniform [0, 1) factors drawn from ``generator`` on every rank, the
            draws of :func:`factorch.decomp.cp`'s random init) or a :class:`CPTensor` in the
            data's dtype (the same on every rank; copied).
        max_iter: maximum number of sweeps (counted from the start of the run, also when it
            resumes from a checkpoint).
        tol: stop when the relative error changes by less than ``tol``, or by less than the
            rounding floor of the two estimates when that is larger (as :func:`decomp.cp`).
        l2: ridge added to each normal-equation matrix (of unit-norm components).
        nonnegative: every factor non-negative, by multiplicative updates (the iterates of
            :func:`factorch.decomp.non_negative_cp` with ``method="mu"`` from the same start;
            the data must have no negative entry, ``l2`` must be 0; ``init="random"`` is not
            rescaled by the least-squares scalar there as it is in the single-process function,
            so pass a :class:`CPTensor` to compare).
        checkpoint: save the state every ``checkpoint.every`` sweeps (rank 0 writes, atomically)
            and, when the file exists, resume from it.
        timeout: seconds a rank waits for the others in any collective before every rank stops
            with :class:`DistributedError` (a rank died or hung). Must exceed the slowest
            rank's work between two collectives (one MTTKRP).
        generator: random source of ``init="random"`` (in the same state on every rank).
        callback: called on rank 0 after each sweep with an :class:`IterationState` (the full
            model, gathered: ``O(sum_n I_n R)`` traffic per sweep); True stops every rank.

    Returns:
        The same :class:`DecompositionResult` on every rank: a :class:`CPTensor` (unit-norm
        columns, scale in ``weights``) in the data's dtype and device, the relative error per
        sweep (the last one exact), ``converged``. ``extras``: ``"error_floors"``,
        ``"degeneracy"`` (:func:`~factorch.decomp.cp_degeneracy`), ``"comm_bytes"`` (bytes this
        rank sent, per kind), ``"row_bytes_per_sweep"``, ``"comm_seconds"``, ``"comm_calls"``,
        ``"comm_injected_seconds"`` (:func:`~factorch.distributed.inject_latency`), ``"grid"``,
        ``"layout"`` (fingerprint) and ``"resumed_from"`` (the checkpoint's sweep, or None).

    Raises:
        TypeError, ValueError, IndexError: bad arguments, or ranks that disagree (every rank
            raises the same error).
        RuntimeError: ``torch.distributed`` is not initialized.
        DistributedError: a rank died or hung for longer than ``timeout`` (every other rank).

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored.

    Example:
        A one-rank job in this process (under ``torchrun --nproc-per-node=N`` every rank runs
        the same lines after :func:`init`, each with its own shard):

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x = torch.rand(8, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> shard = DenseShard.from_full(x, ShardLayout.for_dense(x.shape, 1), dist.get_rank())
        >>> res = cp(shard, 2, generator=torch.Generator().manual_seed(1))
        >>> gen = torch.Generator().manual_seed(1)  # the same random start in one process:
        >>> ref = factorch.decomp.cp(x, 2, init="random", generator=gen)
        >>> gaps = [abs(a - b) for a, b in zip(res.errors, ref.errors)]
        >>> res.iterations == ref.iterations, max(gaps) < 1e-9  # the same iterates
        (True, True)
        >>> dist.destroy_process_group()
    """
    fn = "distributed.cp"
    device = getattr(shard, "device", torch.device("cpu"))
    comm = Comm.open(fn, timeout, device)
    error: Exception | None = None
    summary: dict[str, object] = {}
    try:
        checked = check_shard(shard, comm, fn)
        rank = check_positive_int(rank, fn, "rank")
        iters, tol_, l2_ = check_run_options(fn, max_iter, tol, l2, checkpoint, generator, callback)
        _check_nonnegative(nonnegative, l2_, checked, fn)
        check_init(init, checked.shape, rank, checked.dtype, fn)
        _check_memory(checked, rank, fn)
        summary = {
            "data": type(checked).__name__,
            "shape": checked.shape,
            "layout": checked.layout.fingerprint,
            "dtype": str(checked.dtype),
            "rank (components)": rank,
            "options": (iters, tol_, l2_, nonnegative),
            "checkpoint": None if checkpoint is None else (str(checkpoint.path), checkpoint.every),
            **init_summary(init, generator),
        }
    except (TypeError, ValueError, IndexError) as err:
        error = err
    comm.agree(error)
    agree_problem(comm, summary)
    opts = _Options(
        rank, init, iters, tol_, l2_, bool(nonnegative), checkpoint, generator, callback
    )
    with torch.no_grad():
        return _run(comm, checked, opts)


def _check_nonnegative(nonnegative: object, l2: float, shard: Shard, fn: str) -> None:
    if not isinstance(nonnegative, bool):
        raise TypeError(f"{fn}: nonnegative must be a bool; got {type(nonnegative).__name__}.")
    if not nonnegative:
        return
    if l2 != 0.0:
        raise ValueError(
            f"{fn}: l2 must be 0 with nonnegative=True; got {l2!r} (the multiplicative updates "
            "fit the unregularized objective, as factorch.decomp.non_negative_cp does)."
        )
    values = shard.local if isinstance(shard, DenseShard) else shard.values
    if values.numel() and bool((values < 0).any()):
        raise ValueError(
            f"{fn}: nonnegative=True needs data without negative entries; this rank's shard "
            f"has a minimum of {float(values.min())!r} (a non-negative model cannot fit them; "
            "use nonnegative=False)."
        )


def _check_memory(shard: Shard, rank: int, fn: str) -> None:
    work = working_dtype(shard.dtype)
    full = sum(shard.shape) * rank * 3 + len(shard.shape) * rank * rank
    if isinstance(shard, DenseShard):
        block = shard.local.numel()
        extra = block * rank // max(1, min(shard.local.shape, default=1)) + block
    else:
        extra = shard.nnz * (10 + rank) + (1 << 19)
    check_memory(
        full + extra, work, shard.device, fn, f"a rank-{rank} distributed CP fit of this shard"
    )


@dataclass(frozen=True)
class _Options:
    rank: int
    init: Literal["random"] | CPTensor
    max_iter: int
    tol: float
    l2: float
    nonnegative: bool
    checkpoint: Checkpoint | None
    generator: torch.Generator | None
    callback: Callback | None


@dataclass
class _Iterate:
    """The distributed iterate: replicated weights and Grams, this rank's chunk of each
    factor (owned rows authoritative, touched rows refreshed after every update)."""

    weights: torch.Tensor
    factors: list[torch.Tensor]
    grams: list[torch.Tensor]


@dataclass
class _History:
    """Errors, their floors and the error estimate in force (what a checkpoint restores)."""

    errors: list[float]
    floors: list[float]
    exact: bool = False
    comparable_from: int = 0


class _Solver:
    """One distributed CP-ALS run: the data, the exchanges and the sweep."""

    def __init__(self, comm: Comm, shard: Shard, opts: _Options) -> None:
        self.comm = comm
        self.shard = shard
        self.opts = opts
        self.local, self.scale, self.norm_x2, self.ex = open_local(comm, shard)
        self.work = working_dtype(shard.dtype)
        self.device = shard.device

    # --- the sweep ---------------------------------------------------------------------------
    def sweep(self, it: _Iterate) -> torch.Tensor:
        """One ALS sweep in place; returns the all-reduced ``sum_i M_{N-1}[i] * A_{N-1}[i]``
        (per column, normalized last factor) for the Gram error formula."""
        n_modes = len(it.factors)
        r = self.opts.rank
        inner = torch.zeros(r, dtype=self.work, device=self.device)
        for mode in range(n_modes):
            partial = self.local.mttkrp(it.factors, mode)
            m = self.ex[mode].reduce(self.comm, partial)
            v = hadamard_grams(it.grams, skip=mode)
            if self.opts.nonnegative:
                new = self._multiplicative(it, mode, m, v)
            else:
                new = solve_normal(m, v, self.opts.l2)
            last = mode == n_modes - 1
            stats = new.mT @ new
            if last:  # <M_{N-1}, A_{N-1}> per column rides on the last Gram's all-reduce
                stats = torch.cat([stats, (m * new).sum(0, keepdim=True)])
            stats = self.comm.all_reduce(stats)
            norms = stats[:r].diagonal().clamp_min(0).sqrt()
            it.weights = torch.where(norms > 0, norms, torch.ones_like(norms))
            new = new / it.weights
            it.grams[mode] = stats[:r] / (it.weights[:, None] * it.weights[None, :])
            self.ex[mode].distribute(self.comm, new, it.factors[mode])
            if last:
                inner = stats[r] / it.weights
        return inner

    def _multiplicative(
        self, it: _Iterate, mode: int, m: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Lee-Seung update of the owned rows, ``B * M / (B V)`` with ``B = A diag(w)`` (the
        weights folded into the updated factor: the single-process update of unnormalized
        factors, whose column scales cancel)."""
        old = it.factors[mode].index_select(0, self.ex[mode].owned) * it.weights
        eps = torch.finfo(old.dtype).eps
        return old * (m / (old @ v).clamp_min(eps))

    # --- errors ------------------------------------------------------------------------------
    def gram_error(self, it: _Iterate, inner: torch.Tensor) -> tuple[float, float]:
        ones = torch.ones(1, self.opts.rank, dtype=self.work, device=self.device)
        return gram_error(self.norm_x2, inner[None, :], CPState(it.weights, [ones], it.grams))

    def exact_error(self, it: _Iterate) -> tuple[float, float]:
        """Dense: the residual summed over blocks. Sparse: ``||X||^2 - 2<X, M> + ||M||^2`` in
        float64 from the nonzeros and float64 Grams."""
        if isinstance(self.local, DenseLocal):
            total = self.comm.all_reduce_sum([self.local.residual_sq(it.weights, it.factors)])[0]
            eps = torch.finfo(self.work).eps
            if self.norm_x2 <= 0:
                return (0.0 if total == 0 else math.inf), 0.0
            norm_x = math.sqrt(self.norm_x2)
            weight_sum = float(it.weights.abs().sum())
            return math.sqrt(total) / norm_x, EXACT_ERROR_GAMMA * eps * (1 + weight_sum / norm_x)
        return self._sparse_error(it.weights, it.factors)

    def _sparse_error(
        self, weights: torch.Tensor, factors: list[torch.Tensor]
    ) -> tuple[float, float]:
        local = self.local
        if not isinstance(local, SparseLocal):
            raise RuntimeError("distributed.cp: the float64 error formula is for sparse data.")
        r = self.opts.rank
        parts = [local.inner64(factors)[None, :]]
        for f, ex in zip(factors, self.ex):
            own = f.index_select(0, ex.owned).double()
            parts.append(own.mT @ own)
        sums = self.comm.all_reduce(torch.cat(parts))
        grams = [sums[1 + n * r : 1 + (n + 1) * r] for n in range(len(factors))]
        ones = torch.ones(1, r, dtype=torch.float64, device=self.device)
        state = CPState(weights.double(), [ones], grams)
        return gram_error(self.norm_x2, sums[:1], state)

    # --- state -------------------------------------------------------------------------------
    def start(self) -> tuple[_Iterate, _History, int, int | None]:
        """The initial iterate (or the checkpoint's), its history, the first sweep to run and
        the sweep resumed from."""
        opts = self.opts
        shape = self.shard.shape
        if isinstance(opts.init, CPTensor):
            weights = upcast(opts.init.weights.detach()).to(self.device) / self.scale
            full = [upcast(f.detach()).to(self.device) for f in opts.init.factors]
        else:
            weights = torch.ones(opts.rank, dtype=self.work, device=self.device)
            full = [
                torch.rand((s, opts.rank), generator=opts.generator, dtype=self.work).to(
                    self.device
                )
                for s in shape
            ]
        grams = [f.mT @ f for f in full]  # as CPState.start: the same bits as single-process
        it = _Iterate(weights, [chunk_rows(f, ex) for f, ex in zip(full, self.ex)], grams)
        history = _History([], [])
        if opts.checkpoint is None:
            return it, history, 1, None
        loaded = load_checkpoint(self.comm, opts.checkpoint, self.problem(), self.device)
        if loaded is None:
            return it, history, 1, None
        tensors, meta = loaded
        it = _Iterate(
            tensors["weights"],
            [chunk_rows(tensors[f"factor_{n}"], ex) for n, ex in enumerate(self.ex)],
            [tensors[f"gram_{n}"] for n in range(len(shape))],
        )
        history = _History(
            list(meta["errors"]), list(meta["floors"]), meta["exact"], meta["comparable_from"]
        )
        return it, history, int(meta["iteration"]) + 1, int(meta["iteration"])

    def problem(self) -> dict[str, object]:
        return problem_json(
            {
                "method": "distributed.cp",
                "shape": self.shard.shape,
                "rank": self.opts.rank,
                "dtype": str(self.shard.dtype),
                "scale": self.scale,
                "l2": self.opts.l2,
                "nonnegative": self.opts.nonnegative,
            }
        )

    def full_factors(self, it: _Iterate) -> list[torch.Tensor]:
        return [
            gather_full(self.comm, ex, f, s)
            for f, ex, s in zip(it.factors, self.ex, self.shard.shape)
        ]

    def save(self, it: _Iterate, history: _History, sweep: int, ckpt: Checkpoint) -> None:
        full = self.full_factors(it)
        tensors = {f"factor_{n}": f for n, f in enumerate(full)}
        tensors.update({f"gram_{n}": g for n, g in enumerate(it.grams)})
        tensors["weights"] = it.weights
        meta = {
            **self.problem(),
            "iteration": sweep,
            "errors": history.errors,
            "floors": history.floors,
            "exact": history.exact,
            "comparable_from": history.comparable_from,
        }
        save_checkpoint(self.comm, ckpt, tensors, meta)

    def model(self, it: _Iterate) -> CPTensor:
        full = self.full_factors(it)
        return output_model(CPState(it.weights, full, []), self.scale, self.shard.dtype)


def _run(comm: Comm, shard: Shard, opts: _Options) -> DecompositionResult[CPTensor]:
    clock = Stopwatch()
    comm.phase = "setup"
    solver = _Solver(comm, shard, opts)
    it, hist, first, resumed = solver.start()
    init_time = clock.elapsed
    has_callback = bool(comm.broadcast_object(opts.callback is not None))
    if comm.rank == 0:
        _LOG.info(
            "cp: %d ranks, grid %s, rank %d, %s%s",
            comm.world_size,
            "x".join(map(str, shard.layout.grid)),
            opts.rank,
            type(shard).__name__,
            "" if resumed is None else f", resumed from sweep {resumed}",
        )
    converged = False
    rows_before = comm.stats.total("rows")
    sweeps = 0
    for sweep in range(first, opts.max_iter + 1):
        comm.phase = f"sweep {sweep}"
        inner = solver.sweep(it)
        sweeps += 1
        # The error estimate in force and the one convergence rule of factorch.decomp.cp.
        if hist.exact:
            err, floor = solver.exact_error(it)
        else:
            err, floor = solver.gram_error(it, inner)
            if gram_unresolved(err, floor, hist.errors, hist.floors, opts.tol):
                hist.exact, hist.comparable_from = True, len(hist.errors)
                err, floor = solver.exact_error(it)
        if opts.tol > 0 and len(hist.errors) > hist.comparable_from:
            converged = abs(hist.errors[-1] - err) <= max(opts.tol, hist.floors[-1] + floor)
        final = converged or sweep == opts.max_iter
        if not hist.exact and final:  # report the true final error
            err, floor = solver.exact_error(it)
        hist.errors.append(err)
        hist.floors.append(floor)
        if comm.rank == 0:
            _LOG.info("sweep %d: relative error %.8g (%.3f s)", sweep, err, clock.elapsed)
        stop = False
        if has_callback:
            model = solver.model(it)
            if comm.rank == 0 and opts.callback is not None:
                stop = bool(opts.callback(IterationState(sweep, err, model)))
            stop = bool(comm.broadcast_object(stop))
            if stop and not hist.exact and not final:
                hist.errors[-1], hist.floors[-1] = solver.exact_error(it)
        if opts.checkpoint is not None and sweep % opts.checkpoint.every == 0:
            solver.save(it, hist, sweep, opts.checkpoint)
        if stop or converged:
            break
    comm.phase = "gathering the model"
    model = solver.model(it)
    errors, floors = list(hist.errors), list(hist.floors)
    if model.dtype != solver.work and errors:  # the rounding is part of the returned error
        weights = upcast(model.weights) / solver.scale
        rounded = [chunk_rows(upcast(f), ex) for f, ex in zip(model.factors, solver.ex)]
        rounded_it = _Iterate(weights, rounded, [])
        errors[-1], floors[-1] = solver.exact_error(rounded_it)
    rows = comm.stats.total("rows") - rows_before
    return DecompositionResult(
        model=model,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={
            "error_floors": tuple(floors),
            "degeneracy": cp_degeneracy(model),
            "comm_bytes": comm.stats.snapshot(),
            "row_bytes_per_sweep": rows / max(sweeps, 1),
            "comm_seconds": comm.stats.seconds,
            "comm_injected_seconds": comm.stats.injected_seconds,
            "comm_calls": comm.stats.calls,
            "grid": shard.layout.grid,
            "layout": shard.layout.fingerprint,
            "resumed_from": resumed,
        },
    )


def exchange_volume(exchanges: list[RowExchange]) -> int:
    """Rows this rank sends per sweep over all modes (both directions)."""
    return sum(ex.rows_sent_per_update() for ex in exchanges)
