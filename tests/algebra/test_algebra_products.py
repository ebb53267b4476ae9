"""mode_dot, multi_mode_dot, khatri_rao and kron against slow references and TensorLy; errors."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import (
    assert_close,
    randn,
    ranks,
    real_dtypes,
    ref_khatri_rao,
    ref_kron,
    ref_mode_dot,
    seeds,
    shapes,
    to_hi,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.algebra import khatri_rao, kron, mode_dot, multi_mode_dot

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- mode_dot


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=real_dtypes, seed=seeds, data=st.data())
def test_mode_dot_matches_einsum(shape, dtype, seed, data):
    gen = _gen(seed)
    x = randn(shape, gen, dtype)
    mode = data.draw(st.integers(0, len(shape) - 1), label="mode")
    j = data.draw(st.integers(1, 4), label="rows")
    m = randn((j, shape[mode]), gen, dtype)
    out = mode_dot(x, m, mode)
    assert out.dtype == dtype
    assert_close(out, ref_mode_dot(to_hi(x), to_hi(m), mode))
    # transpose=True uses m.T
    assert_close(
        mode_dot(x, m.T.contiguous(), mode, transpose=True), ref_mode_dot(to_hi(x), to_hi(m), mode)
    )
    # A vector contracts the mode away.
    v = randn((shape[mode],), gen, dtype)
    out_v = mode_dot(x, v, mode)
    assert out_v.shape == shape[:mode] + shape[mode + 1 :]
    assert_close(out_v, ref_mode_dot(to_hi(x), to_hi(v), mode))


def test_mode_dot_complex_transpose_is_conjugate_transpose():
    gen = _gen(3)
    x = torch.randn(2, 3, 4, dtype=torch.complex128, generator=gen)
    m = torch.randn(3, 5, dtype=torch.complex128, generator=gen)
    assert_close(mode_dot(x, m, 1, transpose=True), ref_mode_dot(x, m.conj().T, 1))


def test_mode_dot_negative_mode_and_1d_tensor():
    gen = _gen(4)
    x = torch.randn(3, 4, dtype=F64, generator=gen)
    m = torch.randn(2, 4, dtype=F64, generator=gen)
    assert torch.equal(mode_dot(x, m, -1), mode_dot(x, m, 1))
    v = torch.randn(5, dtype=F64, generator=gen)
    w = torch.randn(5, dtype=F64, generator=gen)
    out = mode_dot(v, w, 0)
    assert out.shape == ()
    assert_close(out, (v * w).sum())


# --------------------------------------------------------------------------- multi_mode_dot


@settings(max_examples=30, deadline=None)
@given(shape=shapes, dtype=real_dtypes, seed=seeds, data=st.data())
def test_multi_mode_dot_matches_sequential_einsum(shape, dtype, seed, data):
    gen = _gen(seed)
    n = len(shape)
    x = randn(shape, gen, dtype)
    modes = data.draw(st.permutations(range(n)), label="order")[: data.draw(st.integers(1, n))]
    is_vec = [data.draw(st.booleans(), label=f"vector {m}") for m in modes]
    transpose = data.draw(st.booleans(), label="transpose")
    skip = data.draw(st.none() | st.sampled_from(list(modes)), label="skip")
    mats = []
    for m, vec in zip(modes, is_vec):
        if vec:
            mats.append(randn((shape[m],), gen, dtype))
        else:
            j = data.draw(st.integers(1, 3), label="rows")
            mats.append(randn((shape[m], j) if transpose else (j, shape[m]), gen, dtype))
    out = multi_mode_dot(x, mats, list(modes), skip=skip, transpose=transpose)
    # Reference: matrices first (mode indices stable), then vectors from the highest mode down.
    ref = to_hi(x)
    pairs = [(m, to_hi(a)) for m, a in zip(modes, mats) if m != skip]
    for m, a in sorted((p for p in pairs if p[1].ndim == 2), key=lambda p: p[0]):
        ref = ref_mode_dot(ref, a.T if transpose else a, m)
    for m, a in sorted((p for p in pairs if p[1].ndim == 1), key=lambda p: -p[0]):
        ref = ref_mode_dot(ref, a, m)
    assert out.dtype == dtype
    assert_close(out, ref)


def test_multi_mode_dot_default_modes_and_negative_modes():
    gen = _gen(5)
    x = torch.randn(2, 3, 4, dtype=F64, generator=gen)
    mats = [torch.randn(5, s, dtype=F64, generator=gen) for s in x.shape]
    expected = ref_mode_dot(ref_mode_dot(ref_mode_dot(x, mats[0], 0), mats[1], 1), mats[2], 2)
    assert_close(multi_mode_dot(x, mats), expected)
    assert_close(multi_mode_dot(x, mats[::-1], [-1, -2, -3]), expected)
    # skip names a mode, also with explicit modes (TensorLy's skip would be a list position)
    skipped_1 = ref_mode_dot(ref_mode_dot(x, mats[0], 0), mats[2], 2)
    assert_close(multi_mode_dot(x, mats, skip=1), skipped_1)
    assert_close(multi_mode_dot(x, [mats[1], mats[2], mats[0]], [1, 2, 0], skip=1), skipped_1)
    assert_close(multi_mode_dot(x, mats[::-1], [2, 1, 0], skip=-2), skipped_1)


@pytest.mark.parametrize("transpose", [False, True])
def test_multi_mode_dot_agrees_with_tensorly(tensorly_backend, transpose):
    tl = tensorly_backend("numpy")
    gen = _gen(6)
    x = torch.randn(3, 4, 5, 2, dtype=F64, generator=gen)
    mats = [
        torch.randn(*((s, 3) if transpose else (3, s)), dtype=F64, generator=gen) for s in x.shape
    ]
    mats[2] = torch.randn(5, dtype=F64, generator=gen)  # one vector
    for skip in (None, 0, 2):
        expected = tl.tenalg.multi_mode_dot(
            x.numpy(), [m.numpy() for m in mats], skip=skip, transpose=transpose
        )
        assert_close(
            multi_mode_dot(x, mats, skip=skip, transpose=transpose), torch.from_numpy(expected)
        )


def test_mode_dot_agrees_with_tensorly(tensorly_backend):
    tl = tensorly_backend("numpy")
    gen = _gen(7)
    x = torch.randn(3, 4, 5, dtype=F64, generator=gen)
    for mode in range(3):
        m = torch.randn(2, x.shape[mode], dtype=F64, generator=gen)
        v = torch.randn(x.shape[mode], dtype=F64, generator=gen)
        assert_close(
            mode_dot(x, m, mode), torch.from_numpy(tl.tenalg.mode_dot(x.numpy(), m.numpy(), mode))
        )
        assert_close(
            mode_dot(x, v, mode), torch.from_numpy(tl.tenalg.mode_dot(x.numpy(), v.numpy(), mode))
        )
        assert_close(
            mode_dot(x, m.T.contiguous(), mode, transpose=True),
            torch.from_numpy(tl.tenalg.mode_dot(x.numpy(), m.T.numpy(), mode, transpose=True)),
        )


def test_mode_dot_and_multi_mode_dot_with_tensorly_pytorch_backend(tensorly_backend):
    tl = tensorly_backend("pytorch")
    gen = _gen(8)
    x = torch.randn(3, 4, 5, dtype=F64, generator=gen)
    mats = [torch.randn(2, s, dtype=F64, generator=gen) for s in x.shape]
    assert_close(mode_dot(x, mats[1], 1), tl.tenalg.mode_dot(x, mats[1], 1))
    assert_close(multi_mode_dot(x, mats), tl.tenalg.multi_mode_dot(x, mats))


# --------------------------------------------------------------------------- khatri_rao / kron


@settings(max_examples=40, deadline=None)
@given(
    sides=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    rank=ranks,
    dtype=real_dtypes,
    seed=seeds,
    data=st.data(),
)
def test_khatri_rao_matches_loop_reference(sides, rank, dtype, seed, data):
    gen = _gen(seed)
    mats = [randn((s, rank), gen, dtype) for s in sides]
    use_weights = data.draw(st.booleans(), label="weights")
    weights = randn((rank,), gen, dtype) if use_weights else None
    skip = (
        data.draw(st.none() | st.integers(0, len(sides) - 1), label="skip")
        if len(sides) > 1
        else None
    )
    kept = [m for i, m in enumerate(mats) if i != skip]
    expected = ref_khatri_rao([to_hi(m) for m in kept])
    if weights is not None:
        expected = expected * to_hi(weights)
    out = khatri_rao(mats, weights=weights, skip=skip)
    assert out.dtype == dtype
    assert out.shape == expected.shape
    assert_close(out, expected)


@settings(max_examples=25, deadline=None)
@given(
    dims=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=3),
    dtype=real_dtypes,
    seed=seeds,
)
def test_kron_matches_loop_reference(dims, dtype, seed):
    gen = _gen(seed)
    mats = [randn(d, gen, dtype) for d in dims]
    expected = ref_kron([to_hi(m) for m in mats])
    assert_close(kron(*mats), expected)
    assert_close(kron(mats), expected)


def test_khatri_rao_and_kron_agree_with_tensorly(tensorly_backend):
    tl = tensorly_backend("numpy")
    gen = _gen(9)
    mats = [torch.randn(s, 3, dtype=F64, generator=gen) for s in (2, 4, 3)]
    w = torch.randn(3, dtype=F64, generator=gen)
    np_mats = [m.numpy() for m in mats]
    assert_close(khatri_rao(mats), torch.from_numpy(tl.tenalg.khatri_rao(np_mats)))
    assert_close(
        khatri_rao(mats, weights=w, skip=1),
        torch.from_numpy(tl.tenalg.khatri_rao(np_mats, weights=w.numpy(), skip_matrix=1)),
    )
    sq = [torch.randn(a, b, dtype=F64, generator=gen) for a, b in ((2, 3), (3, 1), (2, 2))]
    assert_close(kron(*sq), torch.from_numpy(tl.tenalg.kronecker([m.numpy() for m in sq])))


def test_khatri_rao_complex_and_single_matrix():
    gen = _gen(10)
    a = torch.randn(3, 2, dtype=torch.complex128, generator=gen)
    b = torch.randn(2, 2, dtype=torch.complex128, generator=gen)
    assert_close(khatri_rao([a, b]), ref_khatri_rao([a, b]))
    assert torch.equal(khatri_rao([a]), a)


# --------------------------------------------------------------------------- gradients


def test_mode_dot_and_khatri_rao_gradcheck():
    gen = _gen(11)
    x = torch.randn(2, 3, 2, dtype=F64, generator=gen, requires_grad=True)
    m = torch.randn(4, 3, dtype=F64, generator=gen, requires_grad=True)
    v = torch.randn(3, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, m: mode_dot(x, m, 1), (x, m))
    assert torch.autograd.gradcheck(lambda x, v: mode_dot(x, v, 1), (x, v))
    mt = torch.randn(2, 3, dtype=F64, generator=gen, requires_grad=True)  # (I_2, J)
    assert torch.autograd.gradcheck(lambda x, m: mode_dot(x, m, 2, transpose=True), (x, mt))
    mats = [torch.randn(s, 2, dtype=F64, generator=gen, requires_grad=True) for s in (2, 3, 2)]
    w = torch.randn(2, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c, w: khatri_rao([a, b, c], weights=w), (*mats, w))


# --------------------------------------------------------------------------- errors


def _mode_dot_errors_inputs():
    x = torch.zeros(2, 3, 4)
    m = torch.zeros(5, 3)
    return x, m


MODE_DOT_ERRORS_CASES = [
    pytest.param(
        lambda x, m: mode_dot(torch.zeros(2, 100, 100), torch.zeros(1, 100).expand(10**9, 100), 1),
        ValueError,
        r"mode_dot: the product needs about .* of memory",
        id="absurd output",
    ),
    pytest.param(
        lambda x, m: mode_dot("x", m, 1),
        TypeError,
        r"mode_dot: tensor must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, None, 1),
        TypeError,
        r"mode_dot: matrix must be a torch\.Tensor or a numpy array; got NoneType\.",
    ),
    pytest.param(
        lambda x, m: mode_dot(torch.zeros(2, 3, dtype=torch.int64), m, 1),
        TypeError,
        r"mode_dot: tensor must have a floating-point or complex dtype; got torch\.int64\.",
    ),
    pytest.param(
        lambda x, m: mode_dot(torch.zeros(2, 0, 4), m, 0),
        ValueError,
        r"mode_dot: tensor has an empty dimension",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, m[None], 1),
        ValueError,
        r"mode_dot: matrix must be a matrix or a vector; got shape \(1, 5, 3\)\.",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, m.double(), 1),
        TypeError,
        r"mode_dot: \(tensor, matrix\)\[1\] has dtype torch\.float64 but "
        r"\(tensor, matrix\)\[0\] has torch\.float32; use one dtype\.",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, m.to("meta"), 1),
        ValueError,
        r"mode_dot: \(tensor, matrix\)\[1\] is on meta but \(tensor, matrix\)\[0\] is on cpu",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, m, 3),
        IndexError,
        r"mode_dot: mode must be in \[-3, 2\] for a 3-way tensor; got 3\.",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, m, 2),
        ValueError,
        r"mode_dot: matrix has 3 columns but tensor has size 4 along mode 2; "
        r"shapes must agree\.$",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, m, 1, transpose=True),
        ValueError,
        r"has size 3 along mode 1; shapes must agree \(transpose=True transposes",
    ),
    pytest.param(
        lambda x, m: mode_dot(x, torch.zeros(4), 1),
        ValueError,
        r"mode_dot: matrix has 4 columns but tensor has size 3 along mode 1",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), MODE_DOT_ERRORS_CASES)
def test_mode_dot_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_mode_dot_errors_inputs())


def _multi_mode_dot_errors_inputs():
    x = torch.zeros(2, 3, 4)
    mats = [torch.zeros(5, 2), torch.zeros(5, 3)]
    return x, mats


MULTI_MODE_DOT_ERRORS_CASES = [
    pytest.param(
        lambda x, mats: multi_mode_dot(
            torch.zeros(100, 100, 100), [torch.zeros(1, 100).expand(10**7, 100)] * 2, [0, 1]
        ),
        ValueError,
        r"multi_mode_dot: an intermediate needs about .* of memory",
        id="absurd intermediate",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, torch.zeros(5, 2)),
        TypeError,
        r"multi_mode_dot: matrices must be a sequence of tensors; got Tensor\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, mats, [0]),
        ValueError,
        r"multi_mode_dot: got 2 matrices but 1 modes; give one mode per matrix\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, [mats[1], mats[1]], [1, -2]),
        ValueError,
        r"multi_mode_dot: modes must be distinct; got \(1, -2\)\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, mats, [0, 5]),
        IndexError,
        r"multi_mode_dot: mode must be in \[-3, 2\] for a 3-way tensor; got 5\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, mats, skip=3),
        IndexError,
        r"multi_mode_dot: skip must be in \[-3, 2\] for a 3-way tensor; got 3\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, [mats[0], mats[1][None]]),
        ValueError,
        r"multi_mode_dot: matrices\[1\] must be a matrix or vector; got \(1, 5, 3\)\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, [*mats, torch.zeros(5, 3)], skip=0),
        ValueError,
        r"multi_mode_dot: matrix for mode 2 contracts 3 entries but the tensor has size 4 "
        r"along mode 2\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, [mats[0], "a"]),
        TypeError,
        r"multi_mode_dot: matrices\[1\] must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(
            x, [mats[0], mats[1], torch.zeros(5, 4, dtype=torch.int32)], skip=0
        ),
        TypeError,
        r"multi_mode_dot: matrices\[2\] must have a floating-point",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, [mats[0].double()]),
        TypeError,
        r"multi_mode_dot: \(tensor, matrix\)\[1\] has dtype torch\.float64",
    ),
    pytest.param(
        lambda x, mats: multi_mode_dot(x, mats, transpose=True),
        ValueError,
        r"mode 0 contracts 5 entries but the tensor has size 2 along mode 0",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), MULTI_MODE_DOT_ERRORS_CASES)
def test_multi_mode_dot_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_multi_mode_dot_errors_inputs())


def _khatri_rao_errors_inputs():
    a, b = torch.zeros(2, 3), torch.zeros(4, 3)
    return a, b


KHATRI_RAO_ERRORS_CASES = [
    pytest.param(
        lambda a, b: khatri_rao([torch.zeros(1, 2).expand(100000, 2)] * 3),
        ValueError,
        r"khatri_rao: the \(1000000000000000, 2\) result needs about .* of memory, more than",
        id="16 PB request",
    ),
    pytest.param(
        lambda a, b: khatri_rao(a),
        TypeError,
        r"khatri_rao: matrices must be a sequence of 2-D tensors; got Tensor\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([]), ValueError, r"khatri_rao: need at least one matrix; got none\."
    ),
    pytest.param(
        lambda a, b: khatri_rao([a], skip=0),
        ValueError,
        r"khatri_rao: need at least one matrix; got none\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, b], skip=2),
        IndexError,
        r"khatri_rao: skip must be in \[-2, 1\] for a 2-way tensor; got 2\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, torch.zeros(4)]),
        ValueError,
        r"khatri_rao: matrices\[1\] must have 2 dimensions; got shape \(4,\)\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([torch.zeros(2, 3, dtype=torch.int64)]),
        TypeError,
        r"khatri_rao: matrices\[0\] must have a floating-point or complex dtype; "
        r"got torch\.int64",
    ),
    pytest.param(
        lambda a, b: khatri_rao([torch.zeros(0, 3), b]),
        ValueError,
        r"khatri_rao: matrices\[0\] has an empty dimension \(shape \(0, 3\)\)",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, b.double()]),
        TypeError,
        r"khatri_rao: matrices\[1\] has dtype torch\.float64 but "
        r"matrices\[0\] has torch\.float32",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, torch.zeros(4, 2)]),
        ValueError,
        r"khatri_rao: all matrices must have the same number of columns; "
        r"matrices\[0\] has 3 and "
        r"matrices\[1\] has 2\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, b], weights=torch.zeros(2)),
        ValueError,
        r"khatri_rao: weights must have 3 entries; got 2\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, b], weights=torch.zeros(3, 1)),
        ValueError,
        r"khatri_rao: weights must have 1 dimensions; got shape \(3, 1\)\.",
    ),
    pytest.param(
        lambda a, b: khatri_rao([a, b], weights=torch.zeros(3, dtype=F64)),
        TypeError,
        r"khatri_rao: \(matrices\[0\], weights\)\[1\] has dtype torch\.float64 but",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), KHATRI_RAO_ERRORS_CASES)
def test_khatri_rao_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_khatri_rao_errors_inputs())


def _kron_errors_inputs():
    a = torch.zeros(2, 3)
    return a


KRON_ERRORS_CASES = [
    pytest.param(
        lambda a: kron([torch.zeros(1, 10).expand(10**5, 10)] * 3),
        ValueError,
        r"kron: the \(1000000000000000, 1000\) result needs about .* of memory",
        id="absurd size",
    ),
    pytest.param(lambda a: kron(), ValueError, r"kron: need at least one matrix; got none\."),
    pytest.param(
        lambda a: kron(a, torch.zeros(3)),
        ValueError,
        r"kron: matrices\[1\] must have 2 dimensions; got shape \(3,\)\.",
    ),
    pytest.param(
        lambda a: kron("a", a),
        TypeError,
        r"kron: matrices\[0\] must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda a: kron(a, a.double()),
        TypeError,
        r"kron: matrices\[1\] has dtype torch\.float64 but matrices\[0\] has torch\.float32",
    ),
    pytest.param(
        lambda a: kron(torch.zeros(2, 2, dtype=torch.bool)),
        TypeError,
        r"kron: matrices\[0\] must have a floating-point or complex dtype",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), KRON_ERRORS_CASES)
def test_kron_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_kron_errors_inputs())
