"""Hold-out splits of observed entries for dense tensors with a mask.

For sparse data use :meth:`factorch.tensors.SparseTensor.split`; these helpers do the same on
bool masks (True = observed), e.g. to hold out 10% of the observed cells of a tensor with real
missing values (the IL-2 protocol).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import as_tensor, check_generator
from ..tensors import SparseTensor
from ._common import check_fraction

__all__ = ["holdout_mask", "split_mask"]


def _check_mask(mask: object, fn: str) -> torch.Tensor:
    if isinstance(mask, torch.Tensor) and mask.layout != torch.strided:
        raise TypeError(f"{fn}: mask must be a dense bool tensor (True = observed); got sparse.")
    mask = as_tensor(mask, fn, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(f"{fn}: mask must be a bool tensor (True = observed); got {mask.dtype}.")
    if mask.ndim == 0:
        raise ValueError(f"{fn}: mask must have at least one dimension; got a 0-d tensor.")
    if not bool(mask.any()):
        raise ValueError(f"{fn}: mask has no observed (True) entry.")
    return mask


def split_mask(
    mask: torch.Tensor, fractions: Sequence[float], *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, ...]:
    """Split the True entries of ``mask`` at random into disjoint masks of the given fractions.

    Args:
        mask: bool tensor or numpy array, True where an entry is observed.
        fractions: positive fractions summing to 1 (sizes as in :meth:`SparseTensor.split`).
        generator: random source (a CPU ``torch.Generator``); deterministic given it.

    Returns:
        One bool mask per fraction (torch tensors on the mask's device), disjoint, whose union
        is ``mask``.

    Raises:
        TypeError: a mask that is not bool, fractions that are not a sequence, a generator
            that is not a ``torch.Generator``. ValueError: no True entry, bad fractions.

    Example:
        >>> import torch
        >>> from factorch.completion import split_mask
        >>> train, test = split_mask(torch.ones(4, 5, dtype=torch.bool), (0.8, 0.2))
        >>> int(train.sum()), int(test.sum())
        (16, 4)
    """
    fn = "split_mask"
    mask = _check_mask(mask, fn)
    check_generator(generator, fn)
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence):
        raise TypeError(f"{fn}: fractions must be a sequence of floats; got {fractions!r}.")
    fr = [check_fraction_or_one(f, fn) for f in fractions]
    if not fr or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"{fn}: fractions must be positive and sum to 1; got {tuple(fractions)}.")
    ones = torch.ones(mask.shape, dtype=torch.float32, device=mask.device)
    parts = SparseTensor.from_dense(ones, mask).split(fr, generator=generator)
    return tuple(p.mask() for p in parts)


def check_fraction_or_one(value: object, fn: str) -> float:
    """A fraction in ``(0, 1]`` (a single part may take everything)."""
    if value == 1 and not isinstance(value, bool):
        return 1.0
    return check_fraction(value, fn, "fractions")


def holdout_mask(
    mask: torch.Tensor, fraction: float, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_mask, heldout_mask)``: a random ``fraction`` of the observed entries held out.

    Args:
        mask: bool tensor or numpy array, True where an entry is observed.
        fraction: share of the observed entries to hold out, in ``(0, 1)``.
        generator: random source (a CPU ``torch.Generator``).

    Returns:
        Two disjoint bool masks (torch) whose union is ``mask``.

    Raises:
        TypeError: a mask that is not bool, a generator that is not a ``torch.Generator``.
        ValueError: no True entry, a fraction outside ``(0, 1)``.

    Example:
        >>> import torch
        >>> from factorch.completion import holdout_mask
        >>> train, held = holdout_mask(torch.ones(10, 10, dtype=torch.bool), 0.1)
        >>> int(held.sum())
        10
    """
    fn = "holdout_mask"
    fraction = check_fraction(fraction, fn, "fraction")
    mask = _check_mask(mask, fn)
    check_generator(generator, fn)
    train, held = split_mask(mask, (1.0 - fraction, fraction), generator=generator)
    return train, held
