"""Spectral starts: the sparse randomized range finder against dense SVD subspaces."""

from __future__ import annotations

import torch

from factorch.algebra import unfold
from factorch.completion._spectral import leading_subspace
from factorch.tensors import SparseTensor

F64 = torch.float64


def test_leading_subspace_of_a_fully_observed_tensor_equals_the_svd_subspace():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(9, 8, 7, generator=gen, dtype=F64)
    sp = SparseTensor.from_dense(x, torch.ones_like(x, dtype=torch.bool))
    for mode in range(3):
        u = leading_subspace(sp, mode, 3, n_iter=6, generator=gen)
        ref = torch.linalg.svd(unfold(x, mode), full_matrices=False).U[:, :3]
        torch.testing.assert_close(u @ u.mT, ref @ ref.mT, rtol=0, atol=1e-6)
