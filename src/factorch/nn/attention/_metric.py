r"""Metric-tensor attention: logits ``q G kᵀ`` with a learned metric (PLDR-LLM, Gokden 2025).

Power-law graph attention (PLGA) replaces the dot product of scaled-dot-product attention by a
bilinear form with a metric tensor ``G`` (``d x d`` per head) that a deep residual network infers
from the queries:

.. math::

    A = \mathrm{LN}(Q^\top Q), \quad A \leftarrow \mathrm{LN}\big(A + \mathrm{GLU}^{(m)} \cdots
    \mathrm{GLU}^{(1)}(A)\big) \text{ (residual units)},

    A_{LM} = \mathrm{iSwiGLU}(W A + b) + 10^{-9}, \quad A_P = A_{LM}^{\circ P}, \quad
    G_{LM} = \alpha\, A_P + \beta,

    \mathrm{PLGA}(Q, K, V) = \mathrm{softmax}\big(Q G_{LM} K^\top / \sqrt d\big) V,

with ``iSwiGLU(x) = x · silu(x) >= 0`` (so ``A_LM > 0`` and any real power exists), ``P`` the
learnable elementwise exponents and ``W, b, α, β`` learnable ``d x d`` matrices per head
(``W A`` and ``α A_P`` are matrix products), ``GLU(x) = W_3 (silu(W_1 x) ∘ W_2 x)`` acting on
the rows of ``A`` (layer sizes as in the authors' code, ``burcgokden/PLDR-LLM-with-KVG-cache``,
``power_law_attention_layer_v510.py`` / ``pldr_model_v510.py``; initialisation as there:
Xavier-normal ``W, P, α``, zero ``b, β``).

* **G = I** gives scaled-dot-product attention exactly (the paper's SDPA special case):
  :func:`metric_tensor_attention` with ``metric=None``.
* **G-cache**: once ``G_LM`` is inferred it can be stored (:class:`MetricCache`) and reused,
  skipping the deep network (the paper reports ``G_LM`` to be nearly input-invariant after
  training; that is an empirical claim about trained models, not a property of the layer).
* **context**: the paper forms ``A`` from the queries of the **whole** sequence
  (``context="sequence"``), so in a causal language model the metric of position ``i`` depends
  on later tokens -- information from the future reaches earlier positions through ``G``.
  ``context="prefix"`` uses ``A_i = LN(Σ_{t<=i} q_t q_tᵀ)``, a metric per position that sees
  only the prefix (``L`` metrics of ``d x d`` per head, ``L`` times the network's cost).

Positional encoding is left to the caller (the paper applies rotary embeddings to ``q, k``
before forming ``A``).

Reference: B. Gokden, "PLDR-LLMs Learn A Generalizable Tensor Operator That Can Replace Its Own
Deep Neural Net At Inference", 2025 (arXiv:2502.13502).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_positive_int
from ..._numerics import autocast_disabled
from ._heads import merge_heads, mha_inputs, mha_masks, split_heads
from ._inputs import (
    check_bool,
    check_dropout,
    check_parameter_memory,
    check_qkv,
    check_scale,
    compute_dtypes,
    errors_as,
    finish,
    token_bias,
    widen_for_logits,
)
from ._power_law import Context, MetricCache, PowerLawMetric

__all__ = ["MetricTensorAttention", "metric_tensor_attention"]

MetricKind = Literal["power_law", "identity"]


def metric_tensor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    metric: torch.Tensor | None = None,
    *,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    r"""``softmax(c · Q G Kᵀ + mask) V``: attention with a metric tensor ``G``.

    Computed as ``scaled_dot_product_attention(Q G, K, V)`` (``(QG)Kᵀ = Q G Kᵀ``), so it inherits
    torch's kernels, autocast behaviour and dropout; ``metric=None`` (``G = I``) *is*
    ``scaled_dot_product_attention``.

    Args:
        q: queries ``(..., L, d)``; k: keys ``(..., S, d)``; v: values ``(..., S, dv)``.
        metric: ``None`` (identity), one metric per batch entry ``(..., d, d)`` (broadcastable
            to the batch dimensions), or one per query position ``(..., L, d, d)``.
        attn_mask: as in ``scaled_dot_product_attention`` (bool ``True`` = attend, or float,
            added), broadcastable to ``(..., L, S)``.
        key_padding_mask: bool, broadcastable to ``(..., S)``, ``True`` = padding.
        is_causal: key ``j`` visible to query ``i`` iff ``j <= i``; may be combined with masks.
        scale: logit factor ``c``; default ``1/sqrt(d)``.
        dropout_p: attention dropout (torch's global RNG, as ``scaled_dot_product_attention``).

    Returns:
        ``(..., L, dv)``; queries that see no key get zeros.

    Raises:
        TypeError, ValueError: bad tensors, shapes or options (messages name the fix).

    Differentiable in ``q, k, v, metric`` and a floating mask.

    Example:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from factorch.nn.attention import metric_tensor_attention
        >>> q, k, v = torch.randn(3, 2, 5, 4).unbind(0)
        >>> sdpa = F.scaled_dot_product_attention(q, k, v)
        >>> torch.allclose(metric_tensor_attention(q, k, v), sdpa)
        True
    """
    fn = "metric_tensor_attention"
    q, k, v = check_qkv(fn, ("q", "k", "v"), (q, k, v))
    causal = check_bool(fn, "is_causal", is_causal)
    p = check_dropout(fn, dropout_p)
    c = check_scale(fn, scale, q.shape[-1])
    if metric is not None:
        _check_metric(fn, q, metric)
    out_dtype, _ = compute_dtypes(q)
    work = widen_for_logits(fn, q.dtype, _logit_bound(q, k, metric, c))
    if work == q.dtype:
        out = _sdpa(fn, q, k, v, metric, attn_mask, key_padding_mask, causal, c, p)
    else:  # logits could overflow the input dtype: compute in float64
        with autocast_disabled():
            m64 = None if metric is None else metric.double()
            out = _sdpa(
                fn,
                q.double(),
                k.double(),
                v.double(),
                m64,
                attn_mask,
                key_padding_mask,
                causal,
                c,
                p,
            )
    return finish(fn, out, out_dtype, "its logits overflow even in float64")


def _logit_bound(q: torch.Tensor, k: torch.Tensor, metric: torch.Tensor | None, c: float) -> float:
    """``|c| max_i ||(Q G)_i|| max_j ||K_j||`` in float64 (Cauchy--Schwarz)."""
    q64 = q.detach().double()
    if metric is not None:
        q64 = _apply_metric_unchecked(q64, metric.detach().double())
    qn = torch.linalg.vector_norm(q64, dim=-1).amax()
    kn = torch.linalg.vector_norm(k.detach().double(), dim=-1).amax()
    return abs(c) * float(qn * kn)


def _sdpa(
    fn: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    metric: torch.Tensor | None,
    attn_mask: object,
    key_padding_mask: object,
    causal: bool,
    c: float,
    p: float,
) -> torch.Tensor:
    qg = q if metric is None else _apply_metric_unchecked(q, metric)
    if attn_mask is None and key_padding_mask is None:  # torch's own causal path
        return F.scaled_dot_product_attention(qg, k, v, dropout_p=p, is_causal=causal, scale=c)
    bias = token_bias(
        fn,
        batch=q.shape[:-2],
        n_query=q.shape[-2],
        n_key=k.shape[-2],
        attn_mask=attn_mask,
        key_padding_mask=key_padding_mask,
        is_causal=causal,
        device=q.device,
        dtype=torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype,
    )
    if bias is None:  # pragma: no cover - token_bias returns a bias whenever a mask is given
        raise RuntimeError(f"{fn}: internal error: no bias for the given masks.")
    empty = torch.isneginf(bias).all(-1, keepdim=True)
    bias = torch.where(empty, 0.0, bias).to(qg.dtype)
    out = F.scaled_dot_product_attention(qg, k, v, attn_mask=bias, dropout_p=p, scale=c)
    return torch.where(empty, 0.0, out)


def _check_metric(fn: str, q: torch.Tensor, metric: object) -> None:
    if not isinstance(metric, torch.Tensor):
        raise TypeError(
            f"{fn}: metric must be a torch.Tensor or None; got {type(metric).__name__}."
        )
    d = q.shape[-1]
    if metric.dtype != q.dtype or metric.device != q.device:
        raise TypeError(
            f"{fn}: metric must have the dtype and device of q ({q.dtype}, {q.device}); got "
            f"({metric.dtype}, {metric.device})."
        )
    if metric.ndim not in (q.ndim, q.ndim + 1) or metric.shape[-2:] != (d, d):
        raise ValueError(
            f"{fn}: metric must have shape (..., {d}, {d}) (one per batch entry) or "
            f"(..., L, {d}, {d}) (one per query); got {tuple(metric.shape)}."
        )
    if metric.ndim == q.ndim + 1 and metric.shape[-3] != q.shape[-2]:
        raise ValueError(
            f"{fn}: a per-query metric must have L = {q.shape[-2]} matrices; got shape "
            f"{tuple(metric.shape)}."
        )
    if not bool(torch.isfinite(metric.detach()).all()):
        raise ValueError(f"{fn}: metric contains NaN or Inf entries; all must be finite.")


def _apply_metric_unchecked(q: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    if metric.ndim == q.ndim + 1:
        return torch.einsum("...ld,...lde->...le", q, metric)
    return q @ metric


class MetricTensorAttention(nn.Module):
    r"""Multi-head metric-tensor (power-law graph) attention, shaped like ``MultiheadAttention``.

    ``head_h = softmax(Q_h G_h K_hᵀ / sqrt(d)) V_h`` with ``G_h`` from :class:`PowerLawMetric`
    applied to the queries (``metric="power_law"``), or ``G = I`` (``metric="identity"``: plain
    multi-head scaled-dot-product attention with the same projections).

    Args:
        embed_dim, num_heads: model width and heads (``num_heads`` divides ``embed_dim``).
        metric: ``"power_law"`` or ``"identity"``.
        metric_hidden, num_residual, num_dense, context: options of :class:`PowerLawMetric`.
        dropout: attention dropout.
        bias: biases in the projections.
        batch_first: inputs ``(N, L, E)`` instead of ``(L, N, E)``.
        device, dtype: of the parameters.

    Raises:
        TypeError: a size or flag of the wrong type.
        ValueError: non-positive sizes, ``num_heads`` not dividing ``embed_dim``, an unknown
            ``metric``, a dropout outside ``[0, 1)``, parameters too large for memory.

    Example:
        >>> import torch
        >>> from factorch.nn.attention import MetricTensorAttention
        >>> attn = MetricTensorAttention(16, 2, batch_first=True).eval()
        >>> x = torch.randn(3, 10, 16)
        >>> cache = attn.compute_metric(x)          # G-cache
        >>> full, _ = attn(x, is_causal=True)
        >>> cached, _ = attn(x, is_causal=True, metric_cache=cache)
        >>> torch.equal(full, cached)
        True
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        metric: MetricKind = "power_law",
        metric_hidden: int | None = None,
        num_residual: int = 1,
        num_dense: int = 2,
        context: Context = "sequence",
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "MetricTensorAttention"
        embed_dim = check_positive_int(embed_dim, fn, "embed_dim")
        num_heads = check_positive_int(num_heads, fn, "num_heads")
        if embed_dim % num_heads:
            raise ValueError(
                f"{fn}: embed_dim must be divisible by num_heads; got {embed_dim} and {num_heads}."
            )
        if metric not in get_args(MetricKind):
            raise ValueError(f"{fn}: metric must be one of {get_args(MetricKind)}; got {metric!r}.")
        check_parameter_memory(fn, 4 * embed_dim * (embed_dim + 1), dtype, device)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = check_dropout(fn, dropout, "dropout")
        self.batch_first = check_bool(fn, "batch_first", batch_first)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias, device=device, dtype=dtype)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias, device=device, dtype=dtype)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias, device=device, dtype=dtype)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias, device=device, dtype=dtype)
        self.metric_net: PowerLawMetric | None = None
        if metric == "power_law":
            self.metric_net = PowerLawMetric(
                self.head_dim,
                num_heads,
                hidden_dim=metric_hidden,
                num_residual=num_residual,
                num_dense=num_dense,
                context=context,
                device=device,
                dtype=dtype,
            )

    def _queries(self, query: torch.Tensor) -> torch.Tensor:
        return split_heads(self.q_proj(query), self.num_heads)

    def compute_metric(
        self, query: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None
    ) -> MetricCache:
        """The G-cache for ``query`` (laid out as in :meth:`forward`). Differentiable.

        Raises:
            ValueError: with ``metric="identity"`` (there is nothing to cache), or bad shapes.
        """
        fn = "MetricTensorAttention.compute_metric"
        if self.metric_net is None:
            raise ValueError(f"{fn}: metric='identity' has no metric network to cache.")
        inp = mha_inputs(fn, query, query, query, (self.embed_dim,) * 3, self.batch_first)
        _, kpm = mha_masks(
            fn,
            n=inp.query.shape[0],
            num_heads=self.num_heads,
            n_query=inp.query.shape[1],
            n_key=inp.query.shape[1],
            attn_mask=None,
            key_padding_mask=key_padding_mask,
            batched=inp.batched,
        )
        pad = None if kpm is None else kpm[:, 0, :]
        with errors_as(fn):
            return self.metric_net(self._queries(inp.query), key_padding_mask=pad)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
        metric_cache: MetricCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend; ``key`` defaults to ``query`` and ``value`` to ``key``.

        Args:
            query, key, value: as in ``torch.nn.MultiheadAttention``.
            key_padding_mask, attn_mask: as in ``torch.nn.MultiheadAttention`` (bool
                ``attn_mask``: ``True`` = not allowed).
            need_weights, average_attn_weights: as in ``torch.nn.MultiheadAttention``.
            is_causal: as in ``torch.nn.MultiheadAttention`` (``is_causal=True`` alone applies
                the causal mask).
            metric_cache: a :class:`MetricCache` to use instead of running the metric network
                (the G-cache path); its padding is the one it was computed with.

        Returns:
            ``(output, weights)``; weights ``(N, L, S)`` (``(N, H, L, S)`` without averaging)
            when ``need_weights``, else ``None``.
        """
        fn = "MetricTensorAttention.forward"
        self_attention = key is None or key is query
        key = query if key is None else key
        value = key if value is None else value
        widths = (self.embed_dim,) * 3
        inp = mha_inputs(fn, query, key, value, widths, self.batch_first)
        check_bool(fn, "need_weights", need_weights)
        n, n_query, n_key = inp.query.shape[0], inp.query.shape[1], inp.key.shape[1]
        amask, kpm = mha_masks(
            fn,
            n=n,
            num_heads=self.num_heads,
            n_query=n_query,
            n_key=n_key,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            batched=inp.batched,
        )
        q = self._queries(inp.query)
        k = split_heads(self.k_proj(inp.key), self.num_heads)
        v = split_heads(self.v_proj(inp.value), self.num_heads)
        pad = kpm[:, 0, :] if (kpm is not None and self_attention) else None
        with errors_as(fn):
            metric = self._metric(fn, q, metric_cache, pad)
            p = self.dropout if self.training else 0.0
            heads = metric_tensor_attention(
                q,
                k,
                v,
                metric,
                attn_mask=amask,
                key_padding_mask=kpm,
                is_causal=is_causal,
                dropout_p=p,
            )
            out = self.out_proj(merge_heads(heads))
            weights = None
            if need_weights:
                weights = _weights(q, k, metric, amask, kpm, is_causal)
                weights = weights.mean(1) if average_attn_weights else weights
                weights = weights if inp.batched else weights.squeeze(0)
        return inp.restore(out, self.batch_first), weights

    def _metric(
        self, fn: str, q: torch.Tensor, cache: object, pad: torch.Tensor | None
    ) -> torch.Tensor | None:
        if cache is not None:
            if not isinstance(cache, MetricCache):
                raise TypeError(
                    f"{fn}: metric_cache must be a MetricCache or None; got {type(cache).__name__}."
                )
            return cache.metric
        if self.metric_net is None:
            return None
        return self.metric_net(q, key_padding_mask=pad).metric


def _weights(
    q: torch.Tensor,
    k: torch.Tensor,
    metric: torch.Tensor | None,
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    is_causal: bool,
) -> torch.Tensor:
    qg = q if metric is None else _apply_metric_unchecked(q, metric)
    s = qg @ k.mT / math.sqrt(q.shape[-1])
    bias = token_bias(
        "MetricTensorAttention.forward",
        batch=q.shape[:-2],
        n_query=q.shape[-2],
        n_key=k.shape[-2],
        attn_mask=attn_mask,
        key_padding_mask=key_padding_mask,
        is_causal=is_causal,
        device=q.device,
        dtype=s.dtype,
    )
    if bias is not None:
        s = s + bias
    seen = ~torch.isneginf(s).all(-1, keepdim=True)
    return torch.where(seen, torch.softmax(torch.where(seen, s, 0.0), -1), 0.0)
