"""Argument checks of the public ``factorch.nn`` helpers (issue 19: each message pinned).

A wrong *type* is a ``TypeError`` that says what to pass; a value out of range a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import factorch.nn as fnn
from factorch.nn import formats, spectral

CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    # issue 19's inconsistencies: wrong types gave ValueError or a raw error
    (lambda: fnn.balanced_factorization("a", 2), TypeError, r"n must be a positive int; got str"),
    (lambda: fnn.balanced_factorization(0, 2), ValueError, r"n must be a positive int; got 0"),
    (
        lambda: fnn.TensorizedShape((4.5,), (2,)),
        TypeError,
        r"TensorizedShape: out_factors must contain positive ints; got float 4\.5 .*pass ints",
    ),
    (
        lambda: fnn.TensorizedShape((0,), (2,)),
        ValueError,
        r"TensorizedShape: out_factors must contain positive ints; got \(0,\)",
    ),
    (
        lambda: fnn.tensor_dropout(torch.nn.Linear(2, 2), "a"),
        TypeError,
        r"tensor_dropout: p must be a float probability in \[0, 1\); got str 'a'",
    ),
    (
        lambda: fnn.tensor_dropout("model", 0.1),
        TypeError,
        r"tensor_dropout: module must be a torch.nn.Module; got str",
    ),
    (
        lambda: fnn.LowRankConv2d(3, 4, 1.5),
        TypeError,
        r"LowRankConv2d: kernel_size must be an int >= 1 or 2 such ints; got float 1\.5",
    ),
    (
        lambda: fnn.LowRankConv2d(3, "4", 3),
        TypeError,
        r"LowRankConv2d: out_channels must be a positive int; got str",
    ),
    (
        lambda: fnn.FactorizedConv2d(3, 4, (3, "3"), format="cp", rank=2),
        TypeError,
        r"FactorizedConv2d: kernel_size must be an int >= 1 or 2 such ints",
    ),
    (
        lambda: fnn.ordered_layers({"weight": torch.ones(1)}),
        TypeError,
        r"ordered_layers: model must be a torch.nn.Module; got dict \(pass the model itself",
    ),
    # the format building blocks
    (
        lambda: formats.chain_contract([]),
        ValueError,
        r"chain_contract: needs at least one core",
    ),
    (
        lambda: formats.chain_contract([torch.ones(1, 2)]),
        ValueError,
        r"chain_contract: core 0 must be 3-way",
    ),
    (
        lambda: formats.chain_contract([torch.ones(1, 2, 3), torch.ones(2, 2, 1)]),
        ValueError,
        r"chain_contract: core 1 starts with rank 2 but core 0 ends with rank 3",
    ),
    (
        lambda: formats.dense_init_std(0),
        ValueError,
        r"dense_init_std: fan_in must be at least 1; got 0",
    ),
    (
        lambda: formats.gaussian((2,), None, torch.int64),
        TypeError,
        r"gaussian: dtype must be a floating or complex torch.dtype",
    ),
    (
        lambda: formats.orthonormal(0, 2, None, torch.float64),
        ValueError,
        r"orthonormal: rows and cols must be at least 1; got 0, 2",
    ),
    (
        lambda: formats.orthonormal(3, 2, None, torch.int32),
        TypeError,
        r"orthonormal: dtype must be a floating or complex torch.dtype",
    ),
    (
        lambda: formats.keep_mask(0, 0.5, torch.zeros(1)),
        ValueError,
        r"keep_mask: n must be at least 1; got 0",
    ),
    (
        lambda: formats.keep_mask(3, 1.5, torch.zeros(1)),
        ValueError,
        r"keep_mask: the drop probability p must be in \[0, 1\]; got 1\.5",
    ),
    (
        lambda: formats.known_size(2.0),
        TypeError,
        r"known_size: size must be an int or a torch.SymInt; got float",
    ),
    (
        lambda: formats.row_digits(torch.tensor([0.5]), (2, 2)),
        TypeError,
        r"row_digits: idx must be an integer tensor; got a torch.float32 tensor",
    ),
    (
        lambda: formats.row_digits(torch.tensor([0]), (2, 0)),
        ValueError,
        r"row_digits: every factor must be at least 1; got \(2, 0\)",
    ),
    (
        lambda: formats.unregister_format(None),
        TypeError,
        r"unregister_format: name must be a str; got NoneType",
    ),
    # spectral helpers
    (
        lambda: spectral.count_real([torch.ones(2)]),
        TypeError,
        r"count_real: module must be a torch.nn.Module; got list",
    ),
    (
        lambda: spectral.kept_frequencies(2.0, last=True),
        TypeError,
        r"kept_frequencies: m must be an int; got float",
    ),
    (
        lambda: spectral.kept_frequencies(0, last=False),
        ValueError,
        r"kept_frequencies: m must be at least 1; got 0",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CASES)
def test_boundary_messages(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_valid_calls_still_work() -> None:
    assert fnn.balanced_factorization(12, 2) == (4, 3)
    assert formats.known_size(5) == 5
    assert formats.keep_mask(3, 1.0, torch.zeros(1)).sum() > 0  # p = 1 keeps one entry
    assert formats.chain_contract([torch.ones(1, 2, 1)]).shape == (1, 2, 1)
    assert fnn.LowRankConv2d(3, 4, 3).rank == 4


def test_type_errors_of_the_building_blocks() -> None:
    with pytest.raises(TypeError, match=r"dense_init_std: fan_in must be an int; got float"):
        formats.dense_init_std(2.5)
    with pytest.raises(TypeError, match=r"keep_mask: p must be a float in \[0, 1\]; got NoneType"):
        formats.keep_mask(3, None, torch.zeros(1))
    with pytest.raises(TypeError, match=r"keep_mask: n must be an int; got str"):
        formats.keep_mask("3", 0.5, torch.zeros(1))
