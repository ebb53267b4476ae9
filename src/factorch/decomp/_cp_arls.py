"""Randomized CP: alternating least squares on leverage-score samples of the Khatri--Rao product
(CP-ARLS-LEV, Larsen and Kolda 2022), for large dense and sparse tensors.

Each least-squares update of CP-ALS, ``min_A ||X_(n) - A K_n^T||`` with ``K_n`` the Khatri--Rao
product of the other factors (``prod_{m != n} I_m`` rows), is replaced by the same problem on
``S`` rows of ``K_n`` drawn with probabilities proportional to their leverage scores, reweighted
so the sampled problem is unbiased. The leverage score of a Khatri--Rao row is at most the
product of the other factors' own leverage scores, so row ``(j_m)_{m != n}`` is drawn with
probability ``prod_m l_m(j_m) / R`` by drawing each ``j_m`` independently -- no Khatri--Rao
product and no full pass over ``X`` per update: a dense update reads ``S`` fibres of ``X``
(``S I_n`` entries), a sparse one the nonzeros on the sampled fibres (found by binary search in
the nonzeros sorted once per mode). Sampled rows are weighted ``1 / sqrt(S p)``; the weighted
normal equations ``A (Z^T W Z) = X_s W Z`` (``R x R``) are solved as in CP-ALS.

The iterates are random, so the fit is checked exactly once per *epoch* (``epoch_iters``
sweeps): the run keeps the best model seen and stops when ``patience`` epochs in a row have not
lowered the best error by more than ``tol`` (Larsen and Kolda's rule). The error of a dense
tensor is its exact residual; of a sparse one ``||X||^2 - 2 <X, M> + ||M||^2`` with the inner
product over the nonzeros, exact up to the formula's rounding (about ``sqrt(eps)`` near an
exact fit).

Reference: B. W. Larsen and T. G. Kolda, "Practical leverage-based sampling for low-rank tensor
decomposition", SIAM J. Matrix Anal. Appl. 43(3), 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import check_positive_int
from .._numerics import HALF_DTYPES, check_memory, no_autocast, upcast, working_dtype
from ..tensors import CPTensor, SparseTensor
from ._cp import dense_input, output_model
from ._cp_init import init_factors
from ._cp_sweep import CPState, exact_error, solve_normal
from ._nn_common import _check_choice, _check_loop_options
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import fit_scale

__all__ = ["cp_arls"]


@dataclass(frozen=True)
class _Options:
    rank: int
    n_samples: int
    init: str | CPTensor
    max_epochs: int
    epoch_iters: int
    tol: float
    patience: int
    generator: torch.Generator | None
    callback: Callback | None


@no_autocast
def cp_arls(
    tensor: torch.Tensor | SparseTensor,
    rank: int,
    *,
    n_samples: int = 4096,
    init: str | CPTensor = "random",
    max_epochs: int = 50,
    epoch_iters: int = 10,
    tol: float = 1e-4,
    patience: int = 3,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """CP decomposition by randomized ALS with leverage-score sampling (CP-ARLS-LEV).

    See the module docstring for the algorithm. Worth it when one CP-ALS sweep is expensive
    (a dense tensor with millions of entries, a sparse one with many nonzeros) and the rank is
    small; the fit it reaches is within sampling noise of CP-ALS's (compare ``errors`` with
    :func:`~factorch.decomp.cp`).

    Args:
        tensor: a dense real floating tensor (or numpy array) with at least 2 modes, or a
            :class:`~factorch.tensors.SparseTensor` (unlisted entries are zeros).
            float16/bfloat16 data are fitted in float32; grad is detached.
        rank: number of components ``R`` (any integral type).
        n_samples: Khatri--Rao rows ``S`` sampled per least-squares update (Larsen and Kolda
            use ``2**17`` on billion-entry tensors; the default suits 1e6 to 1e8 entries at
            ranks up to ~20). Capped at the number of rows that exist.
        init: ``"random"`` (uniform [0, 1) factors from ``generator``), ``"svd"`` (dense
            tensors: :func:`~factorch.decomp.cp`'s randomized SVD start, about two exact sweeps)
            or a :class:`~factorch.tensors.CPTensor` (copied, never modified).
        max_epochs: maximum number of epochs.
        epoch_iters: sweeps per epoch (one exact error per epoch). Long enough that a swamp
            (the slow stretches of ALS from a random start) does not read as convergence.
        tol: an epoch counts as progress when it lowers the best relative error by more than
            ``tol``.
        patience: stop after this many epochs in a row without progress.
        generator: the source of every random draw (initialisation and samples).
        callback: called with an :class:`IterationState` after each epoch (``iteration`` is the
            epoch, ``model`` the current iterate); True stops.

    Returns:
        :class:`DecompositionResult` holding the best :class:`~factorch.tensors.CPTensor` seen
        (unit-norm columns, scale in ``weights``). ``errors``: the best exact relative error
        after each epoch (non-increasing; the last is the returned model's);
        ``extras["epoch_errors"]``: each epoch's own error; ``iterations``: epochs run;
        ``converged``: the patience rule stopped the run; ``extras["best_epoch"]``,
        ``extras["sweeps"]``.

    Raises:
        TypeError: data of a wrong type or dtype, a non-integral rank or ``n_samples``, a
            ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN/Inf, an all-zero tensor, a sparse tensor with no nonzero, bad option
            values, an init of the wrong shape, dtype or device, a working set too large for
            the device.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input; tiny or huge data is scaled by an exact power of four for the fit.
    Random: reproducible given ``generator``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = factorch.random.random_cp((30, 40, 50), 3, generator=g).to_dense()
        >>> res = cp_arls(x, 3, n_samples=300, generator=g)
        >>> res.error < 1e-3
        True

    References:
        B. W. Larsen and T. G. Kolda, "Practical leverage-based sampling for low-rank tensor
        decomposition", SIAM J. Matrix Anal. Appl. 43(3), 2022.
    """
    fn = "cp_arls"
    if isinstance(tensor, SparseTensor):
        data: torch.Tensor | SparseTensor = _check_sparse(tensor, fn)
        shape, dtype, device = tensor.shape, tensor.dtype, tensor.device
    else:
        x = dense_input(tensor, fn)
        data, shape, dtype, device = x, tuple(x.shape), x.dtype, x.device
    opts = _check_options(
        shape, dtype, device, rank, n_samples, init, max_epochs, epoch_iters, tol, patience,
        generator, callback, sparse=isinstance(data, SparseTensor),
    )  # fmt: skip
    with torch.no_grad():
        return _fit(data, opts)


def _check_sparse(tensor: SparseTensor, fn: str) -> SparseTensor:
    if tensor.ndim < 2 or tensor.nnz == 0:
        raise ValueError(
            f"{fn}: a SparseTensor needs at least 2 modes and one listed entry; got shape "
            f"{tensor.shape} with {tensor.nnz} entries."
        )
    if not bool((tensor.values != 0).any()):
        raise ValueError(f"{fn}: tensor is all zeros; nothing to fit.")
    return tensor


def _check_options(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    rank: object,
    n_samples: object,
    init: object,
    max_epochs: object,
    epoch_iters: object,
    tol: object,
    patience: object,
    generator: torch.Generator | None,
    callback: Callback | None,
    *,
    sparse: bool,
) -> _Options:
    fn = "cp_arls"
    rank = check_positive_int(rank, fn, "rank")
    samples = check_positive_int(n_samples, fn, "n_samples")
    max_epochs, tol_ = _check_loop_options(max_epochs, tol, generator, callback, fn)
    iters = check_positive_int(epoch_iters, fn, "epoch_iters")
    wait = check_positive_int(patience, fn, "patience")
    if isinstance(init, CPTensor):
        if init.shape != shape or init.rank != rank:
            raise ValueError(
                f"{fn}: init must be a CPTensor of shape {shape} and rank {rank}; got shape "
                f"{init.shape} and rank {init.rank}."
            )
        if init.dtype != dtype or init.device != device:
            raise ValueError(
                f"{fn}: init must match the tensor's dtype and device ({dtype}, {device}); got "
                f"({init.dtype}, {init.device}). Use init.to(...)."
            )
    else:
        _check_choice(init, ("random", "svd"), fn, "init")
        if init == "svd" and sparse:
            raise ValueError(
                f"{fn}: init='svd' needs a dense tensor; use init='random' or a CPTensor for a "
                "SparseTensor."
            )
    largest_other = max(math.prod(shape) // s for s in shape)
    if sparse and largest_other >= 1 << 62:
        raise ValueError(
            f"{fn}: a sparse tensor of shape {shape} has more fibres per mode than 64-bit keys "
            "can index (2**62); split it along a mode first."
        )
    samples = min(samples, largest_other)
    biggest = max(shape)
    work = sum(shape) * rank + samples * (biggest + 2 * rank + len(shape))
    work += 0 if sparse else min(math.prod(shape), 1 << 22) + 2 * rank * max(shape) ** 2
    work += math.prod(shape) if dtype in HALF_DTYPES and not sparse else 0
    check_memory(
        work,
        working_dtype(dtype),
        device,
        fn,
        f"a rank-{rank} randomized CP fit of a {shape} tensor with {samples} samples",
    )
    return _Options(
        rank=rank,
        n_samples=samples,
        init=init,  # type: ignore[arg-type]
        max_epochs=max_epochs,
        epoch_iters=iters,
        tol=tol_,
        patience=wait,
        generator=generator,
        callback=callback,
    )


class _Sampler:
    """The sampled problems of one tensor: draws, sampled fibres, sampled MTTKRP."""

    def __init__(
        self, data: torch.Tensor | SparseTensor, gen: torch.Generator | None, scale: float = 1.0
    ) -> None:
        self.data = data
        self.gen = gen
        self.scale = scale  # a sparse tensor's values are divided by it on the fly
        self.shape = tuple(data.shape)
        self.ndim = len(self.shape)
        self.sparse = isinstance(data, SparseTensor)
        # Sparse: per mode, the nonzeros grouped by fibre (see :meth:`_fibres`).
        self.fibres: dict[int, _Fibres] = {}

    def _other_keys(self, idx: list[torch.Tensor], mode: int) -> torch.Tensor:
        key = torch.zeros_like(idx[0], dtype=torch.int64)
        for m in range(self.ndim):
            if m != mode:
                key = key * self.shape[m] + idx[m].to(torch.int64)
        return key

    def draw(
        self, factors: list[torch.Tensor], mode: int, count: int
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Indices ``(j_m)`` for every other mode (``count`` each) and the rows' probabilities."""
        idx: list[torch.Tensor] = []
        prob = torch.ones(count, dtype=factors[0].dtype, device=factors[0].device)
        for m, f in enumerate(factors):
            if m == mode:
                idx.append(torch.zeros(count, dtype=torch.int64, device=f.device))
                continue
            p = _leverage(f)
            device = self.gen.device if self.gen is not None else p.device
            j = torch.multinomial(p.to(device, torch.float64), count, replacement=True,
                                  generator=self.gen).to(p.device)  # fmt: skip
            idx.append(j)
            prob = prob * p[j]
        return idx, prob

    def solve(self, factors: list[torch.Tensor], mode: int, count: int) -> torch.Tensor:
        """The sampled least-squares update of ``factors[mode]`` (unnormalised)."""
        idx, prob = self.draw(factors, mode, count)
        z = torch.ones(count, factors[0].shape[1], dtype=factors[0].dtype, device=prob.device)
        for m, f in enumerate(factors):
            if m != mode:
                z = z * f[idx[m]]
        weight = 1.0 / (count * prob)  # squared row weights 1 / (S p)
        gram = (z * weight.unsqueeze(1)).mT @ z
        rhs = self._sampled_mttkrp(idx, mode, z * weight.unsqueeze(1))
        return solve_normal(rhs, gram, 0.0)

    def _sampled_mttkrp(self, idx: list[torch.Tensor], mode: int, wz: torch.Tensor) -> torch.Tensor:
        """``X_s W Z``: the sampled fibres of mode ``mode`` times the weighted sampled rows."""
        if not self.sparse:
            x = self.data
            if not isinstance(x, torch.Tensor):  # (narrowing for the type checker)
                raise TypeError("cp_arls: dense sampler without a dense tensor.")
            return _dense_fibres_times(x, idx, mode, wz)
        st = self.data
        if not isinstance(st, SparseTensor):
            raise TypeError("cp_arls: sparse sampler without a SparseTensor.")
        fib = self.fibres.get(mode)
        if fib is None:
            fib = self.fibres[mode] = self._fibres(st, mode, wz.dtype)
        lo, counts = fib.lookup(self._other_keys(idx, mode))
        out = torch.zeros(self.shape[mode], wz.shape[1], dtype=wz.dtype, device=wz.device)
        total = int(counts.sum())
        if total == 0:
            return out
        sample = torch.repeat_interleave(torch.arange(len(counts), device=wz.device), counts)
        starts = torch.repeat_interleave(lo - torch.cumsum(counts, 0) + counts, counts)
        pos = starts + torch.arange(total, device=wz.device)
        out.index_add_(0, fib.rows[pos], fib.values[pos].unsqueeze(1) * wz[sample])
        return out

    def _fibres(self, st: SparseTensor, mode: int, dtype: torch.dtype) -> _Fibres:
        keys = self._other_keys([st.indices[m] for m in range(self.ndim)], mode)
        order = torch.argsort(keys)
        values = st.values[order].to(dtype) / self.scale
        return _Fibres.build(keys[order], st.indices[mode][order].to(torch.int64), values)


_TABLE_LIMIT = 2**24  # largest fibre space with a direct-address table (128 MiB of int64)


class _Fibres:
    """The nonzeros of one mode grouped by fibre: sorted by the linear index of their other
    modes (``keys``), with their row indices and values in that order, and the start and length
    of each non-empty fibre. A sampled fibre is found in O(1) through a direct-address table
    (fibre index -> non-empty fibre number) when the fibre space has at most ``_TABLE_LIMIT``
    entries and no more than 16 per nonzero, else by one binary search among the non-empty
    fibres (instead of two among all nonzeros)."""

    def __init__(
        self,
        rows: torch.Tensor,
        values: torch.Tensor,
        keys: torch.Tensor,
        starts: torch.Tensor,
        counts: torch.Tensor,
        table: torch.Tensor | None,
    ) -> None:
        self.rows, self.values, self.keys = rows, values, keys
        self.starts, self.counts, self.table = starts, counts, table

    @classmethod
    def build(cls, skeys: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> _Fibres:
        keys, counts = torch.unique_consecutive(skeys, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        space = int(skeys[-1]) + 1
        table = None
        if space <= min(_TABLE_LIMIT, 16 * skeys.shape[0]):
            table = torch.full((space,), -1, dtype=torch.int64, device=skeys.device)
            table[keys] = torch.arange(keys.shape[0], device=skeys.device)
        return cls(rows, values, keys, starts, counts, table)

    def lookup(self, qkeys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start (in the sorted order) and number of nonzeros of each queried fibre."""
        if self.table is not None:
            inside = qkeys < self.table.shape[0]
            fib = self.table[torch.where(inside, qkeys, 0)]
            fib = torch.where(inside, fib, -1)
        else:
            fib = torch.searchsorted(self.keys, qkeys).clamp_max(self.keys.shape[0] - 1)
            fib = torch.where(self.keys[fib] == qkeys, fib, -1)
        hit = fib >= 0
        safe = fib.clamp_min(0)
        return self.starts[safe], torch.where(hit, self.counts[safe], 0)


def _dense_fibres_times(
    x: torch.Tensor, idx: list[torch.Tensor], mode: int, wz: torch.Tensor
) -> torch.Tensor:
    """``X_s^T`` (the sampled mode-``mode`` fibres of ``x``, ``I_n x S``) times ``wz``, the
    fibres gathered by advanced indexing (faster here than sorted ``take`` or
    ``index_select`` on an unfolding: measured on 200^3 float64), in chunks of samples so the
    gathered block stays below ``2**22`` entries."""
    others = [idx[m] for m in range(x.ndim) if m != mode]
    moved = x.movedim(mode, -1)
    size = x.shape[mode]
    step = max(1, (1 << 22) // max(1, size))
    out = torch.zeros(size, wz.shape[1], dtype=wz.dtype, device=wz.device)
    for start in range(0, wz.shape[0], step):
        block = moved[tuple(j[start : start + step] for j in others)]  # (s, I_n)
        out.addmm_(block.mT, wz[start : start + step])
    return out


def _leverage(factor: torch.Tensor) -> torch.Tensor:
    """Leverage scores of the rows of ``factor`` (``I x R``) as probabilities (sum 1):
    ``diag(A (A^T A)^+ A^T) / rank``."""
    gram = factor.mT @ factor
    scores = ((factor @ torch.linalg.pinv(gram, hermitian=True)) * factor).sum(1).clamp_min(0.0)
    total = float(scores.sum())
    if not total > 0 or not math.isfinite(total):
        return torch.full_like(scores, 1.0 / factor.shape[0])
    return scores / total


def _initial(
    data: torch.Tensor | None,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    opts: _Options,
    scale: float,
) -> CPState:
    if isinstance(opts.init, CPTensor):
        weights = upcast(opts.init.weights.detach()) / scale
        return CPState.start(weights, [upcast(f.detach()).clone() for f in opts.init.factors])
    if opts.init == "svd" and data is not None:  # as cp's: about two sweeps of CP-ALS
        return CPState.start(*init_factors(data, opts.rank, "svd", opts.generator))
    g = opts.generator
    factors = [
        torch.rand(s, opts.rank, generator=g, dtype=dtype, device=g.device if g else device)
        .to(device) for s in shape
    ]  # fmt: skip
    return CPState.start(torch.ones(opts.rank, dtype=dtype, device=device), factors)


def _sparse_error(st: SparseTensor, state: CPState, norm_x2: float, scale: float) -> float:
    """``||X - M|| / ||X||`` for a sparse ``X`` (zeros elsewhere), data divided by ``scale``."""
    idx = st.indices.to(torch.int64)
    rows = state.weights.expand(st.nnz, -1)
    for m, f in enumerate(state.factors):
        rows = rows * f[idx[m]]
    inner = float((rows.sum(1) * (st.values.to(rows.dtype) / scale)).sum())
    h = state.grams[0].clone()
    for g in state.grams[1:]:
        h = h * g
    model2 = float(state.weights @ h @ state.weights)
    return math.sqrt(max(norm_x2 - 2 * inner + model2, 0.0) / norm_x2)


def _fit(data: torch.Tensor | SparseTensor, opts: _Options) -> DecompositionResult[CPTensor]:
    clock = Stopwatch()
    dtype = data.dtype
    if isinstance(data, SparseTensor):
        vals = upcast(data.values)
        work_dtype, device = vals.dtype, vals.device
        scale = fit_scale(vals)
        norm_x2 = float(torch.linalg.vector_norm(vals / scale)) ** 2
        sampler = _Sampler(data, opts.generator, scale)
        x = None
    else:
        x = upcast(data).contiguous()
        scale = fit_scale(x)
        if scale != 1.0:
            x = x / scale
        norm_x2 = float(torch.linalg.vector_norm(x)) ** 2
        if norm_x2 == 0:
            raise ValueError("cp_arls: tensor is all zeros; nothing to fit.")
        work_dtype, device = x.dtype, x.device
        sampler = _Sampler(x, opts.generator)
    shape = tuple(data.shape)
    state = _initial(x, shape, work_dtype, device, opts, scale)
    init_time = clock.elapsed
    errors: list[float] = []  # the best error so far, per epoch
    epoch_errors: list[float] = []
    best_err, best = math.inf, (state.weights.clone(), [f.clone() for f in state.factors])
    best_epoch, stalled, converged = 0, 0, False
    for epoch in range(1, opts.max_epochs + 1):
        for _ in range(opts.epoch_iters):
            for mode in range(len(shape)):
                factor = sampler.solve(state.factors, mode, opts.n_samples)
                norms = torch.linalg.vector_norm(factor, dim=0)
                state.weights = torch.where(norms > 0, norms, torch.ones_like(norms))
                state.factors[mode] = factor / state.weights
                state.grams[mode] = state.factors[mode].mT @ state.factors[mode]
        if x is not None:
            err = exact_error(x, state, norm_x2)[0]
        else:
            err = _sparse_error(sampler.data, state, norm_x2, scale)  # type: ignore[arg-type]
        if not math.isfinite(err):
            raise ValueError("cp_arls: the sampled updates diverged (NaN or Inf); use more "
                             "n_samples.")  # fmt: skip
        epoch_errors.append(err)
        if err < best_err - opts.tol:
            stalled = 0
        else:
            stalled += 1
        if err < best_err:
            best_err, best_epoch = err, epoch
            best = (state.weights.clone(), [f.clone() for f in state.factors])
        errors.append(best_err)
        if opts.callback is not None:
            model = output_model(state, scale, dtype)
            if opts.callback(IterationState(epoch, err, model)) is True:
                break
        if stalled >= opts.patience:
            converged = True
            break
    model = output_model(CPState.start(*best), scale, dtype)
    if dtype != work_dtype:  # the rounding to half precision is part of the model's error
        rounded = CPState.start(upcast(model.weights) / scale, [upcast(f) for f in model.factors])
        if x is not None:
            errors[-1] = exact_error(x, rounded, norm_x2)[0]
        else:
            errors[-1] = _sparse_error(sampler.data, rounded, norm_x2, scale)  # type: ignore[arg-type]
    return DecompositionResult(
        model=model,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={
            "best_epoch": best_epoch,
            "epoch_errors": tuple(epoch_errors),
            "sweeps": len(errors) * opts.epoch_iters,
            "n_samples": opts.n_samples,
        },
    )
