"""Hypothesis strategies draw valid tensors within the requested bounds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from factorch.tensors import CPTensor, TRTensor, TTMatrix, TTTensor, TuckerTensor
from factorch.testing import strategies as fst

FAST = settings(max_examples=25, deadline=None)


@FAST
@given(fst.shapes(min_ndim=2, max_ndim=4, min_side=2, max_side=3))
def test_shapes_respect_bounds(shape: tuple[int, ...]) -> None:
    assert isinstance(shape, tuple) and 2 <= len(shape) <= 4
    assert all(2 <= s <= 3 for s in shape)


@FAST
@given(fst.cp_tensors(shape=(3, 4), min_rank=2, max_rank=3, dtype=torch.float32))
def test_cp_tensors(cp: CPTensor) -> None:
    assert cp.shape == (3, 4) and 2 <= cp.rank <= 3 and cp.dtype == torch.float32


@FAST
@given(fst.tucker_tensors(shape=fst.shapes(max_ndim=3, max_side=3), max_rank=2))
def test_tucker_tensors(t: TuckerTensor) -> None:
    assert t.dtype == torch.float64
    assert all(1 <= r <= min(2, s) for r, s in zip(t.rank, t.shape))


@FAST
@given(fst.tt_tensors(max_rank=3))
def test_tt_tensors(t: TTTensor) -> None:
    assert 2 <= t.ndim <= 5 and t.rank[0] == t.rank[-1] == 1
    assert all(1 <= r <= 3 for r in t.rank)


@FAST
@given(fst.tr_tensors(max_rank=2))
def test_tr_tensors(t: TRTensor) -> None:
    assert t.rank[0] == t.rank[-1] and all(1 <= r <= 2 for r in t.rank)


@FAST
@given(fst.tt_matrices(min_cores=2, max_cores=2, max_side=3, max_rank=2))
def test_tt_matrices(m: TTMatrix) -> None:
    assert m.n_cores == 2 and all(1 <= s <= 3 for s in m.row_shape + m.col_shape)
    assert m.rank[1] <= 2


@FAST
@given(fst.float_dtypes(), fst.seeds())
def test_dtypes_and_seeds(dtype: torch.dtype, seed: int) -> None:
    assert dtype in (torch.float32, torch.float64) and 0 <= seed < 2**32


def test_shapes_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"shapes: need 1 <= min_ndim <= max_ndim; got 3, 2\."):
        fst.shapes(min_ndim=3, max_ndim=2)
    with pytest.raises(ValueError, match=r"shapes: need 1 <= min_side <= max_side; got 0, 2\."):
        fst.shapes(min_side=0, max_side=2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: fst.cp_tensors(min_rank=3, max_rank=2), ValueError, r"cp_tensors: need min_rank"),
        (lambda: fst.cp_tensors(max_rank=0), ValueError, r"cp_tensors: max_rank must be a posi"),
        (lambda: fst.tt_tensors(shape=(2, 0)), ValueError, r"tt_tensors: shape must be None, a "),
        (lambda: fst.tr_tensors(dtype=torch.int64), TypeError, r"tr_tensors: dtype must be a re"),
        (lambda: fst.tucker_tensors(max_rank=1.5), ValueError, r"tucker_tensors: max_rank must"),
        (
            lambda: fst.tt_matrices(min_cores=3, max_cores=2),
            ValueError,
            r"tt_matrices: need min_cores <= max_cores; got 3, 2",
        ),
    ],
)
def test_strategy_options_are_checked_when_built(call, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        call()
