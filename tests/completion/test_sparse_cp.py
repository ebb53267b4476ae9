"""sparse_cp: the same iterates as dense CP-ALS of the densified tensor and as pyttb's cp_als on
an sptensor; the free error formula is exact; pinned errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.completion import sparse_cp
from factorch.decomp import cp
from factorch.tensors import CPTensor, SparseTensor

F64 = torch.float64


def _problem(seed=0, shape=(12, 10, 8), density=0.3, rank=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=F64)
    x = x * (torch.rand(shape, generator=gen, dtype=F64) < density)
    init = CPTensor.from_factors([torch.rand(s, rank, generator=gen, dtype=F64) for s in shape])
    return x, SparseTensor.from_dense(x), init


def test_iterates_equal_dense_cp_als_of_the_densified_tensor():
    x, sp, init = _problem()
    a = sparse_cp(sp, 3, init=init, max_iter=10, tol=0.0)
    b = cp(x, 3, init=init, max_iter=10, tol=0.0)
    assert a.iterations == 10 and not a.converged
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-10)
    torch.testing.assert_close(a.model.to_dense(), b.model.to_dense())
    exact = float(torch.linalg.vector_norm(x - a.model.to_dense()) / torch.linalg.vector_norm(x))
    assert a.errors[-1] == pytest.approx(exact, rel=1e-10)


def test_matches_pyttb_cp_als_on_sptensor():
    pyttb = pytest.importorskip("pyttb")
    _, sp, init = _problem(seed=1)
    ours = sparse_cp(sp, 3, init=init, max_iter=8, tol=0.0)
    s = pyttb.sptensor(sp.indices.mT.long().numpy(), sp.values.numpy()[:, None], sp.shape)
    k0 = pyttb.ktensor([f.numpy().copy() for f in init.factors], np.ones(3))
    theirs, _, info = pyttb.cp_als(s, 3, init=k0, maxiters=8, stoptol=0, printitn=0)
    np.testing.assert_allclose(ours.model.to_dense().numpy(), theirs.full().data, atol=1e-10)
    assert ours.fit == pytest.approx(float(info["fit"]), rel=1e-9)


def test_float32_random_start_recovers_a_planted_sparse_low_rank_tensor():
    gen = torch.Generator().manual_seed(2)
    factors = []
    for s in (60, 50, 40):
        f = torch.randn(s, 2, generator=gen) * (torch.rand(s, 2, generator=gen) < 0.3)
        factors.append(f)
    x = CPTensor.from_factors(factors).to_dense()
    sp = SparseTensor.from_dense(x)
    assert sp.density < 0.1
    res = sparse_cp(sp, 2, generator=gen, max_iter=300, tol=1e-7)
    assert res.model.dtype == torch.float32 and res.converged
    exact = float(torch.linalg.vector_norm(x - res.model.to_dense()) / torch.linalg.vector_norm(x))
    assert exact < 1e-3


def test_sparse_cp_errors():
    x, sp, init = _problem()
    with pytest.raises(TypeError, match=r"sparse_cp: tensor must be a SparseTensor; got Tensor"):
        sparse_cp(x, 2)  # type: ignore[arg-type]
    empty = SparseTensor(torch.zeros(3, 0, dtype=torch.int64), torch.zeros(0, dtype=F64), x.shape)
    with pytest.raises(ValueError, match=r"sparse_cp: tensor needs at least 2 modes and one"):
        sparse_cp(empty, 2)
    with pytest.raises(ValueError, match=r"sparse_cp: init has shape \(12, 10, 8\) and rank 3"):
        sparse_cp(sp, 2, init=init)
    with pytest.raises(ValueError, match=r"sparse_cp: init must be 'random' or a CPTensor"):
        sparse_cp(sp, 2, init="svd")
    with pytest.raises(ValueError, match=r"sparse_cp: tol must be a finite number >= 0"):
        sparse_cp(sp, 2, tol=-1.0)
