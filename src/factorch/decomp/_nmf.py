"""Non-negative matrix factorization ``X ~= W H``, batched over a leading dimension.

:func:`nmf` fits ``W, H >= 0`` (Frobenius loss, optional L1 on either factor) by accelerated HALS
(Cichocki & Phan 2009; Gillis & Glineur 2012) or multiplicative updates (Lee & Seung 2001).
A ``(B, M, N)`` stack is factorized in one vectorised run (no Python loop over the batch), and
every matrix follows exactly the iterations it would follow alone: a matrix whose error has
converged is frozen while the others go on.
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
    _check_penalty,
    _finish,
    _hals_rows,
    _max_sweeps,
    _member_scales,
    _rand,
    _scaled_stack,
    _Tracker,
)
from ._result import Callback, DecompositionResult, IterationState, Stopwatch

__all__ = ["NMFFactors", "NMFInit", "NMFMethod", "nmf"]

NMFMethod = Literal["hals", "mu"]
NMFInit = Literal["nndsvd", "random"]


# ---------------------------------------------------------------------------------------------
# result types


@dataclass(frozen=True, eq=False)
class NMFFactors:
    """``X ~= W @ H`` with ``W`` ``(..., M, R)`` and ``H`` ``(..., R, N)`` (leading batch dims).

    Validated on creation (matching shapes, one device and dtype); non-negativity is not checked.

    Args:
        W: ``(..., M, R)`` left factor.
        H: ``(..., R, N)`` right factor (same leading dims, device and dtype).

    Raises:
        TypeError: factors that are not tensors.
        ValueError: factors with fewer than 2 dims, shapes that do not match, or different
            devices or dtypes.

    Example:
        >>> f = NMFFactors(torch.ones(4, 2), torch.ones(2, 3))
        >>> f.rank, f.shape, f.to_dense()[0].tolist()
        (2, (4, 3), [2.0, 2.0, 2.0])
    """

    W: torch.Tensor
    H: torch.Tensor

    def __post_init__(self) -> None:
        cls = "NMFFactors"
        check_tensor(self.W, cls, "W", min_ndim=2, finite=False)
        check_tensor(self.H, cls, "H", min_ndim=2, finite=False)
        _check_pair(self.W, self.H, cls, "W", "H", transposed=False)

    @property
    def rank(self) -> int:
        return self.W.shape[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``W @ H``."""
        return (*self.W.shape[:-1], self.H.shape[-1])

    def to_dense(self) -> torch.Tensor:
        """``W @ H``. Differentiable."""
        return self.W @ self.H


# ---------------------------------------------------------------------------------------------
# NMF


def _dominant_part(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For column pairs ``(a_j, b_j)``: the unit-normed positive part of ``a_j`` if
    ``|a+||b+| >= |a-||b-|``, else of ``-a_j``; and the larger product (NNDSVD's ``sigma``)."""
    ap, an = a.clamp_min(0), (-a).clamp_min(0)
    nap, nan_ = ap.norm(dim=-2), an.norm(dim=-2)
    nbp, nbn = b.clamp_min(0).norm(dim=-2), (-b).clamp_min(0).norm(dim=-2)
    mp, mn = nap * nbp, nan_ * nbn
    pos = (mp >= mn).unsqueeze(-2)
    unit_p = ap / torch.where(nap > 0, nap, 1.0).unsqueeze(-2)
    unit_n = an / torch.where(nan_ > 0, nan_, 1.0).unsqueeze(-2)
    return torch.where(pos, unit_p, unit_n), torch.maximum(mp, mn)


def _nndsvd(x: torch.Tensor, rank: int, fill: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched NNDSVD (Boutsidis & Gallopoulos, Pattern Recognition 41(4), 2008).

    The leading singular triplets come from ``eigh`` of the smaller Gram matrix (never a full SVD).
    For each pair ``(u_j, v_j)`` the larger of ``|u+||v+|`` and ``|u-||v-|`` is kept, so the result
    does not depend on the singular vectors' signs. With ``fill``, exact zeros are replaced by
    ``mean(X)`` (NNDSVDa), which multiplicative updates need.
    """
    m, n = x.shape[-2:]
    if m <= n:
        evals, u = torch.linalg.eigh(x @ x.mT)
        evals, u = evals.flip(-1)[..., :rank], u.flip(-1)[..., :rank]
        s = evals.clamp_min(0).sqrt()
        v = (x.mT @ u) / torch.where(s > 0, s, 1.0).unsqueeze(-2)  # (B, N, R)
    else:
        evals, v = torch.linalg.eigh(x.mT @ x)
        evals, v = evals.flip(-1)[..., :rank], v.flip(-1)[..., :rank]
        s = evals.clamp_min(0).sqrt()
        u = (x @ v) / torch.where(s > 0, s, 1.0).unsqueeze(-2)
    uu, sigma_u = _dominant_part(u[..., 1:], v[..., 1:])
    vv, _ = _dominant_part(v[..., 1:], u[..., 1:])
    # The leading pair has one sign (Perron--Frobenius): take |u_0|, |v_0| with sigma = 1.
    uu = torch.cat([u[..., :1].abs(), uu], -1)
    vv = torch.cat([v[..., :1].abs(), vv], -1)
    sigma = torch.cat([torch.ones_like(s[..., :1]), sigma_u], -1)
    scale = (s * sigma).sqrt().unsqueeze(-2)
    w = uu * scale
    h = (vv * scale).mT
    if fill:
        avg = x.mean((-2, -1), keepdim=True)
        w = torch.where(w > 0, w, avg)
        h = torch.where(h > 0, h, avg)
    return w, h.contiguous()


@no_autocast
def nmf(
    matrix: torch.Tensor,
    rank: int,
    *,
    method: NMFMethod = "hals",
    init: NMFInit | tuple[torch.Tensor, torch.Tensor] = "nndsvd",
    max_iter: int = 200,
    tol: float = 1e-6,
    l1_w: float = 0.0,
    l1_h: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[NMFFactors]:
    """Non-negative matrix factorization ``X ~= W H``, ``W, H >= 0``.

    Minimises ``1/2 ||X - W H||_F^2 + l1_w sum(W) + l1_h sum(H)`` over ``W >= 0`` ``(M, R)`` and
    ``H >= 0`` ``(R, N)`` by alternating updates of ``W`` and ``H``:

    * ``"hals"``: hierarchical ALS (Cichocki & Phan, IEICE Trans. E92-A(3), 2009): each column
      of ``W`` (row of ``H``) in turn is set to its exact non-negative minimiser,
      ``w_k = max(0, w_k + ((X H^T)_k - W (H H^T)_k - l1_w) / (H H^T)_kk)``. Sweeps over one factor
      are repeated while they still move it, as in the accelerated HALS of Gillis & Glineur
      (Neural Computation 24(4), 2012): at most ``1 + 0.5 rho`` sweeps (``rho`` = cost of
      ``X H^T`` over the cost of a sweep), stopping once a sweep changes the factor by less than
      1 % of the first sweep's change.
    * ``"mu"``: multiplicative updates (Lee & Seung, NIPS 2001) with L1 in the denominator,
      ``W <- W * (X H^T) / (W H H^T + l1_w)``, then ``H <- H * (W^T X) / (W^T W H + l1_h)``
      (denominators floored at the dtype's eps). Entries that reach zero stay zero.

    Both never increase the objective. The relative error
    ``||X - W H||_F / ||X||_F`` after each iteration comes from the products the updates already
    form (``||X||^2 - 2 <W^T X, H> + <W^T W, H H^T>``), never from ``W H``; cancellation limits it
    to about ``sqrt(eps)`` (1e-8 in float64), so the stopping rule allows for that rounding floor
    (below). The last error is the exact one of the returned factors.

    Args:
        matrix: ``(M, N)`` non-negative matrix, or a ``(B, M, N)`` stack factorized in one
            vectorised run (each matrix converges on its own; see ``extras``). numpy arrays are
            accepted; float16/bfloat16 are fitted in float32 and returned in the input dtype;
            tiny or huge data is scaled exactly (by powers of two) for the fit; a tensor that
            requires grad is detached.
        rank: ``R``, at most ``min(M, N)`` (the non-negative rank never exceeds it).
        method: ``"hals"`` (default; usually much faster per unit of error) or ``"mu"``.
        init: ``"nndsvd"`` (Boutsidis & Gallopoulos 2008, leading singular vectors from the
            smaller Gram matrix; for ``"mu"`` its zeros are filled with ``mean(X)``, NNDSVDa),
            ``"random"`` (``sqrt(mean(X) / R) * |N(0, 1)|``, as scikit-learn), or a pair
            ``(W, H)`` of non-negative tensors shaped like the factors (copied, never modified).
        max_iter: maximum number of iterations (one update of ``W`` and one of ``H`` each).
        tol: a matrix stops when its relative error changes by less than ``tol`` between two
            iterations, or by less than the formula's rounding floor when that is larger (about
            ``1e-4`` in float32 at an error of 1 %); ``0`` runs exactly ``max_iter`` iterations.
        l1_w, l1_h: L1 (sparsity) weights on ``W`` and ``H`` (``>= 0``), in the units of
            ``1/2 ||X - W H||^2`` (absolute). With L1 on one factor only, its scale can drift into
            the other.
        generator: seeds ``init="random"``.
        callback: called after each iteration with an :class:`IterationState` (``model`` is the
            current :class:`NMFFactors`); returning True stops the run.

    Returns:
        :class:`DecompositionResult` with ``model = NMFFactors(W, H)`` (batched like the input),
        ``errors`` the relative error per iteration (for a stack, ``||X - WH|| / ||X||`` over the
        whole stack), ``extras["objective"]`` the penalised objective per iteration, and for a
        stack ``extras["batch_errors"]`` ``(B,)`` and ``extras["batch_iterations"]`` ``(B,)``.

    Raises:
        TypeError: a non-numeric, integer or complex matrix; a non-integral rank; a ``generator``
            that is not a ``torch.Generator``.
        ValueError: negative, NaN or Inf entries; an all-zero matrix; ``rank > min(M, N)``; an
            unknown ``method`` or ``init``; a negative penalty; init factors of the wrong shape,
            dtype or device, or with negative entries.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input. Deterministic given the inputs (and ``generator`` for random init).

    Example:
        >>> w, h = torch.rand(20, 3), torch.rand(3, 30)
        >>> nmf(w @ h, 3).error < 1e-2
        True
    """
    fn = "nmf"
    xb, batched, peaks = _check_matrix_stack(matrix, fn, nonneg=True)
    rank = check_positive_int(rank, fn, "rank")
    _check_choice(method, get_args(NMFMethod), fn, "method")
    max_iter, tol = _check_loop_options(max_iter, tol, generator, callback, fn)
    l1_w = _check_penalty(l1_w, fn, "l1_w")
    l1_h = _check_penalty(l1_h, fn, "l1_h")
    b, m, n = xb.shape
    if rank > min(m, n):
        raise ValueError(
            f"{fn}: rank must be at most min(M, N) = {min(m, n)} for a {m} x {n} matrix (a larger "
            f"rank cannot lower the error); got {rank}."
        )
    init_pair = _check_init_pair(init, xb, rank, batched, fn)
    _check_nmf_memory(xb, rank, fn)
    clock = Stopwatch()
    with torch.no_grad():
        x, scales, x2 = _scaled_stack(xb, peaks)
        # W carries the factor a, H the factor c of each member's scale s = a c; the penalties
        # become l1_w a / s^2 and l1_h c / s^2, which leaves the minimiser unchanged.
        a, c = _member_scales(scales, x)
        s2 = (a * c).square()
        lw = l1_w * a / s2 if l1_w and bool((scales != 1).any()) else l1_w
        lh = l1_h * c / s2 if l1_h and bool((scales != 1).any()) else l1_h
        if init_pair is not None:
            wt = (upcast(init_pair[0]) / a).mT.contiguous()
            h = (upcast(init_pair[1]) / c).contiguous()
        elif init == "nndsvd":
            w, h = _nndsvd(x, rank, fill=method == "mu")
            wt, h = w.mT.contiguous(), h.contiguous()
        else:
            avg = x.mean((1, 2), keepdim=True)
            w = (avg / rank).sqrt() * _rand((b, m, rank), x, generator, normal=True).abs()
            h = (avg / rank).sqrt() * _rand((b, rank, n), x, generator, normal=True).abs()
            wt, h = w.mT.contiguous(), h.contiguous()
        init_time = clock.elapsed
        tracker = _Tracker(x, x2, tol, scales)
        wt, h, converged = _nmf_loop(
            x, wt, h, tracker, method, lw, lh, max_iter, callback, (a, c, batched, xb.dtype)
        )
        model = _nmf_factors(wt.mT * a, h * c, batched, xb.dtype)
        w_out, h_out = (model.W, model.H) if batched else (model.W[None], model.H[None])
        tracker.finish(x, upcast(w_out) / a, upcast(h_out) / c)
    return _finish(model, tracker, converged, clock, init_time, method, batched, xb.dtype)


def _check_init_pair(
    init: object, xb: torch.Tensor, rank: int, batched: bool, fn: str
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The ``(W, H)`` stacks of a pair init (checked), or None for a string init (checked)."""
    if not isinstance(init, tuple):
        _check_choice(init, get_args(NMFInit), fn, "init")
        return None
    if len(init) != 2:
        raise ValueError(f"{fn}: init must be a pair (W, H); got {len(init)} items.")
    b, m, n = xb.shape
    lead = (b,) if batched else ()
    w = _check_init_factor(init[0], (*lead, m, rank), xb, fn, "init W", nonneg=True)
    h = _check_init_factor(init[1], (*lead, rank, n), xb, fn, "init H", nonneg=True)
    return w.reshape(b, m, rank), h.reshape(b, rank, n)


def _check_nmf_memory(xb: torch.Tensor, rank: int, fn: str) -> None:
    b, m, n = xb.shape
    check_memory(
        b * (3 * m * n + 4 * (m + n) * rank + 4 * rank * rank),
        working_dtype(xb.dtype),
        xb.device,
        fn,
        f"a rank-{rank} factorization of a {tuple(xb.shape)} stack",
    )


def _nmf_loop(
    x: torch.Tensor,
    wt: torch.Tensor,
    h: torch.Tensor,
    tracker: _Tracker,
    method: str,
    l1_w: float | torch.Tensor,
    l1_h: float | torch.Tensor,
    max_iter: int,
    callback: Callback | None,
    out: tuple[torch.Tensor, torch.Tensor, bool, torch.dtype],
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The NMF iterations on the scaled stack ``x``; ``out`` (scales of W and H, batched, dtype)
    turns the iterate into what a callback sees. Returns ``W^T``, ``H`` and convergence."""
    b, m, n = x.shape
    rank = h.shape[1]
    eps = torch.finfo(x.dtype).eps
    sweeps_w = _max_sweeps(2.0 * m * n * rank, m, rank)
    sweeps_h = _max_sweeps(2.0 * m * n * rank, n, rank)
    hht = h @ h.mT
    converged = False
    for it in range(1, max_iter + 1):
        act = tracker.active
        p = h @ x.mT  # (B, R, M) = (X H^T)^T, consumed by the update
        if method == "hals":
            _hals_rows(
                wt, p, hht, l1_w, nonneg=True, max_sweeps=sweeps_w, active=act, overwrite_p=True
            )
        else:
            wt = _mu_step(wt, p.mul_(wt), hht, l1_w, eps, act)
        del p
        wtw = wt @ wt.mT
        s = wt @ x  # (B, R, N) = W^T X
        if method == "hals":
            _hals_rows(h, s, wtw, l1_h, nonneg=True, max_sweeps=sweeps_h, active=act)
        else:
            h = _mu_step(h, h * s, wtw, l1_h, eps, act)
        hht = h @ h.mT
        # <S, H> per matrix as a batched dot product (no S-sized temporary).
        sh = (s.reshape(b, 1, -1) @ h.reshape(b, -1, 1)).reshape(b)
        del s
        model2 = (wtw * hht).sum((1, 2))
        res2 = tracker.x2 - 2 * sh + model2
        terms = tracker.x2 + 2 * sh.abs() + model2.abs()
        if tracker.needs_exact(res2, terms):
            res2 = torch.linalg.vector_norm(torch.baddbmm(x, wt.mT, h, alpha=-1), dim=(1, 2))
            res2 = res2.square()
        penalty = _flat(l1_w) * wt.sum((1, 2)) + _flat(l1_h) * h.sum((1, 2))
        converged = tracker.step(res2, penalty, terms, model2)
        if callback is not None:
            a, c, batched, dtype = out
            state = IterationState(
                it, tracker.errors[-1], _nmf_factors(wt.mT * a, h * c, batched, dtype)
            )
            if callback(state) is True:
                break
        if converged:
            break
    return wt, h, converged


def _flat(l1: float | torch.Tensor) -> float | torch.Tensor:
    return l1.reshape(-1) if isinstance(l1, torch.Tensor) else l1


def _mu_step(
    v: torch.Tensor,
    num: torch.Tensor,
    gram: torch.Tensor,
    l1: float | torch.Tensor,
    eps: float,
    act: torch.Tensor,
) -> torch.Tensor:
    """Multiplicative update ``v * P / (G v + l1)`` given ``num = v * P`` (overwritten and
    returned); batch entries with ``act`` False keep ``v``."""
    num.div_((gram @ v).add_(l1).clamp_min_(eps))
    frozen = ~act
    if bool(frozen.any()):
        num[frozen] = v[frozen]
    return num


def _nmf_factors(w: torch.Tensor, h: torch.Tensor, batched: bool, dtype: torch.dtype) -> NMFFactors:
    """Fresh ``NMFFactors`` in ``dtype`` from the stacks ``w`` ``(B, M, R)`` and ``h``."""
    w = w.to(dtype).contiguous()
    h = h.to(dtype, copy=True)
    return NMFFactors(w, h) if batched else NMFFactors(w[0], h[0])
