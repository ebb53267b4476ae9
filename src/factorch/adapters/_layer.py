"""The adapter of one layer (:class:`Adapter`, one subclass per method) and the wrapper that holds
several named adapters around a base layer (:class:`AdaptedLayer`).

Every method defines its weight update through :meth:`Adapter.delta_weight` (``W' = W + dW``)
and, where it changes the bias, :meth:`Adapter.delta_bias`; merging, unmerging, the LoRA export
and the contract tests are built on those two, so they hold for every method alike. A method
may override :meth:`Adapter.forward` with a cheaper equivalent (LoRA contracts its factors with
the input instead of rebuilding ``W'``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from .._numerics import HALF_DTYPES, check_memory
from ._config import AdapterConfig

__all__ = [
    "CONV_LAYERS",
    "LINEAR_LAYERS",
    "AdaptedLayer",
    "Adapter",
    "base_forward",
    "matrix_view",
]

LINEAR_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear,)
CONV_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def base_forward(
    base: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """The base layer's operation with another weight and bias (its stride, padding, ...)."""
    if isinstance(base, nn.Linear):
        return F.linear(x, weight, bias)
    conv = cast(nn.Conv2d, base)  # any nn.ConvNd: _conv_forward handles padding modes
    return conv._conv_forward(x, weight, bias)


def matrix_view(weight: torch.Tensor) -> torch.Tensor:
    """A weight as the ``(out, fan_in)`` matrix (a convolution kernel flattened per output)."""
    return weight.reshape(weight.shape[0], -1)


def base_weight(base: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, base.weight)


def base_bias(base: nn.Module) -> torch.Tensor | None:
    return cast("torch.Tensor | None", getattr(base, "bias", None))


class Adapter(nn.Module, metaclass=abc.ABCMeta):
    """One method's adapter on one base layer (abstract).

    A subclass is constructed as ``cls(base, config, context=..., generator=..., shared=...,
    structure=None)``: it creates its parameters on the base weight's device and dtype and
    initialises them (``context`` carries data a method needs, e.g. CorDA's covariance; see
    :meth:`module_context`). With ``structure`` (a dict :meth:`structure` returned) it only
    allocates parameters of the recorded shapes, without any data-dependent initialisation:
    :func:`~factorch.adapters.from_pretrained` then loads the saved values.

    Subclasses implement :meth:`delta_weight` (differentiable) and may override
    :meth:`delta_bias`, :meth:`merged_weight` and :meth:`forward`.

    Args:
        base: the layer to adapt (its weight sets the device, dtype and shapes).
        config: the method's config.
        context: data the method needs to initialise (None for most methods).
        generator: random source of the initial weights.
        shared: parameters shared by every layer of one adapter (e.g. aTLAS's coefficients).
        structure: the recorded shapes to allocate instead of initialising.

    Raises:
        TypeError: ``base`` is not a layer the method adapts (or has no floating-point
            weight), or ``config`` is not the method's config class.
        ValueError: ``base`` is a grouped convolution.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> adapter = model[0].adapters["default"]
        >>> isinstance(adapter, Adapter), adapter.method, adapter.weight_shape
        (True, 'lora', (4, 4))
    """

    method: ClassVar[str] = ""
    config_class: ClassVar[type[AdapterConfig]] = AdapterConfig
    supported: ClassVar[tuple[type[nn.Module], ...]] = LINEAR_LAYERS

    def __init__(
        self,
        base: nn.Module,
        config: AdapterConfig,
        *,
        context: object = None,
        generator: torch.Generator | None = None,
        shared: nn.ParameterDict | None = None,
        structure: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{fn}: config must be a {self.config_class.__name__}; got {type(config).__name__}."
            )
        self.check_base(base, fn, "base")
        weight = base_weight(base)
        self.config = config
        self.weight_shape: tuple[int, ...] = tuple(weight.shape)
        self.has_bias = base_bias(base) is not None

    # --- hooks for inject ------------------------------------------------------------------------
    @classmethod
    def check_base(cls, base: nn.Module, fn: str, name: str) -> None:
        """Refuse a base layer this method cannot adapt (``TypeError`` / ``ValueError``)."""
        if not isinstance(base, nn.Module) or type(base) not in cls.supported:
            kinds = ", ".join(f"nn.{t.__name__}" for t in cls.supported)
            raise TypeError(
                f"{fn}: module {name!r} is a {type(base).__name__}, which {cls.method} cannot "
                f"adapt (supported: {kinds}); narrow target_modules or add it to "
                "exclude_modules."
            )
        if getattr(base, "groups", 1) != 1:
            raise ValueError(
                f"{fn}: module {name!r} is a grouped convolution (groups={base.groups}), which "
                f"{cls.method} does not adapt; add it to exclude_modules."
            )
        weight = base_weight(base)
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise TypeError(f"{fn}: module {name!r} must have a floating-point weight.")

    @classmethod
    def module_context(cls, context: object, name: str, fn: str) -> object:
        """The part of ``inject``'s ``context`` this module's adapter needs (default: none,
        and a given context is refused so that a misplaced one is not silently ignored)."""
        if context is not None:
            raise TypeError(
                f"{fn}: method {cls.method!r} takes no context; got {type(context).__name__}."
            )
        return None

    @classmethod
    def make_shared(
        cls,
        config: AdapterConfig,
        context: object,
        structure: Mapping[str, Any] | None,
        like: torch.Tensor,
    ) -> nn.ParameterDict | None:
        """Parameters shared by every layer of one adapter, on ``like``'s device and dtype
        (default: none)."""
        return None

    # --- the update ------------------------------------------------------------------------------
    @abc.abstractmethod
    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """``dW`` with ``W' = W + dW`` for the base weight ``weight`` (differentiable)."""

    def delta_bias(self, bias: torch.Tensor | None) -> torch.Tensor | None:
        """``db`` with ``b' = b + db`` for the base bias ``bias`` (None: unchanged)."""
        return None

    def merged_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """``W'``; methods whose update is multiplicative compute it directly."""
        return weight + self.delta_weight(weight)

    def forward(self, x: torch.Tensor, base: nn.Module) -> torch.Tensor:
        """The adapted layer's output (default: the base operation with ``W'`` and ``b'``)."""
        weight = self.merged_weight(base_weight(base))
        bias = base_bias(base)
        delta = self.delta_bias(bias)
        if delta is not None:
            bias = delta if bias is None else bias + delta
        return base_forward(base, x, weight, bias)

    # --- structure -------------------------------------------------------------------------------
    def structure(self) -> dict[str, Any]:
        """JSON description of this adapter's parameters (their shapes and any structural
        choice): what the saved config records per module and ``structure=`` rebuilds."""
        return {"shapes": {k: list(v.shape) for k, v in self.state_dict().items()}}

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"method={self.method!r}, weight_shape={self.weight_shape}"


def allocate(
    shapes: Sequence[tuple[int, ...]], like: torch.Tensor, fn: str, what: str
) -> list[torch.Tensor]:
    """Zero tensors of ``shapes`` on ``like``'s device and dtype, after :func:`check_memory`."""
    total = sum(math.prod(s) for s in shapes)
    check_memory(total, like.dtype, like.device, fn, what, hint="use a smaller rank")
    return [torch.zeros(s, dtype=like.dtype, device=like.device) for s in shapes]


def draw(
    shape: tuple[int, ...],
    like: torch.Tensor,
    generator: torch.Generator | None,
    *,
    std: float | None = None,
    bound: float | None = None,
) -> torch.Tensor:
    """Gaussian (``std``) or uniform ``U(-bound, bound)`` entries drawn on the CPU (reproducible
    across devices, in float64 for half precision), then moved to ``like``."""
    work = torch.float64 if like.dtype in HALF_DTYPES else like.dtype
    if std is not None:
        t = torch.randn(shape, generator=generator, dtype=work) * std
    else:
        t = (torch.rand(shape, generator=generator, dtype=work) * 2 - 1) * float(bound or 0.0)
    return t.to(device=like.device, dtype=like.dtype)


class AdaptedLayer(nn.Module):
    """A base layer with named adapters, one of them active at a time.

    ``forward`` runs the active adapter (or the base layer when adapters are disabled, none is
    active, or the active one is merged into the base weight). While merged, the exact base
    weight and bias are kept aside so that :meth:`unmerge` restores them bit for bit.
    ``weight`` and ``bias`` are the base layer's. :func:`~factorch.adapters.inject` creates
    them.

    Args:
        base: the layer to wrap (it keeps its training/eval mode).

    Raises:
        TypeError: ``base`` is not an ``nn.Module``, or is an :class:`AdaptedLayer` already.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> layer = model[0]
        >>> type(layer).__name__, layer.active_adapter, list(layer.adapters)
        ('AdaptedLayer', 'default', ['default'])
    """

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        if not isinstance(base, nn.Module) or isinstance(base, AdaptedLayer):
            what = "an AdaptedLayer" if isinstance(base, AdaptedLayer) else type(base).__name__
            raise TypeError(
                f"AdaptedLayer: base must be a torch.nn.Module that is not adapted yet; got "
                f"{what} (add adapters to an adapted layer with inject instead)."
            )
        self.base_layer = base
        self.adapters = nn.ModuleDict()
        self.active_adapter: str | None = None
        self.disabled = False
        self.merged_adapter: str | None = None
        self._kept: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.train(base.training)

    @property
    def weight(self) -> torch.Tensor:
        return base_weight(self.base_layer)

    @property
    def bias(self) -> torch.Tensor | None:
        return base_bias(self.base_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        if self.merged_adapter is not None:
            if self.disabled and self._kept is not None:
                return base_forward(base, x, self._kept[0], self._kept[1])
            return cast(torch.Tensor, base(x))
        if self.disabled or self.active_adapter is None:
            return cast(torch.Tensor, base(x))
        adapter = cast(Adapter, self.adapters[self.active_adapter])
        return cast(torch.Tensor, adapter(x, base))

    def original_weight(self) -> torch.Tensor:
        """The base weight without any merged adapter."""
        return self._kept[0] if self._kept is not None else self.weight

    def original_bias(self) -> torch.Tensor | None:
        """The base bias without any merged adapter."""
        return self._kept[1] if self._kept is not None else self.bias

    # --- merge -----------------------------------------------------------------------------------
    @torch.no_grad()
    def merge(self, fn: str, name: str) -> None:
        """Fold the active adapter into the base weight (and bias), keeping the originals."""
        if self.merged_adapter is not None or self.active_adapter is None:
            return
        adapter = cast(Adapter, self.adapters[self.active_adapter])
        weight, bias = base_weight(self.base_layer), base_bias(self.base_layer)
        work = torch.float32 if weight.dtype in HALF_DTYPES else weight.dtype
        merged = adapter.merged_weight(weight.detach().to(work))
        delta_b = adapter.delta_bias(None if bias is None else bias.detach())
        if not bool(torch.isfinite(merged).all()) or (
            delta_b is not None and not bool(torch.isfinite(delta_b).all())
        ):
            raise ValueError(
                f"{fn}: merging adapter {self.active_adapter!r} into {name!r} gives NaN or Inf "
                "weights; the adapter's parameters have diverged (nothing was merged)."
            )
        self._kept = (weight.detach().clone(), None if bias is None else bias.detach().clone())
        weight.copy_(merged.to(weight.dtype))
        if delta_b is not None:
            if bias is None:
                raise ValueError(
                    f"{fn}: adapter {self.active_adapter!r} changes the bias of {name!r}, "
                    "which has none."
                )
            bias.add_(delta_b.to(bias.dtype))
        self.merged_adapter = self.active_adapter

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the exact base weight and bias kept by :meth:`merge`."""
        if self.merged_adapter is None or self._kept is None:
            return
        weight, bias = base_weight(self.base_layer), base_bias(self.base_layer)
        weight.copy_(self._kept[0])
        if bias is not None and self._kept[1] is not None:
            bias.copy_(self._kept[1])
        self._kept = None
        self.merged_adapter = None

    def release(self) -> nn.Module:
        """The base layer (merged weights stay; the kept originals are dropped)."""
        self._kept = None
        return self.base_layer

    def extra_repr(self) -> str:
        return (
            f"active={self.active_adapter!r}, adapters={list(self.adapters)}, "
            f"disabled={self.disabled}, merged={self.merged_adapter!r}"
        )
