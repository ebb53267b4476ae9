"""Result and progress types shared by every decomposition.

A decomposition returns a frozen :class:`DecompositionResult` whatever options it was given (the
return type never depends on a flag). Iterative algorithms accept ``callback(state)`` where
``state`` is an :class:`IterationState`; returning ``True`` stops the run after that iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Callback", "DecompositionResult", "IterationState", "Stopwatch"]

T = TypeVar("T")


@dataclass(frozen=True)
class IterationState(Generic[T]):
    """What a callback sees after each iteration.

    Attributes:
        iteration: 1-based index of the iteration just finished.
        error: relative reconstruction error ``||X - X_hat|| / ||X||`` after it.
        tensor: the current factorized tensor (do not keep references if memory matters).
    """

    iteration: int
    error: float
    tensor: T


Callback = Callable[[IterationState], "bool | None"]


@dataclass(frozen=True)
class DecompositionResult(Generic[T]):
    """The outcome of a decomposition.

    Attributes:
        tensor: the factorized tensor (``CPTensor``, ``TuckerTensor``, ``TTTensor``, ...).
        errors: relative reconstruction error after each iteration (one entry for one-pass
            methods such as HOSVD or TT-SVD).
        iterations: iterations run (1 for one-pass methods).
        converged: True when the stopping tolerance was met (always True for one-pass methods);
            False when ``max_iter`` ran out or a callback stopped the run.
        time_s: wall-clock seconds, initialisation included.
        init_time_s: wall-clock seconds spent in initialisation.
    """

    tensor: T
    errors: tuple[float, ...]
    iterations: int
    converged: bool
    time_s: float
    init_time_s: float = 0.0
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def error(self) -> float:
        """Final relative reconstruction error."""
        return self.errors[-1] if self.errors else float("nan")

    @property
    def fit(self) -> float:
        """``1 - error`` (the fit pyttb and the Tensor Toolbox report)."""
        return 1.0 - self.error


class Stopwatch:
    """Wall-clock timer: ``sw = Stopwatch(); ...; sw.elapsed``."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start
