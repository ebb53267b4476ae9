"""Robust PCA and robust tensor PCA: low rank plus sparse, with missing entries.

**Matrices** -- principal component pursuit (Candès, Li, Ma & Wright 2011):

    minimise ||L||_* + lam ||S||_1   subject to   P_Omega(L + S) = P_Omega(X),

solved by the inexact augmented Lagrange multiplier method (Lin, Chen & Ma 2010, Alg. 5): a
singular value thresholding step for ``L``, a soft thresholding step for ``S``, a dual ascent
step, and a penalty ``mu`` that grows geometrically. Unobserved entries (outside ``Omega``) are
left unconstrained: ``S`` absorbs them at no cost, so ``L`` there is the completion.

**Tensors** -- TensorLy's ``robust_pca`` model (sum of nuclear norms of the unfoldings, "SNN";
Goldfarb & Qin 2014, HoRPCA-S):

    minimise sum_n reg_low_rank ||J_n||_* + reg_sparse ||E||_1
    subject to P_Omega(D + E) = P_Omega(X),  unfold_n(D) = J_n for every mode n,

solved by the same ADMM as TensorLy, step for step (identical iterates for identical options,
which the tests check), with an SVT that never takes the SVD of a wide unfolding: the singular
values above the threshold come from the eigen-decomposition of the small Gram matrix in
float64, and the shrunk matrix is applied as a rank-``k`` product.

Both run with autocast off, compute half precision in float32, divide the data by an exact power
of two (the penalty ``mu`` is rescaled alongside, so the iterates are the scaled iterates of the
unscaled problem), and return the parts in the input dtype. Not differentiable (the data are
detached).

References:
    E. J. Candès, X. Li, Y. Ma, J. Wright, "Robust principal component analysis?", J. ACM 58(3),
    2011.
    Z. Lin, M. Chen, Y. Ma, "The augmented Lagrange multiplier method for exact recovery of
    corrupted low-rank matrices", arXiv:1009.5055, 2010.
    D. Goldfarb, Z. Qin, "Robust low-rank tensor recovery: models and algorithms", SIAM J.
    Matrix Anal. Appl. 35(1), 2014.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import as_tensor, check_tensor
from .._numerics import check_memory, no_autocast, power_of_two_scale, upcast
from .._timing import Stopwatch
from ..algebra.internal import fold as _fold
from ..algebra.internal import unfold as _unfold
from ._masking import check_mask, zero_missing
from ._tucker_common import check_iter_options, check_linalg_dtype

__all__ = ["RobustResult", "robust_pca", "robust_tensor_pca"]


@dataclass(frozen=True)
class RobustResult:
    """The outcome of :func:`robust_pca` or :func:`robust_tensor_pca`.

    Attributes:
        low_rank: the low-rank part ``L`` (everywhere, the unobserved entries included: there it
            is the completion), in the input's dtype.
        sparse: the sparse part ``S`` (zero at unobserved entries).
        errors: relative constraint residual after each iteration,
            ``||P_Omega(X - L - S)|| / ||P_Omega(X)||`` (for tensors the larger of that and
            ``max_n ||J_n - D|| / ||P_Omega(X)||``).
        iterations: iterations run.
        converged: True when the residual fell below ``tol``.
        ranks: the rank kept by the last singular value thresholding (matrices: one entry; tensors:
            one per unfolding).
        time_s: wall-clock seconds.

    Example:
        >>> low = torch.ones(6, 5, dtype=torch.float64)
        >>> spikes = torch.zeros(6, 5, dtype=torch.float64)
        >>> spikes[2, 3] = 10.0
        >>> result = robust_pca(low + spikes)
        >>> result.converged, result.ranks, round(float(result.sparse[2, 3]))
        (True, (1,), 10)
    """

    low_rank: torch.Tensor
    sparse: torch.Tensor
    errors: tuple[float, ...]
    iterations: int
    converged: bool
    ranks: tuple[int, ...]
    time_s: float

    @property
    def error(self) -> float:
        """The final relative constraint residual."""
        return self.errors[-1] if self.errors else float("nan")


# --- kernels ----------------------------------------------------------------------------------
def _svt(a: torch.Tensor, tau: float) -> tuple[torch.Tensor, int]:
    """Singular value thresholding ``U max(S - tau, 0) V^T`` and the number of values kept.

    For a matrix at least twice as wide as tall (or tall as wide) the singular values and left
    vectors come from ``eigh`` of the small Gram matrix in float64 (relative accuracy of the
    kept values ~1e-16 sigma_max^2 / sigma, far below ``tau`` for the thresholds used here), and
    the result is ``(U_k diag(1 - tau / s_k)) (U_k^T A)``: two thin GEMMs instead of an SVD of
    the wide matrix. Otherwise a thin SVD.
    """
    m, n = a.shape
    if max(m, n) >= 2 * min(m, n):
        wide = m <= n
        b = (a if wide else a.mT).to(torch.float64)
        evals, u = torch.linalg.eigh(b @ b.mT)
        sig = evals.clamp_min(0).sqrt()
        keep = sig > tau
        k = int(keep.sum())
        if k == 0:
            return torch.zeros_like(a), 0
        uk = u[:, keep]
        shrink = (sig[keep] - tau) / sig[keep]
        out = ((uk * shrink) @ (uk.mT @ b)).to(a.dtype)
        return (out if wide else out.mT), k
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    s = (s - tau).clamp_min(0)
    k = int((s > 0).sum())
    return (u[:, :k] * s[:k]) @ vh[:k], k


def _soft(a: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Entry-wise soft thresholding ``sign(a) max(|a| - tau, 0)``."""
    return a.sign() * (a.abs() - tau).clamp_min(0)


def _spectral_norm(a: torch.Tensor) -> float:
    """Largest singular value (from the small Gram in float64)."""
    b = a.to(torch.float64)
    g = b @ b.mT if b.shape[0] <= b.shape[1] else b.mT @ b
    return math.sqrt(max(float(torch.linalg.eigvalsh(g)[-1]), 0.0))


# --- validation -------------------------------------------------------------------------------
def _check_data(
    tensor: object,
    mask: object,
    fn: str,
    *,
    ndim: int | None,
    min_ndim: int,
    copies: tuple[int, int],
    what: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The data (and mask). ``copies = (a, b)``: the fit keeps ``a + b N`` data-sized buffers for
    an ``N``-way tensor; that is checked against the device's memory before the data are read."""
    x = as_tensor(tensor, fn)
    check_tensor(x, fn, "tensor", ndim=ndim, min_ndim=min_ndim, finite=False)
    check_linalg_dtype(x, fn)
    if x.is_complex():
        raise TypeError(f"{fn}: tensor must be real; got {x.dtype}.")
    n_copies = copies[0] + copies[1] * x.ndim
    check_memory(n_copies * x.numel(), upcast(x).dtype, x.device, fn, what,
                 hint="use a smaller tensor")  # fmt: skip
    x = x.detach()
    if mask is None:
        check_tensor(x, fn, "tensor", finite=True)
        m = None
    else:
        m = check_mask(mask, x, fn)
        x = zero_missing(x, m)
    return x, m


def _optional_positive(value: object, fn: str, name: str) -> float | None:
    return None if value is None else _positive(value, fn, name)


def _positive(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a positive float; got {type(value).__name__}.")
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{fn}: {name} must be a positive finite float; got {value!r}.")
    return v


def _check_rate(value: object, fn: str, name: str) -> float:
    rate = _positive(value, fn, name)
    if rate < 1.0:
        raise ValueError(
            f"{fn}: {name} must be at least 1 (mu grows by this factor each iteration); "
            f"got {value!r}."
        )
    return rate


# --- matrices: principal component pursuit ----------------------------------------------------
@no_autocast
@torch.no_grad()
def robust_pca(
    tensor: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    lam: float | None = None,
    mu: float | None = None,
    rho: float = 1.2,
    max_iter: int = 500,
    tol: float = 1e-7,
) -> RobustResult:
    """Robust PCA of a matrix by principal component pursuit: ``X = L + S``, low rank plus sparse.

    Solves ``min ||L||_* + lam ||S||_1`` subject to ``L + S = X`` on the observed entries by the
    inexact ALM method (Lin, Chen & Ma 2010): ``L <- SVT(X - S + Y / mu, 1 / mu)``,
    ``S <- soft(X - L + Y / mu, lam / mu)``, ``Y <- Y + mu (X - L - S)``, ``mu <- min(rho mu,
    1e7 mu_0)``. Under the conditions of Candès et al. (2011) -- ``L`` incoherent of rank
    ``O(n / log^2 n)``, ``S`` with randomly placed support -- the default ``lam = 1 / sqrt(max(m,
    n))`` recovers both parts exactly.

    Args:
        tensor: real floating ``(m, n)`` matrix (or numpy array). float16/bfloat16 are computed in
            float32.
        mask: bool ``(m, n)``, True where observed (unobserved entries may hold NaN); ``S``
            is free there, so ``L`` completes them.
        lam: weight of ``||S||_1`` (scale-free); default ``1 / sqrt(max(m, n))``.
        mu: initial penalty, absolute (in the data's units^-1); default ``1.25 / ||X||_2``.
        rho: growth factor of ``mu``. Lin et al. use 1.5--1.6 on fully observed matrices; with
            missing entries that stops early at inexact splits (measured: 1 % error on a 60 x 50
            rank-3 matrix with 20 % missing, against 1e-7 at 1.2), hence the default 1.2.
        max_iter: maximum iterations.
        tol: stop when ``||P_Omega(X - L - S)|| <= tol ||P_Omega(X)||``.

    Returns:
        :class:`RobustResult` (``ranks`` holds the rank of ``L``).

    Raises:
        TypeError: a non-tensor, an integer or complex dtype, a non-bool mask, bad option types.
        ValueError: not 2-D, NaN/Inf among observed entries, empty dimensions, a mask of another
            shape or observing nothing, non-positive options, or more memory than the device has.

    Not differentiable: runs under ``torch.no_grad`` on the detached data.

    Example:
        >>> import torch
        >>> from factorch.decomp import robust_pca
        >>> g = torch.Generator().manual_seed(0)
        >>> low = torch.randn(60, 2, generator=g, dtype=torch.float64) @ torch.randn(
        ...     2, 50, generator=g, dtype=torch.float64)
        >>> spikes = torch.zeros(60, 50, dtype=torch.float64)
        >>> spikes.view(-1)[torch.randperm(3000, generator=g)[:150]] = 10.0
        >>> res = robust_pca(low + spikes)
        >>> bool(torch.allclose(res.low_rank, low, atol=1e-5)), res.ranks
        (True, (2,))
    """
    fn = "robust_pca"
    sw = Stopwatch()
    x, m = _check_data(
        tensor, mask, fn, ndim=2, min_ndim=2, copies=(8, 0), what="robust PCA's working set"
    )
    iters, tolerance = check_iter_options(max_iter, tol, fn)
    lam_v = _optional_positive(lam, fn, "lam")
    mu_v = _optional_positive(mu, fn, "mu")
    rho_v = _check_rate(rho, fn, "rho")
    dtype = x.dtype
    s = power_of_two_scale(x)
    data = upcast(x) / s
    rows, cols = data.shape
    lam_v = 1.0 / math.sqrt(max(rows, cols)) if lam_v is None else lam_v
    norm2 = _spectral_norm(data)
    norm_x = float(torch.linalg.vector_norm(data))
    if norm_x == 0.0:
        zero = torch.zeros_like(x)
        return RobustResult(zero, zero.clone(), (0.0,), 1, True, (0,), sw.elapsed)
    mu_k = 1.25 / norm2 if mu_v is None else mu_v * s
    mu_bar = mu_k * 1e7
    dual = data / max(norm2, float(data.abs().max()) / lam_v)
    sparse = torch.zeros_like(data)
    errors: list[float] = []
    converged, rank = False, 0
    for _ in range(iters):
        low, rank = _svt(data - sparse + dual / mu_k, 1.0 / mu_k)
        t = data - low + dual / mu_k
        sparse = _soft(t, lam_v / mu_k) if m is None else torch.where(m, _soft(t, lam_v / mu_k), t)
        resid = data - low - sparse
        dual = dual + mu_k * resid
        errors.append(float(torch.linalg.vector_norm(resid)) / norm_x)
        mu_k = min(mu_k * rho_v, mu_bar)
        if errors[-1] <= tolerance:
            converged = True
            break
    if m is not None:
        sparse = zero_missing(sparse, m)
    low_out, sparse_out = (low * s).to(dtype), (sparse * s).to(dtype)
    _check_representable(low_out, sparse_out, dtype, fn)
    return RobustResult(low_out, sparse_out, tuple(errors), len(errors), converged, (rank,),
                        sw.elapsed)  # fmt: skip


def _check_representable(
    low: torch.Tensor, sparse: torch.Tensor, dtype: torch.dtype, fn: str
) -> None:
    if not (bool(torch.isfinite(low).all()) and bool(torch.isfinite(sparse).all())):
        raise ValueError(
            f"{fn}: the low-rank and sparse parts cannot be represented in {dtype} (they "
            "overflow); convert the data to a wider dtype (e.g. tensor.double()) first."
        )


# --- tensors: TensorLy's SNN model ------------------------------------------------------------
@no_autocast
@torch.no_grad()
def robust_tensor_pca(
    tensor: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    reg_sparse: float | None = None,
    reg_low_rank: float = 1.0,
    mu_init: float | None = None,
    mu_max: float | None = None,
    learning_rate: float = 1.1,
    max_iter: int = 500,
    tol: float = 1e-7,
) -> RobustResult:
    """Robust tensor PCA: ``X = D + E`` with every unfolding of ``D`` low rank and ``E`` sparse.

    TensorLy's ``robust_pca`` model and ADMM: ``min sum_n reg_low_rank ||unfold_n(D)||_* +
    reg_sparse ||E||_1`` subject to ``D + E = X`` on the observed entries, with one splitting
    variable ``J_n`` per unfolding. Each iteration: ``J_n <- SVT(D + L_n / mu, reg_low_rank /
    mu)``; ``D <- (L_x / mu + X - E + sum_n (J_n - L_n / mu)) / (N + 1)``; ``E <- soft(X - D +
    L_x / mu, reg_sparse / mu)`` (threshold 0 at unobserved entries); multiplier ascent;
    ``mu <- min(learning_rate mu, mu_max)``. With TensorLy's values (``reg_sparse=1``,
    ``mu_init=1e-4``, ``mu_max=1e10``, ``learning_rate=1.1``) the iterates are TensorLy's.

    Args:
        tensor: real floating tensor (or numpy array) with at least 2 modes (a matrix gives the
            SNN model with its two unfoldings, i.e. TensorLy's matrix robust PCA).
        mask: bool tensor, True where observed (unobserved entries may hold NaN).
        reg_sparse: weight of ``||E||_1`` (scale-free). Default ``(2N / 3) sum_n sqrt(I_n /
            prod_m I_m)``: each unfolding ``n`` contributes a dual certificate whose entries are
            about ``sqrt(I_n / prod_m I_m)``; the factor ``2N / 3`` is empirical (the planted
            tests: 2- to 4-way, 5--15 % outliers recovered to 1e-6). TensorLy's default is 1.
        reg_low_rank: weight of each nuclear norm (scale-free).
        mu_init: initial penalty, absolute (in the data's units^-1); default
            ``1.25 / max_n ||unfold_n(X)||_2`` (relative to the data, unlike TensorLy's 1e-4).
        mu_max: cap on the penalty, absolute; default ``1e7 mu_init``.
        learning_rate: growth factor of ``mu`` per iteration (TensorLy: 1.1).
        max_iter: maximum iterations.
        tol: stop when ``||P_Omega(X - D - E)||`` and every ``||J_n - D||`` are at most
            ``tol ||P_Omega(X)||`` (TensorLy's test, made relative).

    Returns:
        :class:`RobustResult` with ``low_rank = D``, ``sparse = E`` and ``ranks`` the ranks of
        the last ``J_n``.

    Raises:
        TypeError: a non-tensor, an integer or complex dtype, a non-bool mask, bad option types.
        ValueError: fewer than 2 modes, NaN/Inf among observed entries, empty dimensions, a bad
            mask, non-positive options, or more memory than the device has.

    Not differentiable: runs under ``torch.no_grad`` on the detached data.

    Example:
        >>> import torch
        >>> from factorch.decomp import robust_tensor_pca
        >>> from factorch.random import random_tucker
        >>> g = torch.Generator().manual_seed(0)
        >>> low = random_tucker((20, 20, 20), 2, generator=g, dtype=torch.float64).to_dense()
        >>> spikes = torch.zeros(20, 20, 20, dtype=torch.float64)
        >>> spikes.view(-1)[::97] = 5 * low.abs().max()
        >>> res = robust_tensor_pca(low + spikes)
        >>> float((res.low_rank - low).norm() / low.norm()) < 1e-4, res.ranks
        (True, (2, 2, 2))
    """
    fn = "robust_tensor_pca"
    sw = Stopwatch()
    x, m = _check_data(
        tensor, mask, fn, ndim=None, min_ndim=2, copies=(6, 2),
        what="robust tensor PCA's working set",
    )  # fmt: skip
    iters, tolerance = check_iter_options(max_iter, tol, fn)
    reg_e = _optional_positive(reg_sparse, fn, "reg_sparse")
    reg_j = _positive(reg_low_rank, fn, "reg_low_rank")
    mu0 = _optional_positive(mu_init, fn, "mu_init")
    mu_cap = _optional_positive(mu_max, fn, "mu_max")
    rate = _check_rate(learning_rate, fn, "learning_rate")
    n_modes = x.ndim
    dtype, shape = x.dtype, tuple(x.shape)
    s = power_of_two_scale(x)
    data = upcast(x) / s
    norm_x = float(torch.linalg.vector_norm(data))
    if norm_x == 0.0:
        zero = torch.zeros_like(x)
        return RobustResult(zero, zero.clone(), (0.0,), 1, True, (0,) * n_modes, sw.elapsed)
    if reg_e is None:
        total = math.prod(shape)
        reg_e = 2 * n_modes / 3 * sum(math.sqrt(i / total) for i in shape)
    if mu0 is None:
        mu = 1.25 / max(_spectral_norm(_unfold(data, n)) for n in range(n_modes))
    else:
        mu = mu0 * s
    cap = mu * 1e7 if mu_cap is None else mu_cap * s
    low = torch.zeros_like(data)
    sparse = torch.zeros_like(data)
    mult_x = torch.zeros_like(data)
    mults = [torch.zeros_like(data) for _ in range(n_modes)]
    errors: list[float] = []
    converged = False
    ranks = [0] * n_modes
    for _ in range(iters):
        splits = []
        for n in range(n_modes):
            j, ranks[n] = _svt(_unfold(low + mults[n] / mu, n), reg_j / mu)
            splits.append(_fold(j, n, shape))
        low = mult_x / mu + data - sparse
        for j, mult in zip(splits, mults):
            low += j - mult / mu
        low /= n_modes + 1
        t = data - low + mult_x / mu
        sparse = _soft(t, reg_e / mu) if m is None else torch.where(m, _soft(t, reg_e / mu), t)
        for j, mult in zip(splits, mults):
            mult += mu * (low - j)
        resid = data - low - sparse
        mult_x += mu * resid
        gap = max(float(torch.linalg.vector_norm(low - j)) for j in splits)
        errors.append(max(float(torch.linalg.vector_norm(resid)), gap) / norm_x)
        mu = min(mu * rate, cap)
        if errors[-1] <= tolerance:
            converged = True
            break
    if m is not None:
        sparse = zero_missing(sparse, m)
    low_out, sparse_out = (low * s).to(dtype), (sparse * s).to(dtype)
    _check_representable(low_out, sparse_out, dtype, fn)
    return RobustResult(low_out, sparse_out, tuple(errors), len(errors), converged, tuple(ranks),
                        sw.elapsed)  # fmt: skip
