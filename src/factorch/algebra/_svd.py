"""Truncated and randomized SVD that avoid full SVDs of large, wide matrices.

``truncated_svd(A, k)`` returns the leading ``k`` singular triplets ``(U, S, Vh)`` with
``A ~= U diag(S) Vh``. Methods:

* ``"full"``: thin LAPACK SVD then slice (exact; cost ``O(m n min(m, n))``).
* ``"gram"``: eigen-decomposition of the small Gram matrix ``A A^H`` (or ``A^H A``), then
  ``Vh = diag(1/S) U^H A``. Cost ``O(m n min(m, n))`` in one GEMM plus ``O(min^3)``, usually
  several times cheaper than a thin SVD of a wide unfolding. Squares the condition number: singular
  values below ``sqrt(eps) * S_max`` lose relative accuracy, so the leading ones are exact to
  working precision and trailing ones are not. Good for initialisations, not for accuracy targets.
* ``"randomized"``: Halko--Martinsson--Tropp range finder with ``oversample`` extra columns and
  ``n_iter`` power iterations (QR re-orthonormalised), seeded by ``generator``.
* ``"auto"``: ``"randomized"`` when ``k`` is small next to ``min(m, n)`` (k <= min/4, min >= 256),
  else ``"full"``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from .._checks import check_positive_int, check_tensor

__all__ = ["SVDMethod", "leading_singular_vectors", "randomized_svd", "truncated_svd"]

SVDMethod = Literal["auto", "full", "gram", "randomized"]


def _gram_svd(a: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m, n = a.shape
    if m <= n:
        evals, evecs = torch.linalg.eigh(a @ a.mH)
        evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
        s = evals.real.clamp_min(0).sqrt()
        safe = torch.where(s > 0, s, torch.ones_like(s))
        vh = (evecs.mH @ a) / safe[:, None].to(a.dtype)
        return evecs, s, vh
    u, s, vh = _gram_svd(a.mH, k)
    return vh.mH, s, u.mH


def _randomized_svd(
    a: torch.Tensor, k: int, oversample: int, n_iter: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m, n = a.shape
    if m < n:
        u, s, vh = _randomized_svd(a.mH, k, oversample, n_iter, generator)
        return vh.mH, s, u.mH
    p = min(k + oversample, n)
    omega = torch.randn(n, p, generator=generator, dtype=a.dtype, device="cpu").to(a.device)
    q = torch.linalg.qr(a @ omega).Q
    for _ in range(n_iter):
        q = torch.linalg.qr(a.mH @ q).Q
        q = torch.linalg.qr(a @ q).Q
    ub, s, vh = torch.linalg.svd(q.mH @ a, full_matrices=False)
    return (q @ ub)[:, :k], s[:k], vh[:k]


def truncated_svd(
    matrix: torch.Tensor,
    rank: int,
    *,
    method: SVDMethod = "auto",
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leading ``rank`` singular triplets ``(U, S, Vh)`` of a matrix, ``S`` in decreasing order.

    ``U`` is ``(m, k)``, ``S`` real ``(k,)``, ``Vh`` ``(k, n)`` with ``k = min(rank, m, n)``.
    Device and dtype follow the input (complex supported). Differentiable for ``"full"`` and
    ``"gram"`` (through ``torch.linalg``); see the module docstring for the methods' trade-offs.
    """
    _check_svd_args("truncated_svd", matrix, rank, method, oversample, n_iter)
    k = min(rank, *matrix.shape)
    return _truncated_svd(matrix, k, method, oversample, n_iter, generator)


def _check_svd_args(
    fn: str, matrix: object, rank: object, method: object, oversample: object, n_iter: object
) -> None:
    check_tensor(matrix, fn, "matrix", ndim=2)
    check_positive_int(rank, fn, "rank")
    if method not in get_args(SVDMethod):
        raise ValueError(f"{fn}: method must be one of {get_args(SVDMethod)}; got {method!r}.")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"{fn}: n_iter must be a non-negative int; got {n_iter!r}.")
    if isinstance(oversample, bool) or not isinstance(oversample, int) or oversample < 0:
        raise ValueError(f"{fn}: oversample must be a non-negative int; got {oversample!r}.")


def _truncated_svd(
    a: torch.Tensor,
    k: int,
    method: str = "auto",
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    small = min(a.shape)
    if method == "auto":
        method = "randomized" if (small >= 256 and k <= small // 4) else "full"
    if method == "gram":
        return _gram_svd(a, k)
    if method == "randomized":
        return _randomized_svd(a, k, oversample, n_iter, generator)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    return u[:, :k], s[:k], vh[:k]


def randomized_svd(
    matrix: torch.Tensor,
    rank: int,
    *,
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Randomized truncated SVD (Halko, Martinsson and Tropp, SIAM Review 53(2), 2011).

    Shorthand for ``truncated_svd(matrix, rank, method="randomized", ...)``.
    """
    _check_svd_args("randomized_svd", matrix, rank, "randomized", oversample, n_iter)
    k = min(rank, *matrix.shape)
    return _randomized_svd(matrix, k, oversample, n_iter, generator)


def leading_singular_vectors(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The leading ``rank`` left singular vectors, from the eigenvectors of ``A A^H``.

    Never takes an SVD of the (possibly very wide) matrix: one GEMM forms the ``m x m`` Gram
    matrix and ``eigh`` does the rest. When ``rank > m`` the result has only ``m`` columns.
    Used for SVD-style initialisations. Differentiable.
    """
    fn = "leading_singular_vectors"
    check_tensor(matrix, fn, "matrix", ndim=2)
    check_positive_int(rank, fn, "rank")
    return _leading_left(matrix, rank)


def _leading_left(a: torch.Tensor, k: int) -> torch.Tensor:
    m, n = a.shape
    if m <= n:
        gram = a @ a.mH
    else:
        # Tall matrix: left singular vectors live in the column space; use a thin QR + small SVD.
        q, r = torch.linalg.qr(a)
        u, _, _ = torch.linalg.svd(r, full_matrices=False)
        return (q @ u)[:, :k]
    _, evecs = torch.linalg.eigh(gram)
    return evecs.flip(1)[:, : min(k, m)]
