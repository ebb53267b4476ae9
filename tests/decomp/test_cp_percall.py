"""The fixed-cost shortcuts of a CP call (issue 14): same answers and errors as the long way."""

from __future__ import annotations

import math

import pytest
import torch

from factorch._checks import check_finite
from factorch.decomp import _cp as cp_module
from factorch.decomp import cp
from factorch.decomp._cp import _SURELY_FITS, check_cp_memory
from factorch.decomp._cp_small import SmallSweep
from factorch.decomp._cp_sweep import exact_error, working_set
from factorch.decomp._scale import finite_fit_scale, finite_peak, fit_scale, peak
from factorch.random import add_noise, random_cp
from factorch.tensors import CPTensor


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


# --- one pass for the finiteness check, the scale and ||X||^2 (issue 14) -----------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_finite_fit_scale_gives_the_sum_of_squares(dtype: torch.dtype) -> None:
    x = torch.randn(6, 7, 8, generator=torch.Generator().manual_seed(3), dtype=dtype)
    flat = x.reshape(-1)
    assert finite_fit_scale(x, "cp") == (1.0, float(torch.vdot(flat, flat)))


@pytest.mark.parametrize(
    ("dtype", "size"),
    [
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
        (torch.float64, 1e-300),
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float32, 3e-10),  # inside the window, but sum x^2 / n too close to its edge
        (torch.float16, 1.0),
        (torch.complex128, 1.0),
    ],
)
def test_finite_fit_scale_falls_back_to_the_peak(dtype: torch.dtype, size: float) -> None:
    x = torch.rand(5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.5
    x = (x * size).to(dtype)
    assert finite_fit_scale(x, "cp") == (fit_scale(x), None)
    assert finite_fit_scale(torch.zeros(3, 4, dtype=torch.float64), "cp") == (1.0, None)
    strided = torch.ones(4, 6, dtype=torch.float64)[:, ::2]  # not contiguous
    assert finite_fit_scale(strided, "cp") == (1.0, None)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_finite_fit_scale_refuses_as_check_finite(bad: float, dtype: torch.dtype) -> None:
    x = torch.ones(3, 4, dtype=dtype)
    x[1, 2] = bad
    with pytest.raises(ValueError) as want:
        check_finite(x, "cp", "tensor")
    with pytest.raises(ValueError, match=r"cp: tensor contains 1 NaN or Inf entries") as got:
        finite_fit_scale(x, "cp", "tensor")
    assert str(got.value) == str(want.value)


def test_cp_with_the_sum_of_squares_known_is_unchanged() -> None:
    # A non-contiguous copy of the same data takes the long way (peak, then ||X||^2 in the fit).
    x = torch.rand(9, 10, 11, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    strided = x.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    assert not strided.is_contiguous()
    fast = cp(x, 3, generator=torch.Generator().manual_seed(6), tol=0, max_iter=5)
    slow = cp(strided, 3, generator=torch.Generator().manual_seed(6), tol=0, max_iter=5)
    assert fast.errors == slow.errors
    assert torch.equal(fast.model.weights, slow.model.weights)


# --- the final error: the Gram formula where it provably equals the exact residual -------------


def _exact(x: torch.Tensor, model: CPTensor) -> float:
    """``||X - M|| / ||X||`` in float64 on data divided by its largest magnitude."""
    x64 = x.to(torch.float64)
    top = float(x64.abs().max())
    m64 = model.to(dtype=torch.float64)
    dense = CPTensor(m64.weights / top, m64.factors).to_dense()
    return float(torch.linalg.vector_norm(x64 / top - dense) / (x64 / top).norm())


def _planted(
    shape: tuple[int, ...], rank: int, noise: float, dtype: torch.dtype, seed: int
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = random_cp(shape, rank, generator=g, dtype=torch.float64).to_dense()
    if noise:
        x = add_noise(x, relative=noise, generator=g)
    return x.to(dtype)


def _count_exact(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0, 0]

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return exact_error(*args, **kwargs)

    def counted_small(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[1] += 1
        return small_exact(self, *args, **kwargs)

    small_exact = SmallSweep.exact_error
    monkeypatch.setattr(cp_module, "exact_error", counted)
    monkeypatch.setattr(SmallSweep, "exact_error", counted_small)
    return calls


@pytest.mark.parametrize("path", ["small", "reference"])
@pytest.mark.parametrize(
    ("noise", "dtype", "size", "identity"),
    [
        (0.0, torch.float64, 1.0, False),  # e ~ 1e-15: the exact pass must run
        (1e-6, torch.float64, 1.0, False),
        (1e-4, torch.float64, 1.0, False),  # the bound is above 1e-10
        (1e-2, torch.float64, 1.0, True),  # a noisy fit: the identity is exact enough
        (0.5, torch.float64, 1.0, True),  # a poor fit: the identity is exact enough
        (0.5, torch.float64, 1e-250, True),  # extreme scales (scaled by a power of 4)
        (0.5, torch.float64, 1e250, True),
        (0.5, torch.float32, 1.0, False),  # float32: never (eps too large)
        (0.0, torch.float32, 1e30, False),
    ],
)
def test_final_error_is_the_exact_residual(
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    noise: float,
    dtype: torch.dtype,
    size: float,
    identity: bool,
) -> None:
    monkeypatch.setattr(cp_module, "_PATH", path)
    calls = _count_exact(monkeypatch)
    x = _planted((14, 15, 16), 3, noise, torch.float64, 7) * size
    x = x.to(dtype)
    # Stopped by max_iter, then by convergence (to e ~ 1e-12 and below for exact data).
    for tol, max_iter in ((0.0, 6), (1e-13 if noise == 0.0 else 1e-8, 300)):
        calls[:] = [0, 0]
        res = cp(x, 3, generator=torch.Generator().manual_seed(8), tol=tol, max_iter=max_iter)
        truth = _exact(x, res.model)
        assert abs(res.error - truth) <= (1e-10 if dtype == torch.float64 else 1e-6)
        assert abs(res.error - truth) <= max(res.extras["error_floors"][-1], 1e-14)
        if noise == 0.0 and dtype == torch.float64 and tol > 0:
            assert res.error < 1e-11  # e ~ 1e-12..1e-15: from the exact pass
        assert (sum(calls) == 0) == identity, (calls, res.error, res.extras["error_floors"][-1])


def test_final_error_with_fixed_unnormalized_factors(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed factor keeps its (non-unit) columns: the bound uses the columns' norms.
    calls = _count_exact(monkeypatch)
    x = _planted((14, 15, 16), 3, 0.3, torch.float64, 9)
    g = torch.Generator().manual_seed(10)
    init = CPTensor(
        torch.ones(3, dtype=torch.float64),
        tuple(torch.rand(s, 3, generator=g, dtype=torch.float64) * 50 for s in x.shape),
    )
    res = cp(x, 3, init=init, fixed_modes=(0,), tol=0, max_iter=5)
    assert abs(res.error - _exact(x, res.model)) <= 1e-10
    assert abs(res.error - _exact(x, res.model)) <= max(res.extras["error_floors"][-1], 1e-14)
    assert sum(calls) == 0
