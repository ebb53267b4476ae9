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

__all__ = ["gemm_matrices", "modes_in", "modes_out", "rows_in", "rows_out"]


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
    """``x`` real -> kept spectrum ``(K, B, C)`` complex, contiguous. ``x`` is ``(B, C, *grid)``,
    or ``(C, B * N)`` when ``rows`` (the channel-major layout of :meth:`SpectralConv._rows`)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, forward: torch.Tensor, batch: int, rows: bool
    ) -> torch.Tensor:
        n, k = forward.shape[0], forward.shape[1] // 2
        c = x.shape[0] if rows else x.shape[1]
        ctx.save_for_backward(forward)
        ctx.shape, ctx.rows = x.shape, rows
        pairs = torch.mm(x.reshape(-1, n), forward)
        if rows:  # (C, B, K) -> (K, B, C)
            return torch.view_as_complex(pairs.view(c, batch, k, 2)).permute(2, 1, 0).contiguous()
        return torch.view_as_complex(pairs.view(batch, c, k, 2)).permute(2, 0, 1).contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (forward,) = ctx.saved_tensors
        k, b, c = grad.shape
        order = (2, 1, 0) if ctx.rows else (1, 2, 0)
        pairs = torch.view_as_real(grad.permute(order).contiguous()).view(b * c, 2 * k)
        return torch.mm(pairs, forward.T).view(ctx.shape), None, None, None


class _ModesOut(torch.autograd.Function):
    """Kept spectrum ``(K, B, O)`` complex -> ``(B, O, N)`` real (``(O, B * N)`` when ``rows``),
    plus a per-channel bias."""

    @staticmethod
    def forward(
        ctx: Any,
        spectrum: torch.Tensor,
        inverse: torch.Tensor,
        bias: torch.Tensor | None,
        rows: bool,
    ) -> torch.Tensor:
        k, b, o = spectrum.shape
        n = inverse.shape[1]
        ctx.save_for_backward(inverse)
        ctx.has_bias, ctx.rows = bias is not None, rows
        if rows:  # (O, B, K) pairs, batched over O
            pairs = torch.view_as_real(spectrum.permute(2, 1, 0).contiguous()).view(o, b, 2 * k)
            if bias is None:
                return torch.mm(pairs.view(o * b, 2 * k), inverse).view(o, b * n)
            out = torch.baddbmm(bias.view(o, 1, 1), pairs, inverse.expand(o, 2 * k, n))
            return out.view(o, b * n)
        pairs = torch.view_as_real(spectrum.permute(1, 2, 0).contiguous()).view(b, o, 2 * k)
        if bias is None:
            return torch.mm(pairs.view(b * o, 2 * k), inverse).view(b, o, n)
        return torch.baddbmm(bias.view(1, o, 1), pairs, inverse.expand(b, 2 * k, n))

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, torch.Tensor | None, None]:
        (inverse,) = ctx.saved_tensors
        n = inverse.shape[1]
        k = inverse.shape[0] // 2
        grad = grad.contiguous()
        grad_spectrum = grad_bias = None
        if ctx.needs_input_grad[0]:
            pairs = torch.mm(grad.view(-1, n), inverse.T)
            if ctx.rows:
                o = grad.shape[0]
                spectrum = torch.view_as_complex(pairs.view(o, -1, k, 2)).permute(2, 1, 0)
            else:
                b, o = grad.shape[:2]
                spectrum = torch.view_as_complex(pairs.view(b, o, k, 2)).permute(2, 0, 1)
            grad_spectrum = spectrum.contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1) if ctx.rows else grad.sum((0, 2))
        return grad_spectrum, None, grad_bias, None


def modes_in(x: torch.Tensor, modes: Sequence[int], forward: torch.Tensor) -> torch.Tensor:
    """The kept modes of ``x (B, C, *grid)`` as ``(*mode_sizes(modes), B, C)`` complex, through
    the GEMM ``forward`` of :func:`gemm_matrices` (differentiable)."""
    out = _ModesIn.apply(x, forward, x.shape[0], False)
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
        return _ModesOut.apply(spectrum, inverse, bias, False)
    b, o = spectrum.shape[d:]
    flat = spectrum.reshape(math.prod(spectrum.shape[:d]), b, o)
    return _ModesOut.apply(flat, inverse, bias, False).view(b, o, *grid)


def rows_in(
    x: torch.Tensor, batch: int, modes: Sequence[int], forward: torch.Tensor
) -> torch.Tensor:
    """:func:`modes_in` of a channel-major ``(C, B * N)`` signal (differentiable)."""
    out = _ModesIn.apply(x, forward, batch, True)
    return out if len(modes) == 1 else out.view(*mode_sizes(modes), batch, x.shape[0])


def rows_out(
    spectrum: torch.Tensor, modes: Sequence[int], inverse: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """:func:`modes_out` to a channel-major ``(O, B * N)`` signal (differentiable)."""
    d = len(modes)
    if d > 1:
        spectrum = spectrum.reshape(math.prod(spectrum.shape[:d]), *spectrum.shape[d:])
    return _ModesOut.apply(spectrum, inverse, bias, True)
