"""``FactorizedConv1d/2d/3d`` (``factorch.nn._conv``): argument and input errors, FLOP formulas,
padding modes, unbatched inputs, conversion back to dense."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import factorch.nn as fnn

LAYER = fnn.FactorizedConv2d(3, 4, 3, rank=2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: fnn.FactorizedConv2d(3, 4, (3, 3, 3), rank=2),
            ValueError,
            "kernel_size must be an int >= 1 or 2 such ints",
        ),
        (
            lambda: fnn.FactorizedConv2d(3, 4, 3, stride=2, padding="same", rank=2),
            ValueError,
            "padding='same' needs stride 1",
        ),
        (
            lambda: fnn.FactorizedConv2d(3, 4, 3, padding="full", rank=2),
            ValueError,
            "padding must be 'valid', 'same'",
        ),
        (
            lambda: fnn.FactorizedConv2d(3, 4, 3, padding_mode="mirror", rank=2),
            ValueError,
            "padding_mode must be",
        ),
        (
            lambda: fnn.FactorizedConv2d(3, 0, 3, rank=2),
            ValueError,
            "out_channels must be a positive int",
        ),
        (
            lambda: fnn.FactorizedConv2d.from_dense(nn.Conv2d(4, 4, 3, groups=2), rank=2),
            ValueError,
            "grouped convolutions are not supported",
        ),
        (
            lambda: fnn.FactorizedConv2d.from_dense(nn.Conv1d(4, 4, 3), rank=2),
            TypeError,
            "expected an Conv2d; got Conv1d",
        ),
        (
            lambda: fnn.FactorizedConv2d(3, 4, 3, format="cp", rank=10**9),
            ValueError,
            r"FactorizedConv2d: the cp factors at rank 1000000000 needs about .* GiB",
        ),
        (
            lambda: fnn.FactorizedConv2d(3, 4, 3, rank=2, dtype=torch.int32),
            TypeError,
            "FactorizedConv2d: dtype must be a floating dtype",
        ),
    ],
    ids=[
        "kernel",
        "same-stride",
        "padding",
        "padding-mode",
        "channels",
        "groups",
        "wrong-dense",
        "absurd-rank",
        "int-dtype",
    ],
)
def test_argument_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (None, TypeError, r"FactorizedConv2d: input must be a torch.Tensor of shape \(batch, 3"),
        ([[1.0]], TypeError, "input must be a torch.Tensor .* got list"),
        (torch.tensor(1.0), ValueError, r"input must be \(batch, 3, \*2 spatial dims\)"),
        (torch.randn(2, 5, 8, 8), ValueError, r"input must be \(batch, 3, \*2 spatial dims\)"),
        (torch.ones(2, 3, 8, 8, dtype=torch.int64), TypeError, "floating-point tensor"),
    ],
    ids=["none", "list", "0-d", "channels", "int"],
)
def test_forward_input_errors(x, error, match):
    with pytest.raises(error, match=match):
        LAYER(x)


def test_flop_counts_match_explicit_formulas():
    conv = fnn.FactorizedConv2d(4, 6, 3, padding=1, format="tucker", rank=(2, 3, 3, 3))
    b, h, w = 2, 8, 8
    fact, recon = conv.flops((b, 4, h, w))
    assert fact == 2 * b * (h * w * 4 * 3 + h * w * 2 * (3 * 9 + 6))
    assert recon == conv.parametrization.reconstruction_flops() + 2 * b * h * w * 6 * 4 * 9


def test_tucker_int_rank_keeps_the_spatial_modes_full():
    conv = fnn.FactorizedConv2d(8, 6, 3, format="tucker", rank=4)
    assert conv.rank == (4, 4, 3, 3)
    conv = fnn.FactorizedConv2d(8, 6, 3, format="tucker", ratio=0.5)
    assert conv.rank[2:] == (3, 3)


def test_to_dense_round_trip_with_circular_padding():
    g = torch.Generator().manual_seed(2)
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
