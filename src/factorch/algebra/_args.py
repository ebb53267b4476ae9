"""Argument conversion at the public boundary of :mod:`factorch.algebra` (shared with the other
subpackages through :mod:`factorch.algebra.internal`)."""

from __future__ import annotations

import numbers

import torch

from .._checks import as_tensor

__all__ = ["as_array"]


def as_array(x: object, fn: str, name: str = "tensor") -> torch.Tensor:
    """A tensor, or an array-like converted once (:func:`factorch._checks.as_tensor`); a bare
    number (Python or numpy scalar) is refused with ``TypeError``: it is no tensor, and numpy
    would turn it into a one-element vector."""
    if isinstance(x, numbers.Number) and not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor or a numpy array; got {type(x).__name__}."
        )
    return as_tensor(x, fn, name)
