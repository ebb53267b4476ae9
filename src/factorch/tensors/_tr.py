"""Tensor-ring (TR) tensors.

``X[i_0, ..., i_{N-1}] = trace(G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :])`` with
cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` and ``r_N = r_0`` (the ring closes).

Reference: Zhao, Zhou, Xie, Zhang, Cichocki, "Tensor Ring Decomposition", arXiv:1606.05535, 2016
(format, trace representation, inner products through transfer matrices).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _ring
from ._tt import CoreChainTensor, validate_cores

__all__ = ["TRTensor"]


@dataclass(frozen=True, eq=False, repr=False)
class TRTensor(CoreChainTensor):
    """A tensor ring with cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` and ``r_N = r_0``.

    Attributes:
        cores: tuple of 3-D cores (lists and numpy arrays are converted).

    Every method is differentiable with respect to the cores.

    Raises:
        TypeError: cores that are not tensors, or of more than one dtype.
        ValueError: cores that are not 3-D, ranks that do not chain around the ring (the last
            core's ``r_N`` must equal the first core's ``r_0``), or cores on more than one device.

    Example:
        >>> tr = TRTensor([torch.ones(2, 3, 2), torch.ones(2, 4, 2)])
        >>> tr.shape, tr.rank
        ((3, 4), (2, 2, 2))
        >>> float(tr.to_dense()[0, 0])  # trace of a 2 x 2 all-ones matrix squared
        4.0
    """

    _kind = "TRTensor"
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
