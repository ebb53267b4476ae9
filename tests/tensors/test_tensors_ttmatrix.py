"""TT-matrix layout, apply (the factorized Linear forward) and transpose."""

from __future__ import annotations

import itertools

import pytest
import torch

from factorch.random import random_tt_matrix
from factorch.tensors import TTMatrix
from factorch.testing import assert_close_tensors

F64 = torch.float64
DTYPES = [torch.float32, torch.float64]
LAYOUTS = [((4,), (3,)), ((2, 3), (4, 2)), ((2, 1, 3), (3, 2, 2)), ((2, 2, 2, 2), (3, 1, 2, 2))]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _slow_dense(m: TTMatrix) -> torch.Tensor:
    """Entry by entry from the definition: a product of core slices per (row, col) pair."""
    out = torch.empty(m.shape, dtype=m.dtype)
    for r, rows in enumerate(itertools.product(*(range(s) for s in m.row_shape))):
        for c, cols in enumerate(itertools.product(*(range(s) for s in m.col_shape))):
            acc = torch.ones(1, 1, dtype=m.dtype)
            for core, i, j in zip(m.cores, rows, cols):
                acc = acc @ core[:, i, j, :]
            out[r, c] = acc[0, 0]
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_matches_definition(layout: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    rows, cols = layout
    m = random_tt_matrix(rows, cols, 2, generator=_gen(0), dtype=F64)
    assert m.row_shape == rows and m.col_shape == cols and m.n_cores == len(rows)
    assert m.tensor_shape == (*rows, *cols)
    assert_close_tensors(m.to_dense(), _slow_dense(m))
    assert_close_tensors(m.to_tensor().reshape(m.shape), m.to_dense())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
@pytest.mark.parametrize("method", ["auto", "sweep", "dense"])
def test_apply_equals_dense_product(
    layout: tuple[tuple[int, ...], tuple[int, ...]],
    lead: tuple[int, ...],
    method: str,
    dtype: torch.dtype,
) -> None:
    rows, cols = layout
    m = random_tt_matrix(rows, cols, 3, generator=_gen(1), dtype=dtype)
    x = torch.randn(*lead, m.shape[1], generator=_gen(2), dtype=dtype)
    out = m.apply(x, method=method)
    assert out.shape == (*lead, m.shape[0])
    ref = x.to(F64) @ m.to(dtype=F64).to_dense().T
    assert_close_tensors(out, ref)


def test_apply_macs() -> None:
    m = random_tt_matrix((2, 3, 4), (5, 6, 7), (1, 2, 3, 1), generator=_gen(7), dtype=F64)
    # last core: B*5*6*3*4*7*1, middle: B*5*4*2*3*6*3, first: B*1*12*1*2*5*2
    sweep = 10 * (5 * 6 * 3 * 4 * 7 + 5 * 4 * 2 * 3 * 6 * 3 + 12 * 2 * 5 * 2)
    build = 10 * 2 * 3 * 6 * 3 + 10 * 18 * 3 * 4 * 7
    assert m.apply_macs(10) == (sweep, build + 10 * 24 * 210)
    low = random_tt_matrix((4, 4, 4), (4, 4, 4), 2, generator=_gen(8), dtype=F64)
    high = random_tt_matrix((4, 4, 4), (4, 4, 4), 16, generator=_gen(8), dtype=F64)
    assert low.apply_macs(32)[0] < low.apply_macs(32)[1]
    assert high.apply_macs(32)[0] > high.apply_macs(32)[1]


@pytest.mark.parametrize("method", ["sweep", "dense"])
def test_apply_is_differentiable_and_matches_dense_gradients(method: str) -> None:
    m = random_tt_matrix((2, 3, 2), (3, 2, 2), 2, generator=_gen(3), dtype=F64)
    cores = [c.detach().clone().requires_grad_(True) for c in m.cores]
    x = torch.randn(4, 12, generator=_gen(4), dtype=F64, requires_grad=True)
    TTMatrix(cores).apply(x, method=method).square().sum().backward()
    cores2 = [c.detach().clone().requires_grad_(True) for c in m.cores]
    x2 = x.detach().clone().requires_grad_(True)
    (x2 @ TTMatrix(cores2).to_dense().T).square().sum().backward()
    assert_close_tensors(x.grad, x2.grad)
    for a, b in zip(cores, cores2):
        assert_close_tensors(a.grad, b.grad)


def test_transpose() -> None:
    m = random_tt_matrix((2, 3), (4, 2), 2, generator=_gen(5), dtype=F64)
    t = m.transpose()
    assert t.shape == (8, 6) and t.row_shape == (4, 2) and t.col_shape == (2, 3)
    assert_close_tensors(t.to_dense(), m.to_dense().T)


def test_repr_and_rank() -> None:
    m = random_tt_matrix((2, 3), (4, 2), 5, generator=_gen(6), dtype=torch.float32)
    assert m.rank == (1, 5, 1)
    assert m.ndim == 2
    assert repr(m) == (
        "TTMatrix(shape=(6, 8), rank=(1, 5, 1), params=70, compression=0.7x, dtype=float32)"
    )


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_norm_and_inner_with_a_core_near_the_ends_of_float64(scale: float) -> None:
    m = random_tt_matrix((2, 3), (4, 2), 2, generator=_gen(9), dtype=torch.float64)
    big = TTMatrix((m.cores[0] * scale, m.cores[1]))
    assert float(big.norm()) == pytest.approx(float(m.norm()) * scale, rel=1e-12)
    dense = m.to_dense()
    assert float(big.inner(dense / scale)) == pytest.approx(float((dense * dense).sum()), rel=1e-12)
