"""What every completion entry point accepts (issue 9, items 10, 11, 17; issue 10.6): numpy arrays
and masks, torch sparse tensors, data that require grad, numpy integer ranks, the deprecated
``data=`` keyword, and a clear error for a seed passed as ``generator``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _entry_points import ENTRY_POINTS, F64, FUNCTION_NAMES, problem

from factorch.completion import cp_als, cp_wopt, gcp, tt_als, tucker_als
from factorch.tensors import SparseTensor

NAMES = list(ENTRY_POINTS)
FUNCTIONS = {"cp_als": cp_als, "cp_wopt": cp_wopt, "gcp": gcp, "tucker_als": tucker_als}
FUNCTIONS["tt_als"] = tt_als


def _same(a, b):
    torch.testing.assert_close(a.model.to_dense(), b.model.to_dense(), rtol=0, atol=0)
    assert a.train_rmse == b.train_rmse


@pytest.mark.parametrize("name", NAMES)
def test_numpy_data_and_masks_give_the_torch_result(name):
    fit = ENTRY_POINTS[name]
    x, mask = problem()
    ref = fit(x, 2, mask=mask)
    res = fit(x.numpy(), 2, mask=mask.numpy())
    assert isinstance(
        res.model.factors[0] if hasattr(res.model, "factors") else res.model.cores[0], torch.Tensor
    )
    _same(res, ref)
    listed = fit(x.tolist(), 2, mask=mask.tolist())  # nested lists: float64, as numpy
    _same(listed, ref)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")  # building one
@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "cp_als_em"] + ["cp_als_em"])
def test_torch_sparse_tensors_are_their_listed_entries(name, layout):
    fit = ENTRY_POINTS[name]
    x, mask = problem(shape=(8, 7))
    sp = SparseTensor.from_dense(x, mask)
    ref = fit(sp, 2)
    coo = torch.sparse_coo_tensor(sp.indices.long(), sp.values, sp.shape, check_invariants=True)
    res = fit(coo if layout == "coo" else coo.to_sparse_csr(), 2)
    _same(res, ref)


@pytest.mark.parametrize("name", NAMES)
def test_data_that_require_grad_are_detached(name):
    fit = ENTRY_POINTS[name]
    x, mask = problem()
    ref = fit(x, 2, mask=mask)
    leaf = x.clone().requires_grad_(True)
    res = fit(leaf, 2, mask=mask)
    _same(res, ref)
    assert not any(t.requires_grad for t in res.model._tensors()) and leaf.grad is None
    sparse = SparseTensor.from_dense(x, mask)
    graded = sparse.with_values(sparse.values.clone().requires_grad_(True))
    _same(fit(graded, 2), fit(sparse, 2))


@pytest.mark.parametrize("name", NAMES)
def test_numpy_integer_ranks(name):
    fit = ENTRY_POINTS[name]
    x, mask = problem()
    _same(fit(x, np.int64(2), mask=mask), fit(x, 2, mask=mask))


@pytest.mark.parametrize("name", NAMES)
def test_a_seed_as_generator_is_a_clear_type_error(name):
    fn = FUNCTION_NAMES[name]
    x, mask = problem()
    with pytest.raises(
        TypeError, match=rf"{fn}: generator must be a torch.Generator or None; got int"
    ):
        FUNCTIONS[fn](x, 2, mask=mask, generator=0)


@pytest.mark.parametrize("fn", list(FUNCTIONS))
def test_data_keyword_is_a_deprecated_alias_of_tensor(fn):
    x, mask = problem()
    f = FUNCTIONS[fn]
    kw = {"mask": mask, "max_iter": 3, "generator": torch.Generator().manual_seed(0)}
    ref = f(x, 2, **kw)
    kw["generator"] = torch.Generator().manual_seed(0)
    with pytest.warns(
        DeprecationWarning, match=rf"{fn}: the keyword data= is deprecated; use tensor="
    ):
        res = f(data=x, rank=2, **kw)
    _same(res, ref)


def test_the_deprecation_warning_points_at_the_caller():
    x, mask = problem()
    with pytest.warns(DeprecationWarning) as record:
        cp_als(data=x, rank=2, mask=mask, max_iter=2)
    assert record[0].filename == __file__


def test_a_complex_sparse_tensor_is_refused():
    idx = torch.tensor([[0, 1], [1, 0]])
    coo = torch.sparse_coo_tensor(idx, torch.ones(2, dtype=torch.cfloat), check_invariants=True)
    with pytest.raises(
        TypeError, match=r"cp_als: tensor must have a real floating dtype; got a sparse"
    ):
        cp_als(coo, 1)


def test_mask_as_a_sparse_tensor_of_the_data_is_refused_with_the_reason():
    x, mask = problem()
    with pytest.raises(ValueError, match=r"cp_als: mask is only for dense tensors"):
        cp_als(x.to_sparse(), 2, mask=mask)
    assert x.dtype == F64
