"""Tucker decompositions: truncated and sequentially truncated HOSVD, HOOI, partial, non-negative.

A Tucker tensor ``[[G; U_0, ..., U_{N-1}]]`` has core ``G`` of shape ``(R_0, ..., R_{N-1})`` and
factors ``U_n`` of shape ``(I_n, R_n)``; here the factors are orthonormal (except for
:func:`non_negative_tucker`), so ``G = X x_0 U_0^H ... x_{N-1} U_{N-1}^H`` and
``||X - [[G; U]]||^2 = ||X||^2 - ||G||^2``: every error below is computed from norms, never by
reconstructing the dense tensor (except, once, where that formula runs out of digits).

Every entry point runs with autocast off, computes half-precision data in float32, divides the
data by an exact power of two (so data of magnitude ``1e-30`` or ``1e30`` in float32 fit as
accurately as data of magnitude 1) and returns the model in the input's dtype with its true error.

References:
    L. De Lathauwer, B. De Moor, J. Vandewalle, "A multilinear singular value decomposition",
    SIAM J. Matrix Anal. Appl. 21(4), 2000 (HOSVD); "On the best rank-1 and rank-(R1,...,RN)
    approximation of higher-order tensors", same journal, 21(4), 2000 (HOOI).
    N. Vannieuwenhoven, R. Vandebril, K. Meerbergen, "A new truncation strategy for the higher-order
    singular value decomposition", SIAM J. Sci. Comput. 34(2), 2012 (ST-HOSVD).
    T. G. Kolda, B. W. Bader, "Tensor decompositions and applications", SIAM Review 51(3), 2009.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import check_modes
from .._numerics import no_autocast, upcast
from ..algebra.internal import fold as _fold
from ..algebra.internal import randomized_svd as _randomized_svd
from ..algebra.internal import unfold as _unfold
from ..tensors import TuckerTensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._truncate import auto_method, leading_subspace, truncate
from ._tucker_common import (
    SVDMethod,
    Work,
    as_int,
    check_callback,
    check_core_bound,
    check_data,
    check_generator,
    check_iter_options,
    check_literal,
    check_masked_data,
    check_rel_tol,
    check_tucker_rank,
    contract_modes,
    converged,
    finish,
    is_int,
    masked_rel_error,
    prepare,
    randn,
    refine_error,
    rel_error,
    renamed,
    scale_tucker,
    sq_norm,
    sweep,
    ttm,
)
from ._tucker_nn import non_negative_tucker

__all__ = ["HOSVDMethod", "TuckerInit", "hosvd", "non_negative_tucker", "partial_tucker", "tucker"]

HOSVDMethod = SVDMethod
TuckerInit = Literal["hosvd", "random"]


@no_autocast
def hosvd(
    tensor: torch.Tensor,
    rank: int | Sequence[int] | None = None,
    *,
    eps: float | None = None,
    sequential: bool = True,
    svd: SVDMethod = "auto",
    generator: torch.Generator | None = None,
    error: float | None = None,
) -> DecompositionResult[TuckerTensor]:
    """Truncated HOSVD or sequentially truncated HOSVD (ST-HOSVD), with ranks or an error target.

    Give exactly one of ``rank`` and ``eps``:

    * ``rank`` (an int for every mode, or one int per mode, each at most the mode size): mode
      ``n``'s factor is the leading ``R_n`` left singular vectors of the mode-``n`` unfolding.
    * ``eps`` in (0, 1): ranks are chosen per mode so that the discarded singular values'
      energies satisfy ``sum_n discarded_n^2 <= eps^2 ||X||^2``, which guarantees
      ``||X - X_hat|| <= eps ||X||`` (for both variants; Vannieuwenhoven et al. 2012, Thm 5.1 and
      6.5). Each mode may discard ``eps^2 ||X||^2 / N``; with ``sequential=True`` the budget a
      mode leaves unused is passed on to the next modes.

    With ``sequential=True`` (default, ST-HOSVD) mode ``n`` is processed on the tensor already
    projected onto the factors of modes ``< n``, which shrinks the work at every step; with
    ``sequential=False`` every factor comes from the original tensor (T-HOSVD, De Lathauwer et al.
    2000) and the core is ``X x_n U_n^H``.

    Args:
        tensor: real or complex floating tensor (or numpy array), at least 1-D, finite. float16
            and bfloat16 are computed in float32; the model comes back in the input dtype.
        rank: target multilinear rank (exclusive with ``eps``); numpy integers are accepted.
        eps: target relative error (exclusive with ``rank``).
        sequential: ST-HOSVD (True) or T-HOSVD (False).
        svd: how each mode's singular vectors are computed: ``"full"`` thin SVD of the unfolding;
            ``"gram"`` eigen-decomposition of the small ``I_n x I_n`` Gram (one GEMM, float64 when
            an error target is given); ``"randomized"`` range finder with oversampling and power
            iterations (needs ``rank``); ``"auto"``: Gram for wide unfoldings unless
            ``eps < 1e-6``, thin SVD otherwise.
        generator: random source for ``svd="randomized"``.
        error: deprecated name of ``eps`` (warns).

    Returns:
        ``DecompositionResult`` with a ``TuckerTensor`` (orthonormal factors) and one error, the
        exact sum of discarded energies (ST-HOSVD) or ``sqrt(||X||^2 - ||G||^2) / ||X||``
        (T-HOSVD; measured from the residual where that formula runs out of digits). For half
        precision, the error of the returned (rounded) model.

    Raises:
        TypeError: for a non-tensor, an integer or bool dtype, bad option types, or both ``eps``
            and its deprecated name ``error``.
        ValueError: for NaN/Inf, empty dimensions, ranks outside ``[1, I_n]`` or above the
            product of the other ranks, neither or both of ``rank`` and ``eps``, or a model that
            overflows the input dtype.

    Differentiable (autocast off): with a ``tensor`` that requires grad, every truncation is a
    thin SVD whose backward stays finite on degenerate spectra (a custom backward that drops
    the ill-conditioned terms); rank selection from ``eps`` is not differentiable.

    Example:
        >>> import torch
        >>> from factorch.decomp import hosvd
        >>> x = torch.randn(6, 7, 8, dtype=torch.float64)
        >>> res = hosvd(x, (6, 7, 8))
        >>> res.model.rank, res.error < 1e-6
        ((6, 7, 8), True)
    """
    fn = "hosvd"
    sw = Stopwatch()
    eps = renamed(eps, error, fn, "eps", "error")
    tensor = check_data(tensor, fn)
    check_literal(svd, get_args(SVDMethod), fn, "svd")
    check_generator(generator, fn)
    if not isinstance(sequential, bool):
        raise TypeError(f"{fn}: sequential must be a bool; got {type(sequential).__name__}.")
    if (rank is None) == (eps is None):
        got = "both" if rank is not None else "neither"
        raise ValueError(
            f"{fn}: give exactly one of rank (target multilinear rank) and eps (target relative "
            f"error); got {got}."
        )
    ranks: tuple[int, ...] | None = None
    if rank is not None:
        ranks = check_tucker_rank(rank, tensor.shape, range(tensor.ndim), fn)
        check_core_bound(dict(enumerate(ranks)), tensor.shape, fn)
    else:
        eps = check_rel_tol(eps, fn, "eps")
        if svd == "randomized":
            raise ValueError(
                f"{fn}: svd='randomized' needs rank (a range finder needs a target size); use "
                "svd='auto', 'full' or 'gram' with eps=."
            )
    work = prepare(tensor, detach=False)
    model, err = _hosvd(work, _HOSVDPlan(ranks, eps, sequential, svd, generator))
    model, errors = finish(work, model, scale_tucker, (err,), fn)
    return DecompositionResult(model, errors, 1, True, sw.elapsed)


@dataclass(frozen=True)
class _HOSVDPlan:
    ranks: tuple[int, ...] | None
    eps: float | None
    sequential: bool
    svd: str
    generator: torch.Generator | None


def _hosvd(work: Work, plan: _HOSVDPlan) -> tuple[TuckerTensor, float]:
    """(ST-)HOSVD of the scaled working tensor; returns the model and its relative error."""
    tensor = work.data
    shape, n_modes = tuple(tensor.shape), tensor.ndim
    norm_x2 = sq_norm(tensor)
    total_budget = None if plan.eps is None else plan.eps**2 * norm_x2
    factors: list[torch.Tensor] = []
    used = 0.0
    y = tensor
    for n in range(n_modes):
        src = y if plan.sequential else tensor
        a = _unfold(src, n)
        budget = None
        if total_budget is not None:
            share = n_modes - n if plan.sequential else n_modes
            budget = (total_budget - (used if plan.sequential else 0.0)) / share
        method = plan.svd
        if method == "auto":
            per_mode = None if plan.eps is None else plan.eps / math.sqrt(n_modes)
            method = auto_method(a.shape[0], a.shape[1], per_mode)
        max_rank = shape[n] if plan.ranks is None else plan.ranks[n]
        tr = truncate(a, max_rank=max_rank, budget=budget, method=method, generator=plan.generator)
        factors.append(tr.u)
        used += tr.discarded
        if plan.sequential:
            new_shape = list(src.shape)
            new_shape[n] = tr.u.shape[1]
            y = _fold(tr.b, n, new_shape)
    if plan.sequential:
        model = TuckerTensor(y, tuple(factors))
        return model, math.sqrt(min(used / norm_x2, 1.0)) if norm_x2 > 0 else 0.0
    model = TuckerTensor(contract_modes(tensor, factors, range(n_modes)), tuple(factors))
    return model, refine_error(tensor, model, rel_error(norm_x2, sq_norm(model.core)))


@no_autocast
def tucker(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    init: TuckerInit | TuckerTensor = "hosvd",
    max_iter: int = 100,
    tol: float = 1e-8,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[TuckerTensor]:
    """Tucker decomposition by higher-order orthogonal iteration (HOOI), with missing values.

    Alternates over modes: with the other factors fixed, ``U_n`` is the leading ``R_n`` left
    singular subspace of ``Y_(n)``, ``Y = X x_{m != n} U_m^H``, which maximises ``||G||`` (De
    Lathauwer, De Moor, Vandewalle 2000; Kolda & Bader 2009, Fig. 4.4). No SVD of a wide unfolding
    of ``X`` is ever taken: ``Y_(n)`` is ``I_n x prod_{m != n} R_m`` and its subspace comes from
    the eigenvectors of the small Gram ``Y_(n) Y_(n)^H`` (or a thin QR when ``Y_(n)`` is tall, or a
    randomized range finder when both sides exceed 1024 and ``R_n`` is under an eighth of them).
    The partial contractions are shared between modes by a binary dimension tree, so one
    iteration reads ``X`` about twice whatever ``N``. The error per iteration is free:
    ``||X - X_hat||^2 = ||X||^2 - ||G||^2``; the final one is measured from the residual where
    that formula has run out of digits (below ``100 sqrt(eps)`` of the working dtype).

    **Missing values** (``mask=``): expectation--maximisation imputation (as TensorLy's
    ``tucker(mask=)`` and Kroonenberg's missing-data Tucker): the unobserved entries start at
    the mean of the observed ones, and before every sweep they are replaced by the current
    model's values, so each sweep is a HOOI sweep of the completed tensor. The completed-data
    objective majorises the observed-data one (they are equal at the current model), so the
    error on the observed entries never increases; it is computed exactly from the residual
    (one reconstruction per iteration, which the imputation needs anyway).

    Args:
        tensor: real or complex floating tensor (or numpy array), at least 1-D, finite (on the
            observed entries when ``mask`` is given). float16 and bfloat16 are computed in
            float32 (model returned in the input dtype).
        rank: multilinear rank, an int or one int per mode (numpy integers accepted);
            ``R_n <= I_n`` and ``R_n <= prod_{m != n} R_m``.
        init: ``"hosvd"`` (ST-HOSVD, default), ``"random"`` (orthonormalised Gaussian factors) or
            a ``TuckerTensor`` of the same shape, rank and dtype (its factors are orthonormalised).
        max_iter: maximum number of sweeps.
        tol: stop when the relative error changes by less than ``tol`` between sweeps (raised to
            the resolution of the norm formula in float32; 0 runs all ``max_iter`` sweeps).
        mask: bool tensor of the data's shape (numpy bool accepted), True where observed; the
            unobserved entries may hold NaN. ``None``: every entry is observed.
        generator: random source for ``init="random"`` and randomized range finders.
        callback: called after each sweep with an :class:`IterationState`; ``True`` stops.

    Returns:
        ``DecompositionResult`` with a ``TuckerTensor`` with orthonormal factors and the relative
        error after each sweep (the last one the true error of the returned model; with a mask,
        ``||P(X - X_hat)|| / ||P(X)||`` over the observed entries).

    Raises:
        TypeError: for a non-tensor, integer dtype or bad option types.
        ValueError: for NaN/Inf (among the observed entries), empty dimensions, ranks outside
            ``[1, I_n]`` or above the product of the other ranks, an ``init`` of another shape,
            rank or dtype, a mask of another shape or device or observing nothing, or a model
            that overflows the input dtype.

    Not differentiable: runs under ``torch.no_grad`` on the detached data.

    Example:
        >>> import torch
        >>> from factorch.decomp import tucker
        >>> x = torch.randn(6, 7, 8, dtype=torch.float64)
        >>> tucker(x, (2, 3, 4)).model.rank
        (2, 3, 4)
        >>> observed = torch.rand(6, 7, 8, generator=torch.Generator().manual_seed(0)) > 0.2
        >>> tucker(torch.where(observed, x, torch.nan), (2, 3, 4), mask=observed).model.rank
        (2, 3, 4)
    """
    return _hooi(tensor, rank, None, init, max_iter, tol, mask, generator, callback, "tucker")


@no_autocast
def partial_tucker(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    modes: Sequence[int],
    init: TuckerInit | TuckerTensor = "hosvd",
    max_iter: int = 100,
    tol: float = 1e-8,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[TuckerTensor]:
    """HOOI on a subset of modes; the other modes keep their full size.

    ``rank`` gives one rank per entry of ``modes`` (or one int for all of them). The result is a
    ``TuckerTensor`` whose factors for modes outside ``modes`` are identity matrices, so the core
    has the full size there (``G = X x_{n in modes} U_n^H``). Options, guards and errors as in
    :func:`tucker`; a ``TuckerTensor`` init supplies the factors of ``modes``.

    Args:
        tensor: real or complex floating tensor (or numpy array), at least 1-D, finite.
        rank: one int for every mode in ``modes``, or one int per entry of ``modes``.
        modes: the modes to decompose (distinct, negative counts from the end; numpy integers
            accepted).
        init, max_iter, tol, mask, generator, callback: as in :func:`tucker` (missing values
            by EM imputation).

    Returns:
        ``DecompositionResult`` with a ``TuckerTensor`` (identity factors outside ``modes``) and
        the relative error after each sweep.

    Raises:
        TypeError: ``modes`` not a non-empty sequence of ints, and as :func:`tucker`.
        IndexError: a mode out of range.
        ValueError: repeated modes, and as :func:`tucker`.

    Not differentiable (runs under ``torch.no_grad`` on the detached data).

    Example:
        >>> import torch
        >>> from factorch.decomp import partial_tucker
        >>> x = torch.randn(6, 7, 8, dtype=torch.float64)
        >>> partial_tucker(x, 3, modes=(0, 2)).model.rank
        (3, 7, 3)
    """
    if isinstance(modes, int) or not isinstance(modes, Sequence) or len(modes) == 0:
        raise TypeError(
            f"partial_tucker: modes must be a non-empty sequence of ints; got {modes!r}."
        )
    return _hooi(
        tensor, rank, modes, init, max_iter, tol, mask, generator, callback, "partial_tucker"
    )


def _orthonormal(u: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(u).Q


def _check_init_tucker(
    init: TuckerTensor, tensor: torch.Tensor, ranks: dict[int, int], fn: str
) -> None:
    if tuple(init.shape) != tuple(tensor.shape):
        raise ValueError(
            f"{fn}: init has shape {tuple(init.shape)} but the tensor has shape "
            f"{tuple(tensor.shape)}; they must agree."
        )
    for n, r in ranks.items():
        if init.factors[n].shape[1] != r:
            raise ValueError(
                f"{fn}: init has rank {init.factors[n].shape[1]} along mode {n} but rank {r} was "
                "asked; pass an init of the requested rank."
            )
    if init.dtype != tensor.dtype or init.device != tensor.device:
        raise ValueError(
            f"{fn}: init is {init.dtype} on {init.device} but the tensor is {tensor.dtype} on "
            f"{tensor.device}; convert it with init.to(...)."
        )


def _sthosvd_factors(
    tensor: torch.Tensor, ranks: dict[int, int], modes: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Factors of a rank-truncated ST-HOSVD over ``modes`` (Gram route for wide unfoldings)."""
    out: dict[int, torch.Tensor] = {}
    y = tensor
    for n in modes:
        a = _unfold(y, n)
        tr = truncate(
            a, max_rank=ranks[n], budget=None, method=auto_method(a.shape[0], a.shape[1], None)
        )
        out[n] = tr.u
        new_shape = list(y.shape)
        new_shape[n] = tr.u.shape[1]
        y = _fold(tr.b, n, new_shape)
    return out


@dataclass(frozen=True)
class _HOOIArgs:
    """Validated HOOI arguments."""

    tensor: torch.Tensor
    mask: torch.Tensor | None
    active: list[int]
    ranks: dict[int, int]
    init: str | TuckerTensor
    max_iter: int
    tol: float
    generator: torch.Generator | None
    callback: Callback | None


def _check_hooi_args(
    tensor: object,
    rank: object,
    modes: Sequence[int] | None,
    init: object,
    max_iter: object,
    tol: object,
    mask: object,
    generator: object,
    callback: object,
    fn: str,
) -> _HOOIArgs:
    x, m = check_masked_data(tensor, mask, fn)
    n_modes, shape = x.ndim, tuple(x.shape)
    if modes is None:
        active = list(range(n_modes))
    else:
        if not all(is_int(m) for m in modes):
            raise TypeError(f"{fn}: modes must be a non-empty sequence of ints; got {modes!r}.")
        active = list(check_modes([as_int(m, fn, "modes") for m in modes], n_modes, fn))
    ranks = dict(zip(active, check_tucker_rank(rank, shape, active, fn)))
    check_core_bound(ranks, shape, fn)
    iters, tolerance = check_iter_options(max_iter, tol, fn)
    gen = check_generator(generator, fn)
    check_callback(callback, fn)
    if isinstance(init, TuckerTensor):
        _check_init_tucker(init, x, ranks, fn)
    elif not isinstance(init, str):
        raise TypeError(
            f"{fn}: init must be one of {get_args(TuckerInit)} or a TuckerTensor; got "
            f"{type(init).__name__}."
        )
    else:
        check_literal(init, get_args(TuckerInit), fn, "init")
    return _HOOIArgs(x, m, active, ranks, init, iters, tolerance, gen, callback)  # type: ignore[arg-type]


def _initial_factors(args: _HOOIArgs, data: torch.Tensor) -> list[torch.Tensor | None]:
    shape, dtype, device = tuple(data.shape), data.dtype, data.device
    factors: list[torch.Tensor | None] = [None] * data.ndim
    if isinstance(args.init, TuckerTensor):
        for n in args.active:
            factors[n] = _orthonormal(upcast(args.init.factors[n].detach()))
    elif args.init == "random":
        for n in args.active:
            draw = randn((shape[n], args.ranks[n]), dtype, device, args.generator)
            factors[n] = _orthonormal(draw)
    else:
        for n, u in _sthosvd_factors(data, args.ranks, args.active).items():
            factors[n] = u
    return factors


def _mean_filled(data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The data with every unobserved entry set to the mean of the observed ones."""
    mean = data[mask].mean()
    return torch.where(mask, data, mean)


@torch.no_grad()
def _hooi(
    tensor: object,
    rank: object,
    modes: Sequence[int] | None,
    init: object,
    max_iter: object,
    tol: object,
    mask: object,
    generator: object,
    callback: object,
    fn: str,
) -> DecompositionResult[TuckerTensor]:
    sw = Stopwatch()
    args = _check_hooi_args(tensor, rank, modes, init, max_iter, tol, mask, generator, callback, fn)
    work = prepare(args.tensor, detach=True)
    data, observed = work.data, args.mask
    target = data if observed is None else _mean_filled(data, observed)
    factors = _initial_factors(args, target)
    init_time = sw.elapsed
    shape = tuple(data.shape)

    def update(n: int, t: torch.Tensor) -> torch.Tensor:
        y = _unfold(t, n)
        small = min(y.shape)
        if small >= 1024 and args.ranks[n] <= small // 8:
            return _randomized_svd(y, args.ranks[n], 10, 2, args.generator)[0]
        return leading_subspace(y, args.ranks[n])

    def as_tucker(core: torch.Tensor) -> TuckerTensor:
        full = [
            f if f is not None else torch.eye(shape[n], dtype=data.dtype, device=data.device)
            for n, f in enumerate(factors)
        ]
        return TuckerTensor(core, tuple(full))

    def state(it: int, err: float, core: torch.Tensor) -> IterationState:
        shown = finish(work, as_tucker(core), scale_tucker, (), fn, observed)[0]
        return IterationState(it, err, shown)

    norm_x2 = sq_norm(data)
    errors: list[float] = []
    done = False
    core = data
    if observed is not None:  # EM: the model that imputes the first sweep's missing entries
        approx = as_tucker(contract_modes(target, factors, args.active)).to_dense()
    for it in range(1, args.max_iter + 1):
        if observed is not None:
            target = torch.where(observed, data, approx)
        leaf = sweep(target, args.active, factors, update)
        last = args.active[-1]
        core = ttm(leaf, factors[last].mH, last)  # type: ignore[union-attr]
        if observed is None:
            errors.append(rel_error(norm_x2, sq_norm(core)))
            done = len(errors) > 1 and converged(errors[-2], errors[-1], args.tol, data.dtype)
        else:
            approx = as_tucker(core).to_dense()
            errors.append(masked_rel_error(data, approx, observed))
            done = len(errors) > 1 and converged(
                errors[-2], errors[-1], args.tol, data.dtype, exact=True
            )
        if args.callback is not None and args.callback(state(it, errors[-1], core)):
            break
        if done:
            break
    model = as_tucker(core)
    if observed is None:
        errors[-1] = refine_error(data, model, errors[-1])
    model, errs = finish(work, model, scale_tucker, errors, fn, observed)
    return DecompositionResult(model, errs, len(errs), done, sw.elapsed, init_time)
