"""CP-ALS of a sparse tensor whose unlisted entries are zeros (pyttb's ``cp_als`` on an
``sptensor``; the Tensor Toolbox's ``cp_als`` on ``sptensor``).

This is not completion: every entry of the tensor is data, most of them zero. Each update solves
``A_n V_n = M_n`` with ``M_n`` the sparse MTTKRP (:func:`factorch.algebra.sparse_mttkrp`, cost
``(N - 1) R nnz``) and ``V_n = *_{m != n} A_m^T A_m`` (Cholesky, pseudo-inverse fallback). The
relative error comes free from the last MTTKRP:
``||X - M||^2 = ||X||^2 - 2 <M_{N-1}, A_{N-1} diag(w)> + w^T (*_m A_m^T A_m) w``.
One sweep costs ``N (N - 1) R nnz`` multiply-adds and ``O(R^2 sum_n I_n)`` for the Grams: the
dense tensor is never formed.

Reference: Bader and Kolda, "Efficient MATLAB computations with sparse and factored tensors",
SIAM J. Sci. Comput. 30(1), 2007; Kolda and Bader, SIAM Review 51(3), 2009.
"""

from __future__ import annotations

import torch

from .._checks import check_positive_int
from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..algebra.internal import sparse_mttkrp as sparse_mttkrp_kernel
from ..decomp import Callback, DecompositionResult, IterationState
from ..decomp.internal import hadamard_grams, solve_normal
from ..tensors import CPTensor, SparseTensor
from ._common import check_generator, check_nonneg

__all__ = ["sparse_cp"]


def sparse_cp(
    tensor: SparseTensor,
    rank: int,
    *,
    init: str | CPTensor = "random",
    max_iter: int = 100,
    tol: float = 1e-4,
    l2: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """CP decomposition of a sparse tensor (unlisted entries are zeros) by ALS.

    Args:
        tensor: a :class:`~factorch.tensors.SparseTensor` with at least 2 modes and one entry.
        rank: number of components ``R``.
        init: ``"random"`` (uniform [0, 1) factors from ``generator``, as pyttb) or a
            :class:`CPTensor` (copied).
        max_iter: maximum number of sweeps.
        tol: stop when the fit ``1 - error`` changes by less than ``tol`` (pyttb's
            ``stoptol``, default 1e-4).
        l2: ridge added to each normal-equation matrix.
        generator: random source for ``init="random"``.
        callback: called with an :class:`~factorch.decomp.IterationState` after each sweep;
            True stops.

    Returns:
        :class:`~factorch.decomp.DecompositionResult` with a :class:`CPTensor` (unit-norm
        columns, scale in ``weights``) and the relative error after each sweep.

    Not differentiable (runs under ``torch.no_grad``). Device and dtype follow the tensor.
    """
    fn = "sparse_cp"
    if not isinstance(tensor, SparseTensor):
        raise TypeError(
            f"{fn}: tensor must be a SparseTensor; got {type(tensor).__name__} (use "
            "factorch.decomp.cp for dense tensors)."
        )
    if tensor.ndim < 2 or tensor.nnz == 0:
        raise ValueError(
            f"{fn}: tensor needs at least 2 modes and one listed entry; got shape {tensor.shape} "
            f"with {tensor.nnz} entries."
        )
    check_positive_int(rank, fn, "rank")
    check_positive_int(max_iter, fn, "max_iter")
    tol = check_nonneg(tol, fn, "tol")
    l2 = check_nonneg(l2, fn, "l2")
    check_generator(generator, fn)
    clock = Stopwatch()
    dtype, device = tensor.dtype, tensor.device
    with torch.no_grad():
        if isinstance(init, CPTensor):
            if init.shape != tensor.shape or init.rank != rank:
                raise ValueError(
                    f"{fn}: init has shape {init.shape} and rank {init.rank}; expected "
                    f"{tensor.shape} and rank {rank}."
                )
            factors = [f.to(device=device, dtype=dtype).clone() for f in init.factors]
            weights = init.weights.to(device=device, dtype=dtype).clone()
        elif init == "random":
            factors = [
                torch.rand(s, rank, generator=generator, dtype=torch.float64).to(device, dtype)
                for s in tensor.shape
            ]
            weights = torch.ones(rank, dtype=dtype, device=device)
        else:
            raise ValueError(f"{fn}: init must be 'random' or a CPTensor; got {init!r}.")
        factors[0] = factors[0] * weights
        init_time = clock.elapsed
        norm_x2 = float(torch.sum(tensor.values.double() ** 2))
        grams = [f.mT @ f for f in factors]
        errors: list[float] = []
        converged = False
        it = 0
        layout = SparseLayout.build(tensor)
        for it in range(1, max_iter + 1):
            m = None
            for n in range(tensor.ndim):
                m = sparse_mttkrp_kernel(layout, factors, n)
                new = solve_normal(m, hadamard_grams(grams, skip=n), l2)
                norms = torch.linalg.vector_norm(new, dim=0)
                weights = torch.where(norms > 0, norms, torch.ones_like(norms))
                factors[n] = new / weights
                grams[n] = factors[n].mT @ factors[n]
            inner = float(torch.sum(m * factors[-1] * weights))
            model2 = float(weights @ hadamard_grams(grams) @ weights)
            err = max(norm_x2 - 2.0 * inner + model2, 0.0) ** 0.5 / max(norm_x2**0.5, 1e-300)
            errors.append(err)
            if len(errors) > 1 and abs(errors[-2] - errors[-1]) < tol:
                converged = True
            stop = False
            if callback is not None:
                state = CPTensor(weights.clone(), tuple(f.clone() for f in factors))
                stop = bool(callback(IterationState(it, err, state)))
            if converged or stop:
                break
    return DecompositionResult(
        model=CPTensor(weights, tuple(factors)),
        errors=tuple(errors),
        iterations=it,
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
    )
