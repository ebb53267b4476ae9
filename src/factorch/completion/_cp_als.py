"""CP completion by alternating least squares on the observed entries, or by EM imputation.

``method="als"`` minimises, over the observed set ``Omega`` only,

    sum_{p in Omega} (x_p - sum_r prod_n A_n[i_n(p), r])^2 + l2 sum_n ||A_n||_F^2

one factor at a time; with the others fixed every row of ``A_n`` is an independent ridge
regression on the entries of its slice (:mod:`factorch.completion._rowwise`). Cost per sweep:
about ``N nnz R^2 / 2`` multiply-adds; nothing of the size of the dense tensor is formed, so it
works for sparse data of any shape (Tomasi and Bro, "PARAFAC and missing values", Chemometr.
Intell. Lab. Syst. 75, 2005, section on "missing-skipping" ALS; the row-wise form is that of
Zhou et al., "Large-scale parallel collaborative filtering for the Netflix prize", 2008).

``method="em"`` is what TensorLy's ``parafac(mask=...)`` does: every sweep refills the missing
entries of a dense copy with the current model and runs a standard CP-ALS sweep
(:func:`factorch.decomp.cp` with ``mask``); it needs a dense tensor and converges slowly when
many entries are missing. It is offered for comparison.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, get_args

import torch

from .._checks import check_positive_int
from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..decomp import IterationState
from ..decomp import cp as dense_cp
from ..tensors import CPTensor, SparseTensor
from ._common import (
    Monitor,
    check_fit_options,
    cp_scale,
    cp_values,
    empty_slices,
    normalized,
    observations,
    randn,
    ridge_objective,
    rmse_of,
    validation_set,
)
from ._result import CompletionCallback, CompletionResult, CompletionState
from ._rowwise import solve_rows
from ._spectral import spectral_factors

__all__ = ["CPCompletionMethod", "cp_als", "cp_init"]

CPCompletionMethod = Literal["als", "em"]


def cp_init(
    train: SparseTensor,
    rank: int,
    init: object,
    generator: torch.Generator | None,
    fn: str,
) -> list[torch.Tensor]:
    """Starting factors (copies): ``"svd"`` (spectral: leading subspaces of the rescaled
    zero-filled unfoldings, then one scalar least-squares fit of the scale), ``"random"``
    (Gaussian, model RMS equal to the observed RMS) or a CPTensor (weights folded into the first
    factor)."""
    if isinstance(init, CPTensor):
        if init.shape != train.shape or init.rank != rank:
            raise ValueError(
                f"{fn}: init has shape {init.shape} and rank {init.rank}; expected shape "
                f"{train.shape} and rank {rank}."
            )
        fs = [f.detach().to(device=train.device, dtype=train.dtype).clone() for f in init.factors]
        fs[0] = fs[0] * init.weights.detach().to(fs[0])
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
        init = "random"
    if init != "random":
        raise ValueError(f"{fn}: init must be 'svd', 'random' or a CPTensor; got {init!r}.")
    scale = cp_scale(train, rank)
    return [randn((s, rank), generator, train.dtype, train.device, scale) for s in train.shape]


def cp_als(
    data: SparseTensor | torch.Tensor,
    rank: int,
    *,
    mask: torch.Tensor | None = None,
    method: CPCompletionMethod = "als",
    validation: SparseTensor | None = None,
    l2: float = 1e-3,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    init: Literal["svd", "random"] | CPTensor = "svd",
    starts: int = 1,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[CPTensor]:
    """CP completion of a partially observed tensor by alternating least squares.

    Args:
        data: a :class:`~factorch.tensors.SparseTensor` of observed entries, or a dense tensor
            (with ``mask``).
        rank: number of components ``R``.
        mask: bool tensor, True where a dense ``data`` is observed (entries elsewhere, NaN
            included, are ignored).
        method: ``"als"`` (least squares on observed entries only, row-wise) or ``"em"``
            (TensorLy-style imputation of the missing entries, dense only).
        validation: held-out entries; the model with the lowest validation RMSE is returned
            and the run stops after ``patience`` sweeps without improvement.
        l2: ridge weight on the factors (see the module docstring); keeps slices with fewer
            than ``R`` observations solvable. Tune it on the validation set.
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
        :class:`CompletionResult` holding a normalized :class:`CPTensor`. A slice with no
        observed entry gets a zero factor row (its predictions are 0); those slices are listed
        per mode in ``extras["empty_slices"]``. ``extras["start_scores"]`` holds the score of
        every start run (best validation RMSE, or final training objective without validation)
        and ``extras["best_start"]`` the 0-based index of the start returned; the RMSE
        histories, epochs and stopping flags are those of that start, ``time_s`` covers all.

    Not differentiable (the updates are closed-form solves). Device and dtype follow the data.
    """
    fn = "cp_als"
    if method not in get_args(CPCompletionMethod):
        raise ValueError(
            f"{fn}: method must be one of {get_args(CPCompletionMethod)}; got {method!r}."
        )
    check_positive_int(rank, fn, "rank")
    check_positive_int(starts, fn, "starts")
    l2, max_iter, tol, patience = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    train = observations(data, mask, fn)
    val = validation_set(validation, train, fn)
    clock = Stopwatch()
    stop = [False]

    def cb(state: CompletionState) -> bool:
        stop[0] = bool(callback(state)) if callback is not None else False
        return stop[0]

    runs: list[CompletionResult[CPTensor]] = []
    scores: list[float] = []
    for start in range(starts):
        start_init = init if start == 0 else "random"
        if method == "em":
            result, objective = _em(
                data,
                mask,
                train,
                val,
                rank,
                l2,
                max_iter,
                tol,
                patience,
                start_init,
                generator,
                cb if callback is not None else None,
            )
        else:
            result, objective = _als(
                train,
                val,
                rank,
                l2,
                max_iter,
                tol,
                patience,
                start_init,
                generator,
                cb if callback is not None else None,
            )
        runs.append(result)
        scores.append(result.best_val_rmse if val is not None else objective)
        if stop[0]:
            break
    best_start = min(range(len(runs)), key=scores.__getitem__)  # first of equal scores
    best = runs[best_start]
    extras = {**best.extras, "start_scores": tuple(scores), "best_start": best_start}
    time_s = best.time_s if starts == 1 else clock.elapsed
    return dataclasses.replace(best, extras=extras, time_s=time_s)


def _als(
    train: SparseTensor,
    val: SparseTensor | None,
    rank: int,
    l2: float,
    max_iter: int,
    tol: float,
    patience: int,
    init: object,
    generator: torch.Generator | None,
    callback: CompletionCallback | None,
) -> tuple[CompletionResult[CPTensor], float]:
    """One row-wise ALS fit; returns the normalized result and its final training objective."""
    fn = "cp_als"
    clock = Stopwatch()
    with torch.no_grad():
        factors = cp_init(train, rank, init, generator, fn)
        monitor: Monitor[CPTensor] = Monitor(
            has_validation=val is not None,
            patience=patience,
            tol=tol,
            callback=callback,
            snapshot=lambda m: m,
        )
        ones = torch.ones(rank, dtype=train.dtype, device=train.device)
        layout = SparseLayout.build(train)
        for it in range(1, max_iter + 1):
            for n in range(train.ndim):
                factors[n] = _update_mode(train, factors, n, l2, layout)
            train_rmse, objective = ridge_objective(cp_values(factors, train), train, l2, factors)
            val_rmse = (
                rmse_of(cp_values(factors, val), val.values) if val is not None else float("nan")
            )
            model = CPTensor(ones, tuple(factors))
            if monitor.step(it, train_rmse, val_rmse, model, objective):
                break
        result = monitor.result(
            CPTensor(ones, tuple(factors)),
            clock.elapsed,
            extras={"empty_slices": empty_slices(train), "method": "als"},
        )
    return normalized(result), objective


def _update_mode(
    train: SparseTensor,
    factors: list[torch.Tensor],
    n: int,
    l2: float,
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

    return solve_rows(lay, train.shape[n], rank, features, l2)


def _em(data, mask, train, val, rank, l2, max_iter, tol, patience, init, generator, callback):
    fn = "cp_als"
    if isinstance(data, SparseTensor):
        dense = data.to_dense()
        mask = data.mask()
    else:
        dense = data
        mask = torch.ones_like(data, dtype=torch.bool) if mask is None else mask
        dense = torch.where(mask, dense, torch.zeros_like(dense))
    if not (isinstance(init, CPTensor) or init in ("random", "svd")):
        raise ValueError(f"{fn}: init must be 'random', 'svd' or a CPTensor; got {init!r}.")
    clock = Stopwatch()
    monitor: Monitor[CPTensor] = Monitor(
        has_validation=val is not None,
        patience=patience,
        tol=tol,
        callback=callback,
        snapshot=lambda m: CPTensor(m.weights.clone(), tuple(f.clone() for f in m.factors)),
    )

    last = [math.inf]

    def on_sweep(state: IterationState) -> bool:
        model = state.model
        fs = [f.clone() for f in model.factors]
        fs[0] = fs[0] * model.weights
        train_rmse, objective = ridge_objective(cp_values(fs, train), train, l2, fs)
        last[0] = objective
        val_rmse = rmse_of(cp_values(fs, val), val.values) if val is not None else float("nan")
        return monitor.step(state.iteration, train_rmse, val_rmse, model, objective)

    res = dense_cp(
        dense,
        rank,
        init=init,
        max_iter=max_iter,
        tol=0.0,
        l2=l2,
        mask=mask,
        generator=generator,
        callback=on_sweep,
    )
    result = monitor.result(
        res.model, clock.elapsed, extras={"empty_slices": empty_slices(train), "method": "em"}
    )
    return normalized(result), last[0]
