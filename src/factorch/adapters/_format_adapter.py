"""Adapters whose update is a factorch factorized layer (Tucker, TT): the shared machinery."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import (
    FactorizedConv1d,
    FactorizedConv2d,
    FactorizedConv3d,
    FactorizedLayer,
    FactorizedLinear,
    TensorizedShape,
)
from ..nn.formats import MEMORY_WEIGHT, known_size
from ._config import AdapterConfig, check_choice, check_number, check_rank
from ._layer import CONV_LAYERS, LINEAR_LAYERS, Adapter, base_weight

__all__ = ["AdapterImplementation", "FormatAdapterConfig", "FormatAdapterLayer"]

AdapterImplementation = Literal["auto", "factorized", "merged"]
"""How a format adapter applies its update in a Linear layer's forward (``implementation`` of
:class:`FormatAdapterConfig`): ``"factorized"`` contracts the factors with the input,
``"merged"`` runs one GEMM with the rebuilt weight ``W + alpha dW``, ``"auto"`` (the default)
picks the cheaper of the two by the layer's cost model. Both give the same values."""
_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "factorized", "merged")

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
        implementation: how the forward of a Linear layer applies the update.
            ``"factorized"``: ``base(x) + alpha dW x`` with the factors contracted with the
            input, never forming ``dW``; ``"merged"``: one GEMM with ``W + alpha dW``, ``dW``
            rebuilt from the factors (its cost does not grow with the batch, but the backward
            pass then computes the ``out x in`` weight gradient); ``"auto"`` (default): the one
            the layer's cost model (``step_costs``: FLOPs plus memory traffic of a training
            step) finds cheaper at the input's number of rows. Both give the same values and
            gradients up to rounding. A convolution has the same three choices:
            ``conv(x) + alpha delta(x)`` (``delta`` the factorized convolution, which itself
            contracts its factors with the input or rebuilds its kernel, whichever is
            cheaper), one convolution with the kernel ``W + alpha dW``, or the one
            ``conv_step_costs`` finds cheaper for a training step at the input's shape.

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), or a ``rank`` (or rank entry) that is
            not an int.
        ValueError: a non-positive or empty ``rank``, a non-finite ``alpha``, a non-positive
            ``n_factors``, an unknown ``implementation``, or bad module patterns.

    Example:
        >>> config = TuckerConfig(target_modules=["query"], rank=[2, 3])
        >>> isinstance(config, FormatAdapterConfig), config.rank, config.implementation
        (True, (2, 3), 'auto')
    """

    format: ClassVar[str] = ""

    rank: int | tuple[int, ...] = 4
    alpha: float = 1.0
    n_factors: int = 2
    implementation: AdapterImplementation = "auto"

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
        self._set(
            "implementation",
            check_choice(self.implementation, _IMPLEMENTATIONS, fn, "implementation"),
        )


def _known_shape(shape: Sequence[object]) -> tuple[int, ...]:
    """Every size of ``shape`` as an int (``known_size``: symbolic sizes become a bound)."""
    return tuple(known_size(s) for s in shape)


def _side_sum_traffic(n_out: int, n_in: int) -> int:
    """``MEMORY_WEIGHT`` times the numbers a training step of ``base(x) + alpha delta(x)``
    writes beyond the base layer's and the update's own (``n_out`` output, ``n_in`` input
    numbers): ``delta(x)``, its scaled copy and the sum (forward), the scaled output gradient,
    ``delta``'s input gradient and its sum with the base layer's (backward). The merged path
    writes none of them."""
    return MEMORY_WEIGHT * (4 * n_out + 2 * n_in)


class FormatAdapterLayer(Adapter):
    """``base(x) + alpha * delta(x)``, ``delta`` a bias-free :class:`~factorch.nn.FactorizedLinear`
    or ``FactorizedConv{1,2,3}d`` with the base layer's geometry; factor ``zero_factor`` starts
    at 0. On a Linear layer the forward contracts the factors with the input (:meth:`contract`)
    or runs the base GEMM with ``W + alpha dW`` (:meth:`rebuild`), as ``implementation`` and
    :meth:`step_costs` decide; a convolution adds ``delta(x)`` or runs one convolution with the
    kernel ``W + alpha dW``, as ``implementation`` and :meth:`conv_step_costs` decide."""

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
        self._paths: dict[tuple[int, ...], bool] = {}  # "auto"'s choice per input shape

    # --- forward ---------------------------------------------------------------------------------
    def step_costs(self, rows: int) -> tuple[int, int]:
        """``(factorized, merged)`` cost of a training step (forward and backward) of a Linear
        layer's update on ``rows`` input rows, in FLOPs plus ``MEMORY_WEIGHT`` per number
        written to an intermediate tensor (the cost model of
        :class:`~factorch.nn.FactorizedLinear`).

        Factorized: three contractions of the input with the factors (the forward, the input
        gradient, the factor gradients) plus the arrays only this path writes at the size of
        the layer's output and input (``delta(x)``, its scaled copy, the sum; their
        gradients). Merged: the rebuild of ``dW`` and its backward (three rebuild-sized
        contractions, each writing an ``out x in`` matrix) plus the weight
        gradient ``g^T x`` (``2 rows out in`` FLOPs); the GEMM with ``W + alpha dW`` and its
        input gradient replace the base layer's own, so they cost nothing extra.

        Example:
            >>> from torch import nn
            >>> from factorch.adapters import TTConfig, inject
            >>> model = nn.Sequential(nn.Linear(384, 384))
            >>> _ = inject(model, TTConfig(target_modules=["0"], rank=9))
            >>> factorized, merged = model[0].adapters["default"].step_costs(256)
            >>> merged < factorized  # a TT-matrix of rank 9 costs more per row than W itself
            True
        """
        fmt, shape = self.delta.parametrization, cast(FactorizedLinear, self.delta).shape
        dense = math.prod(self.weight_shape)
        factorized = 3 * (
            fmt.linear_flops(shape, rows) + MEMORY_WEIGHT * fmt.linear_traffic(shape, rows)
        ) + _side_sum_traffic(rows * self.weight_shape[0], rows * self.weight_shape[1])
        merged = 3 * (fmt.reconstruction_flops() + MEMORY_WEIGHT * dense) + 2 * rows * dense
        return factorized, merged

    def takes_merged(self, rows: int) -> bool:
        """Whether a Linear layer's forward on ``rows`` rows runs one GEMM with ``W + alpha dW``
        (the ``implementation`` rule; a rule of the shapes only, so the same input always takes
        the same path)."""
        choice = cast(FormatAdapterConfig, self.config).implementation
        if choice != "auto":
            return choice == "merged"
        return self._cached((rows,), lambda: self.step_costs(rows))

    def conv_step_costs(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """``(factorized, merged)`` cost of a training step of a convolution's update on a
        batched input of ``input_shape``, in FLOPs plus ``MEMORY_WEIGHT`` per intermediate
        number, as :meth:`step_costs` counts a Linear layer's.

        Factorized: three times the cheaper forward of the factorized convolution ``delta``
        (its factors contracted with the input, or its kernel rebuilt: the forward, the input
        gradient, the factor gradients), plus the output- and input-sized arrays only this path
        writes. Merged: three rebuilds of ``dW`` (each writing the
        kernel) plus the kernel gradient of the convolution with ``W + alpha dW`` (as many
        FLOPs as the dense convolution); that convolution and its input gradient replace the
        base layer's own, so they cost nothing extra.

        Example:
            >>> from torch import nn
            >>> from factorch.adapters import TuckerConfig, inject
            >>> model = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1))
            >>> _ = inject(model, TuckerConfig(target_modules=["0"], rank=32))
            >>> adapter = model[0].adapters["default"]
            >>> factorized, merged = adapter.conv_step_costs((32, 64, 16, 16))
            >>> merged < factorized  # rank 32 of 64 channels: one convolution with W + alpha dW
            True
            >>> adapter.conv_takes_merged((1, 64, 2, 2))  # a tiny input: the factors, not dW
            False
        """
        delta = cast(FactorizedConv2d, self.delta)
        shape = tuple(input_shape)
        fmt = delta.parametrization
        batch, _, out_size = delta.geometry.split(shape)
        n_out = batch * self.weight_shape[0] * math.prod(out_size)
        factorized = 3 * min(delta.costs(shape)) + _side_sum_traffic(n_out, math.prod(shape))
        merged = 3 * (fmt.reconstruction_flops() + MEMORY_WEIGHT * fmt.dense_params)
        return factorized, merged + delta.geometry.dense_flops(shape)

    def conv_takes_merged(self, input_shape: Sequence[int]) -> bool:
        """Whether a convolution's forward on a batched input of ``input_shape`` runs one
        convolution with the kernel ``W + alpha dW`` (the ``implementation`` rule, of the
        shapes only)."""
        choice = cast(FormatAdapterConfig, self.config).implementation
        if choice != "auto":
            return choice == "merged"
        shape = _known_shape(input_shape)
        return self._cached(shape, lambda: self.conv_step_costs(shape))

    def _cached(self, key: tuple[int, ...], costs: Callable[[], tuple[int, int]]) -> bool:
        """``merged < factorized`` of ``costs()``, computed once per input shape (the costs
        depend on the shapes only; at most 64 shapes are kept)."""
        found = self._paths.get(key)
        if found is None:
            if len(self._paths) >= 64:
                self._paths.clear()
            factorized, merged = costs()
            found = self._paths[key] = merged < factorized
        return found

    def forward(self, x: torch.Tensor, base: nn.Module) -> torch.Tensor:
        if not isinstance(base, nn.Linear):
            return self.conv_forward(x, cast(nn.Conv2d, base))
        delta = cast(FactorizedLinear, self.delta)
        factors = delta.current_factors()
        rows = known_size(math.prod(x.shape[:-1]))
        if self.takes_merged(rows):
            update = self.rebuild(factors).reshape(self.weight_shape)
            return F.linear(x, torch.add(base.weight, update, alpha=self.scaling), base.bias)
        y = base(x)  # first: it checks the input
        if rows == 0:
            return y
        d = self.contract(factors, x.reshape(-1, base.in_features))
        return torch.add(y, d.reshape(y.shape), alpha=self.scaling)

    def conv_forward(self, x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        """A convolution's forward: one convolution with the merged kernel ``W + alpha dW``
        (``dW`` rebuilt from the factors), or ``conv(x) + alpha delta(x)``, as
        :meth:`conv_takes_merged` decides."""
        dims = len(self.weight_shape) - 2
        shape = _known_shape(x.shape) if x.ndim == dims + 2 else (1, *_known_shape(x.shape))
        if x.ndim in (dims + 1, dims + 2) and self.conv_takes_merged(shape):
            update = self.rebuild(self.delta.current_factors()).reshape(self.weight_shape)
            kernel = torch.add(conv.weight, update, alpha=self.scaling)
            return cast(torch.Tensor, conv._conv_forward(x, kernel, conv.bias))
        return cast(torch.Tensor, conv(x)) + self.scaling * self.delta(x)

    def rebuild(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """``dW`` (unscaled) from the factors (default: the format's reconstruction)."""
        return cast(torch.Tensor, self.delta.parametrization(*factors))

    def contract(self, factors: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``x dW^T`` for ``x`` of shape ``(rows, in)``, contracting the factors with the input
        (default: the format's own :meth:`~factorch.nn.WeightFormat.linear`)."""
        delta = cast(FactorizedLinear, self.delta)
        return delta.parametrization.linear(factors, x, None, delta.shape)

    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return (self.scaling * self.delta.weight).reshape(self.weight_shape).to(weight.dtype)

    def structure(self) -> dict[str, Any]:
        out = super().structure()
        out["delta"] = self.delta.config()
        return out
