"""``factorch.distributed.inject_latency`` in one process: off by default, the delay it asks for
per collective, restored on exit, and its argument errors. (Its effect on a 2-rank job, the
delays inside the collectives and the unchanged results, is checked by
``test_distributed_solvers.py``.)"""

from __future__ import annotations

import math

import pytest

import factorch.distributed as fd
from factorch.distributed import _latency


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays requested from the clock (recorded instead of slept)."""
    got: list[float] = []
    monkeypatch.setattr(_latency, "_sleep", got.append)
    return got


def test_off_by_default(slept: list[float]) -> None:
    assert _latency._ACTIVE is None
    assert _latency.pause(1e6, 4) == 0.0
    assert slept == []


def test_delay_is_alpha_plus_bytes_over_bandwidth(slept: list[float]) -> None:
    with fd.inject_latency(0.004, bandwidth=2e6):
        assert _latency.pause(1000, 2) == pytest.approx(0.0045)
        assert _latency.pause(0, 3) == pytest.approx(0.004)
        assert _latency.pause(5000, 1) == 0.0  # one rank: no network in between
    assert slept == pytest.approx([0.0045, 0.004])
    assert _latency._ACTIVE is None


def test_bandwidth_alone_and_nesting(slept: list[float]) -> None:
    with fd.inject_latency(0, bandwidth=1e3):
        with fd.inject_latency(0.01):
            _latency.pause(500, 2)
        _latency.pause(500, 2)
    _latency.pause(500, 2)
    assert slept == pytest.approx([0.01, 0.5])


def test_restored_after_an_error(slept: list[float]) -> None:
    with pytest.raises(KeyError), fd.inject_latency(0.1):
        raise KeyError("boom")
    assert _latency._ACTIVE is None


def test_zero_is_off(slept: list[float]) -> None:
    with fd.inject_latency(0.0):
        assert _latency._ACTIVE is None
        _latency.pause(100, 2)
    assert slept == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -1e-3}, r"^distributed\.inject_latency: alpha must be a number of seconds in "),
        ({"alpha": math.nan}, r"alpha must be a number of seconds in \[0, 3600\]; got nan\.$"),
        ({"alpha": math.inf}, r"alpha must be a number of seconds in \[0, 3600\]; got inf\.$"),
        ({"alpha": 3601}, r"alpha must be a number of seconds in \[0, 3600\]; got 3601\.$"),
        ({"alpha": True}, r"alpha must be a number of seconds in \[0, 3600\]; got True\.$"),
        ({"alpha": "1ms"}, r"alpha must be a number of seconds in \[0, 3600\]; got '1ms'\.$"),
        ({"alpha": 0.0, "bandwidth": 0}, r"bandwidth must be a number of bytes per second >= 1; "),
        ({"alpha": 0.0, "bandwidth": 0.5}, r"bytes per second >= 1; got 0\.5\.$"),
        ({"alpha": 0.0, "bandwidth": -5.0}, r"bytes per second >= 1; got -5\.0\.$"),
        ({"alpha": 0.0, "bandwidth": math.nan}, r"bytes per second >= 1; got nan\.$"),
        ({"alpha": 0.0, "bandwidth": None}, r"bytes per second >= 1; got None\.$"),
    ],
)
def test_bad_arguments_fail_at_the_call(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fd.inject_latency(**kwargs)  # type: ignore[arg-type]
