"""Dense reconstructions agree with TensorLy 0.10 (pytorch backend) for the same factors.

TensorLy's backend is process-global; the fixture switches it inside ``tl.backend_context`` and
restores the previous one, so nothing leaks into other tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from factorch.testing import assert_close_tensors, tolerance

tl = pytest.importorskip("tensorly")

DTYPES = [torch.float32, torch.float64]
SHAPES = [(4, 5), (3, 4, 5), (2, 3, 4, 3), (2, 2, 3, 2, 3)]


@pytest.fixture
def tly() -> Iterator[object]:
    before = tl.get_backend()
    with tl.backend_context("pytorch"):
        yield tl
    assert tl.get_backend() == before


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cp_to_tensor(tly, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    cp = random_cp(shape, 3, generator=_gen(0), dtype=dtype)
    expected = tly.cp_to_tensor((cp.weights, list(cp.factors)))
    assert_close_tensors(cp.to_dense(), expected)
    rtol, _ = tolerance(dtype)
    assert abs(float(cp.norm()) - float(tly.cp_norm((cp.weights, list(cp.factors))))) <= (
        10 * rtol * float(cp.norm())
    )
    for mode in range(len(shape)):
        assert_close_tensors(cp.unfold(mode), tly.unfold(expected, mode))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_tucker_to_tensor(tly, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    ranks = tuple(min(s, 3) for s in shape)
    tk = random_tucker(shape, ranks, generator=_gen(1), dtype=dtype)
    expected = tly.tucker_to_tensor((tk.core, list(tk.factors)))
    assert_close_tensors(tk.to_dense(), expected)
    for mode in range(len(shape)):
        assert_close_tensors(tk.unfold(mode), tly.unfold(expected, mode))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_tt_to_tensor(tly, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    tt = random_tt(shape, 3, generator=_gen(2), dtype=dtype)
    expected = tly.tt_to_tensor(list(tt.cores))
    assert_close_tensors(tt.to_dense(), expected)
    for mode in range(len(shape)):
        assert_close_tensors(tt.unfold(mode), tly.unfold(expected, mode))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_tr_to_tensor(tly, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    tr = random_tr(shape, (2, *([3] * (len(shape) - 1)), 2), generator=_gen(3), dtype=dtype)
    expected = tly.tr_to_tensor(list(tr.cores))
    assert_close_tensors(tr.to_dense(), expected)
    for mode in range(len(shape)):
        assert_close_tensors(tr.unfold(mode), tly.unfold(expected, mode))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols"), [((4,), (3,)), ((2, 3), (4, 2)), ((2, 3, 2), (3, 1, 2))])
def test_tt_matrix_to_tensor(
    tly, rows: tuple[int, ...], cols: tuple[int, ...], dtype: torch.dtype
) -> None:
    ttm = random_tt_matrix(rows, cols, 3, generator=_gen(4), dtype=dtype)
    expected = tly.tt_matrix_to_tensor(list(ttm.cores))
    assert expected.shape == ttm.tensor_shape
    assert_close_tensors(ttm.to_tensor(), expected)
    assert_close_tensors(ttm.to_dense(), expected.reshape(ttm.shape))
    x = torch.randn(5, ttm.shape[1], generator=_gen(5), dtype=dtype)
    assert_close_tensors(ttm.apply(x), x @ expected.reshape(ttm.shape).T)
