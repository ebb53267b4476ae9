"""Fuzz every public entry point of factorch.algebra, the SparseTensor constructors and the random
constructors through the shared harness (issue 9): each call ends in a clear error naming the
function, or in a finite result in the right dtype (checked against a float64 reference where
the function computes a value).

Input classes an entry point documents as valid (complex for the algebra, any dtype for
``unfold``/``fold``, NaN propagating through the building blocks like a torch op, empty or 0-d
tensors for norms) are not drawn for it as "must refuse" classes; they are covered by the unit
tests of each module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
)
from hypothesis import HealthCheck, given, settings

import factorch.algebra as fa
from factorch import random as fr
from factorch.tensors import SparseTensor

RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank", "numpy_rank")
# Building blocks take factors, not a rank: an "absurd rank" would be a factor of 10^9 columns
# that the caller already holds; only outputs larger than the device are refused (unit tests).
FACTOR_KINDS = ("bad_rank_value", "bad_rank_type", "numpy_rank")
DATA_BAD = ("not_a_tensor", "integer_dtype", "bool_dtype", "empty_dim", "zero_dim")
NO_RANK = tuple(k for k in BAD_KINDS + EXTREME_KINDS if k not in RANK_KINDS)


def _kinds(*drop: str, base: tuple[str, ...] = BAD_KINDS + EXTREME_KINDS) -> tuple[str, ...]:
    return tuple(k for k in base if k not in drop)


def _as64(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    return t.detach().to(torch.complex128 if t.is_complex() else torch.float64)


def _factors(x: Any, rank: Any) -> list[Any]:
    """One ``(I_m, R)`` factor per mode, O(1) entries; an invalid rank is passed on as the
    second factor (so the entry point has to name it)."""
    shape = tuple(x.shape) if hasattr(x, "shape") and len(x.shape) else (3, 4)
    dtype = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float64
    if isinstance(x, np.ndarray):
        dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        return [torch.ones(shape[0], 2, dtype=dtype), rank, *[None] * (len(shape) - 2)]
    r = int(rank)
    g = torch.Generator().manual_seed(r)
    return [torch.rand(s, r, generator=g, dtype=torch.float64).to(dtype) + 0.5 for s in shape]


def _close_to(case: Case, got: torch.Tensor, want: torch.Tensor) -> None:
    """``got`` (in the case's dtype) is ``want`` (float64) up to that dtype's precision."""
    tol = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4}.get(case.dtype, 1e-9)
    scale = float(want.abs().max()) or 1.0
    err = float((got.detach().to(want.dtype) - want).abs().max()) / scale
    assert err <= tol, f"{case!r}: relative error {err:.2e} above {tol:.0e}"


# --- checks ------------------------------------------------------------------------------------
def _check_unfold(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    _close_to(case, out, _as64(case.tensor).movedim(0, 0).reshape(case.shape[0], -1))


def _check_same(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    _close_to(case, out, _as64(case.tensor))


def _check_mttkrp(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _as64(case.tensor)
    fs = [_as64(f) for f in _factors(case.tensor, case.rank)]
    letters = "abcdefgh"[: x.ndim]
    expr = f"{letters}," + ",".join(f"{c}Z" for c in letters[1:]) + f"->{letters[0]}Z"
    _close_to(case, out, torch.einsum(expr, x, *fs[1:]))


def _check_sparse(case: Case, out: Any) -> None:
    _check_mttkrp(case, out)


def _check_khatri_rao(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    fs = [_as64(f) for f in _factors(case.tensor, case.rank)]
    _close_to(case, out, fa.khatri_rao(fs))


def _check_kron(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    fs = [_as64(f) for f in _factors(case.tensor, case.rank)]
    _close_to(case, out, torch.kron(fs[0], fs[1]))


def _check_mode_dot(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _as64(case.tensor)
    m = torch.ones(2, x.shape[0], dtype=torch.float64)
    _close_to(case, out, torch.tensordot(m, x, dims=([1], [0])))


def _check_norm(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _as64(case.tensor)
    s = float(x.abs().max()) or 1.0
    _close_to(case, out, torch.linalg.vector_norm(x / s) * s)


def _check_inner(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _as64(case.tensor)
    s = float(x.abs().max()) or 1.0
    _close_to(case, out, (x / s).square().sum() * s * s)


def _check_svd(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _as64(case.tensor)
    a = x.reshape(x.shape[0], -1)
    s = float(a.abs().max()) or 1.0
    ref = torch.linalg.svdvals(a / s) * s
    k = out[1].shape[0]
    _close_to(case, out[1][:1], ref[:1])  # the leading singular value, for every method
    assert k == min(int(case.rank), *a.shape)


def _check_sparse_tensor(case: Case, out: Any) -> None:
    assert isinstance(out, SparseTensor)
    assert_finite_result(case, out.values)
    _close_to(case, out.to_dense(), _as64(case.tensor))


def _check_random(case: Case, out: Any) -> None:
    want = case.dtype if case.kind in ("half", "bfloat16") else torch.float64
    assert_finite_result(case, out, dtype=want)


# --- calls -------------------------------------------------------------------------------------
def _matrix(x: Any) -> Any:
    return x.reshape(x.shape[0], -1) if isinstance(x, torch.Tensor) and x.ndim >= 1 else x


def _mode_dot(x: Any, rank: Any) -> Any:
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.ndim else 3
    dtype = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float64
    if isinstance(x, np.ndarray):
        dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    return fa.mode_dot(x, torch.ones(2, n, dtype=dtype), 0)


def _fold(x: Any, rank: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.ndim >= 1:
        unfolded = fa.unfold(x, 0) if x.numel() else torch.empty(x.shape[0], 0, dtype=x.dtype)
        return fa.fold(unfolded, 0, x.shape)
    return fa.fold(x, 0, (2, 3))


def _sparse_from_dense(x: Any, rank: Any) -> Any:
    return SparseTensor.from_dense(x)


def _sparse_from_coo(x: Any, rank: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.ndim >= 1 and x.numel():
        idx = torch.cartesian_prod(*(torch.arange(s) for s in x.shape)).reshape(-1, x.ndim).mT
        return SparseTensor.from_coo(idx, x.reshape(-1), x.shape)
    return SparseTensor.from_coo(torch.zeros(1, 1, dtype=torch.int64), x, (1,))


def _sparse_mttkrp(x: Any, rank: Any) -> Any:
    sp = SparseTensor.from_dense(torch.as_tensor(x))
    return fa.sparse_mttkrp(sp, _factors(x, rank), 0, layout=fa.SparseLayout.build(sp))


def _sparse_mttkrp_compiled(x: Any, rank: Any) -> Any:
    sp = SparseTensor.from_dense(torch.as_tensor(x))
    return fa.sparse_mttkrp(sp, _factors(x, rank), 0, implementation="compiled")


def _random(make: Any) -> Any:
    def call(x: Any, rank: Any) -> Any:
        shape = tuple(x.shape) if hasattr(x, "shape") else x
        dtype = x.dtype if isinstance(x, torch.Tensor) else None
        dtype = torch.float64 if dtype is None or dtype in (torch.float32,) else dtype
        return make(shape, rank, generator=torch.Generator().manual_seed(0), dtype=dtype)

    return call


ENTRIES = [
    Entry("unfold", lambda x, r: fa.unfold(x, 0), _check_unfold, 1, 4,
          _kinds("integer_dtype", "bool_dtype", "complex_dtype", "nan", "inf", base=NO_RANK)),
    Entry("fold", _fold, _check_same, 1, 4,
          _kinds("integer_dtype", "bool_dtype", "complex_dtype", "nan", "inf", base=NO_RANK)),
    Entry("mode_dot", _mode_dot, _check_mode_dot, 1, 4,
          _kinds("complex_dtype", "nan", "inf", base=NO_RANK)),
    Entry("multi_mode_dot",
          lambda x, r: fa.multi_mode_dot(x, [torch.ones(2, 2, dtype=torch.float64)], [0]),
          lambda case, out: assert_finite_result(case, out), 1, 4,
          ("not_a_tensor", "integer_dtype", "bool_dtype", "empty_dim", "zero_dim", "plain")),
    Entry("khatri_rao", lambda x, r: fa.khatri_rao(_factors(x, r)), _check_khatri_rao, 2, 4,
          (*FACTOR_KINDS, "plain", "half", "bfloat16", "numpy", "tiny_scale", "huge_scale")),
    Entry("kron", lambda x, r: fa.kron(*_factors(x, r)[:2]), _check_kron, 2, 3,
          (*FACTOR_KINDS, "plain", "half", "numpy")),
    Entry("mttkrp", lambda x, r: fa.mttkrp(x, _factors(x, r), 0), _check_mttkrp, 2, 4,
          _kinds("complex_dtype", "nan", "inf", "absurd_rank")),
    Entry("mttkrp", lambda x, r: fa.mttkrp(x, _factors(x, r), 0, kernel="fused"), _check_mttkrp,
          2, 4, _kinds("complex_dtype", "nan", "inf", "absurd_rank")),
    Entry("sparse_mttkrp", _sparse_mttkrp, _check_sparse, 2, 4,
          (*FACTOR_KINDS, "plain", "half", "bfloat16", "tiny_scale", "huge_scale", "numpy",
           "all_zero", "non_contiguous")),
    Entry("sparse_mttkrp", _sparse_mttkrp_compiled, _check_sparse, 2, 4,
          (*FACTOR_KINDS, "plain", "half", "tiny_scale", "huge_scale", "all_zero")),
    Entry("norm", lambda x, r: fa.norm(x), _check_norm, 1, 4,
          _kinds("complex_dtype", "empty_dim", "zero_dim", "nan", "inf", base=NO_RANK)),
    Entry("inner", lambda x, r: fa.inner(x, x), _check_inner, 1, 4,
          _kinds("complex_dtype", "empty_dim", "zero_dim", "nan", "inf", base=NO_RANK)),
    Entry("truncated_svd", lambda x, r: fa.truncated_svd(_matrix(x), r), _check_svd, 2, 3,
          _kinds("complex_dtype", "absurd_rank")),
    Entry("randomized_svd",
          lambda x, r: fa.randomized_svd(_matrix(x), r, generator=torch.Generator().manual_seed(0)),
          lambda case, out: assert_finite_result(case, out), 2, 3,
          _kinds("complex_dtype", "absurd_rank")),
    Entry("SparseTensor.from_dense", _sparse_from_dense, _check_sparse_tensor, 1, 4,
          _kinds("complex_dtype", base=NO_RANK)),
    Entry("SparseTensor.from_coo", _sparse_from_coo, _check_sparse_tensor, 1, 3,
          _kinds("complex_dtype", "bool_dtype", "integer_dtype", base=NO_RANK)),
    Entry("random_cp", _random(fr.random_cp), _check_random, 2, 4,
          (*RANK_KINDS, "not_a_tensor", "plain", "half", "bfloat16")),
    Entry("random_tucker", _random(fr.random_tucker), _check_random, 2, 4,
          (*RANK_KINDS, "not_a_tensor", "plain", "half")),
    Entry("random_tt", _random(fr.random_tt), _check_random, 2, 4,  # an int rank is capped
          (*FACTOR_KINDS, "not_a_tensor", "plain", "bfloat16")),
    Entry("random_tr", _random(fr.random_tr), _check_random, 2, 4,
          (*RANK_KINDS, "not_a_tensor", "plain")),
]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_fuzz_algebra(entry: Entry) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=fuzz_cases(entry))
    def run(case: Case) -> None:
        assert_clear_or_true(entry, case)

    run()
