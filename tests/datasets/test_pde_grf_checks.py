"""Argument checks of the Gaussian random field samplers (issue 19: messages pinned)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from factorch.datasets.pde import neumann_grf, periodic_grf

CPU = torch.device("cpu")


def _periodic(**kw: Any) -> torch.Tensor:
    args: dict[str, Any] = dict(dims=2, alpha=2.5, tau=7.0, sigma=1.0, max_modes=4)
    args.update(generator=torch.Generator().manual_seed(0), device=CPU)
    n, res = kw.pop("n", 1), kw.pop("res", 8)
    return periodic_grf(n, res, **{**args, **kw})


def _neumann(**kw: Any) -> torch.Tensor:
    args: dict[str, Any] = dict(alpha=2.0, tau=3.0, max_modes=4)
    args.update(generator=torch.Generator().manual_seed(0), device=CPU)
    n, res = kw.pop("n", 1), kw.pop("res", 8)
    return neumann_grf(n, res, **{**args, **kw})


CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: _periodic(n=0), ValueError, r"periodic_grf: n_samples must be a positive int; got 0"),
    (
        lambda: _periodic(dims=2.0),
        TypeError,
        r"periodic_grf: dims must be a positive int; got float",
    ),
    (
        lambda: _periodic(generator=0),
        TypeError,
        r"periodic_grf: generator must be a torch.Generator \(e.g. torch.Generator\(\)",
    ),
    (
        lambda: _neumann(max_modes=0),
        ValueError,
        r"neumann_grf: max_modes must be a positive int; got 0",
    ),
    (
        lambda: _neumann(res=1),
        ValueError,
        r"neumann_grf: resolution must be at least 2 \(the nodes include both ends\); got 1",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CASES)
def test_boundary_messages(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_valid_calls_still_work() -> None:
    assert _periodic().shape == (1, 8, 8)
    assert _neumann().shape == (1, 8, 8)
