"""CP-WOPT: planted recovery with L-BFGS and Adam mini-batches, pinned errors."""

from __future__ import annotations

import pytest
import torch
from _completion_helpers import hidden_error, planted_problem

from factorch.completion import cp_wopt

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


def _x():
    p, mask = planted_problem("cp", (5, 4, 3), 2, 0.5)
    return p.tensor, mask


WOPT_ERRORS = {
    "optimizer": (
        ValueError,
        r"cp_wopt: optimizer must be one of \('lbfgs', 'adam'\); got 'sgd'",
        {"optimizer": "sgd"},
    ),
    "batch_size with lbfgs": (
        ValueError,
        r"cp_wopt: batch_size is for optimizer='adam'; L-BFGS uses every observed entry",
        {"batch_size": 10},
    ),
    "batch_size zero": (
        ValueError,
        r"cp_wopt: batch_size must be a positive int; got 0",
        {"optimizer": "adam", "batch_size": 0},
    ),
    "lr zero": (
        ValueError,
        r"cp_wopt: lr must be positive; got 0",
        {"optimizer": "adam", "lr": 0.0},
    ),
    "lr negative": (
        ValueError,
        r"cp_wopt: lr must be a finite number >= 0; got -1",
        {"optimizer": "adam", "lr": -1.0},
    ),
    "lbfgs_iters": (
        ValueError,
        r"cp_wopt: lbfgs_iters must be a positive int; got 0",
        {"lbfgs_iters": 0},
    ),
    "init": (
        ValueError,
        r"cp_wopt: init must be 'svd', 'random' or a CPTensor; got 'nvecs'",
        {"init": "nvecs"},
    ),
    "rank": (ValueError, r"cp_wopt: rank must be a positive int; got -1", {"rank": -1}),
    "absurd rank": (
        ValueError,
        r"cp_wopt: a rank-1000000000 CP model of a \(5, 4, 3\) tensor needs about .* of memory",
        {"rank": 10**9},
    ),
    "generator": (
        TypeError,
        r"cp_wopt: generator must be a torch.Generator or None; got str",
        {"generator": "seed"},
    ),
}


@pytest.mark.parametrize("case", list(WOPT_ERRORS), ids=list(WOPT_ERRORS))
def test_cp_wopt_errors(case):
    exc, message, kwargs = WOPT_ERRORS[case]
    x, mask = _x()
    rank = kwargs.pop("rank", 2)
    with pytest.raises(exc, match=message):
        cp_wopt(x, rank, mask=mask, **kwargs)
