"""FunBaT-MAP: the same model by gradient descent; its model agrees with the MAP point."""

from __future__ import annotations

import pytest
import torch
from _functional_helpers import F64, gen, grid_tucker

from factorch.completion.functional import ContinuousData, funbat, funbat_map


@pytest.mark.parametrize("structure", ["tucker", "cp"])
def test_map_reaches_the_ep_error(structure):
    data, clean = grid_tucker(seed=1, n_axis=8, noise=0.1)
    g = gen(2)
    train, test = data.split((0.8, 0.2), generator=g)
    rank = 2 if structure == "tucker" else 3
    ep = funbat(train, rank, structure=structure, max_iter=30, generator=gen(0))
    mp = funbat_map(train, rank, structure=structure, max_iter=30, generator=gen(0))
    ep_rmse = ep.predict(test).rmse(test.values)
    map_rmse = mp.predict(test).rmse(test.values)
    assert map_rmse < 1.25 * ep_rmse, (map_rmse, ep_rmse)
    assert mp.model.noise_std == pytest.approx(0.1 * float(clean.std()), rel=0.3)
    assert mp.method == "map" and mp.model.structure == structure


def test_minibatch_adam_learns():
    data, _ = grid_tucker(seed=3, n_axis=10, noise=0.1)
    g = gen(4)
    train, test = data.split((0.8, 0.2), generator=g)
    fit = funbat_map(
        train, 2, structure="cp", optimizer="adam", batch_size=128, lr=0.1, max_iter=60, generator=g
    )
    zero = float(test.values.pow(2).mean().sqrt())
    assert fit.predict(test).rmse(test.values) < 0.35 * zero
    assert fit.train_rmse[-1] < fit.train_rmse[0]


def test_reported_error_is_the_models_and_intervals_are_calibrated():
    # the model comes from EP sweeps started at the MAP point: its reported training RMSE is its
    # own, and its intervals are not the (far too wide) block-Laplace ones
    data, _ = grid_tucker(seed=5, n_axis=8, noise=0.2)
    g = gen(1)
    train, test = data.split((0.8, 0.2), generator=g)
    fit = funbat_map(train, 2, max_iter=30, generator=g)
    assert fit.train_rmse[-1] == pytest.approx(
        fit.model.predict(train).rmse(train.values), rel=1e-9
    )
    pred = fit.predict(test)
    assert bool(torch.isfinite(pred.std).all()) and bool((pred.std >= 0).all())
    assert 0.88 <= pred.coverage(test.values) <= 0.99


def test_fixed_noise_is_kept():
    data, _ = grid_tucker(seed=6, n_axis=6)
    fit = funbat_map(data, 1, structure="cp", noise_variance=0.25, max_iter=5, generator=gen(0))
    assert fit.model.noise_std == pytest.approx(0.5)


def _small():
    return ContinuousData(torch.rand(20, 2, generator=gen(0), dtype=F64), torch.randn(20))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "sgd"}, ValueError, "funbat_map: optimizer must be 'lbfgs' or 'adam'"),
        ({"batch_size": 8}, ValueError, "batch_size needs optimizer='adam'"),
        ({"optimizer": "adam", "batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"lr": 0.0}, ValueError, "funbat_map: lr must be a positive finite number"),
        ({"generator": 1}, TypeError, "funbat_map: generator must be a torch.Generator"),
        ({"structure": "tt"}, ValueError, "funbat_map: structure must be 'tucker' or 'cp'"),
        ({"init_noise": 0}, ValueError, "funbat_map: init_noise must be a positive finite"),
        ({"posterior_sweeps": 0}, ValueError, "posterior_sweeps must be a positive int"),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        funbat_map(_small(), 1, **kwargs)


def test_a_non_finite_lbfgs_step_is_undone(monkeypatch):
    """An L-BFGS step that leaves the finite region (seen by the fuzzer in float32 on bf16 data,
    where it crashed the smoother) is undone: the result is the point before it, finite, with its
    true error, and not called converged."""
    values = torch.rand(4, 5, generator=gen(0), dtype=F64)
    data = ContinuousData.from_grid(values, [torch.linspace(0, 1, 4), torch.linspace(0, 1, 5)])
    calls = {"n": 0}
    real_step = torch.optim.LBFGS.step

    def step(self, closure):
        calls["n"] += 1
        loss = real_step(self, closure)
        if calls["n"] == 3:
            with torch.no_grad():
                for group in self.param_groups:
                    for q in group["params"]:
                        q.fill_(float("nan"))
        return loss

    monkeypatch.setattr(torch.optim.LBFGS, "step", step)
    res = funbat_map(data, 2, max_iter=10, generator=gen(1))
    assert calls["n"] == 3
    assert not res.converged
    assert res.epochs == 3
    pred = res.model.predict(data)
    assert bool(torch.isfinite(pred.mean).all()) and bool(torch.isfinite(pred.std).all())
    assert res.train_rmse[res.best_epoch - 1] == pytest.approx(pred.rmse(data.values), rel=1e-9)
