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
The relative error after each iteration is read off the last update (the Gram formula of
:func:`~factorch.decomp._cp_sweep.gram_error`) while it resolves what is asked of it, and is the
exact residual from then on and at the end, as in :func:`~factorch.decomp.cp`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import as_tensor, check_finite, check_modes, check_positive_int, check_tensor
from .._numerics import check_memory, no_autocast, upcast, working_dtype
from ..algebra.internal import leading_left as _leading_left
from ..algebra.internal import mttkrp as _mttkrp
from ..algebra.internal import unfold as _unfold
from ..tensors import CPTensor
from ._cp import _small_path, check_mask, output_model
from ._cp_small import SmallSweep
from ._cp_sweep import (
    CPState,
    exact_error,
    gram_error,
    hadamard_grams,
    tree_mttkrps,
    working_set,
)
from ._nn_common import (
    _check_choice,
    _check_loop_options,
    _check_penalty,
    _hals_rows,
    _max_sweeps,
    _rand,
    _sym_solve,
)
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import fit_scale

__all__ = ["NNCPInit", "NNCPMethod", "non_negative_cp"]

NNCPMethod = Literal["hals", "mu"]
NNCPInit = Literal["svd", "random"]
# How one factor is updated (see the module docstring).
_Rule = Literal["hals", "hals_free", "solve", "mu", "mu_signed"]


@dataclass(frozen=True)
class _Options:
    """The validated options of one non-negative CP run."""

    rank: int
    method: NNCPMethod
    init: NNCPInit | CPTensor
    max_iter: int
    tol: float
    nonneg: tuple[bool, ...]
    l1: tuple[float, ...]
    mask: torch.Tensor | None
    generator: torch.Generator | None
    callback: Callback | None


@no_autocast
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
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """Non-negative CP decomposition (all or some modes constrained), optionally L1-sparse.

    See the module docstring for the objective and the update rules.

    Args:
        tensor: real tensor (or numpy array) with at least 2 modes. With every mode non-negative
            it must have no negative entries (a non-negative model cannot fit them; a
            ``ValueError`` says so); with some mode free, any sign is allowed. float16 and
            bfloat16 are fitted in float32 (model returned in the input dtype); a tensor that
            requires grad is detached.
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
        tol: stop when the relative error changes by less than ``tol`` between two iterations,
            or by less than the error estimates' rounding floor when that is larger (as in
            :func:`~factorch.decomp.cp`); 0 runs exactly ``max_iter`` iterations.
        nonneg_modes: modes constrained to be non-negative (default: all). Others get
            unconstrained least-squares updates.
        l1: L1 weight(s) ``>= 0``, one float for all modes or one per mode, in the units of
            ``1/2 ||X - X_hat||^2`` (absolute: scaling the data changes their effect). CP's
            scaling freedom lets an unpenalised mode absorb scale, so penalise every mode (or
            none) when the aim is sparsity.
        mask: bool tensor of the tensor's shape, True where observed (numpy arrays accepted).
            The fit minimises the objective over the observed entries only, by EM (Tomasi and
            Bro 2005, as :func:`~factorch.decomp.cp` does): each iteration fills the missing
            entries from the current model and runs one HALS or MU iteration on the completed
            tensor. That is a majorize-minimize step (the completed objective lies above the
            observed one and touches it at the current model), so the observed objective never
            increases, and it costs one reconstruction of the model per iteration -- against
            one weighted solve per row and mode (HALS) or one reconstruction per mode (weighted
            MU) for the weighted alternatives. Missing entries may hold anything, NaN included;
            errors are measured on the observed entries. EM slows down as the missing fraction
            grows (it is a good fit for the few percent of IL-2 or of sensor dropouts; for mostly
            missing data use :mod:`factorch.completion`).
        generator: seeds ``init="random"`` and the random completion of ``"svd"``.
        callback: called after each iteration with an :class:`IterationState` whose ``model``
            is the current (unnormalised, unit-weight) :class:`CPTensor`; True stops the run.

    Returns:
        :class:`DecompositionResult` whose ``model`` is a :class:`CPTensor` with unit-norm
        factor columns and the norms in ``weights``; ``errors`` the relative error
        ``||X - X_hat|| / ||X||`` per iteration (the last one exact); ``extras["objective"]`` the
        penalised objective per iteration (in the data's units, so beyond float64's range for
        float64 data larger than about ``1e150``), ``extras["error_floors"]`` the errors'
        rounding floors.

    Raises:
        TypeError: wrong argument types (non-tensor input, complex input, bad ``l1`` type, a
            ``generator`` that is not a ``torch.Generator``).
        ValueError: NaN/Inf or (with all modes constrained) negative entries; an all-zero tensor;
            a rank out of range or too large for the device's memory; unknown ``method``/``init``;
            negative ``l1``; an init of the wrong shape, dtype or device, or negative in a
            constrained mode.
        IndexError: a mode in ``nonneg_modes`` out of range.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input; tiny or huge data is scaled exactly for the fit (as in
    :func:`~factorch.decomp.cp`, with ``l1`` converted so the minimiser is the same).
    Deterministic given the inputs (and ``generator``).

    Example:
        >>> x = factorch.random.random_cp((8, 9, 10), 2).to_dense().abs()
        >>> non_negative_cp(x, 2).model.rank
        2

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
    x = check_tensor(as_tensor(tensor, fn).detach(), fn, "tensor", min_ndim=2, finite=False)
    if x.is_complex():
        raise TypeError(f"{fn}: tensor must be real; got {x.dtype}.")
    opts = _check_options(
        x, rank, method, init, max_iter, tol, nonneg_modes, l1, mask, generator, callback
    )
    if opts.mask is not None:  # missing entries may hold NaN: read the observed ones only
        x = torch.where(opts.mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    data_nonneg, largest = _check_data(x, opts.nonneg, fn)
    with torch.no_grad():
        return _fit(x, opts, data_nonneg, largest)


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


def _check_options(
    x: torch.Tensor,
    rank: object,
    method: NNCPMethod,
    init: NNCPInit | CPTensor,
    max_iter: object,
    tol: object,
    nonneg_modes: object,
    l1: object,
    mask: object,
    generator: torch.Generator | None,
    callback: Callback | None,
) -> _Options:
    fn = "non_negative_cp"
    rank = check_positive_int(rank, fn, "rank")
    bound = math.prod(x.shape) // max(x.shape)
    if rank > bound:
        raise ValueError(
            f"{fn}: rank must be at most prod(shape) / max(shape) = {bound} for shape "
            f"{tuple(x.shape)} (a larger rank cannot lower the error); got {rank}."
        )
    _check_choice(method, get_args(NNCPMethod), fn, "method")
    max_iter, tol_ = _check_loop_options(max_iter, tol, generator, callback, fn)
    ndim = x.ndim
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
    if isinstance(init, CPTensor):
        _check_init(init, x, rank, nonneg, fn)
    elif isinstance(init, tuple):
        raise TypeError(f"{fn}: init must be 'svd', 'random' or a CPTensor; got a tuple.")
    else:
        _check_choice(init, get_args(NNCPInit), fn, "init")
    check_memory(  # (with a mask: the model and the completed tensor too)
        working_set(tuple(x.shape), rank) + x.numel() * (1 if mask is None else 3),
        working_dtype(x.dtype),
        x.device,
        fn,
        f"a rank-{rank} non-negative CP fit of a {tuple(x.shape)} tensor",
    )
    return _Options(
        rank=rank,
        method=method,
        init=init,
        max_iter=max_iter,
        tol=tol_,
        nonneg=nonneg,
        l1=_check_l1(l1, ndim, fn),
        mask=None if mask is None else check_mask(mask, x, fn),
        generator=generator,
        callback=callback,
    )


def _check_init(
    init: CPTensor, x: torch.Tensor, rank: int, nonneg: tuple[bool, ...], fn: str
) -> None:
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
    for n, f in enumerate(_init_with_weights(init)):
        # One reduction per factor: the extremes are finite exactly when every entry is (NaN
        # propagates), and the smallest tells the sign.
        low, high = (float(v) for v in torch.aminmax(f))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{fn}: init factors[{n}] contains NaN or Inf entries.")
        if nonneg[n] and low < 0:
            raise ValueError(
                f"{fn}: init factors[{n}] (weights multiplied into factors[0]) must be "
                f"non-negative because mode {n} is in nonneg_modes; got min {low:.3g}."
            )


def _check_data(x: torch.Tensor, nonneg: tuple[bool, ...], fn: str) -> tuple[bool, float]:
    """Refuse NaN/Inf, all-zero data and (every mode constrained) negative entries; return
    whether the data is non-negative and its largest magnitude (one pass over the data)."""
    low, high = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        check_finite(x, fn, "tensor")
    if all(nonneg) and low < 0:
        raise ValueError(
            f"{fn}: tensor has {int((x < 0).sum())} negative entries (min {low:.3g}) but every "
            "mode is constrained to be non-negative, so they cannot be fitted. Shift or clip the "
            "data, or leave a mode free with nonneg_modes=[...]."
        )
    if low == 0 and high == 0:
        raise ValueError(f"{fn}: tensor is all zeros (on its observed entries); nothing to fit.")
    return low >= 0, max(-low, high)


def _init_with_weights(init: CPTensor) -> list[torch.Tensor]:
    factors = [f.detach().clone() for f in init.factors]
    factors[0] = factors[0] * init.weights.detach()
    return factors


def _initial_factors(x: torch.Tensor, opts: _Options, scale: float) -> list[torch.Tensor]:
    """Factors ``(I_n, R)`` to start from (in the units of the scaled data ``x``)."""
    if isinstance(opts.init, CPTensor):
        factors = [upcast(f) for f in _init_with_weights(opts.init)]
        factors[0] = factors[0] / scale
        return factors
    factors = []
    for n, size in enumerate(x.shape):
        nonneg = opts.nonneg[n]
        if opts.init == "svd":
            u = _leading_left(_unfold(x, n), opts.rank)
            if nonneg:
                u = u.abs()
            if u.shape[1] < opts.rank:  # rank > I_n: complete with random columns
                extra = _rand((size, opts.rank - u.shape[1]), x, opts.generator, normal=not nonneg)
                u = torch.cat([u, extra], 1)
        else:
            u = _rand((size, opts.rank), x, opts.generator, normal=not nonneg)
        if opts.method == "mu" and nonneg:  # multiplicative updates cannot leave exact zeros
            u = u.clamp_min(torch.finfo(x.dtype).eps * float(u.max().clamp_min(1e-30)))
        factors.append(u.contiguous())
    # String inits: rescale by the least-squares scalar of the initial model.
    grams = [f.mT @ f for f in factors]
    fit = float((hadamard_grams(grams, skip=0) * grams[0]).sum())
    alpha = float((_mttkrp(x, factors, 0) * factors[0]).sum()) / fit if fit > 0 else 0.0
    if alpha > 0:
        factors[0] = factors[0] * alpha
    return factors


def _rules(opts: _Options, data_nonneg: bool) -> list[_Rule]:
    rules: list[_Rule] = []
    for n, nonneg in enumerate(opts.nonneg):
        others_nonneg = all(opts.nonneg[m] for m in range(len(opts.nonneg)) if m != n)
        if opts.method == "hals" and nonneg:
            rules.append("hals")
        elif not nonneg and opts.l1[n] > 0:
            rules.append("hals_free")
        elif not nonneg:
            rules.append("solve")
        elif data_nonneg and others_nonneg:
            rules.append("mu")
        else:
            rules.append("mu_signed")
    return rules


def _fit(
    tensor: torch.Tensor, opts: _Options, data_nonneg: bool, largest: float
) -> DecompositionResult[CPTensor]:
    clock = Stopwatch()
    x = upcast(tensor).contiguous()  # one copy at most (the sweeps read free reshapes of it)
    scale = fit_scale(x, largest)
    if scale != 1.0:
        x = x / scale
    # The same minimiser for the scaled data: factor 0 carries the scale (see the docstring).
    l1 = tuple(v / scale if n == 0 or not v else v / scale / scale for n, v in enumerate(opts.l1))
    factors = _initial_factors(x, opts, scale)
    init_time = clock.elapsed
    # Factors are kept transposed, (1, R, I_n) contiguous, so HALS updates rows in place;
    # state.factors holds (I_n, R) views of them.
    rows = [f.mT.contiguous().unsqueeze(0) for f in factors]
    state = CPState.start(torch.ones(opts.rank, dtype=x.dtype, device=x.device), factors)
    state.factors = [r[0].mT for r in rows]
    rules = _rules(opts, data_nonneg)
    # Per mode, the tree costs about 2 / N passes over X (2 numel R FLOPs each).
    cost = 4.0 * x.numel() * opts.rank / x.ndim
    sweeps = [_max_sweeps(cost, size, opts.rank) for size in x.shape]
    norm_x2 = float(torch.linalg.vector_norm(x)) ** 2
    # Small CPU tensors: the MTTKRPs of the small CP-ALS sweep (one Khatri--Rao product and one
    # GEMM per mode, buffers reused), far fewer operations than the dimension tree.
    small = SmallSweep(x, opts.rank) if _small_path(x) else None
    residual_error = exact_error if small is None else small.exact_error
    errors: list[float] = []
    floors: list[float] = []
    objective: list[float] = []
    mask = opts.mask
    # With a mask every error is the exact one on the observed entries (the model is formed
    # anyway, for the imputation).
    exact, comparable_from, converged = mask is not None, 0, False
    work, model = x, None if mask is None else _dense(state)
    for it in range(1, opts.max_iter + 1):
        if mask is not None and model is not None:  # EM: fill the missing entries from the model
            work = torch.where(mask, x, model)
        if small is not None and mask is not None:
            small.load(work)
        mttkrp = _sweep(work, rows, state, rules, l1, sweeps, small)
        # The error estimate in force and the one convergence rule, as in cp (see there).
        if mask is not None:
            model = _dense(state)
            err, floor = _masked_error(x, model, mask, norm_x2)
        elif exact:
            err, floor = residual_error(x, state, norm_x2)
        else:
            err, floor = gram_error(norm_x2, mttkrp, state)
            if floor > err / 8 or _unresolved(err, floor, errors, floors, opts.tol):
                exact, comparable_from = True, len(errors)
                err, floor = residual_error(x, state, norm_x2)
        if opts.tol > 0 and len(errors) > comparable_from:
            converged = abs(errors[-1] - err) <= max(opts.tol, floors[-1] + floor)
        if not exact and (converged or it == opts.max_iter):  # the true final error
            err, floor = residual_error(x, state, norm_x2)
        penalty = sum(l1[n] * float(rows[n].abs().sum()) for n in range(x.ndim) if l1[n])
        objective.append((0.5 * err * err * norm_x2 + penalty) * scale * scale)
        errors.append(err)
        floors.append(floor)
        if opts.callback is not None:
            current = CPTensor.from_factors(
                [r[0].mT * (scale if n == 0 else 1.0) for n, r in enumerate(rows)]
            )
            if opts.callback(IterationState(it, err, current.to(dtype=tensor.dtype))) is True:
                if not exact and not converged and it < opts.max_iter:
                    errors[-1], floors[-1] = residual_error(x, state, norm_x2)
                break
        if converged:
            break
    unit = CPTensor.from_factors([r[0].mT.contiguous() for r in rows]).normalize()
    result = output_model(CPState.start(unit.weights, unit.factors), scale, tensor.dtype)
    if result.dtype != x.dtype:  # the rounding to half precision is part of the model's error
        rounded = CPState.start(upcast(result.weights) / scale, [upcast(f) for f in result.factors])
        if mask is None:
            errors[-1], floors[-1] = exact_error(x, rounded, norm_x2)
        else:
            errors[-1], floors[-1] = _masked_error(x, _dense(rounded), mask, norm_x2)
    return DecompositionResult(
        model=result,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={
            "method": opts.method,
            "objective": tuple(objective),
            "nonneg_modes": tuple(n for n in range(x.ndim) if opts.nonneg[n]),
            "error_floors": tuple(floors),
        },
    )


def _dense(state: CPState) -> torch.Tensor:
    return CPTensor(state.weights, tuple(state.factors)).to_dense()


def _masked_error(
    x: torch.Tensor, model: torch.Tensor, mask: torch.Tensor, norm_x2: float
) -> tuple[float, float]:
    """Relative error on the observed entries (``x`` is zero elsewhere, ``norm_x2`` its squared
    norm) and its rounding floor (a few ``eps`` times the sizes of data and model)."""
    resid = torch.where(mask, x - model, torch.zeros((), dtype=x.dtype, device=x.device))
    norm_x = max(math.sqrt(norm_x2), torch.finfo(torch.float64).tiny)
    eps = torch.finfo(x.dtype).eps
    model_norm = float(torch.linalg.vector_norm(torch.where(mask, model, 0.0)))
    return float(torch.linalg.vector_norm(resid)) / norm_x, 4.0 * eps * (1.0 + model_norm / norm_x)


def _sweep(
    x: torch.Tensor,
    rows: list[torch.Tensor],
    state: CPState,
    rules: list[_Rule],
    l1: tuple[float, ...],
    sweeps: list[int],
    small: SmallSweep | None = None,
) -> torch.Tensor:
    """One iteration: every factor updated once, MTTKRPs from the two-pass dimension tree (as in
    :func:`~factorch.decomp._cp_sweep.als_sweep`), or from ``small`` (holding ``x``) mode by
    mode. Returns the last mode's MTTKRP."""
    mttkrp = state.factors[-1]
    pairs = (
        tree_mttkrps(x, state.factors)
        if small is None
        else ((n, small.mttkrp(n, state.factors)) for n in range(x.ndim))
    )
    for n, mttkrp in pairs:
        ghat = hadamard_grams(state.grams, skip=n).unsqueeze(0)
        rows[n] = _update(rows[n], mttkrp.mT.unsqueeze(0), ghat, rules[n], l1[n], sweeps[n])
        state.factors[n] = rows[n][0].mT
        state.grams[n] = rows[n][0] @ rows[n][0].mT
    return mttkrp


def _unresolved(
    err: float, floor: float, errors: list[float], floors: list[float], tol: float
) -> bool:
    """The change since the last iteration is within the Gram formula's rounding, which is
    coarser than ``tol``."""
    if tol <= 0 or not errors:
        return False
    noise = floor + floors[-1]
    return noise > tol and abs(errors[-1] - err) <= noise


def _update(
    v: torch.Tensor, mt: torch.Tensor, ghat: torch.Tensor, rule: _Rule, l1: float, sweeps: int
) -> torch.Tensor:
    """Factor ``v`` ``(1, R, I_n)`` updated from its MTTKRP ``mt`` ``(1, R, I_n)`` and the
    Hadamard product ``ghat`` ``(1, R, R)`` of the other Grams (in place except ``"solve"``)."""
    eps = torch.finfo(v.dtype).eps
    if rule in ("hals", "hals_free"):
        _hals_rows(v, mt, ghat, l1, nonneg=rule == "hals", max_sweeps=sweeps)
    elif rule == "solve":
        return _sym_solve(mt, ghat)
    elif rule == "mu":
        v.mul_(mt / (ghat @ v + l1).clamp_min(eps))
    else:
        shifted = mt - l1
        num = shifted.clamp_min(0) + (-ghat).clamp_min(0) @ v
        den = (-shifted).clamp_min(0) + ghat.clamp_min(0) @ v
        v.mul_((num / den.clamp_min(eps)).sqrt())
    return v
