"""The shared boundary helpers: array-like conversion, integral checks and numerical guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch._checks import as_index, as_tensor, check_generator, check_positive_int
from factorch._numerics import (
    check_memory,
    format_bytes,
    no_autocast,
    power_of_two_scale,
    stable_norm,
    upcast,
    working_dtype,
)


def test_as_tensor_keeps_torch_tensors():
    x = torch.ones(3)
    assert as_tensor(x, "f") is x


def test_as_tensor_converts_numpy_and_lists_with_numpy_dtypes():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = as_tensor(a, "f")
    assert t.dtype == torch.float64 and t.shape == (2, 3)
    t[0, 0] = 7.0  # shares memory with the array: no copy
    assert a[0, 0] == 7.0
    assert as_tensor([[1.0, 2.0]], "f").dtype == torch.float64
    assert as_tensor(np.ones((2, 2), dtype=np.float32)[:, ::-1], "f").is_contiguous()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("abc", "f: x must be a torch.Tensor or a numpy array; got str"),
        (None, "f: x must be a torch.Tensor or a numpy array; got NoneType"),
        ([[1.0], [2.0, 3.0]], "got list that numpy cannot convert"),
        (np.array(["a", "b"]), "numeric numpy array; got ndarray with numpy dtype <U1"),
    ],
)
def test_as_tensor_refuses_non_numeric(value, match):
    with pytest.raises(TypeError, match=match):
        as_tensor(value, "f", "x")


def test_as_index_accepts_integrals_and_refuses_bools():
    assert as_index(np.int64(4), "f", "rank") == 4 and type(as_index(np.int32(2), "f", "r")) is int
    assert as_index(torch.tensor(3), "f", "rank") == 3
    with pytest.raises(TypeError, match="f: rank must be an int; got bool"):
        as_index(True, "f", "rank")
    with pytest.raises(TypeError, match="f: rank must be an int; got float"):
        as_index(2.0, "f", "rank")
    with pytest.raises(TypeError, match="f: rank must be an int; got a tensor"):
        as_index(torch.tensor(2.0), "f", "rank")


def test_check_positive_int_accepts_numpy_ints():
    assert check_positive_int(np.int64(4), "cp", "rank") == 4
    with pytest.raises(ValueError, match="cp: rank must be a positive int; got 0"):
        check_positive_int(np.int64(0), "cp", "rank")
    with pytest.raises(TypeError, match="cp: rank must be a positive int; got str"):
        check_positive_int("3", "cp", "rank")


def test_check_generator():
    g = torch.Generator()
    assert check_generator(g, "f") is g and check_generator(None, "f") is None
    with pytest.raises(TypeError, match=r"f: generator must be a torch.Generator or None; got int"):
        check_generator(0, "f")


def test_no_autocast_restores_full_precision():
    @no_autocast
    def matmul(a):
        return a @ a

    a = torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
        assert matmul(a).dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")  # restored on exit


def test_working_dtype_and_upcast():
    assert working_dtype(torch.bfloat16) == torch.float32
    assert working_dtype(torch.float16) == torch.float32
    assert working_dtype(torch.float64) == torch.float64
    assert upcast(torch.ones(2, dtype=torch.float16)).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_stable_norm_is_scale_free(dtype, scale):
    x = torch.full((100,), scale, dtype=dtype)
    # float32 squares of 1e-30 underflow and of 1e30 overflow in torch's own norm.
    assert math.isclose(stable_norm(x), 10 * float(torch.tensor(scale, dtype=dtype)), rel_tol=1e-6)


def test_power_of_two_scale_is_exact():
    x = torch.tensor([3e-30, -5e-31], dtype=torch.float32)
    s = power_of_two_scale(x)
    assert 0.5 <= float((x / s).abs().max()) < 1.0
    assert torch.equal((x / s) * s, x)
    assert power_of_two_scale(torch.zeros(3)) == 1.0


def test_check_memory_refuses_impossible_requests():
    check_memory(1000, torch.float64, "cpu", "cp", "the factor matrices")
    msg = r"cp: the factor matrices needs about 7105\.4 PiB of memory, more than the"
    with pytest.raises(ValueError, match=msg):
        check_memory(10**18, torch.float64, "cpu", "cp", "the factor matrices")
    assert format_bytes(1536) == "1.5 KiB"
