"""``FactorizedEmbedding`` (``factorch.nn._embedding``): lookups, ``padding_idx``, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import factorch.nn as fnn

EMB = fnn.FactorizedEmbedding(24, 6, rank=3)


def test_padding_idx_rows_are_zero_and_get_no_gradient():
    emb = fnn.FactorizedEmbedding(24, 6, padding_idx=-1, rank=3)
    assert emb.padding_idx == 23
    out = emb(torch.tensor([0, 23, 5]))
    assert torch.equal(out[1], torch.zeros(6)) and float(out[0].detach().abs().max()) > 0
    emb(torch.tensor([23, 23])).sum().backward()  # padding rows carry no gradient
    assert all(float(p.grad.abs().max()) == 0 for p in emb.parameters())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: EMB(torch.tensor([-1, 3])),
            IndexError,
            r"indices must be in \[0, 23\]; got values in \[-1, 3\]",
        ),
        (lambda: EMB(torch.tensor([2, 24])), IndexError, r"got values in \[2, 24\]"),
        (
            lambda: EMB(torch.tensor([1.0])),
            TypeError,
            "indices must be an integer tensor; got torch.float32",
        ),
        (lambda: EMB(torch.tensor([True])), TypeError, "integer tensor; got torch.bool"),
        (lambda: EMB([1, 2]), TypeError, "FactorizedEmbedding: indices must be an integer tensor"),
        (
            lambda: fnn.FactorizedEmbedding(24, 6, padding_idx=24, rank=3),
            ValueError,
            r"padding_idx must be in \[-24, 23\]",
        ),
        (
            lambda: fnn.FactorizedEmbedding.from_dense(nn.Embedding(24, 6, max_norm=1.0), rank=3),
            ValueError,
            "max_norm and sparse=True embeddings are not supported",
        ),
        (
            lambda: fnn.FactorizedEmbedding(24, 6, rank=3, dtype=torch.long),
            TypeError,
            "FactorizedEmbedding: dtype must be a floating dtype",
        ),
    ],
    ids=["negative", "too-large", "float", "bool", "list", "padding-idx", "max-norm", "int-dtype"],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("fmt", ["lowrank", "cp", "tucker", "tt", "tr"])
def test_lookup_equals_table_rows(fmt):
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 60, (4, 7), generator=g)
    emb = fnn.FactorizedEmbedding(
        60, 12, format=fmt, ratio=0.5, generator=g, dtype=torch.float64, implementation="factorized"
    )
    assert torch.allclose(emb(idx), emb.weight[idx], atol=1e-12, rtol=0)
    dense = emb.to_dense()
    assert torch.allclose(dense(idx), emb(idx), atol=1e-12, rtol=0)


def test_default_init_matches_nn_embedding_scale():
    g = torch.Generator().manual_seed(1)
    emb = fnn.FactorizedEmbedding(4096, 64, rank=16, generator=g)
    assert float(emb.weight.detach().std()) == pytest.approx(1.0, rel=0.2)


def test_auto_rebuilds_the_table_for_many_lookups():
    emb = fnn.FactorizedEmbedding(4096, 64, rank=16)
    fact, recon = emb.costs(1)
    assert fact < recon
    fact, recon = emb.costs(10**6)
    assert fact > recon
