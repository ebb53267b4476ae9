"""``FactorizedLinear``: a linear layer whose weight is stored in a factorized format."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._layer import FactorizedLayer, Implementation, build_format, errors_named
from ._spec import TensorizedShape, TensorLayout, _positive_ints, resolve_shape
from .formats import MEMORY_WEIGHT, WeightFormat, known_size

__all__ = ["MEMORY_WEIGHT", "FactorizedLinear", "linear_costs", "linear_flops", "linear_layout"]


def linear_layout(format: type[WeightFormat], spec: TensorizedShape) -> TensorLayout:
    """The weight layout ``format`` factorizes for an ``(out, in)`` matrix folded by ``spec``."""
    return format.matrix_layout(spec)


def linear_flops(layer: FactorizedLinear, batch: int) -> tuple[int, int]:
    """Multiply-add FLOPs (x2) of ``(factorized, reconstructed)`` forwards on ``batch`` rows."""
    p, batch = layer.parametrization, known_size(batch)
    recon = p.reconstruction_flops() + 2 * batch * layer.out_features * layer.in_features
    return p.linear_flops(layer.shape, batch), recon


def linear_traffic(layer: FactorizedLinear, batch: int) -> tuple[int, int]:
    """Numbers written to intermediate tensors by ``(factorized, reconstructed)`` forwards (the
    rebuilt weight counts twice: written, then read by the GEMM)."""
    p, batch = layer.parametrization, known_size(batch)
    return p.linear_traffic(layer.shape, batch), 2 * layer.out_features * layer.in_features


def linear_costs(layer: FactorizedLinear, batch: int) -> tuple[int, int]:
    """``(factorized, reconstructed)`` cost = FLOPs + ``MEMORY_WEIGHT`` x intermediate numbers."""
    (f1, r1), (f2, r2) = linear_flops(layer, batch), linear_traffic(layer, batch)
    return f1 + MEMORY_WEIGHT * f2, r1 + MEMORY_WEIGHT * r2


class FactorizedLinear(FactorizedLayer):
    """``y = x W^T + b`` with ``W`` stored factorized.

    Formats (``format``, any registered :class:`~factorch.nn.formats.WeightFormat`), on the
    ``(out, in)`` weight folded by ``shape`` (a :class:`TensorizedShape`, default
    ``TensorizedShape.auto(out, in)``: two balanced factors per side):

    * ``"lowrank"``: ``W = U V^T`` (``shape`` unused). Forward ``(x V) U^T``.
    * ``"cp"``: CP of the tensor ``(o_1..o_p, i_1..i_q)``. Forward
      ``((x KR_in) * w) KR_out^T`` with the Khatri--Rao products of the in/out factors.
    * ``"tucker"``: Tucker of the same tensor. Forward: mode products of the input with the
      in-factors, the core as a ``prod(R_in) x prod(R_out)`` matrix, then the out-factors.
    * ``"tt"``: TT-matrix (Novikov et al. 2015), cores ``(r_k, o_k i_k, r_{k+1})``. Forward
      contracts the input one core at a time, never forming ``W``.
    * ``"tr"``: tensor-ring matrix (ring closure by a trace), same forward carrying ``r_0``.

    ``implementation="auto"`` counts the FLOPs of both forwards for the actual number of rows
    (:meth:`FactorizedLinear.flops`, from the format's cost model), adds the memory traffic of their
    intermediates (each number written weighs ``MEMORY_WEIGHT = 32`` FLOPs: a TT-matrix
    contraction with a small inner dimension is memory-bound, a GEMM is not) and takes the
    cheaper; ``"factorized"`` / ``"reconstructed"`` force one (reconstructed: rebuild ``W``, then
    ``F.linear``). Both give the same values and gradients. Under ``torch.export`` with a dynamic
    batch dimension ``"auto"`` keeps the path with the lower cost per row. Works with autograd,
    ``state_dict``, ``torch.compile``, ``torch.export``, autocast and any device.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: learn an additive bias (init ``U(-1/sqrt(in), 1/sqrt(in))`` as ``nn.Linear``).
        format: the name of a registered format (``"lowrank"`` by default, ``"cp"``,
            ``"tucker"``, ``"tt"``, ``"tr"``, or one added with
            :func:`~factorch.nn.formats.register_format`).
        rank: int or tuple (see the format classes; numpy integers accepted); exclusive with
            ``ratio``.
        ratio: fraction of the dense ``out * in`` parameter count; the rank is chosen by the
            format's ``rank_for_ratio`` (as :func:`factorch.decomp.rank_for_ratio`).
        shape: how features fold into factors (ignored by ``"lowrank"``).
        implementation: ``"auto"``, ``"factorized"`` or ``"reconstructed"``.
        rank_dropout: tensor-dropout probability of rank components in training mode.
        init_std: entry standard deviation of the random weight; default that of ``nn.Linear``
            (``1 / sqrt(3 in)``), preserved by the factorized init (see
            :class:`~factorch.nn.formats.WeightFormat`).
        decomposition: options for the decomposition used by :meth:`from_dense`.
        generator: random source of the initial factors and bias.
        device, dtype: of the parameters (a floating dtype).

    Raises:
        TypeError: a non-floating ``dtype``, a float ``rank``, a bad ``shape`` or generator.
        ValueError: bad sizes, format, rank or ratio; factors that cannot fit in memory (the
            message states the size).

    Example:
        >>> layer = FactorizedLinear(1024, 1024, format="tucker", ratio=0.1)
        >>> layer(torch.randn(8, 1024)).shape
        torch.Size([8, 1024])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        format: str = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: Implementation = "auto",
        rank_dropout: float = 0.0,
        init_std: float | None = None,
        decomposition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        _positive_ints(fn, ("in_features", in_features), ("out_features", out_features))
        spec = resolve_shape(shape, out_features, in_features, fn)
        self.in_features, self.out_features, self.shape = in_features, out_features, spec
        param = build_format(
            fn,
            format,
            lambda cls: linear_layout(cls, spec),
            rank=rank,
            ratio=ratio,
            decomposition=decomposition,
        )
        self._setup(
            param,
            bias_shape=(out_features,) if bias else None,
            fan_in=in_features,
            implementation=implementation,
            rank_dropout=rank_dropout,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def dense_layout(
        cls, linear: nn.Module, format: type[WeightFormat]
    ) -> tuple[TensorLayout, tuple[int, ...]]:
        """The layout (and full-rank modes) ``from_dense`` uses for an ``nn.Linear`` in
        ``format`` (with the default folding of its features)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(
                f"{cls.__name__}.dense_layout: expected an nn.Linear; got {type(linear).__name__}."
            )
        spec = TensorizedShape.auto(linear.out_features, linear.in_features)
        return linear_layout(format, spec), ()

    @classmethod
    def from_dense(
        cls,
        linear: nn.Module,
        *,
        format: str = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: Implementation = "auto",
        decomposition: Mapping[str, Any] | None = None,
    ) -> FactorizedLinear:
        """Factorize a trained ``nn.Linear`` with the decomposition engine (SVD, CP-ALS, HOOI,
        TT-SVD, TR-SVD/ALS, see the format classes).

        At full rank the layer computes the same function (up to the decomposition's accuracy).
        Device and dtype follow ``linear`` (half precision is decomposed in float32, with
        autocast off); the new layer is in ``linear``'s training/eval mode. Not differentiable.

        Raises:
            TypeError: ``linear`` is not an ``nn.Linear``.
            ValueError: its weight has NaN or Inf entries; bad format, rank or ratio.

        Example:
            >>> dense = torch.nn.Linear(64, 32)
            >>> FactorizedLinear.from_dense(dense, format="tt", ratio=0.2).rank
            (1, 4, 1)
        """
        fn = f"{cls.__name__}.from_dense"
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{fn}: expected an nn.Linear; got {type(linear).__name__}.")
        w = linear.weight
        with errors_named(fn, inner=cls.__name__):
            layer = cls(
                linear.in_features,
                linear.out_features,
                bias=linear.bias is not None,
                format=format,
                rank=rank,
                ratio=ratio,
                shape=shape,
                implementation=implementation,
                decomposition=decomposition,
                device=w.device,
                dtype=w.dtype,
            )
            layer._load_dense(w, linear.bias, training=linear.training, fn=fn)
        return layer

    def flops(self, batch: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` forward FLOPs for ``batch`` input rows."""
        return linear_flops(self, batch)

    def costs(self, batch: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` costs the ``"auto"`` choice compares."""
        return linear_costs(self, batch)

    def forward_flops(self, input_shape: Sequence[int]) -> int:
        """FLOPs of the path this layer takes on an input of ``input_shape``."""
        batch = math.prod(input_shape) // self.in_features
        fact, recon = self.flops(batch)
        return fact if self.takes_factorized(lambda: self.costs(batch)) else recon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = type(self).__name__
        self._check_float_input(x, fn, f"shape (..., {self.in_features})")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{fn}: input must have {self.in_features} features in its last "
                f"dimension; got shape {tuple(x.shape)}."
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        factors = self.current_factors()
        p = self.parametrization
        rows = known_size(x2.shape[0])  # an empty batch takes the plain GEMM
        if rows != 0 and self.takes_factorized(lambda: linear_costs(self, rows)):
            y = p.linear(factors, x2, self.bias, self.shape)
        else:
            y = F.linear(x2, p(*factors), self.bias)
        return y.reshape(*lead, self.out_features)

    def _config_args(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "shape": [list(self.shape.out_factors), list(self.shape.in_factors)],
        }

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> FactorizedLinear:
        """The layer :meth:`config` describes, with random factors (no decomposition is run).

        Example:
            >>> layer = FactorizedLinear(64, 32, format="tt", rank=4)
            >>> twin = FactorizedLinear.from_config(layer.config())
            >>> twin.load_state_dict(layer.state_dict())
            <All keys matched successfully>
        """
        args = cls._check_config(config)
        out_factors, in_factors = args.pop("shape")
        shape = TensorizedShape(tuple(out_factors), tuple(in_factors))
        return cls(**args, shape=shape, device=device, dtype=dtype)

    def to_dense(self) -> nn.Linear:
        """An ``nn.Linear`` holding the rebuilt weight (and a copy of the bias)."""
        w = self.weight.detach()
        out = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(w)
            if self.bias is not None and out.bias is not None:
                out.bias.copy_(self.bias)
        out.train(self.training)
        return out
