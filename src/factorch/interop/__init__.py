"""Bridges to TensorLy and pyttb: convert factorized and dense tensors both ways, exactly.

``to_tensorly`` / ``from_tensorly`` cover CP, Tucker, TT and TR (TensorLy's numpy and pytorch
backends, its factorized-tensor objects or its ``(weights, factors)`` / ``(core, factors)``
tuples); ``to_pyttb`` / ``from_pyttb`` cover ``ktensor``, ``ttensor``, ``tensor`` and
``sptensor``. Both libraries are optional and imported on first use; a missing one raises an
``ImportError`` that says what to install.

Layer: a front end, like :mod:`factorch.io` (a boundary to other libraries' objects). It imports
only :mod:`factorch.tensors`, and nothing in the core imports it, so an optional dependency can
never leak into the import of a decomposition.
"""

from ._pyttb import from_pyttb as from_pyttb
from ._pyttb import to_pyttb as to_pyttb
from ._tensorly import TensorLyBackend as TensorLyBackend
from ._tensorly import TensorLyKind as TensorLyKind
from ._tensorly import from_tensorly as from_tensorly
from ._tensorly import to_tensorly as to_tensorly

__all__ = [
    "TensorLyBackend",
    "TensorLyKind",
    "from_pyttb",
    "from_tensorly",
    "to_pyttb",
    "to_tensorly",
]
