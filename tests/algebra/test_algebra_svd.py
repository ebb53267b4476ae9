"""truncated_svd (every method), randomized_svd and leading_singular_vectors against float64
LAPACK on matrices with planted, well-separated spectra; errors."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import REAL_DTYPES, assert_close, real_dtypes, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.algebra import leading_singular_vectors, randomized_svd, truncated_svd

F64 = torch.float64


def planted(m: int, n: int, spectrum, dtype, gen) -> torch.Tensor:
    """``Q1 diag(spectrum) Q2^H`` with random orthonormal Q1 (m x k), Q2 (n x k), built in
    double precision then cast."""
    k = len(spectrum)
    hi = torch.complex128 if dtype.is_complex else F64
    q1 = torch.linalg.qr(torch.randn(m, k, dtype=hi, generator=gen)).Q
    q2 = torch.linalg.qr(torch.randn(n, k, dtype=hi, generator=gen)).Q
    s = torch.as_tensor(spectrum, dtype=F64).to(hi)
    return ((q1 * s) @ q2.mH).to(dtype)


def geometric(k: int, ratio: float = 0.6) -> list[float]:
    return [ratio**i for i in range(k)]


def best_rank(a: torch.Tensor, k: int) -> torch.Tensor:
    """Best rank-k approximation by float64/complex128 LAPACK (unique for a spectral gap)."""
    hi = a.to(torch.complex128 if a.is_complex() else F64)
    u, s, vh = torch.linalg.svd(hi, full_matrices=False)
    return (u[:, :k] * s[:k].to(hi.dtype)) @ vh[:k]


def check_triplets(a, u, s, vh, k, scale=1.0):
    m, n = a.shape
    kk = min(k, m, n)
    assert u.shape == (m, kk) and s.shape == (kk,) and vh.shape == (kk, n)
    assert not s.is_complex() and u.dtype == a.dtype and vh.dtype == a.dtype
    assert bool((s[:-1] >= s[1:]).all())
    eye = torch.eye(kk, dtype=a.dtype)
    assert_close(u.mH @ u, eye, scale)
    assert_close(vh @ vh.mH, eye, scale)
    hi = torch.linalg.svdvals(a.to(torch.complex128 if a.is_complex() else F64))
    assert_close(s, hi[:kk], scale)
    assert_close((u * s.to(a.dtype)) @ vh, best_rank(a, kk), scale)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    rank=st.integers(1, 14),
    dtype=real_dtypes,
    method=st.sampled_from(["full", "gram", "auto"]),
    seed=seeds,
)
def test_truncated_svd_matches_lapack(m, n, rank, dtype, method, seed):
    gen = torch.Generator().manual_seed(seed)
    a = planted(m, n, geometric(min(m, n)), dtype, gen)
    u, s, vh = truncated_svd(a, rank, method=method)
    # gram squares the condition number (smallest planted value ~0.6^11 ~ 4e-3)
    check_triplets(a, u, s, vh, rank, scale=30.0 if method == "gram" else 1.0)


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    true_rank=st.integers(1, 4),
    extra=st.integers(0, 3),
    dtype=real_dtypes,
    seed=seeds,
)
def test_randomized_svd_recovers_exactly_low_rank_matrices(m, n, true_rank, extra, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    r = min(true_rank, m, n)
    a = planted(m, n, geometric(r), dtype, gen)
    k = r + extra
    u, s, vh = randomized_svd(a, k, oversample=2, generator=torch.Generator().manual_seed(seed))
    kk = min(k, m, n)
    assert u.shape == (m, kk) and s.shape == (kk,) and vh.shape == (kk, n)
    assert_close((u * s) @ vh, a.to(F64))
    assert_close(s[:r], torch.tensor(geometric(r), dtype=F64))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("method", ["full", "gram"])
@pytest.mark.parametrize(("m", "n"), [(7, 5), (5, 7)])
def test_truncated_svd_complex(dtype, method, m, n):
    gen = torch.Generator().manual_seed(3)
    a = planted(m, n, geometric(5), dtype, gen)
    u, s, vh = truncated_svd(a, 3, method=method)
    assert s.dtype == (torch.float32 if dtype == torch.complex64 else F64)
    check_triplets(a, u, s, vh, 3, scale=30.0 if method == "gram" else 1.0)


def test_randomized_svd_on_a_decaying_spectrum_and_generator_reproducibility():
    gen = torch.Generator().manual_seed(4)
    a = planted(80, 60, [1.0, 0.5, 0.25, *(1e-4 * 0.9**i for i in range(40))], F64, gen)
    out1 = randomized_svd(a, 3, generator=torch.Generator().manual_seed(0))
    out2 = randomized_svd(a, 3, generator=torch.Generator().manual_seed(0))
    out3 = randomized_svd(a, 3, generator=torch.Generator().manual_seed(1))
    for x, y in zip(out1, out2):
        assert torch.equal(x, y)
    assert not torch.equal(out1[0], out3[0])
    for u, s, vh in (out1, out3):
        torch.testing.assert_close(s, torch.tensor([1.0, 0.5, 0.25], dtype=F64), rtol=1e-7, atol=0)
        torch.testing.assert_close((u * s) @ vh, best_rank(a, 3), rtol=0, atol=1e-7)
    # n_iter=0, oversample=0 still returns the requested shapes
    u, s, vh = randomized_svd(a.T, 2, n_iter=0, oversample=0, generator=gen)
    assert u.shape == (60, 2) and s.shape == (2,) and vh.shape == (2, 80)


def test_auto_picks_randomized_for_large_matrices_and_full_otherwise():
    gen = torch.Generator().manual_seed(5)
    big = planted(300, 260, geometric(10), F64, gen)
    auto = truncated_svd(big, 5, generator=torch.Generator().manual_seed(7))
    rand = truncated_svd(big, 5, method="randomized", generator=torch.Generator().manual_seed(7))
    for x, y in zip(auto, rand):
        assert torch.equal(x, y)
    check_triplets(big, *auto, 5)
    small = planted(30, 20, geometric(10), F64, gen)
    for x, y in zip(truncated_svd(small, 5), truncated_svd(small, 5, method="full")):
        assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", [*REAL_DTYPES, torch.complex128])
@pytest.mark.parametrize(("m", "n"), [(6, 20), (20, 6), (6, 6)])
def test_leading_singular_vectors_span_lapack_subspace(dtype, m, n):
    gen = torch.Generator().manual_seed(6)
    a = planted(m, n, geometric(6), dtype, gen)
    u = leading_singular_vectors(a, 3)
    assert u.shape == (m, 3) and u.dtype == dtype
    ref = torch.linalg.svd(a.to(torch.complex128 if dtype.is_complex else F64)).U[:, :3]
    assert_close(u @ u.mH, ref @ ref.mH, scale=30.0)
    assert leading_singular_vectors(a, 50).shape == (m, min(m, n))


def test_svd_differentiable_methods_gradcheck():
    gen = torch.Generator().manual_seed(8)
    a = planted(5, 4, [1.0, 0.7, 0.4, 0.2], F64, gen).requires_grad_(True)
    for method in ("full", "gram"):
        assert torch.autograd.gradcheck(
            lambda x, method=method: truncated_svd(x, 2, method=method)[1], (a,)
        )


def _svd_errors_inputs(fn):
    f = truncated_svd if fn == "truncated_svd" else randomized_svd
    a = torch.zeros(4, 3)
    bad = a.clone()
    bad[1, 1] = float("nan")
    return f, a, bad


SVD_ERRORS_CASES = [
    pytest.param(
        lambda f, a, bad: f("matrix", 1),
        TypeError,
        r"FN: matrix must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda f, a, bad: f(torch.zeros(2, 2, 2), 1),
        ValueError,
        r"FN: matrix must have 2 dimensions; got shape \(2, 2, 2\)\.",
    ),
    pytest.param(
        lambda f, a, bad: f(torch.zeros(4, 3, dtype=torch.int64), 1),
        TypeError,
        r"FN: matrix must have a floating-point or complex dtype; got torch\.int64\.",
    ),
    pytest.param(
        lambda f, a, bad: f(torch.zeros(0, 3), 1),
        ValueError,
        r"FN: matrix has an empty dimension \(shape \(0, 3\)\)",
    ),
    pytest.param(
        lambda f, a, bad: f(bad, 1),
        ValueError,
        r"FN: matrix contains 1 NaN or Inf entries; all entries must be finite",
    ),
    pytest.param(
        lambda f, a, bad: f(a, 0), ValueError, r"FN: rank must be a positive int; got 0\."
    ),
    pytest.param(
        lambda f, a, bad: f(a, 2.0), TypeError, r"FN: rank must be a positive int; got float\."
    ),
    pytest.param(
        lambda f, a, bad: f(a, 1, n_iter=-1),
        ValueError,
        r"FN: n_iter must be a non-negative int; got -1\.",
    ),
    pytest.param(
        lambda f, a, bad: f(a, 1, oversample=True),
        ValueError,
        r"FN: oversample must be a non-negative int; got True\.",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), SVD_ERRORS_CASES)
@pytest.mark.parametrize("fn", ["truncated_svd", "randomized_svd"])
def test_svd_errors(fn, call, error, match):
    with pytest.raises(error, match=match.replace("FN", fn)):
        call(*_svd_errors_inputs(fn))


def test_truncated_svd_bad_method():
    with pytest.raises(
        ValueError,
        match=r"truncated_svd: method must be one of "
        r"\('auto', 'full', 'gram', 'randomized'\); got 'qr'\.",
    ):
        truncated_svd(torch.zeros(4, 3), 1, method="qr")


LEADING_SINGULAR_VECTORS_ERRORS_CASES = [
    pytest.param(
        lambda: leading_singular_vectors(torch.zeros(3), 1),
        ValueError,
        r"leading_singular_vectors: matrix must have 2 dimensions; got shape \(3,\)\.",
    ),
    pytest.param(
        lambda: leading_singular_vectors(torch.zeros(3, 3), -2),
        ValueError,
        r"leading_singular_vectors: rank must be a positive int; got -2\.",
    ),
    pytest.param(
        lambda: leading_singular_vectors(torch.tensor([[1.0, float("inf")]]), 1),
        ValueError,
        r"leading_singular_vectors: matrix contains 1 NaN or Inf entries",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), LEADING_SINGULAR_VECTORS_ERRORS_CASES)
def test_leading_singular_vectors_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["full", "gram", "randomized"])
def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype(dtype, method):
    gen = torch.Generator().manual_seed(5)
    low = torch.randn(40, 3, generator=gen) @ torch.randn(3, 30, generator=gen)
    a = low.to(dtype)
    u, s, vh = truncated_svd(a, 3, method=method, generator=torch.Generator().manual_seed(0))
    assert u.dtype == s.dtype == vh.dtype == dtype
    ref = torch.linalg.svdvals(a.float())[:3]
    torch.testing.assert_close(s.float(), ref, rtol=2e-2, atol=0.0)
    rel = torch.linalg.norm((u.float() * s.float()) @ vh.float() - a.float()) / a.float().norm()
    assert float(rel) < 2e-2


@pytest.mark.parametrize("scale", [1e-30, 1e30])
@pytest.mark.parametrize("method", ["full", "gram", "randomized"])
def test_extreme_float32_scales_give_true_singular_values(scale, method):
    gen = torch.Generator().manual_seed(6)
    low = torch.randn(60, 4, generator=gen, dtype=F64) @ torch.randn(
        4, 50, generator=gen, dtype=F64
    )
    a = (low * scale).float()
    u, s, vh = truncated_svd(a, 4, method=method, generator=torch.Generator().manual_seed(0))
    ref = torch.linalg.svdvals(low)[:4] * scale
    torch.testing.assert_close(s.double() / ref, torch.ones(4, dtype=F64), rtol=1e-4, atol=0.0)
    assert bool(torch.isfinite(u).all()) and bool(torch.isfinite(vh).all())
    v = leading_singular_vectors(a, 4)
    assert bool(torch.isfinite(v).all())


def test_half_precision_singular_values_beyond_the_range_are_refused():
    a = torch.full((4, 4), 30000.0, dtype=torch.float16)  # largest singular value 120000
    with pytest.raises(ValueError, match=r"truncated_svd: the largest singular value .* exceeds"):
        truncated_svd(a, 1)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda a: truncated_svd(a, 1, generator=0),
            TypeError,
            r"truncated_svd: generator must be a torch.Generator or None; got int",
        ),
    ],
)
def test_svd_argument_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.ones(4, 3))


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_complex32_is_refused():
    with pytest.raises(TypeError, match=r"randomized_svd: complex32 is not supported"):
        randomized_svd(torch.ones(4, 3).to(torch.complex32), 1)
