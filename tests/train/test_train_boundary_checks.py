"""Argument checks of ``NormalizedOperator`` and ``gradients`` (issue 19: messages pinned)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from factorch.train import NormalizedOperator, gradients

ONE = torch.ones(1, 1, 1)

CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (
        lambda: NormalizedOperator(lambda x: x, ONE, ONE, ONE, ONE),
        TypeError,
        r"NormalizedOperator: operator must be a torch.nn.Module; got function",
    ),
    (
        lambda: NormalizedOperator(torch.nn.Identity(), ONE, ONE.long(), ONE, ONE),
        TypeError,
        r"NormalizedOperator: in_std must be a floating-point tensor; got a torch.int64 tensor",
    ),
    (
        lambda: NormalizedOperator(torch.nn.Identity(), ONE, torch.ones(2, 1, 1), ONE, ONE),
        ValueError,
        r"NormalizedOperator: in_mean has shape \(1, 1, 1\) but in_std has shape \(2, 1, 1\)",
    ),
    (
        lambda: NormalizedOperator(torch.nn.Identity(), ONE, ONE, ONE, 0 * ONE),
        ValueError,
        r"NormalizedOperator: out_std must be positive and finite in every channel",
    ),
    (
        lambda: gradients(torch.arange(4), 1, periodic=True),
        TypeError,
        r"gradients: u must be a real floating-point tensor; got a torch.int64 tensor",
    ),
    (
        lambda: gradients(torch.ones(4), 1.0, periodic=True),
        TypeError,
        r"gradients: dims must be an int; got float",
    ),
    (
        lambda: gradients(torch.ones(2, 4), 3, periodic=False),
        ValueError,
        r"gradients: dims must be in 1\.\.2 \(u has 2 dimensions\); got 3",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CASES)
def test_boundary_messages(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
