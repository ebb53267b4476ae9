"""Tensor contraction (TCL) and tensor regression (TRL) layers (Kossaifi et al., JMLR 2020).

Both act on inputs with several feature modes, ``x`` of shape ``(*batch, I_1, ..., I_N)``, without
flattening them into a dense weight:

* :class:`TensorContraction`: ``y = x x_1 U_1 x_2 ... x_N U_N`` with ``U_n (R_n, I_n)``: a
  multilinear projection to ``(*batch, R_1, ..., R_N)``.
* :class:`TensorRegression`: ``y_o = <x, W[..., o]> + b_o`` with the regression weight
  ``W (I_1, ..., I_N, O)`` in a low-rank format (Tucker by default, CP, TT, TR or low rank); it
  is a :class:`FactorizedLinear` whose ``in`` side is folded exactly as the input modes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .._checks import check_generator
from .._numerics import check_memory
from ..algebra.internal import mode_dot as _mode_dot
from ._layer import Implementation, check_implementation, check_layer_dtype, errors_named
from ._linear import FactorizedLinear
from ._spec import TensorizedShape, _positive_ints, _positive_tuple
from .formats import known_size

__all__ = ["TensorContraction", "TensorRegression"]


def _check_input(x: object, shape: tuple[int, ...], dtype: torch.dtype, fn: str) -> torch.Tensor:
    """A floating tensor of the layer's ``dtype`` (autocast may mix) ending with ``shape``."""
    n = len(shape)
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{fn}: input must be a torch.Tensor ending with the modes {shape}; got "
            f"{type(x).__name__}."
        )
    if not x.is_floating_point():
        raise TypeError(f"{fn}: input must be a floating-point tensor; got {x.dtype}.")
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"{fn}: input dtype {x.dtype} does not match the layer's {dtype}; convert one of "
            f"them (e.g. x.to({dtype}) or layer.to({x.dtype}))."
        )
    if x.ndim < n or tuple(x.shape[-n:]) != shape:
        raise ValueError(
            f"{fn}: input must end with the modes {shape}; got shape {tuple(x.shape)}."
        )
    return x


class TensorContraction(nn.Module):
    """Tensor contraction layer: ``y = x x_1 U_1 ... x_N U_N (+ bias)``.

    Args:
        input_shape: the trailing modes ``(I_1, ..., I_N)`` of the input.
        output_shape: the projected sizes ``(R_1, ..., R_N)``.
        bias: add a learned ``(R_1, ..., R_N)`` bias (zero init).
        implementation: ``"factorized"`` (one mode product per mode), ``"reconstructed"`` (the
            ``prod R x prod I`` Kronecker matrix ``U_1 (x) ... (x) U_N`` and one GEMM) or
            ``"auto"`` (fewer FLOPs for the actual batch).
        generator, device, dtype: for the initial factors.

    Init: ``U_n`` entries i.i.d. ``N(0, 1 / I_n)``, so each output has the variance of one input
    entry when input entries are uncorrelated: ``Var(y) = prod_n (I_n / I_n) Var(x)``.
    Differentiable; works with ``torch.compile``, autocast and any device.

    Raises:
        TypeError: a shape that is not a tuple of ints, a non-floating ``dtype`` or a bad
            generator.
        ValueError: non-positive sizes, shapes with different numbers of modes, an unknown
            ``implementation``, or factors too large for memory (the message states the size).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> layer = TensorContraction((4, 5, 6), (2, 3, 3), generator=gen)
        >>> layer(torch.ones(7, 4, 5, 6)).shape
        torch.Size([7, 2, 3, 3])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        output_shape: Sequence[int],
        *,
        bias: bool = False,
        implementation: Implementation = "auto",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        self.input_shape = _positive_tuple(input_shape, fn, "input_shape")
        self.output_shape = _positive_tuple(output_shape, fn, "output_shape")
        if len(self.input_shape) != len(self.output_shape):
            raise ValueError(
                f"{fn}: output_shape needs one size per input mode ({len(self.input_shape)}); "
                f"got input_shape={self.input_shape}, output_shape={self.output_shape}."
            )
        self.implementation = check_implementation(implementation, fn)
        generator = check_generator(generator, fn)
        dtype = check_layer_dtype(dtype, fn) or torch.get_default_dtype()
        n_params = sum(r * i for r, i in zip(self.output_shape, self.input_shape))
        check_memory(n_params, dtype, device if device is not None else "cpu", fn, "the factors")
        factors = [
            (torch.randn(r, i, generator=generator, dtype=dtype) / math.sqrt(i)).to(device)
            for r, i in zip(self.output_shape, self.input_shape)
        ]
        self.factors = nn.ParameterList([nn.Parameter(f) for f in factors])
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.output_shape, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)

    @property
    def weight(self) -> torch.Tensor:
        """``U_1 (x) ... (x) U_N``: the ``(prod R, prod I)`` matrix the layer applies."""
        out = self.factors[0]
        for u in list(self.factors)[1:]:
            out = torch.kron(out, u)
        return out

    def flops(self, batch: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` FLOPs for ``batch`` inputs (a symbolic batch, while
        tracing with dynamic shapes, counts as unbounded)."""
        batch = known_size(batch)
        cur = list(self.input_shape)
        fact = 0
        for n, r in enumerate(self.output_shape):
            fact += 2 * batch * math.prod(cur) * r
            cur[n] = r
        pi, pr = math.prod(self.input_shape), math.prod(self.output_shape)
        kron = sum(
            math.prod(self.output_shape[: k + 1]) * math.prod(self.input_shape[: k + 1])
            for k in range(1, len(self.input_shape))
        )
        return fact, kron + 2 * batch * pi * pr

    def _factorized(self, batch: object) -> bool:
        if self.implementation != "auto":
            return self.implementation == "factorized"
        fact, recon = self.flops(known_size(batch))
        return fact <= recon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_shape, self.factors[0].dtype, type(self).__name__)
        n = len(self.input_shape)
        lead = x.shape[:-n]
        batch = math.prod(lead)
        if known_size(batch) != 0 and self._factorized(batch):
            t = x.reshape(batch, *self.input_shape)
            for k, u in enumerate(self.factors):
                t = _mode_dot(t, u, k + 1)
        else:
            t = x.reshape(batch, math.prod(self.input_shape)) @ self.weight.transpose(0, 1)
        y = t.reshape(*lead, *self.output_shape)
        return y if self.bias is None else y + self.bias.to(y.dtype)


class TensorRegression(nn.Module):
    """Tensor regression layer: ``y_o = <x, W[..., o]> + b_o`` with a low-rank ``W``.

    A :class:`FactorizedLinear` (attribute ``linear``) from ``prod(input_shape)`` to
    ``out_features`` whose ``in`` side is folded as ``input_shape`` and ``out`` side as
    ``(out_features,)``, so the formats act on the regression tensor ``(O, I_1, ..., I_N)``:
    Tucker (default, the TRL of Kossaifi et al.), CP, TT, TR or low rank. The input is
    ``(*batch, *input_shape)``.

    Args:
        input_shape: the trailing modes ``(I_1, ..., I_N)`` of the input.
        out_features: the number of outputs ``O``.
        bias: learn an additive bias.
        format: the format of the regression tensor (``"tucker"`` by default).
        rank: int or tuple over ``(O, I_1, ..., I_N)``, as the format takes it; exclusive with
            ``ratio``.
        ratio, implementation, rank_dropout, init_std: as :class:`FactorizedLinear`.
        decomposition, generator, device, dtype: as :class:`FactorizedLinear`.

    Raises:
        TypeError: a shape that is not a tuple of ints, a float ``rank``, a non-floating
            ``dtype`` or a bad generator.
        ValueError: non-positive sizes, an unknown format, an out-of-range rank, or not
            exactly one of ``rank`` and ``ratio``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> trl = TensorRegression((4, 5, 6), 3, rank=(2, 2, 2, 2), generator=gen)
        >>> trl(torch.ones(7, 4, 5, 6)).shape, trl.weight.shape
        (torch.Size([7, 3]), torch.Size([3, 4, 5, 6]))
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        out_features: int,
        bias: bool = True,
        *,
        format: str = "tucker",
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
        fn = type(self).__name__
        self.input_shape = _positive_tuple(input_shape, fn, "input_shape")
        _positive_ints(fn, ("out_features", out_features))
        self.out_features = out_features
        spec = TensorizedShape((out_features,), self.input_shape)
        with errors_named(fn, inner="FactorizedLinear"):
            self.linear = FactorizedLinear(
                math.prod(self.input_shape),
                out_features,
                bias,
                format=format,
                rank=rank,
                ratio=ratio,
                shape=spec,
                implementation=implementation,
                rank_dropout=rank_dropout,
                init_std=init_std,
                decomposition=decomposition,
                generator=generator,
                device=device,
                dtype=dtype,
            )

    @property
    def weight(self) -> torch.Tensor:
        """The regression tensor as a dense ``(O, I_1, ..., I_N)`` tensor."""
        return self.linear.weight.reshape(self.out_features, *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_shape, self.linear.factors[0].dtype, type(self).__name__)
        n = len(self.input_shape)
        return self.linear(x.reshape(*x.shape[:-n], math.prod(self.input_shape)))
