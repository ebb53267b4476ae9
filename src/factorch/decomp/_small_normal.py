"""The ``R x R`` normal equations of the small CP-ALS sweep, solved on the host.

On a tensor of a few thousand entries a torch call on an ``R x R`` matrix costs microseconds of
fixed overhead (``torch.cholesky_inverse`` alone about 13 us at ``R = 3``), more than the
arithmetic: the ``R^3`` multiply-adds of an inverse are cheaper in Python floats up to a rank of
about 5 (rank 3, unrolled: about 2 us). The small sweep (:mod:`._cp_small`) reads each new Gram
to the host once (``R^2`` numbers), forms the Hadamard product of the other modes' Grams and its
inverse here (:func:`spd_inverse`), and hands the inverse to torch through a buffer that shares
memory with a tensor (:class:`HostMatrix`).

The fallback rule is the one of :func:`factorch.decomp._cp_sweep.solve_normal`: the inverse when
the Cholesky factorisation ``V = L L^T`` exists and ``min_i L_ii > sqrt(eps) max_i L_ii``, else
the caller takes the pseudo-inverse. The arithmetic is float64 whatever the data's dtype (real
data only).
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import torch

__all__ = ["HOST_RANK", "HostMatrix", "hadamard", "spd_inverse"]

# Ranks up to this take the host route. Measured (one thread, float64, 30 sweeps of a 20^3
# tensor, host / torch route time): 0.83 at rank 4, 0.90 at 5, 1.19 at 6, 1.23 at 8.
HOST_RANK = 5

Matrix = list[list[float]]


def hadamard(grams: Sequence[Matrix], rank: int, l2: float = 0.0) -> tuple[Matrix, Matrix]:
    """The entry-wise product ``H`` of ``grams`` and ``H + l2 I`` (the same list when ``l2`` is
    zero)."""
    first, *rest = grams
    out = first
    for g in rest:
        out = [[a * b for a, b in zip(r, s)] for r, s in zip(out, g)]
    if out is first:
        out = [list(row) for row in first]
    if not l2:
        return out, out
    shifted = [list(row) for row in out]
    for i in range(rank):
        shifted[i][i] += l2
    return out, shifted


def spd_inverse(v: Matrix, rank: int, eps: float) -> list[float] | None:
    """``V^{-1}`` (row-major, flat) of a symmetric ``rank x rank`` matrix by Gauss--Jordan
    elimination without pivoting, or None when ``V`` is not numerically positive definite.

    The pivots of the elimination are the squared diagonal of the Cholesky factor ``L`` of ``V``,
    so a non-positive (or non-finite) pivot is a failed Cholesky factorisation and
    ``min pivot <= eps max pivot`` is ``min L_ii <= sqrt(eps) max L_ii``: the test of
    :func:`factorch.decomp._cp_sweep.solve_normal`. Without pivoting the elimination is as stable
    as the Cholesky factorisation on a positive definite matrix. Rank 3 runs the same operations
    unrolled (:func:`_spd_inverse3`, bit-identical).
    """
    if rank == 3:
        return _spd_inverse3(v, eps)
    return _spd_inverse_loops(v, rank, eps)


def _spd_inverse_loops(v: Matrix, rank: int, eps: float) -> list[float] | None:
    """:func:`spd_inverse` for any rank."""
    a = [list(row) for row in v]
    pivots: list[float] = []
    for p in range(rank):
        row_p = a[p]
        d = row_p[p]
        if not 0.0 < d < math.inf:  # (also catches NaN)
            return None
        pivots.append(d)
        inv_d = 1.0 / d
        for j in range(rank):
            row_p[j] *= inv_d
        row_p[p] = inv_d
        for i in range(rank):
            if i != p:
                row_i = a[i]
                f = row_i[p]
                for j in range(rank):
                    row_i[j] -= f * row_p[j]
                row_i[p] = -f * inv_d
    if not min(pivots) > max(pivots) * eps:
        return None
    return [x for row in a for x in row]


def _spd_inverse3(v: Matrix, eps: float) -> list[float] | None:
    """:func:`spd_inverse` for ``rank = 3``: :func:`_spd_inverse_loops` unrolled (the same
    operations in the same order, less the updates of each pivot's column that it overwrites)."""
    (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = v
    d0 = a00
    if not 0.0 < d0 < math.inf:
        return None
    i0 = 1.0 / d0
    a01 *= i0
    a02 *= i0
    a00 = i0
    f = a10
    a11 -= f * a01
    a12 -= f * a02
    a10 = -f * i0
    f = a20
    a21 -= f * a01
    a22 -= f * a02
    a20 = -f * i0
    d1 = a11
    if not 0.0 < d1 < math.inf:
        return None
    i1 = 1.0 / d1
    a10 *= i1
    a12 *= i1
    a11 = i1
    f = a01
    a00 -= f * a10
    a02 -= f * a12
    a01 = -f * i1
    f = a21
    a20 -= f * a10
    a22 -= f * a12
    a21 = -f * i1
    d2 = a22
    if not 0.0 < d2 < math.inf:
        return None
    i2 = 1.0 / d2
    a20 *= i2
    a21 *= i2
    a22 = i2
    f = a02
    a00 -= f * a20
    a01 -= f * a21
    a02 = -f * i2
    f = a12
    a10 -= f * a20
    a11 -= f * a21
    a12 = -f * i2
    if not min(d0, d1, d2) > max(d0, d1, d2) * eps:
        return None
    return [a00, a01, a02, a10, a11, a12, a20, a21, a22]


class HostMatrix:
    """A ``rank x rank`` CPU tensor whose memory is a Python buffer: :meth:`set` writes a host
    matrix into it without a torch call (about 1 us against 7 us for ``torch.tensor``)."""

    def __init__(self, rank: int, dtype: torch.dtype) -> None:
        code = {torch.float64: "d", torch.float32: "f"}[dtype]
        self._buf = array.array(code, [0.0] * (rank * rank))
        self.tensor = torch.frombuffer(self._buf, dtype=dtype).view(rank, rank)

    def set(self, flat: list[float]) -> torch.Tensor:
        """Write a row-major matrix into the buffer; returns the tensor that shares it."""
        self._buf[:] = array.array(self._buf.typecode, flat)
        return self.tensor
