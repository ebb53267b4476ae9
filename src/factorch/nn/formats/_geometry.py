"""Convolution geometry: what a format's convolution forward needs to know about the layer.

:class:`ConvGeometry` is an immutable value built once by a factorized convolution layer (channels,
kernel, stride, dilation, padding and its mode). A weight format's ``conv`` forward receives it and
builds its sequence of cheap convolutions from the helpers here (1x1 convolutions, convolutions
along one spatial axis, the dense convolution with the layer's padding), so formats never reach
into the layer itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["ConvGeometry", "PaddingMode", "known_size"]

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

UNBOUNDED = 1 << 30
"""The size a cost model assumes for a dimension that is symbolic while tracing (``torch.export``
with a dynamic batch): large, so ``"auto"`` picks the path with the lower cost per row."""

_CONV: dict[int, Callable[..., torch.Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def known_size(size: object) -> int:
    """A dimension as a Python int: itself when static, ``UNBOUNDED = 2**30`` when symbolic.

    Under ``torch.export`` / ``torch.compile`` with dynamic shapes a size is a ``torch.SymInt``;
    turning it into an int (``int(s)``) would specialise the traced program to the example's
    size, and comparing it would add a guard. Cost models call this instead, so a symbolic size
    never becomes a data-dependent Python value.

    Args:
        size: a dimension (an int, or a ``torch.SymInt`` while tracing).

    Returns:
        ``size`` when it is an int, else ``UNBOUNDED``.

    Raises:
        TypeError: ``size`` is neither an int nor a ``torch.SymInt``.

    Example:
        >>> known_size(7)
        7
    """
    if isinstance(size, int):
        return size
    if isinstance(size, torch.SymInt):
        return UNBOUNDED
    raise TypeError(
        f"known_size: size must be an int or a torch.SymInt; got {type(size).__name__}."
    )


def known_shape(shape: Sequence[object]) -> tuple[int, ...]:
    """:func:`known_size` of every entry."""
    return tuple(known_size(s) for s in shape)


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's sizes and options (``groups = 1``), with the helpers formats build on.

    Attributes:
        in_channels, out_channels: channel counts.
        kernel_size, stride, dilation: one int per spatial dimension.
        pads: ``(left, right)`` zero/mode padding per spatial dimension.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Example:
        >>> from factorch.nn import FactorizedConv2d
        >>> geometry = FactorizedConv2d(4, 6, 3, padding=1, rank=2).geometry
        >>> geometry.weight_shape, geometry.pads
        ((6, 4, 3, 3), ((1, 1), (1, 1)))
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    padding_mode: PaddingMode = "zeros"

    @property
    def dims(self) -> int:
        return len(self.kernel_size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels, *self.kernel_size)

    # --- sizes -----------------------------------------------------------------------------------
    def out_size(self, size: Sequence[int]) -> tuple[int, ...]:
        """Spatial output size for a spatial input size."""
        return tuple(
            (s + pl + pr - dl * (k - 1) - 1) // st + 1
            for s, (pl, pr), k, st, dl in zip(
                size, self.pads, self.kernel_size, self.stride, self.dilation
            )
        )

    def split(self, input_shape: Sequence[object]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """``(batch, spatial input size, spatial output size)`` of an input shape, symbolic
        sizes taken as ``UNBOUNDED = 2**30`` (see :func:`known_size`)."""
        shape = known_shape(input_shape)
        d = self.dims
        batch = math.prod(shape[: -d - 1]) if len(shape) > d + 1 else 1
        size = shape[-d:]
        return batch, size, self.out_size(size)

    def padded_size(self, size: Sequence[int]) -> tuple[int, ...]:
        return tuple(s + a + b for s, (a, b) in zip(size, self.pads))

    def dense_flops(self, input_shape: Sequence[object]) -> int:
        """FLOPs of the dense convolution on ``input_shape``."""
        batch, _, out = self.split(input_shape)
        return 2 * batch * math.prod(out) * math.prod(self.weight_shape)

    # --- padding ---------------------------------------------------------------------------------
    def native_padding(self) -> tuple[int, ...] | None:
        """Symmetric zero padding the conv call can do itself, else None (pad explicitly)."""
        if self.padding_mode == "zeros" and all(a == b for a, b in self.pads):
            return tuple(a for a, _ in self.pads)
        return None

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``x`` explicitly (all spatial dimensions, the layer's mode)."""
        flat = [v for pair in reversed(self.pads) for v in pair]
        if not any(flat):
            return x
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, flat, mode=mode)

    # --- convolutions ----------------------------------------------------------------------------
    def conv(
        self, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The layer's convolution (stride, dilation, padding) with any ``(c_out, c_in, k..)``
        kernel."""
        conv = _CONV[self.dims]
        native = self.native_padding()
        if native is not None:
            return conv(x, kernel, bias, self.stride, native, self.dilation)
        return conv(self.pad(x), kernel, bias, self.stride, 0, self.dilation)

    def pointwise(
        self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """1x1 convolution with an ``(out, in)`` matrix."""
        return _CONV[self.dims](x, w.reshape(*w.shape, *([1] * self.dims)), bias)

    def along(
        self, x: torch.Tensor, w: torch.Tensor, j: int, groups: int, padded: bool
    ) -> torch.Tensor:
        """Convolution along spatial dim ``j`` only, with an ``(out, in/groups, k_j)`` kernel
        (the layer's stride and dilation on that axis; its padding unless ``x`` is ``padded``)."""
        d = self.dims
        shape = [1] * d
        shape[j] = w.shape[-1]
        stride = [1] * d
        stride[j] = self.stride[j]
        dil = [1] * d
        dil[j] = self.dilation[j]
        pad = [0] * d
        if not padded:
            pad[j] = self.pads[j][0]
        kernel = w.reshape(w.shape[0], w.shape[1], *shape)
        return _CONV[d](x, kernel, None, stride, pad, dil, groups)


def separable_conv_costs(
    geometry: ConvGeometry,
    input_shape: Sequence[object],
    lead: int,
    channels: Sequence[int],
    *,
    depthwise: bool,
) -> tuple[int, int]:
    """``(FLOPs, intermediate numbers)`` of a 1x1 -> one conv per spatial axis -> 1x1 chain.

    The first 1x1 maps ``in`` to ``lead * channels[0]`` channels; spatial step ``j`` maps
    ``lead * channels[j]`` to ``lead * channels[j + 1]`` channels along axis ``j`` (``depthwise``:
    one input channel per output channel, as CP's depthwise steps); the last 1x1 maps
    ``lead * channels[-1]`` to ``out``. Used by the CP and TT/TR convolutions.
    """
    batch, size, out_size = geometry.split(input_shape)
    d = geometry.dims
    cur = list(geometry.padded_size(size))
    flops = 2 * batch * math.prod(size) * geometry.in_channels * lead * channels[0]
    traffic = batch * lead * channels[0] * math.prod(cur)
    for j in range(d):
        cur[j] = out_size[j]
        inner = 1 if depthwise else channels[j]
        flops += (
            2 * batch * math.prod(cur) * lead * inner * channels[j + 1] * geometry.kernel_size[j]
        )
        traffic += batch * lead * channels[j + 1] * math.prod(cur)
    flops += 2 * batch * math.prod(out_size) * lead * channels[-1] * geometry.out_channels
    return flops, traffic
