"""Generalized CP (GCP) completion: CP models fitted under a statistical loss.

Hong, Kolda and Duersch, "Generalized canonical polyadic tensor decomposition", SIAM Review 62(1),
2020; Kolda and Hong, "Stochastic gradients for large-scale tensor decomposition", SIAM J. Math.
Data Sci. 2(4), 2020. The model ``m_p = sum_r prod_n A_n[i_n(p), r]`` is the natural parameter of
the chosen distribution and the objective is

    F(A) = (1 / |Omega|) [ sum_{p in Omega} f(x_p, m_p) + l2 sum_n ||A_n||_F^2 ]

over the observed entries (all entries of a dense tensor without a mask). Losses (``f``, the link
from ``m`` to the predicted mean, and what the data must be):

=================== ============================== ========== ====================
``loss``            ``f(x, m)``                    prediction data
=================== ============================== ========== ====================
``"gaussian"``      ``(x - m)^2``                  ``m``      real
``"poisson_log"``   ``exp(m) - x m``               ``exp(m)`` counts ``x >= 0``
``"bernoulli_logit"`` ``log(1 + exp(m)) - x m``    ``sigmoid(m)`` ``x in {0, 1}``
``"gamma_log"``     ``x exp(-m) + m``              ``exp(m)`` ``x > 0``
``"huber"``         ``r^2`` if ``|r| <= d`` else   ``m``      real (outliers)
                    ``2 d |r| - d^2``, ``r = x - m``
callable            ``loss(x, m)`` (elementwise)   ``link``   any
=================== ============================== ========== ====================

The Gamma loss uses the log link (``m`` is the log of the mean) so that the problem stays
unconstrained; the paper's identity-link form ``x / m + log m`` needs ``m > 0`` bounds.
``"gaussian"`` gives twice the CP-WOPT objective (:func:`cp_wopt`), so both have the same
minimisers for the same ``l2``. Optimised by L-BFGS on all entries, or by Adam on all entries or on
random mini-batches ("sampled entries": ``batch_size``); gradients by autograd (the full-batch
backward pass is a sparse MTTKRP of ``df/dm``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from ..tensors import CPTensor, SparseTensor
from ._common import (
    check_fit_options,
    observations,
    randn,
    validation_set,
)
from ._cp_als import _update_mode, cp_init
from ._gradient import Optimizer, fit_cp_gradient
from ._result import CompletionCallback, CompletionResult, Link
from ._wopt import check_optimizer

__all__ = ["GCPLoss", "gcp", "gcp_loss"]

GCPLoss = Literal["gaussian", "poisson_log", "bernoulli_logit", "gamma_log", "huber"]

_LINKS: dict[str, Link] = {
    "gaussian": "identity",
    "poisson_log": "exp",
    "bernoulli_logit": "sigmoid",
    "gamma_log": "exp",
    "huber": "identity",
}


def gcp_loss(
    loss: GCPLoss, *, huber_delta: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The elementwise loss ``f(x, m)`` of a named GCP loss (see the module table)."""
    if loss == "gaussian":
        return lambda x, m: (x - m) ** 2
    if loss == "poisson_log":
        return lambda x, m: torch.exp(m) - x * m
    if loss == "bernoulli_logit":
        return lambda x, m: F.softplus(m) - x * m
    if loss == "gamma_log":
        return lambda x, m: x * torch.exp(-m) + m
    if loss == "huber":
        d = float(huber_delta)

        def huber(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            r = (x - m).abs()
            return torch.where(r <= d, r * r, 2 * d * r - d * d)

        return huber
    raise ValueError(f"gcp_loss: loss must be one of {get_args(GCPLoss)}; got {loss!r}.")


_INIT_SWEEPS = 10


def _model_scale(x: torch.Tensor, loss: object, link: str) -> torch.Tensor:
    """The data mapped to the scale of the model ``m`` (for the starting point)."""
    if loss == "huber":  # winsorise at the median +- 3 robust standard deviations
        med = x.median()
        spread = 3.0 * 1.4826 * (x - med).abs().median()
        return torch.minimum(torch.maximum(x, med - spread), med + spread)
    if link == "exp":
        return torch.log(x) if loss == "gamma_log" else torch.log(x + 0.5)
    if link == "sigmoid":
        return 4.0 * (x - 0.5)
    return x


def _check_data(values: torch.Tensor, loss: str, fn: str) -> None:
    if loss == "poisson_log" and bool((values < 0).any()):
        raise ValueError(
            f"{fn}: loss='poisson_log' needs counts >= 0; got a value {float(values.min())}."
        )
    if loss == "gamma_log" and bool((values <= 0).any()):
        raise ValueError(
            f"{fn}: loss='gamma_log' needs positive data; got a value {float(values.min())}."
        )
    if loss == "bernoulli_logit" and bool(((values != 0) & (values != 1)).any()):
        raise ValueError(f"{fn}: loss='bernoulli_logit' needs binary data (0 or 1).")


def gcp(
    data: SparseTensor | torch.Tensor,
    rank: int,
    *,
    loss: GCPLoss | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "gaussian",
    link: Link | None = None,
    huber_delta: float = 1.0,
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
    """Generalized CP decomposition / completion under a statistical loss (GCP).

    Args:
        data: observed entries (:class:`~factorch.tensors.SparseTensor`) or a dense tensor with
            an optional ``mask`` (without one, every entry is data: zeros of a count tensor too).
        rank: number of components ``R``.
        loss: a name from the module table or a callable ``loss(x, m)`` returning elementwise
            losses (differentiable in ``m``).
        link: for a callable loss, how predictions follow from ``m`` (default ``"identity"``);
            fixed by the named losses.
        huber_delta: the threshold ``d`` of the Huber loss.
        mask: bool tensor, True where a dense ``data`` is observed.
        init: ``"svd"``: for the Gaussian loss and callables with the identity link, the
            spectral start of :func:`cp_als`; otherwise the data are mapped to the model scale
            (``log(x + 1/2)`` for Poisson counts, ``log x`` for Gamma data, ``4 (x - 1/2)`` for
            binary data, values winsorised at the median +- 3 robust standard deviations for
            Huber) and fitted by the spectral start and 10 least-squares ALS sweeps (without
            this, L-BFGS often stalls in poor stationary points of the log-link losses, and
            outliers steer the Huber start). ``"random"`` or a
            :class:`CPTensor` otherwise.
        optimizer, validation, l2, max_iter, tol, patience, lr, batch_size, lbfgs_iters,
            generator, callback: as in :func:`cp_wopt`.

    Returns:
        :class:`CompletionResult` holding the CP model of ``m`` (normalized); its ``link``
        maps ``m`` to predicted means, and ``predict`` applies it. RMSEs are between predicted
        means and data. ``extras["loss"]`` holds the objective per epoch.

    The fit is not differentiable with respect to the data. Device and dtype follow the data.
    """
    fn = "gcp"
    check_positive_int(rank, fn, "rank")
    if callable(loss) and not isinstance(loss, str):
        loss_fn = loss
        link = "identity" if link is None else link
        if link not in ("identity", "exp", "sigmoid"):
            raise ValueError(f"{fn}: link must be 'identity', 'exp' or 'sigmoid'; got {link!r}.")
        name = getattr(loss, "__name__", "custom")
    else:
        if loss not in get_args(GCPLoss):
            raise ValueError(
                f"{fn}: loss must be one of {get_args(GCPLoss)} or a callable; got {loss!r}."
            )
        if link is not None:
            raise ValueError(
                f"{fn}: link is fixed by loss={loss!r}; pass link only with a callable loss."
            )
        if (
            isinstance(huber_delta, bool)
            or not isinstance(huber_delta, (int, float))
            or not (math.isfinite(huber_delta) and huber_delta > 0)
        ):
            raise ValueError(f"{fn}: huber_delta must be a positive number; got {huber_delta!r}.")
        loss_fn = gcp_loss(loss, huber_delta=huber_delta)
        link = _LINKS[loss]
        name = loss
    lr = check_optimizer(optimizer, lr, batch_size, lbfgs_iters, fn)
    l2, max_iter, tol, patience = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    train = observations(data, mask, fn)
    if isinstance(loss, str):
        _check_data(train.values, loss, fn)
    val = validation_set(validation, train, fn)
    if isinstance(init, CPTensor) or (link == "identity" and loss != "huber"):
        factors = cp_init(train, rank, init, generator, fn)
    elif init == "svd":
        mapped = train.with_values(_model_scale(train.values, loss, link))
        with torch.no_grad():
            factors = cp_init(mapped, rank, "svd", generator, fn)
            for _ in range(_INIT_SWEEPS):
                for n in range(train.ndim):
                    factors[n] = _update_mode(mapped, factors, n, max(l2, 1e-6))
    elif init == "random":
        scale = (1.0 / math.sqrt(rank)) ** (1.0 / train.ndim)  # model values of RMS about 1
        factors = [
            randn((s, rank), generator, train.dtype, train.device, scale) for s in train.shape
        ]
    else:
        raise ValueError(f"{fn}: init must be 'svd', 'random' or a CPTensor; got {init!r}.")
    return fit_cp_gradient(
        train,
        val,
        factors,
        loss_fn,
        link=link,
        l2=l2,
        optimizer=optimizer,
        max_iter=max_iter,
        tol=tol,
        patience=patience,
        lr=lr,
        batch_size=batch_size,
        lbfgs_iters=lbfgs_iters,
        generator=generator,
        callback=callback,
        extras={"optimizer": optimizer, "loss_name": name},
    )
