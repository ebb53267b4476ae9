"""Tensor-train and tensor-ring formats.

Cores ``G_k (r_k, I_k, r_{k+1})`` over the modes of ``layout.tensor_shape``:

* TT: ``T[i_0, ..., i_{N-1}] = G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]`` with
  ``r_0 = r_N = 1`` (Oseledets 2011). With the :meth:`TensorLayout.matrix_chain` layout
  (modes ``o_k i_k``) this is the TT-matrix of Novikov et al. (NeurIPS 2015).
* TR: the trace of the same product with ``r_0 = r_N`` (Zhao et al. 2016).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F

from ...decomp import tr_als, tr_svd, tt_svd
from ...decomp.internal import Rank, TRFamily, TTFamily, tt_bounds
from .._allocation import Candidate, sequential_tails
from .._spec import TensorizedShape, TensorLayout
from ._base import WeightFormat, gaussian, keep_mask, orthonormal, row_digits
from ._geometry import ConvGeometry, separable_conv_costs

__all__ = ["TRWeight", "TTWeight", "chain_contract"]


def chain_contract(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(r_0, prod I, r_N)`` product of a chain of cores (first index slowest). Differentiable.

    Args:
        cores: ``(r_k, I_k, r_{k+1})`` tensors, consecutive ranks matching.

    Returns:
        The ``(r_0, prod I, r_N)`` product.

    Raises:
        ValueError: no cores, a core that is not 3-way, or consecutive ranks that differ.

    Example:
        >>> chain_contract([torch.ones(1, 2, 3), torch.ones(3, 4, 1)]).shape
        torch.Size([1, 8, 1])
    """
    if len(cores) == 0:
        raise ValueError("chain_contract: needs at least one core; got none.")
    for k, c in enumerate(cores):
        if c.ndim != 3:
            raise ValueError(
                f"chain_contract: core {k} must be 3-way (r_k, I_k, r_k+1); got shape "
                f"{tuple(c.shape)}."
            )
        if k and c.shape[0] != cores[k - 1].shape[2]:
            raise ValueError(
                f"chain_contract: core {k} starts with rank {c.shape[0]} but core {k - 1} ends "
                f"with rank {cores[k - 1].shape[2]}."
            )
    first = cores[0]
    acc = first.reshape(first.shape[0] * first.shape[1], first.shape[2])
    for c in cores[1:]:
        acc = (acc @ c.reshape(c.shape[0], -1)).reshape(-1, c.shape[2])
    return acc.reshape(first.shape[0], -1, cores[-1].shape[2])


def ring_contract(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(I_0, prod I_1..)`` trace of the product of a ring of cores (first index slowest).

    Contracts cores ``1..N-1`` into ``M (r_1, prod I_1.., r_0)``, then closes the ring with one
    GEMM over the bond pair ``(r_0, r_1)``: ``G_0 (I_0, r_0 r_1) @ M (r_0 r_1, prod I_1..)``. The
    trace of the full ``(r_0, prod I, r_0)`` chain would write ``r_0^2`` times the tensor.
    Differentiable.
    """
    first, rest = cores[0], chain_contract(cores[1:])  # (r_0, I_0, r_1), (r_1, J, r_0)
    r0, i0, r1 = first.shape
    left = first.permute(1, 0, 2).reshape(i0, r0 * r1)
    right = rest.permute(2, 0, 1).reshape(r0 * r1, -1)
    return left @ right


def _pad_cores(cores: Sequence[torch.Tensor], ranks: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """Zero-pad cores to the requested bond ranks (the represented tensor is unchanged)."""
    out = []
    for k, c in enumerate(cores):
        want_l, want_r = ranks[k], ranks[k + 1]
        pad_l, pad_r = want_l - c.shape[0], want_r - c.shape[2]
        if pad_l or pad_r:
            c = F.pad(c, (0, pad_r, 0, 0, 0, pad_l))
        out.append(c)
    return tuple(out)


class _ChainWeight(WeightFormat):
    """Shared TT/TR machinery (``ring`` says which)."""

    ring: ClassVar[bool] = False
    family: ClassVar[TTFamily] = TTFamily()

    @property
    def ranks(self) -> tuple[int, ...]:
        return cast(tuple[int, ...], self.rank)

    @classmethod
    def matrix_layout(cls, spec: TensorizedShape) -> TensorLayout:
        """Cores ``(r_k, o_k i_k, r_{k+1})``: the TT-/TR-matrix."""
        return TensorLayout.matrix_chain(spec)

    @classmethod
    def kernel_layout(cls, weight_shape: Sequence[int]) -> TensorLayout:
        """The chain ``(in, k_1..k_d, out)``: 1x1, one convolution per axis, 1x1."""
        return TensorLayout.conv_chain(weight_shape)

    @classmethod
    def rank_family(cls, layout: TensorLayout, fixed_modes: Sequence[int] = ()) -> list[Rank]:
        return cls.family.members(layout.tensor_shape, frozenset())

    @classmethod
    def count_params(cls, layout: TensorLayout, rank: Rank) -> int:
        return cls.family.count(layout.tensor_shape, rank)

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        shape, r = self.layout.tensor_shape, self.ranks
        return tuple((r[k], s, r[k + 1]) for k, s in enumerate(shape))

    def random_factors(
        self, std: float, generator: torch.Generator | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, ...]:
        """TT: left-orthonormal cores ``0..N-2`` (the chain preserves norms) and a Gaussian last
        core with ``E||G_{N-1}||^2 = sigma^2 prod(I)``, the scale then spread evenly over the
        cores. TR (no norm-preserving gauge): i.i.d. Gaussian cores of variance ``s^2`` with
        ``E[W_a^2] = prod(r) s^(2N)``, i.e. ``s^(2N) = sigma^2 / prod(r)``."""
        shapes, n = self.factor_shapes, len(self.factor_shapes)
        if self.ring:
            s = (std**2 / math.prod(self.ranks[:-1])) ** (1.0 / (2 * n))
            return tuple(gaussian(sh, generator, dtype) * s for sh in shapes)
        cores = [
            orthonormal(a * i, b, generator, dtype).reshape(a, i, b) for a, i, b in shapes[:-1]
        ]
        last = gaussian(shapes[-1], generator, dtype)
        scale = std * math.sqrt(math.prod(self.layout.tensor_shape) / last.numel())
        cores.append(last)
        per_core = scale ** (1.0 / n)
        return tuple(c * per_core for c in cores)

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        if self.ring:
            return ring_contract(factors).reshape(self.layout.tensor_shape)
        return chain_contract(factors).reshape(self.layout.tensor_shape)

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        out = list(factors)
        last = len(out) if self.ring else len(out) - 1
        for k in range(last):  # mask bond k+1 on the right of core k
            r = out[k].shape[2]
            out[k] = out[k] * keep_mask(r, p, out[k]).reshape(1, 1, r)
        return tuple(out)

    def reconstruction_flops(self) -> int:
        shape, r = self.layout.tensor_shape, self.ranks
        first = 1 if self.ring else 0  # the ring contracts cores 1.. first (ring_contract)
        total, rows = 0, r[first] * shape[first]
        for k in range(first + 1, len(shape)):
            total += 2 * rows * r[k] * shape[k] * r[k + 1]
            rows *= shape[k]
        if self.ring:  # rows = r_1 prod(I_1..): the closing GEMM over the pair (r_0, r_1)
            total += 2 * shape[0] * r[0] * rows
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
        """TT: the TT-SVD bound ``sum_k tail_k(r_k)`` from each sequential unfolding (Oseledets
        2011). TR: the same with bond ``k`` allowed ``r^2`` (a ring of rank ``r`` has unfoldings of
        rank ``<= r^2``): a lower bound, so optimistic."""
        shape = layout.tensor_shape
        total = float(tensor.abs().pow(2).sum()) or 1.0
        tails, bounds = sequential_tails(tensor, total), tt_bounds(shape)
        dense = math.prod(shape)
        out = []
        for rank in cls.rank_family(layout):
            ranks = cast(tuple[int, ...], rank)
            if cls.ring:
                allowed = tuple(min(ranks[0] ** 2, b) for b in bounds)
            else:
                allowed = ranks[1:-1]
            params = cls.count_params(layout, rank)
            if params < dense:
                err2 = sum(tk[min(a, len(tk) - 1)] for tk, a in zip(tails, allowed))
                out.append(Candidate(rank, params, min(1.0, err2)))
        return out

    # --- linear ----------------------------------------------------------------------------------
    def linear(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        spec: TensorizedShape,
    ) -> torch.Tensor:
        """Contract the input one core at a time, never forming ``W`` (the ring index ``r_0``
        of the first core rides along as an output index and is traced out at the end)."""
        pairs = spec.pairs()
        batch = x.shape[0]
        t = x.reshape(batch, 1, pairs[0][1], -1)
        n = len(pairs)
        for k, core in enumerate(factors):
            i = pairs[k][1]
            lead = 1 if k == 0 else core.shape[0]
            g = core.reshape(lead, -1, i, core.shape[2])  # (r, o, i, s)
            t = torch.einsum("mrin,rois->mosn", t, g)
            if k + 1 < n:
                t = t.reshape(t.shape[0] * t.shape[1], t.shape[2], pairs[k + 1][1], -1)
        if self.ring:
            r0 = factors[0].shape[0]
            y = torch.diagonal(t.reshape(batch, r0, -1, r0), dim1=1, dim2=3).sum(-1)
        else:
            y = t.reshape(batch, -1)
        return y if bias is None else y + bias.to(y.dtype)

    def linear_flops(self, spec: TensorizedShape, batch: int) -> int:
        r = self.ranks
        m = batch * (r[0] if self.ring else 1)
        rest, fact = spec.in_features, 0
        for k, (o, i) in enumerate(spec.pairs()):
            rest //= i
            fact += 2 * m * r[k] * i * o * r[k + 1] * rest
            m *= o
        return fact

    def linear_traffic(self, spec: TensorizedShape, batch: int) -> int:
        r = self.ranks
        m, rest, fact = batch * (r[0] if self.ring else 1), spec.in_features, 0
        for k, (o, i) in enumerate(spec.pairs()):
            rest //= i
            m *= o
            fact += m * r[k + 1] * rest
        return fact

    # --- convolution -----------------------------------------------------------------------------
    def conv(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        """1x1 to ``r_0 r_1`` channels, one convolution per spatial axis (grouped by ``r_0`` for
        the ring), a 1x1 to ``out`` (which closes the ring)."""
        g_in, *spatial, g_out = factors
        r0 = g_in.shape[0]
        t = geometry.pointwise(x, g_in.permute(0, 2, 1).reshape(-1, geometry.in_channels))
        padded = geometry.native_padding() is None
        if padded:
            t = geometry.pad(t)
        for j, g in enumerate(spatial):
            w = g.permute(2, 0, 1)  # (r_b, r_a, k_j)
            if r0 > 1:
                w = w.repeat(r0, 1, 1)
            t = geometry.along(t, w, j, r0, padded)
        w_out = g_out.permute(1, 2, 0).reshape(geometry.out_channels, -1)
        return geometry.pointwise(t, w_out, bias)

    def _conv_costs(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> tuple[int, int]:
        r = self.ranks
        return separable_conv_costs(geometry, input_shape, r[0], r[1:-1], depthwise=False)

    def conv_flops(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        return self._conv_costs(geometry, input_shape)[0]

    def conv_traffic(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        return self._conv_costs(geometry, input_shape)[1]

    # --- embedding -------------------------------------------------------------------------------
    def embedding_rows(
        self, factors: Sequence[torch.Tensor], idx: torch.Tensor, spec: TensorizedShape
    ) -> torch.Tensor:
        """A row is the product of one slice per core,
        ``G_0[:, v_0, :, :] ... G_{d-1}[:, v_{d-1}, :, :]`` (Hrinchuk et al. 2020)."""
        pairs = spec.pairs()
        digits = row_digits(idx, tuple(v for v, _ in pairs))

        def gather(k: int) -> torch.Tensor:  # (n, r_k, d_k, r_{k+1})
            core, (v, d) = factors[k], pairs[k]
            sel = core.reshape(core.shape[0], v, d, core.shape[2])[:, digits[k]]
            return sel.permute(1, 0, 2, 3)

        t = gather(0)
        for k in range(1, len(pairs)):
            t = torch.einsum("nxar,nrbs->nxabs", t, gather(k)).flatten(2, 3)
        if self.ring:  # (n, r_0, D, r_0): close the ring
            return torch.diagonal(t, dim1=1, dim2=3).sum(-1)
        return t.reshape(t.shape[0], -1)

    def embedding_flops(self, spec: TensorizedShape, n: int) -> int:
        r = self.ranks
        fact, prefix = 0, 1
        for k, (_, d) in enumerate(spec.pairs()):
            if k:
                fact += 2 * n * r[0] * prefix * r[k] * d * r[k + 1]
            prefix *= d
        return fact


class TTWeight(_ChainWeight):
    """Tensor-train weight: cores ``(r_k, I_k, r_{k+1})``, ``r_0 = r_N = 1``.

    Rank: an int (every internal bond, capped at ``min(prod(I_<k), prod(I_>=k))``) or ``N + 1``
    ints. From a dense weight by TT-SVD (:func:`factorch.decomp.tt_svd`, Oseledets 2011,
    quasi-optimal: ``||T - TT|| <= sqrt(N - 1) * best``); where an unfolding has lower rank than
    requested the cores are zero-padded so the parameter shapes always match ``rank``. A linear
    layer is a TT-matrix (Novikov et al. 2015) contracted core by core; a convolution kernel is
    the chain ``(in, k_1..k_d, out)``.

    Args:
        layout: how the dense weight folds into the factorized tensor (e.g.
            ``TTWeight.matrix_layout(spec)`` for a Linear weight).
        rank: an int or ``N + 1`` ints (see above).
        decomposition: options for the fit from a dense weight (:mod:`factorch.decomp`).

    Raises:
        TypeError: ``layout`` not a :class:`TensorLayout`, ``decomposition`` not a mapping.
        ValueError: a ``rank`` that is not a positive int or a tuple of them, a tuple of the wrong
            length, or end ranks other than 1.

    Example:
        >>> spec = TensorizedShape((4, 2), (3, 2))  # an 8 x 6 weight
        >>> fmt = TTWeight(TTWeight.matrix_layout(spec), 2)
        >>> fmt.factor_shapes
        ((1, 12, 2), (2, 4, 1))
        >>> factors = fmt.init_factors(std=0.1, generator=torch.Generator().manual_seed(0))
        >>> fmt(*factors).shape  # the rebuilt dense weight
        torch.Size([8, 6])
    """

    format = "tt"
    family = TTFamily()

    @classmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> Rank:
        shape = layout.tensor_shape
        if len(shape) < 2:
            raise ValueError(f"{fn}: a tensor train needs at least 2 modes; got {shape}.")
        out = cast(tuple[int, ...], cls.family.normalise(shape, rank, fn))
        for k, (r, b) in enumerate(zip(out[1:-1], tt_bounds(shape)), start=1):
            if r > b:
                raise ValueError(
                    f"{fn}: rank[{k}] = {r} exceeds {b}, the largest useful rank of bond {k} "
                    f"of a {shape} tensor (the smaller product of the sizes on either side); "
                    f"got {out}."
                )
        return out

    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        res = tt_svd(tensor, list(self.ranks), **self.decomposition).model
        return _pad_cores(res.cores, self.ranks)


class TRWeight(_ChainWeight):
    """Tensor-ring weight: cores ``(r_k, I_k, r_{k+1})`` with ``r_0 = r_N``, trace of the product.

    Rank: an int (every bond) or ``N + 1`` ints. From a dense weight by TR-SVD
    (:func:`factorch.decomp.tr_svd`) started at the largest mode ``s`` when
    ``r_s r_{s+1} <= I_s`` allows it, refined by TR-ALS (:func:`factorch.decomp.tr_als`,
    ``max_iter``/``tol`` from ``decomposition``, default 300 / 1e-13): TR-SVD splits the first
    unfolding's rank ``r_s r_{s+1}`` in an arbitrary basis, so for three or more cores it is not
    exact even on an exact tensor ring, while ALS from it converges. Without a valid TR-SVD start,
    ALS starts at random. Where an unfolding is smaller than asked, the exact lower-rank TR-SVD
    is zero-padded to ``rank``.

    Args:
        layout: how the dense weight folds into the factorized tensor (e.g.
            ``TRWeight.matrix_layout(spec)`` for a Linear weight).
        rank: an int or ``N + 1`` ints (see above).
        decomposition: options for the fit from a dense weight (:mod:`factorch.decomp`).

    Raises:
        TypeError: ``layout`` not a :class:`TensorLayout`, ``decomposition`` not a mapping.
        ValueError: a ``rank`` that is not a positive int or a tuple of them, or a tuple of the
            wrong length (or different end ranks).

    Example:
        >>> spec = TensorizedShape((4, 2), (3, 2))  # an 8 x 6 weight
        >>> fmt = TRWeight(TRWeight.matrix_layout(spec), 2)
        >>> fmt.factor_shapes
        ((2, 12, 2), (2, 4, 2))
        >>> factors = fmt.init_factors(std=0.1, generator=torch.Generator().manual_seed(0))
        >>> fmt(*factors).shape  # the rebuilt dense weight
        torch.Size([8, 6])
    """

    format = "tr"
    ring = True
    family = TRFamily()

    @classmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> Rank:
        shape = layout.tensor_shape
        if len(shape) < 2:
            raise ValueError(f"{fn}: a tensor ring needs at least 2 modes; got {shape}.")
        return cls.family.normalise(shape, rank, fn)

    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shape, r = tensor.shape, self.ranks
        n = len(shape)
        start = max(range(n), key=lambda k: shape[k])
        others = math.prod(shape) // shape[start]
        opts = dict(self.decomposition)
        svd_opts = {k: opts.pop(k) for k in ("svd", "method") if k in opts}
        als_opts = {"max_iter": 300, "tol": 1e-13, **opts}
        init: Any = "random"
        if r[start] * r[start + 1] <= min(shape[start], others):
            first = tr_svd(tensor, list(r), start_mode=start, **svd_opts)
            if tuple(first.model.rank) == tuple(r):
                if first.errors[-1] < 1e-13 or n == 2:  # exact already (2 cores: always optimal)
                    return _pad_cores(first.model.cores, r)
                init = first.model
            else:  # an unfolding is smaller than asked: exact at lower rank, zero-pad
                return _pad_cores(first.model.cores, r)
        res = tr_als(tensor, list(r), init=init, **als_opts).model
        return _pad_cores(res.cores, r)
