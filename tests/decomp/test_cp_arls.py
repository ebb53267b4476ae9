"""cp_arls (CP-ARLS-LEV): matching exact CP-ALS's fit on dense and sparse tensors, leverage
sampling, the best-model bookkeeping, policies and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import cp, cp_arls
from factorch.decomp._cp_arls import _leverage
from factorch.random import random_cp
from factorch.tensors import CPTensor, SparseTensor

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _planted(shape=(30, 35, 40), rank=4, seed=0, noise=0.01, dtype=F64):
    g = _gen(seed)
    truth = random_cp(shape, rank, generator=g, dtype=F64)
    x = truth.to_dense()
    e = torch.randn(x.shape, generator=g, dtype=F64)
    return (x + noise * x.norm() / e.norm() * e).to(dtype), truth


def test_matches_exact_cp_als_fit_on_dense_data():
    """From the same start, the sampled fit reaches CP-ALS's fit to within 1e-3 of the error
    and recovers the planted factors."""
    x, truth = _planted(seed=1)
    init = random_cp(x.shape, 4, generator=_gen(2), dtype=F64)
    exact = cp(x, 4, init=init, max_iter=300, tol=1e-10)
    res = cp_arls(x, 4, init=init, n_samples=600, generator=_gen(3))
    assert res.error == pytest.approx(exact.error, abs=1e-3)
    assert truth.congruence(res.model) > 0.99
    true = float((res.model.to_dense() - x).norm() / x.norm())
    assert res.error == pytest.approx(true, rel=1e-9)
    assert list(res.errors) == sorted(res.errors, reverse=True)  # best so far
    assert min(res.extras["epoch_errors"]) == res.error


def test_matches_exact_sparse_cp_als_fit():
    """A sparse low-rank tensor (sparse factors): the sampled fit of the nonzeros' fibres
    reaches the fit of CP-ALS on the SparseTensor (completion.sparse_cp, zeros elsewhere);
    dense and sparse storage of the same data give the same fit from the same draws."""
    from factorch.completion import sparse_cp

    g = _gen(4)
    factors = [torch.rand(n, 3, generator=g, dtype=F64) * (torch.rand(n, 3, generator=g) < 0.4)
               for n in (40, 50, 60)]  # fmt: skip
    dense = CPTensor.from_factors(factors).to_dense()
    dense = dense + 0.01 * dense.norm() / dense.count_nonzero() ** 0.5 * (dense != 0)
    st = SparseTensor.from_dense(dense)
    init = CPTensor.from_factors([torch.rand(s, 3, generator=g, dtype=F64) for s in st.shape])
    exact = sparse_cp(st, 3, init=init, max_iter=300, tol=1e-10)
    res = cp_arls(st, 3, init=init, n_samples=800, generator=_gen(5))
    assert res.error <= exact.error + 1e-3, (res.error, exact.error)
    true = float((res.model.to_dense() - dense).norm() / dense.norm())
    assert res.error == pytest.approx(true, rel=1e-6)
    dense_fit = cp_arls(dense, 3, init=init, n_samples=800, generator=_gen(5))
    assert res.errors == pytest.approx(dense_fit.errors, rel=1e-6)  # same draws, same fit


def test_leverage_scores_are_the_projection_diagonal():
    a = torch.randn(20, 4, generator=_gen(6), dtype=F64)
    q = torch.linalg.qr(a).Q
    torch.testing.assert_close(_leverage(a), q.square().sum(1) / 4)
    flat = _leverage(torch.zeros(5, 2, dtype=F64))
    torch.testing.assert_close(flat, torch.full((5,), 0.2, dtype=F64))


def test_samples_capped_deterministic_and_callback():
    x, _ = _planted((6, 7, 8), 2, 7)
    a = cp_arls(x, 2, n_samples=10**6, generator=_gen(8), max_epochs=3)
    b = cp_arls(x, 2, n_samples=10**6, generator=_gen(8), max_epochs=3)
    assert a.extras["n_samples"] == 56 and a.errors == b.errors
    seen = []
    cp_arls(x, 2, generator=_gen(8), callback=lambda s: seen.append(s.iteration) or True)
    assert seen == [1]


def test_svd_init_numpy_half_autocast_and_scale():
    x, _ = _planted((12, 13, 14), 3, 9)
    ref = cp_arls(x, 3, init="svd", n_samples=100, generator=_gen(10))
    same = cp_arls(x.numpy(), np.int64(3), init="svd", n_samples=100, generator=_gen(10))
    assert same.errors == ref.errors and ref.error < 0.02
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = cp_arls(x.float(), 3, n_samples=100, generator=_gen(10))
    assert auto.model.dtype == torch.float32
    half = cp_arls(x.half(), 3, n_samples=100, generator=_gen(10))
    assert half.model.dtype == torch.float16
    xh = x.half().double()
    assert half.error == pytest.approx(float((half.model.to(dtype=F64).to_dense() - xh).norm()
                                             / xh.norm()), rel=1e-3)  # fmt: skip
    big = cp_arls(x * 1e200, 3, init="svd", n_samples=100, generator=_gen(10))
    assert big.error == pytest.approx(ref.error, rel=1e-9)
    st = SparseTensor.from_dense(x * 1e-200)
    tiny = cp_arls(st, 3, n_samples=100, generator=_gen(11), max_epochs=4)
    assert math.isfinite(tiny.error) and tiny.error < 0.5


BAD = [
    ("x", 2, {}, TypeError, r"cp_arls: tensor must be a torch.Tensor or a numpy array"),
    (torch.ones(4, 5, 6, dtype=torch.int64), 2, {}, TypeError, r"cp_arls: tensor must have a"),
    (None, 0, {}, ValueError, r"cp_arls: rank must be a positive int"),
    (None, 2, {"n_samples": 0}, ValueError, r"cp_arls: n_samples must be a positive int"),
    (None, 2, {"init": "hosvd"}, ValueError, r"cp_arls: init must be one of \('random', 'svd'\)"),
    (None, 2, {"init": random_cp((4, 5, 6), 3)}, ValueError,
     r"cp_arls: init must be a CPTensor of shape \(4, 5, 6\) and rank 2"),
    (None, 2, {"epoch_iters": 0}, ValueError, r"cp_arls: epoch_iters must be a positive int"),
    (None, 2, {"patience": -1}, ValueError, r"cp_arls: patience must be a positive int"),
    (None, 2, {"generator": 5}, TypeError, r"cp_arls: generator must be a torch.Generator"),
    (None, 10**9, {}, ValueError, r"cp_arls: .*rank-1000000000 randomized CP fit"),
    (torch.zeros(4, 5, 6), 2, {}, ValueError, r"cp_arls: tensor is all zeros"),
    (SparseTensor.from_dense(torch.ones(4, 5, 6)), 2, {"init": "svd"}, ValueError,
     r"cp_arls: init='svd' needs a dense tensor"),
    (SparseTensor.from_dense(torch.zeros(4, 5, 6)), 2, {}, ValueError,
     r"cp_arls: a SparseTensor needs at least 2 modes and one listed entry"),
]  # fmt: skip


@pytest.mark.parametrize(("tensor", "rank", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input(tensor, rank, kwargs, exc, match):
    if tensor is None:
        tensor = torch.rand(4, 5, 6)
    with pytest.raises(exc, match=match):
        cp_arls(tensor, rank, **kwargs)


@pytest.mark.parametrize("table", [True, False], ids=["direct-table", "binary-search"])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_sparse_sampled_fibres_times_rows_match_the_dense_product(monkeypatch, table, mode):
    # Both fibre lookups (direct-address table, binary search among the non-empty fibres) give
    # the sampled MTTKRP of the dense tensor, misses (empty fibres) and repeated draws included.
    from factorch.decomp import _cp_arls as arls

    if not table:
        monkeypatch.setattr(arls, "_TABLE_LIMIT", 0)
    g = _gen(40)
    dense = torch.rand(7, 8, 9, generator=g, dtype=F64)
    dense[dense < 0.8] = 0.0
    shape = dense.shape
    count = 50
    idx = [torch.randint(0, n, (count,), generator=g) for n in shape]
    idx[mode] = torch.zeros(count, dtype=torch.int64)
    wz = torch.randn(count, 3, generator=g, dtype=F64)
    sampler = arls._Sampler(SparseTensor.from_dense(dense), None, scale=2.0)
    got = sampler._sampled_mttkrp(idx, mode, wz)
    assert (sampler.fibres[mode].table is not None) == table
    want = arls._dense_fibres_times(dense / 2.0, idx, mode, wz)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
