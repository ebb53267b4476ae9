"""Fuzz the ports (issue 11, part B) through the shared harness: robust PCA, robust tensor PCA,
masked Tucker and non-negative Tucker, CP-APR, TT-cross, the regression estimators, and the
TensorLy / pyttb bridges.

Every entry point must refuse bad input with a clear error naming itself, or return finite
results in the input's dtype whose reported quantity is true (recomputed here in float64).

Classes left out, each with its reason:

* rank classes (``bad_rank_value``, ``bad_rank_type``, ``absurd_rank``, ``numpy_rank``) for the
  entry points without a rank argument (robust PCA, robust tensor PCA, the regression fits at a
  fixed rank, the bridges); their option checks and memory guards are pinned in the unit tests.
* ``absurd_rank`` for ``tt_cross``: a TT rank is capped by the unfoldings of the grid, so nothing
  is allocated (the cap is pinned in ``tests/decomp/test_tt_cross.py``).
* ``nan`` / ``inf`` for the masked entry points: a NaN may lie at an unobserved entry, which is
  legitimate there (observed NaN is pinned in ``tests/decomp/test_tucker_mask.py``);
  ``complex_dtype`` for ``tucker``, which supports complex data (``non_negative_tucker`` keeps
  the class and must refuse it).
* the bridges are converters, not fits: they take only the extreme classes (any real numeric
  array converts) and must round-trip exactly.
"""

from __future__ import annotations

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
    cp_apr,
    non_negative_tucker,
    robust_pca,
    robust_tensor_pca,
    tt_cross,
    tucker,
)
from factorch.interop import from_pyttb, from_tensorly, to_pyttb, to_tensorly
from factorch.regression import CPPLSR, CPRegressor, TuckerRegressor

ALL = BAD_KINDS + EXTREME_KINDS
RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank", "numpy_rank")
NO_RANK = tuple(k for k in ALL if k not in RANK_KINDS)
MASKED = tuple(k for k in ALL if k not in ("nan", "inf"))
MASKED_REAL_OR_COMPLEX = tuple(k for k in MASKED if k != "complex_dtype")
CROSS = tuple(k for k in ALL if k != "absurd_rank")
CONVERT = tuple(k for k in EXTREME_KINDS if k not in ("numpy_rank", "requires_grad"))


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _as64(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.detach().to(torch.float64)


def _mask(t: Any) -> Any:
    """About 80 % observed, the first entry always observed (torch or numpy like the data)."""
    shape = getattr(t, "shape", None)
    if shape is None or any(s == 0 for s in shape) or len(shape) == 0:
        return torch.ones((2, 2), dtype=torch.bool)
    m = torch.rand(tuple(shape), generator=_gen()) > 0.2
    m.view(-1)[0] = True
    return m.numpy() if isinstance(t, np.ndarray) else m


def _responses(t: Any) -> Any:
    """One response per sample (the sum of each sample's features), in the data's own type."""
    if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.numel() > 0:
        return t.detach().reshape(t.shape[0], -1).sum(1)
    if isinstance(t, np.ndarray) and t.ndim >= 1 and t.size > 0:
        return t.reshape(t.shape[0], -1).sum(1)
    return torch.ones(2)


# --- checks -----------------------------------------------------------------------------------
def _check_robust(case: Case, res: Any) -> None:
    assert_finite_result(case, (res.low_rank, res.sparse))
    assert all(math.isfinite(e) for e in res.errors)
    if case.dtype in (torch.float32, torch.float64):
        x = _as64(case.tensor)
        resid = relative_error64(x, (res.low_rank + res.sparse).double()) if x.abs().max() else 0.0
        tol = 1e-6 if case.dtype == torch.float64 else 1e-3
        assert resid <= res.error + tol, f"{case!r}: residual {resid} above reported {res.error}"


def _check_masked(case: Case, res: Any) -> None:
    assert_finite_result(case, res.model)
    mask = torch.as_tensor(_mask(case.tensor))
    x = _as64(case.tensor)[mask]
    approx = res.model.to(dtype=torch.float64).to_dense()[mask]
    s = float(x.abs().max()) or 1.0
    den = float(torch.linalg.vector_norm(x / s))
    true = float(torch.linalg.vector_norm((x - approx) / s)) / den if den else 0.0
    atol, rtol = (1e-7, 1e-6) if case.dtype == torch.float64 else (2e-4, 1e-3)
    assert abs(res.error - true) <= atol + rtol * true, f"{case!r}: {res.error} vs true {true}"


def _check_apr(case: Case, res: Any) -> None:
    assert_finite_result(case, res.model)
    model = res.model.to(dtype=torch.float64)
    assert bool((model.weights >= 0).all()) and all(bool((f >= 0).all()) for f in model.factors)
    if case.dtype in (torch.float32, torch.float64):
        x, m = _as64(case.tensor), model.to_dense()
        pos = x > 0
        ll = float((x[pos] * torch.log(m[pos])).sum() - m.sum())
        assert res.log_likelihood == pytest.approx(ll, rel=1e-6 if case.dtype == torch.float64
                                                   else 1e-3, abs=1e-300)  # fmt: skip


def _check_cross(case: Case, res: Any) -> None:
    assert_finite_result(case, res.model)
    assert math.isfinite(res.error)


def _check_fit(case: Case, est: Any) -> None:
    pred = est.predict(case.tensor)
    assert_finite_result(case, pred)


def _check_round_trip(case: Case, back: Any) -> None:
    dense = back if isinstance(back, torch.Tensor) else back.to_dense()
    want = _as64(case.tensor)
    assert torch.equal(dense.to(torch.float64), want), f"{case!r}: round trip is not exact"


# --- entry points -----------------------------------------------------------------------------
ENTRIES = [
    Entry("robust_pca", lambda t, r: robust_pca(t, max_iter=40), _check_robust,
          min_ndim=2, max_ndim=2, kinds=NO_RANK),
    Entry("robust_tensor_pca", lambda t, r: robust_tensor_pca(t, max_iter=20), _check_robust,
          kinds=NO_RANK),
    Entry("tucker", lambda t, r: tucker(t, r, mask=_mask(t), max_iter=6), _check_masked,
          kinds=MASKED_REAL_OR_COMPLEX),
    Entry("non_negative_tucker",
          lambda t, r: non_negative_tucker(t, r, mask=_mask(t), max_iter=6), _check_masked,
          kinds=MASKED),
    Entry("cp_apr", lambda t, r: cp_apr(t, r, max_iter=4, generator=_gen()), _check_apr),
    Entry("cp_apr", lambda t, r: cp_apr(t, r, method="pdnr", max_iter=2, generator=_gen()),
          _check_apr),
    Entry("cp_apr", lambda t, r: cp_apr(t, r, method="pqnr", max_iter=2, generator=_gen()),
          _check_apr),
    Entry("tt_cross", lambda t, r: tt_cross(t, r, max_sweeps=3, generator=_gen()), _check_cross,
          kinds=CROSS),
    Entry("CPRegressor.fit",
          lambda t, r: CPRegressor(2, max_iter=4, generator=_gen()).fit(t, _responses(t)),
          _check_fit, kinds=NO_RANK),
    Entry("TuckerRegressor.fit",
          lambda t, r: TuckerRegressor((1,) * (max(getattr(t, "ndim", 2), 2) - 1), max_iter=4,
                                       generator=_gen()).fit(t, _responses(t)),
          _check_fit, kinds=NO_RANK),
    Entry("CPPLSR.fit", lambda t, r: CPPLSR(1, max_iter=5).fit(t, _responses(t)), _check_fit,
          kinds=NO_RANK),
    Entry("from_tensorly", lambda t, r: from_tensorly(to_tensorly(torch.as_tensor(t),
                                                                  backend="numpy")),
          _check_round_trip, min_ndim=1, kinds=CONVERT),
    Entry("from_pyttb", lambda t, r: from_pyttb(to_pyttb(torch.as_tensor(t).double())),
          _check_round_trip, min_ndim=1, kinds=CONVERT),
]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.name}-{i}" for i, e in enumerate(ENTRIES)])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data())
def test_fuzz_ports_b_entry_points(entry: Entry, data: st.DataObject) -> None:
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))
