"""Result and progress types shared by every decomposition.

A decomposition returns a frozen :class:`DecompositionResult` whatever options it was given (the
return type never depends on a flag). Iterative algorithms accept ``callback(state)`` where
``state`` is an :class:`IterationState`; returning ``True`` stops the run after that iteration.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .._timing import Stopwatch

__all__ = ["Callback", "DecompositionResult", "IterationState", "Stopwatch"]

T = TypeVar("T")


@dataclass(frozen=True)
class IterationState(Generic[T]):
    """What a callback sees after each iteration.

    Attributes:
        iteration: 1-based index of the iteration just finished.
        error: relative reconstruction error ``||X - X_hat|| / ||X||`` after it.
        model: the current factorized tensor (do not keep references if memory matters).

    Example:
        >>> seen = []
        >>> x = factorch.random.random_cp((4, 5, 6), 2, generator=torch.Generator().manual_seed(0))
        >>> _ = factorch.decomp.cp(x.to_dense(), 2, max_iter=3, tol=0.0,
        ...                        callback=lambda state: seen.append(state.iteration))
        >>> seen
        [1, 2, 3]
    """

    iteration: int
    error: float
    model: T

    @property
    def tensor(self) -> T:
        """Deprecated alias of :attr:`model` (renamed in 0.2 so decomposition and completion
        results share one name)."""
        _deprecated_tensor("IterationState")
        return self.model


Callback = Callable[[IterationState], "bool | None"]


@dataclass(frozen=True)
class DecompositionResult(Generic[T]):
    """The outcome of a decomposition.

    Attributes:
        model: the fitted factorized tensor (``CPTensor``, ``TuckerTensor``, ``TTTensor``, ...).
        errors: relative reconstruction error after each iteration (one entry for one-pass
            methods such as HOSVD or TT-SVD).
        iterations: iterations run (1 for one-pass methods).
        converged: True when the stopping tolerance was met (always True for one-pass methods);
            False when ``max_iter`` ran out or a callback stopped the run.
        time_s: wall-clock seconds, initialisation included.
        init_time_s: wall-clock seconds spent in initialisation.

    Example:
        >>> x = factorch.random.random_cp((4, 5, 6), 2, generator=torch.Generator().manual_seed(0))
        >>> result = factorch.decomp.cp(x.to_dense(), 2, max_iter=3, tol=0.0)
        >>> result.iterations, len(result.errors), result.converged
        (3, 3, False)
        >>> type(result.model).__name__
        'CPTensor'
    """

    model: T
    errors: tuple[float, ...]
    iterations: int
    converged: bool
    time_s: float
    init_time_s: float = 0.0
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def tensor(self) -> T:
        """Deprecated alias of :attr:`model` (renamed in 0.2 so decomposition and completion
        results share one name)."""
        _deprecated_tensor("DecompositionResult")
        return self.model

    @property
    def error(self) -> float:
        """Final relative reconstruction error."""
        return self.errors[-1] if self.errors else float("nan")

    @property
    def fit(self) -> float:
        """``1 - error`` (the fit pyttb and the Tensor Toolbox report)."""
        return 1.0 - self.error


def _deprecated_tensor(owner: str) -> None:
    warnings.warn(
        f"{owner}.tensor is deprecated; use .model (the fitted model, the same name completion "
        "results use). The alias will be removed in factorch 0.3.",
        DeprecationWarning,
        stacklevel=3,
    )
