"""The result type: best validation RMSE, prediction through the link."""

from __future__ import annotations

import math

import torch

from factorch.completion import CompletionResult
from factorch.random import random_cp

F64 = torch.float64


def test_result_predict_applies_the_link():
    cp = random_cp((3, 2), 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    res = CompletionResult(cp, (1.0,), (0.5, 0.4), 2, 2, False, False, 0.0, link="exp")
    idx = torch.tensor([[0, 1], [2, 0]])
    torch.testing.assert_close(res.predict(idx), torch.exp(cp.entries(idx)))
    assert res.best_val_rmse == 0.4
    none = CompletionResult(cp, (1.0,), (), 1, 1, False, False, 0.0)
    assert math.isnan(none.best_val_rmse)
