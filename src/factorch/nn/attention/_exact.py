r"""Exact tensor attention over token pairs (Alman & Song, ICLR 2024), blockwise.

For queries ``Q (L, d)``, keys ``K1, K2 (S, d)`` and values ``V1, V2 (S, dv)`` (per batch entry),
*tensor attention* lets every query attend to every ordered **pair** of tokens ``(j, k)``:

.. math::

    \mathrm{Att}(Q, K_1, K_2, V_1, V_2) = D^{-1} \exp\!\big(c\, Q (K_1 \oslash K_2)^\top + T\big)
    (V_1 \oslash V_2), \qquad D = \mathrm{diag}\big(\exp(\cdot)\, \mathbf 1_{S^2}\big),

where ``⊘`` is the row-wise Khatri--Rao product (row ``(j, k)`` of ``K1 ⊘ K2`` is
``K1[j] ∘ K2[k]``, so the pair logit is ``s_{ijk} = c Σ_l Q_il K1_jl K2_kl``), ``c`` is the scale
(default ``1/sqrt(d)``, as in ``scaled_dot_product_attention``; the paper writes ``1/d``) and
``T`` is the mask bias on pairs, ``T_{ijk} = t_{ij} + t_{ik}`` built from a per-token bias ``t``:

* causal: the pair ``(j, k)`` is visible to query ``i`` iff ``j <= i`` **and** ``k <= i``;
* key padding: the pair is visible iff neither ``j`` nor ``k`` is padding;
* a boolean ``attn_mask`` ``M (L, S)``: visible iff ``M_ij`` and ``M_ik``; a floating one adds
  ``M_ij + M_ik`` to the logit.

A query that sees no pair at all gets a zero output (never NaN).

The ``L x S²`` score matrix is never formed: queries are taken in blocks of ``b_q`` rows and the
first pair index in blocks of ``b_a`` tokens, so one block of scores is ``b_q x b_a x S``; blocks
are combined with the online (running-max) softmax of Milakov & Gimelshein (2018) / FlashAttention,
so nothing overflows whatever the logits' size. The backward pass recomputes the blocks from the
saved log-sum-exp (a custom autograd function), so training memory is ``O((L + S) d)`` plus one
block, not ``O(L S²)``. Cost: about ``2 L S² (d + dv)`` flops and ``L S²`` exponentials (a third
of that with the causal mask, whose fully hidden blocks are skipped).

Reference: J. Alman, Z. Song, "How to Capture Higher-order Correlations? Generalizing Matrix
Softmax Attention to Kronecker Computation", ICLR 2024 (arXiv:2310.04064).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ..._checks import check_generator
from ..._numerics import autocast_disabled
from ._inputs import (
    check_bool,
    check_dropout,
    check_memory_if_large,
    check_qkv,
    check_scale,
    compute_dtypes,
    finish,
    optional_block,
    pair_logit_bound,
    token_bias,
    widen_for_logits,
)

__all__ = ["OVERFLOW", "tensor_attention", "tensor_attention_weights"]

OVERFLOW = "the pair logits overflow even in float64, or the pair values v1 ∘ v2 exceed the range"

# Elements of one block of pair scores (``batch x b_q x b_a x S``); the backward pass holds about
# five such blocks at once (2**20 float64 elements are 8 MiB each).
BLOCK_ELEMENTS = 1 << 20


def _block_sizes(batch: int, n_query: int, n_key: int, block_size: int | None) -> tuple[int, int]:
    if block_size is not None:
        return min(block_size, n_query), min(block_size, n_key)
    side = max(1, math.isqrt(max(1, BLOCK_ELEMENTS // max(1, batch * n_key))))
    return min(side, n_query), min(side, n_key)


def _query_blocks(
    n_query: int, n_key: int, bq: int, causal: bool
) -> Iterator[tuple[int, int, int]]:
    """``(i0, i1, s_end)``: query rows ``i0:i1`` and the keys ``0:s_end`` they may see."""
    for i0 in range(0, n_query, bq):
        i1 = min(i0 + bq, n_query)
        yield i0, i1, (min(i1, n_key) if causal else n_key)


def _scores(
    qb: torch.Tensor,
    k1b: torch.Tensor,
    k2s: torch.Tensor,
    tb: torch.Tensor | None,
    a0: int,
    a1: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair logits ``s[i, a, b] = <qb_i ∘ k1_a, k2_b> + t[i, a] + t[i, b]`` of one block and the
    ``qb_i ∘ k1_a`` products ``(..., b_q, b_a, d)``."""
    nq, na = qb.shape[-2], k1b.shape[-2]
    qk = qb.unsqueeze(-2) * k1b.unsqueeze(-3)
    s = (qk.flatten(-3, -2) @ k2s.mT).unflatten(-2, (nq, na))
    if tb is not None:
        s = s + tb[..., a0:a1].unsqueeze(-1) + tb.unsqueeze(-2)
    return s, qk


def _dropout_keep(gen: torch.Generator | None, like: torch.Tensor, p: float) -> torch.Tensor | None:
    if gen is None:
        return None
    keep = torch.rand(like.shape, generator=gen, device=like.device, dtype=like.dtype) >= p
    return keep.to(like.dtype) / (1.0 - p)


def _dropout_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def _forward(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    causal: bool,
    bq: int,
    ba: int,
    dropout_p: float,
    seed: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``(..., L, dv)`` and log-sum-exp ``(..., L)`` (``+inf`` where no pair is seen)."""
    n_query, n_key, dv = q.shape[-2], k1.shape[-2], v1.shape[-1]
    batch = q.shape[:-2]
    out = q.new_zeros(*batch, n_query, dv)
    lse = q.new_full((*batch, n_query), math.inf)
    gen = _dropout_generator(seed, q.device)
    for i0, i1, s_end in _query_blocks(n_query, n_key, bq, causal):
        qb = q[..., i0:i1, :] * scale
        k2s, v2s = k2[..., :s_end, :], v2[..., :s_end, :]
        tb = None if bias is None else bias[..., i0:i1, :s_end]
        m = q.new_full((*batch, i1 - i0), -math.inf)
        total = q.new_zeros((*batch, i1 - i0))
        acc = q.new_zeros((*batch, i1 - i0, dv))
        for a0 in range(0, s_end, ba):
            a1 = min(a0 + ba, s_end)
            s, _ = _scores(qb, k1[..., a0:a1, :], k2s, tb, a0, a1)
            m_new = torch.maximum(m, s.amax(dim=(-2, -1)))
            m_use = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
            p = torch.exp(s - m_use[..., None, None])
            alpha = torch.exp(m - m_use)
            total = total * alpha + p.sum(dim=(-2, -1))
            keep = _dropout_keep(gen, p, dropout_p)
            if keep is not None:
                p = p * keep
            pv = (p.flatten(-3, -2) @ v2s).unflatten(-2, (i1 - i0, a1 - a0))
            acc = acc * alpha.unsqueeze(-1) + torch.einsum(
                "...iac,...ac->...ic", pv, v1[..., a0:a1, :]
            )
            m = m_new
        empty = total == 0  # no visible pair; NaN totals (overflow) propagate to the output
        safe = torch.where(empty, torch.ones_like(total), total)
        out[..., i0:i1, :] = torch.where(empty.unsqueeze(-1), 0.0, acc / safe.unsqueeze(-1))
        lse[..., i0:i1] = torch.where(empty, math.inf, m + torch.log(safe))
    return out, lse


def _backward(
    ctx_tensors: tuple[torch.Tensor, ...],
    bias: torch.Tensor | None,
    grad_out: torch.Tensor,
    params: tuple[float, bool, int, int, float, int | None],
    needs: tuple[bool, ...],
) -> tuple[torch.Tensor | None, ...]:
    q, k1, k2, v1, v2, out, lse = ctx_tensors
    scale, causal, bq, ba, dropout_p, seed = params
    n_query, n_key = q.shape[-2], k1.shape[-2]
    dq, dk1, dk2 = torch.zeros_like(q), torch.zeros_like(k1), torch.zeros_like(k2)
    dv1, dv2 = torch.zeros_like(v1), torch.zeros_like(v2)
    dbias = torch.zeros_like(bias) if (bias is not None and needs[5]) else None
    delta = (grad_out * out).sum(-1)
    gen = _dropout_generator(seed, q.device)
    for i0, i1, s_end in _query_blocks(n_query, n_key, bq, causal):
        qb = q[..., i0:i1, :] * scale
        gb = grad_out[..., i0:i1, :]
        k2s, v2s = k2[..., :s_end, :], v2[..., :s_end, :]
        tb = None if bias is None else bias[..., i0:i1, :s_end]
        lse_b, delta_b = lse[..., i0:i1, None, None], delta[..., i0:i1, None, None]
        for a0 in range(0, s_end, ba):
            a1 = min(a0 + ba, s_end)
            shape = (i1 - i0, a1 - a0)
            k1b, v1b = k1[..., a0:a1, :], v1[..., a0:a1, :]
            s, qk = _scores(qb, k1b, k2s, tb, a0, a1)
            p = torch.exp(s - lse_b)
            gv1 = (gb.unsqueeze(-2) * v1b.unsqueeze(-3)).flatten(-3, -2)  # dO_i ∘ v1_a
            dp = (gv1 @ v2s.mT).unflatten(-2, shape)
            keep = _dropout_keep(gen, p, dropout_p)
            p_out = p if keep is None else p * keep
            if keep is not None:
                dp = dp * keep
            ds = p * (dp - delta_b)
            flat_ds = ds.flatten(-3, -2)
            w = (flat_ds @ k2s).unflatten(-2, shape)  # Σ_b dS_iab k2_b
            if needs[0]:
                dq[..., i0:i1, :] += torch.einsum("...iad,...ad->...id", w, k1b) * scale
            if needs[1]:
                dk1[..., a0:a1, :] += torch.einsum("...iad,...id->...ad", w, qb)
            if needs[2]:
                dk2[..., :s_end, :] += flat_ds.mT @ qk.flatten(-3, -2)
            if needs[3]:
                pv = (p_out.flatten(-3, -2) @ v2s).unflatten(-2, shape)
                dv1[..., a0:a1, :] += torch.einsum("...iac,...ic->...ac", pv, gb)
            if needs[4]:
                dv2[..., :s_end, :] += p_out.flatten(-3, -2).mT @ gv1
            if dbias is not None:
                dbias[..., i0:i1, a0:a1] += ds.sum(-1)
                dbias[..., i0:i1, :s_end] += ds.sum(-2)
    return dq, dk1, dk2, dv1, dv2, dbias


class _TensorAttentionFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k1: torch.Tensor,
        k2: torch.Tensor,
        v1: torch.Tensor,
        v2: torch.Tensor,
        bias: torch.Tensor | None,
        scale: float,
        causal: bool,
        bq: int,
        ba: int,
        dropout_p: float,
        seed: int | None,
    ) -> torch.Tensor:
        out, lse = _forward(q, k1, k2, v1, v2, bias, scale, causal, bq, ba, dropout_p, seed)
        ctx.save_for_backward(q, k1, k2, v1, v2, out, lse, *([] if bias is None else [bias]))
        ctx.params = (scale, causal, bq, ba, dropout_p, seed)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        bias = saved[7] if len(saved) > 7 else None
        needs = tuple(ctx.needs_input_grad)
        with autocast_disabled():
            grads = _backward(tuple(saved[:7]), bias, grad_out, ctx.params, needs)
        return (*grads, None, None, None, None, None, None)


def tensor_attention(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    block_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Exact tensor attention ``D⁻¹ exp(c Q (K1 ⊘ K2)ᵀ + T) (V1 ⊘ V2)``, computed blockwise.

    Every query attends to every ordered pair of tokens ``(j, k)`` with logit
    ``c Σ_l q_l k1_jl k2_kl`` and value ``v1_j ∘ v2_k`` (see the module docstring for the
    definition and the masks). The ``L x S²`` score matrix never exists: blocks of
    ``b_q x b_a x S`` scores are combined with a running-max (online) softmax, and the backward
    pass recomputes them, so memory stays ``O((L + S) d)`` plus one block.

    Args:
        q: queries ``(..., L, d)``.
        k1, k2: the two key sets ``(..., S, d)``.
        v1, v2: the two value sets ``(..., S, dv)``.
        attn_mask: per-token mask broadcastable to ``(..., L, S)``: boolean, ``True`` = the key
            takes part (as in ``scaled_dot_product_attention``), pair ``(j, k)`` visible to
            query ``i`` iff ``M_ij and M_ik``; or floating, added as ``M_ij + M_ik``.
        key_padding_mask: boolean, broadcastable to ``(..., S)``; ``True`` marks padding (as in
            ``torch.nn.MultiheadAttention``): pairs containing a padded token are ignored.
        is_causal: pair ``(j, k)`` visible to query ``i`` iff ``j <= i`` and ``k <= i``.
            Combined with the other masks when given together.
        scale: the logit factor ``c``; default ``1/sqrt(d)``.
        dropout_p: probability of dropping each pair weight (after normalisation, rescaled by
            ``1/(1 - p)``), as ``scaled_dot_product_attention`` does; the backward pass replays
            the same drops.
        block_size: side of the query and pair blocks; default: blocks of about 2**20 scores.
        generator: randomness for dropout.

    Returns:
        ``(..., L, dv)`` in the input dtype (the autocast dtype inside ``torch.autocast``; float16
        and bfloat16 are computed in float32). Queries that see no pair get zeros.

    Raises:
        TypeError: non-tensor, integer, complex, or mixed-dtype inputs; a mask of the wrong type.
        ValueError: mismatched shapes, NaN/Inf entries, masks that do not broadcast, a bad
            ``scale``, ``dropout_p`` or ``block_size``; a result that cannot be represented
            (logits beyond float64, or values ``v1 ∘ v2`` beyond the dtype's range). Float32 and
            half inputs whose logits could overflow float32 are computed in float64.

    Differentiable in ``q, k1, k2, v1, v2`` and a floating ``attn_mask`` (custom backward that
    recomputes the blocks; not twice differentiable).

    Example:
        >>> import torch
        >>> from factorch.nn.attention import tensor_attention
        >>> g = torch.Generator().manual_seed(0)
        >>> q, k1, k2, v1, v2 = (torch.randn(2, 8, 4, generator=g) for _ in range(5))
        >>> tensor_attention(q, k1, k2, v1, v2, is_causal=True).shape
        torch.Size([2, 8, 4])
    """
    fn = "tensor_attention"
    q, k1, k2, v1, v2 = check_qkv(fn, ("q", "k1", "k2", "v1", "v2"), (q, k1, k2, v1, v2))
    causal = check_bool(fn, "is_causal", is_causal)
    p = check_dropout(fn, dropout_p)
    blk = optional_block(fn, block_size)
    c = check_scale(fn, scale, q.shape[-1])
    generator = check_generator(generator, fn)
    out_dtype, work = compute_dtypes(q)
    work = widen_for_logits(fn, work, pair_logit_bound(q, k1, k2, c))
    batch, n_query, n_key = q.shape[:-2], q.shape[-2], k1.shape[-2]
    nb = math.prod(batch)
    bq, ba = _block_sizes(nb, n_query, n_key, blk)
    block = nb * bq * ba * n_key
    dense = nb * (n_query + 2 * n_key) * (q.shape[-1] + v1.shape[-1])
    mask_elems = (
        nb * n_query * n_key if (attn_mask is not None or key_padding_mask is not None) else 0
    )
    check_memory_if_large(
        6 * block + 3 * dense + 2 * mask_elems,
        work,
        q.device,
        fn,
        "the blockwise tensor attention",
        "pass a smaller block_size or shorter sequences",
    )
    seed: int | None = None
    if p > 0:
        dev = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev).item())
    with autocast_disabled():
        t = [x.to(work) for x in (q, k1, k2, v1, v2)]
        bias = token_bias(
            fn,
            batch=batch,
            n_query=n_query,
            n_key=n_key,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=causal,
            device=q.device,
            dtype=work,
        )
        out = _TensorAttentionFn.apply(*t, bias, c, causal, bq, ba, p, seed)
    return finish(fn, out, out_dtype, OVERFLOW)


def tensor_attention_weights(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    r"""The pair attention weights ``P[..., i, j, k]`` of :func:`tensor_attention`.

    ``P[..., i, :, :]`` is the softmax of the pair logits of query ``i`` over all ``S²`` pairs
    (zeros where the query sees no pair), so ``tensor_attention(...) = Σ_jk P_ijk v1_j ∘ v2_k``.
    This materialises ``L x S²`` numbers per batch entry: use it for inspection of small inputs.

    Args:
        q, k1, k2, attn_mask, key_padding_mask, is_causal, scale: as in :func:`tensor_attention`.

    Returns:
        ``(..., L, S, S)`` in the input dtype (autocast dtype under autocast).

    Raises:
        TypeError, ValueError: as :func:`tensor_attention`; ``ValueError`` when the weights cannot
            fit in memory.

    Differentiable.

    Example:
        >>> import torch
        >>> from factorch.nn.attention import tensor_attention_weights
        >>> q = k = torch.randn(1, 4, 3)
        >>> w = tensor_attention_weights(q, k, k, is_causal=True)
        >>> w.shape, float(w[0, 0].sum()), float(w[0, 0, 1:].sum())
        (torch.Size([1, 4, 4, 4]), 1.0, 0.0)
    """
    fn = "tensor_attention_weights"
    q, k1, k2 = check_qkv(fn, ("q", "k1", "k2"), (q, k1, k2))
    causal = check_bool(fn, "is_causal", is_causal)
    c = check_scale(fn, scale, q.shape[-1])
    out_dtype, work = compute_dtypes(q)
    work = widen_for_logits(fn, work, pair_logit_bound(q, k1, k2, c))
    batch, n_query, n_key = q.shape[:-2], q.shape[-2], k1.shape[-2]
    check_memory_if_large(
        3 * math.prod(batch) * n_query * n_key * n_key,
        work,
        q.device,
        fn,
        "the pair attention weights",
        "use shorter sequences (tensor_attention never forms the weights)",
    )
    with autocast_disabled():
        qw, k1w, k2w = (x.to(work) for x in (q, k1, k2))
        s = torch.einsum("...il,...jl,...kl->...ijk", qw * c, k1w, k2w)
        bias = token_bias(
            fn,
            batch=batch,
            n_query=n_query,
            n_key=n_key,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=causal,
            device=q.device,
            dtype=work,
        )
        if bias is not None:
            s = s + bias.unsqueeze(-1) + bias.unsqueeze(-2)
        flat = s.flatten(-2)
        seen = ~torch.isneginf(flat).all(-1, keepdim=True)
        w = torch.where(seen, torch.softmax(torch.where(seen, flat, 0.0), -1), 0.0)
    return finish(fn, w.unflatten(-1, (n_key, n_key)), out_dtype, OVERFLOW)
