"""Exact power-of-two rescaling (factorch.algebra._scaling) at the ends of every dtype's range."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.algebra._scaling import exponent_of, times_power_of_two


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (3e38, torch.float32),  # 2^128 is not a float32 number
        (1e-40, torch.float32),  # subnormal
        (60000.0, torch.float16),  # 2^16 is not a float16 number
        (1e-7, torch.float16),  # subnormal
        (1e300, torch.float64),
        (3e38, torch.bfloat16),
    ],
)
def test_round_trip_is_exact_at_the_ends_of_the_range(value, dtype):
    x = torch.tensor([value, -value / 3, 0.0], dtype=dtype)
    e = exponent_of(x)
    assert math.frexp(float(x.abs().max()))[1] == e
    scaled = times_power_of_two(x, -e)
    assert 0.5 <= float(scaled.abs().max()) < 1.0
    assert torch.equal(times_power_of_two(scaled, e), x)


def test_degenerate_inputs_have_exponent_zero():
    assert exponent_of(torch.zeros(3)) == 0
    assert exponent_of(torch.empty(0)) == 0
    assert exponent_of(torch.tensor([1.0, float("inf")])) == 0
    x = torch.ones(2)
    assert times_power_of_two(x, 0) is x


def test_complex_tensors_scale_both_parts():
    z = torch.tensor([3e30 + 4e30j], dtype=torch.complex64)
    e = exponent_of(z)
    assert torch.equal(times_power_of_two(times_power_of_two(z, -e), e), z)
