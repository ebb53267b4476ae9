"""Tucker tensors: ``X = G x_0 U_0 x_1 U_1 ... x_{N-1} U_{N-1}``.

Reference: Kolda & Bader, "Tensor Decompositions and Applications", SIAM Review 51(3), 2009,
section 4 (Tucker model; norms and inner products through the core and factor Grams).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch

from .._checks import as_index, check_mode, check_tensor
from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import unfold as _unfold
from ._base import (
    FactorizedTensor,
    as_array_tensor,
    as_tensor_tuple,
    check_dense_other,
    check_indices,
    check_mode_matrix,
    check_one_device_dtype,
    check_same_kind,
    check_vector_contraction,
    normalised,
    scaled_sqrt,
    times_power_of_two,
)

if TYPE_CHECKING:
    from ._tt import TTTensor

__all__ = ["TuckerTensor"]


@dataclass(frozen=True, eq=False, repr=False)
class TuckerTensor(FactorizedTensor):
    """A Tucker tensor ``[[G; U_0, ..., U_{N-1}]]`` of multilinear rank ``(R_0, ..., R_{N-1})``.

    ``X[i_0, ..., i_{N-1}] = sum_r G[r_0, ..., r_{N-1}] U_0[i_0, r_0]...U_{N-1}[i_{N-1}, r_{N-1}]``

    Attributes:
        core: ``(R_0, ..., R_{N-1})`` core tensor (a numpy array is converted once).
        factors: tuple of ``(I_n, R_n)`` factor matrices (lists and numpy arrays are
            converted). They need not be orthonormal: every method below is exact for any
            factors.

    Every method is differentiable with respect to core and factors.

    Raises:
        TypeError: a core or factors that are not tensors, or of more than one dtype.
        ValueError: a factor whose column count differs from the core's size in its mode, a
            factor count other than ``core.ndim``, or tensors on more than one device.

    Example:
        >>> core = torch.ones(2, 3, 1)
        >>> factors = [torch.ones(4, 2), torch.ones(5, 3), torch.ones(6, 1)]
        >>> t = TuckerTensor(core, factors)
        >>> t.shape, t.rank
        ((4, 5, 6), (2, 3, 1))
        >>> float(t.to_dense()[0, 0, 0])
        6.0
    """

    core: torch.Tensor
    factors: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cls = "TuckerTensor"
        core = check_tensor(
            as_array_tensor(self.core, cls, "core"), cls, "core", min_ndim=1, finite=False
        )
        object.__setattr__(self, "core", core)
        factors = as_tensor_tuple(self.factors, cls, "factors", ndim=2)
        if len(factors) != self.core.ndim:
            raise ValueError(
                f"{cls}: the core has {self.core.ndim} modes but {len(factors)} factors were "
                "given; give one factor per core mode."
            )
        for n, f in enumerate(factors):
            if f.shape[1] != self.core.shape[n]:
                raise ValueError(
                    f"{cls}: factors[{n}] has {f.shape[1]} columns but the core has size "
                    f"{self.core.shape[n]} along mode {n}; they must agree."
                )
        check_one_device_dtype(
            [("core", self.core)] + [(f"factors[{n}]", f) for n, f in enumerate(factors)], cls
        )
        object.__setattr__(self, "factors", factors)

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.core, *self.factors)

    def _replace_tensors(self, tensors: Sequence[torch.Tensor]) -> TuckerTensor:
        return TuckerTensor(tensors[0], tuple(tensors[1:]))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(f.shape[0] for f in self.factors)

    @property
    def rank(self) -> tuple[int, ...]:
        """Multilinear rank ``(R_0, ..., R_{N-1})`` (the core's shape)."""
        return tuple(self.core.shape)

    # --- dense views ------------------------------------------------------------------------
    def to_dense(self) -> torch.Tensor:
        """``G x_0 U_0 ... x_{N-1} U_{N-1}`` by successive mode products. Differentiable."""
        out = self.core
        for n, f in enumerate(self.factors):
            out = _mode_dot(out, f, n)
        return out

    def unfold(self, mode: int) -> torch.Tensor:
        """Mode-``mode`` unfolding ``U_n unfold(G x_{m != n} U_m, n)`` (TensorLy column order).

        Equals ``factorch.algebra.unfold(self.to_dense(), mode)``. Differentiable.
        """
        mode = check_mode(
            as_index(mode, "TuckerTensor.unfold", "mode"), self.ndim, "TuckerTensor.unfold"
        )
        partial = self.core
        for n, f in enumerate(self.factors):
            if n != mode:
                partial = _mode_dot(partial, f, n)
        return self.factors[mode] @ _unfold(partial, mode)

    # --- factorized algebra -----------------------------------------------------------------
    def norm(self) -> torch.Tensor:
        """Frobenius norm ``sqrt(<G, G x_0 (U_0^H U_0) ... x_{N-1} (U_{N-1}^H U_{N-1})>)``.

        Exact for non-orthogonal factors; cost ``O(prod R * sum R + sum I_n R_n^2)``. Core,
        factors and intermediates are scaled by exact powers of two, so entries near ``1e200`` or
        ``1e-200`` give the true norm (never ``inf`` or 0). Real 0-d tensor; differentiable
        (except at 0).
        """
        return scaled_sqrt(*self._inner_tucker(self))

    def _inner_tucker(self, other: TuckerTensor) -> tuple[torch.Tensor, int]:
        """``<self, other> = mantissa * 2**exponent``."""
        projected, exponent = normalised(other.core)
        for n, (a, b) in enumerate(zip(self.factors, other.factors)):
            a, ea = normalised(a)
            b, eb = normalised(b)
            projected, ep = normalised(_mode_dot(projected, a.mH @ b, n))
            exponent += ea + eb + ep
        core, ec = normalised(self.core)
        return torch.vdot(core.reshape(-1), projected.reshape(-1)), exponent + ec

    def inner(self, other: TuckerTensor | torch.Tensor) -> torch.Tensor:
        """``<self, other> = sum conj(self) * other`` with a ``TuckerTensor`` or a dense tensor.

        Tucker: ``<G, H x_n (U_n^H V_n)>``. Dense: ``<G, X x_n U_n^H>`` (the dense tensor is
        projected onto the factors, never forming ``self``). Scaled by exact powers of two as
        :meth:`norm`. Differentiable.
        """
        fn = "TuckerTensor.inner"
        converted = as_array_tensor(other, fn, "other")
        if isinstance(converted, torch.Tensor):
            other = converted
            check_dense_other(self, other, fn)
            projected, exponent = normalised(other)
            for n, f in enumerate(self.factors):
                f, ef = normalised(f)
                projected, ep = normalised(_mode_dot(projected, f.mH, n))
                exponent += ef + ep
            core, ec = normalised(self.core)
            value = torch.vdot(core.reshape(-1), projected.reshape(-1))
            return times_power_of_two(value, exponent + ec)
        check_same_kind(self, other, fn)
        return times_power_of_two(*self._inner_tucker(cast(TuckerTensor, other)))

    def mode_dot(self, matrix: torch.Tensor, mode: int, *, transpose: bool = False) -> TuckerTensor:
        """``self x_mode matrix`` as a Tucker tensor: factor ``mode`` becomes ``matrix @ U_mode``.

        A vector ``v`` contracts the mode away: the core becomes ``G x_mode (v @ U_mode)`` (needs
        at least two modes). Differentiable.
        """
        fn = "TuckerTensor.mode_dot"
        matrix, mode = check_mode_matrix(self, matrix, mode, transpose, fn)
        if matrix.ndim == 2:
            factors = list(self.factors)
            factors[mode] = matrix @ factors[mode]
            return TuckerTensor(self.core, tuple(factors))
        check_vector_contraction(self, fn)
        core = _mode_dot(self.core, matrix @ self.factors[mode], mode)
        return TuckerTensor(core, tuple(f for n, f in enumerate(self.factors) if n != mode))

    def entries(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries at ``indices`` (integer ``(B, N)``): the core contracted with one factor row
        per mode, batched. ``O(B prod R)``; differentiable."""
        idx = check_indices(indices, self.shape, "TuckerTensor.entries", self.device)
        batch = idx.shape[0]
        rows0 = self.factors[0][idx[:, 0]]  # (B, R_0)
        out = rows0 @ self.core.reshape(self.core.shape[0], -1)  # (B, R_1 ... R_{N-1})
        for n in range(1, self.ndim):
            rows = self.factors[n][idx[:, n]]  # (B, R_n)
            out = torch.einsum("brt,br->bt", out.reshape(batch, rows.shape[1], -1), rows)
        return out.reshape(batch)

    # --- conversions --------------------------------------------------------------------------
    def to_tt(self) -> TTTensor:
        """Exact TT form: a left-to-right sweep of reduced QR factorisations of the core (no
        truncation, so exact up to rounding; TT ranks ``min(prod_{m<k} R_m, prod_{m>=k} R_m)``
        at most), then each factor multiplied into its core. Cost is that of QRs of core-sized
        matrices. Differentiable (QR is, when the unfoldings have full column rank)."""
        from ._tt import TTTensor

        ranks = self.rank
        cores: list[torch.Tensor] = []
        left = 1
        rest = self.core.reshape(1, -1)
        for n in range(self.ndim - 1):
            mat = rest.reshape(left * ranks[n], -1)
            q, r = torch.linalg.qr(mat)
            cores.append(q.reshape(left, ranks[n], q.shape[1]))
            rest, left = r, q.shape[1]
        cores.append(rest.reshape(left, ranks[-1], 1))
        return TTTensor(
            tuple(torch.einsum("aib,ji->ajb", c, f) for c, f in zip(cores, self.factors))
        )
