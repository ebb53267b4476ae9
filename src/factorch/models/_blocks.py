"""Building blocks the neural operators share: channel MLPs, gating, grid embedding, domain
padding, and the stack of Fourier blocks.

A Fourier block (Li et al., ICLR 2021, with the refinements of Kossaifi et al., TMLR 2024, as in
neuraloperator's ``FNOBlocks``) maps ``v`` to

.. math::
    v' = \\sigma\\big(K v + W v\\big),\\qquad
    v'' = \\sigma\\big(\\mathrm{MLP}(v') + g \\odot v\\big)

with ``K`` a :class:`~factorch.nn.spectral.SpectralConv`, ``W`` a 1x1 convolution (the linear
skip), ``MLP`` a two-layer channel MLP and ``g`` a per-channel soft gate; ``sigma`` is omitted
after the last block.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from .._numerics import HALF_DTYPES
from ..nn.internal import check_grid, spectral_rows
from ..nn.spectral import SpectralConv, SpectralWeight

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ChannelMLP",
    "DomainPadding",
    "FourierBlocks",
    "GridEmbedding",
    "PaddingMode",
    "SoftGating",
    "errors_named",
    "pointwise",
    "run_in_float32",
]

Activation = Literal["gelu", "relu", "silu", "tanh"]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


_NAMED = re.compile(r"(SpectralConv|SpectralWeight|FNOConfig|FNO|TFNO|MGTFNO|MultigridPatching): ")


@contextlib.contextmanager
def errors_named(fn: str) -> Iterator[None]:
    """Re-raise the ``TypeError``/``ValueError``/``IndexError`` of the layers and configs a model
    builds as the same type with the model's name ``fn`` in front (the entry point the user
    called); other errors pass unchanged."""
    try:
        yield
    except (TypeError, ValueError, IndexError) as err:
        msg = str(err)
        match = _NAMED.match(msg)
        if msg.startswith(f"{fn}: ") or match is None:
            raise
        raise type(err)(f"{fn}: {msg[match.end() :]}") from err


def check_input(
    x: object, fn: str, in_channels: int, dims: int, dtype: torch.dtype
) -> torch.Tensor:
    """``x`` as a ``(batch, in_channels, *grid)`` tensor in the model's real ``dtype`` (half
    precision inputs are computed in it); clear errors for anything else."""
    if not isinstance(x, torch.Tensor) or x.ndim != dims + 2 or x.shape[1] != in_channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{fn}: input must have shape (batch, {in_channels}, {dims} grid sizes); got {got}."
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{fn}: input must be a real floating-point tensor; got {x.dtype} (convert it with "
            "x.float())."
        )
    if x.shape[0] == 0 or 0 in x.shape[2:]:
        raise ValueError(f"{fn}: input must have a non-empty batch and grid; got {tuple(x.shape)}.")
    return x.to(dtype)


def run_in_float32(module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``module(x)`` computed with its half-precision parameters and buffers upcast to float32,
    the output cast back to their dtype; ``None`` when the module holds none (compute as usual).

    A model converted with ``.half()`` / ``.bfloat16()`` keeps its complex spectral weights in
    complex64 (CPUs have no half-precision FFTs or complex kernels), so its layers cannot run in
    half precision; computing in float32, as autocast does, is what it can do. Differentiable:
    the gradients reach the half-precision parameters through the casts.
    """
    tensors = [*module.named_parameters(), *module.named_buffers()]
    half = {name: t.float() for name, t in tensors if t.dtype in HALF_DTYPES}
    if not half:
        return None
    dtype = next(t.dtype for _, t in tensors if t.dtype in HALF_DTYPES)
    out = torch.func.functional_call(module, half, (x,), tie_weights=True, strict=False)
    return out.to(dtype)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution over any number of spatial dims: ``(B, C, *grid) -> (B, O, *grid)``."""
    batch, out_ch = x.shape[0], weight.shape[0]
    # 1-D inputs go in and out as they are: a same-shape reshape is still an autograd node.
    flat = x if x.ndim == 3 else x.reshape(batch, x.shape[1], -1)
    # A batched GEMM: on CPUs 1.2-2.5x faster than a 1x1 convolution, forward and backward.
    w = weight.expand(batch, *weight.shape)
    out = torch.bmm(w, flat) if bias is None else torch.baddbmm(bias.view(1, -1, 1), w, flat)
    return out if x.ndim == 3 else out.reshape(batch, out_ch, *x.shape[2:])


def _linear_init(
    out: int, inp: int, generator: torch.Generator | None, dtype: torch.dtype, bias: bool
) -> tuple[nn.Parameter, nn.Parameter | None]:
    """PyTorch's default ``nn.Linear`` init, drawn from ``generator``."""
    bound = 1.0 / math.sqrt(inp)
    w = (torch.rand(out, inp, generator=generator, dtype=dtype) * 2 - 1) * bound
    b = (torch.rand(out, generator=generator, dtype=dtype) * 2 - 1) * bound if bias else None
    return nn.Parameter(w), None if b is None else nn.Parameter(b)


class Pointwise(nn.Module):
    """A 1x1 convolution ``(B, C, *grid) -> (B, O, *grid)`` (any number of spatial dims)."""

    def __init__(
        self,
        inp: int,
        out: int,
        *,
        bias: bool,
        generator: torch.Generator | None,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.weight, bias_param = _linear_init(out, inp, generator, dtype, bias)
        if bias_param is None:
            self.register_parameter("bias", None)
        else:
            self.bias = bias_param

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x, self.weight, self.bias)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on a channel-major ``(C, B * N)`` signal: one GEMM, ``(O, B * N)``."""
        out = torch.mm(self.weight, x)
        # in place (the GEMM's backward needs no output): addmm would first copy the broadcast
        # bias into a fresh (O, B * N) buffer
        return out if self.bias is None else out.add_(self.bias.view(-1, 1))


class ChannelMLP(nn.Module):
    """Two 1x1 convolutions with an activation between: ``in -> hidden -> out`` per point."""

    def __init__(
        self,
        inp: int,
        out: int,
        hidden: int,
        *,
        activation: Activation,
        generator: torch.Generator | None,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.first = Pointwise(inp, hidden, bias=True, generator=generator, dtype=dtype)
        self.second = Pointwise(hidden, out, bias=True, generator=generator, dtype=dtype)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(ACTIVATIONS[self.activation](self.first(x)))

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP on a channel-major ``(C, B * N)`` signal (see :meth:`Pointwise.rows`)."""
        return self.second.rows(ACTIVATIONS[self.activation](self.first.rows(x)))


class SoftGating(nn.Module):
    """``x * g`` with a learnable per-channel gate ``g`` (initialised to one)."""

    def __init__(self, channels: int, dims: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.ones(1, channels, *([1] * dims), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate


class GridEmbedding(nn.Module):
    """Append the point coordinates as ``d`` channels: ``x_j = j / n`` on a periodic grid,
    ``j / (n - 1)`` on a node grid that includes both boundaries."""

    def __init__(self, dims: int, periodic: bool) -> None:
        super().__init__()
        self.dims = dims
        self.periodic = periodic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.shape[2:]
        axes = []
        for n in grid:
            denom = n if self.periodic else max(n - 1, 1)
            axes.append(torch.arange(n, dtype=x.dtype, device=x.device) / denom)
        mesh = torch.meshgrid(*axes, indexing="ij")
        coords = torch.stack(mesh).unsqueeze(0).expand(x.shape[0], -1, *grid)
        return torch.cat([x, coords], dim=1)


class DomainPadding(nn.Module):
    """Pad every spatial dimension by ``round(fraction * n)`` points on both sides before the
    Fourier blocks and crop after, so a non-periodic problem is not wrapped around by the FFT."""

    def __init__(self, fraction: float, mode: PaddingMode) -> None:
        super().__init__()
        self.fraction = fraction
        self.mode = mode

    def amounts(self, grid: Sequence[int]) -> list[int]:
        return [round(self.fraction * n) for n in grid]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        pads = self.amounts(x.shape[2:])
        if not any(pads):
            return x
        flat = [p for a in reversed(pads) for p in (a, a)]
        mode = "constant" if self.mode == "zeros" else self.mode
        if mode != "constant":  # F.pad's reflect/replicate/circular take a batch of channels
            return F.pad(x, flat, mode=mode)
        return F.pad(x, flat)

    def crop(self, x: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
        pads = self.amounts(grid)
        index = (slice(None), slice(None), *(slice(a, a + n) for a, n in zip(pads, grid)))
        return x[index]


class FourierBlocks(nn.Module):
    """``n_layers`` Fourier blocks (module docstring) on ``channels`` channels."""

    def __init__(
        self,
        channels: int,
        modes: tuple[int, ...],
        n_layers: int,
        *,
        channel_mlp_expansion: float,
        activation: Activation,
        format: str,
        rank: object,
        ratio: float | None,
        joint: bool,
        separable: bool,
        implementation: Literal["auto", "factorized", "reconstructed"],
        generator: torch.Generator | None,
        dtype: torch.dtype,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        dims = len(modes)
        self.activation = activation
        self.shared: SpectralWeight | None = None
        if joint:
            self.shared = SpectralWeight(
                channels,
                channels,
                modes,
                n_layers=n_layers,
                separable=separable,
                format=format,
                rank=rank,
                ratio=ratio,
                lr_scale=lr_scale,
                generator=generator,
                dtype=dtype,
            )
        convs = []
        for layer in range(n_layers):
            if self.shared is not None:
                conv = SpectralConv(
                    channels,
                    channels,
                    modes,
                    shared=self.shared,
                    layer=layer,
                    implementation=implementation,
                )
            else:
                conv = SpectralConv(
                    channels,
                    channels,
                    modes,
                    format=format,
                    rank=rank,
                    ratio=ratio,
                    separable=separable,
                    implementation=implementation,
                    lr_scale=lr_scale,
                    generator=generator,
                    dtype=dtype,
                )
            convs.append(conv)
        self.convs = nn.ModuleList(convs)
        self.skips = nn.ModuleList(
            Pointwise(channels, channels, bias=False, generator=generator, dtype=dtype)
            for _ in range(n_layers)
        )
        hidden = round(channels * channel_mlp_expansion)
        self.mlps = nn.ModuleList(
            ChannelMLP(
                channels, channels, hidden, activation=activation, generator=generator, dtype=dtype
            )
            for _ in range(n_layers if hidden > 0 else 0)
        )
        self.gates = nn.ModuleList(
            SoftGating(channels, dims, dtype) for _ in range(n_layers if hidden > 0 else 0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = ACTIVATIONS[self.activation]
        last = len(self.convs) - 1
        for i, (conv, skip) in enumerate(zip(self.convs, self.skips)):
            v = conv(x) + skip(x)
            if i < last:
                v = act(v)
            if self.mlps:
                v = self.mlps[i](v) + self.gates[i](x)
                if i < last:
                    v = act(v)
            x = v
        return x

    def rows_ready(self, grid: tuple[int, ...]) -> bool:
        """Whether :meth:`rows` runs on ``grid`` (``ValueError`` for a grid too coarse for the
        modes, as the spectral layers raise)."""
        conv = self.convs[0]
        if not isinstance(conv, SpectralConv):
            return False
        check_grid(conv.modes, grid, "SpectralConv")
        return True

    def rows(self, x: torch.Tensor, batch: int, grid: tuple[int, ...]) -> torch.Tensor | None:
        """The blocks on a channel-major ``(C, B * N)`` signal, ``N`` the points of ``grid``:
        every 1x1 convolution is then one GEMM over all points of the batch (no per-sample
        batched GEMMs, expanded weights or batch sums of their gradients) and the spectral
        layers transform the rows directly (FFT grids through the ``(C, B, *grid)`` view). None
        where the first layer is not a :class:`SpectralConv` (use :meth:`forward`). Same
        arithmetic as :meth:`forward` up to the GEMMs' rounding."""
        if not self.rows_ready(grid):
            return None
        act = ACTIVATIONS[self.activation]
        last = len(self.convs) - 1
        for i, (conv, skip) in enumerate(zip(self.convs, self.skips)):
            # spectral + skip(x) in one buffer (the skip GEMM accumulates into the inverse
            # transform's output), and below mlp(v) + gate * x: no separate (C, B * N) sums
            layer = cast(Pointwise, skip)
            v = spectral_rows(cast(SpectralConv, conv), x, batch, grid, layer.weight)
            if layer.bias is not None:
                v = v.add_(layer.bias.view(-1, 1))
            if i < last:
                v = act(v)
            if self.mlps:
                gate = cast(SoftGating, self.gates[i]).gate.view(-1, 1)
                mlp = cast(ChannelMLP, self.mlps[i])
                hidden = ACTIVATIONS[mlp.activation](mlp.first.rows(v))
                # in place on the GEMM's output (its backward needs no output): no separate
                # x * gate tensor or addend copy
                v = _AddGated.apply(torch.mm(mlp.second.weight, hidden), x, gate)
                if mlp.second.bias is not None:
                    v = v.add_(mlp.second.bias.view(-1, 1))
                if i < last:
                    v = act(v)
            x = v
        return x


class _AddGated(torch.autograd.Function):
    """``v += x * gate`` in place, ``v`` and ``x`` ``(C, M)``, ``gate`` ``(C, 1)``: one
    ``(C, M)`` temporary for the gate's gradient where autograd's ``addcmul_`` backward makes
    two (it scales ``x`` by the unit ``value`` first). The backward is differentiable operations
    on the gradient and the saved inputs (exact higher-order gradients)."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        ctx.mark_dirty(v)
        ctx.save_for_backward(x, gate)
        return v.addcmul_(x, gate)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, gate = ctx.saved_tensors
        _, need_x, need_gate = ctx.needs_input_grad
        gx = grad * gate if need_x else None
        g_gate = None
        if need_gate:
            g_gate = (grad * x).sum(1, keepdim=True)
        return grad, gx, g_gate
