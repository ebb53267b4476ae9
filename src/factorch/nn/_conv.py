"""``FactorizedConv1d/2d/3d``: convolutions whose kernel is stored factorized and applied as a
sequence of cheap convolutions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast, get_args

import torch
from torch import nn

from ._layer import FactorizedLayer, Implementation, build_format, errors_named
from ._spec import TensorLayout, _positive_ints
from .formats import MEMORY_WEIGHT, ConvGeometry, WeightFormat
from .formats._geometry import PaddingMode

__all__ = ["FactorizedConv1d", "FactorizedConv2d", "FactorizedConv3d", "conv_costs", "conv_flops"]

_DENSE: dict[int, type[nn.Conv1d | nn.Conv2d | nn.Conv3d]] = {
    1: nn.Conv1d,
    2: nn.Conv2d,
    3: nn.Conv3d,
}


def _tuple(value: object, d: int, fn: str, name: str, minimum: int) -> tuple[int, ...]:
    vals = (value,) * d if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        isinstance(vals, (str, bytes))
        or not isinstance(vals, Sequence)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals)
    ):
        raise TypeError(
            f"{fn}: {name} must be an int >= {minimum} or {d} such ints; got "
            f"{type(value).__name__} {value!r} (pass ints, e.g. 3 or {(3,) * d})."
        )
    if len(vals) != d or not all(v >= minimum for v in vals):
        raise ValueError(
            f"{fn}: {name} must be an int >= {minimum} or {d} such ints; got {value!r}."
        )
    return tuple(int(v) for v in vals)


def _pads(
    padding: object,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    fn: str,
) -> tuple[tuple[int, int], ...]:
    d = len(kernel)
    if padding == "valid":
        return ((0, 0),) * d
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' needs stride 1; got stride={stride}.")
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, str):
        raise ValueError(
            f"{fn}: padding must be 'valid', 'same', an int or {d} ints; got {padding!r}."
        )
    return tuple((p, p) for p in _tuple(padding, d, fn, "padding", 0))


def conv_flops(layer: _FactorizedConvNd, input_shape: Sequence[int]) -> tuple[int, int]:
    """``(factorized, reconstructed)`` forward FLOPs of ``layer`` on ``input_shape``."""
    p, geom = layer.parametrization, layer.geometry
    return p.conv_flops(geom, input_shape), p.reconstruction_flops() + geom.dense_flops(input_shape)


def conv_traffic(layer: _FactorizedConvNd, input_shape: Sequence[int]) -> tuple[int, int]:
    """Numbers written to intermediate tensors by ``(factorized, reconstructed)`` forwards."""
    p = layer.parametrization
    return p.conv_traffic(layer.geometry, input_shape), 2 * p.dense_params


def conv_costs(layer: _FactorizedConvNd, input_shape: Sequence[int]) -> tuple[int, int]:
    """``(factorized, reconstructed)`` cost = FLOPs + ``MEMORY_WEIGHT`` x intermediate numbers."""
    (f1, r1), (f2, r2) = conv_flops(layer, input_shape), conv_traffic(layer, input_shape)
    return f1 + MEMORY_WEIGHT * f2, r1 + MEMORY_WEIGHT * r2


class _FactorizedConvNd(FactorizedLayer):
    """Shared implementation; see :class:`FactorizedConv2d` for the documentation."""

    dims: ClassVar[int] = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
        format: str = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        implementation: Implementation = "auto",
        rank_dropout: float = 0.0,
        init_std: float | None = None,
        decomposition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn, d = type(self).__name__, self.dims
        _positive_ints(fn, ("in_channels", in_channels), ("out_channels", out_channels))
        kernel = _tuple(kernel_size, d, fn, "kernel_size", 1)
        stride_t = _tuple(stride, d, fn, "stride", 1)
        dilation_t = _tuple(dilation, d, fn, "dilation", 1)
        pads = _pads(padding, kernel, stride_t, dilation_t, fn)
        if padding_mode not in get_args(PaddingMode):
            raise ValueError(
                f"{fn}: padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular'; "
                f"got {padding_mode!r}."
            )
        self.geometry = ConvGeometry(
            in_channels, out_channels, kernel, stride_t, dilation_t, pads, padding_mode
        )
        self.padding = padding
        shape = self.geometry.weight_shape
        param = build_format(
            fn,
            format,
            lambda cls: cls.kernel_layout(shape),
            rank=rank,
            ratio=ratio,
            decomposition=decomposition,
            fixed_modes_of=lambda cls, layout: cls.kernel_fixed_modes(layout, d),
        )
        self._setup(
            param,
            bias_shape=(out_channels,) if bias else None,
            fan_in=in_channels * math.prod(kernel),
            implementation=implementation,
            rank_dropout=rank_dropout,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )

    # --- the geometry, as nn.ConvNd names it -----------------------------------------------------
    @property
    def in_channels(self) -> int:
        return self.geometry.in_channels

    @property
    def out_channels(self) -> int:
        return self.geometry.out_channels

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self.geometry.kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        return self.geometry.stride

    @property
    def dilation(self) -> tuple[int, ...]:
        return self.geometry.dilation

    @property
    def pads(self) -> tuple[tuple[int, int], ...]:
        return self.geometry.pads

    @property
    def padding_mode(self) -> PaddingMode:
        return self.geometry.padding_mode

    @classmethod
    def dense_layout(
        cls, conv: nn.Module, format: type[WeightFormat]
    ) -> tuple[TensorLayout, tuple[int, ...]]:
        """The layout (and full-rank modes) ``from_dense`` uses for ``conv`` in ``format``."""
        layout = format.kernel_layout(tuple(cast(torch.Tensor, conv.weight).shape))
        return layout, tuple(format.kernel_fixed_modes(layout, cls.dims))

    @classmethod
    def from_dense(
        cls,
        conv: nn.Module,
        *,
        format: str = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        implementation: Implementation = "auto",
        decomposition: Mapping[str, Any] | None = None,
    ) -> _FactorizedConvNd:
        """Factorize a trained ``nn.Conv{d}d`` (``groups=1``) with the decomposition engine,
        keeping its stride, padding, dilation, padding mode and training/eval mode.

        Device and dtype follow it (half precision is decomposed in float32, with autocast off).
        Not differentiable.

        Raises:
            TypeError: ``conv`` is not an ``nn.Conv{d}d``.
            ValueError: grouped convolution; NaN or Inf weights; bad format, rank or ratio.

        Example:
            >>> conv = torch.nn.Conv2d(16, 32, 3, padding=1)
            >>> FactorizedConv2d.from_dense(conv, format="tucker", ratio=0.3).rank
            (13, 7, 3, 3)
        """
        fn = f"{cls.__name__}.from_dense"
        dense = _DENSE[cls.dims]
        if not isinstance(conv, dense):
            raise TypeError(f"{fn}: expected an {dense.__name__}; got {type(conv).__name__}.")
        if conv.groups != 1:
            raise ValueError(
                f"{fn}: grouped convolutions are not supported; got groups={conv.groups}."
            )
        w = conv.weight
        with errors_named(fn, inner=cls.__name__):
            layer = cls(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.bias is not None,
                conv.padding_mode,
                format=format,
                rank=rank,
                ratio=ratio,
                implementation=implementation,
                decomposition=decomposition,
                device=w.device,
                dtype=w.dtype,
            )
            layer._load_dense(w, conv.bias, training=conv.training, fn=fn)
        return layer

    def flops(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """``(factorized, reconstructed)`` forward FLOPs for an input of ``input_shape``."""
        return conv_flops(self, tuple(input_shape))

    def costs(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """``(factorized, reconstructed)`` costs the ``"auto"`` choice compares."""
        return conv_costs(self, tuple(input_shape))

    def forward_flops(self, input_shape: Sequence[int]) -> int:
        """FLOPs of the path this layer takes on an input of ``input_shape``."""
        fact, recon = self.flops(input_shape)
        return fact if self.takes_factorized(lambda: self.costs(input_shape)) else recon

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn, d = type(self).__name__, self.dims
        expected = f"shape (batch, {self.in_channels}, *{d} spatial dims) or unbatched"
        self._check_float_input(x, fn, expected)
        if x.ndim not in (d + 1, d + 2) or x.shape[-d - 1] != self.in_channels:
            raise ValueError(
                f"{fn}: input must be (batch, {self.in_channels}, *{d} spatial dims) or unbatched; "
                f"got shape {tuple(x.shape)}."
            )
        unbatched = x.ndim == d + 1
        if unbatched:
            x = x.unsqueeze(0)
        factors = self.current_factors()
        p, geom = self.parametrization, self.geometry
        if self.takes_factorized(lambda: conv_costs(self, tuple(x.shape))):
            y = p.conv(factors, x, self.bias, geom)
        else:
            y = geom.conv(x, p(*factors), self.bias)
        return y.squeeze(0) if unbatched else y

    def _config_args(self) -> dict[str, Any]:
        padding = self.padding if isinstance(self.padding, (int, str)) else list(self.padding)
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": padding,
            "dilation": list(self.dilation),
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
        }

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> _FactorizedConvNd:
        """The layer :meth:`config` describes, with random factors (no decomposition is run)."""
        return cls(**cls._check_config(config), device=device, dtype=dtype)

    def to_dense(self) -> nn.Module:
        """An ``nn.Conv{d}d`` holding the rebuilt kernel (and a copy of the bias)."""
        w = self.weight.detach()
        options: dict[str, Any] = {  # nn.ConvNd types its tuples per dimension
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
        }
        out = _DENSE[self.dims](
            self.in_channels,
            self.out_channels,
            **options,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(w)
            if self.bias is not None and out.bias is not None:
                out.bias.copy_(self.bias)
        out.train(self.training)
        return out


class FactorizedConv1d(_FactorizedConvNd):
    """1-D version of :class:`FactorizedConv2d`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias, padding_mode:
            as ``nn.Conv1d`` (``groups=1`` only).
        format, rank, ratio, implementation, rank_dropout: as :class:`FactorizedConv2d`.
        init_std, decomposition, generator, device, dtype: as :class:`FactorizedConv2d`.

    Raises:
        TypeError: a non-int channel count, ``kernel_size``, ``stride`` or ``dilation``, a
            float ``rank``, a non-floating ``dtype`` or a bad generator.
        ValueError: non-positive channels, a bad ``kernel_size``, ``stride``, ``padding``,
            ``dilation`` or ``padding_mode``, an unknown format, an out-of-range rank, or not
            exactly one of ``rank`` and ``ratio``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> conv = FactorizedConv1d(4, 6, 3, format="tucker", rank=3, generator=gen)
        >>> conv(torch.ones(1, 4, 8)).shape
        torch.Size([1, 6, 6])
    """

    dims = 1


class FactorizedConv2d(_FactorizedConvNd):
    """A 2-D convolution whose ``(out, in, k_h, k_w)`` kernel is stored factorized.

    Arguments up to ``padding_mode`` are those of ``nn.Conv2d`` (``groups=1`` only). The
    factorized forwards are sequences of cheap convolutions, never forming the kernel:

    * ``"lowrank"``: kernel as ``(out) x (in k_h k_w)`` matrix ``U V^T``: a ``k_h x k_w``
      convolution to ``R`` channels, then a 1x1 convolution ``U``.
    * ``"cp"`` (Lebedev et al. 2015; trained from scratch it is the a-priori compressed
      convolution of Boukraichi et al. 2023): CP over ``(out, in, k_h, k_w)``: 1x1 to ``R``
      channels, a depthwise ``k_h x 1`` and a depthwise ``1 x k_w`` convolution, a 1x1 to
      ``out``.
    * ``"tucker"`` (Kim et al. 2016): 1x1 to ``R_in``, a ``R_in -> R_out`` core convolution
      (core times the spatial factors; an int rank keeps the spatial modes at full rank, i.e.
      Tucker-2), 1x1 to ``out``.
    * ``"tt"`` / ``"tr"``: chain over the modes ``(in, k_h, k_w, out)``: 1x1 to ``r_0 r_1``
      channels, a ``k_h x 1`` and a ``1 x k_w`` convolution (grouped by ``r_0`` for the ring),
      a 1x1 to ``out`` (which closes the ring).

    ``implementation="auto"`` picks the cheaper of this and the rebuilt-kernel convolution by
    counting FLOPs for the actual input shape (the layer's ``flops``, from the format's cost
    model) plus the memory traffic of the intermediate activations (as :class:`FactorizedLinear`).
    Stride and dilation act in the spatial steps; padding of any mode commutes with the 1x1 steps
    and is applied once.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias, padding_mode:
            as ``nn.Conv2d`` (``groups=1`` only).
        format: the name of a registered format (``"lowrank"`` by default).
        rank: int or tuple, as the format takes it for the kernel; exclusive with ``ratio``.
        ratio: fraction of the dense kernel's parameter count.
        implementation: ``"auto"``, ``"factorized"`` or ``"reconstructed"``.
        rank_dropout, init_std, decomposition, generator, device, dtype: as
            :class:`FactorizedLinear` (``fan_in = in k_h k_w``).

    Raises:
        TypeError: a non-int channel count, ``kernel_size``, ``stride`` or ``dilation``, a
            float ``rank``, a non-floating ``dtype`` or a bad generator.
        ValueError: non-positive channels, a bad ``kernel_size``, ``stride``, ``padding``,
            ``dilation`` or ``padding_mode``, an unknown format, an out-of-range rank, or not
            exactly one of ``rank`` and ``ratio``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> conv = FactorizedConv2d(4, 6, 3, padding=1, format="cp", rank=5, generator=gen)
        >>> conv(torch.ones(1, 4, 8, 8)).shape
        torch.Size([1, 6, 8, 8])
    """

    dims = 2


class FactorizedConv3d(_FactorizedConvNd):
    """3-D version of :class:`FactorizedConv2d`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias, padding_mode:
            as ``nn.Conv3d`` (``groups=1`` only).
        format, rank, ratio, implementation, rank_dropout: as :class:`FactorizedConv2d`.
        init_std, decomposition, generator, device, dtype: as :class:`FactorizedConv2d`.

    Raises:
        TypeError: a non-int channel count, ``kernel_size``, ``stride`` or ``dilation``, a
            float ``rank``, a non-floating ``dtype`` or a bad generator.
        ValueError: non-positive channels, a bad ``kernel_size``, ``stride``, ``padding``,
            ``dilation`` or ``padding_mode``, an unknown format, an out-of-range rank, or not
            exactly one of ``rank`` and ``ratio``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> conv = FactorizedConv3d(2, 3, 3, padding=1, rank=2, generator=gen)
        >>> conv(torch.ones(1, 2, 5, 5, 5)).shape
        torch.Size([1, 3, 5, 5, 5])
    """

    dims = 3
