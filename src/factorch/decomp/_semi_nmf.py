"""Semi-non-negative matrix factorization ``X ~= F G^T`` (``G >= 0``, ``F`` free), batched.

Ding, Li & Jordan, "Convex and semi-nonnegative matrix factorizations", IEEE TPAMI 32(1), 2010,
with optional top-k sparsity of the columns of ``F`` (sparse features as in Shafran et al. 2025).
A ``(B, M, N)`` stack is factorized in one vectorised run; every matrix converges on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import check_positive_int, check_tensor
from .._numerics import check_memory, no_autocast, upcast, working_dtype
from ._nn_common import (
    _check_choice,
    _check_init_factor,
    _check_loop_options,
    _check_matrix_stack,
    _check_pair,
    _finish,
    _rand,
    _scaled_stack,
    _sym_solve,
    _Tracker,
)
from ._result import Callback, DecompositionResult, IterationState, Stopwatch

__all__ = ["SemiNMFFactors", "SemiNMFInit", "semi_nmf"]

SemiNMFInit = Literal["kmeans", "random"]

_KMEANS_ITERS = 20


@dataclass(frozen=True, eq=False)
class SemiNMFFactors:
    """``X ~= F @ G^T`` with ``F`` ``(..., M, R)`` (any sign) and ``G`` ``(..., N, R)`` (``>= 0``).

    Validated on creation (matching shapes, one device and dtype).

    Args:
        F: ``(..., M, R)`` factor of any sign.
        G: ``(..., N, R)`` non-negative factor (same leading dims, device and dtype).

    Raises:
        TypeError: factors that are not tensors.
        ValueError: factors with fewer than 2 dims, shapes that do not match, or different
            devices or dtypes.

    Example:
        >>> f = SemiNMFFactors(-torch.ones(4, 2), torch.ones(3, 2))
        >>> f.rank, f.shape, f.to_dense()[0].tolist()
        (2, (4, 3), [-2.0, -2.0, -2.0])
    """

    F: torch.Tensor
    G: torch.Tensor

    def __post_init__(self) -> None:
        cls = "SemiNMFFactors"
        check_tensor(self.F, cls, "F", min_ndim=2, finite=False)
        check_tensor(self.G, cls, "G", min_ndim=2, finite=False)
        _check_pair(self.F, self.G, cls, "F", "G", transposed=True)

    @property
    def rank(self) -> int:
        return self.F.shape[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``F @ G^T``."""
        return (*self.F.shape[:-1], self.G.shape[-2])

    def to_dense(self) -> torch.Tensor:
        """``F @ G^T``. Differentiable."""
        return self.F @ self.G.mT


# ---------------------------------------------------------------------------------------------
# semi-NMF


def _kmeans_indicator(
    points: torch.Tensor, k: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Batched k-means (k-means++ seeding, Lloyd iterations) of ``points`` ``(B, N, M)``;
    returns the ``(B, N, k)`` 0/1 cluster indicator. Empty clusters keep their old centre."""
    b, n, _ = points.shape
    sq = points.square().sum(-1)  # (B, N)
    rows = torch.arange(b, device=points.device)
    u = _rand((b, k), points, generator)
    idx = (u[:, 0] * n).long().clamp_max(n - 1)
    centres = [points[rows, idx]]
    d2 = (
        sq
        - 2 * (points @ centres[0].unsqueeze(-1)).squeeze(-1)
        + centres[0].square().sum(-1)[:, None]
    ).clamp_min(0)
    for j in range(1, k):
        cum = d2.cumsum(-1)
        target = u[:, j : j + 1] * cum[:, -1:]
        idx = torch.searchsorted(cum, target).squeeze(-1).clamp_max(n - 1)
        # All points coincide with centres (d2 == 0): fall back to the j-th point.
        idx = torch.where(cum[:, -1] > 0, idx, torch.full_like(idx, j % n))
        c = points[rows, idx]
        centres.append(c)
        dc = sq - 2 * (points @ c.unsqueeze(-1)).squeeze(-1) + c.square().sum(-1)[:, None]
        d2 = torch.minimum(d2, dc.clamp_min(0))
    c = torch.stack(centres, 1)  # (B, k, M)
    labels = _nearest(points, c)
    for _ in range(_KMEANS_ITERS):
        onehot = torch.nn.functional.one_hot(labels, k).to(points.dtype)  # (B, N, k)
        counts = onehot.sum(1)  # (B, k)
        sums = onehot.mT @ points  # (B, k, M)
        c = torch.where(counts[..., None] > 0, sums / counts.clamp_min(1)[..., None], c)
        new = _nearest(points, c)
        if bool((new == labels).all()):
            break
        labels = new
    return torch.nn.functional.one_hot(labels, k).to(points.dtype)


def _nearest(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre ``(B, k, M)`` for every point ``(B, N, M)``."""
    return (centres.square().sum(-1)[:, None, :] - 2 * points @ centres.mT).argmin(-1)


def _top_k_columns(f: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest-magnitude entries of each column of ``f`` ``(..., M, R)``."""
    idx = f.abs().topk(k, dim=-2).indices
    mask = torch.zeros_like(f).scatter_(-2, idx, 1.0)
    return f * mask


@no_autocast
def semi_nmf(
    matrix: torch.Tensor,
    rank: int,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    init: SemiNMFInit | tuple[torch.Tensor, torch.Tensor] = "kmeans",
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[SemiNMFFactors]:
    """Semi-non-negative matrix factorization ``X ~= F G^T`` with ``G >= 0`` and ``F`` free.

    Ding, Li & Jordan, "Convex and semi-nonnegative matrix factorizations", IEEE TPAMI 32(1),
    2010. ``X`` ``(M, N)`` may have both signs; its ``N`` columns are the samples, ``F`` ``(M, R)``
    holds ``R`` basis vectors ("centroids") and ``G`` ``(N, R)`` their non-negative weights per
    sample. Each iteration:

    1. ``F <- X G (G^T G)^{-1}`` (exact least squares; pseudo-inverse if ``G^T G`` is singular);
    2. ``G <- G * sqrt(((X^T F)^+ + G (F^T F)^-) / ((X^T F)^- + G (F^T F)^+))`` with
       ``A^+ = max(A, 0)``, ``A^- = max(-A, 0)`` (denominator floored at the dtype's eps times
       the largest numerator or denominator entry of the matrix: scale invariant).

    Both steps never increase ``||X - F G^T||_F`` (Ding et al., Theorems 1--2).

    Sparse features (``top_k``): Shafran et al., "Decomposing MLP activations into interpretable
    features via semi-nonnegative matrix factorization" (2025) factorize MLP activations
    (neurons x tokens) so that each feature is a *sparse* linear combination of neurons (a column
    of ``F``) with non-negative per-token coefficients (``G``). Here, with ``top_k`` set, every
    column of ``F`` keeps only its ``top_k`` largest-magnitude entries (a hard winner-take-all
    mask over the ``M`` rows, re-chosen at every iteration); step 1 becomes: form two k-sparse
    candidates, the least-squares ``F`` with the mask applied, and one projected-gradient
    (iterative hard thresholding) step from the previous ``F`` with step ``1 / lambda_max(G^T G)``,
    and keep whichever gives the lower error. The projected-gradient candidate never increases the
    error (it minimises a majorizer over k-sparse matrices, of which the previous ``F`` is one),
    so the error stays monotone from the second iteration on. The mask rule is ours: the paper's
    exact schedule was not checked against its text.

    Args:
        matrix: ``(M, N)`` real matrix, or a ``(B, M, N)`` stack factorized in one vectorised
            run (each matrix converges on its own). numpy arrays are accepted; float16/bfloat16
            are fitted in float32 and returned in the input dtype; tiny or huge data is scaled
            exactly (by powers of two) for the fit, so ``semi_nmf(c * X)`` fits ``c * F``;
            a tensor that requires grad is detached.
        rank: ``R``, at most ``min(M + 1, N)`` (the semi-non-negative rank is ``rank(X)`` or
            ``rank(X) + 1``, Gillis & Kumar 2015, and never exceeds ``N``).
        max_iter: maximum number of iterations.
        tol: a matrix stops when its relative error changes by less than ``tol``, or by less
            than the error formula's rounding floor when that is larger; 0 runs all.
        init: ``"kmeans"`` (Ding et al.: k-means++ seeded Lloyd clustering of the columns,
            ``G = indicator + 0.2``), ``"random"`` (``G`` uniform in [0, 1)), or a pair ``(F, G)``
            (``G >= 0``). ``F`` from a pair is only used as the previous iterate of the sparse
            step when ``top_k`` is set; otherwise the first step recomputes it from ``G``.
        top_k: keep this many entries per column of ``F`` (1 to ``M``); None for dense ``F``.
        generator: seeds the k-means++ seeding or the random ``G``.
        callback: called after each iteration with an :class:`IterationState` (``model`` the
            current :class:`SemiNMFFactors`); returning True stops the run.

    Returns:
        :class:`DecompositionResult` with ``model = SemiNMFFactors(F, G)``, the relative error
        ``||X - F G^T|| / ||X||`` per iteration (the last one exact), and for a stack
        ``extras["batch_errors"]`` and ``extras["batch_iterations"]``.

    Raises:
        TypeError: a non-numeric, integer or complex matrix; a non-integral rank or ``top_k``; a
            ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN/Inf entries, an all-zero matrix, ``rank`` too large, ``top_k`` outside
            ``[1, M]``, an unknown ``init``, init factors of the wrong shape or a negative ``G``.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input.

    Example:
        >>> f, g = torch.randn(20, 3), torch.rand(30, 3)
        >>> semi_nmf(f @ g.T, 3).error < 0.1
        True
    """
    fn = "semi_nmf"
    xb, batched, peaks = _check_matrix_stack(matrix, fn, nonneg=False)
    rank = check_positive_int(rank, fn, "rank")
    max_iter, tol = _check_loop_options(max_iter, tol, generator, callback, fn)
    b, m, n = xb.shape
    cap = min(m + 1, n)
    if rank > cap:
        raise ValueError(
            f"{fn}: rank must be at most min(M + 1, N) = {cap} for a {m} x {n} matrix; got {rank}."
        )
    if top_k is not None:
        top_k = check_positive_int(top_k, fn, "top_k")
        if top_k > m:
            raise ValueError(
                f"{fn}: top_k must be in [1, M] = [1, {m}] (entries kept per column of F); "
                f"got {top_k}."
            )
    init_pair = _check_init_pair(init, xb, rank, batched, fn)
    check_memory(
        b * (3 * m * n + 4 * (m + n) * rank + 4 * rank * rank),
        working_dtype(xb.dtype),
        xb.device,
        fn,
        f"a rank-{rank} factorization of a {tuple(xb.shape)} stack",
    )
    clock = Stopwatch()
    with torch.no_grad():
        x, scales, x2 = _scaled_stack(xb, peaks)
        scale = scales.to(x.dtype).reshape(-1, 1, 1)  # F carries each member's scale
        f_prev: torch.Tensor | None = None
        if init_pair is not None:
            g = upcast(init_pair[1]).clone()
            if top_k is not None:
                f_prev = _top_k_columns(upcast(init_pair[0]) / scale, top_k)
        elif init == "kmeans":
            g = _kmeans_indicator(x.mT, rank, generator) + 0.2
        else:
            g = _rand((b, n, rank), x, generator)
        init_time = clock.elapsed
        tracker = _Tracker(x, x2, tol, scales)
        f, g, converged = _semi_loop(
            x, g, f_prev, tracker, top_k, max_iter, callback, (scale, batched, xb.dtype)
        )
        model = _semi_factors(f * scale, g, batched, xb.dtype)
        f_out, g_out = (model.F, model.G) if batched else (model.F[None], model.G[None])
        tracker.finish(x, upcast(f_out) / scale, upcast(g_out).mT)
    return _finish(model, tracker, converged, clock, init_time, "semi", batched, xb.dtype)


def _check_init_pair(
    init: object, xb: torch.Tensor, rank: int, batched: bool, fn: str
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The ``(F, G)`` stacks of a pair init (checked), or None for a string init (checked)."""
    if not isinstance(init, tuple):
        _check_choice(init, get_args(SemiNMFInit), fn, "init")
        return None
    if len(init) != 2:
        raise ValueError(f"{fn}: init must be a pair (F, G); got {len(init)} items.")
    b, m, n = xb.shape
    lead = (b,) if batched else ()
    f0 = _check_init_factor(init[0], (*lead, m, rank), xb, fn, "init F", nonneg=False)
    g0 = _check_init_factor(init[1], (*lead, n, rank), xb, fn, "init G", nonneg=True)
    return f0.reshape(b, m, rank), g0.reshape(b, n, rank)


def _semi_loop(
    x: torch.Tensor,
    g: torch.Tensor,
    f_prev: torch.Tensor | None,
    tracker: _Tracker,
    top_k: int | None,
    max_iter: int,
    callback: Callback | None,
    out: tuple[torch.Tensor, bool, torch.dtype],
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The semi-NMF iterations on the scaled stack ``x``; ``out`` (scale of F, batched, dtype)
    turns the iterate into what a callback sees. Returns ``F``, ``G`` and convergence."""
    b, m, _ = x.shape
    rank = g.shape[-1]
    eps = torch.finfo(x.dtype).eps
    tiny = torch.finfo(x.dtype).tiny
    gtg = g.mT @ g
    f = torch.zeros(b, m, rank, dtype=x.dtype, device=x.device)
    converged = False
    for it in range(1, max_iter + 1):
        act = tracker.active[:, None, None]
        xg = x @ g  # (B, M, R)
        f_new = _sym_solve(xg.mT, gtg).mT
        if top_k is not None:
            f_new = _top_k_columns(f_new, top_k)
            if f_prev is not None:
                lmax = torch.linalg.eigvalsh(gtg)[..., -1:].clamp_min(eps)[..., None]
                f_iht = _top_k_columns(f_prev - (f_prev @ gtg - xg) / lmax, top_k)
                better = _f_objective(f_iht, xg, gtg) < _f_objective(f_new, xg, gtg)
                f_new = torch.where(better[:, None, None], f_iht, f_new)
        f = torch.where(act, f_new, f)
        f_prev = f
        ftf = f.mT @ f
        xtf = x.mT @ f  # (B, N, R)
        num = xtf.clamp_min(0) + g @ (-ftf).clamp_min(0)
        den = (-xtf).clamp_min(0) + g @ ftf.clamp_min(0)
        # Denominators floored relative to each member's own magnitudes (scale invariant).
        floor = (eps * torch.maximum(num.amax((1, 2)), den.amax((1, 2)))).clamp_min(tiny)
        g = torch.where(act, g * (num / den.clamp_min(floor[:, None, None])).sqrt(), g)
        gtg = g.mT @ g
        inner = (xtf * g).sum((1, 2))
        model2 = (ftf * gtg).sum((1, 2))
        res2 = tracker.x2 - 2 * inner + model2
        terms = tracker.x2 + 2 * inner.abs() + model2.abs()
        if tracker.needs_exact(res2, terms):
            res2 = torch.linalg.vector_norm(torch.baddbmm(x, f, g.mT, alpha=-1), dim=(1, 2))
            res2 = res2.square()
        converged = tracker.step(res2, torch.zeros_like(res2), terms, model2)
        if callback is not None:
            scale, batched, dtype = out
            state = IterationState(
                it, tracker.errors[-1], _semi_factors(f * scale, g, batched, dtype)
            )
            if callback(state) is True:
                break
        if converged:
            break
    return f, g, converged


def _f_objective(f: torch.Tensor, xg: torch.Tensor, gtg: torch.Tensor) -> torch.Tensor:
    """``||X - F G^T||^2 - ||X||^2 = -2 <X G, F> + <F^T F, G^T G>`` per batch entry."""
    return -2 * (xg * f).sum((1, 2)) + ((f.mT @ f) * gtg).sum((1, 2))


def _semi_factors(
    f: torch.Tensor, g: torch.Tensor, batched: bool, dtype: torch.dtype
) -> SemiNMFFactors:
    """Fresh ``SemiNMFFactors`` in ``dtype`` from the stacks ``f`` ``(B, M, R)`` and ``g``."""
    f, g = f.to(dtype, copy=True), g.to(dtype, copy=True)
    return SemiNMFFactors(f, g) if batched else SemiNMFFactors(f[0], g[0])
