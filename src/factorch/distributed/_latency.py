"""Injected latency: a test and benchmark hook that makes the local loopback behave like a
slower network.

Inside ``with inject_latency(alpha, bandwidth=beta):`` every collective of
``factorch.distributed`` that involves more than one rank first sleeps, on each rank,
``alpha + nbytes / beta`` seconds, ``nbytes`` being the bytes that rank sends in that call (the
count of :class:`~factorch.distributed._comm.CommStats`). Off by default and process-wide (one
setting for every thread); it changes no computed value, only when the collectives start.
This is how the benchmark's cost model is checked against runs with a known extra latency
between local processes (``benchmarks/bench_distributed.py --latency``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

__all__ = ["inject_latency"]


@dataclass(frozen=True)
class _Delay:
    alpha_s: float
    bytes_per_s: float

    def seconds(self, nbytes: float) -> float:
        return self.alpha_s + nbytes / self.bytes_per_s  # bytes_per_s may be inf: adds 0


_ACTIVE: _Delay | None = None
_MAX_ALPHA = 3600.0  # an hour per collective: beyond any network, and keeps every delay finite
_sleep = time.sleep  # replaced by the tests to record the requested delays


def _number(fn: str, name: str, value: object, low: float, high: float, want: str) -> float:
    v = math.nan
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        with contextlib.suppress(OverflowError):  # an int beyond float's range
            v = float(value)
    if not low <= v <= high:
        raise ValueError(f"{fn}: {name} must be {want}; got {value!r}.")
    return v


def inject_latency(alpha: float, *, bandwidth: float = math.inf) -> AbstractContextManager[None]:
    """Delay every multi-rank collective of ``factorch.distributed`` by ``alpha`` seconds plus
    the bytes the rank sends divided by ``bandwidth`` (for tests and benchmarks).

    Each rank sleeps before the call, so a collective starts at least that much later on every
    rank: the slowdown a network with latency ``alpha`` and per-rank bandwidth ``bandwidth``
    would add. Off by default; process-wide while the context is open (the previous setting is
    restored on exit); computed values are unchanged. Every rank of a job must enter it, with
    the same values, for the delays to model a network (it is not communicated). The seconds
    injected are reported in the results' ``extras["comm_injected_seconds"]``.

    Args:
        alpha: seconds added to every collective, in ``[0, 3600]``.
        bandwidth: bytes per second, ``>= 1`` (default ``inf``: no per-byte delay).

    Returns:
        A context manager (the arguments are checked at once, not on entry).

    Raises:
        ValueError: ``alpha`` is not a number in ``[0, 3600]``, or ``bandwidth`` not a number
            ``>= 1``.

    Example:
        >>> import factorch.distributed as fd
        >>> with fd.inject_latency(0.005, bandwidth=1e8):
        ...     pass  # fd.cp(...) here: each collective waits 5 ms + bytes / 100 MB/s
    """
    fn = "distributed.inject_latency"
    delay = _Delay(
        _number(fn, "alpha", alpha, 0.0, _MAX_ALPHA, "a number of seconds in [0, 3600]"),
        _number(fn, "bandwidth", bandwidth, 1.0, math.inf, "a number of bytes per second >= 1"),
    )
    return _scope(None if delay.alpha_s == 0 and math.isinf(delay.bytes_per_s) else delay)


@contextmanager
def _scope(delay: _Delay | None) -> Iterator[None]:
    global _ACTIVE
    previous = _ACTIVE
    _ACTIVE = delay
    try:
        yield
    finally:
        _ACTIVE = previous


def pause(nbytes: float, group_size: int) -> float:
    """Sleep the injected delay of one collective (none for a single-rank group); return it."""
    if _ACTIVE is None or group_size <= 1:
        return 0.0
    seconds = _ACTIVE.seconds(nbytes)
    if seconds > 0:
        _sleep(seconds)
    return seconds
