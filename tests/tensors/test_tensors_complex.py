"""Complex tensors: the conjugate falls on ``self`` in ``inner`` (as ``torch.vdot``), norms are
real, ``transpose=True`` in ``mode_dot`` is the conjugate transpose."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from factorch import algebra
from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from factorch.tensors import FactorizedTensor
from factorch.testing import assert_close_tensors

SHAPE = (3, 4, 2)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _makers(dtype: torch.dtype) -> dict[str, Callable[[int], FactorizedTensor]]:
    return {
        "cp": lambda s: random_cp(SHAPE, 3, generator=_gen(s), dtype=dtype),
        "tucker": lambda s: random_tucker(SHAPE, (2, 3, 2), generator=_gen(s), dtype=dtype),
        "tt": lambda s: random_tt(SHAPE, 3, generator=_gen(s), dtype=dtype),
        "tr": lambda s: random_tr(SHAPE, 2, generator=_gen(s), dtype=dtype),
        "ttmatrix": lambda s: random_tt_matrix((2, 3), (2, 2), 3, generator=_gen(s), dtype=dtype),
    }


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("kind", ["cp", "tucker", "tt", "tr", "ttmatrix"])
def test_complex_norm_and_inner(kind: str, dtype: torch.dtype) -> None:
    make = _makers(dtype)[kind]
    a, b = make(0), make(1)
    da, db = a.to_dense(), b.to_dense()
    assert da.dtype == dtype
    norm = a.norm()
    assert not norm.is_complex()
    assert_close_tensors(norm, torch.linalg.vector_norm(da))
    assert_close_tensors(a.inner(b), algebra.inner(da, db))
    assert_close_tensors(a.inner(db), algebra.inner(da, db))
    # the conjugate is on self: <a, b> = conj(<b, a>)
    assert_close_tensors(b.inner(a), algebra.inner(da, db).conj())


@pytest.mark.parametrize("kind", ["cp", "tucker", "tt", "tr"])
def test_complex_mode_dot_transpose_conjugates(kind: str) -> None:
    a = _makers(torch.complex128)[kind](2)
    mat = torch.randn(SHAPE[1], 5, generator=_gen(3), dtype=torch.complex128)
    out = a.mode_dot(mat, 1, transpose=True)
    assert_close_tensors(out.to_dense(), algebra.mode_dot(a.to_dense(), mat.mH, 1))
    idx = torch.tensor([[0, 1, 1], [2, 3, 0]])
    assert_close_tensors(a.entries(idx), a.to_dense()[tuple(idx.T)])
