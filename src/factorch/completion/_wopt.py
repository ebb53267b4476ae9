"""CP-WOPT: CP completion by weighted optimisation (gradient-based, autograd).

Minimises the masked least-squares objective of Acar, Dunlavy, Kolda and Mørup, "Scalable tensor
factorizations for incomplete data", Chemometr. Intell. Lab. Syst. 106(1), 2011:

    F(A) = 1 / (2 |Omega|) [ sum_{p in Omega} (x_p - m_p)^2 + l2 sum_n ||A_n||_F^2 ],

the mean-normalised form of :func:`cp_als`'s objective (same minimisers for the same ``l2``), by
L-BFGS with a strong-Wolfe line search (default; full batch) or Adam (full batch, or mini-batches
of ``batch_size`` entries). The gradient ``-(1/|Omega|) MTTKRP(residual) + (l2/|Omega|) A_n`` is
obtained by autograd through :func:`~factorch.completion._common.cp_values`, whose backward is a
sparse MTTKRP, so nothing of the dense size is formed. As in :func:`cp_als`, ``l2`` is absolute
(default 0) and the fit runs on the values divided by an exact power of two.
"""

from __future__ import annotations

from typing import Literal

import torch

from .._checks import check_positive_int
from .._numerics import no_autocast
from ..tensors import CPTensor, SparseTensor
from ._common import check_cp_memory, check_fit_options, data_alias
from ._cp_als import check_cp_init, cp_init, cp_ridge
from ._gradient import Optimizer, check_gradient_options, fit_cp_gradient
from ._observed import observe, observe_validation
from ._output import finish_cp, present_cp, presenting
from ._result import CompletionCallback, CompletionResult

__all__ = ["cp_wopt"]


def _half_squares(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x - m) ** 2


@data_alias("cp_wopt")
@no_autocast
def cp_wopt(
    tensor: SparseTensor | torch.Tensor,
    rank: int,
    *,
    mask: torch.Tensor | None = None,
    optimizer: Optimizer = "lbfgs",
    validation: SparseTensor | None = None,
    l2: float = 0.0,
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
        tensor: the observed entries: a :class:`~factorch.tensors.SparseTensor` or torch
            sparse tensor, or a dense tensor / numpy array with ``mask`` (True = observed).
            ``data=`` is a deprecated alias.
        rank: number of components ``R``.
        mask: bool tensor or array, True where a dense ``tensor`` is observed.
        optimizer: ``"lbfgs"`` (``lbfgs_iters`` L-BFGS iterations per epoch) or ``"adam"``
            (learning rate ``lr``; one full-batch step per epoch, or one pass of mini-batches
            of ``batch_size`` entries).
        validation: held-out entries for early stopping and model selection.
        l2: absolute ridge weight, default 0 (same meaning as in :func:`cp_als`).
        max_iter: maximum number of epochs.
        tol: stop when the objective changes by less than ``tol`` relatively between epochs.
        patience: epochs without validation improvement before stopping.
        lr, batch_size, lbfgs_iters: optimiser settings (see ``optimizer``).
        init: ``"svd"`` (spectral start, as in :func:`cp_als`), ``"random"`` or a
            :class:`CPTensor`.
        generator: random source for the start and the mini-batch order.
        callback: called after each epoch with a :class:`CompletionState`; True stops.

    Returns:
        :class:`CompletionResult` with a normalized :class:`CPTensor` in the input's dtype
        and device; ``extras["loss"]`` holds the objective after each epoch (in the data's
        units squared). Slices with no observation keep ``l2``-shrunk starting rows
        (zero gradient from data): listed in ``extras["empty_slices"]``.
        ``extras["degeneracy"]``: the :func:`~factorch.decomp.cp_degeneracy` check.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: bad values, or a rank that cannot fit in memory.
        FloatingPointError: the objective became NaN or Inf (lower ``lr``).

    The fit is not differentiable with respect to the data: data that require grad are
    detached. Runs with autocast off; half-precision data are fitted in float32 and the model
    returned in their dtype.

    Example:
        >>> import torch
        >>> from factorch.completion import cp_wopt
        >>> x = torch.rand(6, 5, 4, dtype=torch.float64)
        >>> res = cp_wopt(x, 2, mask=torch.rand(6, 5, 4) < 0.7, max_iter=5)
        >>> res.model.shape
        (6, 5, 4)
    """
    fn = "cp_wopt"
    rank = check_positive_int(rank, fn, "rank")
    opts = check_gradient_options(optimizer, lr, batch_size, lbfgs_iters, fn)
    l2, loop = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    obs = observe(tensor, mask, fn)
    train = obs.train
    check_cp_memory(train.shape, train.nnz, rank, train.dtype, train.device, fn)
    check_cp_init(init, train.shape, rank, fn)
    val = observe_validation(validation, obs, fn)
    factors = cp_init(train, rank, init, generator, fn, obs.scale)
    result = fit_cp_gradient(
        train,
        val,
        factors,
        _half_squares,
        fn=fn,
        link="identity",
        l2=0.5 * cp_ridge(l2, obs),
        loop=loop,
        opts=opts,
        generator=generator,
        callback=presenting(callback, obs, lambda m: present_cp(m, obs, fn, check=False)),
        extras={"optimizer": opts.optimizer},
    )
    return finish_cp(result, obs, val, fn)
