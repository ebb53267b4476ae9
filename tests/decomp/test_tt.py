"""Tensor train: TT-SVD (full, Gram, randomized; ranks and/or eps), TT rounding, TT-matrix.

Planted recovery, the eps guarantee on hypothesis-drawn tensors, rounding of sums, TensorLy
agreement, complex round trips, determinism and pinned error messages.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.decomp import DecompositionResult, tt_matrix, tt_round, tt_svd
from factorch.random import add_noise, random_tt, random_tt_matrix
from factorch.tensors import TTMatrix, TTTensor

METHODS = ["auto", "full", "gram", "randomized"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _left_orthonormal(core: torch.Tensor, tol: float) -> bool:
    m = core.reshape(-1, core.shape[2])
    eye = torch.eye(m.shape[1], dtype=m.dtype)
    return float(torch.linalg.matrix_norm(m.mH @ m - eye)) < tol


# --- planted recovery ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "rank"),
    [
        ((6, 7, 8, 9), (1, 3, 4, 2, 1)),
        ((5, 6, 7), (1, 4, 3, 1)),
        ((4, 3, 5, 3, 4), (1, 2, 3, 3, 2, 1)),
    ],
)
@pytest.mark.parametrize("method", METHODS)
def test_tt_svd_planted_recovery_float64(shape, rank, method):
    x = random_tt(shape, rank, generator=_gen(1), dtype=torch.float64).to_dense()
    res = tt_svd(x, rank, svd=method, generator=_gen(2))
    assert isinstance(res, DecompositionResult) and isinstance(res.model, TTTensor)
    assert res.model.rank == rank
    assert _rel(res.model.to_dense(), x) < 1e-8
    assert all(_left_orthonormal(c, 1e-10) for c in res.model.cores[:-1])
    # eps alone finds the planted ranks (the Gram route resolves eps down to ~1e-7 only)
    eps = 1e-6 if method == "gram" else 1e-10
    by_eps = tt_svd(x, eps=eps, svd="full" if method == "randomized" else method)
    assert by_eps.model.rank == rank
    assert _rel(by_eps.model.to_dense(), x) < eps


def test_int_rank_is_a_maximum_and_capped():
    x = random_tt((4, 5, 6), (1, 3, 2, 1), generator=_gen(3), dtype=torch.float64).to_dense()
    res = tt_svd(x, 50)  # capped by the unfoldings: (1, 4, 6, 1)
    assert res.model.rank == (1, 4, 6, 1)
    assert _rel(res.model.to_dense(), x) < 1e-12
    both = tt_svd(x, 50, eps=1e-8)  # eps picks below the cap
    assert both.model.rank == (1, 3, 2, 1)


def test_planted_recovery_float32():
    x = random_tt((8, 9, 10, 7), 3, generator=_gen(4), dtype=torch.float32).to_dense()
    for method in METHODS:
        res = tt_svd(x, 3, svd=method, generator=_gen(5))
        assert res.model.dtype == torch.float32
        assert _rel(res.model.to_dense(), x) < 1e-5
    assert tt_svd(x, eps=1e-4).model.rank == (1, 3, 3, 3, 1)


@pytest.mark.parametrize("noise", [0.01, 0.1])
@pytest.mark.parametrize("method", METHODS)
def test_error_lands_at_noise_level(noise, method):
    clean = random_tt((10, 11, 12, 13), 3, generator=_gen(6), dtype=torch.float64).to_dense()
    x = add_noise(clean, relative=noise, generator=_gen(7))
    level = float(torch.linalg.vector_norm(x - clean) / torch.linalg.vector_norm(x))
    res = tt_svd(x, 3, svd=method, generator=_gen(8))
    dense_err = _rel(res.model.to_dense(), x)
    assert 0.95 * level < dense_err < 1.01 * level
    assert math.isclose(res.error, dense_err, rel_tol=1e-6)
    assert _rel(res.model.to_dense(), clean) < 0.5 * noise


# --- the eps guarantee -----------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(2, 6), min_size=2, max_size=5),
    eps=st.floats(0.01, 0.9),
    seed=st.integers(0, 2**31 - 1),
    method=st.sampled_from(["auto", "full", "gram"]),
    low_rank=st.booleans(),
)
def test_tt_svd_meets_eps(shape, eps, seed, method, low_rank):
    g = _gen(seed)
    if low_rank:
        x = add_noise(
            random_tt(shape, 2, generator=g, dtype=torch.float64).to_dense(),
            relative=0.05,
            generator=g,
        )
    else:
        x = torch.randn(*shape, dtype=torch.float64, generator=g)
    res = tt_svd(x, eps=eps, svd=method)
    dense_err = _rel(res.model.to_dense(), x)
    assert dense_err <= eps * (1 + 1e-10)
    assert abs(res.error - dense_err) < 1e-7


def test_randomized_with_eps_honours_it_when_the_cap_allows():
    clean = random_tt((9, 10, 11, 12), 3, generator=_gen(9), dtype=torch.float64).to_dense()
    x = add_noise(clean, relative=1e-3, generator=_gen(10))
    res = tt_svd(x, 8, eps=0.01, svd="randomized", generator=_gen(11))
    assert res.model.rank == (1, 3, 3, 3, 1)
    assert _rel(res.model.to_dense(), x) <= 0.01


# --- rounding --------------------------------------------------------------------------------
def test_round_of_a_sum_matches_dense_sum_and_ranks_add():
    a = random_tt((5, 6, 7, 4), (1, 3, 4, 2, 1), generator=_gen(12), dtype=torch.float64)
    b = random_tt((5, 6, 7, 4), (1, 2, 2, 3, 1), generator=_gen(13), dtype=torch.float64)
    s = a + b
    assert s.rank == (1, 5, 6, 5, 1)
    res = tt_round(s, eps=1e-12)
    dense = a.to_dense() + b.to_dense()
    assert _rel(res.model.to_dense(), dense) < 1e-11
    assert all(r <= q for r, q in zip(res.model.rank, s.rank))
    assert res.error < 1e-12


def test_round_recovers_shared_structure():
    a = random_tt((6, 7, 8, 5), (1, 3, 4, 2, 1), generator=_gen(14), dtype=torch.float64)
    for s, scale in ((a + a, 2.0), (a + a * 2.0, 3.0), (a - a * 0.5, 0.5)):
        res = tt_round(s, eps=1e-10)
        assert res.model.rank == a.rank
        assert _rel(res.model.to_dense(), scale * a.to_dense()) < 1e-12
    capped = tt_round(a + a, (1, 3, 4, 2, 1))
    assert capped.model.rank == a.rank


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 0.8), n=st.integers(2, 5))
def test_round_meets_eps_and_reports_the_rounding_error(seed, eps, n):
    g = _gen(seed)
    shape = [3 + (k % 3) for k in range(n)]
    s = random_tt(shape, 3, generator=g, dtype=torch.float64) + random_tt(
        shape, 2, generator=g, dtype=torch.float64
    )
    res = tt_round(s, eps=eps)
    dense = s.to_dense()
    err = _rel(res.model.to_dense(), dense)
    assert err <= eps * (1 + 1e-10)
    assert abs(res.error - err) < 1e-9


def test_round_of_zero_and_complex():
    a = random_tt((4, 5, 6), 2, generator=_gen(15), dtype=torch.complex128)
    zero = tt_round(a * 0.0, eps=0.1)
    assert zero.error == 0.0 and zero.model.rank == (1, 1, 1, 1)
    res = tt_round(a + a * 1j, eps=1e-12)
    assert res.model.rank == a.rank
    assert _rel(res.model.to_dense(), (1 + 1j) * a.to_dense()) < 1e-12


# --- TT-matrix -------------------------------------------------------------------------------
def test_tt_matrix_recovers_planted_tt_matrix():
    w = random_tt_matrix(
        (2, 3, 4), (3, 2, 5), (1, 3, 4, 1), generator=_gen(16), dtype=torch.float64
    )
    dense = w.to_dense()
    assert dense.shape == (24, 30)
    res = tt_matrix(dense, (2, 3, 4), (3, 2, 5), (1, 3, 4, 1))
    assert isinstance(res.model, TTMatrix)
    assert [tuple(c.shape) for c in res.model.cores] == [(1, 2, 3, 3), (3, 3, 2, 4), (4, 4, 5, 1)]
    assert _rel(res.model.to_dense(), dense) < 1e-10
    assert tt_matrix(dense, (2, 3, 4), (3, 2, 5), eps=1e-10).model.rank == (1, 3, 4, 1)


def test_tt_matrix_of_a_kronecker_product_has_rank_one():
    g = _gen(17)
    a, b = (
        torch.randn(3, 4, dtype=torch.float64, generator=g),
        torch.randn(5, 2, dtype=torch.float64, generator=g),
    )
    res = tt_matrix(torch.kron(a, b), (3, 5), (4, 2), eps=1e-12)
    assert res.model.rank == (1, 1, 1)
    assert _rel(res.model.to_dense(), torch.kron(a, b)) < 1e-12


# --- anchors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["auto", "full"])
def test_tt_svd_no_worse_than_tensorly(tensorly_backend, method):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import tensor_train

    clean = random_tt((8, 9, 10, 11), 4, generator=_gen(18), dtype=torch.float64).to_dense()
    x = add_noise(clean, relative=0.3, generator=_gen(19))
    ranks = [1, 3, 3, 3, 1]
    tl_err = float(np.linalg.norm(tl.tt_to_tensor(tensor_train(x.numpy(), ranks)) - x.numpy()))
    tl_err /= float(np.linalg.norm(x.numpy()))
    ours = tt_svd(x, tuple(ranks), svd=method)
    assert _rel(ours.model.to_dense(), x) <= tl_err * (1 + 1e-6)


def test_tt_matrix_no_worse_than_tensorly(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import tensor_train_matrix

    m = torch.randn(24, 30, dtype=torch.float64, generator=_gen(20))
    t = m.reshape(2, 3, 4, 3, 2, 5).numpy()
    tl_ttm = tensor_train_matrix(t, [1, 3, 4, 1])
    tl_err = float(np.linalg.norm(tl.tt_matrix_to_tensor(tl_ttm).reshape(24, 30) - m.numpy()))
    tl_err /= float(np.linalg.norm(m.numpy()))
    ours = tt_matrix(m, (2, 3, 4), (3, 2, 5), (1, 3, 4, 1))
    assert _rel(ours.model.to_dense(), m) <= tl_err * (1 + 1e-6)


# --- complex, determinism, gradients ---------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_tt_svd_round_trip(dtype):
    x = torch.randn(3, 4, 5, 2, dtype=dtype, generator=_gen(21))
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    for method in ("full", "gram", "auto"):
        res = tt_svd(x, 100, svd=method)
        assert res.model.dtype == dtype
        assert _rel(res.model.to_dense(), x) < tol
    planted = random_tt((5, 6, 7), 2, generator=_gen(22), dtype=dtype).to_dense()
    for res in (
        tt_svd(planted, eps=1e-3),
        tt_svd(planted, 2, svd="randomized", generator=_gen(1)),
    ):
        assert res.model.rank == (1, 2, 2, 1)
        assert _rel(res.model.to_dense(), planted) < tol * 100


def test_randomized_is_deterministic_given_a_generator():
    x = torch.randn(6, 7, 8, 9, dtype=torch.float64, generator=_gen(23))
    a = tt_svd(x, 4, svd="randomized", generator=_gen(3))
    b = tt_svd(x, 4, svd="randomized", generator=_gen(3))
    for ca, cb in zip(a.model.cores, b.model.cores):
        torch.testing.assert_close(ca, cb, rtol=0, atol=0)


def test_one_way_and_gradients_flow():
    v = torch.randn(7, dtype=torch.float64, generator=_gen(24))
    res = tt_svd(v, eps=0.5)
    assert res.model.rank == (1, 1) and res.error == 0.0
    x = torch.randn(4, 5, 6, dtype=torch.float64, generator=_gen(25), requires_grad=True)
    out = tt_svd(x, 2, svd="full").model.to_dense().sum()
    out.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# --- bad input -------------------------------------------------------------------------------
X = torch.randn(4, 5, 6, 3, dtype=torch.float64)
A = random_tt((4, 5, 6), 2, dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: tt_svd(None, 2),
            TypeError,
            r"tt_svd: tensor must be a torch.Tensor or a numpy array; got NoneType",
        ),
        (
            lambda: tt_svd(X.int(), 2),
            TypeError,
            r"floating-point or complex dtype; got torch.int32",
        ),
        (lambda: tt_svd(X.clone().fill_(float("nan")), 2), ValueError, r"NaN or Inf"),
        (
            lambda: tt_svd(X.to(torch.float8_e5m2), 2),
            TypeError,
            r"must be float16, bfloat16, .*; got torch.float8_e5m2",
        ),
        (
            lambda: tt_matrix(torch.ones(4, 4, dtype=torch.float8_e5m2), (2, 2), (2, 2), 2),
            TypeError,
            r"tt_matrix: matrix must be float16, bfloat16",
        ),
        (lambda: tt_svd(torch.zeros(3, 0), 2), ValueError, r"empty dimension"),
        (lambda: tt_svd(X, 0), ValueError, r"tt_svd: rank must be a positive int; got 0"),
        (
            lambda: tt_svd(X, (1, 2, 1)),
            ValueError,
            r"tt_svd: rank needs 5 entries for a 4-way tensor \(r_0 = r_4 = 1\); got \(1, 2, 1\)",
        ),
        (
            lambda: tt_svd(X, (2, 3, 3, 3, 2)),
            ValueError,
            r"boundary ranks r_0 = r_4 = 1; got \(2, 3, 3, 3, 2\)",
        ),
        (lambda: tt_svd(X, (1, 3, 0, 3, 1)), ValueError, r"rank entries must be positive"),
        (lambda: tt_svd(X, (1, 3, 2.0, 3, 1)), TypeError, r"rank\[2\] must be an int"),
        (lambda: tt_svd(X, "max"), TypeError, r"rank must be an int or a tuple of ints; got str"),
        (
            lambda: tt_svd(X),
            ValueError,
            r"give rank \(maximal TT ranks\), eps .* or both; got neither",
        ),
        (
            lambda: tt_svd(X, eps=0.0),
            ValueError,
            r"eps must be a relative accuracy in \(0, 1\); got 0.0",
        ),
        (
            lambda: tt_svd(X, eps=1.5),
            ValueError,
            r"eps must be a relative accuracy in \(0, 1\); got 1.5",
        ),
        (
            lambda: tt_svd(X, 2, svd="qr"),
            ValueError,
            r"svd must be one of \('auto', 'full', 'gram'",
        ),
        (lambda: tt_svd(X, eps=0.1, svd="randomized"), ValueError, r"'randomized' needs rank"),
        (
            lambda: tt_svd(X, 2, generator=1),
            TypeError,
            r"generator must be a torch.Generator or None",
        ),
        (lambda: tt_round(X, 2), TypeError, r"tt_round: tt must be a TTTensor; got Tensor"),
        (lambda: tt_round(A), ValueError, r"tt_round: give rank .* got neither"),
        (lambda: tt_round(A, (1, 2, 1)), ValueError, r"tt_round: rank needs 4 entries for a 3-way"),
        (lambda: tt_round(A, eps=-0.1), ValueError, r"tt_round: eps must be a relative accuracy"),
        (
            lambda: tt_matrix(X, (2, 2), (5, 6)),
            ValueError,
            r"tt_matrix: matrix must have 2 dimensions",
        ),
        (
            lambda: tt_matrix(torch.randn(24, 30), (2, 3, 4), (3, 2, 4), 2),
            ValueError,
            r"row_shape \(2, 3, 4\) and col_shape \(3, 2, 4\) multiply to \(24, 24\) but the "
            r"matrix is \(24, 30\)",
        ),
        (
            lambda: tt_matrix(torch.randn(24, 30), (4, 6), (3, 2, 5), 2),
            ValueError,
            r"need the same number of factors; got \(4, 6\) and \(3, 2, 5\) \(pad with 1s\)",
        ),
        (
            lambda: tt_matrix(torch.randn(24, 30), 24, (30,), 2),
            TypeError,
            r"row_shape must be a non-empty tuple",
        ),
        (
            lambda: tt_matrix(torch.randn(24, 30), (24,), (0, 30), 2),
            ValueError,
            r"col_shape must contain positive ints",
        ),
        (
            lambda: tt_matrix(torch.randn(6, 6), (2, 3), (3, 2)),
            ValueError,
            r"tt_matrix: give rank .* got neither",
        ),
        (
            lambda: tt_matrix(torch.randn(6, 6), (2, 3), (3, 2), eps=0.1, svd="randomized"),
            ValueError,
            r"needs rank",
        ),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.cuda
def test_cuda_follows_input_and_matches_cpu():
    x = random_tt((6, 7, 8, 9), 3, generator=_gen(26), dtype=torch.float64).to_dense()
    x = add_noise(x, relative=0.05, generator=_gen(27))
    for method in METHODS:
        on_gpu = tt_svd(x.cuda(), 3, eps=0.1, svd=method, generator=_gen(1))
        on_cpu = tt_svd(x, 3, eps=0.1, svd=method, generator=_gen(1))
        assert on_gpu.model.device.type == "cuda"
        assert abs(on_gpu.error - on_cpu.error) < 1e-8
    rounded = tt_round(on_gpu.model + on_gpu.model, eps=1e-8)
    assert rounded.model.device.type == "cuda" and rounded.model.rank == on_gpu.model.rank
    m = torch.randn(24, 30, dtype=torch.float64, generator=_gen(28))
    res = tt_matrix(m.cuda(), (2, 3, 4), (3, 2, 5), 3)
    assert res.model.device.type == "cuda"
    assert abs(res.error - tt_matrix(m, (2, 3, 4), (3, 2, 5), 3).error) < 1e-8
