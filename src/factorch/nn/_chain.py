"""Tensor-train and tensor-ring weight formats (parametrizations).

Cores ``G_k (r_k, I_k, r_{k+1})`` over the modes of ``layout.tensor_shape``:

* TT: ``T[i_0, ..., i_{N-1}] = G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]`` with
  ``r_0 = r_N = 1`` (Oseledets 2011). With the :meth:`TensorLayout.matrix_chain` layout
  (modes ``o_k i_k``) this is the TT-matrix of Novikov et al. (NeurIPS 2015).
* TR: the trace of the same product with ``r_0 = r_N`` (Zhao et al. 2016).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..decomp.internal import normalise_rank as _normalise_rank
from ..decomp.internal import tt_bounds as _tt_bounds
from ._weight import FactorizedWeight, gaussian, keep_mask, orthonormal

__all__ = ["TRWeight", "TTWeight", "chain_contract"]


def chain_contract(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(r_0, prod I, r_N)`` product of a chain of cores (first index slowest). Differentiable."""
    first = cores[0]
    acc = first.reshape(first.shape[0] * first.shape[1], first.shape[2])
    for c in cores[1:]:
        acc = (acc @ c.reshape(c.shape[0], -1)).reshape(-1, c.shape[2])
    return acc.reshape(first.shape[0], -1, cores[-1].shape[2])


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


class _ChainWeight(FactorizedWeight):
    ring = False

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        shape, r = self.layout.tensor_shape, self.rank
        return tuple((r[k], s, r[k + 1]) for k, s in enumerate(shape))

    def _random_factors(self, std, generator, dtype):
        shapes, n = self.factor_shapes, len(self.factor_shapes)
        if self.ring:
            s = (std**2 / math.prod(self.rank[:-1])) ** (1.0 / (2 * n))
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
        full = chain_contract(factors)
        if self.ring:
            full = torch.diagonal(full, dim1=0, dim2=2).sum(-1)
        return full.reshape(self.layout.tensor_shape)

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        out = list(factors)
        last = len(out) if self.ring else len(out) - 1
        for k in range(last):  # mask bond k+1 on the right of core k
            r = out[k].shape[2]
            out[k] = out[k] * keep_mask(r, p, out[k]).reshape(1, 1, r)
        return tuple(out)

    def reconstruction_flops(self) -> int:
        shape, r = self.layout.tensor_shape, self.rank
        total, rows = 0, r[0] * shape[0]
        for k in range(1, len(shape)):
            total += 2 * rows * r[k] * shape[k] * r[k + 1]
            rows *= shape[k]
        return total + (rows * r[0] if self.ring else 0)


class TTWeight(_ChainWeight):
    """Tensor-train weight: cores ``(r_k, I_k, r_{k+1})``, ``r_0 = r_N = 1``.

    Rank: an int (every internal bond, capped at ``min(prod(I_<k), prod(I_>=k))``) or ``N + 1``
    ints. From a dense weight by TT-SVD (:func:`factorch.decomp.tt_svd`, Oseledets 2011,
    quasi-optimal: ``||T - TT|| <= sqrt(N - 1) * best``); where an unfolding has lower rank than
    requested the cores are zero-padded so the parameter shapes always match ``rank``.
    """

    format = "tt"

    def _normalise_rank(self, rank: Any) -> tuple[int, ...]:
        name = type(self).__name__
        shape = self.layout.tensor_shape
        if len(shape) < 2:
            raise ValueError(f"{name}: a tensor train needs at least 2 modes; got {shape}.")
        out = tuple(_normalise_rank(shape, rank, "tt", name))  # type: ignore[arg-type]
        for k, (r, b) in enumerate(zip(out[1:-1], _tt_bounds(shape)), start=1):
            if r > b:
                raise ValueError(
                    f"{name}: rank[{k}] = {r} exceeds {b}, the largest useful rank of bond {k} "
                    f"of a {shape} tensor (the smaller product of the sizes on either side); "
                    f"got {out}."
                )
        return out

    def _decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ..decomp._tt import tt_svd

        res = tt_svd(tensor, list(self.rank), **self.decomposition).model
        return _pad_cores(res.cores, self.rank)


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
    """

    format = "tr"
    ring = True

    def _normalise_rank(self, rank: Any) -> tuple[int, ...]:
        name = type(self).__name__
        shape = self.layout.tensor_shape
        if len(shape) < 2:
            raise ValueError(f"{name}: a tensor ring needs at least 2 modes; got {shape}.")
        return tuple(_normalise_rank(shape, rank, "tr", name))  # type: ignore[arg-type]

    def _decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ..decomp._tr import tr_als, tr_svd

        shape, r = tensor.shape, self.rank
        n = len(shape)
        start = max(range(n), key=lambda k: shape[k])
        others = math.prod(shape) // shape[start]
        opts = dict(self.decomposition)
        svd_opts = {k: opts.pop(k) for k in ("method",) if k in opts}
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
