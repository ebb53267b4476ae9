"""Tensor-ring (TR) tensors.

``X[i_0, ..., i_{N-1}] = trace(G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :])`` with
cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` and ``r_N = r_0`` (the ring closes).

Reference: Zhao, Zhou, Xie, Zhang, Cichocki, "Tensor Ring Decomposition", arXiv:1606.05535, 2016
(format, trace representation, inner products through transfer matrices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._checks import check_mode
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

__all__ = ["TRTensor"]


@dataclass(frozen=True, eq=False, repr=False)
class TRTensor(FactorizedTensor):
    """A tensor ring with cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` and ``r_N = r_0``.

    Attributes:
        cores: tuple of 3-D cores (lists are converted).

    Every method is differentiable with respect to the cores.
    """

    cores: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cls = "TRTensor"
        cores = validate_cores(self.cores, cls, 3)
        r0, rn = cores[0].shape[0], cores[-1].shape[2]
        if r0 != rn:
            raise ValueError(
                f"{cls}: the ring must close, r_N = r_0; got r_0 = {r0} (cores[0].shape[0]) and "
                f"r_N = {rn} (cores[-1].shape[2])."
            )
        object.__setattr__(self, "cores", cores)

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.cores

    def _replace_tensors(self, tensors: Sequence[torch.Tensor]) -> TRTensor:
        return TRTensor(tuple(tensors))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(c.shape[1] for c in self.cores)

    @property
    def rank(self) -> tuple[int, ...]:
        """TR ranks ``(r_0, ..., r_N)`` with ``r_N = r_0``."""
        return (*(c.shape[0] for c in self.cores), self.cores[0].shape[0])

    # --- dense views ------------------------------------------------------------------------
    def to_dense(self) -> torch.Tensor:
        """Contract the cores left to right and close the ring against the last core.

        Peak extra memory ``r_0 r_{N-1} prod_{k<N-1} I_k``. Differentiable.
        """
        return _ring.ring_to_dense(self.cores).reshape(self.shape)

    def unfold(self, mode: int) -> torch.Tensor:
        """Mode-``mode`` unfolding; equals ``factorch.algebra.unfold(self.to_dense(), mode)``.

        Built from the partial contractions on either side of ``mode``. Differentiable.
        """
        mode = check_mode(mode, self.ndim, "TRTensor.unfold")
        return _ring.unfold(self.cores, mode)

    # --- factorized algebra -----------------------------------------------------------------
    def norm(self) -> torch.Tensor:
        """Frobenius norm by a transfer-matrix sweep, ``O(r_0^2 sum_k I_k r_k^2 r_{k+1})``.

        Real 0-d tensor; differentiable (except at 0).
        """
        return real_sqrt(_ring.transfer_inner(self.cores, self.cores))

    def inner(self, other: TRTensor | torch.Tensor) -> torch.Tensor:
        """``<self, other> = sum conj(self) * other`` with a ``TRTensor`` (transfer-matrix sweep,
        ranks may differ) or a dense tensor (one mode contracted at a time). Differentiable."""
        fn = "TRTensor.inner"
        if isinstance(other, torch.Tensor):
            check_dense_other(self, other, fn)
            return _ring.dense_inner(self.cores, other)
        check_same_kind(self, other, fn)
        return _ring.transfer_inner(self.cores, other.cores)

    def mode_dot(self, matrix: torch.Tensor, mode: int, *, transpose: bool = False) -> TRTensor:
        """``self x_mode matrix`` as a TR: core ``mode`` becomes ``G x_1 matrix`` (ranks kept).

        A vector contracts the mode away; the resulting ``(r_k, r_{k+1})`` matrix is merged into
        a neighbouring core (needs at least two modes). Differentiable.
        """
        fn = "TRTensor.mode_dot"
        matrix, mode = check_mode_matrix(self, matrix, mode, transpose, fn)
        if matrix.ndim == 2:
            cores = list(self.cores)
            cores[mode] = _ring.mode_dot_core(cores[mode], matrix)
            return TRTensor(tuple(cores))
        if self.ndim == 1:
            raise ValueError(
                f"{fn}: cannot contract the only mode of a 1-way tensor with a vector; use "
                "inner() for a scalar result."
            )
        return TRTensor(_ring.contract_vector(self.cores, matrix, mode))

    def entries(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries at ``indices`` (integer ``(B, N)``): traces of batched products of core
        slices, ``O(B r_0 sum_k r_k r_{k+1})``. Differentiable."""
        idx = check_indices(indices, self.shape, "TRTensor.entries", self.device)
        return _ring.entries(self.cores, idx)
