"""Fuzz the completion entry points through the shared harness (issue 9).

Every entry point -- ``cp_als`` (ALS and EM), ``cp_wopt``, ``gcp`` under each named loss,
``tucker_als``, ``tt_als``, ``sparse_cp``, ``holdout_mask`` / ``split_mask``, the neural fitters
(``fit_neural`` with both models, ``dain``) on tiny budgets, the model constructors and the
metrics ``rmse`` / ``mae`` / ``relative_error`` -- gets the input classes of
:mod:`tests.fuzz._harness` and must either refuse with a clear error naming itself, or return a
finite model in the input's dtype whose reported training RMSE (or relative error) is the true
one of the returned model, recomputed here in float64 with scaling. The data are passed without a
mask: every entry is observed.

Classes left out, each with its reason:

* the rank classes for the mask splitters and the neural fitters (no rank argument there: the
  neural models get a fixed small width), and ``bool_dtype`` for the splitters (a bool tensor is
  exactly what they take);
* ``nan`` / ``inf`` for the splitters (a mask derived from the data cannot hold them);
* ``zero_dim``, ``nan`` and ``inf`` for the metrics (``rmse``, ``mae``, ``relative_error``): a
  0-d pair is a valid one-entry comparison, and the metric of non-finite values is the
  non-finite value it is (documented), not an error;
* every data class for the model constructors (``CoSTCo``, ``EmbeddingMLP``): they take a shape
  and a rank, no data; they get the rank classes, numpy ranks and a plain call;
* ``predict`` / ``evaluate`` (a model and integer indices or listed entries, no data tensor
  and rank) and ``gcp_loss`` (a name): not fuzzed here; their refusals are pinned one case per
  message in ``tests/completion/test_completion_metrics.py`` and ``tests/completion/test_gcp.py``;
* ``absurd_rank`` for ``tt_als``: TT ranks above what the shape allows are lowered (documented;
  nothing is allocated for them), pinned in
  ``tests/completion/test_completion_tt.py::test_ranks_above_the_shape_are_lowered_and_numpy_ranks_accepted``.

The Bernoulli loss gets the data thresholded at their median (binary, as the loss requires; NaN
and Inf kept so that those classes still must be refused); the neural models are float32
whatever the data (data are cast to the model's dtype, documented), so their results are checked
in float32.
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorch.completion import (
    CoSTCo,
    EmbeddingMLP,
    cp_als,
    cp_wopt,
    dain,
    fit_neural,
    gcp,
    holdout_mask,
    mae,
    relative_error,
    rmse,
    sparse_cp,
    split_mask,
    tt_als,
    tucker_als,
)
from factorch.tensors import SparseTensor

ALL = BAD_KINDS + EXTREME_KINDS
RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank")
NO_RANK = tuple(k for k in ALL if k not in RANK_KINDS)
MASK_KINDS = tuple(k for k in NO_RANK if k not in ("bool_dtype", "nan", "inf"))
METRIC_KINDS = tuple(k for k in NO_RANK if k not in ("zero_dim", "nan", "inf"))
MODEL_KINDS = (*RANK_KINDS, "numpy_rank", "plain")
F64 = torch.float64

# |reported - true| <= RTOL * true + ATOL * rms(data): RMSEs computed in the working dtype from the
# working model (half precision: recomputed from the returned model, so exact).
TOLERANCE = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-3, 1e-5),
    torch.float16: (1e-9, 1e-12),
    torch.bfloat16: (1e-9, 1e-12),
}


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _data64(case: Case) -> torch.Tensor:
    x = case.tensor
    x = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach()
    return x.to(F64)


def _rms_error(pred: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    """``(RMSE, RMS of x)`` in float64 with scaling."""
    s = float(x.abs().max()) or 1.0
    rmse = s * math.sqrt(float(torch.mean(((pred - x) / s) ** 2)))
    return rmse, s * math.sqrt(float(torch.mean((x / s) ** 2)))


def _assert_rmse(case: Case, reported: float, true: float, rms: float, dtype: torch.dtype) -> None:
    rtol, atol = TOLERANCE[dtype]
    assert math.isfinite(reported), f"{case!r}: reported RMSE {reported}"
    assert abs(reported - true) <= rtol * true + atol * rms, (
        f"{case!r}: reported RMSE {reported} but the returned model's is {true}"
    )


def _check_fit(case: Case, result: Any) -> None:
    """A completion result: finite model in the input dtype, true training RMSE (every entry is
    observed), RMSEs finite."""
    assert_finite_result(case, result.model)
    x = _data64(case)
    dense = result.model.to(dtype=F64).to_dense()
    link = result.link
    pred = (
        torch.exp(dense) if link == "exp" else torch.sigmoid(dense) if link == "sigmoid" else dense
    )
    true, rms = _rms_error(pred, x)
    reported = result.train_rmse[result.best_epoch - 1]
    _assert_rmse(case, reported, true, rms, case.dtype)


def _binary(x: Any) -> Any:
    """The data thresholded at their median (NaN / Inf kept), for the Bernoulli loss."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size:
        return np.where(np.isfinite(x), (x > np.median(x)).astype(x.dtype), x)
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
        with torch.no_grad():
            finite = torch.isfinite(x)
            med = x[finite].median() if bool(finite.any()) else x.new_zeros(())
            out = torch.where(finite, (x > med).to(x.dtype), x)
        return out.requires_grad_(x.requires_grad)
    return x


def _gcp_entry(loss: str, kinds: tuple[str, ...] = ALL) -> Entry:
    def call(x: Any, r: Any) -> Any:
        data = _binary(x) if loss == "bernoulli_logit" else x
        return gcp(data, r, loss=loss, max_iter=3, lbfgs_iters=3, generator=_gen())

    def check(case: Case, result: Any) -> None:
        if loss == "bernoulli_logit":
            case = Case(case.kind, _binary(case.tensor), case.rank, case.shape, case.dtype)
        _check_fit(case, result)

    return Entry("gcp", call, check, max_ndim=3, kinds=kinds)


def _sparse(x: Any) -> Any:
    return x.to_sparse() if isinstance(x, torch.Tensor) and x.ndim else x


def _check_sparse_cp(case: Case, result: Any) -> None:
    assert_finite_result(case, result.model)
    true = relative_error64(case.tensor, result.model.to(dtype=F64).to_dense())
    rtol, _ = TOLERANCE[case.dtype]
    assert abs(result.errors[-1] - true) <= max(rtol, 1e-6) * max(true, 1e-3), (
        f"{case!r}: reported error {result.errors[-1]} but the returned model's is {true}"
    )


def _mask(x: Any) -> Any:
    """A mask from the data (the upper half of the entries), or the input unchanged."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size:
        return x > np.median(x)
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
        return x.detach() > x.detach().median()
    return x


def _check_masks(case: Case, result: Any) -> None:
    mask = torch.as_tensor(np.asarray(_mask(case.tensor)))
    parts = list(result)
    assert all(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)
    union = torch.zeros_like(mask)
    for p in parts:
        assert not bool((union & p).any()), f"{case!r}: parts overlap"
        union |= p
    assert torch.equal(union, mask), f"{case!r}: the parts do not cover the mask"


def _shape(x: Any) -> tuple[int, ...]:
    shape = tuple(getattr(x, "shape", ()))
    return shape if len(shape) >= 2 and all(s > 0 for s in shape) else (3, 3)


def _mlp(x: Any) -> EmbeddingMLP:
    return EmbeddingMLP(_shape(x), 2, (4,), generator=_gen())


def _check_neural(case: Case, result: Any) -> None:
    model = result.model
    assert_finite_result(case, result, dtype=torch.float32)
    x = _data64(case)
    idx = torch.cartesian_prod(*(torch.arange(s) for s in x.shape)).reshape(-1, x.ndim)
    with torch.no_grad():
        pred = model(idx).double().reshape(x.shape)
    true, rms = _rms_error(pred, x.float().double())
    _assert_rmse(case, result.train_rmse[result.best_epoch - 1], true, rms, torch.float32)


def _dain(x: Any, r: Any) -> Any:
    shape = _shape(x)
    val = SparseTensor.from_dense(torch.full(shape, 0.5), torch.rand(shape, generator=_gen()) < 0.3)
    return dain(lambda: _mlp(x), x, val, epochs=1, batch_size=64, aug_ratio=0.2, generator=_gen())


def _check_dain(case: Case, result: Any) -> None:
    _check_neural(case, result.base)
    assert_finite_result(case, result.augmented, dtype=torch.float32)
    assert all(bool(torch.isfinite(t).all()) for t in (result.influence, *result.importance))


def _twice(x: Any) -> Any:
    """The metrics' target: twice the data (numpy stays numpy); ``None`` for a non-array, so that
    a scalar prediction (a valid 0-d array-like) still meets a target that must be refused."""
    if isinstance(x, torch.Tensor):
        return x.detach() * 2
    return x * 2 if isinstance(x, np.ndarray) else None


def _metric_entry(name: str) -> Entry:
    metric = {"rmse": rmse, "mae": mae, "relative_error": relative_error}[name]

    def check(case: Case, result: Any) -> None:
        x = _data64(case)
        s = float(x.abs().max()) or 1.0
        want = {
            "rmse": s * math.sqrt(float(torch.mean((x / s) ** 2))),
            "mae": s * float(torch.mean(x.abs() / s)),
            "relative_error": 0.5 if bool(x.any()) else 0.0,
        }[name]
        assert isinstance(result, float) and result == pytest.approx(want, rel=1e-12, abs=0.0), (
            f"{case!r}: {name} returned {result}, expected {want}"
        )

    return Entry(name, lambda x, r: metric(x, _twice(x)), check, kinds=METRIC_KINDS)


def _check_model(case: Case, result: Any) -> None:
    assert_finite_result(case, result, dtype=torch.float32)


ENTRIES = [
    Entry("cp_als", lambda x, r: cp_als(x, r, max_iter=5, generator=_gen()), _check_fit),
    Entry(
        "cp_als",
        lambda x, r: cp_als(x, r, method="em", max_iter=5, generator=_gen()),
        _check_fit,
        max_ndim=3,
    ),
    Entry(
        "cp_wopt",
        lambda x, r: cp_wopt(x, r, max_iter=3, lbfgs_iters=3, generator=_gen()),
        _check_fit,
    ),
    _gcp_entry("gaussian"),
    _gcp_entry("poisson_log"),
    _gcp_entry("bernoulli_logit"),
    _gcp_entry("gamma_log"),
    _gcp_entry("huber"),
    Entry("tucker_als", lambda x, r: tucker_als(x, r, max_iter=5, generator=_gen()), _check_fit),
    Entry(
        "tt_als",
        lambda x, r: tt_als(x, r, max_iter=5, generator=_gen()),
        _check_fit,
        kinds=tuple(k for k in ALL if k != "absurd_rank"),
    ),
    Entry(
        "sparse_cp",
        lambda x, r: sparse_cp(_sparse(x), r, max_iter=5, generator=_gen()),
        _check_sparse_cp,
    ),
    Entry(
        "holdout_mask",
        lambda x, r: holdout_mask(_mask(x), 0.25, generator=_gen()),
        _check_masks,
        kinds=MASK_KINDS,
    ),
    Entry(
        "split_mask",
        lambda x, r: split_mask(_mask(x), (0.5, 0.3, 0.2), generator=_gen()),
        _check_masks,
        kinds=MASK_KINDS,
    ),
    Entry(
        "fit_neural",
        lambda x, r: fit_neural(_mlp(x), x, epochs=2, batch_size=64, generator=_gen()),
        _check_neural,
        max_ndim=3,
        kinds=NO_RANK,
    ),
    Entry(
        "fit_neural",
        lambda x, r: fit_neural(
            CoSTCo(_shape(x), 2, 4, generator=_gen()), x, epochs=1, generator=_gen()
        ),
        _check_neural,
        max_ndim=3,
        kinds=NO_RANK,
    ),
    Entry("dain", _dain, _check_dain, max_ndim=3, kinds=NO_RANK),
    _metric_entry("rmse"),
    _metric_entry("mae"),
    _metric_entry("relative_error"),
    Entry(
        "CoSTCo",
        lambda x, r: CoSTCo(_shape(x), r, 4, generator=_gen()),
        _check_model,
        kinds=MODEL_KINDS,
    ),
    Entry(
        "EmbeddingMLP",
        lambda x, r: EmbeddingMLP(_shape(x), r, (4,), generator=_gen()),
        _check_model,
        kinds=MODEL_KINDS,
    ),
]
IDS = [
    "cp_als",
    "cp_als_em",
    "cp_wopt",
    "gcp_gaussian",
    "gcp_poisson_log",
    "gcp_bernoulli_logit",
    "gcp_gamma_log",
    "gcp_huber",
    "tucker_als",
    "tt_als",
    "sparse_cp",
    "holdout_mask",
    "split_mask",
    "fit_neural_mlp",
    "fit_neural_costco",
    "dain",
    "rmse",
    "mae",
    "relative_error",
    "CoSTCo",
    "EmbeddingMLP",
]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_completion(entry: Entry, data: st.DataObject) -> None:
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))
