"""Tensor regression estimators: TensorLy's iterates (CP, Tucker) and predictions (CP-PLSR) on the
same data from the same start, planted recovery, monotone objective, policies, pinned errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch._numerics import power_of_two_scale
from factorch.regression import CPPLSR, CPRegressor, TuckerRegressor
from factorch.tensors import CPTensor, TuckerTensor


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def cp_problem(n=200, xshape=(8, 9), yshape=(), rank=2, noise=0.0, seed=0):
    g = _gen(seed)
    x = torch.randn(n, *xshape, generator=g, dtype=torch.float64)
    w = CPTensor.from_factors(
        [torch.randn(i, rank, generator=g, dtype=torch.float64) for i in (*xshape, *yshape)]
    )
    y = torch.tensordot(x, w.to_dense(), dims=len(xshape))
    return x, y + noise * torch.randn(y.shape, generator=g, dtype=torch.float64), w


# --- anchors: TensorLy ------------------------------------------------------------------------
@pytest.mark.parametrize(("xshape", "yshape"), [((6, 7), ()), ((5, 6, 4), ()), ((6, 7), (3,))])
def test_cp_regressor_runs_tensorlys_iterates(tensorly_backend, xshape, yshape):
    tensorly_backend("numpy")
    from tensorly.regression import CPRegressor as TLCPRegressor

    x, y, _ = cp_problem(n=80, xshape=xshape, yshape=yshape, noise=0.1)
    rng = np.random.RandomState(0)
    start = [rng.randn(i, 3) for i in (*xshape, *yshape)]
    theirs = TLCPRegressor(3, reg_W=0.5, n_iter_max=15, tol=0, verbose=0)
    theirs.random_state = np.random.RandomState(0)  # draws the same start as `start`
    theirs.fit(x.numpy(), y.numpy())
    init = CPTensor.from_factors([torch.from_numpy(f) for f in start])
    ours = CPRegressor(3, l2=0.5, max_iter=15, tol=0, init=init).fit(x, y)
    w = theirs.weight_tensor_
    np.testing.assert_allclose(ours.coef_.to_dense().numpy(), w, rtol=0,
                               atol=1e-10 * np.abs(w).max())  # fmt: skip
    np.testing.assert_allclose(ours.predict(x).numpy(), theirs.predict(x.numpy()), rtol=1e-9,
                               atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("n", [80, 10], ids=["kron-gemm", "mode-products"])  # prod(rank) = 12
def test_tucker_regressor_runs_tensorlys_iterates(tensorly_backend, n):
    tensorly_backend("numpy")
    from tensorly.regression import TuckerRegressor as TLTuckerRegressor

    x, y, _ = cp_problem(n=n, xshape=(6, 7, 5), noise=0.1)
    rng = np.random.RandomState(0)
    core, factors = rng.randn(2, 3, 2), [rng.randn(i, r) for i, r in zip((6, 7, 5), (2, 3, 2))]
    theirs = TLTuckerRegressor([2, 3, 2], reg_W=0.5, n_iter_max=15, tol=0, verbose=0)
    theirs.random_state = np.random.RandomState(0)
    theirs.fit(x.numpy(), y.numpy())
    init = TuckerTensor(torch.from_numpy(core), [torch.from_numpy(f) for f in factors])
    ours = TuckerRegressor((2, 3, 2), l2=0.5, max_iter=15, tol=0, init=init).fit(x, y)
    w = theirs.weight_tensor_
    np.testing.assert_allclose(ours.coef_.to_dense().numpy(), w, rtol=0,
                               atol=1e-10 * np.abs(w).max())  # fmt: skip


@pytest.mark.parametrize(
    ("xshape", "m", "comps"), [((6, 7), 1, 2), ((5, 6, 4), 3, 3), ((9,), 2, 2)]
)
def test_cp_plsr_predicts_as_tensorly(tensorly_backend, xshape, m, comps):
    tensorly_backend("numpy")
    from tensorly.regression import CP_PLSR

    g = _gen(1)
    x = torch.randn(40, *xshape, generator=g, dtype=torch.float64)
    y = torch.randn(40, m, generator=g, dtype=torch.float64) + 2 * x.reshape(40, -1)[:, :m]
    theirs = CP_PLSR(comps, tol=1e-9).fit(x.numpy(), y.numpy())
    ours = CPPLSR(comps).fit(x, y)
    new = torch.randn(15, *xshape, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(ours.predict(new).numpy(), theirs.predict(new.numpy()), rtol=1e-9,
                               atol=1e-9)  # fmt: skip
    scores = ours.transform(new)
    assert scores.shape == (15, comps)


# --- planted recovery and properties ----------------------------------------------------------
def test_cp_regressor_recovers_a_planted_rank_two_coefficient():
    x, y, w = cp_problem(n=300, xshape=(8, 9, 7), rank=2)
    model = CPRegressor(2, max_iter=300, tol=1e-14, generator=_gen(3)).fit(x, y)
    assert _rel(model.coef_.to_dense(), w.to_dense()) < 1e-8
    losses = np.array(model.losses_)
    assert (np.diff(losses) <= 1e-12 * losses[0]).all()


def test_cp_regressor_tensor_responses():
    x, y, w = cp_problem(n=200, xshape=(6, 7), yshape=(3, 4), rank=2)
    model = CPRegressor(2, max_iter=300, tol=1e-14, generator=_gen(4)).fit(x, y)
    assert model.predict(x).shape == (200, 3, 4)
    assert _rel(model.coef_.to_dense(), w.to_dense()) < 1e-7


def test_tucker_regressor_recovers_a_planted_coefficient():
    g = _gen(5)
    x = torch.randn(300, 7, 8, generator=g, dtype=torch.float64)
    w = TuckerTensor(torch.randn(2, 3, generator=g, dtype=torch.float64),
                     [torch.randn(7, 2, generator=g, dtype=torch.float64),
                      torch.randn(8, 3, generator=g, dtype=torch.float64)]).to_dense()  # fmt: skip
    y = torch.tensordot(x, w, dims=2)
    model = TuckerRegressor((2, 3), max_iter=300, tol=1e-14, generator=_gen(6)).fit(x, y)
    assert _rel(model.coef_.to_dense(), w) < 1e-8
    assert _rel(model.predict(x), y) < 1e-8
    assert (np.diff(np.array(model.losses_)) <= 1e-12 * model.losses_[0]).all()


def test_cp_plsr_recovers_planted_latent_components():
    # X = sum_c t_c o a_c o b_c with Y = T C: two components explain both blocks exactly
    g = _gen(7)
    t = torch.randn(60, 2, generator=g, dtype=torch.float64)
    a = torch.linalg.qr(torch.randn(6, 2, generator=g, dtype=torch.float64)).Q
    b = torch.linalg.qr(torch.randn(7, 2, generator=g, dtype=torch.float64)).Q
    x = torch.einsum("sc,ic,jc->sij", t, a, b)
    y = t @ torch.randn(2, 3, generator=g, dtype=torch.float64)
    model = CPPLSR(2).fit(x, y)
    assert _rel(model.predict(x), y) < 1e-8
    t_new = torch.randn(10, 2, generator=g, dtype=torch.float64)
    x_new = torch.einsum("sc,ic,jc->sij", t_new, a, b)
    assert _rel(model.predict(x_new) - y.mean(0), (t_new - t.mean(0)) @ torch.linalg.lstsq(
        t - t.mean(0), y - y.mean(0)).solution) < 1e-8  # fmt: skip


# --- numerical policies -----------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_scales_same_predictions(scale):
    x, y, _ = cp_problem(n=100, noise=0.1)
    ref = CPRegressor(2, max_iter=20, generator=_gen(8)).fit(x, y)
    res = CPRegressor(2, max_iter=20, generator=_gen(8)).fit(x, y * scale)
    torch.testing.assert_close(res.predict(x) / scale, ref.predict(x), rtol=1e-8, atol=1e-10)
    tref = TuckerRegressor((2, 2), max_iter=20, generator=_gen(8)).fit(x, y)
    tres = TuckerRegressor((2, 2), max_iter=20, generator=_gen(8)).fit(x * scale, y)
    torch.testing.assert_close(tres.predict(x * scale), tref.predict(x), rtol=1e-8, atol=1e-10)
    pref = CPPLSR(2).fit(x, y)
    pres = CPPLSR(2).fit(x * scale, y * scale)
    torch.testing.assert_close(pres.predict(x * scale) / scale, pref.predict(x), rtol=1e-8,
                               atol=1e-10)  # fmt: skip


def test_penalty_is_rescaled_with_the_data_outside_the_safe_band():
    # 2**300 is outside float64's safe band: the data are divided by powers of two inside and
    # l2 mapped so that the problem is the same. Equivalent problems: y -> s y needs
    # l2 -> l2 s^(2 - 2/K) for K CP factors (here K = 2); x -> s x needs l2 -> l2 s^(2/3) for a
    # Tucker weight with 3 blocks (two factors and the core).
    x, y, _ = cp_problem(n=100, noise=0.1)
    x, y = x / power_of_two_scale(x), y / power_of_two_scale(y)  # largest entries in [0.5, 1)
    s = 2.0**300
    ref = CPRegressor(2, l2=0.1, max_iter=20, generator=_gen(8)).fit(x, y)
    res = CPRegressor(2, l2=0.1 * s, max_iter=20, generator=_gen(8)).fit(x, y * s)
    torch.testing.assert_close(res.predict(x) / s, ref.predict(x), rtol=1e-8, atol=1e-10)
    tref = TuckerRegressor((2, 2), l2=0.1, max_iter=20, generator=_gen(8)).fit(x, y)
    tres = TuckerRegressor((2, 2), l2=0.1 * 2.0**200, max_iter=20, generator=_gen(8)).fit(x * s, y)
    torch.testing.assert_close(tres.predict(x * s), tref.predict(x), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    x, y, _ = cp_problem(n=100, noise=0.1)
    xh, yh = x.to(dtype), y.to(dtype)
    for make in (lambda: CPRegressor(2, generator=_gen(0), max_iter=10),
                 lambda: TuckerRegressor((2, 2), generator=_gen(0), max_iter=10),
                 lambda: CPPLSR(2)):  # fmt: skip
        pred = make().fit(xh, yh).predict(xh)
        ref = make().fit(xh.float(), yh.float()).predict(xh.float())
        assert pred.dtype == dtype and bool(torch.isfinite(pred).all())
        assert torch.equal(pred, ref.to(dtype))


def test_autocast_numpy_and_generator():
    x, y, _ = cp_problem(n=100, noise=0.1)
    xf, yf = x.float(), y.float()
    ref = CPRegressor(2, generator=_gen(0), max_iter=10).fit(xf, yf).predict(xf)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = CPRegressor(2, generator=_gen(0), max_iter=10).fit(xf, yf).predict(xf)
    assert got.dtype == torch.float32 and torch.equal(got, ref)
    a = CPRegressor(np.int64(2), generator=_gen(0), max_iter=10).fit(x.numpy(), y.numpy())
    assert isinstance(a.coef_, CPTensor) and a.coef_.dtype == torch.float64


def test_memory_guard():
    x, y, _ = cp_problem(n=10)
    with pytest.raises(ValueError, match=r"CPRegressor.fit: the normal equations and "
                       r"contractions needs about"):  # fmt: skip
        CPRegressor(10**9).fit(x, y)


# --- pinned errors ----------------------------------------------------------------------------
X, Y = torch.ones(5, 3, 4, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
BAD = [
    (lambda: CPRegressor(0), ValueError, r"CPRegressor: rank must be a positive int; got 0"),
    (lambda: CPRegressor(2, l2=-1.0), ValueError, r"CPRegressor: l2 must be a non-negative"),
    (lambda: CPRegressor(2, init="svd"), ValueError, r"CPRegressor: init must be 'random' or a"),
    (lambda: CPRegressor(2, generator=1), TypeError, r"CPRegressor: generator must be a torch"),
    (lambda: CPRegressor(2).fit(X, torch.ones(4, dtype=torch.float64)), ValueError,
     r"CPRegressor.fit: x and y must have one row per sample; x has 5 samples and y has 4"),
    (lambda: CPRegressor(2).fit(torch.ones(5), Y), ValueError,
     r"CPRegressor.fit: x must have at least 2 dimensions"),
    (lambda: CPRegressor(2).fit(X, Y.float()), TypeError,
     r"CPRegressor.fit: y is torch.float32 on cpu but x is torch.float64"),
    (lambda: CPRegressor(2).fit(X.long(), Y), TypeError,
     r"CPRegressor.fit: x must have a floating-point"),
    (lambda: CPRegressor(2).predict(X), ValueError,
     r"CPRegressor.predict: the model is not fitted"),
    (lambda: CPRegressor(2, max_iter=2).fit(X, Y).predict(torch.ones(5, 4, 3)), ValueError,
     r"CPRegressor.predict: x has feature shape \(4, 3\) but the model was fitted on features "
     r"of shape \(3, 4\)"),
    (lambda: CPRegressor(2, init=CPTensor.from_factors([torch.ones(2, 2)])).fit(X, Y), ValueError,
     r"CPRegressor.fit: init has shape \(2,\) and rank 2; expected shape \(3, 4\)"),
    (lambda: TuckerRegressor(2), TypeError, r"TuckerRegressor: rank must be a non-empty tuple"),
    (lambda: TuckerRegressor((2, 5)).fit(X, Y), ValueError,
     r"TuckerRegressor.fit: rank \(2, 5\) must have one entry per feature mode of \(3, 4\)"),
    (lambda: TuckerRegressor((2, 2)).fit(X, torch.ones(5, 2, dtype=torch.float64)), ValueError,
     r"TuckerRegressor.fit: y must be 1-D"),
    (lambda: TuckerRegressor((2, 2)).predict(X), ValueError,
     r"TuckerRegressor.predict: the model is not fitted yet"),
    (lambda: CPPLSR(0), ValueError, r"CPPLSR: n_components must be a positive int"),
    (lambda: CPPLSR(1).fit(X, torch.ones(5, 2, 2, dtype=torch.float64)), ValueError,
     r"CPPLSR.fit: y must be \(n,\) or \(n, m\)"),
    (lambda: CPPLSR(1).predict(X), ValueError, r"CPPLSR.predict: the model is not fitted yet"),
    (lambda: CPPLSR(1).fit(X, Y).transform(torch.ones(5, 4, 3, dtype=torch.float64)), ValueError,
     r"CPPLSR.transform: x has feature shape \(4, 3\)"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "exc", "match"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_is_refused_with_a_pinned_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
