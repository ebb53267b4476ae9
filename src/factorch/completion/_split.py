"""Hold-out splits of observed entries for dense tensors with a mask.

For sparse data use :meth:`factorch.tensors.SparseTensor.split`; these helpers do the same on
bool masks (True = observed), e.g. to hold out 10% of the observed cells of a tensor with real
missing values (the IL-2 protocol).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._common import check_fraction, check_generator

__all__ = ["holdout_mask", "split_mask"]


def _check_mask(mask: object, fn: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{fn}: mask must be a bool tensor (True = observed); got {got}.")
    if not bool(mask.any()):
        raise ValueError(f"{fn}: mask has no observed (True) entry.")
    return mask


def split_mask(
    mask: torch.Tensor, fractions: Sequence[float], *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, ...]:
    """Split the True entries of ``mask`` at random into disjoint masks of the given fractions
    (positive, summing to 1; sizes as in :meth:`SparseTensor.split`). Deterministic given
    ``generator``."""
    fn = "split_mask"
    mask = _check_mask(mask, fn)
    check_generator(generator, fn)
    from ..tensors import SparseTensor

    ones = torch.ones(mask.shape, dtype=torch.float32, device=mask.device)
    parts = SparseTensor.from_dense(ones, mask).split(fractions, generator=generator)
    return tuple(p.mask() for p in parts)


def holdout_mask(
    mask: torch.Tensor, fraction: float, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_mask, heldout_mask)``: a random ``fraction`` of the observed entries held out."""
    fraction = check_fraction(fraction, "holdout_mask", "fraction")
    train, held = split_mask(mask, (1.0 - fraction, fraction), generator=generator)
    return train, held
