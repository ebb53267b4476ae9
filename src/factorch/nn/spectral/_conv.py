r"""Spectral convolution: the Fourier layer of Fourier neural operators, in 1, 2 or 3 dimensions.

.. math::
    (\mathcal K v)(x) = \mathcal F^{-1}\big(R \cdot \mathcal F v\big)(x),\qquad
    \widehat{(\mathcal K v)}_{o}(k) = \sum_i R_{i o}(k)\,\hat v_i(k)\quad(k\ \text{kept}),

with the spectrum truncated to the kept modes (the lowest frequencies of each dimension) and ``R`` a
complex weight over ``(in, out, k_1..k_d)``: dense, or factorized in a weight format (the
tensorized FNO of Kossaifi et al.), or a slice of one tensor shared by all layers (the MG-TFNO
paper's joint factorization), or per channel (``separable``). The output on an ``n``-point grid
is the inverse real FFT: for the last dimension the frequencies ``0 < k < n/2`` count twice and
the real parts of ``k = 0`` (and ``n/2`` on even grids) once, so the layer is real and the same
function of the input's Fourier coefficients at every resolution (discretisation invariance).

``implementation="auto"`` contracts the truncated spectrum with the factors directly when the
cost model (opt_einsum's FLOP count of the best contraction order plus
:data:`~factorch.nn.formats.MEMORY_WEIGHT` times the intermediate sizes) says that is cheaper
than rebuilding the weight, a fixed rule evaluated once per input shape, never a stopwatch.

References: Li et al., "Fourier neural operator for parametric partial differential equations"
(ICLR 2021); Kossaifi, Kovachki, Azizzadenesheli and Anandkumar, "Multi-grid tensorized Fourier
neural operator for high-resolution PDEs" (TMLR 2024).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import torch
from torch import nn

from ..._numerics import HALF_DTYPES, autocast_disabled
from .._layer import errors_named
from ..formats import MEMORY_WEIGHT
from ._direct import dense_modes, modes_bmm, tucker_modes
from ._einsum import Contraction
from ._fft_rows import fft_rows_in, fft_rows_out
from ._gemm_modes import gemm_matrices, modes_in, modes_out, rows_in, rows_out
from ._modes import check_grid, forward_modes, inverse_modes
from ._weight import BATCH, IN, OUT, SpectralWeight, check_modes, count_real, mode_labels

__all__ = ["Implementation", "SpectralConv"]

Implementation = Literal["auto", "factorized", "reconstructed"]


@dataclass(frozen=True)
class _Plan:
    """How one input shape is contracted: the equation's compiled expression and whether it
    takes the factors directly."""

    factorized: bool
    expression: Contraction
    costs: tuple[int, int]  # (factorized, reconstructed) cost-model values; -1 when unavailable


class SpectralConv(nn.Module):
    """Fourier layer ``x -> irfft(R . rfft(x))`` over 1, 2 or 3 spatial dimensions.

    Args:
        in_channels, out_channels: channel counts (equal when ``separable``).
        modes: Fourier modes per spatial dimension, an int (1-D) or 1 to 3 ints. Along every
            dimension but the last the frequencies ``-(m // 2) .. (m - 1) // 2`` are kept, along
            the last ``0 .. m // 2`` (real FFT); a grid needs ``n >= m`` points (last:
            ``n >= 2 (m // 2)``).
        format: ``"dense"`` (default) or a registered weight format (``"cp"``, ``"tucker"``,
            ``"tt"``, ``"tr"``, ``"lowrank"``) for a factorized weight.
        rank, ratio: the format's rank, or the fraction of the dense weight's parameters it may
            use (exactly one of them with a factorized format).
        separable: one complex weight per channel (depthwise, ``in == out``).
        bias: add a learnable per-channel bias (initialised to zero).
        implementation: ``"auto"`` (the cost model decides per input shape), ``"factorized"``
            (contract the spectrum with the factors) or ``"reconstructed"`` (rebuild the weight).
        decomposition: options of the format's decomposition (used by :meth:`load_dense_`).
        init_std: standard deviation of the complex weight entries (default
            ``sqrt(2 / (in + out))``).
        lr_scale: train the spectral weight at this many times the optimizer's learning rate
            under Adam/AdamW (its parameters are stored divided by it; see
            :class:`SpectralWeight`). Default 1.
        shared: a :class:`SpectralWeight` with ``n_layers`` set, shared by several layers
            (joint factorization); ``layer`` says which slice this layer uses. Then ``format``,
            ``rank``, ``ratio``, ``separable``, ``init_std`` and ``lr_scale`` come from it.
        layer: index into ``shared``.
        generator, device, dtype: random init; placement; real dtype (float32 or float64).

    Input ``(batch, in_channels, *grid)`` with ``len(grid) == len(modes)``, floating: the layer's
    dtype, or half precision (computed in the layer's dtype; FFTs need float32 or float64).
    Output ``(batch, out_channels, *grid)`` in the layer's dtype. Autocast is off inside (FFTs
    and complex contractions have no half-precision kernels on most devices). Differentiable.

    Raises:
        TypeError: an argument of the wrong type (a non-integer size, a non-real dtype).
        ValueError: bad sizes, formats or ranks; at forward, an input whose channels or grid do
            not fit (the message says what was expected).

    Example:
        >>> conv = SpectralConv(3, 4, (8, 8), format="tucker", ratio=0.1)
        >>> conv(torch.randn(2, 3, 16, 15)).shape  # any grid with enough points
        torch.Size([2, 4, 16, 15])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        *,
        format: str = "dense",
        rank: Any = None,
        ratio: float | None = None,
        separable: bool = False,
        bias: bool = True,
        implementation: Implementation = "auto",
        decomposition: Mapping[str, Any] | None = None,
        init_std: float | None = None,
        lr_scale: float = 1.0,
        shared: SpectralWeight | None = None,
        layer: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "SpectralConv"
        if implementation not in get_args(Implementation):
            raise ValueError(
                f"{fn}: implementation must be one of {get_args(Implementation)}; "
                f"got {implementation!r}."
            )
        self.implementation: Implementation = implementation
        if shared is None:
            if layer is not None:
                raise ValueError(f"{fn}: layer= indexes a shared weight; pass shared= too.")
            with errors_named(fn, inner="SpectralWeight"):
                source = SpectralWeight(
                    in_channels,
                    out_channels,
                    modes,
                    separable=separable,
                    format=format,
                    rank=rank,
                    ratio=ratio,
                    decomposition=decomposition,
                    init_std=init_std,
                    lr_scale=lr_scale,
                    generator=generator,
                    device=device,
                    dtype=dtype,
                )
            self.weight_source = source
        else:
            if not isinstance(shared, SpectralWeight):
                raise TypeError(
                    f"{fn}: shared must be a SpectralWeight; got {type(shared).__name__}."
                )
            if shared.n_layers is None:
                raise ValueError(
                    f"{fn}: shared must be a SpectralWeight built with n_layers (one tensor for "
                    "several layers)."
                )
            shared.check_layer(layer, fn)
            want = (
                in_channels,
                out_channels,
                check_modes(modes, fn),
            )
            have = (shared.in_channels, shared.out_channels, shared.modes)
            if want != have:
                raise ValueError(
                    f"{fn}: the shared weight is for (in, out, modes) = {have}; the layer asks "
                    f"for {want}."
                )
            self.weight_source = shared
        self.layer = layer
        w = self.weight_source
        self.in_channels, self.out_channels, self.modes = w.in_channels, w.out_channels, w.modes
        real = w.dtype.to_real()
        if bias:
            b = torch.zeros(self.out_channels, dtype=real, device=w.parameters().__next__().device)
            self.bias: nn.Parameter | None = nn.Parameter(b)
        else:
            self.register_parameter("bias", None)
        self._plans: dict[tuple[int | bool, ...], _Plan] = {}

    # --- properties ------------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self.weight_source.format

    @property
    def rank(self) -> Any:
        return self.weight_source.rank

    @property
    def separable(self) -> bool:
        return self.weight_source.separable

    @property
    def weight(self) -> torch.Tensor:
        """The dense complex weight ``(in, out, k..)`` (``(channels, k..)`` when separable),
        rebuilt from the factors when factorized. Differentiable."""
        return self.weight_source.tensor(self.layer)

    @property
    def n_params(self) -> int:
        """Real numbers stored (a complex entry counts twice; a shared weight counts fully)."""
        return count_real(self)

    def load_dense_(self, weight: torch.Tensor) -> None:
        """Set this layer's weight from a dense complex one (decomposed for a factorized format).

        A shared weight cannot be set one layer at a time (``ValueError``): set the whole tensor
        with :meth:`SpectralWeight.load_dense_`.
        """
        if self.layer is not None:
            raise ValueError(
                "SpectralConv.load_dense_: this layer uses one slice of a shared weight; set the "
                "whole tensor with shared.load_dense_(weight) instead."
            )
        self.weight_source.load_dense_(weight)
        self._plans.clear()

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = "SpectralConv"
        d = len(self.modes)
        real = self.weight_source.dtype.to_real()
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = type(x).__name__ if not isinstance(x, torch.Tensor) else str(x.dtype)
            raise TypeError(f"{fn}: input must be a real floating tensor; got {got}.")
        if x.ndim != d + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{fn}: input must have shape (batch, {self.in_channels}, {d} grid sizes); got "
                f"{tuple(x.shape)}."
            )
        if x.dtype != real:
            if x.dtype not in HALF_DTYPES and not torch.is_autocast_enabled(x.device.type):
                raise TypeError(
                    f"{fn}: input dtype {x.dtype} does not match the layer's {real}; convert one "
                    f"of them (e.g. x.to({real}) or layer.to({x.dtype}))."
                )
            x = x.to(real)
        grid = tuple(x.shape[2:])
        check_grid(self.modes, grid, fn)
        with autocast_disabled():
            gemms = gemm_matrices(self.modes, grid, x.dtype, x.device)
            if gemms is not None:  # one GEMM each way: contract modes-first (_gemm_modes)
                kept = modes_in(x, self.modes, gemms[0])
                spectrum = self._contract(kept, modes_first=True)
                return modes_out(spectrum, self.modes, grid, gemms[1], self.bias)
            kept = forward_modes(x, self.modes)
            y = inverse_modes(self._contract(kept, modes_first=False), self.modes, grid)
        if self.bias is not None:
            y = y + self.bias.reshape(-1, *([1] * d))
        return y

    def _rows(
        self,
        x: torch.Tensor,
        batch: int,
        grid: tuple[int, ...],
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The layer on a channel-major ``(C, B * N)`` signal in the layer's dtype (the layout
        the FNO blocks keep, where every 1x1 convolution is one GEMM): ``(O, B * N)``, plus
        ``skip @ x`` for a ``(O, C)`` matrix ``skip`` (a 1x1 convolution of the same input,
        accumulated into the inverse transform's output where it is a GEMM). On grids without
        single-GEMM transforms the transforms run over the trailing grid dimensions of the
        ``(C, B, *grid)`` view (no transpose of the signal; see :mod:`._fft_rows`). Internal: no
        input checks."""
        real = self.weight_source.dtype.to_real()
        gemms = gemm_matrices(self.modes, grid, real, x.device)
        x = x.to(real)
        with autocast_disabled():
            if gemms is None:  # (C, B, *grid) -> (k.., B, C) -> (O, B * N)
                kept = fft_rows_in(x.view(x.shape[0], batch, *grid), self.modes)
                spectrum = self._contract(kept, modes_first=True)
                pair = None if skip is None else (skip, x)
                return fft_rows_out(spectrum, self.modes, grid, self.bias, pair)
            kept = rows_in(x, batch, self.modes, gemms[0])
            spectrum = self._contract(kept, modes_first=True)
            out = rows_out(spectrum, self.modes, gemms[1], self.bias)
            return out if skip is None else torch.addmm(out, skip, x)

    def _contract(self, kept: torch.Tensor, *, modes_first: bool) -> torch.Tensor:
        key = (*kept.shape, modes_first)
        plan = self._plans.get(key)
        if plan is None:
            plan = self.plan(kept.shape, modes_first=modes_first)
            self._plans[key] = plan
        src = self.weight_source
        if modes_first and not src.separable:  # hand-written contractions (_direct)
            if not plan.factorized:
                network = src.network
                if src.n_layers is None and network is not None and network.modes_first_weight:
                    operands = network.operands(src.factor_values())
                    weight = network.modes_first_weight(operands)
                    want = (math.prod(kept.shape[:-2]), src.in_channels, src.out_channels)
                    if tuple(weight.shape) != want:
                        raise ValueError(
                            f"SpectralConv: the {src.format!r} network's modes_first_weight "
                            f"returned shape {tuple(weight.shape)}; expected (K, I, O) = {want}."
                        )
                    return modes_bmm(kept, weight)
                return dense_modes(kept, self.weight)
            if src.format == "tucker" and src.n_layers is None and src.network is not None:
                core, u_in, u_out, *per_mode = src.network.operands(src.factor_values())
                return tucker_modes(kept, core, u_in, u_out, per_mode)
        if plan.factorized:
            net = self.weight_source.operands(self.layer)
            if net is None:
                raise RuntimeError("SpectralConv: no network for a factorized contraction.")
            return plan.expression(kept, *net[1])
        return plan.expression(kept, self.weight)

    def equations(self, *, modes_first: bool = False) -> tuple[str, str]:
        """``(input subscript, output subscript)`` of the contraction: spectrum
        ``(batch, channels, modes..)``, or ``(modes.., batch, channels)`` when ``modes_first``."""
        modes = mode_labels(len(self.modes))
        out = IN if self.separable else OUT
        if modes_first:
            return modes + BATCH + IN, modes + BATCH + out
        return BATCH + IN + modes, BATCH + out + modes

    def plan(self, kept_shape: Sequence[int], *, modes_first: bool = False) -> _Plan:
        """The contraction of a kept spectrum of ``kept_shape`` (the ``"auto"`` rule here), laid
        out as :meth:`equations` says.

        Cost of a contraction: opt_einsum's FLOP count of its best pairwise order plus
        :data:`~factorch.nn.formats.MEMORY_WEIGHT` times the numbers its intermediates hold.
        Factorized: the spectrum and all factors as one network. Reconstructed: the factors
        contracted into the weight, then the dense contraction. The factorized network's best
        order may itself rebuild the weight first, so it never costs more by this measure.
        """
        x_sub, out_sub = self.equations(modes_first=modes_first)
        src = self.weight_source
        w_sub = src.layer_labels()
        w_shape = src.shape[1:] if src.n_layers is not None else src.shape
        dense = Contraction(f"{x_sub},{w_sub}->{out_sub}", [tuple(kept_shape), tuple(w_shape)])
        net = src.operands(self.layer) if src.dense is None else None
        if net is None or self.implementation == "reconstructed":
            return _Plan(False, dense, (-1, -1))
        subs, ops = net
        shapes = [tuple(o.shape) for o in ops]
        strategy = "optimal" if len(shapes) <= 6 else "dp"
        fact = Contraction(
            ",".join([x_sub, *subs]) + "->" + out_sub, [tuple(kept_shape), *shapes], strategy
        )
        rebuild = Contraction(",".join(subs) + "->" + w_sub, shapes, strategy)
        fact_cost = fact.flops + MEMORY_WEIGHT * fact.intermediates
        rec_cost = rebuild.flops + dense.flops
        rec_cost += MEMORY_WEIGHT * (rebuild.intermediates + dense.intermediates)
        use_factors = self.implementation == "factorized" or fact_cost <= rec_cost
        return _Plan(use_factors, fact if use_factors else dense, (fact_cost, rec_cost))

    def _apply(self, fn: Any, recurse: bool = True) -> SpectralConv:
        self._plans.clear()  # device or dtype changes: rebuild the plans
        return cast(SpectralConv, super()._apply(fn, recurse))

    # --- config ----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """A JSON description (the shared weight's, for a layer of a shared tensor)."""
        return {
            **self.weight_source.config(),
            "bias": self.bias is not None,
            "implementation": self.implementation,
            "layer": self.layer,
        }

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, modes={self.modes}, format={self.format!r}, "
            f"rank={self.rank}, separable={self.separable}, implementation={self.implementation!r}"
            + ("" if self.layer is None else f", layer={self.layer}")
        )
