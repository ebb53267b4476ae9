"""Wall-clock timing shared by every iterative algorithm (internal)."""

from __future__ import annotations

import time

__all__ = ["Stopwatch"]


class Stopwatch:
    """Wall-clock timer: ``sw = Stopwatch(); ...; sw.elapsed``."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start
