"""The default rule's one-GEMM form of mode 0 (``X(I_0, rest) @ KR``, two batches of rows):
taken exactly where documented, equal to the float64 reference, bit-identical across thread
counts, differentiable, and not taken with the autotuner on."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import assert_close, randn, ref_mttkrp, to_hi

from factorch.algebra import autotune, mttkrp
from factorch.algebra._mttkrp import first_mode_one_gemm

F64, F32 = torch.float64, torch.float32


def _problem(shape, rank, dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return randn(shape, gen, dtype), [randn((s, rank), gen, dtype) for s in shape]


@pytest.mark.parametrize(
    ("shape", "dtype", "taken"),
    [
        ((64, 64, 64), F64, True),
        ((66, 30, 20, 10), F64, True),
        ((64, 64, 64), F32, False),  # float32: measured slower at R = 10
        ((63, 63, 66), F64, False),  # the first mode not the largest
        ((65, 65, 65), F64, False),  # odd: no two equal batches of rows
        ((32, 32, 32), F64, False),  # small: the plain form
        ((512, 512), F64, False),  # a matrix: one plain GEMM already
    ],
)
def test_rule_takes_the_one_gemm_form_where_documented(shape, dtype, taken):
    assert first_mode_one_gemm(torch.empty(shape, dtype=dtype)) is taken


@pytest.mark.parametrize("shape", [(64, 64, 64), (66, 30, 20, 10)])
def test_one_gemm_form_matches_the_reference(shape):
    x, fs = _problem(shape, 10)
    assert first_mode_one_gemm(x)
    out = mttkrp(x, fs, 0)
    assert out.shape == (shape[0], 10) and out.is_contiguous()
    assert_close(out, ref_mttkrp(to_hi(x), [to_hi(f) for f in fs], 0, None))


def test_one_gemm_form_is_bit_identical_across_thread_counts():
    x, fs = _problem((80, 80, 80), 7)
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            outs.append(mttkrp(x, fs, 0))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(outs[0], o) for o in outs)


def test_one_gemm_form_is_differentiable():
    x, fs = _problem((64, 64, 64), 3)
    fs = [f.requires_grad_() for f in fs]
    mttkrp(x, fs, 0).square().sum().backward()
    ref = [f.detach().clone().requires_grad_() for f in fs]
    ref_mttkrp(x, ref, 0, None).square().sum().backward()
    for f, r in zip(fs[1:], ref[1:], strict=True):
        assert f.grad is not None and r.grad is not None
        torch.testing.assert_close(f.grad, r.grad)


def test_autotuner_on_uses_its_own_plans():
    x = torch.zeros(64, 64, 64, dtype=F64)
    with autotune():
        assert not first_mode_one_gemm(x)
    assert first_mode_one_gemm(x)
