"""CorDA: context-oriented decomposition adaptation (Yang et al., NeurIPS 2024)."""

from .._registry import register_method
from ._config import CordaConfig as CordaConfig
from ._config import CordaMode as CordaMode
from ._covariance import collect_covariances as collect_covariances
from ._layer import CordaLayer as CordaLayer
from ._layer import oriented_svd as oriented_svd

register_method(CordaLayer)

__all__ = ["CordaConfig", "CordaLayer", "CordaMode", "collect_covariances", "oriented_svd"]
