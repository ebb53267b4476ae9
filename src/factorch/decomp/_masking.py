"""Masks of observed entries for the dense decompositions that accept missing values.

A mask is a bool tensor (or numpy bool array) of the data's shape, ``True`` where an entry is
observed -- the convention of :func:`factorch.decomp.cp` and TensorLy's ``mask=`` (where 1 means
observed). Unobserved entries of the data may hold anything, NaN included: they are replaced by
zeros before any arithmetic touches them.
"""

from __future__ import annotations

import torch

from .._checks import as_tensor, check_finite

__all__: list[str] = []


def check_mask(mask: object, tensor: torch.Tensor, fn: str) -> torch.Tensor:
    """The validated bool mask (``True`` = observed) for ``tensor``."""
    m = as_tensor(mask, fn, "mask")
    if m.dtype != torch.bool:
        raise TypeError(
            f"{fn}: mask must have dtype torch.bool (True = observed); got {m.dtype}. Convert a "
            "0/1 mask with mask.bool() (or mask != 0)."
        )
    if m.layout != torch.strided:
        m = m.to_dense()
    if tuple(m.shape) != tuple(tensor.shape):
        raise ValueError(
            f"{fn}: mask shape {tuple(m.shape)} must equal the tensor shape {tuple(tensor.shape)}."
        )
    if m.device != tensor.device:
        raise ValueError(
            f"{fn}: mask is on {m.device} but the tensor is on {tensor.device}; move it with "
            "mask.to(tensor.device)."
        )
    if not bool(m.any()):
        raise ValueError(f"{fn}: mask observes no entry; at least one entry must be True.")
    check_finite(tensor[m], fn, "tensor (observed entries)")
    return m


def zero_missing(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``tensor`` with its unobserved entries set to zero (NaN there never propagates)."""
    return torch.where(mask, tensor, torch.zeros((), dtype=tensor.dtype, device=tensor.device))
