"""Metrics and prediction at index batches against hand-computed values; pinned errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.completion import EmbeddingMLP, evaluate, mae, predict, relative_error, rmse
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


def test_evaluate_takes_a_torch_sparse_tensor():
    cp = random_cp((4, 3), 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    x = cp.to_dense() + 0.1 * torch.eye(4, 3, dtype=F64)
    mask = torch.rand(4, 3, generator=torch.Generator().manual_seed(2)) < 0.6
    sp = SparseTensor.from_dense(x, mask)
    torch_sparse = torch.sparse_coo_tensor(
        sp.indices.long(), sp.values, sp.shape, check_invariants=True
    )
    assert evaluate(cp, torch_sparse) == evaluate(cp, sp)
    assert evaluate(cp, sp)["rmse"] == pytest.approx(rmse(cp.to_dense()[mask], x[mask]))


def test_non_finite_entries_give_a_non_finite_metric():
    p = torch.tensor([1.0, math.nan], dtype=F64)
    t = torch.ones(2, dtype=F64)
    assert math.isnan(rmse(p, t)) and math.isnan(mae(p, t)) and math.isnan(relative_error(p, t))
    assert mae(torch.tensor([math.inf]), torch.tensor([0.0])) == math.inf


def test_numpy_indices_and_targets():
    cp = random_cp((3, 2), 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    idx = np.array([[0, 1], [2, 0]])
    torch.testing.assert_close(predict(cp, idx), cp.entries(torch.from_numpy(idx)))
    assert rmse(np.array([1.0, 2.0]), torch.tensor([1.0, 1.0], dtype=F64)) == pytest.approx(
        math.sqrt(0.5)
    )


def _cp():
    return random_cp((3, 2), 1, generator=torch.Generator().manual_seed(0), dtype=F64)


METRIC_ERRORS = {
    "shapes": (
        ValueError,
        r"rmse: prediction and target must have one shape",
        lambda: rmse(torch.ones(2), torch.ones(3)),
    ),
    "empty": (
        ValueError,
        r"mae: needs at least one entry; got empty tensors",
        lambda: mae(torch.ones(0), torch.ones(0)),
    ),
    "integer prediction": (
        TypeError,
        r"relative_error: prediction must be a floating torch.Tensor; got torch.int64",
        lambda: relative_error(torch.ones(2, dtype=torch.int64), torch.ones(2)),
    ),
    "target type": (
        TypeError,
        r"rmse: target must be a floating torch.Tensor; got NoneType",
        lambda: rmse(torch.ones(2), None),
    ),
    "index range": (
        IndexError,
        r"predict: indices\[1, 0\] = 3 is out of range for mode 0",
        lambda: predict(_cp(), torch.tensor([[0, 0], [3, 0]])),
    ),
    "index dtype": (
        TypeError,
        r"predict: indices must have an integer dtype",
        lambda: predict(_cp(), torch.zeros(1, 2)),
    ),
    "index shape": (
        ValueError,
        r"predict: indices must have shape \(B, 2\)",
        lambda: predict(_cp(), torch.zeros(1, 3, dtype=torch.int64)),
    ),
    "index type": (
        TypeError,
        r"predict: indices must be an integer torch.Tensor of shape \(B, 2\); got str",
        lambda: predict(_cp(), "0, 1"),
    ),
    "model": (
        TypeError,
        r"predict: model must be a factorized tensor",
        lambda: predict(torch.ones(3, 2), torch.zeros(1, 2, dtype=torch.int64)),
    ),
    "link": (
        ValueError,
        r"predict: link must be 'identity', 'exp' or 'sigmoid'",
        lambda: predict(_cp(), torch.zeros(1, 2, dtype=torch.int64), link="log"),
    ),
    "evaluate data": (
        TypeError,
        r"evaluate: data must be a SparseTensor",
        lambda: evaluate(_cp(), torch.ones(3, 2)),
    ),
}


@pytest.mark.parametrize("case", list(METRIC_ERRORS), ids=list(METRIC_ERRORS))
def test_metrics_errors(case):
    exc, message, call = METRIC_ERRORS[case]
    with pytest.raises(exc, match=message):
        call()


def test_predict_runs_with_autocast_off():
    model = EmbeddingMLP((5, 4, 3), 2, (4,), generator=torch.Generator().manual_seed(0))
    idx = torch.tensor([[0, 0, 0], [4, 3, 2]])
    plain = predict(model, idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = predict(model, idx)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, rtol=0, atol=0)
    sp = SparseTensor.from_dense(torch.ones(5, 4, 3))
    assert evaluate(model, sp)["rmse"] > 0
