"""unfold / fold against a loop reference and TensorLy; errors."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import randn, real_dtypes, ref_fold, ref_unfold, seeds, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.algebra import fold, unfold


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=real_dtypes, seed=seeds, data=st.data())
def test_unfold_fold_match_loop_reference(shape, dtype, seed, data):
    gen = torch.Generator().manual_seed(seed)
    x = randn(shape, gen, dtype)
    mode = data.draw(st.integers(-len(shape), len(shape) - 1), label="mode")
    u = unfold(x, mode)
    # Pure data movement: exact equality in every dtype.
    assert torch.equal(u, ref_unfold(x, mode % x.ndim))
    assert torch.equal(fold(u, mode, shape), x)
    assert torch.equal(ref_fold(u, mode % x.ndim, shape), x)


def test_unfold_mode0_is_a_view_and_other_modes_are_well_formed():
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert unfold(x, 0).data_ptr() == x.data_ptr()
    assert unfold(x, 1).shape == (3, 8)
    # Row-major order of the remaining indices: column 1 of unfold(x, 1) is x[0, :, 1].
    assert torch.equal(unfold(x, 1)[:, 1], x[0, :, 1])


def test_unfold_accepts_integer_and_complex_tensors():
    xi = torch.arange(24).reshape(2, 3, 4)
    assert torch.equal(unfold(xi, 2), ref_unfold(xi, 2))
    xc = torch.randn(2, 3, 2, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fold(unfold(xc, 1), 1, xc.shape), xc)


def test_unfold_and_fold_are_differentiable():
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 8, dtype=torch.float64)
    (unfold(x, 1) * w).sum().backward()
    assert torch.equal(x.grad, ref_fold(w, 1, (2, 3, 4)))


@pytest.mark.parametrize("mode", [0, 1, 2, -1])
def test_unfold_fold_agree_with_tensorly(tensorly_backend, mode):
    tl = tensorly_backend("numpy")
    x = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = tl.unfold(x.numpy(), mode)
    assert torch.equal(unfold(x, mode), torch.from_numpy(expected))
    assert torch.equal(fold(unfold(x, mode), mode, x.shape), x)
    assert torch.equal(
        torch.from_numpy(tl.fold(expected, mode, x.shape)),
        fold(torch.from_numpy(expected), mode, x.shape),
    )


def _unfold_errors_inputs():
    x = torch.zeros(2, 3)
    return x


UNFOLD_ERRORS_CASES = [
    pytest.param(
        lambda x: unfold("x", 0),
        TypeError,
        r"unfold: tensor must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda x: unfold(torch.tensor(1.0), 0),
        ValueError,
        r"unfold: tensor must have at least 1 dimensions; got shape \(\)\.",
    ),
    pytest.param(
        lambda x: unfold(torch.zeros(2, 0), 0),
        ValueError,
        r"unfold: tensor has an empty dimension \(shape \(2, 0\)\)",
    ),
    pytest.param(
        lambda x: unfold(x, 2),
        IndexError,
        r"unfold: mode must be in \[-2, 1\] for a 2-way tensor; got 2\.",
    ),
    pytest.param(lambda x: unfold(x, -3), IndexError, r"got -3\."),
    pytest.param(lambda x: unfold(x, 1.0), TypeError, r"unfold: mode must be an int; got float\."),
    pytest.param(lambda x: unfold(x, True), TypeError, r"unfold: mode must be an int; got bool\."),
]


@pytest.mark.parametrize(("call", "error", "match"), UNFOLD_ERRORS_CASES)
def test_unfold_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_unfold_errors_inputs())


def _fold_errors_inputs():
    m = torch.zeros(2, 12)
    return m


FOLD_ERRORS_CASES = [
    pytest.param(
        lambda m: fold(torch.zeros(5, 24), 1, (-6, 5, -4)),
        ValueError,
        r"fold: shape must be a non-empty sequence of positive sizes; got \(-6, 5, -4\)\.",
        id="negative sizes",
    ),
    pytest.param(
        lambda m: fold(m, 0, (2, 0, 4)),
        ValueError,
        r"fold: shape must be a non-empty sequence of positive sizes; got \(2, 0, 4\)\.",
        id="zero size",
    ),
    pytest.param(
        lambda m: fold(m, 0, (2, 3.0, 4)),
        TypeError,
        r"fold: shape\[1\] must be an int; got float\.",
        id="float size",
    ),
    pytest.param(
        lambda m: fold(None, 0, (2, 3, 4)),
        TypeError,
        r"fold: unfolded must be a torch\.Tensor or a numpy array; got NoneType\.",
    ),
    pytest.param(
        lambda m: fold(torch.zeros(24), 0, (2, 3, 4)),
        ValueError,
        r"fold: unfolded must have 2 dimensions; got shape \(24,\)\.",
    ),
    pytest.param(
        lambda m: fold(m, 0, 5),
        TypeError,
        r"fold: shape must be a sequence of positive ints; got 5\.",
    ),
    pytest.param(
        lambda m: fold(m, 3, (2, 3, 4)),
        IndexError,
        r"fold: mode must be in \[-3, 2\] for a 3-way tensor; got 3\.",
    ),
    pytest.param(
        lambda m: fold(m, 0, (3, 2, 4)),
        ValueError,
        r"fold: an unfolding of shape \(2, 12\) cannot be folded into \(3, 2, 4\) "
        r"along mode 0; "
        r"expected \(3, 8\)\.",
    ),
    pytest.param(
        lambda m: fold(m, 0, (2, 3, 5)),
        ValueError,
        r"cannot be folded into \(2, 3, 5\) along mode 0",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), FOLD_ERRORS_CASES)
def test_fold_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_fold_errors_inputs())
