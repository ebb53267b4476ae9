"""Shared completion plumbing: the MTTKRP-backed gradient of CP values, the deprecated ``data=``
alias, option checks."""

from __future__ import annotations

import torch

from factorch.completion._common import cp_values
from factorch.tensors import SparseTensor

F64 = torch.float64


def test_cp_values_backward_is_the_sparse_mttkrp_gradient():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, 5, generator=gen, dtype=F64)
    sp = SparseTensor.from_dense(x, torch.rand(x.shape, generator=gen) < 0.6)
    fs = [torch.randn(s, 2, generator=gen, dtype=F64, requires_grad=True) for s in x.shape]
    assert torch.autograd.gradcheck(lambda a, b, c: cp_values([a, b, c], sp), tuple(fs))
    up = torch.randn(sp.nnz, generator=gen, dtype=F64)
    (cp_values(fs, sp) * up).sum().backward()
    ref = [f.detach().clone().requires_grad_(True) for f in fs]
    idx = sp.indices.long()
    (((ref[0][idx[0]] * ref[1][idx[1]] * ref[2][idx[2]]).sum(1)) * up).sum().backward()
    for a, b in zip(fs, ref):
        torch.testing.assert_close(a.grad, b.grad)
