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
minimisers for the same ``l2``. The names ``"normal"``, ``"poisson"``, ``"bernoulli"`` and
``"gamma"`` are accepted for ``"gaussian"``, ``"poisson_log"``, ``"bernoulli_logit"`` and
``"gamma_log"``. ``l2`` is absolute and 0 by default. For the Gaussian and Huber losses, which
are homogeneous of degree 2 in ``(x, m, d)``, the fit runs on the data divided by an exact power
of two (``d`` and ``l2`` rescaled to match); the log and logit losses see the data as given,
and the Poisson objective (whose gradient and curvature grow with the counts) is divided by a
power of two near the largest count, with ``l2``: the same minimiser, an O(1) problem for the
optimiser whatever the counts' magnitude.

Optimised by L-BFGS on all entries, or by Adam on all entries or on random mini-batches
("sampled entries": ``batch_size``); gradients by autograd (the full-batch backward pass is a
sparse MTTKRP of ``df/dm``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from .._numerics import no_autocast, power_of_two_scale
from ..algebra.internal import SparseLayout
from ..tensors import CPTensor, SparseTensor
from ._common import check_cp_memory, check_fit_options, data_alias, randn
from ._cp_als import _update_mode, check_cp_init, cp_init, cp_ridge
from ._gradient import ElementLoss, Optimizer, check_gradient_options, fit_cp_gradient
from ._observed import Observed, observe, observe_validation
from ._output import finish_cp, present_cp, presenting
from ._result import CompletionCallback, CompletionResult, Link

__all__ = ["GCPLoss", "gcp", "gcp_loss"]

GCPLoss = Literal[
    "gaussian",
    "poisson_log",
    "bernoulli_logit",
    "gamma_log",
    "huber",
    "normal",
    "poisson",
    "bernoulli",
    "gamma",
]
_CANONICAL = ("gaussian", "poisson_log", "bernoulli_logit", "gamma_log", "huber")
_ALIASES = {
    "normal": "gaussian",
    "poisson": "poisson_log",
    "bernoulli": "bernoulli_logit",
    "gamma": "gamma_log",
}
_LINKS: dict[str, Link] = {
    "gaussian": "identity",
    "poisson_log": "exp",
    "bernoulli_logit": "sigmoid",
    "gamma_log": "exp",
    "huber": "identity",
}
_NAMES = f"{_CANONICAL} (aliases {tuple(_ALIASES)})"


def _canonical(loss: object, fn: str, extra: str = "") -> str:
    name = _ALIASES.get(loss, loss) if isinstance(loss, str) else loss
    if name not in _CANONICAL:
        raise ValueError(f"{fn}: loss must be one of {_NAMES}{extra}; got {loss!r}.")
    return str(name)


def _huber(delta: float) -> ElementLoss:
    def huber(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        r = (x - m).abs()
        q = r.clamp(max=delta)  # q (2 r - q): r^2 inside the threshold, 2 d r - d^2 outside
        return q * (2 * r - q)

    return huber


def _check_huber_delta(huber_delta: object, fn: str) -> float:
    if (
        isinstance(huber_delta, bool)
        or not isinstance(huber_delta, (int, float))
        or not (math.isfinite(huber_delta) and huber_delta > 0)
    ):
        raise ValueError(f"{fn}: huber_delta must be a positive number; got {huber_delta!r}.")
    return float(huber_delta)


def _element_loss(name: str, huber_delta: float) -> ElementLoss:
    """The elementwise loss of a canonical name (no checks)."""
    if name == "gaussian":
        return lambda x, m: (x - m) ** 2
    if name == "poisson_log":
        return lambda x, m: torch.exp(m) - x * m
    if name == "bernoulli_logit":
        return lambda x, m: F.softplus(m) - x * m
    if name == "gamma_log":
        return lambda x, m: x * torch.exp(-m) + m
    return _huber(huber_delta)


def gcp_loss(loss: GCPLoss, *, huber_delta: float = 1.0) -> ElementLoss:
    """The elementwise loss ``f(x, m)`` of a named GCP loss (see the module table).

    Args:
        loss: ``"gaussian"``, ``"poisson_log"``, ``"bernoulli_logit"``, ``"gamma_log"`` or
            ``"huber"``, or an alias (``"normal"``, ``"poisson"``, ``"bernoulli"``, ``"gamma"``).
        huber_delta: the Huber threshold ``d`` (a positive number; used by ``"huber"`` only).

    Returns:
        ``f(x, m)``, elementwise on tensors of data ``x`` and model values ``m`` (before the
        link). Differentiable in ``m`` (and ``x``) by autograd.

    Raises:
        ValueError: an unknown loss name, a ``huber_delta`` that is not a positive number.

    Example:
        >>> import torch
        >>> from factorch.completion import gcp_loss
        >>> gcp_loss("poisson")(torch.tensor([2.0]), torch.tensor([0.0]))
        tensor([1.])
    """
    name = _canonical(loss, "gcp_loss")
    return _element_loss(name, _check_huber_delta(huber_delta, "gcp_loss"))


@dataclass(frozen=True)
class _LossSpec:
    """A resolved GCP loss: its name, link, and the elementwise function."""

    name: str
    link: Link
    builtin: bool
    custom: ElementLoss | None = None
    huber_delta: float = 1.0

    @property
    def scalable(self) -> bool:
        """Homogeneous of degree 2: the data may be divided by a power of two."""
        return self.builtin and self.name in ("gaussian", "huber")

    def element(self, scale: float, weight: float = 1.0) -> ElementLoss:
        """The loss on data divided by ``scale`` (Huber: threshold divided too), divided by
        ``weight``."""
        if self.custom is not None:
            return self.custom
        f = _element_loss(self.name, self.huber_delta / scale)
        if weight == 1.0:
            return f
        return lambda x, m: f(x, m) / weight

    def objective_weight(self, values: torch.Tensor) -> float:
        """What the objective is divided by: a power of two near the largest count for the
        Poisson loss (its gradient and curvature are of the counts' size), else 1."""
        return power_of_two_scale(values) if self.builtin and self.name == "poisson_log" else 1.0


def _resolve_loss(loss: object, link: object, huber_delta: object, fn: str) -> _LossSpec:
    if callable(loss) and not isinstance(loss, str):
        link = "identity" if link is None else link
        if link not in ("identity", "exp", "sigmoid"):
            raise ValueError(f"{fn}: link must be 'identity', 'exp' or 'sigmoid'; got {link!r}.")
        return _LossSpec(getattr(loss, "__name__", "custom"), link, False, loss)
    name = _canonical(loss, fn, " or a callable")
    if link is not None:
        raise ValueError(
            f"{fn}: link is fixed by loss={loss!r}; pass link only with a callable loss."
        )
    delta = _check_huber_delta(huber_delta, fn)
    return _LossSpec(name, _LINKS[name], True, huber_delta=delta)


def _check_data(values: torch.Tensor, spec: _LossSpec, fn: str) -> None:
    if not spec.builtin:
        return
    if spec.name == "poisson_log" and bool((values < 0).any()):
        raise ValueError(
            f"{fn}: loss='poisson_log' needs counts >= 0; got a value {float(values.min())}."
        )
    if spec.name == "gamma_log" and bool((values <= 0).any()):
        raise ValueError(
            f"{fn}: loss='gamma_log' needs positive data; got a value {float(values.min())}."
        )
    if spec.name == "bernoulli_logit" and bool(((values != 0) & (values != 1)).any()):
        raise ValueError(f"{fn}: loss='bernoulli_logit' needs binary data (0 or 1).")


_INIT_SWEEPS = 10


def _model_scale(x: torch.Tensor, spec: _LossSpec) -> torch.Tensor:
    """The data mapped to the scale of the model ``m`` (for the starting point)."""
    if spec.builtin and spec.name == "huber":  # winsorise at the median +- 3 robust stds
        med = x.median()
        spread = 3.0 * 1.4826 * (x - med).abs().median()
        return torch.minimum(torch.maximum(x, med - spread), med + spread)
    if spec.link == "exp":
        return torch.log(x) if spec.name == "gamma_log" else torch.log(x + 0.5)
    if spec.link == "sigmoid":
        return 4.0 * (x - 0.5)
    return x


def _gcp_start(
    obs: Observed,
    rank: int,
    init: object,
    spec: _LossSpec,
    l2: float,
    generator: torch.Generator | None,
    fn: str,
) -> list[torch.Tensor]:
    """Starting factors (see ``init`` in :func:`gcp`); ``l2`` is the ridge of the scaled fit."""
    train = obs.train
    if isinstance(init, CPTensor) or (spec.link == "identity" and spec.name != "huber"):
        return cp_init(train, rank, init, generator, fn, obs.scale)
    mapped = _model_scale(train.values, spec)
    if init == "svd" and bool(torch.isfinite(mapped).all()):
        start = train.with_values(mapped)
        with torch.no_grad():
            factors = cp_init(start, rank, "svd", generator, fn)
            layout = SparseLayout.build(start)
            for _ in range(_INIT_SWEEPS):
                for n in range(train.ndim):
                    factors[n] = _update_mode(start, factors, n, max(l2, 1e-6), layout=layout)
        return factors
    scale = (1.0 / math.sqrt(rank)) ** (1.0 / train.ndim)  # model values of RMS about 1
    return [randn((s, rank), generator, train.dtype, train.device, scale) for s in train.shape]


@data_alias("gcp")
@no_autocast
def gcp(
    tensor: SparseTensor | torch.Tensor,
    rank: int,
    *,
    loss: GCPLoss | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "gaussian",
    link: Link | None = None,
    huber_delta: float = 1.0,
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
    """Generalized CP decomposition / completion under a statistical loss (GCP).

    Args:
        tensor: observed entries (:class:`~factorch.tensors.SparseTensor` or torch sparse
            tensor) or a dense tensor / numpy array with an optional ``mask`` (without one,
            every entry is data: zeros of a count tensor too). ``data=`` is a deprecated alias.
        rank: number of components ``R``.
        loss: a name from the module table (or an alias: ``"normal"``, ``"poisson"``,
            ``"bernoulli"``, ``"gamma"``) or a callable ``loss(x, m)`` returning elementwise
            losses (differentiable in ``m``).
        link: for a callable loss, how predictions follow from ``m`` (default ``"identity"``);
            fixed by the named losses.
        huber_delta: the threshold ``d`` of the Huber loss (in the data's units).
        mask: bool tensor or array, True where a dense ``tensor`` is observed.
        init: ``"svd"``: for the Gaussian loss and callables with the identity link, the
            spectral start of :func:`cp_als`; otherwise the data are mapped to the model scale
            (``log(x + 1/2)`` for Poisson counts, ``log x`` for Gamma data, ``4 (x - 1/2)`` for
            binary data, values winsorised at the median +- 3 robust standard deviations for
            Huber) and fitted by the spectral start and 10 least-squares ALS sweeps (without
            this, L-BFGS often stalls in poor stationary points of the log-link losses, and
            outliers steer the Huber start). ``"random"`` or a :class:`CPTensor` otherwise.
        optimizer, validation, l2, max_iter, tol, patience: as in :func:`cp_wopt` (``l2``
            absolute, default 0).
        lr, batch_size, lbfgs_iters, generator, callback: as in :func:`cp_wopt`.

    Returns:
        :class:`CompletionResult` holding the CP model of ``m`` (normalized, in the input's
        dtype and device); its ``link`` maps ``m`` to predicted means, and ``predict`` applies
        it. RMSEs are between predicted means and data. ``extras["loss"]`` holds the objective
        per epoch, ``extras["loss_name"]`` the canonical loss name, ``extras["degeneracy"]``
        the :func:`~factorch.decomp.cp_degeneracy` check of the model.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: bad values, data outside the loss's support, or a rank that cannot fit in
            memory.
        FloatingPointError: the objective became NaN or Inf.

    The fit is not differentiable with respect to the data: data that require grad are
    detached. Runs with autocast off; half-precision data are fitted in float32 and the model
    returned in their dtype.

    Example:
        >>> import torch
        >>> from factorch.completion import gcp
        >>> counts = torch.poisson(torch.full((6, 5, 4), 3.0, dtype=torch.float64))
        >>> res = gcp(counts, 2, loss="poisson", max_iter=5)
        >>> res.link, res.extras["loss_name"]
        ('exp', 'poisson_log')
    """
    fn = "gcp"
    rank = check_positive_int(rank, fn, "rank")
    spec = _resolve_loss(loss, link, huber_delta, fn)
    opts = check_gradient_options(optimizer, lr, batch_size, lbfgs_iters, fn)
    l2, loop = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    obs = observe(tensor, mask, fn, scale=spec.scalable)
    train = obs.train
    _check_data(train.values, spec, fn)
    check_cp_memory(train.shape, train.nnz, rank, train.dtype, train.device, fn)
    check_cp_init(init, train.shape, rank, fn)
    val = observe_validation(validation, obs, fn)
    ridge = cp_ridge(l2, obs)
    weight = spec.objective_weight(train.values)
    result = fit_cp_gradient(
        train,
        val,
        _gcp_start(obs, rank, init, spec, ridge, generator, fn),
        spec.element(obs.scale, weight),
        fn=fn,
        link=spec.link,
        l2=ridge / weight,
        loop=loop,
        opts=opts,
        generator=generator,
        callback=presenting(callback, obs, lambda m: present_cp(m, obs, fn, check=False)),
        extras={"optimizer": opts.optimizer, "loss_name": spec.name},
    )
    if weight != 1.0:
        loss_history = result.extras["loss"]
        if isinstance(loss_history, tuple):
            extras = {**result.extras, "loss": tuple(v * weight for v in loss_history)}
            result = dataclasses.replace(result, extras=extras)
    return finish_cp(result, obs, val, fn)
