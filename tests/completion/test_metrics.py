"""Metrics, prediction at index batches, hold-out masks and the result type; pinned errors."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.completion import (
    CompletionResult,
    EmbeddingMLP,
    evaluate,
    holdout_mask,
    mae,
    predict,
    relative_error,
    rmse,
    split_mask,
)
from factorch.random import random_cp
from factorch.tensors import SparseTensor

F64 = torch.float64


def test_metrics_against_hand_computed_values():
    p = torch.tensor([1.0, 2.0, 4.0], dtype=F64)
    t = torch.tensor([1.0, 1.0, 2.0], dtype=F64)
    assert rmse(p, t) == pytest.approx(math.sqrt(5 / 3))
    assert mae(p, t) == pytest.approx(1.0)
    assert relative_error(p, t) == pytest.approx(math.sqrt(5) / math.sqrt(6))
    assert relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
    assert relative_error(torch.ones(2), torch.zeros(2)) == math.inf
    assert rmse(p.float(), t) == pytest.approx(math.sqrt(5 / 3), rel=1e-6)


def test_predict_factorized_and_module_models_in_batches():
    gen = torch.Generator().manual_seed(0)
    cp = random_cp((5, 4, 3), 2, generator=gen, dtype=F64)
    idx = torch.cartesian_prod(torch.arange(5), torch.arange(4), torch.arange(3))
    dense = cp.to_dense()
    torch.testing.assert_close(predict(cp, idx, batch_size=7), dense.reshape(-1))
    torch.testing.assert_close(predict(cp, idx, link="exp"), torch.exp(dense.reshape(-1)))
    torch.testing.assert_close(predict(cp, idx, link="sigmoid"), torch.sigmoid(dense.reshape(-1)))
    model = EmbeddingMLP((5, 4, 3), 2, (4,), generator=gen)
    model.train()
    out = predict(model, idx.int(), batch_size=11)
    assert model.training and not out.requires_grad
    torch.testing.assert_close(out, model(idx).detach())
    assert predict(cp, torch.zeros(0, 3, dtype=torch.int64)).shape == (0,)
    sp = SparseTensor.from_dense(dense)
    scores = evaluate(cp, sp)
    assert scores["rmse"] == pytest.approx(0.0, abs=1e-12) and scores["relative_error"] < 1e-12


def test_result_predict_applies_the_link():
    cp = random_cp((3, 2), 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    res = CompletionResult(cp, (1.0,), (0.5, 0.4), 2, 2, False, False, 0.0, link="exp")
    idx = torch.tensor([[0, 1], [2, 0]])
    torch.testing.assert_close(res.predict(idx), torch.exp(cp.entries(idx)))
    assert res.best_val_rmse == 0.4
    none = CompletionResult(cp, (1.0,), (), 1, 1, False, False, 0.0)
    assert math.isnan(none.best_val_rmse)


def test_holdout_and_split_masks_partition_the_observed_entries():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(8, 7, 6, generator=gen) < 0.7
    train, held = holdout_mask(mask, 0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(train | held, mask) and not bool((train & held).any())
    assert int(held.sum()) == round(0.1 * int(mask.sum()))
    parts = split_mask(mask, (0.5, 0.3, 0.2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(parts[0] | parts[1] | parts[2], mask)
    assert sum(int(p.sum()) for p in parts) == int(mask.sum())


def test_metrics_errors():
    cp = random_cp((3, 2), 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    with pytest.raises(ValueError, match=r"rmse: prediction and target must have one shape"):
        rmse(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match=r"mae: needs at least one entry; got empty tensors"):
        mae(torch.ones(0), torch.ones(0))
    with pytest.raises(TypeError, match=r"relative_error: prediction must be a floating torch"):
        relative_error(torch.ones(2, dtype=torch.int64), torch.ones(2))
    with pytest.raises(
        IndexError, match=r"predict: indices\[1, 0\] = 3 is out of range for mode 0"
    ):
        predict(cp, torch.tensor([[0, 0], [3, 0]]))
    with pytest.raises(TypeError, match=r"predict: indices must have an integer dtype"):
        predict(cp, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"predict: indices must have shape \(B, 2\)"):
        predict(cp, torch.zeros(1, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"predict: model must be a factorized tensor"):
        predict(torch.ones(3, 2), torch.zeros(1, 2, dtype=torch.int64))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"predict: link must be 'identity', 'exp' or 'sigmoid'"):
        predict(cp, torch.zeros(1, 2, dtype=torch.int64), link="log")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"evaluate: data must be a SparseTensor"):
        evaluate(cp, torch.ones(3, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"holdout_mask: fraction must be in \(0, 1\); got 1.5"):
        holdout_mask(torch.ones(3, 2, dtype=torch.bool), 1.5)
    with pytest.raises(TypeError, match=r"split_mask: mask must be a bool tensor"):
        split_mask(torch.ones(3, 2), (0.5, 0.5))
    with pytest.raises(ValueError, match=r"split_mask: mask has no observed \(True\) entry"):
        split_mask(torch.zeros(3, 2, dtype=torch.bool), (0.5, 0.5))
