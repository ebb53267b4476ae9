"""CP (CANDECOMP/PARAFAC) format: ``T = sum_r w_r a^(0)_r o ... o a^(N-1)_r``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F

from ...algebra.internal import khatri_rao
from ...decomp import cp
from ...decomp.internal import CPFamily, Rank
from .._allocation import Candidate, mode_tails, sequential_tails
from .._spec import TensorizedShape, TensorLayout
from ._base import WeightFormat, gaussian, int_rank, keep_mask, row_digits
from ._geometry import ConvGeometry, known_size, separable_conv_costs

__all__ = ["CPWeight"]

_FAMILY = CPFamily()


def _kr(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    return mats[0] if len(mats) == 1 else khatri_rao(list(mats))


def _balanced_split(shape: Sequence[int]) -> int:
    """The mode ``k`` (``1 <= k < N``) minimising ``max(prod(shape[:k]), prod(shape[k:]))``."""
    if len(shape) < 2:
        return len(shape)
    return min(
        range(1, len(shape)),
        key=lambda k: max(math.prod(shape[:k]), math.prod(shape[k:])),
    )


def _kr_products(shape: Sequence[int]) -> int:
    """Rows written while forming the Khatri--Rao product of factors with ``shape`` rows."""
    return sum(math.prod(shape[: k + 1]) for k in range(1, len(shape)))


SEQUENTIAL_SHARE = (2, 5)
"""``cp_sequential`` contracts mode by mode while its intermediates are at most this fraction
(2/5) of the Khatri--Rao products. Measured with ``benchmarks/bench_layers.py``'s CP layer
(1024 -> 1024 as 32 x 32, rank 812, fwd+bwd, one thread): mode by mode 4.6 ms against 6.2 ms at
12 rows, 10.0 against 5.4 at 14 (crossover at a share of 0.38-0.44; the previous share 1/2 took
the slower path at 13-16 rows: 10.7 ms against 8.0-9.2 at 16)."""


def cp_sequential(spec: TensorizedShape, batch: int) -> bool:
    """Contract mode by mode (no Khatri--Rao products) when its intermediates, of
    ``batch (I / i_q + O / o_p) R`` numbers, are at most :data:`SEQUENTIAL_SHARE` of the
    Khatri--Rao products' ``(I + O) R``: small batches, where forming the Khatri--Rao products
    would cost as much as the product. A symbolic batch (tracing with dynamic shapes) counts as
    large."""
    o_feat, i_feat = spec.out_features, spec.in_features
    last_in, last_out = spec.in_factors[-1], spec.out_factors[-1]
    num, den = SEQUENTIAL_SHARE
    seq = known_size(batch) * (i_feat // last_in + o_feat // last_out)
    return den * seq <= num * (i_feat + o_feat)


class CPWeight(WeightFormat):
    """CP (CANDECOMP/PARAFAC): ``T = sum_r w_r a^(0)_r o ... o a^(N-1)_r``.

    Factors: ``weights (R,)`` then ``A_n (I_n, R)`` per mode of ``layout.tensor_shape``. From a
    dense weight by CP-ALS (:func:`factorch.decomp.cp`, options from ``decomposition``); the
    unit-norm ALS factors are rescaled to equal column norms ``|w_r|^(1/N)`` (sign folded into
    ``A_0``) and ``weights`` set to 1, which balances gradients for later training. Random init
    also sets ``weights = 1``, each factor column a random unit vector times ``c`` with
    ``c^(2N) = sigma^2 prod(I) / R`` (``E||W||^2 = R c^(2N)``). A linear layer folds its features
    (``(o_1..o_p, i_1..i_q)``); a convolution kernel is CP'd as ``(out, in, k_1..k_d)``: a 1x1
    convolution to ``R`` channels, one depthwise convolution per spatial axis, a 1x1 to ``out``.
    References: Carroll & Chang (1970), Harshman (1970); as a convolution, Lebedev et al.
    (ICLR 2015).

    Args:
        layout: how the dense weight folds into the factorized tensor (e.g.
            ``CPWeight.matrix_layout(spec)`` for a Linear weight).
        rank: the number of components ``R`` (a positive int).
        decomposition: options for the fit from a dense weight (:mod:`factorch.decomp`).

    Raises:
        TypeError: ``layout`` not a :class:`TensorLayout`, ``decomposition`` not a mapping, or a
            non-int ``rank``.
        ValueError: a non-positive ``rank``.

    Example:
        >>> spec = TensorizedShape((4, 2), (3, 2))  # an 8 x 6 weight
        >>> fmt = CPWeight(CPWeight.matrix_layout(spec), 3)
        >>> fmt.factor_shapes
        ((3,), (4, 3), (2, 3), (3, 3), (2, 3))
        >>> factors = fmt.init_factors(std=0.1, generator=torch.Generator().manual_seed(0))
        >>> fmt(*factors).shape  # the rebuilt dense weight
        torch.Size([8, 6])
    """

    format = "cp"
    compress_options: ClassVar[Mapping[str, Any]] = {"tol": 1e-3}
    """``compress`` stops CP-ALS once a sweep improves the relative error by less than 1e-3
    (eight 512 x 512 layers at 10 %: about 10 sweeps instead of 200, error 0.89 instead of
    0.87 on random weights; pass ``decomposition={"tol": 1e-10}`` to fit to convergence)."""

    @property
    def r(self) -> int:
        return cast(int, self.rank)

    @classmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> Rank:
        value = int_rank(rank, fn)
        if value < 1:
            raise ValueError(f"{fn}: rank must be a positive int; got {value}.")
        return value

    @classmethod
    def rank_family(cls, layout: TensorLayout, fixed_modes: Sequence[int] = ()) -> list[Rank]:
        return _FAMILY.members(layout.tensor_shape, frozenset())

    @classmethod
    def count_params(cls, layout: TensorLayout, rank: Rank) -> int:
        return _FAMILY.count(layout.tensor_shape, rank)

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.r,), *((s, self.r) for s in self.layout.tensor_shape))

    def random_factors(
        self, std: float, generator: torch.Generator | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, ...]:
        shape = self.layout.tensor_shape
        c = (std**2 * math.prod(shape) / self.r) ** (1.0 / (2 * len(shape)))
        factors = []
        for s in shape:
            f = gaussian((s, self.r), generator, dtype)
            norms = torch.linalg.vector_norm(f, dim=0)
            factors.append(f / torch.where(norms > 0, norms, torch.ones_like(norms)) * c)
        return (torch.ones(self.r, dtype=dtype), *factors)

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        """``(KR(A_0..A_{k-1}) * w) KR(A_k..)^T``, split at the balanced mode ``k`` (one GEMM of
        ``2 numel R`` FLOPs on two Khatri--Rao products of about ``sqrt(numel) R`` numbers; a
        split after the first mode would write ``numel R / I_0``)."""
        weights, *mats = factors
        if len(mats) == 1:
            return mats[0] @ weights
        k = _balanced_split(self.layout.tensor_shape)
        left, right = _kr(mats[:k]) * weights, _kr(mats[k:])
        return (left @ right.transpose(0, 1)).reshape(self.layout.tensor_shape)

    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if tensor.ndim < 2:
            raise ValueError("CPWeight: CP needs a tensor with at least 2 modes.")
        opts = {"max_iter": 200, "tol": 1e-10, **self.decomposition}
        res = cp(tensor, self.r, **opts).model
        weights, factors = res.weights, list(res.factors)
        n = len(factors)
        scale = weights.abs().clamp_min(torch.finfo(weights.real.dtype).tiny) ** (1.0 / n)
        factors = [f * scale for f in factors]
        factors[0] = factors[0] * torch.sgn(weights + (weights == 0).to(weights.dtype))
        return (torch.ones_like(weights), *factors)

    def scale_factors(
        self, factors: Sequence[torch.Tensor], scale: float
    ) -> tuple[torch.Tensor, ...]:
        """The weights stay 1; each factor matrix takes ``scale ** (1 / N)``."""
        if scale == 1.0:
            return tuple(factors)
        weights, *mats = factors
        per = scale ** (1.0 / len(mats))
        return (weights, *(a * per for a in mats))

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        weights, *rest = factors
        return (weights * keep_mask(self.r, p, weights), *rest)

    # --- rank-one components ---------------------------------------------------------------------
    def component_magnitudes(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        weights, *mats = factors
        mag = weights.abs()
        for a in mats:
            mag = mag * torch.linalg.vector_norm(a, dim=0)
        return mag

    def component_penalty(
        self, factors: Sequence[torch.Tensor], factor_decay: float
    ) -> torch.Tensor:
        """``sum_r |w_r| + (factor_decay / 2) sum_n ||A_n||^2``."""
        weights, *mats = factors
        ridge = torch.stack([a.abs().pow(2).sum() for a in mats]).sum()
        return weights.abs().sum() + 0.5 * factor_decay * ridge

    def select_components(
        self, factors: Sequence[torch.Tensor], keep: torch.Tensor
    ) -> tuple[Rank, tuple[torch.Tensor, ...]]:
        weights, *mats = factors
        return int(keep.numel()), (weights[keep], *(a[:, keep] for a in mats))

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
        """``max_k tail_k(R)`` over the mode and sequential unfoldings: a lower bound (a rank-``R``
        CP tensor has every unfolding of rank ``<= R``), so optimistic."""
        shape = layout.tensor_shape
        total = float(tensor.abs().pow(2).sum()) or 1.0
        tails = sequential_tails(tensor, total) + mode_tails(
            tensor, total, range(1, len(shape) - 1)
        )
        dense = math.prod(shape)
        out = []
        for r in range(1, dense // (sum(shape) + 1) + 1):
            params = cls.count_params(layout, r)
            if params < dense:
                out.append(Candidate(r, params, max(tk[min(r, len(tk) - 1)] for tk in tails)))
        return out

    # --- linear ----------------------------------------------------------------------------------
    def linear(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        spec: TensorizedShape,
    ) -> torch.Tensor:
        """``((x KR_in) * w) KR_out^T`` with the Khatri--Rao products of the in/out factors, or
        mode by mode for small batches (when ``SEQUENTIAL_SHARE`` allows)."""
        weights, *mats = factors
        n_out = len(spec.out_factors)
        outs, ins = mats[:n_out], mats[n_out:]
        if not cp_sequential(spec, x.shape[0]):
            z = (x @ _kr(ins)) * weights
            return F.linear(z, _kr(outs), bias)
        batch, rank = x.shape[0], weights.shape[0]
        t = x.reshape(batch, -1, ins[-1].shape[0]) @ ins[-1]  # (B, i_1..i_{q-1}, R)
        for a in reversed(ins[:-1]):
            t = torch.einsum("bjir,ir->bjr", t.reshape(batch, -1, a.shape[0], rank), a)
        s = (t.reshape(batch, rank) * weights).unsqueeze(1)  # (B, 1, R)
        for a in outs[:-1]:
            s = (s.unsqueeze(2) * a).reshape(batch, -1, rank)  # (B, o_1..o_j, R)
        y = F.linear(s, outs[-1], None).reshape(batch, -1)
        return y if bias is None else y + bias

    def linear_flops(self, spec: TensorizedShape, batch: int) -> int:
        o_feat, i_feat = spec.out_features, spec.in_features
        return 2 * batch * self.r * (o_feat + i_feat) + self.r * (o_feat + i_feat)

    def linear_traffic(self, spec: TensorizedShape, batch: int) -> int:
        o_feat, i_feat = spec.out_features, spec.in_features
        if cp_sequential(spec, batch):
            last_in, last_out = spec.in_factors[-1], spec.out_factors[-1]
            return batch * self.r * (i_feat // last_in + o_feat // last_out + 1)
        return (i_feat + o_feat + batch) * self.r

    # --- convolution -----------------------------------------------------------------------------
    def conv(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        """1x1 to ``R`` channels, a depthwise convolution per spatial axis, 1x1 to ``out``."""
        weights, a_out, a_in, *spatial = factors
        rank = weights.shape[0]
        t = geometry.pointwise(x, a_in.transpose(0, 1))
        padded = geometry.native_padding() is None
        if padded:
            t = geometry.pad(t)
        for j, a in enumerate(spatial):
            t = geometry.along(t, a.transpose(0, 1).unsqueeze(1), j, rank, padded)
        return geometry.pointwise(t, a_out * weights, bias)

    def conv_flops(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        chans = [self.r] * (geometry.dims + 1)
        return separable_conv_costs(geometry, input_shape, 1, chans, depthwise=True)[0]

    def conv_traffic(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        chans = [self.r] * (geometry.dims + 1)
        return separable_conv_costs(geometry, input_shape, 1, chans, depthwise=True)[1]

    # --- embedding -------------------------------------------------------------------------------
    def embedding_rows(
        self, factors: Sequence[torch.Tensor], idx: torch.Tensor, spec: TensorizedShape
    ) -> torch.Tensor:
        weights, *mats = factors
        n_rows = len(spec.out_factors)
        rows = weights
        for a, digit in zip(mats[:n_rows], row_digits(idx, spec.out_factors)):
            rows = rows * a[digit]
        return rows @ _kr(mats[n_rows:]).transpose(0, 1)

    def embedding_flops(self, spec: TensorizedShape, n: int) -> int:
        dim = spec.in_features
        return n * self.r * len(spec.out_factors) + 2 * n * self.r * dim + self.r * dim

    def reconstruction_flops(self) -> int:
        shape = self.layout.tensor_shape
        k = _balanced_split(shape)
        kr = sum(_kr_products(part) for part in (shape[:k], shape[k:])) * self.r
        return kr + 2 * math.prod(shape) * self.r
