"""CP-ALS of a sparse tensor whose unlisted entries are zeros (pyttb's ``cp_als`` on an
``sptensor``; the Tensor Toolbox's ``cp_als`` on ``sptensor``).

This is not completion: every entry of the tensor is data, most of them zero. Each update solves
``A_n V_n = M_n`` with ``M_n`` the sparse MTTKRP (:func:`factorch.algebra.sparse_mttkrp`, cost
``(N - 1) R nnz``) and ``V_n = *_{m != n} A_m^T A_m`` (Cholesky, pseudo-inverse fallback). The
relative error comes free from the last MTTKRP:
``||X - M||^2 = ||X||^2 - 2 <M_{N-1}, A_{N-1} diag(w)> + w^T (*_m A_m^T A_m) w``.
One sweep costs ``N (N - 1) R nnz`` multiply-adds and ``O(R^2 sum_n I_n)`` for the Grams: the
dense tensor is never formed.

The values are divided by an exact power of two before the sweeps (the ridge ``l2`` acts on
unit-norm components, so it needs no rescaling) and the weights multiplied back, so data of any
magnitude in the dtype's range give the same fit; the last reported error is recomputed in
float64 from the returned model (densely, hence exactly, for tensors of up to ``2**22`` entries).

Reference: Bader and Kolda, "Efficient MATLAB computations with sparse and factored tensors",
SIAM J. Sci. Comput. 30(1), 2007; Kolda and Bader, SIAM Review 51(3), 2009.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import no_autocast
from .._timing import Stopwatch
from ..algebra.internal import SparseImplementation, SparseLayout, layout_modes
from ..algebra.internal import sparse_mttkrp as sparse_mttkrp_kernel
from ..decomp import Callback, DecompositionResult, IterationState
from ..decomp.internal import hadamard_grams, solve_normal
from ..tensors import CPTensor, SparseTensor
from ._common import check_cp_memory, check_nonneg
from ._observed import Observed, observe
from ._output import present_cp

__all__ = ["sparse_cp"]


def _check_tensor(tensor: object, fn: str) -> None:
    if isinstance(tensor, SparseTensor):
        return
    if isinstance(tensor, torch.Tensor) and tensor.layout != torch.strided:
        return
    raise TypeError(
        f"{fn}: tensor must be a SparseTensor or a torch sparse tensor; got "
        f"{type(tensor).__name__} (use factorch.decomp.cp for dense tensors)."
    )


def _start(
    train: SparseTensor,
    rank: int,
    init: object,
    scale: float,
    generator: torch.Generator | None,
    fn: str,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    dtype, device = train.dtype, train.device
    if isinstance(init, CPTensor):
        if init.shape != train.shape or init.rank != rank:
            raise ValueError(
                f"{fn}: init has shape {init.shape} and rank {init.rank}; expected "
                f"{train.shape} and rank {rank}."
            )
        factors = [f.detach().to(device=device, dtype=dtype).clone() for f in init.factors]
        weights = init.weights.detach().to(device=device, dtype=torch.float64) / scale
        return weights.to(dtype), factors
    if init != "random":
        raise ValueError(f"{fn}: init must be 'random' or a CPTensor; got {init!r}.")
    factors = [
        torch.rand(s, rank, generator=generator, dtype=torch.float64).to(device, dtype)
        for s in train.shape
    ]
    return torch.ones(rank, dtype=dtype, device=device), factors


_DENSE_ERROR_LIMIT = 2**22  # entries: up to 32 MB in float64, the exact error is computed densely
_ERROR_CHUNK_ELEMENTS = 2**16  # float64 elements of gathered factor rows per chunk (512 kB)


def _relative_error64(train: SparseTensor, model: CPTensor, scale: float) -> float:
    """``||X - M|| / ||X||`` in float64 for ``X`` the scaled entries and ``M`` the returned
    model divided by ``scale``.

    Small tensors (up to ``2**22`` entries) form ``M - X`` densely, so the error is exact down to
    rounding (an exact fit reports about 1e-16, not the ``sqrt(eps)`` floor of a Gram formula).
    Larger ones sum the residuals over the listed entries directly and add the model's energy on
    the unlisted ones, ``||M||^2 - sum_listed m_p^2`` (Gram formula, clamped at zero).
    """
    wide = model.to(dtype=torch.float64)
    weights = wide.weights / scale
    x = train.values.to(torch.float64)
    norm_x = float(torch.linalg.vector_norm(x))
    if math.prod(train.shape) <= _DENSE_ERROR_LIMIT:
        resid = CPTensor(weights, wide.factors).to_dense()
        resid.index_put_(tuple(train.indices.long()), -x, accumulate=True)
        return float(torch.linalg.vector_norm(resid)) / norm_x
    resid2, listed2 = _listed_sums64(train.indices, x, weights, wide.factors)
    gram = torch.ones(model.rank, model.rank, dtype=torch.float64, device=x.device)
    for f in wide.factors:
        gram *= f.mT @ f
    unlisted = max(float(weights @ gram @ weights) - listed2, 0.0)
    return math.sqrt(resid2 + unlisted) / norm_x


def _listed_sums64(
    indices: torch.Tensor,
    x: torch.Tensor,
    weights: torch.Tensor,
    factors: tuple[torch.Tensor, ...],
) -> tuple[float, float]:
    """``sum_p (m_p - x_p)^2`` and ``sum_p m_p^2`` over the listed entries, in float64, for the
    model entries ``m_p = sum_r w_r prod_n A_n[i_n(p), r]``.

    In chunks of entries whose gathered factor rows stay in cache (``index_select`` into reused
    buffers, the weighted row sums as one matrix-vector product): 6-10x faster than gathering
    every factor for every entry at once, and no ``nnz x R`` temporaries.
    """
    nnz, rank = x.shape[0], weights.shape[0]
    chunk = min(nnz, max(256, _ERROR_CHUNK_ELEMENTS // rank))
    buf = torch.empty(chunk, rank, dtype=torch.float64, device=x.device)
    tmp = torch.empty_like(buf)
    resid2 = torch.zeros((), dtype=torch.float64, device=x.device)
    listed2 = torch.zeros_like(resid2)
    for s in range(0, nnz, chunk):
        e = min(nnz, s + chunk)
        rows = buf[: e - s]
        torch.index_select(factors[0], 0, indices[0, s:e], out=rows)
        for f, col in zip(factors[1:], indices[1:]):
            torch.index_select(f, 0, col[s:e], out=tmp[: e - s])
            rows.mul_(tmp[: e - s])
        m = rows @ weights
        listed2 += torch.dot(m, m)
        m -= x[s:e]
        resid2 += torch.dot(m, m)
    return float(resid2), float(listed2)


@no_autocast
def sparse_cp(
    tensor: SparseTensor | torch.Tensor,
    rank: int,
    *,
    init: str | CPTensor = "random",
    max_iter: int = 100,
    tol: float = 1e-4,
    l2: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    implementation: SparseImplementation = "eager",
) -> DecompositionResult[CPTensor]:
    """CP decomposition of a sparse tensor (unlisted entries are zeros) by ALS.

    Args:
        tensor: a :class:`~factorch.tensors.SparseTensor` or a torch sparse tensor (COO, CSR,
            ...) with at least 2 modes and one listed entry.
        rank: number of components ``R`` (numpy ints too).
        init: ``"random"`` (uniform [0, 1) factors from ``generator``, as pyttb) or a
            :class:`CPTensor` (copied).
        max_iter: maximum number of sweeps.
        tol: stop when the fit ``1 - error`` changes by less than ``tol`` (pyttb's
            ``stoptol``, default 1e-4).
        l2: ridge added to each normal-equation matrix (whose other factors have unit-norm
            columns: the ridge is relative to the components, not to the data's units).
        generator: random source for ``init="random"``.
        callback: called with an :class:`~factorch.decomp.IterationState` after each sweep
            (the model in the tensor's units and dtype); True stops.
        implementation: the sparse MTTKRP kernel, ``"eager"`` or ``"compiled"`` (opt-in:
            ``torch.compile``, about 5x faster per sweep on CPU (BENCHMARKS.md), no sort of the
            modes whose output fits in cache; compiles once per ``(N, R, dtype)``, cached on
            disk; see :func:`factorch.algebra.sparse_mttkrp`). Same fit up to float rounding.

    Returns:
        :class:`~factorch.decomp.DecompositionResult` with a :class:`CPTensor` (unit-norm
        columns, scale in ``weights``) in the tensor's dtype and device, and the relative
        error after each sweep (the last one recomputed in float64 for the returned model).

    Raises:
        TypeError: a dense tensor, or options of the wrong type.
        ValueError: no listed entry, bad values, a rank whose working set cannot fit the
            device's memory, or an unknown ``implementation``.

    Not differentiable (runs under ``torch.no_grad``; values that require grad are
    detached). Runs with autocast off; half-precision values are fitted in float32 and the
    model returned in their dtype.

    Example:
        >>> import torch
        >>> from factorch.completion import sparse_cp
        >>> from factorch.tensors import SparseTensor
        >>> x = torch.zeros(6, 5, 4, dtype=torch.float64)
        >>> x[0, 1, 2], x[3, 4, 0], x[5, 0, 1] = 1.0, 2.0, 3.0
        >>> res = sparse_cp(SparseTensor.from_dense(x), 3, max_iter=20)
        >>> res.model.rank
        3
    """
    fn = "sparse_cp"
    _check_tensor(tensor, fn)
    if isinstance(tensor, SparseTensor) and (tensor.ndim < 2 or tensor.nnz == 0):
        raise ValueError(
            f"{fn}: tensor needs at least 2 modes and one listed entry; got shape {tensor.shape} "
            f"with {tensor.nnz} entries."
        )
    rank = check_positive_int(rank, fn, "rank")
    check_positive_int(max_iter, fn, "max_iter")
    tol = check_nonneg(tol, fn, "tol")
    l2 = check_nonneg(l2, fn, "l2")
    check_generator(generator, fn)
    if implementation not in ("eager", "compiled"):
        raise ValueError(
            f"{fn}: implementation must be 'eager' or 'compiled'; got {implementation!r}."
        )
    obs = observe(tensor, None, fn)
    train = obs.train
    check_cp_memory(train.shape, train.nnz, rank, train.dtype, train.device, fn)
    clock = Stopwatch()
    with torch.no_grad():
        weights, factors = _start(train, rank, init, obs.scale, generator, fn)
        init_time = clock.elapsed
        errors, model, converged = _sweeps(
            obs, weights, factors, max_iter, tol, l2, callback, implementation
        )
        out = present_cp(model, obs, fn)
        if errors:
            errors[-1] = _relative_error64(train, out, obs.scale)
    return DecompositionResult(
        model=out,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
    )


def _sweeps(
    obs: Observed,
    weights: torch.Tensor,
    factors: list[torch.Tensor],
    max_iter: int,
    tol: float,
    l2: float,
    callback: Callback | None,
    implementation: SparseImplementation,
) -> tuple[list[float], CPTensor, bool]:
    """The ALS sweeps; returns the errors, the model (scaled values) and ``converged``."""
    tensor = obs.train
    factors[0] = factors[0] * weights
    wide = tensor.values.to(torch.float64)
    norm_x2 = float(torch.dot(wide, wide))
    del wide
    grams = [f.mT @ f for f in factors]
    errors: list[float] = []
    converged = False
    rank = factors[0].shape[1]
    layout = SparseLayout.build(tensor, modes=layout_modes(tensor.shape, rank, implementation))
    for it in range(1, max_iter + 1):
        m = factors[-1]
        for n in range(tensor.ndim):
            m = sparse_mttkrp_kernel(layout, factors, n, implementation=implementation)
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
            view = present_cp(state, obs, "sparse_cp", check=False)
            stop = bool(callback(IterationState(it, err, view)))
        if converged or stop:
            break
    return errors, CPTensor(weights, tuple(factors)), converged
