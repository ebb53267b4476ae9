"""Tensor regression estimators with ``fit`` / ``predict``: CP and Tucker regression, CP-PLSR.

Features are tensors with the samples along mode 0; the coefficients are a factorized tensor.
Layer: beside :mod:`factorch.decomp` (imports :mod:`factorch.algebra` and :mod:`factorch.tensors`
only).
"""

from ._cp import CPRegressor as CPRegressor
from ._plsr import CPPLSR as CPPLSR
from ._tucker import TuckerRegressor as TuckerRegressor

__all__ = ["CPPLSR", "CPRegressor", "TuckerRegressor"]
