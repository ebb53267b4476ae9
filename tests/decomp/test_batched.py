"""Batched CP-ALS and HOSVD against per-member calls."""

from __future__ import annotations

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
    res = cp_batch(xs, 3, generator=torch.Generator().manual_seed(gen_seed), max_iter=15, tol=0)
    # Reproduce the batch's random init per member and run the single-tensor ALS.
    g = torch.Generator().manual_seed(gen_seed)
    inits = [torch.rand(4, s, 3, generator=g, dtype=torch.float64) for s in (4, 5, 6)]
    for b in range(4):
        init = CPTensor(torch.ones(3, dtype=torch.float64), tuple(f[b] for f in inits))
        single = cp(xs[b], 3, init=init, max_iter=15, tol=0)
        assert float(res.error[b]) == pytest.approx(single.error, abs=1e-8)


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


def test_batched_bad_input():
    with pytest.raises(ValueError, match="cp_batch: tensors must have at least 3 dimensions"):
        cp_batch(torch.ones(3, 4), 2)
    with pytest.raises(ValueError, match="cp_batch: rank must be a positive int"):
        cp_batch(torch.ones(2, 3, 4), 0)
    with pytest.raises(ValueError, match="cp_batch: tol must be a non-negative number"):
        cp_batch(torch.ones(2, 3, 4), 1, tol=-1)
    with pytest.raises(TypeError, match="cp_batch: complex tensors are not supported"):
        cp_batch(torch.ones(2, 3, 4, dtype=torch.complex64), 1)
    with pytest.raises(ValueError, match="hosvd_batch: rank needs 2 entries"):
        hosvd_batch(torch.ones(2, 3, 4), (1, 1, 1))
    with pytest.raises(ValueError, match=r"hosvd_batch: rank\[1\] = 5 exceeds the mode size 4"):
        hosvd_batch(torch.ones(2, 3, 4), (1, 5))
