"""Tucker with missing values: ``tucker``, ``partial_tucker`` and ``non_negative_tucker`` (mask=).

EM imputation: planted recovery with a third of the entries missing, monotone error on the
observed entries, the reported error is the true observed error, NaN allowed where unobserved,
TensorLy's masked Tucker on the bundled IL-2 tensor (real missing values) and pinned errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import non_negative_tucker, partial_tucker, tucker
from factorch.random import random_tucker
from factorch.tensors import TuckerTensor


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _observed_error(x: torch.Tensor, model: TuckerTensor, mask: torch.Tensor) -> float:
    approx = model.to(dtype=torch.float64).to_dense()
    x = x.double()
    return float(torch.linalg.vector_norm((x - approx)[mask]) / torch.linalg.vector_norm(x[mask]))


def planted(shape=(10, 11, 12), rank=(2, 3, 2), missing=0.3, seed=0, nonneg=False):
    g = _gen(seed)
    if nonneg:
        core = torch.rand(rank, generator=g, dtype=torch.float64)
        factors = [torch.rand(i, r, generator=g, dtype=torch.float64) for i, r in zip(shape, rank)]
        x = TuckerTensor(core, tuple(factors)).to_dense()
    else:
        x = random_tucker(shape, rank, generator=g, dtype=torch.float64).to_dense()
    mask = torch.rand(shape, generator=g) > missing
    return x, mask, torch.where(mask, x, torch.nan)


def test_tucker_recovers_a_planted_tensor_with_a_third_missing():
    x, mask, data = planted()
    res = tucker(data, (2, 3, 2), mask=mask, max_iter=300, tol=1e-13)
    assert res.converged
    full = float(torch.linalg.vector_norm(res.model.to_dense() - x) / torch.linalg.vector_norm(x))
    assert full < 1e-8  # the missing entries are completed too
    assert res.error == pytest.approx(_observed_error(data, res.model, mask), rel=1e-9, abs=1e-14)


def test_em_error_on_observed_entries_never_increases():
    x, mask, data = planted(seed=1)
    noisy = data + 0.01 * torch.randn(x.shape, generator=_gen(2), dtype=torch.float64)
    res = tucker(noisy, (2, 3, 2), mask=mask, max_iter=60, tol=0)
    errs = np.array(res.errors)
    assert (np.diff(errs) <= 1e-12).all()
    assert res.error == pytest.approx(_observed_error(noisy, res.model, mask), rel=1e-9)


def test_partial_tucker_with_mask():
    _x, mask, data = planted(shape=(9, 10, 11), rank=(2, 10, 3), seed=3)
    res = partial_tucker(data, (2, 3), modes=(0, 2), mask=mask, max_iter=300, tol=1e-13)
    assert res.model.rank == (2, 10, 3)
    assert res.error < 1e-8


@pytest.mark.parametrize("method", ["hals", "mu"])
def test_non_negative_tucker_with_mask_is_monotone_and_non_negative(method):
    _x, mask, data = planted(nonneg=True, seed=4)
    res = non_negative_tucker(data, (2, 3, 2), mask=mask, method=method, max_iter=80, tol=0,
                              generator=_gen(5))  # fmt: skip
    model = res.model
    assert bool((model.core >= 0).all()) and all(bool((f >= 0).all()) for f in model.factors)
    errs = np.array(res.errors)
    assert (np.diff(errs) <= 1e-12 * errs[0]).all()
    assert res.error == pytest.approx(_observed_error(data, model, mask), rel=1e-9)
    assert res.error < (0.02 if method == "hals" else 0.06)


def test_mask_that_observes_everything_matches_no_mask():
    x, _, _ = planted(missing=0.0)
    noisy = x + 0.01 * torch.randn(x.shape, generator=_gen(6), dtype=torch.float64)
    full = torch.ones(x.shape, dtype=torch.bool)
    a = tucker(noisy, (2, 3, 2), max_iter=5, tol=0)
    b = tucker(noisy, (2, 3, 2), mask=full, max_iter=5, tol=0)
    torch.testing.assert_close(b.model.to_dense(), a.model.to_dense(), rtol=1e-10, atol=1e-12)


def test_il2_with_its_missing_values_at_least_as_accurate_as_tensorly(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.datasets import load_IL2data
    from tensorly.decomposition import tucker as tl_tucker

    x = load_IL2data().tensor
    mask = ~np.isnan(x)
    zeros = np.where(mask, x, 0.0)
    core, factors = tl_tucker(zeros, (3, 3, 3, 3), mask=mask.astype(float), n_iter_max=100,
                              tol=0)  # fmt: skip
    approx = tl.tucker_to_tensor((core, factors))
    theirs = np.linalg.norm((approx - zeros)[mask]) / np.linalg.norm(zeros[mask])
    res = tucker(x, (3, 3, 3, 3), mask=mask, max_iter=100, tol=0)
    assert res.error <= theirs * (1 + 1e-9)
    assert res.error == pytest.approx(
        _observed_error(torch.from_numpy(x), res.model, torch.from_numpy(mask)), rel=1e-9
    )


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(torch.float32, 1e-30), (torch.float32, 1e30), (torch.float16, 1.0), (torch.bfloat16, 1e-30)],
)
def test_masked_low_precision_and_scale(dtype, scale):
    x, mask, data = planted(seed=7)
    res = tucker((data * scale).to(dtype), (2, 3, 2), mask=mask, max_iter=50)
    assert res.model.dtype == dtype
    true = _observed_error((x * scale).to(dtype), res.model, mask)
    assert res.error == pytest.approx(true, rel=1e-3, abs=1e-6)
    assert res.error < (1e-4 if dtype == torch.float32 else 5e-2)  # fmt: skip


def test_masked_autocast_and_numpy():
    _x, mask, data = planted(seed=8)
    ref = tucker(data.float(), (2, 3, 2), mask=mask, max_iter=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = tucker(data.float(), (2, 3, 2), mask=mask, max_iter=10)
    assert res.model.dtype == torch.float32 and res.errors == ref.errors
    res_np = tucker(data.numpy(), (2, 3, 2), mask=mask.numpy(), max_iter=10)
    assert res_np.model.dtype == torch.float64


X = torch.ones(3, 4, 5, dtype=torch.float64)
BAD = [
    (tucker, {"mask": torch.ones(3, 4, 5)}, TypeError, r"tucker: mask must have dtype torch.bool"),
    (tucker, {"mask": torch.ones(3, 4, dtype=torch.bool)}, ValueError,
     r"tucker: mask shape \(3, 4\) must equal the tensor shape \(3, 4, 5\)"),
    (tucker, {"mask": torch.zeros(3, 4, 5, dtype=torch.bool)}, ValueError,
     r"tucker: mask observes no entry"),
    (tucker, {"mask": "all"}, TypeError, r"tucker: mask must be a torch.Tensor or a numpy array"),
    (non_negative_tucker, {"mask": torch.ones(3, 4, 5, dtype=torch.int8)}, TypeError,
     r"non_negative_tucker: mask must have dtype torch.bool"),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_masks_are_refused_with_a_pinned_message(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(X, 2, **kwargs)


def test_nan_among_observed_entries_is_refused():
    x = X.clone()
    x[0, 0, 0] = torch.nan
    mask = torch.ones(3, 4, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"tucker: tensor \(observed entries\) contains 1 NaN"):
        tucker(x, 2, mask=mask)
    mask[0, 0, 0] = False
    assert tucker(x, 2, mask=mask, max_iter=3).model.rank == (2, 2, 2)
