"""LeFT modulators and the mode-seeking loss of LFS-GAN (Seo, Kang, Park, ICCV 2023)."""

from .._registry import register_method
from ._config import LeftConfig as LeftConfig
from ._layer import LeftLayer as LeftLayer
from ._loss import assign_clusters as assign_clusters
from ._loss import mode_seeking_loss as mode_seeking_loss

register_method(LeftLayer)

__all__ = ["LeftConfig", "LeftLayer", "assign_clusters", "mode_seeking_loss"]
