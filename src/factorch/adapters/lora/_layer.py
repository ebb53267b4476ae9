"""``LoraLayer``: the LoRA adapter of one Linear or ConvNd layer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..._numerics import HALF_DTYPES, power_of_two_scale
from .._config import AdapterConfig
from .._layer import CONV_LAYERS, LINEAR_LAYERS, Adapter, allocate, base_weight, draw, matrix_view
from ._config import LoraConfig, LowRankConfig

__all__ = ["LoraLayer", "low_rank_apply", "top_singular"]

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def low_rank_apply(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, base: nn.Module
) -> torch.Tensor:
    """``B (A x)`` as the base layer applies a weight: for a Linear two GEMMs; for a ConvNd the
    base convolution with the kernel ``A`` (``r`` output channels), then the 1x1 convolution
    ``B``."""
    if isinstance(base, nn.Linear):
        return F.linear(F.linear(x, a), b)
    conv = cast(nn.Conv2d, base)
    h = conv._conv_forward(x, a, None)
    d = a.ndim - 2
    return _CONV_FN[d](h, b.reshape(*b.shape, *([1] * d)))


def top_singular(
    matrix: torch.Tensor, rank: int, *, largest: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U_r, S_r, V_r^T)``: the ``rank`` largest (or smallest) singular triplets, computed
    with autocast off in float32 or float64 on a copy scaled by a power of two (exact), so tiny
    and huge weights keep their accuracy; returned in the working dtype."""
    work = torch.float32 if matrix.dtype in HALF_DTYPES else matrix.dtype
    m = matrix.detach().to(work)
    if not bool(torch.isfinite(m).all()):
        raise ValueError(
            "the base weight has NaN or Inf entries; an SVD-based init needs a finite one."
        )
    scale = power_of_two_scale(m)
    with torch.autocast(m.device.type, enabled=False):
        u, s, vh = torch.linalg.svd(m / scale, full_matrices=False)
    sl = slice(0, rank) if largest else slice(s.shape[0] - rank, s.shape[0])
    return u[:, sl], s[sl] * scale, vh[sl]


class LoraLayer(Adapter):
    """LoRA on one layer (see :class:`LoraConfig`): parameters ``lora_A (r, in, *k)`` and
    ``lora_B (out, r)``; with an SVD-based init also the frozen buffers ``lora_A0``,
    ``lora_B0``. Forward ``base(x) + s B A dropout(x) [- s B_0 A_0 x]`` (the same order of
    operations as PEFT's LoRA).

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it).

    Raises:
        ValueError: with ``init="pissa"``, a rank above ``min(out, fan_in)`` or a base weight
            with NaN or Inf entries.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(16, 8)),
        ...                LoraConfig(target_modules=["0"], rank=2), generator=gen)
        >>> adapter = model[0].adapters["default"]
        >>> type(adapter).__name__, tuple(adapter.lora_A.shape), tuple(adapter.lora_B.shape)
        ('LoraLayer', (2, 16), (8, 2))
    """

    method: ClassVar[str] = "lora"
    config_class: ClassVar[type[AdapterConfig]] = LoraConfig
    supported: ClassVar[tuple[type[nn.Module], ...]] = LINEAR_LAYERS + CONV_LAYERS

    lora_A0: torch.Tensor | None
    lora_B0: torch.Tensor | None

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
        cfg = cast(LowRankConfig, config)
        w = base_weight(base)
        r, out = cfg.rank, self.weight_shape[0]
        shapes = [(r, *self.weight_shape[1:]), (out, r)]
        anchored = self.anchored(cfg)
        tensors = allocate(shapes * (2 if anchored else 1), w, type(self).__name__, f"rank {r}")
        self.lora_A = nn.Parameter(tensors[0])
        self.lora_B = nn.Parameter(tensors[1])
        self.register_buffer("lora_A0", tensors[2] if anchored else None)
        self.register_buffer("lora_B0", tensors[3] if anchored else None)
        self.scaling = cfg.scaling
        self.dropout: nn.Module = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        if structure is None:
            with torch.no_grad():
                self.initialise(w, generator, context)

    @classmethod
    def anchored(cls, config: LowRankConfig) -> bool:
        """Whether the init is data-dependent (``W' = W + s (B A - B_0 A_0)``)."""
        return isinstance(config, LoraConfig) and config.init == "pissa"

    @property
    def fan_in(self) -> int:
        return math.prod(self.weight_shape[1:])

    def initialise(
        self, weight: torch.Tensor, generator: torch.Generator | None, context: object
    ) -> None:
        """Set the initial ``A``, ``B`` (and ``A_0 = A``, ``B_0 = B`` when anchored)."""
        cfg = cast(LoraConfig, self.config)
        a = self.lora_A
        if cfg.init == "default":
            a.copy_(draw(a.shape, a, generator, bound=1.0 / math.sqrt(self.fan_in)))
        elif cfg.init == "gaussian":
            a.copy_(draw(a.shape, a, generator, std=1.0 / cfg.rank))
        else:
            self.set_from_svd(matrix_view(weight), largest=True, fn="LoraLayer (init='pissa')")

    def set_from_svd(self, matrix: torch.Tensor, *, largest: bool, fn: str) -> None:
        """``B A = U_r S_r V_r^T / s`` from the largest or smallest ``r`` singular triplets of
        ``matrix`` (``W``, or ``W C`` mapped back for CorDA), and ``A_0, B_0`` equal to them."""
        r = self.lora_A.shape[0]
        if r > min(matrix.shape):
            raise ValueError(
                f"{fn}: rank {r} exceeds min(out, fan_in) = {min(matrix.shape)} of a "
                f"{tuple(matrix.shape)} weight; use rank <= {min(matrix.shape)}."
            )
        u, s, vh = top_singular(matrix, r, largest=largest)
        self.set_factors(u, s, vh)

    def set_factors(self, u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor) -> None:
        root = torch.sqrt(s / self.scaling)
        a = (root[:, None] * vh).reshape(self.lora_A.shape)
        b = u * root[None, :]
        self.lora_A.copy_(a.to(self.lora_A.dtype))
        self.lora_B.copy_(b.to(self.lora_B.dtype))
        if self.lora_A0 is not None and self.lora_B0 is not None:
            self.lora_A0.copy_(self.lora_A)
            self.lora_B0.copy_(self.lora_B)

    # --- update ----------------------------------------------------------------------------------
    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        delta = self.lora_B @ matrix_view(self.lora_A)
        if self.lora_A0 is not None and self.lora_B0 is not None:
            delta = delta - self.lora_B0 @ matrix_view(self.lora_A0)
        return (self.scaling * delta).reshape(self.weight_shape).to(weight.dtype)

    def forward(self, x: torch.Tensor, base: nn.Module) -> torch.Tensor:
        y = cast(torch.Tensor, base(x))
        y = y + low_rank_apply(self.dropout(x), self.lora_A, self.lora_B, base) * self.scaling
        if self.lora_A0 is not None and self.lora_B0 is not None:
            y = y - low_rank_apply(x, self.lora_A0, self.lora_B0, base) * self.scaling
        return y

    def extra_repr(self) -> str:
        return f"rank={self.lora_A.shape[0]}, scaling={self.scaling:g}, {super().extra_repr()}"
