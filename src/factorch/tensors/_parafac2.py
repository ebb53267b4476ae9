"""PARAFAC2 tensors: a stack of matrices ``X_i ~= B_i diag(w * a_i) C^T`` with ``B_i = P_i B``.

The slices ``X_i`` (``J_i x K``, ``i = 0..I-1``) may have different numbers of rows. The model
has weights ``w`` (``R``), slice weights ``A`` (``I x R``, row ``a_i``), a blueprint ``B``
(``R x R``), projections ``P_i`` (``J_i x R``, orthonormal columns in a fitted model) and a
shared factor ``C`` (``K x R``). The evolving factors ``B_i = P_i B`` then all have the same
cross-product ``B_i^T B_i = B^T B``: the PARAFAC2 constraint (Harshman 1972; Kiers, ten Berge and
Bro 1999). This is TensorLy's layout: the second mode evolves over the first.

References: R. A. Harshman, "PARAFAC2: Mathematical and technical notes", UCLA Working Papers in
Phonetics 22, 1972; H. A. L. Kiers, J. M. F. ten Berge and R. Bro, "PARAFAC2 -- Part I. A direct
fitting algorithm for the PARAFAC2 model", J. Chemometrics 13(3-4), 1999.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import torch

from .._checks import check_tensor
from ._base import as_tensor_tuple, check_one_device_dtype, real_sqrt, split_to_args

__all__ = ["Parafac2Tensor"]


@dataclass(frozen=True, eq=False, repr=False)
class Parafac2Tensor:
    """A rank-``R`` PARAFAC2 model of ``I`` slices ``X_i = P_i B diag(w * a_i) C^T``.

    Attributes:
        weights: ``(R,)`` component weights ``w``.
        factors: ``(A, B, C)``: slice weights ``A`` ``(I, R)``, blueprint ``B`` ``(R, R)``,
            shared factor ``C`` ``(K, R)`` (TensorLy's order).
        projections: one ``(J_i, R)`` matrix ``P_i`` per slice (lists are converted); fitted
            models have orthonormal columns, so that ``B_i = P_i B`` share ``B_i^T B_i``.

    Unpacks as ``(weights, factors, projections)``, like TensorLy's ``Parafac2Tensor``. Every
    method is differentiable with respect to the stored tensors.

    Raises:
        TypeError: weights, factors or projections that are not tensors, or of more than one
            dtype.
        ValueError: shapes that do not fit together (three factors; ``B`` of shape ``(R, R)``;
            one ``(J_i, R)`` projection per row of ``A``), or tensors on more than one device.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> p = [torch.linalg.qr(torch.randn(n, 2, generator=g)).Q for n in (5, 7)]
        >>> model = Parafac2Tensor(torch.ones(2), (torch.rand(2, 2), torch.eye(2),
        ...                        torch.rand(4, 2)), p)
        >>> [tuple(s.shape) for s in model.slices()]
        [(5, 4), (7, 4)]
    """

    weights: torch.Tensor
    factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    projections: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cls = "Parafac2Tensor"
        check_tensor(self.weights, cls, "weights", ndim=1, finite=False)
        factors = as_tensor_tuple(self.factors, cls, "factors", ndim=2)
        if len(factors) != 3:
            raise ValueError(
                f"{cls}: factors must be (A, B, C), three matrices; got {len(factors)}."
            )
        projections = as_tensor_tuple(self.projections, cls, "projections", ndim=2)
        rank = self.weights.shape[0]
        a, b, c = factors
        if a.shape[1] != rank or b.shape != (rank, rank) or c.shape[1] != rank:
            raise ValueError(
                f"{cls}: with {rank} weights, A must be (I, {rank}), B ({rank}, {rank}) and C "
                f"(K, {rank}); got A {tuple(a.shape)}, B {tuple(b.shape)}, C {tuple(c.shape)}."
            )
        if len(projections) != a.shape[0]:
            raise ValueError(
                f"{cls}: projections needs one matrix per slice (A has {a.shape[0]} rows); got "
                f"{len(projections)}."
            )
        for i, p in enumerate(projections):
            if p.shape[1] != rank:
                raise ValueError(
                    f"{cls}: projections[{i}] has {p.shape[1]} columns; every projection must "
                    f"be (J_i, {rank})."
                )
        named = [("weights", self.weights), ("A", a), ("B", b), ("C", c)]
        named += [(f"projections[{i}]", p) for i, p in enumerate(projections)]
        check_one_device_dtype(named, cls)
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "projections", projections)

    # --- TensorLy-style unpacking: (weights, factors, projections) ----------------------------
    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, ...]]:
        yield self.weights
        yield self.factors
        yield self.projections

    def __len__(self) -> int:
        return 3

    @overload
    def __getitem__(self, index: Literal[0]) -> torch.Tensor: ...
    @overload
    def __getitem__(self, index: Literal[1, 2]) -> tuple[torch.Tensor, ...]: ...
    @overload
    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, ...]: ...
    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``[0]`` weights, ``[1]`` factors ``(A, B, C)``, ``[2]`` projections."""
        if isinstance(index, bool) or not hasattr(index, "__index__"):
            raise TypeError(
                "Parafac2Tensor: index must be 0 (weights), 1 (factors) or 2 (projections); got "
                f"{type(index).__name__}."
            )
        items = (self.weights, self.factors, self.projections)
        i = operator.index(index)
        if not -3 <= i < 3:
            raise IndexError(
                "Parafac2Tensor: index must be 0 (weights), 1 (factors) or 2 (projections); got "
                f"{i}."
            )
        return items[i]

    # --- structure ----------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """Number of components ``R``."""
        return self.weights.shape[0]

    @property
    def n_slices(self) -> int:
        """Number of slices ``I``."""
        return self.factors[0].shape[0]

    @property
    def slice_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(J_i, K)`` of every slice."""
        k = self.factors[2].shape[0]
        return tuple((p.shape[0], k) for p in self.projections)

    @property
    def dtype(self) -> torch.dtype:
        return self.weights.dtype

    @property
    def device(self) -> torch.device:
        return self.weights.device

    @property
    def n_params(self) -> int:
        """The number of stored scalars (weights, ``A``, ``B``, ``C`` and the projections)."""
        return sum(t.numel() for t in (self.weights, *self.factors, *self.projections))

    def __repr__(self) -> str:
        rows = sorted({p.shape[0] for p in self.projections})
        span = f"{rows[0]}" if len(rows) == 1 else f"{rows[0]}..{rows[-1]}"
        dev = "" if self.device.type == "cpu" else f", device={self.device}"
        return (
            f"Parafac2Tensor(slices={self.n_slices}, rows={span}, columns="
            f"{self.factors[2].shape[0]}, rank={self.rank}, dtype="
            f"{str(self.dtype).removeprefix('torch.')}{dev})"
        )

    def to(
        self,
        device: torch.device | str | int | torch.dtype | None = None,
        dtype: torch.dtype | None = None,
    ) -> Parafac2Tensor:
        """Copy to another device and/or dtype (a dtype may come first, as in
        ``torch.Tensor.to``). Differentiable."""
        device, dtype = split_to_args(device, dtype, "Parafac2Tensor")

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        a, b, c = (move(f) for f in self.factors)
        return Parafac2Tensor(move(self.weights), (a, b, c), tuple(map(move, self.projections)))

    # --- views ----------------------------------------------------------------------------------
    def evolving_factors(self) -> tuple[torch.Tensor, ...]:
        """``B_i = P_i B`` for every slice (``(J_i, R)``)."""
        b = self.factors[1]
        return tuple(p @ b for p in self.projections)

    def slices(self) -> list[torch.Tensor]:
        """The matrices ``X_i = B_i diag(w * a_i) C^T`` (``(J_i, K)``)."""
        a, _, c = self.factors
        scaled = a * self.weights  # (I, R)
        return [bi * scaled[i] @ c.mT for i, bi in enumerate(self.evolving_factors())]

    def to_dense(self) -> torch.Tensor:
        """The ``(I, J, K)`` tensor when every slice has ``J`` rows (use :meth:`slices` for
        slices of different lengths)."""
        rows = {p.shape[0] for p in self.projections}
        if len(rows) != 1:
            raise ValueError(
                f"Parafac2Tensor.to_dense: the slices have different numbers of rows "
                f"({sorted(rows)}); use .slices() for a list of matrices."
            )
        return torch.stack(self.slices())

    def norm(self) -> torch.Tensor:
        """``sqrt(sum_i ||X_i||^2)`` without forming the slices:
        ``sum_i d_i^T ((B^T P_i^T P_i B) * C^T C) d_i`` with ``d_i = w * a_i``
        (``O(sum_i J_i R^2)``). Differentiable (except at 0)."""
        a, b, c = self.factors
        d = a * self.weights
        ctc = c.mT @ c
        total = torch.zeros((), dtype=self.dtype, device=self.device)
        for i, p in enumerate(self.projections):
            pb = p @ b
            total = total + d[i] @ ((pb.mT @ pb) * ctc) @ d[i]
        return real_sqrt(total)

    @classmethod
    def from_factors(
        cls,
        a: torch.Tensor,
        b: torch.Tensor,
        c: torch.Tensor,
        projections: Sequence[torch.Tensor],
        weights: torch.Tensor | None = None,
    ) -> Parafac2Tensor:
        """Build from ``A, B, C`` and the projections (unit weights when ``weights`` is None)."""
        if weights is None:
            weights = torch.ones(a.shape[-1], dtype=a.dtype, device=a.device)
        return cls(weights, (a, b, c), tuple(projections))
