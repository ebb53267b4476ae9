"""The ``torch.nn.MultiheadAttention`` calling convention, shared by the attention modules
(internal): input layouts, mask conversion, head splitting."""

from __future__ import annotations

import dataclasses

import torch

__all__ = ["MHAInputs", "merge_heads", "mha_inputs", "mha_masks", "split_heads"]


@dataclasses.dataclass(frozen=True)
class MHAInputs:
    """Query, key and value as ``(N, L, E)`` batch-first tensors, and how to undo it."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    batched: bool

    def restore(self, out: torch.Tensor, batch_first: bool) -> torch.Tensor:
        """``(N, L, E)`` back to the caller's layout."""
        if not self.batched:
            return out.squeeze(0)
        return out if batch_first else out.transpose(0, 1)


def mha_inputs(
    fn: str,
    query: object,
    key: object,
    value: object,
    widths: tuple[int, int, int],
    batch_first: bool,
) -> MHAInputs:
    """Check ``query, key, value`` (``(L, N, E)``, ``(N, L, E)`` with ``batch_first``, or
    unbatched ``(L, E)``) and return them batch-first."""
    tensors: list[torch.Tensor] = []
    for name, x, width in zip(("query", "key", "value"), (query, key, value), widths):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(x).__name__}.")
        if x.ndim not in (2, 3) or x.shape[-1] != width:
            raise ValueError(
                f"{fn}: {name} must have shape (L, N, {width}) (or (N, L, {width}) with "
                f"batch_first, or (L, {width}) unbatched); got {tuple(x.shape)}."
            )
        if not x.is_floating_point():
            raise TypeError(f"{fn}: {name} must have a real floating dtype; got {x.dtype}.")
        tensors.append(x)
    shapes = [tuple(t.shape) for t in tensors]
    q, k, v = tensors
    if not q.ndim == k.ndim == v.ndim:
        raise ValueError(
            f"{fn}: query, key and value must all be batched or all unbatched; got shapes "
            f"{shapes[0]}, {shapes[1]} and {shapes[2]}."
        )
    batched = q.ndim == 3
    if not batched:
        q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)
    elif not batch_first:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    if k.shape[:2] != v.shape[:2] or k.shape[0] != q.shape[0]:
        raise ValueError(
            f"{fn}: key and value must have one length and batch, and query the same batch; "
            f"got query {shapes[0]}, key {shapes[1]}, value {shapes[2]}."
        )
    return MHAInputs(q, k, v, batched)


def mha_masks(
    fn: str,
    *,
    n: int,
    num_heads: int,
    n_query: int,
    n_key: int,
    attn_mask: object,
    key_padding_mask: object,
    batched: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Masks in ``torch.nn.MultiheadAttention``'s convention converted to the functional one.

    In: ``attn_mask`` ``(L, S)`` or ``(N * H, L, S)``, bool ``True`` = not allowed, or float
    (added); ``key_padding_mask`` bool ``(N, S)`` (``(S,)`` unbatched), ``True`` = padding.
    Out: ``attn_mask`` with ``True`` = attend, ``(L, S)`` or ``(N, H, L, S)``;
    ``key_padding_mask`` ``(N, 1, S)``.
    """
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
            got = (
                key_padding_mask.dtype
                if isinstance(key_padding_mask, torch.Tensor)
                else type(key_padding_mask).__name__
            )
            raise TypeError(
                f"{fn}: key_padding_mask must be a bool tensor (True = padding) or None; got {got}."
            )
        want = (n, n_key) if batched else (n_key,)
        if tuple(key_padding_mask.shape) != want:
            raise ValueError(
                f"{fn}: key_padding_mask must have shape {want}; got "
                f"{tuple(key_padding_mask.shape)}."
            )
        key_padding_mask = key_padding_mask.reshape(n, 1, n_key)
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(
                f"{fn}: attn_mask must be a tensor or None; got {type(attn_mask).__name__}."
            )
        shapes = [(n_query, n_key), (n * num_heads, n_query, n_key)]
        if tuple(attn_mask.shape) not in shapes:
            raise ValueError(
                f"{fn}: attn_mask must have shape {shapes[0]} or {shapes[1]}; got "
                f"{tuple(attn_mask.shape)}."
            )
        if attn_mask.ndim == 3:
            attn_mask = attn_mask.view(n, num_heads, n_query, n_key)
        if attn_mask.dtype == torch.bool:
            attn_mask = ~attn_mask
    return attn_mask, key_padding_mask


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(N, L, H * d)`` -> ``(N, H, L, d)``."""
    n, length, width = x.shape
    return x.view(n, length, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(N, H, L, d)`` -> ``(N, L, H * d)``."""
    n, h, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, h * d)
