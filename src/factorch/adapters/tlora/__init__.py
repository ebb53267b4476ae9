"""TLoRA: transformed low-rank adaptation via tensor decomposition (Tao et al., ICCV 2025)."""

from .._registry import register_method
from ._config import TLoraConfig as TLoraConfig
from ._config import TLoraResidual as TLoraResidual
from ._layer import TLoraLayer as TLoraLayer
from ._layer import identity_trm_cores as identity_trm_cores
from ._layer import ring_tensor as ring_tensor

register_method(TLoraLayer)

__all__ = ["TLoraConfig", "TLoraLayer", "TLoraResidual", "identity_trm_cores", "ring_tensor"]
