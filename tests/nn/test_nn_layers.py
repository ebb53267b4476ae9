"""Layer behaviour beyond the contract battery: argument errors, FLOP-based dispatch, embeddings,
tensor contraction and regression layers, conversion back to dense."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import factorch.nn as fnn


# --- argument errors --------------------------------------------------------------------------
def test_linear_argument_errors():
    with pytest.raises(ValueError, match="give exactly one of rank= .* and ratio="):
        fnn.FactorizedLinear(16, 16, format="cp")
    with pytest.raises(ValueError, match="give exactly one of rank= .* and ratio="):
        fnn.FactorizedLinear(16, 16, rank=2, ratio=0.5)
    with pytest.raises(TypeError, match="got the float 0.5. For a fraction .* pass ratio="):
        fnn.FactorizedLinear(16, 16, rank=0.5)
    with pytest.raises(ValueError, match=r"rank must be in \[1, 16\] .* got 0"):
        fnn.FactorizedLinear(16, 16, rank=0)
    with pytest.raises(ValueError, match="rank must be a positive int; got 0"):
        fnn.FactorizedLinear(16, 16, format="cp", rank=0)
    with pytest.raises(ValueError, match="format must be one of"):
        fnn.FactorizedLinear(16, 16, format="blocktt", rank=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="implementation must be one of"):
        fnn.FactorizedLinear(16, 16, rank=2, implementation="mobilenet")
    with pytest.raises(ValueError, match="in_features must be a positive int; got 0"):
        fnn.FactorizedLinear(0, 16, rank=2)
    with pytest.raises(ValueError, match="folds a 16 x 15 matrix but the layer is 16 x 16"):
        fnn.FactorizedLinear(16, 16, format="cp", rank=2, shape=fnn.TensorizedShape((4, 4), (3, 5)))
    with pytest.raises(TypeError, match="shape must be a TensorizedShape"):
        fnn.FactorizedLinear(16, 16, format="cp", rank=2, shape=((4, 4), (4, 4)))
    with pytest.raises(ValueError, match="rank_dropout must be a probability"):
        fnn.FactorizedLinear(16, 16, rank=2, rank_dropout=1.0)
    with pytest.raises(ValueError, match="is below the smallest cp tensor"):
        fnn.FactorizedLinear(16, 16, format="cp", ratio=0.001)
    layer = fnn.FactorizedLinear(16, 8, rank=2)
    with pytest.raises(ValueError, match="input must have 16 features in its last dimension"):
        layer(torch.randn(3, 8))
    with pytest.raises(TypeError, match="expected an nn.Linear; got Conv2d"):
        fnn.FactorizedLinear.from_dense(nn.Conv2d(2, 2, 3), rank=1)
    with pytest.raises(ValueError, match="factor shapes must be"):
        layer.set_factors([torch.zeros(3, 3)])


def test_conv_argument_errors():
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1 or 2 such ints"):
        fnn.FactorizedConv2d(3, 4, (3, 3, 3), rank=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        fnn.FactorizedConv2d(3, 4, 3, stride=2, padding="same", rank=2)
    with pytest.raises(ValueError, match="padding must be 'valid', 'same'"):
        fnn.FactorizedConv2d(3, 4, 3, padding="full", rank=2)
    with pytest.raises(ValueError, match="padding_mode must be"):
        fnn.FactorizedConv2d(3, 4, 3, padding_mode="mirror", rank=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        fnn.FactorizedConv2d(3, 0, 3, rank=2)
    with pytest.raises(ValueError, match="grouped convolutions are not supported"):
        fnn.FactorizedConv2d.from_dense(nn.Conv2d(4, 4, 3, groups=2), rank=2)
    with pytest.raises(TypeError, match="expected an Conv2d; got Conv1d"):
        fnn.FactorizedConv2d.from_dense(nn.Conv1d(4, 4, 3), rank=2)
    layer = fnn.FactorizedConv2d(3, 4, 3, rank=2)
    with pytest.raises(ValueError, match=r"input must be \(batch, 3, \*2 spatial dims\)"):
        layer(torch.randn(2, 5, 8, 8))


def test_embedding_errors_and_padding_idx():
    emb = fnn.FactorizedEmbedding(24, 6, padding_idx=-1, rank=3)
    assert emb.padding_idx == 23
    out = emb(torch.tensor([0, 23, 5]))
    assert torch.equal(out[1], torch.zeros(6)) and float(out[0].detach().abs().max()) > 0
    emb(torch.tensor([23, 23])).sum().backward()  # padding rows carry no gradient
    assert all(float(p.grad.abs().max()) == 0 for p in emb.parameters())
    with pytest.raises(IndexError, match=r"indices must be in \[0, 23\]; got values in \[-1, 3\]"):
        emb(torch.tensor([-1, 3]))
    with pytest.raises(IndexError, match=r"got values in \[2, 24\]"):
        emb(torch.tensor([2, 24]))
    with pytest.raises(TypeError, match="indices must be an integer tensor; got torch.float32"):
        emb(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"padding_idx must be in \[-24, 23\]"):
        fnn.FactorizedEmbedding(24, 6, padding_idx=24, rank=3)
    with pytest.raises(ValueError, match="max_norm and sparse=True embeddings are not supported"):
        fnn.FactorizedEmbedding.from_dense(nn.Embedding(24, 6, max_norm=1.0), rank=3)


def test_embedding_lookup_equals_table_rows_for_every_format():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 60, (4, 7), generator=g)
    for fmt in ("lowrank", "cp", "tucker", "tt", "tr"):
        emb = fnn.FactorizedEmbedding(
            60,
            12,
            format=fmt,
            ratio=0.5,
            generator=g,
            dtype=torch.float64,
            implementation="factorized",
        )
        assert torch.allclose(emb(idx), emb.weight[idx], atol=1e-12, rtol=0), fmt
        dense = emb.to_dense()
        assert torch.allclose(dense(idx), emb(idx), atol=1e-12, rtol=0), fmt


def test_embedding_default_init_matches_nn_embedding_scale():
    g = torch.Generator().manual_seed(1)
    emb = fnn.FactorizedEmbedding(4096, 64, rank=16, generator=g)
    assert float(emb.weight.detach().std()) == pytest.approx(1.0, rel=0.2)


# --- dispatch ---------------------------------------------------------------------------------
def test_auto_switches_to_reconstruction_for_large_batches():
    layer = fnn.FactorizedLinear(256, 256, format="tt", rank=(1, 16, 1))
    fact_small, recon_small = layer.flops(1)
    fact_big, recon_big = layer.flops(100_000)
    assert fact_small < recon_small  # one row: contracting the cores is cheaper
    assert fact_big > recon_big  # many rows: rebuilding once then one GEMM is cheaper


def test_flop_counts_match_explicit_formulas():
    lin = fnn.FactorizedLinear(20, 12, format="lowrank", rank=3)
    assert lin.flops(5) == (2 * 5 * 3 * (20 + 12), 2 * 12 * 20 * 3 + 2 * 5 * 12 * 20)
    conv = fnn.FactorizedConv2d(4, 6, 3, padding=1, format="tucker", rank=(2, 3, 3, 3))
    b, h, w = 2, 8, 8
    fact, recon = conv.flops((b, 4, h, w))
    assert fact == 2 * b * (h * w * 4 * 3 + h * w * 2 * (3 * 9 + 6))
    assert recon == conv.parametrization.reconstruction_flops() + 2 * b * h * w * 6 * 4 * 9


def test_to_dense_round_trip_for_linear_and_conv():
    g = torch.Generator().manual_seed(2)
    lin = fnn.FactorizedLinear(20, 12, format="tucker", ratio=0.5, generator=g)
    x = torch.randn(3, 20, generator=g)
    assert torch.allclose(lin.to_dense()(x), lin(x), atol=1e-5)
    conv = fnn.FactorizedConv2d(
        3, 5, 3, stride=2, padding=1, padding_mode="circular", format="cp", rank=4, generator=g
    )
    xc = torch.randn(2, 3, 9, 9, generator=g)
    assert torch.allclose(conv.to_dense()(xc), conv(xc), atol=1e-5)


def test_conv_unbatched_input_and_same_padding():
    g = torch.Generator().manual_seed(3)
    conv = fnn.FactorizedConv2d(
        3, 5, (3, 2), padding="same", padding_mode="reflect", format="tt", rank=3, generator=g
    )
    x = torch.randn(3, 7, 6, generator=g)
    y = conv(x)
    assert y.shape == (5, 7, 6)
    assert torch.allclose(y, conv.to_dense()(x), atol=1e-5)


# --- tensor contraction / regression ------------------------------------------------------------
def test_tensor_contraction_matches_reference_einsum():
    g = torch.Generator().manual_seed(4)
    tcl = fnn.TensorContraction((4, 5, 6), (2, 3, 4), bias=True, generator=g, dtype=torch.float64)
    with torch.no_grad():
        tcl.bias.normal_(generator=g)
    x = torch.randn(7, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    u1, u2, u3 = tcl.factors
    ref = torch.einsum("bcijk,ai,dj,ek->bcade", x, u1, u2, u3) + tcl.bias
    for impl in ("factorized", "reconstructed"):
        tcl.implementation = impl
        assert torch.allclose(tcl(x), ref, atol=1e-12), impl


def test_tensor_contraction_preserves_variance_and_errors():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2048, 8, 8, generator=g)
    tcl = fnn.TensorContraction((8, 8), (4, 4), generator=g)
    assert float(tcl(x).detach().var()) == pytest.approx(1.0, rel=0.3)
    with pytest.raises(ValueError, match="output_shape needs one size per input mode"):
        fnn.TensorContraction((8, 8), (4,))
    with pytest.raises(ValueError, match=r"input must end with the modes \(8, 8\)"):
        tcl(torch.randn(3, 8, 7))


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
    with pytest.raises(ValueError, match="out_features must be a positive int"):
        fnn.TensorRegression((6, 6), 0, rank=2)


def test_cp_sequential_path_for_small_batches_matches_reconstruction():
    from factorch.nn.formats._cp import cp_sequential

    g = torch.Generator().manual_seed(7)
    spec = fnn.TensorizedShape((4, 3, 4), (4, 4, 4))
    layer = fnn.FactorizedLinear(
        64, 48, format="cp", rank=5, shape=spec, generator=g, dtype=torch.float64
    )
    assert cp_sequential(spec, 1) and not cp_sequential(spec, 64)
    for batch in (1, 64):
        x = torch.randn(batch, 64, generator=g, dtype=torch.float64)
        grads = []
        for impl in ("factorized", "reconstructed"):
            layer.implementation = impl
            layer.zero_grad()
            y = layer(x)
            y.pow(2).sum().backward()
            grads.append([y.detach()] + [p.grad.clone() for p in layer.parameters()])
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-12, rtol=1e-10)


def test_auto_cost_prefers_rebuilding_a_tt_matrix_for_large_batches():
    spec = fnn.TensorizedShape((32, 32), (32, 32))
    layer = fnn.FactorizedLinear(1024, 1024, format="tt", rank=(1, 51, 1), shape=spec)
    fact, recon = layer.costs(256)
    assert fact > recon  # memory-bound contraction: 13M intermediates at batch 256
    fact, recon = layer.costs(1)
    assert fact < recon
