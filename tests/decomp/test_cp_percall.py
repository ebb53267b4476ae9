"""The fixed-cost shortcuts of a CP call (issue 14): same answers and errors as the long way."""

from __future__ import annotations

import math

import pytest
import torch

from factorch._checks import check_finite
from factorch.decomp import cp
from factorch.decomp._cp import _SURELY_FITS, check_cp_memory
from factorch.decomp._cp_sweep import working_set
from factorch.decomp._scale import finite_peak, peak


@pytest.mark.parametrize(
    ("shape", "rank"), [((10, 10, 10), 3), ((1, 1), 1), ((60, 2, 7, 3), 40), ((100, 100), 700)]
)
def test_memory_shortcut_bound_covers_the_working_set(shape: tuple[int, ...], rank: int) -> None:
    total = math.prod(shape)
    bound = total * (6 * rank + 12) + sum(shape) * rank + (len(shape) + 3) * rank * rank
    assert working_set(shape, rank) + total <= bound


def test_memory_check_still_refuses_an_impossible_rank() -> None:
    x = torch.zeros(1, dtype=torch.float64).expand(1000, 1000, 1000)  # no storage
    with pytest.raises(ValueError, match="needs about .* of memory"):
        check_cp_memory(x, 10**7, "cp")
    check_cp_memory(torch.zeros(10, 10, 10), 3, "cp")  # below _SURELY_FITS: no reading
    assert _SURELY_FITS == 1 << 24


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.complex64])
def test_finite_peak_is_the_peak(dtype: torch.dtype) -> None:
    x = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert finite_peak(x, "cp") == float(x.abs().max()) == peak(x)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.complex128])
def test_finite_peak_refuses_as_check_finite(bad: float, dtype: torch.dtype) -> None:
    x = torch.ones(3, 4, dtype=dtype)
    x[1, 2] = bad
    x[2, 0] = bad
    with pytest.raises(ValueError) as want:
        check_finite(x, "cp", "tensor")
    with pytest.raises(ValueError, match=r"cp: tensor contains 2 NaN or Inf entries") as got:
        finite_peak(x, "cp", "tensor")
    assert str(got.value) == str(want.value)


def test_peak_nan_and_grad() -> None:
    x = torch.tensor([1.0, -3.0, math.nan])
    assert math.isnan(peak(x))
    y = torch.tensor([[1.0, -3.0], [2.0, 0.5]], requires_grad=True)
    assert peak(y) == 3.0
    assert peak(torch.tensor([-1e300, 1e299], dtype=torch.float64)) == 1e300


def test_cp_refuses_nonfinite_data_first() -> None:
    x = torch.ones(3, 4, 5, dtype=torch.float64)
    x[0, 0, 0] = math.inf
    # Finiteness is still checked before the options (a bad rank is reported after it).
    with pytest.raises(ValueError, match=r"cp: tensor contains 1 NaN or Inf entries"):
        cp(x, 0)


def test_cp_of_huge_data_uses_the_peak() -> None:
    x = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    big = cp(x * 2.0**300, 2, init="random", generator=torch.Generator().manual_seed(2))
    ref = cp(x, 2, init="random", generator=torch.Generator().manual_seed(2))
    assert big.errors == ref.errors
    assert torch.equal(big.model.weights, ref.model.weights * 2.0**300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.complex64])
def test_check_finite_one_read_keeps_its_verdicts(dtype: torch.dtype) -> None:
    big = torch.full((8,), 6e4 if dtype == torch.float16 else 3e38).to(dtype)
    check_finite(big, "f")  # the sum overflows, the entries are finite: accepted
    for bad in (math.nan, math.inf, -math.inf):
        x = torch.ones(5, dtype=dtype)
        x[3] = bad
        with pytest.raises(ValueError, match=r"f: tensor contains 1 NaN or Inf entries"):
            check_finite(x, "f")
    z = torch.tensor([1.0 + 0j, complex(0.0, math.inf)])
    with pytest.raises(ValueError, match=r"f: t contains 1 NaN or Inf entries"):
        check_finite(z, "f", "t")
