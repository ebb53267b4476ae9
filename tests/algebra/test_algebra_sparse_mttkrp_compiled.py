"""sparse_mttkrp(implementation="compiled") equals the float64 dense MTTKRP and the eager kernel
in both float dtypes, every mode, with and without a sorted layout, with duplicate coordinates;
falls back to the eager kernel (one warning) when compilation fails; the faster layout build
gives the same layout as the previous one.

The compiled kernel is compiled once per (N, R, dtype) per process (inductor caches it on disk):
the tests share a few kinds so that the suite compiles a handful of kernels.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest
import torch

import factorch.algebra._sparse_mttkrp_compiled as cmod
from factorch.algebra import SparseLayout, mttkrp, sparse_mttkrp
from factorch.tensors import SparseTensor

F64 = torch.float64
TOL = {torch.float32: 2e-5, F64: 1e-12}

# inductor's C++ backend needs a compiler (the fallback without one is tested below)
HAS_COMPILER = any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++"))
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler for inductor")


@pytest.fixture
def spy(monkeypatch):
    """Run the compiled kernel on small tensors and count its calls."""
    monkeypatch.setattr(cmod, "MIN_ENTRIES", 2)
    calls = []
    real = cmod._compiled_fn

    def counting():
        fn = real()

        def run(*args):
            calls.append(args[3].shape[0])
            return fn(*args)

        return run

    monkeypatch.setattr(cmod, "_compiled_fn", counting)
    return calls


def _problem(shape, rank, density, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(shape, generator=gen, dtype=F64)
    dense = dense * (torch.rand(shape, generator=gen, dtype=F64) < density)
    factors = [torch.randn(s, rank, generator=gen, dtype=F64) for s in shape]
    return dense.to(dtype), [f.to(dtype) for f in factors]


def _ref(dense, factors, mode):
    return mttkrp(dense.double(), [f.double() for f in factors], mode)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_compiled_equals_dense_reference_and_eager_kernel(spy, dtype):
    dense, factors = _problem((9, 12, 10), 4, 0.4, 0, dtype)
    sp = SparseTensor.from_dense(dense)
    layout = SparseLayout.build(sp)
    tol = TOL[dtype]
    for mode in range(3):
        eager = sparse_mttkrp(sp, factors, mode, layout=layout)
        unsorted = sparse_mttkrp(sp, factors, mode, implementation="compiled")
        on_layout = sparse_mttkrp(sp, factors, mode, layout=layout, implementation="compiled")
        for out in (unsorted, on_layout):
            assert out.dtype == dtype and out.shape == (dense.shape[mode], 4)
            torch.testing.assert_close(out.double(), _ref(dense, factors, mode), rtol=tol, atol=tol)
            torch.testing.assert_close(out, eager, rtol=tol, atol=tol)
        # same entries in the same order: the compiled kernel is deterministic
        assert torch.equal(sparse_mttkrp(sp, factors, mode, implementation="compiled"), unsorted)
    assert len(spy) == 9


@dataclass(frozen=True)
class _Coo:
    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]


@needs_compiler
def test_duplicate_coordinates_are_summed(spy):
    gen = torch.Generator().manual_seed(3)
    shape = (4, 3, 5)
    idx = torch.stack([torch.randint(0, s, (60,), generator=gen) for s in shape])
    idx = torch.cat([idx, idx[:, :20]], 1).int()  # 20 repeated coordinates, int32 as above
    vals = torch.randn(80, generator=gen, dtype=F64)
    dense = torch.zeros(shape, dtype=F64).index_put_(tuple(idx), vals, accumulate=True)
    factors = [torch.randn(s, 4, generator=gen, dtype=F64) for s in shape]  # the kind above
    coo = _Coo(idx, vals, shape)
    weights = torch.rand(4, generator=gen, dtype=F64)
    for mode in range(3):
        out = sparse_mttkrp(coo, factors, mode, weights=weights, implementation="compiled")
        ref = mttkrp(dense, factors, mode, weights=weights)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert len(spy) == 3


@pytest.mark.parametrize("nnz", [0, 1])
def test_empty_and_single_entry_tensors_use_the_eager_kernel(nnz):
    idx = torch.tensor([[1], [2], [0]])[:, :nnz]
    sp = SparseTensor(idx, torch.full((nnz,), 2.5, dtype=F64), (2, 3, 4))
    factors = [torch.ones(s, 2, dtype=F64) for s in (2, 3, 4)]
    for mode in range(3):
        out = sparse_mttkrp(sp, factors, mode, implementation="compiled")
        torch.testing.assert_close(out, mttkrp(sp.to_dense(), factors, mode))


def test_autograd_uses_the_eager_kernel_and_matches_dense(spy):
    dense, factors = _problem((4, 5, 3), 2, 0.6, 5, F64)
    sp = SparseTensor.from_dense(dense)
    fs = [f.clone().requires_grad_(True) for f in factors]
    out = sparse_mttkrp(sp, fs, 1, implementation="compiled")
    out.sum().backward()
    fs2 = [f.clone().requires_grad_(True) for f in factors]
    mttkrp(dense, fs2, 1).sum().backward()
    for a, b in zip(fs, fs2):
        torch.testing.assert_close(a.grad, b.grad)
    assert spy == []


def test_a_failing_compilation_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(cmod, "MIN_ENTRIES", 2)
    monkeypatch.setitem(cmod._state, "failed", None)
    monkeypatch.setitem(cmod._state, "warned", False)

    def broken(*args):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(cmod, "_compiled_fn", lambda: broken)
    dense, factors = _problem((5, 6, 4), 3, 0.5, 7, F64)
    sp = SparseTensor.from_dense(dense)
    with pytest.warns(RuntimeWarning, match=r"compiled kernel is unavailable \(RuntimeError: no C"):
        out = sparse_mttkrp(sp, factors, 2, implementation="compiled")
    torch.testing.assert_close(out, _ref(dense, factors, 2))
    assert not cmod.compiled_available()
    out = sparse_mttkrp(sp, factors, 0, implementation="compiled")  # no second warning
    torch.testing.assert_close(out, _ref(dense, factors, 0))


def test_large_outputs_read_the_sorted_layout(monkeypatch):
    monkeypatch.setattr(cmod, "SORT_ABOVE", 10)
    assert cmod.wants_sorted(11, 1) and not cmod.wants_sorted(10, 1)
    from factorch.algebra._sparse_mttkrp import layout_modes

    assert layout_modes((3, 20, 4), 2, "compiled") == [1]
    assert layout_modes((3, 20, 4), 2, "eager") == [0, 1, 2]


def test_unknown_implementation_is_refused():
    dense, factors = _problem((3, 4, 2), 2, 0.7, 5, F64)
    with pytest.raises(
        ValueError, match=r"sparse_mttkrp: implementation must be one of \('eager', 'compiled'\)"
    ):
        sparse_mttkrp(SparseTensor.from_dense(dense), factors, 0, implementation="fast")


@pytest.mark.parametrize("size", [300, 2**15 + 5])
def test_layout_equals_a_stable_int64_sort(size):
    gen = torch.Generator().manual_seed(size)
    idx = torch.stack([torch.randint(0, s, (500,), generator=gen) for s in (7, size, 3)])
    sp = SparseTensor.from_coo(idx, torch.randn(500, generator=gen), (7, size, 3), duplicates="sum")
    lay = SparseLayout.build(sp, modes=[1]).mode(1)
    col = sp.indices[1]
    perm = torch.sort(col.long(), stable=True).indices
    assert torch.equal(lay.perm, perm)
    assert lay.rows.dtype == col.dtype and torch.equal(lay.rows, col[perm])
    assert torch.equal(lay.others[0], sp.indices[0][perm])
    assert torch.equal(lay.values, sp.values[perm])
    assert torch.equal(
        lay.offsets[1:] - lay.offsets[:-1], torch.bincount(col.long(), minlength=size)
    )
