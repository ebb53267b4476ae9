"""The autotuned tensor-reading GEMM (factorch.algebra._gemm): every formulation against an einsum
reference, the tuner's choice, its cache (key, bound, LRU), the fixed rule under autograd /
compilation / other devices, determinism, no copy of the tensor, and the callers (mttkrp, the CP
sweep, Tucker's ttm) on the tuned path."""

from __future__ import annotations

import string

import pytest
import torch
from _algebra_reference import assert_close, randn, ref_mode_dot, ref_mttkrp, to_hi
from torch.profiler import ProfilerActivity, profile

from factorch.algebra import _gemm, mttkrp
from factorch.algebra._gemm import RANK, Plan

F64 = torch.float64

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


@pytest.fixture(autouse=True)
def _fresh_cache():
    _gemm.clear_cache()
    yield
    _gemm.clear_cache()


def _factors(shape, rank, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return randn(shape, gen, dtype), [randn((s, rank), gen, dtype) for s in shape]


def _reference(x, factor, mode, labels):
    """``sum_i x[..., i, ...] factor[i, r]`` in float64 with the axes ordered as ``labels``."""
    idx = string.ascii_lowercase[: x.ndim]
    out = "".join("Z" if a == RANK else idx[a] for a in labels)
    return torch.einsum(f"{idx},{idx[mode]}Z->{out}", to_hi(x), to_hi(factor))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(("shape", "modes"), SHAPES_MODES)
@pytest.mark.parametrize("rank", [1, 3, 10])
def test_every_formulation_matches_einsum(shape, modes, rank, dtype):
    x, factors = _factors(shape, rank, dtype, seed=sum(shape) + rank)
    plans = _gemm.candidates(shape, modes, rank, dtype)
    fixed = _gemm.fixed_plan(shape, modes, rank)
    assert fixed.mode in {p.mode for p in plans}
    # every allowed mode, every rank position, padded and not, both factor layouts
    assert len(plans) == len(set(plans))
    for plan in [fixed, *plans]:
        y, labels = _gemm.run(plan, x, factors[plan.mode])
        assert y.dtype == dtype
        assert sorted(labels) == sorted([RANK, *(a for a in range(len(shape)) if a != plan.mode)])
        assert labels.index(RANK) == plan.rank_at
        assert y.shape == tuple(rank if a == RANK else shape[a] for a in labels)
        assert_close(y, _reference(x, factors[plan.mode], plan.mode, labels))


def test_candidates_cover_positions_pads_and_layouts():
    plans = _gemm.candidates((6, 5, 7), (1, 2), 10, F64)
    assert {(p.mode, p.rank_at) for p in plans} == {(1, 1), (1, 2), (2, 0), (2, 1), (2, 2)}
    assert {p.pad for p in plans} == {10, 12, 16}  # 32 and 64 bytes of float64
    assert {p.col_major for p in plans} == {False, True}
    assert {p.pad for p in _gemm.candidates((6, 5, 7), (2,), 10, torch.float32)} == {10, 16}
    assert {p.pad for p in _gemm.candidates((6, 5, 7), (2,), 8, F64)} == {8}
    # a mode less than half the largest is never contracted first (the intermediate would grow)
    assert {p.mode for p in _gemm.candidates((50, 6, 7), (0, 1, 2), 3, F64)} == {0}


def test_complex_and_natural_layout():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(4, 5, 6, dtype=torch.complex128, generator=gen)
    for mode in range(3):
        f = torch.randn(x.shape[mode], 3, dtype=torch.complex128, generator=gen)
        for plan in _gemm.candidates(x.shape, (mode,), 3, x.dtype):
            y, labels = _gemm.run(plan, x, f)
            assert_close(y, _reference(x, f, mode, labels))
            natural = _gemm._natural(y, labels, mode)
            assert natural.is_contiguous()
            assert_close(natural, ref_mode_dot(x, f.mT, mode))


class _FakeClock:
    """A clock that advances by the cost of each plan run (patched into ``_gemm``)."""

    def __init__(self, monkeypatch, cost):
        self.now = 0.0
        real_run = _gemm.run

        def run(plan, tensor, factor):
            self.now += cost(plan) * tensor.numel()
            return real_run(plan, tensor, factor)

        monkeypatch.setattr(_gemm, "run", run)
        monkeypatch.setattr(_gemm, "_clock", lambda: self.now)


@pytest.mark.parametrize("sampled", [False, True])
def test_tune_picks_the_fastest_plan_and_returns_its_output(monkeypatch, sampled):
    # sampled: the tensor is large enough (for the patched threshold) to be timed on slices first
    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 16 if sampled else 10**9)
    x, factors = _factors((8, 6, 10), 5, F64, seed=1)
    target = Plan(1, 2, 8, True)
    _FakeClock(monkeypatch, lambda plan: 1.0 if plan == target else 2.0)
    assert bool(_gemm._slices(x, 1)) == sampled
    plan, y, labels = _gemm.tune(x, factors, (1, 2))
    assert plan == target
    assert torch.equal(y, _gemm.run(target, x, factors[1])[0])
    assert labels == [0, 2, RANK]
    assert list(_gemm.cache_info().values()) == [target]


def test_slices_are_disjoint_views_that_every_plan_reads_without_copying(monkeypatch):
    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 15000)
    x, factors = _factors((40, 56, 48), 2, F64, seed=9)  # 107520 entries: 7 slices of >= 15000
    for mode, axis in [(0, 1), (1, 0), (2, 0)]:
        pieces = _gemm._slices(x, mode)
        assert len(pieces) == 7
        step = x.shape[axis] // 7
        for i, piece in enumerate(pieces):
            assert piece.shape[axis] == step
            assert torch.equal(piece, x.narrow(axis, i * step, step))
        piece, factor = pieces[0], factors[mode]
        piece_bytes = piece.numel() * piece.element_size()
        for plan in _gemm.candidates(x.shape, (mode,), 2, F64):

            def call(plan=plan, piece=piece, factor=factor):
                return _gemm.run(plan, piece, factor)

            used = _allocated_bytes(call)
            assert used < piece_bytes // 2, (plan, used)
    assert _gemm._slices(x[:, :3], 0) == []  # fewer than 4 slices fit: everything on the whole


def _key_of(x, modes, rank, kind="labels"):
    return (
        kind,
        tuple(x.shape),
        tuple(modes),
        rank,
        x.dtype,
        str(x.device),
        torch.get_num_threads(),
    )


def test_contract_tunes_once_per_key(monkeypatch):
    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 64)
    calls = []
    real_tune = _gemm.tune

    def tune(*args, **kwargs):
        calls.append(args[2])
        return real_tune(*args, **kwargs)

    monkeypatch.setattr(_gemm, "tune", tune)
    x, factors = _factors((6, 5, 7), 3, F64, seed=2)
    first = _gemm.contract(x, factors, (1, 2))
    second = _gemm.contract(x, factors, (1, 2))
    assert len(calls) == 1
    key = _key_of(x, (1, 2), 3)
    assert list(_gemm.cache_info()) == [key]
    # determinism: the tuning call returns what every later call returns, bit for bit
    assert first[1] == second[1]
    assert torch.equal(first[0], second[0])
    # each part of the key makes a new entry
    _gemm.contract(x, factors, (0, 1))  # mode set
    _gemm.contract(x, [f[:, :2] for f in factors], (1, 2))  # rank
    _gemm.contract(x.float(), [f.float() for f in factors], (1, 2))  # dtype
    _gemm.contract(x[:5].contiguous(), factors, (1, 2))  # shape
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        _gemm.contract(x, factors, (1, 2))  # thread count
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 6
    assert len(_gemm.cache_info()) == 6
    _gemm.contract(x, factors, (1, 2))
    assert len(calls) == 6


def test_cache_is_bounded_and_least_recently_used(monkeypatch):
    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 1)
    monkeypatch.setattr(_gemm, "_CACHE_SIZE", 3)
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(3, 4, n, dtype=F64, generator=gen) for n in (5, 6, 7, 8)]
    fs = [[torch.randn(s, 2, dtype=F64, generator=gen) for s in x.shape] for x in xs]
    for x, f in zip(xs[:3], fs[:3]):
        _gemm.contract(x, f, (2,))
    keys = [_key_of(x, (2,), 2) for x in xs]
    assert list(_gemm.cache_info()) == keys[:3]
    _gemm.contract(xs[0], fs[0], (2,))  # a hit makes xs[0] the most recently used
    _gemm.contract(xs[3], fs[3], (2,))  # evicts the least recently used: xs[1]
    assert list(_gemm.cache_info()) == [keys[2], keys[0], keys[3]]
    assert len(_gemm.cache_info()) == 3
    _gemm.clear_cache()
    assert _gemm.cache_info() == {}


def test_fixed_rule_under_autograd_compile_devices_and_small_tensors(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tuned although the fixed rule applies")

    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 64)
    x, factors = _factors((6, 5, 7), 3, F64, seed=4)
    assert _gemm.should_tune(x, factors)
    assert not _gemm.should_tune(x[:1], factors)  # fewer than _MIN_TUNE_ENTRIES entries
    assert not _gemm.should_tune(x.transpose(0, 1), factors)  # not contiguous
    assert not _gemm.should_tune(x.to("meta"), factors)  # not on the CPU (e.g. CUDA)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not _gemm.should_tune(x, factors)
    monkeypatch.undo()
    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 64)

    leaf = [f.clone().requires_grad_(True) for f in factors]
    assert not _gemm.should_tune(x, leaf)
    assert not _gemm.should_tune(x.clone().requires_grad_(True), factors)
    with torch.no_grad():
        assert _gemm.should_tune(x, leaf)  # nothing recorded: timing is allowed

    monkeypatch.setattr(_gemm, "tune", refuse)
    y, labels = _gemm.contract(x, leaf, (1, 2))
    fixed = _gemm.fixed_plan(x.shape, (1, 2), 3)
    assert (fixed.mode, labels.index(RANK)) == (2, 2)
    assert torch.equal(y, _gemm.run(fixed, x, factors[2])[0])
    (g,) = torch.autograd.grad(y.sum(), leaf[2])
    assert_close(g, x.sum((0, 1))[:, None].expand(7, 3))
    assert _gemm.mode_product(x, leaf[1].mT, 1) is None
    assert _gemm.cache_info() == {}


def test_gradcheck_through_the_fixed_rule():
    x, factors = _factors((3, 4, 5), 2, F64, seed=5)
    x.requires_grad_(True)
    a, b = (f.clone().requires_grad_(True) for f in factors[1:])
    for modes in [(1,), (2,), (0,)]:
        f0 = factors[0].clone().requires_grad_(True)

        def fn(x, f0, a, b, modes=modes):
            return _gemm.contract(x, [f0, a, b], modes)[0]

        assert torch.autograd.gradcheck(fn, (x, f0, a, b))


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
    for plan in _gemm.candidates(shape, modes, 2, F64):
        used = _allocated_bytes(lambda plan=plan: _gemm.run(plan, x, factors[plan.mode]))
        assert used < tensor_bytes // 4, (plan, used)


def test_callers_on_the_tuned_path_match_references(monkeypatch):
    from factorch.decomp._cp_sweep import _partial
    from factorch.decomp._tucker_common import ttm

    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 64)
    for dtype in (torch.float32, F64):
        x, factors = _factors((6, 5, 7), 4, dtype, seed=7)
        hi = [to_hi(f) for f in factors]
        for mode in range(3):
            first = mttkrp(x, factors, mode)
            assert first.is_contiguous()
            assert_close(first, ref_mttkrp(to_hi(x), hi, mode))
            assert torch.equal(mttkrp(x, factors, mode), first)
            # ttm: natural layout, contiguous
            m = randn((3, x.shape[mode]), torch.Generator().manual_seed(mode), dtype)
            out = ttm(x, m, mode)
            assert out.is_contiguous()
            assert_close(out, ref_mode_dot(to_hi(x), to_hi(m), mode))
        left = _partial(x, factors, [2])
        assert_close(left, torch.einsum("ijk,kr->ijr", to_hi(x), hi[2]))
        right = _partial(x, factors, [0, 1])
        assert_close(right, torch.einsum("ijk,ir,jr->kr", to_hi(x), hi[0], hi[1]))
    kinds = {key[0] for key in _gemm.cache_info()}
    assert kinds == {"labels", "natural"}


def test_tuned_mttkrp_does_not_copy_the_tensor(monkeypatch):
    monkeypatch.setattr(_gemm, "_MIN_TUNE_ENTRIES", 64)
    x, factors = _factors((48, 48, 48), 5, F64, seed=8)
    tensor_bytes = x.numel() * x.element_size()
    for mode in range(3):
        mttkrp(x, factors, mode)  # tunes (its candidates allocate their outputs)
        used = _allocated_bytes(lambda mode=mode: mttkrp(x, factors, mode))
        assert used < tensor_bytes // 4, (mode, used)
