"""Progress reporting for long library calls (:func:`~factorch.nn.compress`).

Off by default in library use. ``progress=True`` draws a tqdm bar on stderr; a callable receives
one :class:`Progress` value after each unit of work (and may draw its own bar or log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tqdm import tqdm

__all__ = ["Progress", "ProgressOption", "Reporter"]

Stage = Literal["allocate", "decompose"]


@dataclass(frozen=True)
class Progress:
    """One step of a long call (e.g. :func:`~factorch.nn.compress` with ``progress=``).

    Attributes:
        stage: what is being done (``"allocate"``: measuring each layer for the rank
            allocation; ``"decompose"``: fitting the factors).
        item: what the step was about (e.g. the layer name).
        done: items of this stage finished, this one included.
        total: items of this stage.
        elapsed_s: seconds since the call began.

    Example:
        >>> steps = []
        >>> model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(),
        ...                             torch.nn.Linear(8, 4))
        >>> _ = factorch.nn.compress(model, layer_ranks={"0": 2, "2": 2}, progress=steps.append)
        >>> [(s.stage, s.item, s.done, s.total) for s in steps]
        [('decompose', '0', 1, 2), ('decompose', '2', 2, 2)]
    """

    stage: Stage
    item: str
    done: int
    total: int
    elapsed_s: float


ProgressOption = bool | Callable[[Progress], object]


class Reporter:
    """Forwards steps to a callback and/or a tqdm bar (one bar per stage); a no-op when off."""

    def __init__(self, progress: object, fn: str) -> None:
        import time

        if not (isinstance(progress, bool) or callable(progress)):
            raise TypeError(
                f"{fn}: progress must be a bool or a callable taking a Progress; "
                f"got {type(progress).__name__}."
            )
        self._callback = None if isinstance(progress, bool) else progress
        self._bar_on = progress is True
        self._bar: tqdm[Any] | None = None
        self._stage: str | None = None
        self._start = time.perf_counter()
        self._fn = fn

    def step(self, stage: Stage, item: str, done: int, total: int) -> None:
        import time

        if self._bar_on:
            self._advance_bar(stage, item, done, total)
        if self._callback is not None:
            self._callback(Progress(stage, item, done, total, time.perf_counter() - self._start))

    def _advance_bar(self, stage: str, item: str, done: int, total: int) -> None:
        bar = self._bar
        if bar is None or self._stage != stage:
            self.close()
            bar = tqdm(total=total, desc=f"{self._fn}: {stage}", unit="layer", leave=False)
            self._bar, self._stage = bar, stage
        bar.set_postfix_str(item, refresh=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._stage = None
