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
    """Tensor shapes with ``min_ndim..max_ndim`` modes of sizes ``min_side..max_side``.

    Args:
        min_ndim: the fewest modes.
        max_ndim: the most modes.
        min_side: the smallest mode size.
        max_side: the largest mode size.

    Returns:
        A strategy drawing tuples of ints; it shrinks towards ``min_ndim`` modes of
        ``min_side``.

    Raises:
        ValueError: bounds that are not ``1 <= min <= max``.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=10, database=None)
        ... @given(shapes(min_ndim=2, max_ndim=3, max_side=4))
        ... def check(shape):
        ...     assert 2 <= len(shape) <= 3 and all(1 <= s <= 4 for s in shape)
        >>> check()
    """
    if not 1 <= min_ndim <= max_ndim:
        raise ValueError(f"shapes: need 1 <= min_ndim <= max_ndim; got {min_ndim}, {max_ndim}.")
    if not 1 <= min_side <= max_side:
        raise ValueError(f"shapes: need 1 <= min_side <= max_side; got {min_side}, {max_side}.")
    return st.lists(st.integers(min_side, max_side), min_size=min_ndim, max_size=max_ndim).map(
        tuple
    )


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``torch.Generator().manual_seed``.

    Returns:
        A strategy drawing ints in ``0..2**32 - 1`` (shrinking towards 0).

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=10, database=None)
        ... @given(seeds())
        ... def check(seed):
        ...     torch.Generator().manual_seed(seed)
        >>> check()
    """
    return st.integers(0, 2**32 - 1)


def float_dtypes() -> st.SearchStrategy[torch.dtype]:
    """float32 or float64.

    Returns:
        A strategy drawing ``torch.float32`` or ``torch.float64``.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=10, database=None)
        ... @given(float_dtypes())
        ... def check(dtype):
        ...     assert torch.zeros(1, dtype=dtype).is_floating_point()
        >>> check()
    """
    return st.sampled_from([torch.float32, torch.float64])


def _shape(draw: st.DrawFn, shape: ShapeArg) -> tuple[int, ...]:
    if shape is None:
        return draw(shapes())
    if isinstance(shape, st.SearchStrategy):
        return tuple(draw(shape))
    return tuple(shape)


def _generator(draw: st.DrawFn) -> torch.Generator:
    return torch.Generator().manual_seed(draw(seeds()))


def _check(fn: str, shape: ShapeArg, dtype: torch.dtype, **bounds: int) -> None:
    """The options every tensor strategy takes, checked when the strategy is built (hypothesis
    would otherwise report a bad option only when it first draws)."""
    if shape is not None and not isinstance(shape, st.SearchStrategy):
        if (
            isinstance(shape, (str, bytes))
            or not isinstance(shape, Sequence)
            or not shape
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
        ):
            raise ValueError(
                f"{fn}: shape must be None, a strategy, or a non-empty sequence of positive ints; "
                f"got {shape!r}."
            )
    for name, value in bounds.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: {name} must be a positive int; got {value!r}.")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"{fn}: dtype must be a real floating torch.dtype (e.g. torch.float64); got {dtype!r}."
        )


def cp_tensors(
    *,
    shape: ShapeArg = None,
    min_rank: int = 1,
    max_rank: int = 4,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[CPTensor]:
    """Random :class:`CPTensor` (``random_cp``) with rank in ``min_rank..max_rank``.

    Args:
        shape: a fixed shape, a strategy of shapes, or None (:func:`shapes`).
        min_rank: the lowest rank.
        max_rank: the highest rank.
        dtype: a real floating dtype.

    Returns:
        A strategy drawing :class:`CPTensor` values from seeded generators.

    Raises:
        ValueError: a shape that is not positive ints, or ranks that are not
            ``1 <= min_rank <= max_rank``.
        TypeError: ``dtype`` is not a real floating dtype.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None, deadline=None)
        ... @given(cp_tensors(shape=(3, 4, 2), max_rank=2))
        ... def check(cp):
        ...     assert cp.shape == (3, 4, 2) and cp.rank <= 2
        ...     assert torch.allclose(cp.norm(), cp.to_dense().norm())
        >>> check()
    """
    _check("cp_tensors", shape, dtype, min_rank=min_rank, max_rank=max_rank)
    if min_rank > max_rank:
        raise ValueError(f"cp_tensors: need min_rank <= max_rank; got {min_rank}, {max_rank}.")
    return _cp_tensors(shape=shape, min_rank=min_rank, max_rank=max_rank, dtype=dtype)


@st.composite
def _cp_tensors(
    draw: st.DrawFn, *, shape: ShapeArg, min_rank: int, max_rank: int, dtype: torch.dtype
) -> CPTensor:
    dims = _shape(draw, shape)
    rank = draw(st.integers(min_rank, max_rank))
    return random_cp(dims, rank, generator=_generator(draw), dtype=dtype)


def tucker_tensors(
    *,
    shape: ShapeArg = None,
    max_rank: int = 4,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[TuckerTensor]:
    """Random :class:`TuckerTensor` (``random_tucker``); ``R_n`` in ``1..min(max_rank, I_n)``.

    Args:
        shape: a fixed shape, a strategy of shapes, or None (:func:`shapes`).
        max_rank: the highest rank of any mode.
        dtype: a real floating dtype.

    Returns:
        A strategy drawing :class:`TuckerTensor` values from seeded generators.

    Raises:
        ValueError: a shape that is not positive ints, or ``max_rank`` below 1.
        TypeError: ``dtype`` is not a real floating dtype.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None, deadline=None)
        ... @given(tucker_tensors(shape=(3, 4, 2), max_rank=2))
        ... def check(tucker):
        ...     assert tucker.to_dense().shape == (3, 4, 2)
        ...     assert all(r <= 2 for r in tucker.rank)
        >>> check()
    """
    _check("tucker_tensors", shape, dtype, max_rank=max_rank)
    return _tucker_tensors(shape=shape, max_rank=max_rank, dtype=dtype)


@st.composite
def _tucker_tensors(
    draw: st.DrawFn, *, shape: ShapeArg, max_rank: int, dtype: torch.dtype
) -> TuckerTensor:
    dims = _shape(draw, shape)
    ranks = tuple(draw(st.integers(1, min(max_rank, s))) for s in dims)
    return random_tucker(dims, ranks, generator=_generator(draw), dtype=dtype)


def tt_tensors(
    *,
    shape: ShapeArg = None,
    max_rank: int = 4,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[TTTensor]:
    """Random :class:`TTTensor` (``random_tt``); each internal rank drawn in ``1..max_rank``,
    capped at the largest possible TT rank.

    Args:
        shape: a fixed shape, a strategy of shapes, or None (:func:`shapes`).
        max_rank: the highest internal rank.
        dtype: a real floating dtype.

    Returns:
        A strategy drawing :class:`TTTensor` values from seeded generators.

    Raises:
        ValueError: a shape that is not positive ints, or ``max_rank`` below 1.
        TypeError: ``dtype`` is not a real floating dtype.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None, deadline=None)
        ... @given(tt_tensors(shape=(3, 4, 2), max_rank=2))
        ... def check(tt):
        ...     assert tt.to_dense().shape == (3, 4, 2) and max(tt.rank) <= 2
        >>> check()
    """
    _check("tt_tensors", shape, dtype, max_rank=max_rank)
    return _tt_tensors(shape=shape, max_rank=max_rank, dtype=dtype)


@st.composite
def _tt_tensors(draw: st.DrawFn, *, shape: ShapeArg, max_rank: int, dtype: torch.dtype) -> TTTensor:
    dims = _shape(draw, shape)
    caps = [min(prod(dims[:k]), prod(dims[k:])) for k in range(1, len(dims))]
    inner = tuple(draw(st.integers(1, min(max_rank, c))) for c in caps)
    return random_tt(dims, (1, *inner, 1), generator=_generator(draw), dtype=dtype)


def tr_tensors(
    *,
    shape: ShapeArg = None,
    max_rank: int = 3,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[TRTensor]:
    """Random :class:`TRTensor` (``random_tr``); each rank drawn in ``1..max_rank``.

    Args:
        shape: a fixed shape, a strategy of shapes, or None (:func:`shapes`).
        max_rank: the highest ring rank.
        dtype: a real floating dtype.

    Returns:
        A strategy drawing :class:`TRTensor` values from seeded generators.

    Raises:
        ValueError: a shape that is not positive ints, or ``max_rank`` below 1.
        TypeError: ``dtype`` is not a real floating dtype.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None, deadline=None)
        ... @given(tr_tensors(shape=(3, 4, 2), max_rank=2))
        ... def check(tr):
        ...     assert tr.to_dense().shape == (3, 4, 2)
        >>> check()
    """
    _check("tr_tensors", shape, dtype, max_rank=max_rank)
    return _tr_tensors(shape=shape, max_rank=max_rank, dtype=dtype)


@st.composite
def _tr_tensors(draw: st.DrawFn, *, shape: ShapeArg, max_rank: int, dtype: torch.dtype) -> TRTensor:
    dims = _shape(draw, shape)
    ranks = [draw(st.integers(1, max_rank)) for _ in dims]
    return random_tr(dims, (*ranks, ranks[0]), generator=_generator(draw), dtype=dtype)


def tt_matrices(
    *,
    min_cores: int = 1,
    max_cores: int = 3,
    max_side: int = 4,
    max_rank: int = 3,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[TTMatrix]:
    """Random :class:`TTMatrix` (``random_tt_matrix``) with ``min_cores..max_cores`` cores,
    row/column factors in ``1..max_side`` and internal ranks in ``1..max_rank`` (capped).

    Args:
        min_cores: the fewest cores.
        max_cores: the most cores.
        max_side: the largest row or column factor of a core.
        max_rank: the highest internal rank.
        dtype: a real floating dtype.

    Returns:
        A strategy drawing :class:`TTMatrix` values from seeded generators.

    Raises:
        ValueError: a bound below 1, or ``min_cores > max_cores``.
        TypeError: ``dtype`` is not a real floating dtype.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None, deadline=None)
        ... @given(tt_matrices(max_cores=2, max_side=3))
        ... def check(m):
        ...     rows, cols = m.to_dense().shape
        ...     assert rows <= 9 and cols <= 9
        >>> check()
    """
    fn = "tt_matrices"
    bounds = dict(min_cores=min_cores, max_cores=max_cores, max_side=max_side, max_rank=max_rank)
    _check(fn, None, dtype, **bounds)
    if min_cores > max_cores:
        raise ValueError(f"{fn}: need min_cores <= max_cores; got {min_cores}, {max_cores}.")
    return _tt_matrices(**bounds, dtype=dtype)


@st.composite
def _tt_matrices(
    draw: st.DrawFn,
    *,
    min_cores: int,
    max_cores: int,
    max_side: int,
    max_rank: int,
    dtype: torch.dtype,
) -> TTMatrix:
    n = draw(st.integers(min_cores, max_cores))
    rows = tuple(draw(st.integers(1, max_side)) for _ in range(n))
    cols = tuple(draw(st.integers(1, max_side)) for _ in range(n))
    sizes = [m * c for m, c in zip(rows, cols)]
    caps = [min(prod(sizes[:k]), prod(sizes[k:])) for k in range(1, n)]
    inner = tuple(draw(st.integers(1, min(max_rank, c))) for c in caps)
    return random_tt_matrix(rows, cols, (1, *inner, 1), generator=_generator(draw), dtype=dtype)
