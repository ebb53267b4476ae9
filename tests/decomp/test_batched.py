"""Batched CP-ALS and HOSVD against per-member calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.algebra import multi_mode_dot
from factorch.decomp import BatchCPResult, cp, cp_batch, hosvd_batch
from factorch.random import random_cp
from factorch.tensors import CPTensor


def _stack(n, shape, rank, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        [random_cp(shape, rank, generator=g, dtype=dtype).to_dense() for _ in range(n)]
    )


def test_cp_batch_recovers_each_member():
    xs = _stack(6, (5, 6, 7), 2, 0)
    res = cp_batch(xs, 2, generator=torch.Generator().manual_seed(1), max_iter=2000, tol=1e-13)
    assert isinstance(res, BatchCPResult)
    assert res.errors.shape == (res.iterations, 6)
    # Random starts can land in a swamp; most members must be recovered exactly.
    assert int((res.error < 1e-8).sum()) >= 5
    for b, (member, x) in enumerate(zip(res.tensors, xs)):
        assert isinstance(member, CPTensor)
        err = torch.linalg.vector_norm(member.to_dense() - x) / torch.linalg.vector_norm(x)
        assert float(err) == pytest.approx(float(res.error[b]), abs=1e-9)


def test_cp_batch_equals_loop_from_same_init():
    xs = _stack(4, (4, 5, 6), 2, 2)
    gen_seed = 3
    res = cp_batch(
        xs, 3, init="random", generator=torch.Generator().manual_seed(gen_seed), max_iter=15, tol=0
    )
    # Reproduce the batch's random init per member and run the single-tensor ALS.
    g = torch.Generator().manual_seed(gen_seed)
    inits = [torch.rand(4, s, 3, generator=g, dtype=torch.float64) for s in (4, 5, 6)]
    for b in range(4):
        init = CPTensor(torch.ones(3, dtype=torch.float64), tuple(f[b] for f in inits))
        single = cp(xs[b], 3, init=init, max_iter=15, tol=0)
        assert float(res.error[b]) == pytest.approx(single.error, abs=1e-8)


def _svd_start(x, rank):
    """Reference SVD start of one member: leading left singular vectors of each unfolding."""
    factors = []
    for mode in range(x.ndim):
        unfolded = torch.movedim(x, mode, 0).reshape(x.shape[mode], -1)
        factors.append(torch.linalg.svd(unfolded, full_matrices=False).U[:, :rank])
    return CPTensor(torch.ones(rank, dtype=x.dtype), tuple(factors))


@pytest.mark.parametrize("shape", [(9, 3, 4), (3, 4, 5, 6)])
def test_cp_batch_svd_start_equals_loop_from_svd_start(shape):
    # The batched start (Gram eigenvectors) and the batched sweep (dimension tree, Gram-identity
    # errors) against cp run member by member from per-member SVD factors, to 1e-10.
    g = torch.Generator().manual_seed(7)
    xs = _stack(5, shape, 2, 6) + 0.05 * torch.randn(5, *shape, generator=g, dtype=torch.float64)
    res = cp_batch(xs, 2, max_iter=8, tol=0)
    for b in range(5):
        single = cp(xs[b], 2, init=_svd_start(xs[b], 2), max_iter=8, tol=0)
        assert float(res.error[b]) == pytest.approx(single.error, abs=1e-10)
        assert torch.allclose(res.tensors[b].to_dense(), single.model.to_dense(), atol=1e-10)


def test_cp_batch_svd_start_matches_the_loop_distribution():
    # Issue 14 item 6: 100 members of the COVID serology shape; the batched SVD start reaches
    # the error distribution of one cp (default SVD start) per member; the random start does not
    # (a fraction of its members end in a swamp).
    g = torch.Generator().manual_seed(0)
    truths = [random_cp((438, 6, 11), 3, generator=g, dtype=torch.float64) for _ in range(100)]
    xs = torch.stack([t.to_dense() for t in truths])
    xs = xs + 0.01 * torch.randn(xs.shape, generator=g, dtype=torch.float64) * xs.std()
    loop = torch.tensor([cp(x, 3).error for x in xs])
    batched = cp_batch(xs, 3).error
    random = cp_batch(xs, 3, init="random", generator=torch.Generator().manual_seed(1)).error
    stuck = float(2 * loop.median())
    assert float(batched.median()) == pytest.approx(float(loop.median()), rel=1e-3)
    assert int((batched > stuck).sum()) <= int((loop > stuck).sum())
    assert int((random > stuck).sum()) > int((batched > stuck).sum())


def test_hosvd_batch_matches_per_member_projection():
    xs = _stack(3, (6, 7, 8), 2, 4) + 0.01 * torch.randn(
        3, 6, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5)
    )
    res = hosvd_batch(xs, (2, 3, 2))
    assert res.core.shape == (3, 2, 3, 2)
    for b, tk in enumerate(res.tensors):
        for f in tk.factors:
            assert torch.allclose(f.mT @ f, torch.eye(f.shape[1], dtype=f.dtype), atol=1e-12)
        core = multi_mode_dot(xs[b], list(tk.factors), transpose=True)
        assert torch.allclose(core, res.core[b], atol=1e-12)
        err = torch.linalg.vector_norm(tk.to_dense() - xs[b]) / torch.linalg.vector_norm(xs[b])
        assert float(err) == pytest.approx(float(res.errors[b]), abs=1e-12)


def test_hosvd_batch_complex_exact_at_full_rank():
    g = torch.Generator().manual_seed(6)
    xs = torch.randn(2, 3, 4, 5, dtype=torch.complex128, generator=g)
    res = hosvd_batch(xs, (3, 4, 5))
    assert float(res.errors.max()) < 1e-12


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: cp_batch(torch.ones(3, 4), 2),
            ValueError,
            "cp_batch: tensors must have at least 3 dimensions",
        ),
        (lambda: cp_batch(torch.ones(2, 3, 4), 0), ValueError, "cp_batch: rank must be a positive"),
        (
            lambda: cp_batch(torch.ones(2, 3, 4), 1, tol=-1),
            ValueError,
            "cp_batch: tol must be a non-negative number",
        ),
        (
            lambda: cp_batch(torch.ones(2, 3, 4), 1, l2=-1.0),
            ValueError,
            "cp_batch: l2 must be a non-negative number",
        ),
        (
            lambda: cp_batch(torch.ones(2, 3, 4, dtype=torch.complex64), 1),
            TypeError,
            "cp_batch: complex tensors are not supported",
        ),
        (
            lambda: cp_batch(torch.ones(2, 3, 4), 1, generator=0),
            TypeError,
            "cp_batch: generator must be a torch.Generator or None; got int",
        ),
        (
            lambda: cp_batch(torch.ones(2, 3, 4), 10**9),
            ValueError,
            r"cp_batch: a rank-1000000000 CP fit of a \(2, 3, 4\) stack needs about",
        ),
        (lambda: cp_batch("x", 1), TypeError, "cp_batch: tensors must be a torch.Tensor or a"),
        (
            lambda: cp_batch(torch.ones(2, 3, 4), 1, init="nvecs"),
            ValueError,
            r"cp_batch: init must be one of \('svd', 'random'\); got 'nvecs'",
        ),
        (
            lambda: hosvd_batch(torch.ones(2, 3, 4), (1, 1, 1)),
            ValueError,
            "hosvd_batch: rank needs 2 entries",
        ),
        (
            lambda: hosvd_batch(torch.ones(2, 3, 4), (1, 5)),
            ValueError,
            r"hosvd_batch: rank\[1\] = 5 exceeds the mode size 4",
        ),
        (lambda: hosvd_batch(torch.ones(2, 3, 4), 0), ValueError, "hosvd_batch: rank must be"),
        (lambda: hosvd_batch(torch.ones(2, 3, 4), 1.5), TypeError, "hosvd_batch: rank must be"),
    ],
)
def test_batched_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --- numerics and inputs (issues 9.1, 9.2, 9.5, 9.7, 9.8, 9.17) --------------------------------


def _member_errors(res, xs):
    out = []
    for member, x in zip(res.tensors, xs):
        x64 = x.double()
        peak = float(x64.abs().max())
        m = member.to(dtype=torch.float64)
        dense = CPTensor(m.weights / peak, m.factors).to_dense()
        out.append(float((x64 / peak - dense).norm() / (x64 / peak).norm()))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
def test_cp_batch_extreme_scales(dtype, factor):
    xs = _stack(3, (4, 5, 6), 2, 6)
    ref = cp_batch(xs.to(dtype), 2, generator=torch.Generator().manual_seed(1), max_iter=30)
    big = (xs * factor).to(dtype)
    res = cp_batch(big, 2, generator=torch.Generator().manual_seed(1), max_iter=30)
    assert res.weights.dtype == dtype and bool(torch.isfinite(res.errors).all())
    assert bool(torch.isfinite(res.weights).all())
    torch.testing.assert_close(res.error.double(), ref.error.double(), rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(res.error.double(), _member_errors(res, big), rtol=1e-3, atol=1e-6)
    assert torch.equal(res.converged, ref.converged)


def test_cp_batch_float32_default_options_converge():
    xs = _stack(4, (6, 7, 8), 2, 7, dtype=torch.float32)
    res = cp_batch(xs, 2, generator=torch.Generator().manual_seed(2), max_iter=500)
    good = res.error < 1e-4  # members not stuck in a swamp
    assert int(good.sum()) >= 3
    assert bool(res.converged[good].all()) and res.iterations < 500


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    xs = _stack(3, (4, 5, 6), 2, 8).to(dtype)
    res = cp_batch(xs, 2, generator=torch.Generator().manual_seed(3), max_iter=50)
    assert res.weights.dtype == dtype and res.errors.dtype == dtype
    torch.testing.assert_close(res.error.double(), _member_errors(res, xs), rtol=1e-2, atol=1e-3)
    tk = hosvd_batch(xs, 2)
    assert tk.core.dtype == dtype and tk.errors.dtype == dtype
    for b, member in enumerate(tk.tensors):
        x64 = xs[b].double()
        err = float((member.to(dtype=torch.float64).to_dense() - x64).norm() / x64.norm())
        assert float(tk.errors[b]) == pytest.approx(err, rel=1e-2, abs=1e-3)


def test_autocast_numpy_requires_grad_and_integral_ranks():
    xs = _stack(2, (4, 5, 6), 2, 9, dtype=torch.float32)
    ref = cp_batch(xs, 2, generator=torch.Generator().manual_seed(4), max_iter=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = cp_batch(xs, 2, generator=torch.Generator().manual_seed(4), max_iter=10)
        tk = hosvd_batch(xs, 2)
    assert res.weights.dtype == torch.float32 and torch.equal(res.errors, ref.errors)
    assert tk.core.dtype == torch.float32
    np_res = cp_batch(
        xs.numpy(), np.int64(2), generator=torch.Generator().manual_seed(4), max_iter=10
    )
    assert torch.equal(np_res.errors, ref.errors)
    graph = cp_batch(
        xs.clone().requires_grad_(True), 2, generator=torch.Generator().manual_seed(4), max_iter=10
    )
    assert torch.equal(graph.errors, ref.errors) and not graph.weights.requires_grad
    np_tk = hosvd_batch(xs.numpy(), (np.int64(2), 2, np.int32(3)))
    assert np_tk.core.shape == (2, 2, 2, 3)


def test_hosvd_batch_keeps_the_graph_and_scales():
    xs = _stack(2, (4, 5, 6), 2, 10).requires_grad_(True)
    res = hosvd_batch(xs * 1e-200, 2)
    ref = hosvd_batch(xs, 2)
    torch.testing.assert_close(res.errors, ref.errors, rtol=1e-9, atol=1e-12)
    res.core.sum().backward()
    assert xs.grad is not None and bool(torch.isfinite(xs.grad).all())
