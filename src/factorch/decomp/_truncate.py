"""Truncated factorisations ``A ~= U B`` (``U`` orthonormal) shared by Tucker, TT and TR.

* :func:`truncate`: one truncated factorisation of a matrix with a rank cap and/or a bound on the
  discarded energy, by thin SVD, Gram eigen-decomposition or a randomized range finder, returning
  the discarded energy ``||A - U B||^2`` exactly as the chosen method knows it;
* :func:`leading_subspace`: the leading left singular subspace (HOOI's update);
* :class:`SafeSVD`: the differentiable path. When the matrix takes part in autograd, every
  truncation is a thin SVD whose backward stays finite on degenerate spectra (repeated or zero
  singular values, as exactly low-rank data have): couplings between singular pairs whose squared
  singular values agree to rounding, and the ``1 / s`` terms of singular values at rounding level,
  are dropped. Wherever the truncation is differentiable (kept singular values distinct and
  non-zero, a gap after the last kept one) this is the exact derivative; elsewhere it is the
  derivative of the gauge-invariant part, finite instead of NaN.

References:
    J. Townsend, "Differentiating the singular value decomposition", 2016 (backward formula).
    M. Seeger et al., "Auto-differentiating linear algebra", arXiv:1710.08717, 2017.

Everything here is private to :mod:`factorch.decomp`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..algebra.internal import randomized_svd as _randomized_svd

# Tall matrices of at most this many entries get one SVD in :func:`leading_subspace` instead of a
# QR then an SVD of its R factor (measured, one thread, float64: 10x9 72 vs 106 us, 438x9 128 vs
# 140 us; the two agree to rounding).
_DIRECT_SVD = 1 << 14

__all__: list[str] = []


@dataclass(frozen=True)
class Truncation:
    """``A ~= u @ b`` with orthonormal ``u`` (m, r); ``discarded = ||A - u b||_F^2``."""

    u: torch.Tensor
    b: torch.Tensor
    discarded: float


def _pick_rank(tail: torch.Tensor, max_rank: int, budget: float | None) -> int:
    """Smallest r in [1, max_rank] with tail[r] <= budget (tail[r] = energy discarded at rank r).

    ``tail`` has ``len(tail) - 1`` candidate ranks 0..; ``tail[0]`` is the total energy.
    Without a budget the cap is used.
    """
    cap = min(max_rank, tail.numel() - 1)
    if budget is None:
        return max(cap, 1)
    ok = (tail[1 : cap + 1] <= budget).nonzero()
    return int(ok[0]) + 1 if ok.numel() else max(cap, 1)


def _tails(energies: torch.Tensor, missing: float = 0.0) -> torch.Tensor:
    """``tail[r] = missing + sum(energies[r:])`` as a reversed cumulative sum (no cancellation).

    ``missing`` is energy no candidate captures (what a randomized sketch missed).
    """
    rev = torch.flip(energies.detach(), (0,)).cumsum(0)
    tail = torch.cat([torch.flip(rev, (0,)), torch.zeros(1, dtype=rev.dtype, device=rev.device)])
    return (tail + missing).cpu()


def _needs_refinement(evals: torch.Tensor, r: int, tail: float, dtype: torch.dtype) -> bool:
    """Whether Gram eigenvectors need one subspace-iteration step to be accurate.

    Eigenvectors of ``A A^H`` are off by an angle ``theta ~ eps * lambda_1 / gap`` (``gap`` between
    the last kept and first dropped eigenvalue), which moves the truncation error by about
    ``theta * sigma_1`` -- squared condition number. That matters only when it is not small next
    to the truncation error itself (an exactly low-rank matrix with a wide spectrum); one step
    ``Q = qr(A A^H U)`` then brings the angle down to ``~eps * sigma_1 / sigma_r``.
    """
    head = evals[: r + 1].tolist()  # (one read of the eigenvalues that matter)
    return _refine(head, r, tail, dtype)


def _refine(values: Sequence[float], r: int, tail: float, dtype: torch.dtype) -> bool:
    """:func:`_needs_refinement` from the leading eigenvalues ``values`` (descending, at least
    ``r``; the ``r + 1``-th when there is one) on the host."""
    lam1 = values[0]
    if lam1 <= 0:
        return False
    gap = values[r - 1] - (values[r] if r < len(values) else 0.0)
    if gap <= 0:
        return True
    theta = torch.finfo(dtype).eps * lam1 / gap
    return theta * theta * lam1 > 1e-4 * tail


def leading_subspace(y: torch.Tensor, k: int) -> torch.Tensor:
    """Orthonormal basis of the leading ``k``-dimensional left singular subspace of ``y``.

    Wide ``y``: eigenvectors of the small Gram ``y y^H``, refined by one subspace-iteration step
    when the squared condition number would cost accuracy (see :func:`_needs_refinement`). Tall
    ``y``: thin QR, then an SVD of the small triangular factor (one SVD of ``y`` when it has at
    most :data:`_DIRECT_SVD` entries, where the fixed cost of the extra calls dominates). Never an
    SVD of a wide matrix.
    """
    m, n = y.shape
    if m > n:
        if m * n <= _DIRECT_SVD:
            return torch.linalg.svd(y, full_matrices=False)[0][:, :k]
        q, r = torch.linalg.qr(y)
        return q @ torch.linalg.svd(r)[0][:, :k]
    evals, evecs = torch.linalg.eigh(y @ y.mH)
    # Descending, clamped at zero, read to the host once (the eigenvalues are few).
    values = [max(v, 0.0) for v in reversed(evals.tolist())]
    u = torch.flip(evecs[:, max(m - k, 0) :], (1,))
    if _refine(values, k, sum(values[k:]), y.dtype):
        u = torch.linalg.qr(y @ (y.mH @ u)).Q
    return u


def truncate(
    a: torch.Tensor,
    *,
    max_rank: int,
    budget: float | None,
    method: str,
    generator: torch.Generator | None = None,
    oversample: int = 10,
    n_iter: int = 1,
) -> Truncation:
    """Truncated factorisation of ``a`` (m x n) by ``method`` in {"full", "gram", "randomized"}.

    ``max_rank`` caps the rank; ``budget`` (squared, absolute) bounds the discarded energy. The
    smallest rank meeting the budget is chosen, never above the cap, never below 1.

    * "full": thin SVD; discarded energy from the trailing singular values (accurate to
      ``eps * sigma_1`` in each singular value).
    * "gram": eigen-decomposition of the ``m x m`` Gram ``a a^H`` (for a wide ``a``), formed in
      float64 when a budget is given so that the eigenvalues resolve discarded energies down to
      ``~1e-16 sigma_1^2``, plus one subspace-iteration step when the kept spectrum is so wide
      that the Gram's squared condition number would cost accuracy; ``b = u^H a``. A tall ``a``
      falls back to "full".
    * "randomized": range finder of ``max_rank + oversample`` columns with ``n_iter`` power
      iterations; the energy the sketch misses, ``||a||^2 - ||Q^H a||^2``, is counted as
      discarded, so the budget is honoured whenever the cap allows.

    When ``a`` takes part in autograd every method becomes a thin SVD with the degenerate-safe
    backward of :class:`SafeSVD` (``torch.linalg.eigh``'s and ``svd``'s own backward give NaN on
    exactly low-rank data).
    """
    m, n = a.shape
    if needs_grad(a):
        return _truncate_differentiable(a, max_rank, budget)
    if method == "gram" and m > n:
        method = "full"
    if method == "full":
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        tail = _tails(s.double() ** 2)
        r = _pick_rank(tail, max_rank, budget)
        return _signed(u[:, :r], s[:r, None].to(a.dtype) * vh[:r], float(tail[r]))
    if method == "gram":
        return _truncate_gram(a, max_rank, budget)
    k = min(max_rank, m, n)
    q, s, vh = _randomized_svd(a, min(k + oversample, m, n), 0, n_iter, generator)
    s2 = s.double() ** 2
    tail = _tails(s2, max(_sq_norm(a) - float(s2.sum()), 0.0))
    r = _pick_rank(tail, k, budget)
    return _signed(q[:, :r], s[:r, None].to(a.dtype) * vh[:r], float(tail[r]))


def _truncate_gram(a: torch.Tensor, max_rank: int, budget: float | None) -> Truncation:
    m = a.shape[0]
    work = a if budget is None else a.to(torch.complex128 if a.is_complex() else torch.float64)
    evals, evecs = torch.linalg.eigh(work @ work.mH)
    evals = torch.flip(evals, (0,)).clamp_min(0).double()
    evecs = torch.flip(evecs, (1,))
    tail = _tails(evals)
    r = _pick_rank(tail, max_rank, budget)
    u = evecs[:, :r].to(a.dtype)
    if r == m:  # nothing dropped
        return _signed(u, u.mH @ a, 0.0)
    if _needs_refinement(evals, r, float(tail[r]), work.dtype):
        # one subspace-iteration step, then Rayleigh--Ritz to get singular vectors back
        q = torch.linalg.qr(a @ (a.mH @ u)).Q
        ritz = torch.flip(torch.linalg.eigh((q.mH @ a) @ (a.mH @ q))[1], (1,))
        u = q @ ritz
    b = u.mH @ a
    discarded = float(tail[r])
    if discarded < 1e4 * torch.finfo(work.dtype).eps * m * float(evals[0]):
        # eigenvalue noise (~eps lambda_1 each) dominates such a tail: measure the residual
        discarded = _sq_norm(a - u @ b)
    return _signed(u, b, discarded)


def _sq_norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach()).double() ** 2)


def _signed(u: torch.Tensor, b: torch.Tensor, discarded: float) -> Truncation:
    """Fix the sign (phase) of each singular vector: its largest-magnitude entry is real positive.

    Singular vectors are defined up to sign; LAPACK, ``eigh`` and different devices pick
    differently. Pinning it makes results method- and device-independent where the basis matters
    (the first split of TR-SVD depends on the basis, not only on the subspace).
    """
    if u.shape[0] == 0 or u.shape[1] == 0:
        return Truncation(u, b, discarded)
    idx = u.abs().argmax(dim=0)
    pivot = u.gather(0, idx[None]).squeeze(0)
    phase = pivot / pivot.abs().clamp_min(
        torch.finfo(u.real.dtype if u.is_complex() else u.dtype).tiny
    )
    phase = torch.where(pivot == 0, torch.ones_like(phase), phase)
    return Truncation(u * phase.conj(), b * phase[:, None], discarded)


def auto_method(m: int, n: int, budget_rel: float | None) -> str:
    """The method "auto" picks for an ``m x n`` matrix.

    Gram eigen-decomposition for wide or square matrices (``n >= m``): one GEMM instead of a thin
    SVD, 3-10x faster on unfoldings (measured, see BENCHMARKS.md), unless an accuracy target is
    tighter than the Gram route can resolve (relative ``< 1e-6``; the Gram is formed in float64
    then); thin SVD otherwise.
    """
    if n >= m and (budget_rel is None or budget_rel >= 1e-6):
        return "gram"
    return "full"


# --- the differentiable path -------------------------------------------------------------------
def _masked_inverse(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """``1 / values`` where ``|values| > threshold``, else 0 (a pseudo-inverse of a diagonal)."""
    keep = values.abs() > threshold
    safe = torch.where(keep, values, torch.ones_like(values))
    return torch.where(keep, 1 / safe, torch.zeros_like(values))


def svd_backward(
    u: torch.Tensor,
    s: torch.Tensor,
    vh: torch.Tensor,
    r: int,
    gu: torch.Tensor | None,
    gs: torch.Tensor | None,
    gvh: torch.Tensor | None,
) -> torch.Tensor:
    """Gradient w.r.t. ``A = U diag(s) Vh`` (thin SVD, ``k = min(m, n)`` triplets) of a loss that
    uses the leading ``r`` triplets, given the gradients of those (``None`` where unused).

    Townsend's formula with the full thin SVD, so that the coupling between kept and dropped
    singular vectors is exact:
    ``gA = U [F o skew(U^H gU) S + S F o skew(V^H gV) + diag(gS) + i diag(Im(U^H gU)_jj / s_j)] Vh
    + (I - U U^H) gU S^+ Vh + U S^+ gVh (I - V V^H)`` with ``F_ij = 1 / (s_j^2 - s_i^2)``.
    ``F_ij`` is set to 0 where ``|s_j^2 - s_i^2|`` is at rounding level (``max(m, n) eps s_1^2``)
    and ``S^+`` drops singular values at rounding level (``max(m, n) eps s_1``): pairs of dropped
    triplets carry no gradient at all, so an exactly low-rank matrix (many zero singular values)
    gets its exact, finite gradient.
    """
    m, k = u.shape
    n = vh.shape[1]
    eps = torch.finfo(s.dtype).eps
    s_max = float(s[0]) if k else 0.0
    level = max(m, n) * eps
    big_u = u.new_zeros(m, k)
    big_vh = vh.new_zeros(k, n)
    diag = s.new_zeros(k)
    if gu is not None:
        big_u[:, :r] = gu
    if gvh is not None:
        big_vh[:r] = gvh
    if gs is not None:
        diag[:r] = gs
    s2 = s * s
    f = _masked_inverse(s2[None, :] - s2[:, None], level * s_max * s_max)
    inv_s = _masked_inverse(s, level * s_max)
    j = u.mH @ big_u
    kk = vh @ big_vh.mH  # V^H gV
    inner = (f * (j - j.mH)) * s[None, :] + s[:, None] * (f * (kk - kk.mH))
    inner = inner + torch.diag(diag).to(inner.dtype)
    if u.is_complex():
        inner = inner + torch.diag(1j * torch.diagonal(j).imag * inv_s)
    ga = u @ inner @ vh
    ga = ga + ((big_u - u @ (u.mH @ big_u)) * inv_s[None, :].to(u.dtype)) @ vh
    ga = ga + u @ (inv_s[:, None].to(u.dtype) * (big_vh - (big_vh @ vh.mH) @ vh))
    return ga


class SafeSVD(torch.autograd.Function):
    """The leading ``r`` triplets of a precomputed thin SVD of ``a``, with :func:`svd_backward`."""

    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        del a
        ctx.save_for_backward(u, s, vh)
        ctx.r = r
        return u[:, :r].clone(), s[:r].clone(), vh[:r].clone()

    @staticmethod
    def backward(
        ctx: Any, gu: torch.Tensor | None, gs: torch.Tensor | None, gvh: torch.Tensor | None
    ) -> tuple[torch.Tensor, None, None, None, None]:
        u, s, vh = ctx.saved_tensors
        return svd_backward(u, s, vh, ctx.r, gu, gs, gvh), None, None, None, None


def needs_grad(a: torch.Tensor) -> bool:
    """Whether ``a`` takes part in autograd here (then truncations take the :class:`SafeSVD`)."""
    return a.requires_grad and torch.is_grad_enabled()


def _truncate_differentiable(a: torch.Tensor, max_rank: int, budget: float | None) -> Truncation:
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(a.detach(), full_matrices=False)
    tail = _tails(s.double() ** 2)
    r = _pick_rank(tail, max_rank, budget)
    ur, sr, vhr = SafeSVD.apply(a, u, s, vh, r)
    return _signed(ur, sr[:, None].to(a.dtype) * vhr, float(tail[r]))
