"""Low-rank matrix format: ``T_(0) = U V^T``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F

from ...algebra.internal import truncated_svd
from ...decomp.internal import LowRankFamily, Rank
from .._allocation import Candidate, sq_singular_values, tails
from .._spec import TensorizedShape, TensorLayout
from ._base import WeightFormat, int_rank, keep_mask, orthonormal
from ._geometry import ConvGeometry

__all__ = ["LowRankWeight"]

_FAMILY = LowRankFamily()


class LowRankWeight(WeightFormat):
    """``T_(0) = U V^T``: the tensor's mode-0 unfolding ``(I_0, prod(I_1..))`` at rank ``R``.

    Factors: ``U (I_0, R)`` and ``V (prod(I_1..), R)``. From a dense weight by truncated SVD,
    split evenly: ``U = U_R S_R^(1/2)``, ``V = V_R S_R^(1/2)`` (Eckart--Young optimal; the SVD
    algorithm from ``decomposition={"svd": "full" | "gram" | "randomized" | "auto"}``, default
    ``"full"``). A linear layer keeps its ``(out, in)`` matrix as it is (``y = (x V) U^T``); a
    convolution kernel ``(out, in, k..)`` becomes a ``k``-sized convolution to ``R`` channels
    followed by a 1x1 convolution. Random init: ``U = c Q_U``, ``V = c Q_V`` with orthonormal
    ``Q`` (Haar), so ``||W||^2 = c^4 R`` and ``c^4 = sigma^2 m n / R``.

    Args:
        layout: how the dense weight folds into the factorized tensor (e.g.
            ``LowRankWeight.matrix_layout(spec)`` for a Linear weight).
        rank: the number of components ``R`` (``1 <= R <= min`` of the unfolding's sides).
        decomposition: options for the fit from a dense weight (:mod:`factorch.decomp`).

    Raises:
        TypeError: ``layout`` not a :class:`TensorLayout`, ``decomposition`` not a mapping, or a
            non-int ``rank``.
        ValueError: a ``rank`` outside ``[1, min(I_0, prod(I_1..))]``.

    Example:
        >>> spec = TensorizedShape((4, 2), (3, 2))  # an 8 x 6 weight
        >>> fmt = LowRankWeight(LowRankWeight.matrix_layout(spec), 2)
        >>> fmt.factor_shapes
        ((8, 2), (6, 2))
        >>> factors = fmt.init_factors(std=0.1, generator=torch.Generator().manual_seed(0))
        >>> fmt(*factors).shape  # the rebuilt dense weight
        torch.Size([8, 6])
    """

    format = "lowrank"

    @property
    def r(self) -> int:
        return cast(int, self.rank)

    @classmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> Rank:
        shape = layout.tensor_shape
        value = int_rank(rank, fn)
        full = min(shape[0], math.prod(shape[1:]))
        if not 1 <= value <= full:
            raise ValueError(
                f"{fn}: rank must be in [1, {full}] for a {shape[0]} x {math.prod(shape[1:])} "
                f"matrix; got {value}."
            )
        return value

    @classmethod
    def matrix_layout(cls, spec: TensorizedShape) -> TensorLayout:
        return TensorLayout.identity((spec.out_features, spec.in_features))

    @classmethod
    def rank_family(cls, layout: TensorLayout, fixed_modes: Sequence[int] = ()) -> list[Rank]:
        return _FAMILY.members(layout.tensor_shape, frozenset())

    @classmethod
    def count_params(cls, layout: TensorLayout, rank: Rank) -> int:
        return _FAMILY.count(layout.tensor_shape, rank)

    @property
    def rows(self) -> int:
        return self.layout.tensor_shape[0]

    @property
    def cols(self) -> int:
        return math.prod(self.layout.tensor_shape[1:])

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.rows, self.r), (self.cols, self.r))

    def random_factors(
        self, std: float, generator: torch.Generator | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, ...]:
        c = (std**2 * self.rows * self.cols / self.r) ** 0.25
        u = orthonormal(self.rows, self.r, generator, dtype) * c
        return u, orthonormal(self.cols, self.r, generator, dtype) * c

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        u, v = factors
        return (u @ v.transpose(0, 1)).reshape(self.layout.tensor_shape)

    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mat = tensor.reshape(self.rows, self.cols)
        svd = svd_option(self.decomposition, "full")
        u, s, vh = truncated_svd(mat, self.r, svd, 10, 2, self.decomposition.get("generator"))
        root = s.sqrt().to(mat.dtype)
        return u * root, vh.transpose(0, 1) * root

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        u, v = factors
        return u * keep_mask(self.r, p, u), v

    # --- rank-one components ---------------------------------------------------------------------
    def component_magnitudes(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        u, v = factors
        return torch.linalg.vector_norm(u, dim=0) * torch.linalg.vector_norm(v, dim=0)

    def component_penalty(
        self, factors: Sequence[torch.Tensor], factor_decay: float
    ) -> torch.Tensor:
        """``(||U||^2 + ||V||^2) / 2``: the variational form of the nuclear norm."""
        u, v = factors
        return 0.5 * (u.abs().pow(2).sum() + v.abs().pow(2).sum())

    def select_components(
        self, factors: Sequence[torch.Tensor], keep: torch.Tensor
    ) -> tuple[Rank, tuple[torch.Tensor, ...]]:
        return int(keep.numel()), tuple(f[:, keep] for f in factors)

    # --- allocator -------------------------------------------------------------------------------
    @classmethod
    def energy_ladder(
        cls,
        tensor: torch.Tensor,
        layout: TensorLayout,
        *,
        fixed_modes: Sequence[int] = (),
        decomposition: Mapping[str, Any] | None = None,
    ) -> list[Candidate]:
        """Exact: the tail energy of the singular values of the mode-0 unfolding (Eckart--Young)."""
        shape = layout.tensor_shape
        total = float(tensor.abs().pow(2).sum()) or 1.0
        tail = tails(sq_singular_values(tensor.reshape(shape[0], -1)), total)
        dense = math.prod(shape)
        out = []
        for r in range(1, len(tail)):
            params = cls.count_params(layout, r)
            if params < dense:
                out.append(Candidate(r, params, tail[r]))
        return out

    # --- forwards and their costs ----------------------------------------------------------------
    def linear(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        spec: TensorizedShape,
    ) -> torch.Tensor:
        u, v = factors
        return F.linear(x @ v, u, bias)

    def conv(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        u, v = factors
        kernel = v.transpose(0, 1).reshape(v.shape[1], geometry.in_channels, *geometry.kernel_size)
        return geometry.pointwise(geometry.conv(x, kernel), u, bias)

    def embedding_rows(
        self, factors: Sequence[torch.Tensor], idx: torch.Tensor, spec: TensorizedShape
    ) -> torch.Tensor:
        u, v = factors
        return u[idx] @ v.transpose(0, 1)

    def reconstruction_flops(self) -> int:
        return 2 * self.rows * self.cols * self.r

    def linear_flops(self, spec: TensorizedShape, batch: int) -> int:
        return 2 * batch * self.r * (self.rows + self.cols)

    def linear_traffic(self, spec: TensorizedShape, batch: int) -> int:
        return batch * self.r

    def conv_flops(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        batch, _, out = geometry.split(input_shape)
        fan = geometry.in_channels * math.prod(geometry.kernel_size)
        return 2 * batch * math.prod(out) * self.r * (fan + geometry.out_channels)

    def conv_traffic(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        batch, _, out = geometry.split(input_shape)
        return batch * self.r * math.prod(out)

    def embedding_flops(self, spec: TensorizedShape, n: int) -> int:
        return 2 * n * self.r * spec.in_features


def svd_option(options: Mapping[str, Any], default: str) -> str:
    """The ``"svd"`` decomposition option (``"method"``: deprecated spelling, warns)."""
    if "method" in options and "svd" not in options:
        warnings.warn(
            "decomposition={'method': ...} for the SVD algorithm is deprecated; use "
            "decomposition={'svd': ...}.",
            DeprecationWarning,
            stacklevel=4,
        )
        return str(options["method"])
    return str(options.get("svd", default))
