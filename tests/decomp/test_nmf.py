"""Tests for factorch.decomp.nmf: nmf (HALS, MU; batched) and semi_nmf (Ding et al.; top-k)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from factorch.decomp import DecompositionResult, NMFFactors, SemiNMFFactors, nmf, semi_nmf
from factorch.decomp._nmf import _nndsvd
from factorch.decomp._nn_common import _hals_rows

# Noise-free planted recovery (HALS): relative error after convergence.
RECOVERY_TOL = {torch.float64: 1e-6, torch.float32: 1e-3}
MONO_REL = 1e-10


def gen(seed):
    return torch.Generator().manual_seed(seed)


def planted_nmf(m, n, r, seed, dtype=torch.float64, batch=None, density=0.5):
    g = gen(seed)
    lead = () if batch is None else (batch,)
    w = torch.rand(*lead, m, r, generator=g, dtype=dtype)
    w = w * (torch.rand(*lead, m, r, generator=g, dtype=dtype) < density)
    h = torch.rand(*lead, r, n, generator=g, dtype=dtype)
    h = h * (torch.rand(*lead, r, n, generator=g, dtype=dtype) < density)
    return w, h


def planted_semi(m, n, r, seed, dtype=torch.float64, batch=None):
    """``F`` Gaussian, ``G`` cluster-like (one dominant non-negative entry per sample)."""
    g = gen(seed)
    lead = () if batch is None else (batch,)
    f = torch.randn(*lead, m, r, generator=g, dtype=dtype)
    labels = torch.randint(0, r, (*lead, n), generator=g)
    scale = 0.5 + torch.rand(*lead, n, 1, generator=g, dtype=dtype)
    gg = torch.nn.functional.one_hot(labels, r).to(dtype) * scale
    gg = gg + 0.05 * torch.rand(*lead, n, r, generator=g, dtype=dtype)
    return f, gg


def noisy(x, level, seed):
    noise = torch.randn(x.shape, generator=gen(seed), dtype=x.dtype)
    return x + noise * (level * x.norm() / noise.norm())


def rel_err(approx, x):
    return float((approx - x).norm() / x.norm())


def assert_monotone(values, rel=MONO_REL):
    v = torch.tensor(values, dtype=torch.float64)
    assert bool((v[1:] <= v[:-1] * (1 + rel)).all()), values


# --- NMF: recovery and monotonicity ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nmf_hals_recovers_planted(dtype):
    w, h = planted_nmf(30, 25, 4, 0, dtype=dtype)
    x = w @ h
    res = nmf(x, 4, max_iter=300, tol=1e-10 if dtype == torch.float64 else 1e-7)
    assert isinstance(res, DecompositionResult) and isinstance(res.model, NMFFactors)
    assert res.model.W.shape == (30, 4) and res.model.H.shape == (4, 25)
    assert res.model.W.dtype == dtype
    assert bool((res.model.W >= 0).all()) and bool((res.model.H >= 0).all())
    assert rel_err(res.model.to_dense(), x) < RECOVERY_TOL[dtype]


@pytest.mark.parametrize("method", ["hals", "mu"])
@pytest.mark.parametrize("init", ["nndsvd", "random"])
def test_nmf_monotone_and_nonnegative(method, init):
    w, h = planted_nmf(30, 25, 4, 1, density=0.8)
    x = noisy(w @ h, 0.05, 2).clamp_min(0)
    res = nmf(x, 4, method=method, init=init, max_iter=60, tol=0, generator=gen(3))
    assert_monotone(res.errors)
    assert res.errors[-1] < res.errors[0]
    assert bool((res.model.W >= 0).all()) and bool((res.model.H >= 0).all())
    assert abs(res.errors[-1] - rel_err(res.model.to_dense(), x)) < 1e-10


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_nmf_l1_objective_monotone_and_sparser(method):
    w, h = planted_nmf(30, 25, 4, 4, density=0.8)
    x = noisy(w @ h, 0.05, 2).clamp_min(0)
    plain = nmf(x, 4, method=method, max_iter=80, tol=0)
    sparse = nmf(x, 4, method=method, l1_w=0.5, l1_h=0.5, max_iter=80, tol=0)
    assert_monotone(sparse.extras["objective"])
    small = [int((r.model.W < 1e-8).sum() + (r.model.H < 1e-8).sum()) for r in (plain, sparse)]
    assert small[1] > small[0]


def test_nmf_noisy_reaches_noise_level():
    w, h = planted_nmf(40, 30, 3, 5)
    x0 = w @ h
    x = noisy(x0, 0.01, 6).clamp_min(0)
    level = rel_err(x0, x)
    res = nmf(x, 3, max_iter=300, tol=1e-10)
    assert 0.8 * level < res.errors[-1] <= level * 1.001


# --- NMF: references ---------------------------------------------------------------------------


def _sklearn_run(x, w0, h0, solver, iters):
    decomposition = pytest.importorskip("sklearn.decomposition")
    model = decomposition.NMF(4, init="custom", solver=solver, max_iter=iters, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached (on purpose)
        w = model.fit_transform(x.numpy(), W=w0.numpy().copy(), H=h0.numpy().copy())
    return w, model.components_


def test_nmf_mu_equals_sklearn_mu():
    w, h = planted_nmf(40, 30, 4, 7, density=1.0)
    x = w @ h + 0.05 * torch.rand(40, 30, generator=gen(1), dtype=torch.float64)
    w0 = torch.rand(40, 4, generator=gen(2), dtype=torch.float64)
    h0 = torch.rand(4, 30, generator=gen(3), dtype=torch.float64)
    sk_w, sk_h = _sklearn_run(x, w0, h0, "mu", 30)
    res = nmf(x, 4, method="mu", init=(w0, h0), max_iter=30, tol=0)
    # Identical Lee--Seung updates (W then H): same iterates up to rounding.
    np.testing.assert_allclose(res.model.W.numpy(), sk_w, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.model.H.numpy(), sk_h, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("iters", [5, 20, 50])
def test_nmf_hals_at_least_as_good_as_sklearn_cd(iters):
    w, h = planted_nmf(40, 30, 4, 7, density=1.0)
    x = w @ h + 0.05 * torch.rand(40, 30, generator=gen(1), dtype=torch.float64)
    w0 = torch.rand(40, 4, generator=gen(2), dtype=torch.float64)
    h0 = torch.rand(4, 30, generator=gen(3), dtype=torch.float64)
    sk_w, sk_h = _sklearn_run(x, w0, h0, "cd", iters)
    e_sk = float(np.linalg.norm(x.numpy() - sk_w @ sk_h) / np.linalg.norm(x.numpy()))
    res = nmf(x, 4, init=(w0, h0), max_iter=iters, tol=0)
    # scikit-learn's "cd" makes one HALS sweep per factor and iteration; accelerated HALS makes
    # one or more, so after the same iterations its error is no larger (0.1 % slack).
    assert res.errors[-1] <= e_sk * 1.001


def test_nndsvd_matches_sklearn():
    nmf_module = pytest.importorskip("sklearn.decomposition._nmf")
    w, h = planted_nmf(40, 30, 4, 8, density=1.0)
    x = w @ h + 0.05 * torch.rand(40, 30, generator=gen(1), dtype=torch.float64)
    sk_w, sk_h = nmf_module._initialize_nmf(x.numpy(), 4, init="nndsvd")
    ours_w, ours_h = _nndsvd(x[None], 4, fill=False)
    np.testing.assert_allclose(ours_w[0].numpy(), sk_w, atol=1e-9)
    np.testing.assert_allclose(ours_h[0].numpy(), sk_h, atol=1e-9)
    # Tall matrices take the other Gram branch.
    sk_w, sk_h = nmf_module._initialize_nmf(x.T.numpy(), 4, init="nndsvd")
    ours_w, ours_h = _nndsvd(x.T[None], 4, fill=False)
    np.testing.assert_allclose(ours_w[0].numpy(), sk_w, atol=1e-9)
    np.testing.assert_allclose(ours_h[0].numpy(), sk_h, atol=1e-9)


# --- NMF: batching, determinism, callbacks --------------------------------------------------


@pytest.mark.parametrize("method", ["hals", "mu"])
@pytest.mark.parametrize("tol", [0.0, 1e-4])
def test_batched_nmf_equals_per_matrix(method, tol):
    w, h = planted_nmf(20, 15, 3, 9, batch=3, density=0.8)
    x = noisy(w @ h, 0.05, 1).clamp_min(0)
    x[1] *= 10.0  # different scales converge at different iterations
    w0 = torch.rand(3, 20, 3, generator=gen(4), dtype=torch.float64)
    h0 = torch.rand(3, 3, 15, generator=gen(5), dtype=torch.float64)
    batched = nmf(x, 3, method=method, init=(w0, h0), max_iter=40, tol=tol)
    assert batched.model.W.shape == (3, 20, 3) and batched.model.H.shape == (3, 3, 15)
    iters = batched.extras["batch_iterations"]
    for b in range(3):
        single = nmf(x[b], 3, method=method, init=(w0[b], h0[b]), max_iter=40, tol=tol)
        torch.testing.assert_close(batched.model.W[b], single.model.W, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(batched.model.H[b], single.model.H, rtol=1e-9, atol=1e-12)
        assert int(iters[b]) == single.iterations
        assert abs(float(batched.extras["batch_errors"][b]) - single.errors[-1]) < 1e-10
    stack = rel_err(batched.model.to_dense(), x)
    assert abs(batched.errors[-1] - stack) < 1e-10
    assert_monotone(batched.errors)


@pytest.mark.parametrize("l1", [0.0, 0.3])
def test_hals_rows_overwrite_p_is_bitwise_identical(l1):
    # The in-place right-hand side (nmf's memory saving) must not change a single bit, with
    # frozen batch entries and repeated sweeps (the live mask is applied in place).
    g = gen(21)
    b, r, i = 4, 3, 30
    a = torch.rand(b, r, 10, generator=g, dtype=torch.float64)
    q = a @ a.mT
    p = torch.rand(b, r, i, generator=g, dtype=torch.float64) * 5.0
    v0 = torch.rand(b, r, i, generator=g, dtype=torch.float64)
    active = torch.tensor([True, False, True, True])
    v_ref, v_new, p_ref, p_new = v0.clone(), v0.clone(), p.clone(), p.clone()
    kw = dict(nonneg=True, max_sweeps=6, active=active)
    _hals_rows(v_ref, p_ref, q, l1, **kw)
    _hals_rows(v_new, p_new, q, l1, overwrite_p=True, **kw)
    assert torch.equal(p_ref, p)  # left alone by default
    assert not torch.equal(p_new, p)  # used as workspace
    assert torch.equal(v_new, v_ref)
    assert torch.equal(v_ref[1], v0[1])  # frozen entry unchanged
    assert not torch.equal(v_ref[0], v0[0])


def test_batched_nndsvd_equals_per_matrix():
    w, h = planted_nmf(20, 15, 3, 10, batch=2, density=0.8)
    x = w @ h
    batched = nmf(x, 3, max_iter=5, tol=0)
    for b in range(2):
        single = nmf(x[b], 3, max_iter=5, tol=0)
        torch.testing.assert_close(batched.model.W[b], single.model.W, rtol=1e-7, atol=1e-9)


def test_nmf_random_init_deterministic_and_callback_stop():
    w, h = planted_nmf(20, 15, 3, 11)
    x = w @ h
    a = nmf(x, 3, init="random", max_iter=4, tol=0, generator=gen(0))
    b = nmf(x, 3, init="random", max_iter=4, tol=0, generator=gen(0))
    assert torch.equal(a.model.W, b.model.W) and a.errors == b.errors
    seen = []

    def cb(state):
        seen.append(state.iteration)
        assert isinstance(state.model, NMFFactors)
        return state.iteration == 2

    res = nmf(x, 3, max_iter=10, tol=0, callback=cb)
    assert seen == [1, 2] and res.iterations == 2 and not res.converged


def test_nmf_init_not_modified_and_tol_converges():
    w, h = planted_nmf(20, 15, 3, 12)
    x = noisy(w @ h, 0.05, 0).clamp_min(0)
    w0, h0 = torch.rand(20, 3, dtype=torch.float64), torch.rand(3, 15, dtype=torch.float64)
    w0c, h0c = w0.clone(), h0.clone()
    res = nmf(x, 3, init=(w0, h0), max_iter=500, tol=1e-7)
    assert torch.equal(w0, w0c) and torch.equal(h0, h0c)
    assert res.converged and res.iterations < 500


# --- semi-NMF -------------------------------------------------------------------------------


def test_semi_nmf_recovers_planted_and_is_monotone():
    f, g = planted_semi(20, 60, 3, 0)
    x = f @ g.mT
    res = semi_nmf(x, 3, max_iter=300, tol=1e-12, generator=gen(1))
    assert isinstance(res.model, SemiNMFFactors)
    assert res.model.F.shape == (20, 3) and res.model.G.shape == (60, 3)
    assert bool((res.model.G >= 0).all())
    assert bool((res.model.F < 0).any())
    assert rel_err(res.model.to_dense(), x) < 1e-5
    assert_monotone(res.errors)


@pytest.mark.parametrize("init", ["kmeans", "random"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_semi_nmf_noisy_monotone(init, dtype):
    f, g = planted_semi(15, 40, 4, 2, dtype=dtype)
    x = noisy(f @ g.mT, 0.05, 3)
    res = semi_nmf(x, 4, init=init, max_iter=80, tol=0, generator=gen(4))
    assert bool((res.model.G >= 0).all())
    assert_monotone(res.errors, rel=MONO_REL if dtype == torch.float64 else 1e-5)
    assert abs(res.errors[-1] - rel_err(res.model.to_dense(), x)) < (
        1e-10 if dtype == torch.float64 else 1e-4
    )


def test_semi_nmf_top_k_sparsity():
    f, g = planted_semi(20, 50, 3, 5)
    x = noisy(f @ g.mT, 0.01, 6)
    res = semi_nmf(x, 3, top_k=6, max_iter=100, tol=0, generator=gen(7))
    nnz = (res.model.F != 0).sum(0)
    assert bool((nnz <= 6).all())
    assert bool((res.model.G >= 0).all())
    assert_monotone(res.errors[1:])  # monotone from the second iteration on (see docstring)
    dense = semi_nmf(x, 3, max_iter=100, tol=0, generator=gen(7))
    assert res.errors[-1] >= dense.errors[-1] - 1e-12  # the constraint cannot help the fit


def test_semi_nmf_top_k_with_f_init_is_monotone_from_start():
    f, g = planted_semi(20, 50, 3, 8)
    x = noisy(f @ g.mT, 0.01, 6)
    res = semi_nmf(x, 3, init=(f, g), top_k=10, max_iter=30, tol=0)
    assert_monotone(res.errors)
    assert bool(((res.model.F != 0).sum(0) <= 10).all())


@pytest.mark.parametrize("top_k", [None, 5])
def test_batched_semi_nmf_equals_per_matrix(top_k):
    f, g = planted_semi(12, 30, 3, 9, batch=2)
    x = noisy(f @ g.mT, 0.05, 1)
    g0 = torch.rand(2, 30, 3, generator=gen(2), dtype=torch.float64)
    f0 = torch.randn(2, 12, 3, generator=gen(3), dtype=torch.float64)
    batched = semi_nmf(x, 3, init=(f0, g0), top_k=top_k, max_iter=30, tol=1e-6)
    for b in range(2):
        single = semi_nmf(x[b], 3, init=(f0[b], g0[b]), top_k=top_k, max_iter=30, tol=1e-6)
        torch.testing.assert_close(batched.model.F[b], single.model.F, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(batched.model.G[b], single.model.G, rtol=1e-8, atol=1e-10)
        assert int(batched.extras["batch_iterations"][b]) == single.iterations


def test_semi_nmf_kmeans_batched_runs():
    f, g = planted_semi(10, 30, 3, 10, batch=4)
    x = f @ g.mT
    res = semi_nmf(x, 3, max_iter=50, tol=0, generator=gen(0))
    assert res.model.F.shape == (4, 10, 3) and res.model.G.shape == (4, 30, 3)
    assert_monotone(res.errors)
    assert res.errors[-1] < 0.05


@pytest.mark.cuda
def test_cuda_matches_cpu():
    w, h = planted_nmf(20, 15, 3, 13, batch=2, density=0.8)
    x = noisy(w @ h, 0.05, 1).clamp_min(0)
    for method in ("hals", "mu"):
        cpu = nmf(x, 3, method=method, max_iter=20, tol=0)
        gpu = nmf(x.cuda(), 3, method=method, max_iter=20, tol=0)
        assert gpu.tensor.W.device.type == "cuda"
        torch.testing.assert_close(
            gpu.tensor.to_dense().cpu(), cpu.tensor.to_dense(), rtol=1e-7, atol=1e-9
        )
    f, g = planted_semi(12, 30, 3, 14)
    xs = noisy(f @ g.mT, 0.05, 1)
    cpu = semi_nmf(xs, 3, max_iter=20, tol=0, generator=gen(0))
    gpu = semi_nmf(xs.cuda(), 3, max_iter=20, tol=0, generator=gen(0))
    assert gpu.tensor.G.device.type == "cuda"
    torch.testing.assert_close(
        gpu.model.to_dense().cpu(), cpu.model.to_dense(), rtol=1e-7, atol=1e-9
    )


# --- bad input --------------------------------------------------------------------------------


def _x():
    w, h = planted_nmf(6, 5, 2, 0, density=1.0)
    return w @ h


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"rank": 0}, ValueError, "nmf: rank must be a positive int; got 0"),
        ({"rank": 6}, ValueError, r"rank must be at most min\(M, N\) = 5 for a 6 x 5 matrix"),
        ({"method": "cd"}, ValueError, r"method must be one of \('hals', 'mu'\); got 'cd'"),
        ({"init": "svd"}, ValueError, r"init must be one of \('nndsvd', 'random'\)"),
        ({"l1_w": -1.0}, ValueError, "l1_w must be a finite non-negative float; got -1.0"),
        ({"l1_h": float("nan")}, ValueError, "l1_h must be a finite non-negative float"),
        ({"l1_h": "x"}, TypeError, "l1_h must be a non-negative float"),
        ({"max_iter": 0}, ValueError, "max_iter must be a positive int"),
        ({"init": (torch.rand(6, 3), torch.rand(2, 5))}, ValueError, "init W must have shape"),
    ],
)
def test_nmf_bad_options(kwargs, exc, match):
    args = {"rank": 2, **kwargs}
    rank = args.pop("rank")
    with pytest.raises(exc, match=match):
        nmf(_x(), rank, **args)


def _edited(x, index, value):
    x = x.clone()
    x[index] = value
    return x


_W0, _H0 = torch.rand(6, 2, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("matrix", "kwargs", "exc", "match"),
    [
        (_edited(_x(), (0, 0), -0.5), {}, ValueError, r"matrix has 1 negative entries .* semi_nmf"),
        (_edited(_x(), (0, 1), float("nan")), {}, ValueError, "contains 1 NaN or Inf entries"),
        (_x()[None, None], {}, ValueError, r"must be \(M, N\) or a \(B, M, N\) stack"),
        (_x()[0], {}, ValueError, "at least 2 dimensions"),
        (torch.zeros(2, 4, 3), {}, ValueError, "all zeros"),
        ("matrix", {}, TypeError, "nmf: matrix must be a torch.Tensor or a numpy array; got str"),
        (_x(), {"init": (_W0, _H0[:, :4])}, ValueError, r"init H must have shape \(2, 5\)"),
        (_x(), {"init": (_W0, -_H0)}, ValueError, "init H must be non-negative"),
        (_x(), {"init": (_W0.float(), _H0)}, ValueError, "init W must match the matrix's dtype"),
        (_x(), {"init": (_W0, _H0, _H0)}, ValueError, r"init must be a pair \(W, H\); got 3"),
        (
            torch.stack([_x(), _x(), _x()]),
            {"init": (_W0, _H0)},
            ValueError,
            r"init W must have shape \(3, 6, 2\)",
        ),
        (_x(), {"generator": 0}, TypeError, "nmf: generator must be a torch.Generator or None"),
        (_x(), {"callback": 1}, TypeError, "nmf: callback must be callable or None"),
    ],
)
def test_nmf_bad_inputs_and_inits(matrix, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nmf(matrix, 2, **kwargs)


_X68 = torch.randn(6, 8, generator=gen(0), dtype=torch.float64)
_F0, _G0 = torch.randn(6, 2, dtype=torch.float64), torch.rand(8, 2, dtype=torch.float64)


@pytest.mark.parametrize(
    ("matrix", "rank", "kwargs", "exc", "match"),
    [
        (_X68, 0, {}, ValueError, "semi_nmf: rank must be a positive int; got 0"),
        (_X68, 8, {}, ValueError, r"rank must be at most min\(M \+ 1, N\) = 7"),
        (_X68, 2, {"top_k": 0}, ValueError, "top_k must be a positive int; got 0"),
        (_X68, 2, {"top_k": 7}, ValueError, r"top_k must be in \[1, M\] = \[1, 6\]"),
        (_X68, 2, {"init": "nndsvd"}, ValueError, r"init must be one of \('kmeans', 'random'\)"),
        (_X68, 2, {"init": (_F0, _G0.T)}, ValueError, r"init G must have shape \(8, 2\)"),
        (_X68, 2, {"init": (_F0[:5], _G0)}, ValueError, r"init F must have shape \(6, 2\)"),
        (_X68, 2, {"init": (_F0, -_G0)}, ValueError, "init G must be non-negative"),
        (_edited(_X68, (2, 2), float("inf")), 2, {}, ValueError, "contains 1 NaN or Inf entries"),
        (_X68.to(torch.complex128), 2, {}, TypeError, "matrix must be real"),
        (_X68, 2, {"generator": "seed"}, TypeError, "semi_nmf: generator must be a torch.Gen"),
    ],
)
def test_semi_nmf_bad_inputs(matrix, rank, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        semi_nmf(matrix, rank, **kwargs)


def test_semi_nmf_accepts_negative_data():
    assert semi_nmf(_X68, 2, max_iter=3, tol=0, generator=gen(0)).iterations == 3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: NMFFactors(torch.rand(4, 2), torch.rand(3, 5)),
            r"NMFFactors: W \(4, 2\) and H \(3, 5\) do not match",
        ),
        (
            lambda: SemiNMFFactors(torch.rand(4, 2), torch.rand(5, 3)),
            r"SemiNMFFactors: F \(4, 2\) and G \(5, 3\) do not match",
        ),
        (
            lambda: NMFFactors(torch.rand(4, 2), torch.rand(2, 5, dtype=torch.float64)),
            "must share device and dtype",
        ),
    ],
)
def test_factor_types_validate(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_factor_types_shapes():
    nf = NMFFactors(torch.rand(3, 4, 2), torch.rand(3, 2, 5))
    assert nf.shape == (3, 4, 5) and nf.rank == 2 and nf.to_dense().shape == (3, 4, 5)
    sf = SemiNMFFactors(torch.rand(4, 2), torch.rand(5, 2))
    assert sf.shape == (4, 5) and sf.rank == 2
    torch.testing.assert_close(sf.to_dense(), sf.F @ sf.G.T)


# --- numerics and inputs (issues 9.1, 9.2, 9.7, 9.9, 9.17) ------------------------------------


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_nmf_rank_one_with_default_init(method):
    w, h = planted_nmf(8, 7, 1, 3, density=1.0)
    res = nmf(w @ h, 1, method=method, max_iter=50)
    assert res.model.W.shape == (8, 1) and res.error < 1e-6


def _true64(x, approx):
    x, approx = x.double(), approx.double()
    peak = float(x.abs().max())
    return float(((x - approx) / peak).norm() / (x / peak).norm())


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
def test_nmf_extreme_scales(dtype, factor):
    w, h = planted_nmf(12, 10, 3, 4)
    x = noisy(w @ h, 0.01, 1).clamp_min(0)
    ref = nmf(x.to(dtype), 3, max_iter=40, tol=0)
    big = (x * factor).to(dtype)
    res = nmf(big, 3, max_iter=40, tol=0)
    assert res.model.W.dtype == dtype
    assert bool(torch.isfinite(res.model.W).all()) and bool(torch.isfinite(res.model.H).all())
    assert res.error == pytest.approx(ref.error, rel=1e-3)
    dense = res.model.W.double() @ res.model.H.double()
    assert res.error == pytest.approx(_true64(big, dense), rel=1e-4)


@pytest.mark.parametrize("l1", [0.0, 0.2])
def test_nmf_stack_members_of_different_scales_fit_alone(l1):
    w, h = planted_nmf(7, 6, 2, 5, batch=3)
    x = noisy(w @ h, 0.01, 2).clamp_min(0)
    factors = torch.tensor([1.0, 2.0**-70, 2.0**70], dtype=torch.float64).reshape(3, 1, 1)
    stack = nmf(x * factors, 2, max_iter=20, tol=0, l1_w=l1, l1_h=l1)
    for b in range(3):
        alone = nmf(x[b] * factors[b], 2, max_iter=20, tol=0, l1_w=l1, l1_h=l1)
        assert float(stack.extras["batch_errors"][b]) == pytest.approx(alone.error, rel=1e-9)


@pytest.mark.parametrize("factor", [1e-10, 1e-30, 1e30])
def test_semi_nmf_is_scale_invariant(factor):
    f, g = planted_semi(10, 12, 3, 6)
    x = noisy(f @ g.mT, 0.01, 3)
    ref = semi_nmf(x, 3, generator=gen(1))
    res = semi_nmf(x * factor, 3, generator=gen(1))
    assert res.error == pytest.approx(ref.error, rel=1e-6)
    assert res.converged == ref.converged


def test_semi_nmf_float32_huge_data_is_finite():
    f, g = planted_semi(10, 12, 3, 7, dtype=torch.float32)
    x = (f @ g.mT) * 1e30
    res = semi_nmf(x, 3, generator=gen(2))
    assert bool(torch.isfinite(res.model.F).all()) and bool(torch.isfinite(res.model.G).all())
    assert res.error == pytest.approx(
        _true64(x, res.model.F.double() @ res.model.G.double().T), abs=2e-6
    )
    assert res.error < 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    w, h = planted_nmf(12, 10, 3, 8)
    x = noisy(w @ h, 0.01, 4).clamp_min(0).to(dtype)
    res = nmf(x, 3, max_iter=50)
    assert res.model.W.dtype == dtype
    dense = res.model.W.double() @ res.model.H.double()
    assert res.error == pytest.approx(_true64(x, dense), rel=1e-4)
    f, g = planted_semi(10, 12, 3, 9)
    y = (f @ g.mT).to(dtype)
    semi = semi_nmf(y, 3, generator=gen(3))
    assert semi.model.F.dtype == dtype
    assert semi.error == pytest.approx(
        _true64(y, semi.model.F.double() @ semi.model.G.double().T), rel=1e-4
    )


def test_autocast_numpy_and_requires_grad():
    w, h = planted_nmf(9, 8, 2, 10)
    x = (w @ h).float()
    ref = nmf(x, 2, max_iter=10, tol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert nmf(x, 2, max_iter=10, tol=0).errors == ref.errors
        semi = semi_nmf(x, 2, max_iter=10, tol=0, generator=gen(0))
    assert semi.errors == semi_nmf(x, 2, max_iter=10, tol=0, generator=gen(0)).errors
    assert nmf(x.numpy(), np.int64(2), max_iter=10, tol=0).errors == ref.errors
    graph = nmf(x.clone().requires_grad_(True), 2, max_iter=10, tol=0)
    assert graph.errors == ref.errors and not graph.model.W.requires_grad
