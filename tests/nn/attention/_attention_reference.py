"""Slow, obviously correct references for the attention tests (float64, everything formed)."""

from __future__ import annotations

import math

import torch


def pair_bias(
    n_query: int,
    n_key: int,
    *,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """Pair mask bias ``(..., L, S, S)`` written out entry by entry from the definitions."""
    shape = [n_query, n_key, n_key]
    out = torch.zeros(shape, dtype=torch.float64)
    extra: list[torch.Tensor] = []
    for i in range(n_query):
        for j in range(n_key):
            for k in range(n_key):
                if is_causal and not (j <= i and k <= i):
                    out[i, j, k] = -math.inf
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            m = torch.where(attn_mask, 0.0, -math.inf).double()
        else:
            m = attn_mask.double()
        extra.append(m.unsqueeze(-1) + m.unsqueeze(-2))
    if key_padding_mask is not None:
        p = torch.where(key_padding_mask, -math.inf, 0.0).double()  # (..., S)
        extra.append((p.unsqueeze(-1) + p.unsqueeze(-2)).unsqueeze(-3))
    for e in extra:
        out = out + e
    return out


def naive_tensor_attention(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    *,
    scale: float | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``D⁻¹ exp(c Q (K1 ⊘ K2)ᵀ + T) (V1 ⊘ V2)`` with the ``L x S²`` matrices formed explicitly
    (Khatri--Rao products built row by row); zero rows where nothing is visible."""
    q, k1, k2, v1, v2 = (t.double() for t in (q, k1, k2, v1, v2))
    c = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    n_key = k1.shape[-2]
    kr_k = (k1.unsqueeze(-2) * k2.unsqueeze(-3)).reshape(*k1.shape[:-2], n_key * n_key, -1)
    kr_v = (v1.unsqueeze(-2) * v2.unsqueeze(-3)).reshape(*v1.shape[:-2], n_key * n_key, -1)
    s = c * q @ kr_k.mT  # (..., L, S²)
    if bias is not None:
        s = s + bias.reshape(*bias.shape[:-2], n_key * n_key)
    m = s.amax(-1, keepdim=True)
    seen = torch.isfinite(m)
    w = torch.exp(s - torch.where(seen, m, 0.0))
    d = w.sum(-1, keepdim=True)
    return torch.where(seen, (w @ kr_v) / torch.where(seen, d, 1.0), 0.0)


def naive_metric_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    metric: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``softmax(Q G Kᵀ / sqrt(d) + bias) V`` with per-entry loops over ``G``'s indices."""
    q, k, v, metric = (t.double() for t in (q, k, v, metric))
    d = q.shape[-1]
    if metric.ndim == q.ndim:  # one metric per batch entry
        s = torch.einsum("...id,...de,...je->...ij", q, metric, k)
    else:  # one per query
        s = torch.einsum("...id,...ide,...je->...ij", q, metric, k)
    s = s / math.sqrt(d)
    if bias is not None:
        s = s + bias
    return torch.softmax(s, -1) @ v
