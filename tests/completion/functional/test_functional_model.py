"""The fitted model: predictions, latent functions, files, raw units, numerics policies."""

from __future__ import annotations

import math

import pytest
import torch
from _functional_helpers import F64, gen, grid_tucker

from factorch.completion.functional import (
    ContinuousData,
    FunctionalTensor,
    Standardization,
    funbat,
    funbat_map,
    functional_from_bytes,
    functional_to_bytes,
)


@pytest.fixture(scope="module")
def fitted():
    data, _ = grid_tucker(seed=0, n_axis=8, noise=0.1)
    return data, funbat(data, 2, max_iter=15, generator=gen(0))


def test_file_round_trip_predicts_the_same(fitted):
    data, fit = fitted
    blob = functional_to_bytes(fit.model, metadata={"seed": "0"})
    back = functional_from_bytes(blob)
    assert isinstance(back, FunctionalTensor) and back.rank == (2, 2, 2)
    a, b = fit.model.predict(data), back.predict(data)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert back.names == fit.model.names and back.noise_std == fit.model.noise_std


@pytest.mark.parametrize(
    ("blob", "match"),
    [(b"garbage", "functional_from_bytes: not a valid"), (b"\x10" + bytes(20), "not a valid")],
)
def test_damaged_files_are_refused(blob, match):
    with pytest.raises(ValueError, match=match):
        functional_from_bytes(blob)


def test_other_safetensors_files_are_refused():
    from safetensors.torch import save

    with pytest.raises(ValueError, match="holds a None, not a model"):
        functional_from_bytes(save({"a": torch.ones(2)}))


def test_destandardized_model_predicts_raw_values():
    g = gen(1)
    t = torch.rand(300, 2, generator=g, dtype=F64) * torch.tensor([50.0, 1000.0], dtype=F64)
    y = 40 + 8 * torch.sin(t[:, 0] / 8) * torch.cos(t[:, 1] / 150)
    raw = ContinuousData(t, y + 0.1 * torch.randn(300, generator=g, dtype=F64))
    train, test = raw.split((0.8, 0.2), generator=g)
    stats = Standardization.fit(train)
    fit = funbat(stats.apply(train), 2, structure="cp", max_iter=40, generator=g)
    std_pred = fit.model.predict(stats.apply(test))
    model = fit.model.destandardize(stats)
    raw_pred = model.predict(test)
    torch.testing.assert_close(raw_pred.mean, stats.values_from_standard(std_pred.mean))
    torch.testing.assert_close(raw_pred.std, std_pred.std * stats.value_std)
    assert raw_pred.rmse(test.values) < 0.5
    assert model.factors[1].kernel.lengthscale == pytest.approx(
        fit.model.factors[1].kernel.lengthscale * stats.coord_span[1]
    )


def test_latent_functions_and_prediction_input(fitted):
    data, fit = fitted
    mean, std = fit.model.latent(0, torch.linspace(-0.5, 1.5, 7))
    assert mean.shape == (7, 2) and bool((std > 0).all())
    # far from the data the functions return to the prior (std -> sigma = 1)
    assert float(std[0].max()) == pytest.approx(1.0, abs=0.05)
    pred = fit.model.predict(data.coords.numpy())
    assert pred.mean.shape == (len(data),)
    lo, hi = pred.interval(0.9)
    assert bool((lo <= pred.mean).all() and (pred.mean <= hi).all())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.predict(torch.ones(4, 2)), ValueError, r"coords must have shape \(M, 3\)"),
        (lambda m: m.predict(torch.full((1, 3), math.nan)), ValueError, "coords contain NaN"),
        (lambda m: m.predict("x"), TypeError, "FunctionalTensor.predict: coords must be"),
        (lambda m: m.latent(3, torch.ones(2)), IndexError, r"mode must be an int in \[-3, 2\]"),
        (lambda m: m.destandardize(None), TypeError, "stats must be the Standardization"),
        (lambda m: m.predict(torch.zeros(1, 3)).interval(1.5), ValueError, r"level must be"),
        (
            lambda m: m.predict(torch.zeros(1, 3)).rmse(torch.ones(2)),
            ValueError,
            r"Prediction.rmse: values must have shape \(1,\)",
        ),
        (lambda m: functional_to_bytes("m"), TypeError, "model must be a FunctionalTensor"),
    ],
)
def test_bad_calls(fitted, call, error, match):
    with pytest.raises(error, match=match):
        call(fitted[1].model)


# --- policies (issue 9): autocast, dtypes, scale, detached inputs ------------------------------
@pytest.mark.parametrize("fit_fn", [funbat, funbat_map])
def test_autocast_is_off_and_results_stay_in_the_data_dtype(fit_fn):
    data, _ = grid_tucker(seed=2, n_axis=6)
    data32 = data.to(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fit = fit_fn(data32, 2, max_iter=5, generator=gen(0))
    pred = fit.model.predict(data32)
    assert pred.mean.dtype == torch.float32 and fit.model.dtype == torch.float32
    assert fit.train_rmse[fit.best_epoch - 1] == pytest.approx(pred.rmse(data32.values), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_data(dtype):
    data, _ = grid_tucker(seed=3, n_axis=6)
    half = data.to(dtype=dtype)
    fit = funbat(half, 2, max_iter=10, generator=gen(0))
    pred = fit.model.predict(half)
    assert pred.mean.dtype == dtype and fit.model.dtype == torch.float32
    assert fit.train_rmse[fit.best_epoch - 1] == pytest.approx(pred.rmse(half.values), rel=1e-9)
    assert bool(torch.isfinite(pred.std).all())


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
def test_extreme_scales_give_the_same_relative_fit(dtype, scale):
    data, _ = grid_tucker(seed=4, n_axis=6)
    base = funbat(data.to(dtype=dtype), 2, max_iter=8, generator=gen(0))
    scaled_data = data.with_values((data.values * scale).to(dtype))
    scaled = funbat(scaled_data, 2, max_iter=8, generator=gen(0))
    pred = scaled.model.predict(scaled_data)
    assert bool(torch.isfinite(pred.mean).all()) and bool(torch.isfinite(pred.std).all())
    # the fits work on values divided by their RMS: the same model, rescaled
    rel = scaled.train_rmse[-1] / scale
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert rel == pytest.approx(base.train_rmse[-1], rel=tol)
    assert scaled.model.noise_std / scale == pytest.approx(base.model.noise_std, rel=tol)
    assert pred.rmse(scaled_data.values) / scale == pytest.approx(rel, rel=1e-6)


def test_all_zero_values_give_a_zero_model():
    data, _ = grid_tucker(seed=5, n_axis=5)
    fit = funbat(
        data.with_values(torch.zeros(len(data), dtype=F64)), 1, max_iter=5, generator=gen(0)
    )
    assert fit.train_rmse[-1] == pytest.approx(0.0, abs=1e-12)


def test_inputs_requiring_grad_are_detached():
    data, _ = grid_tucker(seed=6, n_axis=5)
    vals = data.values.clone().requires_grad_(True)
    fit = funbat(ContinuousData(data.coords, vals), 1, max_iter=3, generator=gen(0))
    assert not fit.model.predict(data).mean.requires_grad


@pytest.mark.cuda
def test_cuda_fits_match_the_cpu_fits():
    data, _ = grid_tucker(seed=7, n_axis=6)
    cpu = funbat(data, 2, max_iter=5, generator=gen(0))
    gpu = funbat(data.to(device="cuda"), 2, max_iter=5, generator=gen(0))
    assert gpu.model.device.type == "cuda"
    a = cpu.model.predict(data)
    b = gpu.model.predict(data.to(device="cuda"))
    torch.testing.assert_close(b.mean.cpu(), a.mean, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(b.std.cpu(), a.std, rtol=1e-7, atol=1e-9)
    fit = funbat_map(
        data.to(device="cuda", dtype=torch.float32),
        2,
        optimizer="adam",
        batch_size=64,
        max_iter=5,
        generator=gen(0),
    )
    pred = fit.model.predict(data.to(device="cuda"))
    assert pred.mean.device.type == "cuda" and pred.mean.dtype == torch.float32
    assert bool(torch.isfinite(pred.mean).all())
