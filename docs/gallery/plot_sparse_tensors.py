"""
Sparse tensors
==============

A :class:`~factorch.tensors.SparseTensor` stores only the listed entries (coordinates and
values). :func:`~factorch.completion.sparse_cp` fits a CP model to a sparse tensor whose
unlisted entries are zeros without ever forming the dense tensor, with
:func:`~factorch.algebra.sparse_mttkrp` as its kernel.
"""

import torch

from factorch.algebra import mttkrp, sparse_mttkrp
from factorch.completion import sparse_cp
from factorch.random import random_cp
from factorch.tensors import SparseTensor

g = torch.Generator().manual_seed(0)
shape = (60, 50, 40)

# A planted rank-4 tensor with sparse non-negative factors: most entries are exactly zero.
planted = random_cp(shape, 4, generator=g, dtype=torch.float64)
factors = tuple(
    f * (torch.rand(f.shape, generator=g, dtype=f.dtype) < 0.3) for f in planted.factors
)
dense = torch.einsum("ir,jr,kr->ijk", *factors)
sparse = SparseTensor.from_dense(dense)
print(f"{sparse.nnz} non-zeros of {dense.numel()} ({100 * sparse.density:.2f} %)")

# %%
# The sparse MTTKRP agrees with the dense one:

u = [torch.randn(n, 4, generator=g, dtype=torch.float64) for n in shape]
diff = (sparse_mttkrp(sparse, u, 0) - mttkrp(dense, u, 0)).abs().max()
print(f"max |sparse - dense| MTTKRP difference: {float(diff):.2e}")

# %%
# CP of the sparse tensor. The relative error is computed from the sparse data and the model
# in factorized form. ALS from a random start can stall in a local minimum (sparse factors make
# this common), so we run a few starts and keep the best: an honest fit reports its error and
# ``converged`` says only that the error stopped changing.

results = []
for start in range(4):
    res = sparse_cp(
        sparse, 4, max_iter=100, tol=1e-8, generator=torch.Generator().manual_seed(start)
    )
    results.append(res)
    print(f"start {start}: relative error {res.error:.2e} after {res.iterations} sweeps")
best = min(results, key=lambda r: r.error)
print(f"best: {best.error:.2e}")

# %%
# Building a sparse tensor from coordinate lists (``indices`` is ``(ndim, nnz)``); duplicates
# can be summed:

indices = torch.tensor([[0, 1, 1, 2], [0, 2, 2, 1], [1, 0, 0, 3]])
values = torch.tensor([1.0, 2.0, 3.0, 4.0])
t = SparseTensor.from_coo(indices, values, (3, 3, 4), duplicates="sum")
print(t.nnz, t.to_dense()[1, 2, 0].item())
