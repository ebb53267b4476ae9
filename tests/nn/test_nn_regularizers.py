"""Tensor dropout and the tensor lasso."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import factorch.nn as fnn


def test_tensor_dropout_sets_every_factorized_layer_and_acts_only_in_training():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        fnn.FactorizedLinear(16, 16, format="cp", rank=2, generator=g),  # rank 2 < 4 modes
        nn.ReLU(),
        fnn.FactorizedLinear(16, 4, format="tucker", rank=2, generator=g),
    )
    assert fnn.tensor_dropout(model, 0.5) is model
    assert model[0].rank_dropout == model[2].rank_dropout == 0.5
    x = torch.randn(8, 16, generator=g)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    outs = [model(x).detach() for _ in range(20)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert all(bool(torch.isfinite(o).all()) for o in outs)
    fnn.tensor_dropout(model, 0.0)
    assert torch.equal(model(x), model(x))


def test_tensor_dropout_keeps_the_expected_output():
    g = torch.Generator().manual_seed(2)
    layer = fnn.FactorizedLinear(
        12, 6, bias=False, format="tt", rank=3, generator=g, dtype=torch.float64, rank_dropout=0.4
    )
    x = torch.randn(4, 12, generator=g, dtype=torch.float64)
    layer.eval()
    ref = layer(x).detach()
    layer.train()
    torch.manual_seed(3)
    mean = sum(layer(x).detach() for _ in range(4000)) / 4000
    assert float((mean - ref).norm() / ref.norm()) < 0.05


CP = fnn.FactorizedLinear(12, 6, format="cp", rank=4)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: fnn.tensor_dropout(fnn.FactorizedLinear(4, 4, rank=2), 1.5),
            ValueError,
            r"p must be a probability in \[0, 1\)",
        ),
        (lambda: fnn.tensor_dropout(nn.Linear(4, 4), 0.1), ValueError, "no factorized layer"),
        (
            lambda: fnn.component_magnitudes(fnn.FactorizedLinear(12, 6, format="tt", rank=2)),
            ValueError,
            "component_magnitudes: format 'tt' has no rank-one components",
        ),
        (lambda: fnn.tensor_lasso(nn.Linear(3, 3)), ValueError, "no CP or low-rank factorized"),
        (
            lambda: fnn.tensor_lasso(CP, factor_decay=0),
            ValueError,
            "factor_decay must be a positive number",
        ),
        (
            lambda: fnn.prune_components_(CP, -1),
            ValueError,
            "threshold must be a non-negative number",
        ),
    ],
    ids=["dropout-p", "dropout-none", "magnitudes-tt", "lasso-none", "factor-decay", "threshold"],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_tensor_lasso_value_and_magnitudes():
    g = torch.Generator().manual_seed(4)
    layer = fnn.FactorizedLinear(12, 6, format="cp", rank=4, generator=g, dtype=torch.float64)
    weights, *mats = (f.detach() for f in layer.factors)
    ref = weights.abs().sum() + 0.25 * sum(float((a * a).sum()) for a in mats)
    assert float(fnn.tensor_lasso(layer, factor_decay=0.5).detach()) == pytest.approx(float(ref))
    low = fnn.FactorizedLinear(12, 6, format="lowrank", rank=3, generator=g, dtype=torch.float64)
    u, v = (f.detach() for f in low.factors)
    assert float(fnn.tensor_lasso(low).detach()) == pytest.approx(
        0.5 * float((u * u).sum() + (v * v).sum())
    )
    # the lowrank penalty is minimised by the balanced split: it then equals the nuclear norm
    balanced = fnn.FactorizedLinear.from_dense(low.to_dense(), format="lowrank", rank=3)
    nuclear = float(torch.linalg.matrix_norm(low.weight.detach(), ord="nuc"))
    assert float(fnn.tensor_lasso(balanced).detach()) == pytest.approx(nuclear)
    mags = fnn.component_magnitudes(layer).detach()
    assert torch.allclose(mags, weights.abs() * torch.stack([m.norm(dim=0) for m in mats]).prod(0))


def test_tensor_lasso_prunes_a_cp_regression_to_its_planted_rank():
    """Data from a rank-2 CP linear map; a rank-8 CP layer trained with the lasso and pruned.

    With lam = 3e-2 the six spare components end below 1e-3 of the largest (seeds 5 and 6);
    plain L1 on component magnitudes left them at 0.07-0.7 (it does not penalise splitting)."""
    g = torch.Generator().manual_seed(5)
    spec = fnn.TensorizedShape((4, 4), (4, 4))
    truth = fnn.FactorizedLinear(
        16,
        16,
        bias=False,
        format="cp",
        rank=2,
        shape=spec,
        generator=g,
        init_std=1.0,
        dtype=torch.float64,
    )
    model = fnn.FactorizedLinear(
        16, 16, bias=False, format="cp", rank=8, shape=spec, generator=g, dtype=torch.float64
    )
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(800):
        x = torch.randn(256, 16, generator=g, dtype=torch.float64)
        with torch.no_grad():
            y = truth(x)
        opt.zero_grad()
        loss = F.mse_loss(model(x), y) + 3e-2 * fnn.tensor_lasso(model)
        loss.backward()
        opt.step()
    ranks = fnn.prune_components_(model, 0.05)
    assert ranks == {"": 2}
    assert model.rank == 2 and model.factors[1].shape == (4, 2)
    rel = float((model.weight - truth.weight).detach().norm() / truth.weight.detach().norm())
    assert rel < 0.05
