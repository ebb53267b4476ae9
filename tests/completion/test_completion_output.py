"""What every completion fit hands back (issue 9, items 1, 2 and 7): the same fit whatever the
data's magnitude (exactly, for power-of-two factors), in the input's dtype under autocast and for
half precision, with reported RMSEs that are the returned model's, and an absolute ``l2``."""

from __future__ import annotations

import math

import pytest
import torch
from _entry_points import ENTRY_POINTS, F64, problem, true_rmse

from factorch.completion import cp_als, tt_als, tucker_als
from factorch.completion._observed import Observed
from factorch.completion._output import present_cp
from factorch.tensors import CPTensor, SparseTensor

NAMES = list(ENTRY_POINTS)
# Powers of two near the ends of each dtype's normal range (float32: 1e-30 / 1e30, float64:
# 1e-200 / 1e200): the fit of c X must be exactly c times the fit of X.
POWERS = [
    (torch.float32, 2.0**-100),
    (torch.float32, 2.0**100),
    (F64, 2.0**-664),
    (F64, 2.0**664),
]


def _dense(model):
    return model.to(dtype=F64).to_dense()


@pytest.mark.parametrize(
    ("dtype", "c"), POWERS, ids=["f32-tiny", "f32-huge", "f64-tiny", "f64-huge"]
)
@pytest.mark.parametrize("name", NAMES)
def test_power_of_two_scaling_gives_exactly_the_scaled_fit(name, dtype, c):
    fit = ENTRY_POINTS[name]
    x, mask = problem(dtype=dtype)
    ref = fit(x, 2, mask=mask)
    # The Huber threshold is in the data's units: it scales with them.
    kw = {"huber_delta": 0.5 * c} if name == "gcp_huber" else {}
    res = fit(x * c, 2, mask=mask, **kw)
    assert res.model.dtype == dtype
    assert all(bool(torch.isfinite(t).all()) for t in res.model._tensors())
    # Same floating-point operations on the same scaled values: equal up to the last bit of
    # the final rescaling (the normalization of the returned model rounds differently).
    torch.testing.assert_close(_dense(res.model) / c, _dense(ref.model), rtol=1e-5, atol=0)
    assert res.converged == ref.converged and res.epochs == ref.epochs
    assert [v / c for v in res.train_rmse] == pytest.approx(ref.train_rmse, rel=1e-12)
    assert res.train_rmse[-1] == pytest.approx(true_rmse(res.model, x * c, mask), rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_issue_example_tiny_data_give_a_true_fit_not_zeros(dtype):
    # Issue 9.2: cp_als(X * 1e-30, 2) in float64 returned an all-zero model, converged=True.
    x, mask = problem(dtype=dtype)
    ref = cp_als(x, 2, mask=mask, generator=torch.Generator().manual_seed(0))
    scale = 1e-30 if dtype == torch.float32 else 1e-200
    res = cp_als(x * scale, 2, mask=mask, generator=torch.Generator().manual_seed(0))
    assert bool((res.model.weights != 0).all())  # (CPTensor.norm() underflows here)
    rel = true_rmse(res.model, x * scale, mask) / scale
    assert rel == pytest.approx(true_rmse(ref.model, x, mask), rel=1e-3)
    assert res.train_rmse[-1] / scale == pytest.approx(ref.train_rmse[-1], rel=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_autocast_changes_nothing(name):
    fit = ENTRY_POINTS[name]
    x, mask = problem(dtype=torch.float32)
    plain = fit(x, 2, mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = fit(x, 2, mask=mask)
    assert under.model.dtype == torch.float32
    assert under.train_rmse == plain.train_rmse
    torch.testing.assert_close(under.model.to_dense(), plain.model.to_dense(), rtol=0, atol=0)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_is_fitted_in_float32_and_reports_the_true_rmse(name, half):
    fit = ENTRY_POINTS[name]
    x, mask = problem(dtype=half)
    res = fit(x, 2, mask=mask)
    assert res.model.dtype == half
    assert all(bool(torch.isfinite(t).all()) for t in res.model._tensors())
    k = res.best_epoch - 1
    assert res.train_rmse[k] == pytest.approx(true_rmse(res.model, x, mask), rel=1e-9)
    ref = fit(x.float(), 2, mask=mask)  # the float32 fit of the same values
    assert res.train_rmse[k] == pytest.approx(ref.train_rmse[-1], rel=0.05, abs=1e-3)


def test_half_precision_validation_rmse_is_the_returned_models():
    x, mask = problem(shape=(9, 8, 7), dtype=torch.float16)
    obs = SparseTensor.from_dense(x, mask)
    train, val = obs.split((0.8, 0.2), generator=torch.Generator().manual_seed(0))
    res = cp_als(train, 2, validation=val, max_iter=10, generator=torch.Generator().manual_seed(0))
    pred = res.model.to(dtype=F64).entries(val.indices.mT.long())
    true = math.sqrt(float(torch.mean((pred - val.values.double()) ** 2)))
    assert res.best_val_rmse == pytest.approx(true, rel=1e-9)


@pytest.mark.parametrize("fit", [cp_als, tucker_als, tt_als], ids=["cp", "tucker", "tt"])
def test_float16_models_whose_standard_form_overflows_are_balanced(fit):
    # Entries of about 300 in a 30^3 tensor: a normalized CP weight (or a Tucker / TT core
    # entry) is about 300 * 30^1.5 = 49000-70000, past float16's 65504 for some components.
    x, mask = problem(shape=(30, 30, 30), dtype=F64, hidden=0.2)
    x = (x / x.abs().max() * 60000).to(torch.float16)
    res = fit(x, 2, mask=mask, max_iter=5, generator=torch.Generator().manual_seed(0))
    assert res.model.dtype == torch.float16
    assert all(bool(torch.isfinite(t).all()) for t in res.model._tensors())
    rel = true_rmse(res.model, x, mask) / float(x.double()[mask].pow(2).mean().sqrt())
    assert rel < 0.05
    assert res.train_rmse[-1] == pytest.approx(true_rmse(res.model, x, mask), rel=1e-9)


def test_a_model_no_form_can_represent_is_refused():
    big = CPTensor(torch.tensor([1e300], dtype=F64), (torch.ones(3, 1, dtype=F64),) * 2)
    ones = SparseTensor.from_dense(torch.ones(3, 3, dtype=F64))
    obs = Observed(ones, 1.0, torch.float16)
    with pytest.raises(ValueError, match=r"fit: the fitted model cannot be represented in torch"):
        present_cp(big, obs, "fit")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_l2_is_absolute(dtype):
    # With x = c x' and every factor A_n = c^(1/3) A_n', the objective with l2 equals c^2 times
    # the objective of the primed problem with l2 c^(2/3 - 2): the fits are the same up to c.
    x, mask = problem(dtype=dtype)
    c = 1e6 if dtype == F64 else 1e3
    kw = {"mask": mask, "max_iter": 10, "generator": torch.Generator().manual_seed(0)}
    ref = cp_als(x, 2, l2=0.5, **kw)
    kw["generator"] = torch.Generator().manual_seed(0)
    res = cp_als(x * c, 2, l2=0.5 * c ** (2 - 2 / 3), **kw)
    rtol = 1e-3 if dtype == torch.float32 else 1e-8
    torch.testing.assert_close(_dense(res.model) / c, _dense(ref.model), rtol=rtol, atol=rtol)
    # An absolute ridge is not scale-free: the same l2 on scaled data is another fit.
    kw["generator"] = torch.Generator().manual_seed(0)
    other = cp_als(x * c, 2, l2=0.5, **kw)
    assert not torch.allclose(_dense(other.model) / c, _dense(ref.model), rtol=1e-3)


def test_callbacks_see_the_users_units_and_dtype():
    x, mask = problem(dtype=torch.float16)
    x = x * 512  # a power of two: the fit runs on x / 1024
    seen = []
    res = cp_als(x, 2, mask=mask, max_iter=4, tol=0.0, callback=lambda s: seen.append(s))
    assert [s.train_rmse for s in seen[:-1]] == list(res.train_rmse[:-1])
    assert all(s.model.dtype == torch.float16 for s in seen)
    assert seen[-1].train_rmse == pytest.approx(res.train_rmse[-1], rel=1e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_data_give_cuda_models(name):
    fit = ENTRY_POINTS[name]
    x, mask = problem(dtype=torch.float32)
    ref = fit(x, 2, mask=mask)
    res = fit(x.cuda(), 2, mask=mask.cuda())
    assert res.model.device.type == "cuda" and res.model.dtype == torch.float32
    assert res.train_rmse[-1] == pytest.approx(ref.train_rmse[-1], rel=1e-2)
