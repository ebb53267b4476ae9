"""CP completion by alternating least squares on the observed entries, or by EM imputation.

``method="als"`` minimises, over the observed set ``Omega`` only,

    sum_{p in Omega} (x_p - sum_r prod_n A_n[i_n(p), r])^2 + l2 sum_n ||A_n||_F^2

one factor at a time; with the others fixed every row of ``A_n`` is an independent ridge
regression on the entries of its slice (:mod:`factorch.completion._rowwise`; without a ridge,
a slice with fewer observations than ``R`` gets the minimum-norm least-squares row). Cost per sweep:
about ``N nnz R^2 / 2`` multiply-adds; nothing of the size of the dense tensor is formed, so it
works for sparse data of any shape (Tomasi and Bro, "PARAFAC and missing values", Chemometr.
Intell. Lab. Syst. 75, 2005, section on "missing-skipping" ALS; the row-wise form is that of
Zhou et al., "Large-scale parallel collaborative filtering for the Netflix prize", 2008).

``method="em"`` is what TensorLy's ``parafac(mask=...)`` does: every sweep refills the missing
entries of a dense copy with the current model and runs a standard CP-ALS sweep
(:func:`factorch.decomp.cp` with ``mask``); it needs a dense tensor and converges slowly when
many entries are missing. It is offered for comparison.

The ridge ``l2`` is absolute (in the units of the data squared) and 0 by default. The fit runs on
the observed values divided by an exact power of two (:mod:`._observed`), with the ridge
rescaled to match, so the result is the same for data of any magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch

from .._checks import check_positive_int
from .._numerics import check_memory, no_autocast
from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..decomp import IterationState
from ..decomp import cp as dense_cp
from ..tensors import CPTensor, SparseTensor
from ._common import (
    LoopOptions,
    Monitor,
    check_cp_memory,
    check_fit_options,
    check_nonneg,
    cp_scale,
    cp_values,
    data_alias,
    empty_slices,
    randn,
    ridge_objective,
    rmse_of,
)
from ._observed import Observed, observe, observe_validation, scaled_ridge
from ._output import finish_cp, present_cp, presenting
from ._result import CompletionCallback, CompletionResult, CompletionState
from ._rowwise import solve_rows
from ._spectral import spectral_factors

__all__ = ["CPCompletionMethod", "cp_als", "cp_init", "cp_ridge"]

CPCompletionMethod = Literal["als", "em"]
CPInit = Literal["svd", "random"] | CPTensor


def cp_ridge(l2: float, obs: Observed) -> float:
    """The absolute ridge ``l2`` for the scaled values: with ``x = s x'`` and every factor
    ``A_n = s^(1/N) A_n'``, ``sum (x - m)^2 + l2 sum ||A_n||^2`` is ``s^2`` times the same
    objective in the primed variables with ``l2' = l2 s^(2/N - 2)``."""
    return scaled_ridge(l2, obs.scale, 2.0 / obs.train.ndim - 2.0, obs.train.dtype)


def check_cp_init(init: object, shape: tuple[int, ...], rank: int, fn: str) -> None:
    if isinstance(init, CPTensor):
        if init.shape != shape or init.rank != rank:
            raise ValueError(
                f"{fn}: init has shape {init.shape} and rank {init.rank}; expected shape "
                f"{shape} and rank {rank}."
            )
    elif init not in ("svd", "random"):
        raise ValueError(f"{fn}: init must be 'svd', 'random' or a CPTensor; got {init!r}.")


def cp_init(
    train: SparseTensor,
    rank: int,
    init: object,
    generator: torch.Generator | None,
    fn: str,
    scale: float = 1.0,
) -> list[torch.Tensor]:
    """Starting factors (copies): ``"svd"`` (spectral: leading subspaces of the rescaled
    zero-filled unfoldings, then one scalar least-squares fit of the scale), ``"random"``
    (Gaussian, model RMS equal to the observed RMS) or a CPTensor in the user's units (weights
    divided by ``scale`` and folded into the first factor)."""
    check_cp_init(init, train.shape, rank, fn)
    if isinstance(init, CPTensor):
        fs = [f.detach().to(device=train.device, dtype=train.dtype).clone() for f in init.factors]
        weights = init.weights.detach().to(device=train.device, dtype=torch.float64) / scale
        fs[0] = fs[0] * weights.to(fs[0])
        return fs
    if init == "svd":
        fs = spectral_factors(train, [rank] * train.ndim, generator)
        m = cp_values(fs, train)
        mm = float(torch.dot(m, m))
        if mm > 0:
            s = float(torch.dot(m, train.values)) / mm
            if s != 0:
                c = abs(s) ** (1.0 / train.ndim)
                fs = [f * c for f in fs]
                if s < 0:
                    fs[0] = -fs[0]
                return fs
    scale_r = cp_scale(train, rank)
    return [randn((s, rank), generator, train.dtype, train.device, scale_r) for s in train.shape]


@dataclass
class _StartRunner:
    """Runs the starts of :func:`cp_als` (one fit each) and records their scores."""

    obs: Observed
    val: SparseTensor | None
    rank: int
    method: CPCompletionMethod
    l2: float
    damping: float
    loop: LoopOptions
    generator: torch.Generator | None
    callback: CompletionCallback | None
    stopped: bool = False

    def on_epoch(self, state: CompletionState) -> bool:
        self.stopped = self.callback is not None and bool(self.callback(state))
        return self.stopped

    def run(self, init: CPInit) -> tuple[CompletionResult[CPTensor], float]:
        cb = self.on_epoch if self.callback is not None else None
        ridge = cp_ridge(self.l2, self.obs)
        train, scale = self.obs.train, self.obs.scale
        if self.method == "em":
            return _em(
                train,
                self.val,
                self.rank,
                self.l2,
                ridge,
                self.loop,
                init,
                scale,
                self.generator,
                cb,
            )
        factors = cp_init(train, self.rank, init, self.generator, "cp_als", scale)
        return _als(train, self.val, factors, ridge, self.damping, self.loop, cb)


@data_alias("cp_als")
@no_autocast
def cp_als(
    tensor: SparseTensor | torch.Tensor,
    rank: int,
    *,
    mask: torch.Tensor | None = None,
    method: CPCompletionMethod = "als",
    validation: SparseTensor | None = None,
    l2: float = 0.0,
    damping: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    init: CPInit = "svd",
    starts: int = 1,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[CPTensor]:
    """CP completion of a partially observed tensor by alternating least squares.

    Args:
        tensor: the observed entries: a :class:`~factorch.tensors.SparseTensor` or a torch
            sparse tensor (its listed entries), or a dense tensor / numpy array (with ``mask``;
            every entry without one). ``data=`` is a deprecated alias.
        rank: number of components ``R`` (an int, numpy ints included).
        mask: bool tensor or array, True where a dense ``tensor`` is observed (entries
            elsewhere, NaN included, are ignored).
        method: ``"als"`` (least squares on observed entries only, row-wise) or ``"em"``
            (TensorLy-style imputation of the missing entries; forms the dense tensor).
        validation: held-out entries; the model with the lowest validation RMSE is returned
            and the run stops after ``patience`` sweeps without improvement.
        l2: absolute ridge weight on the factors, ``l2 sum_n ||A_n||_F^2`` (module
            docstring), default 0. Without it a slice with fewer than ``R`` observations gets
            the minimum-norm least-squares row. With many entries missing an unregularized fit
            can overfit badly (rank-3 CP of the COVID-19 serology tensor with half of it held
            out: test RMSE 13 with the defaults, 0.84 with ``l2`` chosen on a validation set;
            ``benchmarks/bench_completion.py``): choose it on a validation set. With
            ``method="em"`` it is :func:`factorch.decomp.cp`'s ridge (added to the normal
            equations of the normalized components).
        damping: data-relative safeguard of the row solves (:mod:`._rowwise`): ``damping``
            times the mean diagonal of each determined row's Gram is added to its diagonal
            (scale-free; 0 gives exact least-squares rows). The default 1e-4 leaves planted
            recoveries unchanged and bounds the rows the observations barely determine.
            Not used by ``method="em"``.
        max_iter: maximum number of sweeps.
        tol: stop when the training objective changes by less than ``tol`` relatively.
        patience: sweeps without validation improvement before stopping.
        init: ``"svd"`` (spectral start: leading singular subspaces of the zero-filled
            observed unfoldings, computed from the observed entries only; with ``"em"``, the SVD
            start of :func:`factorch.decomp.cp`), ``"random"`` (Gaussian factors whose model
            has the RMS of the observed values) or a :class:`CPTensor`.
        starts: number of fits; the first starts from ``init``, the others from ``"random"``
            draws from ``generator``. The fit with the lowest best validation RMSE is kept when
            ``validation`` is given, else the one with the lowest final training objective
            (ridge least squares of the module docstring). Rank-3 CP of the IL-2 tensor, for
            one, has poor local minima that a few random restarts escape.
        generator: random source for the starts.
        callback: called after each sweep of every start with a :class:`CompletionState`
            (``epoch`` restarts at 1 for each start); True stops that start and skips the rest.

    Returns:
        :class:`CompletionResult` holding a normalized :class:`CPTensor` in the input's dtype
        and device. A slice with no observed entry gets a zero factor row (its predictions
        are 0); those slices are listed per mode in ``extras["empty_slices"]``.
        ``extras["start_scores"]`` holds the score of every start run (best validation RMSE,
        or final training objective without validation) and ``extras["best_start"]`` the
        0-based index of the start returned; the RMSE histories, epochs and stopping flags are
        those of that start, ``time_s`` covers all. ``extras["degeneracy"]`` is the
        :func:`~factorch.decomp.cp_degeneracy` check of the returned model (components that
        cancel: try a lower rank or an ``l2`` chosen on a validation set). Half-precision data
        are fitted in float32; the model is returned in the input dtype with the RMSEs of that
        model.

    Raises:
        TypeError: wrong types (tensor, mask, rank, generator, ...).
        ValueError: bad values (no observed entry, NaN observed, rank or options out of range,
            a rank whose working set cannot fit the device's memory).

    Not differentiable: the updates are closed-form solves, and data that require grad are
    detached. Runs with autocast off, in the input's precision (float32 for half inputs).

    Example:
        >>> import torch
        >>> from factorch.completion import cp_als
        >>> x = torch.rand(6, 5, 4, dtype=torch.float64)
        >>> mask = torch.rand(6, 5, 4) < 0.7
        >>> res = cp_als(x, 2, mask=mask, generator=torch.Generator().manual_seed(0))
        >>> res.model.rank, res.model.dtype
        (2, torch.float64)
    """
    fn = "cp_als"
    if method not in get_args(CPCompletionMethod):
        raise ValueError(
            f"{fn}: method must be one of {get_args(CPCompletionMethod)}; got {method!r}."
        )
    rank = check_positive_int(rank, fn, "rank")
    starts = check_positive_int(starts, fn, "starts")
    l2, loop = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    damping = check_nonneg(damping, fn, "damping")
    obs = observe(tensor, mask, fn)
    train = obs.train
    check_cp_memory(train.shape, train.nnz, rank, train.dtype, train.device, fn)
    check_cp_init(init, train.shape, rank, fn)
    val = observe_validation(validation, obs, fn)
    if method == "em":
        if math.prod(train.shape) > 2**31:
            raise ValueError(
                f"{fn}: method='em' forms the dense tensor, {math.prod(train.shape)} entries "
                "here (at most 2**31); use method='als', which works on the observed entries."
            )
        check_memory(
            4 * math.prod(train.shape),
            train.dtype,
            train.device,
            fn,
            f"method='em' on a {train.shape} tensor",
            hint="use method='als'",
        )
    clock = Stopwatch()
    runner = _StartRunner(
        obs,
        val,
        rank,
        method,
        l2,
        damping,
        loop,
        generator,
        presenting(callback, obs, lambda m: present_cp(m, obs, fn, check=False)),
    )
    runs: list[CompletionResult[CPTensor]] = []
    scores: list[float] = []
    for start in range(starts):
        result, objective = runner.run(init if start == 0 else "random")
        runs.append(result)
        scores.append(result.best_val_rmse * obs.scale if val is not None else objective)
        if runner.stopped:
            break
    best_start = min(range(len(runs)), key=scores.__getitem__)  # first of equal scores
    best = runs[best_start]
    if val is None:
        scores = [v * obs.scale * obs.scale for v in scores]
    extras = {**best.extras, "start_scores": tuple(scores), "best_start": best_start}
    time_s = best.time_s if starts == 1 else clock.elapsed
    best = replace(best, extras=extras, time_s=time_s)
    return finish_cp(best, obs, val, fn)


def _als(
    train: SparseTensor,
    val: SparseTensor | None,
    factors: list[torch.Tensor],
    l2: float,
    damping: float,
    loop: LoopOptions,
    callback: CompletionCallback | None,
) -> tuple[CompletionResult[CPTensor], float]:
    """One row-wise ALS fit from ``factors`` (scaled values, scaled ridge ``l2``, relative
    ``damping``); returns the result and its final training objective."""
    clock = Stopwatch()
    rank = factors[0].shape[1]
    ones = torch.ones(rank, dtype=train.dtype, device=train.device)
    monitor: Monitor[CPTensor] = Monitor(
        "cp_als", loop, has_validation=val is not None, callback=callback, snapshot=lambda m: m
    )
    objective = math.inf
    with torch.no_grad():
        layout = SparseLayout.build(train)
        for it in range(1, loop.max_iter + 1):
            for n in range(train.ndim):
                factors[n] = _update_mode(train, factors, n, l2, damping, layout)
            train_rmse, objective = ridge_objective(cp_values(factors, train), train, l2, factors)
            val_rmse = rmse_of(cp_values(factors, val), val.values) if val else math.nan
            if monitor.step(it, train_rmse, val_rmse, CPTensor(ones, tuple(factors)), objective):
                break
    result = monitor.result(
        CPTensor(ones, tuple(factors)),
        clock.elapsed,
        extras={"empty_slices": empty_slices(train), "method": "als"},
    )
    return result, objective


def _update_mode(
    train: SparseTensor,
    factors: list[torch.Tensor],
    n: int,
    l2: float,
    damping: float = 0.0,
    layout: SparseLayout | None = None,
) -> torch.Tensor:
    lay = (layout or SparseLayout.build(train, modes=(n,))).mode(n)
    others = [f for m, f in enumerate(factors) if m != n]
    rank = factors[0].shape[1]

    def features(s: int, e: int) -> torch.Tensor:
        h = others[0].index_select(0, lay.others[0][s:e])
        for f, col in zip(others[1:], lay.others[1:]):
            h.mul_(f.index_select(0, col[s:e]))
        return h

    return solve_rows(lay, train.shape[n], rank, features, l2, damping=damping)


def _em(
    train: SparseTensor,
    val: SparseTensor | None,
    rank: int,
    l2: float,
    ridge: float,
    loop: LoopOptions,
    init: CPInit,
    scale: float,
    generator: torch.Generator | None,
    callback: CompletionCallback | None,
) -> tuple[CompletionResult[CPTensor], float]:
    """One EM fit by :func:`factorch.decomp.cp` with ``mask`` (``l2`` is its ridge on the
    normalized components); the objective reported uses the scaled absolute ridge ``ridge``."""
    clock = Stopwatch()
    if isinstance(init, CPTensor):
        w = init.weights.detach().to(device=train.device, dtype=torch.float64) / scale
        factors = tuple(f.detach().to(device=train.device, dtype=train.dtype) for f in init.factors)
        init = CPTensor(w.to(train.dtype), factors)
    monitor: Monitor[CPTensor] = Monitor(
        "cp_als",
        loop,
        has_validation=val is not None,
        callback=callback,
        snapshot=lambda m: CPTensor(m.weights.clone(), tuple(f.clone() for f in m.factors)),
    )
    last = math.inf

    def on_sweep(state: IterationState) -> bool:
        nonlocal last
        model = state.model
        fs = [f.clone() for f in model.factors]
        fs[0] = fs[0] * model.weights
        train_rmse, last = ridge_objective(cp_values(fs, train), train, ridge, fs)
        val_rmse = rmse_of(cp_values(fs, val), val.values) if val is not None else math.nan
        return monitor.step(state.iteration, train_rmse, val_rmse, model, last)

    res = dense_cp(
        train.to_dense(),
        rank,
        init=init,
        max_iter=loop.max_iter,
        tol=0.0,
        l2=l2,
        mask=train.mask(),
        generator=generator,
        callback=on_sweep,
    )
    extras: dict[str, object] = {"empty_slices": empty_slices(train), "method": "em"}
    return monitor.result(res.model, clock.elapsed, extras=extras), last
