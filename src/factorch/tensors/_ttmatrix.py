"""TT-matrices (matrix product operators).

A TT-matrix with cores ``G_k`` of shape ``(r_k, m_k, n_k, r_{k+1})``, ``r_0 = r_N = 1``, is the
``(M, N) = (prod m_k, prod n_k)`` matrix

    W[(i_0, ..., i_{d-1}), (j_0, ..., j_{d-1})]
        = G_0[:, i_0, j_0, :] G_1[:, i_1, j_1, :] ... G_{d-1}[:, i_{d-1}, j_{d-1}, :]

where the row index is the row-major (C order) flattening of ``(i_0, ..., i_{d-1})`` over
``row_shape = (m_0, ..., m_{d-1})`` and the column index that of ``(j_0, ...)`` over
``col_shape``. ``to_tensor()`` gives the ``2d``-way tensor ``(m_0, ..., m_{d-1}, n_0, ...,
n_{d-1})`` (TensorLy's ``tt_matrix_to_tensor``), ``to_dense()`` the matrix.

Reference: Oseledets, "Approximation of 2^d x 2^d matrices using tensor decomposition", SIAM J.
Matrix Anal. Appl. 31(4), 2010; Novikov et al., "Tensorizing Neural Networks", NeurIPS 2015
(TT-matrix layers, matrix-by-vector products core by core).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

import torch

from .._checks import check_mode, check_tensor
from . import _ring
from ._base import (
    FactorizedTensor,
    check_dense_other,
    check_indices,
    check_mode_matrix,
    check_same_kind,
    real_sqrt,
)
from ._tt import validate_cores

__all__ = ["TTMatrix"]


@dataclass(frozen=True, eq=False, repr=False)
class TTMatrix(FactorizedTensor):
    """A TT-matrix with cores ``(r_k, m_k, n_k, r_{k+1})``, ``r_0 = r_N = 1`` (see module doc).

    Attributes:
        cores: tuple of 4-D cores (lists are converted).

    ``shape`` is the matrix shape ``(M, N)`` and ``ndim`` is 2; ``row_shape``/``col_shape`` give
    the factorisations of ``M`` and ``N``. Every method is differentiable with respect to the
    cores.
    """

    cores: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cls = "TTMatrix"
        cores = validate_cores(self.cores, cls, 4)
        r0, rn = cores[0].shape[0], cores[-1].shape[3]
        if r0 != 1 or rn != 1:
            raise ValueError(
                f"{cls}: boundary ranks must be r_0 = r_N = 1; got r_0 = {r0}, r_N = {rn}."
            )
        object.__setattr__(self, "cores", cores)

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.cores

    def _replace_tensors(self, tensors: Sequence[torch.Tensor]) -> TTMatrix:
        return TTMatrix(tuple(tensors))

    @property
    def row_shape(self) -> tuple[int, ...]:
        """``(m_0, ..., m_{d-1})``: the factorisation of the number of rows."""
        return tuple(c.shape[1] for c in self.cores)

    @property
    def col_shape(self) -> tuple[int, ...]:
        """``(n_0, ..., n_{d-1})``: the factorisation of the number of columns."""
        return tuple(c.shape[2] for c in self.cores)

    @property
    def shape(self) -> tuple[int, int]:
        """The matrix shape ``(prod m_k, prod n_k)``."""
        return (prod(self.row_shape), prod(self.col_shape))

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        """Shape of :meth:`to_tensor`: ``(m_0, ..., m_{d-1}, n_0, ..., n_{d-1})``."""
        return (*self.row_shape, *self.col_shape)

    @property
    def n_cores(self) -> int:
        """Number of cores ``d``."""
        return len(self.cores)

    @property
    def rank(self) -> tuple[int, ...]:
        """TT ranks ``(r_0, ..., r_d)`` with ``r_0 = r_d = 1``."""
        return (*(c.shape[0] for c in self.cores), 1)

    def _merged(self) -> tuple[torch.Tensor, ...]:
        """Cores ``(r, m*n, r')``: the TT of the interleaved tensor ``(m_0 n_0, m_1 n_1, ...)``."""
        return tuple(c.reshape(c.shape[0], -1, c.shape[3]) for c in self.cores)

    # --- dense views ------------------------------------------------------------------------
    def to_tensor(self) -> torch.Tensor:
        """The ``(m_0, ..., m_{d-1}, n_0, ..., n_{d-1})`` tensor. Differentiable."""
        d = self.n_cores
        inter = _ring.chain(self._merged()).reshape(
            [s for pair in zip(self.row_shape, self.col_shape) for s in pair]
        )
        return inter.permute(*range(0, 2 * d, 2), *range(1, 2 * d, 2))

    def to_dense(self) -> torch.Tensor:
        """The ``(M, N)`` matrix (row and column indices row-major, see module doc).

        Differentiable.
        """
        return self.to_tensor().reshape(self.shape)

    def unfold(self, mode: int) -> torch.Tensor:
        """The matrix (``mode`` 0) or its transpose (``mode`` 1), as
        ``factorch.algebra.unfold(self.to_dense(), mode)``. Differentiable."""
        mode = check_mode(mode, 2, "TTMatrix.unfold")
        dense = self.to_dense()
        return dense if mode == 0 else dense.transpose(0, 1)

    def transpose(self) -> TTMatrix:
        """The transposed ``(N, M)`` TT-matrix (row and column indices of every core swapped;
        no conjugation)."""
        return TTMatrix(tuple(c.transpose(1, 2) for c in self.cores))

    # --- factorized algebra -----------------------------------------------------------------
    def norm(self) -> torch.Tensor:
        """Frobenius norm by a transfer-matrix sweep over the merged cores. Differentiable."""
        merged = self._merged()
        return real_sqrt(_ring.transfer_inner(merged, merged))

    def inner(self, other: TTMatrix | torch.Tensor) -> torch.Tensor:
        """``<self, other> = sum conj(self) * other`` with a ``TTMatrix`` of the same row and
        column shapes (transfer-matrix sweep) or a dense ``(M, N)`` matrix (reshaped to the
        interleaved ``(m_0, n_0, m_1, ...)`` tensor and contracted core by core).
        Differentiable."""
        fn = "TTMatrix.inner"
        if isinstance(other, torch.Tensor):
            check_dense_other(self, other, fn)
            d = self.n_cores
            inter = other.reshape(self.tensor_shape).permute(
                *(k for pair in zip(range(d), range(d, 2 * d)) for k in pair)
            )
            return _ring.dense_inner(self._merged(), inter)
        check_same_kind(self, other, fn)
        if other.row_shape != self.row_shape or other.col_shape != self.col_shape:
            raise ValueError(
                f"{fn}: other has row/column shapes {other.row_shape} x {other.col_shape} but "
                f"self has {self.row_shape} x {self.col_shape}; they must match core by core."
            )
        return _ring.transfer_inner(self._merged(), other._merged())

    def mode_dot(self, matrix: torch.Tensor, mode: int, *, transpose: bool = False) -> TTMatrix:
        """Mode product on :meth:`to_tensor`'s ``2d`` modes: ``mode`` ``k < d`` acts on the row
        index ``m_k``, ``mode = d + k`` on the column index ``n_k``; the result is a TT-matrix
        whose ``to_tensor()`` equals ``factorch.algebra.mode_dot(self.to_tensor(), matrix, mode)``.

        Vectors are refused: a TT-matrix keeps one row and one column index per core (pass a
        ``(1, size)`` matrix to reduce that index to size 1). Differentiable.
        """
        fn = "TTMatrix.mode_dot"
        if isinstance(matrix, torch.Tensor) and matrix.ndim == 1:
            raise ValueError(
                f"{fn}: a vector would remove a row or column index of one core, which a "
                "TT-matrix cannot represent; pass a (1, size) matrix instead (matrix[None, :])."
            )
        matrix, mode = check_mode_matrix(self, matrix, mode, transpose, fn, shape=self.tensor_shape)
        cores = list(self.cores)
        d = self.n_cores
        if mode < d:
            cores[mode] = torch.einsum("amnb,jm->ajnb", cores[mode], matrix)
        else:
            cores[mode - d] = torch.einsum("amnb,jn->amjb", cores[mode - d], matrix)
        return TTMatrix(tuple(cores))

    def entries(self, indices: torch.Tensor) -> torch.Tensor:
        """Matrix entries at ``indices`` (integer ``(B, 2)``: row, column), without forming the
        matrix: each row/column index is split into per-core indices. Differentiable."""
        idx = check_indices(indices, self.shape, "TTMatrix.entries", self.device)
        rows = torch.unravel_index(idx[:, 0], self.row_shape)
        cols = torch.unravel_index(idx[:, 1], self.col_shape)
        merged_idx = torch.stack(
            [i * n for i, n in zip(rows, self.col_shape)], dim=1
        ) + torch.stack(cols, dim=1)
        return _ring.entries(self._merged(), merged_idx)

    # --- matrix-vector products -------------------------------------------------------------
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ self.to_dense().T`` for ``x`` of shape ``(..., N)``, returning ``(..., M)``.

        The matrix is never formed. ``x`` is viewed as ``(B, n_0, ..., n_{d-1})`` and the cores
        are applied from the last to the first: the state ``(B n_0..n_{k-1}, n_k r_{k+1},
        m_{k+1}..m_{d-1})`` is multiplied by core ``k`` reshaped to ``(r_k m_k, n_k r_{k+1})``
        (one broadcast GEMM, no transposed copies), which turns ``(n_k, r_{k+1})`` into
        ``(r_k, m_k)``. Cost ``sum_k B (prod_{j<k} n_j)(prod_{j>k} m_j) r_k m_k n_k r_{k+1}``.
        Differentiable with respect to ``x`` and the cores.
        """
        fn = "TTMatrix.apply"
        check_tensor(x, fn, "x", min_ndim=1, finite=False)
        if x.dtype != self.dtype:
            raise TypeError(
                f"{fn}: x has dtype {x.dtype} but the TT-matrix has {self.dtype}; convert with "
                "x.to(dtype)."
            )
        if x.device != self.device:
            raise ValueError(
                f"{fn}: x is on {x.device} but the TT-matrix is on {self.device}; move it with "
                "x.to(device)."
            )
        n_rows, n_cols = self.shape
        if x.shape[-1] != n_cols:
            raise ValueError(
                f"{fn}: x must have {n_cols} entries in its last dimension (prod of col_shape "
                f"{self.col_shape}); got shape {tuple(x.shape)}."
            )
        lead = x.shape[:-1]
        state = x.reshape(-1, n_cols)  # (B n_0..n_{d-2}) merged later; here (L, n_{d-1} * 1, 1)
        done = 1  # product of m_{k+1}..m_{d-1}
        for core in reversed(self.cores):
            r_left, m, n, r_right = core.shape
            mat = core.reshape(r_left * m, n * r_right)
            if done == 1:
                state = state.reshape(-1, n * r_right) @ mat.transpose(0, 1)  # (L, r m)
            else:
                state = torch.matmul(mat, state.reshape(-1, n * r_right, done))  # (L, r m, done)
            done *= m
        return state.reshape(*lead, n_rows)
