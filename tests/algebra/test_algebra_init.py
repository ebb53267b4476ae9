"""The public surface of factorch.algebra: every function takes numpy input and returns torch
tensors equal to the torch-input result; under autocast the building blocks behave like the
torch ops they are made of, while norms, inner products and SVDs compute with autocast off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import factorch.algebra as fa
from factorch.tensors import SparseTensor

F64 = torch.float64


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, generator=g, dtype=F64)
    fs = [torch.randn(s, 2, generator=g, dtype=F64) for s in x.shape]
    m = torch.randn(6, 4, generator=g, dtype=F64)
    return x, fs, m


CALLS = {
    "unfold": lambda x, fs, m, np_: fa.unfold(np_(x), 1),
    "fold": lambda x, fs, m, np_: fa.fold(np_(fa.unfold(x, 1)), 1, (3, 4, 5)),
    "mode_dot": lambda x, fs, m, np_: fa.mode_dot(np_(x), np_(m), 1),
    "multi_mode_dot": lambda x, fs, m, np_: fa.multi_mode_dot(np_(x), [np_(m)], [1]),
    "khatri_rao": lambda x, fs, m, np_: fa.khatri_rao([np_(f) for f in fs], weights=np_(fs[0][0])),
    "kron": lambda x, fs, m, np_: fa.kron(np_(fs[0]), np_(fs[1])),
    "mttkrp": lambda x, fs, m, np_: fa.mttkrp(np_(x), [np_(f) for f in fs], 2),
    "sparse_mttkrp": lambda x, fs, m, np_: fa.sparse_mttkrp(
        SparseTensor.from_dense(x), [np_(f) for f in fs], 1
    ),
    "inner": lambda x, fs, m, np_: fa.inner(np_(x), np_(x)),
    "norm": lambda x, fs, m, np_: fa.norm(np_(x)),
    "truncated_svd": lambda x, fs, m, np_: fa.truncated_svd(np_(m), 2),
    "randomized_svd": lambda x, fs, m, np_: fa.randomized_svd(
        np_(m), 2, generator=torch.Generator().manual_seed(1)
    ),
    "leading_singular_vectors": lambda x, fs, m, np_: fa.leading_singular_vectors(np_(m), 2),
}


def _tensors(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_numpy_input_gives_the_torch_result(name):
    x, fs, m = _data()
    ref = CALLS[name](x, fs, m, lambda t: t)
    got = CALLS[name](x, fs, m, lambda t: t.numpy())
    for a, b in zip(_tensors(got), _tensors(ref)):
        assert isinstance(a, torch.Tensor)
        torch.testing.assert_close(a, b)


def test_numpy_integer_modes_and_ranks_are_accepted():
    x, fs, m = _data()
    assert torch.equal(fa.unfold(x, np.int64(2)), fa.unfold(x, 2))
    assert torch.equal(fa.mttkrp(x, fs, np.int32(1)), fa.mttkrp(x, fs, 1))
    assert torch.equal(fa.mode_dot(x, m, np.int64(-2)), fa.mode_dot(x, m, 1))
    assert fa.truncated_svd(m, np.int64(2))[1].shape == (2,)


BUILDING_BLOCKS = {
    "mode_dot": lambda x, fs, m: fa.mode_dot(x, m, 1),
    "mttkrp": lambda x, fs, m: fa.mttkrp(x, fs, 0),
    "multi_mode_dot": lambda x, fs, m: fa.multi_mode_dot(x, [m], [1]),
}


@pytest.mark.parametrize("name", sorted(BUILDING_BLOCKS))
def test_building_blocks_follow_autocast_like_torch_matmul(name):
    x, fs, m = (t.float() if isinstance(t, torch.Tensor) else t for t in _data())
    fs = [f.float() for f in fs]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = BUILDING_BLOCKS[name](x, fs, m)
        like = (x.reshape(-1, 5) @ x.reshape(5, -1)).dtype
    assert out.dtype == like == torch.bfloat16
    torch.testing.assert_close(out.float(), BUILDING_BLOCKS[name](x, fs, m), rtol=3e-2, atol=3e-2)


def test_element_wise_products_keep_their_dtype_under_autocast():
    x, fs, _ = _data()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fa.khatri_rao(fs).dtype == F64
        assert fa.unfold(x, 1).dtype == F64


@pytest.mark.parametrize(
    "name", ["inner", "norm", "truncated_svd", "randomized_svd", "leading_singular_vectors"]
)
def test_reductions_and_svds_compute_in_the_input_dtype_under_autocast(name):
    x, fs, m = (t for t in _data())
    x, m, fs = x.float(), m.float(), [f.float() for f in fs]
    ident = lambda t: t  # noqa: E731
    plain = CALLS[name](x, fs, m, ident)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = CALLS[name](x, fs, m, ident)
    for a, b in zip(_tensors(cast), _tensors(plain)):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)
