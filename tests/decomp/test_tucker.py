"""Tucker: HOSVD / ST-HOSVD, HOOI, partial and non-negative Tucker.

Planted recovery, error targets (hypothesis), noise level, TensorLy agreement, complex round
trips, options, determinism and pinned error messages.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.decomp import (
    DecompositionResult,
    IterationState,
    hosvd,
    non_negative_tucker,
    partial_tucker,
    tucker,
)
from factorch.random import add_noise, random_tucker
from factorch.tensors import TuckerTensor


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _orthonormal(u: torch.Tensor, tol: float) -> bool:
    eye = torch.eye(u.shape[1], dtype=u.dtype)
    return float(torch.linalg.matrix_norm(u.mH @ u - eye)) < tol


PLANTED = [((12, 13, 14), (3, 4, 5)), ((9, 8, 7, 6), (2, 3, 3, 2)), ((30, 5), (3, 3))]


# --- planted recovery ------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "rank"), PLANTED)
@pytest.mark.parametrize("sequential", [True, False])
@pytest.mark.parametrize("svd", ["auto", "full", "gram", "randomized"])
def test_hosvd_planted_recovery_float64(shape, rank, sequential, svd):
    x = random_tucker(shape, rank, generator=_gen(1), dtype=torch.float64).to_dense()
    res = hosvd(x, rank, sequential=sequential, svd=svd, generator=_gen(2))
    assert isinstance(res, DecompositionResult)
    assert isinstance(res.model, TuckerTensor)
    assert res.model.core.shape == rank
    assert _rel(res.model.to_dense(), x) < 1e-8
    assert res.error < 1e-6  # norm formula: resolution ~ sqrt(eps)
    assert all(_orthonormal(u, 1e-10) for u in res.model.factors)
    assert res.iterations == 1 and res.converged


@pytest.mark.parametrize(("shape", "rank"), PLANTED)
@pytest.mark.parametrize("init", ["hosvd", "random"])
def test_tucker_planted_recovery_float64(shape, rank, init):
    x = random_tucker(shape, rank, generator=_gen(3), dtype=torch.float64).to_dense()
    res = tucker(x, rank, init=init, generator=_gen(4))
    assert _rel(res.model.to_dense(), x) < 1e-8
    assert res.converged
    assert all(_orthonormal(u, 1e-10) for u in res.model.factors)


def test_planted_recovery_float32():
    x = random_tucker((15, 16, 17), (3, 4, 2), generator=_gen(5), dtype=torch.float32).to_dense()
    for res in (hosvd(x, (3, 4, 2)), tucker(x, (3, 4, 2)), hosvd(x, eps=1e-3)):
        assert res.model.dtype == torch.float32
        assert _rel(res.model.to_dense(), x) < 1e-5
    assert hosvd(x, eps=1e-3).model.core.shape == (3, 4, 2)


def test_tucker_large_mode_uses_randomized_range_finder_and_recovers():
    # mode 0: Y_(0) is 1100 x 1600 with R_0 = 5 -> the randomized range finder path
    x = random_tucker((1100, 40, 40), (5, 40, 40), generator=_gen(6), dtype=torch.float64)
    dense = x.to_dense()
    res = tucker(dense, (5, 40, 40), init="random", generator=_gen(7), max_iter=5)
    assert _rel(res.model.to_dense(), dense) < 1e-8


@pytest.mark.parametrize("noise", [0.01, 0.1])
def test_error_lands_at_noise_level(noise):
    truth = random_tucker((20, 21, 22), (3, 4, 5), generator=_gen(8), dtype=torch.float64)
    clean = truth.to_dense()
    x = add_noise(clean, relative=noise, generator=_gen(9))
    level = float(torch.linalg.vector_norm(x - clean) / torch.linalg.vector_norm(x))
    for res in (tucker(x, (3, 4, 5)), hosvd(x, (3, 4, 5))):
        dense_err = _rel(res.model.to_dense(), x)
        # fitting removes the noise's component in the model's tangent space (~3 % of the entries)
        assert 0.95 * level < dense_err <= level * (1 + 1e-9)
        assert math.isclose(res.error, dense_err, rel_tol=1e-6)
        # the estimate is far closer to the truth than the data are
        assert _rel(res.model.to_dense(), clean) < 0.5 * noise


def test_hooi_errors_non_increasing_and_no_worse_than_hosvd():
    x = torch.randn(14, 15, 16, dtype=torch.float64, generator=_gen(10))
    res = tucker(x, (4, 5, 3), tol=0, max_iter=15)
    assert res.iterations == 15 and not res.converged
    e = res.errors
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(e))
    assert e[-1] <= hosvd(x, (4, 5, 3)).error + 1e-12
    assert math.isclose(e[-1], _rel(res.model.to_dense(), x), rel_tol=1e-9)


def test_partial_tucker_recovers_and_keeps_other_modes():
    g = _gen(11)
    core = torch.randn(3, 9, 4, dtype=torch.float64, generator=g)
    u0 = torch.randn(10, 3, dtype=torch.float64, generator=g)
    u2 = torch.randn(12, 4, dtype=torch.float64, generator=g)
    x = torch.einsum("abc,ia,kc->ibk", core, u0, u2)
    res = partial_tucker(x, (3, 4), modes=(0, -1))
    assert res.model.core.shape == (3, 9, 4)
    torch.testing.assert_close(res.model.factors[1], torch.eye(9, dtype=torch.float64))
    assert _rel(res.model.to_dense(), x) < 1e-10
    one = partial_tucker(x, 3, modes=[0])
    assert one.model.core.shape == (3, 9, 12)
    assert _rel(one.model.to_dense(), x) < 1e-10


# --- error targets ---------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(2, 7), min_size=2, max_size=4),
    error=st.floats(0.01, 0.9),
    seed=st.integers(0, 2**31 - 1),
    sequential=st.booleans(),
    svd=st.sampled_from(["auto", "full", "gram"]),
)
def test_hosvd_error_target_is_met(shape, error, seed, sequential, svd):
    x = torch.randn(*shape, dtype=torch.float64, generator=_gen(seed))
    res = hosvd(x, eps=error, sequential=sequential, svd=svd)
    dense_err = _rel(res.model.to_dense(), x)
    assert dense_err <= error * (1 + 1e-10)
    assert res.error <= error * (1 + 1e-10)
    assert abs(res.error - dense_err) < 1e-7


def test_hosvd_error_target_finds_planted_ranks():
    truth = random_tucker((15, 16, 17), (2, 5, 3), generator=_gen(12), dtype=torch.float64)
    x = add_noise(truth.to_dense(), relative=1e-6, generator=_gen(13))
    for svd in ("auto", "full", "gram"):
        for sequential in (True, False):
            res = hosvd(x, eps=1e-4, svd=svd, sequential=sequential)
            assert res.model.core.shape == (2, 5, 3)
            assert res.error < 2e-6


def test_hosvd_tight_error_target_uses_accurate_svd():
    truth = random_tucker((10, 11, 12), (2, 3, 4), generator=_gen(14), dtype=torch.float64)
    x = add_noise(truth.to_dense(), relative=1e-9, generator=_gen(15))
    res = hosvd(x, eps=1e-8)  # below the Gram route's resolution: "auto" takes thin SVDs
    assert res.model.core.shape == (2, 3, 4)
    assert _rel(res.model.to_dense(), x) <= 1e-8


# --- complex ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_hosvd_round_trip(dtype):
    x = torch.randn(6, 7, 5, dtype=dtype, generator=_gen(16))
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    for sequential in (True, False):
        res = hosvd(x, (6, 7, 5), sequential=sequential)
        assert res.model.dtype == dtype
        assert _rel(res.model.to_dense(), x) < tol
    planted = random_tucker((8, 9, 10), (2, 3, 4), generator=_gen(17), dtype=dtype).to_dense()
    for res in (hosvd(planted, (2, 3, 4)), hosvd(planted, eps=1e-3), tucker(planted, (2, 3, 4))):
        assert res.model.core.shape == (2, 3, 4)
        assert _rel(res.model.to_dense(), planted) < tol * 100


# --- non-negative Tucker ---------------------------------------------------------------------
def _nn_planted(seed: int) -> torch.Tensor:
    g = _gen(seed)
    core = torch.rand(3, 4, 2, dtype=torch.float64, generator=g)
    fs = [
        torch.rand(s, r, dtype=torch.float64, generator=g) for s, r in zip((12, 13, 14), (3, 4, 2))
    ]
    return torch.einsum("abc,ia,jb,kc->ijk", core, *fs)


@pytest.mark.parametrize("method", ["hals", "mu"])
@pytest.mark.parametrize("init", ["hosvd", "random"])
def test_non_negative_tucker_non_negative_and_monotone(method, init):
    x = _nn_planted(18)
    x = add_noise(x, relative=0.05, generator=_gen(19)).clamp_min(0)
    res = non_negative_tucker(
        x, (3, 4, 2), method=method, init=init, generator=_gen(20), tol=0, max_iter=60
    )
    t = res.model
    assert float(t.core.min()) >= 0 and all(float(f.min()) >= 0 for f in t.factors)
    e = res.errors
    assert len(e) == 60
    assert all(b <= a * (1 + 1e-10) for a, b in itertools.pairwise(e)), e
    assert math.isclose(e[-1], _rel(t.to_dense(), x), rel_tol=1e-8)
    assert e[-1] < 0.2


def test_non_negative_tucker_hals_fits_planted_data():
    x = _nn_planted(21)
    res = non_negative_tucker(x, (3, 4, 2), max_iter=300, tol=1e-12)
    assert _rel(res.model.to_dense(), x) < 1e-2


def test_non_negative_tucker_from_tucker_tensor_init():
    x = _nn_planted(22)
    start = non_negative_tucker(x, (3, 4, 2), max_iter=5).model
    res = non_negative_tucker(x, (3, 4, 2), init=start, max_iter=5, tol=0)
    assert res.errors[0] <= non_negative_tucker(x, (3, 4, 2), max_iter=5).error * (1 + 1e-10)


# --- anchors ---------------------------------------------------------------------------------
def test_hooi_no_worse_than_tensorly(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import tucker as tl_tucker

    truth = random_tucker((20, 18, 16), (4, 5, 3), generator=_gen(23), dtype=torch.float64)
    x = add_noise(truth.to_dense(), relative=0.2, generator=_gen(24))
    ranks = (3, 4, 3)  # below the planted ranks: a genuine best-approximation problem
    core, factors = tl_tucker(x.numpy(), rank=list(ranks), n_iter_max=100, tol=1e-10)
    tl_err = float(np.linalg.norm(tl.tucker_to_tensor((core, factors)) - x.numpy()))
    tl_err /= float(np.linalg.norm(x.numpy()))
    ours = tucker(x, ranks, tol=1e-10)
    assert _rel(ours.model.to_dense(), x) <= tl_err * (1 + 1e-6)


def test_non_negative_tucker_comparable_to_tensorly(tensorly_backend):
    tensorly_backend("numpy")
    import tensorly as tl
    from tensorly.decomposition import non_negative_tucker_hals

    x = add_noise(_nn_planted(25), relative=0.05, generator=_gen(26)).clamp_min(0)
    tl_t, _ = non_negative_tucker_hals(
        x.numpy(), rank=[3, 4, 2], n_iter_max=100, tol=0, return_errors=True
    )
    tl_err = float(
        np.linalg.norm(tl.tucker_to_tensor(tl_t) - x.numpy()) / np.linalg.norm(x.numpy())
    )
    ours = non_negative_tucker(x, (3, 4, 2), max_iter=100, tol=0)
    assert ours.error <= tl_err * 1.05


# --- options, determinism, callback ----------------------------------------------------------
def test_determinism_given_generator():
    x = torch.randn(10, 11, 12, dtype=torch.float64, generator=_gen(27))
    a = tucker(x, 3, init="random", generator=_gen(5), max_iter=3, tol=0)
    b = tucker(x, 3, init="random", generator=_gen(5), max_iter=3, tol=0)
    assert a.errors == b.errors
    torch.testing.assert_close(a.model.core, b.model.core, rtol=0, atol=0)
    c = hosvd(x, 3, svd="randomized", generator=_gen(6))
    d = hosvd(x, 3, svd="randomized", generator=_gen(6))
    torch.testing.assert_close(c.model.core, d.model.core, rtol=0, atol=0)
    e = non_negative_tucker(x.abs(), 3, init="random", generator=_gen(7), max_iter=3)
    f = non_negative_tucker(x.abs(), 3, init="random", generator=_gen(7), max_iter=3)
    assert e.errors == f.errors


def test_callback_sees_each_iteration_and_can_stop():
    x = torch.randn(8, 9, 10, dtype=torch.float64, generator=_gen(28))
    seen: list[IterationState] = []
    res = tucker(x, 2, callback=lambda s: seen.append(s) or s.iteration == 3, tol=0)
    assert [s.iteration for s in seen] == [1, 2, 3]
    assert res.iterations == 3 and not res.converged
    assert isinstance(seen[-1].model, TuckerTensor)
    assert seen[-1].error == res.errors[-1]
    nn: list[int] = []
    non_negative_tucker(x.abs(), 2, callback=lambda s: nn.append(s.iteration) or True)
    assert nn == [1]


def test_tucker_init_tucker_tensor_and_dtype_follow_input():
    x = torch.randn(8, 9, 10, dtype=torch.float32, generator=_gen(29))
    start = random_tucker((8, 9, 10), (2, 3, 4), generator=_gen(30), dtype=torch.float32)
    res = tucker(x, (2, 3, 4), init=start, max_iter=4)
    assert res.model.dtype == torch.float32 and res.model.core.shape == (2, 3, 4)
    assert res.time_s >= res.init_time_s >= 0


def test_one_way_and_full_rank():
    v = torch.randn(7, dtype=torch.float64, generator=_gen(31))
    assert _rel(hosvd(v, 7).model.to_dense(), v) < 1e-13
    assert _rel(tucker(v, 3).model.to_dense(), v) < 1e-13  # a vector has rank 1 in its mode
    x = torch.randn(4, 5, 6, dtype=torch.float64, generator=_gen(32))
    assert _rel(tucker(x, (4, 5, 6)).model.to_dense(), x) < 1e-12


def test_zero_tensor():
    z = torch.zeros(4, 5, 6, dtype=torch.float64)
    assert hosvd(z, 2).error == 0.0
    assert tucker(z, 2).error == 0.0
    assert hosvd(z, eps=0.1).model.core.shape == (1, 1, 1)


# --- numerical guards (issue 9): autocast, scale, half precision, numpy, deprecations ---------
def _true64(x, model) -> float:
    """``||X - X_hat|| / ||X||`` in float64, data and model divided by the data's largest entry."""
    x64 = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    x64 = x64.to(torch.float64)
    s = float(x64.abs().max()) or 1.0
    approx = model.to(dtype=torch.float64)
    approx = type(approx)(approx.core / s, approx.factors).to_dense()
    return float(torch.linalg.vector_norm(x64 / s - approx) / torch.linalg.vector_norm(x64 / s))


def _planted32() -> torch.Tensor:
    truth = random_tucker((10, 10, 10), (2, 3, 2), generator=_gen(40), dtype=torch.float32)
    return add_noise(truth.to_dense(), relative=0.01, generator=_gen(41))


FITS = {
    "hosvd": lambda t: hosvd(t, (2, 3, 2)),
    "hosvd_eps": lambda t: hosvd(t, eps=0.05, sequential=False),
    "tucker": lambda t: tucker(t, (2, 3, 2)),
    "partial_tucker": lambda t: partial_tucker(t, (2, 3), modes=(0, 1)),
    "non_negative_tucker": lambda t: non_negative_tucker(t.abs(), (2, 3, 2), max_iter=30),
}


@pytest.mark.parametrize("name", list(FITS))
def test_autocast_does_not_lower_precision_or_hide_the_error(name):
    # issue 9.1: under bf16 autocast tucker returned a bf16 model and reported error 0.0 (true
    # error 0.012), or failed mixing bf16 cores with f32 factors
    x = _planted32()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = FITS[name](x)
    plain = FITS[name](x)
    assert res.model.dtype == torch.float32
    data = x.abs() if name == "non_negative_tucker" else x
    true = _true64(data, res.model)
    assert 0.005 < true < 0.5
    assert math.isclose(res.error, true, rel_tol=1e-3)
    assert math.isclose(res.error, plain.error, rel_tol=1e-5)


SCALES = [
    (torch.float32, 1e-30),
    (torch.float32, 1e30),
    (torch.float64, 1e-200),
    (torch.float64, 1e200),
]


@pytest.mark.parametrize(("dtype", "scale"), SCALES, ids=[f"{d}-{s:g}" for d, s in SCALES])
@pytest.mark.parametrize("name", list(FITS))
def test_extreme_scales_fit_like_unit_scale(name, dtype, scale):
    # issue 9.2: error 0.0 and converged=True with a garbage model at 1e-30, LinAlgError at 1e30
    x = _planted32().to(dtype)
    ref = FITS[name](x)
    res = FITS[name](x * scale)
    data = (x * scale).abs() if name == "non_negative_tucker" else x * scale
    true = _true64(data, res.model)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    assert res.model.dtype == dtype
    assert all(bool(torch.isfinite(t).all()) for t in (res.model.core, *res.model.factors))
    assert math.isclose(res.error, true, rel_tol=tol)
    assert math.isclose(res.error, ref.error, rel_tol=tol)
    # x * scale rounds differently from x, so an iterative fit may stop a sweep earlier or later
    assert res.converged == ref.converged and abs(res.iterations - ref.iterations) <= 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(FITS))
def test_half_precision_computed_in_float32_and_reports_the_true_error(name, dtype):
    # issue 9.7: NotImplementedError "linalg_eigh_cpu" not implemented for 'Half'
    x = _planted32().to(dtype)
    res = FITS[name](x)
    assert res.model.dtype == dtype
    data = x.abs() if name == "non_negative_tucker" else x
    assert math.isclose(res.error, _true64(data, res.model), rel_tol=1e-4)
    assert res.error < FITS[name](x.float()).error + 0.02


def test_model_that_overflows_the_dtype_is_refused():
    x = torch.full((4, 4, 4), 3e38, dtype=torch.float32)  # core entry 8 * 3e38 > float32 max
    with pytest.raises(ValueError, match=r"hosvd: the fitted model cannot be represented in "):
        hosvd(x, 1)


def test_numpy_input_and_numpy_ranks():
    x = _planted32().double()
    for name, call in [
        ("hosvd", lambda t, r: hosvd(t, r)),
        ("tucker", lambda t, r: tucker(t, r)),
        ("partial_tucker", lambda t, r: partial_tucker(t, r, modes=[np.int64(0), 1, 2])),
        ("nn", lambda t, r: non_negative_tucker(abs(t), r, max_iter=5)),
    ]:
        ours = call(x.numpy(), (np.int64(2), np.int32(3), 2))
        ref = call(x, (2, 3, 2))
        assert isinstance(ours.model.core, torch.Tensor), name
        assert ours.model.dtype == torch.float64 and ours.model.rank == (2, 3, 2), name
        assert math.isclose(ours.error, ref.error, rel_tol=1e-12), name
    assert hosvd(x, np.int64(2)).model.rank == (2, 2, 2)
    assert tucker(x, 2, max_iter=np.int64(3)).iterations <= 3


def test_hosvd_error_keyword_is_a_deprecated_alias_of_eps():
    x = _planted32().double()
    with pytest.warns(DeprecationWarning, match=r"hosvd: error= is deprecated; use eps=") as rec:
        old = hosvd(x, error=0.05)
    assert rec[0].filename == __file__  # points at the caller
    new = hosvd(x, eps=0.05)
    assert old.model.rank == new.model.rank and old.error == new.error
    with pytest.raises(TypeError, match=r"hosvd: error is the deprecated name of eps"):
        hosvd(x, eps=0.05, error=0.05)


def test_keyword_order_data_rank_options_generator_callback():
    import inspect

    for fn in (tucker, partial_tucker, non_negative_tucker):
        names = list(inspect.signature(fn).parameters)
        assert names[:2] == ["tensor", "rank"] and names[-2:] == ["generator", "callback"], fn
    assert list(inspect.signature(non_negative_tucker).parameters).index("method") < 5


def test_hosvd_gradients_finite_on_exactly_low_rank_data():
    # rank-1 data: every unfolding has repeated zero singular values; torch's own backward
    # gives NaN here (issue 9.6)
    v = [torch.arange(1.0, n + 1, dtype=torch.float64) for n in (3, 4, 5)]
    x = torch.einsum("i,j,k->ijk", *v)
    for svd in ("auto", "full", "gram"):
        assert torch.autograd.gradcheck(
            lambda t, svd=svd: hosvd(t, 1, svd=svd).model.to_dense(),
            (x.clone().requires_grad_(),),
        )
        t = x.clone().requires_grad_()
        hosvd(t, 2, svd=svd).model.to_dense().sum().backward()  # rank above the true rank
        assert torch.isfinite(t.grad).all()


# --- bad input -------------------------------------------------------------------------------
X = torch.randn(4, 5, 6, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: hosvd("x", 2),
            TypeError,
            r"hosvd: tensor must be a torch.Tensor or a numpy array; got str",
        ),
        (lambda: hosvd(X.long(), 2), TypeError, r"floating-point or complex dtype"),
        (
            lambda: tucker(X.to(torch.float8_e5m2), 2),
            TypeError,
            r"tucker: tensor must be float16, bfloat16, float32, float64, complex64 or complex128; "
            r"got torch.float8_e5m2",
        ),
        (lambda: hosvd(X.clone().fill_(float("nan")), 2), ValueError, r"NaN or Inf"),
        (lambda: tucker(torch.full((3, 3), float("inf")), 2), ValueError, r"NaN or Inf"),
        (lambda: hosvd(torch.zeros(3, 0, 2), 1), ValueError, r"empty dimension"),
        (lambda: hosvd(X, 0), ValueError, r"hosvd: rank must be positive; got 0 for mode 0"),
        (
            lambda: hosvd(X, 10**9),
            ValueError,
            r"hosvd: rank 1000000000 for mode 0 exceeds that mode's size 4",
        ),
        (
            lambda: tucker(X, (10**12, 2, 2)),
            ValueError,
            r"tucker: rank 1000000000000 for mode 0 exceeds that mode's size 4",
        ),
        (lambda: hosvd(X, np.float64(2.0)), TypeError, r"hosvd: rank must be an int or a tuple"),
        (lambda: hosvd(X, (2, np.bool_(True), 2)), TypeError, r"hosvd: rank\[1\] must be an int"),
        (lambda: hosvd(X, (2, 6, 2)), ValueError, r"rank 6 for mode 1 exceeds that mode's size 5"),
        (lambda: tucker(X, 7), ValueError, r"tucker: rank 7 for mode 0 exceeds that mode's size 4"),
        (lambda: hosvd(X, (2, 2)), ValueError, r"rank needs one entry per decomposed mode \(3\)"),
        (lambda: hosvd(X, 2.0), TypeError, r"rank must be an int or a tuple of ints; got float"),
        (lambda: hosvd(X, (2, 2.5, 2)), TypeError, r"rank\[1\] must be an int"),
        (lambda: hosvd(X), ValueError, r"give exactly one of rank .* and eps .*; got neither"),
        (lambda: hosvd(X, 2, eps=0.1), ValueError, r"got both"),
        (lambda: hosvd(X, eps=0.0), ValueError, r"eps must be a relative accuracy in \(0, 1\)"),
        (lambda: hosvd(X, eps=1.0), ValueError, r"relative accuracy in \(0, 1\); got 1.0"),
        (lambda: hosvd(X, eps="a"), TypeError, r"eps must be a float in \(0, 1\); got str"),
        (lambda: hosvd(X, 2, svd="lapack"), ValueError, r"svd must be one of \('auto', 'full'"),
        (lambda: hosvd(X, eps=0.1, svd="randomized"), ValueError, r"'randomized' needs rank"),
        (lambda: hosvd(X, 2, sequential=1), TypeError, r"sequential must be a bool"),
        (lambda: hosvd(X, 2, generator=0), TypeError, r"generator must be a torch.Generator"),
        (lambda: hosvd(X, (1, 1, 2)), ValueError, r"rank 2 for mode 2 exceeds the product of"),
        (
            lambda: non_negative_tucker(X.abs(), (1, 3, 2)),
            ValueError,
            r"non_negative_tucker: rank 3 for mode 1 exceeds the product of the other ranks \(2\)",
        ),
        (
            lambda: tucker(X, 2, init="svd"),
            ValueError,
            r"init must be one of \('hosvd', 'random'\)",
        ),
        (lambda: tucker(X, 2, init=3), TypeError, r"init must be one of .* or a TuckerTensor"),
        (
            lambda: tucker(X, 2, init=random_tucker((4, 5, 7), 2, dtype=torch.float64)),
            ValueError,
            r"init has shape \(4, 5, 7\) but the tensor has shape \(4, 5, 6\)",
        ),
        (
            lambda: tucker(X, 2, init=random_tucker((4, 5, 6), 3, dtype=torch.float64)),
            ValueError,
            r"init has rank 3 along mode 0 but rank 2 was asked",
        ),
        (
            lambda: tucker(X, 2, init=random_tucker((4, 5, 6), 2, dtype=torch.float32)),
            ValueError,
            r"init is torch.float32 on cpu but the tensor is torch.float64",
        ),
        (lambda: tucker(X, 2, max_iter=0), ValueError, r"max_iter must be a positive int; got 0"),
        (
            lambda: tucker(X, 2, max_iter=2.0),
            TypeError,
            r"max_iter must be a positive int; got float",
        ),
        (lambda: tucker(X, 2, tol=-1.0), ValueError, r"tol must be a non-negative float"),
        (lambda: tucker(X, 2, callback=1), TypeError, r"callback must be callable or None"),
        (lambda: partial_tucker(X, 2, modes=1), TypeError, r"modes must be a non-empty sequence"),
        (lambda: partial_tucker(X, 2, modes=()), TypeError, r"modes must be a non-empty sequence"),
        (
            lambda: partial_tucker(X, 2, modes=(0, 3)),
            IndexError,
            r"modes must be in \[-3, 2\] for a 3-way tensor; got 3",
        ),
        (lambda: partial_tucker(X, 2, modes=(0, -3)), ValueError, r"modes must be distinct"),
        (
            lambda: partial_tucker(X, (2, 2, 2), modes=(0, 1)),
            ValueError,
            r"one entry per decomposed mode \(2\)",
        ),
        (
            lambda: non_negative_tucker(X.to(torch.complex128), 2),
            TypeError,
            r"non_negative_tucker: tensor must be real; got torch.complex128",
        ),
        (
            lambda: non_negative_tucker(X, 2, method="mu"),
            ValueError,
            r"method='mu' needs a non-negative tensor",
        ),
        (
            lambda: non_negative_tucker(X.abs(), 2, method="als"),
            ValueError,
            r"method must be one of \('hals', 'mu'\)",
        ),
        (
            lambda: non_negative_tucker(X.abs(), 2, init="svd"),
            ValueError,
            r"init must be one of \('hosvd', 'random'\)",
        ),
        (
            lambda: non_negative_tucker(X.abs(), 2, init=None),
            TypeError,
            r"init must be one of .* or a TuckerTensor",
        ),
        (
            lambda: non_negative_tucker(
                X.abs(), 2, init=random_tucker((4, 5, 6), 2, dtype=torch.float64)
            ),
            ValueError,
            r"init must have a non-negative core and factors",
        ),
        (
            lambda: non_negative_tucker(
                X.abs(), 2, init=random_tucker((4, 5, 6), 3, dtype=torch.float64)
            ),
            ValueError,
            r"expected shape \(4, 5, 6\) and rank \(2, 2, 2\)",
        ),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_hosvd_gradients_flow_and_iterative_methods_do_not_track():
    x = torch.randn(4, 5, 6, dtype=torch.float64, generator=_gen(33), requires_grad=True)
    hosvd(x, 2, svd="full").model.to_dense().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert not tucker(x, 2, max_iter=2).model.core.requires_grad
    assert not partial_tucker(x, 2, modes=(0,), max_iter=2).model.core.requires_grad
    assert not non_negative_tucker(x.abs(), 2, max_iter=2).model.core.requires_grad


@pytest.mark.cuda
def test_cuda_follows_input_and_matches_cpu():
    x = random_tucker((12, 13, 14), (3, 4, 5), generator=_gen(34), dtype=torch.float64).to_dense()
    x = add_noise(x, relative=0.05, generator=_gen(35))
    runs = [
        lambda t: hosvd(t, (3, 4, 5)),
        lambda t: hosvd(t, eps=0.1, sequential=False),
        lambda t: tucker(t, (3, 4, 5), init="random", generator=_gen(1), max_iter=5, tol=0),
        lambda t: partial_tucker(t, 3, modes=(1,), max_iter=3),
        lambda t: non_negative_tucker(t.abs(), (3, 4, 5), max_iter=5, tol=0),
    ]
    for run in runs:
        on_gpu, on_cpu = run(x.cuda()), run(x)
        assert on_gpu.model.device.type == "cuda" and on_gpu.model.dtype == torch.float64
        assert abs(on_gpu.error - on_cpu.error) < 1e-8
