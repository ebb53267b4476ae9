"""Fourier neural operator (FNO), dense or with factorized spectral weights.

.. math::
    \\mathcal G_\\theta = Q \\circ \\mathcal L_T \\circ \\dots \\circ \\mathcal L_1 \\circ P,

``P`` a lifting channel MLP (after appending the grid coordinates), ``L_t`` Fourier blocks
(:class:`~factorch.models._blocks.FourierBlocks`: spectral convolution + linear skip,
channel MLP + soft-gated skip), ``Q`` a projection channel MLP; optionally the domain is padded
before the blocks and cropped after (non-periodic problems). The spectral weights are dense or
factorized in any registered weight format, per layer or one tensor for all layers (``joint``).
The same parameters apply at every resolution (zero-shot super-resolution).

Reference: Li et al., "Fourier neural operator for parametric partial differential equations"
(ICLR 2021); architecture details as neuraloperator 2.0's ``FNO`` (lifting/projection ratios,
channel MLP expansion 0.5, soft gating).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import torch
from torch import nn

from .._checks import check_generator, check_positive_int
from .._numerics import HALF_DTYPES, check_memory
from ..nn.internal import check_lr_scale
from ..nn.spectral import SpectralConv, count_real
from ._blocks import (
    ACTIVATIONS,
    Activation,
    ChannelMLP,
    DomainPadding,
    FourierBlocks,
    GridEmbedding,
    PaddingMode,
    check_input,
    errors_named,
    run_in_float32,
)

__all__ = ["FNO", "FNOConfig", "as_modes"]


def as_modes(modes: object, fn: str) -> tuple[int, ...]:
    """``modes`` as a tuple (an int, numpy ints included, is one entry); its entries are checked
    by the config.

    Args:
        modes: an int or a sequence of ints.
        fn: the caller's name, for the error message.

    Returns:
        The modes as a tuple.

    Raises:
        ValueError: neither an int nor a sequence.

    Example:
        >>> as_modes(8, "FNO"), as_modes([8, 4], "FNO")
        ((8,), (8, 4))
    """
    if isinstance(modes, numbers.Integral) and not isinstance(modes, bool):
        return (int(modes),)
    if isinstance(modes, Sequence) and not isinstance(modes, str):
        return tuple(modes)
    raise ValueError(
        f"{fn}: modes must be a positive int or a sequence of 1 to 3 of them (one per spatial "
        f"dimension); got {modes!r}."
    )


@dataclass(frozen=True)
class FNOConfig:
    """The structure of an :class:`FNO` (JSON-serialisable; checked on creation).

    Attributes:
        in_channels, out_channels: channels of the input and output functions.
        modes: Fourier modes per spatial dimension (1 to 3 entries; see
            :class:`~factorch.nn.spectral.SpectralConv`).
        hidden_channels: width of the Fourier blocks (32: neuraloperator's small Darcy setting is
            24-32 on CPU-sized problems).
        n_layers: Fourier blocks (4, as in the FNO paper).
        lifting_ratio, projection_ratio: hidden width of the lifting / projection MLPs over
            ``hidden_channels`` (2, neuraloperator's default).
        channel_mlp_expansion: hidden width of each block's channel MLP over ``hidden_channels``
            (0.5 as in neuraloperator; 0 removes the channel MLPs and their gates).
        activation: ``"gelu"`` (default), ``"relu"``, ``"silu"`` or ``"tanh"``.
        positional_embedding: append the grid coordinates to the input (default True).
        periodic: the domain is periodic (coordinates ``j / n``) or a node grid with both
            boundaries (``j / (n - 1)``).
        domain_padding: pad by this fraction of each side before the blocks (non-periodic
            problems; 0 = none).
        padding_mode: how the padding is filled: ``"zeros"`` (default), ``"reflect"``,
            ``"replicate"``, ``"circular"``.
        format: ``"dense"`` or a weight format for the spectral weights (``"tucker"``, ``"cp"``,
            ``"tt"``, ...).
        rank, ratio: the format's rank, or the fraction of the dense spectral parameters it may
            use (one of them for a factorized format).
        joint: one factorized tensor for the spectral weights of all layers (MG-TFNO's global
            factorization); ``ratio`` then applies to the joint tensor.
        separable: per-channel (depthwise) spectral weights.
        implementation: spectral contraction: ``"auto"``, ``"factorized"``, ``"reconstructed"``.
        spectral_lr_scale: the spectral weights train at this many times the optimizer's
            learning rate under Adam/AdamW (their parameters are stored divided by it; the
            function and its init are unchanged; see
            :class:`~factorch.nn.spectral.SpectralWeight`). Default 1; a config saved without
            the field loads with 1, the behaviour before the field existed.

    Raises:
        TypeError: a size of the wrong type (a float channel count, ...).
        ValueError: a value out of range or not among the choices (the message lists them).

    Example:
        >>> config = FNOConfig(1, 1, (8, 8), hidden_channels=16)
        >>> config.n_layers, config.format, FNOConfig.from_json(config.to_json()) == config
        (4, 'dense', True)
    """

    in_channels: int
    out_channels: int
    modes: tuple[int, ...]
    hidden_channels: int = 32
    n_layers: int = 4
    lifting_ratio: float = 2.0
    projection_ratio: float = 2.0
    channel_mlp_expansion: float = 0.5
    activation: Activation = "gelu"
    positional_embedding: bool = True
    periodic: bool = True
    domain_padding: float = 0.0
    padding_mode: PaddingMode = "zeros"
    format: str = "dense"
    rank: int | tuple[int, ...] | None = None
    ratio: float | None = None
    joint: bool = False
    separable: bool = False
    implementation: Literal["auto", "factorized", "reconstructed"] = "auto"
    spectral_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        fn = "FNOConfig"
        for name in ("in_channels", "out_channels", "hidden_channels", "n_layers"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), fn, name))
        modes = as_modes(self.modes, fn)
        if not 1 <= len(modes) <= 3:
            raise ValueError(f"{fn}: modes must have 1 to 3 entries; got {self.modes!r}.")
        object.__setattr__(self, "modes", tuple(check_positive_int(m, fn, "modes") for m in modes))
        for name in ("lifting_ratio", "projection_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{fn}: {name} must be a positive number; got {value!r}.")
        checks: list[tuple[str, object, tuple[object, ...]]] = [
            ("activation", self.activation, tuple(ACTIVATIONS)),
            ("padding_mode", self.padding_mode, get_args(PaddingMode)),
            ("implementation", self.implementation, ("auto", "factorized", "reconstructed")),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{fn}: {name} must be one of {allowed}; got {value!r}.")
        value = self.channel_mlp_expansion
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{fn}: channel_mlp_expansion must be a number >= 0; got {value!r}.")
        pad = self.domain_padding
        if isinstance(pad, bool) or not isinstance(pad, (int, float)) or not 0 <= pad < 1:
            raise ValueError(f"{fn}: domain_padding must be a fraction in [0, 1); got {pad!r}.")
        if isinstance(self.rank, list):
            object.__setattr__(self, "rank", tuple(self.rank))
        object.__setattr__(
            self,
            "spectral_lr_scale",
            check_lr_scale(self.spectral_lr_scale, fn, "spectral_lr_scale"),
        )
        if self.separable and self.format == "dense" and self.joint:
            pass  # a joint dense separable weight is a plain (L, C, k..) tensor: allowed

    @property
    def dims(self) -> int:
        return len(self.modes)

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["modes"] = list(self.modes)
        if isinstance(self.rank, tuple):
            out["rank"] = list(self.rank)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FNOConfig:
        """Inverse of :meth:`to_json` (unknown keys are refused)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}.from_json: unknown fields {unknown}.")
        values = dict(data)
        values["modes"] = tuple(values["modes"])
        return cls(**values)


class FNO(nn.Module):
    """Fourier neural operator on 1-, 2- or 3-D grids (see the module docstring).

    Args:
        in_channels, out_channels, modes: see :class:`FNOConfig`.
        generator: random initialisation source (``torch.Generator``).
        device, dtype: placement and real dtype of the parameters (float32 or float64).
        **options: the other :class:`FNOConfig` fields (``hidden_channels``, ``format``,
            ``ratio``, ...).

    Input ``(batch, in_channels, *grid)``, output ``(batch, out_channels, *grid)`` on the same
    grid, for any grid with enough points for the modes, in the model's real dtype (half
    precision inputs are computed in it). Differentiable. A model converted with ``.half()`` or
    ``.bfloat16()`` keeps its complex spectral weights in complex64 and computes in float32 (no
    half-precision FFTs on CPUs), returning output in its half dtype; ``torch.autocast`` leaves
    the spectral layers in float32 too.

    Raises:
        TypeError: a configuration value of the wrong type (the message names it).
        ValueError: a bad configuration value; at forward, an input with the wrong number of
            channels or too coarse a grid (the message names what was expected).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = FNO(1, 1, (8, 8), hidden_channels=16, generator=gen)
        >>> model(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    name: ClassVar[str] = "fno"
    """The name checkpoints record (see :func:`factorch.models.model_from_config`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        allowed = {f.name for f in dataclasses.fields(FNOConfig)} - {
            "in_channels",
            "out_channels",
            "modes",
        }
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(f"{fn}: unknown options {unknown}; the options are {sorted(allowed)}.")
        with errors_named(fn):
            modes_ = as_modes(modes, "FNOConfig")
        with errors_named(fn):
            config = self.make_config(in_channels, out_channels, modes_, options)
        self._build(config, generator=generator, device=device, dtype=dtype)

    def make_config(
        self, in_channels: int, out_channels: int, modes: tuple[int, ...], options: dict[str, Any]
    ) -> FNOConfig:
        """The config from the constructor arguments (subclasses set their own defaults)."""
        return FNOConfig(in_channels, out_channels, modes, **options)

    def _build(
        self,
        config: FNOConfig,
        *,
        generator: torch.Generator | None,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        fn = type(self).__name__
        generator = check_generator(generator, fn)
        real = torch.get_default_dtype() if dtype is None else dtype
        if real not in (torch.float32, torch.float64):
            raise TypeError(f"{fn}: dtype must be torch.float32 or torch.float64; got {real}.")
        c = config
        hidden = c.hidden_channels
        # A lower bound on what the layers allocate (skip weights, channel MLPs, and the dense
        # spectral weights when dense): refuse absurd widths before allocating anything.
        per_layer = hidden * hidden * (1 + 2 * c.channel_mlp_expansion)
        if c.format == "dense":
            per_layer += 2 * hidden * (1 if c.separable else hidden) * math.prod(c.modes)
        check_memory(
            int(c.n_layers * per_layer),
            real,
            "cpu" if device is None else device,
            fn,
            "the model's parameters",
            hint="use fewer hidden_channels, layers or modes",
        )
        self.config = config
        lift_in = c.in_channels + (c.dims if c.positional_embedding else 0)
        self.embedding = GridEmbedding(c.dims, c.periodic) if c.positional_embedding else None
        self.lifting = ChannelMLP(
            lift_in,
            hidden,
            round(c.lifting_ratio * hidden),
            activation=c.activation,
            generator=generator,
            dtype=real,
        )
        self.padding = DomainPadding(c.domain_padding, c.padding_mode)
        with errors_named(fn):
            self.blocks = FourierBlocks(
                hidden,
                c.modes,
                c.n_layers,
                channel_mlp_expansion=c.channel_mlp_expansion,
                activation=c.activation,
                format=c.format,
                rank=c.rank,
                ratio=c.ratio,
                joint=c.joint,
                separable=c.separable,
                implementation=c.implementation,
                generator=generator,
                dtype=real,
                lr_scale=c.spectral_lr_scale,
            )
        self.projection = ChannelMLP(
            hidden,
            c.out_channels,
            round(c.projection_ratio * hidden),
            activation=c.activation,
            generator=generator,
            dtype=real,
        )
        if device is not None:
            self.to(device)

    @classmethod
    def from_config(
        cls,
        config: FNOConfig,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> FNO:
        """A freshly initialised model of this structure (load a state dict for trained weights)."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model._build(config, generator=generator, device=device, dtype=dtype)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = type(self).__name__
        c = self.config
        if self.lifting.first.weight.dtype in HALF_DTYPES:  # after .half() / .bfloat16()
            check_input(x, fn, c.in_channels, c.dims, torch.float32)
            out = run_in_float32(self, x)
            if out is not None:
                return out
        x = check_input(x, fn, c.in_channels, c.dims, self.lifting.first.weight.dtype)
        grid = x.shape[2:]
        if self.embedding is not None:
            x = self.embedding(x)
        if not any(self.padding.amounts(grid)):
            out = self._forward_rows(x)
            if out is not None:
                return out
        x = self.lifting(x)
        x = self.padding.pad(x)
        with errors_named(fn):
            x = self.blocks(x)
        x = self.padding.crop(x, grid)
        return self.projection(x)

    def _forward_rows(self, x: torch.Tensor) -> torch.Tensor | None:
        """Lifting, blocks and projection on the channel-major ``(C, B * N)`` layout of
        :meth:`FourierBlocks.rows` (two small transposes of the in/out channels instead of a
        batched GEMM per 1x1 convolution); None where the blocks cannot run on it."""
        batch, grid = x.shape[0], tuple(x.shape[2:])
        with errors_named(type(self).__name__):
            if not self.blocks.rows_ready(grid):
                return None
            rows = x.transpose(0, 1).reshape(x.shape[1], -1)
            hidden = self.blocks.rows(self.lifting.rows(rows), batch, grid)
        if hidden is None:
            return None
        out = self.projection.rows(hidden)
        return out.view(out.shape[0], batch, *grid).transpose(0, 1).contiguous()

    # --- sizes -----------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """Real numbers stored (complex entries count twice, shared tensors once)."""
        return count_real(self)

    @property
    def spectral_params(self) -> int:
        """Real numbers in the spectral weights."""
        return count_real(nn.ModuleList(c.weight_source for c in self._convs()))

    def dense_spectral_params(self) -> int:
        """Real numbers the spectral weights would take dense (the reference of ``ratio``)."""
        total = 0
        for conv in self._convs():
            shape = conv.weight_source.shape
            total += 2 * math.prod(shape[1:] if conv.layer is not None else shape)
        return total

    def _convs(self) -> list[SpectralConv]:
        return [c for c in self.blocks.convs if isinstance(c, SpectralConv)]
