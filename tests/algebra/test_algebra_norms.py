"""inner and norm against loop references; gradients; errors."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import (
    assert_close,
    randn,
    real_dtypes,
    ref_inner,
    ref_norm,
    seeds,
    shapes,
    to_hi,
)
from hypothesis import given, settings

from factorch.algebra import inner, norm

F64 = torch.float64


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=real_dtypes, seed=seeds)
def test_inner_and_norm_match_loop_reference(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    a, b = randn(shape, gen, dtype), randn(shape, gen, dtype)
    out = inner(a, b)
    assert out.shape == () and out.dtype == dtype
    assert_close(out, ref_inner(to_hi(a), to_hi(b)))
    for order in (1, 2):
        n = norm(a, order)
        assert n.shape == () and n.dtype == dtype
        assert_close(n, ref_norm(to_hi(a), order))
    assert_close(norm(a) ** 2, ref_inner(to_hi(a), to_hi(a)))


def test_complex_inner_conjugates_first_argument_and_norm_is_real():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 3, dtype=torch.complex128, generator=gen)
    b = torch.randn(2, 3, dtype=torch.complex128, generator=gen)
    assert_close(inner(a, b), ref_inner(a, b))
    assert_close(inner(a, b), inner(b, a).conj())
    n = norm(a)
    assert n.dtype == F64
    assert_close(n, ref_norm(a, 2))
    assert_close(norm(a, 1), ref_norm(a, 1))


def test_inner_and_norm_edge_shapes():
    assert inner(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0
    assert norm(torch.zeros(2, 0)).item() == 0.0
    assert inner(torch.tensor(2.0), torch.tensor(3.0)).item() == 6.0
    assert norm(torch.tensor(-3.0)).item() == 3.0


def test_inner_and_norm_gradcheck():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(2, 3, 2, dtype=F64, generator=gen, requires_grad=True)
    b = torch.randn(2, 3, 2, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(inner, (a, b))
    assert torch.autograd.gradcheck(norm, (a,))
    assert torch.autograd.gradcheck(lambda x: norm(x, 1), (a,))


def _inner_errors_inputs():
    a = torch.zeros(2, 3)
    return a


INNER_ERRORS_CASES = [
    pytest.param(
        lambda a: inner("a", a),
        TypeError,
        r"inner: a must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda a: inner(a, None),
        TypeError,
        r"inner: b must be a torch\.Tensor or a numpy array; got NoneType\.",
    ),
    pytest.param(
        lambda a: inner(torch.zeros(2, 3, dtype=torch.int64), a),
        TypeError,
        r"inner: a must have a floating-point or complex dtype; got torch\.int64\.",
    ),
    pytest.param(
        lambda a: inner(a, torch.zeros(3, 2)),
        ValueError,
        r"inner: a and b must have the same shape; got \(2, 3\) and \(3, 2\)\.",
    ),
    pytest.param(
        lambda a: inner(a, a.double()),
        TypeError,
        r"inner: \(a, b\)\[1\] has dtype torch\.float64 but \(a, b\)\[0\] has torch\.float32",
    ),
    pytest.param(
        lambda a: inner(a, a.to("meta")),
        ValueError,
        r"inner: \(a, b\)\[1\] is on meta but \(a, b\)\[0\] is on cpu",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), INNER_ERRORS_CASES)
def test_inner_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_inner_errors_inputs())


def _norm_errors_inputs():
    a = torch.zeros(2, 3)
    return a


NORM_ERRORS_CASES = [
    pytest.param(
        lambda a: norm({"a": 1}),
        TypeError,
        r"norm: tensor must be a torch\.Tensor or a numpy array; got dict\.",
    ),
    pytest.param(
        lambda a: norm(torch.zeros(2, dtype=torch.bool)),
        TypeError,
        r"norm: tensor must have a floating-point or complex dtype; got torch\.bool\.",
    ),
    pytest.param(lambda a: norm(a, 3), ValueError, r"norm: order must be 1 or 2; got 3\."),
    pytest.param(lambda a: norm(a, True), ValueError, r"norm: order must be 1 or 2; got True\."),
    pytest.param(lambda a: norm(a, "fro"), ValueError, r"norm: order must be 1 or 2; got 'fro'\."),
]


@pytest.mark.parametrize(("call", "error", "match"), NORM_ERRORS_CASES)
def test_norm_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_norm_errors_inputs())


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1.0, 1e20, 1e30])
@pytest.mark.parametrize("order", [1, 2])
def test_norm_is_true_across_the_float32_range(scale, order):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(50, 40, generator=gen, dtype=F64)
    expected = torch.linalg.vector_norm(x, ord=order) * scale
    out = norm((x * scale).float(), order)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_norm_is_true_across_the_float64_range(scale):
    x = torch.full((1000,), 3.0, dtype=F64) * scale
    torch.testing.assert_close(norm(x), torch.tensor(3.0 * 1000**0.5 * scale, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_norm_of_half_precision_is_computed_in_float32(dtype):
    x = torch.full((100,), 40000.0 if dtype == torch.float16 else 1e30).to(dtype)
    ref = torch.linalg.vector_norm(x.double())
    if dtype == torch.float16:  # 4e5 is above float16's largest number
        with pytest.raises(
            ValueError, match=r"norm: the norm \(about 4e\+05\) exceeds the largest"
        ):
            norm(x)
        x = x / 64
        ref = ref / 64
    out = norm(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=1e-2, atol=0.0)


def test_inner_is_true_where_the_unscaled_sum_would_overflow():
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(30, 20, generator=gen, dtype=F64)
    b = torch.randn(30, 20, generator=gen, dtype=F64)
    ref = float((a * b).sum()) * 1e36 * 1e-10
    out = inner((a * 1e36).float(), (b * 1e-10).float())
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(ref, rel=1e-4)
    # each factor's squares overflow float32, the inner product does not
    assert float(inner((a * 1e19).float(), (b * 1e-19).float())) == pytest.approx(
        float((a * b).sum()), rel=1e-4
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: inner(torch.full((4,), 1e30), torch.full((4,), 1e30)),
            r"inner: the inner product \(about 4e\+60\) exceeds the largest torch.float32 number",
        ),
        (
            lambda: norm(torch.full((400,), 3e38)),
            r"norm: the norm \(about 6e\+39\) exceeds the largest torch.float32 number .*"
            r"pass tensor.double\(\)",
        ),
    ],
)
def test_unrepresentable_results_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_finite_entries_propagate_and_zero_norm_only_for_zeros():
    assert torch.isnan(norm(torch.tensor([1.0, float("nan")])))
    assert torch.isinf(norm(torch.tensor([1.0, float("inf")])))
    assert float(norm(torch.zeros(3))) == 0.0
    assert float(norm(torch.full((3,), 1e-45))) > 0.0  # float32 subnormals


def test_an_inner_product_below_the_normal_range_is_refused():
    x = torch.full((4,), 1e-30)
    with pytest.raises(ValueError, match=r"inner: the inner product \(about 4e-60\) is below"):
        inner(x, x)
    assert float(inner(x.double(), x.double())) == pytest.approx(4e-60)
    assert float(inner(x, torch.zeros(4))) == 0.0
