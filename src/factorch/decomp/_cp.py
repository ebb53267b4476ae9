"""CP (CANDECOMP/PARAFAC) decomposition by alternating least squares.

Model: ``X ~= [[w; A_0, ..., A_{N-1}]] = sum_r w_r a_0r o a_1r o ... o a_{N-1,r}``.

Each sweep (:func:`factorch.decomp._cp_sweep.als_sweep`) updates every factor in turn: MTTKRP
(from a two-pass dimension tree: two reads of the tensor per sweep, no Khatri--Rao product),
normal equations ``A_n (*_{m != n} A_m^T A_m + l2 I) = MTTKRP_n`` by Cholesky (pseudo-inverse when
singular), unit-norm columns with the scale in the weights.

The error after a sweep is the free Gram formula while it can resolve what is asked of it and the
exact residual (one more read of the tensor) from then on; the run stops when the error changes
by less than ``tol`` or by less than the estimates' rounding floor. See :func:`cp`.

References: Kolda and Bader, "Tensor decompositions and applications", SIAM Review 51(3), 2009;
Bro, "Multi-way analysis in the food industry", PhD thesis, 1998 (line search).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import (
    as_index,
    as_tensor,
    check_finite,
    check_generator,
    check_positive_int,
    check_tensor,
)
from .._numerics import HALF_DTYPES, check_memory, no_autocast, upcast, working_dtype
from ..algebra import MTTKRPKernel, fused_mttkrp_status
from ..algebra.internal import mttkrp_kernel
from ..tensors import CPTensor
from ._cp_init import CPInit, init_factors
from ._cp_small import SMALL_ENTRIES, SmallSweep
from ._cp_sweep import CPState, als_sweep, exact_error, gram, gram_error, working_set
from ._degeneracy import CPDegeneracy, cp_degeneracy, degeneracy_from_grams
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import finite_fit_scale, fit_scale

__all__ = ["CPOptions", "check_cp_memory", "check_mask", "cp", "dense_input", "output_model"]

# A torch sparse tensor is densified when its dense form has at most this many entries.
_DENSIFY_LIMIT = 1 << 26
# Which sweep runs: "auto" takes the small-tensor path (:mod:`._cp_small`) for CPU tensors of up to
# SMALL_ENTRIES entries and the dimension tree (:func:`._cp_sweep.als_sweep`) otherwise. The tests
# force each path.
_PATH: Literal["auto", "small", "reference"] = "auto"
# Working sets of at most this many elements (128 MiB in float64) are not checked against the
# device's memory.
_SURELY_FITS = 1 << 24
# The final error comes from the Gram formula when its bound on the distance to the exact
# residual is at most this (:func:`_final_error`), else from one more pass over the tensor.
_IDENTITY_TOLERANCE = 1e-10
_LAMBDA = 9.0  # the probabilistic rounding bound's multiple of sqrt(n) u


@dataclass(frozen=True)
class CPOptions:
    """The validated options of one CP-ALS run (see :func:`cp` for their meaning)."""

    rank: int
    init: CPInit | CPTensor
    max_iter: int
    tol: float
    l2: float
    fixed: frozenset[int]
    orthogonalize_iters: int
    linesearch: bool
    mask: torch.Tensor | None
    generator: torch.Generator | None
    callback: Callback | None
    kernel: MTTKRPKernel = "default"


@no_autocast
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
    kernel: MTTKRPKernel = "default",
) -> DecompositionResult[CPTensor]:
    """CP decomposition of a dense tensor by alternating least squares (CP-ALS).

    Args:
        tensor: real or complex floating tensor (or numpy array) with at least 2 modes, finite
            (except
            unobserved entries when ``mask`` is given). Complex data gets a complex model
            ``sum_r w_r a_0r o ... o a_{N-1,r}`` without conjugation (TensorLy's convention),
            fitted by the normal equations with Hermitian Grams. float16 and bfloat16 are fitted
            in float32
            and the model returned in the input dtype. A torch sparse tensor is densified when
            its dense form has at most ``2**26`` entries (unlisted entries are zeros); larger
            ones are refused (use :func:`factorch.completion.sparse_cp`). A tensor that requires
            grad is detached.
        rank: number of rank-one components ``R >= 1`` (any integral type).
        init: ``"svd"`` (leading left singular vectors of each unfolding from a randomized
            Khatri--Rao sketch: costs about two ALS sweeps; columns beyond ``I_n`` are random),
            ``"random"`` (uniform [0, 1) entries from ``generator``), or a :class:`CPTensor` whose
            factors are copied (never modified).
        max_iter: maximum number of ALS sweeps.
        tol: stop when the relative error changes by less than ``tol`` between two sweeps, or
            by less than the rounding floor of the two error estimates when that is larger
            (``extras["error_floors"]``; about ``1e-6`` in float32 near convergence). ``tol=0``
            runs all ``max_iter`` sweeps.
        l2: ridge penalty ``l2 * ||A_n||^2`` added to each least-squares update (of the
            unit-norm factors, so its effect does not depend on the data's scale).
        fixed_modes: modes whose factors stay at their initial value.
        orthogonalize_iters: replace factors by their QR ``Q`` factor at the start of the first
            this many sweeps (helps with degenerate "swamps"; the error can rise in those sweeps).
        linesearch: Bro-style extrapolation: from the third sweep on, try
            ``F_{k-2} + k^{1/p} (F_k - F_{k-2})`` (the step of the last two sweeps, longer than
            TensorLy's one-sweep step; on the COVID-19 serology tensor it reached the better
            local optimum from more random starts) and keep it if the error drops (one extra
            pass over the tensor); ``p`` grows after repeated rejections.
        mask: bool tensor, True where observed. Missing entries are imputed from the current model
            each sweep (EM, Tomasi and Bro 2005); errors are measured on observed entries only.
        generator: source of randomness for ``"random"`` and ``"svd"`` initialisation.
        callback: called with an :class:`IterationState` after each sweep; returning True stops.
        kernel: how the sweeps' tensor-reading passes run (the names of
            :func:`factorch.algebra.mttkrp`'s ``kernel``). ``"default"``: BLAS GEMMs.
            ``"fused"`` (opt-in, CPU): the compiled fused MTTKRP loop
            (:func:`factorch.algebra.fused_mttkrp_status`; compiled once per machine and cached
            on disk, the first fit on a machine pays seconds of compilation in
            ``init_time_s``) computes both passes of the dimension tree -- for a 3-way tensor
            ``X(IJ, K) @ A_2`` by a loop with ``K`` as the vector lane and the MTTKRP of the
            last mode -- reading the tensor once with no intermediate in memory. Fallback to
            the default pass (documented, same iterates to round-off): a one-mode pass over a
            mode of fewer than 32 entries (a plain GEMM, where BLAS is faster), complex,
            half-precision or non-CPU data, tensors of at most ``2**17`` entries (the
            small-tensor sweep), or no working compiler.

    Returns:
        :class:`DecompositionResult` holding a :class:`CPTensor` with unit-norm factor columns and
        the scale in ``weights`` (weights the dtype cannot hold, e.g. in float16, are spread
        evenly over the factor columns instead, leaving weights of +-1). ``errors`` has one
        relative error per sweep: the Gram formula
        ``||X||^2 - 2 <MTTKRP_{N-1}, A_{N-1} diag(w)> + w^T (*_m A_m^T A_m) w`` while it resolves
        the error to 1/8 and (``tol > 0``) the change between sweeps, the exact residual from
        then on; the last entry is always the exact error of the returned model (the exact
        residual, or the Gram formula where it provably equals it to ``1e-10``: a poor fit of a
        real float64 tensor; ``extras["error_floors"]`` then holds the bound).
        ``extras["error_floors"]`` holds each entry's rounding floor and ``extras["degeneracy"]``
        a :class:`~factorch.decomp.CPDegeneracy` (check ``.degenerate``: cancelling components
        mean the model should not be interpreted; the fit does not warn).

    Raises:
        TypeError: non-tensor, integer or non-bool mask input; a non-integral rank; a
            ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN/Inf, an empty dimension or fewer than 2 modes; bad option values (an
            unknown ``kernel`` among them); a
            rank whose working set cannot fit in the device's memory (the message states it); an
            init of the wrong shape, dtype or device; a torch sparse tensor too large to densify.
        IndexError: a fixed mode out of range.

    Not differentiable (ALS updates run under ``torch.no_grad``); autocast is ignored. Device
    follows the input; data outside ``[2.3e-10, 4.3e9]`` (float32) or ``[8.6e-78, 1.2e77]``
    (float64) in magnitude is scaled by an exact power of four for the fit.

    Example:
        >>> x = factorch.random.random_cp((20, 30, 40), 3).to_dense()
        >>> res = cp(x, 3)
        >>> res.error < 1e-5 and res.converged
        True
    """
    fn = "cp"
    data = dense_input(tensor, fn, allow_nan=True, allow_complex=True)
    # Without a mask the finiteness check also gives the scaling and, mostly, ||X||^2 (one pass).
    known = None if mask is not None else finite_fit_scale(data, fn, "tensor")
    options = _check_options(
        data,
        rank,
        init=init,
        max_iter=max_iter,
        tol=tol,
        l2=l2,
        fixed_modes=fixed_modes,
        orthogonalize_iters=orthogonalize_iters,
        linesearch=linesearch,
        mask=mask,
        generator=generator,
        callback=callback,
        kernel=kernel,
    )
    with torch.no_grad():
        return _fit(data, options, known=known)


def dense_input(
    tensor: object, fn: str, *, allow_nan: bool = False, allow_complex: bool = False
) -> torch.Tensor:
    """The data argument of a CP fit as a detached, dense floating tensor (checked); complex
    only where ``allow_complex``."""
    x = as_tensor(tensor, fn)
    if x.layout != torch.strided:
        if x.numel() > _DENSIFY_LIMIT:
            raise ValueError(
                f"{fn}: tensor is a torch sparse tensor whose dense form ({tuple(x.shape)}, "
                f"{x.numel()} entries) is too large to densify (limit 2**26 entries); fit it with "
                "factorch.completion.sparse_cp(SparseTensor.from_torch(tensor), rank), which "
                "reads only the stored entries (unlisted entries are zeros)."
            )
        x = x.to_dense()
    if x.requires_grad:  # (a tensor without grad is used as is: detach would only alias it)
        x = x.detach()
    if x.dtype == torch.complex32:
        raise TypeError(
            f"{fn}: complex32 tensors are not supported (too few operations exist for them); "
            "convert with tensor.to(torch.complex64)."
        )
    check_tensor(x, fn, "tensor", min_ndim=2, finite=not allow_nan)
    if x.is_complex() and not allow_complex:
        raise TypeError(f"{fn}: complex tensors are not supported; got {x.dtype}.")
    return x


def check_mask(mask: object, tensor: torch.Tensor, fn: str) -> torch.Tensor:
    mask = as_tensor(mask, fn, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{fn}: mask must have dtype torch.bool (True = observed); got {mask.dtype}."
        )
    if mask.layout != torch.strided:
        mask = mask.to_dense()
    if mask.shape != tensor.shape:
        raise ValueError(
            f"{fn}: mask shape {tuple(mask.shape)} must equal the tensor shape "
            f"{tuple(tensor.shape)}."
        )
    if mask.device != tensor.device:
        raise ValueError(f"{fn}: mask is on {mask.device} but the tensor is on {tensor.device}.")
    if not bool(mask.any()):
        raise ValueError(f"{fn}: mask observes no entry; at least one entry must be True.")
    # (the unobserved entries zeroed: the same finiteness verdict and count as the observed
    # entries alone, without gathering them)
    check_finite(torch.where(mask, tensor, 0.0), fn, "tensor (observed entries)")
    return mask


def _check_init(init: CPTensor, tensor: torch.Tensor, rank: int, fn: str) -> None:
    if init.shape != tuple(tensor.shape) or init.rank != rank:
        raise ValueError(
            f"{fn}: init CPTensor has shape {init.shape} and rank {init.rank}; expected shape "
            f"{tuple(tensor.shape)} and rank {rank}."
        )
    if init.dtype != tensor.dtype or init.device != tensor.device:
        raise ValueError(
            f"{fn}: init CPTensor is {init.dtype} on {init.device}; the tensor is "
            f"{tensor.dtype} on {tensor.device}. Use init.to(...)."
        )


def _check_fixed_modes(fixed_modes: Sequence[int], n_modes: int, fn: str) -> frozenset[int]:
    fixed = set()
    for m in fixed_modes:
        try:
            mode = as_index(m, fn, "fixed_modes entry")
        except TypeError:
            mode = n_modes  # reported below
        if not -n_modes <= mode < n_modes:
            raise IndexError(
                f"{fn}: fixed_modes entries must be modes in [0, {n_modes - 1}]; got {m!r}."
            )
        fixed.add(mode % n_modes)
    if len(fixed) == n_modes:
        raise ValueError(f"{fn}: fixed_modes fixes every mode; at least one mode must be updated.")
    return frozenset(fixed)


def _check_options(
    tensor: torch.Tensor,
    rank: object,
    *,
    init: CPInit | CPTensor,
    max_iter: object,
    tol: object,
    l2: object,
    fixed_modes: Sequence[int],
    orthogonalize_iters: object,
    linesearch: bool,
    mask: object,
    generator: object,
    callback: Callback | None,
    kernel: object = "default",
) -> CPOptions:
    fn = "cp"
    rank = check_positive_int(rank, fn, "rank")
    max_iter = check_positive_int(max_iter, fn, "max_iter")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"{fn}: tol must be a non-negative number; got {tol!r}.")
    if isinstance(l2, bool) or not (isinstance(l2, (int, float)) and l2 >= 0):
        raise ValueError(f"{fn}: l2 must be a non-negative number; got {l2!r}.")
    if isinstance(orthogonalize_iters, bool) or not isinstance(orthogonalize_iters, int):
        raise TypeError(
            f"{fn}: orthogonalize_iters must be an int; got {type(orthogonalize_iters).__name__}."
        )
    fixed = _check_fixed_modes(fixed_modes, tensor.ndim, fn)
    if fixed and linesearch:
        raise ValueError(f"{fn}: linesearch cannot be combined with fixed_modes; drop one of them.")
    if fixed and not isinstance(init, CPTensor):
        raise ValueError(f"{fn}: fixed_modes needs init=CPTensor so the fixed factors have values.")
    if isinstance(init, CPTensor):
        _check_init(init, tensor, rank, fn)
    elif not isinstance(init, str) or init not in get_args(CPInit):
        raise ValueError(
            f"{fn}: init must be one of {get_args(CPInit)} or a CPTensor; got {init!r}."
        )
    generator = check_generator(generator, fn)
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: callback must be callable or None; got {type(callback).__name__}.")
    if not isinstance(kernel, str) or kernel not in get_args(MTTKRPKernel):
        raise ValueError(
            f"{fn}: kernel must be one of {list(get_args(MTTKRPKernel))}; got {kernel!r}."
        )
    checked_mask = None if mask is None else check_mask(mask, tensor, fn)
    check_cp_memory(tensor, rank, fn)
    return CPOptions(
        rank=rank,
        init=init,
        max_iter=max_iter,
        tol=float(tol),
        l2=float(l2),
        fixed=fixed,
        orthogonalize_iters=orthogonalize_iters,
        linesearch=bool(linesearch),
        mask=checked_mask,
        generator=generator,
        callback=callback,
        kernel=kernel,  # type: ignore[arg-type]  # (checked above)
    )


def check_cp_memory(tensor: torch.Tensor, rank: int, fn: str) -> None:
    """Refuse a rank whose CP-ALS working set cannot fit in the device's memory."""
    total, shape = tensor.numel(), tuple(tensor.shape)
    # An upper bound of working_set + the float32 copy, free to compute: small fits stop here.
    bound = total * (6 * rank + 12) + sum(shape) * rank + (len(shape) + 3) * rank * rank
    if bound <= _SURELY_FITS:
        return
    extra = total if tensor.dtype in HALF_DTYPES else 0  # the float32 copy
    need = working_set(shape, rank) + extra
    if need <= _SURELY_FITS:  # skip reading the device's memory size
        return
    check_memory(
        need,
        working_dtype(tensor.dtype),
        tensor.device,
        fn,
        f"a rank-{rank} CP fit of a {tuple(tensor.shape)} tensor",
    )


def _fit(
    tensor: torch.Tensor,
    options: CPOptions,
    *,
    known: tuple[float, float | None] | None = None,
) -> DecompositionResult[CPTensor]:
    """Scale and upcast the data, run CP-ALS, return the model in the input's scale and dtype
    (``known``: :func:`finite_fit_scale` of the tensor when already computed; only without a
    mask)."""
    dtype = tensor.dtype
    x = upcast(tensor).contiguous()  # one copy at most (the sweeps read free reshapes of it)
    observed = x if options.mask is None else torch.where(options.mask, x, torch.zeros_like(x))
    if known is None or options.mask is not None:
        scale, norm_x2 = fit_scale(observed), None
    else:
        scale, norm_x2 = known
    # (a sum of squares is known only for a contiguous float32/64 tensor: then x is the tensor)
    norm_x2 = norm_x2 if x is tensor else None
    if scale != 1.0:
        x = x / scale
        observed = x if options.mask is None else observed / scale
    init = options.init
    if isinstance(init, CPTensor) and (scale != 1.0 or init.dtype != x.dtype):
        init_w = upcast(init.weights.detach()) / scale
        init = CPTensor(init_w, tuple(upcast(f.detach()) for f in init.factors))
    if init is not options.init:
        options = dataclasses.replace(options, init=init)
    run = _cp_als(x, options, scale=scale, dtype=dtype, norm_x2=norm_x2, observed=observed)
    model = output_model(run.state, scale, dtype)
    errors, floors = list(run.errors), list(run.floors)
    if dtype != x.dtype:  # the rounding to half precision is part of the returned model's error
        rounded = CPState.start(upcast(model.weights) / scale, [upcast(f) for f in model.factors])
        errors[-1], floors[-1] = _error(x, rounded, None, run.norm_x2, options.mask, exact=True)
    return DecompositionResult(
        model=model,
        errors=tuple(errors),
        iterations=len(errors),
        converged=run.converged,
        time_s=run.time_s,
        init_time_s=run.init_time_s,
        extras={"error_floors": tuple(floors), "degeneracy": _degeneracy(model, run.state)},
    )


def _degeneracy(model: CPTensor, state: CPState) -> CPDegeneracy:
    """:func:`cp_degeneracy` of the returned model, from the fit's Grams when the model holds the
    fit's own float64 factors (no pass over the factors), else from the factors."""
    same = all(a is b for a, b in zip(model.factors, state.factors))
    if same and model.dtype == torch.float64:
        return degeneracy_from_grams(model.weights, state.grams)
    return cp_degeneracy(model)


def output_model(state: CPState, scale: float, dtype: torch.dtype) -> CPTensor:
    """The iterate as a :class:`CPTensor` in ``dtype`` with the data's ``scale`` restored.

    Weights that ``dtype`` cannot hold (overflow, or underflow of a non-zero weight) are spread
    evenly over the factor columns (``|w_r|^(1/N)`` into each), leaving the weights' signs.
    """
    wide = torch.complex128 if state.weights.is_complex() else torch.float64
    info = torch.finfo(dtype)
    if scale == 1.0 and state.weights.dtype == dtype:  # the common case, checked on the host
        sizes = [abs(w) for w in state.weights.tolist()]
        if all(w <= info.max and (w >= info.tiny or w == 0) for w in sizes):
            return CPTensor(state.weights.clone(), tuple(state.factors))
    weights = state.weights.to(wide) * scale
    size = weights.abs()
    if bool(((size <= info.max) & ((size >= info.tiny) | (size == 0))).all()):
        return CPTensor(weights.to(dtype), tuple(f.to(dtype) for f in state.factors))
    n = len(state.factors)
    per_mode = state.weights.to(wide).abs() ** (1.0 / n) * scale ** (1.0 / n)
    factors = tuple((f.to(wide) * per_mode).to(dtype) for f in state.factors)
    if not all(bool(torch.isfinite(f).all()) for f in factors):
        raise ValueError(
            f"cp: the fitted model cannot be represented in {dtype} (its components exceed the "
            "dtype's range); convert the tensor to a wider dtype first."
        )
    return CPTensor(torch.sgn(state.weights).to(dtype), factors)


@dataclass(frozen=True)
class _Run:
    """What one CP-ALS run produced (errors relative, state in the scaled data's units)."""

    state: CPState
    errors: tuple[float, ...]
    floors: tuple[float, ...]
    converged: bool
    norm_x2: float
    time_s: float
    init_time_s: float


def _cp_als(
    x: torch.Tensor,
    opts: CPOptions,
    *,
    scale: float,
    dtype: torch.dtype,
    norm_x2: float | None = None,
    observed: torch.Tensor | None = None,
) -> _Run:
    """CP-ALS on ``x`` (already scaled and upcast; ``norm_x2``: its sum of squares when already
    known; ``observed``: ``x`` with the unobserved entries zeroed, when already formed);
    callbacks see models in ``dtype`` and the original scale."""
    clock = Stopwatch()
    mask = opts.mask
    if observed is None:
        observed = x if mask is None else torch.where(mask, x, torch.zeros_like(x))
    state = CPState.start(*init_factors(observed, opts.rank, opts.init, opts.generator))
    small = SmallSweep(x, opts.rank) if _small_path(x) else None
    kernel = opts.kernel if small is None else "default"
    if kernel == "fused":  # compile (first fit on a machine) or load it now, not in sweep 1
        fused_mttkrp_status()
    init_time = clock.elapsed
    if norm_x2 is None:
        norm_x2 = _sum_squares(observed)
    # The error estimate in force: the Gram formula until it cannot resolve what is asked of it,
    # then the exact residual (always the exact residual on the observed entries with a mask).
    exact = mask is not None
    errors: list[float] = []
    floors: list[float] = []
    comparable_from = 0  # errors from this index on come from the estimate in force
    search = _LineSearch() if opts.linesearch else None
    converged = False
    for it in range(1, opts.max_iter + 1):
        if it <= opts.orthogonalize_iters:
            _orthogonalize(state, opts.fixed, opts.rank)
        # EM: missing entries imputed from the current model.
        work = x if mask is None else _impute(x, mask, state, small)
        if search is not None:
            search.remember(state)
        if small is None:
            mttkrp = als_sweep(work, state, l2=opts.l2, fixed=opts.fixed, kernel=kernel)
        else:
            if mask is not None:
                small.load(work)
            mttkrp = small.sweep(state, l2=opts.l2, fixed=opts.fixed)
        err, floor = _error(work, state, mttkrp, norm_x2, mask, exact=exact, small=small)
        if not exact and _gram_unresolved(err, floor, errors, floors, opts.tol):
            exact, comparable_from = True, len(errors)
            err, floor = _error(x, state, mttkrp, norm_x2, mask, exact=True, small=small)
        if search is not None:
            err, floor = search.try_step(
                work, state, it, (err, floor), norm_x2, mask, exact, small=small, kernel=kernel
            )
        # One rule: the change is within tol, or within the two estimates' rounding floors.
        if opts.tol > 0 and len(errors) > comparable_from:
            converged = abs(errors[-1] - err) <= max(opts.tol, floors[-1] + floor)
        if not exact and (converged or it == opts.max_iter):  # report the true final error
            err, floor = _final_error(x, state, mttkrp, norm_x2, (err, floor), small=small)
        errors.append(err)
        floors.append(floor)
        if opts.callback is not None:
            stop = bool(opts.callback(IterationState(it, err, output_model(state, scale, dtype))))
            if stop and not exact and not (converged or it == opts.max_iter):
                errors[-1], floors[-1] = _error(
                    x, state, None, norm_x2, mask, exact=True, small=small
                )
            if stop:
                break
        if converged:
            break
    return _Run(state, tuple(errors), tuple(floors), converged, norm_x2, clock.elapsed, init_time)


def _final_error(
    x: torch.Tensor,
    state: CPState,
    mttkrp: torch.Tensor | None,
    norm_x2: float,
    gram: tuple[float, float],
    *,
    small: SmallSweep | None,
) -> tuple[float, float]:
    """The reported error of the returned model (no mask): the Gram formula's value ``gram``
    when it provably equals the exact residual's to :data:`_IDENTITY_TOLERANCE` (with its bound
    as the floor), else the exact residual (one more read of the tensor).

    Each of ``||X||^2``, ``<X, M>`` (the last MTTKRP) and ``||M||^2`` is a sum of at most
    ``n = |X| + R sum(I_m)`` products along any accumulation path, so (Higham and Mary, "A new
    approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019) each
    is off by at most ``lambda sqrt(n) u`` times the sum of its terms' magnitudes, with
    probability ``1 - 2 n exp(-lambda^2 / 2)`` or more (``u = eps / 2``; ``lambda = 9``: above
    ``1 - 1e-10`` up to ``|X| = 2^23``); the magnitudes sum to at most ``(||X|| + m)^2`` with
    ``m = sum_r |w_r| prod_m ||a_mr||``. The relative ``e^2`` is then off by at most
    ``d = (lambda sqrt(n) + 3) u (1 + m / ||X||)^2`` (3: the final additions), and ``e`` by at
    most ``d / e``. That is at most ``1e-10`` for a float64 fit whose error is large enough
    (about ``e >= 0.1`` at ``|X| = 200^3``, ``e >= 0.01`` at ``10^3``); never in float32 (``eps``
    too large) or for complex data (not analysed).
    """
    err = gram[0]
    if mttkrp is None or x.is_complex() or norm_x2 <= 0 or err <= 0:
        return _error(x, state, mttkrp, norm_x2, None, exact=True, small=small)
    n = x.numel() + state.weights.numel() * sum(x.shape)
    # (on the host: a few reads cost less than the operations on tiny tensors)
    columns = [math.prod(c) for c in zip(*(g.diagonal().tolist() for g in state.grams))]
    weights = state.weights.tolist()
    size = sum(abs(w) * math.sqrt(max(c, 0.0)) for w, c in zip(weights, columns))
    size /= math.sqrt(norm_x2)
    drift = (_LAMBDA * math.sqrt(n) + 3.0) * torch.finfo(x.dtype).eps / 2 * (1.0 + size) ** 2
    bound = max(gram[1], drift / err)
    if bound <= _IDENTITY_TOLERANCE:
        return err, bound
    return _error(x, state, mttkrp, norm_x2, None, exact=True, small=small)


def _small_path(x: torch.Tensor) -> bool:
    """Whether the fit of ``x`` runs the small-tensor sweep (:data:`_PATH`)."""
    if _PATH != "auto":
        return _PATH == "small"
    # CPU only: on an accelerator the path is untested (and its host reads cost more there).
    return x.device.type == "cpu" and x.numel() <= SMALL_ENTRIES


def _sum_squares(x: torch.Tensor) -> float:
    """``sum |x|^2`` (one pass, no temporary for real ``x``)."""
    flat = x.reshape(-1)
    return float(torch.vdot(flat, flat).real)


def _gram_unresolved(
    err: float, floor: float, errors: list[float], floors: list[float], tol: float
) -> bool:
    """True when the Gram formula cannot do its job any more: it no longer knows the error to
    1/8, or (``tol > 0``) the change since the last sweep is within the two estimates' rounding
    floors and those are coarser than ``tol``."""
    if floor > err / 8:
        return True
    if tol > 0 and errors:
        noise = floor + floors[-1]
        return noise > tol and abs(errors[-1] - err) <= noise
    return False


def _error(
    x: torch.Tensor,
    state: CPState,
    mttkrp: torch.Tensor | None,
    norm_x2: float,
    mask: torch.Tensor | None,
    *,
    exact: bool,
    small: SmallSweep | None = None,
    kernel: MTTKRPKernel = "default",
) -> tuple[float, float]:
    """The relative error of ``state`` and its rounding floor: exact residual (on the observed
    entries with a mask), or the Gram formula from the last mode's ``mttkrp`` of ``x`` (with
    ``small``, ``x`` must be the data it holds; computed by ``kernel`` when not given)."""
    if mask is not None:
        if small is None:
            resid = torch.where(mask, x - _dense(state), 0.0)
        else:  # where(mask, x, M) - M: the next sweep's imputed data serve the residual too
            resid = small.impute(x, mask, state) - small.dense(state)
        err = float(torch.linalg.vector_norm(resid)) / max(math.sqrt(norm_x2), 1e-300)
        eps = torch.finfo(x.dtype).eps
        weight_sum = sum(abs(w) for w in state.weights.tolist())
        return err, 4.0 * eps * (1.0 + weight_sum / max(math.sqrt(norm_x2), 1e-300))
    if exact:
        return (
            exact_error(x, state, norm_x2)
            if small is None
            else small.exact_error(x, state, norm_x2)
        )
    if mttkrp is not None and small is not None:
        return small.gram_error(norm_x2, mttkrp, state)
    if mttkrp is None and small is not None:
        mttkrp = small.mttkrp(x.ndim - 1, state.factors, fresh=True)
    elif mttkrp is None:
        mttkrp = mttkrp_kernel(x, state.factors, x.ndim - 1, kernel)
    return gram_error(norm_x2, mttkrp, state)


def _impute(
    x: torch.Tensor, mask: torch.Tensor, state: CPState, small: SmallSweep | None
) -> torch.Tensor:
    """EM: ``x`` where observed, the current model elsewhere."""
    if small is not None:
        return small.impute(x, mask, state)
    return torch.where(mask, x, _dense(state))


def _dense(state: CPState, small: SmallSweep | None = None) -> torch.Tensor:
    if small is not None:
        return small.dense(state)
    return CPTensor(state.weights, tuple(state.factors)).to_dense()


def _orthogonalize(state: CPState, fixed: frozenset[int], rank: int) -> None:
    for m, factor in enumerate(state.factors):
        if m not in fixed and factor.shape[0] >= rank:
            state.factors[m] = torch.linalg.qr(factor).Q
            state.grams[m] = gram(state.factors[m])


@dataclass
class _LineSearch:
    """Bro's extrapolation ``F_{k-2} + k^{1/p} (F_k - F_{k-2})`` (weights in the last factor)."""

    older: list[torch.Tensor] | None = None  # the iterate at the start of the previous sweep
    newer: list[torch.Tensor] | None = None  # the iterate at the start of this sweep
    power: float = 2.0
    failures: int = 0

    def remember(self, state: CPState) -> None:
        self.older = self.newer
        self.newer = [*(f.clone() for f in state.factors[:-1]), state.factors[-1] * state.weights]

    def try_step(
        self,
        x: torch.Tensor,
        state: CPState,
        it: int,
        current: tuple[float, float],
        norm_x2: float,
        mask: torch.Tensor | None,
        exact: bool,
        *,
        small: SmallSweep | None = None,
        kernel: MTTKRPKernel = "default",
    ) -> tuple[float, float]:
        """Replace ``state`` by the extrapolated iterate when its error is lower; return the
        error (and floor) of the state kept."""
        if self.older is None or it <= 2:
            return current
        jump = it ** (1.0 / self.power)
        now = [*state.factors[:-1], state.factors[-1] * state.weights]
        cand = [p + jump * (f - p) for p, f in zip(self.older, now)]
        norms = torch.linalg.vector_norm(cand[-1], dim=0)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms)).to(cand[-1].dtype)
        trial = CPState.start(norms, [*cand[:-1], cand[-1] / norms])
        found = _error(x, trial, None, norm_x2, mask, exact=exact, small=small, kernel=kernel)
        if found[0] < current[0]:
            state.set_factors(trial.weights, trial.factors)
            return found
        self.failures += 1
        if self.failures == 4:
            self.power, self.failures = self.power + 1.0, 0
        return current
