"""Shared pieces of the non-negative factorizations (NMF, semi-NMF, non-negative CP).

The HALS kernel :func:`_hals_rows` (batched exact block-coordinate descent over rows, with the
Gillis--Glineur inner-loop control), random draws, a symmetric solve with a pseudo-inverse
fallback, argument checks and the per-matrix convergence tracker of batched runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._checks import as_tensor, check_finite, check_generator, check_positive_int, check_tensor
from .._numerics import upcast
from ._cp_sweep import _GAMMA_GRAM
from ._result import DecompositionResult, Stopwatch
from ._scale import batch_fit_scale

# Gillis--Glineur inner-loop control: stop repeating HALS sweeps over one factor once a sweep
# changes it by less than _GG_EPS times the first sweep's change, and never run more than
# 1 + _GG_ALPHA * rho sweeps, rho = (cost of the products that set up the block) / (cost of a
# sweep).
_GG_EPS = 1e-2
_GG_ALPHA = 0.5
_MAX_SWEEPS = 50
# Cost of one row update in FLOP-equivalents beyond its arithmetic: the few kernel launches it
# takes (~15 us per row measured on one CPU core, ~13 GFLOP/s). Keeps rho honest for small
# blocks.
_ROW_OVERHEAD_FLOPS = 2e5
# Fixed cost of setting up a block (MTTKRP or X H^T, Grams: a dozen or more launches).
_SETUP_OVERHEAD_FLOPS = 2e6


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
# kernels


def _max_sweeps(setup_flops: float, cols: int, rank: int) -> int:
    """Gillis--Glineur cap on HALS sweeps over an ``(R, cols)`` block: ``1 + alpha * rho``."""
    sweep = 2.0 * cols * rank * rank + _ROW_OVERHEAD_FLOPS * rank
    rho = 1.0 + (setup_flops + _SETUP_OVERHEAD_FLOPS) / sweep
    return max(1, min(_MAX_SWEEPS, 1 + int(_GG_ALPHA * rho)))


def _hals_rows(
    v: torch.Tensor,
    p: torch.Tensor,
    q: torch.Tensor,
    l1: float | torch.Tensor,
    *,
    nonneg: bool,
    max_sweeps: int,
    active: torch.Tensor | None = None,
    overwrite_p: bool = False,
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
    With ``overwrite_p`` the scaled right-hand side is formed in ``p``'s memory (``p`` is
    destroyed), which saves a ``v``-sized buffer. ``l1`` is a number or a ``(B, 1, 1)`` tensor
    (one weight per batch entry).
    """
    rank = v.shape[-2]
    diag = q.diagonal(dim1=-2, dim2=-1)
    positive = diag > 0
    inv = torch.where(positive, 1.0 / torch.where(positive, diag, 1.0), 0.0)
    eye = torch.eye(rank, dtype=v.dtype, device=v.device)
    # One batch entry, all active: the stopping test is read on the host each sweep and the
    # masks by `live` (all ones) are left out; the same arithmetic, bit for bit.
    # (``live`` is None then.)
    live: torch.Tensor | None = None
    if v.shape[0] > 1 or active is not None:
        live = (
            torch.ones(v.shape[0], dtype=torch.bool, device=v.device)
            if active is None
            else active.clone()
        )
    # Right-hand side (p_k - l1) / q_kk, masked by `live` below (in place: `live` only shrinks).
    has_l1 = bool((l1 != 0).any()) if isinstance(l1, torch.Tensor) else l1 != 0
    if nonneg and has_l1:
        pn = p.sub_(l1) if overwrite_p else p - l1
        pn.mul_(inv.unsqueeze(-1))
    else:
        pn = p.mul_(inv.unsqueeze(-1)) if overwrite_p else p * inv.unsqueeze(-1)
    v_rows = [v[:, k : k + 1, :] for k in range(rank)]
    p_rows = [pn[:, k : k + 1, :] for k in range(rank)]
    prev = torch.empty_like(v) if max_sweeps > 1 else None
    first: torch.Tensor | None = None
    first_limit = 0.0  # (one entry: the stopping threshold, from the first sweep's change)
    rebuild = True
    for _ in range(max_sweeps):
        if rebuild:
            # Row k of the update, with the old row folded into Q:
            # z_k = v_k + s_k (p_k - l1) - s_k q_k V = s_k (p_k - l1) - (s_k q_k - e_k) V,
            # s_k = live / q_kk (0 for frozen entries and zero diagonals: z_k = v_k).
            if live is None:  # (every entry active: the mask is 1)
                scale = inv.unsqueeze(-1)
            else:
                mask = live[:, None, None].to(v.dtype)
                scale = inv.unsqueeze(-1) * mask  # (B, R, 1)
                pn.mul_(mask)
            qe = q * scale - eye
            thr = l1 * scale if has_l1 and not nonneg else None  # (the soft threshold)
            q_rows = [qe[:, k : k + 1, :] for k in range(rank)]
            rebuild = False
        if prev is not None:
            prev.copy_(v)
        for k in range(rank):
            z = torch.baddbmm(p_rows[k], q_rows[k], v, alpha=-1.0)
            if nonneg:
                torch.clamp(z, min=0.0, out=v_rows[k])
            elif thr is not None:
                t = thr[:, k : k + 1, :]
                v_rows[k].copy_(z - z.clamp(-t, t))
            else:
                v_rows[k].copy_(z)
        if prev is None:
            break
        delta = prev.sub_(v).square_().sum((1, 2))
        if live is None:
            if first is None:
                first = delta
                # (the product in the data's dtype, as the batched test computes it)
                first_limit = float((_GG_EPS**2) * first)
            if not float(delta) > first_limit:
                break
            continue
        first = delta if first is None else first
        live = live & (delta > (_GG_EPS**2) * first)
        if not bool(live.any()):
            break
        rebuild = v.shape[0] > 1  # a batch entry may have stopped


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
    check_generator(generator, fn)
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: callback must be callable or None; got {type(callback).__name__}.")
    return max_iter, tol


def _check_real(x: torch.Tensor, fn: str, name: str) -> None:
    if x.is_complex():
        raise TypeError(f"{fn}: {name} must be real; got {x.dtype}.")


def _check_matrix_stack(
    matrix: object, fn: str, *, nonneg: bool
) -> tuple[torch.Tensor, bool, torch.Tensor]:
    """A real finite ``(M, N)`` or ``(B, M, N)`` tensor (numpy arrays converted, detached), as a
    stack ``(B, M, N)`` (a view), whether it was given as a stack, and each member's largest
    magnitude (float64); refuses all-zero matrices (and, with ``nonneg``, negative entries)."""
    x = check_tensor(
        as_tensor(matrix, fn, "matrix").detach(), fn, "matrix", min_ndim=2, finite=False
    )
    if x.ndim > 3:
        raise ValueError(
            f"{fn}: matrix must be (M, N) or a (B, M, N) stack; got shape {tuple(x.shape)}."
        )
    _check_real(x, fn, "matrix")
    xb = x if x.ndim == 3 else x.unsqueeze(0)
    flat = xb.reshape(xb.shape[0], -1)
    low, high = flat.amin(1), flat.amax(1)  # (torch.aminmax along a dim is much slower)
    if not bool(torch.isfinite(low).all() & torch.isfinite(high).all()):
        check_finite(xb, fn, "matrix")
    xmin = float(low.min())
    if nonneg and xmin < 0:
        raise ValueError(
            f"{fn}: matrix has {int((xb < 0).sum())} negative entries (min {xmin:.3g}); "
            "NMF needs X >= 0. Shift or clip the data, or use semi_nmf for data of both signs."
        )
    peaks = torch.maximum(-low, high)
    if bool((peaks == 0).any()):
        raise ValueError(
            f"{fn}: matrix is all zeros (in at least one batch entry); nothing to fit."
        )
    return xb, x.ndim == 3, peaks.to(torch.float64)


def _scaled_stack(
    xb: torch.Tensor, peaks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stack in its working dtype divided by each member's power-of-four scale (see
    :mod:`factorch.decomp._scale`; ``peaks`` the members' largest magnitudes), the scales
    ``(B,)`` (float64) and the squared Frobenius norms ``(B,)`` of the scaled members."""
    x = upcast(xb)
    scales = batch_fit_scale(x, peaks)
    if bool((scales != 1).any()):
        x = x / scales.to(x.dtype).reshape(-1, 1, 1)
    return x, scales, torch.linalg.vector_norm(x, dim=(1, 2)).square()


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
    """Per-matrix convergence of a batched run: errors, their rounding floors, freezing,
    iteration counts.

    Errors come from the Gram formula ``||X||^2 - 2 <., .> + <., .>`` of each update while it
    resolves what is asked of it (its rounding floor is estimated as for CP, see
    :mod:`factorch.decomp._cp_sweep`), and from the exact residual once it does not (sticky, for
    the whole stack): when the formula no longer knows an active matrix's error to 1/8, or
    (``tol > 0``) a change is within its floor and that floor is coarser than ``tol``. A matrix
    stops when its error changes by at most ``max(tol, floor_prev + floor)`` between two errors
    of the same kind. The last error is replaced by the exact one of the returned factors
    (:meth:`finish`).
    """

    def __init__(self, x: torch.Tensor, x2: torch.Tensor, tol: float, scales: torch.Tensor) -> None:
        self.x2 = x2
        # Members are weighted by their scale in the stack's error (largest scale factored out).
        self.weights = (scales / scales.max()).square().to(x2.dtype)
        self.scales = scales  # float64 (B,): objectives are reported in the data's units
        self.total = float((x2 * self.weights).sum())
        self.tol = tol
        self.eps = torch.finfo(x.dtype).eps
        self.active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        self.iters = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        self.exact = False
        self.prev: torch.Tensor | None = None
        self.prev_floor: torch.Tensor | None = None
        self.prev_exact = False
        self.errors: list[float] = []
        self.objective: list[float] = []

    def _gram(self, res2: torch.Tensor, terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        err = (res2.clamp_min(0.0) / self.x2).sqrt()
        noise2 = _GAMMA_GRAM * self.eps * terms / self.x2
        return err, noise2 / torch.maximum(err, noise2.sqrt())

    def needs_exact(self, res2: torch.Tensor, terms: torch.Tensor) -> bool:
        """Whether this iteration's errors must be exact (see the class docstring); ``res2`` and
        ``terms`` (sum of the magnitudes of its terms) are the formula's."""
        if not self.exact:
            err, floor = self._gram(res2, terms)
            blind = floor > err / 8
            if self.tol > 0 and self.prev is not None and self.prev_floor is not None:
                noise = floor + self.prev_floor
                blind |= (noise > self.tol) & ((self.prev - err).abs() <= noise)
            self.exact = bool((blind & self.active).any())
        return self.exact

    def step(
        self, res2: torch.Tensor, penalty: torch.Tensor, terms: torch.Tensor, model2: torch.Tensor
    ) -> bool:
        """Record one iteration (``res2`` squared residuals, exact if :meth:`needs_exact` said
        so, else the formula's with ``terms`` the magnitudes of its terms; ``model2`` the squared
        model norms); return True when every matrix has converged."""
        res2 = res2.clamp_min(0.0)
        if self.exact:
            err = (res2 / self.x2).sqrt()
            floor = 4.0 * self.eps * (1.0 + (model2.abs() / self.x2).sqrt())
        else:
            err, floor = self._gram(res2, terms)
        self.iters += self.active.long()
        self.errors.append(math.sqrt(float((res2 * self.weights).sum()) / self.total))
        scaled = (0.5 * res2 + penalty).to(torch.float64)
        self.objective.append(float((scaled * self.scales * self.scales).sum()))
        same_kind = self.prev_exact == self.exact
        if self.prev is not None and self.prev_floor is not None and self.tol > 0 and same_kind:
            limit = (self.prev_floor + floor).clamp_min(self.tol)
            self.active &= ~((self.prev - err).abs() <= limit)
        self.prev, self.prev_floor, self.prev_exact = err, floor, self.exact
        return not bool(self.active.any())

    def finish(self, x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> None:
        """Replace the last errors by the exact ones of the returned factors ``left @ right``
        (in the units of the scaled stack ``x``)."""
        res2 = torch.linalg.vector_norm(torch.baddbmm(x, left, right, alpha=-1), dim=(1, 2))
        res2 = res2.square()
        self.prev = (res2 / self.x2).sqrt()
        if self.errors:
            self.errors[-1] = math.sqrt(float((res2 * self.weights).sum()) / self.total)


def _member_scales(scales: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member, two powers of two whose product is its scale ``(B,)``, as ``(B, 1, 1)``
    tensors in ``like``'s dtype (the first for the left factor, the second for the right)."""
    exponent = torch.frexp(scales)[1] - 1
    half = torch.div(exponent, 2, rounding_mode="floor")
    ones = torch.ones_like(scales)
    left, right = torch.ldexp(ones, half), torch.ldexp(ones, exponent - half)
    return left.to(like.dtype).reshape(-1, 1, 1), right.to(like.dtype).reshape(-1, 1, 1)


def _finish(
    model: object,
    tracker: _Tracker,
    converged: bool,
    clock: Stopwatch,
    init_time: float,
    method: str,
    batched: bool,
    dtype: torch.dtype,
) -> DecompositionResult:
    """The result; per-matrix errors of a stack in ``dtype`` (the input's)."""
    extras: dict[str, object] = {"method": method, "objective": tuple(tracker.objective)}
    if batched and tracker.prev is not None:
        extras["batch_errors"] = tracker.prev.to(dtype, copy=True)
        extras["batch_iterations"] = tracker.iters.clone()
    finite = tracker.prev is None or bool(torch.isfinite(tracker.prev).all())
    return DecompositionResult(
        model=model,
        errors=tuple(tracker.errors),
        iterations=len(tracker.errors),
        converged=converged and finite,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras=extras,
    )
