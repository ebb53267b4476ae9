"""Robust PCA (principal component pursuit) and robust tensor PCA (TensorLy's SNN model).

Planted low rank + sparse outliers are separated (the paper-level property), with and without
missing entries; robust_tensor_pca runs TensorLy's iterates; numerical policies; pinned errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import RobustResult, robust_pca, robust_tensor_pca
from factorch.random import random_tucker


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def planted_matrix(m=60, n=50, rank=3, frac=0.05, seed=0, dtype=torch.float64):
    g = _gen(seed)
    low = torch.randn(m, rank, generator=g, dtype=dtype) @ torch.randn(rank, n, generator=g,
                                                                       dtype=dtype)  # fmt: skip
    spikes = torch.zeros(m, n, dtype=dtype)
    k = int(frac * m * n)
    where = torch.randperm(m * n, generator=g)[:k]
    spikes.view(-1)[where] = 10 * torch.randn(k, generator=g, dtype=dtype)
    return low, spikes


def planted_tensor(shape=(15, 16, 17), rank=(2, 3, 2), frac=0.05, seed=1):
    g = _gen(seed)
    low = random_tucker(shape, rank, generator=g, dtype=torch.float64).to_dense()
    low = low / low.std()
    spikes = torch.zeros(shape, dtype=torch.float64)
    k = int(frac * low.numel())
    where = torch.randperm(low.numel(), generator=g)[:k]
    spikes.view(-1)[where] = 10 * torch.randn(k, generator=g, dtype=torch.float64)
    return low, spikes


# --- the paper-level property: outliers separated ---------------------------------------------
def test_pcp_separates_planted_outliers():
    low, spikes = planted_matrix()
    res = robust_pca(low + spikes)
    assert isinstance(res, RobustResult) and res.converged
    assert _rel(res.low_rank, low) < 1e-6 and _rel(res.sparse, spikes) < 1e-6
    assert res.ranks == (3,)
    found = res.sparse.abs() > 1e-6
    assert torch.equal(found, spikes != 0)  # the support of the outliers, exactly


def test_pcp_with_missing_entries_completes_and_separates():
    low, spikes = planted_matrix(seed=2)
    observed = torch.rand(low.shape, generator=_gen(3)) > 0.2
    data = torch.where(observed, low + spikes, torch.nan)
    res = robust_pca(data, mask=observed)
    assert _rel(res.low_rank, low) < 1e-5  # the unobserved 20 % included
    assert bool((res.sparse[~observed] == 0).all())
    assert _rel(res.sparse[observed], spikes[observed]) < 1e-5


def test_pcp_plain_pca_would_fail_on_the_same_data():
    # the honest baseline: a rank-3 truncated SVD is ruined by the outliers
    low, spikes = planted_matrix()
    u, s, vh = torch.linalg.svd(low + spikes, full_matrices=False)
    assert _rel((u[:, :3] * s[:3]) @ vh[:3], low) > 0.1


def test_robust_tensor_pca_separates_planted_outliers():
    low, spikes = planted_tensor()
    res = robust_tensor_pca(low + spikes)
    assert res.converged and res.ranks == (2, 3, 2)
    assert _rel(res.low_rank, low) < 1e-5 and _rel(res.sparse, spikes) < 1e-4


def test_robust_tensor_pca_with_missing_entries():
    low, spikes = planted_tensor(seed=4)
    observed = torch.rand(low.shape, generator=_gen(5)) > 0.15
    res = robust_tensor_pca(torch.where(observed, low + spikes, torch.nan), mask=observed)
    assert _rel(res.low_rank, low) < 1e-4
    assert bool((res.sparse[~observed] == 0).all())


# --- anchors: TensorLy -------------------------------------------------------------------------
@pytest.mark.parametrize("masked", [False, True])
def test_robust_tensor_pca_runs_tensorlys_iterates(tensorly_backend, masked):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import robust_pca as tl_robust_pca

    low, spikes = planted_tensor(shape=(8, 9, 10), rank=(2, 2, 2))
    x = (low + spikes).numpy()
    mask = (np.random.default_rng(0).random(x.shape) > 0.1) if masked else None
    given = x * mask if masked else x
    d, e = tl_robust_pca(given, mask=None if mask is None else mask.astype(float), tol=0,
                         n_iter_max=40, reg_E=0.3, verbose=0)  # fmt: skip
    res = robust_tensor_pca(
        torch.from_numpy(given), mask=None if mask is None else torch.from_numpy(mask),
        reg_sparse=0.3, reg_low_rank=1.0, mu_init=1e-4, mu_max=1e10, learning_rate=1.1,
        max_iter=40, tol=0,
    )  # fmt: skip
    assert tl.get_backend() == "numpy"
    np.testing.assert_allclose(res.low_rank.numpy(), d, rtol=0, atol=1e-10 * np.abs(d).max())
    e_obs = e if mask is None else e * mask
    np.testing.assert_allclose(res.sparse.numpy(), e_obs, rtol=0, atol=1e-9 * np.abs(e).max())


def test_pcp_at_least_as_accurate_as_tensorlys_robust_pca(tensorly_backend):
    tensorly_backend("numpy")
    from tensorly.decomposition import robust_pca as tl_robust_pca

    low, spikes = planted_matrix(m=40, n=30, rank=2)
    d, _ = tl_robust_pca((low + spikes).numpy(), reg_E=2 / math.sqrt(40), n_iter_max=200,
                         verbose=0)  # fmt: skip
    ours = robust_pca(low + spikes, tol=1e-10)
    theirs = _rel(torch.from_numpy(d), low)
    assert theirs < 1e-6  # both separate the outliers; ours at least as accurately
    assert _rel(ours.low_rank, low) <= theirs


# --- numerical policies ------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_scales_give_the_same_split(scale):
    low, spikes = planted_matrix(m=30, n=25, rank=2)
    ref = robust_pca(low + spikes)
    res = robust_pca((low + spikes) * scale)
    assert torch.allclose(res.low_rank / scale, ref.low_rank, rtol=1e-10, atol=1e-10)
    assert res.errors == pytest.approx(ref.errors, rel=1e-6)


def test_float32_tiny_data_and_tensor_variant():
    low, spikes = planted_tensor(shape=(8, 9, 10), rank=(2, 2, 2))
    x = ((low + spikes) * 1e-30).float()
    res = robust_tensor_pca(x, max_iter=300)
    assert res.low_rank.dtype == torch.float32
    assert bool(torch.isfinite(res.low_rank).all()) and float(res.low_rank.abs().max()) > 0
    assert _rel(res.low_rank.double() * 1e30, low) < 1e-2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    low, spikes = planted_matrix(m=30, n=20, rank=2)
    x = (low + spikes).to(dtype)
    res = robust_pca(x)
    ref = robust_pca(x.float())  # the same data, computed in float32 explicitly
    assert res.low_rank.dtype == dtype and res.sparse.dtype == dtype
    assert torch.equal(res.low_rank, ref.low_rank.to(dtype))
    assert torch.equal(res.sparse, ref.sparse.to(dtype))


def test_autocast_keeps_the_input_dtype():
    low, spikes = planted_matrix(m=30, n=20, rank=2, dtype=torch.float32)
    ref = robust_pca(low + spikes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = robust_pca(low + spikes)
        res_t = robust_tensor_pca((low + spikes).reshape(6, 5, 20), max_iter=20)
    assert res.low_rank.dtype == torch.float32 and res_t.low_rank.dtype == torch.float32
    assert torch.equal(res.low_rank, ref.low_rank)


def test_numpy_input_and_requires_grad_is_detached():
    low, spikes = planted_matrix(m=20, n=15, rank=1)
    a = robust_pca((low + spikes).numpy())
    b = robust_pca((low + spikes).requires_grad_(True))
    assert isinstance(a.low_rank, torch.Tensor) and not b.low_rank.requires_grad
    assert torch.equal(a.low_rank, b.low_rank)


def test_all_zero_data():
    res = robust_tensor_pca(torch.zeros(3, 4, 5))
    assert res.converged and float(res.low_rank.abs().max()) == 0


def test_memory_guard_refuses_instantly():
    x = torch.zeros(1, 1).expand(2**31, 2**20)  # a view: nothing allocated
    with pytest.raises(ValueError, match=r"robust_pca: robust PCA's working set needs about"):
        robust_pca(x)


# --- pinned errors ----------------------------------------------------------------------------
M = torch.ones(4, 5, dtype=torch.float64)

BAD = [
    (robust_pca, ("x",), {}, TypeError, r"robust_pca: tensor must be a torch.Tensor or a numpy"),
    (robust_pca, (torch.ones(4, 5, dtype=torch.int64),), {}, TypeError,
     r"robust_pca: tensor must have a floating-point"),
    (robust_pca, (torch.ones(4, 5, 2),), {}, ValueError, r"robust_pca: tensor must have 2 dim"),
    (robust_pca, (M.to(torch.complex128),), {}, TypeError, r"robust_pca: tensor must be real"),
    (robust_pca, (M.clone().fill_(math.nan),), {}, ValueError, r"robust_pca: tensor contains"),
    (robust_pca, (M,), {"mask": torch.ones(4, 5)}, TypeError,
     r"robust_pca: mask must have dtype torch.bool"),
    (robust_pca, (M,), {"mask": torch.ones(4, 4, dtype=torch.bool)}, ValueError,
     r"robust_pca: mask shape \(4, 4\) must equal"),
    (robust_pca, (M,), {"mask": torch.zeros(4, 5, dtype=torch.bool)}, ValueError,
     r"robust_pca: mask observes no entry"),
    (robust_pca, (M,), {"lam": -1.0}, ValueError, r"robust_pca: lam must be a positive finite"),
    (robust_pca, (M,), {"mu": "big"}, TypeError, r"robust_pca: mu must be a positive float"),
    (robust_pca, (M,), {"rho": 0.5}, ValueError, r"robust_pca: rho must be at least 1"),
    (robust_pca, (M,), {"max_iter": 0}, ValueError, r"robust_pca: max_iter must be a positive"),
    (robust_pca, (M,), {"tol": -1.0}, ValueError, r"robust_pca: tol must be a non-negative"),
    (robust_tensor_pca, (torch.ones(5),), {}, ValueError,
     r"robust_tensor_pca: tensor must have at least 2 dimensions"),
    (robust_tensor_pca, (M,), {"reg_low_rank": 0.0}, ValueError,
     r"robust_tensor_pca: reg_low_rank must be a positive finite"),
    (robust_tensor_pca, (M,), {"mu_max": math.inf}, ValueError,
     r"robust_tensor_pca: mu_max must be a positive finite"),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "args", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input_is_refused_with_a_pinned_message(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
