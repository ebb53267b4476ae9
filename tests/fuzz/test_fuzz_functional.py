"""Fuzz the functional-completion entry points through the shared harness (issue 9).

A fuzzed dense tensor becomes continuous-indexed data on its grid (``ContinuousData.from_grid``
with coordinates ``0, 1, ..., n_k - 1`` scaled to ``[0, 1]``), and:

* ``ContinuousData.from_grid`` gets every tensor class (the rank classes do not apply);
* ``funbat`` (Tucker and CP) and ``funbat_map`` get the rank classes and the extreme classes
  (tiny and huge scales, half precision, numpy, numpy ranks, ``requires_grad``, non-contiguous,
  all zeros); the tensor classes that ``from_grid`` must refuse are its own entry above. They must
  refuse clearly or return a finite model whose predictions are in the data's dtype and whose
  reported training RMSE is the true one, recomputed here in float64 with scaling;
* ``state_space_gp`` gets the flattened tensor as observations at ``0, 1, ...`` (``zero_dim`` left
  out: a flattened scalar is a valid series of one observation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _harness import BAD_KINDS, EXTREME_KINDS, Entry, assert_clear_or_true, fuzz_cases
from hypothesis import HealthCheck, given, settings

from factorch.completion.functional import (
    ContinuousData,
    Matern,
    funbat,
    funbat_map,
    state_space_gp,
)

RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank")
TENSOR_KINDS = tuple(k for k in BAD_KINDS if k not in RANK_KINDS) + EXTREME_KINDS
FIT_KINDS = RANK_KINDS + EXTREME_KINDS
F64 = torch.float64


def _grid(x: Any) -> ContinuousData:
    shape = tuple(getattr(x, "shape", ()))
    coords = [torch.arange(n, dtype=F64) / max(n - 1, 1) for n in shape]
    return ContinuousData.from_grid(x, coords)


def _true_rmse(data: ContinuousData, mean: torch.Tensor) -> float:
    r = data.values.to(F64) - mean.to(F64)
    peak = float(r.abs().max())
    return 0.0 if peak == 0 else peak * float((r / peak).pow(2).mean().sqrt())


def _check_fit(case, result) -> None:
    data = _grid(case.tensor)
    pred = result.model.predict(data)
    for t in (pred.mean, pred.std):
        assert bool(torch.isfinite(t).all()), f"{case!r}: non-finite prediction"
        assert t.dtype == case.dtype, f"{case!r}: prediction dtype {t.dtype}"
    reported = result.train_rmse[result.best_epoch - 1]
    true = _true_rmse(data, pred.mean)
    assert abs(reported - true) <= 1e-6 * true + 1e-300, (case, reported, true)
    for f in result.model.factors:
        assert bool(torch.isfinite(f.mean).all() and torch.isfinite(f.cov).all()), case


def _check_grid(case, result) -> None:
    assert isinstance(result, ContinuousData)
    assert len(result) == int(np.prod(case.shape)) and result.values.dtype == case.dtype


def _check_gp(case, result) -> None:
    mean, var = result
    assert bool(torch.isfinite(mean).all() and torch.isfinite(var).all()), case
    assert mean.dtype == F64 and bool((var >= 0).all())


def _gp(x: Any, rank: Any) -> Any:
    y = x.reshape(-1) if isinstance(x, torch.Tensor | np.ndarray) and x.ndim > 0 else x
    n = (
        y.numel()
        if isinstance(y, torch.Tensor)
        else int(np.size(y))
        if isinstance(y, np.ndarray)
        else 1
    )
    return state_space_gp(
        torch.arange(n, dtype=F64), y, kernel=Matern(1.5, 1.0), noise_variance=0.1
    )


def _ep(x: Any, rank: Any) -> Any:
    return funbat(_grid(x), rank, max_iter=2, generator=torch.Generator())


def _ep_cp(x: Any, rank: Any) -> Any:
    return funbat(_grid(x), rank, structure="cp", max_iter=2)


def _map(x: Any, rank: Any) -> Any:
    return funbat_map(_grid(x), rank, max_iter=1, posterior_sweeps=1)


ENTRIES = [
    Entry(
        "ContinuousData.from_grid",
        lambda x, r: _grid(x),
        _check_grid,
        kinds=TENSOR_KINDS,
    ),
    Entry("funbat", _ep, _check_fit, max_ndim=3, kinds=FIT_KINDS),
    Entry("funbat", _ep_cp, _check_fit, max_ndim=3, kinds=FIT_KINDS),
    Entry("funbat_map", _map, _check_fit, max_ndim=3, kinds=FIT_KINDS),
    Entry(
        "state_space_gp",
        _gp,
        _check_gp,
        kinds=tuple(k for k in TENSOR_KINDS if k != "zero_dim"),
    ),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.name}-{i}" for i, e in enumerate(ENTRIES)])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=__import__("hypothesis").strategies.data())
def test_fuzz_functional(entry: Entry, data) -> None:
    case = data.draw(fuzz_cases(entry))
    assert_clear_or_true(entry, case)
