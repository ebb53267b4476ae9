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
from typing import Literal

import torch

from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..tensors import CPTensor, SparseTensor
from ._common import Monitor, cp_values, empty_slices, normalized, rmse_of
from ._metrics import _apply_link
from ._result import CompletionCallback, CompletionResult, Link

__all__ = ["Optimizer", "fit_cp_gradient"]

Optimizer = Literal["lbfgs", "adam"]
ElementLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _batch_values(factors: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    prod = factors[0][idx[0]]
    for n in range(1, len(factors)):
        prod = prod * factors[n][idx[n]]
    return prod.sum(1)


def fit_cp_gradient(
    train: SparseTensor,
    val: SparseTensor | None,
    factors: list[torch.Tensor],
    loss: ElementLoss,
    *,
    link: Link,
    l2: float,
    optimizer: Optimizer,
    max_iter: int,
    tol: float,
    patience: int,
    lr: float,
    batch_size: int | None,
    lbfgs_iters: int,
    generator: torch.Generator | None,
    callback: CompletionCallback | None,
    extras: dict[str, object],
) -> CompletionResult[CPTensor]:
    clock = Stopwatch()
    params = [f.detach().clone().requires_grad_(True) for f in factors]
    nnz = train.nnz
    x = train.values
    rank = params[0].shape[1]
    ones = torch.ones(rank, dtype=train.dtype, device=train.device)

    def penalty() -> torch.Tensor:
        return sum(torch.sum(p * p) for p in params)  # type: ignore[return-value]

    layout = SparseLayout.build(train)

    def full_objective() -> torch.Tensor:
        m = cp_values(params, train, layout)
        return (torch.sum(loss(x, m)) + l2 * penalty()) / nnz

    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=lbfgs_iters,
            history_size=20,
            tolerance_grad=1e-12,
            tolerance_change=1e-16,
            line_search_fn="strong_wolfe",
        )
    else:
        opt = torch.optim.Adam(params, lr=lr)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        value = full_objective()
        value.backward()
        return value

    snapshot = lambda m: CPTensor(m.weights, tuple(f.clone() for f in m.factors))  # noqa: E731
    monitor: Monitor[CPTensor] = Monitor(
        has_validation=val is not None,
        patience=patience,
        tol=tol,
        callback=callback,
        snapshot=snapshot,
    )
    losses: list[float] = []
    for epoch in range(1, max_iter + 1):
        if optimizer == "lbfgs":
            opt.step(closure)
        elif batch_size is None or batch_size >= nnz:
            closure()
            opt.step()
        else:
            order = torch.randperm(nnz, generator=generator).to(train.device)
            idx_all = train.indices
            for s in range(0, nnz, batch_size):
                pos = order[s : s + batch_size]
                opt.zero_grad(set_to_none=True)
                m = _batch_values(params, idx_all[:, pos])
                value = torch.mean(loss(x[pos], m)) + (l2 / nnz) * penalty()
                value.backward()
                opt.step()
        with torch.no_grad():
            m = cp_values(params, train)
            objective = float((torch.sum(loss(x, m)) + l2 * penalty()) / nnz)
            train_rmse = rmse_of(_apply_link(m, link), x)
            if val is not None:
                val_rmse = rmse_of(_apply_link(cp_values(params, val), link), val.values)
            else:
                val_rmse = math.nan
            losses.append(objective)
            model = CPTensor(ones, tuple(p.detach() for p in params))
        if monitor.step(epoch, train_rmse, val_rmse, model, objective):
            break
    final = CPTensor(ones, tuple(p.detach().clone() for p in params))
    extras = {**extras, "loss": tuple(losses), "empty_slices": empty_slices(train)}
    return normalized(monitor.result(final, clock.elapsed, link=link, extras=extras))
