"""Adapters whose update is a factorch factorized layer (Tucker, TT): the shared machinery."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..nn import (
    FactorizedConv1d,
    FactorizedConv2d,
    FactorizedConv3d,
    FactorizedLayer,
    FactorizedLinear,
    TensorizedShape,
)
from ._config import AdapterConfig, check_number, check_rank
from ._layer import CONV_LAYERS, LINEAR_LAYERS, Adapter, base_weight

__all__ = ["FormatAdapterConfig", "FormatAdapterLayer"]

_CONVS = {1: FactorizedConv1d, 2: FactorizedConv2d, 3: FactorizedConv3d}


@dataclasses.dataclass(frozen=True, kw_only=True)
class FormatAdapterConfig(AdapterConfig):
    """Base of the adapters ``W' = W + alpha dW`` with ``dW`` a factorized layer of the weight
    format ``format`` (a factorch :class:`~factorch.nn.WeightFormat`); one factor starts at
    zero (``dW = 0``), the others at the format's variance-preserving random init.

    Attributes:
        rank: the format's rank (an int, or a tuple as the format takes it).
        alpha: scale of the update.
        n_factors: how many factors each side of a Linear weight is folded into
            (:meth:`~factorch.nn.TensorizedShape.auto`); convolutions use the format's kernel
            layout.
    """

    format: ClassVar[str] = ""

    rank: int | tuple[int, ...] = 4
    alpha: float = 1.0
    n_factors: int = 2

    def validate(self) -> None:
        fn = type(self).__name__
        if isinstance(self.rank, (list, tuple)):
            if not self.rank:
                raise ValueError(f"{fn}: rank must be a positive int or a tuple of them; got ().")
            self._set("rank", tuple(check_rank(r, fn) for r in self.rank))
        else:
            if isinstance(self.rank, float):
                raise TypeError(f"{fn}: rank must be a positive int or a tuple; got {self.rank!r}.")
            self._set("rank", check_rank(self.rank, fn))
        self._set("alpha", check_number(self.alpha, fn, "alpha"))
        self._set("n_factors", check_rank(self.n_factors, fn, "n_factors"))


class FormatAdapterLayer(Adapter):
    """``base(x) + alpha * delta(x)``, ``delta`` a bias-free :class:`~factorch.nn.FactorizedLinear`
    or ``FactorizedConv{1,2,3}d`` with the base layer's geometry (its forward contracts the
    factors or rebuilds the weight, whichever costs less); factor ``zero_factor`` starts at 0."""

    supported: ClassVar[tuple[type[nn.Module], ...]] = LINEAR_LAYERS + CONV_LAYERS
    zero_factor: ClassVar[int] = 0

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
        super().__init__(base, config)
        cfg = cast(FormatAdapterConfig, config)
        w = base_weight(base)
        fmt = type(cfg).format
        opts: dict[str, Any] = {
            "format": fmt,
            "rank": cfg.rank,
            "generator": generator,
            "device": w.device,
            "dtype": w.dtype,
        }
        if isinstance(base, nn.Linear):
            shape = TensorizedShape.auto(
                base.out_features, base.in_features, n_factors=cfg.n_factors
            )
            self.delta: FactorizedLayer = FactorizedLinear(
                base.in_features, base.out_features, bias=False, shape=shape, **opts
            )
        else:
            conv = cast(nn.Conv2d, base)
            self.delta = _CONVS[w.ndim - 2](
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                False,
                conv.padding_mode,
                **opts,
            )
        with torch.no_grad():
            self.delta.factors[type(self).zero_factor].zero_()
        self.scaling = cfg.alpha

    def forward(self, x: torch.Tensor, base: nn.Module) -> torch.Tensor:
        return cast(torch.Tensor, base(x)) + self.scaling * self.delta(x)

    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return (self.scaling * self.delta.weight).reshape(self.weight_shape).to(weight.dtype)

    def structure(self) -> dict[str, Any]:
        out = super().structure()
        out["delta"] = self.delta.config()
        return out
