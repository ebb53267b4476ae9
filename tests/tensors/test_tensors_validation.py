"""Every validation error of the factorized tensor types, pinned by message (one case each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import factorch
from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from factorch.tensors import CPTensor, TRTensor, TTMatrix, TTTensor, TuckerTensor

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _z(*shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


Case = tuple[Callable[[], Any], type[Exception], str]


def _cases(cases: list[Case]) -> Any:
    return pytest.mark.parametrize(("call", "exc", "match"), cases, ids=[c[2][:60] for c in cases])


def _raises(call: Callable[[], Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


# --- constructors ---------------------------------------------------------------------------
CONSTRUCTORS: list[Case] = [
    (
        lambda: CPTensor([1.0, 2.0], (_z(3, 2),)),  # type: ignore[arg-type]
        TypeError,
        r"CPTensor: weights must be a torch.Tensor; got list",
    ),
    (
        lambda: CPTensor(_z(2, 1), (_z(3, 2),)),
        ValueError,
        r"CPTensor: weights must have 1 dimensions; got shape \(2, 1\)",
    ),
    (
        lambda: CPTensor(_z(2), _z(3, 2)),  # type: ignore[arg-type]
        TypeError,
        r"CPTensor: factors must be a list or tuple of torch.Tensor; got Tensor",
    ),
    (
        lambda: CPTensor(_z(2), ()),
        ValueError,
        r"CPTensor: factors must hold at least 1 tensor\(s\) \(one per mode\); got 0",
    ),
    (
        lambda: CPTensor(_z(2), (_z(3, 2), _z(4, 2, 1))),
        ValueError,
        r"CPTensor: factors\[1\] must have 2 dimensions; got shape \(4, 2, 1\)",
    ),
    (
        lambda: CPTensor(_z(2), (_z(3, 2), _z(5, 4))),
        ValueError,
        r"CPTensor: factors\[1\] has 4 columns but weights has 2 entries; every factor needs "
        r"one column per rank",
    ),
    (
        lambda: CPTensor(_z(2), (_z(3, 2, dtype=torch.float32),)),
        TypeError,
        r"CPTensor: factors\[0\] has dtype torch.float32 but weights has torch.float64; all "
        r"tensors must share one dtype",
    ),
    (
        lambda: CPTensor(_z(2, dtype=torch.int64), (_z(3, 2, dtype=torch.int64),)),
        TypeError,
        r"CPTensor: weights must have a floating-point or complex dtype; got torch.int64",
    ),
    (
        lambda: CPTensor(_z(2), (_z(0, 2),)),
        ValueError,
        r"CPTensor: factors\[0\] has an empty dimension \(shape \(0, 2\)\)",
    ),
    (
        lambda: TuckerTensor("core", (_z(3, 2), _z(3, 2))),  # type: ignore[arg-type]
        TypeError,
        r"TuckerTensor: core must be a torch.Tensor; got str",
    ),
    (
        lambda: TuckerTensor(torch.tensor(1.0, dtype=F64), (_z(3, 1),)),
        ValueError,
        r"TuckerTensor: core must have at least 1 dimensions; got shape \(\)",
    ),
    (
        lambda: TuckerTensor(_z(2, 2), (_z(3, 2), _z(3, 2), _z(3, 2))),
        ValueError,
        r"TuckerTensor: the core has 2 modes but 3 factors were given; give one factor per "
        r"core mode",
    ),
    (
        lambda: TuckerTensor(_z(2, 2), (_z(3, 2), _z(4, 3))),
        ValueError,
        r"TuckerTensor: factors\[1\] has 3 columns but the core has size 2 along mode 1; they "
        r"must agree",
    ),
    (
        lambda: TuckerTensor(_z(2, 2), (_z(3, 2), _z(4, 2, dtype=torch.float32))),
        TypeError,
        r"TuckerTensor: factors\[1\] has dtype torch.float32 but core has torch.float64",
    ),
    (
        lambda: TTTensor(_z(1, 3, 1)),  # type: ignore[arg-type]
        TypeError,
        r"TTTensor: cores must be a list or tuple of torch.Tensor; got Tensor",
    ),
    (
        lambda: TTTensor((_z(1, 3, 2), _z(2, 3))),
        ValueError,
        r"TTTensor: cores\[1\] must have 3 dimensions; got shape \(2, 3\)",
    ),
    (
        lambda: TTTensor((_z(1, 3, 2), _z(3, 4, 1))),
        ValueError,
        r"TTTensor: cores\[1\] has left rank 3 but cores\[0\] has right rank 2; consecutive "
        r"ranks must agree",
    ),
    (
        lambda: TTTensor((_z(2, 3, 2), _z(2, 4, 2))),
        ValueError,
        r"TTTensor: boundary ranks must be r_0 = r_N = 1; got r_0 = 2, r_N = 2 \(use TRTensor "
        r"for a ring",
    ),
    (
        lambda: TTTensor((_z(1, 3, 2), _z(2, 4, 1, dtype=torch.float32))),
        TypeError,
        r"TTTensor: cores\[1\] has dtype torch.float32 but cores\[0\] has torch.float64",
    ),
    (
        lambda: TTTensor((_z(1, 3, 1, dtype=torch.int32),)),
        TypeError,
        r"TTTensor: cores\[0\] must have a floating-point or complex dtype; got torch.int32",
    ),
    (
        lambda: TTTensor((_z(1, 3, 1), "core")),  # type: ignore[arg-type]
        TypeError,
        r"TTTensor: cores\[1\] must be a torch.Tensor; got str",
    ),
    (
        lambda: TRTensor((_z(2, 3, 4), _z(4, 4, 3))),
        ValueError,
        r"TRTensor: the ring must close, r_N = r_0; got r_0 = 2 \(cores\[0\].shape\[0\]\) and "
        r"r_N = 3",
    ),
    (
        lambda: TRTensor((_z(2, 3, 4), _z(3, 4, 2))),
        ValueError,
        r"TRTensor: cores\[1\] has left rank 3 but cores\[0\] has right rank 4",
    ),
    (
        lambda: TTMatrix((_z(1, 2, 1),)),
        ValueError,
        r"TTMatrix: cores\[0\] must have 4 dimensions; got shape \(1, 2, 1\)",
    ),
    (
        lambda: TTMatrix((_z(1, 2, 3, 2),)),
        ValueError,
        r"TTMatrix: boundary ranks must be r_0 = r_N = 1; got r_0 = 1, r_N = 2",
    ),
    (
        lambda: TTMatrix((_z(1, 2, 3, 2), _z(3, 2, 2, 1))),
        ValueError,
        r"TTMatrix: cores\[1\] has left rank 3 but cores\[0\] has right rank 2",
    ),
]


@_cases(CONSTRUCTORS)
def test_constructor_errors(call, exc, match) -> None:
    _raises(call, exc, match)


def test_constructors_accept_numpy_arrays() -> None:
    core = np.ones((2, 2))
    tk = TuckerTensor(core, (np.eye(3, 2), np.eye(4, 2)))  # type: ignore[arg-type]
    assert isinstance(tk.core, torch.Tensor) and tk.dtype == F64 and tk.shape == (3, 4)
    tt = TTTensor([np.ones((1, 3, 2)), np.ones((2, 4, 1))])  # type: ignore[list-item]
    assert all(isinstance(c, torch.Tensor) for c in tt.cores) and tt.shape == (3, 4)
    torch.testing.assert_close(tt.to_dense(), torch.full((3, 4), 2.0, dtype=F64))


# --- methods shared by every format -----------------------------------------------------------
SHAPE = (3, 4, 5)
KINDS = {
    "CPTensor": lambda: random_cp(SHAPE, 2, generator=_gen(), dtype=F64),
    "TuckerTensor": lambda: random_tucker(SHAPE, 2, generator=_gen(), dtype=F64),
    "TTTensor": lambda: random_tt(SHAPE, 2, generator=_gen(), dtype=F64),
    "TRTensor": lambda: random_tr(SHAPE, 2, generator=_gen(), dtype=F64),
}

# (what the method call does to t, exception, message with {name} for the class name)
METHOD_ERRORS: list[tuple[Callable[[Any], Any], type[Exception], str]] = [
    (
        lambda t: t.mode_dot(_z(2, 3), 3),
        IndexError,
        r"{name}.mode_dot: mode must be in \[-3, 2\] for a 3-way tensor; got 3",
    ),
    (lambda t: t.mode_dot(_z(2, 3), 1.0), TypeError, r"{name}.mode_dot: mode must be an int"),
    (
        lambda t: t.unfold(-4),
        IndexError,
        r"{name}.unfold: mode must be in \[-3, 2\] for a 3-way tensor; got -4",
    ),
    (
        lambda t: t.mode_dot(_z(2, 3), 1),
        ValueError,
        r"{name}.mode_dot: matrix has 3 columns but the tensor has size 4 along mode 1; "
        r"shapes must agree\.",
    ),
    (
        lambda t: t.mode_dot(_z(2, 3), 1, transpose=True),
        ValueError,
        r"{name}.mode_dot: .*\(transpose=True transposes the matrix first\)",
    ),
    (
        lambda t: t.mode_dot(_z(2, 2, 4), 1),
        ValueError,
        r"{name}.mode_dot: matrix must be a matrix or a vector; got shape \(2, 2, 4\)",
    ),
    (
        lambda t: t.mode_dot(_z(2, 4, dtype=torch.float32), 1),
        TypeError,
        r"{name}.mode_dot: matrix has dtype torch.float32 but the tensor has "
        r"torch.float64; convert with matrix.to\(dtype\)",
    ),
    (
        lambda t: t.mode_dot([[1.0] * 4], 1),
        TypeError,
        r"{name}.mode_dot: matrix must be a torch.Tensor; got list",
    ),
    (
        lambda t: t.entries(torch.tensor([[0, 0, 0], [0, 0, 5]])),
        IndexError,
        r"{name}.entries: indices\[1, 2\] = 5 is out of range for mode 2 of size 5; valid "
        r"indices are in \[-5, 4\]",
    ),
    (
        lambda t: t.entries(torch.tensor([[-4, 0, 0]])),
        IndexError,
        r"{name}.entries: indices\[0, 0\] = -4 is out of range for mode 0 of size 3",
    ),
    (
        lambda t: t.entries(torch.zeros(2, 3)),
        TypeError,
        r"{name}.entries: indices must have an integer dtype; got torch.float32 \(use "
        r".long\(\)\)",
    ),
    (
        lambda t: t.entries(torch.zeros(2, 2, dtype=torch.long)),
        ValueError,
        r"{name}.entries: indices must have shape \(B, 3\), one row per entry; got \(2, 2\)",
    ),
    (
        lambda t: t.entries([[0, 0, 0]]),
        TypeError,
        r"{name}.entries: indices must be an integer torch.Tensor of shape \(B, 3\); got list",
    ),
    (
        lambda t: t.inner(_z(3, 4)),
        ValueError,
        r"{name}.inner: other must have shape \(3, 4, 5\); got \(3, 4\)",
    ),
    (
        lambda t: t.inner(_z(3, 4, 5, dtype=torch.float32)),
        TypeError,
        r"{name}.inner: other has dtype torch.float32 but self has torch.float64",
    ),
    (
        lambda t: t.inner(
            random_tr(SHAPE, 2, generator=_gen(), dtype=F64)
            if isinstance(t, TTTensor)
            else random_tt(SHAPE, 2, generator=_gen(), dtype=F64)
        ),
        TypeError,
        r"{name}.inner: other must be a {name} or a torch.Tensor; got",
    ),
    (
        lambda t: t.inner(t.mode_dot(_z(2, 4), 1)),
        ValueError,
        r"{name}.inner: other must have shape \(3, 4, 5\); got \(3, 2, 5\)",
    ),
]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    ("call", "exc", "match"), METHOD_ERRORS, ids=[c[2][:50] for c in METHOD_ERRORS]
)
def test_method_errors(kind, call, exc, match) -> None:
    t = KINDS[kind]()
    _raises(lambda: call(t), exc, match.format(name=kind))


@pytest.mark.parametrize("kind", list(KINDS))
def test_methods_accept_numpy_arrays_and_integers(kind) -> None:
    t = KINDS[kind]()
    dense = t.to_dense()
    mat = np.arange(8.0).reshape(2, 4)
    out = t.mode_dot(mat, np.int64(1))
    torch.testing.assert_close(
        out.to_dense(), torch.einsum("ijk,aj->iak", dense, torch.tensor(mat))
    )
    if kind != "CPTensor":  # CPTensor.inner lives in tensors/_cp.py (its own numpy handling)
        torch.testing.assert_close(t.inner(dense.numpy()), (dense * dense).sum())
    idx = np.array([[0, 1, 2], [2, 3, 4]])
    torch.testing.assert_close(t.entries(idx), dense[idx[:, 0], idx[:, 1], idx[:, 2]])
    if kind != "CPTensor":  # CPTensor.unfold lives in tensors/_cp.py
        torch.testing.assert_close(t.unfold(np.int64(2)), t.unfold(2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: random_cp((4,), 2, generator=_gen(), dtype=F64),
        lambda: random_tucker((4,), 2, generator=_gen(), dtype=F64),
        lambda: random_tt((4,), 2, generator=_gen(), dtype=F64),
        lambda: random_tr((4,), 2, generator=_gen(), dtype=F64),
    ],
    ids=list(KINDS),
)
def test_vector_on_one_way_tensor(make) -> None:
    t = make()
    name = type(t).__name__
    _raises(
        lambda: t.mode_dot(_z(4), 0),
        ValueError,
        rf"{name}.mode_dot: cannot contract the only mode of a 1-way tensor with a vector; use "
        rf"inner\(\)",
    )


# --- TT arithmetic, CP matching, TT-matrix methods ----------------------------------------------
A = random_tt(SHAPE, 2, generator=_gen(), dtype=F64)
C3 = random_cp(SHAPE, 3, generator=_gen(), dtype=F64)
M = random_tt_matrix((2, 3), (4, 2), 2, generator=_gen(), dtype=F64)

OTHER_ERRORS: list[Case] = [
    (
        lambda: A + random_tt((3, 4, 6), 2, generator=_gen(), dtype=F64),
        ValueError,
        r"TTTensor.__add__: other must have shape \(3, 4, 5\); got \(3, 4, 6\)",
    ),
    (
        lambda: A + A.to(dtype=torch.float32),
        TypeError,
        r"TTTensor.__add__: other has dtype torch.float32 but self has torch.float64",
    ),
    (lambda: A + 1.0, TypeError, r"unsupported operand"),
    (
        lambda: A * A,
        TypeError,
        r"TTTensor.__mul__: '\*' takes a scalar; for the entrywise product of two TT tensors "
        r"use a.hadamard\(b\)",
    ),
    (
        lambda: A * 1j,
        TypeError,
        r"TTTensor.__mul__: cannot multiply a torch.float64 tensor by a complex scalar",
    ),
    (
        lambda: A * torch.tensor(1j),
        TypeError,
        r"TTTensor.__mul__: cannot multiply a torch.float64 tensor by a complex scalar",
    ),
    (
        lambda: A * torch.ones(2, dtype=F64),
        TypeError,
        r"TTTensor.__mul__: only scalars \(Python numbers or 0-d tensors\) can multiply; got a "
        r"tensor of shape \(2,\)",
    ),
    (
        lambda: A * "2",
        TypeError,
        r"TTTensor.__mul__: only scalars \(Python numbers or 0-d tensors\) can multiply; got "
        r"str",
    ),
    (
        lambda: A * True,
        TypeError,
        r"TTTensor.__mul__: the multiplier must be a number or a 0-d tensor; got bool",
    ),
    (
        lambda: A.hadamard(random_cp(SHAPE, 2, generator=_gen(), dtype=F64)),
        TypeError,
        r"TTTensor.hadamard: other must be a TTTensor or a torch.Tensor; got CPTensor",
    ),
    (
        lambda: C3.factor_match(random_cp(SHAPE, 2, generator=_gen(), dtype=F64)),
        ValueError,
        r"CPTensor.factor_match: other has rank 2 < self's rank 3; every component of self "
        r"needs a partner",
    ),
    (
        lambda: C3.factor_match(A),  # type: ignore[arg-type]
        TypeError,
        r"CPTensor.factor_match: other must be a CPTensor",
    ),
    (
        lambda: M.mode_dot(_z(2), 0),
        ValueError,
        r"TTMatrix.mode_dot: a vector would remove a row or column index of one core",
    ),
    (
        lambda: M.mode_dot(_z(2, 2), 4),
        IndexError,
        r"TTMatrix.mode_dot: mode must be in \[-4, 3\] for a 4-way tensor; got 4",
    ),
    (
        lambda: M.mode_dot(_z(2, 3), 2),
        ValueError,
        r"TTMatrix.mode_dot: matrix has 3 columns but the tensor has size 4 along mode 2",
    ),
    (
        lambda: M.unfold(2),
        IndexError,
        r"TTMatrix.unfold: mode must be in \[-2, 1\] for a 2-way tensor; got 2",
    ),
    (
        lambda: M.entries(torch.tensor([[0, 8]])),
        IndexError,
        r"TTMatrix.entries: indices\[0, 1\] = 8 is out of range for mode 1 of size 8",
    ),
    (
        lambda: M.inner(random_tt_matrix((3, 2), (4, 2), 2, generator=_gen(), dtype=F64)),
        ValueError,
        r"TTMatrix.inner: other has row/column shapes \(3, 2\) x \(4, 2\) but self has \(2, "
        r"3\) x \(4, 2\)",
    ),
    (
        lambda: M.inner(_z(8, 6)),
        ValueError,
        r"TTMatrix.inner: other must have shape \(6, 8\); got \(8, 6\)",
    ),
    (
        lambda: M.apply(_z(3, 6)),
        ValueError,
        r"TTMatrix.apply: x must have 8 entries in its last dimension \(prod of col_shape \(4, "
        r"2\)\); got shape \(3, 6\)",
    ),
    (
        lambda: M.apply(_z(3, 8, dtype=torch.float32)),
        TypeError,
        r"TTMatrix.apply: x has dtype torch.float32 but the TT-matrix has torch.float64",
    ),
    (
        lambda: M.apply([1.0] * 8),
        TypeError,
        r"TTMatrix.apply: x must be a torch.Tensor; got list",
    ),
    (
        lambda: M.apply(_z(3, 8), method="fast"),
        ValueError,
        r"TTMatrix.apply: method must be one of \('auto', 'sweep', 'dense'\); got 'fast'",
    ),
]


@_cases(OTHER_ERRORS)
def test_other_errors(call, exc, match) -> None:
    _raises(call, exc, match)


def test_tt_matrix_accepts_numpy() -> None:
    dense = M.to_dense()
    x = np.ones((3, 8))
    torch.testing.assert_close(M.apply(x), torch.ones(3, 8, dtype=F64) @ dense.T)
    torch.testing.assert_close(M.inner(dense.numpy()), (dense * dense).sum())


# --- .to(): a dtype may come first, as in torch.Tensor.to ------------------------------------


def _to_targets() -> list[object]:
    g = torch.Generator().manual_seed(0)
    cp = factorch.random.random_cp((3, 4, 5), 2, generator=g)
    sparse = factorch.tensors.SparseTensor(
        torch.tensor([[0, 1], [1, 2]]), torch.tensor([1.0, 2.0], dtype=torch.float64), (2, 3)
    )
    return [cp, sparse]


@pytest.mark.parametrize("which", [0, 1])
def test_to_takes_a_positional_dtype(which: int) -> None:
    obj = _to_targets()[which]
    out = obj.to(torch.float32)  # type: ignore[attr-defined]
    assert out.dtype == torch.float32
    assert obj.to("cpu", torch.float32).dtype == torch.float32  # type: ignore[attr-defined]
    assert obj.to(dtype=torch.float32).dtype == torch.float32  # type: ignore[attr-defined]


@pytest.mark.parametrize("which", [0, 1])
def test_to_refuses_bad_arguments(which: int) -> None:
    obj = _to_targets()[which]
    with pytest.raises(TypeError, match=r"\.to: dtype given twice"):
        obj.to(torch.float32, torch.float64)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"\.to: device must be a torch.device"):
        obj.to(1.5)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"\.to: dtype must be a torch.dtype"):
        obj.to(dtype="float32")  # type: ignore[attr-defined]
