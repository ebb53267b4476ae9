"""FunBaT: functional Bayesian Tucker / CP decomposition by conditional expectation propagation.

Model (Fang, Yu, Wang, Li, Kirby, Zhe, "Functional Bayesian Tucker decomposition for
continuous-indexed tensor data", ICLR 2024, arXiv 2311.04829): mode ``k`` has ``R_k`` latent
functions ``u^k_r ~ GP(0, Matern)``, the core ``vec(W) ~ N(0, v_W I)`` (a prior the reference code
lacks), the noise precision ``tau ~ Gamma(a_0, b_0)``, and

.. math::

    y_n \\sim N\\big(\\operatorname{vec}(\\mathcal W)^\\top (\\mathbf u^1(t_{n1}) \\otimes \\cdots
    \\otimes \\mathbf u^K(t_{nK})),\\ \\tau^{-1}\\big).

Inference (one epoch, all updates in natural parameters, damped):

1. *Core* (Tucker): ``q(W) = N(mu_W, Sigma_W)`` with
   ``Sigma_W^{-1} = I / v_W + E[tau] sum_n E[z_n z_n^T]``,
   ``Sigma_W^{-1} mu_W = E[tau] sum_n y_n E[z_n]``, ``z_n = (x)_k u^k(t_{nk})``.
2. *Factors*, mode by mode: the conditional-EP message of entry ``n`` to ``u^k(t_{nk})`` is
   Gaussian with precision ``E[tau] E[a_n a_n^T]`` and information ``E[tau] y_n E[a_n]``
   (``f_n = a_n^T u^k``; moments from the current posterior of the other modes and the core,
   :mod:`._moments`). Messages of entries sharing a coordinate are summed into one
   pseudo-observation, and a Kalman filter + RTS smoother over the mode's sorted distinct
   coordinates combines them with the Matérn state-space prior (:mod:`._smoother`):
   ``O(n_k (R_k (p+1))^3)`` per mode instead of ``O(n_k^3)``.
3. *Noise*: ``q(tau) = Gamma(a_0 + N/2, b_0 + 1/2 sum_n E[(y_n - f_n)^2])``.

Damping ``m <- rho m_old + (1 - rho) m_new`` applies to the summed messages (exactly equivalent to
damping each entry's message, since the posteriors depend on the sums only); the first epoch is
undamped (the old messages are the flat ones).

The all-zero fixed point: if the other modes' means are zero, ``E[a_n] = 0``, the information of
every message is zero and the means stay zero. The posterior means therefore start at random
positive values (uniform on ``[0, 1)``, as the reference code) with covariance ``init_cov I``, and
the Tucker core is fitted to them before the first factor update.

With one mode and a fixed noise the messages are exact and the fixed point is the exact GP
posterior (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..._numerics import no_autocast
from ..._timing import Stopwatch
from .._result import CompletionCallback, CompletionState
from ._data import ContinuousData
from ._kernels import Matern
from ._model import FunctionalTensor
from ._moments import (
    cp_f_moments,
    cp_mode_moments,
    tucker_core_stats,
    tucker_f_moments,
    tucker_mode_moments,
)
from ._problem import Problem, Structure, build_model, check_common, prepare
from ._result import FunctionalResult
from ._smoother import kalman_rts

__all__ = ["State", "check_floats", "ep_sweeps", "f_moments", "funbat", "mode_messages"]

F64 = torch.float64


@dataclass
class State:
    """Messages and posteriors of one EP run (model units, float64)."""

    lam: list[torch.Tensor]
    eta: list[torch.Tensor]
    mean: list[torch.Tensor]
    cov: list[torch.Tensor]
    core_prec: torch.Tensor | None = None
    core_info: torch.Tensor | None = None
    core_mean: torch.Tensor | None = None
    core_cov: torch.Tensor | None = None
    b_sum: float = 0.0
    tau: float = 1.0
    fresh: set[str] = field(default_factory=set)  # message groups not yet updated

    def entry_moments(self, p: Problem) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        means = [self.mean[k][p.inverse[k]] for k in range(p.ndim)]
        seconds = []
        for k in range(p.ndim):
            mu, cov = self.mean[k], self.cov[k]
            seconds.append((cov + mu[:, :, None] * mu[:, None, :])[p.inverse[k]])
        return means, seconds


def _damp(old: torch.Tensor, new: torch.Tensor, rho: float, first: bool) -> torch.Tensor:
    return new if first else rho * old + (1.0 - rho) * new


def _init_state(p: Problem, init_cov: float, generator: torch.Generator | None) -> State:
    dev = p.y.device
    lam, eta, mean, cov = [], [], [], []
    for c, r in zip(p.coords, p.ranks):
        n = c.numel()
        lam.append(torch.zeros(n, r, r, dtype=F64, device=dev))
        eta.append(torch.zeros(n, r, dtype=F64, device=dev))
        mean.append(torch.rand(n, r, generator=generator, dtype=F64).to(dev))
        cov.append(init_cov * torch.eye(r, dtype=F64, device=dev).expand(n, r, r).clone())
    st = State(lam, eta, mean, cov, fresh={f"mode{k}" for k in range(p.ndim)} | {"core", "tau"})
    if p.structure == "tucker":
        size = p.core_size
        st.core_prec = torch.zeros(size, size, dtype=F64, device=dev)
        st.core_info = torch.zeros(size, dtype=F64, device=dev)
    return st


def _update_core(p: Problem, st: State, rho: float, core_variance: float) -> None:
    means, seconds = st.entry_moments(p)
    zz, yz = tucker_core_stats(means, seconds, p.y)
    first = "core" in st.fresh
    st.fresh.discard("core")
    assert st.core_prec is not None and st.core_info is not None  # tucker state
    st.core_prec = _damp(st.core_prec, st.tau * zz, rho, first)
    st.core_info = _damp(st.core_info, st.tau * yz, rho, first)
    prec = st.core_prec + torch.eye(p.core_size, dtype=F64, device=p.y.device) / core_variance
    chol = torch.linalg.cholesky(0.5 * (prec + prec.T))
    st.core_cov = torch.cholesky_inverse(chol)
    st.core_mean = torch.cholesky_solve(st.core_info[:, None], chol)[:, 0].reshape(p.ranks)


def mode_messages(p: Problem, st: State, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed messages ``(Lambda_j, eta_j)`` of the entries to mode ``k``'s functions at its
    distinct coordinates, from the current posterior of the other modes and the core."""
    means, seconds = st.entry_moments(p)
    if st.core_mean is None or st.core_cov is None:
        ea, eaa = cp_mode_moments(means, seconds, k)
    else:
        ea, eaa = tucker_mode_moments(st.core_mean, st.core_cov, means, seconds, k)
    n, r = st.mean[k].shape
    lam_new = torch.zeros(n, r, r, dtype=F64, device=p.y.device)
    lam_new.index_add_(0, p.inverse[k], st.tau * eaa)
    eta_new = torch.zeros(n, r, dtype=F64, device=p.y.device)
    eta_new.index_add_(0, p.inverse[k], st.tau * p.y[:, None] * ea)
    return 0.5 * (lam_new + lam_new.mT), eta_new


def _update_mode(p: Problem, st: State, k: int, rho: float) -> None:
    lam_new, eta_new = mode_messages(p, st, k)
    first = f"mode{k}" in st.fresh
    st.fresh.discard(f"mode{k}")
    st.lam[k] = _damp(st.lam[k], lam_new, rho, first)
    st.eta[k] = _damp(st.eta[k], eta_new, rho, first)
    st.mean[k], st.cov[k] = kalman_rts(p.gaps[k], p.kernels[k], st.lam[k], st.eta[k])


def f_moments(p: Problem, st: State) -> tuple[torch.Tensor, torch.Tensor]:
    means, seconds = st.entry_moments(p)
    if st.core_mean is None or st.core_cov is None:
        return cp_f_moments(means, seconds)
    return tucker_f_moments(st.core_mean, st.core_cov, means, seconds)


def _update_noise(
    p: Problem,
    st: State,
    ef: torch.Tensor,
    ef2: torch.Tensor,
    rho: float,
    prior: tuple[float, float],
    fixed: float | None,
) -> None:
    if fixed is not None:
        st.tau = fixed
        return
    b_new = float((0.5 * (p.y * p.y - 2.0 * p.y * ef + ef2)).sum().clamp_min(0.0))
    first = "tau" in st.fresh
    st.fresh.discard("tau")
    st.b_sum = b_new if first else rho * st.b_sum + (1.0 - rho) * b_new
    st.tau = (prior[0] + 0.5 * p.n) / (prior[1] + st.b_sum)


def _model(
    p: Problem, st: State, prior: tuple[float, float], fixed: float | None
) -> FunctionalTensor:
    if fixed is not None:
        shape, rate = 1.0, 1.0 / fixed
    else:
        shape, rate = prior[0] + 0.5 * p.n, prior[1] + st.b_sum
    return build_model(p, st.lam, st.eta, st.mean, st.cov, st.core_mean, st.core_cov, shape, rate)


def ep_sweeps(
    p: Problem,
    st: State,
    sweeps: int,
    core_var: float,
    prior: tuple[float, float],
    fixed: float | None,
) -> FunctionalTensor:
    """``sweeps`` undamped EP epochs (factors mode by mode, core, noise) from the state ``st``
    (e.g. a MAP point with zero covariances); returns the model."""
    for _ in range(sweeps):
        for k in range(p.ndim):
            _update_mode(p, st, k, 0.0)
        if p.structure == "tucker":
            _update_core(p, st, 0.0, core_var)
        ef, ef2 = f_moments(p, st)
        _update_noise(p, st, ef, ef2, 0.0, prior, fixed)
    return _model(p, st, prior, fixed)


def check_floats(
    damping: object,
    noise_prior: object,
    noise_variance: object,
    core_variance: object,
    init_cov: object,
    fn: str,
) -> tuple[tuple[float, float, float], tuple[float, float], float | None, float, float]:
    if isinstance(damping, int | float) and not isinstance(damping, bool):
        rhos = (float(damping),) * 3
    elif isinstance(damping, Sequence) and len(damping) == 3:
        rhos = tuple(float(x) for x in damping)  # type: ignore[assignment]
    else:
        raise TypeError(
            f"{fn}: damping must be a number or (factors, core, noise) numbers; got {damping!r}."
        )
    if not all(0.0 <= r < 1.0 for r in rhos):
        raise ValueError(f"{fn}: damping must be in [0, 1); got {damping!r}.")
    if not (isinstance(noise_prior, Sequence) and len(noise_prior) == 2):
        raise TypeError(f"{fn}: noise_prior must be (a0, b0); got {noise_prior!r}.")
    a0, b0 = (float(x) for x in noise_prior)
    if not (a0 > 0 and b0 > 0 and math.isfinite(a0) and math.isfinite(b0)):
        raise ValueError(f"{fn}: noise_prior must be two positive numbers; got {noise_prior!r}.")
    out = []
    for name, v in (("core_variance", core_variance), ("init_cov", init_cov)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
            raise ValueError(f"{fn}: {name} must be a positive finite number; got {v!r}.")
        out.append(float(v))
    nv: float | None = None
    if noise_variance is not None:
        if (
            isinstance(noise_variance, bool)
            or not isinstance(noise_variance, int | float)
            or not 0 < noise_variance < math.inf
        ):
            raise ValueError(
                f"{fn}: noise_variance must be a positive finite number or None; got "
                f"{noise_variance!r}."
            )
        nv = float(noise_variance)
    return rhos, (a0, b0), nv, out[0], out[1]


@no_autocast
def funbat(
    tensor: ContinuousData,
    rank: int | Sequence[int],
    *,
    structure: Structure = "tucker",
    kernel: Matern | Sequence[Matern] | None = None,
    validation: ContinuousData | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    damping: float | tuple[float, float, float] = (0.5, 0.0, 0.5),
    noise_prior: tuple[float, float] = (1e-3, 1e-3),
    noise_variance: float | None = None,
    core_variance: float = 1.0,
    init_cov: float = 0.01,
    init_noise: float = 0.01,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> FunctionalResult:
    """Functional Bayesian Tucker (or CP) decomposition of continuous-indexed data (FunBaT).

    See the module docstring for the model and the updates.

    Args:
        tensor: the training entries (:class:`ContinuousData`); standardise the values first
            (:class:`Standardization`) unless their scale is meaningful.
        rank: latent functions per mode: an int, or one int per mode (Tucker).
        structure: ``"tucker"`` (a ``prod R_k`` Gaussian core) or ``"cp"`` (FunBaT-CP: the core
            is the superdiagonal of ones, ``f = sum_r prod_k u^k_r``).
        kernel: the Matérn prior of every mode, or one per mode (default ``Matern(1.5)``, whose
            lengthscale is one tenth of the mode's coordinate range). Its variance is relative
            to the data's mean square: the fit works on the values divided by their RMS.
        validation: held-out entries; the model of the epoch with the lowest validation RMSE is
            returned and the run stops after ``patience`` epochs without improvement.
        max_iter: maximum number of epochs.
        tol: stop when the training predictions change by less than ``tol`` (relative).
        patience: epochs without validation improvement before stopping.
        damping: ``rho`` in ``[0, 1)`` for the factor, core and noise messages: one number or
            a ``(factors, core, noise)`` triple (reference configs: ``(0.1, 0.5, 0.2)`` on
            synthetic data, ``(0.9, 0.95, 0.9)`` on US temperatures). The default leaves the
            core undamped: a damped core lags behind the factors, and the variance of uncertain
            factors keeps shrinking it (a fit stalled at 12 times the noise level in our runs).
        noise_prior: ``(a_0, b_0)`` of the Gamma prior on the noise precision, in model units
            (the values are divided internally by their RMS, so ``b_0`` acts as a prior sum of
            squared residuals relative to the data's mean square). The default is vague; the
            reference code's ``(1, 1)`` adds the data's mean square to the residuals, which
            inflates the noise (and widens the intervals) of data with little noise.
        noise_variance: fix the noise variance (in the data's units) instead of learning it.
        core_variance: ``v_W``, prior variance of the core entries (Tucker).
        init_cov: initial posterior variance of every function value (the reference code uses
            1; a small start keeps the uncertainty of the random initial functions from
            shrinking the first Tucker cores towards zero).
        init_noise: initial noise variance as a fraction of the data's mean square (ignored
            with ``noise_variance``). A small start lets the first messages carry the data; a
            start at the data's variance (the reference code's ``E[tau] = 1`` on z-scored data)
            can settle in the fixed point where the noise explains everything.
        generator: random source of the initial posterior means.
        callback: called after each epoch with a
            :class:`~factorch.completion.CompletionState` (``model`` is the current
            :class:`FunctionalTensor`); returning True stops.

    Returns:
        :class:`FunctionalResult` (``method="ep"``); ``extras["noise_std"]`` holds the noise
        standard deviation after each epoch.

    Raises:
        TypeError: ``tensor`` not a :class:`ContinuousData`, a bad rank, kernel or generator.
        ValueError: a mode with fewer than two distinct coordinates, bad options, a working set
            that cannot fit in memory.

    The data are detached; not differentiable (closed-form message updates). Computes in
    float64 (the Kalman recursions need it) on the data's device; the model holds its posterior
    in the data's dtype (float32 for half precision) and predicts in the data's dtype. Autocast
    is disabled inside.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(15, generator=g, dtype=torch.float64)
        >>> z = torch.rand(12, generator=g, dtype=torch.float64)
        >>> grid = torch.sin(6 * x)[:, None] * torch.cos(4 * z)[None, :]
        >>> data = ContinuousData.from_grid(grid, [x, z], names=["x", "z"])
        >>> fit = funbat(data, 1, structure="cp", max_iter=20, generator=g)
        >>> fit.train_rmse[-1] < 0.05
        True
    """
    fn = "funbat"
    tensor, validation, max_iter, tol, patience = check_common(
        tensor, structure, validation, max_iter, tol, patience, generator, fn
    )
    rhos, prior, fixed_var, core_var, init_cov = check_floats(
        damping, noise_prior, noise_variance, core_variance, init_cov, fn
    )
    if (
        isinstance(init_noise, bool)
        or not isinstance(init_noise, int | float)
        or not (0 < init_noise < math.inf)
    ):
        raise ValueError(f"{fn}: init_noise must be a positive finite number; got {init_noise!r}.")
    p = prepare(tensor, rank, structure, kernel, fn)
    fixed = None if fixed_var is None else p.scale**2 / fixed_var
    mean_square = float(p.y.pow(2).mean())
    tau0 = 1.0 / (float(init_noise) * mean_square) if mean_square > 0 else 1.0
    tau0 = fixed if fixed is not None else tau0
    return _run(
        p,
        tensor,
        validation,
        max_iter,
        tol,
        patience,
        rhos,
        prior,
        fixed,
        core_var,
        init_cov,
        tau0,
        generator,
        callback,
    )


def _run(
    p: Problem,
    tensor: ContinuousData,
    validation: ContinuousData | None,
    max_iter: int,
    tol: float,
    patience: int,
    rhos: tuple[float, float, float],
    prior: tuple[float, float],
    fixed: float | None,
    core_var: float,
    init_cov: float,
    tau0: float,
    generator: torch.Generator | None,
    callback: CompletionCallback | None,
) -> FunctionalResult:
    clock = Stopwatch()
    st = _init_state(p, init_cov, generator)
    st.tau = tau0 if math.isfinite(tau0) else 1.0  # all-zero data: any start
    train, val, noise = [], [], []
    best, best_model, since, prev = math.inf, None, 0, None
    converged = stopped = False
    epoch = 0
    for epoch in range(1, max_iter + 1):
        if p.structure == "tucker":
            _update_core(p, st, rhos[1], core_var)
        for k in range(p.ndim):
            _update_mode(p, st, k, rhos[0])
        ef, ef2 = f_moments(p, st)
        _update_noise(p, st, ef, ef2, rhos[2], prior, fixed)
        train.append(p.scale * float((p.y - ef).pow(2).mean().sqrt()))
        model = _model(p, st, prior, fixed)
        noise.append(model.noise_std)
        if validation is not None:
            val.append(model.predict(validation).rmse(validation.values))
            if val[-1] < best:
                best, best_model, since = val[-1], model, 0
            else:
                since += 1
        state = CompletionState(epoch, train[-1], val[-1] if val else math.nan, model)
        if callback is not None and callback(state):
            break
        change = (
            math.inf if prev is None else float((ef - prev).norm() / ef.norm().clamp_min(1e-300))
        )
        prev = ef
        if change <= tol:
            converged = True
            break
        if validation is not None and since >= patience:
            stopped = True
            break
    final = best_model if best_model is not None else _model(p, st, prior, fixed)
    best_epoch = (val.index(min(val)) + 1) if val else epoch
    # the reported training RMSE of the returned model is recomputed from it (its dtype)
    train[best_epoch - 1] = final.predict(tensor).rmse(tensor.values)
    return FunctionalResult(
        final,
        tuple(train),
        tuple(val),
        best_epoch,
        epoch,
        converged,
        stopped,
        clock.elapsed,
        "ep",
        {"noise_std": tuple(noise)},
    )
