"""Tucker adapter: ``W' = W + alpha dW`` with ``dW`` a Tucker tensor (factorch's format)."""

from .._registry import register_method
from ._config import TuckerConfig as TuckerConfig
from ._layer import TuckerLayer as TuckerLayer

register_method(TuckerLayer)

__all__ = ["TuckerConfig", "TuckerLayer"]
