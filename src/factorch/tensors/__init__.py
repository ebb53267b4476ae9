"""Factorized tensors: CP, Tucker, tensor-train, tensor-ring and TT-matrix formats.

Each type is an immutable (frozen) dataclass of torch tensors, validated on creation, offering
``shape``, ``rank``, ``ndim``, ``dtype``, ``device``, ``n_params``, ``to_dense()``, and algebra
that never forms the dense tensor: ``norm()``, ``inner()``, ``mode_dot()``, ``entries()``.
"""

from ._base import FactorizedTensor as FactorizedTensor
from ._cp import CPTensor as CPTensor
from ._cp import FactorMatch as FactorMatch
from ._parafac2 import Parafac2Tensor as Parafac2Tensor
from ._sparse import Duplicates as Duplicates
from ._sparse import SparseTensor as SparseTensor
from ._tr import TRTensor as TRTensor
from ._tt import TTTensor as TTTensor
from ._ttmatrix import TTMatrix as TTMatrix
from ._tucker import TuckerTensor as TuckerTensor

__all__ = [
    "CPTensor",
    "Duplicates",
    "FactorMatch",
    "FactorizedTensor",
    "Parafac2Tensor",
    "SparseTensor",
    "TRTensor",
    "TTMatrix",
    "TTTensor",
    "TuckerTensor",
]
