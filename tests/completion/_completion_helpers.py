"""Planted completion problems and the hidden-entry error used by the completion tests."""

from __future__ import annotations

import torch

from factorch.completion import predict, relative_error
from factorch.random import planted
from factorch.tensors import SparseTensor


def planted_problem(kind, shape, rank, hidden, dtype=torch.float64, seed=0, noise=0.01):
    """A planted low-rank tensor with relative noise, and a mask hiding ``hidden`` of it."""
    gen = torch.Generator().manual_seed(seed)
    p = planted(kind, shape, rank, noise=noise, generator=gen, dtype=dtype)
    mask = torch.rand(shape, generator=gen) >= hidden
    return p, mask


def hidden_error(model, p, mask, link="identity") -> float:
    """``||pred - clean|| / ||clean||`` over the hidden entries (against the noiseless truth)."""
    hidden = ~mask
    pred = predict(model, hidden.nonzero(), link=link)
    return relative_error(pred, p.clean[hidden])


def sparse_split(p, mask, seed=1):
    """Observed entries as a SparseTensor split 90/10 into train / validation."""
    obs = SparseTensor.from_dense(p.tensor, mask)
    return obs.split((0.9, 0.1), generator=torch.Generator().manual_seed(seed))
