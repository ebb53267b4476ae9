"""cp_als: planted recovery with 50-90% hidden (ALS and EM), sparse = masked dense, the row-wise
solver against per-row least squares, early stopping, empty slices, IL-2, pinned errors."""

from __future__ import annotations

import math

import pytest
import torch
from _completion_helpers import hidden_error, planted_problem, sparse_split

from factorch.completion import cp_als, evaluate, holdout_mask, split_mask
from factorch.datasets import load
from factorch.tensors import CPTensor, SparseTensor

F64 = torch.float64
SHAPE = (40, 40, 40)
NOISE = 0.01


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("hidden", [0.5, 0.9])
def test_als_recovers_hidden_entries_to_half_the_noise_level(dtype, hidden):
    p, mask = planted_problem("cp", SHAPE, 3, hidden, dtype, noise=NOISE)
    res = cp_als(p.tensor, 3, mask=mask, generator=torch.Generator().manual_seed(1))
    assert res.model.dtype == dtype
    # 1% relative noise on every entry; the hidden entries are recovered better than that.
    assert hidden_error(res.model, p, mask) < 0.5 * NOISE
    assert all(math.isfinite(v) for v in res.train_rmse)


def test_em_recovers_at_half_hidden_and_is_worse_than_als_at_ninety():
    p, mask = planted_problem("cp", SHAPE, 3, 0.5, noise=NOISE)
    em = cp_als(
        p.tensor,
        3,
        mask=mask,
        method="em",
        max_iter=200,
        generator=torch.Generator().manual_seed(0),
    )
    assert em.extras["method"] == "em"
    assert hidden_error(em.model, p, mask) < NOISE
    p, mask = planted_problem("cp", SHAPE, 3, 0.9, noise=NOISE)
    em = cp_als(
        p.tensor,
        3,
        mask=mask,
        method="em",
        max_iter=100,
        generator=torch.Generator().manual_seed(0),
    )
    als = cp_als(p.tensor, 3, mask=mask, max_iter=100, generator=torch.Generator().manual_seed(0))
    assert hidden_error(als.model, p, mask) < 0.5 * hidden_error(em.model, p, mask)


def test_sparse_input_equals_masked_dense_input():
    p, mask = planted_problem("cp", (12, 10, 9), 2, 0.6)
    dense = cp_als(p.tensor, 2, mask=mask, max_iter=5, generator=torch.Generator().manual_seed(3))
    sp = SparseTensor.from_dense(p.tensor, mask)
    sparse = cp_als(sp, 2, max_iter=5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(sparse.model.to_dense(), dense.model.to_dense())
    assert sparse.train_rmse == pytest.approx(dense.train_rmse)


def test_validation_selects_best_epoch_and_patience_stops():
    p, mask = planted_problem("cp", (15, 14, 13), 4, 0.7, noise=0.3)
    train, val = sparse_split(p, mask)
    states = []
    res = cp_als(
        train,
        6,
        validation=val,
        l2=0.0,
        max_iter=60,
        patience=3,
        init="random",
        generator=torch.Generator().manual_seed(0),
        callback=lambda s: states.append(s),
    )
    assert len(res.val_rmse) == res.epochs == len(states)
    assert res.best_epoch == 1 + min(range(res.epochs), key=lambda e: res.val_rmse[e])
    assert res.stopped_early and res.epochs == res.best_epoch + 3
    assert evaluate(res.model, val)["rmse"] == pytest.approx(res.best_val_rmse, rel=1e-9)
    assert res.best_val_rmse < res.val_rmse[-1]


def test_callback_can_stop_and_sees_the_model():
    p, mask = planted_problem("cp", (10, 9, 8), 2, 0.5)
    seen = []

    def cb(state):
        seen.append((state.epoch, state.stage, isinstance(state.model, CPTensor)))
        return state.epoch == 3

    res = cp_als(
        p.tensor, 2, mask=mask, tol=0.0, callback=cb, generator=torch.Generator().manual_seed(0)
    )
    assert res.epochs == 3 and seen[-1] == (3, "fit", True)
    assert not res.converged


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_all_missing_slice_gets_a_zero_row_never_nan(l2):
    p, mask = planted_problem("cp", (10, 9, 8), 2, 0.3)
    mask[4] = False
    mask[:, :, 7] = False
    res = cp_als(
        p.tensor, 2, mask=mask, l2=l2, max_iter=20, generator=torch.Generator().manual_seed(0)
    )
    f0, _, f2 = res.model.factors
    assert torch.isfinite(torch.stack([f.sum() for f in res.model.factors])).all()
    assert torch.equal(f0[4], torch.zeros(2, dtype=F64))
    assert torch.equal(f2[7], torch.zeros(2, dtype=F64))
    empty = res.extras["empty_slices"]
    assert empty[0].tolist() == [4] and empty[1].tolist() == [] and empty[2].tolist() == [7]


def test_il2_real_missing_values_beat_the_mean_baseline():
    ds = load("il2_response")
    train_mask, test_mask = holdout_mask(ds.mask, 0.1, generator=torch.Generator().manual_seed(0))
    res = cp_als(ds.tensor, 3, mask=train_mask, l2=1e-2, generator=torch.Generator().manual_seed(0))
    test = SparseTensor.from_dense(ds.tensor, test_mask)
    mean = float(ds.tensor[train_mask].mean())
    baseline = float(torch.sqrt(torch.mean((test.values - mean) ** 2)))
    # Measured 0.079 against 0.222 for the global mean of the training cells.
    assert evaluate(res.model, test)["rmse"] < 0.5 * baseline


def test_default_damping_bounds_the_overfit_of_a_half_observed_real_tensor():
    # Rank-3 CP of the COVID-19 serology tensor (z-scored) from half of its entries: without a
    # ridge the least-squares fit explodes at the held-out entries (100 sweeps: test RMSE 30.8,
    # 20x the training-mean baseline of 1.57); the default damping brings it to 12.7, a
    # validation-chosen l2 to 0.84 (benchmarks/bench_completion.py).
    ds = load("covid19_serology")
    observed = torch.ones_like(ds.tensor, dtype=torch.bool)
    rest, held = split_mask(observed, (0.5, 0.5), generator=torch.Generator().manual_seed(0))
    test = SparseTensor.from_dense(ds.tensor, held)
    kw = {"mask": rest, "max_iter": 60}
    bare = cp_als(ds.tensor, 3, damping=0.0, generator=torch.Generator().manual_seed(0), **kw)
    safe = cp_als(ds.tensor, 3, generator=torch.Generator().manual_seed(0), **kw)
    assert evaluate(safe.model, test)["rmse"] < 0.6 * evaluate(bare.model, test)["rmse"]


def test_results_carry_the_degeneracy_check():
    p, mask = planted_problem("cp", (12, 10, 9), 3, 0.5)
    res = cp_als(p.tensor, 3, mask=mask, generator=torch.Generator().manual_seed(0))
    assert not res.extras["degeneracy"].degenerate
    # Rank-3 CP of IL-2 without a ridge or damping: two components cancel (congruence -0.89,
    # weights 3.2x what they jointly model), while the test RMSE (0.079) looks fine. The
    # default damping keeps them apart (congruence -0.61).
    ds = load("il2_response")
    rest, _ = split_mask(ds.mask, (0.9, 0.1), generator=torch.Generator().manual_seed(0))
    kw = {"mask": rest, "generator": torch.Generator().manual_seed(0)}
    check = cp_als(ds.tensor, 3, damping=0.0, **kw).extras["degeneracy"]
    assert check.degenerate and check.min_congruence < -0.85 and check.cancellation > 2
    kw["generator"] = torch.Generator().manual_seed(0)
    assert not cp_als(ds.tensor, 3, **kw).extras["degeneracy"].degenerate


@pytest.mark.parametrize("method", ["als", "em"])
def test_one_start_is_the_plain_fit_and_the_first_of_several(method):
    p, mask = planted_problem("cp", (12, 10, 9), 3, 0.5, noise=0.1)

    def fit(**kw):
        gen = torch.Generator().manual_seed(5)
        return cp_als(p.tensor, 3, mask=mask, method=method, max_iter=15, generator=gen, **kw)

    plain, one = fit(), fit(starts=1)
    # Bit-identical to the code before multi-start (checked once against that version).
    assert torch.equal(plain.model.weights, one.model.weights)
    assert all(torch.equal(a, b) for a, b in zip(plain.model.factors, one.model.factors))
    assert plain.train_rmse == one.train_rmse and one.extras["best_start"] == 0
    assert len(one.extras["start_scores"]) == 1
    seen: list[tuple[int, float]] = []
    fit(starts=3, callback=lambda s: seen.append((s.epoch, s.train_rmse)))
    first = [rmse for _, rmse in seen[: len(plain.train_rmse)]]
    assert tuple(first) == plain.train_rmse  # the first start uses init and the same draws
    assert sum(e == 1 for e, _ in seen) == 3


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_several_starts_keep_the_best_score(dtype):
    p, mask = planted_problem("cp", (15, 14, 13), 4, 0.7, noise=0.3, dtype=dtype)
    train, val = sparse_split(p, mask)
    res = cp_als(
        train, 4, validation=val, starts=4, max_iter=30, generator=torch.Generator().manual_seed(0)
    )
    scores = res.extras["start_scores"]
    assert len(scores) == 4 and len(set(scores)) == 4
    assert res.extras["best_start"] == scores.index(min(scores))
    assert evaluate(res.model, val)["rmse"] == pytest.approx(min(scores), rel=1e-5)
    assert res.best_val_rmse == min(scores)
    # Without validation the score is the final training objective.
    res = cp_als(train, 4, starts=4, max_iter=30, generator=torch.Generator().manual_seed(0))
    scores = res.extras["start_scores"]
    assert res.extras["best_start"] == scores.index(min(scores)) and len(set(scores)) == 4
    rmse = res.train_rmse[-1]
    assert rmse**2 * train.nnz <= min(scores) * (1 + 1e-5)  # objective = SSE + l2 * penalty


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_restarts_escape_a_bad_start(dtype):
    p, mask = planted_problem("cp", (15, 14, 13), 3, 0.5, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    factors = [torch.randn(s, 3, generator=gen, dtype=dtype) for s in p.tensor.shape]
    for f in factors:
        f[:, 2] = 0  # a zero component stays zero under ALS: stuck at rank 2
    bad = CPTensor.from_factors(factors)

    def fit(starts):
        gen = torch.Generator().manual_seed(0)
        return cp_als(p.tensor, 3, mask=mask, init=bad, starts=starts, max_iter=30, generator=gen)

    one, four = fit(1), fit(4)
    assert four.extras["start_scores"][0] == one.extras["start_scores"][0]
    assert min(four.extras["start_scores"]) <= one.extras["start_scores"][0]
    # Measured 0.32 (rank-2 fit) against 0.003 (recovered).
    assert hidden_error(one.model, p, mask) > 0.1
    assert hidden_error(four.model, p, mask) < 0.5 * NOISE


def _problem():
    p, mask = planted_problem("cp", (5, 4, 3), 2, 0.5)
    return p.tensor, mask, SparseTensor.from_dense(p.tensor, mask)


def _nan(x):
    out = x.clone()
    out[0, 0, 0] = float("nan")
    return out


def _empty(x):
    return SparseTensor(torch.zeros(3, 0, dtype=torch.int64), torch.zeros(0, dtype=F64), x.shape)


# (exception, message, call(x, mask, sparse)) -- one case per message.
CP_ALS_ERRORS = {
    "method": (
        ValueError,
        r"cp_als: method must be one of \('als', 'em'\); got 'x'",
        lambda x, m, sp: cp_als(x, 2, mask=m, method="x"),
    ),
    "rank zero": (
        ValueError,
        r"cp_als: rank must be a positive int; got 0",
        lambda x, m, sp: cp_als(x, 0, mask=m),
    ),
    "rank float": (
        TypeError,
        r"cp_als: rank must be a positive int; got float",
        lambda x, m, sp: cp_als(x, 2.0, mask=m),
    ),
    "mask dtype": (
        TypeError,
        r"cp_als: mask must be a bool tensor \(True = observed\); got torch.float64",
        lambda x, m, sp: cp_als(x, 2, mask=m.double()),
    ),
    "mask shape": (
        ValueError,
        r"cp_als: mask shape \(5, 4\) must equal the tensor shape \(5, 4, 3\)",
        lambda x, m, sp: cp_als(x, 2, mask=m[:, :, 0]),
    ),
    "nan without mask": (
        ValueError,
        r"cp_als: tensor contains NaN; pass mask=~torch.isnan\(tensor\)",
        lambda x, m, sp: cp_als(_nan(x), 2),
    ),
    "nan observed": (
        ValueError,
        r"cp_als: tensor has 1 NaN or Inf entries where mask is True",
        lambda x, m, sp: cp_als(_nan(x), 2, mask=torch.ones_like(m)),
    ),
    "nothing observed": (
        ValueError,
        r"cp_als: tensor has no observed entries; completion needs at least one",
        lambda x, m, sp: cp_als(x, 2, mask=torch.zeros_like(m)),
    ),
    "mask with sparse": (
        ValueError,
        r"cp_als: mask is only for dense tensors; a sparse tensor lists its observed entries",
        lambda x, m, sp: cp_als(sp, 2, mask=m),
    ),
    "validation shape": (
        ValueError,
        r"cp_als: validation has shape \(5, 4\) but the data has \(5, 4, 3\)",
        lambda x, m, sp: cp_als(sp, 2, validation=SparseTensor.from_dense(x[:, :, 0])),
    ),
    "validation empty": (
        ValueError,
        r"cp_als: validation has no entries; pass None or a non-empty split",
        lambda x, m, sp: cp_als(sp, 2, validation=_empty(x)),
    ),
    "validation type": (
        TypeError,
        r"cp_als: validation must be a SparseTensor of held-out entries or None; got Tensor",
        lambda x, m, sp: cp_als(sp, 2, validation=x),
    ),
    "tensor type": (
        TypeError,
        r"cp_als: tensor must be a dense torch.Tensor, a numpy array, a SparseTensor or a "
        r"torch sparse tensor; got float",
        lambda x, m, sp: cp_als(1.0, 2),
    ),
    "tensor strings": (
        TypeError,
        r"cp_als: tensor must be a torch.Tensor or a numeric numpy array; got list",
        lambda x, m, sp: cp_als([["a", "b"], ["c", "d"]], 1),
    ),
    "integer dtype": (
        TypeError,
        r"cp_als: tensor must have a real floating dtype; got torch.int64",
        lambda x, m, sp: cp_als(torch.ones(3, 3, dtype=torch.int64), 1),
    ),
    "complex dtype": (
        TypeError,
        r"cp_als: tensor must have a real floating dtype; got torch.complex64",
        lambda x, m, sp: cp_als(torch.ones(3, 3, dtype=torch.complex64), 1),
    ),
    "one mode": (
        ValueError,
        r"cp_als: tensor must have at least 2 modes and no empty mode; got shape \(3,\)",
        lambda x, m, sp: cp_als(torch.ones(3, dtype=F64), 1),
    ),
    "empty mode": (
        ValueError,
        r"cp_als: tensor must have at least 2 modes and no empty mode; got shape \(3, 0\)",
        lambda x, m, sp: cp_als(torch.ones(3, 0, dtype=F64), 1),
    ),
    "l2": (
        ValueError,
        r"cp_als: l2 must be a finite number >= 0; got -1",
        lambda x, m, sp: cp_als(sp, 2, l2=-1),
    ),
    "damping": (
        ValueError,
        r"cp_als: damping must be a finite number >= 0; got -1",
        lambda x, m, sp: cp_als(sp, 2, damping=-1),
    ),
    "l2 type": (
        TypeError,
        r"cp_als: l2 must be a number; got str",
        lambda x, m, sp: cp_als(sp, 2, l2="0"),
    ),
    "init shape": (
        ValueError,
        r"cp_als: init has shape \(5, 4, 3\) and rank 3; expected shape \(5, 4, 3\) and rank 2",
        lambda x, m, sp: cp_als(
            sp, 2, init=CPTensor.from_factors([torch.ones(s, 3, dtype=F64) for s in x.shape])
        ),
    ),
    "init name": (
        ValueError,
        r"cp_als: init must be 'svd', 'random' or a CPTensor; got 'hosvd'",
        lambda x, m, sp: cp_als(sp, 2, init="hosvd"),
    ),
    "init name em": (
        ValueError,
        r"cp_als: init must be 'svd', 'random' or a CPTensor; got 'hosvd'",
        lambda x, m, sp: cp_als(x, 2, mask=m, method="em", init="hosvd"),
    ),
    "starts zero": (
        ValueError,
        r"cp_als: starts must be a positive int; got 0",
        lambda x, m, sp: cp_als(sp, 2, starts=0),
    ),
    "starts float": (
        TypeError,
        r"cp_als: starts must be a positive int; got float",
        lambda x, m, sp: cp_als(sp, 2, starts=2.0),
    ),
    "starts bool": (
        TypeError,
        r"cp_als: starts must be a positive int; got bool",
        lambda x, m, sp: cp_als(sp, 2, starts=True),
    ),
    "patience": (
        ValueError,
        r"cp_als: patience must be a positive int; got 0",
        lambda x, m, sp: cp_als(sp, 2, patience=0),
    ),
    "max_iter": (
        ValueError,
        r"cp_als: max_iter must be a positive int; got 0",
        lambda x, m, sp: cp_als(sp, 2, max_iter=0),
    ),
    "tol": (
        ValueError,
        r"cp_als: tol must be a finite number >= 0; got nan",
        lambda x, m, sp: cp_als(sp, 2, tol=float("nan")),
    ),
    "generator seed": (
        TypeError,
        r"cp_als: generator must be a torch.Generator or None; got int\. Pass e\.g\.",
        lambda x, m, sp: cp_als(sp, 2, generator=0),
    ),
    "absurd rank": (
        ValueError,
        r"cp_als: a rank-1000000000 CP model of a \(5, 4, 3\) tensor needs about .* of "
        r"memory, more than the .* this cpu device has; use a smaller rank",
        lambda x, m, sp: cp_als(sp, 10**9),
    ),
    "em too large": (
        ValueError,
        r"cp_als: method='em' forms the dense tensor, 8000000000000 entries here",
        lambda x, m, sp: cp_als(
            SparseTensor.from_coo(
                torch.zeros(3, 1, dtype=torch.int64), torch.ones(1), (20000,) * 3
            ),
            1,
            method="em",
        ),
    ),
    "data and tensor": (
        TypeError,
        r"cp_als: got both tensor and data \(the deprecated name of tensor\); pass tensor only",
        lambda x, m, sp: cp_als(x, 2, data=x),
    ),
}


@pytest.mark.parametrize("case", list(CP_ALS_ERRORS), ids=list(CP_ALS_ERRORS))
def test_cp_als_errors(case):
    exc, message, call = CP_ALS_ERRORS[case]
    x, mask, sp = _problem()
    with pytest.raises(exc, match=message):
        call(x, mask, sp)
