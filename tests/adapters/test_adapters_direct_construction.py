"""Adapter layers built directly (not through ``inject``) check their base layer and config, and
the TLoRA helpers check their sizes (issue 19: each message pinned)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import factorch.adapters as fa
from factorch.adapters.left import LeftLayer
from factorch.adapters.tlora import TLoraLayer, identity_trm_cores, ring_tensor
from factorch.adapters.tt import TTLayer
from factorch.adapters.tucker import TuckerLayer
from factorch.nn import TensorizedShape, TensorLayout, TRWeight

CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (
        lambda: TTLayer(torch.nn.Embedding(4, 4), fa.TTConfig(target_modules=["0"])),
        TypeError,
        r"TTLayer: module 'base' is a Embedding, which tt cannot adapt \(supported: nn.Linear",
    ),
    (
        lambda: TuckerLayer(torch.nn.Linear(4, 4), fa.LoraConfig(target_modules=["0"])),
        TypeError,
        r"TuckerLayer: config must be a TuckerConfig; got LoraConfig\.",
    ),
    (
        lambda: LeftLayer("layer", fa.LeftConfig(target_modules=["0"])),
        TypeError,
        r"LeftLayer: module 'base' is a str, which left cannot adapt",
    ),
    (
        lambda: LeftLayer(torch.nn.Conv2d(4, 4, 3, groups=2), fa.LeftConfig(target_modules=["0"])),
        ValueError,
        r"LeftLayer: module 'base' is a grouped convolution \(groups=2\)",
    ),
    (
        lambda: TLoraLayer(torch.nn.Linear(4, 4), fa.TTConfig(target_modules=["0"])),
        TypeError,
        r"TLoraLayer: config must be a TLoraConfig; got TTConfig\.",
    ),
    (
        lambda: fa.AdaptedLayer(3),
        TypeError,
        r"AdaptedLayer: base must be a torch.nn.Module that is not adapted yet; got int",
    ),
    (
        lambda: fa.AdaptedLayer(fa.AdaptedLayer(torch.nn.Linear(2, 2))),
        TypeError,
        r"AdaptedLayer: .*got an AdaptedLayer \(add adapters to an adapted layer with inject",
    ),
    (
        lambda: identity_trm_cores((2, 3), 0, torch.zeros(1)),
        ValueError,
        r"identity_trm_cores: rank and every factor must be at least 1; got rank 0",
    ),
    (
        lambda: identity_trm_cores((2, 0), 2, torch.zeros(1)),
        ValueError,
        r"identity_trm_cores: .*factors \(2, 0\)",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CASES)
def test_direct_construction_messages(
    call: Callable[[], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_ring_tensor_counts_its_cores() -> None:
    fmt = TRWeight(TensorLayout.matrix_chain(TensorizedShape((2, 3), (2, 3))), 2)
    cores = [torch.randn(s, dtype=torch.float64) for s in fmt.factor_shapes]
    with pytest.raises(ValueError, match=r"ring_tensor: the format has 2 cores; got 1\."):
        ring_tensor(fmt, cores[:1])
    assert torch.allclose(ring_tensor(fmt, cores), fmt(*cores))


def test_a_direct_construction_that_is_valid_still_works() -> None:
    layer = TTLayer(torch.nn.Linear(16, 8), fa.TTConfig(target_modules=["0"], rank=2))
    assert layer.weight_shape == (8, 16)
