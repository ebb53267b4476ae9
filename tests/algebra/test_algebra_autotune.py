"""The opt-in autotuner (factorch.algebra._autotune): off by default, the public switches, when it
applies (never in deterministic mode, under autograd, compilation, off the CPU), what it picks
(a fake clock), its cache (key, bound, LRU, read-only view, clearing), exactly one tuning per key
under 8 threads, and bit-identical results across 5 fresh processes with default settings."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading

import pytest
import torch
from _algebra_reference import randn

import factorch.algebra as fa
from factorch.algebra import _autotune, _gemm, mttkrp
from factorch.algebra._autotune import Autotuner
from factorch.algebra._plans import ContractionPlan, ContractionProblem, default_plan, run

F64 = torch.float64


def _factors(shape, rank, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return randn(shape, gen, dtype), [randn((s, rank), gen, dtype) for s in shape]


@pytest.fixture
def tuner(monkeypatch):
    """A fresh process tuner, switched on, that times tensors of at least 64 entries."""
    fresh = Autotuner(min_entries=64)
    fresh.set_enabled(True)
    monkeypatch.setattr(_autotune, "TUNER", fresh)
    return fresh


@pytest.fixture
def count_tunings(monkeypatch):
    calls: list[ContractionProblem] = []
    real = Autotuner.tune

    def tune(self, problem, tensor, factors):
        calls.append(problem)
        return real(self, problem, tensor, factors)

    monkeypatch.setattr(Autotuner, "tune", tune)
    return calls


# --- the public switch ---------------------------------------------------------------------------
def test_off_by_default_and_the_switches_restore_state():
    assert fa.is_autotune_enabled() is False
    with fa.autotune():
        assert fa.is_autotune_enabled()
        with fa.autotune(False):
            assert not fa.is_autotune_enabled()
        assert fa.is_autotune_enabled()
    assert not fa.is_autotune_enabled()
    fa.set_autotune(True)
    try:
        assert fa.is_autotune_enabled()
    finally:
        fa.set_autotune(False)
    with pytest.raises(RuntimeError, match="boom"), fa.autotune():
        raise RuntimeError("boom")
    assert not fa.is_autotune_enabled()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fa.set_autotune(1), r"set_autotune: enabled must be a bool; got int"),
        (lambda: fa.autotune("yes").__enter__(), r"autotune: enabled must be a bool; got str"),
    ],
)
def test_switch_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_default_settings_never_time(monkeypatch, count_tunings):
    monkeypatch.setattr(_autotune.TUNER, "min_entries", 1)
    x, factors = _factors((6, 5, 7), 3, F64, seed=1)
    for mode in range(3):
        mttkrp(x, factors, mode)
    assert count_tunings == []
    assert len(fa.autotune_cache()) == 0


# --- when it applies ---------------------------------------------------------------------------
def test_applies_only_where_timing_is_safe(tuner, monkeypatch):
    x, factors = _factors((6, 5, 7), 3, F64, seed=4)
    assert tuner.applies(x, factors)
    assert not tuner.applies(x[:1], factors)  # fewer than min_entries entries
    assert not tuner.applies(x.transpose(0, 1), factors)  # not contiguous
    assert not tuner.applies(x.to("meta"), factors)  # not on the CPU (e.g. CUDA)
    leaf = [f.clone().requires_grad_(True) for f in factors]
    assert not tuner.applies(x, leaf)  # autograd records the call
    assert not tuner.applies(x.clone().requires_grad_(True), factors)
    with torch.no_grad():
        assert tuner.applies(x, leaf)  # nothing recorded: timing is allowed
    tuner.set_enabled(False)
    assert not tuner.applies(x, factors)
    tuner.set_enabled(True)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not tuner.applies(x, factors)


def test_deterministic_algorithms_turn_tuning_off(tuner, count_tunings, monkeypatch):
    # torch.use_deterministic_algorithms(True) itself takes seconds the first time it is
    # switched on; what the tuner reads is this query
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    x, factors = _factors((6, 5, 7), 3, F64, seed=2)
    y, _ = _gemm.contract(x, factors, (1, 2))
    assert count_tunings == [] and len(tuner.cache()) == 0
    plan = default_plan(ContractionProblem.of("labels", x, (1, 2), 3))
    assert torch.equal(y, run(plan, x, factors[plan.mode])[0])


# --- what it picks -------------------------------------------------------------------------------
class _FakeClock:
    """A clock that advances by the cost of each plan run."""

    def __init__(self, monkeypatch, tuner, cost):
        self.now = 0.0
        real_run = _autotune.run

        def fake_run(plan, tensor, factor):
            self.now += cost(plan) * tensor.numel()
            return real_run(plan, tensor, factor)

        monkeypatch.setattr(_autotune, "run", fake_run)
        tuner.clock = lambda: self.now


@pytest.mark.parametrize("sampled", [False, True])
def test_tune_picks_the_fastest_plan_and_returns_its_output(tuner, monkeypatch, sampled):
    # sampled: the tensor is large enough (for the threshold) to be timed on slices first
    tuner.min_entries = 16 if sampled else 10**9
    x, factors = _factors((8, 6, 10), 5, F64, seed=1)
    target = ContractionPlan(1, 2, 8, True)
    _FakeClock(monkeypatch, tuner, lambda plan: 1.0 if plan == target else 2.0)
    assert bool(tuner._slices(x, 1)) == sampled
    problem = ContractionProblem.of("labels", x, (1, 2), 5)
    plan, (y, labels) = tuner.tune(problem, x, factors)
    assert plan == target
    assert torch.equal(y, run(target, x, factors[1])[0])
    assert labels == [0, 2, -1]


def test_slices_are_disjoint_views():
    tuner = Autotuner(min_entries=15000)
    x, _ = _factors((40, 56, 48), 2, F64, seed=9)  # 107520 entries: 7 slices of >= 15000
    for mode, axis in [(0, 1), (1, 0), (2, 0)]:
        pieces = tuner._slices(x, mode)
        assert len(pieces) == 7
        step = x.shape[axis] // 7
        for i, piece in enumerate(pieces):
            assert (
                piece.shape[axis] == step
                and piece.data_ptr() == x.narrow(axis, i * step, step).data_ptr()
            )
    assert tuner._slices(x[:, :3], 0) == []  # fewer than 4 slices fit: everything on the whole


# --- the cache -------------------------------------------------------------------------------
def test_contract_tunes_once_per_key_and_is_deterministic_after(tuner, count_tunings):
    x, factors = _factors((6, 5, 7), 3, F64, seed=2)
    first = _gemm.contract(x, factors, (1, 2))
    second = _gemm.contract(x, factors, (1, 2))
    assert len(count_tunings) == 1
    key = ContractionProblem.of("labels", x, (1, 2), 3)
    assert list(fa.autotune_cache()) == [key]
    # the tuning call returns what every later call returns, bit for bit
    assert first[1] == second[1] and torch.equal(first[0], second[0])
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
    assert len(count_tunings) == 6 and tuner.tunings == 6
    assert len(fa.autotune_cache()) == 6
    _gemm.contract(x, factors, (1, 2))
    assert len(count_tunings) == 6


def test_cache_is_bounded_lru_read_only_and_clearable(tuner):
    tuner.min_entries, tuner.capacity = 1, 3
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(3, 4, n, dtype=F64, generator=gen) for n in (5, 6, 7, 8)]
    fs = [[torch.randn(s, 2, dtype=F64, generator=gen) for s in x.shape] for x in xs]
    for x, f in zip(xs[:3], fs[:3]):
        _gemm.contract(x, f, (2,))
    keys = [ContractionProblem.of("labels", x, (2,), 2) for x in xs]
    assert list(fa.autotune_cache()) == keys[:3]
    _gemm.contract(xs[0], fs[0], (2,))  # a hit makes xs[0] the most recently used
    _gemm.contract(xs[3], fs[3], (2,))  # evicts the least recently used: xs[1]
    view = fa.autotune_cache()
    assert list(view) == [keys[2], keys[0], keys[3]]
    assert all(isinstance(p, ContractionPlan) for p in view.values())
    with pytest.raises(TypeError):
        view[keys[1]] = ContractionPlan(2, 2, 2)  # type: ignore[index]
    fa.clear_autotune_cache()
    assert len(fa.autotune_cache()) == 0
    assert len(view) == 3  # a snapshot, not a live view


def test_a_failed_tuning_lets_waiting_callers_fall_back(tuner, monkeypatch):
    def boom(self, problem, tensor, factors):
        raise MemoryError("no room to time")

    monkeypatch.setattr(Autotuner, "tune", boom)
    x, factors = _factors((6, 5, 7), 3, F64, seed=2)
    with pytest.raises(MemoryError):
        _gemm.contract(x, factors, (1, 2))
    assert len(tuner.cache()) == 0 and not tuner._pending


# --- threads ------------------------------------------------------------------------------------
def test_eight_threads_run_exactly_one_tuning_and_agree_bit_for_bit(tuner, count_tunings):
    x, factors = _factors((32, 32, 32), 10, F64, seed=12)
    barrier = threading.Barrier(8)
    outputs: list[torch.Tensor | None] = [None] * 8
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            outputs[i] = mttkrp(x, factors, 0)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(count_tunings) == 1 and tuner.tunings == 1
    assert all(torch.equal(out, outputs[0]) for out in outputs)
    assert torch.equal(mttkrp(x, factors, 0), outputs[0])


# --- processes ----------------------------------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import hashlib, torch
    from factorch.algebra import mttkrp
    g = torch.Generator().manual_seed(0)
    x = torch.randn(112, 112, 112, dtype=torch.float64, generator=g)
    fs = [torch.randn(112, 10, dtype=torch.float64, generator=g) for _ in range(3)]
    h = hashlib.sha256()
    for mode in range(3):
        h.update(mttkrp(x, fs, mode).numpy().tobytes())
    print(h.hexdigest())
    """
)


@pytest.mark.slow  # five interpreter starts (torch import): ~4 s on an idle 2-core machine
def test_five_fresh_processes_give_bit_identical_mttkrp():
    # 112^3 = 1.4 M entries: above the old tuner's 2^20 threshold, in the default rule's
    # padded, column-major range (R = 10 -> 12)
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True)
        for _ in range(5)
    ]
    digests = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(digests) == 1
    # and the same as in this process
    g = torch.Generator().manual_seed(0)
    x = torch.randn(112, 112, 112, dtype=F64, generator=g)
    fs = [torch.randn(112, 10, dtype=F64, generator=g) for _ in range(3)]
    plan = default_plan(ContractionProblem.of("labels", x, (1, 2), 10))
    assert plan.pad == 12 and plan.col_major is True
    h = hashlib.sha256()
    for mode in range(3):
        h.update(mttkrp(x, fs, mode).numpy().tobytes())
    assert digests == {h.hexdigest()}
