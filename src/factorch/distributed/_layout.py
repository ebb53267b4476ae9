"""How a tensor is split across ranks: a grid of per-mode slabs (SPLATT's medium-grained layout).

The ranks form a grid ``p_0 x ... x p_{N-1}`` (``prod p_n`` = number of ranks). Each mode's index
range is cut into ``p_n`` contiguous *chunks*; rank ``(c_0, ..., c_{N-1})`` (row-major: the last
grid coordinate varies fastest) holds the block of the tensor whose mode-``n`` indices lie in
chunk ``c_n`` -- a dense sub-block, or the nonzeros that fall in it. The ranks whose coordinate in
mode ``n`` is ``c`` form the *layer* ``(n, c)``: they all read factor rows of chunk ``c`` of mode
``n``, and only they exchange those rows.

Special cases: ``p_n = 1`` for every mode but one is a one-dimensional ("coarse-grained") split
along that mode; ``grid = (p, 1, ..., 1)`` with a dense tensor is the split along mode 0 that
distributed HOSVD expects.

Chunks of a dense tensor have equal sizes (the first ``I_n mod p_n`` chunks one row longer); for
a sparse tensor they are balanced by nonzero count (:meth:`ShardLayout.balanced`): every layer
then holds about ``nnz / p_n`` nonzeros, although the blocks themselves can differ (the
intersection of balanced slabs is not balanced in general; :meth:`ShardLayout.block_counts`
reports it). A mode may have more chunks than indices: the extra chunks are empty and the ranks
holding them get empty blocks.

The grid is chosen like SPLATT's default (Smith and Karypis, "A medium-grained algorithm for
distributed sparse tensor factorization", IPDPS 2016): the prime factors of the number of ranks,
largest first, each go to the mode whose chunks are currently the longest, which keeps the rows a
layer shares, and so the communication ``O(sum_n I_n R / p_n)``, small.

Every rank must use the same layout; :attr:`ShardLayout.fingerprint` is what the ranks compare
before any distributed computation starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_positive_int

__all__ = ["ShardLayout", "choose_grid"]


def _prime_factors(n: int) -> list[int]:
    out, f = [], 2
    while f * f <= n:
        while n % f == 0:
            out.append(f)
            n //= f
        f += 1
    if n > 1:
        out.append(n)
    return sorted(out, reverse=True)


def choose_grid(shape: Sequence[int], world_size: int) -> tuple[int, ...]:
    """The default grid for ``world_size`` ranks: each prime factor of ``world_size`` (largest
    first) goes to the mode with the longest chunks ``I_n / p_n`` (ties: the lower mode).

    Args:
        shape: the global tensor shape.
        world_size: the number of ranks.

    Returns:
        Chunks per mode, whose product is ``world_size``.

    Raises:
        TypeError: a ``world_size`` that is not an int.
        ValueError: a ``world_size`` below 1, or a bad shape.

    Example:
        >>> choose_grid((1000, 10, 800), 4)
        (2, 1, 2)
    """
    fn = "choose_grid"
    world_size = check_positive_int(world_size, fn, "world_size")
    sizes = list(_check_shape(shape, fn))
    grid = [1] * len(sizes)
    for f in _prime_factors(world_size):
        mode = max(range(len(sizes)), key=lambda m: (sizes[m] / grid[m], -m))
        grid[mode] *= f
    return tuple(grid)


def _even_bounds(size: int, parts: int) -> tuple[int, ...]:
    base, extra = divmod(size, parts)
    bounds = [0]
    for c in range(parts):
        bounds.append(bounds[-1] + base + (1 if c < extra else 0))
    return tuple(bounds)


def _balanced_bounds(counts: torch.Tensor, parts: int) -> tuple[int, ...]:
    """Chunk boundaries whose chunks hold about ``sum(counts) / parts`` entries each.

    Boundary ``k`` is the first slice at which the running count reaches ``k / parts`` of the
    total (a slice is never split, so one huge slice makes its chunk heavy and may leave others
    empty); boundaries never decrease.
    """
    size = counts.numel()
    total = int(counts.sum())
    if total == 0:
        return _even_bounds(size, parts)
    cum = torch.cumsum(counts.to(torch.int64), 0)
    targets = torch.tensor([math.ceil(k * total / parts) for k in range(1, parts)], dtype=cum.dtype)
    inner = (torch.searchsorted(cum, targets) + 1).clamp(max=size).tolist()
    bounds = [0]
    for b in inner:
        bounds.append(max(bounds[-1], int(b)))
    bounds.append(size)
    return tuple(bounds)


@dataclass(frozen=True)
class ShardLayout:
    """A grid of per-mode chunks that assigns every block of a tensor to one rank.

    Attributes:
        shape: the global tensor shape ``(I_0, ..., I_{N-1})``.
        grid: chunks per mode ``(p_0, ..., p_{N-1})``; the layout has ``prod(grid)`` ranks.
        bounds: per mode, the ``p_n + 1`` chunk boundaries ``0 = b_0 <= ... <= b_{p_n} = I_n``.

    Immutable and checked on creation (``ValueError`` naming the bad entry). Build one with
    :meth:`even` (dense data), :meth:`balanced` (sparse data, from per-slice nonzero counts) or
    :meth:`for_sparse` / :meth:`for_dense`; every rank of a job must hold an equal layout (its
    :attr:`fingerprint` is compared before a distributed solve starts).

    Raises:
        ValueError: a shape that is not positive ints, a grid without one positive int per mode,
            or bounds that do not split each mode from 0 to its size.

    Example:
        >>> lay = ShardLayout.even((5, 4), (2, 1))
        >>> lay.bounds, lay.block(1)
        (((0, 3, 5), (0, 4)), ((3, 5), (0, 4)))
    """

    shape: tuple[int, ...]
    grid: tuple[int, ...]
    bounds: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        fn = "ShardLayout"
        shape = tuple(self.shape)
        grid = tuple(self.grid)
        bounds = tuple(tuple(b) for b in self.bounds)
        if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(
                f"{fn}: shape must be a non-empty tuple of positive ints; got {shape}."
            )
        if len(grid) != len(shape) or any(
            isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in grid
        ):
            raise ValueError(
                f"{fn}: grid must hold one positive int per mode ({len(shape)}); got {grid}."
            )
        if len(bounds) != len(shape):
            raise ValueError(f"{fn}: bounds must hold one tuple per mode; got {len(bounds)}.")
        for n, (b, p, size) in enumerate(zip(bounds, grid, shape)):
            ok = len(b) == p + 1 and b[0] == 0 and b[-1] == size
            if not ok or any(int(x) > int(y) for x, y in itertools.pairwise(b)):
                raise ValueError(
                    f"{fn}: bounds[{n}] must be {p + 1} non-decreasing ints from 0 to {size}; "
                    f"got {b}."
                )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "bounds", tuple(tuple(int(x) for x in b) for b in bounds))

    # --- constructors ------------------------------------------------------------------------
    @classmethod
    def even(cls, shape: Sequence[int], grid: Sequence[int]) -> ShardLayout:
        """Chunks of equal length (the first ``I_n mod p_n`` one longer): dense tensors."""
        shape_t, grid_t = _check_shape_grid(shape, grid, "ShardLayout.even")
        return cls(shape_t, grid_t, tuple(_even_bounds(s, p) for s, p in zip(shape_t, grid_t)))

    @classmethod
    def balanced(
        cls, shape: Sequence[int], grid: Sequence[int], counts: Sequence[torch.Tensor]
    ) -> ShardLayout:
        """Chunks holding about equal numbers of nonzeros: ``counts[n]`` is the ``(I_n,)``
        number of nonzeros in each mode-``n`` slice (:meth:`SparseTensor.counts`, or its sum
        over ranks when every rank holds some of the nonzeros)."""
        fn = "ShardLayout.balanced"
        shape_t, grid_t = _check_shape_grid(shape, grid, fn)
        if (
            isinstance(counts, torch.Tensor)
            or len(counts) != len(shape_t)
            or any(
                not isinstance(c, torch.Tensor) or c.is_floating_point() or c.shape != (s,)
                for c, s in zip(counts, shape_t)
            )
        ):
            raise ValueError(
                f"{fn}: counts must be one integer (I_n,) tensor per mode of {shape_t} (e.g. "
                "[tensor.counts(n) for n in range(tensor.ndim)])."
            )
        if any(bool((c < 0).any()) for c in counts):
            raise ValueError(f"{fn}: counts must be non-negative.")
        bounds = tuple(_balanced_bounds(c.cpu(), p) for c, p in zip(counts, grid_t))
        return cls(shape_t, grid_t, bounds)

    @classmethod
    def for_dense(
        cls, shape: Sequence[int], world_size: int, *, grid: Sequence[int] | None = None
    ) -> ShardLayout:
        """:meth:`even` chunks on ``grid`` (default :func:`choose_grid`)."""
        fn = "ShardLayout.for_dense"
        shape_t = _check_shape(shape, fn)
        grid_t = choose_grid(shape_t, world_size) if grid is None else tuple(grid)
        _check_grid_size(grid_t, world_size, fn)
        return cls.even(shape_t, grid_t)

    @classmethod
    def for_sparse(
        cls,
        shape: Sequence[int],
        counts: Sequence[torch.Tensor],
        world_size: int,
        *,
        grid: Sequence[int] | None = None,
    ) -> ShardLayout:
        """:meth:`balanced` chunks on ``grid`` (default :func:`choose_grid`)."""
        fn = "ShardLayout.for_sparse"
        shape_t = _check_shape(shape, fn)
        grid_t = choose_grid(shape_t, world_size) if grid is None else tuple(grid)
        _check_grid_size(grid_t, world_size, fn)
        return cls.balanced(shape_t, grid_t, counts)

    # --- queries -----------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def world_size(self) -> int:
        """Number of ranks (blocks) of the layout."""
        return math.prod(self.grid)

    @property
    def fingerprint(self) -> str:
        """A short digest of shape, grid and bounds; equal layouts have equal fingerprints."""
        text = json.dumps([self.shape, self.grid, self.bounds], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def coords(self, rank: int) -> tuple[int, ...]:
        """Grid coordinates of ``rank`` (row-major: the last mode varies fastest)."""
        if not 0 <= rank < self.world_size:
            raise IndexError(
                f"ShardLayout.coords: rank must be in [0, {self.world_size - 1}]; got {rank}."
            )
        out = []
        for p in reversed(self.grid):
            rank, c = divmod(rank, p)
            out.append(c)
        return tuple(reversed(out))

    def rank_of(self, coords: Sequence[int]) -> int:
        """The rank at grid coordinates ``coords``."""
        rank = 0
        for c, p in zip(coords, self.grid):
            rank = rank * p + int(c)
        return rank

    def chunk(self, mode: int, c: int) -> tuple[int, int]:
        """``(start, stop)`` of chunk ``c`` of ``mode``."""
        b = self.bounds[mode]
        return b[c], b[c + 1]

    def block(self, rank: int) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` per mode of the block ``rank`` holds."""
        return tuple(self.chunk(n, c) for n, c in enumerate(self.coords(rank)))

    def block_shape(self, rank: int) -> tuple[int, ...]:
        """Shape of the block ``rank`` holds (entries may be 0 for an empty chunk)."""
        return tuple(e - s for s, e in self.block(rank))

    def layer(self, mode: int, c: int) -> tuple[int, ...]:
        """The ranks (ascending) whose block lies in chunk ``c`` of ``mode``."""
        return tuple(r for r in range(self.world_size) if self.coords(r)[mode] == c)

    def layers(self, mode: int) -> tuple[tuple[int, ...], ...]:
        """Every layer of ``mode`` (they partition the ranks)."""
        return tuple(self.layer(mode, c) for c in range(self.grid[mode]))

    def locate(self, indices: torch.Tensor) -> torch.Tensor:
        """The rank holding each entry: ``indices`` ``(N, nnz)`` global coordinates -> ``(nnz,)``
        int64 ranks."""
        idx = indices.to(torch.int64)
        rank = torch.zeros(idx.shape[1], dtype=torch.int64, device=idx.device)
        for n, p in enumerate(self.grid):
            inner = torch.tensor(self.bounds[n][1:-1], dtype=torch.int64, device=idx.device)
            chunk = torch.searchsorted(inner, idx[n], right=True)
            rank = rank * p + chunk
        return rank

    def block_counts(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries per rank (``(world_size,)`` int64) of the coordinates ``indices``."""
        return torch.bincount(self.locate(indices), minlength=self.world_size)

    def describe(self) -> str:
        """One line: shape, grid and the longest chunk per mode."""
        longest = [max(b[c + 1] - b[c] for c in range(p)) for b, p in zip(self.bounds, self.grid)]
        grid = "x".join(map(str, self.grid))
        return f"shape {self.shape}, grid {grid}, longest chunks {tuple(longest)}"


def _check_shape(shape: object, fn: str) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape:
        raise TypeError(f"{fn}: shape must be a non-empty sequence of ints; got {shape!r}.")
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{fn}: shape entries must be ints; got {type(s).__name__}.")
        if int(s) < 1:
            raise ValueError(f"{fn}: shape entries must be positive; got {tuple(shape)}.")
        out.append(int(s))
    return tuple(out)


def _check_shape_grid(
    shape: object, grid: object, fn: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape_t = _check_shape(shape, fn)
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise TypeError(f"{fn}: grid must be a sequence of ints; got {type(grid).__name__}.")
    if len(grid) != len(shape_t):
        raise ValueError(
            f"{fn}: grid must hold one entry per mode ({len(shape_t)}); got {tuple(grid)}."
        )
    grid_t = tuple(check_positive_int(p, fn, "grid entry") for p in grid)
    return shape_t, grid_t


def _check_grid_size(grid: tuple[int, ...], world_size: int, fn: str) -> None:
    if math.prod(grid) != world_size:
        raise ValueError(
            f"{fn}: grid {grid} has {math.prod(grid)} blocks but the job has {world_size} ranks; "
            "the grid's product must equal the number of ranks."
        )
