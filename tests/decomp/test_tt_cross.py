"""TT-cross: functions of known TT rank are recovered from few evaluations, the budget and the
tolerance are honoured, the reported error is the true one, TensorLy's ``tensor_train_cross`` on
the same tensor, maxvol's guarantee, policies and pinned errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import CrossResult, tt_cross
from factorch.decomp._tt_cross import maxvol
from factorch.random import random_tt


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sum_sin(idx: torch.Tensor) -> torch.Tensor:
    return torch.sin(idx.double().sum(1) / 7.0)  # TT rank 2


def _dense(fn, shape) -> torch.Tensor:
    grid = torch.cartesian_prod(*[torch.arange(n) for n in shape]).reshape(-1, len(shape))
    return fn(grid).reshape(shape)


# --- functions of known TT rank ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "true_rank"),
    [
        (lambda i: torch.prod(torch.cos(i.double() / 5 + 1), 1), 1),
        (_sum_sin, 2),
        (lambda i: i.double().sum(1) + 1.0, 2),
        (lambda i: (i.double() ** 2).sum(1) + (i[:, 0] * i[:, 3]).double(), 3),
    ],
    ids=["product", "sin-of-sum", "sum", "quadratic"],
)
def test_functions_of_known_tt_rank_are_recovered_from_few_evaluations(fn, true_rank):
    shape = (12,) * 5
    res = tt_cross(fn, 5, shape=shape, generator=_gen())
    assert isinstance(res, CrossResult) and res.converged
    assert max(res.model.rank) == true_rank
    truth = _dense(fn, shape)
    err = float(torch.linalg.vector_norm(res.model.to_dense() - truth) / truth.norm())
    assert err < 1e-10
    assert res.error < 1e-10
    assert res.evaluations < math.prod(shape) // 20


def test_high_dimensional_grid_never_materialised():
    res = tt_cross(_sum_sin, 4, shape=(50,) * 12, generator=_gen(1))
    assert res.error < 1e-10 and res.model.rank == (1,) + (2,) * 11 + (1,)
    assert res.evaluations < 200_000  # of 50**12 ~ 2.4e20 entries
    idx = torch.randint(50, (100, 12), generator=_gen(2))
    torch.testing.assert_close(res.model.entries(idx), _sum_sin(idx), rtol=1e-10, atol=1e-10)


def test_dense_tensor_input_exact_at_full_rank_and_planted_tt():
    tt = random_tt((6, 7, 8, 5), 3, generator=_gen(3), dtype=torch.float64)
    x = tt.to_dense()
    res = tt_cross(x, 3, generator=_gen(4))
    assert float((res.model.to_dense() - x).norm() / x.norm()) < 1e-10
    assert res.model.rank == tt.rank


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_kept_when_random_start_has_coincident_right_indices(seed):
    # f depends on the index sum only: random right indices with equal sums give equal fibre
    # columns; the first sweep must not truncate on them (index sets never grow back).
    shape = (16,) * 5
    fn = lambda i: 1.0 / (1.0 + i.double().sum(1) / 16.0)  # noqa: E731
    res = tt_cross(fn, 6, shape=shape, generator=_gen(seed))
    assert res.model.rank == (1, 6, 6, 6, 6, 1)
    assert res.error < 1e-7  # the rank-6 TT of this function is accurate to ~3e-8


def test_budget_is_honoured():
    shape = (16,) * 8
    fn = lambda i: 1.0 / (1.0 + i.double().sum(1))  # noqa: E731
    res = tt_cross(fn, 8, shape=shape, max_evals=30_000, generator=_gen(5))
    assert res.evaluations <= 30_000
    more = tt_cross(fn, 8, shape=shape, generator=_gen(5))
    assert more.evaluations > res.evaluations


def test_reported_error_is_the_sampled_true_error_on_a_hard_function():
    shape = (10,) * 4
    fn = lambda i: 1.0 / (1.0 + i.double().sum(1))  # noqa: E731  (full TT rank ~ 10)
    res = tt_cross(fn, 2, shape=shape, n_check=10_000, generator=_gen(6))
    truth = _dense(fn, shape)
    true = float((res.model.to_dense() - truth).norm() / truth.norm())
    assert res.error == pytest.approx(true, rel=0.3)  # 10,000 of 10,000 entries drawn with repeats
    assert res.error > 1e-6


def test_tensorly_tt_cross_on_the_same_tensor(tensorly_backend):
    tensorly_backend("numpy")
    from tensorly.contrib.decomposition import tensor_train_cross
    from tensorly.tt_tensor import tt_to_tensor

    x = _dense(_sum_sin, (10, 11, 12, 9))
    cores = tensor_train_cross(x.numpy(), [1, 3, 3, 3, 1], tol=1e-10, random_state=0)
    theirs = np.linalg.norm(tt_to_tensor(cores) - x.numpy()) / np.linalg.norm(x.numpy())
    res = tt_cross(x, 3, tol=1e-10, generator=_gen(7))
    ours = float((res.model.to_dense() - x).norm() / x.norm())
    assert ours <= max(theirs, 1e-12)


def test_maxvol_finds_a_dominant_submatrix():
    a = torch.randn(200, 6, generator=_gen(8), dtype=torch.float64)
    rows = maxvol(a)
    coeffs = torch.linalg.solve(a[rows].T, a.T).T
    assert rows.unique().numel() == 6
    assert float(coeffs.abs().max()) <= 1.05 + 1e-12


# --- policies ---------------------------------------------------------------------------------
def test_float32_function_and_numpy_tensor():
    res = tt_cross(lambda i: _sum_sin(i).float(), 3, shape=(8,) * 4, generator=_gen(9))
    assert res.model.dtype == torch.float32 and res.error < 1e-5
    x = _dense(_sum_sin, (5, 6, 7)).numpy()
    res_np = tt_cross(x, np.int64(2), generator=_gen(10))
    assert res_np.model.dtype == torch.float64 and res_np.error < 1e-10


def test_autocast_is_off():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = tt_cross(_sum_sin, 3, shape=(8,) * 4, generator=_gen(11))
    assert res.model.dtype == torch.float64 and res.error < 1e-10


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_scales(scale):
    res = tt_cross(lambda i: _sum_sin(i) * scale, 3, shape=(8,) * 4, generator=_gen(12))
    assert res.error < 1e-10 and bool(torch.isfinite(res.model.cores[0]).all())


# --- pinned errors ----------------------------------------------------------------------------
def _bad_shape(i: torch.Tensor) -> torch.Tensor:
    return torch.zeros(i.shape[0] + 1, dtype=torch.float64)


BAD = [
    ((_sum_sin, 2), {}, TypeError, r"tt_cross: shape is required when the input is a function"),
    ((_sum_sin, 2), {"shape": 5}, TypeError, r"tt_cross: shape must be a non-empty tuple"),
    ((_sum_sin, 2), {"shape": (4, 0)}, ValueError, r"tt_cross: shape entries must be a positive"),
    ((_sum_sin, 0), {"shape": (4, 4)}, ValueError, r"tt_cross: rank must be a positive int"),
    ((_sum_sin, (1, 2)), {"shape": (4, 4)}, ValueError,
     r"tt_cross: rank needs 3 entries for a 2-way tensor"),
    ((_sum_sin, (2, 2, 1)), {"shape": (4, 4)}, ValueError,
     r"tt_cross: rank must start and end with 1"),
    ((_bad_shape, 2), {"shape": (4, 4)}, ValueError,
     r"tt_cross: the function must return one value per index row"),
    ((lambda i: i.sum(1), 2), {"shape": (4, 4)}, TypeError,
     r"tt_cross: the function must return floating values; got torch.int64"),
    ((lambda i: i.sum(1) / 0.0, 2), {"shape": (4, 4)}, ValueError,
     r"tt_cross: the function returned NaN or Inf values"),
    ((_sum_sin, 2), {"shape": (4, 4), "max_evals": 3}, ValueError,
     r"tt_cross: max_evals=3 is below the"),
    ((_sum_sin, 2), {"shape": (4, 4), "tol": 2.0}, ValueError,
     r"tt_cross: tol must be in \[0, 1\)"),
    ((_sum_sin, 2), {"shape": (4, 4), "n_check": -1}, ValueError,
     r"tt_cross: n_check must be a non-negative int"),
    ((_sum_sin, 2), {"shape": (4, 4), "generator": 3}, TypeError,
     r"tt_cross: generator must be a torch.Generator"),
    ((torch.ones(3, 4, dtype=torch.complex64), 2), {}, TypeError, r"tt_cross: tensor must be real"),
    ((torch.ones(5), 2), {}, ValueError, r"tt_cross: tensor must have at least 2 dimensions"),
    ((torch.ones(3, 4), 2), {"shape": (4, 3)}, ValueError,
     r"tt_cross: shape \(4, 3\) does not match the tensor's \(3, 4\)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input_is_refused_with_a_pinned_message(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        tt_cross(*args, **kwargs)
