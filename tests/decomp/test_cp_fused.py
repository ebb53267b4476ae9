"""``cp(..., kernel="fused")``: the CP-ALS sweep with its tensor-reading passes run by the fused
MTTKRP kernel gives the reference path's iterates to 1e-10 in float64 (3-way: the last mode's
pass; 4-way: both passes), with line search too; the documented fallbacks give the reference
path's result bit for bit; an unknown kernel is refused. The kernel compiles once per machine
(then loads from inductor's disk cache); the comparisons skip, with the reason, without it."""

from __future__ import annotations

import pytest
import torch

import factorch.algebra._fused as fused_mod
import factorch.decomp._cp_sweep as sweep_mod
from factorch.algebra import fused_mttkrp_status
from factorch.algebra._fused import FusedStatus, _Kernel
from factorch.decomp import cp
from factorch.decomp._cp_small import SMALL_ENTRIES
from factorch.random import random_cp
from factorch.tensors import CPTensor

F64 = torch.float64


@pytest.fixture(scope="module")
def kernel() -> FusedStatus:
    status = fused_mttkrp_status()
    if not status.available:
        pytest.skip(f"the fused MTTKRP kernel does not compile here: {status.reason}")
    return status


def _problem(shape, rank, dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = random_cp(shape, rank, generator=gen, dtype=dtype).to_dense()
    x = x + 0.01 * torch.randn(shape, generator=gen, dtype=dtype)
    return x, random_cp(shape, rank, generator=gen, dtype=dtype)


def _spy(monkeypatch) -> list[int]:
    """Counts the passes the fused kernel ran (the partials it returned)."""
    calls: list[int] = []
    real = sweep_mod.fused_tree_partial

    def counting(tensor, factors, modes):
        out = real(tensor, factors, modes)
        if out is not None:
            calls.append(len(modes))
        return out

    monkeypatch.setattr(sweep_mod, "fused_tree_partial", counting)
    return calls


def _assert_same_fit(a, b, tol=1e-10):
    assert a.iterations == b.iterations
    assert torch.allclose(torch.tensor(a.errors), torch.tensor(b.errors), rtol=0, atol=tol)
    assert torch.allclose(a.model.weights, b.model.weights, rtol=tol, atol=0)
    for fa, fb in zip(a.model.factors, b.model.factors):
        assert (fa - fb).abs().max() <= tol


# Above the small-tensor path (2**17 entries), so the dimension tree runs.
@pytest.mark.parametrize(
    ("shape", "passes"),
    [((48, 52, 56), [1, 2]), ((80, 64, 30), [2]), ((12, 14, 16, 52), [2, 2]),
     ((8, 9, 10, 12, 16), [2, 3])],
)  # fmt: skip
def test_fused_sweep_equals_the_reference_path(kernel, monkeypatch, shape, passes):
    assert torch.Size(shape).numel() > SMALL_ENTRIES
    x, init = _problem(shape, 3)
    ref = cp(x, 3, init=init, max_iter=6, tol=0)
    calls = _spy(monkeypatch)
    got = cp(x, 3, init=init, max_iter=6, tol=0, kernel="fused")
    # 3-way: both passes (X(IJ, K) @ C by the loop with K as the lane), but only the last mode's
    # when K < KLANE_MIN (then the first pass is a plain GEMM left to BLAS).
    assert calls[: len(passes)] == passes and len(calls) == 6 * len(passes)
    _assert_same_fit(got, ref)
    assert got.model.weights.dtype == F64


def test_fused_sweep_with_linesearch_and_tol_equals_the_reference_path(kernel):
    x, init = _problem((50, 50, 60), 4, seed=1)
    ref = cp(x, 4, init=init, max_iter=12, tol=1e-9, linesearch=True, l2=1e-3)
    got = cp(x, 4, init=init, max_iter=12, tol=1e-9, linesearch=True, l2=1e-3, kernel="fused")
    _assert_same_fit(got, ref)
    assert got.converged == ref.converged


def test_fused_sweep_float32_stays_float32_and_close(kernel):
    x, init = _problem((48, 52, 56), 3)
    x32, init32 = x.float(), init.to(dtype=torch.float32)
    ref = cp(x32, 3, init=init32, max_iter=4, tol=0)
    got = cp(x32, 3, init=init32, max_iter=4, tol=0, kernel="fused")
    assert got.model.weights.dtype == torch.float32
    assert abs(got.errors[-1] - ref.errors[-1]) < 1e-4


def test_fused_fallbacks_give_the_reference_result_bit_for_bit(monkeypatch):
    # Complex data and small tensors (the small-tensor sweep) never reach the kernel.
    gen = torch.Generator().manual_seed(3)
    xc = torch.randn(50, 50, 60, dtype=torch.complex128, generator=gen)
    small = torch.randn(10, 11, 12, dtype=F64, generator=gen)
    calls = _spy(monkeypatch)
    for x in (xc, small):
        init = CPTensor(
            torch.ones(2, dtype=x.dtype),
            tuple(torch.randn(s, 2, dtype=x.dtype, generator=gen) for s in x.shape),
        )
        a = cp(x, 2, init=init, max_iter=3, tol=0, kernel="fused")
        b = cp(x, 2, init=init, max_iter=3, tol=0)
        assert a.errors == b.errors and torch.equal(a.model.factors[0], b.model.factors[0])
    assert calls == []


def test_fused_without_a_compiler_falls_back_bit_for_bit(monkeypatch):
    broken = _Kernel()
    monkeypatch.setattr(broken, "_load", lambda: FusedStatus(False, "OSError: no g++", 0))
    monkeypatch.setattr(fused_mod, "KERNEL", broken)
    x, init = _problem((48, 52, 56), 3)
    a = cp(x, 3, init=init, max_iter=3, tol=0, kernel="fused")
    b = cp(x, 3, init=init, max_iter=3, tol=0)
    assert a.errors == b.errors
    assert all(torch.equal(fa, fb) for fa, fb in zip(a.model.factors, b.model.factors))


@pytest.mark.parametrize("bad", ["Fused", "mkl", None, 1])
def test_cp_rejects_an_unknown_kernel(bad):
    x = torch.randn(4, 5, 6, dtype=F64)
    with pytest.raises(ValueError, match=r"cp: kernel must be one of \['default', 'fused'\]"):
        cp(x, 2, kernel=bad)
