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


def test_the_compiled_kernel_gives_the_same_iterates(monkeypatch):
    import shutil

    import factorch.algebra._sparse_mttkrp_compiled as cmod

    if not (shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("no C++ compiler for inductor")

    monkeypatch.setattr(cmod, "MIN_ENTRIES", 2)  # run it on this small tensor
    _, sp, init = _problem(seed=2, rank=4)
    a = sparse_cp(sp, 4, init=init, max_iter=6, tol=0.0)
    b = sparse_cp(sp, 4, init=init, max_iter=6, tol=0.0, implementation="compiled")
    assert cmod.compiled_available()
    np.testing.assert_allclose(b.errors, a.errors, rtol=1e-10)
    torch.testing.assert_close(b.model.to_dense(), a.model.to_dense())


def test_matches_pyttb_cp_als_on_sptensor():
    pyttb = pytest.importorskip("pyttb")
    _, sp, init = _problem(seed=1)
    ours = sparse_cp(sp, 3, init=init, max_iter=8, tol=0.0)
    s = pyttb.sptensor(sp.indices.mT.long().numpy(), sp.values.numpy()[:, None], sp.shape)
    k0 = pyttb.ktensor([f.numpy().copy() for f in init.factors], np.ones(3))
    theirs, _, info = pyttb.cp_als(s, 3, init=k0, maxiters=8, stoptol=0, printitn=0)
    np.testing.assert_allclose(ours.model.to_dense().numpy(), theirs.full().data, atol=1e-10)
    assert ours.fit == pytest.approx(float(info["fit"]), rel=1e-9)


def test_an_exact_fit_reports_an_error_at_rounding_level():
    # The Gram formula floors near sqrt(eps) = 1.5e-8; the returned error is computed exactly.
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 2, generator=gen, dtype=F64) * 1e-200
    res = sparse_cp(SparseTensor.from_dense(x), 2, max_iter=5, generator=gen)
    resid = (x - res.model.to_dense()) * 1e200
    exact = float(torch.linalg.vector_norm(resid) / torch.linalg.vector_norm(x * 1e200))
    assert exact < 1e-12 and res.errors[-1] < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_the_large_tensor_error_formula_agrees_with_the_dense_one(monkeypatch, dtype):
    import factorch.completion._sparse_cp as module

    _, sp, init = _problem(seed=4, shape=(24, 20, 16), density=0.05)
    sp, init = sp.to(dtype=dtype), init.to(dtype=dtype)
    dense = sparse_cp(sp, 3, init=init, max_iter=4, tol=0.0)
    monkeypatch.setattr(module, "_DENSE_ERROR_LIMIT", 0)
    # several chunks of 256 entries, the last one ragged
    monkeypatch.setattr(module, "_ERROR_CHUNK_ELEMENTS", 1)
    assert sp.nnz > 256 and sp.nnz % 256
    split = sparse_cp(sp, 3, init=init, max_iter=4, tol=0.0)
    assert torch.equal(split.model.to_dense(), dense.model.to_dense())
    # the true float64 error of the returned model (in its dtype), formed densely
    xs = sp.to(dtype=F64).to_dense()
    truth = float(torch.linalg.vector_norm(xs - split.model.to(dtype=F64).to_dense()))
    truth /= float(torch.linalg.vector_norm(xs))
    assert split.errors[-1] == pytest.approx(truth, rel=1e-10)
    assert dense.errors[-1] == pytest.approx(truth, rel=1e-10) and truth > 0.1


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


@pytest.mark.parametrize(
    ("dtype", "scale"), [(torch.float32, 1e-30), (torch.float32, 1e30), (F64, 1e-200), (F64, 1e200)]
)
def test_extreme_scales_give_the_scaled_fit(dtype, scale):
    x, sp, init = _problem()
    ref = sparse_cp(sp.to(dtype=dtype), 3, init=init.to(dtype=dtype), max_iter=10, tol=0.0)
    big = SparseTensor.from_coo(sp.indices, (sp.values * scale).to(dtype), sp.shape)
    scaled_init = CPTensor(init.weights * scale, init.factors)
    res = sparse_cp(big, 3, init=scaled_init.to(dtype=dtype), max_iter=10, tol=0.0)
    assert res.model.dtype == dtype and torch.isfinite(res.model.weights).all()
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(
        res.model.weights.double() / scale, ref.model.weights.double(), rtol=rtol, atol=0
    )
    assert res.errors == pytest.approx(ref.errors, rel=rtol)
    true = float(torch.linalg.vector_norm(x.to(dtype).double() - ref.model.to_dense().double()))
    assert res.errors[-1] == pytest.approx(true / float(torch.linalg.vector_norm(x)), rel=rtol)


def test_half_precision_and_torch_sparse_inputs():
    _, sp, init = _problem()
    half = sp.to(dtype=torch.float16)
    res = sparse_cp(half, 3, init=init.to(dtype=torch.float16), max_iter=5, tol=0.0)
    assert res.model.dtype == torch.float16
    dense = half.to_dense().double()
    true = torch.linalg.vector_norm(
        dense - res.model.to(dtype=F64).to_dense()
    ) / torch.linalg.vector_norm(dense)
    assert res.errors[-1] == pytest.approx(float(true), rel=1e-6)
    a = sparse_cp(sp.to_torch(), 3, init=init, max_iter=3, tol=0.0)
    b = sparse_cp(sp, 3, init=init, max_iter=3, tol=0.0)
    torch.testing.assert_close(a.model.to_dense(), b.model.to_dense())


def test_autocast_does_not_lower_the_precision():
    _, sp, init = _problem()
    sp32, init32 = sp.to(dtype=torch.float32), init.to(dtype=torch.float32)
    plain = sparse_cp(sp32, 3, init=init32, max_iter=5, tol=0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = sparse_cp(sp32, 3, init=init32, max_iter=5, tol=0.0)
    assert under.model.dtype == torch.float32 and under.errors == plain.errors


def _empty(x):
    return SparseTensor(torch.zeros(3, 0, dtype=torch.int64), torch.zeros(0, dtype=F64), x.shape)


SPARSE_CP_ERRORS = {
    "dense tensor": (
        TypeError,
        r"sparse_cp: tensor must be a SparseTensor or a torch sparse tensor; got Tensor \(use "
        r"factorch.decomp.cp for dense tensors\)",
        lambda x, sp, init: sparse_cp(x, 2),
    ),
    "no entries": (
        ValueError,
        r"sparse_cp: tensor needs at least 2 modes and one listed entry",
        lambda x, sp, init: sparse_cp(_empty(x), 2),
    ),
    "init shape": (
        ValueError,
        r"sparse_cp: init has shape \(12, 10, 8\) and rank 3",
        lambda x, sp, init: sparse_cp(sp, 2, init=init),
    ),
    "init name": (
        ValueError,
        r"sparse_cp: init must be 'random' or a CPTensor",
        lambda x, sp, init: sparse_cp(sp, 2, init="svd"),
    ),
    "tol": (
        ValueError,
        r"sparse_cp: tol must be a finite number >= 0",
        lambda x, sp, init: sparse_cp(sp, 2, tol=-1.0),
    ),
    "absurd rank": (
        ValueError,
        r"sparse_cp: a rank-1000000000 CP model of a \(12, 10, 8\) tensor needs about",
        lambda x, sp, init: sparse_cp(sp, 10**9),
    ),
    "generator": (
        TypeError,
        r"sparse_cp: generator must be a torch.Generator or None; got int",
        lambda x, sp, init: sparse_cp(sp, 2, generator=0),
    ),
    "implementation": (
        ValueError,
        r"sparse_cp: implementation must be 'eager' or 'compiled'; got 'fast'",
        lambda x, sp, init: sparse_cp(sp, 2, implementation="fast"),
    ),
    "empty torch sparse": (
        ValueError,
        r"sparse_cp: tensor must have at least 2 modes and one listed \(observed\) entry",
        lambda x, sp, init: sparse_cp(torch.zeros(3, 4).to_sparse(), 2),
    ),
}


@pytest.mark.parametrize("case", list(SPARSE_CP_ERRORS), ids=list(SPARSE_CP_ERRORS))
def test_sparse_cp_errors(case):
    exc, message, call = SPARSE_CP_ERRORS[case]
    x, sp, init = _problem()
    with pytest.raises(exc, match=message):
        call(x, sp, init)
