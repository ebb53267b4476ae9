"""Pieces shared by the Tucker, tensor-train and tensor-ring algorithms.

* rank and option validation at the public boundary;
* :func:`truncate`: one truncated factorisation ``A ~= U B`` (``U`` orthonormal) of a matrix with
  a rank cap and/or a bound on the discarded energy, by thin SVD, Gram eigen-decomposition or a
  randomized range finder, returning the discarded energy ``||A - U B||^2`` exactly as the chosen
  method knows it;
* :func:`sweep`: the dimension-tree Gauss--Seidel sweep used by HOOI and non-negative Tucker
  (each partial contraction ``X x_{m in S} U_m^H`` is computed once and shared by the modes below
  it, so a sweep reads the full tensor about twice instead of ``N`` times);
* :func:`converged`: the stopping rule for errors computed from norms.

Everything here is private to :mod:`factorch.decomp` (no ``__all__`` entries).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import mode_product
from ..algebra.internal import randomized_svd as _randomized_svd

__all__: list[str] = []


# --- validation ------------------------------------------------------------------------------
def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_LINALG_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def check_linalg_dtype(x: torch.Tensor, fn: str, name: str = "tensor") -> None:
    """SVD, QR and eigh need single or double precision (half precision is refused)."""
    if x.dtype not in _LINALG_DTYPES:
        raise TypeError(
            f"{fn}: {name} must be float32, float64, complex64 or complex128; got {x.dtype}. "
            f"Convert it first, e.g. {name}.float()."
        )


def check_literal(value: object, options: Sequence[str], fn: str, name: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{fn}: {name} must be one of {tuple(options)}; got {value!r}.")
    return value


def check_rel_tol(value: object, fn: str, name: str) -> float:
    """A relative accuracy in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a float in (0, 1); got {type(value).__name__}.")
    value = float(value)
    if not (0.0 < value < 1.0):
        raise ValueError(
            f"{fn}: {name} must be a relative accuracy in (0, 1); got {value}. "
            f"{name}=0.01 asks for ||X - X_hat|| <= 0.01 ||X||."
        )
    return value


def check_iter_options(max_iter: object, tol: object, fn: str) -> tuple[int, float]:
    if not _is_int(max_iter):
        raise TypeError(f"{fn}: max_iter must be a positive int; got {type(max_iter).__name__}.")
    if max_iter < 1:  # type: ignore[operator]
        raise ValueError(f"{fn}: max_iter must be a positive int; got {max_iter!r}.")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(
            f"{fn}: tol must be a non-negative float (0 runs all max_iter iterations); got {tol!r}."
        )
    return int(max_iter), float(tol)  # type: ignore[arg-type]


def check_callback(callback: object, fn: str) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: callback must be callable or None; got {type(callback).__name__}.")


def check_generator(generator: object, fn: str) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{fn}: generator must be a torch.Generator or None; got {type(generator).__name__}."
        )


def check_tucker_rank(
    rank: object, shape: Sequence[int], modes: Sequence[int], fn: str
) -> tuple[int, ...]:
    """Per-mode Tucker ranks for ``modes``: an int (same for every mode) or one int per mode.

    A rank larger than its mode size is an error (it cannot be represented with orthonormal
    factors); the message names the mode and the limit.
    """
    if _is_int(rank):
        ranks = (rank,) * len(modes)
    elif isinstance(rank, (tuple, list)):
        if len(rank) != len(modes):
            raise ValueError(
                f"{fn}: rank needs one entry per decomposed mode ({len(modes)}); got {tuple(rank)}."
            )
        ranks = tuple(rank)
    else:
        raise TypeError(f"{fn}: rank must be an int or a tuple of ints; got {type(rank).__name__}.")
    for i, (m, r) in enumerate(zip(modes, ranks)):
        if not _is_int(r):
            raise TypeError(f"{fn}: rank[{i}] must be an int; got {type(r).__name__}.")
        if r < 1:
            raise ValueError(f"{fn}: rank must be positive; got {r} for mode {m}.")
        if r > shape[m]:
            raise ValueError(
                f"{fn}: rank {r} for mode {m} exceeds that mode's size {shape[m]}; a Tucker rank "
                f"can be at most the mode size (pass rank[{i}] <= {shape[m]})."
            )
    return ranks  # type: ignore[return-value]


def check_core_bound(ranks: dict[int, int], shape: Sequence[int], fn: str) -> None:
    """Each ``R_n <= prod_{m != n} R_m`` (undecomposed modes count with their full size)."""
    sizes = [ranks.get(m, shape[m]) for m in range(len(shape))]
    for n, r in ranks.items():
        others = math.prod(sizes[:n] + sizes[n + 1 :])
        if len(shape) > 1 and r > others:
            raise ValueError(
                f"{fn}: rank {r} for mode {n} exceeds the product of the other ranks ({others}); "
                f"the core would be rank-deficient along mode {n}. Use at most {others} there."
            )


# --- random draws ----------------------------------------------------------------------------
def randn(
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Gaussian draw on the generator's device (or ``device``), then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)


def rand(
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Uniform [0, 1) draw on the generator's device (or ``device``), then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)


# --- truncation ------------------------------------------------------------------------------
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
    lam1 = float(evals[0])
    if lam1 <= 0:
        return False
    gap = float(evals[r - 1]) - (float(evals[r]) if r < evals.numel() else 0.0)
    if gap <= 0:
        return True
    theta = torch.finfo(dtype).eps * lam1 / gap
    return theta * theta * lam1 > 1e-4 * tail


def leading_subspace(y: torch.Tensor, k: int) -> torch.Tensor:
    """Orthonormal basis of the leading ``k``-dimensional left singular subspace of ``y``.

    Wide ``y``: eigenvectors of the small Gram ``y y^H``, refined by one subspace-iteration step
    when the squared condition number would cost accuracy (see :func:`_needs_refinement`). Tall
    ``y``: thin QR, then an SVD of the small triangular factor. Never an SVD of a wide matrix.
    """
    m, n = y.shape
    if m > n:
        q, r = torch.linalg.qr(y)
        return q @ torch.linalg.svd(r)[0][:, :k]
    evals, evecs = torch.linalg.eigh(y @ y.mH)
    evals = torch.flip(evals, (0,)).clamp_min(0).double()
    u = torch.flip(evecs, (1,))[:, :k]
    if _needs_refinement(evals, k, float(evals[k:].sum()), y.dtype):
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
    """
    m, n = a.shape
    if method == "gram" and m > n:
        method = "full"
    if method == "full":
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        tail = _tails(s.double() ** 2)
        r = _pick_rank(tail, max_rank, budget)
        return _signed(u[:, :r], s[:r, None].to(a.dtype) * vh[:r], float(tail[r]))
    if method == "gram":
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
            discarded = sq_norm(a - u @ b)
        return _signed(u, b, discarded)
    # randomized
    k = min(max_rank, m, n)
    q, s, vh = _randomized_svd(a, min(k + oversample, m, n), 0, n_iter, generator)
    s2 = s.double() ** 2
    tail = _tails(s2, max(sq_norm(a) - float(s2.sum()), 0.0))
    r = _pick_rank(tail, k, budget)
    return _signed(q[:, :r], s[:r, None].to(a.dtype) * vh[:r], float(tail[r]))


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


def auto_method(m: int, n: int, budget_rel: float | None, dtype: torch.dtype) -> str:
    """The method "auto" picks for an ``m x n`` matrix.

    Gram eigen-decomposition for wide or square matrices (``n >= m``): one GEMM instead of a thin
    SVD, 3-10x faster on unfoldings (measured, see BENCHMARKS.md), unless an accuracy target is
    tighter than the Gram route can resolve (relative ``< 1e-6``; the Gram is formed in float64
    then); thin SVD otherwise.
    """
    del dtype
    if n >= m and (budget_rel is None or budget_rel >= 1e-6):
        return "gram"
    return "full"


# --- HOOI-style sweeps -----------------------------------------------------------------------
def ttm(t: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """``t x_mode matrix`` (``matrix`` is ``J x I_mode``) without permuted copies of ``t``.

    The last mode is computed as ``(matrix @ T^T)^T`` with ``T = t.reshape(-1, I)``: MKL runs this
    wide GEMM about twice as fast as the skinny ``T @ matrix^T`` (measured 18 vs 38 ms for a
    200^3 float64 tensor and J = 20, one thread); the ``J x prod`` result is transposed back
    (a copy ``J / I`` the size of ``t``). Other modes use the copy-free ``_mode_dot``. Large CPU
    tensors outside autograd instead use the formulation timed fastest on first use
    (:func:`factorch.algebra._gemm.mode_product`).
    """
    tuned = mode_product(t, matrix, mode) if t.ndim > 1 else None
    if tuned is not None:
        return tuned
    if mode == t.ndim - 1 and t.ndim > 1:
        size = t.shape[-1]
        out = (matrix @ t.reshape(-1, size).mT).mT.contiguous()
        return out.reshape(*t.shape[:-1], matrix.shape[0])
    return _mode_dot(t, matrix, mode)


def contract_modes(
    t: torch.Tensor, factors: Sequence[torch.Tensor | None], modes: Sequence[int]
) -> torch.Tensor:
    """``t x_{m in modes} factors[m]^H``, largest size reduction first (no permuted copies)."""
    order = sorted(modes, key=lambda m: (factors[m].shape[1] / factors[m].shape[0], -m))  # type: ignore[union-attr]
    for m in order:
        t = ttm(t, factors[m].mH, m)  # type: ignore[union-attr]
    return t


def sweep(
    t: torch.Tensor,
    active: Sequence[int],
    factors: list[torch.Tensor | None],
    update: Callable[[int, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Gauss--Seidel update of ``factors[n]`` for ``n`` in ``active`` (in order) by a binary
    dimension tree.

    ``t`` is the data already contracted with ``factors[m]^H`` for every decomposed mode outside
    ``active``. ``update(n, t_n)`` receives ``t_n = X x_{m != n} U_m^H`` (current factors) and
    returns the new ``U_n``. Returns the leaf tensor of the last active mode (contract it with the
    new last factor to get the core).
    """
    if len(active) == 1:
        n = active[0]
        factors[n] = update(n, t)
        return t
    h = len(active) // 2
    left, right = list(active[:h]), list(active[h:])
    sweep(contract_modes(t, factors, right), left, factors, update)
    return sweep(contract_modes(t, factors, left), right, factors, update)


def converged(
    prev: float, err: float, tol: float, dtype: torch.dtype, *, exact: bool = False
) -> bool:
    """Stop when the relative error changed by less than ``tol``.

    Errors computed as ``sqrt(||X||^2 - ||X_hat||^2) / ||X||`` carry an absolute uncertainty of
    about ``eps / err`` (``eps`` of the working dtype); changes below ten times that are noise, so
    the threshold is raised to it unless ``exact`` (the error came from the residual itself).
    ``tol == 0`` disables stopping.
    """
    if tol == 0:
        return False
    if exact:
        return abs(prev - err) < tol
    eps = torch.finfo(dtype).eps
    floor = 10 * eps / max(err, math.sqrt(eps))
    return abs(prev - err) < max(tol, floor)


def rel_error(norm_x2: float, norm_hat2: float) -> float:
    """``sqrt(max(||X||^2 - ||X_hat||^2, 0)) / ||X||`` for an orthogonal projection ``X_hat``."""
    if norm_x2 <= 0:
        return 0.0
    return math.sqrt(max(norm_x2 - norm_hat2, 0.0) / norm_x2)


def sq_norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach()).double() ** 2)
