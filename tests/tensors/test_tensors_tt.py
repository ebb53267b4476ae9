"""TT arithmetic equals dense arithmetic; exact conversions between formats."""

from __future__ import annotations

from math import prod

import pytest
import torch

from factorch.random import random_tt, random_tucker
from factorch.tensors import TRTensor, TTTensor
from factorch.testing import assert_close_tensors

F64 = torch.float64
DTYPES = [torch.float32, torch.float64]
SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 3, 2, 3)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[TTTensor, TTTensor]:
    a = random_tt(shape, 3, generator=_gen(0), dtype=dtype)
    b = random_tt(shape, 2, generator=_gen(1), dtype=dtype)
    return a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_add_sub_neg(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    a, b = _pair(shape, dtype)
    da, db = a.to_dense(), b.to_dense()
    total = a + b
    assert isinstance(total, TTTensor)
    if len(shape) > 1:
        assert total.rank[1:-1] == tuple(x + y for x, y in zip(a.rank[1:-1], b.rank[1:-1]))
    assert_close_tensors(total.to_dense(), da + db)
    assert_close_tensors((a - b).to_dense(), da - db)
    assert_close_tensors((-a).to_dense(), -da)
    assert_close_tensors((a - a).to_dense(), torch.zeros_like(da), atol=1e-5 * float(da.norm()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_scalar_multiplication(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    a, _ = _pair(shape, dtype)
    da = a.to_dense()
    assert_close_tensors((a * 2.5).to_dense(), 2.5 * da)
    assert_close_tensors((-3 * a).to_dense(), -3 * da)
    scalar = torch.tensor(0.75, dtype=F64)
    out = a * scalar
    assert out.dtype == dtype
    assert_close_tensors(out.to_dense(), 0.75 * da)
    left = torch.tensor(-2.0, dtype=dtype) * a
    assert isinstance(left, TTTensor)
    assert_close_tensors(left.to_dense(), -2 * da)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_hadamard(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    a, b = _pair(shape, dtype)
    out = a.hadamard(b)
    assert out.rank == tuple(x * y for x, y in zip(a.rank, b.rank))
    assert_close_tensors(out.to_dense(), a.to_dense() * b.to_dense())


def test_arithmetic_is_differentiable() -> None:
    a, b = _pair((2, 3, 2), F64)
    cores = [c.detach().clone().requires_grad_(True) for c in a.cores]
    a = TTTensor(cores)
    loss = (2.0 * (a + b).hadamard(a - b)).norm()
    loss.backward()
    assert all(c.grad is not None and bool(torch.isfinite(c.grad).all()) for c in cores)


def test_to_tr_shares_cores() -> None:
    a, _ = _pair((2, 3, 4), F64)
    tr = a.to_tr()
    assert isinstance(tr, TRTensor) and tr.rank == a.rank
    assert all(x is y for x, y in zip(tr.cores, a.cores))
    assert_close_tensors(tr.to_dense(), a.to_dense())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "rank"),
    [((5,), (3,)), ((4, 5), (2, 3)), ((3, 4, 5), (2, 3, 2)), ((2, 3, 4, 3), (2, 3, 4, 1))],
)
def test_tucker_to_tt_is_exact(
    shape: tuple[int, ...], rank: tuple[int, ...], dtype: torch.dtype
) -> None:
    tucker = random_tucker(shape, rank, generator=_gen(2), dtype=dtype)
    tt = tucker.to_tt()
    assert isinstance(tt, TTTensor)
    for k in range(1, len(shape)):
        assert tt.rank[k] <= min(prod(rank[:k]), prod(rank[k:]))
    assert_close_tensors(
        tt.to_dense(), tucker.to_dense(), rtol=1e-5 if dtype == torch.float32 else None
    )


def test_tucker_to_tt_is_differentiable() -> None:
    tucker = random_tucker((3, 4, 5), (2, 3, 2), generator=_gen(3), dtype=F64)
    core = tucker.core.detach().clone().requires_grad_(True)
    out = type(tucker)(core, tucker.factors).to_tt().norm()
    out.backward()
    assert core.grad is not None and bool(torch.isfinite(core.grad).all())
    # d||X||/dG equals the gradient of the dense norm
    core2 = tucker.core.detach().clone().requires_grad_(True)
    type(tucker)(core2, tucker.factors).to_dense().norm().backward()
    assert_close_tensors(core.grad, core2.grad, rtol=1e-8)


def test_repr() -> None:
    a = random_tt((2, 3, 4), 2, generator=_gen(4), dtype=torch.float32)
    assert repr(a) == (
        "TTTensor(shape=(2, 3, 4), rank=(1, 2, 2, 1), params=24, compression=1.0x, dtype=float32)"
    )


# --- norms and inner products at extreme scales (issue 9.2) ------------------------------------
@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e150])
@pytest.mark.parametrize("cls", [TTTensor, TRTensor])
def test_norm_and_inner_with_cores_near_the_ends_of_float64(cls, scale: float) -> None:
    # the squared norm (~1e400 or 1e-400) is not representable, the norm is: it overflowed to
    # inf / underflowed to 0 before the cores and the sweep were scaled by powers of two
    a = random_tt((3, 4, 5), 2, generator=_gen(5), dtype=F64)
    base = cls(a.cores) if cls is TRTensor else a
    big = cls((base.cores[0] * scale, *base.cores[1:]))
    assert float(big.norm()) == pytest.approx(float(base.norm()) * scale, rel=1e-12)
    spread = cls((base.cores[0] * 1e160, base.cores[1] * 1e-170, base.cores[2] * 1e10))
    assert float(spread.norm()) == pytest.approx(float(base.norm()), rel=1e-12)
    dense = base.to_dense()
    assert float(big.inner(dense * 1e-100) / (float((dense * dense).sum()) * scale * 1e-100)) == (
        pytest.approx(1.0, rel=1e-12)
    )
    assert float(spread.inner(spread)) == pytest.approx(float((dense * dense).sum()), rel=1e-12)


def test_norm_of_a_float32_tt_with_tiny_cores() -> None:
    a = random_tt((3, 4, 5), 2, generator=_gen(6), dtype=torch.float32)
    tiny = TTTensor(tuple(c * 1e-15 for c in a.cores))  # entries ~1e-45: the squares underflow
    assert float(tiny.norm()) == pytest.approx(float(a.norm()) * 1e-45, rel=1e-5)


def test_scaled_norm_is_still_differentiable() -> None:
    a = random_tt((3, 4, 5), 2, generator=_gen(7), dtype=F64)
    cores = tuple(c.clone().requires_grad_() for c in a.cores)
    assert torch.autograd.gradcheck(lambda *cs: TTTensor(cs).norm(), cores)
