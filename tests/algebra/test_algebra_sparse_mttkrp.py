"""sparse_mttkrp equals the dense MTTKRP of the densified tensor (hypothesis), with and without a
prebuilt SparseLayout, across chunk boundaries, with gradients; every error pinned."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import factorch.algebra._sparse_mttkrp as smod
from factorch.algebra import SparseLayout, mttkrp, sparse_mttkrp
from factorch.tensors import SparseTensor

F64 = torch.float64
TOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def _problem(shape, rank, density, seed, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(shape, generator=gen, dtype=F64)
    dense = dense * (torch.rand(shape, generator=gen, dtype=F64) < density)
    factors = [torch.randn(s, rank, generator=gen, dtype=F64) for s in shape]
    return dense.to(dtype), [f.to(dtype) for f in factors], gen


def _ref(dense, factors, mode, weights=None):
    hi = [f.double() for f in factors]
    return mttkrp(dense.double(), hi, mode, weights=None if weights is None else weights.double())


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    rank=st.integers(1, 5),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, F64]),
    use_weights=st.booleans(),
)
def test_sparse_mttkrp_equals_dense_mttkrp(shape, rank, density, seed, dtype, use_weights):
    dense, factors, gen = _problem(shape, rank, density, seed, dtype)
    sp = SparseTensor.from_dense(dense)
    weights = torch.randn(rank, generator=gen, dtype=F64).to(dtype) if use_weights else None
    layout = SparseLayout.build(sp)
    for mode in range(len(shape)):
        out = sparse_mttkrp(sp, factors, mode, weights=weights)
        assert out.shape == (shape[mode], rank) and out.dtype == dtype
        tol = TOL[dtype]
        torch.testing.assert_close(
            out.double(), _ref(dense, factors, mode, weights), rtol=tol, atol=tol
        )
        # a prebuilt layout gives the same numbers bit for bit
        assert torch.equal(sparse_mttkrp(sp, factors, mode, weights=weights, layout=layout), out)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_many_chunks_with_rows_split_across_chunk_boundaries(monkeypatch, dtype):
    monkeypatch.setattr(smod, "_CPU_CHUNK_ELEMENTS", 256 * 3)  # 256 entries per chunk at R=3
    dense, factors, _ = _problem((7, 40, 30), 3, 0.6, 11, dtype)
    sp = SparseTensor.from_dense(dense)
    assert sp.nnz > 10 * 256
    layout = SparseLayout.build(sp)
    for mode in range(3):
        lay = layout.mode(mode)
        assert int(sp.counts(mode).max()) > 256 or mode > 0  # mode-0 rows span several chunks
        assert lay.offsets[-1] == sp.nnz
        out = sparse_mttkrp(sp, factors, mode, layout=layout)
        tol = TOL[dtype] * 10
        torch.testing.assert_close(out.double(), _ref(dense, factors, mode), rtol=tol, atol=tol)


def test_values_override_matches_a_tensor_with_those_values():
    dense, factors, gen = _problem((5, 6, 4), 2, 0.5, 3)
    sp = SparseTensor.from_dense(dense)
    new = torch.randn(sp.nnz, generator=gen, dtype=F64)
    layout = SparseLayout.build(sp)
    for mode in range(3):
        expected = sparse_mttkrp(sp.with_values(new), factors, mode)
        torch.testing.assert_close(smod.sparse_mttkrp_kernel(layout, factors, mode, new), expected)
        # the layout of sp serves a tensor with the same coordinates and other values
        torch.testing.assert_close(
            sparse_mttkrp(sp.with_values(new), factors, mode, layout=layout), expected
        )


def test_empty_tensor_gives_zeros():
    sp = SparseTensor(torch.zeros(3, 0, dtype=torch.int64), torch.zeros(0, dtype=F64), (2, 3, 4))
    fs = [torch.ones(s, 2, dtype=F64) for s in (2, 3, 4)]
    assert torch.equal(sparse_mttkrp(sp, fs, 1), torch.zeros(3, 2, dtype=F64))


def test_gradients_match_dense_mttkrp_and_gradcheck():
    dense, factors, gen = _problem((3, 4, 2), 2, 0.7, 5)
    sp = SparseTensor.from_dense(dense)
    fs = [f.clone().requires_grad_(True) for f in factors]
    vals = sp.values.clone().requires_grad_(True)
    weights = torch.randn(2, generator=gen, dtype=F64, requires_grad=True)

    def f(v, w, a, b, c):
        return sparse_mttkrp(sp.with_values(v), [a, b, c], 1, weights=w)

    assert torch.autograd.gradcheck(f, (vals, weights, *fs))
    up = torch.randn(4, 2, generator=gen, dtype=F64)
    (f(vals, weights, *fs) * up).sum().backward()
    fs2 = [f.detach().clone().requires_grad_(True) for f in factors]
    (mttkrp(dense, fs2, 1, weights=weights.detach()) * up).sum().backward()
    for a, b in zip(fs, fs2):
        torch.testing.assert_close(a.grad, b.grad)


def _error_problem():
    dense, factors, _ = _problem((3, 4, 2), 2, 0.7, 5)
    return dense, SparseTensor.from_dense(dense), factors


ERRORS = [
    (
        lambda d, sp, f: sparse_mttkrp(d, f, 0),
        TypeError,
        r"sparse_mttkrp: tensor must be a factorch.tensors.SparseTensor .*got a dense "
        r"torch.Tensor \(use factorch.algebra.mttkrp",
    ),
    (
        lambda d, sp, f: sparse_mttkrp("x", f, 0),
        TypeError,
        r"sparse_mttkrp: tensor must be a factorch.tensors.SparseTensor .*got str",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, f[0], 0),
        TypeError,
        r"sparse_mttkrp: factors must be a sequence of matrices; got Tensor",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, f[:2], 0),
        ValueError,
        r"sparse_mttkrp: need one factor per mode \(3\); got 2 factors",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, f, 3),
        IndexError,
        r"sparse_mttkrp: mode must be in \[-3, 2\] for a 3-way tensor; got 3",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, [f[0], f[1].float(), f[2]], 0),
        TypeError,
        r"sparse_mttkrp: factors\[1\] is torch.float32 on cpu but the tensor's values are "
        r"torch.float64",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, [f[0], f[1], torch.ones(2, 3, dtype=F64)], 0),
        ValueError,
        r"sparse_mttkrp: factors must share one rank; factors\[0\] has 2 columns and "
        r"factors\[2\] has 3",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, [f[0], torch.ones(5, 2, dtype=F64), f[2]], 0),
        ValueError,
        r"sparse_mttkrp: factors\[1\] has 5 rows but the tensor has size 4",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, f, 0, weights=torch.ones(3, dtype=F64)),
        ValueError,
        r"sparse_mttkrp: weights must be a \(2,\) tensor of dtype",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, [f[0], f[1], "c"], 0),
        TypeError,
        r"sparse_mttkrp: factors\[2\] must be a torch.Tensor or a numpy array; got str",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, f, 0, layout="sorted"),
        TypeError,
        r"sparse_mttkrp: layout must be a factorch.algebra.SparseLayout or None; got str",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(sp, f, 2, layout=SparseLayout.build(sp, modes=[0])),
        ValueError,
        r"sparse_mttkrp: layout was built for modes \(0,\), not mode 2",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(
            sp, f, 0, layout=SparseLayout.build(SparseTensor.from_dense(d * (d > 0.5)))
        ),
        ValueError,
        r"sparse_mttkrp: layout was built for other coordinates",
    ),
    (
        lambda d, sp, f: sparse_mttkrp(
            sp, f, 0, layout=SparseLayout.build(SparseTensor.from_dense(d[:2]))
        ),
        ValueError,
        r"sparse_mttkrp: layout was built for shape \(2, 4, 2\); the tensor has shape "
        r"\(3, 4, 2\)",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), ERRORS)
def test_sparse_mttkrp_errors(call, error, match):
    dense, sp, factors = _error_problem()
    with pytest.raises(error, match=match):
        call(dense, sp, factors)


def test_numpy_factors_are_accepted():
    dense, sp, factors = _error_problem()
    out = sparse_mttkrp(sp, [f.numpy() for f in factors], 1)
    torch.testing.assert_close(out, mttkrp(dense, factors, 1))


@pytest.mark.cuda
def test_sparse_mttkrp_cuda_matches_cpu():
    dense, factors, _ = _problem((20, 30, 10), 4, 0.3, 9)
    sp = SparseTensor.from_dense(dense)
    for mode in range(3):
        gpu = sparse_mttkrp(sp.to("cuda"), [f.cuda() for f in factors], mode)
        torch.testing.assert_close(gpu.cpu(), sparse_mttkrp(sp, factors, mode))
