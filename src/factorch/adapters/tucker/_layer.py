"""``TuckerLayer``: the tucker adapter of one Linear or ConvNd layer."""

from __future__ import annotations

from typing import ClassVar

from .._config import AdapterConfig
from .._format_adapter import FormatAdapterLayer
from ._config import TuckerConfig

__all__ = ["TuckerLayer"]


class TuckerLayer(FormatAdapterLayer):
    """The Tucker adapter of one layer (the core, factor 0, starts at zero)."""

    method: ClassVar[str] = "tucker"
    config_class: ClassVar[type[AdapterConfig]] = TuckerConfig
