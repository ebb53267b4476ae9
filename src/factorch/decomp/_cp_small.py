"""The CP-ALS sweep for small tensors: a few large operations per mode instead of many small ones.

Below about ``2**17`` entries a sweep's time is the fixed cost of its operations (a few
microseconds each), not arithmetic. :class:`SmallSweep` keeps the operation count low:

* every mode-n unfolding ``X_(n)`` (the other modes in order, the last varying fastest) is ready
  before the sweep: the first and last modes are free views of the tensor, the middle modes one
  copy each per fit (per sweep with EM imputation, whose data change);
* the MTTKRP of mode ``n`` is one GEMM ``X_(n) K_n`` with ``K_n`` the Khatri--Rao product of the
  other factors (conjugated for complex data, see :func:`factorch.decomp._cp_sweep.gram`),
  written into buffers made by the first sweep (the last mode as ``(K^T X_(N-1)^T)^T``, faster
  in BLAS);
* the normal equations: for real CPU data of rank at most 5, the Hadamard product of the Grams
  and its inverse on the host (:mod:`._small_normal`: each Gram read once, Gauss--Jordan with
  Cholesky's fallback rule); otherwise the inverse of the ``R x R`` matrix from one Cholesky
  factorisation, with the same singular fallback as
  :func:`factorch.decomp._cp_sweep.solve_normal`; the Gram error reuses the last solve's Hadamard
  product; EM imputation reuses the model the error was measured on; the exact error forms the
  residual by one ``addmm`` (no dense model);
* the checks of the fit's options are made once, before the loop.

Measured (one thread, ``benchmarks/bench_small.py --parts dispatches``): 28 ATen operations per
sweep on 10x10x10 rank 3 (49 with the normal equations in torch, ~356 on the reference path) and
29 more per call.

The iterates are those of :func:`factorch.decomp._cp_sweep.als_sweep` up to rounding (the
dimension tree of the reference path contracts in another order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._cp_sweep import CPState, exact_error_of, gram_error, gram_error_of
from ._small_normal import HOST_RANK, HostMatrix, Matrix, hadamard, spd_inverse

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
        dtype, device = tensor.dtype, tensor.device
        self.shape = shape
        self.rank = rank
        self.is_complex = tensor.is_complex()
        real = tensor.real.dtype if self.is_complex else tensor.dtype
        self.eps = torch.finfo(real).eps
        self.sqrt_eps = self.eps**0.5
        # Buffers made by their first use (an operation that allocates its output anyway), so a
        # short fit pays no separate allocations: the middle unfoldings, the Khatri--Rao products
        # (with a 3-D view for ``out=``) and the MTTKRPs (the last mode's transposed).
        self._middle: list[torch.Tensor | None] = [None] * max(n - 2, 0)
        self._kr: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n
        self._mttkrp: list[torch.Tensor | None] = [None] * n
        self._all = tuple(range(n))
        self._others = [tuple(m for m in range(n) if m != k) for k in range(n)]
        self._last_mttkrp: torch.Tensor | None = None
        self._dense_of: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None
        self._imputed_of: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None
        self._last_solved = False
        self._real = real
        # Real CPU fits of a small rank solve the normal equations on the host
        # (:mod:`._small_normal`): each Gram is read once, ``(tensor, rows)`` per mode.
        self._host: HostMatrix | None = None
        if dtype in (torch.float32, torch.float64) and device.type == "cpu" and rank <= HOST_RANK:
            self._host = HostMatrix(rank, dtype)
        self._host_grams: list[tuple[torch.Tensor, Matrix] | None] = [None] * n
        self._host_hadamard: Matrix | None = None
        self.hadamard: torch.Tensor | None = None  # (the torch route's, set by solve)
        self.unfoldings: list[torch.Tensor] = []
        self.load(tensor)

    def load(self, tensor: torch.Tensor) -> None:
        """Take ``tensor`` (contiguous, of the fit's shape) as the data of the next sweeps."""
        shape = self.shape
        unfoldings = [tensor.reshape(shape[0], -1)]
        lead = shape[0]
        for k, buf in enumerate(self._middle, start=1):
            src = tensor.reshape(lead, shape[k], -1).transpose(0, 1)
            if buf is None:  # (a clone, never a view of the data: later loads write into it)
                buf = src.clone(memory_format=torch.contiguous_format).view(shape[k], -1)
                self._middle[k - 1] = buf
            else:
                buf.view(src.shape).copy_(src)
            unfoldings.append(buf)
            lead *= shape[k]
        # The last mode's unfolding transposed (a free view): its MTTKRP is computed as
        # ``(K^T X_(N-1)^T)^T``, the faster orientation for BLAS when R is small.
        unfoldings.append(tensor.reshape(-1, shape[-1]))
        self.unfoldings = unfoldings

    def khatri_rao(self, factors: Sequence[torch.Tensor], skip: int | None) -> torch.Tensor:
        """Khatri--Rao product of the factors other than ``skip``, in order (rows C-ordered;
        conjugated for complex data); written into the mode's buffer when it has one."""
        parts = [factors[m] for m in (self._others[skip] if skip is not None else self._all)]
        if self.is_complex:
            parts = [f.conj() for f in parts]
        if len(parts) == 1:
            return parts[0]
        out = parts[0]
        for nxt in parts[1:-1]:
            out = torch.mul(out.unsqueeze(1), nxt).reshape(-1, self.rank)
        if skip is None:
            return torch.mul(out.unsqueeze(1), parts[-1]).reshape(-1, self.rank)
        bufs = self._kr[skip]
        if bufs is None:
            view = torch.mul(out.unsqueeze(1), parts[-1])
            if not view.is_contiguous():  # (strided factors can give a strided product)
                view = view.contiguous()
            self._kr[skip] = (view.view(-1, self.rank), view)
            return self._kr[skip][0]  # type: ignore[index]
        torch.mul(out.unsqueeze(1), parts[-1], out=bufs[1])
        return bufs[0]

    def mttkrp(
        self, mode: int, factors: Sequence[torch.Tensor], *, fresh: bool = False
    ) -> torch.Tensor:
        """``X_(mode) K`` with the loaded data and ``factors``: a buffer valid until the next
        call for the same mode, or a new tensor when ``fresh``."""
        kr = self.khatri_rao(factors, mode)
        unfolding = self.unfoldings[mode]
        last = mode == len(self.shape) - 1
        buf = None if fresh else self._mttkrp[mode]
        if buf is None:
            out = torch.mm(kr.mT, unfolding) if last else torch.mm(unfolding, kr)
            if not fresh:
                self._mttkrp[mode] = out
        elif last:
            out = torch.mm(kr.mT, unfolding, out=buf)
        else:
            out = torch.mm(unfolding, kr, out=buf)
        return out.mT if last else out

    def solve(
        self, mttkrp: torch.Tensor, grams: Sequence[torch.Tensor], mode: int, l2: float
    ) -> torch.Tensor:
        """``A (*_{m != mode} G_m + l2 I) = MTTKRP`` by Cholesky, or the pseudo-inverse when the
        matrix is numerically singular (the rule of :func:`_cp_sweep.solve_normal`).

        Leaves ``*_{m != mode} G_m`` in :attr:`hadamard` (on the host route, its rows in
        ``_host_hadamard``) for :meth:`gram_error`."""
        if self._host is not None:
            return self._solve_on_host(self._host, mttkrp, grams, mode, l2)
        others = [grams[m] for m in self._others[mode]]
        v = others[0].clone() if len(others) == 1 else torch.mul(others[0], others[1])
        for g in others[2:]:
            v.mul_(g)
        self.hadamard = v
        if l2:
            v = v + l2 * torch.eye(self.rank, dtype=v.dtype, device=v.device)
        chol, info = torch.linalg.cholesky_ex(v)
        if int(info) == 0:
            diag = [abs(d) for d in chol.diagonal().tolist()]
            if min(diag) > max(diag) * self.sqrt_eps:
                # V^{-1} is R x R: forming it costs less than a solve with I_n right-hand sides.
                return mttkrp @ torch.cholesky_inverse(chol)
        return mttkrp @ torch.linalg.pinv(v, hermitian=True)

    def _host_gram(self, grams: Sequence[torch.Tensor], mode: int) -> Matrix:
        """The rows of ``grams[mode]`` on the host (read once per Gram tensor)."""
        cached = self._host_grams[mode]
        if cached is not None and cached[0] is grams[mode]:
            return cached[1]
        rows = grams[mode].tolist()
        self._host_grams[mode] = (grams[mode], rows)
        return rows

    def _solve_on_host(
        self,
        host: HostMatrix,
        mttkrp: torch.Tensor,
        grams: Sequence[torch.Tensor],
        mode: int,
        l2: float,
    ) -> torch.Tensor:
        """:meth:`solve` with the ``R x R`` algebra on the host (:mod:`._small_normal`);
        ``host`` takes the inverse to torch."""
        others = [self._host_gram(grams, m) for m in self._others[mode]]
        self._host_hadamard, v = hadamard(others, self.rank, l2)
        inverse = spd_inverse(v, self.rank, self.eps)
        if inverse is not None:
            return mttkrp @ host.set(inverse)
        dense = torch.tensor(v, dtype=mttkrp.dtype, device=mttkrp.device)
        return mttkrp @ torch.linalg.pinv(dense, hermitian=True)

    def sweep(self, state: CPState, *, l2: float, fixed: frozenset[int]) -> torch.Tensor:
        """One CP-ALS sweep over the loaded data (``state`` in place, as
        :func:`_cp_sweep.als_sweep`); returns the last mode's MTTKRP."""
        last = len(self.shape) - 1
        mttkrp = state.factors[-1]
        self._last_solved = False
        for mode in range(last + 1):
            if mode in fixed and mode != last:
                continue
            mttkrp = self.mttkrp(mode, state.factors)
            if mode in fixed:
                break
            factor = self.solve(mttkrp, state.grams, mode, l2)
            norms = torch.linalg.vector_norm(factor, dim=0)
            # Zero (or NaN) columns keep weight 1; checked on the host, cheaper than a select.
            if not all(n > 0 for n in norms.tolist()):
                one = torch.ones((), dtype=self._real, device=norms.device)
                norms = torch.where(norms > 0, norms, one)
            state.weights = norms.to(factor.dtype) if self.is_complex else norms
            factor = torch.div(factor, state.weights)
            state.factors[mode] = factor
            state.grams[mode] = torch.mm(factor.mT, factor.conj() if self.is_complex else factor)
        self._last_solved = last not in fixed
        self._last_mttkrp = mttkrp
        return mttkrp

    def gram_error(
        self, norm_x2: float, mttkrp: torch.Tensor, state: CPState
    ) -> tuple[float, float]:
        """:func:`_cp_sweep.gram_error` of the state a :meth:`sweep` just left (``mttkrp`` its
        return value), reusing the Hadamard product of the last mode's solve."""
        if self.is_complex or not self._last_solved or mttkrp is not self._last_mttkrp:
            return gram_error(norm_x2, mttkrp, state)
        w = state.weights
        rows, hadamard = self._host_hadamard, self.hadamard
        if self._host is not None and rows is not None:
            # On the host: <M, A diag(w)> from the column sums of M * A, and w^T (H * G) w.
            weights = w.tolist()
            sums = torch.mul(mttkrp, state.factors[-1]).sum(0).tolist()
            inner = sum(a * b for a, b in zip(sums, weights))
            last = self._host_gram(state.grams, len(self.shape) - 1)
            model2 = 0.0
            for i, (h_row, g_row) in enumerate(zip(rows, last)):
                model2 += weights[i] * sum(h * g * wj for h, g, wj in zip(h_row, g_row, weights))
        elif hadamard is not None:
            inner = float((mttkrp * state.factors[-1]).sum(0) @ w)
            model2 = float(w @ ((hadamard * state.grams[-1]) @ w))
        else:
            return gram_error(norm_x2, mttkrp, state)
        return gram_error_of(norm_x2, inner, model2, self.eps)

    def exact_error(
        self, tensor: torch.Tensor, state: CPState, norm_x2: float
    ) -> tuple[float, float]:
        """:func:`_cp_sweep.exact_error` with the residual ``X - [[w; A]]`` formed by one GEMM
        that accumulates into a copy of the data (``addmm``: no dense model, no separate
        subtraction; the tensor is small)."""
        factors = state.factors
        left = factors[0]
        for f in factors[1:-1]:
            left = torch.mul(left.unsqueeze(1), f).reshape(-1, self.rank)
        data = tensor.reshape(-1, self.shape[-1])
        resid = torch.addmm(data, left * state.weights, factors[-1].mT, alpha=-1).reshape(-1)
        resid2 = float(torch.vdot(resid, resid).real)
        weight_sum = sum(abs(w) for w in state.weights.tolist())
        return exact_error_of(resid2, weight_sum, norm_x2, self.eps)

    def impute(self, tensor: torch.Tensor, mask: torch.Tensor, state: CPState) -> torch.Tensor:
        """``where(mask, tensor, [[w; A]])`` (EM), kept like :meth:`dense` while ``state`` holds
        the same tensors (``tensor`` must be the fit's data wherever ``mask`` is True)."""
        key = (state.weights, *state.factors)
        cached = self._imputed_of
        if cached is not None and all(a is b for a, b in zip(cached[0], key)):
            return cached[1]
        out = torch.where(mask, tensor, self.dense(state))
        self._imputed_of = (key, out)
        return out

    def dense(self, state: CPState) -> torch.Tensor:
        """The model ``[[w; A]]`` as a dense tensor (one Khatri--Rao product and one GEMM).

        The last result is kept while ``state`` holds the same weight and factor tensors (EM
        imputes from the model whose error the previous sweep measured)."""
        key = (state.weights, *state.factors)
        cached = self._dense_of
        if cached is not None and all(a is b for a, b in zip(cached[0], key)):
            return cached[1]
        factors = state.factors
        left = factors[0]
        for f in factors[1:-1]:
            left = torch.mul(left.unsqueeze(1), f).reshape(-1, self.rank)
        out = ((left * state.weights) @ factors[-1].mT).reshape(self.shape)
        self._dense_of = (key, out)
        return out
