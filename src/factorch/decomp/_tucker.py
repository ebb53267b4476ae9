"""Tucker decompositions: truncated and sequentially truncated HOSVD, HOOI, partial, non-negative.

A Tucker tensor ``[[G; U_0, ..., U_{N-1}]]`` has core ``G`` of shape ``(R_0, ..., R_{N-1})`` and
factors ``U_n`` of shape ``(I_n, R_n)``; here the factors are orthonormal (except for
:func:`non_negative_tucker`), so ``G = X x_0 U_0^H ... x_{N-1} U_{N-1}^H`` and
``||X - [[G; U]]||^2 = ||X||^2 - ||G||^2``: every error below is computed from norms, never by
reconstructing the dense tensor.

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
from typing import Literal, get_args

import torch

from .._checks import check_modes, check_tensor
from ..algebra.internal import fold as _fold
from ..algebra.internal import randomized_svd as _randomized_svd
from ..algebra.internal import unfold as _unfold
from ..tensors import TuckerTensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._tucker_common import (
    auto_method,
    check_callback,
    check_core_bound,
    check_generator,
    check_iter_options,
    check_linalg_dtype,
    check_literal,
    check_rel_tol,
    check_tucker_rank,
    contract_modes,
    converged,
    leading_subspace,
    randn,
    rel_error,
    sq_norm,
    sweep,
    truncate,
    ttm,
)
from ._tucker_nn import non_negative_tucker

__all__ = ["HOSVDMethod", "TuckerInit", "hosvd", "non_negative_tucker", "partial_tucker", "tucker"]

HOSVDMethod = Literal["auto", "full", "gram", "randomized"]
TuckerInit = Literal["hosvd", "random"]


def hosvd(
    tensor: torch.Tensor,
    rank: int | Sequence[int] | None = None,
    *,
    error: float | None = None,
    sequential: bool = True,
    svd: HOSVDMethod = "auto",
    generator: torch.Generator | None = None,
) -> DecompositionResult[TuckerTensor]:
    """Truncated HOSVD or sequentially truncated HOSVD (ST-HOSVD), with ranks or an error target.

    Give exactly one of ``rank`` and ``error``:

    * ``rank`` (an int for every mode, or one int per mode, each at most the mode size): mode
      ``n``'s factor is the leading ``R_n`` left singular vectors of the mode-``n`` unfolding.
    * ``error`` in (0, 1): ranks are chosen per mode so that the discarded singular values'
      energies satisfy ``sum_n discarded_n^2 <= error^2 ||X||^2``, which guarantees
      ``||X - X_hat|| <= error ||X||`` (for both variants; Vannieuwenhoven et al. 2012, Thm 5.1 and
      6.5). Each mode may discard ``error^2 ||X||^2 / N``; with ``sequential=True`` the budget a
      mode leaves unused is passed on to the next modes.

    With ``sequential=True`` (default, ST-HOSVD) mode ``n`` is processed on the tensor already
    projected onto the factors of modes ``< n``, which shrinks the work at every step; with
    ``sequential=False`` every factor comes from the original tensor (T-HOSVD, De Lathauwer et al.
    2000) and the core is ``X x_n U_n^H``.

    Args:
        tensor: real or complex floating tensor, at least 1-D, finite.
        rank: target multilinear rank (exclusive with ``error``).
        error: target relative error (exclusive with ``rank``).
        sequential: ST-HOSVD (True) or T-HOSVD (False).
        svd: how each mode's singular vectors are computed: ``"full"`` thin SVD of the unfolding;
            ``"gram"`` eigen-decomposition of the small ``I_n x I_n`` Gram (one GEMM, float64 when
            an error target is given); ``"randomized"`` range finder with oversampling and power
            iterations (needs ``rank``); ``"auto"``: Gram for wide unfoldings unless
            ``error < 1e-6``, thin SVD otherwise.
        generator: random source for ``svd="randomized"``.

    Returns:
        ``DecompositionResult`` with a ``TuckerTensor`` (orthonormal factors) and one error,
        ``sqrt(||X||^2 - ||G||^2) / ||X||`` (ST-HOSVD: the exact sum of discarded energies). Values
        below ``~sqrt(eps)`` of the dtype are at the resolution of this formula.

    Differentiable through ``torch.linalg.svd`` / ``eigh`` when the kept singular values are
    distinct (rank mode); rank selection from ``error`` is not.
    """
    fn = "hosvd"
    sw = Stopwatch()
    check_tensor(tensor, fn, min_ndim=1)
    check_linalg_dtype(tensor, fn)
    check_literal(svd, get_args(HOSVDMethod), fn, "svd")
    check_generator(generator, fn)
    if not isinstance(sequential, bool):
        raise TypeError(f"{fn}: sequential must be a bool; got {type(sequential).__name__}.")
    if (rank is None) == (error is None):
        got = "both" if rank is not None else "neither"
        raise ValueError(
            f"{fn}: give exactly one of rank (target multilinear rank) and error (target relative "
            f"error); got {got}."
        )
    shape, n_modes = tuple(tensor.shape), tensor.ndim
    ranks: tuple[int, ...] | None = None
    if rank is not None:
        ranks = check_tucker_rank(rank, shape, range(n_modes), fn)
        check_core_bound(dict(enumerate(ranks)), shape, fn)
    else:
        error = check_rel_tol(error, fn, "error")
        if svd == "randomized":
            raise ValueError(
                f"{fn}: svd='randomized' needs rank (a range finder needs a target size); use "
                "svd='auto', 'full' or 'gram' with error=."
            )
    norm_x2 = sq_norm(tensor)
    total_budget = None if error is None else error**2 * norm_x2
    factors: list[torch.Tensor] = []
    used = 0.0
    y = tensor
    for n in range(n_modes):
        src = y if sequential else tensor
        a = _unfold(src, n)
        budget = None
        if total_budget is not None:
            budget = (total_budget - used) / (n_modes - n) if sequential else total_budget / n_modes
        method = svd
        if svd == "auto":
            per_mode = None if error is None else error / math.sqrt(n_modes)
            method = auto_method(a.shape[0], a.shape[1], per_mode, tensor.dtype)
        max_rank = shape[n] if ranks is None else ranks[n]
        tr = truncate(a, max_rank=max_rank, budget=budget, method=method, generator=generator)
        factors.append(tr.u)
        used += tr.discarded
        if sequential:
            new_shape = list(src.shape)
            new_shape[n] = tr.u.shape[1]
            y = _fold(tr.b, n, new_shape)
    if sequential:
        core = y
        err = math.sqrt(min(used / norm_x2, 1.0)) if norm_x2 > 0 else 0.0
    else:
        core = contract_modes(tensor, factors, range(n_modes))
        err = rel_error(norm_x2, sq_norm(core))
    result = TuckerTensor(core, tuple(factors))
    return DecompositionResult(result, (err,), 1, True, sw.elapsed)


def tucker(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    init: TuckerInit | TuckerTensor = "hosvd",
    max_iter: int = 100,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[TuckerTensor]:
    """Tucker decomposition by higher-order orthogonal iteration (HOOI).

    Alternates over modes: with the other factors fixed, ``U_n`` is the leading ``R_n`` left
    singular subspace of ``Y_(n)``, ``Y = X x_{m != n} U_m^H``, which maximises ``||G||`` (De
    Lathauwer, De Moor, Vandewalle 2000; Kolda & Bader 2009, Fig. 4.4). No SVD of a wide unfolding
    of ``X`` is ever taken: ``Y_(n)`` is ``I_n x prod_{m != n} R_m`` and its subspace comes from
    the eigenvectors of the small Gram ``Y_(n) Y_(n)^H`` (or a thin QR when ``Y_(n)`` is tall, or a
    randomized range finder when both sides exceed 1024 and ``R_n`` is under an eighth of them).
    The partial contractions are shared between modes by a binary dimension tree, so one
    iteration reads ``X`` about twice whatever ``N``. The error per iteration is free:
    ``||X - X_hat||^2 = ||X||^2 - ||G||^2``.

    Args:
        tensor: real or complex floating tensor, at least 1-D, finite.
        rank: multilinear rank, an int or one int per mode; ``R_n <= I_n`` and
            ``R_n <= prod_{m != n} R_m``.
        init: ``"hosvd"`` (ST-HOSVD, default), ``"random"`` (orthonormalised Gaussian factors) or
            a ``TuckerTensor`` of the same shape and rank (its factors are orthonormalised).
        max_iter: maximum number of sweeps.
        tol: stop when the relative error changes by less than ``tol`` between sweeps (raised to
            the resolution of the norm formula in float32; 0 runs all ``max_iter`` sweeps).
        generator: random source for ``init="random"`` and randomized range finders.
        callback: called after each sweep with an :class:`IterationState`; ``True`` stops.

    Returns:
        ``DecompositionResult`` with a ``TuckerTensor`` with orthonormal factors and the relative
        error after each sweep.

    Not differentiable (runs under ``torch.no_grad``).
    """
    return _hooi(tensor, rank, None, init, max_iter, tol, generator, callback, "tucker")


def partial_tucker(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    modes: Sequence[int],
    init: TuckerInit | TuckerTensor = "hosvd",
    max_iter: int = 100,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[TuckerTensor]:
    """HOOI on a subset of modes; the other modes keep their full size.

    ``rank`` gives one rank per entry of ``modes`` (or one int for all of them). The result is a
    ``TuckerTensor`` whose factors for modes outside ``modes`` are identity matrices, so the core
    has the full size there (``G = X x_{n in modes} U_n^H``). Options as in :func:`tucker`; a
    ``TuckerTensor`` init supplies the factors of ``modes``. Not differentiable.
    """
    if isinstance(modes, int) or not isinstance(modes, Sequence) or len(modes) == 0:
        raise TypeError(
            f"partial_tucker: modes must be a non-empty sequence of ints; got {modes!r}."
        )
    return _hooi(tensor, rank, modes, init, max_iter, tol, generator, callback, "partial_tucker")


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
            a, max_rank=ranks[n], budget=None, method=auto_method(*a.shape, None, a.dtype)
        )
        out[n] = tr.u
        new_shape = list(y.shape)
        new_shape[n] = tr.u.shape[1]
        y = _fold(tr.b, n, new_shape)
    return out


@torch.no_grad()
def _hooi(
    tensor: torch.Tensor,
    rank: object,
    modes: Sequence[int] | None,
    init: object,
    max_iter: int,
    tol: float,
    generator: torch.Generator | None,
    callback: Callback | None,
    fn: str,
) -> DecompositionResult[TuckerTensor]:
    sw = Stopwatch()
    check_tensor(tensor, fn, min_ndim=1)
    check_linalg_dtype(tensor, fn)
    n_modes, shape = tensor.ndim, tuple(tensor.shape)
    active = list(range(n_modes)) if modes is None else list(check_modes(modes, n_modes, fn))
    ranks = dict(zip(active, check_tucker_rank(rank, shape, active, fn)))
    check_core_bound(ranks, shape, fn)
    max_iter, tol = check_iter_options(max_iter, tol, fn)
    check_generator(generator, fn)
    check_callback(callback, fn)
    if isinstance(init, TuckerTensor):
        _check_init_tucker(init, tensor, ranks, fn)
    elif not isinstance(init, str):
        raise TypeError(
            f"{fn}: init must be one of {get_args(TuckerInit)} or a TuckerTensor; got "
            f"{type(init).__name__}."
        )
    else:
        check_literal(init, get_args(TuckerInit), fn, "init")

    dtype, device = tensor.dtype, tensor.device
    factors: list[torch.Tensor | None] = [None] * n_modes
    if isinstance(init, TuckerTensor):
        for n in active:
            factors[n] = _orthonormal(init.factors[n])
    elif init == "random":
        for n in active:
            factors[n] = _orthonormal(randn((shape[n], ranks[n]), dtype, device, generator))
    else:
        for n, u in _sthosvd_factors(tensor, ranks, active).items():
            factors[n] = u
    init_time = sw.elapsed

    def update(n: int, t: torch.Tensor) -> torch.Tensor:
        y = _unfold(t, n)
        small = min(y.shape)
        if small >= 1024 and ranks[n] <= small // 8:
            return _randomized_svd(y, ranks[n], 10, 2, generator)[0]
        return leading_subspace(y, ranks[n])

    def as_tucker(core: torch.Tensor) -> TuckerTensor:
        full = [
            f if f is not None else torch.eye(shape[n], dtype=dtype, device=device)
            for n, f in enumerate(factors)
        ]
        return TuckerTensor(core, tuple(full))

    norm_x2 = sq_norm(tensor)
    errors: list[float] = []
    done = False
    core = tensor
    for it in range(1, max_iter + 1):
        leaf = sweep(tensor, active, factors, update)
        last = active[-1]
        core = ttm(leaf, factors[last].mH, last)  # type: ignore[union-attr]
        err = rel_error(norm_x2, sq_norm(core))
        errors.append(err)
        if len(errors) > 1 and converged(errors[-2], err, tol, dtype):
            done = True
        if callback is not None and callback(IterationState(it, err, as_tucker(core))):
            break
        if done:
            break
    return DecompositionResult(
        as_tucker(core), tuple(errors), len(errors), done, sw.elapsed, init_time
    )
