"""Fuzz the small public helpers issue 19 gave argument checks: any value in any argument gives
a result or a clear error (``TypeError`` / ``ValueError`` naming the function, one line)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import factorch.nn as fnn
from factorch.nn import formats, spectral
from factorch.train import gradients

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.tuples(st.integers(-1, 4), st.integers(-1, 4)),
    st.sampled_from([torch.ones(2), torch.arange(3), torch.nn.Linear(2, 2), torch.float64]),
)

ENTRIES: dict[str, Callable[[Any], object]] = {
    "balanced_factorization": lambda v: fnn.balanced_factorization(v, 2),
    "TensorizedShape": lambda v: fnn.TensorizedShape(v, (2,)),
    "tensor_dropout": lambda v: fnn.tensor_dropout(
        fnn.FactorizedLinear(4, 4, format="cp", rank=2), v
    ),
    "ordered_layers": lambda v: fnn.ordered_layers(v),
    "LowRankConv2d": lambda v: fnn.LowRankConv2d(2, 3, v),
    "dense_init_std": lambda v: formats.dense_init_std(v),
    "keep_mask": lambda v: formats.keep_mask(3, v, torch.zeros(1)),
    "known_size": lambda v: formats.known_size(v),
    "unregister_format": lambda v: formats.unregister_format(v) if v != "cp" else None,
    "count_real": lambda v: spectral.count_real(v),
    "kept_frequencies": lambda v: spectral.kept_frequencies(v, last=False),
    "gradients": lambda v: gradients(torch.ones(2, 4), v, periodic=False),
}


@pytest.mark.parametrize("name", sorted(ENTRIES))
@settings(max_examples=40, deadline=None)
@given(value=JUNK)
def test_any_value_gives_a_result_or_a_clear_error(name: str, value: Any) -> None:
    try:
        ENTRIES[name](value)
    except (TypeError, ValueError) as err:
        msg = str(err)
        assert msg.startswith(f"{name}:"), f"{value!r}: error does not name {name}: {msg}"
        assert "\n" not in msg.strip(), f"{value!r}: unclear message: {msg}"
