"""The piece of a tensor one rank holds: a dense block or the nonzeros of a block.

A shard is a value (frozen) that knows its :class:`~factorch.distributed.ShardLayout` and the rank
it belongs to, and checks on creation that its data is that rank's block:

* :class:`DenseShard`: the dense sub-tensor ``X[b_0 : e_0, ..., b_{N-1} : e_{N-1}]`` of the block;
* :class:`SparseShard`: the nonzeros whose coordinates fall in the block, stored with
  coordinates *relative to the block* (int32 when the block allows it: 16 bytes per nonzero for a
  3-way float32 tensor), sorted and free of duplicates.

Shards are built by each rank from what it has: the full tensor (``from_full``, handy for tests
and small data), its own block (the constructors), or, for sparse data, any subset of the
nonzeros with :func:`~factorch.distributed.redistribute`, a collective that balances a layout
and moves every nonzero to its rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import as_tensor
from ..tensors import SparseTensor
from ._layout import ShardLayout

__all__ = ["DenseShard", "LocalCoordinates", "SparseShard"]

_INT32_MAX = 2**31 - 1


def _check_rank(layout: object, rank: object, cls: str) -> int:
    if not isinstance(layout, ShardLayout):
        raise TypeError(f"{cls}: layout must be a ShardLayout; got {type(layout).__name__}.")
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"{cls}: rank must be an int; got {type(rank).__name__}.")
    if not 0 <= rank < layout.world_size:
        raise ValueError(
            f"{cls}: rank must be in [0, {layout.world_size - 1}] for a layout of "
            f"{layout.world_size} ranks; got {rank}."
        )
    return rank


@dataclass(frozen=True, eq=False)
class DenseShard:
    """The dense block of a tensor that rank ``rank`` holds under ``layout``.

    Attributes:
        local: the block, of shape ``layout.block_shape(rank)`` (a dimension may be 0 for an
            empty chunk); real floating, finite.
        layout: the layout every rank of the job shares.
        rank: the rank this block belongs to.

    Raises (on creation): ``TypeError`` for a non-floating or complex block, ``ValueError`` for
    a block of the wrong shape or with NaN/Inf.

    Raises:
        TypeError: a ``layout`` that is not a :class:`ShardLayout`, a non-int ``rank``, or a local
            block that is not a real floating tensor.
        ValueError: a ``rank`` outside the layout, a block of the wrong shape, or NaN/Inf entries.

    Example:
        >>> x = torch.arange(12.0, dtype=torch.float64).reshape(4, 3)
        >>> lay = ShardLayout.even(x.shape, (2, 1))
        >>> DenseShard.from_full(x, lay, 1).local.tolist()
        [[6.0, 7.0, 8.0], [9.0, 10.0, 11.0]]
    """

    local: torch.Tensor
    layout: ShardLayout
    rank: int

    def __post_init__(self) -> None:
        cls = "DenseShard"
        rank = _check_rank(self.layout, self.rank, cls)
        local = as_tensor(self.local, cls, "local").detach()
        if not local.is_floating_point():
            raise TypeError(f"{cls}: local must be a real floating tensor; got {local.dtype}.")
        want = self.layout.block_shape(rank)
        if tuple(local.shape) != want:
            raise ValueError(
                f"{cls}: rank {rank}'s block under this layout has shape {want}; got local of "
                f"shape {tuple(local.shape)}. Slice it with layout.block({rank})."
            )
        if local.numel() and not bool(torch.isfinite(local).all()):
            raise ValueError(f"{cls}: local contains NaN or Inf entries; data must be finite.")
        object.__setattr__(self, "local", local)

    @classmethod
    def from_full(cls, tensor: torch.Tensor, layout: ShardLayout, rank: int) -> DenseShard:
        """Rank ``rank``'s block of the full ``tensor`` (a view when possible, no copy)."""
        fn = "DenseShard.from_full"
        x = as_tensor(tensor, fn)
        _check_rank(layout, rank, fn)
        if not x.is_floating_point():
            raise TypeError(f"{fn}: tensor must be a real floating tensor; got {x.dtype}.")
        if tuple(x.shape) != layout.shape:
            raise ValueError(
                f"{fn}: tensor has shape {tuple(x.shape)} but the layout is for {layout.shape}."
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{fn}: tensor contains NaN or Inf entries; data must be finite.")
        index = tuple(slice(s, e) for s, e in layout.block(rank))
        return cls(x[index], layout, rank)

    @property
    def shape(self) -> tuple[int, ...]:
        """The global shape."""
        return self.layout.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.local.dtype

    @property
    def device(self) -> torch.device:
        return self.local.device


@dataclass(frozen=True)
class LocalCoordinates:
    """Block-relative coordinates of a shard, as the sparse kernels read them (``indices``,
    ``values``, ``shape``: the :class:`~factorch.algebra.SparseCoordinates` protocol)."""

    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class SparseShard:
    """The nonzeros of a sparse tensor that fall in rank ``rank``'s block under ``layout``.

    Attributes:
        indices: ``(N, nnz)`` coordinates relative to the block's start (int32 when the block's
            sizes allow, else int64), sorted lexicographically, no duplicates.
        values: ``(nnz,)`` real floating values, finite.
        layout: the layout every rank of the job shares.
        rank: the rank this block belongs to.

    Raises (on creation): ``TypeError`` for wrong types, ``IndexError`` for a coordinate outside
    the block, ``ValueError`` for NaN/Inf values or repeated coordinates with different values.
    ``nnz = 0`` (an empty block) is allowed.

    Raises:
        TypeError: a ``layout`` that is not a :class:`ShardLayout`, a non-int ``rank``, or indices
            or values of the wrong type.
        ValueError: a ``rank`` outside the layout, or indices and values that do not fit together.
        IndexError: an entry outside this rank's block.

    Example:
        >>> sp = SparseTensor.from_dense(torch.eye(4, dtype=torch.float64))
        >>> lay = ShardLayout.even((4, 4), (2, 1))
        >>> SparseShard.from_full(sp, lay, 1).global_indices().tolist()
        [[2, 3], [2, 3]]
    """

    indices: torch.Tensor
    values: torch.Tensor
    layout: ShardLayout
    rank: int

    def __post_init__(self) -> None:
        cls = "SparseShard"
        rank = _check_rank(self.layout, self.rank, cls)
        block = self.layout.block_shape(rank)
        idx, vals = self.indices, self.values
        if not isinstance(idx, torch.Tensor) or not isinstance(vals, torch.Tensor):
            raise TypeError(f"{cls}: indices and values must be torch tensors.")
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"{cls}: indices must be an integer tensor; got {idx.dtype}.")
        if not vals.is_floating_point():
            raise TypeError(f"{cls}: values must be a real floating tensor; got {vals.dtype}.")
        if idx.ndim != 2 or idx.shape[0] != len(block) or vals.shape != (idx.shape[1],):
            raise ValueError(
                f"{cls}: indices must be ({len(block)}, nnz) and values (nnz,); got "
                f"{tuple(idx.shape)} and {tuple(vals.shape)}."
            )
        if vals.numel() == 0:
            dtype = torch.int32 if max(block, default=0) <= _INT32_MAX else torch.int64
            object.__setattr__(self, "indices", idx.to(dtype).reshape(len(block), 0))
            object.__setattr__(self, "values", vals.detach())
            return
        if bool((idx < 0).any()) or any(int(idx[n].max()) >= block[n] for n in range(len(block))):
            raise IndexError(
                f"{cls}: coordinates must lie in rank {rank}'s block of shape {block} (relative "
                f"to its start {tuple(s for s, _ in self.layout.block(rank))}); use "
                "SparseShard.from_full or redistribute to select them."
            )
        canon = SparseTensor.from_coo(idx, vals.detach(), block)
        object.__setattr__(self, "indices", canon.indices)
        object.__setattr__(self, "values", canon.values)

    @classmethod
    def from_full(cls, tensor: SparseTensor, layout: ShardLayout, rank: int) -> SparseShard:
        """The nonzeros of ``tensor`` in rank ``rank``'s block."""
        fn = "SparseShard.from_full"
        if not isinstance(tensor, SparseTensor):
            raise TypeError(f"{fn}: tensor must be a SparseTensor; got {type(tensor).__name__}.")
        if tensor.shape != layout.shape:
            raise ValueError(
                f"{fn}: tensor has shape {tensor.shape} but the layout is for {layout.shape}."
            )
        _check_rank(layout, rank, fn)
        return cls.from_global(tensor.indices, tensor.values, layout, rank, select=True)

    @classmethod
    def from_global(
        cls,
        indices: torch.Tensor,
        values: torch.Tensor,
        layout: ShardLayout,
        rank: int,
        *,
        select: bool = False,
    ) -> SparseShard:
        """From global coordinates ``(N, nnz)``: all must lie in the block, or with
        ``select=True`` those outside it are dropped."""
        idx = indices.to(torch.int64)
        if select:
            keep = layout.locate(idx) == rank
            idx, values = idx[:, keep], values[keep]
        start = torch.tensor([s for s, _ in layout.block(rank)], dtype=torch.int64)
        local = idx - start.to(idx.device)[:, None]
        block = layout.block_shape(rank)
        if max(block, default=0) <= _INT32_MAX:
            local = local.to(torch.int32)
        return cls(local, values, layout, rank)

    @property
    def shape(self) -> tuple[int, ...]:
        """The global shape."""
        return self.layout.shape

    @property
    def nnz(self) -> int:
        return int(self.values.numel())

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    def global_indices(self) -> torch.Tensor:
        """``(N, nnz)`` int64 global coordinates."""
        start = torch.tensor([s for s, _ in self.layout.block(self.rank)], dtype=torch.int64)
        return self.indices.to(torch.int64) + start.to(self.indices.device)[:, None]

    def local(self) -> LocalCoordinates:
        """The block-relative coordinates for the sparse kernels."""
        return LocalCoordinates(self.indices, self.values, self.layout.block_shape(self.rank))
