"""Opt-in autotuning of the tensor-reading GEMM: pick the fastest formulation by timing it.

By default factorch never times anything: :func:`factorch.algebra._plans.default_plan` picks the
formulation of every tensor-reading GEMM (MTTKRP, the CP-ALS sweep, Tucker's mode products) by a
fixed rule, so results are bit-identical across runs and processes. Like
``torch.backends.cudnn.benchmark``, timing-based choice is a switch a user turns on
(:func:`set_autotune` or the :func:`autotune` context manager); it is never used while
``torch.are_deterministic_algorithms_enabled()``.

When on, the first call with a :class:`~factorch.algebra._plans.ContractionProblem` (shape,
allowed modes, rank, dtype, device, thread count) that qualifies -- a contiguous CPU tensor of at
least :attr:`Autotuner.min_entries` entries, outside ``torch.compile`` and without autograd
recording the call -- times the candidate plans (:func:`~factorch.algebra._plans.candidates`,
18-30 for a 3-way tensor) with a monotonic clock on the real operands: for a large tensor each
once on a different slice of about 1/8 of it (cheap, and no candidate finds its data in cache),
then the 3 fastest once on the whole tensor; for a smaller one each once on the whole tensor
after a warm-up run. The fastest is cached (bounded, least recently used evicted) and that call
returns the output of the winner's timed run, so it gives bit for bit what every later call with
the problem gives. Tuning costs about 7 GEMMs per problem (200^3 float64, R = 10: ~60 ms). The
winner depends on timings, so two processes may pick different plans and differ at round-off
level -- the reason it is off by default.

All tuner state lives in one :class:`Autotuner` instance (:data:`TUNER`) with one lock: concurrent
calls with one problem run exactly one tuning (the others wait for it and then use its plan).
:func:`autotune_cache` returns a read-only snapshot; :func:`clear_autotune_cache` empties it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch

from ._plans import ContractionPlan, ContractionProblem, Kind, candidates, natural, run

__all__ = [
    "TUNER",
    "Autotuner",
    "autotune",
    "autotune_cache",
    "clear_autotune_cache",
    "is_autotune_enabled",
    "set_autotune",
]

Outcome = tuple[torch.Tensor, list[int]]


class Autotuner:
    """The switch, the cache and the lock of the autotuner (one instance per process:
    :data:`TUNER`; tests may build their own).

    Args:
        capacity: number of problems cached (least recently used evicted).
        min_entries: tensors with fewer entries are never timed (a call takes well under a
            millisecond there and tuning cannot pay off).
        clock: monotonic seconds (``time.perf_counter``; tests substitute a fake clock).
    """

    samples = 8  # a large tensor is timed on this many slices ...
    min_samples = 4  # ... when at least this many slices of ``min_entries`` entries fit
    finalists = 3  # ... then this many of the fastest plans on the whole tensor

    def __init__(
        self,
        *,
        capacity: int = 256,
        min_entries: int = 1 << 20,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.capacity = capacity
        self.min_entries = min_entries
        self.clock = clock
        self.tunings = 0  # number of tunings run (for inspection and tests)
        self._lock = threading.Lock()
        self._enabled = False
        self._plans: OrderedDict[ContractionProblem, ContractionPlan] = OrderedDict()
        self._pending: dict[ContractionProblem, threading.Event] = {}

    # --- the switch and the cache -----------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._enabled

    def set_enabled(self, enabled: bool) -> bool:
        """Turn timing on or off; returns the previous setting."""
        with self._lock:
            previous, self._enabled = self._enabled, bool(enabled)
        return previous

    def cache(self) -> Mapping[ContractionProblem, ContractionPlan]:
        """A read-only snapshot of the tuned plans, least recently used first."""
        with self._lock:
            return types.MappingProxyType(dict(self._plans))

    def clear(self) -> None:
        """Forget every tuned plan (the next qualifying call with each problem tunes again)."""
        with self._lock:
            self._plans.clear()

    def applies(self, tensor: torch.Tensor, factors: Sequence[torch.Tensor | None]) -> bool:
        """Whether a call may be timed: on, not in deterministic mode, a large contiguous CPU
        tensor, not compiling, autograd not recording."""
        if not self._enabled or torch.are_deterministic_algorithms_enabled():
            return False
        if torch.compiler.is_compiling():
            return False
        if tensor.device.type != "cpu" or tensor.numel() < self.min_entries:
            return False
        if not tensor.is_contiguous():
            return False
        return not (
            torch.is_grad_enabled()
            and (tensor.requires_grad or any(f is not None and f.requires_grad for f in factors))
        )

    # --- choosing -----------------------------------------------------------------------------
    def lookup(
        self,
        problem: ContractionProblem,
        tensor: torch.Tensor,
        factors: Sequence[torch.Tensor | None],
    ) -> tuple[ContractionPlan | None, Outcome | None]:
        """The cached plan for ``problem``; or, for the first caller, tune and return the plan
        with the output of its timed run; ``(None, None)`` when a tuning by another thread failed.

        Exactly one tuning runs per problem: a concurrent caller waits for it.
        """
        with self._lock:
            plan = self._plans.get(problem)
            if plan is not None:
                self._plans.move_to_end(problem)
                return plan, None
            event = self._pending.get(problem)
            owner = event is None
            if event is None:
                event = self._pending[problem] = threading.Event()
        if not owner:
            event.wait()
            with self._lock:
                return self._plans.get(problem), None
        try:
            plan, outcome = self.tune(problem, tensor, factors)
            with self._lock:
                self._plans[problem] = plan
                while len(self._plans) > self.capacity:
                    self._plans.popitem(last=False)
                self.tunings += 1
            return plan, outcome
        finally:
            with self._lock:
                del self._pending[problem]
            event.set()

    def tune(
        self,
        problem: ContractionProblem,
        tensor: torch.Tensor,
        factors: Sequence[torch.Tensor | None],
    ) -> tuple[ContractionPlan, Outcome]:
        """Time the candidates; return the fastest and the output of its timed run (laid out by
        :func:`~factorch.algebra._plans.natural` for ``kind="natural"``). See the module
        docstring for the procedure."""
        plans = candidates(problem)

        def once(plan: ContractionPlan, x: torch.Tensor) -> tuple[float, Outcome]:
            factor = factors[plan.mode]
            if factor is None:  # pragma: no cover - callers give a factor for every mode
                raise ValueError(f"autotune: no factor for mode {plan.mode}.")
            start = self.clock()
            y, labels = run(plan, x, factor)
            if problem.kind == "natural":
                y = natural(y, labels, plan.mode)
            return self.clock() - start, (y, labels)

        slices = {m: self._slices(tensor, m) for m in problem.modes}
        if all(slices.values()):
            sampled = {}
            for i, plan in enumerate(plans):
                pieces = slices[plan.mode]
                sampled[plan] = once(plan, pieces[i % len(pieces)])[0] * len(pieces)
            plans = sorted(plans, key=sampled.__getitem__)[: self.finalists]
        else:
            once(plans[0], tensor)  # warm-up: first-call costs (allocator, BLAS) are nobody's
        best: tuple[float, ContractionPlan, Outcome] | None = None
        for plan in plans:
            elapsed, outcome = once(plan, tensor)
            if best is None or elapsed < best[0]:
                best = (elapsed, plan, outcome)
            del outcome
        if best is None:  # pragma: no cover - there is always at least one candidate
            raise RuntimeError("autotune: no candidate plan.")
        return best[1], best[2]

    def _slices(self, tensor: torch.Tensor, mode: int) -> list[torch.Tensor]:
        """Up to :attr:`samples` disjoint slices of ``tensor`` along an axis other than ``mode``
        (axis 1 for mode 0, else axis 0; the plans' views stay copy-free), each of at least
        :attr:`min_entries` entries; empty when fewer than :attr:`min_samples` fit."""
        axis = 1 if mode == 0 else 0
        size = tensor.shape[axis]
        count = min(self.samples, size, tensor.numel() // self.min_entries)
        if count < self.min_samples:
            return []
        step = size // count
        return [tensor.narrow(axis, i * step, step) for i in range(count)]


TUNER = Autotuner()
"""The process's autotuner (off by default)."""


def set_autotune(enabled: bool) -> None:
    """Turn timing-based choice of the tensor-reading GEMM's formulation on or off.

    Off by default: a fixed rule picks the formulation and results are bit-identical across runs
    and processes. On (like ``torch.backends.cudnn.benchmark``), the first qualifying call per
    problem (a contiguous CPU tensor of at least 2^20 entries, autograd not recording, not under
    ``torch.compile``) times the candidate formulations and caches the fastest for the rest of
    the process; results may then differ between processes at round-off level. Ignored while
    ``torch.are_deterministic_algorithms_enabled()``. Process-wide (all threads).

    Args:
        enabled: whether to tune.

    Raises:
        TypeError: ``enabled`` is not a bool.

    Example:
        >>> set_autotune(True)
        >>> is_autotune_enabled()
        True
        >>> set_autotune(False)
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: enabled must be a bool; got {type(enabled).__name__}.")
    TUNER.set_enabled(enabled)


def is_autotune_enabled() -> bool:
    """Whether autotuning is switched on (see :func:`set_autotune`).

    Returns:
        True while timing picks the GEMM's formulation, False under the fixed rule (default).

    Example:
        >>> is_autotune_enabled()
        False
    """
    return TUNER.enabled


@contextlib.contextmanager
def autotune(enabled: bool = True) -> Iterator[None]:
    """Context manager: autotuning on (or off) inside the block, the previous setting restored
    on exit. Process-wide, like :func:`set_autotune`.

    Args:
        enabled: whether to tune inside the block.

    Yields:
        Nothing (``None``); the setting holds until the block exits, even by an exception.

    Raises:
        TypeError: ``enabled`` is not a bool.

    Example:
        >>> with autotune():
        ...     is_autotune_enabled()
        True
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"autotune: enabled must be a bool; got {type(enabled).__name__}.")
    previous = TUNER.set_enabled(enabled)
    try:
        yield
    finally:
        TUNER.set_enabled(previous)


def autotune_cache() -> Mapping[ContractionProblem, ContractionPlan]:
    """A read-only snapshot of the tuned plans: problem (shape, allowed modes, rank, dtype,
    device, threads) -> plan, least recently used first.

    Returns:
        A mapping from :class:`ContractionProblem` to the :class:`ContractionPlan` timed
        fastest for it; later tuning does not change it.

    Example:
        >>> clear_autotune_cache()
        >>> len(autotune_cache())
        0
    """
    return TUNER.cache()


def clear_autotune_cache() -> None:
    """Forget every tuned plan (the next qualifying call per problem tunes again).

    Example:
        >>> clear_autotune_cache()
        >>> dict(autotune_cache())
        {}
    """
    TUNER.clear()


def choose(
    kind: Kind,
    tensor: torch.Tensor,
    factors: Sequence[torch.Tensor | None],
    modes: Sequence[int],
    rank: int,
) -> tuple[ContractionPlan | None, Outcome | None]:
    """The tuned plan for this call, with the output when this call tuned; ``(None, None)``
    when the tuner does not apply (the caller uses the default rule)."""
    if not TUNER.applies(tensor, [factors[m] for m in modes]):
        return None, None
    return TUNER.lookup(ContractionProblem.of(kind, tensor, modes, rank), tensor, factors)
