"""aTLAS: task vectors composed with learned anisotropic scaling (Zhang et al., NeurIPS 2024)."""

from .._registry import register_method
from ._config import AtlasConfig as AtlasConfig
from ._config import AtlasGranularity as AtlasGranularity
from ._layer import AtlasLayer as AtlasLayer
from ._layer import task_vector as task_vector

register_method(AtlasLayer)

__all__ = ["AtlasConfig", "AtlasGranularity", "AtlasLayer", "task_vector"]
