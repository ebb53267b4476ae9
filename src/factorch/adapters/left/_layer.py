"""``LeftLayer``: the LeFT modulator of one convolution or linear layer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..._numerics import HALF_DTYPES
from .._config import AdapterConfig
from .._layer import CONV_LAYERS, LINEAR_LAYERS, Adapter, allocate, base_weight
from ._config import LeftConfig

__all__ = ["LeftLayer"]


class LeftLayer(Adapter):
    """LeFT on one ConvNd or Linear (see :class:`LeftConfig`). Forward: the base operation with
    the modulated weight (rebuilt once per call).

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it).

    Raises:
        TypeError, ValueError: as :class:`~factorch.adapters.Adapter` (a base layer the method
            cannot adapt, or a config of another method).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)),
        ...                LeftConfig(target_modules=["0"], rank=2), generator=gen)
        >>> type(model[0].adapters["default"]).__name__, model(torch.ones(1, 3, 6, 6)).shape
        ('LeftLayer', torch.Size([1, 8, 4, 4]))
    """

    method: ClassVar[str] = "left"
    config_class: ClassVar[type[AdapterConfig]] = LeftConfig
    supported: ClassVar[tuple[type[nn.Module], ...]] = CONV_LAYERS + LINEAR_LAYERS

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
        cfg = cast(LeftConfig, config)
        w = base_weight(base)
        r, out, inp = cfg.rank, self.weight_shape[0], self.weight_shape[1]
        self.conv = len(self.weight_shape) > 2
        s = math.prod(self.weight_shape[2:])
        if self.conv:
            mul = {"a": (out, r), "core": (r, r, s), "b": (inp, r)}
            add = {"p1": (out, r), "q1": (s, r), "p2": (inp, r), "q2": (s, r)}
        else:
            mul = {"a": (out, r), "b": (inp, r)}
            add = {"p": (out, r), "q": (inp, r)}
        names = list(mul) + (list(add) if cfg.additive else [])
        bias_names = ["m", "c"] if cfg.modulate_bias and self.has_bias else []
        shapes = [{**mul, **add}[n] for n in names] + [(out,)] * len(bias_names)
        # Half-precision bases get a float32 modulator: its init values (r^(-2/3), r^(-1/2)) are
        # not exact in 8 or 11 bits, and the product would move W by up to ~1 %; in float32 it
        # is 1 to ~1e-7, which rounds back to W exactly in the base's dtype.
        like = torch.empty(0, dtype=torch.float32, device=w.device) if w.dtype in HALF_DTYPES else w
        tensors = allocate(shapes, like, type(self).__name__, f"a rank-{r} modulator")
        self.factors = nn.ParameterDict(
            {n: nn.Parameter(t) for n, t in zip(names + bias_names, tensors)}
        )
        # identity at init: M2 = 1 (conv: r^(-2/3) each; linear: r^(-1/2) each), m = 1.
        value = r ** (-2.0 / 3.0) if self.conv else r**-0.5
        with torch.no_grad():
            for n in mul:
                self.factors[n].fill_(value)
            if bias_names:
                self.factors["m"].fill_(1.0)

    def modulator(self) -> torch.Tensor:
        """The multiplicative modulator ``M2`` in the weight's shape. Differentiable."""
        cfg = cast(LeftConfig, self.config)
        f = self.factors
        if not self.conv:
            return f["a"] @ f["b"].T
        m1 = torch.einsum("ol,jls->jos", f["a"], f["core"])
        if cfg.additive:
            m1 = m1 + (f["p1"] @ f["q1"].T).unsqueeze(0)
        if cfg.activation:
            m1 = F.relu(m1)
        return torch.einsum("ij,jos->ois", f["b"], m1).reshape(self.weight_shape)

    def additive_term(self) -> torch.Tensor | None:
        """The additive term in the weight's shape (None without it)."""
        cfg = cast(LeftConfig, self.config)
        if not cfg.additive:
            return None
        f = self.factors
        if not self.conv:
            return f["p"] @ f["q"].T
        inp = self.weight_shape[1]
        term = (f["p2"] @ f["q2"].T).reshape(1, inp, *self.weight_shape[2:])
        return term.expand(self.weight_shape)

    def merged_weight(self, weight: torch.Tensor) -> torch.Tensor:
        out = weight * self.modulator().to(weight.dtype)
        add = self.additive_term()
        return out if add is None else out + add.to(weight.dtype)

    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return self.merged_weight(weight) - weight

    def delta_bias(self, bias: torch.Tensor | None) -> torch.Tensor | None:
        if bias is None or "m" not in self.factors:
            return None
        delta = bias * (self.factors["m"] - 1) + self.factors["c"]
        return delta.to(bias.dtype)
