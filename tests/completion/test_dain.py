"""DAIN: the influence definition against a slow autograd computation, augmentation effects,
pinned errors."""

from __future__ import annotations

import copy

import pytest
import torch
from _completion_helpers import planted_problem

from factorch.completion import EmbeddingMLP, dain, evaluate
from factorch.tensors import SparseTensor

F64 = torch.float64


def _data(shape=(20, 18, 16), rank=2, fractions=(0.2, 0.05, 0.75), seed=0, dtype=torch.float32):
    p, _ = planted_problem("cp", shape, rank, 0.0, dtype, seed=seed, noise=0.0)
    full = SparseTensor.from_dense(p.tensor, torch.ones(shape, dtype=torch.bool))
    return full.split(fractions, generator=torch.Generator().manual_seed(seed))


def test_dain_influence_equals_a_direct_autograd_computation():
    train, val, _ = _data(shape=(6, 5, 4), fractions=(0.4, 0.2, 0.4), seed=3, dtype=F64)

    def make():
        return EmbeddingMLP(
            train.shape, 3, (6, 4), generator=torch.Generator().manual_seed(4), dtype=F64
        )

    snapshots = {}

    def keep(state):
        if state.stage == "base":
            snapshots[state.epoch] = copy.deepcopy(state.model.state_dict())

    res = dain(
        make,
        train,
        val,
        epochs=6,
        batch_size=8,
        lr=1e-2,
        patience=6,
        callback=keep,
        generator=torch.Generator().manual_seed(5),
    )
    best = res.base.best_epoch
    assert best == 4  # a sum over several epochs, stopping before the last one
    model = make()

    def grad_out(i):
        idx = cells[i : i + 1]
        model.zero_grad()
        loss = 0.5 * (model(idx) - values[i]) ** 2
        loss.sum().backward()
        return model.output.weight.grad.detach().clone().reshape(-1)

    total = torch.zeros(train.nnz, dtype=F64)
    for epoch in range(1, best + 1):
        model.load_state_dict(snapshots[epoch])
        cells, values = val.indices.long().mT, val.values
        g_val = sum(grad_out(i) for i in range(val.nnz))
        cells, values = train.indices.long().mT, train.values
        total += torch.stack([grad_out(i) @ g_val for i in range(train.nnz)])
    expected = (total / total.abs().max()).abs()
    torch.testing.assert_close(res.influence, expected, rtol=1e-8, atol=1e-10)
    for k, imp in enumerate(res.importance):
        counts = torch.bincount(train.indices[k].long(), weights=expected, minlength=train.shape[k])
        torch.testing.assert_close(imp, counts / counts.sum())


def test_dain_augmentation_does_not_worsen_validation_rmse():
    train, val, test = _data(shape=(30, 25, 20), seed=0)

    def make():
        return EmbeddingMLP(train.shape, 8, (32, 16), generator=torch.Generator().manual_seed(1))

    res = dain(
        make,
        train,
        val,
        epochs=60,
        batch_size=128,
        lr=3e-3,
        generator=torch.Generator().manual_seed(2),
    )
    # Measured: validation RMSE 0.809 (base) -> 0.717 (augmented); test 0.746 -> 0.670.
    assert res.augmented.best_val_rmse <= res.base.best_val_rmse
    assert evaluate(res.model, test)["rmse"] <= evaluate(res.base.model, test)["rmse"]
    aug = res.augmentation
    assert 0 < aug.nnz <= round(0.5 * train.nnz)
    cells = aug.indices.long().mT
    assert not bool(train.contains(cells).any()) and not bool(val.contains(cells).any())
    torch.testing.assert_close(aug.values, res.base.model(cells).detach())
    assert float(res.influence.max()) == pytest.approx(1.0) and bool((res.influence >= 0).all())
    for imp in res.importance:
        assert float(imp.sum()) == pytest.approx(1.0)


def _split():
    train, val, _ = _data(shape=(5, 4, 3), fractions=(0.5, 0.2, 0.3))
    return train, val


def _model():
    return EmbeddingMLP((5, 4, 3), 2, (4,), generator=torch.Generator().manual_seed(0))


DAIN_ERRORS = {
    "no validation": (
        ValueError,
        r"dain: validation is required",
        lambda tr, va: dain(_model, tr, None),
    ),
    "not a model": (
        TypeError,
        r"dain: make_model must return a NeuralCompletionModel",
        lambda tr, va: dain(lambda: torch.nn.Linear(2, 1), tr, va),
    ),
    "model shape": (
        ValueError,
        r"dain: make_model built a model of shape \(2, 2\); need \(5, 4, 3\)",
        lambda tr, va: dain(lambda: EmbeddingMLP((2, 2), 2, (4,)), tr, va),
    ),
    "aug_ratio": (
        ValueError,
        r"dain: aug_ratio must be positive; got 0",
        lambda tr, va: dain(_model, tr, va, aug_ratio=0.0),
    ),
    "not callable": (
        TypeError,
        r"dain: make_model must be a callable",
        lambda tr, va: dain(_model().state_dict(), tr, va),
    ),
    "validation shape": (
        ValueError,
        r"dain: validation has shape \(5, 4\) but the data has \(5, 4, 3\)",
        lambda tr, va: dain(_model, tr, SparseTensor.from_dense(torch.ones(5, 4))),
    ),
    "generator": (
        TypeError,
        r"dain: generator must be a torch.Generator or None; got int",
        lambda tr, va: dain(_model, tr, va, generator=3),
    ),
}


@pytest.mark.parametrize("case", list(DAIN_ERRORS), ids=list(DAIN_ERRORS))
def test_dain_errors(case):
    exc, message, call = DAIN_ERRORS[case]
    train, val = _split()
    with pytest.raises(exc, match=message):
        call(train, val)
