"""CP (CANDECOMP/PARAFAC) decomposition by alternating least squares.

Model: ``X ~= [[w; A_0, ..., A_{N-1}]] = sum_r w_r a_0r o a_1r o ... o a_{N-1,r}``.

Each ALS update solves the normal equations ``A_n V_n = M_n`` with ``M_n`` the MTTKRP of mode
``n`` and ``V_n = *_{m != n} A_m^T A_m`` (entry-wise product of the cached Grams, ``+ l2 I``), by
Cholesky with a pseudo-inverse fallback when ``V_n`` is singular. MTTKRPs come from a two-pass
dimension tree (:mod:`factorch.decomp._cp_sweep`): two reads of the tensor per sweep, no copies of
it and no Khatri--Rao product. The relative error after each sweep is free:
``||X - M||^2 = ||X||^2 - 2 <M_{N-1}, A_{N-1} diag(w)> + w^T (*_m A_m^T A_m) w``; the final entry
is recomputed exactly from a dense residual when the tensor has at most 2**25 entries (the formula
loses accuracy below ``sqrt(eps)``).

References: Kolda and Bader, "Tensor decompositions and applications", SIAM Review 51(3), 2009;
Bro, "Multi-way analysis in the food industry", PhD thesis, 1998 (line search).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch

from .._checks import check_finite, check_floating, check_positive_int, check_tensor
from ..algebra.internal import khatri_rao as _khatri_rao
from ..algebra.internal import mttkrp as _mttkrp
from ..tensors import CPTensor
from ._cp_init import CPInit, init_factors
from ._cp_sweep import hadamard_grams, solve_normal, sweep
from ._result import Callback, DecompositionResult, IterationState, Stopwatch

__all__ = ["cp"]

_EXACT_ERROR_LIMIT = 2**25
# Below these relative errors the free Gram formula is dominated by cancellation (~sqrt(eps)).
_FORMULA_FLOOR = {torch.float64: 1e-6, torch.float32: 3e-3, torch.float16: 0.3, torch.bfloat16: 0.3}


def _validate_mask(mask: object, tensor: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"cp: mask must be a bool torch.Tensor; got {type(mask).__name__}.")
    if mask.dtype != torch.bool:
        raise TypeError(f"cp: mask must have dtype torch.bool (True = observed); got {mask.dtype}.")
    if mask.shape != tensor.shape:
        raise ValueError(
            f"cp: mask shape {tuple(mask.shape)} must equal the tensor shape {tuple(tensor.shape)}."
        )
    if mask.device != tensor.device:
        raise ValueError(f"cp: mask is on {mask.device} but the tensor is on {tensor.device}.")
    if not bool(mask.any()):
        raise ValueError("cp: mask observes no entry; at least one entry must be True.")
    return mask


def cp(
    tensor: torch.Tensor,
    rank: int,
    *,
    init: CPInit | CPTensor = "svd",
    max_iter: int = 100,
    tol: float = 1e-8,
    l2: float = 0.0,
    fixed_modes: Sequence[int] = (),
    orthogonalize_iters: int = 0,
    linesearch: bool = False,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """CP decomposition of a dense tensor by alternating least squares (CP-ALS).

    Args:
        tensor: real floating tensor with at least 2 modes, finite (except unobserved entries
            when ``mask`` is given).
        rank: number of rank-one components ``R >= 1``.
        init: ``"svd"`` (leading left singular vectors of each unfolding from a randomized
            Khatri--Rao sketch: costs about two ALS sweeps; columns beyond ``I_n`` are random),
            ``"random"`` (uniform [0, 1) entries from ``generator``), or a :class:`CPTensor` whose
            factors are copied (never modified).
        max_iter: maximum number of ALS sweeps.
        tol: stop when the relative error changes by less than ``tol`` between sweeps (the change
            in fit, as in the Tensor Toolbox). ``tol=0`` runs all ``max_iter`` sweeps.
        l2: ridge penalty ``l2 * ||A_n||^2`` added to each least-squares update.
        fixed_modes: modes whose factors stay at their initial value.
        orthogonalize_iters: replace factors by their QR ``Q`` factor at the start of the first
            this many sweeps (helps with degenerate "swamps").
        linesearch: Bro-style extrapolation: from the third sweep on, try
            ``F_{k-2} + k^{1/p} (F_k - F_{k-2})`` (the step of the last two sweeps, longer than
            TensorLy's one-sweep step; on the COVID-19 serology tensor it reached the better
            local optimum from more random starts) and keep it if the error drops (one extra
            pass over the tensor); ``p`` grows after repeated rejections.
        mask: bool tensor, True where observed. Missing entries are imputed from the current model
            each sweep (EM, Tomasi and Bro 2005); errors are measured on observed entries only.
        generator: source of randomness for ``"random"`` and ``"svd"`` initialisation.
        callback: called with an :class:`IterationState` after each sweep; returning True stops.

    Returns:
        :class:`DecompositionResult` holding a :class:`CPTensor` with unit-norm factor columns and
        the scale in ``weights``; ``errors`` has one relative error per sweep.

    Not differentiable (ALS updates run under ``torch.no_grad``). Device and dtype follow the input.

    Example:
        >>> x = factorch.random.random_cp((20, 30, 40), 3).to_dense()
        >>> res = cp(x, 3)
        >>> res.error < 1e-6
        True
    """
    fn = "cp"
    check_tensor(tensor, fn, "tensor", min_ndim=2, finite=mask is None)
    if tensor.is_complex():
        raise TypeError("cp: complex tensors are not supported; got a complex dtype.")
    check_positive_int(rank, fn, "rank")
    check_positive_int(max_iter, fn, "max_iter")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"cp: tol must be a non-negative number; got {tol!r}.")
    if not (isinstance(l2, (int, float)) and l2 >= 0):
        raise ValueError(f"cp: l2 must be a non-negative number; got {l2!r}.")
    if isinstance(orthogonalize_iters, bool) or not isinstance(orthogonalize_iters, int):
        raise TypeError(
            f"cp: orthogonalize_iters must be an int; got {type(orthogonalize_iters).__name__}."
        )
    n_modes = tensor.ndim
    fixed = set()
    for m in fixed_modes:
        if isinstance(m, bool) or not isinstance(m, int) or not -n_modes <= m < n_modes:
            raise IndexError(
                f"cp: fixed_modes entries must be modes in [0, {n_modes - 1}]; got {m!r}."
            )
        fixed.add(m % n_modes)
    if len(fixed) == n_modes:
        raise ValueError("cp: fixed_modes fixes every mode; at least one mode must be updated.")
    if fixed and linesearch:
        raise ValueError("cp: linesearch cannot be combined with fixed_modes; drop one of them.")
    if fixed and not isinstance(init, CPTensor):
        raise ValueError("cp: fixed_modes needs init=CPTensor so the fixed factors have values.")
    if isinstance(init, str) and init not in get_args(CPInit):
        raise ValueError(f"cp: init must be one of {get_args(CPInit)} or a CPTensor; got {init!r}.")
    if mask is not None:
        mask = _validate_mask(mask, tensor)
        check_floating(tensor, fn)
        check_finite(tensor[mask], fn, "tensor (observed entries)")

    with torch.no_grad():
        return _cp_als(
            tensor,
            rank,
            init,
            max_iter,
            float(tol),
            float(l2),
            fixed,
            orthogonalize_iters,
            linesearch,
            mask,
            generator,
            callback,
        )


def _error_from_mttkrp(
    norm_x2: float,
    m_last: torch.Tensor,
    factors: list[torch.Tensor],
    grams: list[torch.Tensor],
    weights: torch.Tensor,
) -> float:
    inner = float(torch.sum(m_last * factors[-1] * weights))
    model2 = float(weights @ hadamard_grams(grams) @ weights)
    return max(norm_x2 - 2.0 * inner + model2, 0.0) ** 0.5 / max(norm_x2**0.5, 1e-300)


def _exact_error(tensor, weights, factors, norm_x2) -> float:
    """``||X - [[w; A]]|| / ||X||`` from the residual, block by block over rows of mode 0.

    Peak extra memory: the Khatri--Rao product of modes 1.. (``|X| R / I_0`` entries) and one
    block of at most 2**22 entries, never a full-size model or residual.
    """
    rows = tensor.shape[0]
    x2 = tensor.reshape(rows, -1)
    rest = _khatri_rao(factors[1:]).mT
    scaled = factors[0] * weights
    step = max(1, (1 << 22) // max(1, x2.shape[1]))
    total = 0.0
    for start in range(0, rows, step):
        block = x2[start : start + step] - scaled[start : start + step] @ rest
        total += float(torch.sum(block * block))
    return total**0.5 / max(norm_x2**0.5, 1e-300)


def _dense(weights: torch.Tensor, factors: list[torch.Tensor]) -> torch.Tensor:
    return CPTensor(weights, tuple(factors)).to_dense()


def _cp_als(
    tensor, rank, init, max_iter, tol, l2, fixed, orth_iters, linesearch, mask, generator, callback
) -> DecompositionResult[CPTensor]:
    clock = Stopwatch()
    data = tensor if mask is None else torch.where(mask, tensor, torch.zeros_like(tensor))
    weights, factors = init_factors(data, rank, init, generator)
    init_time = clock.elapsed
    n_modes = tensor.ndim
    grams = [f.mT @ f for f in factors]
    if mask is None:
        norm_x2 = float(torch.sum(data * data))
    else:
        norm_x2 = float(torch.sum(data[mask] ** 2))
    eye_scale = torch.ones(rank, dtype=tensor.dtype, device=tensor.device)
    state = {"weights": weights}

    def update(mode: int, m: torch.Tensor) -> None:
        if mode in fixed:
            return
        new = solve_normal(m, hadamard_grams(grams, skip=mode), l2)
        norms = torch.linalg.vector_norm(new, dim=0)
        norms = torch.where(norms > 0, norms, eye_scale)
        factors[mode] = new / norms
        grams[mode] = factors[mode].mT @ factors[mode]
        state["weights"] = norms

    errors: list[float] = []
    converged = False
    prev_factors: list[torch.Tensor] | None = None
    acc_pow, acc_fail = 2.0, 0
    it = 0
    for it in range(1, max_iter + 1):
        if it <= orth_iters:
            for m in range(n_modes):
                if m not in fixed and factors[m].shape[0] >= rank:
                    factors[m] = torch.linalg.qr(factors[m]).Q
                    grams[m] = factors[m].mT @ factors[m]
        if mask is not None:
            work = torch.where(mask, tensor, _dense(state["weights"], factors))
        else:
            work = tensor
        if linesearch:
            prev = [f.clone() for f in factors]
            prev[-1] = prev[-1] * state["weights"]
        m_last = sweep(work, factors, grams, update)
        if mask is None:
            err = _error_from_mttkrp(norm_x2, m_last, factors, grams, state["weights"])
            if err < _FORMULA_FLOOR[tensor.dtype] and tensor.numel() <= _EXACT_ERROR_LIMIT:
                err = _exact_error(tensor, state["weights"], factors, norm_x2)
        else:
            resid = (tensor - _dense(state["weights"], factors))[mask]
            err = float(torch.linalg.vector_norm(resid)) / max(norm_x2**0.5, 1e-300)
        if linesearch and prev_factors is not None and it > 2:
            # prev_factors holds F_{k-2} (the start of the previous sweep).
            jump = it ** (1.0 / acc_pow)
            current = [*factors[:-1], factors[-1] * state["weights"]]
            cand = [p + jump * (f - p) for p, f in zip(prev_factors, current)]
            cand_err = _candidate_error(work, cand, norm_x2, mask, tensor)
            if cand_err < err:
                norms = torch.linalg.vector_norm(cand[-1], dim=0)
                norms = torch.where(norms > 0, norms, eye_scale)
                factors[:] = [*cand[:-1], cand[-1] / norms]
                state["weights"] = norms
                for m in range(n_modes):
                    grams[m] = factors[m].mT @ factors[m]
                err = cand_err
            else:
                acc_fail += 1
                if acc_fail == 4:
                    acc_pow += 1.0
                    acc_fail = 0
        if linesearch:
            prev_factors = prev
        if it == max_iter or (errors and abs(errors[-1] - err) < tol):
            if mask is None and tensor.numel() <= _EXACT_ERROR_LIMIT:
                err = _exact_error(tensor, state["weights"], factors, norm_x2)
        errors.append(err)
        if len(errors) > 1 and abs(errors[-2] - errors[-1]) < tol:
            converged = True
        stop = False
        if callback is not None:
            cp_now = CPTensor(state["weights"].clone(), tuple(f.clone() for f in factors))
            stop = bool(callback(IterationState(it, err, cp_now)))
        if converged or stop:
            break
    result = CPTensor(state["weights"], tuple(factors))
    return DecompositionResult(
        model=result,
        errors=tuple(errors),
        iterations=it,
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
    )


def _candidate_error(work, cand, norm_x2, mask, tensor) -> float:
    if mask is not None:
        ones = torch.ones(cand[0].shape[1], dtype=tensor.dtype, device=tensor.device)
        resid = (tensor - _dense(ones, cand))[mask]
        return float(torch.linalg.vector_norm(resid)) / max(norm_x2**0.5, 1e-300)
    m_last = _mttkrp(work, cand, work.ndim - 1)
    grams = [f.mT @ f for f in cand]
    ones = torch.ones(cand[0].shape[1], dtype=work.dtype, device=work.device)
    return _error_from_mttkrp(norm_x2, m_last, cand, grams, ones)
