"""Tucker and TT completion: planted recovery with 50-90% hidden, spectral starts (sparse subspaces
and sparse TT-SVD against dense SVDs), gauges of the returned models, pinned errors."""

from __future__ import annotations

import pytest
import torch
from _completion_helpers import hidden_error, planted_problem, sparse_split

from factorch.algebra import unfold
from factorch.completion import tt_als, tucker_als
from factorch.completion._spectral import leading_subspace
from factorch.completion._tt import _spectral_cores
from factorch.tensors import SparseTensor, TTTensor

F64 = torch.float64
NOISE = 0.01


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("hidden", [0.5, 0.9])
def test_tucker_recovers_hidden_entries_below_the_noise_level(dtype, hidden):
    p, mask = planted_problem("tucker", (40, 40, 40), (3, 3, 3), hidden, dtype, noise=NOISE)
    res = tucker_als(p.tensor, 3, mask=mask, generator=torch.Generator().manual_seed(1))
    assert res.model.rank == (3, 3, 3) and res.model.dtype == dtype
    # Measured 0.0010 (50%) and 0.0025 (90% hidden).
    assert hidden_error(res.model, p, mask) < 0.5 * NOISE
    for f in res.model.factors:
        torch.testing.assert_close(f.mT @ f, torch.eye(3, dtype=dtype), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("hidden", [0.5, 0.9])
def test_tt_recovers_hidden_entries_below_the_noise_level(dtype, hidden):
    rank = (1, 3, 3, 3, 1)
    p, mask = planted_problem("tt", (16, 14, 12, 10), rank, hidden, dtype, noise=NOISE)
    res = tt_als(p.tensor, rank, mask=mask, generator=torch.Generator().manual_seed(1))
    assert res.model.rank == rank
    # Measured 0.0023 (50%) and 0.0034 (90% hidden).
    assert hidden_error(res.model, p, mask) < 0.5 * NOISE
    for core in res.model.cores[:-1]:
        left = core.reshape(-1, core.shape[2])
        torch.testing.assert_close(
            left.mT @ left, torch.eye(core.shape[2], dtype=dtype), rtol=0, atol=1e-4
        )


def test_random_starts_also_recover_at_half_hidden():
    p, mask = planted_problem("tucker", (20, 18, 16), (2, 3, 2), 0.5, noise=NOISE)
    res = tucker_als(p.tensor, (2, 3, 2), mask=mask, init="random", generator=torch.Generator())
    assert hidden_error(res.model, p, mask) < NOISE
    p, mask = planted_problem("tt", (16, 14, 12, 10), (1, 3, 3, 3, 1), 0.5, noise=NOISE)
    res = tt_als(p.tensor, 3, mask=mask, init="random", generator=torch.Generator().manual_seed(2))
    assert hidden_error(res.model, p, mask) < NOISE


def test_validation_and_empty_slices():
    p, mask = planted_problem("tucker", (12, 11, 10), (2, 2, 2), 0.5, noise=0.2)
    mask[3] = False
    train, val = sparse_split(p, mask)
    res = tucker_als(
        train, 2, validation=val, patience=2, l2=0.0, generator=torch.Generator().manual_seed(0)
    )
    assert res.extras["empty_slices"][0].tolist() == [3]
    assert torch.isfinite(res.model.core).all()
    assert torch.equal(res.model.factors[0][3], torch.zeros(2, dtype=F64))
    assert res.best_val_rmse == min(res.val_rmse)
    res = tt_als(
        train, 2, validation=val, patience=2, l2=0.0, generator=torch.Generator().manual_seed(0)
    )
    assert res.model.cores[0][:, 3].abs().max() == 0
    assert all(torch.isfinite(c).all() for c in res.model.cores)


def test_leading_subspace_of_a_fully_observed_tensor_equals_the_svd_subspace():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(9, 8, 7, generator=gen, dtype=F64)
    sp = SparseTensor.from_dense(x, torch.ones_like(x, dtype=torch.bool))
    for mode in range(3):
        u = leading_subspace(sp, mode, 3, n_iter=6, generator=gen)
        ref = torch.linalg.svd(unfold(x, mode), full_matrices=False).U[:, :3]
        torch.testing.assert_close(u @ u.mT, ref @ ref.mT, rtol=0, atol=1e-6)


def test_sparse_tt_svd_start_is_exact_on_a_fully_observed_tt():
    gen = torch.Generator().manual_seed(1)
    p, _ = planted_problem("tt", (6, 5, 4, 3), (1, 2, 3, 2, 1), 0.0, noise=0.0)
    x = p.tensor
    sp = SparseTensor.from_dense(x, torch.ones_like(x, dtype=torch.bool))
    cores = _spectral_cores(sp, [1, 2, 3, 2, 1], gen)
    torch.testing.assert_close(TTTensor(tuple(cores)).to_dense(), x, rtol=1e-8, atol=1e-8)


def test_tucker_tt_errors():
    p, mask = planted_problem("tucker", (5, 4, 3), (2, 2, 2), 0.5)
    x = p.tensor
    with pytest.raises(ValueError, match=r"tucker_als: rank\[2\] must be in \[1, 3\] \(the size"):
        tucker_als(x, (2, 2, 4), mask=mask)
    with pytest.raises(ValueError, match=r"tucker_als: rank needs 3 entries, one per mode"):
        tucker_als(x, (2, 2), mask=mask)
    with pytest.raises(TypeError, match=r"tucker_als: rank must be an int or a tuple of ints"):
        tucker_als(x, 2.0, mask=mask)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tucker_als: init must be 'svd' or 'random'"):
        tucker_als(x, 2, mask=mask, init="hosvd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tt_als: rank needs 4 entries for a 3-way tensor"):
        tt_als(x, (1, 2, 1), mask=mask)
    with pytest.raises(ValueError, match=r"tt_als: a tensor train has boundary ranks"):
        tt_als(x, (2, 2, 2, 2), mask=mask)
    with pytest.raises(ValueError, match=r"tt_als: init must be 'svd' or 'random'"):
        tt_als(x, 2, mask=mask, init="cross")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tt_als: data has no observed entries"):
        tt_als(x, 2, mask=torch.zeros_like(mask))
    assert tt_als(
        x, 50, mask=mask, max_iter=2, generator=torch.Generator().manual_seed(0)
    ).model.rank == (1, 5, 3, 1)
