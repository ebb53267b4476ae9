"""Non-negative CP decomposition by HALS or multiplicative updates, with per-mode constraints.

Fits ``X ~= [[A_0, ..., A_{N-1}]]`` by minimising

    1/2 ||X - [[A_0, ..., A_{N-1}]]||_F^2 + sum_n l1_n sum |A_n|

over ``A_n >= 0`` for the modes in ``nonneg_modes`` (all by default) and free ``A_n`` elsewhere,
one factor at a time. With ``M_n = mttkrp(X, A, n)`` (no Khatri--Rao product formed; all modes'
MTTKRPs of one iteration come from the two-pass dimension tree of
:mod:`factorch.decomp._cp_sweep`, two reads of ``X`` instead of ``N``) and
``Ghat_n = *_{m != n} A_m^T A_m`` (Hadamard product of cached ``R x R`` Grams), every update only
needs ``M_n`` and ``Ghat_n``:

* HALS (Cichocki & Phan 2009): column ``k`` of ``A_n`` becomes its exact minimiser with the
  others fixed, ``a_k = max(0, a_k + (M_n[:, k] - A_n Ghat_n[:, k] - l1_n) / Ghat_n[k, k])``
  (soft-thresholding instead of ``max(0, .)`` for free modes), repeated over all columns as in
  Gillis & Glineur's accelerated HALS (2012) while the sweeps still move ``A_n``.
* MU (Lee & Seung 2001; Welling & Weber 2001 for tensors): ``A_n <- A_n * M_n / (A_n Ghat_n +
  l1_n)`` when ``X >= 0`` and every other mode is non-negative (so ``M_n, Ghat_n >= 0``), and
  otherwise Ding, Li & Jordan's (2010) signed rule
  ``A_n <- A_n * sqrt(((M_n - l1_n)^+ + A_n Ghat_n^-) / ((M_n - l1_n)^- + A_n Ghat_n^+))``.
* free modes without L1: exact least squares ``A_n = M_n Ghat_n^{-1}`` (Cholesky, pseudo-inverse
  if singular); with L1, HALS coordinate descent with soft-thresholding.

Each update exactly minimises, or provably does not increase, the objective in its block, so the
penalised objective never increases (and the error never increases when every ``l1_n = 0``).
The relative error after each iteration is read off the last update,
``||X||^2 - 2 <M_{N-1}, A_{N-1}> + 1^T (Ghat_{N-1} * A_{N-1}^T A_{N-1}) 1`` (no reconstruction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch

from .._checks import check_modes, check_positive_int, check_tensor
from ..algebra.internal import leading_left as _leading_left
from ..algebra.internal import mttkrp as _mttkrp
from ..algebra.internal import unfold as _unfold
from ..tensors import CPTensor
from ._cp_sweep import hadamard_grams
from ._cp_sweep import sweep as _tree_sweep
from ._nn_common import (
    _check_choice,
    _check_loop_options,
    _check_penalty,
    _hals_rows,
    _max_sweeps,
    _rand,
    _scan,
    _sym_solve,
)
from ._result import Callback, DecompositionResult, IterationState, Stopwatch

__all__ = ["NNCPInit", "NNCPMethod", "non_negative_cp"]

NNCPMethod = Literal["hals", "mu"]
NNCPInit = Literal["svd", "random"]


def _check_l1(l1: object, ndim: int, fn: str) -> tuple[float, ...]:
    if isinstance(l1, (int, float)) and not isinstance(l1, bool):
        return (_check_penalty(l1, fn, "l1"),) * ndim
    if isinstance(l1, Sequence) and not isinstance(l1, str):
        if len(l1) != ndim:
            raise ValueError(
                f"{fn}: l1 needs one entry per mode ({ndim}) or a single float; got {len(l1)}."
            )
        return tuple(_check_penalty(v, fn, f"l1[{i}]") for i, v in enumerate(l1))
    raise TypeError(
        f"{fn}: l1 must be a non-negative float or a sequence of them; got {type(l1).__name__}."
    )


def _init_factors(
    x: torch.Tensor,
    rank: int,
    init: object,
    nonneg: tuple[bool, ...],
    method: str,
    generator: torch.Generator | None,
    fn: str,
) -> tuple[list[torch.Tensor], bool]:
    """Factors ``(I_n, R)`` to start from, and whether they came from a string option."""
    if isinstance(init, CPTensor):
        if init.shape != tuple(x.shape) or init.rank != rank:
            raise ValueError(
                f"{fn}: init must be a CPTensor of shape {tuple(x.shape)} and rank {rank}; got "
                f"shape {init.shape} and rank {init.rank}."
            )
        if init.dtype != x.dtype or init.device != x.device:
            raise ValueError(
                f"{fn}: init must match the tensor's dtype and device ({x.dtype}, {x.device}); "
                f"got ({init.dtype}, {init.device})."
            )
        factors = [f.detach().clone() for f in init.factors]
        factors[0] = factors[0] * init.weights.detach()
        for n, f in enumerate(factors):
            if not bool(torch.isfinite(f).all()):
                raise ValueError(f"{fn}: init factors[{n}] contains NaN or Inf entries.")
            if nonneg[n] and bool((f < 0).any()):
                raise ValueError(
                    f"{fn}: init factors[{n}] (weights multiplied into factors[0]) must be "
                    f"non-negative because mode {n} is in nonneg_modes; got min "
                    f"{float(f.min()):.3g}."
                )
        return factors, False
    if isinstance(init, tuple):
        raise TypeError(f"{fn}: init must be 'svd', 'random' or a CPTensor; got a tuple.")
    _check_choice(init, get_args(NNCPInit), fn, "init")
    factors = []
    for n, size in enumerate(x.shape):
        if init == "svd":
            u = _leading_left(_unfold(x, n), rank)
            if nonneg[n]:
                u = u.abs()
            if u.shape[1] < rank:  # rank > I_n: complete with random columns
                extra = _rand((size, rank - u.shape[1]), x, generator, normal=not nonneg[n])
                u = torch.cat([u, extra], 1)
        else:
            u = _rand((size, rank), x, generator, normal=not nonneg[n])
        if method == "mu" and nonneg[n]:  # multiplicative updates cannot leave exact zeros
            u = u.clamp_min(torch.finfo(x.dtype).eps * float(u.max().clamp_min(1e-30)))
        factors.append(u.contiguous())
    return factors, True


def non_negative_cp(
    tensor: torch.Tensor,
    rank: int,
    *,
    method: NNCPMethod = "hals",
    init: NNCPInit | CPTensor = "svd",
    max_iter: int = 100,
    tol: float = 1e-8,
    nonneg_modes: Sequence[int] | None = None,
    l1: float | Sequence[float] = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """Non-negative CP decomposition (all or some modes constrained), optionally L1-sparse.

    See the module docstring for the objective and the update rules.

    Args:
        tensor: real tensor with at least 2 modes. With every mode non-negative it must have no
            negative entries (a non-negative model cannot fit them; a ``ValueError`` says so);
            with some mode free, any sign is allowed.
        rank: number of components ``R``, at most ``prod(shape) / max(shape)`` (the rank of the
            widest unfolding, beyond which a mode-``n`` factorization is already exact).
        method: ``"hals"`` (default; accelerated HALS) or ``"mu"`` (multiplicative updates, one
            per mode and iteration; entries that reach zero stay zero).
        init: ``"svd"`` (NNDSVD-like: absolute values of each unfolding's leading left singular
            vectors, from ``eigh`` of its small Gram matrix, never a full SVD of the wide
            unfolding; random columns complete modes with ``I_n < R``), ``"random"`` (uniform
            [0, 1) for constrained modes, standard normal for free ones), or a :class:`CPTensor`
            (its weights are multiplied into ``factors[0]``; never modified). String inits are
            rescaled by the least-squares scalar before the first iteration.
        max_iter: maximum number of iterations (one update of every factor each).
        tol: stop when the relative error changes by less than ``tol`` between two iterations;
            0 runs exactly ``max_iter`` iterations.
        nonneg_modes: modes constrained to be non-negative (default: all). Others get
            unconstrained least-squares updates.
        l1: L1 weight(s) ``>= 0``, one float for all modes or one per mode, in the units of
            ``1/2 ||X - X_hat||^2``. CP's scaling freedom lets an unpenalised mode absorb scale,
            so penalise every mode (or none) when the aim is sparsity.
        generator: seeds ``init="random"`` and the random completion of ``"svd"``.
        callback: called after each iteration with an :class:`IterationState` whose ``tensor``
            is the current (unnormalised, unit-weight) :class:`CPTensor`; True stops the run.

    Returns:
        :class:`DecompositionResult` whose ``tensor`` is a :class:`CPTensor` with unit-norm
        factor columns and the norms in ``weights``; ``errors`` the relative error
        ``||X - X_hat|| / ||X||`` per iteration (accurate to about ``sqrt(eps)``, 1e-8 in float64,
        because it is computed from Gram matrices); ``extras["objective"]`` the penalised
        objective per iteration.

    Raises:
        TypeError: wrong argument types (non-tensor input, complex input, bad ``l1`` type).
        ValueError: NaN/Inf or (with all modes constrained) negative entries; an all-zero tensor;
            a rank out of range; unknown ``method``/``init``; negative ``l1``; an init of the
            wrong shape, dtype or device, or negative in a constrained mode.
        IndexError: a mode in ``nonneg_modes`` out of range.

    Not differentiable (runs under ``torch.no_grad``). Device and dtype follow the input.
    Deterministic given the inputs (and ``generator``).

    References:
        A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix and
        tensor factorizations", IEICE Trans. Fundamentals E92-A(3), 2009.
        N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
        algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
        M. Welling and M. Weber, "Positive tensor factorization", Pattern Recognition Letters
        22(12), 2001. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization",
        NIPS 2001. C. Ding, T. Li and M. Jordan, "Convex and semi-nonnegative matrix
        factorizations", IEEE TPAMI 32(1), 2010.
    """
    fn = "non_negative_cp"
    x = check_tensor(tensor, fn, "tensor", min_ndim=2, finite=False)
    if x.is_complex():
        raise TypeError(f"{fn}: tensor must be real; got {x.dtype}.")
    rank = check_positive_int(rank, fn, "rank")
    ndim = x.ndim
    bound = math.prod(x.shape) // max(x.shape)
    if rank > bound:
        raise ValueError(
            f"{fn}: rank must be at most prod(shape) / max(shape) = {bound} for shape "
            f"{tuple(x.shape)} (a larger rank cannot lower the error); got {rank}."
        )
    _check_choice(method, get_args(NNCPMethod), fn, "method")
    max_iter, tol = _check_loop_options(max_iter, tol, generator, callback, fn)
    if nonneg_modes is None:
        constrained = set(range(ndim))
    else:
        if isinstance(nonneg_modes, (str, int)) or not isinstance(nonneg_modes, Sequence):
            raise TypeError(
                f"{fn}: nonneg_modes must be a sequence of modes or None; got "
                f"{type(nonneg_modes).__name__}."
            )
        constrained = set(check_modes(nonneg_modes, ndim, fn, "nonneg_modes"))
    nonneg = tuple(n in constrained for n in range(ndim))
    l1s = _check_l1(l1, ndim, fn)
    x2_t, xmin = _scan(x, fn, "tensor", tuple(range(ndim)))
    data_nonneg = xmin >= 0
    if all(nonneg) and not data_nonneg:
        raise ValueError(
            f"{fn}: tensor has {int((x < 0).sum())} negative entries (min {xmin:.3g}) but every "
            "mode is constrained to be non-negative, so they cannot be fitted. Shift or clip the "
            "data, or leave a mode free with nonneg_modes=[...]."
        )
    x2 = float(x2_t)
    if x2 == 0:
        raise ValueError(f"{fn}: tensor is all zeros; nothing to fit.")

    clock = Stopwatch()
    with torch.no_grad():
        factors, rescale = _init_factors(x, rank, init, nonneg, method, generator, fn)
        grams = [f.mT @ f for f in factors]
        if rescale:  # least-squares scalar for the initial model
            m_first = _mttkrp(x, factors, 0)
            ghat = hadamard_grams(grams, skip=0)
            fit = float((ghat * grams[0]).sum())
            alpha = float((m_first * factors[0]).sum()) / fit if fit > 0 else 0.0
            if alpha > 0:
                factors[0] = factors[0] * alpha
                grams[0] = grams[0] * alpha**2
        init_time = clock.elapsed
        # Factors are kept transposed, (R, I_n) contiguous, so HALS updates rows in place.
        rows = [f.mT.contiguous().unsqueeze(0) for f in factors]
        numel = float(math.prod(x.shape))
        # Per mode, the tree costs about 2 / N passes over X (2 numel R FLOPs each).
        sweeps = [_max_sweeps(4.0 * numel * rank / ndim, size, rank) for size in x.shape]
        lee_seung = [
            data_nonneg and all(nonneg[m] for m in range(ndim) if m != n) for n in range(ndim)
        ]
        eps = torch.finfo(x.dtype).eps
        errors: list[float] = []
        objective: list[float] = []
        converged = False
        views = [r[0].mT for r in rows]  # (I_n, R) views of the rows, read by the sweep
        last: dict[str, torch.Tensor] = {}

        def update(n: int, m: torch.Tensor) -> None:
            """Update factor ``n`` from its MTTKRP ``m`` ``(I_n, R)`` (called by the sweep)."""
            mt = m.mT.unsqueeze(0)  # (1, R, I_n)
            ghat = hadamard_grams(grams, skip=n).unsqueeze(0)
            v = rows[n]
            if (method == "hals" and nonneg[n]) or (not nonneg[n] and l1s[n] > 0):
                _hals_rows(v, mt, ghat, l1s[n], nonneg=nonneg[n], max_sweeps=sweeps[n])
            elif not nonneg[n]:
                rows[n] = v = _sym_solve(mt, ghat)
                views[n] = v[0].mT
            elif lee_seung[n]:
                v.mul_(mt / (ghat @ v + l1s[n]).clamp_min(eps))
            else:
                shifted = mt - l1s[n]
                num = shifted.clamp_min(0) + (-ghat).clamp_min(0) @ v
                den = (-shifted).clamp_min(0) + ghat.clamp_min(0) @ v
                v.mul_((num / den.clamp_min(eps)).sqrt())
            grams[n] = v[0] @ v[0].mT
            last["mt"], last["ghat"] = mt, ghat

        for it in range(1, max_iter + 1):
            # Two-pass dimension tree (two reads of X per iteration, same iterates as mode-by-mode).
            _tree_sweep(x, views, grams, update)
            mt, ghat = last["mt"], last["ghat"]
            res2 = x2 - 2 * float((mt * rows[-1]).sum()) + float((ghat[0] * grams[-1]).sum())
            res2 = max(res2, 0.0)
            err = math.sqrt(res2 / x2)
            penalty = sum(l1s[n] * float(rows[n].abs().sum()) for n in range(ndim) if l1s[n])
            objective.append(0.5 * res2 + penalty)
            errors.append(err)
            if tol > 0 and len(errors) > 1 and abs(errors[-2] - err) < tol:
                converged = True
            stop = False
            if callback is not None:
                current = CPTensor.from_factors([r[0].mT.clone() for r in rows])
                stop = callback(IterationState(it, err, current)) is True
            if converged or stop:
                break
        cp = CPTensor.from_factors([r[0].mT.contiguous() for r in rows]).normalize()
    return DecompositionResult(
        model=cp,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={
            "method": method,
            "objective": tuple(objective),
            "nonneg_modes": tuple(n for n in range(ndim) if nonneg[n]),
        },
    )
