"""Fuzz the Tucker, tensor-train and tensor-ring entry points through the shared harness (issue 9).

Every entry point gets every input class of :mod:`tests.fuzz._harness` (wrong types and dtypes,
empty and 0-d tensors, NaN/Inf, bad and absurd ranks, float32 data of magnitude 1e-30 / 1e30 and
float64 1e-200 / 1e200, float16, bfloat16, numpy arrays and ranks, ``requires_grad``,
non-contiguous and all-zero data) and must either refuse with a clear error naming itself, or
return a finite model in the input's dtype whose reported error is its true error (recomputed in
float64 with scaling).

Classes left out, each with its reason:

* ``complex_dtype`` -- every entry point here supports complex data (the harness counts it as bad
  input for the real-only decompositions); ``non_negative_tucker`` keeps it and must refuse it.
* ``absurd_rank`` for ``tt_svd``, ``tt_matrix`` and ``tt_round`` -- a TT rank can never exceed the
  unfolding it splits, so any rank is capped there and nothing is allocated (pinned in
  ``tests/decomp/test_tt.py::test_absurd_ranks_are_capped_by_the_unfoldings``). The Tucker and TR
  entry points refuse absurd ranks and keep the class.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from _harness import (
    BAD_KINDS,
    EXTREME_KINDS,
    Case,
    Entry,
    assert_clear_or_true,
    assert_finite_result,
    fuzz_cases,
    relative_error64,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.decomp import (
    hosvd,
    non_negative_tucker,
    partial_tucker,
    tr_als,
    tr_svd,
    tt_matrix,
    tt_round,
    tt_svd,
    tucker,
)
from factorch.tensors import TTTensor

ALL = BAD_KINDS + EXTREME_KINDS
REAL_OR_COMPLEX = tuple(k for k in ALL if k != "complex_dtype")
CAPPED = tuple(k for k in REAL_OR_COMPLEX if k != "absurd_rank")

# |reported - true| <= ATOL + RTOL * true: the norm formulas and discarded energies are accurate to
# a few eps of the working dtype (float32 for half precision, whose errors are recomputed)
TOLERANCE = {
    torch.float64: (1e-7, 1e-6),
    torch.float32: (2e-4, 1e-3),
    torch.float16: (1e-5, 1e-4),
    torch.bfloat16: (1e-5, 1e-4),
}


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _as_float64(model: Any) -> torch.Tensor:
    return model.to(dtype=torch.float64).to_dense()


def _check_model(case: Case, result: Any, data: Any = None) -> None:
    """Finite, in the input dtype, and the reported error equals the recomputed one."""
    assert_finite_result(case, result.model)
    assert all(math.isfinite(e) for e in result.errors), f"{case!r}: non-finite error"
    target = case.tensor if data is None else data
    true = relative_error64(target, _as_float64(result.model))
    atol, rtol = TOLERANCE[case.dtype]
    assert abs(result.error - true) <= atol + rtol * true, (
        f"{case!r}: reported error {result.error} but the model's true error is {true}"
    )


def _matrix_shapes(t: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(rows, 1), (1, cols)`` for a matrix; a placeholder for anything else (refused anyway)."""
    shape = getattr(t, "shape", None)
    if shape is not None and len(shape) == 2 and min(shape) > 0:
        return (int(shape[0]), 1), (1, int(shape[1]))
    return (2,), (2,)


def _exact_tt(t: Any) -> Any:
    """An exact TT of ``t`` (data in core 0, identity cores after it) doubled as ``a + a``, so that
    rounding has ranks to remove; whatever cannot form a TT is passed through for tt_round to
    refuse."""
    if not isinstance(t, torch.Tensor) or t.ndim < 1 or 0 in t.shape:
        return t
    if not (t.is_floating_point() or t.is_complex()):
        return t
    shape = list(t.shape)
    rest = math.prod(shape[1:])
    cores = [t.reshape(1, shape[0], rest)]
    for size in shape[1:]:
        eye = torch.eye(rest, dtype=t.dtype)
        rest //= size
        cores.append(eye.reshape(rest * size, size, rest))
    a = TTTensor(tuple(cores))
    return a + a


def _check_round(case: Case, result: Any) -> None:
    _check_model(case, result, 2 * torch.as_tensor(case.tensor).detach().double())


def _check_norm(case: Case, norm: Any) -> None:
    x = torch.as_tensor(case.tensor).detach().double()
    s = float(x.abs().max()) or 1.0
    want = float(torch.linalg.vector_norm(x / s)) * s
    assert bool(torch.isfinite(norm)), f"{case!r}: norm {norm}"
    got = float(norm.detach().double())
    tol = 1e-10 if case.dtype == torch.float64 else 1e-2 if case.dtype in TOLERANCE else 1e-5
    assert abs(got - 2 * want) <= tol * 2 * want + 1e-300, f"{case!r}: norm {got}, want {2 * want}"


ENTRIES = [
    Entry("hosvd", lambda t, r: hosvd(t, r), _check_model, min_ndim=1, kinds=REAL_OR_COMPLEX),
    Entry("tucker", lambda t, r: tucker(t, r, max_iter=8), _check_model, kinds=REAL_OR_COMPLEX),
    Entry(
        "partial_tucker",
        lambda t, r: partial_tucker(t, r, modes=(0, -1), max_iter=8),
        _check_model,
        kinds=REAL_OR_COMPLEX,
    ),
    Entry(
        "non_negative_tucker",
        lambda t, r: non_negative_tucker(t, r, max_iter=8),
        _check_model,
        kinds=ALL,
    ),
    Entry("tt_svd", lambda t, r: tt_svd(t, r), _check_model, min_ndim=1, kinds=CAPPED),
    Entry(
        "tt_matrix",
        lambda t, r: tt_matrix(t, *_matrix_shapes(t), r),
        lambda case, res: _check_model(
            case, res, torch.as_tensor(case.tensor).reshape(res.model.shape)
        ),
        min_ndim=2,
        max_ndim=2,
        kinds=CAPPED,
    ),
    Entry("tt_round", lambda t, r: tt_round(_exact_tt(t), r), _check_round, kinds=CAPPED),
    Entry(
        "tr_svd",
        lambda t, r: tr_svd(t, (1, *([r] * (_ndim(t) - 1)), 1) if _ndim(t) > 1 else r),
        _check_model,
        kinds=REAL_OR_COMPLEX,
    ),
    Entry(
        "tr_als",
        lambda t, r: tr_als(t, r, init="random", max_iter=5, generator=_gen()),
        _check_model,
        kinds=REAL_OR_COMPLEX,
    ),
    Entry(
        "TTTensor",
        lambda t, r: (_exact_tt(t)).norm(),
        _check_norm,
        min_ndim=1,
        kinds=tuple(k for k in EXTREME_KINDS if k != "numpy"),
    ),
]


def _ndim(t: Any) -> int:
    shape = getattr(t, "shape", None)
    return len(shape) if shape is not None else 0


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_fuzz_tucker_tt_tr_entry_points(entry: Entry, data: st.DataObject) -> None:
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))
