"""Formulations of the one GEMM that reads a dense tensor, and the fixed rule that picks one.

MTTKRP, the CP-ALS dimension tree and Tucker's mode products spend nearly all their time in one
contraction that reads the dense tensor ``X`` (``I_0 x ... x I_{N-1}``) once: a mode ``m`` is
contracted with a tall, skinny factor ``F`` (``I_m x R``),

    Y[..., r, ...] = sum_i X[..., i, ...] F[i, r]    (2 |X| R flops),

on a free reshape of ``X`` viewed as ``(L, I_m, T)`` (``L``, ``T``: the products of the sizes
before and after ``m``). A :class:`ContractionPlan` fixes

* ``mode``: which mode the GEMM contracts (among those allowed, ``allowed_modes``);
* ``rank_at``: where the rank axis lands among the output axes, i.e. which operand BLAS sees
  transposed and how the output is laid out: for the last mode anywhere (position 0 is
  ``F^T @ X(L, I)^T``, position N-1 is ``X(L, I) @ F``, a position ``p`` in between is a batched
  GEMM over the first ``p`` axes); for the first mode at 0 (``F^T @ X(I, T)``) or N-1
  (``X(I, T)^T @ F``); for a middle mode at ``m`` (``bmm(F^T, X(L, I, T))``) or N-1
  (``bmm(X(L, I, T)^T, F)``);
* ``pad``: ``R``, or ``R`` rounded up to a multiple of 32 or 64 bytes (zero columns appended to
  ``F``; the output is narrowed back, a view): MKL's kernels favour some widths;
* ``col_major``: whether ``F`` is copied row- or column-major (the BLAS transposition flag), or
  used as given (``None``).

None of them copies the tensor: every operand is a view of ``X`` that BLAS reads directly (the
batched forms use ``torch.bmm`` on an expanded view of ``F``, differentiable without the copy
``torch.matmul`` makes of a batched operand that requires grad). All give the same values up to
floating-point round-off (the order of the ``I_m`` products summed differs); one plan gives one
result, bit for bit, on every call and in every process.

**The default rule** (:func:`default_plan`) is a fixed function of the
:class:`ContractionProblem` -- shape, allowed modes, rank, dtype and device (and, documented here,
*not* of the thread count or of any timing). It was read off the timings of every candidate on
186 problems (``benchmarks/bench_gemm.py --explore`` and BENCHMARKS.md, "Autotuning: default rule
vs tuned": 200^3 at R = 1..64 in float64 and float32 with every mode set, plus 60^4,
1000 x 1000 x 8, 400 x 100 x 200, 128^3 and 100 x 120 x 90 at R = 5..32; torch 2.13 + MKL, one
AMD EPYC Zen 5 core). On the 200^3 grid it runs within 2 % of the fastest candidate on geometric
mean (worst 1.26x), on the other shapes within 4 % (worst 1.44x); the previous fixed rule (the
plain form below) was 37 % off (worst 4.3x). A timed tuner itself lands 0-10 % off the best
(it times each candidate once). The rule:

* tensors on other devices than the CPU, complex or half-precision dtypes, and CPU tensors below
  :data:`RULE_MIN_ENTRIES` entries (where a call takes well under a millisecond and a factor copy
  costs as much as it saves) use the plain form: the last allowed mode, else a middle mode with
  batches of at least 32 columns (the widest), else the first; the rank axis where the mode was
  (the last mode: last), ``F`` as given, no padding;
* large float32 / float64 CPU tensors, rank ``R``:

  - float64 ``R > 8``: pad ``R`` to a multiple of 4 (32 bytes; R = 10 -> 12 runs 10-15 % faster);
  - float32, ``R >= 8``, a middle mode allowed with batches of >= 128 columns: ``bmm(F^T, X)``
    on it (rank axis at the mode, ``F`` column-major);
  - float64, 3-way, padded rank 12 or 24, such a middle mode allowed: ``bmm(X^T, F)`` on it
    (rank axis last, ``F`` row-major; MKL's fastest width, 3-12 % ahead of the next form);
  - else the last mode if allowed: ``R = 1`` (3-way or more): a batched GEMV over the first axis
    (``F`` as a row); ``R <= 5``: ``X(L, I) @ F`` with ``F`` column-major (2-4x faster than row-
    major at R = 2 in float32); float32: batched over the first axis with the rank axis second;
    float64: ``F^T @ X(L, I)^T`` (rank axis first; 1.8-2.5x faster than ``X @ F`` at R >= 16);
  - else a middle mode with batches of >= 128 columns, ``bmm(F^T, X)`` (``F`` column-major above
    R = 3);
  - else the first mode if allowed, ``F^T @ X(I, T)`` (one GEMM beats narrow batches);
  - else (a middle mode with narrow batches) ``bmm(X^T, F)`` with the rank axis last and ``F``
    row-major for ``R > 5``, ``bmm(F^T, X)`` below.

A fused or compiled kernel (issue 14: inductor on CPU, Triton on CUDA) enters as another plan the
rule picks for the problems where it has been measured to win; :func:`run` dispatches on the plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = [
    "RANK",
    "RULE_MIN_ENTRIES",
    "ContractionPlan",
    "ContractionProblem",
    "allowed_modes",
    "candidates",
    "default_plan",
    "natural",
    "plain_plan",
    "rank_positions",
    "run",
]

RANK = -1
"""Label of the rank axis in the axis labels returned by :func:`run`."""

RULE_MIN_ENTRIES = 1 << 18
"""Below this many tensor entries the default rule uses the plain form (no factor copy)."""

_MIN_BATCH_COLUMNS = 32  # plain form: a batched GEMM needs batches this wide
_WIDE_BATCH_COLUMNS = 128  # default rule: ... this wide to beat the first mode's single GEMM

Kind = Literal["labels", "natural"]


@dataclass(frozen=True)
class ContractionPlan:
    """One formulation of the tensor-reading GEMM, picked for a :class:`ContractionProblem`.

    Every plan reads the tensor in place (no copy) and gives the same values up to round-off; a
    fixed rule of the problem picks one (bit-identical results in every process), or timing when
    :func:`set_autotune` is on.

    Attributes:
        mode: the mode the GEMM contracts.
        rank_at: the position of the rank axis among the output axes.
        pad: the number of columns the factor is padded to (``>= R``).
        col_major: copy the factor column-major (True), row-major (False), or use it as given
            (None, which also means no padding).

    Example:
        >>> plan = ContractionPlan(mode=2, rank_at=2, pad=8)  # the plain form, last mode
        >>> plan.col_major is None  # the factor used as given
        True
    """

    mode: int
    rank_at: int
    pad: int
    col_major: bool | None = None


@dataclass(frozen=True)
class ContractionProblem:
    """What a plan is chosen for: the key of the default rule and of the autotuning cache.

    Attributes:
        kind: ``"labels"`` (MTTKRP and the CP sweep: any output layout) or ``"natural"``
            (mode products: the rank axis where the mode was, contiguous).
        shape: the tensor's shape.
        modes: the modes the GEMM may contract (those of the requested set at least half as
            large as the largest).
        rank: the factor's number of columns ``R``.
        dtype: the tensor's dtype.
        device: the tensor's device (``"cpu"``, ``"cuda:0"``, ...).
        threads: ``torch.get_num_threads()`` when the problem was posed.

    Example:
        >>> problem = ContractionProblem(
        ...     kind="labels", shape=(200, 200, 200), modes=(0, 1, 2), rank=8,
        ...     dtype=torch.float64, device="cpu", threads=1,
        ... )
        >>> problem.rank, problem.modes
        (8, (0, 1, 2))
    """

    kind: Kind
    shape: tuple[int, ...]
    modes: tuple[int, ...]
    rank: int
    dtype: torch.dtype
    device: str
    threads: int

    @classmethod
    def of(
        cls, kind: Kind, tensor: torch.Tensor, modes: Sequence[int], rank: int
    ) -> ContractionProblem:
        shape = tuple(tensor.shape)
        return cls(
            kind,
            shape,
            tuple(allowed_modes(shape, modes)),
            rank,
            tensor.dtype,
            str(tensor.device),
            torch.get_num_threads(),
        )


def allowed_modes(shape: Sequence[int], modes: Sequence[int]) -> list[int]:
    """The modes of ``modes`` at least half as large as the largest: contracting one of them
    first keeps the intermediate (``|X| R / I_m`` entries) within twice the smallest possible."""
    largest = max(shape[m] for m in modes)
    return [m for m in modes if 2 * shape[m] >= largest]


def _middle_mode(
    shape: Sequence[int], modes: Sequence[int], columns: int = _MIN_BATCH_COLUMNS
) -> int | None:
    """The allowed middle mode with the widest batches, if its batches have >= ``columns``
    columns."""
    n = len(shape)
    mids = [m for m in modes if 0 < m < n - 1 and math.prod(shape[m + 1 :]) >= columns]
    return max(mids, key=lambda m: math.prod(shape[m + 1 :])) if mids else None


def plain_plan(shape: Sequence[int], modes: Sequence[int], rank: int) -> ContractionPlan:
    """The plain form: last allowed mode, else a middle one (batches of >= 32 columns), else the
    first; the rank axis where the mode was; the factor as given."""
    n = len(shape)
    allowed = allowed_modes(shape, modes)
    mid = _middle_mode(shape, allowed)
    m = n - 1 if n - 1 in allowed else mid if mid is not None else _first(allowed)
    return ContractionPlan(m, m, rank, None)


def _first(allowed: Sequence[int]) -> int:
    """Mode 0 if allowed (one GEMM), else the first allowed (a middle mode with narrow batches)."""
    return 0 if 0 in allowed else min(allowed)


def default_plan(problem: ContractionProblem) -> ContractionPlan:
    """The plan the default (deterministic) rule picks; see the module docstring."""
    shape, rank, dtype = problem.shape, problem.rank, problem.dtype
    n = len(shape)
    if (
        not problem.device.startswith("cpu")
        or dtype not in (torch.float32, torch.float64)
        or math.prod(shape) < RULE_MIN_ENTRIES
        or n < 2
    ):
        return plain_plan(shape, problem.modes, rank)
    allowed = problem.modes
    pad = -(-rank // 4) * 4 if (dtype == torch.float64 and rank > 8) else rank
    mid = _middle_mode(shape, allowed, _WIDE_BATCH_COLUMNS)
    if dtype == torch.float32 and rank >= 8 and mid is not None:
        return ContractionPlan(mid, mid, pad, True)
    if dtype == torch.float64 and n == 3 and pad % 12 == 0 and mid is not None:
        # MKL's kernels run bmm(X^T, F) fastest at 12 or 24 columns (R = 9..12, 21..24)
        return ContractionPlan(mid, n - 1, pad, False)
    if n - 1 in allowed:
        last = n - 1
        if rank == 1 and n >= 3:
            return ContractionPlan(last, 1, rank, False)
        if rank <= 5:
            return ContractionPlan(last, last, rank, True)
        return ContractionPlan(last, 1 if dtype == torch.float32 and n >= 3 else 0, pad, True)
    if mid is not None:
        return ContractionPlan(mid, mid, pad, rank > 3)
    first = _first(allowed)
    if first == 0:
        return ContractionPlan(0, 0, pad, True)
    # only a middle mode with narrow batches: rank last (bmm(X^T, F)) unless the rank is small
    if rank > 5:
        return ContractionPlan(first, n - 1, pad, False)
    return ContractionPlan(first, first, pad, True)


def rank_positions(n: int, m: int) -> list[int]:
    """Where the rank axis can land when mode ``m`` of an ``n``-way tensor is contracted by one
    (batched) GEMM on a view of a contiguous tensor."""
    if m == n - 1:
        return list(range(n))
    if m == 0:
        return [0, n - 1]
    return [m, n - 1]


def candidates(problem: ContractionProblem) -> list[ContractionPlan]:
    """Every plan the autotuner times: allowed mode x rank position x padding x factor layout."""
    n, rank = len(problem.shape), problem.rank
    itemsize = torch.empty((), dtype=problem.dtype).element_size()
    steps = (max(1, 32 // itemsize), max(1, 64 // itemsize))
    pads = sorted({rank, *(-(-rank // step) * step for step in steps)})
    return [
        ContractionPlan(m, p, pad, col)
        for m in problem.modes
        for p in rank_positions(n, m)
        for pad in pads
        for col in (False, True)
    ]


def _prepare(factor: torch.Tensor, pad: int, col_major: bool | None) -> torch.Tensor:
    """``factor`` (I x R) as the plan wants it: as given, or copied row-/column-major with
    ``pad - R`` zero columns appended (differentiable: ``copy_`` into a fresh buffer)."""
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


def run(
    plan: ContractionPlan, tensor: torch.Tensor, factor: torch.Tensor
) -> tuple[torch.Tensor, list[int]]:
    """Contract mode ``plan.mode`` of ``tensor`` with ``factor`` (I_m x R) as ``plan`` says.

    Returns the result and its axis labels: the remaining modes in order with :data:`RANK`
    inserted at ``plan.rank_at``. The result is a fresh tensor (a narrowed view of one when the
    plan pads). Differentiable.
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


def natural(y: torch.Tensor, labels: list[int], mode: int) -> torch.Tensor:
    """The result laid out as ``tensor x_mode F^T`` (rank axis where the mode was), contiguous."""
    return y.movedim(labels.index(RANK), mode).contiguous()
