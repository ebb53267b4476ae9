"""Tensor-train adapter: ``W' = W + alpha dW`` with ``dW`` a TT-matrix (factorch's format)."""

from .._registry import register_method
from ._config import TTConfig as TTConfig
from ._layer import TTLayer as TTLayer

register_method(TTLayer)

__all__ = ["TTConfig", "TTLayer"]
