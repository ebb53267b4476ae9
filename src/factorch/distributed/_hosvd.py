"""Distributed HOSVD and ST-HOSVD of a dense tensor split along one mode.

Each rank holds the slab ``X[..., chunk_k, ...]`` of the sharded mode ``s``. Mode ``n``'s factor
is the leading eigenvectors of the Gram ``X_(n) X_(n)^T`` of the unfolding (the "gram" route of
:func:`factorch.decomp.hosvd`: formed in float64 when an error target is given, refined by one
subspace-iteration step when the kept spectrum is wide, signs fixed by the largest entry):

* ``n != s``: the unfolding's columns are split over ranks, so the Gram is a sum of the ranks'
  ``I_n x I_n`` Grams: one all-reduce;
* ``n = s``: its rows are split, so rank ``k`` needs the other slabs to form its block row of the
  Gram: the slabs are broadcast in turn in column pieces (each rank receives the data once,
  ``(p - 1) / p`` of the tensor), and the block rows are summed by an all-reduce. With
  ST-HOSVD the modes before ``s`` have already shrunk the slabs by then.

ST-HOSVD (``sequential=True``) projects the slabs mode by mode, locally for ``n != s``; projecting
mode ``s`` sums the ranks' projections (an all-reduce of the small core), after which the
remaining modes work on the replicated core. T-HOSVD sums the ranks' partial cores
``X_k x_n U_n^T`` (one all-reduce). Ranks, the error target's budget split and the reported
error are those of :func:`factorch.decomp.hosvd`.

References: L. De Lathauwer, B. De Moor, J. Vandewalle, SIAM J. Matrix Anal. Appl. 21(4), 2000;
N. Vannieuwenhoven, R. Vandebril, K. Meerbergen, SIAM J. Sci. Comput. 34(2), 2012 (ST-HOSVD);
G. Ballard, A. Klinvex, T. Kolda, "TuckerMPI", ACM TOMS 46(2), 2020 (distributed ST-HOSVD).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._numerics import HALF_DTYPES, no_autocast, upcast, working_dtype
from .._timing import Stopwatch
from ..decomp import DecompositionResult
from ..decomp.internal import (
    check_core_bound,
    check_rel_tol,
    check_tucker_rank,
    data_scale,
    needs_refinement,
    pick_rank,
    signed_basis,
    spectrum_tails,
)
from ..tensors import TuckerTensor
from ._comm import Comm
from ._common import agree_problem, check_shard
from ._shard import DenseShard

__all__ = ["hosvd"]

# Elements of a slab broadcast at once when forming the sharded mode's Gram.
_PIECE = 1 << 22


@no_autocast
def hosvd(
    shard: DenseShard,
    rank: int | Sequence[int] | None = None,
    *,
    eps: float | None = None,
    sequential: bool = True,
    timeout: float = 600.0,
) -> DecompositionResult[TuckerTensor]:
    """Truncated HOSVD or ST-HOSVD of a dense tensor split along one mode over the ranks.

    Computes what :func:`factorch.decomp.hosvd` computes on the full tensor (with its Gram
    route), the same result on every rank. Give exactly one of ``rank`` and ``eps``.

    Args:
        shard: this rank's :class:`DenseShard`; its layout splits one mode at most (grid
            ``(1, .., p, .., 1)``).
        rank: target multilinear rank (an int for every mode or one per mode).
        eps: target relative error in (0, 1): ``||X - X_hat|| <= eps ||X||``.
        sequential: ST-HOSVD (True) or T-HOSVD (False).
        timeout: seconds any collective waits before every rank stops with
            :class:`DistributedError`.

    Returns:
        :class:`DecompositionResult` with a :class:`TuckerTensor` (orthonormal factors, in the
        data's dtype and device) and its relative error; ``extras``: ``"comm_bytes"``,
        ``"comm_seconds"``, ``"comm_calls"``, ``"comm_injected_seconds"``, ``"sharded_mode"``.

    Raises:
        TypeError, ValueError: bad arguments (as :func:`factorch.decomp.hosvd`), a layout split
            along several modes, or ranks that disagree (the same error on every rank).
        DistributedError: a rank died or hung past ``timeout``.

    Not differentiable; autocast is ignored.

    Example:
        A one-rank job in this process (under ``torchrun --nproc-per-node=N`` every rank runs
        the same lines after :func:`init`, each with its own shard):

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x = torch.rand(8, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> shard = DenseShard.from_full(x, ShardLayout.for_dense(x.shape, 1), dist.get_rank())
        >>> res = hosvd(shard, (2, 2, 2))
        >>> ref = factorch.decomp.hosvd(x, (2, 2, 2))
        >>> res.model.rank, abs(res.errors[-1] - ref.errors[-1]) < 1e-9  # the same result
        ((2, 2, 2), True)
        >>> dist.destroy_process_group()
    """
    fn = "distributed.hosvd"
    device = getattr(shard, "device", torch.device("cpu"))
    comm = Comm.open(fn, timeout, device)
    error: Exception | None = None
    summary: dict[str, object] = {}
    ranks: tuple[int, ...] | None = None
    eps_: float | None = None
    try:
        checked = check_shard(shard, comm, fn, sparse_ok=False)
        if not isinstance(checked, DenseShard):
            raise TypeError(f"{fn}: shard must be a DenseShard.")
        split = [n for n, p in enumerate(checked.layout.grid) if p > 1]
        if len(split) > 1:
            raise ValueError(
                f"{fn}: the layout must split one mode only (grid (1, .., p, .., 1)); got grid "
                f"{checked.layout.grid}. Build it with ShardLayout.even(shape, grid)."
            )
        if not isinstance(sequential, bool):
            raise TypeError(f"{fn}: sequential must be a bool; got {type(sequential).__name__}.")
        if (rank is None) == (eps is None):
            got = "both" if rank is not None else "neither"
            raise ValueError(
                f"{fn}: give exactly one of rank (target multilinear rank) and eps (target "
                f"relative error); got {got}."
            )
        if rank is not None:
            ranks = check_tucker_rank(rank, checked.shape, range(len(checked.shape)), fn)
            check_core_bound(dict(enumerate(ranks)), checked.shape, fn)
        else:
            eps_ = check_rel_tol(eps, fn, "eps")
        summary = {
            "shape": checked.shape,
            "layout": checked.layout.fingerprint,
            "dtype": str(checked.dtype),
            "rank": ranks,
            "eps": eps_,
            "sequential": sequential,
        }
    except (TypeError, ValueError, IndexError) as err:
        error = err
    comm.agree(error)
    agree_problem(comm, summary)
    if not isinstance(checked, DenseShard):  # unreachable after agree; narrows the type
        raise TypeError(f"{fn}: shard must be a DenseShard.")
    with torch.no_grad():
        return _Run(comm, checked, ranks, eps_, sequential).fit()


def _unfold(t: torch.Tensor, mode: int) -> torch.Tensor:
    rows = t.shape[mode]
    cols = (
        math.prod(t.shape) // rows
        if rows
        else math.prod(s for i, s in enumerate(t.shape) if i != mode)
    )
    return torch.movedim(t, mode, 0).reshape(rows, cols)


def _ttm(t: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """``t x_mode matrix`` (``matrix`` is ``(J, I_mode)``)."""
    return torch.movedim(torch.tensordot(matrix, t, dims=([1], [mode])), 0, mode)


class _Run:
    def __init__(
        self,
        comm: Comm,
        shard: DenseShard,
        ranks: tuple[int, ...] | None,
        eps: float | None,
        sequential: bool,
    ) -> None:
        self.comm, self.shard = comm, shard
        self.ranks, self.eps, self.sequential = ranks, eps, sequential
        self.dtype = shard.dtype
        self.work = working_dtype(shard.dtype)
        x = upcast(shard.local)
        peak = 0.0
        if x.numel():
            low, high = torch.aminmax(x)
            peak = max(-float(low), float(high))
        top = comm.all_reduce(torch.tensor([peak], dtype=torch.float64), op="max")
        self.scale = data_scale(torch.tensor([float(top[0])], dtype=self.work))
        self.x = x / self.scale if self.scale != 1.0 else x
        split = [n for n, p in enumerate(shard.layout.grid) if p > 1]
        self.s = split[0] if split else None
        self.chunks = (
            [shard.layout.chunk(self.s, c) for c in range(shard.layout.grid[self.s])]
            if self.s is not None
            else []
        )

    # --- Grams -------------------------------------------------------------------------------
    def gram(self, src: torch.Tensor, mode: int, sharded: bool, dtype: torch.dtype) -> torch.Tensor:
        """``src_(mode) src_(mode)^T`` of the global tensor whose slabs (``sharded``) or copy
        (replicated) ``src`` is."""
        if not sharded:
            a = _unfold(src, mode).to(dtype)
            return a @ a.mT
        if mode != self.s:
            a = _unfold(src, mode).to(dtype)
            return self.comm.all_reduce(a @ a.mT)
        return self._split_gram(src, dtype)

    def _split_gram(self, src: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The sharded mode's Gram: slabs broadcast in column pieces, block rows all-reduced."""
        if self.s is None:
            raise RuntimeError("distributed.hosvd: no sharded mode.")
        s, comm = self.s, self.comm
        a = _unfold(src, s).to(dtype)
        size = self.shard.shape[s]
        cols = a.shape[1]
        me = self.shard.layout.coords(comm.rank)[s]
        g = torch.zeros(size, size, dtype=dtype, device=a.device)
        step = max(1, _PIECE // max(1, max(e - b for b, e in self.chunks)))
        for c, (b, e) in enumerate(self.chunks):
            owner = next(r for r in range(comm.world_size) if self.shard.layout.coords(r)[s] == c)
            for j in range(0, cols, step):
                k = min(cols, j + step)
                piece = (
                    a[:, j:k].contiguous()
                    if c == me
                    else torch.empty(e - b, k - j, dtype=dtype, device=a.device)
                )
                piece = comm.broadcast(piece, src=owner, kind="rows")
                lo, hi = self.chunks[me]
                g[lo:hi, b:e] += a[:, j:k] @ piece.mT
        # Under a one-mode split each chunk has one rank: the block rows add up to the Gram.
        return comm.all_reduce(g)

    # --- one mode ----------------------------------------------------------------------------
    def truncate(
        self, src: torch.Tensor, mode: int, sharded: bool, max_rank: int, budget: float | None
    ) -> tuple[torch.Tensor, float]:
        """The mode's orthonormal factor ``u`` (sign-fixed) and the discarded energy."""
        m = self.shard.shape[mode]
        dtype = torch.float64 if budget is not None else self.work
        g = self.gram(src, mode, sharded, dtype)
        evals, evecs = torch.linalg.eigh(g)
        evals = torch.flip(evals, (0,)).clamp_min(0).double()
        evecs = torch.flip(evecs, (1,))
        tail = spectrum_tails(evals)
        r = pick_rank(tail, max_rank, budget)
        u = evecs[:, :r].to(self.work)
        if r == m:
            u, _ = self._sign(u)
            return u, 0.0
        if needs_refinement(evals, r, float(tail[r]), dtype):
            # One subspace-iteration step (A A^T = G), then Rayleigh--Ritz.
            q = torch.linalg.qr(g @ u.to(dtype)).Q
            ritz = torch.flip(torch.linalg.eigh(q.mT @ g @ q)[1], (1,))
            u = (q @ ritz).to(self.work)
        discarded = float(tail[r])
        if discarded < 1e4 * torch.finfo(dtype).eps * m * float(evals[0]):
            discarded = self.residual(src, u, mode, sharded)
        u, _ = self._sign(u)
        return u, discarded

    def _sign(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = u.shape[1]
        eye = torch.eye(r, dtype=u.dtype, device=u.device)
        tr = signed_basis(u, eye, 0.0)
        return tr.u, tr.b.diagonal()

    def rows(self, u: torch.Tensor, mode: int, sharded: bool) -> torch.Tensor:
        """The rows of ``u`` that multiply this rank's slab along ``mode``."""
        if sharded and mode == self.s:
            b, e = self.chunks[self.shard.layout.coords(self.comm.rank)[mode]]
            return u[b:e]
        return u

    def project(self, src: torch.Tensor, u: torch.Tensor, mode: int, sharded: bool) -> torch.Tensor:
        """``src x_mode u^T`` (summed over ranks when ``mode`` is the sharded one)."""
        out = _ttm(src, self.rows(u, mode, sharded).mT, mode)
        if sharded and mode == self.s:  # the slabs' partial projections add up
            out = self.comm.all_reduce(out)
        return out

    def residual(self, src: torch.Tensor, u: torch.Tensor, mode: int, sharded: bool) -> float:
        """``||A - u u^T A||^2`` of the unfolding, summed over ranks when ``src`` is sharded."""
        b = self.project(src, u, mode, sharded)
        back = _ttm(b, self.rows(u, mode, sharded), mode)
        local = float(torch.sum((src - back) ** 2))
        return self.comm.all_reduce_sum([local])[0] if sharded else local

    # --- the decomposition -------------------------------------------------------------------
    def fit(self) -> DecompositionResult[TuckerTensor]:
        clock = Stopwatch()
        comm = self.comm
        comm.phase = "hosvd"
        shape, n_modes = self.shard.shape, len(self.shard.shape)
        norm_x2 = comm.all_reduce_sum([float(torch.sum(self.x.double() ** 2))])[0]
        total_budget = None if self.eps is None else self.eps**2 * norm_x2
        factors: list[torch.Tensor] = []
        used = 0.0
        y, y_sharded = self.x, self.s is not None
        for n in range(n_modes):
            src, sharded = (y, y_sharded) if self.sequential else (self.x, self.s is not None)
            budget = None
            if total_budget is not None:
                share = n_modes - n if self.sequential else n_modes
                budget = (total_budget - (used if self.sequential else 0.0)) / share
            max_rank = shape[n] if self.ranks is None else self.ranks[n]
            u, discarded = self.truncate(src, n, sharded, max_rank, budget)
            factors.append(u)
            used += discarded
            if self.sequential:
                y = self.project(y, u, n, y_sharded)
                if y_sharded and n == self.s:
                    y_sharded = False
        if self.sequential:
            core = y  # replicated: mode s (if any) was projected and summed over the ranks
            err = math.sqrt(min(used / norm_x2, 1.0)) if norm_x2 > 0 else 0.0
        else:
            core = self._core(factors)
            err = self._t_error(core, factors, norm_x2)
        model = TuckerTensor(core * self.scale, tuple(factors))
        model = self._cast(model)
        if self.dtype in HALF_DTYPES:
            err = self._true_error(model, norm_x2)
        return DecompositionResult(
            model,
            (err,),
            1,
            True,
            clock.elapsed,
            extras={
                "comm_bytes": comm.stats.snapshot(),
                "comm_seconds": comm.stats.seconds,
                "comm_calls": comm.stats.calls,
                "comm_injected_seconds": comm.stats.injected_seconds,
                "sharded_mode": self.s,
            },
        )

    def _core(self, factors: list[torch.Tensor]) -> torch.Tensor:
        sharded = self.s is not None
        core = self.x
        for n, u in enumerate(factors):
            core = _ttm(core, self.rows(u, n, sharded).mT, n)
        return self.comm.all_reduce(core) if sharded else core

    def _local_residual(self, core: torch.Tensor, factors: list[torch.Tensor]) -> float:
        approx = core
        for n, u in enumerate(factors):
            approx = _ttm(approx, self.rows(u, n, self.s is not None), n)
        return float(torch.sum((self.x - approx).double() ** 2))

    def _t_error(self, core: torch.Tensor, factors: list[torch.Tensor], norm_x2: float) -> float:
        if norm_x2 <= 0:
            return 0.0
        err = math.sqrt(max(norm_x2 - float(torch.sum(core.double() ** 2)), 0.0) / norm_x2)
        if err >= 100 * math.sqrt(torch.finfo(self.work).eps):
            return err
        total = self.comm.all_reduce_sum([self._local_residual(core, factors)])[0]
        return math.sqrt(total / norm_x2)

    def _cast(self, model: TuckerTensor) -> TuckerTensor:
        out = model.to(dtype=self.dtype) if model.core.dtype != self.dtype else model
        for t in (out.core, *out.factors):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(
                    f"{self.comm.fn}: the fitted model cannot be represented in {self.dtype}: "
                    "its entries overflow. Convert the data to a wider dtype first."
                )
        return out

    def _true_error(self, model: TuckerTensor, norm_x2: float) -> float:
        """The error of the rounded (half-precision) model, from the blocks' residuals."""
        wide = model.to(dtype=self.work)
        core = wide.core / self.scale
        total = self.comm.all_reduce_sum([self._local_residual(core, list(wide.factors))])[0]
        return math.sqrt(total / norm_x2) if norm_x2 > 0 else 0.0
