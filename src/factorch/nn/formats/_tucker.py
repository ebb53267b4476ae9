"""Tucker format: ``T = G x_0 U_0 x_1 ... x_{N-1} U_{N-1}``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch

from ...algebra.internal import mode_dot
from ...decomp import hosvd, tucker
from ...decomp.internal import Rank, TuckerFamily, as_int
from .._allocation import Candidate
from .._spec import TensorizedShape, TensorLayout
from ._base import (
    WeightFormat,
    gaussian,
    keep_mask,
    orthonormal,
    row_digits,
)
from ._geometry import ConvGeometry

__all__ = ["TuckerWeight"]

_FAMILY = TuckerFamily()


def _mode_matmul(t: torch.Tensor, mat: torch.Tensor, mode: int) -> torch.Tensor:
    """``t`` with its mode ``mode`` (of size ``s``) mapped by ``mat (s, s')``: ``t @ mat`` on the
    last mode (no copy), else ``mat^T @ t`` on the ``(before, s, after)`` view. The layer's hot
    path: the same GEMMs and copies as :func:`~factorch.algebra.mode_dot`, without its per-call
    input checks (the layer checked its input once)."""
    if mode == t.ndim - 1:
        return t @ mat
    shape = t.shape
    before, after = math.prod(shape[:mode]), math.prod(shape[mode + 1 :])
    out = torch.matmul(mat.transpose(0, 1), t.reshape(before, shape[mode], after))
    return out.reshape(*shape[:mode], mat.shape[1], *shape[mode + 1 :])


class TuckerWeight(WeightFormat):
    """Tucker: ``T = G x_0 U_0 x_1 ... x_{N-1} U_{N-1}``.

    Factors: ``core (R_0, ..., R_{N-1})`` then ``U_n (I_n, R_n)``. Rank: an int (capped at each
    mode size) or one int per mode. From a dense weight by HOOI (:func:`factorch.decomp.tucker`,
    default) or ST-HOSVD (``decomposition={"method": "hosvd"}``). A convolution keeps its spatial
    modes at full rank when given an int rank or a ratio (Tucker-2, Kim et al., ICLR 2016): a 1x1
    convolution to ``R_in`` channels, the core convolution, a 1x1 to ``out``; such a mode's factor
    is stored and trained like the others. Random init: orthonormal factors (``||W|| = ||G||``)
    and a Gaussian core of variance ``sigma^2 prod(I) / prod(R)``. Reference: Tucker (1966).

    Args:
        layout: how the dense weight folds into the factorized tensor (e.g.
            ``TuckerWeight.matrix_layout(spec)`` for a Linear weight).
        rank: an int or one int per mode (see above).
        decomposition: options for the fit from a dense weight (:mod:`factorch.decomp`).

    Raises:
        TypeError: ``layout`` not a :class:`TensorLayout`, ``decomposition`` not a mapping.
        ValueError: a ``rank`` that is not a positive int or a tuple of them, or a tuple of the
            wrong length.

    Example:
        >>> spec = TensorizedShape((4, 2), (3, 2))  # an 8 x 6 weight
        >>> fmt = TuckerWeight(TuckerWeight.matrix_layout(spec), 2)
        >>> fmt.factor_shapes
        ((2, 2, 2, 2), (4, 2), (2, 2), (3, 2), (2, 2))
        >>> factors = fmt.init_factors(std=0.1, generator=torch.Generator().manual_seed(0))
        >>> fmt(*factors).shape  # the rebuilt dense weight
        torch.Size([8, 6])
    """

    format = "tucker"
    budget_monotone = False

    @property
    def ranks(self) -> tuple[int, ...]:
        return cast(tuple[int, ...], self.rank)

    @classmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> Rank:
        shape = layout.tensor_shape
        value = as_int(rank)
        if value is not None and value >= 1:
            rank = tuple(s if n in fixed_modes else min(value, s) for n, s in enumerate(shape))
        out = cast(tuple[int, ...], _FAMILY.normalise(shape, rank, fn))
        for n, (r, s) in enumerate(zip(out, shape)):
            if r > s:
                raise ValueError(f"{fn}: rank[{n}] = {r} exceeds the mode size {s}; got {out}.")
            others = math.prod(out[:n] + out[n + 1 :])
            if r > others:
                raise ValueError(
                    f"{fn}: rank[{n}] = {r} exceeds the product {others} of the other ranks, "
                    f"which makes it redundant; got {out}."
                )
        return out

    @classmethod
    def kernel_fixed_modes(cls, layout: TensorLayout, dims: int) -> tuple[int, ...]:
        """The spatial modes ``2 .. 2 + d`` of an ``(out, in, k..)`` kernel (Tucker-2)."""
        return tuple(range(2, 2 + dims))

    @classmethod
    def rank_family(cls, layout: TensorLayout, fixed_modes: Sequence[int] = ()) -> list[Rank]:
        return _FAMILY.members(layout.tensor_shape, frozenset(fixed_modes))

    @classmethod
    def count_params(cls, layout: TensorLayout, rank: Rank) -> int:
        return _FAMILY.count(layout.tensor_shape, rank)

    @classmethod
    def refine_rank(
        cls, layout: TensorLayout, rank: Rank, fixed_modes: Sequence[int], budget: float
    ) -> Rank:
        """Raise single ranks by one, cheapest first, while the count stays within budget."""
        return _FAMILY.refine(layout.tensor_shape, rank, frozenset(fixed_modes), budget)

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        shape = self.layout.tensor_shape
        return (self.ranks, *((s, r) for s, r in zip(shape, self.ranks)))

    def random_factors(
        self, std: float, generator: torch.Generator | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, ...]:
        shape = self.layout.tensor_shape
        core_std = std * math.sqrt(math.prod(shape) / math.prod(self.ranks))
        core = gaussian(self.ranks, generator, dtype) * core_std
        return (core, *(orthonormal(s, r, generator, dtype) for s, r in zip(shape, self.ranks)))

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        core, *mats = factors
        out = core
        # expand the mode with the smallest growth first to keep intermediates small
        order = sorted(range(len(mats)), key=lambda n: mats[n].shape[0] / mats[n].shape[1])
        for n in order:
            out = mode_dot(out, mats[n], n)
        return out

    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        opts = dict(self.decomposition)
        method = opts.pop("method", "hooi")
        if method == "hosvd":
            res = hosvd(tensor, list(self.ranks), **opts).model
        elif method == "hooi":
            opts = {"max_iter": 20, "tol": 1e-10, **opts}
            res = tucker(tensor, list(self.ranks), **opts).model
        else:
            raise ValueError(
                f"TuckerWeight: decomposition method must be 'hooi' or 'hosvd'; got {method!r}."
            )
        return (res.core, *res.factors)

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        core, *mats = factors
        n = core.ndim
        for mode, r in enumerate(self.ranks):
            shape = [1] * n
            shape[mode] = r
            core = core * keep_mask(r, p, core).reshape(shape)
        return (core, *mats)

    def reconstruction_flops(self) -> int:
        shape = list(self.ranks)
        total = 0
        mats = list(zip(self.layout.tensor_shape, self.ranks))
        order = sorted(range(len(mats)), key=lambda n: mats[n][0] / mats[n][1])
        for n in order:
            total += 2 * math.prod(shape) * mats[n][0]
            shape[n] = mats[n][0]
        return total

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
        """The exact error of the truncated HOSVD at every rank of :meth:`rank_family`.

        With the full orthonormal mode bases ``U_n`` (eigenvectors of each unfolding's Gram),
        the rank-``R`` HOSVD core is the leading ``R_0 x .. x R_{N-1}`` block of
        ``G = X x_n U_n^H``, so its kept energy is one entry of the prefix sums of ``|G|^2``
        along every mode. HOOI (what ``from_dense`` runs) can only do better, so this is a tight
        upper bound, unlike the sum-of-tails bound (which exceeds 1 at small ranks).
        """
        shape = layout.tensor_shape
        total = float(tensor.abs().pow(2).sum()) or 1.0
        energy = tensor
        for n in range(len(shape)):
            unfolding = energy.movedim(n, 0).reshape(shape[n], -1)
            basis = torch.linalg.eigh(unfolding @ unfolding.mH).eigenvectors.flip(1)
            energy = mode_dot(energy, basis.mH, n)
        energy = energy.abs().pow(2)
        for n in range(len(shape)):
            energy = energy.cumsum(n)
        dense = math.prod(shape)
        out = []
        for rank in cls.rank_family(layout, fixed_modes):
            params = cls.count_params(layout, rank)
            if params < dense:
                kept = float(energy[tuple(r - 1 for r in cast(tuple[int, ...], rank))])
                out.append(Candidate(rank, params, max(total - kept, 0.0) / total))
        return out

    # --- forwards --------------------------------------------------------------------------------
    def _matrix_orders(self, spec: TensorizedShape) -> tuple[list[int], list[int]]:
        shape, rank, n_out = self.layout.tensor_shape, self.ranks, len(spec.out_factors)
        ins = sorted(range(n_out, len(shape)), key=lambda n: rank[n] / shape[n])
        outs = sorted(range(n_out), key=lambda n: shape[n] / rank[n])
        return ins, outs

    def linear(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        spec: TensorizedShape,
    ) -> torch.Tensor:
        """Mode products of the input with the in-factors, the core as a
        ``prod(R_in) x prod(R_out)`` matrix, then the out-factors."""
        core, *mats = factors
        shape, rank = self.layout.tensor_shape, tuple(core.shape)
        n_out = len(spec.out_factors)
        batch = x.shape[0]
        ins, outs = self._matrix_orders(spec)
        t = x.reshape(batch, *shape[n_out:])
        for n in ins:  # contract i_n -> r_n (mode n - n_out + 1 of t)
            t = _mode_matmul(t, mats[n], n - n_out + 1)
        r_out, r_in = math.prod(rank[:n_out]), math.prod(rank[n_out:])
        z = t.reshape(batch, r_in) @ core.reshape(r_out, r_in).transpose(0, 1)
        t = z.reshape(batch, *rank[:n_out])
        for n in outs:
            t = _mode_matmul(t, mats[n].transpose(0, 1), n + 1)
        y = t.reshape(batch, -1)
        return y if bias is None else y + bias.to(y.dtype)

    def linear_flops(self, spec: TensorizedShape, batch: int) -> int:
        shape, rank, n_out = self.layout.tensor_shape, self.ranks, len(spec.out_factors)
        ins, outs = self._matrix_orders(spec)
        cur = list(shape[n_out:])
        fact = 0
        for n in ins:
            fact += 2 * batch * math.prod(cur) * rank[n]
            cur[n - n_out] = rank[n]
        fact += 2 * batch * math.prod(rank)
        cur = list(rank[:n_out])
        for n in outs:
            fact += 2 * batch * math.prod(cur) * shape[n]
            cur[n] = shape[n]
        return fact

    def linear_traffic(self, spec: TensorizedShape, batch: int) -> int:
        shape, rank, n_out = self.layout.tensor_shape, self.ranks, len(spec.out_factors)
        ins, outs = self._matrix_orders(spec)
        cur, fact = list(shape[n_out:]), 0
        for n in ins:
            cur[n - n_out] = rank[n]
            fact += batch * math.prod(cur)
        cur = list(rank[:n_out])
        for n in outs:
            cur[n] = shape[n]
            fact += batch * math.prod(cur)
        return fact

    def conv(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        """1x1 to ``R_in``, the core (times the spatial factors) as an ``R_in -> R_out``
        convolution, 1x1 to ``out``."""
        core, u_out, u_in, *spatial = factors
        kernel = core
        for j, u in enumerate(spatial):
            kernel = mode_dot(kernel, u, 2 + j)
        t = geometry.pointwise(x, u_in.transpose(0, 1))
        t = geometry.conv(t, kernel)
        return geometry.pointwise(t, u_out, bias)

    def conv_flops(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        batch, size, out = geometry.split(input_shape)
        r_out, r_in = self.ranks[0], self.ranks[1]
        n_in, n_out = math.prod(size), math.prod(out)
        k = math.prod(geometry.kernel_size)
        return (
            2
            * batch
            * (
                n_in * geometry.in_channels * r_in
                + n_out * r_out * (r_in * k + geometry.out_channels)
            )
        )

    def conv_traffic(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        batch, size, out = geometry.split(input_shape)
        return batch * (self.ranks[1] * math.prod(size) + self.ranks[0] * math.prod(out))

    def embedding_rows(
        self, factors: Sequence[torch.Tensor], idx: torch.Tensor, spec: TensorizedShape
    ) -> torch.Tensor:
        core, *mats = factors
        n_rows = len(spec.out_factors)
        rank = self.ranks
        digits = row_digits(idx, spec.out_factors)
        rows = mats[0][digits[0]]
        for a, digit in zip(mats[1:n_rows], digits[1:]):
            rows = (rows.unsqueeze(-1) * a[digit].unsqueeze(1)).flatten(1)
        r_rows, r_cols = math.prod(rank[:n_rows]), math.prod(rank[n_rows:])
        t = (rows @ core.reshape(r_rows, r_cols)).reshape(-1, *rank[n_rows:])
        for n, a in enumerate(mats[n_rows:]):
            t = mode_dot(t, a, n + 1)
        return t.reshape(idx.shape[0], -1)

    def embedding_flops(self, spec: TensorizedShape, n: int) -> int:
        n_rows = len(spec.out_factors)
        rank = self.ranks
        r_rows, r_cols = math.prod(rank[:n_rows]), math.prod(rank[n_rows:])
        fact = n * r_rows + 2 * n * r_rows * r_cols
        cur = list(rank[n_rows:])
        for j, d in enumerate(spec.in_factors):
            fact += 2 * n * math.prod(cur) * d
            cur[j] = d
        return fact
