"""The row-wise solver of completion ALS against per-row least squares (ridge and minimum norm)."""

from __future__ import annotations

import pytest
import torch
from _completion_helpers import planted_problem

import factorch.completion._rowwise as rowwise
from factorch.completion._cp_als import _update_mode
from factorch.tensors import SparseTensor

F64 = torch.float64


def _rows(train, factors, n, i):
    sel = train.indices[n] == i
    idx = train.indices[:, sel].long()
    h = torch.ones(int(sel.sum()), factors[0].shape[1], dtype=F64)
    for m in range(train.ndim):
        if m != n:
            h = h * factors[m][idx[m]]
    return h, train.values[sel]


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_row_update_equals_per_row_least_squares(monkeypatch, l2):
    monkeypatch.setattr(rowwise, "_CHUNK_ELEMENTS", 7 * 12)  # many chunks, rows split across them
    gen = torch.Generator().manual_seed(4)
    p, mask = planted_problem("cp", (6, 7, 5), 3, 0.4)
    train = SparseTensor.from_dense(p.tensor, mask)
    factors = [torch.randn(s, 3, generator=gen, dtype=F64) for s in train.shape]
    for n in range(3):
        got = _update_mode(train, factors, n, l2)
        for i in range(train.shape[n]):
            h, x = _rows(train, factors, n, i)
            a = h.mT @ h + l2 * torch.eye(3, dtype=F64)
            want = torch.linalg.lstsq(a, h.mT @ x).solution
            torch.testing.assert_close(got[i], want, rtol=1e-8, atol=1e-10)


def test_damping_adds_a_multiple_of_each_rows_mean_diagonal():
    gen = torch.Generator().manual_seed(5)
    p, mask = planted_problem("cp", (6, 7, 5), 3, 0.3)
    train = SparseTensor.from_dense(p.tensor, mask)
    factors = [torch.randn(s, 3, generator=gen, dtype=F64) for s in train.shape]
    got = _update_mode(train, factors, 1, 0.2, damping=0.01)
    for i in range(train.shape[1]):
        h, x = _rows(train, factors, 1, i)
        g = h.mT @ h
        a = g + (0.2 + 0.01 * float(g.diagonal().mean())) * torch.eye(3, dtype=F64)
        torch.testing.assert_close(got[i], torch.linalg.solve(a, h.mT @ x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("damping", [0.0, 1e-4])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_underdetermined_rows_get_the_minimum_norm_solution(dtype, damping):
    # Rank 4 and slices of mode 0 with 0 to 3 observations: without a ridge every such row is
    # the minimum-norm least-squares solution (an exact fit of its few entries).
    gen = torch.Generator().manual_seed(0)
    shape, rank = (8, 6, 5), 4
    mask = torch.rand(shape, generator=gen) < 0.5
    for i, count in enumerate([0, 1, 2, 3]):
        mask[i] = False
        flat = torch.randperm(30, generator=gen)[:count]
        mask[i].view(-1)[flat] = True
    x = torch.randn(shape, generator=gen, dtype=F64)
    train = SparseTensor.from_dense(x.to(dtype), mask)
    factors = [torch.randn(s, rank, generator=gen, dtype=dtype) for s in shape]
    got = _update_mode(train, factors, 0, 0.0, damping)  # damping spares these rows
    assert torch.isfinite(got).all()
    for i in range(4):
        h, v = _rows(train, [f.double() for f in factors], 0, i)
        want = torch.linalg.pinv(h) @ v.double() if h.shape[0] else torch.zeros(rank, dtype=F64)
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(got[i].double(), want, rtol=tol, atol=tol)
