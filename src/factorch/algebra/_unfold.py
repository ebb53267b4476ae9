"""Mode-n unfolding and folding.

Convention
----------
``unfold(X, n)`` is the ``I_n x prod(I_m, m != n)`` matrix whose rows are indexed by ``i_n`` and
whose columns run over the remaining indices in **row-major (C) order**: the last remaining
index varies fastest. This is TensorLy's convention (``tensorly.unfold``). Kolda and Bader
(SIAM Review 51(3), 2009) order the columns in column-major order (the *first* remaining index
varies fastest); the two unfoldings differ only by a fixed column permutation, so every identity
carries over once the Khatri--Rao product is taken in the matching order: with factorch's (and
TensorLy's) ``khatri_rao``,

    unfold([[w; A_0, ..., A_{N-1}]], n) = A_n diag(w) khatri_rao([A_m for m != n]).T

whereas Kolda--Bader write ``A_n diag(w) (A_{N-1} (.) ... (.) A_{n+1} (.) A_{n-1} ... (.) A_0).T``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._checks import as_index, check_mode, check_tensor
from ._args import as_array

__all__ = ["fold", "unfold"]


def _unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    return torch.movedim(tensor, mode, 0).reshape(tensor.shape[mode], -1)


def _fold(unfolded: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    shape = list(shape)
    moved = [shape[mode], *shape[:mode], *shape[mode + 1 :]]
    return torch.movedim(unfolded.reshape(moved), 0, mode)


def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding of ``tensor`` (TensorLy's row-major column order; see module doc).

    Args:
        tensor: a tensor of at least one dimension, any dtype (numpy arrays accepted).
        mode: the mode that indexes the rows (negative values count from the end; numpy ints
            accepted).

    Returns:
        A ``(I_mode, prod of the other dims)`` matrix: a view when ``mode == 0`` and the tensor is
        contiguous, a copy otherwise.

    Raises:
        TypeError: ``tensor`` is not a tensor or array; ``mode`` is not an int.
        IndexError: ``mode`` is out of range.

    Differentiable; behaves like ``torch.movedim``/``reshape`` under autocast.

    Example:
        >>> x = torch.arange(24.).reshape(2, 3, 4)
        >>> unfold(x, 1).shape
        torch.Size([3, 8])
    """
    fn = "unfold"
    tensor = as_array(tensor, fn)
    check_tensor(tensor, fn, "tensor", min_ndim=1, floating=False, finite=False)
    mode = check_mode(as_index(mode, fn, "mode"), tensor.ndim, fn)
    return _unfold(tensor, mode)


def _check_shape(shape: object, fn: str) -> tuple[int, ...]:
    """A non-empty sequence of positive integral sizes."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, torch.Size)):
        raise TypeError(f"{fn}: shape must be a sequence of positive ints; got {shape!r}.")
    sizes = tuple(as_index(s, fn, f"shape[{i}]") for i, s in enumerate(shape))
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(
            f"{fn}: shape must be a non-empty sequence of positive sizes; got {sizes}."
        )
    return sizes


def fold(unfolded: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`unfold`: refold a mode-``mode`` unfolding into ``shape``.

    Args:
        unfolded: a ``(shape[mode], prod of the other sizes)`` matrix (numpy arrays accepted).
        mode: the mode its rows index (negative values count from the end).
        shape: the tensor's shape, positive sizes.

    Returns:
        The tensor of ``shape`` (a view of ``unfolded`` when ``mode == 0``).

    Raises:
        TypeError: ``unfolded`` is not a matrix-like; ``shape`` or ``mode`` of the wrong type.
        ValueError: a size is not positive; the unfolding's shape does not match ``shape``.
        IndexError: ``mode`` is out of range.

    Differentiable.

    Example:
        >>> x = torch.arange(24.).reshape(2, 3, 4)
        >>> torch.equal(fold(unfold(x, 2), 2, (2, 3, 4)), x)
        True
    """
    fn = "fold"
    unfolded = as_array(unfolded, fn, "unfolded")
    check_tensor(unfolded, fn, "unfolded", ndim=2, floating=False, finite=False)
    sizes = _check_shape(shape, fn)
    mode = check_mode(as_index(mode, fn, "mode"), len(sizes), fn)
    numel = math.prod(sizes)
    if unfolded.shape[0] != sizes[mode] or unfolded.numel() != numel:
        raise ValueError(
            f"{fn}: an unfolding of shape {tuple(unfolded.shape)} cannot be folded into "
            f"{sizes} along mode {mode}; expected ({sizes[mode]}, {numel // sizes[mode]})."
        )
    return _fold(unfolded, mode, sizes)
