"""Non-negative and semi-non-negative matrix factorization, batched over a leading dimension.

* :func:`nmf`: ``X ~= W H`` with ``W, H >= 0`` (Frobenius loss, optional L1 on either factor),
  by accelerated HALS (Cichocki & Phan 2009; Gillis & Glineur 2012) or multiplicative updates
  (Lee & Seung 2001).
* :func:`semi_nmf`: ``X ~= F G^T`` with ``G >= 0`` and ``F`` of any sign (Ding, Li & Jordan,
  TPAMI 2010), with optional top-k sparsity of the columns of ``F``.

Both accept a ``(M, N)`` matrix or a ``(B, M, N)`` stack; a stack is factorized in one vectorised
run (no Python loop over the batch) and every matrix follows exactly the iterations it would follow
alone: a matrix whose error has converged is frozen while the others go on.

The HALS kernel :func:`_hals_rows` is shared with :mod:`factorch.decomp.cp_nn`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import check_positive_int, check_tensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch

__all__ = ["NMFFactors", "NMFInit", "NMFMethod", "SemiNMFFactors", "SemiNMFInit", "nmf", "semi_nmf"]

NMFMethod = Literal["hals", "mu"]
NMFInit = Literal["nndsvd", "random"]
SemiNMFInit = Literal["kmeans", "random"]

# Gillis--Glineur inner-loop control: stop repeating HALS sweeps over one factor once a sweep
# changes it by less than _GG_EPS times the first sweep's change, and never run more than
# 1 + _GG_ALPHA * rho sweeps, rho = (cost of the products that set up the block) / (cost of a
# sweep).
_GG_EPS = 1e-2
_GG_ALPHA = 0.5
_MAX_SWEEPS = 50
# Cost of one row update in FLOP-equivalents beyond its arithmetic: the few kernel launches it
# takes (~5 us each at ~20 GFLOP/s). Keeps rho honest for small blocks, where overhead dominates.
_ROW_OVERHEAD_FLOPS = 1e5
# Fixed cost of setting up a block (MTTKRP or X H^T, Grams: a dozen or more launches).
_SETUP_OVERHEAD_FLOPS = 2e6
_KMEANS_ITERS = 20


# ---------------------------------------------------------------------------------------------
# result types


@dataclass(frozen=True, eq=False)
class NMFFactors:
    """``X ~= W @ H`` with ``W`` ``(..., M, R)`` and ``H`` ``(..., R, N)`` (leading batch dims).

    Validated on creation (matching shapes, one device and dtype); non-negativity is not checked.
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


@dataclass(frozen=True, eq=False)
class SemiNMFFactors:
    """``X ~= F @ G^T`` with ``F`` ``(..., M, R)`` (any sign) and ``G`` ``(..., N, R)`` (``>= 0``).

    Validated on creation (matching shapes, one device and dtype).
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


def _check_pair(
    a: torch.Tensor, b: torch.Tensor, cls: str, na: str, nb: str, *, transposed: bool
) -> None:
    rank_b = b.shape[-1] if transposed else b.shape[-2]
    if a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != rank_b:
        want = "(..., N, R)" if transposed else "(..., R, N)"
        raise ValueError(
            f"{cls}: {na} {tuple(a.shape)} and {nb} {tuple(b.shape)} do not match; {na} must be "
            f"(..., M, R) and {nb} {want} with the same leading dimensions."
        )
    if a.device != b.device or a.dtype != b.dtype:
        raise ValueError(
            f"{cls}: {na} and {nb} must share device and dtype; got {a.device}/{a.dtype} and "
            f"{b.device}/{b.dtype}."
        )


# ---------------------------------------------------------------------------------------------
# shared kernels (also used by cp_nn)


def _max_sweeps(setup_flops: float, cols: int, rank: int) -> int:
    """Gillis--Glineur cap on HALS sweeps over an ``(R, cols)`` block: ``1 + alpha * rho``."""
    sweep = 2.0 * cols * rank * rank + _ROW_OVERHEAD_FLOPS * rank
    rho = 1.0 + (setup_flops + _SETUP_OVERHEAD_FLOPS) / sweep
    return max(1, min(_MAX_SWEEPS, 1 + int(_GG_ALPHA * rho)))


def _hals_rows(
    v: torch.Tensor,
    p: torch.Tensor,
    q: torch.Tensor,
    l1: float,
    *,
    nonneg: bool,
    max_sweeps: int,
    active: torch.Tensor | None = None,
) -> None:
    """HALS (exact block coordinate descent over rows), in place on ``v``.

    Decreases ``f(V) = 1/2 tr(V^T Q V) - tr(P^T V) + l1 * sum|V|`` over ``V`` (``>= 0`` when
    ``nonneg``) for batched ``v``, ``p`` of shape ``(B, R, I)`` and symmetric PSD ``q``
    ``(B, R, R)``.
    Row ``k`` is set to its exact minimiser with the other rows fixed:
    ``v_k = prox((p_k - sum_{j != k} q_kj v_j) / q_kk)``, the prox being ``max(. - l1/q_kk, 0)``
    (non-negative) or soft-thresholding by ``l1/q_kk`` (free sign). Rows with ``q_kk = 0`` and
    batch entries with ``active`` False are left unchanged. Sweeps repeat (Gillis & Glineur 2012)
    until a sweep changes a batch entry by less than ``_GG_EPS`` times its first sweep's change
    (per entry), at most ``max_sweeps`` times. Each row update cannot increase ``f``.
    """
    rank = v.shape[-2]
    diag = q.diagonal(dim1=-2, dim2=-1)
    inv = torch.where(diag > 0, 1.0 / torch.where(diag > 0, diag, 1.0), 0.0)
    live = (
        torch.ones(v.shape[0], dtype=torch.bool, device=v.device)
        if active is None
        else active.clone()
    )
    first: torch.Tensor | None = None
    for _ in range(max_sweeps):
        scale = (inv * live[:, None]).unsqueeze(-1)  # (B, R, 1)
        qn = q * scale
        pn = (p - l1) * scale if nonneg else p * scale
        thr = l1 * scale
        prev = v.clone() if max_sweeps > 1 else None
        for k in range(rank):
            vk = v[:, k : k + 1, :]
            z = torch.baddbmm(vk + pn[:, k : k + 1, :], qn[:, k : k + 1, :], v, alpha=-1.0)
            if nonneg:
                z.clamp_min_(0.0)
            elif l1 > 0:
                t = thr[:, k : k + 1, :]
                z = z - z.clamp(-t, t)
            vk.copy_(z)
        if prev is None:
            break
        delta = (v - prev).square().sum((1, 2))
        first = delta if first is None else first
        live = live & (delta > (_GG_EPS**2) * first)
        if not bool(live.any()):
            break


def _rand(
    shape: Sequence[int],
    like: torch.Tensor,
    generator: torch.Generator | None,
    *,
    normal: bool = False,
) -> torch.Tensor:
    """Uniform [0, 1) (or standard normal) numbers drawn on the generator's device, then moved."""
    device = generator.device if generator is not None else like.device
    draw = torch.randn if normal else torch.rand
    out = draw(tuple(shape), generator=generator, dtype=like.dtype, device=device)
    return out.to(like.device)


def _sym_solve(rhs: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """``gram^{-1} rhs`` for batched symmetric PSD ``gram`` ``(..., R, R)``: Cholesky, with a
    pseudo-inverse for the batch entries where Cholesky fails (singular Gram)."""
    chol, info = torch.linalg.cholesky_ex(gram)
    out = torch.cholesky_solve(rhs, chol)
    bad = info > 0
    if bool(bad.any()):
        pinv = torch.linalg.pinv(gram, hermitian=True) @ rhs
        out = torch.where(bad.reshape(*bad.shape, 1, 1), pinv, out)
    return out


def _check_choice(value: object, options: tuple[str, ...], fn: str, name: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{fn}: {name} must be one of {options}; got {value!r}.")
    return value


def _check_penalty(value: object, fn: str, name: str) -> float:
    """A finite real number >= 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a non-negative float; got {type(value).__name__}.")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{fn}: {name} must be a finite non-negative float; got {value}.")
    return value


def _check_loop_options(
    max_iter: object, tol: object, generator: object, callback: object, fn: str
) -> tuple[int, float]:
    max_iter = check_positive_int(max_iter, fn, "max_iter")
    tol = _check_penalty(tol, fn, "tol")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{fn}: generator must be a torch.Generator or None; got {type(generator).__name__}."
        )
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: callback must be callable or None; got {type(callback).__name__}.")
    return max_iter, tol


def _check_real(x: torch.Tensor, fn: str, name: str) -> None:
    if x.is_complex():
        raise TypeError(f"{fn}: {name} must be real; got {x.dtype}.")


def _check_matrix_stack(matrix: object, fn: str) -> torch.Tensor:
    x = check_tensor(matrix, fn, "matrix", min_ndim=2)
    if x.ndim > 3:
        raise ValueError(
            f"{fn}: matrix must be (M, N) or a (B, M, N) stack; got shape {tuple(x.shape)}."
        )
    _check_real(x, fn, "matrix")
    return x


def _check_init_factor(
    t: object, want: tuple[int, ...], x: torch.Tensor, fn: str, name: str, *, nonneg: bool
) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(t).__name__}.")
    if tuple(t.shape) != want:
        raise ValueError(f"{fn}: {name} must have shape {want}; got {tuple(t.shape)}.")
    if t.dtype != x.dtype or t.device != x.device:
        raise ValueError(
            f"{fn}: {name} must match the matrix's dtype and device ({x.dtype}, {x.device}); "
            f"got ({t.dtype}, {t.device})."
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{fn}: {name} contains NaN or Inf entries.")
    if nonneg and bool((t < 0).any()):
        raise ValueError(f"{fn}: {name} must be non-negative; got min {float(t.min()):.3g}.")
    return t


class _Tracker:
    """Per-matrix convergence of a batched run: errors, freezing, iteration counts."""

    def __init__(self, x: torch.Tensor, tol: float) -> None:
        self.x2 = x.square().sum((1, 2))
        self.total = float(self.x2.sum())
        self.tol = tol
        self.active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        self.iters = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        self.prev: torch.Tensor | None = None
        self.errors: list[float] = []
        self.objective: list[float] = []

    def step(self, res2: torch.Tensor, penalty: torch.Tensor) -> bool:
        """Record one iteration; return True when every matrix has converged."""
        res2 = res2.clamp_min(0.0)
        err = (res2 / self.x2).sqrt()
        self.iters += self.active.long()
        self.errors.append(math.sqrt(float(res2.sum()) / self.total))
        self.objective.append(float((0.5 * res2 + penalty).sum()))
        if self.prev is not None and self.tol > 0:
            self.active &= ~((self.prev - err).abs() < self.tol)
        self.prev = err
        return not bool(self.active.any())


def _finish(
    tensor: object,
    tracker: _Tracker,
    converged: bool,
    clock: Stopwatch,
    init_time: float,
    method: str,
    batched: bool,
) -> DecompositionResult:
    extras: dict[str, object] = {"method": method, "objective": tuple(tracker.objective)}
    if batched and tracker.prev is not None:
        extras["batch_errors"] = tracker.prev.clone()
        extras["batch_iterations"] = tracker.iters.clone()
    return DecompositionResult(
        tensor=tensor,
        errors=tuple(tracker.errors),
        iterations=len(tracker.errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras=extras,
    )


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
    sigma = torch.cat([torch.ones_like(sigma_u[..., :1]), sigma_u], -1)
    scale = (s * sigma).sqrt().unsqueeze(-2)
    w = uu * scale
    h = (vv * scale).mT
    if fill:
        avg = x.mean((-2, -1), keepdim=True)
        w = torch.where(w > 0, w, avg)
        h = torch.where(h > 0, h, avg)
    return w, h.contiguous()


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
    to about ``sqrt(eps)`` (1e-8 in float64).

    Args:
        matrix: ``(M, N)`` non-negative matrix, or a ``(B, M, N)`` stack factorized in one
            vectorised run (each matrix converges on its own; see ``extras``).
        rank: ``R``, at most ``min(M, N)`` (the non-negative rank never exceeds it).
        method: ``"hals"`` (default; usually much faster per unit of error) or ``"mu"``.
        init: ``"nndsvd"`` (Boutsidis & Gallopoulos 2008, leading singular vectors from the
            smaller Gram matrix; for ``"mu"`` its zeros are filled with ``mean(X)``, NNDSVDa),
            ``"random"`` (``sqrt(mean(X) / R) * |N(0, 1)|``, as scikit-learn), or a pair
            ``(W, H)`` of non-negative tensors shaped like the factors (copied, never modified).
        max_iter: maximum number of iterations (one update of ``W`` and one of ``H`` each).
        tol: a matrix stops when its relative error changes by less than ``tol`` between two
            iterations; ``0`` runs exactly ``max_iter`` iterations.
        l1_w, l1_h: L1 (sparsity) weights on ``W`` and ``H`` (``>= 0``), in the units of
            ``1/2 ||X - W H||^2``. With L1 on one factor only, its scale can drift into the other.
        generator: seeds ``init="random"``.
        callback: called after each iteration with an :class:`IterationState` (``tensor`` is the
            current :class:`NMFFactors`); returning True stops the run.

    Returns:
        :class:`DecompositionResult` with ``tensor = NMFFactors(W, H)`` (batched like the input),
        ``errors`` the relative error per iteration (for a stack, ``||X - WH|| / ||X||`` over the
        whole stack), ``extras["objective"]`` the penalised objective per iteration, and for a
        stack ``extras["batch_errors"]`` ``(B,)`` and ``extras["batch_iterations"]`` ``(B,)``.

    Raises:
        ValueError: negative, NaN or Inf entries; an all-zero matrix; ``rank > min(M, N)``; an
            unknown ``method`` or ``init``; a negative penalty; init factors of the wrong shape,
            dtype or device, or with negative entries.

    Not differentiable (runs under ``torch.no_grad``). Device and dtype follow the input.
    Deterministic given the inputs (and ``generator`` for random init).
    """
    fn = "nmf"
    x = _check_matrix_stack(matrix, fn)
    rank = check_positive_int(rank, fn, "rank")
    _check_choice(method, get_args(NMFMethod), fn, "method")
    max_iter, tol = _check_loop_options(max_iter, tol, generator, callback, fn)
    l1_w = _check_penalty(l1_w, fn, "l1_w")
    l1_h = _check_penalty(l1_h, fn, "l1_h")
    batched = x.ndim == 3
    xb = x if batched else x.unsqueeze(0)
    b, m, n = xb.shape
    if rank > min(m, n):
        raise ValueError(
            f"{fn}: rank must be at most min(M, N) = {min(m, n)} for a {m} x {n} matrix (a larger "
            f"rank cannot lower the error); got {rank}."
        )
    if bool((xb < 0).any()):
        raise ValueError(
            f"{fn}: matrix has {int((xb < 0).sum())} negative entries (min "
            f"{float(xb.min()):.3g}); NMF needs X >= 0. Shift or clip the data, or use semi_nmf "
            "for data of both signs."
        )
    if bool((xb.square().sum((1, 2)) == 0).any()):
        raise ValueError(
            f"{fn}: matrix is all zeros (in at least one batch entry); nothing to fit."
        )
    clock = Stopwatch()
    with torch.no_grad():
        if isinstance(init, tuple):
            if len(init) != 2:
                raise ValueError(f"{fn}: init must be a pair (W, H); got {len(init)} items.")
            lead = (b,) if batched else ()
            w = _check_init_factor(init[0], (*lead, m, rank), x, fn, "init W", nonneg=True)
            h = _check_init_factor(init[1], (*lead, rank, n), x, fn, "init H", nonneg=True)
            wt = w.reshape(b, m, rank).mT.contiguous()
            h = h.reshape(b, rank, n).clone()
        else:
            _check_choice(init, get_args(NMFInit), fn, "init")
            if init == "nndsvd":
                w, h = _nndsvd(xb, rank, fill=method == "mu")
            else:
                avg = xb.mean((1, 2), keepdim=True)
                w = (avg / rank).sqrt() * _rand((b, m, rank), xb, generator, normal=True).abs()
                h = (avg / rank).sqrt() * _rand((b, rank, n), xb, generator, normal=True).abs()
            wt, h = w.mT.contiguous(), h.contiguous()
        init_time = clock.elapsed
        eps = torch.finfo(x.dtype).eps
        tracker = _Tracker(xb, tol)
        sweeps_w = _max_sweeps(2.0 * m * n * rank, m, rank)
        sweeps_h = _max_sweeps(2.0 * m * n * rank, n, rank)
        hht = h @ h.mT
        converged = False
        for it in range(1, max_iter + 1):
            act = tracker.active
            p = h @ xb.mT  # (B, R, M) = (X H^T)^T
            if method == "hals":
                _hals_rows(wt, p, hht, l1_w, nonneg=True, max_sweeps=sweeps_w, active=act)
            else:
                new = wt * p / (hht @ wt + l1_w).clamp_min(eps)
                wt = torch.where(act[:, None, None], new, wt)
            wtw = wt @ wt.mT
            s = wt @ xb  # (B, R, N) = W^T X
            if method == "hals":
                _hals_rows(h, s, wtw, l1_h, nonneg=True, max_sweeps=sweeps_h, active=act)
            else:
                new = h * s / (wtw @ h + l1_h).clamp_min(eps)
                h = torch.where(act[:, None, None], new, h)
            hht = h @ h.mT
            res2 = tracker.x2 - 2 * (s * h).sum((1, 2)) + (wtw * hht).sum((1, 2))
            penalty = l1_w * wt.sum((1, 2)) + l1_h * h.sum((1, 2))
            converged = tracker.step(res2, penalty)
            stop = False
            if callback is not None:
                state = IterationState(it, tracker.errors[-1], _nmf_factors(wt, h, batched))
                stop = callback(state) is True
            if converged or stop:
                break
    return _finish(
        _nmf_factors(wt, h, batched), tracker, converged, clock, init_time, method, batched
    )


def _nmf_factors(wt: torch.Tensor, h: torch.Tensor, batched: bool) -> NMFFactors:
    w = wt.mT.contiguous()
    return NMFFactors(w, h.clone()) if batched else NMFFactors(w[0], h[0].clone())


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
       ``A^+ = max(A, 0)``, ``A^- = max(-A, 0)`` (denominator floored at the dtype's eps).

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
            run (each matrix converges on its own).
        rank: ``R``, at most ``min(M + 1, N)`` (the semi-non-negative rank is ``rank(X)`` or
            ``rank(X) + 1``, Gillis & Kumar 2015, and never exceeds ``N``).
        max_iter: maximum number of iterations.
        tol: a matrix stops when its relative error changes by less than ``tol``; 0 runs all.
        init: ``"kmeans"`` (Ding et al.: k-means++ seeded Lloyd clustering of the columns,
            ``G = indicator + 0.2``), ``"random"`` (``G`` uniform in [0, 1)), or a pair ``(F, G)``
            (``G >= 0``). ``F`` from a pair is only used as the previous iterate of the sparse
            step when ``top_k`` is set; otherwise the first step recomputes it from ``G``.
        top_k: keep this many entries per column of ``F`` (1 to ``M``); None for dense ``F``.
        generator: seeds the k-means++ seeding or the random ``G``.
        callback: called after each iteration with an :class:`IterationState` (``tensor`` the
            current :class:`SemiNMFFactors`); returning True stops the run.

    Returns:
        :class:`DecompositionResult` with ``tensor = SemiNMFFactors(F, G)``, the relative error
        ``||X - F G^T|| / ||X||`` per iteration, and for a stack ``extras["batch_errors"]`` and
        ``extras["batch_iterations"]``.

    Raises:
        ValueError: NaN/Inf entries, an all-zero matrix, ``rank`` too large, ``top_k`` outside
            ``[1, M]``, an unknown ``init``, init factors of the wrong shape or a negative ``G``.

    Not differentiable (runs under ``torch.no_grad``). Device and dtype follow the input.
    """
    fn = "semi_nmf"
    x = _check_matrix_stack(matrix, fn)
    rank = check_positive_int(rank, fn, "rank")
    max_iter, tol = _check_loop_options(max_iter, tol, generator, callback, fn)
    batched = x.ndim == 3
    xb = x if batched else x.unsqueeze(0)
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
    if bool((xb.square().sum((1, 2)) == 0).any()):
        raise ValueError(
            f"{fn}: matrix is all zeros (in at least one batch entry); nothing to fit."
        )
    clock = Stopwatch()
    with torch.no_grad():
        f_prev: torch.Tensor | None = None
        if isinstance(init, tuple):
            if len(init) != 2:
                raise ValueError(f"{fn}: init must be a pair (F, G); got {len(init)} items.")
            lead = (b,) if batched else ()
            f0 = _check_init_factor(init[0], (*lead, m, rank), x, fn, "init F", nonneg=False)
            g0 = _check_init_factor(init[1], (*lead, n, rank), x, fn, "init G", nonneg=True)
            g = g0.reshape(b, n, rank).clone()
            if top_k is not None:
                f_prev = _top_k_columns(f0.reshape(b, m, rank), top_k)
        else:
            _check_choice(init, get_args(SemiNMFInit), fn, "init")
            if init == "kmeans":
                g = _kmeans_indicator(xb.mT, rank, generator) + 0.2
            else:
                g = _rand((b, n, rank), xb, generator)
        init_time = clock.elapsed
        eps = torch.finfo(x.dtype).eps
        tracker = _Tracker(xb, tol)
        gtg = g.mT @ g
        f = torch.zeros(b, m, rank, dtype=x.dtype, device=x.device)
        converged = False
        for it in range(1, max_iter + 1):
            act = tracker.active[:, None, None]
            xg = xb @ g  # (B, M, R)
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
            xtf = xb.mT @ f  # (B, N, R)
            num = xtf.clamp_min(0) + g @ (-ftf).clamp_min(0)
            den = (-xtf).clamp_min(0) + g @ ftf.clamp_min(0)
            g = torch.where(act, g * (num / den.clamp_min(eps)).sqrt(), g)
            gtg = g.mT @ g
            res2 = tracker.x2 - 2 * (xtf * g).sum((1, 2)) + (ftf * gtg).sum((1, 2))
            converged = tracker.step(res2, torch.zeros_like(res2))
            stop = False
            if callback is not None:
                state = IterationState(it, tracker.errors[-1], _semi_factors(f, g, batched))
                stop = callback(state) is True
            if converged or stop:
                break
    return _finish(
        _semi_factors(f, g, batched), tracker, converged, clock, init_time, "semi", batched
    )


def _f_objective(f: torch.Tensor, xg: torch.Tensor, gtg: torch.Tensor) -> torch.Tensor:
    """``||X - F G^T||^2 - ||X||^2 = -2 <X G, F> + <F^T F, G^T G>`` per batch entry."""
    return -2 * (xg * f).sum((1, 2)) + ((f.mT @ f) * gtg).sum((1, 2))


def _semi_factors(f: torch.Tensor, g: torch.Tensor, batched: bool) -> SemiNMFFactors:
    return (
        SemiNMFFactors(f.clone(), g.clone())
        if batched
        else SemiNMFFactors(f[0].clone(), g[0].clone())
    )
