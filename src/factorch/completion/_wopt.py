"""CP-WOPT: CP completion by weighted optimisation (gradient-based, autograd).

Minimises the masked least-squares objective of Acar, Dunlavy, Kolda and Mørup, "Scalable tensor
factorizations for incomplete data", Chemometr. Intell. Lab. Syst. 106(1), 2011:

    F(A) = 1 / (2 |Omega|) [ sum_{p in Omega} (x_p - m_p)^2 + l2 sum_n ||A_n||_F^2 ],

the mean-normalised form of :func:`cp_als`'s objective (same minimisers for the same ``l2``), by
L-BFGS with a strong-Wolfe line search (default; full batch) or Adam (full batch, or mini-batches
of ``batch_size`` entries). The gradient ``-(1/|Omega|) MTTKRP(residual) + (l2/|Omega|) A_n`` is
obtained by autograd through :func:`~factorch.completion._common.cp_values`, whose backward is a
sparse MTTKRP, so nothing of the dense size is formed.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from .._checks import check_positive_int
from ..tensors import CPTensor, SparseTensor
from ._common import check_fit_options, check_nonneg, observations, validation_set
from ._cp_als import cp_init
from ._gradient import Optimizer, fit_cp_gradient
from ._result import CompletionCallback, CompletionResult

__all__ = ["cp_wopt"]


def check_optimizer(optimizer, lr, batch_size, lbfgs_iters, fn):
    if optimizer not in get_args(Optimizer):
        raise ValueError(
            f"{fn}: optimizer must be one of {get_args(Optimizer)}; got {optimizer!r}."
        )
    lr = check_nonneg(lr, fn, "lr")
    if lr == 0:
        raise ValueError(f"{fn}: lr must be positive; got 0.")
    if batch_size is not None:
        check_positive_int(batch_size, fn, "batch_size")
        if optimizer == "lbfgs":
            raise ValueError(
                f"{fn}: batch_size is for optimizer='adam'; L-BFGS uses every observed entry."
            )
    check_positive_int(lbfgs_iters, fn, "lbfgs_iters")
    return lr


def cp_wopt(
    data: SparseTensor | torch.Tensor,
    rank: int,
    *,
    mask: torch.Tensor | None = None,
    optimizer: Optimizer = "lbfgs",
    validation: SparseTensor | None = None,
    l2: float = 1e-3,
    max_iter: int = 100,
    tol: float = 1e-9,
    patience: int = 10,
    lr: float = 0.01,
    batch_size: int | None = None,
    lbfgs_iters: int = 10,
    init: Literal["svd", "random"] | CPTensor = "svd",
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[CPTensor]:
    """CP completion by gradient-based weighted least squares (CP-WOPT).

    Args:
        data: a :class:`~factorch.tensors.SparseTensor` of observed entries, or a dense tensor
            with ``mask`` (True = observed).
        rank: number of components ``R``.
        optimizer: ``"lbfgs"`` (``lbfgs_iters`` L-BFGS iterations per epoch) or ``"adam"``
            (learning rate ``lr``; one full-batch step per epoch, or one pass of mini-batches
            of ``batch_size`` entries).
        validation: held-out entries for early stopping and model selection.
        l2: ridge weight (same meaning as in :func:`cp_als`).
        max_iter: maximum number of epochs.
        tol: stop when the objective changes by less than ``tol`` relatively between epochs.
        patience: epochs without validation improvement before stopping.
        init: ``"svd"`` (spectral start, as in :func:`cp_als`), ``"random"`` or a
            :class:`CPTensor`.
        generator: random source for the start and the mini-batch order.
        callback: called after each epoch with a :class:`CompletionState`; True stops.

    Returns:
        :class:`CompletionResult` with a normalized :class:`CPTensor`; ``extras["loss"]`` holds
        the objective after each epoch. Slices with no observation keep ``l2``-shrunk starting
        rows (zero-gradient from data): listed in ``extras["empty_slices"]``.

    The fit is not differentiable with respect to the data. Device and dtype follow the data.
    """
    fn = "cp_wopt"
    check_positive_int(rank, fn, "rank")
    lr = check_optimizer(optimizer, lr, batch_size, lbfgs_iters, fn)
    l2, max_iter, tol, patience = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    train = observations(data, mask, fn)
    val = validation_set(validation, train, fn)
    factors = cp_init(train, rank, init, generator, fn)

    def half_squares(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - m) ** 2

    return fit_cp_gradient(
        train,
        val,
        factors,
        half_squares,
        link="identity",
        l2=0.5 * l2,
        optimizer=optimizer,
        max_iter=max_iter,
        tol=tol,
        patience=patience,
        lr=lr,
        batch_size=batch_size,
        lbfgs_iters=lbfgs_iters,
        generator=generator,
        callback=callback,
        extras={"optimizer": optimizer},
    )
