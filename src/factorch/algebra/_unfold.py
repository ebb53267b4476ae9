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

from collections.abc import Sequence

import torch

from .._checks import check_mode, check_tensor

__all__ = ["fold", "unfold"]


def _unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    return torch.movedim(tensor, mode, 0).reshape(tensor.shape[mode], -1)


def _fold(unfolded: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    shape = list(shape)
    moved = [shape[mode], *shape[:mode], *shape[mode + 1 :]]
    return torch.movedim(unfolded.reshape(moved), 0, mode)


def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding of ``tensor`` (TensorLy's row-major column order; see module doc).

    Returns a ``(I_mode, prod of the other dims)`` matrix. A view when ``mode == 0`` and the
    tensor is contiguous, a copy otherwise. Differentiable.

    Example:
        >>> x = torch.arange(24.).reshape(2, 3, 4)
        >>> unfold(x, 1).shape
        torch.Size([3, 8])
    """
    check_tensor(tensor, "unfold", "tensor", min_ndim=1, floating=False, finite=False)
    mode = check_mode(mode, tensor.ndim, "unfold")
    return _unfold(tensor, mode)


def fold(unfolded: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`unfold`: refold a mode-``mode`` unfolding into ``shape``.

    Differentiable.
    """
    check_tensor(unfolded, "fold", "unfolded", ndim=2, floating=False, finite=False)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as err:
        raise TypeError(f"fold: shape must be a sequence of ints; got {shape!r}.") from err
    mode = check_mode(mode, len(shape), "fold")
    numel = 1
    for s in shape:
        numel *= s
    if unfolded.shape[0] != shape[mode] or unfolded.numel() != numel:
        raise ValueError(
            f"fold: an unfolding of shape {tuple(unfolded.shape)} cannot be folded into "
            f"{shape} along mode {mode}; expected ({shape[mode]}, {numel // max(shape[mode], 1)})."
        )
    return _fold(unfolded, mode, shape)
