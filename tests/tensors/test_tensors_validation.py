"""Every validation error of the factorized tensor types, pinned by message."""

from __future__ import annotations

import pytest
import torch

from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from factorch.tensors import CPTensor, TRTensor, TTMatrix, TTTensor, TuckerTensor

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _z(*shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


# --- constructors ---------------------------------------------------------------------------


def test_cp_constructor_errors() -> None:
    with pytest.raises(TypeError, match=r"CPTensor: weights must be a torch.Tensor; got list"):
        CPTensor([1.0, 2.0], (_z(3, 2),))  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"CPTensor: weights must have 1 dimensions; got shape \(2, 1\)"
    ):
        CPTensor(_z(2, 1), (_z(3, 2),))
    with pytest.raises(
        TypeError, match=r"CPTensor: factors must be a list or tuple of torch.Tensor; got Tensor"
    ):
        CPTensor(_z(2), _z(3, 2))  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"CPTensor: factors must hold at least 1 tensor\(s\) \(one per mode\); got 0",
    ):
        CPTensor(_z(2), ())
    with pytest.raises(
        ValueError, match=r"CPTensor: factors\[1\] must have 2 dimensions; got shape \(4, 2, 1\)"
    ):
        CPTensor(_z(2), (_z(3, 2), _z(4, 2, 1)))
    with pytest.raises(
        ValueError,
        match=(
            r"CPTensor: factors\[1\] has 4 columns but weights has 2 entries; every factor needs "
            r"one column per rank"
        ),
    ):
        CPTensor(_z(2), (_z(3, 2), _z(5, 4)))
    with pytest.raises(
        TypeError,
        match=(
            r"CPTensor: factors\[0\] has dtype torch.float32 but weights has torch.float64; all "
            r"tensors must share one dtype"
        ),
    ):
        CPTensor(_z(2), (_z(3, 2, dtype=torch.float32),))
    with pytest.raises(
        TypeError,
        match=r"CPTensor: weights must have a floating-point or complex dtype; got torch.int64",
    ):
        CPTensor(_z(2, dtype=torch.int64), (_z(3, 2, dtype=torch.int64),))
    with pytest.raises(
        ValueError, match=r"CPTensor: factors\[0\] has an empty dimension \(shape \(0, 2\)\)"
    ):
        CPTensor(_z(2), (_z(0, 2),))


def test_tucker_constructor_errors() -> None:
    with pytest.raises(TypeError, match=r"TuckerTensor: core must be a torch.Tensor; got ndarray"):
        TuckerTensor(_z(2, 2).numpy(), (_z(3, 2), _z(3, 2)))  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"TuckerTensor: core must have at least 1 dimensions; got shape \(\)"
    ):
        TuckerTensor(torch.tensor(1.0, dtype=F64), (_z(3, 1),))
    with pytest.raises(
        ValueError,
        match=(
            r"TuckerTensor: the core has 2 modes but 3 factors were given; give one factor per "
            r"core mode"
        ),
    ):
        TuckerTensor(_z(2, 2), (_z(3, 2), _z(3, 2), _z(3, 2)))
    with pytest.raises(
        ValueError,
        match=(
            r"TuckerTensor: factors\[1\] has 3 columns but the core has size 2 along mode 1; they "
            r"must agree"
        ),
    ):
        TuckerTensor(_z(2, 2), (_z(3, 2), _z(4, 3)))
    with pytest.raises(
        TypeError,
        match=r"TuckerTensor: factors\[1\] has dtype torch.float32 but core has torch.float64",
    ):
        TuckerTensor(_z(2, 2), (_z(3, 2), _z(4, 2, dtype=torch.float32)))


def test_tt_constructor_errors() -> None:
    with pytest.raises(
        TypeError, match=r"TTTensor: cores must be a list or tuple of torch.Tensor; got Tensor"
    ):
        TTTensor(_z(1, 3, 1))  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"TTTensor: cores\[1\] must have 3 dimensions; got shape \(2, 3\)"
    ):
        TTTensor((_z(1, 3, 2), _z(2, 3)))
    with pytest.raises(
        ValueError,
        match=(
            r"TTTensor: cores\[1\] has left rank 3 but cores\[0\] has right rank 2; consecutive "
            r"ranks must agree"
        ),
    ):
        TTTensor((_z(1, 3, 2), _z(3, 4, 1)))
    with pytest.raises(
        ValueError,
        match=(
            r"TTTensor: boundary ranks must be r_0 = r_N = 1; got r_0 = 2, r_N = 2 \(use TRTensor "
            r"for a ring"
        ),
    ):
        TTTensor((_z(2, 3, 2), _z(2, 4, 2)))
    with pytest.raises(
        TypeError,
        match=r"TTTensor: cores\[1\] has dtype torch.float32 but cores\[0\] has torch.float64",
    ):
        TTTensor((_z(1, 3, 2), _z(2, 4, 1, dtype=torch.float32)))
    with pytest.raises(
        TypeError,
        match=r"TTTensor: cores\[0\] must have a floating-point or complex dtype; got torch.int32",
    ):
        TTTensor((_z(1, 3, 1, dtype=torch.int32),))


def test_tr_constructor_errors() -> None:
    with pytest.raises(
        ValueError,
        match=(
            r"TRTensor: the ring must close, r_N = r_0; got r_0 = 2 \(cores\[0\].shape\[0\]\) and "
            r"r_N = 3"
        ),
    ):
        TRTensor((_z(2, 3, 4), _z(4, 4, 3)))
    with pytest.raises(
        ValueError, match=r"TRTensor: cores\[1\] has left rank 3 but cores\[0\] has right rank 4"
    ):
        TRTensor((_z(2, 3, 4), _z(3, 4, 2)))


def test_tt_matrix_constructor_errors() -> None:
    with pytest.raises(
        ValueError, match=r"TTMatrix: cores\[0\] must have 4 dimensions; got shape \(1, 2, 1\)"
    ):
        TTMatrix((_z(1, 2, 1),))
    with pytest.raises(
        ValueError, match=r"TTMatrix: boundary ranks must be r_0 = r_N = 1; got r_0 = 1, r_N = 2"
    ):
        TTMatrix((_z(1, 2, 3, 2),))
    with pytest.raises(
        ValueError, match=r"TTMatrix: cores\[1\] has left rank 3 but cores\[0\] has right rank 2"
    ):
        TTMatrix((_z(1, 2, 3, 2), _z(3, 2, 2, 1)))


# --- methods --------------------------------------------------------------------------------

SHAPE = (3, 4, 5)


def _all() -> list:
    return [
        random_cp(SHAPE, 2, generator=_gen(), dtype=F64),
        random_tucker(SHAPE, 2, generator=_gen(), dtype=F64),
        random_tt(SHAPE, 2, generator=_gen(), dtype=F64),
        random_tr(SHAPE, 2, generator=_gen(), dtype=F64),
    ]


@pytest.mark.parametrize("t", _all(), ids=lambda t: type(t).__name__)
def test_mode_errors(t) -> None:
    name = type(t).__name__
    with pytest.raises(
        IndexError, match=rf"{name}.mode_dot: mode must be in \[-3, 2\] for a 3-way tensor; got 3"
    ):
        t.mode_dot(_z(2, 3), 3)
    with pytest.raises(TypeError, match=rf"{name}.mode_dot: mode must be an int; got float"):
        t.mode_dot(_z(2, 3), 1.0)
    with pytest.raises(
        IndexError, match=rf"{name}.unfold: mode must be in \[-3, 2\] for a 3-way tensor; got -4"
    ):
        t.unfold(-4)
    with pytest.raises(
        ValueError,
        match=(
            rf"{name}.mode_dot: matrix has 3 columns but the tensor has size 4 along mode 1; "
            rf"shapes must agree\."
        ),
    ):
        t.mode_dot(_z(2, 3), 1)
    with pytest.raises(ValueError, match=r"\(transpose=True transposes the matrix first\)"):
        t.mode_dot(_z(2, 3), 1, transpose=True)
    with pytest.raises(
        ValueError,
        match=rf"{name}.mode_dot: matrix must be a matrix or a vector; got shape \(2, 2, 4\)",
    ):
        t.mode_dot(_z(2, 2, 4), 1)
    with pytest.raises(
        TypeError,
        match=(
            rf"{name}.mode_dot: matrix has dtype torch.float32 but the tensor has "
            rf"torch.float64; convert with matrix.to\(dtype\)"
        ),
    ):
        t.mode_dot(_z(2, 4, dtype=torch.float32), 1)
    with pytest.raises(
        TypeError, match=rf"{name}.mode_dot: matrix must be a torch.Tensor; got list"
    ):
        t.mode_dot([[1.0] * 4], 1)


@pytest.mark.parametrize("t", _all(), ids=lambda t: type(t).__name__)
def test_entries_errors(t) -> None:
    name = type(t).__name__
    with pytest.raises(
        IndexError,
        match=(
            rf"{name}.entries: indices\[1, 2\] = 5 is out of range for mode 2 of size 5; valid "
            rf"indices are in \[-5, 4\]"
        ),
    ):
        t.entries(torch.tensor([[0, 0, 0], [0, 0, 5]]))
    with pytest.raises(
        IndexError,
        match=rf"{name}.entries: indices\[0, 0\] = -4 is out of range for mode 0 of size 3",
    ):
        t.entries(torch.tensor([[-4, 0, 0]]))
    with pytest.raises(
        TypeError,
        match=(
            rf"{name}.entries: indices must have an integer dtype; got torch.float32 \(use "
            rf".long\(\)\)"
        ),
    ):
        t.entries(torch.zeros(2, 3))
    with pytest.raises(
        ValueError,
        match=rf"{name}.entries: indices must have shape \(B, 3\), one row per entry; got \(2, 2\)",
    ):
        t.entries(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(
        TypeError,
        match=(
            rf"{name}.entries: indices must be an integer torch.Tensor of shape \(B, 3\); got list"
        ),
    ):
        t.entries([[0, 0, 0]])


@pytest.mark.parametrize("t", _all(), ids=lambda t: type(t).__name__)
def test_inner_errors(t) -> None:
    name = type(t).__name__
    with pytest.raises(
        ValueError, match=rf"{name}.inner: other must have shape \(3, 4, 5\); got \(3, 4\)"
    ):
        t.inner(_z(3, 4))
    with pytest.raises(
        TypeError, match=rf"{name}.inner: other has dtype torch.float32 but self has torch.float64"
    ):
        t.inner(_z(3, 4, 5, dtype=torch.float32))
    other = (
        random_tt(SHAPE, 2, generator=_gen())
        if name != "TTTensor"
        else random_tr(SHAPE, 2, generator=_gen())
    )
    with pytest.raises(
        TypeError, match=rf"{name}.inner: other must be a {name} or a torch.Tensor; got"
    ):
        t.inner(other.to(dtype=F64))
    same = t.mode_dot(_z(2, 4), 1)
    with pytest.raises(
        ValueError, match=rf"{name}.inner: other must have shape \(3, 4, 5\); got \(3, 2, 5\)"
    ):
        t.inner(same)


@pytest.mark.parametrize(
    "t",
    [
        random_cp((4,), 2, generator=_gen(), dtype=F64),
        random_tucker((4,), 2, generator=_gen(), dtype=F64),
        random_tt((4,), 2, generator=_gen(), dtype=F64),
        random_tr((4,), 2, generator=_gen(), dtype=F64),
    ],
    ids=lambda t: type(t).__name__,
)
def test_vector_on_one_way_tensor(t) -> None:
    name = type(t).__name__
    with pytest.raises(
        ValueError,
        match=(
            rf"{name}.mode_dot: cannot contract the only mode of a 1-way tensor with a vector; use "
            rf"inner\(\)"
        ),
    ):
        t.mode_dot(_z(4), 0)


def test_tt_arithmetic_errors() -> None:
    a = random_tt(SHAPE, 2, generator=_gen(), dtype=F64)
    with pytest.raises(
        ValueError, match=r"TTTensor.__add__: other must have shape \(3, 4, 5\); got \(3, 4, 6\)"
    ):
        a + random_tt((3, 4, 6), 2, generator=_gen(), dtype=F64)
    with pytest.raises(
        TypeError,
        match=r"TTTensor.__add__: other has dtype torch.float32 but self has torch.float64",
    ):
        a + a.to(dtype=torch.float32)
    with pytest.raises(TypeError, match=r"unsupported operand"):
        a + 1.0
    with pytest.raises(
        TypeError,
        match=(
            r"TTTensor.__mul__: '\*' takes a scalar; for the entrywise product of two TT tensors "
            r"use a.hadamard\(b\)"
        ),
    ):
        a * a
    with pytest.raises(
        TypeError,
        match=r"TTTensor.__mul__: cannot multiply a torch.float64 tensor by a complex scalar",
    ):
        a * 1j
    with pytest.raises(
        TypeError,
        match=r"TTTensor.__mul__: cannot multiply a torch.float64 tensor by a complex scalar",
    ):
        a * torch.tensor(1j)
    with pytest.raises(
        TypeError,
        match=(
            r"TTTensor.__mul__: only scalars \(Python numbers or 0-d tensors\) can multiply; got a "
            r"tensor of shape \(2,\)"
        ),
    ):
        a * torch.ones(2, dtype=F64)
    with pytest.raises(
        TypeError,
        match=(
            r"TTTensor.__mul__: only scalars \(Python numbers or 0-d tensors\) can multiply; got "
            r"str"
        ),
    ):
        a * "2"
    with pytest.raises(
        TypeError,
        match=r"TTTensor.__mul__: the multiplier must be a number or a 0-d tensor; got bool",
    ):
        a * True
    with pytest.raises(
        TypeError,
        match=r"TTTensor.hadamard: other must be a TTTensor or a torch.Tensor; got CPTensor",
    ):
        a.hadamard(random_cp(SHAPE, 2, generator=_gen(), dtype=F64))


def test_cp_factor_match_errors() -> None:
    a = random_cp(SHAPE, 3, generator=_gen(), dtype=F64)
    b = random_cp(SHAPE, 2, generator=_gen(), dtype=F64)
    with pytest.raises(
        ValueError,
        match=(
            r"CPTensor.factor_match: other has rank 2 < self's rank 3; every component of self "
            r"needs a partner"
        ),
    ):
        a.factor_match(b)
    with pytest.raises(TypeError, match=r"CPTensor.factor_match: other must be a CPTensor"):
        a.factor_match(random_tt(SHAPE, 2, generator=_gen(), dtype=F64))  # type: ignore[arg-type]


def test_tt_matrix_method_errors() -> None:
    m = random_tt_matrix((2, 3), (4, 2), 2, generator=_gen(), dtype=F64)
    with pytest.raises(
        ValueError,
        match=r"TTMatrix.mode_dot: a vector would remove a row or column index of one core",
    ):
        m.mode_dot(_z(2), 0)
    with pytest.raises(
        IndexError, match=r"TTMatrix.mode_dot: mode must be in \[-4, 3\] for a 4-way tensor; got 4"
    ):
        m.mode_dot(_z(2, 2), 4)
    with pytest.raises(
        ValueError,
        match=r"TTMatrix.mode_dot: matrix has 3 columns but the tensor has size 4 along mode 2",
    ):
        m.mode_dot(_z(2, 3), 2)
    with pytest.raises(
        IndexError, match=r"TTMatrix.unfold: mode must be in \[-2, 1\] for a 2-way tensor; got 2"
    ):
        m.unfold(2)
    with pytest.raises(
        IndexError,
        match=r"TTMatrix.entries: indices\[0, 1\] = 8 is out of range for mode 1 of size 8",
    ):
        m.entries(torch.tensor([[0, 8]]))
    other = random_tt_matrix((3, 2), (4, 2), 2, generator=_gen(), dtype=F64)
    with pytest.raises(
        ValueError,
        match=(
            r"TTMatrix.inner: other has row/column shapes \(3, 2\) x \(4, 2\) but self has \(2, "
            r"3\) x \(4, 2\)"
        ),
    ):
        m.inner(other)
    with pytest.raises(
        ValueError, match=r"TTMatrix.inner: other must have shape \(6, 8\); got \(8, 6\)"
    ):
        m.inner(_z(8, 6))
    with pytest.raises(
        ValueError,
        match=(
            r"TTMatrix.apply: x must have 8 entries in its last dimension \(prod of col_shape \(4, "
            r"2\)\); got shape \(3, 6\)"
        ),
    ):
        m.apply(_z(3, 6))
    with pytest.raises(
        TypeError,
        match=(r"TTMatrix.apply: x has dtype torch.float32 but the TT-matrix has torch.float64"),
    ):
        m.apply(_z(3, 8, dtype=torch.float32))
    with pytest.raises(TypeError, match=r"TTMatrix.apply: x must be a torch.Tensor; got list"):
        m.apply([1.0] * 8)
    with pytest.raises(
        ValueError,
        match=r"TTMatrix.apply: method must be one of \('auto', 'sweep', 'dense'\); got 'fast'",
    ):
        m.apply(_z(3, 8), method="fast")
