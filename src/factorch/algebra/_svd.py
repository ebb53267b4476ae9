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

from collections.abc import Callable
from typing import Literal, get_args

import torch

from .._checks import as_index, check_generator, check_positive_int, check_tensor
from .._numerics import no_autocast, upcast
from ._args import as_array
from ._scaling import exponent_of, times_power_of_two

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


@no_autocast
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
    See the module docstring for the methods' trade-offs. The matrix is divided by a power of two
    near its largest magnitude first (exact) and ``S`` scaled back, so ``"gram"`` cannot overflow
    on large data (float32 ``1e30``) nor lose small data (``1e-30``). float16 and bfloat16 are
    computed in float32 (torch has no half-precision SVD on the CPU) and returned in the input's
    dtype.

    Args:
        matrix: a finite 2-D floating or complex tensor (numpy arrays accepted).
        rank: the number of triplets wanted (a positive int, numpy ints accepted).
        method: ``"auto"``, ``"full"``, ``"gram"`` or ``"randomized"``.
        oversample: extra columns of the randomized range finder.
        n_iter: power iterations of the randomized range finder.
        generator: a CPU ``torch.Generator`` for ``"randomized"`` (and ``"auto"`` when it
            picks it).

    Returns:
        ``(U, S, Vh)`` in the input's dtype (``S`` real) and device.

    Raises:
        TypeError: non-tensor or integer input, complex32, a non-generator ``generator``.
        ValueError: not 2-D, empty or non-finite; bad ``rank``, ``method``, ``oversample`` or
            ``n_iter``; singular values beyond a half-precision dtype's range.

    Differentiable for ``"full"`` and ``"gram"`` (through ``torch.linalg``). Runs with autocast
    off, in the input's (working) dtype.

    Example:
        >>> u, s, vh = truncated_svd(torch.eye(4, dtype=torch.float64), 2)
        >>> s.tolist()
        [1.0, 1.0]
    """
    fn = "truncated_svd"
    matrix, rank = _check_svd_args(fn, matrix, rank, method, oversample, n_iter, generator)
    k = min(rank, *matrix.shape)
    return _scaled(
        lambda a: _truncated_svd(a, k, method, int(oversample), int(n_iter), generator), matrix, fn
    )


def _scaled(
    kernel: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    matrix: torch.Tensor,
    fn: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run an SVD kernel on ``matrix`` in its working dtype, divided by ``2^e`` (exact); scale
    ``S`` back and return everything in the input's dtype."""
    dtype = matrix.dtype
    a = upcast(matrix)
    e = exponent_of(a)
    u, s, vh = kernel(times_power_of_two(a, -e))
    s = times_power_of_two(s, e)
    if dtype != a.dtype:
        if s.numel() and float(s.detach()[0]) > torch.finfo(dtype).max:
            raise ValueError(
                f"{fn}: the largest singular value ({float(s[0]):.3g}) exceeds the largest "
                f"{dtype} number; pass the matrix in float32."
            )
        return u.to(dtype), s.to(_real(dtype)), vh.to(dtype)
    return u, s, vh


def _real(dtype: torch.dtype) -> torch.dtype:
    return torch.empty((), dtype=dtype).real.dtype


def _check_svd_args(
    fn: str,
    matrix: object,
    rank: object,
    method: object,
    oversample: object,
    n_iter: object,
    generator: object,
) -> tuple[torch.Tensor, int]:
    matrix = as_array(matrix, fn, "matrix")
    if matrix.dtype == torch.complex32:
        raise TypeError(f"{fn}: complex32 is not supported; convert with .to(torch.complex64).")
    matrix = check_tensor(matrix, fn, "matrix", ndim=2)
    rank = check_positive_int(rank, fn, "rank")
    if method not in get_args(SVDMethod):
        raise ValueError(f"{fn}: method must be one of {get_args(SVDMethod)}; got {method!r}.")
    for name, value in (("n_iter", n_iter), ("oversample", oversample)):
        try:
            count = as_index(value, fn, name)
        except TypeError:
            count = -1
        if count < 0:
            raise ValueError(f"{fn}: {name} must be a non-negative int; got {value!r}.")
    check_generator(generator, fn)
    return matrix, rank


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


@no_autocast
def randomized_svd(
    matrix: torch.Tensor,
    rank: int,
    *,
    oversample: int = 10,
    n_iter: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Randomized truncated SVD (Halko, Martinsson and Tropp, SIAM Review 53(2), 2011).

    Shorthand for ``truncated_svd(matrix, rank, method="randomized", ...)``: same scaling,
    half-precision handling, arguments, errors and return values.

    Not differentiable through the random range finder in a useful sense (the basis depends on
    the draw); runs with autocast off.

    Args:
        matrix: a finite 2-D floating or complex tensor (numpy arrays accepted).
        rank: the number of triplets wanted (a positive int, numpy ints accepted).
        oversample: extra columns of the range finder.
        n_iter: power iterations of the range finder.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).

    Returns:
        ``(U, S, Vh)`` with ``k = min(rank, m, n)`` triplets, in the input's dtype (``S`` real)
        and device.

    Raises:
        TypeError: non-tensor or integer input, complex32, a non-generator ``generator``.
        ValueError: not 2-D, empty or non-finite; bad ``rank``, ``oversample`` or ``n_iter``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> u, s, vh = randomized_svd(torch.eye(6, dtype=torch.float64), 2, generator=g)
        >>> [round(v, 6) for v in s.tolist()]
        [1.0, 1.0]
    """
    fn = "randomized_svd"
    matrix, rank = _check_svd_args(fn, matrix, rank, "randomized", oversample, n_iter, generator)
    k = min(rank, *matrix.shape)
    return _scaled(
        lambda a: _randomized_svd(a, k, int(oversample), int(n_iter), generator), matrix, fn
    )


@no_autocast
def leading_singular_vectors(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The leading ``rank`` left singular vectors, from the eigenvectors of ``A A^H``.

    Never takes an SVD of the (possibly very wide) matrix: one GEMM forms the ``m x m`` Gram
    matrix and ``eigh`` does the rest. When ``rank > m`` the result has only ``m`` columns.
    Used for SVD-style initialisations. The matrix is rescaled by a power of two first (the Gram
    matrix cannot overflow); half precision is computed in float32 and returned in its dtype.

    Args:
        matrix: a finite 2-D floating or complex tensor (numpy arrays accepted).
        rank: the number of vectors (a positive int).

    Returns:
        ``(m, min(rank, m))`` orthonormal columns in the input's dtype.

    Raises:
        TypeError: non-tensor or integer input.
        ValueError: not 2-D, empty or non-finite; bad ``rank``.

    Differentiable (through ``torch.linalg.eigh``; undefined for repeated eigenvalues). Runs
    with autocast off.

    Example:
        >>> leading_singular_vectors(torch.diag(torch.tensor([1.0, 3.0])), 1).abs().tolist()
        [[0.0], [1.0]]
    """
    fn = "leading_singular_vectors"
    matrix = check_tensor(as_array(matrix, fn, "matrix"), fn, "matrix", ndim=2)
    rank = check_positive_int(rank, fn, "rank")
    a = upcast(matrix)
    return _leading_left(times_power_of_two(a, -exponent_of(a)), rank).to(matrix.dtype)


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
