"""Parafac2Tensor: slices, dense form, norm, TensorLy unpacking and agreement, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from factorch.tensors import Parafac2Tensor

F64 = torch.float64


def _model(lengths=(3, 5, 4), k=6, rank=2, seed=0, dtype=F64) -> Parafac2Tensor:
    g = torch.Generator().manual_seed(seed)
    p = [torch.linalg.qr(torch.randn(n, rank, generator=g, dtype=F64)).Q for n in lengths]
    a = torch.rand(len(lengths), rank, generator=g, dtype=F64)
    b = torch.randn(rank, rank, generator=g, dtype=F64)
    c = torch.randn(k, rank, generator=g, dtype=F64)
    w = torch.rand(rank, generator=g, dtype=F64) + 0.5
    return Parafac2Tensor(w, (a, b, c), p).to(dtype=dtype)


def test_slices_follow_the_model_and_share_the_cross_product():
    m = _model()
    w, (a, b, c), p = m
    for i, s in enumerate(m.slices()):
        ref = p[i] @ b @ torch.diag(w * a[i]) @ c.T
        torch.testing.assert_close(s, ref)
    cross = [bi.T @ bi for bi in m.evolving_factors()]
    for g in cross[1:]:
        torch.testing.assert_close(g, cross[0])  # the PARAFAC2 constraint
    assert m.slice_shapes == ((3, 6), (5, 6), (4, 6)) and m.n_slices == 3 and m.rank == 2
    assert m.n_params == 2 + 3 * 2 + 4 + 12 + (3 + 5 + 4) * 2


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_norm_without_forming_the_slices(dtype):
    m = _model(dtype=dtype)
    ref = torch.sqrt(sum(s.double().square().sum() for s in m.slices()))
    torch.testing.assert_close(m.norm().double(), ref, rtol=1e-5, atol=0)


def test_to_dense_needs_equal_lengths():
    m = _model(lengths=(4, 4, 4))
    torch.testing.assert_close(m.to_dense(), torch.stack(m.slices()))
    with pytest.raises(ValueError, match=r"Parafac2Tensor.to_dense: the slices have different"):
        _model().to_dense()


def test_tensorly_reads_it_through_unpacking():
    tl = pytest.importorskip("tensorly")
    m = _model()
    w, f, p = m
    theirs = tl.parafac2_tensor.parafac2_to_slices(
        (w.numpy(), [t.numpy() for t in f], [q.numpy() for q in p])
    )
    for s, t in zip(m.slices(), theirs):
        np.testing.assert_allclose(s.numpy(), t, atol=1e-12)
    assert len(m) == 3 and m[0] is m.weights and m[1] is m.factors and m[-1] is m.projections


def test_to_and_frozen_identity():
    m = _model()
    half = m.to(dtype=torch.float32)
    assert half.dtype == torch.float32 and all(q.dtype == torch.float32 for q in half.projections)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.weights = m.weights  # type: ignore[misc]
    assert m == m and m != Parafac2Tensor(m.weights, m.factors, m.projections)
    assert "Parafac2Tensor(slices=3, rows=3..5, columns=6, rank=2" in repr(m)
    ones = Parafac2Tensor.from_factors(*m.factors, m.projections)
    assert torch.equal(ones.weights, torch.ones(2, dtype=F64))


def _bad(**change):
    m = _model()
    parts = {"weights": m.weights, "factors": m.factors, "projections": m.projections} | change
    return lambda: Parafac2Tensor(**parts)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (_bad(factors=_model().factors[:2]), ValueError, r"factors must be \(A, B, C\)"),
        (_bad(factors=(torch.ones(3, 2), torch.ones(3, 3), torch.ones(6, 2))), ValueError,
         r"B \(2, 2\)"),
        (_bad(projections=_model().projections[:2]), ValueError,
         r"projections needs one matrix per slice \(A has 3 rows\); got 2"),
        (_bad(projections=(torch.ones(3, 2), torch.ones(5, 3), torch.ones(4, 2))), ValueError,
         r"projections\[1\] has 3 columns"),
        (_bad(weights=torch.ones(2, dtype=torch.float32)), TypeError, r"share one dtype"),
        (_bad(projections=torch.ones(3, 2)), TypeError, r"projections must be a list or tuple"),
    ],
)  # fmt: skip
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(("index", "exc"), [(3, IndexError), ("a", TypeError), (True, TypeError)])
def test_bad_index(index, exc):
    with pytest.raises(exc, match=r"Parafac2Tensor: index must be 0 \(weights\)"):
        _model()[index]  # type: ignore[index]
