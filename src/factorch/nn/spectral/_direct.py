"""Hand-written mode contractions of a modes-first kept spectrum ``(K, B, I)`` (see
:mod:`._gemm_modes`) with a dense, a Tucker or a CP weight.

Dense ``W (I, O, k..)``: ``Y_k = X_k W_k``, one batched GEMM over the ``K`` kept modes.

Tucker ``W = G x_in U_in x_out U_out x_k1 U_1 .. x_kd U_d``: the mode factors (their Kronecker
product when there are several) are folded into the core first (``G_k (K, r_in, r_out)``, a few
hundred entries), then ``Y = ((X U_in) G_k) U_out^T``: a GEMM over all ``K B`` rows, a batched
GEMM over the modes and a GEMM again. The generic path (opt_einsum's pairwise order through
:class:`._einsum.Contraction`) computes the same products but pays a permute, a copy and a
separate autograd node per pair, in both passes, which on the small spectra of 1-D problems cost
more than the arithmetic.

CP ``W = sum_r l_r a_r o b_r o c_{1,r} o .. o c_{d,r}``, where the cost model rebuilds the
weight (at training batch sizes: fewer FLOPs forward and backward than contracting the spectrum
with the factors): :func:`cp_weight_modes_first` (the CP network's ``modes_first_weight``) builds
it straight in the modes-first ``(K, I, O)`` layout the batched GEMM (:func:`modes_bmm`) wants,
as one GEMM ``W = C_k (a o b)^T`` of the ``(K, R)`` mode rows (times ``l``) with the
``(R, I O)`` outer products. The generic path builds it ``(I, O, K)`` through two pairwise
contractions with a permuted copy each, then copies it modes-first, and its backward undoes
every copy.

Dense and Tucker are one autograd node each; CP is three (outer products, GEMM, batched GEMM),
so no backward recomputes the weight (the batched GEMM is :mod:`._einsum`'s, whose backward
GEMMs get contiguous operands). Every backward is built from differentiable operations on
its Function's own saved inputs (small intermediates recomputed, not saved), so higher-order
gradients stay correct.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ._einsum import _ContiguousBmm

__all__ = ["cp_weight_modes_first", "dense_modes", "modes_bmm", "tucker_modes"]


def _mm_h(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a^H b`` for 2-D or batched 3-D operands, with the conjugate transpose materialized (the
    complex CPU kernels copy transposed-conjugate batches one matrix at a time)."""
    return torch.matmul(a.mH.contiguous(), b)


class _DenseModes(torch.autograd.Function):
    """``x (K, B, I)``, ``w (I, O, K)`` -> ``(K, B, O)``: ``y_k = x_k w[:, :, k]``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        return torch.bmm(x, w.permute(2, 0, 1).contiguous())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, w = ctx.saved_tensors
        grad = grad.contiguous()
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.bmm(grad, w.permute(2, 1, 0).conj().contiguous())
        if ctx.needs_input_grad[1]:
            gw = _mm_h(x, grad).permute(1, 2, 0).contiguous()
        return gx, gw


def dense_modes(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Contract a modes-first spectrum ``(k.., B, I)`` with a dense ``(I, O, k..)`` weight to
    ``(k.., B, O)`` (differentiable)."""
    if weight.ndim == 3:  # one spatial dimension: no reshape nodes
        return _DenseModes.apply(x, weight)
    i, o = weight.shape[:2]
    k = math.prod(weight.shape[2:])
    b = x.shape[-2]
    out = _DenseModes.apply(x.reshape(k, b, i), weight.reshape(i, o, k))
    return out.view(*x.shape[:-1], o)


class _TuckerModes(torch.autograd.Function):
    """``x (K, B, I)``, ``u_in (I, a)``, ``core (a, b, c)``, ``u_out (O, b)``, ``u_k (K, c)`` ->
    ``(K, B, O)``: ``y_k = x_k u_in G_k u_out^T`` with ``G_k = sum_c u_k[k, c] core[:, :, c]``."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        u_in: torch.Tensor,
        core: torch.Tensor,
        u_out: torch.Tensor,
        u_k: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, u_in, core, u_out, u_k)
        # Factors may be stored transposed: contiguous copies (a few hundred entries) make the
        # GEMMs, and so the rounding, independent of how the parameters are laid out.
        x, u_in, core, u_out, u_k = (t.contiguous() for t in (x, u_in, core, u_out, u_k))
        k, b, i = x.shape
        ra, rb, rc = core.shape
        folded = torch.mm(u_k, core.reshape(ra * rb, rc).T).view(k, ra, rb)
        t1 = torch.mm(x.view(k * b, i), u_in).view(k, b, ra)
        t2 = torch.bmm(t1, folded)
        return torch.mm(t2.view(k * b, rb), u_out.T).view(k, b, -1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # Recomputes the small intermediates from the saved inputs: cheap, and the backward is
        # then differentiable operations on the inputs (exact higher-order gradients).
        x, u_in, core, u_out, u_k = (t.contiguous() for t in ctx.saved_tensors)
        need_x, need_in, need_core, need_out, need_k = ctx.needs_input_grad
        k, b, i = x.shape
        ra, rb, rc = core.shape
        core2 = core.reshape(ra * rb, rc)
        folded = torch.mm(u_k, core2.T).view(k, ra, rb)
        g = grad.reshape(k * b, -1)
        x2 = x.view(k * b, i)
        t1 = torch.mm(x2, u_in)
        g2 = torch.mm(g, u_out.conj())  # (K B, rb)
        gx = g_in = g_core = g_out = g_k = None
        if need_out:
            t2 = torch.bmm(t1.view(k, b, ra), folded).view(k * b, rb)
            g_out = torch.mm(g.T, t2.conj())
        if need_core or need_k:
            g_folded = _mm_h(t1.view(k, b, ra), g2.view(k, b, rb)).view(k, ra * rb)
            if need_k:
                g_k = torch.mm(g_folded, core2.conj())
            if need_core:
                g_core = torch.mm(g_folded.T, u_k.conj()).view(ra, rb, rc)
        if need_x or need_in:
            g1 = torch.bmm(g2.view(k, b, rb), folded.mH.contiguous()).view(k * b, ra)
            if need_x:
                gx = torch.mm(g1, u_in.mH.contiguous()).view(k, b, i)
            if need_in:
                g_in = _mm_h(x2, g1)
        return gx, g_in, g_core, g_out, g_k


def tucker_modes(
    x: torch.Tensor,
    core: torch.Tensor,
    u_in: torch.Tensor,
    u_out: torch.Tensor,
    mode_factors: list[torch.Tensor],
) -> torch.Tensor:
    """Contract a modes-first spectrum ``(k.., B, I)`` with a Tucker weight over
    ``(in, out, k..)`` (core ``(r_in, r_out, r_1.., r_d)``, factors ``(size, rank)``) to
    ``(k.., B, O)`` (differentiable). Several spatial dimensions act as one: the Kronecker
    product of their factors (a few hundred entries) over the flattened core ranks."""
    if len(mode_factors) == 1:  # one spatial dimension: no reshape nodes
        return _TuckerModes.apply(x, u_in, core, u_out, mode_factors[0])
    u_k = mode_factors[0]
    for factor in mode_factors[1:]:  # last mode fastest, as the kept spectrum is stored
        u_k = torch.kron(u_k, factor)
    ra, rb = core.shape[:2]
    kk, b, i = u_k.shape[0], x.shape[-2], x.shape[-1]
    out = _TuckerModes.apply(
        x.reshape(kk, b, i), u_in, core.reshape(ra, rb, u_k.shape[1]), u_out, u_k
    )
    return out.view(*x.shape[:-1], u_out.shape[0])


class _Outer(torch.autograd.Function):
    """``a (I, R)``, ``b (O, R)`` -> ``(R, I, O)``: ``out[r, i, o] = a[i, r] b[o, r]``, as a
    batched GEMM over ``R`` (CPUs multiply complex tensors elementwise several times slower than
    through a GEMM, and the broadcast product's backward adds a reduction per factor)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return torch.bmm(a.T.contiguous().unsqueeze(2), b.T.contiguous().unsqueeze(1))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        grad = grad.contiguous()
        ga = gb = None
        if ctx.needs_input_grad[0]:  # ga[i, r] = sum_o grad[r, i, o] conj(b[o, r])
            ga = torch.bmm(grad, b.T.conj().contiguous().unsqueeze(2)).squeeze(2).T
        if ctx.needs_input_grad[1]:  # gb[o, r] = sum_i conj(a[i, r]) grad[r, i, o]
            gb = torch.bmm(a.T.conj().contiguous().unsqueeze(1), grad).squeeze(1).T
        return ga, gb


def cp_weight_modes_first(operands: Sequence[torch.Tensor]) -> torch.Tensor:
    """A CP weight over ``(in, out, k..)`` from its operands (component weights ``(R,)``, then
    factors ``(size, R)`` in mode order) built straight in the modes-first layout ``(K, I, O)``
    (``K`` the kept modes flattened, last fastest as the kept spectrum is stored): one GEMM of
    the ``(K, R)`` mode rows (the row-wise Kronecker product of the mode factors, times the
    weights) with the ``(R, I O)`` outer products of the channel factors (differentiable)."""
    weights, u_in, u_out, *mode_factors = operands
    rank = weights.shape[0]
    rows = mode_factors[0]
    for factor in mode_factors[1:]:
        rows = (rows[:, None, :] * factor[None, :, :]).reshape(-1, rank)
    i, o = u_in.shape[0], u_out.shape[0]
    outer = _Outer.apply(u_in, u_out).view(rank, i * o)
    return torch.mm(rows * weights, outer).view(-1, i, o)


def modes_bmm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Contract a modes-first spectrum ``(k.., B, I)`` with a modes-first weight ``(K, I, O)``
    to ``(k.., B, O)`` (differentiable)."""
    kk, i, o = weight.shape
    return _ContiguousBmm.apply(x.reshape(kk, x.shape[-2], i), weight).view(*x.shape[:-1], o)
