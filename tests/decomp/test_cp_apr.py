"""CP-APR (Poisson CP): pyttb's iterates for MU, PDN-R at pyttb's log-likelihood, planted
recovery, non-negative iterates and monotone log-likelihood (Chi & Kolda's key property),
numerical policies and pinned errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from factorch.decomp import CPAPRResult, cp_apr
from factorch.tensors import CPTensor, SparseTensor

SHAPE, RANK = (12, 10, 8), 3


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def counts(shape=SHAPE, rank=RANK, mean=0.5, seed=0, power=3):
    g = _gen(seed)
    truth = CPTensor.from_factors(
        [torch.rand(n, rank, generator=g, dtype=torch.float64) ** power for n in shape]
    )
    dense = truth.to_dense()
    scale = mean / float(dense.mean())
    x = torch.poisson(dense * scale, generator=g)
    return x, CPTensor(truth.weights * scale, truth.factors)


def start(shape=SHAPE, rank=RANK, seed=1):
    g = _gen(seed)
    return CPTensor.from_factors([torch.rand(n, rank, generator=g, dtype=torch.float64)
                                  for n in shape])  # fmt: skip


def log_likelihood(x: torch.Tensor, model: CPTensor) -> float:
    m = model.to(dtype=torch.float64).to_dense()
    pos = x > 0
    return float((x[pos] * torch.log(m[pos])).sum() - m.sum())


# --- anchor: pyttb ----------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_mu_runs_pyttbs_iterates_from_the_same_start(sparse):
    ttb = pytest.importorskip("pyttb")
    from factorch.interop import from_pyttb, to_pyttb

    x, _ = counts()
    data = SparseTensor.from_dense(x) if sparse else x
    init = start()
    res = cp_apr(data, RANK, init=init, max_iter=25)
    model, _, out = ttb.cp_apr(to_pyttb(data), RANK, init=to_pyttb(init), maxiters=25,
                               printitn=0)  # fmt: skip
    theirs = from_pyttb(model).to_dense()
    ours = res.model.to_dense()
    assert float((ours - theirs).norm() / theirs.norm()) < 1e-12
    assert res.log_likelihood == pytest.approx(out["obj"], rel=1e-12)
    np.testing.assert_allclose(res.kkt_violations, out["kktViolations"], rtol=1e-9, atol=1e-14)
    assert res.inner_iterations == int(out["nTotalIters"])


def test_pdnr_reaches_pyttbs_log_likelihood():
    ttb = pytest.importorskip("pyttb")
    from factorch.interop import to_pyttb

    x, _ = counts(seed=2)
    sp = SparseTensor.from_dense(x)
    init = start(seed=3)
    res = cp_apr(sp, RANK, method="pdnr", init=init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, out = ttb.cp_apr(to_pyttb(sp), RANK, init=to_pyttb(init), algorithm="pdnr",
                               printitn=0)  # fmt: skip
    assert res.converged
    assert res.log_likelihood >= out["obj"] - 1e-6 * abs(out["obj"])


@pytest.mark.parametrize("sparse", [False, True])
def test_pqnr_reaches_pyttbs_pdnr_log_likelihood(sparse):
    # pyttb 1.8.6's own PQN-R stops on an AssertionError on this data (its L-BFGS direction
    # collapses to a scalar), so its PDN-R, run to the same stopping rule, is the anchor.
    ttb = pytest.importorskip("pyttb")
    from factorch.interop import to_pyttb

    x, _ = counts(seed=2)
    data = SparseTensor.from_dense(x) if sparse else x
    init = start(seed=3)
    res = cp_apr(data, RANK, method="pqnr", init=init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, out = ttb.cp_apr(to_pyttb(data), RANK, init=to_pyttb(init), algorithm="pdnr",
                               printitn=0)  # fmt: skip
    assert res.converged and res.kkt_violations[-1] < 1e-4
    assert res.log_likelihood == pytest.approx(out["obj"], rel=1e-6)


def test_pqnr_dense_and_sparse_run_the_same_iterates():
    x, _ = counts(seed=20)
    init = start(seed=21)
    a = cp_apr(x, RANK, method="pqnr", init=init, max_iter=8)
    b = cp_apr(SparseTensor.from_dense(x), RANK, method="pqnr", init=init, max_iter=8)
    assert a.inner_iterations == b.inner_iterations
    torch.testing.assert_close(a.model.to_dense(), b.model.to_dense(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("memory", [1, 5])
def test_pqnr_memory_sizes_reach_the_same_optimum(memory):
    x, _ = counts(seed=22)
    init = start(seed=23)
    ref = cp_apr(x, RANK, method="pdnr", init=init)
    res = cp_apr(x, RANK, method="pqnr", init=init, lbfgs_memory=memory)
    assert res.converged
    assert res.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-6)


# --- properties -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["mu", "pdnr", "pqnr"])
@pytest.mark.parametrize("sparse", [False, True])
def test_iterates_non_negative_and_log_likelihood_monotone(method, sparse):
    x, _ = counts(seed=4)
    data = SparseTensor.from_dense(x) if sparse else x
    res = cp_apr(data, RANK, method=method, init=start(seed=5), kappa=0.0, max_iter=40)
    assert isinstance(res, CPAPRResult)
    lls = np.array(res.log_likelihoods)
    assert (np.diff(lls) >= -1e-10 * abs(lls[-1])).all()
    model = res.model
    assert bool((model.weights >= 0).all()) and all(bool((f >= 0).all()) for f in model.factors)
    assert torch.allclose(model.factors[0].sum(0), torch.ones(RANK, dtype=torch.float64))
    assert res.log_likelihood == pytest.approx(log_likelihood(x, model), rel=1e-10)
    assert model.weights.tolist() == sorted(model.weights.tolist(), reverse=True)


@pytest.mark.parametrize("method", ["pdnr", "pqnr"])
def test_planted_recovery_float64(method):
    x, truth = counts(shape=(30, 25, 20), mean=200.0, seed=6, power=1)
    res = cp_apr(SparseTensor.from_dense(x), RANK, method=method, generator=_gen(7))
    assert res.converged and res.kkt_violations[-1] < 1e-4
    assert res.model.factor_match(truth).score > 0.99


def test_mu_and_pdnr_agree_at_convergence():
    x, _ = counts(mean=50.0, seed=8, power=1)
    init = start(seed=9)
    mu = cp_apr(x, RANK, init=init, max_iter=3000, tol=1e-7)
    pdnr = cp_apr(x, RANK, method="pdnr", init=init, tol=1e-7)
    pqnr = cp_apr(x, RANK, method="pqnr", init=init, tol=1e-7)
    assert pdnr.log_likelihood == pytest.approx(mu.log_likelihood, rel=1e-6)
    assert pqnr.log_likelihood == pytest.approx(mu.log_likelihood, rel=1e-6)


def test_empty_slices_get_zero_rows():
    x, _ = counts(seed=10)
    x[3] = 0.0
    for method in ("mu", "pdnr", "pqnr"):
        res = cp_apr(SparseTensor.from_dense(x), RANK, method=method, generator=_gen(1))
        assert float(res.model.factors[0][3].abs().max()) < 1e-6


# --- numerical policies -----------------------------------------------------------------------
def test_extreme_scales_are_the_scaled_fit_of_ordinary_data():
    # outside the safe band the data are divided by an exact power of two p (the KKT rule
    # compares B with 1 - Phi, so the fit itself is that of x / p, scaled back exactly)
    x, _ = counts(seed=11)
    init = start(seed=12)
    p = 8.0  # power_of_two_scale of x (max count in [4, 8))
    assert 4 <= float(x.max()) < 8
    ref = cp_apr(x / p, RANK, init=CPTensor(init.weights / p, init.factors), max_iter=10)
    for s in (2.0**-600, 2.0**600):
        res = cp_apr(x * s, RANK, init=CPTensor(init.weights * s, init.factors), max_iter=10)
        torch.testing.assert_close(res.model.weights / (s * p), ref.model.weights, rtol=1e-12,
                                   atol=0)  # fmt: skip
        assert all(math.isfinite(v) for v in res.log_likelihoods)
        assert res.log_likelihood == pytest.approx(log_likelihood(x * s, res.model), rel=1e-9)


def test_float32_sparse_and_tiny_counts():
    x, _ = counts(seed=13)
    res = cp_apr(SparseTensor.from_dense(x.float() * 1e-30), RANK, generator=_gen(0),
                 max_iter=30)  # fmt: skip
    assert res.model.dtype == torch.float32
    assert bool(torch.isfinite(res.model.weights).all()) and float(res.model.weights[0]) > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    x, _ = counts(seed=14)
    res = cp_apr(x.to(dtype), RANK, generator=_gen(0), max_iter=5)
    ref = cp_apr(x.to(dtype).float(), RANK, generator=_gen(0), max_iter=5)
    assert res.model.dtype == dtype
    torch.testing.assert_close(res.model.to_dense().float(), ref.model.to_dense(), rtol=1e-2,
                               atol=1e-2)  # fmt: skip


def test_autocast_numpy_and_torch_sparse_input():
    x, _ = counts(seed=15)
    init = start(seed=16)
    ref = cp_apr(x, RANK, init=init, max_iter=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = cp_apr(x, RANK, init=init, max_iter=5)
    b = cp_apr(x.numpy(), np.int64(RANK), init=init, max_iter=5)
    c = cp_apr(x.to_sparse(), RANK, init=init, max_iter=5)
    for r in (a, b, c):
        assert r.model.dtype == torch.float64
        torch.testing.assert_close(r.model.to_dense(), ref.model.to_dense(), rtol=1e-12, atol=0)


def test_memory_guard_refuses_an_absurd_rank_instantly():
    x, _ = counts()
    with pytest.raises(ValueError, match=r"cp_apr: CP-APR at rank 1000000000 needs about"):
        cp_apr(x, 10**9)


# --- pinned errors ----------------------------------------------------------------------------
X = torch.ones(3, 4, 5, dtype=torch.float64)
BAD = [
    ((X - 2, 2), {}, ValueError, r"cp_apr: tensor must be non-negative \(Poisson counts\); got 60"),
    ((X * 0, 2), {}, ValueError, r"cp_apr: tensor is all zeros"),
    ((X.long(), 2), {}, TypeError, r"cp_apr: tensor must have a floating-point"),
    ((torch.ones(4), 2), {}, ValueError, r"cp_apr: tensor must have at least 2 dimensions"),
    ((X.to(torch.complex128), 2), {}, TypeError, r"cp_apr: tensor must be real"),
    (("counts", 2), {}, TypeError, r"cp_apr: tensor must be a torch.Tensor or a numpy array"),
    ((X, 0), {}, ValueError, r"cp_apr: rank must be a positive int; got 0"),
    ((X, 2), {"method": "newton"}, ValueError,
     r"cp_apr: method must be one of \('mu', 'pdnr', 'pqnr'\); got 'newton'"),
    ((X, 2), {"method": "pqnr", "lbfgs_memory": 0}, ValueError,
     r"cp_apr: lbfgs_memory must be a positive int; got 0"),
    ((X, 2), {"method": "pqnr", "lbfgs_memory": 2.5}, TypeError, r"cp_apr: lbfgs_memory must be"),
    ((X, 2), {"init": "svd"}, ValueError, r"cp_apr: init must be 'random' or a CPTensor"),
    ((X, 2), {"init": [1, 2]}, TypeError, r"cp_apr: init must be 'random' or a CPTensor; got list"),
    ((X, 3), {"init": start((3, 4, 5), 2)}, ValueError, r"cp_apr: init has shape \(3, 4, 5\) and "
     r"rank 2; expected shape \(3, 4, 5\) and rank 3"),
    ((X, 2), {"init": start((3, 4, 5), 2).to(dtype=torch.float32)}, ValueError,
     r"cp_apr: init is torch.float32 but the tensor is torch.float64"),
    ((X, 2), {"tol": -1.0}, ValueError, r"cp_apr: tol must be a non-negative finite float"),
    ((X, 2), {"kappa": "a"}, TypeError, r"cp_apr: kappa must be a non-negative float"),
    ((X, 2), {"max_inner": 0}, ValueError, r"cp_apr: max_inner must be a positive int"),
    ((X, 2), {"generator": 0}, TypeError, r"cp_apr: generator must be a torch.Generator"),
    ((SparseTensor.from_dense(X * 0), 2), {}, ValueError, r"cp_apr: tensor has no listed entries"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input_is_refused_with_a_pinned_message(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cp_apr(*args, **kwargs)


def test_negative_init_is_refused():
    init = start((3, 4, 5), 2)
    bad = CPTensor(init.weights, (-init.factors[0], *init.factors[1:]))
    with pytest.raises(ValueError, match=r"cp_apr: init must have non-negative weights"):
        cp_apr(X, 2, init=bad)
