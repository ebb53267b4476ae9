"""Predictions and fit results of the functional (continuous-indexed) models."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from ..._checks import as_tensor

if TYPE_CHECKING:
    from ._data import ContinuousData
    from ._model import FunctionalTensor

__all__ = ["FunctionalResult", "Prediction"]


def _z(level: float, fn: str) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"{fn}: level must be a number in (0, 1); got {level!r}.")
    return statistics.NormalDist().inv_cdf(0.5 + 0.5 * float(level))


@dataclass(frozen=True)
class Prediction:
    """Predictive distribution at ``M`` coordinates.

    The latent value ``f`` has posterior mean ``mean`` and standard deviation ``std``; an
    observation adds independent noise of standard deviation ``noise_std``, so the predictive
    distribution of a new observation is approximated by ``N(mean, std^2 + noise_std^2)``.

    Attributes:
        mean: ``(M,)`` posterior mean of ``f``.
        std: ``(M,)`` posterior standard deviation of ``f``.
        noise_std: the observation-noise standard deviation ``E[tau]^{-1/2}``.

    Example:
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> g = torch.Generator().manual_seed(0)
        >>> data = ContinuousData(torch.rand(30, 2, dtype=torch.float64, generator=g),
        ...                       torch.randn(30, dtype=torch.float64, generator=g))
        >>> result = funbat(data, 1, structure="cp", max_iter=2, generator=g)
        >>> p = result.model.predict(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
        >>> p.mean.shape, bool((p.predictive_std() >= p.std).all())
        (torch.Size([1]), True)
    """

    mean: torch.Tensor
    std: torch.Tensor
    noise_std: float

    @property
    def var(self) -> torch.Tensor:
        """Posterior variance of ``f``."""
        return self.std * self.std

    def predictive_std(self) -> torch.Tensor:
        """Standard deviation of a new observation: ``sqrt(std^2 + noise_std^2)``."""
        s = self.std.to(torch.float64)
        return torch.hypot(s, torch.full_like(s, self.noise_std)).to(self.std.dtype)

    def interval(
        self, level: float = 0.95, *, observed: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Central ``level`` interval of a new observation (``observed=True``) or of ``f``."""
        z = _z(level, "Prediction.interval")
        s = self.predictive_std() if observed else self.std
        return self.mean - z * s, self.mean + z * s

    def _target(self, values: object, fn: str) -> torch.Tensor:
        y = as_tensor(values, fn, "values").to(device=self.mean.device, dtype=torch.float64)
        if y.shape != self.mean.shape:
            raise ValueError(
                f"{fn}: values must have shape {tuple(self.mean.shape)}; got {tuple(y.shape)}."
            )
        return y

    def rmse(self, values: torch.Tensor) -> float:
        """Root-mean-square error of ``mean`` against observed ``values`` (free of under- and
        overflow: the residuals are scaled by their largest magnitude first)."""
        r = self._target(values, "Prediction.rmse") - self.mean.to(torch.float64)
        peak = float(r.abs().max()) if r.numel() else 0.0
        if peak == 0.0 or not math.isfinite(peak):
            return peak
        return peak * float((r / peak).pow(2).mean().sqrt())

    def mae(self, values: torch.Tensor) -> float:
        """Mean absolute error of ``mean`` against ``values``."""
        y = self._target(values, "Prediction.mae")
        return float((y - self.mean.to(torch.float64)).abs().mean())

    def nll(self, values: torch.Tensor) -> float:
        """Mean Gaussian negative log predictive density of ``values`` (nats per entry)."""
        y = self._target(values, "Prediction.nll")
        s = self.predictive_std().to(torch.float64).clamp_min(1e-300)
        z = (y - self.mean.to(torch.float64)) / s
        return float((0.5 * math.log(2 * math.pi) + s.log() + 0.5 * z * z).mean())

    def coverage(self, values: torch.Tensor, level: float = 0.95) -> float:
        """Share of ``values`` inside the central ``level`` predictive interval."""
        y = self._target(values, "Prediction.coverage")
        lo, hi = self.interval(level)
        inside = (y >= lo.to(torch.float64)) & (y <= hi.to(torch.float64))
        return float(inside.double().mean())


@dataclass(frozen=True)
class FunctionalResult:
    """The outcome of :func:`funbat` or :func:`funbat_map`.

    Attributes:
        model: the fitted :class:`FunctionalTensor` (with a validation set: the one of
            ``best_epoch``).
        train_rmse: RMSE of the posterior mean on the training entries after each epoch, in the
            data's units.
        val_rmse: the same on the validation entries (empty without validation).
        best_epoch: 1-based epoch whose model is returned.
        epochs: epochs run.
        converged: True when the training predictions changed by less than ``tol`` (relative)
            between two epochs.
        stopped_early: True when the validation RMSE did not improve for ``patience`` epochs.
        time_s: wall-clock seconds of the whole fit.
        method: ``"ep"`` (conditional expectation propagation) or ``"map"`` (gradient MAP).
        extras: method-specific details (``"noise_std"`` per epoch, ...).

    Example:
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> g = torch.Generator().manual_seed(0)
        >>> data = ContinuousData(torch.rand(30, 2, dtype=torch.float64, generator=g),
        ...                       torch.randn(30, dtype=torch.float64, generator=g))
        >>> result = funbat(data, 1, structure="cp", max_iter=2, generator=g)
        >>> result.method, result.epochs, len(result.train_rmse), result.val_rmse
        ('ep', 2, 2, ())
    """

    model: FunctionalTensor
    train_rmse: tuple[float, ...]
    val_rmse: tuple[float, ...]
    best_epoch: int
    epochs: int
    converged: bool
    stopped_early: bool
    time_s: float
    method: Literal["ep", "map"]
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def time_per_epoch(self) -> float:
        """Mean wall-clock seconds per epoch."""
        return self.time_s / max(1, self.epochs)

    @property
    def best_val_rmse(self) -> float:
        """Validation RMSE of the returned model (NaN without validation)."""
        return self.val_rmse[self.best_epoch - 1] if self.val_rmse else float("nan")

    def predict(self, coords: torch.Tensor | ContinuousData) -> Prediction:
        """The model's :meth:`FunctionalTensor.predict`."""
        return self.model.predict(coords)
