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


# --- numerical guards (issue 9): autocast, scale, half precision, numpy, deprecations ---------
def _true64(x, approx) -> float:
    """``||X - X_hat|| / ||X||`` in float64, both divided by the data's largest entry."""
    x64 = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    x64 = x64.to(torch.float64)
    s = float(x64.abs().max()) or 1.0
    a = approx.detach().to(torch.float64) / s
    return float(torch.linalg.vector_norm(x64 / s - a) / torch.linalg.vector_norm(x64 / s))


def _model64(model) -> torch.Tensor:
    """The dense tensor (or matrix) a TT model represents, reconstructed in float64."""
    return model.to(dtype=torch.float64).to_dense()


def _planted(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    clean = random_tt((6, 7, 8), 2, generator=_gen(40), dtype=torch.float64).to_dense()
    return add_noise(clean, relative=0.01, generator=_gen(41)).to(dtype)


def _tt_round_of(x: torch.Tensor):
    a = tt_svd(x, 3).model
    return tt_round(a + a, 2)


FITS = {
    "tt_svd": lambda t: tt_svd(t, 2),
    "tt_svd_eps": lambda t: tt_svd(t, eps=0.05),
    "tt_matrix": lambda t: tt_matrix(t.reshape(42, 8), (6, 7), (2, 4), 3),
}


def _target(name: str, x: torch.Tensor) -> torch.Tensor:
    return x.reshape(42, 8) if name == "tt_matrix" else x


@pytest.mark.parametrize("name", list(FITS))
def test_autocast_does_not_lower_precision_or_hide_the_error(name):
    x = _planted()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = FITS[name](x)
        rounded = _tt_round_of(x)
    assert res.model.dtype == torch.float32 and rounded.model.dtype == torch.float32
    true = _true64(_target(name, x), _model64(res.model))
    assert 0.001 < true < 0.5
    assert math.isclose(res.error, true, rel_tol=1e-3)
    assert math.isclose(res.error, FITS[name](x).error, rel_tol=1e-5)


SCALES = [
    (torch.float32, 1e-30),
    (torch.float32, 1e30),
    (torch.float64, 1e-200),
    (torch.float64, 1e200),
]


@pytest.mark.parametrize(("dtype", "scale"), SCALES, ids=[f"{d}-{s:g}" for d, s in SCALES])
@pytest.mark.parametrize("name", list(FITS))
def test_extreme_scales_fit_like_unit_scale(name, dtype, scale):
    x = _planted(dtype)
    ref = FITS[name](x)
    res = FITS[name](x * scale)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    assert res.model.dtype == dtype and res.model.rank == ref.model.rank
    assert all(bool(torch.isfinite(c).all()) for c in res.model.cores)
    assert math.isclose(
        res.error, _true64(_target(name, x * scale), _model64(res.model)), rel_tol=tol
    )
    assert math.isclose(res.error, ref.error, rel_tol=tol)


@pytest.mark.parametrize(("dtype", "scale"), SCALES, ids=[f"{d}-{s:g}" for d, s in SCALES])
def test_tt_round_of_extreme_cores(dtype, scale):
    a = tt_svd(_planted(dtype), 3).model
    ref = tt_round(a + a, 2)
    big = TTTensor((a.cores[0] * scale, *a.cores[1:]))
    res = tt_round(big + big, 2)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    assert res.model.dtype == dtype and res.model.rank == ref.model.rank
    assert math.isclose(res.error, ref.error, rel_tol=tol, abs_tol=1e-6)
    want = _model64(ref.model)
    assert _true64(want * scale, _model64(res.model)) < tol


def test_tt_round_cores_whose_products_overflow():
    # each core near 1e150 / 1e-150: every partial product over- or underflows float64, the
    # tensor itself (1e150 * 1e150 * 1e-250 = 1e50) does not
    a = random_tt((4, 5, 6), 2, generator=_gen(42), dtype=torch.float64)
    big = TTTensor((a.cores[0] * 1e150, a.cores[1] * 1e150, a.cores[2] * 1e-250))
    res = tt_round(big + big, eps=1e-10)
    assert res.model.rank == a.rank and res.error < 1e-12
    torch.testing.assert_close(res.model.to_dense() / 1e50, 2 * a.to_dense(), rtol=1e-10, atol=0)


@pytest.mark.parametrize(("scale", "word"), [(1e200, "beyond"), (1e-200, "below")])
def test_tt_round_refuses_a_result_the_dtype_cannot_hold(scale, word):
    a = random_tt((4, 5, 6), 2, generator=_gen(43), dtype=torch.float64)
    out = TTTensor(tuple(c * scale for c in a.cores))  # entries ~ scale**3
    with pytest.raises(
        ValueError,
        match=rf"tt_round: the rounded tensor's entries are about 2\*\*-?\d+, {word} what",
    ):
        tt_round(out, eps=0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(FITS))
def test_half_precision_computed_in_float32_and_reports_the_true_error(name, dtype):
    x = _planted().to(dtype)
    res = FITS[name](x)
    assert res.model.dtype == dtype
    assert math.isclose(res.error, _true64(_target(name, x), _model64(res.model)), rel_tol=1e-4)
    rounded = tt_round(res.model + res.model, 2) if name != "tt_matrix" else None
    if rounded is not None:
        s = (res.model + res.model).to(dtype=torch.float64)
        true = float((s - rounded.model.to(dtype=torch.float64)).norm() / s.norm())
        assert rounded.model.dtype == dtype and math.isclose(rounded.error, true, rel_tol=1e-4)


def test_numpy_input_and_numpy_ranks():
    x = _planted(torch.float64)
    ours = tt_svd(x.numpy(), (1, np.int64(2), np.int32(3), 1))
    assert isinstance(ours.model.cores[0], torch.Tensor) and ours.model.rank == (1, 2, 3, 1)
    assert ours.error == tt_svd(x, (1, 2, 3, 1)).error
    assert tt_svd(x, np.int64(2)).model.rank == (1, 2, 2, 1)
    m = tt_matrix(x.reshape(42, 8).numpy(), (np.int64(6), 7), (2, 4), np.int64(3))
    assert isinstance(m.model, TTMatrix) and m.model.rank == (1, 3, 1)
    assert tt_round(ours.model, np.int64(1)).model.rank == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, kw: tt_svd(x, 2, **kw),
        lambda x, kw: tt_matrix(x.reshape(42, 8), (6, 7), (2, 4), 2, **kw),
    ],
    ids=["tt_svd", "tt_matrix"],
)
def test_method_keyword_is_a_deprecated_alias_of_svd(call):
    x = _planted(torch.float64)
    name = "tt_svd" if call(x, {}).model.ndim == 3 else "tt_matrix"
    with pytest.warns(DeprecationWarning, match=rf"{name}: method= is deprecated; use svd=") as rec:
        old = call(x, {"method": "full"})
    assert rec[0].filename == __file__
    assert old.error == call(x, {"svd": "full"}).error
    with pytest.raises(TypeError, match=rf"{name}: method is the deprecated name of svd"):
        call(x, {"svd": "gram", "method": "full"})
    with pytest.raises(ValueError, match=rf"{name}: svd must be one of"):
        with pytest.warns(DeprecationWarning):
            call(x, {"method": "qr"})


def test_absurd_ranks_are_capped_by_the_unfoldings():
    # a TT rank can never exceed the unfolding it splits: 10**9 is capped, nothing is allocated
    x = _planted(torch.float64)
    assert tt_svd(x, 10**9).model.rank == (1, 6, 8, 1)
    assert tt_svd(x, (1, 10**12, 10**12, 1)).model.rank == (1, 6, 8, 1)
    assert tt_matrix(x.reshape(42, 8), (6, 7), (2, 4), 10**9).model.rank == (1, 12, 1)
    a = tt_svd(x, 3).model
    assert tt_round(a, 10**9).model.rank == a.rank


def test_tt_round_with_a_nan_core_is_a_clear_error():
    a = random_tt((4, 5, 6), 2, generator=_gen(44), dtype=torch.float64)
    bad = a.cores[1].clone()
    bad[0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"tt_round: tt.cores\[1\] contains 1 NaN or Inf entries"):
        tt_round(TTTensor((a.cores[0], bad, a.cores[2])), eps=0.1)


# --- gradients (issue 9.6) ---------------------------------------------------------------------
def _rank_one() -> torch.Tensor:
    v = [torch.arange(1.0, n + 1, dtype=torch.float64) for n in (3, 4, 5)]
    return torch.einsum("i,j,k->ijk", *v)


@pytest.mark.parametrize("svd", ["auto", "full", "gram", "randomized"])
def test_tt_svd_gradients_exact_on_exactly_low_rank_data(svd):
    # every unfolding of a rank-1 tensor has repeated zero singular values: torch's own svd/eigh
    # backward gave NaN; the degenerate-safe backward gives the exact derivative
    for x in (_rank_one(), torch.ones(3, 4, 5, dtype=torch.float64)):
        assert torch.autograd.gradcheck(
            lambda t: tt_svd(t, 1, svd=svd, generator=_gen(0)).model.cores,
            (x.clone().requires_grad_(),),
        )


@pytest.mark.parametrize(
    "x",
    [
        torch.ones(3, 4, 5, dtype=torch.float64),
        torch.zeros(3, 4, 5, dtype=torch.float64),
        torch.nn.functional.one_hot(torch.tensor(7), 60).double().reshape(3, 4, 5),
    ],
    ids=["ones", "zeros", "one_entry"],
)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_tt_svd_gradients_finite_at_degenerate_points(x, rank):
    x = x.clone().requires_grad_()
    w = torch.randn(3, 4, 5, dtype=torch.float64, generator=_gen(45))
    model = tt_svd(x, rank).model
    ((model.to_dense() * w).sum() + sum(c.sum() for c in model.cores)).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (6, 6)])
def test_safe_svd_backward_matches_torch_on_generic_matrices(shape, dtype):
    from factorch.decomp._truncate import SafeSVD, _signed

    a = torch.randn(*shape, dtype=dtype, generator=_gen(46)).requires_grad_()
    w1 = torch.randn(shape[0], 3, dtype=dtype, generator=_gen(47))
    w2 = torch.randn(3, shape[1], dtype=dtype, generator=_gen(48))

    def loss(u, s, vh):  # phase-fixed singular vectors: a well-defined function of a
        t = _signed(u, s[:, None].to(dtype) * vh, 0.0)
        b = torch.view_as_real(t.b * w2) if dtype.is_complex else t.b * w2
        return (t.u * w1).real.sum() + b.sum() + s.sum()

    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    (want,) = torch.autograd.grad(loss(u[:, :3], s[:3], vh[:3]), a)
    full = torch.linalg.svd(a.detach(), full_matrices=False)
    (got,) = torch.autograd.grad(loss(*SafeSVD.apply(a, *full, 3)), a)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


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
