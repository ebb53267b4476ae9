"""The formulations of the tensor-reading GEMM (factorch.algebra._plans): every plan against an
einsum reference, the candidate set, the default rule (a pure function of the problem, pinned by
a table), no copy of the tensor, gradients through every kind of plan."""

from __future__ import annotations

import dataclasses
import string

import pytest
import torch
from _algebra_reference import assert_close, randn, ref_mode_dot, to_hi
from torch.profiler import ProfilerActivity, profile

from factorch.algebra import ContractionPlan, ContractionProblem
from factorch.algebra import _plans as plans_mod
from factorch.algebra._plans import RANK, candidates, default_plan, natural, plain_plan, run

F64 = torch.float64
F32 = torch.float32

SHAPES_MODES = [
    ((5, 7), (0,)),
    ((5, 7), (1,)),
    ((6, 5, 7), (0,)),
    ((6, 5, 7), (1,)),
    ((6, 5, 7), (2,)),
    ((6, 5, 7), (1, 2)),
    ((6, 5, 7), (0, 1)),
    ((4, 3, 5, 6), (0, 1, 2, 3)),
    ((4, 3, 5, 6), (2, 3)),
]


def _problem(shape, modes, rank, dtype=F64, device="cpu", kind="labels"):
    return ContractionProblem(
        kind, tuple(shape), tuple(plans_mod.allowed_modes(shape, modes)), rank, dtype, device, 1
    )


def _factors(shape, rank, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return randn(shape, gen, dtype), [randn((s, rank), gen, dtype) for s in shape]


def _reference(x, factor, mode, labels):
    """``sum_i x[..., i, ...] factor[i, r]`` in float64 with the axes ordered as ``labels``."""
    idx = string.ascii_lowercase[: x.ndim]
    out = "".join("Z" if a == RANK else idx[a] for a in labels)
    return torch.einsum(f"{idx},{idx[mode]}Z->{out}", to_hi(x), to_hi(factor))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize(("shape", "modes"), SHAPES_MODES)
@pytest.mark.parametrize("rank", [1, 3, 10])
def test_every_formulation_matches_einsum(shape, modes, rank, dtype):
    x, factors = _factors(shape, rank, dtype, seed=sum(shape) + rank)
    problem = _problem(shape, modes, rank, dtype)
    plans = candidates(problem)
    assert len(plans) == len(set(plans))
    rules = [plain_plan(shape, modes, rank), default_plan(problem)]
    for plan in [*rules, *plans]:
        y, labels = run(plan, x, factors[plan.mode])
        assert y.dtype == dtype
        assert sorted(labels) == sorted([RANK, *(a for a in range(len(shape)) if a != plan.mode)])
        assert labels.index(RANK) == plan.rank_at
        assert y.shape == tuple(rank if a == RANK else shape[a] for a in labels)
        assert_close(y, _reference(x, factors[plan.mode], plan.mode, labels))


def test_candidates_cover_positions_pads_and_layouts():
    plans = candidates(_problem((6, 5, 7), (1, 2), 10))
    assert {(p.mode, p.rank_at) for p in plans} == {(1, 1), (1, 2), (2, 0), (2, 1), (2, 2)}
    assert {p.pad for p in plans} == {10, 12, 16}  # 32 and 64 bytes of float64
    assert {p.col_major for p in plans} == {False, True}
    assert {p.pad for p in candidates(_problem((6, 5, 7), (2,), 10, F32))} == {10, 16}
    assert {p.pad for p in candidates(_problem((6, 5, 7), (2,), 8))} == {8}
    # a mode less than half the largest is never contracted first (the intermediate would grow)
    assert {p.mode for p in candidates(_problem((50, 6, 7), (0, 1, 2), 3))} == {0}


def test_complex_and_natural_layout():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(4, 5, 6, dtype=torch.complex128, generator=gen)
    for mode in range(3):
        f = torch.randn(x.shape[mode], 3, dtype=torch.complex128, generator=gen)
        for plan in candidates(_problem(x.shape, (mode,), 3, x.dtype)):
            y, labels = run(plan, x, f)
            assert_close(y, _reference(x, f, mode, labels))
            out = natural(y, labels, mode)
            assert out.is_contiguous()
            assert_close(out, ref_mode_dot(x, f.mT, mode))


# The default rule, pinned: (shape, modes, rank, dtype, device) -> (mode, rank_at, pad, col_major).
BIG = (200, 200, 200)
RULE_TABLE = [
    # small tensors, other devices, complex and half dtypes: the plain form
    ((20, 30, 40), (1, 2), 10, F64, "cpu", (2, 2, 10, None)),
    ((20, 30, 40), (0, 1), 10, F64, "cpu", (1, 1, 10, None)),
    ((5, 6, 7), (0, 1), 3, F64, "cpu", (0, 0, 3, None)),  # batches of 7 < 32: first mode
    (BIG, (1, 2), 10, F64, "cuda:0", (2, 2, 10, None)),
    (BIG, (1, 2), 10, torch.complex128, "cpu", (2, 2, 10, None)),
    (BIG, (1, 2), 10, torch.bfloat16, "cpu", (2, 2, 10, None)),
    # large float64 CPU tensors
    (BIG, (1, 2), 1, F64, "cpu", (2, 1, 1, False)),
    (BIG, (1, 2), 3, F64, "cpu", (2, 2, 3, True)),
    (BIG, (1, 2), 8, F64, "cpu", (2, 0, 8, True)),
    (BIG, (1, 2), 10, F64, "cpu", (1, 2, 12, False)),  # MKL likes 12 columns
    (BIG, (2,), 10, F64, "cpu", (2, 0, 12, True)),
    (BIG, (2,), 32, F64, "cpu", (2, 0, 32, True)),
    (BIG, (1, 2), 50, F64, "cpu", (2, 0, 52, True)),
    (BIG, (0, 1), 2, F64, "cpu", (1, 1, 2, False)),
    (BIG, (0, 1), 10, F64, "cpu", (1, 2, 12, False)),
    (BIG, (0, 1), 16, F64, "cpu", (1, 1, 16, True)),
    (BIG, (0,), 10, F64, "cpu", (0, 0, 12, True)),
    # large float32 CPU tensors
    (BIG, (1, 2), 16, F32, "cpu", (1, 1, 16, True)),
    (BIG, (2,), 16, F32, "cpu", (2, 1, 16, True)),
    (BIG, (1, 2), 5, F32, "cpu", (2, 2, 5, True)),
    ((40000, 30), (1,), 16, F32, "cpu", (1, 0, 16, True)),  # 2-way: rank axis first
    # batches of 90 < 128 columns: the first mode's single GEMM
    ((100, 120, 90), (0, 1), 10, F64, "cpu", (0, 0, 12, True)),
    # only a middle mode with batches of 8 columns: rank axis last
    ((1000, 1000, 8), (1, 2), 10, F64, "cpu", (1, 2, 12, False)),
    ((1000, 1000, 8), (1, 2), 4, F64, "cpu", (1, 1, 4, True)),
]


@pytest.mark.parametrize(("shape", "modes", "rank", "dtype", "device", "expected"), RULE_TABLE)
def test_default_rule_table(shape, modes, rank, dtype, device, expected):
    problem = _problem(shape, modes, rank, dtype, device)
    plan = default_plan(problem)
    assert (plan.mode, plan.rank_at, plan.pad, plan.col_major) == expected
    assert plan.mode in problem.modes
    # a pure function of the problem: the thread count and the kind do not change it
    assert default_plan(dataclasses.replace(problem, kind="natural", threads=7)) == plan


def test_default_rule_plans_are_valid_candidates_over_a_grid():
    for shape in [(200, 200, 200), (60, 60, 60, 60), (1000, 1000, 8), (400, 100, 200)]:
        n = len(shape)
        for dtype in (F32, F64):
            for rank in (1, 2, 5, 8, 10, 16, 33):
                for drop in range(n):
                    modes = tuple(m for m in range(n) if m != drop)
                    for mset in (modes, (modes[-1],), (modes[0],)):
                        problem = _problem(shape, mset, rank, dtype)
                        plan = default_plan(problem)
                        pads = {p.pad for p in candidates(problem)}
                        assert plan.mode in problem.modes
                        assert plan.rank_at in plans_mod.rank_positions(n, plan.mode)
                        assert plan.pad in pads


def test_plan_and_problem_are_hashable_values():
    problem = _problem((6, 5, 7), (1, 2), 3)
    assert {problem: 1}[_problem((6, 5, 7), (1, 2), 3)] == 1
    assert ContractionPlan(2, 2, 3) == ContractionPlan(2, 2, 3, None)
    x = torch.zeros(6, 5, 7, dtype=F64)
    key = ContractionProblem.of("labels", x, (1, 2), 3)
    assert key.shape == (6, 5, 7) and key.modes == (1, 2) and key.device == "cpu"
    assert key.threads == torch.get_num_threads()


def _allocated_bytes(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.self_cpu_memory_usage for e in prof.key_averages() if e.self_cpu_memory_usage > 0)


@pytest.mark.parametrize(("shape", "modes"), [((40, 40, 40), (0, 1, 2)), ((6, 40, 5, 48), (1, 3))])
def test_no_formulation_copies_the_tensor(shape, modes):
    # rank 2 padded to at most 8 columns: outputs of at most 8 / 40 of the tensor
    x, factors = _factors(shape, 2, F64, seed=6)
    tensor_bytes = x.numel() * x.element_size()
    assert _allocated_bytes(lambda: x.movedim(1, 0).contiguous()) >= tensor_bytes
    for plan in candidates(_problem(shape, modes, 2)):
        used = _allocated_bytes(lambda plan=plan: run(plan, x, factors[plan.mode]))
        assert used < tensor_bytes // 4, (plan, used)


@pytest.mark.parametrize(
    "plan",
    [
        ContractionPlan(2, 2, 2, None),
        ContractionPlan(2, 0, 4, True),
        ContractionPlan(2, 1, 2, False),
        ContractionPlan(1, 1, 4, True),
        ContractionPlan(1, 2, 2, False),
        ContractionPlan(0, 0, 4, True),
        ContractionPlan(0, 2, 2, None),
    ],
)
def test_gradcheck_through_every_kind_of_plan(plan):
    x, factors = _factors((3, 4, 5), 2, F64, seed=5)
    x.requires_grad_(True)
    f = factors[plan.mode].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, f: run(plan, x, f)[0], (x, f))
