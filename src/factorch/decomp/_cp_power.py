"""CP by the tensor power method with deflation, general and symmetric.

Component ``k`` is the best rank-one approximation of the deflated tensor
``X_k = X - sum_{s<k} w_s u_s^(0) o ... o u_s^(N-1)`` found by power iteration
(``u^(n) <- X_k(u^(0), .., ., .., u^(N-1)) / ||.||``, the alternating rank-one update) from
``n_repeat`` random starts at once: the starts are the columns of ``I_n x n_repeat`` matrices,
so a sweep over all of them is one CP-ALS-style sweep of MTTKRPs (the dimension tree of
:func:`~factorch.decomp._cp_sweep.tree_mttkrps`), and the deflation is applied to the MTTKRPs
(``sum_s w_s u_s (prod_{m != n} u_s^(m)T A_m)``) without forming ``X_k``. The start with the
largest ``|w|`` wins (Anandkumar et al. 2014's robust tensor power method; TensorLy's
``parafac_power_iteration``). The symmetric variant keeps one vector per start, updated with
``u <- X_k(., u, .., u)`` (``symmetric_parafac_power_iteration``).

Reference: A. Anandkumar, R. Ge, D. Hsu, S. M. Kakade and M. Telgarsky, "Tensor decompositions
for learning latent variable models", JMLR 15, 2014; L. De Lathauwer, B. De Moor and J.
Vandewalle, "On the best rank-1 and rank-(R1, ..., RN) approximation of higher-order tensors",
SIAM J. Matrix Anal. Appl. 21(4), 2000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import check_positive_int
from .._numerics import HALF_DTYPES, check_memory, no_autocast, upcast, working_dtype
from ..algebra.internal import mttkrp as _mttkrp
from ..tensors import CPTensor
from ._cp import dense_input, output_model
from ._cp_sweep import CPState, exact_error, tree_mttkrps
from ._nn_common import _check_loop_options
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import fit_scale

__all__ = ["cp_power", "symmetric_cp_power"]


@dataclass(frozen=True)
class _Options:
    rank: int
    n_repeat: int
    max_iter: int
    tol: float
    generator: torch.Generator | None
    callback: Callback | None


@no_autocast
def cp_power(
    tensor: torch.Tensor,
    rank: int,
    *,
    n_repeat: int = 10,
    max_iter: int = 100,
    tol: float = 1e-10,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """CP decomposition by the tensor power method with deflation (TensorLy's
    ``parafac_power_iteration``).

    See the module docstring. Components are found one at a time, each the best rank-one fit of
    what the previous ones left: the model is a greedy fit (exact for orthogonally decomposable
    tensors, an approximation otherwise; :func:`~factorch.decomp.cp` refines all components
    together).

    Args:
        tensor: real floating tensor (or numpy array) with at least 2 modes, finite.
            float16/bfloat16 are fitted in float32; grad is detached.
        rank: number of components (any integral type).
        n_repeat: random starts per component, iterated together.
        max_iter: maximum power sweeps per component (TensorLy runs a fixed 10, then 10 more
            on the best start).
        tol: the starts are iterated until their values change by less than ``sqrt(tol)``
            relative, then the best one until its vectors move by less than ``tol`` in a sweep.
        generator: the source of the random starts (standard normal entries).
        callback: called with an :class:`IterationState` after each component (``iteration``
            its index from 1, ``model`` the components so far); True stops.

    Returns:
        :class:`DecompositionResult` with a :class:`CPTensor` (unit-norm factor columns, the
        components' values ``X_k(u^(0), ..., u^(N-1))`` as weights). ``errors``: relative error
        of the model after each component (the Gram formula; the last one exact);
        ``converged``: every component met ``tol``; ``extras["sweeps"]``: sweeps per component.

    Raises:
        TypeError: non-tensor, integer, complex data; non-integral ``rank``/``n_repeat``; a
            ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN/Inf, fewer than 2 modes, an all-zero tensor, bad option values, a rank
            above the number of entries, a working set too large for the device.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input; tiny or huge data is scaled by an exact power of four for the fit.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> q = [torch.linalg.qr(torch.randn(n, 3, generator=g)).Q for n in (6, 7, 8)]
        >>> x = factorch.tensors.CPTensor(torch.tensor([3.0, 2.0, 1.0]), tuple(q)).to_dense()
        >>> res = cp_power(x, 3, generator=g)
        >>> res.error < 1e-4
        True

    References:
        A. Anandkumar et al., "Tensor decompositions for learning latent variable models", JMLR
        15, 2014.
    """
    fn = "cp_power"
    x = dense_input(tensor, fn)
    opts = _check_options(x, rank, n_repeat, max_iter, tol, generator, callback, fn)
    with torch.no_grad():
        return _fit(x, opts, symmetric=False)


@no_autocast
def symmetric_cp_power(
    tensor: torch.Tensor,
    rank: int,
    *,
    n_repeat: int = 10,
    max_iter: int = 100,
    tol: float = 1e-10,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """Symmetric CP decomposition ``X ~= sum_k w_k u_k o u_k o ... o u_k`` by the symmetric
    tensor power method with deflation (TensorLy's ``symmetric_parafac_power_iteration``).

    Args:
        tensor: a symmetric tensor (every permutation of its modes leaves it unchanged, to a
            few ``eps``), at least 2 modes of one size; torch or numpy, real floating, finite.
        rank, n_repeat, max_iter, tol, generator, callback: as :func:`cp_power`.

    Returns:
        :class:`DecompositionResult` with a :class:`CPTensor` whose factors are all the same
        ``(I, R)`` matrix of unit columns; the weights ``w_k`` may be negative. ``errors`` and
        ``extras`` as :func:`cp_power`.

    Raises:
        TypeError: as :func:`cp_power`.
        ValueError: as :func:`cp_power`; modes of different sizes; a tensor that is not
            symmetric (use :func:`cp_power`).

    Not differentiable; autocast is ignored; device, dtype and scaling as :func:`cp_power`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> u = torch.linalg.qr(torch.randn(6, 2, generator=g)).Q
        >>> x = factorch.tensors.CPTensor(torch.tensor([2.0, 1.0]), (u, u, u)).to_dense()
        >>> res = symmetric_cp_power(x, 2, generator=g)
        >>> res.error < 1e-4 and res.model.factors[0] is res.model.factors[1]
        True
    """
    fn = "symmetric_cp_power"
    x = dense_input(tensor, fn)
    if len(set(x.shape)) != 1:
        raise ValueError(
            f"{fn}: a symmetric tensor has modes of one size; got shape {tuple(x.shape)} (use "
            "cp_power for a general tensor)."
        )
    _check_symmetric(x, fn)
    opts = _check_options(x, rank, n_repeat, max_iter, tol, generator, callback, fn)
    with torch.no_grad():
        return _fit(x, opts, symmetric=True)


def _check_symmetric(x: torch.Tensor, fn: str) -> None:
    """Invariance under the adjacent transpositions (they generate every permutation)."""
    work = upcast(x)
    peak = float(work.abs().max())
    for n in range(x.ndim - 1):
        gap = float((work - work.transpose(n, n + 1)).abs().max())
        if gap > 64 * torch.finfo(work.dtype).eps * peak:
            raise ValueError(
                f"{fn}: tensor must be symmetric (unchanged by permuting its modes); swapping "
                f"modes {n} and {n + 1} changes it by up to {gap:.3g}. Use cp_power for a "
                "general tensor, or symmetrize it first."
            )


def _check_options(
    x: torch.Tensor,
    rank: object,
    n_repeat: object,
    max_iter: object,
    tol: object,
    generator: torch.Generator | None,
    callback: Callback | None,
    fn: str,
) -> _Options:
    rank = check_positive_int(rank, fn, "rank")
    repeats = check_positive_int(n_repeat, fn, "n_repeat")
    max_iter, tol_ = _check_loop_options(max_iter, tol, generator, callback, fn)
    total = math.prod(x.shape)
    if rank > total:
        # Deflation past the number of entries only appends zero components (and a rank of
        # 10**9 would loop for hours): no tensor needs more CP components than it has entries.
        raise ValueError(
            f"{fn}: rank must be at most the number of entries ({total}) of the "
            f"{tuple(x.shape)} tensor; got {rank}. Ask for fewer components."
        )
    work = max(total // s for s in x.shape) * repeats + sum(x.shape) * (rank + 2 * repeats)
    work += min(total, 1 << 22) + (total if x.dtype in HALF_DTYPES else 0)
    check_memory(
        work, working_dtype(x.dtype), x.device, fn,
        f"a {repeats}-start power iteration on a {tuple(x.shape)} tensor with {rank} components",
    )  # fmt: skip
    return _Options(rank, repeats, max_iter, tol_, generator, callback)


def _deflated(
    mttkrp: torch.Tensor,
    mode: int,
    factors: list[torch.Tensor],
    found: list[torch.Tensor],
    weights: list[float],
) -> torch.Tensor:
    """The MTTKRP of the deflated tensor: ``mttkrp - sum_s w_s u_s (prod_{m != n} u_s^T A_m)``
    (``found[m]``: the components found so far in mode ``m``, ``(I_m, k)``)."""
    if not weights:
        return mttkrp
    w = torch.tensor(weights, dtype=mttkrp.dtype, device=mttkrp.device)
    coef = w.unsqueeze(1).expand(-1, mttkrp.shape[1]).clone()  # (k, repeats)
    for m, f in enumerate(factors):
        if m != mode:
            coef = coef * (found[m].mT @ f)
    return mttkrp - found[mode] @ coef


def _component(
    x: torch.Tensor,
    found: list[torch.Tensor],
    weights: list[float],
    opts: _Options,
    symmetric: bool,
) -> tuple[float, list[torch.Tensor], int, bool]:
    """The best start's weight, unit vectors, sweeps run and whether it met ``tol``.

    All starts are iterated together until their values settle (to ``sqrt(tol)``), then the
    best one alone until its vectors move by at most ``tol`` in a sweep."""
    g = opts.generator

    def start(size: int) -> torch.Tensor:
        v = torch.randn(size, opts.n_repeat, generator=g, dtype=x.dtype,
                        device=g.device if g is not None else x.device)  # fmt: skip
        v = v.to(x.device)
        return v / torch.linalg.vector_norm(v, dim=0)

    factors = [start(x.shape[0])] * x.ndim if symmetric else [start(s) for s in x.shape]
    values = torch.zeros(opts.n_repeat, dtype=x.dtype, device=x.device)
    sweeps, met, refining = 0, False, False
    while sweeps < opts.max_iter:
        sweeps += 1
        previous, before = values, factors[0]
        factors, values = _power_sweep(x, factors, found, weights, symmetric)
        if refining:
            if float(torch.linalg.vector_norm(factors[0] - before)) <= opts.tol:
                met = True
                break
        elif bool(((values - previous).abs() <= opts.tol**0.5 * values.abs()).all()):
            best = int(values.abs().argmax())  # refine the best start alone
            factors = [f[:, best : best + 1] for f in factors]
            values, refining = values[best : best + 1], True
    best = int(values.abs().argmax())
    return float(values[best]), [f[:, best] for f in factors], sweeps, met


def _power_sweep(
    x: torch.Tensor,
    factors: list[torch.Tensor],
    found: list[torch.Tensor],
    weights: list[float],
    symmetric: bool,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One power sweep of every start; returns the new unit vectors and their values
    ``X_k(u^(0), ..., u^(N-1))``."""
    if symmetric:
        m = _deflated(_mttkrp(x, factors, 0), 0, factors, found, weights)
        norms = torch.linalg.vector_norm(m, dim=0)
        u = m / torch.where(norms > 0, norms, 1.0)
        factors = [u] * x.ndim
        value_m = _deflated(_mttkrp(x, factors, 0), 0, factors, found, weights)
        return factors, (value_m * u).sum(0)
    factors = list(factors)
    norms = factors[0][0]
    for n, m in tree_mttkrps(x, factors):
        m = _deflated(m, n, factors, found, weights)
        norms = torch.linalg.vector_norm(m, dim=0)
        factors[n] = m / torch.where(norms > 0, norms, 1.0)
    return factors, norms  # the last mode's norm is the value after its step


def _fit(x_in: torch.Tensor, opts: _Options, *, symmetric: bool) -> DecompositionResult[CPTensor]:
    clock = Stopwatch()
    dtype = x_in.dtype
    x = upcast(x_in).contiguous()
    scale = fit_scale(x)
    if scale != 1.0:
        x = x / scale
    norm_x2 = float(torch.linalg.vector_norm(x)) ** 2
    if norm_x2 == 0:
        raise ValueError(
            f"{'symmetric_cp_power' if symmetric else 'cp_power'}: tensor is all zeros; nothing "
            "to fit."
        )
    empty = [torch.zeros(s, 0, dtype=x.dtype, device=x.device) for s in x.shape]
    found: list[torch.Tensor] = empty
    weights: list[float] = []
    errors: list[float] = []
    sweeps: list[int] = []
    converged = True
    for k in range(1, opts.rank + 1):
        value, vectors, count, met = _component(x, found, weights, opts, symmetric)
        found = [torch.cat([f, v.unsqueeze(1)], 1) for f, v in zip(found, vectors)]
        weights.append(value)
        sweeps.append(count)
        converged = converged and met
        state = _state(found, weights, x, symmetric)
        errors.append(_gram_error(x, state, norm_x2, found, weights))
        if opts.callback is not None:
            model = output_model(state, scale, dtype)
            if opts.callback(IterationState(k, errors[-1], model)) is True:
                converged = False
                break
    state = _state(found, weights, x, symmetric)
    model = output_model(state, scale, dtype)
    if symmetric:  # one shared matrix (output_model may have scaled the modes evenly)
        model = CPTensor(model.weights, (model.factors[0],) * x.ndim)
    rounded = CPState.start(upcast(model.weights) / scale, [upcast(f) for f in model.factors])
    errors[-1] = exact_error(x, rounded if model.dtype != x.dtype else state, norm_x2)[0]
    return DecompositionResult(
        model=model,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=0.0,
        extras={"sweeps": tuple(sweeps)},
    )


def _state(
    found: list[torch.Tensor], weights: list[float], x: torch.Tensor, symmetric: bool
) -> CPState:
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    return CPState.start(w, [found[0]] * x.ndim if symmetric else list(found))


def _gram_error(
    x: torch.Tensor, state: CPState, norm_x2: float, found: list[torch.Tensor], weights: list[float]
) -> float:
    """``||X - M|| / ||X||`` from inner products the deflation already knows:
    ``<X, c_k> = w_k + sum_{s<k} w_s prod_m <u_s, u_k>`` (each value is taken on the tensor
    deflated by the earlier components) and ``||M||^2`` from the Grams."""
    w = state.weights
    cross = torch.ones(len(weights), len(weights), dtype=x.dtype, device=x.device)
    for f in found:
        cross = cross * (f.mT @ f)
    strictly_lower = torch.tril(cross, diagonal=-1)
    inner_with_x = w + strictly_lower @ w  # <X, c_k> for every k
    model2 = float(w @ cross @ w)
    res2 = norm_x2 - 2.0 * float((w * inner_with_x).sum()) + model2
    return math.sqrt(max(res2, 0.0) / norm_x2)
