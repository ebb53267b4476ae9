"""The entry points of the tensor-reading GEMM (factorch.algebra._gemm): the default rule by
default, the tuned plan when autotuning is on; the callers (mttkrp, the CP sweep, Tucker's ttm)
match references on both paths and never copy the tensor."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import assert_close, randn, ref_mode_dot, ref_mttkrp, to_hi
from torch.profiler import ProfilerActivity, profile

from factorch.algebra import _autotune, _gemm, mttkrp
from factorch.algebra._autotune import Autotuner
from factorch.algebra._plans import RANK, ContractionProblem, default_plan, plain_plan, run

F64 = torch.float64


def _factors(shape, rank, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return randn(shape, gen, dtype), [randn((s, rank), gen, dtype) for s in shape]


@pytest.fixture
def tuned(monkeypatch):
    fresh = Autotuner(min_entries=64)
    fresh.set_enabled(True)
    monkeypatch.setattr(_autotune, "TUNER", fresh)
    return fresh


def test_default_path_runs_the_rule_plan(monkeypatch):
    x, factors = _factors((6, 5, 7), 3, F64, seed=4)
    y, labels = _gemm.contract(x, factors, (1, 2))
    plan = plain_plan(x.shape, (1, 2), 3)
    assert (plan.mode, labels.index(RANK)) == (2, 2)
    assert torch.equal(y, run(plan, x, factors[2])[0])
    assert _gemm.mode_product(x, factors[1].mT, 1) is None  # the caller's own form
    # above the rule's size threshold the rule's table applies
    monkeypatch.setattr(_gemm, "RULE_MIN_ENTRIES", 1)
    monkeypatch.setattr("factorch.algebra._plans.RULE_MIN_ENTRIES", 1)
    y, labels = _gemm.contract(x, factors, (1, 2))
    plan = default_plan(ContractionProblem.of("labels", x, (1, 2), 3))
    assert plan.col_major is True
    assert torch.equal(y, run(plan, x, factors[plan.mode])[0])


def test_gradients_flow_through_the_default_path(monkeypatch):
    monkeypatch.setattr(_gemm, "RULE_MIN_ENTRIES", 1)
    monkeypatch.setattr("factorch.algebra._plans.RULE_MIN_ENTRIES", 1)
    x, factors = _factors((3, 4, 5), 2, F64, seed=5)
    x.requires_grad_(True)
    leaves = [f.clone().requires_grad_(True) for f in factors]
    for modes in [(1,), (2,), (0,), (1, 2)]:

        def fn(x, a, b, c, modes=modes):
            return _gemm.contract(x, [a, b, c], modes)[0]

        assert torch.autograd.gradcheck(fn, (x, *leaves))


def test_callers_on_the_tuned_path_match_references(tuned):
    from factorch.decomp._cp_sweep import _partial
    from factorch.decomp._tucker_common import ttm

    for dtype in (torch.float32, F64):
        x, factors = _factors((6, 5, 7), 4, dtype, seed=7)
        hi = [to_hi(f) for f in factors]
        for mode in range(3):
            first = mttkrp(x, factors, mode)
            assert first.is_contiguous()
            assert_close(first, ref_mttkrp(to_hi(x), hi, mode))
            assert torch.equal(mttkrp(x, factors, mode), first)
            m = randn((3, x.shape[mode]), torch.Generator().manual_seed(mode), dtype)
            out = ttm(x, m, mode)  # natural layout, contiguous
            assert out.is_contiguous()
            assert_close(out, ref_mode_dot(to_hi(x), to_hi(m), mode))
        left = _partial(x, factors, [2])
        assert_close(left, torch.einsum("ijk,kr->ijr", to_hi(x), hi[2]))
        right = _partial(x, factors, [0, 1])
        assert_close(right, torch.einsum("ijk,ir,jr->kr", to_hi(x), hi[0], hi[1]))
    assert {key.kind for key in tuned.cache()} == {"labels", "natural"}


def _allocated_bytes(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.self_cpu_memory_usage for e in prof.key_averages() if e.self_cpu_memory_usage > 0)


@pytest.mark.parametrize("tune", [False, True])
def test_mttkrp_does_not_copy_the_tensor(monkeypatch, tune):
    monkeypatch.setattr(_gemm, "RULE_MIN_ENTRIES", 1)
    monkeypatch.setattr("factorch.algebra._plans.RULE_MIN_ENTRIES", 1)
    fresh = Autotuner(min_entries=64)
    fresh.set_enabled(tune)
    monkeypatch.setattr(_autotune, "TUNER", fresh)
    x, factors = _factors((48, 48, 48), 5, F64, seed=8)
    tensor_bytes = x.numel() * x.element_size()
    for mode in range(3):
        mttkrp(x, factors, mode)  # tunes when on (its candidates allocate their outputs)
        used = _allocated_bytes(lambda mode=mode: mttkrp(x, factors, mode))
        assert used < tensor_bytes // 4, (mode, used)
    assert fresh.tunings == (3 if tune else 0)
