"""Shared machinery of factorized layers: factors as parameters, rank resolution, dispatch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import torch
from torch import nn

from ..decomp import rank_for_ratio
from ._chain import TRWeight, TTWeight
from ._formats import CPWeight, LowRankWeight, TuckerWeight
from ._spec import TensorLayout
from ._weight import FactorizedWeight, dense_init_std

__all__ = ["FactorizedLayer", "Implementation", "make_weight"]

Implementation = Literal["auto", "factorized", "reconstructed"]

_CLASSES: dict[str, type[FactorizedWeight]] = {
    "lowrank": LowRankWeight,
    "cp": CPWeight,
    "tucker": TuckerWeight,
    "tt": TTWeight,
    "tr": TRWeight,
}


def check_format(format: object, fn: str, allowed: Sequence[str] = tuple(_CLASSES)) -> str:
    if format not in allowed:
        raise ValueError(f"{fn}: format must be one of {tuple(allowed)}; got {format!r}.")
    return str(format)


def check_implementation(implementation: object, fn: str) -> str:
    if implementation not in get_args(Implementation):
        raise ValueError(
            f"{fn}: implementation must be one of {get_args(Implementation)}; "
            f"got {implementation!r}."
        )
    return str(implementation)


def resolve_rank(
    fn: str,
    format: str,
    layout: TensorLayout,
    rank: Any,
    ratio: float | None,
    *,
    fixed_modes: Sequence[int] = (),
) -> Any:
    """The rank given, or the one :func:`rank_for_ratio` picks for ``ratio`` (exactly one)."""
    if (rank is None) == (ratio is None):
        raise ValueError(
            f"{fn}: give exactly one of rank= (an int or tuple) and ratio= (a fraction of the "
            f"dense parameter count); got rank={rank!r}, ratio={ratio!r}."
        )
    if rank is not None:
        if isinstance(rank, float):
            raise TypeError(
                f"{fn}: rank must be an int or a tuple of ints; got the float {rank!r}. For a "
                "fraction of the dense parameter count pass ratio= instead."
            )
        return rank
    return rank_for_ratio(
        layout.tensor_shape,
        ratio,
        format=format,  # type: ignore[arg-type]
        fixed_modes=fixed_modes if format == "tucker" else (),
    )


def make_weight(
    format: str, layout: TensorLayout, rank: Any, decomposition: Mapping[str, Any] | None
) -> FactorizedWeight:
    return _CLASSES[format](layout, rank, decomposition=decomposition)


class FactorizedLayer(nn.Module):
    """Base of the factorized layers: ``factors`` (an ``nn.ParameterList``) in the format of
    ``parametrization``, an optional ``bias``, and the ``implementation`` switch.

    ``weight`` rebuilds the dense weight (differentiable). ``rank_dropout`` (a probability) drops
    rank components at random in training mode (tensor dropout, see
    :func:`factorch.nn.tensor_dropout`).
    """

    parametrization: FactorizedWeight
    factors: nn.ParameterList
    bias: nn.Parameter | None

    def _setup(
        self,
        parametrization: FactorizedWeight,
        *,
        bias_shape: tuple[int, ...] | None,
        fan_in: int,
        implementation: str,
        rank_dropout: float,
        init_std: float | None,
        generator: torch.Generator | None,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        fn = type(self).__name__
        self.implementation = check_implementation(implementation, fn)
        self.rank_dropout = check_probability(rank_dropout, fn, "rank_dropout")
        self.parametrization = parametrization
        std = dense_init_std(fan_in) if init_std is None else float(init_std)
        factors = parametrization.init_factors(
            std=std, generator=generator, device=device, dtype=dtype
        )
        self.factors = nn.ParameterList([nn.Parameter(f) for f in factors])
        if bias_shape is None:
            self.register_parameter("bias", None)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            b = torch.rand(bias_shape, generator=generator, dtype=factors[0].dtype) * 2 - 1
            self.bias = nn.Parameter((b * bound).to(factors[0].device))

    # --- properties --------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self.parametrization.format

    @property
    def rank(self) -> Any:
        return self.parametrization.rank

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight rebuilt from the factors (differentiable, no dropout)."""
        return self.parametrization(*self.factors)

    @property
    def n_params(self) -> int:
        """Trainable numbers: factors plus bias."""
        return sum(p.numel() for p in self.parameters())

    def current_factors(self) -> tuple[torch.Tensor, ...]:
        """The factors used by this forward pass (rank dropout applied in training mode)."""
        factors = tuple(self.factors)
        if self.training and self.rank_dropout > 0:
            factors = self.parametrization.dropout(factors, self.rank_dropout)
        return factors

    def set_factors(self, factors: Sequence[torch.Tensor]) -> None:
        """Replace the factor parameters (shapes must match ``parametrization.factor_shapes``)."""
        fn = f"{type(self).__name__}.set_factors"
        want = self.parametrization.factor_shapes
        got = tuple(tuple(f.shape) for f in factors)
        if got != tuple(want):
            raise ValueError(f"{fn}: factor shapes must be {want}; got {got}.")
        self.factors = nn.ParameterList([nn.Parameter(f.detach().clone()) for f in factors])

    def reparametrize_(self, rank: Any, factors: Sequence[torch.Tensor]) -> None:
        """Change the rank in place: a new parametrization of the same format and layout, and
        ``factors`` of the matching shapes as fresh parameters (rebuild optimizers after)."""
        old = self.parametrization
        self.parametrization = make_weight(old.format, old.layout, rank, old.decomposition)
        self.set_factors(factors)

    def use_factorized(self, factorized_flops: int, reconstructed_flops: int) -> bool:
        if self.implementation == "factorized":
            return True
        if self.implementation == "reconstructed":
            return False
        return factorized_flops <= reconstructed_flops

    def _load_dense(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.set_factors(self.parametrization.right_inverse(weight))
        if self.bias is not None and bias is not None:
            self.bias = nn.Parameter(bias.detach().clone())

    def extra_repr(self) -> str:
        return (
            f"format={self.format!r}, rank={self.rank}, implementation={self.implementation!r}, "
            f"params={self.parametrization.n_params}/{self.parametrization.dense_params}"
        )


def check_probability(p: object, fn: str, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{fn}: {name} must be a probability in [0, 1); got {p!r}.")
    return float(p)
