"""``TensorContraction`` and ``TensorRegression`` (``factorch.nn._tensor_layers``)."""

from __future__ import annotations

import pytest
import torch

import factorch.nn as fnn

TCL = fnn.TensorContraction((8, 8), (4, 4))


def test_tensor_contraction_matches_reference_einsum():
    g = torch.Generator().manual_seed(4)
    tcl = fnn.TensorContraction((4, 5, 6), (2, 3, 4), bias=True, generator=g, dtype=torch.float64)
    with torch.no_grad():
        tcl.bias.normal_(generator=g)
    x = torch.randn(7, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    u1, u2, u3 = tcl.factors
    ref = torch.einsum("bcijk,ai,dj,ek->bcade", x, u1, u2, u3) + tcl.bias
    for impl in ("factorized", "reconstructed", "auto"):
        tcl.implementation = impl
        assert torch.allclose(tcl(x), ref, atol=1e-12), impl


def test_tensor_contraction_preserves_variance():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2048, 8, 8, generator=g)
    tcl = fnn.TensorContraction((8, 8), (4, 4), generator=g)
    assert float(tcl(x).detach().var()) == pytest.approx(1.0, rel=0.3)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: fnn.TensorContraction((8, 8), (4,)),
            ValueError,
            "output_shape needs one size per input mode",
        ),
        (lambda: TCL(torch.randn(3, 8, 7)), ValueError, r"input must end with the modes \(8, 8\)"),
        (lambda: TCL(None), TypeError, "TensorContraction: input must be a torch.Tensor"),
        (
            lambda: TCL(torch.ones(2, 8, 8, dtype=torch.int64)),
            TypeError,
            "input must be a floating-point tensor",
        ),
        (
            lambda: fnn.TensorContraction((8, 8), (4, 4), dtype=torch.int64),
            TypeError,
            "TensorContraction: dtype must be a floating dtype",
        ),
        (
            lambda: fnn.TensorContraction((8, 8), (4, 4), generator=3),
            TypeError,
            "generator must be a torch.Generator",
        ),
        (
            lambda: fnn.TensorRegression((6, 6), 0, rank=2),
            ValueError,
            "out_features must be a positive int",
        ),
        (
            lambda: fnn.TensorRegression((6, 6), 3, rank=2)([1.0]),
            TypeError,
            "TensorRegression: input must be a torch.Tensor",
        ),
    ],
    ids=["output-shape", "modes", "none", "int-input", "int-dtype", "generator", "out", "list"],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_tensor_regression_recovers_a_planted_low_rank_regression():
    """TRL (Tucker) trained on data from a planted rank-(1, 2, 2) regression tensor."""
    g = torch.Generator().manual_seed(6)
    truth = fnn.TensorRegression((6, 6), 3, rank=(1, 2, 2), bias=False, generator=g, init_std=1.0)
    x = torch.randn(2048, 6, 6, generator=g)
    with torch.no_grad():
        y = truth(x)
    model = fnn.TensorRegression((6, 6), 3, rank=(3, 2, 2), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    rel = float((model.weight - truth.weight).detach().norm() / truth.weight.detach().norm())
    assert rel < 0.05
