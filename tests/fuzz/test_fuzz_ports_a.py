"""Fuzz the ported CP-family entry points of issue 11 (part A) through the shared harness:
``constrained_cp``, ``parafac2``, ``cmtf``, ``cp_arls``, ``cp_power``, ``symmetric_cp_power`` and
``non_negative_cp(mask=)``.

Every entry point gets every input class of :mod:`tests.fuzz._harness` (wrong types and dtypes,
empty and 0-d tensors, NaN/Inf, bad and absurd ranks, float32 data of magnitude 1e-30 / 1e30 and
float64 1e-200 / 1e200, float16, bfloat16, numpy arrays and ranks, ``requires_grad``,
non-contiguous and all-zero data) and must either refuse with a clear error naming itself, or
return a finite model in the input's dtype whose reported error is its true error (recomputed in
float64 with scaling).

Adaptations, each with its reason:

* ``parafac2`` draws 3-way tensors only (its input is a stack of matrices).
* ``cmtf`` gets, besides the fuzzed tensor, a matrix on mode 0 built from it (same dtype, device
  and scale; numpy when the tensor is numpy), so every input class reaches the tensor's checks.
* ``symmetric_cp_power`` gets the fuzzed tensor symmetrised (cropped to a cube, averaged over the
  permutations of its modes) when it is a floating torch tensor, so fits happen; other classes
  reach its checks unchanged.
* ``non_negative_cp(mask=)`` gets the absolute value of the fuzzed tensor (a floating torch tensor)
  with a fixed pattern of missing entries set to NaN; other classes reach its checks unchanged.
"""

from __future__ import annotations

import itertools
import math
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
    relative_error64,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.decomp import (
    cmtf,
    constrained_cp,
    cp_arls,
    cp_power,
    non_negative_cp,
    parafac2,
    symmetric_cp_power,
)
from factorch.decomp import constraints as C

ALL = BAD_KINDS + EXTREME_KINDS
_FAST = {"max_iter": 20}


def _tol(case: Case) -> float:
    working = torch.float64 if case.dtype == torch.float64 else torch.float32
    return 64 * torch.finfo(working).eps


def _assert_true(case: Case, reported: float, true: float, rel: float = 1e-5) -> None:
    assert math.isfinite(reported), f"{case!r}: reported error {reported}"
    assert abs(reported - true) <= _tol(case) + rel * true, f"{case!r}: {reported} vs {true}"


def _check_cp_model(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    _assert_true(case, res.error, relative_error64(case.tensor, res.model.to(dtype=torch.float64)
                                                   .to_dense()))  # fmt: skip


def _check_constrained(case: Case, res: Any) -> None:
    _check_cp_model(case, res)
    assert bool((res.model.factors[0] >= 0).all()), f"{case!r}: non-negative mode went negative"


def _check_parafac2(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    dense = torch.stack([s.double() for s in res.model.to(dtype=torch.float64).slices()])
    _assert_true(case, res.error, relative_error64(case.tensor, dense))


# --- cmtf: a coupled matrix built from the fuzzed tensor -----------------------------------------


def _matrix_for(t: Any) -> Any:
    if isinstance(t, np.ndarray) and t.ndim >= 1 and t.dtype.kind == "f":
        rows = t.shape[0]
        scale = float(np.abs(t).max()) if t.size and np.isfinite(t).all() else 1.0
        return (np.linspace(0.5, 1.5, rows * 3).reshape(rows, 3) * (scale or 1.0)).astype(t.dtype)
    if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.is_floating_point():
        rows = t.shape[0]
        finite = t.numel() and bool(torch.isfinite(t.detach()).all())
        scale = float(t.detach().abs().max()) if finite else 1.0
        base = torch.linspace(0.5, 1.5, rows * 3, dtype=torch.float64).reshape(rows, 3)
        return (base * (scale or 1.0)).to(t.dtype)
    return torch.ones(2, 3)


def _call_cmtf(t: Any, r: Any) -> Any:
    return cmtf(t, _matrix_for(t), r, **_FAST)


def _check_cmtf(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    y = torch.as_tensor(_matrix_for(case.tensor)).to(torch.float64)
    x = torch.as_tensor(np.asarray(case.tensor) if not isinstance(case.tensor, torch.Tensor)
                        else case.tensor.detach()).to(torch.float64)  # fmt: skip
    model = res.model.to(dtype=torch.float64)
    peak = max(float(x.abs().max()), float(y.abs().max())) or 1.0
    num = float(((x - model.tensor.to_dense()) / peak).square().sum())
    num += float(((y - model.matrices[0].to_dense()) / peak).square().sum())
    den = float((x / peak).square().sum()) + float((y / peak).square().sum())
    _assert_true(case, res.error, math.sqrt(num / den))


# --- symmetric power iteration: a symmetrised tensor ---------------------------------------------


def _symmetrize(t: Any) -> Any:
    if not (isinstance(t, torch.Tensor) and t.is_floating_point() and t.ndim >= 2 and t.numel()):
        return t
    if not bool(torch.isfinite(t.detach()).all()):  # NaN/Inf classes reach the checks as drawn
        return t
    n = min(t.shape)
    cube = t[(slice(0, n),) * t.ndim]
    perms = list(itertools.permutations(range(t.ndim)))
    return sum(cube.permute(p) for p in perms) / len(perms)


def _call_symmetric(t: Any, r: Any) -> Any:
    return symmetric_cp_power(_symmetrize(t), r, max_iter=30)


def _check_symmetric(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    dense = res.model.to(dtype=torch.float64).to_dense()
    _assert_true(case, res.error, relative_error64(_symmetrize(case.tensor), dense))


# --- masked non-negative CP ----------------------------------------------------------------------


def _masked(t: Any) -> tuple[Any, Any]:
    if not (isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() and t.ndim >= 2):
        return t, None
    mask = torch.ones(t.shape, dtype=torch.bool)
    mask.view(-1)[::5] = False
    mask |= ~torch.isfinite(t.detach())  # NaN/Inf classes: the bad entries stay observed
    return torch.where(mask, t.detach().abs(), torch.nan).to(t.dtype), mask


def _call_masked(t: Any, r: Any) -> Any:
    data, mask = _masked(t)
    return non_negative_cp(data, r, mask=mask, **_FAST)


def _check_masked(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    data, mask = _masked(case.tensor)
    if mask is None:
        _check_cp_model(case, res)
        return
    x = torch.where(mask, data.double(), 0.0)
    model = res.model.to(dtype=torch.float64).to_dense()
    _assert_true(case, res.error, relative_error64(x, torch.where(mask, model, 0.0)))


ENTRIES = [
    Entry("constrained_cp", lambda t, r: constrained_cp(
        t, r, constraints={0: C.NonNegative(), 1: C.UnitNorm()}, **_FAST), _check_constrained),
    Entry("parafac2", lambda t, r: parafac2(t, r, **_FAST), _check_parafac2, min_ndim=3,
          max_ndim=3),
    Entry("cmtf", _call_cmtf, _check_cmtf),
    Entry("cp_arls", lambda t, r: cp_arls(
        t, r, n_samples=20, max_epochs=3, generator=torch.Generator().manual_seed(0)),
        _check_cp_model),
    Entry("cp_power", lambda t, r: cp_power(
        t, r, max_iter=30, generator=torch.Generator().manual_seed(0)), _check_cp_model),
    Entry("symmetric_cp_power", _call_symmetric, _check_symmetric),
    Entry("non_negative_cp", _call_masked, _check_masked),
]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_fuzz_ports_a(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(fuzz_cases(entry))
    assert_clear_or_true(entry, case)
