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

On 2-D grids too large for one GEMM, :func:`fft_rows_in` and :func:`fft_rows_out` keep the
spectrum modes-first around the channel-major signal ``(C, B, n_1, n_2)`` of
:meth:`SpectralConv._rows`: the truncated real transform along the last dimension, one permuted
copy of its ``(n_1, k_2, B, C)`` lines, then the kept frequencies of the first dimension as one
complex GEMM against a cached ``(m_1, n_1)`` DFT matrix, whose output is already modes-first.
The FFT along the first dimension instead copies its operand to and from a transposed layout in
both passes, selects (and scatters) the kept rows, and still needs the modes-first copy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch

from ._modes import (
    DFT_MATRIX_MAX,
    _dft_matrices,
    _grid_matrices,
    _irfft_last,
    _rfft_last,
    _use_grid_matrix,
    forward_modes,
    inverse_modes,
    kept_frequencies,
    mode_sizes,
)

__all__ = [
    "fft_rows_in",
    "fft_rows_out",
    "gemm_matrices",
    "modes_in",
    "modes_out",
    "rows_in",
    "rows_out",
]


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


@functools.lru_cache(maxsize=64)
def _leading_dft(
    m: int, n: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(forward (m, n), inverse (n, m))``, complex ``dtype``: ``forward @ z`` is
    ``fft(z, dim=0)`` at the ``m`` kept frequencies (stored order), ``inverse @ s`` the ``ifft``
    (``n`` points) of the spectrum that is ``s`` there and zero elsewhere. Angles from exact
    integer products mod ``n``."""
    freqs = torch.tensor(kept_frequencies(m, last=False), dtype=torch.int64)
    turns = torch.remainder(torch.outer(freqs, torch.arange(n)), n).to(torch.float64)
    theta = 2 * math.pi * turns / n
    one = torch.ones((), dtype=torch.float64)
    forward = torch.polar(one.expand_as(theta), -theta)
    inverse = torch.polar((one / n).expand_as(theta), theta).T
    return forward.to(dtype=dtype, device=device), inverse.to(dtype=dtype, device=device)


def _leading_gemm(modes: Sequence[int], grid: Sequence[int]) -> bool:
    return len(modes) == 2 and modes[0] * grid[0] <= DFT_MATRIX_MAX


def fft_rows_in(signal: torch.Tensor, modes: Sequence[int]) -> torch.Tensor:
    """The kept modes of a channel-major ``(C, B, *grid)`` signal as a contiguous complex
    ``(*mode_sizes(modes), B, C)`` (differentiable); on grids without single-GEMM transforms."""
    d = len(modes)
    if not _leading_gemm(modes, signal.shape[2:]):
        return forward_modes(signal, modes).permute(*range(2, d + 2), 1, 0).contiguous()
    c, b, n1 = signal.shape[:3]
    k1, k2 = mode_sizes(modes)
    lines = _rfft_last(signal, k2).permute(2, 3, 1, 0).contiguous()  # (n1, k2, B, C)
    forward, _ = _leading_dft(modes[0], n1, lines.dtype, lines.device)
    return torch.mm(forward, lines.view(n1, -1)).view(k1, k2, b, c)


def fft_rows_out(
    spectrum: torch.Tensor, modes: Sequence[int], grid: Sequence[int], bias: torch.Tensor | None
) -> torch.Tensor:
    """Inverse of :func:`fft_rows_in`: the channel-major ``(O, B * N)`` signal of a kept
    spectrum ``(*mode_sizes(modes), B, O)`` (zero elsewhere), plus ``bias`` per channel
    (differentiable)."""
    d = len(modes)
    o = spectrum.shape[-1]
    bias = None if bias is None else bias.view(-1, *([1] * (d + 1)))
    if not _leading_gemm(modes, grid):
        back = spectrum.permute(d + 1, d, *range(d))  # (k.., B, O) -> (O, B, k..)
        return inverse_modes(back, modes, grid, bias).reshape(o, -1)
    k1, k2, b = spectrum.shape[:3]
    _, inverse = _leading_dft(modes[0], grid[0], spectrum.dtype, spectrum.device)
    lines = torch.mm(inverse, spectrum.reshape(k1, -1)).view(grid[0], k2, b, o)
    return _irfft_last(lines.permute(3, 2, 0, 1), grid[-1], bias).reshape(o, -1)
