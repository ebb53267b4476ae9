"""Tensor decompositions: CP, Tucker, tensor-train, tensor-ring, non-negative and NMF.

Every algorithm takes the tensor first and the rank second, all else keyword-only, and returns a
:class:`DecompositionResult`.
"""

from ._result import Callback as Callback
from ._result import DecompositionResult as DecompositionResult
from ._result import IterationState as IterationState

__all__ = [
    "Callback",
    "DecompositionResult",
    "IterationState",
]
