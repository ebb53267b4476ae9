"""``FactorizedConv1d/2d/3d``: convolutions whose kernel is stored factorized and applied as a
sequence of cheap convolutions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..algebra.internal import mode_dot as _mode_dot
from ._layer import FactorizedLayer, check_format, make_weight, resolve_rank
from ._linear import MEMORY_WEIGHT
from ._spec import TensorLayout, _positive_ints
from ._weight import FactorizedWeight, FormatName

__all__ = ["FactorizedConv1d", "FactorizedConv2d", "FactorizedConv3d", "conv_flops"]

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DENSE = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _tuple(value: object, d: int, fn: str, name: str, minimum: int) -> tuple[int, ...]:
    vals = (value,) * d if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(vals, Sequence)
        or len(vals) != d
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in vals)
    ):
        raise ValueError(
            f"{fn}: {name} must be an int >= {minimum} or {d} such ints; got {value!r}."
        )
    return tuple(int(v) for v in vals)


def _pads(padding: object, kernel, stride, dilation, fn: str) -> tuple[tuple[int, int], ...]:
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
        format: FormatName = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        implementation: str = "auto",
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
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, d, fn, "kernel_size", 1)
        self.stride = _tuple(stride, d, fn, "stride", 1)
        self.dilation = _tuple(dilation, d, fn, "dilation", 1)
        self.padding = padding
        self.pads = _pads(padding, self.kernel_size, self.stride, self.dilation, fn)
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(
                f"{fn}: padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular'; "
                f"got {padding_mode!r}."
            )
        self.padding_mode = padding_mode
        fmt = check_format(format, fn)
        shape = (out_channels, in_channels, *self.kernel_size)
        layout = (
            TensorLayout.conv_chain(shape) if fmt in ("tt", "tr") else TensorLayout.identity(shape)
        )
        if fmt == "tucker" and isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1:
            rank = (min(rank, out_channels), min(rank, in_channels), *self.kernel_size)
        spatial = tuple(range(2, 2 + d))
        rank = resolve_rank(fn, fmt, layout, rank, ratio, fixed_modes=spatial)
        param = make_weight(fmt, layout, rank, decomposition)
        fan_in = in_channels * math.prod(self.kernel_size)
        self._setup(
            param,
            bias_shape=(out_channels,) if bias else None,
            fan_in=fan_in,
            implementation=implementation,
            rank_dropout=rank_dropout,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def from_dense(
        cls,
        conv: nn.Module,
        *,
        format: FormatName = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        implementation: str = "auto",
        decomposition: Mapping[str, Any] | None = None,
    ) -> _FactorizedConvNd:
        """Factorize a trained ``nn.Conv{d}d`` (``groups=1``) with the decomposition engine,
        keeping its stride, padding, dilation and padding mode. Device and dtype follow it."""
        fn = f"{cls.__name__}.from_dense"
        dense = _DENSE[cls.dims]
        if not isinstance(conv, dense):
            raise TypeError(f"{fn}: expected an {dense.__name__}; got {type(conv).__name__}.")
        if conv.groups != 1:
            raise ValueError(
                f"{fn}: grouped convolutions are not supported; got groups={conv.groups}."
            )
        w = conv.weight
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
        layer._load_dense(w, conv.bias)
        return layer

    # --- geometry ------------------------------------------------------------------------------
    def _out_size(self, size: Sequence[int]) -> tuple[int, ...]:
        return tuple(
            (s + pl + pr - dl * (k - 1) - 1) // st + 1
            for s, (pl, pr), k, st, dl in zip(
                size, self.pads, self.kernel_size, self.stride, self.dilation
            )
        )

    def _native_padding(self) -> tuple[int, ...] | None:
        """Symmetric zero padding the conv call can do itself, else None (pad explicitly)."""
        if self.padding_mode == "zeros" and all(a == b for a, b in self.pads):
            return tuple(a for a, _ in self.pads)
        return None

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        flat = [v for pair in reversed(self.pads) for v in pair]
        if not any(flat):
            return x
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, flat, mode=mode)

    def flops(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """``(factorized, reconstructed)`` forward FLOPs for an input of ``input_shape``."""
        return conv_flops(self, tuple(input_shape))

    def costs(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """``(factorized, reconstructed)`` costs the ``"auto"`` choice compares."""
        return conv_costs(self, tuple(input_shape))

    # --- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn, d = type(self).__name__, self.dims
        if x.ndim not in (d + 1, d + 2) or x.shape[-d - 1] != self.in_channels:
            raise ValueError(
                f"{fn}: input must be (batch, {self.in_channels}, *{d} spatial dims) or unbatched; "
                f"got shape {tuple(x.shape)}."
            )
        unbatched = x.ndim == d + 1
        if unbatched:
            x = x.unsqueeze(0)
        factors = self.current_factors()
        if self.use_factorized(*conv_costs(self, tuple(x.shape))):
            y = _APPLY[self.format](self, factors, x)
        else:
            y = self._dense_conv(x, self.parametrization(*factors))
        return y.squeeze(0) if unbatched else y

    def _dense_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        native = self._native_padding()
        conv = _CONV[self.dims]
        if native is not None:
            return conv(x, weight, self.bias, self.stride, native, self.dilation)
        return conv(self._pad(x), weight, self.bias, self.stride, 0, self.dilation)

    def to_dense(self) -> nn.Module:
        """An ``nn.Conv{d}d`` holding the rebuilt kernel (and a copy of the bias)."""
        w = self.weight.detach()
        out = _DENSE[self.dims](
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(w)
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out


# --- factorized forwards -----------------------------------------------------------------
def _pointwise(x: torch.Tensor, w: torch.Tensor, d: int, bias=None) -> torch.Tensor:
    """1x1 convolution with an ``(out, in)`` matrix."""
    return _CONV[d](x, w.reshape(*w.shape, *([1] * d)), bias)


def _along(
    layer: _FactorizedConvNd, x: torch.Tensor, w: torch.Tensor, j: int, groups: int, padded: bool
) -> torch.Tensor:
    """Convolution along spatial dim ``j`` only, with a ``(out, in/groups, k_j)`` kernel."""
    d = layer.dims
    shape = [1] * d
    shape[j] = w.shape[-1]
    stride = [1] * d
    stride[j] = layer.stride[j]
    dil = [1] * d
    dil[j] = layer.dilation[j]
    pad = [0] * d
    if not padded:
        pad[j] = layer.pads[j][0]
    return _CONV[d](x, w.reshape(w.shape[0], w.shape[1], *shape), None, stride, pad, dil, groups)


def _apply_lowrank(layer, factors, x):
    u, v = factors
    kernel = v.transpose(0, 1).reshape(v.shape[1], layer.in_channels, *layer.kernel_size)
    t = _conv_nobias(layer, x, kernel)
    return _pointwise(t, u, layer.dims, layer.bias)


def _conv_nobias(layer, x, kernel):
    native = layer._native_padding()
    conv = _CONV[layer.dims]
    if native is not None:
        return conv(x, kernel, None, layer.stride, native, layer.dilation)
    return conv(layer._pad(x), kernel, None, layer.stride, 0, layer.dilation)


def _apply_cp(layer, factors, x):
    weights, a_out, a_in, *spatial = factors
    d, rank = layer.dims, weights.shape[0]
    t = _pointwise(x, a_in.transpose(0, 1), d)
    padded = layer._native_padding() is None
    if padded:
        t = layer._pad(t)
    for j, a in enumerate(spatial):
        t = _along(layer, t, a.transpose(0, 1).unsqueeze(1), j, rank, padded)
    return _pointwise(t, a_out * weights, d, layer.bias)


def _apply_tucker(layer, factors, x):
    core, u_out, u_in, *spatial = factors
    d = layer.dims
    kernel = core
    for j, u in enumerate(spatial):
        kernel = _mode_dot(kernel, u, 2 + j)
    t = _pointwise(x, u_in.transpose(0, 1), d)
    t = _conv_nobias(layer, t, kernel)
    return _pointwise(t, u_out, d, layer.bias)


def _apply_chain(layer, factors, x):
    g_in, *spatial, g_out = factors
    d = layer.dims
    r0 = g_in.shape[0]
    t = _pointwise(x, g_in.permute(0, 2, 1).reshape(-1, layer.in_channels), d)
    padded = layer._native_padding() is None
    if padded:
        t = layer._pad(t)
    for j, g in enumerate(spatial):
        w = g.permute(2, 0, 1)  # (r_b, r_a, k_j)
        if r0 > 1:
            w = w.repeat(r0, 1, 1)
        t = _along(layer, t, w, j, r0, padded)
    return _pointwise(t, g_out.permute(1, 2, 0).reshape(layer.out_channels, -1), d, layer.bias)


_APPLY = {
    "lowrank": _apply_lowrank,
    "cp": _apply_cp,
    "tucker": _apply_tucker,
    "tt": _apply_chain,
    "tr": _apply_chain,
}


def conv_flops(layer: _FactorizedConvNd, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(factorized, reconstructed)`` forward FLOPs of ``layer`` on ``input_shape``."""
    d = layer.dims
    batch = math.prod(input_shape[: -d - 1]) if len(input_shape) > d + 1 else 1
    size = input_shape[-d:]
    out_size = layer._out_size(size)
    n_in, n_out = math.prod(size), math.prod(out_size)
    cin, cout, kernel = layer.in_channels, layer.out_channels, layer.kernel_size
    p: FactorizedWeight = layer.parametrization
    recon = p.reconstruction_flops() + 2 * batch * n_out * cout * cin * math.prod(kernel)
    padded = [s + a + b for s, (a, b) in zip(size, layer.pads)]
    if p.format == "lowrank":
        r = p.rank
        fact = 2 * batch * n_out * r * (cin * math.prod(kernel) + cout)
    elif p.format == "tucker":
        r_out, r_in = p.rank[0], p.rank[1]
        fact = 2 * batch * (n_in * cin * r_in + n_out * r_out * (r_in * math.prod(kernel) + cout))
    else:
        if p.format == "cp":
            r0, chans = 1, [p.rank] * (d + 1)
        else:
            r0, chans = p.rank[0], list(p.rank[1:-1])
        fact = 2 * batch * n_in * cin * r0 * chans[0]
        cur = list(padded)
        for j in range(d):
            cur[j] = out_size[j]
            inner = 1 if p.format == "cp" else chans[j]
            fact += 2 * batch * math.prod(cur) * r0 * inner * chans[j + 1] * kernel[j]
        fact += 2 * batch * n_out * r0 * chans[-1] * cout
    return int(fact), int(recon)


def conv_traffic(layer: _FactorizedConvNd, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Numbers written to intermediate tensors by ``(factorized, reconstructed)`` forwards."""
    d = layer.dims
    batch = math.prod(input_shape[: -d - 1]) if len(input_shape) > d + 1 else 1
    size = input_shape[-d:]
    out_size = layer._out_size(size)
    p: FactorizedWeight = layer.parametrization
    recon = 2 * p.dense_params
    if p.format == "lowrank":
        return batch * p.rank * math.prod(out_size), recon
    if p.format == "tucker":
        return batch * (p.rank[1] * math.prod(size) + p.rank[0] * math.prod(out_size)), recon
    r0, chans = (1, [p.rank] * (d + 1)) if p.format == "cp" else (p.rank[0], list(p.rank[1:-1]))
    cur = [s + a + b for s, (a, b) in zip(size, layer.pads)]
    fact = batch * r0 * chans[0] * math.prod(cur)
    for j in range(d):
        cur[j] = out_size[j]
        fact += batch * r0 * chans[j + 1] * math.prod(cur)
    return fact, recon


def conv_costs(layer: _FactorizedConvNd, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(factorized, reconstructed)`` cost = FLOPs + ``MEMORY_WEIGHT`` x intermediate numbers."""
    (f1, r1), (f2, r2) = conv_flops(layer, input_shape), conv_traffic(layer, input_shape)
    return f1 + MEMORY_WEIGHT * f2, r1 + MEMORY_WEIGHT * r2


class FactorizedConv1d(_FactorizedConvNd):
    """1-D version of :class:`FactorizedConv2d`."""

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
    counting FLOPs for the actual input shape (:func:`conv_flops`) plus the memory traffic of the
    intermediate activations (as :class:`FactorizedLinear`). Stride and dilation act in
    the spatial steps; padding of any mode commutes with the 1x1 steps and is applied once.
    Other keyword arguments as in :class:`FactorizedLinear` (``fan_in = in k_h k_w``).
    """

    dims = 2


class FactorizedConv3d(_FactorizedConvNd):
    """3-D version of :class:`FactorizedConv2d`."""

    dims = 3
