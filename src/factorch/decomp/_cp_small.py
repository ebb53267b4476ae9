"""The CP-ALS sweep for small tensors: a few large operations per mode instead of many small ones.

Below about ``2**17`` entries a sweep's time is the fixed cost of its operations (a few
microseconds each), not arithmetic. :class:`SmallSweep` keeps the operation count low:

* every mode-n unfolding ``X_(n)`` (the other modes in order, the last varying fastest) is ready
  before the sweep: the first and last modes are free views of the tensor, the middle modes one
  copy each per fit (per sweep with EM imputation, whose data change);
* the MTTKRP of mode ``n`` is one GEMM ``X_(n) K_n`` with ``K_n`` the Khatri--Rao product of the
  other factors (conjugated for complex data, see :func:`factorch.decomp._cp_sweep.gram`),
  written into preallocated buffers;
* the normal equations are solved by one Cholesky factorisation with the same singular fallback
  as :func:`factorch.decomp._cp_sweep.solve_normal` (two host reads per mode).

The iterates are those of :func:`factorch.decomp._cp_sweep.als_sweep` up to rounding (the
dimension tree of the reference path contracts in another order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._cp_sweep import CPState, gram

__all__ = ["SMALL_ENTRIES", "SmallSweep"]

# Tensors with at most this many entries take the small path (the middle unfoldings copied once
# cost at most (N - 2) such copies of memory).
SMALL_ENTRIES = 1 << 17


class SmallSweep:
    """Unfoldings, Khatri--Rao and MTTKRP buffers of one small CP-ALS fit (shape and rank
    fixed), and the sweep that uses them."""

    def __init__(self, tensor: torch.Tensor, rank: int) -> None:
        shape = tuple(tensor.shape)
        n = len(shape)
        total = math.prod(shape)
        dtype, device = tensor.dtype, tensor.device
        self.shape = shape
        self.rank = rank
        self.is_complex = tensor.is_complex()
        real = tensor.real.dtype if self.is_complex else tensor.dtype
        self.sqrt_eps = torch.finfo(real).eps ** 0.5
        self._middle = [torch.empty(s, total // s, dtype=dtype, device=device) for s in shape[1:-1]]
        self._kr = [
            torch.empty(total // s, rank, dtype=dtype, device=device) if n > 2 else None
            for s in shape
        ]
        self._mttkrp = [torch.empty(s, rank, dtype=dtype, device=device) for s in shape]
        self._gram = torch.empty(rank, rank, dtype=dtype, device=device)
        self._one = torch.ones((), dtype=real, device=tensor.device)
        self.unfoldings: list[torch.Tensor] = []
        self.load(tensor)

    def load(self, tensor: torch.Tensor) -> None:
        """Take ``tensor`` (contiguous, of the fit's shape) as the data of the next sweeps."""
        shape = self.shape
        unfoldings = [tensor.reshape(shape[0], -1)]
        lead = shape[0]
        for k, buf in enumerate(self._middle):
            size = shape[k + 1]
            src = tensor.reshape(lead, size, -1).transpose(0, 1)
            buf.view(src.shape).copy_(src)
            unfoldings.append(buf)
            lead *= size
        unfoldings.append(tensor.reshape(-1, shape[-1]).mT)
        self.unfoldings = unfoldings

    def khatri_rao(self, factors: Sequence[torch.Tensor], skip: int | None) -> torch.Tensor:
        """Khatri--Rao product of the factors other than ``skip``, in order (rows C-ordered;
        conjugated for complex data); written into the mode's buffer when it has one."""
        parts = [f.conj() if self.is_complex else f for m, f in enumerate(factors) if m != skip]
        if len(parts) == 1:
            return parts[0]
        out = parts[0]
        for nxt in parts[1:-1]:
            out = (out[:, None, :] * nxt[None, :, :]).reshape(-1, self.rank)
        nxt = parts[-1]
        buf = self._kr[skip] if skip is not None else None
        if buf is None:
            return (out[:, None, :] * nxt[None, :, :]).reshape(-1, self.rank)
        torch.mul(out[:, None, :], nxt[None, :, :], out=buf.view(out.shape[0], -1, self.rank))
        return buf

    def mttkrp(
        self, mode: int, factors: Sequence[torch.Tensor], *, fresh: bool = False
    ) -> torch.Tensor:
        """``X_(mode) K`` with the loaded data and ``factors``: a buffer valid until the next
        call for the same mode, or a new tensor when ``fresh``."""
        kr = self.khatri_rao(factors, mode)
        if fresh:
            return self.unfoldings[mode] @ kr
        return torch.mm(self.unfoldings[mode], kr, out=self._mttkrp[mode])

    def solve(
        self, mttkrp: torch.Tensor, grams: Sequence[torch.Tensor], mode: int, l2: float
    ) -> torch.Tensor:
        """``A (*_{m != mode} G_m + l2 I) = MTTKRP`` by Cholesky, or the pseudo-inverse when the
        matrix is numerically singular (the rule of :func:`_cp_sweep.solve_normal`)."""
        others = [g for m, g in enumerate(grams) if m != mode]
        v = self._gram
        if len(others) == 1:
            v.copy_(others[0])
        else:
            torch.mul(others[0], others[1], out=v)
            for g in others[2:]:
                v.mul_(g)
        if l2:
            v.diagonal().add_(l2)
        chol, info = torch.linalg.cholesky_ex(v)
        if int(info) == 0:
            diag = [abs(d) for d in chol.diagonal().tolist()]
            if min(diag) > max(diag) * self.sqrt_eps:
                return torch.cholesky_solve(mttkrp.mH, chol).mH
        return mttkrp @ torch.linalg.pinv(v, hermitian=True)

    def sweep(self, state: CPState, *, l2: float, fixed: frozenset[int]) -> torch.Tensor:
        """One CP-ALS sweep over the loaded data (``state`` in place, as
        :func:`_cp_sweep.als_sweep`); returns the last mode's MTTKRP."""
        last = len(self.shape) - 1
        mttkrp = state.factors[-1]
        for mode in range(last + 1):
            if mode in fixed and mode != last:
                continue
            mttkrp = self.mttkrp(mode, state.factors)
            if mode in fixed:
                break
            factor = self.solve(mttkrp, state.grams, mode, l2)
            norms = torch.linalg.vector_norm(factor, dim=0)
            norms = torch.where(norms > 0, norms, self._one)
            state.weights = norms.to(factor.dtype)
            state.factors[mode] = factor / state.weights
            state.grams[mode] = gram(state.factors[mode])
        return mttkrp

    def dense(self, state: CPState) -> torch.Tensor:
        """The model ``[[w; A]]`` as a dense tensor (one Khatri--Rao product and one GEMM)."""
        factors = state.factors
        if len(factors) == 2:
            left = factors[0]
        else:
            left = factors[0]
            for f in factors[1:-1]:
                left = (left[:, None, :] * f[None, :, :]).reshape(-1, self.rank)
        return ((left * state.weights) @ factors[-1].mT).reshape(self.shape)
