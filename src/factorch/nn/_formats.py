"""Low-rank matrix, CP and Tucker weight formats (parametrizations)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..algebra.internal import khatri_rao as _khatri_rao
from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import truncated_svd as _truncated_svd
from ..decomp.internal import normalise_rank as _normalise_rank
from ._weight import FactorizedWeight, gaussian, keep_mask, orthonormal

__all__ = ["CPWeight", "LowRankWeight", "TuckerWeight"]


class LowRankWeight(FactorizedWeight):
    """``T_(0) = U V^T``: the tensor's mode-0 unfolding ``(I_0, prod(I_1..))`` at rank ``R``.

    Factors: ``U (I_0, R)`` and ``V (prod(I_1..), R)``. From a dense weight by truncated SVD,
    split evenly: ``U = U_R S_R^(1/2)``, ``V = V_R S_R^(1/2)`` (Eckart--Young optimal).
    For a convolution kernel ``(out, in, k..)`` this is a ``k``-sized convolution to ``R``
    channels followed by a 1x1 convolution.
    """

    format = "lowrank"

    def _normalise_rank(self, rank: Any) -> int:
        name = type(self).__name__
        shape = self.layout.tensor_shape
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"{name}: rank must be a positive int; got {type(rank).__name__}.")
        full = min(shape[0], math.prod(shape[1:]))
        if not 1 <= rank <= full:
            raise ValueError(
                f"{name}: rank must be in [1, {full}] for a {shape[0]} x {math.prod(shape[1:])} "
                f"matrix; got {rank}."
            )
        return rank

    @property
    def rows(self) -> int:
        return self.layout.tensor_shape[0]

    @property
    def cols(self) -> int:
        return math.prod(self.layout.tensor_shape[1:])

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.rows, self.rank), (self.cols, self.rank))

    def _random_factors(self, std, generator, dtype):
        c = (std**2 * self.rows * self.cols / self.rank) ** 0.25
        u = orthonormal(self.rows, self.rank, generator, dtype) * c
        return u, orthonormal(self.cols, self.rank, generator, dtype) * c

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        u, v = factors
        return (u @ v.transpose(0, 1)).reshape(self.layout.tensor_shape)

    def _decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mat = tensor.reshape(self.rows, self.cols)
        method = self.decomposition.get("method", "full")
        u, s, vh = _truncated_svd(
            mat, self.rank, method, 10, 2, self.decomposition.get("generator")
        )
        root = s.sqrt().to(mat.dtype)
        return u * root, vh.transpose(0, 1) * root

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        u, v = factors
        return u * keep_mask(self.rank, p, u), v

    def reconstruction_flops(self) -> int:
        return 2 * self.rows * self.cols * self.rank


class CPWeight(FactorizedWeight):
    """CP (CANDECOMP/PARAFAC): ``T = sum_r w_r a^(0)_r o ... o a^(N-1)_r``.

    Factors: ``weights (R,)`` then ``A_n (I_n, R)`` per mode of ``layout.tensor_shape``. From a
    dense weight by CP-ALS (:func:`factorch.decomp.cp`, options from ``decomposition``); the
    unit-norm ALS factors are rescaled to equal column norms ``|w_r|^(1/N)`` (sign folded into
    ``A_0``) and ``weights`` set to 1, which balances gradients for later training. Random init
    also sets ``weights = 1``. References: Carroll & Chang (1970), Harshman (1970); as a
    convolution, Lebedev et al. (ICLR 2015).
    """

    format = "cp"

    def _normalise_rank(self, rank: Any) -> int:
        name = type(self).__name__
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"{name}: rank must be a positive int; got {type(rank).__name__}.")
        if rank < 1:
            raise ValueError(f"{name}: rank must be a positive int; got {rank}.")
        return rank

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.rank,), *((s, self.rank) for s in self.layout.tensor_shape))

    def _random_factors(self, std, generator, dtype):
        shape = self.layout.tensor_shape
        c = (std**2 * math.prod(shape) / self.rank) ** (1.0 / (2 * len(shape)))
        factors = []
        for s in shape:
            f = gaussian((s, self.rank), generator, dtype)
            norms = torch.linalg.vector_norm(f, dim=0)
            factors.append(f / torch.where(norms > 0, norms, torch.ones_like(norms)) * c)
        return (torch.ones(self.rank, dtype=dtype), *factors)

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        weights, first, *rest = factors
        if not rest:
            return first @ weights
        right = rest[0] if len(rest) == 1 else _khatri_rao(list(rest))
        return ((first * weights) @ right.transpose(0, 1)).reshape(self.layout.tensor_shape)

    def _decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ..decomp import cp  # deferred: decomp imports are heavier than nn needs at import

        opts = {"max_iter": 200, "tol": 1e-10, **self.decomposition}
        if tensor.ndim == 1:
            raise ValueError("CPWeight: CP needs a tensor with at least 2 modes.")
        res = cp(tensor, self.rank, **opts).model
        weights, factors = res.weights, list(res.factors)
        n = len(factors)
        scale = weights.abs().clamp_min(torch.finfo(weights.dtype).tiny) ** (1.0 / n)
        factors = [f * scale for f in factors]
        factors[0] = factors[0] * torch.sign(weights + (weights == 0).to(weights.dtype))
        return (torch.ones_like(weights), *factors)

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        weights, *rest = factors
        return (weights * keep_mask(self.rank, p, weights), *rest)

    def reconstruction_flops(self) -> int:
        shape = self.layout.tensor_shape
        kr = sum(math.prod(shape[1 : k + 1]) for k in range(2, len(shape))) * self.rank
        return kr + 2 * math.prod(shape) * self.rank


class TuckerWeight(FactorizedWeight):
    """Tucker: ``T = G x_0 U_0 x_1 ... x_{N-1} U_{N-1}``.

    Factors: ``core (R_0, ..., R_{N-1})`` then ``U_n (I_n, R_n)``. Rank: an int (capped at each
    mode size) or one int per mode. From a dense weight by HOOI (:func:`factorch.decomp.tucker`,
    default) or ST-HOSVD (``decomposition={"method": "hosvd"}``). A mode with ``R_n = I_n`` can
    keep an identity factor in spirit (as the spatial modes of a Tucker-2 convolution), but its
    factor is stored and trained like the others. Reference: Tucker (1966); as a convolution,
    Kim et al. (ICLR 2016).
    """

    format = "tucker"

    def _normalise_rank(self, rank: Any) -> tuple[int, ...]:
        name = type(self).__name__
        shape = self.layout.tensor_shape
        if isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1:
            rank = tuple(min(rank, s) for s in shape)
        out = tuple(_normalise_rank(shape, rank, "tucker", name))  # type: ignore[arg-type]
        for n, (r, s) in enumerate(zip(out, shape)):
            if r > s:
                raise ValueError(f"{name}: rank[{n}] = {r} exceeds the mode size {s}; got {out}.")
            others = math.prod(out[:n] + out[n + 1 :])
            if r > others:
                raise ValueError(
                    f"{name}: rank[{n}] = {r} exceeds the product {others} of the other ranks, "
                    f"which makes it redundant; got {out}."
                )
        return out

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        shape = self.layout.tensor_shape
        return (tuple(self.rank), *((s, r) for s, r in zip(shape, self.rank)))

    def _random_factors(self, std, generator, dtype):
        shape = self.layout.tensor_shape
        core_std = std * math.sqrt(math.prod(shape) / math.prod(self.rank))
        core = gaussian(tuple(self.rank), generator, dtype) * core_std
        return (core, *(orthonormal(s, r, generator, dtype) for s, r in zip(shape, self.rank)))

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        core, *mats = factors
        out = core
        # expand the mode with the smallest growth first to keep intermediates small
        order = sorted(range(len(mats)), key=lambda n: mats[n].shape[0] / mats[n].shape[1])
        for n in order:
            out = _mode_dot(out, mats[n], n)
        return out

    def _decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ..decomp._tucker import hosvd, tucker

        opts = dict(self.decomposition)
        method = opts.pop("method", "hooi")
        if method == "hosvd":
            res = hosvd(tensor, list(self.rank), **opts).model
        elif method == "hooi":
            opts = {"max_iter": 20, "tol": 1e-10, **opts}
            res = tucker(tensor, list(self.rank), **opts).model
        else:
            raise ValueError(
                f"TuckerWeight: decomposition method must be 'hooi' or 'hosvd'; got {method!r}."
            )
        return (res.core, *res.factors)

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        core, *mats = factors
        n = core.ndim
        for mode, r in enumerate(self.rank):
            shape = [1] * n
            shape[mode] = r
            core = core * keep_mask(r, p, core).reshape(shape)
        return (core, *mats)

    def reconstruction_flops(self) -> int:
        shape = list(self.rank)
        total = 0
        mats = list(zip(self.layout.tensor_shape, self.rank))
        order = sorted(range(len(mats)), key=lambda n: mats[n][0] / mats[n][1])
        for n in order:
            total += 2 * math.prod(shape) * mats[n][0]
            shape[n] = mats[n][0]
        return total
