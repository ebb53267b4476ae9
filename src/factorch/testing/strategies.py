"""Hypothesis strategies for shapes and random factorized tensors.

The only factorch module that imports hypothesis (a test dependency). Each tensor strategy draws
a shape, ranks and a seed, then builds the tensor with the :mod:`factorch.random` constructors
from a seeded CPU ``torch.Generator``; hypothesis shrinks towards small shapes, low ranks and
seed 0. Default dtype float64.

Example::

    from hypothesis import given
    from factorch.testing.strategies import cp_tensors

    @given(cp_tensors(max_rank=3))
    def test_norm(cp):
        assert torch.allclose(cp.norm(), cp.to_dense().norm())
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - exercised only without the test extra
    raise ImportError(
        "factorch.testing.strategies needs hypothesis; install the test extra "
        "(pip install 'factorch[test]') or hypothesis itself."
    ) from err

from ..random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from ..tensors import CPTensor, TRTensor, TTMatrix, TTTensor, TuckerTensor

__all__ = [
    "cp_tensors",
    "float_dtypes",
    "seeds",
    "shapes",
    "tr_tensors",
    "tt_matrices",
    "tt_tensors",
    "tucker_tensors",
]

ShapeArg = Sequence[int] | st.SearchStrategy[tuple[int, ...]] | None


def shapes(
    min_ndim: int = 2, max_ndim: int = 5, min_side: int = 1, max_side: int = 6
) -> st.SearchStrategy[tuple[int, ...]]:
    """Tensor shapes with ``min_ndim..max_ndim`` modes of sizes ``min_side..max_side``."""
    if not 1 <= min_ndim <= max_ndim:
        raise ValueError(f"shapes: need 1 <= min_ndim <= max_ndim; got {min_ndim}, {max_ndim}.")
    if not 1 <= min_side <= max_side:
        raise ValueError(f"shapes: need 1 <= min_side <= max_side; got {min_side}, {max_side}.")
    return st.lists(st.integers(min_side, max_side), min_size=min_ndim, max_size=max_ndim).map(
        tuple
    )


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``torch.Generator().manual_seed``."""
    return st.integers(0, 2**32 - 1)


def float_dtypes() -> st.SearchStrategy[torch.dtype]:
    """float32 or float64."""
    return st.sampled_from([torch.float32, torch.float64])


def _shape(draw: st.DrawFn, shape: ShapeArg) -> tuple[int, ...]:
    if shape is None:
        return draw(shapes())
    if isinstance(shape, st.SearchStrategy):
        return tuple(draw(shape))
    return tuple(shape)


def _generator(draw: st.DrawFn) -> torch.Generator:
    return torch.Generator().manual_seed(draw(seeds()))


@st.composite
def cp_tensors(
    draw: st.DrawFn,
    *,
    shape: ShapeArg = None,
    min_rank: int = 1,
    max_rank: int = 4,
    dtype: torch.dtype = torch.float64,
) -> CPTensor:
    """Random :class:`CPTensor` (``random_cp``) with rank in ``min_rank..max_rank``."""
    dims = _shape(draw, shape)
    rank = draw(st.integers(min_rank, max_rank))
    return random_cp(dims, rank, generator=_generator(draw), dtype=dtype)


@st.composite
def tucker_tensors(
    draw: st.DrawFn,
    *,
    shape: ShapeArg = None,
    max_rank: int = 4,
    dtype: torch.dtype = torch.float64,
) -> TuckerTensor:
    """Random :class:`TuckerTensor` (``random_tucker``); ``R_n`` in ``1..min(max_rank, I_n)``."""
    dims = _shape(draw, shape)
    ranks = tuple(draw(st.integers(1, min(max_rank, s))) for s in dims)
    return random_tucker(dims, ranks, generator=_generator(draw), dtype=dtype)


@st.composite
def tt_tensors(
    draw: st.DrawFn,
    *,
    shape: ShapeArg = None,
    max_rank: int = 4,
    dtype: torch.dtype = torch.float64,
) -> TTTensor:
    """Random :class:`TTTensor` (``random_tt``); each internal rank drawn in ``1..max_rank``,
    capped at the largest possible TT rank."""
    dims = _shape(draw, shape)
    caps = [min(prod(dims[:k]), prod(dims[k:])) for k in range(1, len(dims))]
    inner = tuple(draw(st.integers(1, min(max_rank, c))) for c in caps)
    return random_tt(dims, (1, *inner, 1), generator=_generator(draw), dtype=dtype)


@st.composite
def tr_tensors(
    draw: st.DrawFn,
    *,
    shape: ShapeArg = None,
    max_rank: int = 3,
    dtype: torch.dtype = torch.float64,
) -> TRTensor:
    """Random :class:`TRTensor` (``random_tr``); each rank drawn in ``1..max_rank``."""
    dims = _shape(draw, shape)
    ranks = [draw(st.integers(1, max_rank)) for _ in dims]
    return random_tr(dims, (*ranks, ranks[0]), generator=_generator(draw), dtype=dtype)


@st.composite
def tt_matrices(
    draw: st.DrawFn,
    *,
    min_cores: int = 1,
    max_cores: int = 3,
    max_side: int = 4,
    max_rank: int = 3,
    dtype: torch.dtype = torch.float64,
) -> TTMatrix:
    """Random :class:`TTMatrix` (``random_tt_matrix``) with ``min_cores..max_cores`` cores,
    row/column factors in ``1..max_side`` and internal ranks in ``1..max_rank`` (capped)."""
    n = draw(st.integers(min_cores, max_cores))
    rows = tuple(draw(st.integers(1, max_side)) for _ in range(n))
    cols = tuple(draw(st.integers(1, max_side)) for _ in range(n))
    sizes = [m * c for m, c in zip(rows, cols)]
    caps = [min(prod(sizes[:k]), prod(sizes[k:])) for k in range(1, n)]
    inner = tuple(draw(st.integers(1, min(max_rank, c))) for c in caps)
    return random_tt_matrix(rows, cols, (1, *inner, 1), generator=_generator(draw), dtype=dtype)
