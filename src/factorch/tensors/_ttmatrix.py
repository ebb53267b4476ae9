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
from typing import Literal, cast

import torch

from .._checks import as_index, check_mode, check_tensor
from . import _ring
from ._base import (
    FactorizedTensor,
    as_array_tensor,
    check_dense_other,
    check_indices,
    check_mode_matrix,
    check_same_kind,
)
from ._tt import validate_cores

__all__ = ["TTMatrix"]


@dataclass(frozen=True, eq=False, repr=False)
class TTMatrix(FactorizedTensor):
    """A TT-matrix with cores ``(r_k, m_k, n_k, r_{k+1})``, ``r_0 = r_N = 1`` (see module doc).

    Attributes:
        cores: tuple of 4-D cores (lists and numpy arrays are converted).

    ``shape`` is the matrix shape ``(M, N)`` and ``ndim`` is 2; ``row_shape``/``col_shape`` give
    the factorisations of ``M`` and ``N``. Every method is differentiable with respect to the
    cores.

    Raises:
        TypeError: cores that are not tensors, or of more than one dtype.
        ValueError: cores that are not 4-D, ranks that do not chain, boundary ranks other than
            1, or cores on more than one device.

    Example:
        >>> m = TTMatrix([torch.eye(2).reshape(1, 2, 2, 1), torch.eye(3).reshape(1, 3, 3, 1)])
        >>> m.shape, m.row_shape, m.col_shape
        ((6, 6), (2, 3), (2, 3))
        >>> torch.equal(m.to_dense(), torch.eye(6))
        True
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
        mode = check_mode(as_index(mode, "TTMatrix.unfold", "mode"), 2, "TTMatrix.unfold")
        dense = self.to_dense()
        return dense if mode == 0 else dense.transpose(0, 1)

    def transpose(self) -> TTMatrix:
        """The transposed ``(N, M)`` TT-matrix (row and column indices of every core swapped;
        no conjugation)."""
        return TTMatrix(tuple(c.transpose(1, 2) for c in self.cores))

    # --- factorized algebra -----------------------------------------------------------------
    def norm(self) -> torch.Tensor:
        """Frobenius norm by a transfer-matrix sweep over the merged cores, scaled by exact powers
        of two (true for cores near ``1e200`` or ``1e-200``). Differentiable."""
        return _ring.transfer_norm(self._merged())

    def inner(self, other: TTMatrix | torch.Tensor) -> torch.Tensor:
        """``<self, other> = sum conj(self) * other`` with a ``TTMatrix`` of the same row and
        column shapes (transfer-matrix sweep) or a dense ``(M, N)`` matrix (reshaped to the
        interleaved ``(m_0, n_0, m_1, ...)`` tensor and contracted core by core).
        Differentiable."""
        fn = "TTMatrix.inner"
        converted = as_array_tensor(other, fn, "other")
        if isinstance(converted, torch.Tensor):
            other = converted
            check_dense_other(self, other, fn)
            d = self.n_cores
            inter = other.reshape(self.tensor_shape).permute(
                *(k for pair in zip(range(d), range(d, 2 * d)) for k in pair)
            )
            return _ring.dense_inner(self._merged(), inter)
        check_same_kind(self, other, fn)
        other = cast(TTMatrix, other)
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
    def apply_macs(self, batch: int) -> tuple[int, int]:
        """Multiply-adds of :meth:`apply` for ``batch`` rows: ``(sweep, dense)``.

        ``sweep = sum_k B (prod_{j<k} n_j)(prod_{j>k} m_j) r_k m_k n_k r_{k+1}`` (cores applied
        one at a time); ``dense`` = forming the matrix (:meth:`to_dense`) plus ``B M N``. At
        large ranks the sweep costs more than the dense product; ``apply(method="auto")`` picks
        the smaller.
        """
        rows, cols, ranks = self.row_shape, self.col_shape, self.rank
        sweep = 0
        for k in range(self.n_cores):
            sweep += (
                batch
                * prod(cols[:k])
                * prod(rows[k + 1 :])
                * ranks[k]
                * rows[k]
                * cols[k]
                * ranks[k + 1]
            )
        build = sum(
            prod(m * n for m, n in zip(rows[:k], cols[:k]))
            * ranks[k]
            * rows[k]
            * cols[k]
            * ranks[k + 1]
            for k in range(1, self.n_cores)
        )
        return sweep, build + batch * self.shape[0] * self.shape[1]

    def apply(
        self, x: torch.Tensor, *, method: Literal["auto", "sweep", "dense"] = "auto"
    ) -> torch.Tensor:
        """``x @ self.to_dense().T`` for ``x`` of shape ``(..., N)``, returning ``(..., M)``.

        ``method="sweep"`` never forms the matrix: ``x`` is viewed as ``(B, n_0, ..., n_{d-1})``
        and the cores are applied from the last to the first. The state is kept as
        ``(m_{k+1}..m_{d-1}, B n_0..n_{k-1}, n_k r_{k+1})`` so that each core is one plain GEMM
        with core ``k`` reshaped to ``(n_k r_{k+1}, m_k r_k)``, followed by one copy that moves
        ``m_k`` to the front. ``method="dense"`` forms the matrix and does one GEMM;
        ``"auto"`` (default) picks the one with fewer multiply-adds (:meth:`apply_macs`): the
        sweep wins at low ranks, the dense product once ``r^2`` is comparable to ``M N / (m n)``.
        Both are exact and differentiable with respect to ``x`` and the cores.
        """
        fn = "TTMatrix.apply"
        if method not in ("auto", "sweep", "dense"):
            raise ValueError(
                f"{fn}: method must be one of ('auto', 'sweep', 'dense'); got {method!r}."
            )
        x = check_tensor(as_array_tensor(x, fn, "x"), fn, "x", min_ndim=1, finite=False)
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
        flat = x.reshape(-1, n_cols)
        batch = flat.shape[0]
        if method == "auto":
            sweep, dense = self.apply_macs(batch)
            method = "sweep" if sweep <= dense else "dense"
        if method == "dense":
            return (flat @ self.to_dense().transpose(0, 1)).reshape(*lead, n_rows)
        return self._sweep(flat).reshape(*lead, n_rows)

    def _sweep(self, flat: torch.Tensor) -> torch.Tensor:
        cols = self.col_shape
        batch = flat.shape[0]
        done = 1  # prod m_{k+1}..m_{d-1}, kept in front of the state
        state = flat
        for k in range(self.n_cores - 1, -1, -1):
            core = self.cores[k]
            r_left, m, n, r_right = core.shape
            mat = core.permute(2, 3, 1, 0).reshape(n * r_right, m * r_left)
            out = state.reshape(-1, n * r_right) @ mat  # (done * B n_0..n_{k-1}, m_k r_k)
            if k == 0:  # r_0 = 1: (done, B, m_0) -> (B, m_0, done)
                return out.reshape(done, batch, m).permute(1, 2, 0).reshape(batch, -1)
            n_prev = cols[k - 1]
            out = out.reshape(done, -1, n_prev, m, r_left).permute(3, 0, 1, 2, 4)
            state = out.reshape(m * done, -1, n_prev * r_left)
            done *= m
        raise AssertionError("unreachable")  # pragma: no cover
