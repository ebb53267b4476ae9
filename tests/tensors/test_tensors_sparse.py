"""SparseTensor: canonical form, duplicate policies, conversions, splits, files and every error."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.tensors import SparseTensor

F64 = torch.float64


def _random_sparse_dense(shape, density, seed, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=F64).to(dtype)
    keep = torch.rand(shape, generator=gen) < density
    return x * keep, keep


def _is_canonical(sp: SparseTensor) -> bool:
    rows = [tuple(int(v) for v in sp.indices[:, p]) for p in range(sp.nnz)]
    return rows == sorted(set(rows))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_from_coo_in_any_order_equals_dense(shape, density, seed):
    dense, keep = _random_sparse_dense(shape, density, seed)
    idx = keep.nonzero().mT
    vals = dense[keep]
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(idx.shape[1], generator=gen)
    sp = SparseTensor(idx[:, perm], vals[perm], shape)
    assert sp.nnz == int(keep.sum())
    assert sp.indices.dtype == torch.int32 and sp.indices.shape == (len(shape), sp.nnz)
    assert _is_canonical(sp)
    torch.testing.assert_close(sp.to_dense(), dense, rtol=0, atol=0)
    assert torch.equal(sp.mask(), keep)
    assert sp.density == pytest.approx(sp.nnz / dense.numel())


def test_duplicates_equal_values_merge_and_policies():
    idx = torch.tensor([[1, 0, 1, 1], [2, 0, 2, 2]])
    sp = SparseTensor(idx, torch.tensor([5.0, 1.0, 5.0, 5.0], dtype=F64), (2, 3))
    assert sp.nnz == 2
    assert sp.values.tolist() == [1.0, 5.0]
    conflicting = torch.tensor([5.0, 1.0, 7.0, 5.0], dtype=F64)
    s = SparseTensor.from_coo(idx, conflicting, (2, 3), duplicates="sum")
    assert s.values.tolist() == [1.0, 17.0]
    m = SparseTensor.from_coo(idx, conflicting, (2, 3), duplicates="mean")
    assert m.values.tolist() == pytest.approx([1.0, 17.0 / 3])
    with pytest.raises(
        ValueError,
        match=r"SparseTensor: coordinate \(1, 2\) is listed more than once with different values "
        r"\(5.0 and 7.0\); remove the duplicates or pass duplicates='sum' or 'mean'",
    ):
        SparseTensor(idx, conflicting, (2, 3))


def test_huge_shape_uses_int64_and_lexicographic_sort():
    big = 2**40
    shape = (big, 3, big)
    idx = torch.tensor([[5, 5, 0, 2**39], [1, 0, 2, 1], [7, 9, big - 1, 0]])
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0])
    sp = SparseTensor(idx, vals, shape)
    assert sp.indices.dtype == torch.int64
    assert sp.indices.mT.tolist() == [[0, 2, big - 1], [5, 0, 9], [5, 1, 7], [2**39, 1, 0]]
    assert sp.values.tolist() == [3.0, 2.0, 1.0, 4.0]
    assert sp.contains(torch.tensor([[5, 0, 9], [5, 0, 8]])).tolist() == [True, False]
    with pytest.raises(ValueError, match=r"listed more than once with different values"):
        SparseTensor(torch.tensor([[1, 1], [0, 0], [2, 2]]), torch.tensor([1.0, 2.0]), shape)
    with pytest.raises(ValueError, match=r"to_dense: the dense tensor would have"):
        sp.to_dense()


def test_from_dense_with_mask_keeps_observed_zeros_and_ignores_nan():
    x = torch.tensor([[0.0, float("nan")], [2.0, 0.0]], dtype=F64)
    mask = torch.tensor([[True, False], [True, False]])
    sp = SparseTensor.from_dense(x, mask)
    assert sp.indices.mT.tolist() == [[0, 0], [1, 0]]
    assert sp.values.tolist() == [0.0, 2.0]
    nz = SparseTensor.from_dense(torch.tensor([[0.0, 3.0], [2.0, 0.0]]))
    assert nz.nnz == 2
    full_nan = sp.to_dense(fill=float("nan"))
    assert torch.isnan(full_nan[0, 1]) and full_nan[1, 0] == 2.0


def test_to_torch_round_trip_and_device_dtype():
    dense, _ = _random_sparse_dense((4, 3, 2), 0.5, 1)
    sp = SparseTensor.from_dense(dense)
    t = sp.to_torch()
    assert t.is_coalesced()
    torch.testing.assert_close(t.to_dense(), dense)
    back = SparseTensor.from_torch(t)
    assert torch.equal(back.indices, sp.indices) and torch.equal(back.values, sp.values)
    f32 = sp.to(dtype=torch.float32)
    assert f32.dtype == torch.float32 and f32.nnz == sp.nnz and f32.device == sp.device
    assert sp.norm() == pytest.approx(float(torch.linalg.vector_norm(dense)))


def test_split_partitions_entries_deterministically():
    dense, _ = _random_sparse_dense((10, 9, 8), 0.4, 2)
    sp = SparseTensor.from_dense(dense)
    parts = sp.split((0.7, 0.2, 0.1), generator=torch.Generator().manual_seed(3))
    assert [p.nnz for p in parts] == [
        round(0.7 * sp.nnz),
        round(0.9 * sp.nnz) - round(0.7 * sp.nnz),
        sp.nnz - round(0.9 * sp.nnz),
    ]
    total = sum(p.to_dense() for p in parts)
    torch.testing.assert_close(total, dense, rtol=0, atol=0)
    masks = [p.mask() for p in parts]
    for a, b in itertools.combinations(masks, 2):
        assert not bool((a & b).any())
    assert all(_is_canonical(p) for p in parts)
    again = sp.split((0.7, 0.2, 0.1), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a.indices, b.indices) for a, b in zip(parts, again))
    other = sp.split((0.7, 0.2, 0.1), generator=torch.Generator().manual_seed(4))
    assert not torch.equal(parts[0].indices, other[0].indices)


def test_contains_select_counts_with_values():
    sp = SparseTensor(torch.tensor([[0, 1, 2], [1, 1, 0]]), torch.tensor([1.0, 2.0, 3.0]), (3, 2))
    q = torch.tensor([[0, 1], [0, 0], [2, 0], [5, 0], [-1, 1]])
    assert sp.contains(q).tolist() == [True, False, True, False, False]
    sub = sp.select(torch.tensor([2, 0]))
    assert sub.values.tolist() == [1.0, 3.0]
    assert sp.select(torch.tensor([False, True, False])).values.tolist() == [2.0]
    assert sp.counts(0).tolist() == [1, 1, 1] and sp.counts(-1).tolist() == [1, 2]
    assert sp.with_values(torch.tensor([4.0, 5.0, 6.0])).to_dense()[2, 0] == 6.0


def test_empty_sparse_tensor_is_allowed():
    sp = SparseTensor(torch.zeros(3, 0, dtype=torch.int64), torch.zeros(0), (2, 3, 4))
    assert sp.nnz == 0 and sp.density == 0.0
    assert sp.to_dense().abs().sum() == 0
    assert sp.contains(torch.tensor([[0, 0, 0]])).tolist() == [False]


def test_file_round_trip_csv_and_tns(tmp_path):
    dense, _ = _random_sparse_dense((4, 5, 3), 0.5, 5)
    sp = SparseTensor.from_dense(dense)
    path = tmp_path / "x.csv"
    sp.to_file(path)
    back = SparseTensor.from_file(path, shape=(4, 5, 3), dtype=F64)
    assert torch.equal(back.indices, sp.indices) and torch.equal(back.values, sp.values)
    tns = tmp_path / "x.tns"
    tns.write_text("# a FROSTT file\n1 1 1 2.5\n\n3 2 1 -1\n")
    t = SparseTensor.from_file(tns, index_base=1, dtype=F64)
    assert t.shape == (3, 2, 1) and t.values.tolist() == [2.5, -1.0]
    header = tmp_path / "h.csv"
    header.write_text("i,j,value\n0,1,2.0\n1,0,3.0\n")
    assert SparseTensor.from_file(header).shape == (2, 2)


FILE_ERRORS_CASES = [
    ("0,1,2.0\n1,0\n", {}, ValueError, r"line 2 has 2 fields; expected 3"),
    ("0,1,2.0\n1,x,3.0\n", {}, ValueError, r"line 2 of .* is not 'index,...,value'"),
    ("# nothing\n", {}, ValueError, r"lists no entries"),
    ("0,0,1.0\n", {"index_base": 1}, IndexError, r"a negative index was read \(index_base=1\)"),
    ("0,0,1.0\n", {"index_base": 2}, ValueError, r"index_base must be 0 or 1; got 2"),
    ("0,0,1.0\n0,0,2.0\n", {}, ValueError, r"coordinate \(0, 0\) is listed more than once"),
]


@pytest.mark.parametrize(("text", "kwargs", "error", "match"), FILE_ERRORS_CASES)
def test_file_errors(tmp_path, text, kwargs, error, match):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(error, match=match):
        SparseTensor.from_file(bad, **kwargs)


def test_file_duplicates_can_be_summed(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("0,0,1.0\n0,0,2.0\n")
    assert SparseTensor.from_file(path, duplicates="sum").values.tolist() == [3.0]


def _constructor_errors_inputs():
    idx = torch.tensor([[0, 1], [1, 0]])
    vals = torch.tensor([1.0, 2.0])
    return idx, vals


CONSTRUCTOR_ERRORS_CASES = [
    pytest.param(
        lambda idx, vals: SparseTensor(torch.tensor([[0, 1], [3, 0]]), vals, (2, 3)),
        IndexError,
        r"SparseTensor: index 3 is out of range for mode 1 of "
        r"size 3; indices must be in \[0, 2\]",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(torch.tensor([[-1, 1], [0, 0]]), vals, (2, 3)),
        IndexError,
        r"index -1 is out of range for mode 0",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, torch.tensor([1.0, float("nan")]), (2, 3)),
        ValueError,
        r"values must be finite; values\[1\] = nan",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, torch.tensor([1, 2]), (2, 3)),
        TypeError,
        r"values must have a real floating dtype; got torch.int64",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, vals[:, None], (2, 3)),
        ValueError,
        r"values must be 1-D \(nnz,\); got shape \(2, 1\)",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, vals, (2, 3, 4)),
        ValueError,
        r"indices must have shape \(N, nnz\) = \(3, nnz\)",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, torch.ones(3), (2, 3)),
        ValueError,
        r"indices list 2 entries but values has 3",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx.float(), vals, (2, 3)),
        TypeError,
        r"indices must have an integer dtype; got torch.float32",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor("0 1", vals, (2, 3)),
        TypeError,
        r"SparseTensor: indices must be a torch.Tensor or a numpy array; got str",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, vals, (2, 0)),
        ValueError,
        r"shape must contain positive ints only; got \(2, 0\)",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor(idx, vals, ()),
        TypeError,
        r"shape must be a non-empty tuple of positive ints",
    ),
    pytest.param(
        lambda idx, vals: SparseTensor.from_coo(idx, vals, (2, 3), duplicates="max"),
        ValueError,
        r"duplicates must be one of \('error', 'sum', 'mean'\)",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CONSTRUCTOR_ERRORS_CASES)
def test_constructor_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_constructor_errors_inputs())


def _from_dense_and_method_errors_inputs():
    x = torch.tensor([[1.0, float("nan")]])
    sp = SparseTensor.from_dense(torch.tensor([[1.0, 2.0]]))
    return x, sp


FROM_DENSE_AND_METHOD_ERRORS_CASES = [
    pytest.param(
        lambda x, sp: SparseTensor.from_dense(x),
        ValueError,
        r"tensor contains NaN; pass mask=~torch.isnan\(tensor\)",
    ),
    pytest.param(
        lambda x, sp: SparseTensor.from_dense(x, torch.tensor([[True, True]])),
        ValueError,
        r"values must be finite",
    ),
    pytest.param(
        lambda x, sp: SparseTensor.from_dense(x, torch.ones(1, 2)),
        TypeError,
        r"mask must be a bool tensor \(True = observed\)",
    ),
    pytest.param(
        lambda x, sp: SparseTensor.from_dense(x, torch.tensor([True, False])),
        ValueError,
        r"mask shape \(2,\) must equal the tensor shape \(1, 2\)",
    ),
    pytest.param(
        lambda x, sp: SparseTensor.from_dense(torch.ones(2, dtype=torch.int64)),
        TypeError,
        r"tensor must have a real floating dtype",
    ),
    pytest.param(
        lambda x, sp: SparseTensor.from_torch(torch.ones(2)),
        TypeError,
        r"expected a torch.sparse_coo tensor; got a torch.strided",
    ),
    pytest.param(
        lambda x, sp: sp.split((0.5, 0.4)), ValueError, r"fractions must sum to 1; got sum 0.9"
    ),
    pytest.param(lambda x, sp: sp.split((1.5, -0.5)), ValueError, r"fractions must be positive"),
    pytest.param(
        lambda x, sp: sp.split(1.0),
        TypeError,
        r"fractions must be a sequence of floats",
    ),
    pytest.param(
        lambda x, sp: sp.select(torch.tensor([2])), IndexError, r"positions must be in \[0, 1\]"
    ),
    pytest.param(
        lambda x, sp: sp.select(torch.tensor([True])),
        ValueError,
        r"a bool mask must have shape \(2,\)",
    ),
    pytest.param(
        lambda x, sp: sp.contains(torch.tensor([0, 1])),
        ValueError,
        r"contains: indices must have shape \(B, 2\)",
    ),
    pytest.param(
        lambda x, sp: sp.with_values(torch.ones(3)),
        ValueError,
        r"with_values: values must have shape \(2,\)",
    ),
    pytest.param(
        lambda x, sp: sp.to(dtype=torch.int32),
        TypeError,
        r"to: dtype must be a floating torch.dtype",
    ),
    pytest.param(
        lambda x, sp: sp.counts(2), IndexError, r"SparseTensor.counts: mode must be in \[-2, 1\]"
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), FROM_DENSE_AND_METHOD_ERRORS_CASES)
def test_from_dense_and_method_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_from_dense_and_method_errors_inputs())


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_norm_is_true_at_extreme_float32_scales(scale):
    dense, _ = _random_sparse_dense((6, 5, 4), 0.5, 7)
    sp = SparseTensor.from_dense((dense * scale).float())
    expected = torch.linalg.vector_norm(dense.double()) * scale
    assert sp.norm().dtype == torch.float32
    torch.testing.assert_close(sp.norm().double(), expected, rtol=1e-6, atol=0.0)


@pytest.mark.cuda
def test_sparse_tensor_cuda_round_trip():
    dense, _ = _random_sparse_dense((5, 4, 3), 0.5, 8)
    sp = SparseTensor.from_dense(dense).to("cuda")
    assert sp.device.type == "cuda"
    torch.testing.assert_close(sp.to_dense().cpu(), dense)


def test_numpy_and_list_inputs_are_accepted():
    import numpy as np

    sp = SparseTensor([[0, 1], [1, 0]], np.array([1.0, 2.0]), (2, 3))
    assert sp.values.dtype == torch.float64 and sp.indices.dtype == torch.int32
    dense = np.zeros((2, 3))
    dense[1, 2] = 5.0
    assert SparseTensor.from_dense(dense).values.tolist() == [5.0]
    masked = SparseTensor.from_dense(dense, np.ones((2, 3), dtype=bool))
    assert masked.nnz == 6
    coo = SparseTensor.from_coo(np.array([[1], [2]]), np.array([3.0]), (2, 3))
    assert coo.to_dense()[1, 2] == 3.0


def test_finite_values_whose_sum_overflows_are_accepted_and_inf_is_refused():
    big = torch.tensor([3e38, 3e38, -1.0])  # float32: the sum overflows, every value is finite
    sp = SparseTensor(torch.tensor([[0, 1, 2]]), big, (3,))
    assert torch.equal(sp.values, big)
    for bad in ([1.0, float("inf"), float("-inf")], [3e38, float("inf"), 3e38]):
        with pytest.raises(ValueError, match=r"values must be finite; values\[1\] = inf"):
            SparseTensor(torch.tensor([[0, 1, 2]]), torch.tensor(bad), (3,))
