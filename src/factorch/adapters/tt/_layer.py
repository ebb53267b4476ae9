"""``TTLayer``: the tt adapter of one Linear or ConvNd layer."""

from __future__ import annotations

from typing import ClassVar

from .._config import AdapterConfig
from .._format_adapter import FormatAdapterLayer
from ._config import TTConfig

__all__ = ["TTLayer"]


class TTLayer(FormatAdapterLayer):
    """The TT adapter of one layer (the first core starts at zero).

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it).

    Raises:
        TypeError, ValueError: as :class:`~factorch.adapters.Adapter` (a base layer the method
            cannot adapt, or a config of another method).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(16, 8)),
        ...                TTConfig(target_modules=["0"], rank=2), generator=gen)
        >>> adapter = model[0].adapters["default"]
        >>> type(adapter).__name__, [tuple(core.shape) for core in adapter.delta.factors]
        ('TTLayer', [(1, 8, 2), (2, 4, 2), (2, 4, 1)])
    """

    method: ClassVar[str] = "tt"
    config_class: ClassVar[type[AdapterConfig]] = TTConfig
