"""Tests for factorch.decomp.cp_nn.non_negative_cp (HALS and multiplicative updates)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import DecompositionResult, non_negative_cp
from factorch.tensors import CPTensor

# Planted recovery tolerances per dtype (noise-free, HALS): relative error after convergence.
RECOVERY_TOL = {torch.float64: 1e-6, torch.float32: 1e-3}
# Monotonicity slack: e[k+1] <= e[k] * (1 + MONO_REL).
MONO_REL = 1e-10


def planted(shape, rank, seed, dtype=torch.float64, density=0.5, signed_modes=()):
    """A CP tensor with sparse non-negative factors (well separated columns)."""
    g = torch.Generator().manual_seed(seed)
    factors = []
    for n, size in enumerate(shape):
        f = torch.rand(size, rank, generator=g, dtype=dtype)
        f = f * (torch.rand(size, rank, generator=g, dtype=dtype) < density)
        if n in signed_modes:
            f = torch.randn(size, rank, generator=g, dtype=dtype)
        factors.append(f)
    return CPTensor.from_factors(factors)


def with_noise(x, level, seed):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return x + noise * (level * x.norm() / noise.norm())


def true_error(result, x):
    return float((result.model.to_dense() - x).norm() / x.norm())


def assert_monotone(values, rel=MONO_REL):
    v = torch.tensor(values, dtype=torch.float64)
    assert bool((v[1:] <= v[:-1] * (1 + rel) + 1e-300).all()), values


# --- planted recovery ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", [0, 1])
def test_hals_recovers_planted_noise_free(dtype, seed):
    cp = planted((10, 11, 12), 3, seed, dtype=dtype)
    x = cp.to_dense()
    res = non_negative_cp(x, 3, max_iter=200, tol=1e-10 if dtype == torch.float64 else 1e-7)
    assert isinstance(res, DecompositionResult)
    assert res.model.dtype == dtype
    for f in res.model.factors:
        assert bool((f >= 0).all())
    assert true_error(res, x) < RECOVERY_TOL[dtype]
    assert cp.congruence(res.model) > 0.99


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_noisy_planted_reaches_noise_level(method):
    cp = planted((10, 11, 12), 3, 2)
    x = cp.to_dense()
    xn = with_noise(x, 0.01, 7).clamp_min(0)
    level = float((xn - x).norm() / xn.norm())
    res = non_negative_cp(xn, 3, method=method, max_iter=300, tol=1e-10)
    for f in res.model.factors:
        assert bool((f >= 0).all())
    err = true_error(res, xn)
    assert 0.8 * level < err <= level * 1.001
    assert cp.congruence(res.model) > 0.99
    # The cheap error (from MTTKRP and Grams) matches the reconstructed one.
    assert abs(res.errors[-1] - err) < 1e-9


def test_result_is_normalized_and_reported_errors_match():
    cp = planted((6, 7, 8), 2, 3)
    x = with_noise(cp.to_dense(), 0.05, 1).clamp_min(0)
    res = non_negative_cp(x, 2, max_iter=5, tol=0)
    assert res.iterations == 5 and len(res.errors) == 5 and not res.converged
    for f in res.model.factors:
        torch.testing.assert_close(
            torch.linalg.vector_norm(f, dim=0), torch.ones(2, dtype=x.dtype), rtol=1e-12, atol=0
        )
    assert abs(res.errors[-1] - true_error(res, x)) < 1e-10
    assert res.extras["method"] == "hals"
    assert len(res.extras["objective"]) == 5


# --- monotonicity ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["hals", "mu"])
@pytest.mark.parametrize("init", ["svd", "random"])
def test_error_never_increases(method, init):
    cp = planted((9, 10, 11), 4, 4, density=0.7)
    x = with_noise(cp.to_dense(), 0.05, 3).clamp_min(0)
    g = torch.Generator().manual_seed(0)
    res = non_negative_cp(x, 4, method=method, init=init, max_iter=60, tol=0, generator=g)
    assert_monotone(res.errors)
    assert res.errors[-1] < res.errors[0]


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_penalised_objective_never_increases_with_l1(method):
    cp = planted((9, 10, 11), 3, 5, density=0.7)
    x = with_noise(cp.to_dense(), 0.05, 3).clamp_min(0)
    res = non_negative_cp(x, 3, method=method, l1=[0.5, 0.1, 0.2], max_iter=40, tol=0)
    assert_monotone(res.extras["objective"])


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_free_mode_on_signed_data(method):
    cp = planted((8, 9, 10), 3, 6, signed_modes=(2,))
    x = with_noise(cp.to_dense(), 0.01, 2)
    assert bool((x < 0).any())
    res = non_negative_cp(x, 3, method=method, nonneg_modes=[0, 1], max_iter=150, tol=0)
    assert_monotone(res.errors)
    f0, f1, f2 = res.model.factors
    assert bool((f0 >= 0).all()) and bool((f1 >= 0).all())
    assert bool((f2 < 0).any())
    assert res.extras["nonneg_modes"] == (0, 1)
    if method == "hals":
        assert res.errors[-1] < 0.011


def test_no_constrained_mode_is_plain_als():
    cp = planted((8, 9, 10), 3, 7, signed_modes=(0, 1, 2))
    x = cp.to_dense()
    res = non_negative_cp(x, 3, nonneg_modes=(), max_iter=200, tol=1e-12)
    assert res.extras["nonneg_modes"] == ()
    assert true_error(res, x) < 1e-6
    assert cp.congruence(res.model) > 0.99


def test_free_mode_with_l1_uses_soft_thresholding():
    cp = planted((8, 9, 10), 3, 6, signed_modes=(2,))
    x = with_noise(cp.to_dense(), 0.01, 2)
    res = non_negative_cp(x, 3, nonneg_modes=(0, 1), l1=[0.0, 0.0, 0.5], max_iter=40, tol=0)
    assert_monotone(res.extras["objective"])
    dense = non_negative_cp(x, 3, nonneg_modes=(0, 1), max_iter=40, tol=0)
    assert int((res.model.factors[2] == 0).sum()) > int((dense.model.factors[2] == 0).sum())


def test_l1_makes_factors_sparser():
    cp = planted((12, 12, 12), 3, 8, density=0.6)
    x = with_noise(cp.to_dense(), 0.02, 2).clamp_min(0)
    plain = non_negative_cp(x, 3, max_iter=60, tol=0)
    sparse = non_negative_cp(x, 3, l1=2.0, max_iter=60, tol=0)
    zeros = [sum(int((f == 0).sum()) for f in r.model.factors) for r in (plain, sparse)]
    assert zeros[1] > zeros[0]


# --- side by side with TensorLy ----------------------------------------------------------------


def _tl_error(tl, cp, x):
    return float(np.linalg.norm(tl.cp_to_tensor(cp) - x) / np.linalg.norm(x))


def test_hals_matches_tensorly_error_from_same_init(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import non_negative_parafac_hals

    cp = planted((12, 13, 14), 4, 9, density=0.8)
    x = with_noise(cp.to_dense(), 0.01, 4).clamp_min(0)
    g = torch.Generator().manual_seed(3)
    init = [torch.rand(s, 4, generator=g, dtype=torch.float64) for s in x.shape]
    ours = non_negative_cp(x, 4, init=CPTensor.from_factors(init), max_iter=60, tol=0)
    tl_init = tl.cp_tensor.CPTensor((np.ones(4), [f.numpy().copy() for f in init]))
    theirs = non_negative_parafac_hals(x.numpy(), 4, init=tl_init, n_iter_max=60, tol=0)
    e_tl = _tl_error(tl, theirs, x.numpy())
    # Same problem, same start, same number of outer iterations; inner sweeps differ (TensorLy:
    # 5 per mode; ours: adaptive), so require the errors to agree within 5 % of TensorLy's.
    assert true_error(ours, x) <= 1.05 * e_tl
    assert true_error(ours, x) >= 0.95 * e_tl


def test_mu_equals_tensorly_mu_from_same_init(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import non_negative_parafac

    cp = planted((7, 8, 9), 3, 10, density=0.8)
    x = with_noise(cp.to_dense(), 0.01, 5).clamp_min(0)
    g = torch.Generator().manual_seed(4)
    init = [torch.rand(s, 3, generator=g, dtype=torch.float64) + 0.1 for s in x.shape]
    ours = non_negative_cp(x, 3, method="mu", init=CPTensor.from_factors(init), max_iter=30, tol=0)
    tl_init = tl.cp_tensor.CPTensor((np.ones(3), [f.numpy().copy() for f in init]))
    theirs = non_negative_parafac(x.numpy(), 3, init=tl_init, n_iter_max=30, tol=0)
    # Same update rule (Lee--Seung/Welling--Weber): identical iterates up to rounding.
    np.testing.assert_allclose(
        ours.model.to_dense().numpy(), tl.cp_to_tensor(theirs), rtol=1e-9, atol=1e-12
    )


# --- options, determinism, callbacks -----------------------------------------------------------


def test_random_init_is_deterministic_given_generator():
    cp = planted((6, 7, 8), 2, 11)
    x = cp.to_dense()
    runs = [
        non_negative_cp(
            x, 2, init="random", max_iter=5, tol=0, generator=torch.Generator().manual_seed(5)
        )
        for _ in range(2)
    ]
    assert runs[0].errors == runs[1].errors
    for a, b in zip(runs[0].model.factors, runs[1].model.factors):
        assert torch.equal(a, b)


def test_init_cp_tensor_is_not_modified_and_weights_are_used():
    cp = planted((6, 7, 8), 2, 12)
    x = cp.to_dense()
    g = torch.Generator().manual_seed(1)
    init = CPTensor(
        torch.tensor([2.0, 3.0], dtype=torch.float64),
        tuple(torch.rand(s, 2, generator=g, dtype=torch.float64) for s in x.shape),
    )
    copies = [f.clone() for f in init.factors]
    res = non_negative_cp(x, 2, method="mu", init=init, max_iter=1, tol=0)
    for a, b in zip(init.factors, copies):
        assert torch.equal(a, b)
    # The same init with the weights multiplied into factor 0 by hand gives the same result.
    manual = CPTensor.from_factors([copies[0] * init.weights, copies[1], copies[2]])
    res2 = non_negative_cp(x, 2, method="mu", init=manual, max_iter=1, tol=0)
    torch.testing.assert_close(res.model.to_dense(), res2.model.to_dense())


def test_callback_sees_states_and_can_stop():
    x = planted((6, 7, 8), 2, 13).to_dense()
    seen = []

    def cb(state):
        seen.append((state.iteration, state.error, state.model.shape))
        return state.iteration == 3

    res = non_negative_cp(x, 2, max_iter=50, tol=0, callback=cb)
    assert res.iterations == 3 and not res.converged
    assert [s[0] for s in seen] == [1, 2, 3]
    # The last entry is recomputed exactly (the callback saw the Gram estimate).
    assert seen[-1][1] == pytest.approx(res.errors[-1], rel=1e-10) and seen[0][2] == (6, 7, 8)


def test_tol_stops_and_reports_convergence():
    x = with_noise(planted((6, 7, 8), 2, 14).to_dense(), 0.05, 0).clamp_min(0)
    res = non_negative_cp(x, 2, max_iter=500, tol=1e-6)
    assert res.converged and res.iterations < 500
    assert abs(res.errors[-1] - res.errors[-2]) < 1e-6


def test_rank_larger_than_a_mode_and_four_way():
    cp = planted((3, 5, 4, 6), 4, 15, density=0.8)
    x = with_noise(cp.to_dense(), 0.01, 1).clamp_min(0)
    res = non_negative_cp(x, 4, max_iter=100, tol=0, generator=torch.Generator().manual_seed(0))
    assert res.model.shape == (3, 5, 4, 6) and res.model.rank == 4
    assert_monotone(res.errors)
    assert res.errors[-1] < 0.1


def test_matrix_input_is_nmf():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(20, 3, generator=g, dtype=torch.float64) @ torch.rand(
        3, 15, generator=g, dtype=torch.float64
    )
    res = non_negative_cp(x, 3, max_iter=300, tol=0)
    assert true_error(res, x) < 1e-3


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["hals", "mu"])
def test_cuda_matches_cpu(method):
    cp = planted((8, 9, 10), 3, 16, density=0.8)
    x = with_noise(cp.to_dense(), 0.01, 2).clamp_min(0)
    kwargs = {"method": method, "init": "random", "max_iter": 20, "tol": 0}
    cpu = non_negative_cp(x, 3, generator=torch.Generator().manual_seed(0), **kwargs)
    gpu = non_negative_cp(x.cuda(), 3, generator=torch.Generator().manual_seed(0), **kwargs)
    assert gpu.model.device.type == "cuda" and gpu.model.dtype == torch.float64
    torch.testing.assert_close(
        gpu.model.to_dense().cpu(), cpu.model.to_dense(), rtol=1e-8, atol=1e-10
    )
    assert abs(gpu.errors[-1] - cpu.errors[-1]) < 1e-9


# --- bad input -----------------------------------------------------------------------------


def _x():
    return planted((4, 5, 6), 2, 0).to_dense()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"rank": 0}, ValueError, "rank must be a positive int; got 0"),
        ({"rank": 2.0}, TypeError, "rank must be a positive int"),
        ({"rank": 21}, ValueError, r"rank must be at most prod\(shape\) / max\(shape\) = 20"),
        ({"method": "als"}, ValueError, r"method must be one of \('hals', 'mu'\); got 'als'"),
        ({"init": "nndsvd"}, ValueError, r"init must be one of \('svd', 'random'\)"),
        ({"l1": -0.1}, ValueError, "l1 must be a finite non-negative float; got -0.1"),
        ({"l1": [0.0, -1.0, 0.0]}, ValueError, r"l1\[1\] must be a finite non-negative float"),
        ({"l1": [0.0, 1.0]}, ValueError, r"l1 needs one entry per mode \(3\)"),
        ({"l1": "a"}, TypeError, "l1 must be a non-negative float or a sequence"),
        ({"max_iter": 0}, ValueError, "max_iter must be a positive int; got 0"),
        ({"tol": -1.0}, ValueError, "tol must be a finite non-negative float"),
        ({"nonneg_modes": [0, 3]}, IndexError, r"nonneg_modes must be in \[-3, 2\]"),
        ({"nonneg_modes": 0}, TypeError, "nonneg_modes must be a sequence of modes"),
        ({"generator": 1}, TypeError, "generator must be a torch.Generator or None"),
        ({"callback": 1}, TypeError, "callback must be callable or None"),
    ],
)
def test_bad_options(kwargs, exc, match):
    args = {"rank": 2, **kwargs}
    rank = args.pop("rank")
    with pytest.raises(exc, match=match):
        non_negative_cp(_x(), rank, **args)


def _bad(kind):
    x = _x()
    if kind == "negative":
        x = x.clone()
        x[0, 0, 0] = -1.0
    elif kind == "nan":
        x = x.clone()
        x[1, 1, 1] = float("nan")
    return x


@pytest.mark.parametrize(
    ("tensor", "exc", "match"),
    [
        (
            _bad("negative"),
            ValueError,
            r"tensor has 1 negative entries .* every mode is constrained",
        ),
        (_bad("nan"), ValueError, "contains 1 NaN or Inf entries"),
        (torch.ones(4), ValueError, "at least 2 dimensions"),
        (torch.zeros(3, 4, 5), ValueError, "tensor is all zeros"),
        (torch.ones(3, 4, 5, dtype=torch.complex128), TypeError, "tensor must be real"),
        (torch.ones(3, 4, 5, dtype=torch.int64), TypeError, "floating-point or complex dtype"),
        ("x", TypeError, r"non_negative_cp: tensor must be a torch\.Tensor or a numpy array"),
    ],
)
def test_bad_tensors(tensor, exc, match):
    with pytest.raises(exc, match=match):
        non_negative_cp(tensor, 2)


def test_negative_entries_allowed_with_a_free_mode():
    res = non_negative_cp(_bad("negative"), 2, nonneg_modes=[0, 1], max_iter=2)
    assert res.iterations == 2


def _good_init():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(s, 2, generator=g, dtype=torch.float64) for s in (4, 5, 6)]


@pytest.mark.parametrize(
    ("init", "exc", "match"),
    [
        (
            lambda f: CPTensor.from_factors([f[0], f[1], f[1]]),
            ValueError,
            r"init must be a CPTensor of shape \(4, 5, 6\) and rank 2",
        ),
        (
            lambda f: CPTensor.from_factors([t[:, :1] for t in f]),
            ValueError,
            r"init must be a CPTensor of shape \(4, 5, 6\) and rank 2",
        ),
        (
            lambda f: CPTensor.from_factors([f[0], -f[1], f[2]]),
            ValueError,
            r"init factors\[1\] .* must be non-negative",
        ),
        (
            lambda f: CPTensor.from_factors([t.float() for t in f]),
            ValueError,
            "init must match the tensor's dtype and device",
        ),
        (lambda f: (f[0], f[1]), TypeError, "init must be 'svd', 'random' or a CPTensor"),
    ],
)
def test_bad_inits(init, exc, match):
    with pytest.raises(exc, match=match):
        non_negative_cp(_x(), 2, init=init(_good_init()))


def test_negative_init_allowed_in_a_free_mode():
    f = _good_init()
    bad = CPTensor.from_factors([f[0], -f[1], f[2]])
    assert non_negative_cp(_x(), 2, init=bad, nonneg_modes=[0, 2], max_iter=1).iterations == 1


# --- numerics and inputs (issues 9.1, 9.2, 9.5, 9.7, 9.17) -----------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_default_options_converge(seed):
    x = with_noise(planted((10, 11, 12), 3, seed, density=0.7).to_dense(), 0.01, seed)
    x = x.clamp_min(0).float()
    res = non_negative_cp(x, 3)
    assert res.converged and res.iterations < 100
    e, f = res.errors, res.extras["error_floors"]
    assert all(e[k] - e[k - 1] <= f[k] + f[k - 1] for k in range(1, len(e)))
    assert abs(res.error - true_error(res, x.double())) < 1e-6


def test_autocast_is_ignored():
    x = planted((6, 7, 8), 2, 3).to_dense().float()
    ref = non_negative_cp(x, 2, max_iter=20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = non_negative_cp(x, 2, max_iter=20)
    assert res.model.dtype == torch.float32 and res.errors == ref.errors


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
@pytest.mark.parametrize("method", ["hals", "mu"])
def test_extreme_scales(dtype, factor, method):
    x = with_noise(planted((6, 7, 8), 2, 4).to_dense(), 0.01, 1).clamp_min(0)
    ref = non_negative_cp(x.to(dtype), 2, method=method, max_iter=30, tol=0)
    res = non_negative_cp((x * factor).to(dtype), 2, method=method, max_iter=30, tol=0)
    assert res.model.dtype == dtype
    assert all(bool(torch.isfinite(t).all()) for t in (res.model.weights, *res.model.factors))
    assert res.error == pytest.approx(ref.error, rel=1e-3)
    if dtype == torch.float32:  # in the data's units (beyond float64's range at 1e+-200)
        objective = res.extras["objective"][-1] / factor / factor
        assert objective == pytest.approx(ref.extras["objective"][-1], rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    x = with_noise(planted((6, 7, 8), 2, 5).to_dense(), 0.01, 2).clamp_min(0).to(dtype)
    res = non_negative_cp(x, 2, max_iter=50)
    assert res.model.dtype == dtype
    dense = res.model.to(dtype=torch.float64).to_dense()
    truth = float((dense - x.double()).norm() / x.double().norm())
    assert res.error == pytest.approx(truth, rel=1e-4)


def test_numpy_and_requires_grad_inputs():
    x = _x()
    ref = non_negative_cp(x, 2, max_iter=5, tol=0)
    assert non_negative_cp(x.numpy(), np.int64(2), max_iter=5, tol=0).errors == ref.errors
    graph = non_negative_cp(x.clone().requires_grad_(True), 2, max_iter=5, tol=0)
    assert graph.errors == ref.errors and not graph.model.weights.requires_grad


# --- missing entries: mask= by EM (issue 11, item 5) -----------------------------------------


def _hide(x, fraction, seed):
    """``x`` with a random ``fraction`` of its entries set to NaN, and the observed mask."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(x.shape, generator=g) >= fraction
    return torch.where(mask, x, torch.nan), mask


def masked_error(model, x, mask):
    resid = torch.where(mask, x - model.to_dense(), 0.0)
    return float(resid.norm() / torch.where(mask, x, 0.0).norm())


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_masked_fit_recovers_hidden_entries(method):
    cp = planted((10, 11, 12), 3, 4, density=0.8)
    x = cp.to_dense()
    hidden, mask = _hide(x, 0.2, 0)
    if method == "hals":
        res = non_negative_cp(hidden, 3, mask=mask, max_iter=1000, tol=1e-12)
        assert res.converged
    else:  # MU converges slowly: a fixed budget
        res = non_negative_cp(hidden, 3, method="mu", mask=mask, max_iter=400, tol=0)
    assert all(bool((f >= 0).all()) for f in res.model.factors)
    assert bool(torch.isfinite(res.model.to_dense()).all())
    # Reported errors are the true errors on the observed entries.
    assert res.error == pytest.approx(masked_error(res.model, x, mask), rel=1e-9, abs=1e-14)
    # The missing entries are recovered (the model is identifiable).
    missing = ~mask
    gap = (res.model.to_dense() - x)[missing].norm() / x[missing].norm()
    assert float(gap) < (1e-9 if method == "hals" else 1e-2)
    assert cp.congruence(res.model) > 0.99
    assert_monotone(res.extras["objective"])


def test_masked_fit_with_all_entries_observed_matches_unmasked():
    x = with_noise(planted((8, 9, 10), 2, 5).to_dense(), 0.05, 0).clamp_min(0)
    ref = non_negative_cp(x, 2, max_iter=30, tol=0)
    got = non_negative_cp(x, 2, max_iter=30, tol=0, mask=torch.ones(x.shape, dtype=torch.bool))
    for a, b in zip(ref.model.factors, got.model.factors):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.errors, ref.errors, rtol=1e-6)


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_masked_fit_at_least_as_accurate_as_tensorly_mu(method, tensorly_backend):
    """TensorLy's masked ``non_negative_parafac`` (MU, imputing before every mode) from the
    same initial factors and the same number of iterations: EM with HALS reaches a lower
    observed error, EM with MU about the same one (imputing once per iteration instead of once
    per mode costs it up to a few percent of error at equal iterations, and saves N - 1
    reconstructions per iteration)."""
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import non_negative_parafac

    x = with_noise(planted((9, 10, 11), 3, 1, density=0.8).to_dense(), 0.02, 1).clamp_min(0)
    hidden, mask = _hide(x, 0.1, 1)
    g = torch.Generator().manual_seed(1)
    init = CPTensor.from_factors([torch.rand(s, 3, generator=g, dtype=torch.float64) + 0.1
                                  for s in x.shape])  # fmt: skip
    filled = torch.where(mask, x, 0.0).numpy()
    ref = non_negative_parafac(
        filled, 3, init=tl.cp_tensor.CPTensor((np.ones(3), [f.numpy() for f in init.factors])),
        n_iter_max=60, tol=0, mask=mask.numpy().astype(float),
    )  # fmt: skip
    ref_model = CPTensor(torch.from_numpy(ref.weights), tuple(map(torch.from_numpy, ref.factors)))
    res = non_negative_cp(hidden, 3, method=method, init=init, mask=mask, max_iter=60, tol=0)
    ours, theirs = masked_error(res.model, x, mask), masked_error(ref_model, x, mask)
    assert ours <= theirs * (1.03 if method == "mu" else 1.0), (ours, theirs)


def test_il2_non_negative_rank_3_is_converged_and_not_degenerate():
    from factorch.datasets import load
    from factorch.decomp import cp_degeneracy

    data = load("il2_response")
    res = non_negative_cp(data.tensor, 3, mask=data.mask, max_iter=500)
    assert res.converged and not cp_degeneracy(res.model).degenerate
    assert res.error == pytest.approx(masked_error(res.model, data.tensor, data.mask), rel=1e-9)
    assert res.error < 0.26


@pytest.mark.parametrize(
    ("mask", "exc", "match"),
    [
        (torch.ones(3, 4, 5), TypeError, r"non_negative_cp: mask must have dtype torch.bool"),
        (torch.ones(3, 4, dtype=torch.bool), ValueError,
         r"non_negative_cp: mask shape \(3, 4\) must equal the tensor shape \(3, 4, 5\)"),
        (torch.zeros(3, 4, 5, dtype=torch.bool), ValueError,
         r"non_negative_cp: mask observes no entry"),
        ("mask", TypeError, r"non_negative_cp: mask must be a torch.Tensor or a numpy array"),
    ],
)  # fmt: skip
def test_bad_masks(mask, exc, match):
    with pytest.raises(exc, match=match):
        non_negative_cp(torch.rand(3, 4, 5, dtype=torch.float64), 2, mask=mask)


def test_masked_observed_entries_must_be_finite_and_non_negative():
    x = torch.rand(3, 4, 5, dtype=torch.float64)
    mask = torch.ones(3, 4, 5, dtype=torch.bool)
    mask[0, 0, 0] = False
    x[0, 0, 0] = float("nan")  # unobserved: fine
    assert non_negative_cp(x, 2, mask=mask, max_iter=3).model.rank == 2
    x[1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"non_negative_cp: tensor \(observed entries\) contains"):
        non_negative_cp(x, 2, mask=mask)
    x[1, 1, 1] = -1.0
    with pytest.raises(ValueError, match=r"non_negative_cp: tensor has 1 negative entries"):
        non_negative_cp(x, 2, mask=mask)


def test_masked_numpy_mask_and_half_precision():
    x = planted((6, 7, 8), 2, 7).to_dense()
    hidden, mask = _hide(x, 0.1, 2)
    ref = non_negative_cp(hidden, 2, mask=mask, max_iter=20)
    got = non_negative_cp(hidden.numpy(), 2, mask=mask.numpy(), max_iter=20)
    assert got.errors == ref.errors
    half = non_negative_cp(hidden.to(torch.float16), 2, mask=mask, max_iter=50)
    assert half.model.dtype == torch.float16
    true = masked_error(half.model.to(dtype=torch.float64), hidden.to(torch.float16).double(), mask)
    assert half.error == pytest.approx(true, rel=1e-3)


def test_init_checks_use_one_reduction_per_factor_and_keep_their_messages() -> None:
    from factorch.decomp import non_negative_cp
    from factorch.tensors import CPTensor

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 5, 6, generator=gen, dtype=torch.float64)
    factors = [torch.rand(s, 2, generator=gen, dtype=torch.float64) for s in x.shape]
    bad = [f.clone() for f in factors]
    bad[1][2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"init factors\[1\] contains NaN or Inf entries"):
        non_negative_cp(x, 2, init=CPTensor(torch.ones(2, dtype=torch.float64), tuple(bad)))
    neg = [f.clone() for f in factors]
    neg[2][0, 1] = -0.5
    init = CPTensor(torch.ones(2, dtype=torch.float64), tuple(neg))
    with pytest.raises(
        ValueError,
        match=r"init factors\[2\] .* must be non-negative because mode 2 .* got min -0.5",
    ):
        non_negative_cp(x, 2, init=init)
    res = non_negative_cp(x, 2, init=init, nonneg_modes=(0, 1), max_iter=2)  # mode 2 is free
    assert res.iterations == 2
