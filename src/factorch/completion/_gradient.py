"""The gradient-based CP fitting loop shared by CP-WOPT and GCP.

Objective over the observed set ``Omega`` (mean-normalised so step sizes and tolerances do not
depend on the number of entries):

    F(A) = (1 / |Omega|) [ sum_{p in Omega} f(x_p, m_p) + l2 sum_n ||A_n||_F^2 ],
    m_p = sum_r prod_n A_n[i_n(p), r].

Full-batch evaluations use :func:`factorch.completion._common.cp_values`, whose backward pass is
one sparse MTTKRP per factor (the gradient ``dF/dA_n`` is the MTTKRP of the elementwise
derivative ``df/dm``, Acar et al. 2011, Hong et al. 2020). Mini-batches (Adam with
``batch_size``) index the factors directly; their objective
``(1/b) sum_{p in batch} f + (l2 / |Omega|) sum_n ||A_n||^2`` is an unbiased estimate of ``F``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch

from .._checks import check_positive_int
from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..tensors import CPTensor, SparseTensor
from ._common import LoopOptions, Monitor, check_nonneg, cp_values, empty_slices, rmse_of
from ._metrics import apply_link
from ._result import CompletionCallback, CompletionResult, Link

__all__ = [
    "ElementLoss",
    "GradientOptions",
    "Optimizer",
    "check_gradient_options",
    "fit_cp_gradient",
]

Optimizer = Literal["lbfgs", "adam"]
ElementLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GradientOptions:
    """How a gradient-based fit optimises: ``optimizer``, Adam's learning rate ``lr``, Adam's
    mini-batch size (None: full batch) and the L-BFGS iterations per epoch."""

    optimizer: Optimizer
    lr: float
    batch_size: int | None
    lbfgs_iters: int


def check_gradient_options(
    optimizer: object, lr: object, batch_size: object, lbfgs_iters: object, fn: str
) -> GradientOptions:
    if optimizer not in get_args(Optimizer):
        raise ValueError(
            f"{fn}: optimizer must be one of {get_args(Optimizer)}; got {optimizer!r}."
        )
    rate = check_nonneg(lr, fn, "lr")
    if rate == 0:
        raise ValueError(f"{fn}: lr must be positive; got 0.")
    batch = None
    if batch_size is not None:
        batch = check_positive_int(batch_size, fn, "batch_size")
        if optimizer == "lbfgs":
            raise ValueError(
                f"{fn}: batch_size is for optimizer='adam'; L-BFGS uses every observed entry."
            )
    iters = check_positive_int(lbfgs_iters, fn, "lbfgs_iters")
    return GradientOptions(cast(Optimizer, optimizer), rate, batch, iters)


def _batch_values(factors: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    prod = factors[0][idx[0]]
    for n in range(1, len(factors)):
        prod = prod * factors[n][idx[n]]
    return prod.sum(1)


@dataclass
class _Problem:
    """The objective ``F(A) = (sum_p f(x_p, m_p) + l2 sum_n ||A_n||^2) / |Omega|``."""

    train: SparseTensor
    loss: ElementLoss
    l2: float
    params: list[torch.Tensor]
    layout: SparseLayout  # of ``train``, built once for the backward passes

    def penalty(self) -> torch.Tensor:
        out = torch.zeros((), dtype=self.train.dtype, device=self.train.device)
        for p in self.params:
            out = out + torch.sum(p * p)
        return out

    def objective(self) -> torch.Tensor:
        m = cp_values(self.params, self.train, self.layout)
        return (torch.sum(self.loss(self.train.values, m)) + self.l2 * self.penalty()) / (
            self.train.nnz
        )

    def batch_objective(self, pos: torch.Tensor) -> torch.Tensor:
        m = _batch_values(self.params, self.train.indices[:, pos])
        data = torch.mean(self.loss(self.train.values[pos], m))
        return data + (self.l2 / self.train.nnz) * self.penalty()


def _optimizer(params: list[torch.Tensor], opts: GradientOptions) -> torch.optim.Optimizer:
    if opts.optimizer == "lbfgs":
        return torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=opts.lbfgs_iters,
            history_size=20,
            tolerance_grad=1e-12,
            tolerance_change=1e-16,
            line_search_fn="strong_wolfe",
        )
    return torch.optim.Adam(params, lr=opts.lr)


def _epoch(
    problem: _Problem,
    opt: torch.optim.Optimizer,
    opts: GradientOptions,
    generator: torch.Generator | None,
) -> None:
    """One epoch of updates: an L-BFGS step, one full-batch Adam step, or one pass of Adam
    over shuffled mini-batches."""

    def closure() -> float:
        opt.zero_grad(set_to_none=True)
        value = problem.objective()
        value.backward()
        return float(value.detach())

    nnz = problem.train.nnz
    if opts.optimizer == "lbfgs":
        opt.step(closure)
    elif opts.batch_size is None or opts.batch_size >= nnz:
        closure()
        opt.step()
    else:
        order = torch.randperm(nnz, generator=generator).to(problem.train.device)
        for s in range(0, nnz, opts.batch_size):
            opt.zero_grad(set_to_none=True)
            problem.batch_objective(order[s : s + opts.batch_size]).backward()
            opt.step()


def fit_cp_gradient(
    train: SparseTensor,
    val: SparseTensor | None,
    factors: list[torch.Tensor],
    loss: ElementLoss,
    *,
    fn: str,
    link: Link,
    l2: float,
    loop: LoopOptions,
    opts: GradientOptions,
    generator: torch.Generator | None,
    callback: CompletionCallback | None,
    extras: dict[str, object],
) -> CompletionResult[CPTensor]:
    """Minimise the objective of the module docstring from ``factors``; the result holds the
    (unnormalized) CP model of the last or best epoch and ``extras["loss"]``, the objective
    after each epoch."""
    clock = Stopwatch()
    params = [f.detach().clone().requires_grad_(True) for f in factors]
    problem = _Problem(train, loss, l2, params, SparseLayout.build(train))
    opt = _optimizer(problem.params, opts)
    ones = torch.ones(factors[0].shape[1], dtype=train.dtype, device=train.device)
    monitor: Monitor[CPTensor] = Monitor(
        fn,
        loop,
        has_validation=val is not None,
        callback=callback,
        snapshot=lambda m: CPTensor(m.weights, tuple(f.clone() for f in m.factors)),
    )
    losses: list[float] = []
    for epoch in range(1, loop.max_iter + 1):
        _epoch(problem, opt, opts, generator)
        with torch.no_grad():
            objective = float(problem.objective())
            fitted = tuple(p.detach() for p in problem.params)
            train_rmse = rmse_of(apply_link(cp_values(fitted, train), link), train.values)
            val_rmse = math.nan
            if val is not None:
                val_rmse = rmse_of(apply_link(cp_values(fitted, val), link), val.values)
        losses.append(objective)
        if monitor.step(epoch, train_rmse, val_rmse, CPTensor(ones, fitted), objective):
            break
    final = CPTensor(ones, tuple(p.detach().clone() for p in problem.params))
    extras = {**extras, "loss": tuple(losses), "empty_slices": empty_slices(train)}
    return monitor.result(final, clock.elapsed, link=link, extras=extras)
