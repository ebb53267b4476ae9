"""mttkrp against an einsum reference, the unfold @ khatri_rao definition and TensorLy; no copy of
the tensor; gradients; errors; CUDA."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import (
    assert_close,
    randn,
    ranks,
    real_dtypes,
    ref_khatri_rao,
    ref_mttkrp,
    ref_unfold,
    seeds,
    shapes,
    to_hi,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.profiler import ProfilerActivity, profile

from factorch.algebra import khatri_rao, mttkrp, unfold
from factorch.algebra._plans import plain_plan

F64 = torch.float64


def _first_mode(shape, mode):
    """The mode the plain form (small tensors) contracts first."""
    return plain_plan(shape, [m for m in range(len(shape)) if m != mode], 3).mode


def _problem(shape, rank, dtype, seed, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    x = randn(shape, gen, dtype)
    factors = [randn((s, rank), gen, dtype).requires_grad_(requires_grad) for s in shape]
    return x, factors, gen


@settings(max_examples=60, deadline=None)
@given(shape=shapes, rank=ranks, dtype=real_dtypes, seed=seeds, data=st.data())
def test_mttkrp_matches_einsum_reference_in_every_mode(shape, rank, dtype, seed, data):
    x, factors, gen = _problem(shape, rank, dtype, seed)
    weights = randn((rank,), gen, dtype) if data.draw(st.booleans(), label="weights") else None
    hi = [to_hi(f) for f in factors]
    for mode in range(len(shape)):
        out = mttkrp(x, factors, mode, weights=weights)
        assert out.shape == (shape[mode], rank)
        assert out.dtype == dtype
        expected = ref_mttkrp(to_hi(x), hi, mode, None if weights is None else to_hi(weights))
        assert_close(out, expected)
    assert torch.equal(mttkrp(x, factors, -1), mttkrp(x, factors, len(shape) - 1))


def test_mttkrp_is_unfold_times_khatri_rao():
    x, factors, _ = _problem((3, 2, 4, 2), 3, F64, 1)
    for mode in range(4):
        kept = [f for m, f in enumerate(factors) if m != mode]
        expected = ref_unfold(x, mode) @ ref_khatri_rao(kept)
        assert_close(mttkrp(x, factors, mode), expected)
        assert_close(unfold(x, mode) @ khatri_rao(factors, skip=mode), expected)


@pytest.mark.parametrize(
    ("shape", "mode", "first"),
    [
        ((5, 6, 7), 0, 2),  # last mode: one GEMM on X(I0 I1, I2)
        ((5, 6, 7), 2, 0),  # middle batches of 7 < 32 columns: first mode instead
        ((5, 6, 40), 2, 1),  # middle mode, batched GEMM with 40 columns per batch
        ((50, 6, 7), 1, 0),  # only mode 0 is large enough to keep the intermediate small
        ((3, 50, 2, 40), 3, 1),
        ((6, 50, 2), 0, 1),  # middle mode with narrow batches, still the only large one
        ((4, 5), 0, 1),
        ((4, 5), 1, 0),
    ],
)
def test_mttkrp_contraction_order_branches(shape, mode, first):
    assert _first_mode(shape, mode) == first
    x, factors, _ = _problem(shape, 3, F64, 2)
    assert_close(mttkrp(x, factors, mode), ref_mttkrp(x, factors, mode))


def test_mttkrp_low_order_complex_and_noncontiguous_input():
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(4, dtype=F64, generator=gen)
    a = torch.randn(4, 3, dtype=F64, generator=gen)
    out = mttkrp(v, [a], 0)
    assert torch.equal(out, v[:, None].expand(4, 3))
    out.add_(1.0)  # a fresh tensor, not a view of the input
    assert not torch.equal(out, v[:, None].expand(4, 3))
    # complex: no conjugation (unfold @ khatri_rao)
    x = torch.randn(2, 3, 4, dtype=torch.complex128, generator=gen)
    fs = [torch.randn(s, 2, dtype=torch.complex128, generator=gen) for s in x.shape]
    for mode in range(3):
        assert_close(mttkrp(x, fs, mode), ref_mttkrp(x, fs, mode))
    # a permuted (non-contiguous) view gives the same numbers
    y = torch.randn(4, 2, 3, dtype=F64, generator=gen).permute(1, 2, 0)
    fy = [torch.randn(s, 2, dtype=F64, generator=gen) for s in y.shape]
    for mode in range(3):
        assert_close(mttkrp(y, fy, mode), ref_mttkrp(y.contiguous(), fy, mode))


@pytest.mark.parametrize("backend", ["numpy", "pytorch"])
def test_mttkrp_agrees_with_tensorly_unfolding_dot_khatri_rao(tensorly_backend, backend):
    tl = tensorly_backend(backend)
    from tensorly.tenalg import unfolding_dot_khatri_rao

    x, factors, gen = _problem((4, 3, 5, 2), 3, F64, 4)
    w = torch.randn(3, dtype=F64, generator=gen)
    for mode in range(4):
        for weights in (None, w):
            if backend == "numpy":
                args = (None if weights is None else weights.numpy(), [f.numpy() for f in factors])
                expected = torch.from_numpy(unfolding_dot_khatri_rao(x.numpy(), args, mode))
            else:
                expected = unfolding_dot_khatri_rao(x, (weights, factors), mode)
            assert tl.get_backend() == backend
            assert_close(mttkrp(x, factors, mode, weights=weights), expected)


def test_mttkrp_gradcheck():
    x, factors, gen = _problem((3, 2, 4), 2, F64, 5, requires_grad=True)
    x.requires_grad_(True)
    w = torch.randn(2, dtype=F64, generator=gen, requires_grad=True)
    for mode in range(3):
        assert torch.autograd.gradcheck(
            lambda x, a, b, c, w, mode=mode: mttkrp(x, [a, b, c], mode, weights=w),
            (x, *factors, w),
        )
    # middle-mode batched GEMM branch (trailing >= 32 columns)
    x2, f2, _ = _problem((2, 2, 33), 2, F64, 6, requires_grad=True)
    x2.requires_grad_(True)
    assert _first_mode(x2.shape, 2) == 1
    assert torch.autograd.gradcheck(lambda x, a, b, c: mttkrp(x, [a, b, c], 2), (x2, *f2))


def _allocated_bytes(fn) -> int:
    """Total bytes allocated by CPU ops while running ``fn`` (frees ignored: an upper bound on
    the peak extra memory)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.self_cpu_memory_usage for e in prof.key_averages() if e.self_cpu_memory_usage > 0)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_mttkrp_never_copies_the_tensor(requires_grad):
    # 64^3 float64 = 2 MiB; the intermediates for R = 5 are 64*64*5*8 = 160 KiB each.
    x, factors, _ = _problem((64, 64, 64), 5, F64, 7, requires_grad=requires_grad)
    tensor_bytes = x.numel() * x.element_size()
    # The check is sharp: a permuted copy of the tensor shows up.
    assert _allocated_bytes(lambda: x.movedim(1, 0).contiguous()) >= tensor_bytes
    for mode in range(3):
        used = _allocated_bytes(lambda mode=mode: mttkrp(x, factors, mode))
        assert used < tensor_bytes // 4, (mode, used)
    # A skewed shape: the intermediate stays below the tensor's size (the last-mode GEMM would
    # make it R / 2 = 2.5 times larger).
    y, fy, _ = _problem((128, 128, 2), 5, F64, 8, requires_grad=requires_grad)
    for mode in range(2):
        used = _allocated_bytes(lambda mode=mode: mttkrp(y, fy, mode))
        assert used < y.numel() * y.element_size(), (mode, used)


def _mttkrp_errors_inputs():
    x = torch.zeros(2, 3, 4)
    fs = [torch.zeros(2, 5), torch.zeros(3, 5), torch.zeros(4, 5)]
    return x, fs


def test_mttkrp_output_mode_factor_is_only_checked_for_its_rank():
    x, fs = _mttkrp_errors_inputs()
    assert mttkrp(x, [torch.zeros(7, 5), fs[1], fs[2]], 0).shape == (2, 5)


MTTKRP_ERRORS_CASES = [
    pytest.param(
        lambda x, fs: mttkrp("x", fs, 0),
        TypeError,
        r"mttkrp: tensor must be a torch\.Tensor or a numpy array; got str\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(torch.zeros(2, 3, 4, dtype=torch.int64), fs, 0),
        TypeError,
        r"mttkrp: tensor must have a floating-point or complex dtype; got torch\.int64\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(torch.tensor(1.0), fs, 0),
        ValueError,
        r"mttkrp: tensor must have at least 1 dimensions; got shape \(\)\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(torch.zeros(2, 0, 4), fs, 0),
        ValueError,
        r"mttkrp: tensor has an empty dimension \(shape \(2, 0, 4\)\)",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, torch.zeros(3, 4, 5), 0),
        TypeError,
        r"mttkrp: factors must be a sequence of matrices; got Tensor\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, fs[:2], 0),
        ValueError,
        r"mttkrp: need one factor per mode \(3\); got 2 factors\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, fs, 3),
        IndexError,
        r"mttkrp: mode must be in \[-3, 2\] for a 3-way tensor; got 3\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, fs, "0"), TypeError, r"mttkrp: mode must be an int; got str\."
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, [fs[0], torch.zeros(3), fs[2]], 0),
        ValueError,
        r"mttkrp: factors\[1\] must have 2 dimensions; got shape \(3,\)\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, [fs[0], fs[1], None], 0),
        TypeError,
        r"mttkrp: factors\[2\] must be a torch\.Tensor or a numpy array; got NoneType\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, [fs[0], fs[1].double(), fs[2]], 0),
        TypeError,
        r"mttkrp: \(tensor, \*factors\)\[2\] has dtype torch\.float64 but "
        r"\(tensor, \*factors\)\[0\] has torch\.float32",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, [fs[0].to("meta"), fs[1], fs[2]], 0),
        ValueError,
        r"mttkrp: \(tensor, \*factors\)\[1\] is on meta but "
        r"\(tensor, \*factors\)\[0\] is on cpu",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, [fs[0], fs[1], torch.zeros(4, 4)], 0),
        ValueError,
        r"mttkrp: factors must share one rank; factors\[0\] has 5 columns and "
        r"factors\[2\] has 4\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, [fs[0], torch.zeros(4, 5), fs[2]], 0),
        ValueError,
        r"mttkrp: factors\[1\] has 4 rows but the tensor has size 3 along mode 1\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, fs, 0, weights=torch.zeros(4)),
        ValueError,
        r"mttkrp: weights must have 5 entries; got 4\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, fs, 0, weights=torch.zeros(5, 1)),
        ValueError,
        r"mttkrp: weights must have 1 dimensions; got shape \(5, 1\)\.",
    ),
    pytest.param(
        lambda x, fs: mttkrp(x, fs, 0, weights=torch.zeros(5, dtype=F64)),
        TypeError,
        r"mttkrp: \(tensor, weights\)\[1\] has dtype torch\.float64 but "
        r"\(tensor, weights\)\[0\] has torch\.float32",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), MTTKRP_ERRORS_CASES)
def test_mttkrp_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_mttkrp_errors_inputs())


@pytest.mark.cuda
def test_mttkrp_mode_dot_khatri_rao_on_cuda_match_cpu():
    from factorch.algebra import mode_dot

    x, factors, gen = _problem((6, 5, 40, 3), 4, F64, 9)
    w = torch.randn(4, dtype=F64, generator=gen)
    dev = torch.device("cuda")
    xd, fd, wd = x.to(dev), [f.to(dev) for f in factors], w.to(dev)
    for mode in range(4):
        out = mttkrp(xd, fd, mode, weights=wd)
        assert out.device.type == "cuda"
        torch.testing.assert_close(
            out.cpu(), mttkrp(x, factors, mode, weights=w), rtol=1e-10, atol=1e-10
        )
        m = torch.randn(3, x.shape[mode], dtype=F64, generator=gen)
        torch.testing.assert_close(
            mode_dot(xd, m.to(dev), mode).cpu(), mode_dot(x, m, mode), rtol=1e-10, atol=1e-10
        )
    torch.testing.assert_close(
        khatri_rao(fd, weights=wd, skip=1).cpu(),
        khatri_rao(factors, weights=w, skip=1),
        rtol=1e-12,
        atol=1e-12,
    )
    xs, fs = x.float().to(dev), [f.float().to(dev) for f in factors]
    torch.testing.assert_close(
        mttkrp(xs, fs, 2).cpu(), mttkrp(x, factors, 2).float(), rtol=1e-4, atol=1e-4
    )


def test_an_absurd_intermediate_is_refused_before_allocating():
    x = torch.zeros(100, 100, 100)
    big = torch.zeros(1, 1).expand(100, 10**9)  # a stride-0 view: no memory
    with pytest.raises(ValueError, match=r"mttkrp: the intermediate needs about .* of memory"):
        mttkrp(x, [big, big, big], 0)
