"""Matérn Gaussian-process priors and their state-space (linear SDE) form.

A stationary GP ``u ~ GP(0, k)`` with a Matérn kernel of half-integer smoothness
``nu = p + 1/2`` is the first component of a ``(p + 1)``-dimensional linear time-invariant SDE

.. math::

    \\frac{d\\mathbf{x}(t)}{dt} = F \\mathbf{x}(t) + L w(t), \\qquad u(t) = H \\mathbf{x}(t),

with ``x = (u, u', ..., u^{(p)})``, ``H = [1, 0, ..., 0]`` and stationary covariance ``P_inf``
(Hartikainen and Särkkä, "Kalman filtering and smoothing solutions to temporal Gaussian process
regression models", MLSP 2010; Särkkä and Solin, *Applied Stochastic Differential Equations*,
2019, section 12.3). Between two inputs ``Delta`` apart the state evolves as

.. math::

    \\mathbf{x}_{j} = A_j \\mathbf{x}_{j-1} + \\mathbf{q}_j, \\quad A_j = e^{F \\Delta_j}, \\quad
    \\mathbf{q}_j \\sim N(0, Q_j), \\quad Q_j = P_\\infty - A_j P_\\infty A_j^\\top,

so the GP restricted to ``n`` sorted inputs is a Gauss--Markov chain and inference costs
``O(n p^3)`` instead of ``O(n^3)``. With ``lambda = sqrt(2 nu) / lengthscale``:

* ``nu = 1/2``: ``F = -lambda``, ``P_inf = sigma^2`` (the Ornstein--Uhlenbeck process);
* ``nu = 3/2``: ``F = [[0, 1], [-lambda^2, -2 lambda]]``,
  ``P_inf = diag(sigma^2, lambda^2 sigma^2)``;
* ``nu = 5/2``: ``F = [[0, 1, 0], [0, 0, 1], [-lambda^3, -3 lambda^2, -3 lambda]]``,
  ``P_inf = sigma^2 [[1, 0, -lambda^2/3], [0, lambda^2/3, 0], [-lambda^2/3, 0, lambda^4]]``.

FunBaT (Fang et al., "Functional Bayesian Tucker decomposition for continuous-indexed tensor
data", ICLR 2024) puts one such prior on every latent function of a mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Matern"]

_NUS = (0.5, 1.5, 2.5)


def _positive_float(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool | str) or not hasattr(value, "__float__"):
        raise TypeError(f"{fn}: {name} must be a positive number; got {type(value).__name__}.")
    try:
        out = float(value.__float__())
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{fn}: {name} must be a positive number; got {type(value).__name__}."
        ) from err
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{fn}: {name} must be a positive finite number; got {out!r}.")
    return out


@dataclass(frozen=True)
class Matern:
    """A Matérn kernel ``k(t, t') = sigma^2 rho_nu(|t - t'| / lengthscale)`` (frozen value).

    .. math::

        \\rho_{1/2}(r) = e^{-r}, \\quad
        \\rho_{3/2}(r) = (1 + \\sqrt3 r) e^{-\\sqrt3 r}, \\quad
        \\rho_{5/2}(r) = (1 + \\sqrt5 r + \\tfrac53 r^2) e^{-\\sqrt5 r}.

    Attributes:
        nu: smoothness, one of ``0.5``, ``1.5``, ``2.5`` (sample paths are continuous, once and
            twice differentiable respectively).
        lengthscale: in the units of the coordinates; ``None`` lets a fit choose one tenth of
            the range of the mode's training coordinates (see :meth:`resolved`).
        variance: prior variance ``sigma^2`` of the function values.

    Raises:
        ValueError: ``nu`` not one of 0.5, 1.5, 2.5, or a lengthscale or variance that is not
            positive and finite.
        TypeError: a lengthscale or variance that is not a number.

    Example:
        >>> import torch
        >>> k = Matern(1.5, lengthscale=0.5)
        >>> k.covariance(torch.tensor([0.0, 0.5]), torch.tensor([0.0])).squeeze(1)
        tensor([1.0000, 0.4834], dtype=torch.float64)
    """

    nu: float = 1.5
    lengthscale: float | None = None
    variance: float = 1.0

    def __post_init__(self) -> None:
        fn = "Matern"
        if isinstance(self.nu, bool) or self.nu not in _NUS:
            raise ValueError(f"{fn}: nu must be one of {_NUS}; got {self.nu!r}.")
        object.__setattr__(self, "nu", float(self.nu))
        if self.lengthscale is not None:
            object.__setattr__(
                self, "lengthscale", _positive_float(self.lengthscale, fn, "lengthscale")
            )
        object.__setattr__(self, "variance", _positive_float(self.variance, fn, "variance"))

    @property
    def order(self) -> int:
        """State dimension ``p + 1 = nu + 1/2`` of the SDE form."""
        return int(self.nu + 0.5)

    def resolved(self, coords: torch.Tensor) -> Matern:
        """This kernel with a lengthscale: its own, or one tenth of ``max - min`` of
        ``coords`` (1.0 when all coordinates are equal)."""
        if self.lengthscale is not None:
            return self
        span = float(coords.max() - coords.min()) if coords.numel() else 0.0
        scale = 0.1 * span if span > 0 and math.isfinite(span) else 1.0
        return Matern(self.nu, scale, self.variance)

    def _lengthscale(self) -> float:
        if self.lengthscale is None:
            raise ValueError(
                "Matern: lengthscale is None; call kernel.resolved(coords) or pass a lengthscale."
            )
        return self.lengthscale

    def covariance(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Dense kernel matrix ``K[i, j] = k(x1[i], x2[j])`` in float64 (a reference: ``O(n^2)``).

        Differentiable with respect to the inputs.
        """
        r = (x1.to(torch.float64)[:, None] - x2.to(torch.float64)[None, :]).abs()
        r = r / self._lengthscale()
        if self.nu == 0.5:
            rho = torch.exp(-r)
        elif self.nu == 1.5:
            s = math.sqrt(3.0) * r
            rho = (1.0 + s) * torch.exp(-s)
        else:
            s = math.sqrt(5.0) * r
            rho = (1.0 + s + s * s / 3.0) * torch.exp(-s)
        return self.variance * rho

    def state_space(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The feedback matrix ``F`` and stationary covariance ``P_inf`` (both ``(p+1, p+1)``).

        ``H`` is the first unit row vector: the function value is the state's first entry.
        """
        lam = math.sqrt(2.0 * self.nu) / self._lengthscale()
        s2 = self.variance
        if self.nu == 0.5:
            f = [[-lam]]
            p = [[s2]]
        elif self.nu == 1.5:
            f = [[0.0, 1.0], [-(lam**2), -2.0 * lam]]
            p = [[s2, 0.0], [0.0, lam**2 * s2]]
        else:
            c = lam**2 * s2 / 3.0
            f = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-(lam**3), -3.0 * lam**2, -3.0 * lam]]
            p = [[s2, 0.0, -c], [0.0, c, 0.0], [-c, 0.0, lam**4 * s2]]
        kw = {"dtype": dtype, "device": device}
        return torch.tensor(f, **kw), torch.tensor(p, **kw)  # type: ignore[arg-type]

    def transitions(self, gaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transition matrices ``A_j = exp(F Delta_j)`` and process covariances
        ``Q_j = P_inf - A_j P_inf A_j^T`` for gaps ``Delta_j >= 0`` (``(n, p+1, p+1)`` each,
        in the dtype of ``gaps``; ``Q_0 = 0`` for a zero gap).

        Not differentiable with respect to the hyperparameters (fixed priors).
        """
        f, p_inf = self.state_space(dtype=gaps.dtype, device=gaps.device)
        if self.nu == 0.5:
            a = torch.exp(f[0, 0] * gaps).reshape(-1, 1, 1)
        else:
            a = torch.linalg.matrix_exp(f * gaps.reshape(-1, 1, 1))
        q = p_inf - a @ p_inf @ a.mT
        return a, 0.5 * (q + q.mT)
