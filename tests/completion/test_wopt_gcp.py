"""CP-WOPT and GCP: planted recovery, GCP-Gaussian equals CP-WOPT, Poisson GCP beats Gaussian CP on
Poisson counts, the other losses, the MTTKRP-backed gradient, pinned errors."""

from __future__ import annotations

import pytest
import torch
from _completion_helpers import hidden_error, planted_problem

from factorch.completion import cp_als, cp_wopt, gcp, gcp_loss, relative_error
from factorch.completion._common import cp_values
from factorch.tensors import CPTensor, SparseTensor

F64 = torch.float64
SHAPE = (40, 40, 40)
NOISE = 0.01


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("hidden", [0.5, 0.9])
def test_wopt_lbfgs_recovers_hidden_entries(dtype, hidden):
    p, mask = planted_problem("cp", SHAPE, 3, hidden, dtype, noise=NOISE)
    res = cp_wopt(p.tensor, 3, mask=mask, max_iter=30, generator=torch.Generator().manual_seed(1))
    assert hidden_error(res.model, p, mask) < 0.5 * NOISE
    assert res.extras["optimizer"] == "lbfgs" and len(res.extras["loss"]) == res.epochs


def test_wopt_adam_mini_batches_recover_hidden_entries():
    p, mask = planted_problem("cp", (20, 18, 16), 2, 0.5, noise=NOISE)
    res = cp_wopt(
        p.tensor,
        2,
        mask=mask,
        optimizer="adam",
        lr=0.03,
        batch_size=512,
        max_iter=60,
        l2=1e-4,
        generator=torch.Generator().manual_seed(1),
    )
    assert hidden_error(res.model, p, mask) < 2 * NOISE


def test_gcp_gaussian_matches_cp_wopt():
    p, mask = planted_problem("cp", (15, 14, 13), 3, 0.6, noise=0.05)
    gen = torch.Generator().manual_seed(5)
    init = CPTensor.from_factors(
        [torch.randn(s, 3, generator=gen, dtype=F64) for s in p.tensor.shape]
    )
    wopt = cp_wopt(p.tensor, 3, mask=mask, init=init, l2=0.1, max_iter=60, tol=1e-12)
    g = gcp(p.tensor, 3, mask=mask, init=init, l2=0.1, max_iter=60, tol=1e-12)
    # Same minimiser: GCP's Gaussian objective is exactly twice CP-WOPT's for the same l2.
    assert g.extras["loss"][-1] == pytest.approx(2 * wopt.extras["loss"][-1], rel=1e-8)
    torch.testing.assert_close(g.model.to_dense(), wopt.model.to_dense(), rtol=1e-5, atol=1e-6)


def test_gcp_custom_loss_equals_the_named_loss():
    p, mask = planted_problem("cp", (10, 9, 8), 2, 0.5)
    kw = {"mask": mask, "max_iter": 5, "init": "svd"}
    named = gcp(p.tensor, 2, loss="gaussian", generator=torch.Generator().manual_seed(0), **kw)
    custom = gcp(
        p.tensor,
        2,
        loss=lambda x, m: (x - m) ** 2,
        generator=torch.Generator().manual_seed(0),
        **kw,
    )
    torch.testing.assert_close(custom.model.to_dense(), named.model.to_dense())
    assert custom.link == "identity" and named.extras["loss_name"] == "gaussian"


def _poisson_problem(seed, shape=(30, 25, 20)):
    gen = torch.Generator().manual_seed(seed)
    fs = [
        torch.cat([torch.ones(s, 1, dtype=F64), torch.randn(s, 2, generator=gen, dtype=F64)], 1)
        for s in shape
    ]
    log_rates = CPTensor(torch.tensor([1.5, 0.4, 0.3], dtype=F64), tuple(fs)).to_dense()
    rates = torch.exp(log_rates)
    counts = torch.poisson(rates, generator=gen)
    mask = torch.rand(shape, generator=gen) >= 0.5
    return rates, counts, mask


@pytest.mark.parametrize("seed", [0, 1])
def test_poisson_gcp_recovers_rates_at_least_twice_as_well_as_gaussian_cp(seed):
    rates, counts, mask = _poisson_problem(seed)
    hidden = ~mask
    idx = hidden.nonzero()
    pois = gcp(counts, 3, loss="poisson_log", mask=mask, generator=torch.Generator().manual_seed(0))
    gauss = cp_als(counts, 3, mask=mask, generator=torch.Generator().manual_seed(0))
    assert pois.link == "exp"
    err_p = relative_error(pois.predict(idx), rates[hidden])
    err_g = relative_error(gauss.predict(idx), rates[hidden])
    # Measured: 0.094 vs 0.75 (seed 0) and 0.085 vs 15 (seed 1): log-normal-like rates are far
    # from low rank on the count scale. The test asks for a factor of 2.
    assert err_p < 0.5 * err_g
    assert err_p < 0.15


def test_bernoulli_logit_predicts_probabilities():
    gen = torch.Generator().manual_seed(3)
    truth = CPTensor.from_factors(
        [torch.randn(s, 2, generator=gen, dtype=F64) for s in (25, 20, 15)]
    )
    probs = torch.sigmoid(2 * truth.to_dense())
    x = torch.bernoulli(probs, generator=gen)
    mask = torch.rand(x.shape, generator=gen) >= 0.3
    res = gcp(
        x, 2, loss="bernoulli_logit", mask=mask, l2=1.0, generator=torch.Generator().manual_seed(0)
    )
    hidden = ~mask
    pred = res.predict(hidden.nonzero())
    assert bool(((pred > 0) & (pred < 1)).all())
    base = relative_error(torch.full_like(pred, float(x[mask].mean())), probs[hidden])
    assert relative_error(pred, probs[hidden]) < 0.6 * base


def test_gamma_log_recovers_means_of_positive_data():
    gen = torch.Generator().manual_seed(4)
    truth = CPTensor.from_factors(
        [torch.randn(s, 2, generator=gen, dtype=F64) for s in (25, 20, 15)]
    )
    means = torch.exp(0.5 * truth.to_dense())
    shape_k = 20  # Gamma(k, mean / k) as a sum of k exponentials (seeded)
    u = torch.rand((shape_k, *means.shape), generator=gen, dtype=F64)
    x = -(means / shape_k) * torch.log(u).sum(0)
    mask = torch.rand(x.shape, generator=gen) >= 0.5
    res = gcp(x, 2, loss="gamma_log", mask=mask, generator=torch.Generator().manual_seed(0))
    hidden = ~mask
    err = relative_error(res.predict(hidden.nonzero()), means[hidden])
    noise = relative_error(x[hidden], means[hidden])  # about 1 / sqrt(shape_k)
    # Measured 0.134 against a noise level of 0.208 (the fit started at the truth gives 0.134).
    assert err < 0.75 * noise


def test_huber_resists_outliers_better_than_least_squares():
    p, mask = planted_problem("cp", (20, 18, 16), 2, 0.5, noise=0.01)
    gen = torch.Generator().manual_seed(6)
    dirty = p.tensor.clone()
    spikes = torch.rand(dirty.shape, generator=gen) < 0.02
    dirty[spikes] += 20.0 * torch.sign(torch.randn(int(spikes.sum()), generator=gen, dtype=F64))
    huber = gcp(
        dirty,
        2,
        loss="huber",
        huber_delta=0.1,
        mask=mask,
        generator=torch.Generator().manual_seed(0),
    )
    ls = cp_wopt(dirty, 2, mask=mask, generator=torch.Generator().manual_seed(0))
    assert hidden_error(huber.model, p, mask) < 0.2 * hidden_error(ls.model, p, mask)
    assert hidden_error(huber.model, p, mask) < 0.05


def test_cp_values_backward_is_the_sparse_mttkrp_gradient():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, 5, generator=gen, dtype=F64)
    sp = SparseTensor.from_dense(x, torch.rand(x.shape, generator=gen) < 0.6)
    fs = [torch.randn(s, 2, generator=gen, dtype=F64, requires_grad=True) for s in x.shape]
    assert torch.autograd.gradcheck(lambda a, b, c: cp_values([a, b, c], sp), tuple(fs))
    up = torch.randn(sp.nnz, generator=gen, dtype=F64)
    (cp_values(fs, sp) * up).sum().backward()
    ref = [f.detach().clone().requires_grad_(True) for f in fs]
    idx = sp.indices.long()
    (((ref[0][idx[0]] * ref[1][idx[1]] * ref[2][idx[2]]).sum(1)) * up).sum().backward()
    for a, b in zip(fs, ref):
        torch.testing.assert_close(a.grad, b.grad)


def test_gcp_loss_table():
    x = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    m = torch.tensor([0.5, -1.0, 1.0], dtype=F64)
    torch.testing.assert_close(gcp_loss("gaussian")(x, m), (x - m) ** 2)
    torch.testing.assert_close(gcp_loss("poisson_log")(x, m), torch.exp(m) - x * m)
    torch.testing.assert_close(gcp_loss("bernoulli_logit")(x, m), torch.log1p(torch.exp(m)) - x * m)
    torch.testing.assert_close(gcp_loss("gamma_log")(x, m), x * torch.exp(-m) + m)
    r = (x - m).abs()
    huber = torch.where(r <= 1.0, r**2, 2 * r - 1)
    torch.testing.assert_close(gcp_loss("huber", huber_delta=1.0)(x, m), huber)


def test_gradient_methods_errors():
    p, mask = planted_problem("cp", (5, 4, 3), 2, 0.5)
    x = p.tensor
    with pytest.raises(ValueError, match=r"cp_wopt: optimizer must be one of \('lbfgs', 'adam'\)"):
        cp_wopt(x, 2, mask=mask, optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cp_wopt: batch_size is for optimizer='adam'"):
        cp_wopt(x, 2, mask=mask, batch_size=10)
    with pytest.raises(ValueError, match=r"cp_wopt: lr must be positive; got 0"):
        cp_wopt(x, 2, mask=mask, optimizer="adam", lr=0.0)
    with pytest.raises(ValueError, match=r"gcp: loss must be one of \('gaussian', 'poisson_log'"):
        gcp(x, 2, mask=mask, loss="poisson")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"gcp: link is fixed by loss='gaussian'"):
        gcp(x, 2, mask=mask, link="exp")
    with pytest.raises(ValueError, match=r"gcp: link must be 'identity', 'exp' or 'sigmoid'"):
        gcp(x, 2, mask=mask, loss=lambda a, b: (a - b) ** 2, link="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"gcp: loss='poisson_log' needs counts >= 0; got a value"):
        gcp(x - 10, 2, mask=mask, loss="poisson_log")
    with pytest.raises(ValueError, match=r"gcp: loss='gamma_log' needs positive data"):
        gcp(x.abs() * 0, 2, mask=mask, loss="gamma_log")
    with pytest.raises(ValueError, match=r"gcp: loss='bernoulli_logit' needs binary data"):
        gcp(x, 2, mask=mask, loss="bernoulli_logit")
    with pytest.raises(ValueError, match=r"gcp: huber_delta must be a positive number; got 0"):
        gcp(x, 2, mask=mask, loss="huber", huber_delta=0)
    with pytest.raises(ValueError, match=r"gcp: init must be 'svd', 'random' or a CPTensor"):
        gcp(x.abs(), 2, mask=mask, loss="poisson_log", init="nvecs")  # type: ignore[arg-type]
    counts = torch.poisson(
        torch.full((6, 5, 4), 3.0, dtype=F64), generator=torch.Generator().manual_seed(0)
    )
    with pytest.raises(FloatingPointError, match=r"the training objective became NaN or Inf at"):
        gcp(
            counts,
            2,
            loss="poisson_log",
            optimizer="adam",
            lr=1e6,
            init="random",
            max_iter=50,
            generator=torch.Generator().manual_seed(0),
        )
