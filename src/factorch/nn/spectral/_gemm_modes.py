"""The truncated transforms of a spectral convolution as single GEMMs, with the kept spectrum laid
out modes-first: ``(k_1, .., k_d, batch, channels)``.

On the grids where :func:`~factorch.nn.spectral._modes.forward_modes` and
:func:`~factorch.nn.spectral._modes.inverse_modes` are each one real GEMM against a cached DFT
matrix (1-D lines with ``n * k`` up to ``DFT_MATRIX_MAX``, small 2-D/3-D grids), the mode
contraction that follows is batched over the modes: with the spectrum in the
``(batch, channels, modes)`` order of an FFT the contraction first copies it to
``(modes, batch, channels)`` and its result back, each a separate autograd node, forward and
backward. :class:`_ModesIn` and :class:`_ModesOut` fold those copies into the transforms (one
autograd node each, a complex permute on the small kept spectrum instead of a strided copy of
``(re, im)`` pairs) and the layer's bias into the inverse GEMM. Both are linear in their tensor
input and their backward is built from differentiable operations on the incoming gradient only,
so higher-order gradients stay correct. Same values as the two-step path: the GEMMs are the same;
only where the copies happen moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ._modes import DFT_MATRIX_MAX, _dft_matrices, _grid_matrices, _use_grid_matrix, mode_sizes

__all__ = ["gemm_matrices", "modes_in", "modes_out"]


def gemm_matrices(
    modes: Sequence[int], grid: Sequence[int], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(forward (N, 2K), inverse (2K, N))`` when the truncated transform over ``grid`` is one
    GEMM each way (``N`` grid points, ``K`` kept modes as ``(re, im)`` pairs, in stored order);
    ``None`` on grids that take the FFT path."""
    if len(modes) == 1:
        k = modes[0] // 2 + 1
        if grid[0] * k > DFT_MATRIX_MAX:
            return None
        return _dft_matrices(grid[0], k, dtype, device)
    if not _use_grid_matrix(modes, grid):
        return None
    return _grid_matrices(tuple(modes), tuple(grid), dtype, device)


class _ModesIn(torch.autograd.Function):
    """``x (B, C, *grid)`` real -> kept spectrum ``(K, B, C)`` complex, contiguous."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        k = forward.shape[1] // 2
        ctx.save_for_backward(forward)
        ctx.shape = x.shape
        pairs = torch.mm(x.reshape(b * c, forward.shape[0]), forward)
        return torch.view_as_complex(pairs.view(b, c, k, 2)).permute(2, 0, 1).contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (forward,) = ctx.saved_tensors
        k, b, c = grad.shape
        pairs = torch.view_as_real(grad.permute(1, 2, 0).contiguous()).view(b * c, 2 * k)
        return torch.mm(pairs, forward.T).view(ctx.shape), None


class _ModesOut(torch.autograd.Function):
    """Kept spectrum ``(K, B, O)`` complex -> ``(B, O, N)`` real, plus a per-channel bias."""

    @staticmethod
    def forward(
        ctx: Any, spectrum: torch.Tensor, inverse: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        k, b, o = spectrum.shape
        n = inverse.shape[1]
        ctx.save_for_backward(inverse)
        ctx.has_bias = bias is not None
        pairs = torch.view_as_real(spectrum.permute(1, 2, 0).contiguous()).view(b, o, 2 * k)
        if bias is None:
            return torch.mm(pairs.view(b * o, 2 * k), inverse).view(b, o, n)
        return torch.baddbmm(bias.view(1, o, 1), pairs, inverse.expand(b, 2 * k, n))

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        (inverse,) = ctx.saved_tensors
        b, o, n = grad.shape
        k = inverse.shape[0] // 2
        grad = grad.contiguous()
        grad_spectrum = grad_bias = None
        if ctx.needs_input_grad[0]:
            pairs = torch.mm(grad.view(b * o, n), inverse.T).view(b, o, k, 2)
            grad_spectrum = torch.view_as_complex(pairs).permute(2, 0, 1).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2))
        return grad_spectrum, None, grad_bias


def modes_in(x: torch.Tensor, modes: Sequence[int], forward: torch.Tensor) -> torch.Tensor:
    """The kept modes of ``x (B, C, *grid)`` as ``(*mode_sizes(modes), B, C)`` complex, through
    the GEMM ``forward`` of :func:`gemm_matrices` (differentiable)."""
    out = _ModesIn.apply(x, forward)
    return out if len(modes) == 1 else out.view(*mode_sizes(modes), *x.shape[:2])


def modes_out(
    spectrum: torch.Tensor,
    modes: Sequence[int],
    grid: Sequence[int],
    inverse: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """Inverse of :func:`modes_in`: the real ``(B, O, *grid)`` signal of a kept spectrum
    ``(*mode_sizes(modes), B, O)`` (zero elsewhere), plus ``bias`` per channel (differentiable)."""
    d = len(modes)
    if d == 1:  # already (K, B, O) and (B, O, N): no reshape nodes
        return _ModesOut.apply(spectrum, inverse, bias)
    b, o = spectrum.shape[d:]
    flat = spectrum.reshape(math.prod(spectrum.shape[:d]), b, o)
    return _ModesOut.apply(flat, inverse, bias).view(b, o, *grid)
