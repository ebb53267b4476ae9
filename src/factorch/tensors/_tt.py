"""Tensor-train (TT / matrix product state) tensors.

``X[i_0, ..., i_{N-1}] = G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]`` with cores
``G_k`` of shape ``(r_k, I_k, r_{k+1})`` and ``r_0 = r_N = 1``.

Reference: Oseledets, "Tensor-Train Decomposition", SIAM J. Sci. Comput. 33(5), 2011 (format,
sums with block cores, Hadamard products with Kronecker cores, norms and inner products by
contraction sweeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

import torch

from .._checks import as_index, check_mode
from . import _ring
from ._base import (
    FactorizedTensor,
    as_array_tensor,
    as_tensor_tuple,
    check_chain_ranks,
    check_dense_other,
    check_indices,
    check_mode_matrix,
    check_one_device_dtype,
    check_same_kind,
    check_scalar,
    check_vector_contraction,
)

if TYPE_CHECKING:
    from ._tr import TRTensor

__all__ = ["TTTensor"]


def validate_cores(cores: object, cls: str, ndim: int) -> tuple[torch.Tensor, ...]:
    """Cores: a non-empty sequence of ``ndim``-D tensors, one device/dtype, chained ranks."""
    out = as_tensor_tuple(cores, cls, "cores", ndim=ndim)
    check_one_device_dtype([(f"cores[{k}]", c) for k, c in enumerate(out)], cls)
    check_chain_ranks(out, cls)
    return out


_C = TypeVar("_C", bound="CoreChainTensor")


class CoreChainTensor(FactorizedTensor):
    """Methods shared by :class:`TTTensor` and :class:`TRTensor`: a chain of 3-D cores
    ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` with ``r_N = r_0`` (``r_0 = 1`` for a TT).

    Subclasses are frozen dataclasses with a ``cores`` field and set ``_kind`` (the class name
    used in error messages). Every method is differentiable with respect to the cores.
    """

    __slots__ = ()
    _kind: ClassVar[str]
    cores: tuple[torch.Tensor, ...]

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.cores

    def _replace_tensors(self: _C, tensors: Sequence[torch.Tensor]) -> _C:
        return type(self)(tuple(tensors))  # type: ignore[call-arg]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(c.shape[1] for c in self.cores)

    # --- dense views ------------------------------------------------------------------------
    def unfold(self, mode: int) -> torch.Tensor:
        """Mode-``mode`` unfolding; equals ``factorch.algebra.unfold(self.to_dense(), mode)``.

        Built from the left and right partial contractions on either side of ``mode``, without
        a permuted dense copy. Differentiable.
        """
        mode = check_mode(
            as_index(mode, f"{self._kind}.unfold", "mode"), self.ndim, f"{self._kind}.unfold"
        )
        return _ring.unfold(self.cores, mode)

    # --- factorized algebra -----------------------------------------------------------------
    def norm(self) -> torch.Tensor:
        """Frobenius norm by a transfer-matrix sweep, ``O(r_0^2 sum_k I_k r_k^2 r_{k+1})``
        (``r_0 = 1`` for a TT), with every core and intermediate scaled by exact powers of two:
        cores with entries near ``1e200`` or ``1e-200`` give the true norm, never ``inf`` or 0.

        Real 0-d tensor; differentiable (except at 0).
        """
        return _ring.transfer_norm(self.cores)

    def inner(self: _C, other: _C | torch.Tensor) -> torch.Tensor:
        """``<self, other> = sum conj(self) * other`` with a tensor of the same format
        (transfer-matrix sweep, ranks may differ) or a dense tensor (one mode contracted at a
        time). Differentiable."""
        fn = f"{self._kind}.inner"
        converted = as_array_tensor(other, fn, "other")
        if isinstance(converted, torch.Tensor):
            other = converted
            check_dense_other(self, other, fn)
            return _ring.dense_inner(self.cores, other)
        check_same_kind(self, other, fn)
        return _ring.transfer_inner(self.cores, cast(_C, other).cores)

    def mode_dot(self: _C, matrix: torch.Tensor, mode: int, *, transpose: bool = False) -> _C:
        """``self x_mode matrix`` in the same format: core ``mode`` becomes ``G x_1 matrix``
        (ranks kept).

        A vector contracts the mode away; the resulting ``(r_k, r_{k+1})`` matrix is merged into
        a neighbouring core (needs at least two modes). Differentiable.
        """
        fn = f"{self._kind}.mode_dot"
        matrix, mode = check_mode_matrix(self, matrix, mode, transpose, fn)
        if matrix.ndim == 2:
            cores = list(self.cores)
            cores[mode] = _ring.mode_dot_core(cores[mode], matrix)
            return type(self)(tuple(cores))  # type: ignore[call-arg]
        check_vector_contraction(self, fn)
        return type(self)(_ring.contract_vector(self.cores, matrix, mode))  # type: ignore[call-arg]

    def entries(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries at ``indices`` (integer ``(B, N)``): batched products of core slices (their
        traces for a ring), ``O(B r_0 sum_k r_k r_{k+1})``. Differentiable."""
        idx = check_indices(indices, self.shape, f"{self._kind}.entries", self.device)
        return _ring.entries(self.cores, idx)


@dataclass(frozen=True, eq=False, repr=False)
class TTTensor(CoreChainTensor):
    """A tensor train with cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})``, ``r_0 = r_N = 1``.

    Attributes:
        cores: tuple of 3-D cores (lists and numpy arrays are converted).

    Supports exact arithmetic in TT form: ``a + b`` and ``a - b`` (block cores, ranks add),
    ``c * a`` for a scalar ``c`` (first core scaled), ``-a``, and :meth:`hadamard` (Kronecker
    cores, ranks multiply). Ranks grow; recompress with TT rounding. Every method is
    differentiable with respect to the cores.

    Raises:
        TypeError: cores that are not tensors, or of more than one dtype.
        ValueError: cores that are not 3-D, ranks that do not chain (``G_k.shape[2]`` must
            equal ``G_{k+1}.shape[0]``), boundary ranks other than 1, or cores on more than
            one device.

    Example:
        >>> tt = TTTensor([torch.ones(1, 3, 2), torch.ones(2, 4, 1)])
        >>> tt.shape, tt.rank
        ((3, 4), (1, 2, 1))
        >>> bool((tt + tt).to_dense().eq(4).all())
        True
    """

    _kind = "TTTensor"
    cores: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cls = "TTTensor"
        cores = validate_cores(self.cores, cls, 3)
        r0, rn = cores[0].shape[0], cores[-1].shape[2]
        if r0 != 1 or rn != 1:
            raise ValueError(
                f"{cls}: boundary ranks must be r_0 = r_N = 1; got r_0 = {r0}, r_N = {rn} "
                "(use TRTensor for a ring with r_0 = r_N > 1)."
            )
        object.__setattr__(self, "cores", cores)

    @property
    def rank(self) -> tuple[int, ...]:
        """TT ranks ``(r_0, ..., r_N)`` with ``r_0 = r_N = 1``."""
        return (*(c.shape[0] for c in self.cores), 1)

    def to_dense(self) -> torch.Tensor:
        """Contract the cores left to right (one GEMM per core). Differentiable."""
        return _ring.chain(self.cores).reshape(self.shape)

    # --- arithmetic -------------------------------------------------------------------------
    def __add__(self, other: object) -> TTTensor:
        """Exact sum: first core ``[A_0 B_0]``, middle cores ``diag(A_k, B_k)``, last
        ``[A_{N-1}; B_{N-1}]``; ranks add (``r_k + s_k`` inside)."""
        if not isinstance(other, TTTensor):
            return NotImplemented
        check_same_kind(self, other, "TTTensor.__add__")
        a, b = self.cores, other.cores
        if self.ndim == 1:
            return TTTensor((a[0] + b[0],))
        cores = [torch.cat([a[0], b[0]], dim=2)]
        for ga, gb in zip(a[1:-1], b[1:-1]):
            top = torch.cat([ga, ga.new_zeros(ga.shape[0], ga.shape[1], gb.shape[2])], dim=2)
            bottom = torch.cat([gb.new_zeros(gb.shape[0], gb.shape[1], ga.shape[2]), gb], dim=2)
            cores.append(torch.cat([top, bottom], dim=0))
        cores.append(torch.cat([a[-1], b[-1]], dim=0))
        return TTTensor(tuple(cores))

    def __neg__(self) -> TTTensor:
        return TTTensor((-self.cores[0], *self.cores[1:]))

    def __sub__(self, other: object) -> TTTensor:
        """``self + (-other)`` (ranks add)."""
        if not isinstance(other, TTTensor):
            return NotImplemented
        return self + (-other)

    def __mul__(self, scalar: object) -> TTTensor:
        """Multiplication by a Python number or a 0-d tensor (scales the first core)."""
        if isinstance(scalar, FactorizedTensor):
            raise TypeError(
                "TTTensor.__mul__: '*' takes a scalar; for the entrywise product of two TT "
                "tensors use a.hadamard(b)."
            )
        value = check_scalar(scalar, self.dtype, "TTTensor.__mul__")
        return TTTensor((self.cores[0] * value, *self.cores[1:]))

    __rmul__ = __mul__

    def hadamard(self, other: TTTensor) -> TTTensor:
        """Entrywise product: Kronecker cores ``A_k[:, i, :] (x) B_k[:, i, :]``; ranks multiply."""
        check_same_kind(self, other, "TTTensor.hadamard")
        cores = []
        for ga, gb in zip(self.cores, other.cores):
            ra, size, rb = ga.shape
            sa, _, sb = gb.shape
            cores.append(torch.einsum("aib,cid->acibd", ga, gb).reshape(ra * sa, size, rb * sb))
        return TTTensor(tuple(cores))

    # --- conversions --------------------------------------------------------------------------
    def to_tr(self) -> TRTensor:
        """The same cores read as a tensor ring with ``r_0 = r_N = 1`` (no copy)."""
        from ._tr import TRTensor

        return TRTensor(self.cores)
