"""Finite-difference gradient checks (float64) of to_dense, norm and inner for every type."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.autograd import gradcheck

from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from factorch.tensors import FactorizedTensor

F64 = torch.float64
SHAPE = (3, 2, 4)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


MAKERS: dict[str, Callable[[int], FactorizedTensor]] = {
    "cp": lambda s: random_cp(SHAPE, 2, generator=_gen(s), dtype=F64),
    "tucker": lambda s: random_tucker(SHAPE, (2, 2, 3), generator=_gen(s), dtype=F64),
    "tt": lambda s: random_tt(SHAPE, 2, generator=_gen(s), dtype=F64),
    "tr": lambda s: random_tr(SHAPE, 2, generator=_gen(s), dtype=F64),
    "ttmatrix": lambda s: random_tt_matrix((2, 3), (3, 2), 2, generator=_gen(s), dtype=F64),
}


def _leaves(t: FactorizedTensor) -> list[torch.Tensor]:
    return [x.detach().clone().requires_grad_(True) for x in t._tensors()]


@pytest.mark.parametrize("kind", list(MAKERS))
def test_gradcheck_to_dense_norm_inner(kind: str) -> None:
    a, b = MAKERS[kind](0), MAKERS[kind](1)
    proto = a
    n = len(a._tensors())
    inputs = _leaves(a) + _leaves(b)
    dense = torch.randn(a.shape, generator=_gen(2), dtype=F64, requires_grad=True)

    def to_dense(*xs: torch.Tensor) -> torch.Tensor:
        return proto._replace_tensors(xs[:n]).to_dense()

    def norm(*xs: torch.Tensor) -> torch.Tensor:
        return proto._replace_tensors(xs[:n]).norm()

    def inner_same(*xs: torch.Tensor) -> torch.Tensor:
        return proto._replace_tensors(xs[:n]).inner(proto._replace_tensors(xs[n:]))

    def inner_dense(*xs: torch.Tensor) -> torch.Tensor:
        return proto._replace_tensors(xs[:n]).inner(xs[n])

    assert gradcheck(to_dense, inputs[:n])
    assert gradcheck(norm, inputs[:n])
    assert gradcheck(inner_same, inputs)
    assert gradcheck(inner_dense, [*inputs[:n], dense])


@pytest.mark.parametrize("kind", ["cp", "tucker", "tt", "tr"])
def test_gradcheck_entries_and_mode_dot(kind: str) -> None:
    a = MAKERS[kind](3)
    n = len(a._tensors())
    idx = torch.tensor([[0, 1, 3], [2, 0, 0], [-1, -1, -1]])
    mat = torch.randn(2, SHAPE[1], generator=_gen(4), dtype=F64, requires_grad=True)

    def entries(*xs: torch.Tensor) -> torch.Tensor:
        return a._replace_tensors(xs).entries(idx)

    def mode_dot(*xs: torch.Tensor) -> torch.Tensor:
        return a._replace_tensors(xs[:n]).mode_dot(xs[n], 1).to_dense()

    assert gradcheck(entries, _leaves(a))
    assert gradcheck(mode_dot, [*_leaves(a), mat])


@pytest.mark.parametrize("method", ["sweep", "dense"])
def test_gradcheck_tt_matrix_apply(method: str) -> None:
    m = MAKERS["ttmatrix"](5)
    n = len(m.cores)
    x = torch.randn(2, m.shape[1], generator=_gen(6), dtype=F64, requires_grad=True)

    def apply(*xs: torch.Tensor) -> torch.Tensor:
        return m._replace_tensors(xs[:n]).apply(xs[n], method=method)

    assert gradcheck(apply, [*_leaves(m), x])
