"""``TensorAttention``: multi-head tensor attention shaped like ``torch.nn.MultiheadAttention``."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import nn

from ..._checks import check_positive_int
from ._approx import Fallback, _check_options, tensor_attention_approx, tensor_attention_plan
from ._exact import tensor_attention, tensor_attention_weights
from ._features import FeatureKind
from ._heads import merge_heads, mha_inputs, mha_masks, split_heads
from ._inputs import check_bool, check_dropout, check_parameter_memory, errors_as

__all__ = ["TensorAttention"]

Method = Literal["exact", "approximate", "auto"]
ProjectionFormat = Literal["lowrank", "cp", "tucker", "tt", "tr"]


def _projection(
    in_features: int,
    out_features: int,
    bias: bool,
    fmt: ProjectionFormat | None,
    ratio: float,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> nn.Module:
    if fmt is None:
        return nn.Linear(in_features, out_features, bias, device=device, dtype=dtype)
    from .. import FactorizedLinear  # public API of factorch.nn

    return FactorizedLinear(
        in_features, out_features, bias, format=fmt, ratio=ratio, device=device, dtype=dtype
    )


class TensorAttention(nn.Module):
    r"""Multi-head tensor attention: each query attends to pairs of tokens (Alman & Song, 2024).

    For every head ``h``, ``Q = x_q W_Q``, ``K1 = x_k W_{K1}``, ``K2 = x_k W_{K2}``,
    ``V1 = x_v W_{V1}``, ``V2 = x_v W_{V2}`` (head width ``d = embed_dim / num_heads``) and

    .. math:: \mathrm{head}_h = D^{-1} \exp\!\big(Q (K_1 \oslash K_2)^\top / \sqrt d\big)
       (V_1 \oslash V_2),

    the heads are concatenated and projected by ``W_O`` -- the layout of
    ``torch.nn.MultiheadAttention`` with two key and two value projections. See
    :func:`~factorch.nn.attention.tensor_attention` for the pair masks and the cost
    (``O(L S² d)`` exact; ``O(n r d)`` with ``method="approximate"``).

    Differences from ``torch.nn.MultiheadAttention``, where its interface makes no sense here:
    ``need_weights`` defaults to ``False`` (the weights are ``L x S²`` per head; when asked for
    they are returned as ``(N, L, S, S)`` or ``(N, H, L, S, S)``, before dropout);
    ``is_causal=True`` alone applies the causal pair mask (no ``attn_mask`` needed); options after
    ``value`` are keyword-only; a float ``attn_mask`` adds ``M_ij + M_ik`` to pair ``(j, k)``.

    Args:
        embed_dim: model width ``E``.
        num_heads: number of heads (must divide ``E``).
        dropout: dropout on the pair weights (exact method only).
        bias: biases in the projections.
        kdim, vdim: widths of ``key`` and ``value`` (default ``E``).
        batch_first: inputs ``(N, L, E)`` instead of ``(L, N, E)``.
        method: ``"exact"`` (blockwise, :func:`tensor_attention`), ``"approximate"``
            (:func:`tensor_attention_approx`, which warns and falls back per ``fallback``
            outside its regime) or ``"auto"`` (approximate when the bound meets ``eps`` cheaply,
            exact otherwise, silently).
        eps, max_degree, features, fallback: options of the approximate method.
        projection_format: ``None`` for ``nn.Linear`` projections, or a format of
            :class:`factorch.nn.FactorizedLinear` (``"lowrank"``, ``"cp"``, ``"tucker"``,
            ``"tt"``, ``"tr"``) for factorized ones with ``projection_ratio`` of the parameters.
        projection_ratio: parameter ratio of factorized projections.
        device, dtype: of the parameters.

    Raises:
        TypeError, ValueError: bad options (messages name the fix).

    Example:
        >>> import torch
        >>> from factorch.nn.attention import TensorAttention
        >>> attn = TensorAttention(16, 2, batch_first=True)
        >>> x = torch.randn(3, 10, 16)
        >>> out, weights = attn(x, x, x, is_causal=True)
        >>> out.shape, weights
        (torch.Size([3, 10, 16]), None)
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        method: Method = "exact",
        eps: float = 1e-3,
        max_degree: int = 4,
        features: FeatureKind = "symmetric",
        fallback: Fallback = "exact",
        projection_format: ProjectionFormat | None = None,
        projection_ratio: float = 0.5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "TensorAttention"
        embed_dim = check_positive_int(embed_dim, fn, "embed_dim")
        num_heads = check_positive_int(num_heads, fn, "num_heads")
        if embed_dim % num_heads:
            raise ValueError(
                f"{fn}: embed_dim must be divisible by num_heads; got {embed_dim} and {num_heads}."
            )
        kdim = embed_dim if kdim is None else check_positive_int(kdim, fn, "kdim")
        vdim = embed_dim if vdim is None else check_positive_int(vdim, fn, "vdim")
        if method not in get_args(Method):
            raise ValueError(f"{fn}: method must be one of {get_args(Method)}; got {method!r}.")
        self.dropout = check_dropout(fn, dropout, "dropout")
        if self.dropout > 0 and method != "exact":
            raise ValueError(
                f"{fn}: dropout needs method='exact' (the approximate path never forms the pair "
                f"weights it would drop); got method={method!r} with dropout={dropout}."
            )
        if projection_format is not None and projection_format not in get_args(ProjectionFormat):
            raise ValueError(
                f"{fn}: projection_format must be None or one of {get_args(ProjectionFormat)}; "
                f"got {projection_format!r}."
            )
        self.embed_dim, self.num_heads, self.kdim, self.vdim = embed_dim, num_heads, kdim, vdim
        self.head_dim = embed_dim // num_heads
        self.batch_first = check_bool(fn, "batch_first", batch_first)
        self.method: Method = method
        eps_, _, top, kind = _check_options(fn, eps, None, max_degree, features)
        if fallback not in get_args(Fallback):
            raise ValueError(
                f"{fn}: fallback must be one of {get_args(Fallback)}; got {fallback!r}."
            )
        self.eps, self.max_degree, self.features = eps_, top, kind
        self.fallback: Fallback = fallback

        dense = embed_dim * (2 * embed_dim + 2 * kdim + 2 * vdim + 6)
        ratio = 1.0  # dense projections; factorized ones store about ``projection_ratio`` of them
        if projection_format is not None and isinstance(projection_ratio, (int, float)):
            ratio = (
                min(1.0, abs(float(projection_ratio)))
                if projection_ratio == projection_ratio
                else 1.0
            )
        check_parameter_memory(fn, math.ceil(ratio * dense), dtype, device)

        def proj(i: int, o: int) -> nn.Module:
            return _projection(i, o, bias, projection_format, projection_ratio, device, dtype)

        self.q_proj = proj(embed_dim, embed_dim)
        self.k1_proj, self.k2_proj = proj(kdim, embed_dim), proj(kdim, embed_dim)
        self.v1_proj, self.v2_proj = proj(vdim, embed_dim), proj(vdim, embed_dim)
        self.out_proj = proj(embed_dim, embed_dim)
        if projection_format is None:
            self._reset_dense()

    def _reset_dense(self) -> None:
        """``torch.nn.MultiheadAttention``'s initialisation: Xavier-uniform input projections,
        zero biases, default ``nn.Linear`` output projection with a zero bias."""
        inputs = (self.q_proj, self.k1_proj, self.k2_proj, self.v1_proj, self.v2_proj)
        for lin in inputs:
            if isinstance(lin, nn.Linear):
                nn.init.xavier_uniform_(lin.weight)
        for lin in (*inputs, self.out_proj):
            if isinstance(lin, nn.Linear) and lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def _attend(
        self,
        qkv: list[torch.Tensor],
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        method = self.method
        if method != "exact" and attn_mask is not None:
            if method == "approximate":
                raise ValueError(
                    "TensorAttention.forward: attn_mask has no factorized form for "
                    "method='approximate'; use is_causal / key_padding_mask or method='exact'."
                )
            method = "exact"
        if method == "auto":
            plan = tensor_attention_plan(
                *qkv,
                eps=self.eps,
                max_degree=self.max_degree,
                features=self.features,
                key_padding_mask=key_padding_mask,
                is_causal=is_causal,
            )
            method = "approximate" if plan.in_regime else "exact"
        if method == "approximate":
            return tensor_attention_approx(
                *qkv,
                eps=self.eps,
                max_degree=self.max_degree,
                features=self.features,
                fallback=self.fallback,
                key_padding_mask=key_padding_mask,
                is_causal=is_causal,
            )
        return tensor_attention(
            *qkv,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )

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
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend; ``key`` defaults to ``query`` and ``value`` to ``key`` (self-attention).

        Args:
            query, key, value: ``(L, N, E)`` / ``(S, N, kdim)`` / ``(S, N, vdim)`` (batch
                second unless ``batch_first``), or unbatched ``(L, E)`` etc.
            key_padding_mask: bool ``(N, S)`` (or ``(S,)``), ``True`` = padding.
            need_weights: also return the pair weights (``O(L S²)`` memory).
            attn_mask: ``(L, S)`` or ``(N * num_heads, L, S)``; bool ``True`` = not allowed (as
                in ``torch.nn.MultiheadAttention``) or float, added per token of the pair.
            average_attn_weights: average the returned weights over heads.
            is_causal: causal pair mask (``j <= i`` and ``k <= i``).

        Returns:
            ``(output, weights)``: output shaped like ``query``; weights ``None`` unless
            ``need_weights``.

        Raises:
            TypeError, ValueError: wrong shapes or types (messages name the fix).
        """
        fn = "TensorAttention.forward"
        key = query if key is None else key
        value = key if value is None else value
        widths = (self.embed_dim, self.kdim, self.vdim)
        inp = mha_inputs(fn, query, key, value, widths, self.batch_first)
        check_bool(fn, "need_weights", need_weights)
        check_bool(fn, "is_causal", is_causal)
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
        h = self.num_heads
        qkv = [
            split_heads(self.q_proj(inp.query), h),
            split_heads(self.k1_proj(inp.key), h),
            split_heads(self.k2_proj(inp.key), h),
            split_heads(self.v1_proj(inp.value), h),
            split_heads(self.v2_proj(inp.value), h),
        ]
        with errors_as(fn):
            out = self.out_proj(merge_heads(self._attend(qkv, amask, kpm, is_causal)))
            weights = None
            if need_weights:
                weights = tensor_attention_weights(
                    qkv[0],
                    qkv[1],
                    qkv[2],
                    attn_mask=amask,
                    key_padding_mask=kpm,
                    is_causal=is_causal,
                )
                if average_attn_weights:
                    weights = weights.mean(1)
                if not inp.batched:
                    weights = weights.squeeze(0)
        return inp.restore(out, self.batch_first), weights

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, method={self.method!r}, "
            f"dropout={self.dropout}, batch_first={self.batch_first}"
        )
