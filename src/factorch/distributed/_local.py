"""What a rank computes on its own block: partial MTTKRPs, norms and residual terms.

:class:`DenseLocal` computes the MTTKRPs of one sweep from the two-pass dimension tree of
:func:`factorch.decomp.cp` (two reads of the block per sweep, no Khatri--Rao product);
:class:`SparseLocal` with the sparse MTTKRP of :func:`factorch.algebra.sparse_mttkrp` on a
:class:`~factorch.algebra.SparseLayout` built once. Both return rows for the whole chunk of the
mode (``(rows of the chunk, R)``); rows the block does not reach are zero.
"""

from __future__ import annotations

import torch

from ..algebra.internal import SparseLayout
from ..algebra.internal import sparse_mttkrp as sparse_mttkrp_kernel
from ..decomp.internal import CPState, exact_error, mttkrp_from_partial, tree_partial
from ._shard import LocalCoordinates

__all__ = ["DenseLocal", "LocalData", "SparseLocal"]

_CHUNK_ELEMENTS = 1 << 20


class DenseLocal:
    """A dense block (already scaled and in the working dtype)."""

    def __init__(self, block: torch.Tensor) -> None:
        self.x = block.contiguous()
        self.shape = tuple(block.shape)
        self._partial: torch.Tensor | None = None
        self._modes: range = range(0)

    @property
    def empty(self) -> bool:
        return self.x.numel() == 0

    def touched(self, mode: int) -> torch.Tensor:
        """Every row of the chunk, unless the block is empty (then none)."""
        return torch.full((self.shape[mode],), not self.empty, dtype=torch.bool)

    def sq_norm(self) -> float:
        return float(torch.sum(self.x * self.x)) if not self.empty else 0.0

    def peak(self) -> float:
        if self.empty:
            return 0.0
        low, high = torch.aminmax(self.x)
        return max(-float(low), float(high))

    def mttkrp(self, factors: list[torch.Tensor], mode: int) -> torch.Tensor:
        """Partial MTTKRP of ``mode``; must be called for the modes in order within a sweep
        (the left half's partial is formed at mode 0, the right half's at mode ``ceil(N/2)``,
        each from the factors current at that moment, as in the single-process sweep)."""
        rank = factors[0].shape[1]
        if self.empty:
            return torch.zeros(self.shape[mode], rank, dtype=self.x.dtype, device=self.x.device)
        n = self.x.ndim
        half = (n + 1) // 2
        if mode == 0:
            self._partial = tree_partial(self.x, factors, range(half, n))
            self._modes = range(half)
        elif mode == half:
            self._partial = tree_partial(self.x, factors, range(half))
            self._modes = range(half, n)
        if self._partial is None:
            raise RuntimeError("DenseLocal.mttkrp: modes must be visited in order from 0.")
        return mttkrp_from_partial(self._partial, factors, self._modes, mode)

    def residual_sq(self, weights: torch.Tensor, factors: list[torch.Tensor]) -> float:
        """``||X_block - M_block||^2`` (the model restricted to the block), summed blockwise."""
        if self.empty:
            return 0.0
        err, _ = exact_error(self.x, CPState(weights, list(factors), []), 1.0)
        return err * err


class SparseLocal:
    """The nonzeros of a block (already scaled and in the working dtype)."""

    def __init__(self, coords: LocalCoordinates) -> None:
        self.coords = coords
        self.shape = coords.shape
        self.nnz = int(coords.values.numel())
        self.layout = SparseLayout.build(coords) if self.nnz else None

    @property
    def empty(self) -> bool:
        return self.nnz == 0

    def touched(self, mode: int) -> torch.Tensor:
        if self.empty:
            return torch.zeros(self.shape[mode], dtype=torch.bool)
        counts = torch.bincount(self.coords.indices[mode].long(), minlength=self.shape[mode])
        return (counts > 0).cpu()

    def sq_norm(self) -> float:
        v = self.coords.values
        return float(torch.sum(v * v)) if not self.empty else 0.0

    def peak(self) -> float:
        if self.empty:
            return 0.0
        low, high = torch.aminmax(self.coords.values)
        return max(-float(low), float(high))

    def mttkrp(self, factors: list[torch.Tensor], mode: int) -> torch.Tensor:
        rank = factors[0].shape[1]
        if self.layout is None:
            v = self.coords.values
            return torch.zeros(self.shape[mode], rank, dtype=v.dtype, device=v.device)
        return sparse_mttkrp_kernel(self.layout, factors, mode)

    def inner64(self, factors: list[torch.Tensor]) -> torch.Tensor:
        """``(R,)`` float64: ``sum_p x_p prod_n A_n[i_n(p), r]`` over the block's nonzeros."""
        rank = factors[0].shape[1]
        out = torch.zeros(rank, dtype=torch.float64, device=self.coords.values.device)
        if self.empty:
            return out
        idx = self.coords.indices
        vals = self.coords.values.double()
        wide = [f.double() for f in factors]
        step = max(256, _CHUNK_ELEMENTS // max(rank, 1))
        for s in range(0, self.nnz, step):
            e = min(self.nnz, s + step)
            prod = wide[0].index_select(0, idx[0, s:e].long())
            for n in range(1, len(wide)):
                prod.mul_(wide[n].index_select(0, idx[n, s:e].long()))
            out += vals[s:e] @ prod
        return out


LocalData = DenseLocal | SparseLocal
