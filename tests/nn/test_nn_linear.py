"""``FactorizedLinear`` (``factorch.nn._linear``): argument and input errors, the cost model
behind ``implementation="auto"``, small-batch CP path, conversion back to dense, numerics of
``from_dense`` (NaN, half precision, autocast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import factorch.nn as fnn
from factorch.nn.formats._cp import cp_sequential

LAYER = fnn.FactorizedLinear(16, 8, rank=2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: fnn.FactorizedLinear(16, 16, format="cp"), ValueError, "give exactly one of"),
        (lambda: fnn.FactorizedLinear(16, 16, rank=2, ratio=0.5), ValueError, "exactly one of"),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=0.5),
            TypeError,
            "got the float 0.5. For a fraction .* pass ratio=",
        ),
        (lambda: fnn.FactorizedLinear(16, 16, rank=0), ValueError, r"rank must be in \[1, 16\]"),
        (
            lambda: fnn.FactorizedLinear(16, 16, format="cp", rank=0),
            ValueError,
            "FactorizedLinear: rank must be a positive int; got 0",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, format="blocktt", rank=2),
            ValueError,
            "FactorizedLinear: format must be one of",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, implementation="mobilenet"),
            ValueError,
            "implementation must be one of",
        ),
        (
            lambda: fnn.FactorizedLinear(0, 16, rank=2),
            ValueError,
            "in_features must be a positive int; got 0",
        ),
        (
            lambda: fnn.FactorizedLinear(
                16, 16, format="cp", rank=2, shape=fnn.TensorizedShape((4, 4), (3, 5))
            ),
            ValueError,
            "folds a 16 x 15 matrix but the layer is 16 x 16",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, format="cp", rank=2, shape=((4, 4), (4, 4))),
            TypeError,
            "shape must be a TensorizedShape",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, rank_dropout=1.0),
            ValueError,
            "rank_dropout must be a probability",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, format="cp", ratio=0.001),
            ValueError,
            "FactorizedLinear: ratio 0.001 is below the smallest cp tensor",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, ratio=float("nan")),
            ValueError,
            "ratio must be a positive finite number",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, dtype=torch.int64),
            TypeError,
            r"FactorizedLinear: dtype must be a floating dtype .* got torch.int64",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, dtype=torch.complex64),
            TypeError,
            "dtype must be a floating dtype",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, generator=0),
            TypeError,
            "generator must be a torch.Generator or None; got int",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, init_std=-1.0),
            ValueError,
            "init_std must be a non-negative finite number",
        ),
        (
            lambda: fnn.FactorizedLinear(16, 16, rank=2, decomposition=["svd"]),
            TypeError,
            "decomposition must be a mapping of options or None; got list",
        ),
        (
            lambda: fnn.FactorizedLinear.from_dense(nn.Conv2d(2, 2, 3), rank=1),
            TypeError,
            "expected an nn.Linear; got Conv2d",
        ),
        (
            lambda: LAYER.set_factors([torch.zeros(3, 3)]),
            ValueError,
            "factor shapes must be",
        ),
    ],
    ids=[
        "no-rank",
        "both",
        "float-rank",
        "rank-0",
        "cp-rank-0",
        "format",
        "implementation",
        "in-features",
        "shape-mismatch",
        "shape-type",
        "rank-dropout",
        "ratio-too-small",
        "ratio-nan",
        "int-dtype",
        "complex-dtype",
        "int-generator",
        "init-std",
        "decomposition",
        "from-dense-type",
        "set-factors",
    ],
)
def test_argument_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("fmt", ["cp", "tr"])
def test_absurd_rank_is_refused_instantly_with_the_memory_it_needs(fmt):
    """Issue 9.8: rank=10**9 used to start allocating 8-160 GB."""
    with pytest.raises(ValueError, match=rf"FactorizedLinear: the {fmt} factors at rank .* GiB"):
        fnn.FactorizedLinear(16, 16, format=fmt, rank=10**9)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (
            [[1.0] * 16],
            TypeError,
            r"input must be a torch.Tensor of shape \(\.\.\., 16\); got list",
        ),
        (None, TypeError, "FactorizedLinear: input must be a torch.Tensor .* got NoneType"),
        (torch.tensor(1.0), ValueError, r"must have 16 features in its last dimension; got shape"),
        (torch.randn(3, 8), ValueError, "must have 16 features in its last dimension"),
        (torch.ones(3, 16, dtype=torch.int64), TypeError, "floating-point tensor .* torch.int64"),
        (torch.randn(3, 16, dtype=torch.float64), TypeError, "input dtype torch.float64 does not"),
    ],
    ids=["list", "none", "0-d", "features", "int", "float64"],
)
def test_forward_input_errors(x, error, match):
    with pytest.raises(error, match=match):
        LAYER(x)


def test_numpy_integer_rank_is_accepted():
    layer = fnn.FactorizedLinear(16, 16, format="tt", rank=np.int64(3))
    assert layer.rank == (1, 3, 1)


def test_from_dense_refuses_nan_weights_naming_them():
    """Issue 9.13: a LinAlgError from the SVD used to be the only message."""
    dense = nn.Linear(8, 6)
    with torch.no_grad():
        dense.weight[1, 2] = math.nan
    with pytest.raises(ValueError, match="FactorizedLinear.from_dense: the weight contains 1 NaN"):
        fnn.FactorizedLinear.from_dense(dense, rank=2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_from_dense_of_half_layers_decomposes_in_float32(dtype):
    g = torch.Generator().manual_seed(0)
    dense = nn.Linear(20, 12)
    with torch.no_grad():
        dense.weight.copy_(torch.randn(12, 20, generator=g))
    half = fnn.FactorizedLinear.from_dense(dense.to(dtype), format="tucker", rank=(2, 2, 3, 3))
    ref = fnn.FactorizedLinear.from_dense(dense.float(), format="tucker", rank=(2, 2, 3, 3))
    assert all(p.dtype == dtype for p in half.parameters())
    for a, b in zip(half.factors, ref.factors):
        assert torch.equal(a, b.to(dtype))


def test_from_dense_under_autocast_decomposes_in_the_weight_dtype():
    """Issue 9.1: an active autocast must not lower the precision of the decomposition."""
    g = torch.Generator().manual_seed(1)
    dense = nn.Linear(20, 12)
    with torch.no_grad():
        dense.weight.copy_(torch.randn(12, 20, generator=g))
    ref = fnn.FactorizedLinear.from_dense(dense, format="tucker", rank=(3, 3, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fnn.FactorizedLinear.from_dense(dense, format="tucker", rank=(3, 3, 4, 4))
    assert all(torch.equal(a, b) for a, b in zip(got.factors, ref.factors))
    assert all(p.dtype == torch.float32 for p in got.parameters())


# --- the "auto" rule ----------------------------------------------------------------------------
def test_auto_switches_to_reconstruction_for_large_batches():
    layer = fnn.FactorizedLinear(256, 256, format="tt", rank=(1, 16, 1))
    fact_small, recon_small = layer.flops(1)
    fact_big, recon_big = layer.flops(100_000)
    assert fact_small < recon_small  # one row: contracting the cores is cheaper
    assert fact_big > recon_big  # many rows: rebuilding once then one GEMM is cheaper


def test_flop_counts_match_explicit_formulas():
    lin = fnn.FactorizedLinear(20, 12, format="lowrank", rank=3)
    assert lin.flops(5) == (2 * 5 * 3 * (20 + 12), 2 * 12 * 20 * 3 + 2 * 5 * 12 * 20)


def test_auto_cost_prefers_rebuilding_a_tt_matrix_for_large_batches():
    spec = fnn.TensorizedShape((32, 32), (32, 32))
    layer = fnn.FactorizedLinear(1024, 1024, format="tt", rank=(1, 51, 1), shape=spec)
    fact, recon = layer.costs(256)
    assert fact > recon  # memory-bound contraction: 13M intermediates at batch 256
    fact, recon = layer.costs(1)
    assert fact < recon


def test_forced_implementation_skips_the_cost_model(monkeypatch):
    layer = fnn.FactorizedLinear(16, 8, format="cp", rank=2, implementation="factorized")
    monkeypatch.setattr(layer.parametrization, "linear_flops", _fail)
    layer(torch.randn(3, 16))  # no cost evaluation on a forced path
    layer.implementation = "auto"
    with pytest.raises(AssertionError, match="cost model ran"):
        layer(torch.randn(3, 16))


def _fail(*args: object) -> int:
    raise AssertionError("cost model ran")


def test_cp_sequential_path_for_small_batches_matches_reconstruction():
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


def test_to_dense_round_trip_keeps_the_mode():
    g = torch.Generator().manual_seed(2)
    lin = fnn.FactorizedLinear(20, 12, format="tucker", ratio=0.5, generator=g).eval()
    x = torch.randn(3, 20, generator=g)
    dense = lin.to_dense()
    assert torch.allclose(dense(x), lin(x), atol=1e-5)
    assert not dense.training
