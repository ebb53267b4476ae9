"""The fitted functional Tucker/CP model: latent functions per mode, a core, a noise level.

A :class:`FunctionalTensor` is the approximate posterior FunBaT (or its MAP variant) leaves:

* per mode ``k`` (:class:`LatentFunctions`): the Matérn prior of its ``R_k`` latent functions, the
  sorted distinct training coordinates, and the Gaussian pseudo-observations ``(Lambda_j, eta_j)``
  the data sent to the functions there (natural parameters). The posterior of the functions
  anywhere is the Kalman/RTS smoother of the prior and these pseudo-observations, so the value at
  an unseen coordinate -- between, before or after the training ones -- is its exact conditional
  under that posterior (no interpolation formula with ``Q^{-1}``: the smoother simply runs over the
  union of the training and the query coordinates);
* the core (Tucker): a Gaussian ``N(core_mean, core_cov)`` over ``vec(W)``; ``None`` for CP, whose
  core is the fixed superdiagonal of ones;
* the noise precision's Gamma posterior ``Gamma(noise_shape, noise_rate)``;
* an affine map back to the data's units: ``y = value_offset + value_scale f``.

Predictions (:meth:`FunctionalTensor.predict`) have mean ``E[f]`` and variance
``E[f^2] - E[f]^2`` under the factorised posterior, computed exactly from the per-mode moments
(:mod:`._moments`), plus the noise for a new observation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch

from ..._checks import as_tensor
from ..._numerics import check_memory, working_dtype
from ._data import ContinuousData, Standardization
from ._kernels import Matern
from ._moments import cp_f_moments, tucker_f_moments
from ._result import Prediction
from ._smoother import _gaps, kalman_rts, merge_coordinates

__all__ = ["FunctionalTensor", "LatentFunctions"]

F64 = torch.float64


@dataclass(frozen=True)
class LatentFunctions:
    """The posterior of one mode's ``R`` latent functions.

    Attributes:
        kernel: the Matérn prior of every function of the mode (lengthscale resolved).
        coords: ``(n,)`` sorted distinct training coordinates, float64.
        precision: ``(n, R, R)`` pseudo-observation precisions ``Lambda_j`` (sums of the messages
            of the entries at ``coords[j]``).
        information: ``(n, R)`` pseudo-observation information vectors ``eta_j``.
        mean: ``(n, R)`` posterior means of the function values at ``coords``.
        cov: ``(n, R, R)`` posterior covariances there.

    Example:
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> g = torch.Generator().manual_seed(0)
        >>> data = ContinuousData(torch.rand(30, 2, dtype=torch.float64, generator=g),
        ...                       torch.randn(30, dtype=torch.float64, generator=g))
        >>> result = funbat(data, 1, structure="cp", max_iter=2, generator=g)
        >>> u = result.model.factors[0]
        >>> u.rank, u.coords.shape == (30,), u.mean.shape
        (1, True, torch.Size([30, 1]))
    """

    kernel: Matern
    coords: torch.Tensor
    precision: torch.Tensor
    information: torch.Tensor
    mean: torch.Tensor
    cov: torch.Tensor

    @property
    def rank(self) -> int:
        """Number of latent functions ``R``."""
        return int(self.mean.shape[1])

    def posterior(self, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean ``(m, R)`` and covariance ``(m, R, R)`` (float64) of the functions at
        coordinates ``at`` (any order, repeats allowed, seen or unseen).

        Known coordinates are read from the stored marginals; otherwise the smoother runs over
        the union of the training and the query coordinates (``O((n + m) R^3 (p+1)^3)``).
        """
        at = at.to(device=self.coords.device, dtype=F64).reshape(-1).contiguous()
        coords = self.coords.to(F64)
        pos = torch.searchsorted(coords, at).clamp_max(coords.numel() - 1)
        if bool((coords[pos] == at).all()):
            return self.mean.to(F64)[pos], self.cov.to(F64)[pos]
        union, known_pos, query_pos = merge_coordinates(coords, at)
        n, r = union.numel(), self.rank
        lam = torch.zeros(n, r, r, dtype=F64, device=coords.device)
        eta = torch.zeros(n, r, dtype=F64, device=coords.device)
        lam[known_pos] = self.precision.to(F64)
        eta[known_pos] = self.information.to(F64)
        mean, cov = kalman_rts(_gaps(union), self.kernel, lam, eta)
        return mean[query_pos], cov[query_pos]

    def to(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> LatentFunctions:
        """A copy on ``device`` with the posterior in ``dtype`` (coordinates stay float64)."""
        return LatentFunctions(
            self.kernel,
            self.coords.to(device=device),
            self.precision.to(device=device, dtype=dtype),
            self.information.to(device=device, dtype=dtype),
            self.mean.to(device=device, dtype=dtype),
            self.cov.to(device=device, dtype=dtype),
        )


@dataclass(frozen=True)
class FunctionalTensor:
    """A functional Tucker (or CP) model of continuous-indexed data (a frozen value).

    .. math::

        y(t_1, \\dots, t_K) \\approx \\text{offset} + \\text{scale}\\cdot
        \\operatorname{vec}(\\mathcal W)^\\top \\big(\\mathbf u^1(t_1) \\otimes \\cdots \\otimes
        \\mathbf u^K(t_K)\\big)

    with Gaussian-process latent functions ``u^k`` (their posterior in :attr:`factors`) and a
    Gaussian core ``W`` (CP: the superdiagonal of ones, ``core_mean is None``).

    Attributes:
        factors: one :class:`LatentFunctions` per mode.
        core_mean: ``(R_1, ..., R_K)`` posterior mean of the core, or None (CP).
        core_cov: ``(P, P)`` posterior covariance of ``vec(W)`` (row-major), or None (CP).
        noise_shape, noise_rate: Gamma posterior of the noise precision (model units).
        value_scale, value_offset: ``y = value_offset + value_scale f``.
        names, units: per mode.
        value_dtype: dtype of the predictions (the data's dtype).

    Raises:
        ValueError: only one of ``core_mean`` and ``core_cov`` given.

    Example:
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> g = torch.Generator().manual_seed(0)
        >>> data = ContinuousData(torch.rand(30, 2, dtype=torch.float64, generator=g),
        ...                       torch.randn(30, dtype=torch.float64, generator=g))
        >>> result = funbat(data, 1, structure="cp", max_iter=2, generator=g)
        >>> model = result.model
        >>> model.structure, model.rank, model.names
        ('cp', (1, 1), ('x0', 'x1'))
    """

    factors: tuple[LatentFunctions, ...]
    core_mean: torch.Tensor | None
    core_cov: torch.Tensor | None
    noise_shape: float
    noise_rate: float
    value_scale: float = 1.0
    value_offset: float = 0.0
    names: tuple[str, ...] | None = None
    units: tuple[str | None, ...] | None = None
    value_dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        k = len(self.factors)
        if self.names is None:
            object.__setattr__(self, "names", tuple(f"x{i}" for i in range(k)))
        if self.units is None:
            object.__setattr__(self, "units", (None,) * k)
        if (self.core_mean is None) != (self.core_cov is None):
            raise ValueError("FunctionalTensor: core_mean and core_cov must both be given or None.")

    # --- description ---------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.factors)

    @property
    def rank(self) -> tuple[int, ...]:
        """Number of latent functions per mode."""
        return tuple(f.rank for f in self.factors)

    @property
    def structure(self) -> Literal["tucker", "cp"]:
        return "cp" if self.core_mean is None else "tucker"

    @property
    def noise_std(self) -> float:
        """Observation-noise standard deviation ``E[tau]^{-1/2}`` in the data's units."""
        return abs(self.value_scale) * math.sqrt(self.noise_rate / self.noise_shape)

    @property
    def device(self) -> torch.device:
        return self.factors[0].mean.device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the stored posterior (float32 for half-precision data)."""
        return self.factors[0].mean.dtype

    def __repr__(self) -> str:
        kinds = ", ".join(
            f"{n}: nu={f.kernel.nu}, l={f.kernel.lengthscale:.3g}, {f.coords.numel()} coords"
            for n, f in zip(self.names or (), self.factors)
        )
        return (
            f"FunctionalTensor({self.structure}, rank={self.rank}, noise_std="
            f"{self.noise_std:.3g}; {kinds})"
        )

    def to(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> FunctionalTensor:
        """A copy on ``device`` with the posterior in ``dtype`` (predictions follow ``dtype``)."""
        return replace(
            self,
            factors=tuple(f.to(device=device, dtype=dtype) for f in self.factors),
            core_mean=None if self.core_mean is None else self.core_mean.to(device, dtype),
            core_cov=None if self.core_cov is None else self.core_cov.to(device, dtype),
            value_dtype=self.value_dtype if dtype is None else dtype,
        )

    def destandardize(self, stats: Standardization) -> FunctionalTensor:
        """The same model in the raw units of data that ``stats`` standardised.

        A model fitted to ``stats.apply(train)`` predicts standardised values at standardised
        coordinates; the returned model takes raw coordinates and predicts raw values. Exact:
        coordinates map affinely (``t = t' span + min``), a Matérn prior with lengthscale
        ``l`` in standardised units is the one with lengthscale ``l span`` in raw units, and the
        value map folds into ``value_offset`` and ``value_scale``.

        Example:
            >>> import torch
            >>> from factorch.completion.functional import ContinuousData, funbat
            >>> g = torch.Generator().manual_seed(0)
            >>> x = 100 * torch.rand(12, generator=g, dtype=torch.float64)
            >>> z = torch.rand(10, generator=g, dtype=torch.float64)
            >>> grid = 5 + torch.sin(x / 20)[:, None] * torch.cos(3 * z)[None, :]
            >>> raw = ContinuousData.from_grid(grid, [x, z])
            >>> stats = Standardization.fit(raw)
            >>> fit = funbat(stats.apply(raw), 1, structure="cp", max_iter=10, generator=g)
            >>> model = fit.model.destandardize(stats)
            >>> bool(abs(model.predict(raw).mean - raw.values).max() < 0.1)
            True
        """
        if not isinstance(stats, Standardization) or len(stats.coord_min) != self.ndim:
            raise TypeError(
                "FunctionalTensor.destandardize: stats must be the Standardization of data with "
                f"{self.ndim} modes; got {stats!r}."
            )
        factors = []
        for f, lo, span in zip(self.factors, stats.coord_min, stats.coord_span):
            kern = f.kernel
            ls = None if kern.lengthscale is None else kern.lengthscale * span
            factors.append(
                replace(f, kernel=Matern(kern.nu, ls, kern.variance), coords=f.coords * span + lo)
            )
        return replace(
            self,
            factors=tuple(factors),
            value_offset=stats.value_mean + stats.value_std * self.value_offset,
            value_scale=stats.value_std * self.value_scale,
        )

    # --- prediction ----------------------------------------------------------------------------
    def _coords(self, coords: torch.Tensor | ContinuousData, fn: str) -> torch.Tensor:
        if isinstance(coords, ContinuousData):
            x = coords.coords
        else:
            x = as_tensor(coords, fn, "coords")
            if x.is_complex() or x.dtype == torch.bool:
                raise TypeError(f"{fn}: coords must be real numbers; got {x.dtype}.")
            x = x.detach().to(F64)
            if x.ndim == 1 and self.ndim == 1:
                x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.ndim:
            raise ValueError(
                f"{fn}: coords must have shape (M, {self.ndim}); got {tuple(x.shape)}."
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{fn}: coords contain NaN or infinite entries.")
        return x.to(self.device)

    def moments(self, coords: torch.Tensor | ContinuousData) -> tuple[torch.Tensor, torch.Tensor]:
        """``E[f]`` and ``E[f^2]`` (float64, model units, before the affine map) at
        ``(M, K)`` coordinates."""
        return self._moments(self._coords(coords, "FunctionalTensor.moments"))

    def _moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.shape[0]
        check_memory(
            4 * m * sum(r * r + r for r in self.rank),
            F64,
            self.device,
            "FunctionalTensor.predict",
            f"prediction at {m} coordinates",
            hint="predict in batches of coordinates",
        )
        means, seconds = [], []
        for k, f in enumerate(self.factors):
            uniq, inv = torch.unique(x[:, k], sorted=True, return_inverse=True)
            mu, cov = f.posterior(uniq)
            second = cov + mu[:, :, None] * mu[:, None, :]
            means.append(mu[inv])
            seconds.append(second[inv])
        if self.core_mean is None or self.core_cov is None:
            return cp_f_moments(means, seconds)
        return tucker_f_moments(self.core_mean.to(F64), self.core_cov.to(F64), means, seconds)

    def predict(self, coords: torch.Tensor | ContinuousData) -> Prediction:
        """Predictive mean and standard deviation at ``(M, K)`` coordinates (seen or unseen).

        Args:
            coords: a ``(M, K)`` tensor / numpy array of coordinates, or a
                :class:`ContinuousData` (its coordinates).

        Returns:
            :class:`Prediction` in the data's units and dtype (``noise_std`` included for
            intervals of new observations).

        Raises:
            ValueError: a wrong number of columns, NaN coordinates.

        Not differentiable.

        Example:
            >>> import torch
            >>> from factorch.completion.functional import ContinuousData, Matern, funbat
            >>> x = torch.linspace(0, 1, 12, dtype=torch.float64)
            >>> data = ContinuousData.from_grid(torch.sin(4 * x)[:, None] + x[None, :], [x, x])
            >>> g = torch.Generator().manual_seed(0)
            >>> model = funbat(data, 2, kernel=Matern(2.5, 0.5), max_iter=20, generator=g).model
            >>> pred = model.predict(torch.tensor([[0.5, 0.5]], dtype=torch.float64))  # unseen
            >>> round(float(pred.mean), 2), bool(pred.std < 0.1)  # sin(2) + 0.5 = 1.41
            (1.41, True)
        """
        ef, ef2 = self._moments(self._coords(coords, "FunctionalTensor.predict"))
        var = (ef2 - ef * ef).clamp_min(0.0)
        scale = abs(self.value_scale)
        out = working_dtype(self.value_dtype) if self.value_dtype.is_floating_point else F64
        mean = (self.value_offset + self.value_scale * ef).to(out)
        std = (scale * var.sqrt()).to(out)
        if self.value_dtype != out:
            mean, std = mean.to(self.value_dtype), std.to(self.value_dtype)
        return Prediction(mean, std, self.noise_std)

    def latent(self, mode: int, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation ``(m, R)`` of mode ``mode``'s latent functions
        at coordinates ``at`` (float64; model units: the functions are identified only up to
        scale and, for Tucker, rotation)."""
        if (
            isinstance(mode, bool)
            or not isinstance(mode, int)
            or not -self.ndim <= mode < self.ndim
        ):
            raise IndexError(
                f"FunctionalTensor.latent: mode must be an int in [{-self.ndim}, "
                f"{self.ndim - 1}]; got {mode!r}."
            )
        x = as_tensor(at, "FunctionalTensor.latent", "at").to(F64).reshape(-1)
        mu, cov = self.factors[mode].posterior(x)
        return mu, torch.diagonal(cov, dim1=-2, dim2=-1).clamp_min(0.0).sqrt()
