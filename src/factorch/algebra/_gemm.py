"""The one GEMM that reads a dense tensor, with its formulation chosen by timing (autotuned).

MTTKRP, the CP-ALS dimension tree and Tucker's mode products spend nearly all their time in one
contraction that reads the dense tensor ``X`` (``I_0 x ... x I_{N-1}``) once: a mode ``m`` is
contracted with a tall, skinny factor ``F`` (``I_m x R``),

    Y[..., r, ...] = sum_i X[..., i, ...] F[i, r]    (2 |X| R flops),

on a free reshape of ``X`` viewed as ``(L, I_m, T)`` (``L``, ``T``: the products of the sizes
before and after ``m``). Which of the equivalent ways of running it is fastest depends on ``R``,
the shape, the dtype and the BLAS in ways no fixed rule captures (torch 2.13 + MKL, one thread,
200^3 float64, ms; see BENCHMARKS.md):

==  =========  ================  ==================  ========================
R   X(IJ,K)@F  F^T @ X(IJ,K)^T   bmm(F^T, X(I,J,K))  fastest plan (tuned)
==  =========  ================  ==================  ========================
10  9.0        15.3              9.0                 7.3 (pad 12, ``(I,K,R)``)
16  15.9       8.6               9.3                 8.1
20  17.9       9.7               10.9                9.1
==  =========  ================  ==================  ========================

A formulation (a :class:`Plan`) fixes

* ``mode``: which mode the GEMM contracts (among those allowed, see :func:`allowed_modes`);
* ``rank_at``: where the rank axis lands among the output axes, i.e. which operand BLAS sees
  transposed and how the output is laid out: for the last mode anywhere (position 0 is
  ``F^T @ X(L, I)^T``, position N-1 is ``X(L, I) @ F``, a position ``p`` in between is a batched
  GEMM over the first ``p`` axes); for the first mode at 0 (``F^T @ X(I, T)``) or N-1
  (``X(I, T)^T @ F``); for a middle mode at ``m`` (``bmm(F^T, X(L, I, T))``) or N-1
  (``bmm(X(L, I, T)^T, F)``);
* ``pad``: ``R``, or ``R`` rounded up to a multiple of 32 or 64 bytes (zero columns appended to
  ``F``; the output is narrowed back, a view): MKL's kernels favour some widths (R = 10 padded
  to 12 runs faster than R = 10);
* ``col_major``: whether ``F`` is copied row- or column-major (the BLAS transposition flag).

None of them copies the tensor: every operand is a view of ``X`` that BLAS reads directly (the
batched forms use ``torch.bmm`` on an expanded view of ``F``). All give the same values up to
floating-point round-off (the order of the ``I_m`` products summed may differ); for one plan the
result is deterministic.

**Autotuning** (an internal performance cache, like ``torch.backends.cudnn.benchmark``). On first
use of a key ``(kind, shape, allowed modes, R, dtype, device, torch.get_num_threads())`` the
candidate plans (:func:`candidates`: every allowed mode and rank position, ``R`` padded to 32 and
64 bytes or not, the factor row- or column-major; 18 to 30 for a 3-way tensor) are timed with
``time.perf_counter`` on the real operands: for a large tensor each once on a different slice of
about 1/8 of it (cheap, and no candidate finds its data in cache), then the 3 fastest once on the
whole tensor; for a smaller one each once on the whole tensor. The fastest is cached in a bounded
module-level dict (:data:`_CACHE_SIZE` keys, least recently used evicted; :func:`clear_cache`
empties it, :func:`cache_info` shows it). The call that tunes returns the output of the winner's
timed run, so it gives bit-for-bit what every later call with that key gives. Tuning costs about
7 runs of the GEMM per key (200^3 float64, R = 10: about 60 ms, once per process); it changes
speed only, never values beyond round-off. The winner depends on timings, so two processes may
pick different plans and differ at round-off level, as with cuDNN.

**Fixed rule** (no timing): used while ``torch.compiler.is_compiling()``, when autograd records
the call (the tensor or a factor requires grad), off the CPU (CUDA timing would need events and
synchronisation), for non-contiguous tensors (their reshape copies anyway) and for tensors of
fewer than :data:`_MIN_TUNE_ENTRIES` entries, where a call takes well under a millisecond and
tuning cannot pay off. It contracts the last allowed mode, else a middle mode whose batches have
at least 32 columns (the one with the widest batches), else the first; the rank axis goes where
the mode was (the last mode: last), with ``F`` as given. These forms are differentiable
without copying the tensor (``torch.bmm`` rather than ``torch.matmul``, which folds a batched
operand into a copy when a factor requires grad).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

__all__: list[str] = []

RANK = -1
"""Label of the rank axis in the axis labels returned by :func:`contract`."""

_MIN_TUNE_ENTRIES = 1 << 20
_MIN_BATCH_COLUMNS = 32
_CACHE_SIZE = 256
_SAMPLES = 8  # tuning times every candidate on one of this many slices of a large tensor ...
_MIN_SAMPLES = 4  # ... when at least this many slices of _MIN_TUNE_ENTRIES entries fit
_FINALISTS = 3  # ... then this many of the fastest on the whole tensor

Kind = Literal["labels", "natural"]


@dataclass(frozen=True)
class Plan:
    """One formulation of the tensor-reading GEMM (see the module docstring).

    ``col_major=None`` uses the factor as given (the fixed rule); ``True``/``False`` copy it
    column-/row-major (and zero-padded to ``pad`` columns).
    """

    mode: int
    rank_at: int
    pad: int
    col_major: bool | None = None


_cache: dict[tuple[object, ...], Plan] = {}
_clock = time.perf_counter  # a module attribute so that tests can substitute a fake clock


def clear_cache() -> None:
    """Forget every tuned plan (the next call with each key times its candidates again)."""
    _cache.clear()


def cache_info() -> dict[tuple[object, ...], Plan]:
    """A copy of the tuned plans, by key (for inspection and tests)."""
    return dict(_cache)


# --- the formulations --------------------------------------------------------------------------
def allowed_modes(shape: Sequence[int], modes: Sequence[int]) -> list[int]:
    """The modes of ``modes`` at least half as large as the largest: contracting one of them
    first keeps the intermediate (``|X| R / I_m`` entries) within twice the smallest possible."""
    largest = max(shape[m] for m in modes)
    return [m for m in modes if 2 * shape[m] >= largest]


def fixed_mode(shape: Sequence[int], modes: Sequence[int]) -> int:
    """The mode the fixed rule contracts: the last allowed mode, else a middle one with batches
    of at least 32 columns (the widest), else the first (the order in which BLAS runs these
    skinny products fastest when nothing is measured)."""
    n = len(shape)

    def preference(m: int) -> tuple[int, int]:
        if m == n - 1:
            return (3, 0)
        if m == 0:
            return (1, 0)
        trailing = math.prod(shape[m + 1 :])
        # A batched GEMM with fewer than ~32 columns per batch runs slower than the single
        # (R x I_0) @ (I_0 x rest) GEMM of the first mode (measured; BENCHMARKS.md).
        return (2 if trailing >= _MIN_BATCH_COLUMNS else 0, trailing)

    return max(allowed_modes(shape, modes), key=preference)


def fixed_plan(shape: Sequence[int], modes: Sequence[int], rank: int) -> Plan:
    """The plan used without timing (see the module docstring)."""
    m = fixed_mode(shape, modes)
    return Plan(m, m if m < len(shape) - 1 else len(shape) - 1, rank, None)


def rank_positions(n: int, m: int) -> list[int]:
    """Where the rank axis can land when mode ``m`` of an ``n``-way tensor is contracted by one
    (batched) GEMM on a view of a contiguous tensor."""
    if m == n - 1:
        return list(range(n))
    if m == 0:
        return [0, n - 1]
    return [m, n - 1]


def candidates(
    shape: Sequence[int], modes: Sequence[int], rank: int, dtype: torch.dtype
) -> list[Plan]:
    """Every plan the tuner times: allowed mode x rank position x padding x factor layout."""
    n = len(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    pads = sorted(
        {
            rank,
            *(-(-rank // step) * step for step in (max(1, 32 // itemsize), max(1, 64 // itemsize))),
        }
    )
    plans = []
    for m in allowed_modes(shape, modes):
        for p in rank_positions(n, m):
            for pad in pads:
                for col in (False, True):
                    plans.append(Plan(m, p, pad, col))
    return plans


def _prepare(factor: torch.Tensor, pad: int, col_major: bool | None) -> torch.Tensor:
    """``factor`` (I x R) as the plan wants it: as given, or copied row-/column-major with
    ``pad - R`` zero columns appended."""
    if col_major is None:
        return factor
    size, rank = factor.shape
    if col_major:
        buf = factor.new_zeros(pad, size) if pad > rank else factor.new_empty(rank, size)
        buf[:rank].copy_(factor.mT)
        return buf.mT
    buf = factor.new_zeros(size, pad) if pad > rank else factor.new_empty(size, rank)
    buf[:, :rank].copy_(factor)
    return buf


def run(plan: Plan, tensor: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Contract mode ``plan.mode`` of ``tensor`` with ``factor`` (I_m x R) as ``plan`` says.

    Returns the result and its axis labels: the remaining modes in order with :data:`RANK`
    inserted at ``plan.rank_at``. The result is a fresh tensor (a narrowed view of one when the
    plan pads).
    """
    shape = list(tensor.shape)
    n, m, p = len(shape), plan.mode, plan.rank_at
    rank = factor.shape[1]
    f = _prepare(factor, plan.pad, plan.col_major)
    k = f.shape[1]
    size = shape[m]
    lead, trail = math.prod(shape[:m]), math.prod(shape[m + 1 :])
    if m == n - 1:
        x2 = tensor.reshape(lead, size)
        if p == n - 1:
            y = x2 @ f
        elif p == 0:
            y = f.mT @ x2.mT
        else:
            batch = math.prod(shape[:p])
            x3 = tensor.reshape(batch, lead // batch, size)
            y = torch.bmm(f.mT.expand(batch, k, size), x3.mT)
    elif m == 0:
        x2 = tensor.reshape(size, trail)
        y = f.mT @ x2 if p == 0 else x2.mT @ f
    else:
        x3 = tensor.reshape(lead, size, trail)
        if p == m:
            y = torch.bmm(f.mT.expand(lead, k, size), x3)
        else:
            y = torch.bmm(x3.mT, f.expand(lead, size, k))
    others = [a for a in range(n) if a != m]
    out_shape = [shape[a] for a in others]
    out_shape.insert(p, k)
    y = y.reshape(out_shape)
    if k > rank:
        y = y.narrow(p, 0, rank)
    return y, [*others[:p], RANK, *others[p:]]


def _natural(y: torch.Tensor, labels: list[int], mode: int) -> torch.Tensor:
    """The result laid out as ``tensor x_mode F^T`` (rank axis where the mode was), contiguous."""
    return y.movedim(labels.index(RANK), mode).contiguous()


# --- tuning ------------------------------------------------------------------------------------
def should_tune(tensor: torch.Tensor, factors: Sequence[torch.Tensor | None]) -> bool:
    """Whether a call may time its candidates (see "Fixed rule" in the module docstring)."""
    if torch.compiler.is_compiling():
        return False
    if tensor.device.type != "cpu" or tensor.numel() < _MIN_TUNE_ENTRIES:
        return False
    if not tensor.is_contiguous():
        return False
    if torch.is_grad_enabled() and (
        tensor.requires_grad or any(f is not None and f.requires_grad for f in factors)
    ):
        return False
    return True


def _key(kind: Kind, tensor: torch.Tensor, modes: Sequence[int], rank: int) -> tuple[object, ...]:
    return (
        kind,
        tuple(tensor.shape),
        tuple(allowed_modes(tensor.shape, modes)),
        rank,
        tensor.dtype,
        str(tensor.device),
        torch.get_num_threads(),
    )


def _remember(key: tuple[object, ...], plan: Plan) -> None:
    _cache.pop(key, None)
    while len(_cache) >= _CACHE_SIZE:
        del _cache[next(iter(_cache))]  # least recently used first
    _cache[key] = plan


def _lookup(key: tuple[object, ...]) -> Plan | None:
    plan = _cache.pop(key, None)
    if plan is not None:
        _cache[key] = plan  # most recently used last
    return plan


def _slices(tensor: torch.Tensor, mode: int) -> list[torch.Tensor]:
    """Up to 8 disjoint slices of ``tensor`` along an axis other than ``mode`` (axis 1 for mode 0,
    else axis 0; the views the plans take stay copy-free), each of at least
    :data:`_MIN_TUNE_ENTRIES` entries; empty when fewer than 4 such slices fit."""
    axis = 1 if mode == 0 else 0
    size = tensor.shape[axis]
    count = min(_SAMPLES, size, tensor.numel() // _MIN_TUNE_ENTRIES)
    if count < _MIN_SAMPLES:
        return []
    step = size // count
    return [tensor.narrow(axis, i * step, step) for i in range(count)]


def tune(
    tensor: torch.Tensor,
    factors: Sequence[torch.Tensor | None],
    modes: Sequence[int],
    kind: Kind = "labels",
) -> tuple[Plan, torch.Tensor, list[int]]:
    """Time the candidates, cache the fastest; return it with the output of its timed run
    (``kind="natural"``: laid out by :func:`_natural`).

    Large tensors (at least 4 slices of :data:`_MIN_TUNE_ENTRIES` entries): every candidate runs
    once on a slice of about 1/8 of the tensor (consecutive candidates on different slices, so
    that none finds its data in cache), then the :data:`_FINALISTS` fastest once on the whole
    tensor. Smaller tensors: every candidate once on the whole tensor, after one warm-up run.
    """
    rank = next(f for m, f in enumerate(factors) if m in modes and f is not None).shape[1]
    plans = candidates(tensor.shape, modes, rank, tensor.dtype)

    def once(plan: Plan, x: torch.Tensor) -> tuple[float, torch.Tensor, list[int]]:
        start = _clock()
        y, labels = run(plan, x, factors[plan.mode])  # type: ignore[arg-type]
        if kind == "natural":
            y = _natural(y, labels, plan.mode)
        return _clock() - start, y, labels

    slices = {m: _slices(tensor, m) for m in allowed_modes(tensor.shape, modes)}
    if all(slices.values()):
        sampled = {}
        for i, plan in enumerate(plans):
            pieces = slices[plan.mode]
            sampled[plan] = once(plan, pieces[i % len(pieces)])[0] * len(pieces)
        plans = sorted(plans, key=sampled.__getitem__)[:_FINALISTS]
    else:
        once(plans[0], tensor)  # warm-up: first-call costs (allocator, BLAS) are nobody's fault
    best: tuple[float, Plan, torch.Tensor, list[int]] | None = None
    for plan in plans:
        t, y, labels = once(plan, tensor)
        if best is None or t < best[0]:
            best = (t, plan, y, labels)
        del y
    _, plan, y, labels = best  # type: ignore[misc]
    _remember(_key(kind, tensor, modes, rank), plan)
    return plan, y, labels


def contract(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor | None], modes: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """Contract one of ``modes`` of ``tensor`` with its factor (``factors[m]``, ``I_m x R``).

    Returns the result and its axis labels (mode numbers, :data:`RANK` for the rank axis); the
    caller contracts the other modes. The mode and formulation are tuned or fixed as the module
    docstring says. Differentiable (through the fixed rule when autograd records).
    """
    rank = next(f for m, f in enumerate(factors) if m in modes and f is not None).shape[1]
    if not should_tune(tensor, [factors[m] for m in modes]):
        plan = fixed_plan(tensor.shape, modes, rank)
        return run(plan, tensor, factors[plan.mode])  # type: ignore[arg-type]
    plan = _lookup(_key("labels", tensor, modes, rank))
    if plan is None:
        _, y, labels = tune(tensor, factors, modes)
        return y, labels
    return run(plan, tensor, factors[plan.mode])  # type: ignore[arg-type]


def mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor | None:
    """``tensor x_mode matrix`` (``matrix``: ``J x I_mode``), contiguous, by the tuned plan; None
    when the fixed rule applies (the caller then uses its own form)."""
    factors: list[torch.Tensor | None] = [None] * tensor.ndim
    factors[mode] = matrix.mT
    if not should_tune(tensor, [matrix]):
        return None
    plan = _lookup(_key("natural", tensor, [mode], matrix.shape[0]))
    if plan is None:
        return tune(tensor, factors, [mode], "natural")[1]
    return _natural(*run(plan, tensor, matrix.mT), mode)
