"""``TTLayer``: the tt adapter of one Linear or ConvNd layer."""

from __future__ import annotations

from typing import ClassVar

from .._config import AdapterConfig
from .._format_adapter import FormatAdapterLayer
from ._config import TTConfig

__all__ = ["TTLayer"]


class TTLayer(FormatAdapterLayer):
    """The TT adapter of one layer (the first core starts at zero)."""

    method: ClassVar[str] = "tt"
    config_class: ClassVar[type[AdapterConfig]] = TTConfig
