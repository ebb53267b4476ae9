"""The truncated transforms of :meth:`SpectralConv._rows` on grids too large for one GEMM: the
channel-major signal ``(C, B, *grid)`` in, the kept spectrum modes-first ``(k.., B, C)`` out, and
back to ``(O, B * N)``.

On 2-D grids whose lines are short (``m_1 n_1`` and ``n_2 k_2`` at most
:data:`~._modes.DFT_MATRIX_MAX`), both dimensions are GEMMs against cached DFT matrices:

* in: the truncated real transform along the last dimension (one real GEMM), one permuted copy
  of its ``(n_1, k_2, B, C)`` lines, then the ``m_1`` kept frequencies of the first dimension as
  one complex GEMM with a ``(m_1, n_1)`` matrix, whose output is already modes-first;
* out: the inverse of each, in reverse order, with the layer's bias and, optionally, a 1x1
  convolution of another signal (the Fourier block's linear skip) accumulated into the output
  of the last GEMM: one ``(O, B * N)`` buffer instead of three.

The FFT along the first dimension instead copies its operand to and from a transposed layout in
both passes, selects (and scatters) the kept rows, and still needs the modes-first copy. The
permuted copies here are of complex numbers, forward and backward (a copy of ``(re, im)`` pairs
with a stride between them runs at half the speed). :class:`_LinesIn` and :class:`_LinesOut`
are linear in their tensor inputs and build their backward from differentiable operations on the
gradient and the saved inputs, so higher-order gradients stay correct. Other grids take
:func:`~._modes.forward_modes` / :func:`~._modes.inverse_modes` on the trailing dimensions.
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
    forward_modes,
    inverse_modes,
    kept_frequencies,
    mode_sizes,
)

__all__ = ["fft_rows_in", "fft_rows_out"]


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


def _lines_gemm(modes: Sequence[int], grid: Sequence[int]) -> bool:
    """Whether both dimensions of a 2-D grid are GEMMs (module docstring)."""
    if len(modes) != 2:
        return False
    k2 = modes[1] // 2 + 1
    return modes[0] * grid[0] <= DFT_MATRIX_MAX and grid[1] * k2 <= DFT_MATRIX_MAX


class _LinesIn(torch.autograd.Function):
    """``x (C, B, n_1, n_2)`` real -> ``(n_1, k_2, B, C)`` complex, contiguous: the truncated
    real DFT of every last-dimension line (``forward (n_2, 2 k_2)`` of ``_dft_matrices``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
        c, b, n1, n2 = x.shape
        ctx.save_for_backward(forward)
        ctx.shape = x.shape
        pairs = torch.mm(x.reshape(-1, n2), forward)
        lines = torch.view_as_complex(pairs.view(c, b, n1, -1, 2))
        return lines.permute(2, 3, 1, 0).contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (forward,) = ctx.saved_tensors
        lines = grad.permute(3, 2, 0, 1).contiguous()  # (C, B, n_1, k_2), complex copy
        pairs = torch.view_as_real(lines).reshape(-1, forward.shape[1])
        return torch.mm(pairs, forward.T).view(ctx.shape), None


class _LinesOut(torch.autograd.Function):
    """``lines (n_1, k_2, B, O)`` complex -> ``(O, B * n_1 * n_2)`` real: the inverse real DFT
    of every line (``inverse (2 k_2, n_2)`` of ``_dft_matrices``), plus ``bias (O,)`` and
    ``weight (O, C) @ x (C, B * N)`` when given (each may be None)."""

    @staticmethod
    def forward(
        ctx: Any,
        lines: torch.Tensor,
        inverse: torch.Tensor,
        bias: torch.Tensor | None,
        weight: torch.Tensor | None,
        x: torch.Tensor | None,
    ) -> torch.Tensor:
        n1, k2, b, o = lines.shape
        n2 = inverse.shape[1]
        ctx.save_for_backward(inverse, weight, x)
        ctx.has_bias, ctx.n1 = bias is not None, n1
        pairs = torch.view_as_real(lines.permute(3, 2, 0, 1).contiguous()).view(-1, 2 * k2)
        out = torch.empty(o, b * n1 * n2, dtype=inverse.dtype, device=inverse.device)
        torch.mm(pairs, inverse, out=out.view(-1, n2))
        if weight is not None and x is not None:
            out.addmm_(weight, x)
        if bias is not None:
            out.add_(bias.view(-1, 1))
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inverse, weight, x = ctx.saved_tensors
        need_lines, _, need_bias, need_weight, need_x = ctx.needs_input_grad
        grad = grad.contiguous()
        o, n2 = grad.shape[0], inverse.shape[1]
        g_lines = g_bias = g_weight = g_x = None
        if need_lines:
            pairs = torch.mm(grad.view(-1, n2), inverse.T)  # (O B n_1, 2 k_2)
            lines = torch.view_as_complex(pairs.view(o, -1, ctx.n1, inverse.shape[0] // 2, 2))
            g_lines = lines.permute(2, 3, 1, 0).contiguous()
        if ctx.has_bias and need_bias:
            g_bias = grad.sum(1)
        if need_weight:
            g_weight = torch.mm(grad, x.T)
        if need_x:
            g_x = torch.mm(weight.T, grad)
        return g_lines, None, g_bias, g_weight, g_x


def fft_rows_in(signal: torch.Tensor, modes: Sequence[int]) -> torch.Tensor:
    """The kept modes of a channel-major ``(C, B, *grid)`` signal as a contiguous complex
    ``(*mode_sizes(modes), B, C)`` (differentiable)."""
    d = len(modes)
    if not _lines_gemm(modes, signal.shape[2:]):
        return forward_modes(signal, modes).permute(*range(2, d + 2), 1, 0).contiguous()
    c, b, n1, n2 = signal.shape
    k1, k2 = mode_sizes(modes)
    forward, _ = _dft_matrices(n2, k2, signal.dtype, signal.device)
    lines = _LinesIn.apply(signal, forward)  # (n1, k2, B, C)
    leading, _ = _leading_dft(modes[0], n1, lines.dtype, lines.device)
    return torch.mm(leading, lines.view(n1, -1)).view(k1, k2, b, c)


def fft_rows_out(
    spectrum: torch.Tensor,
    modes: Sequence[int],
    grid: Sequence[int],
    bias: torch.Tensor | None,
    skip: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Inverse of :func:`fft_rows_in`: the channel-major ``(O, B * N)`` signal of a kept
    spectrum ``(*mode_sizes(modes), B, O)`` (zero elsewhere), plus ``bias`` per channel and,
    when ``skip = (weight (O, C), x (C, B * N))`` is given, ``weight @ x`` (differentiable)."""
    d = len(modes)
    o = spectrum.shape[-1]
    if not _lines_gemm(modes, grid):
        view = None if bias is None else bias.view(-1, *([1] * (d + 1)))
        back = spectrum.permute(d + 1, d, *range(d))  # (k.., B, O) -> (O, B, k..)
        out = inverse_modes(back, modes, grid, view).reshape(o, -1)
        return out if skip is None else torch.addmm(out, *skip)
    k1, k2, b = spectrum.shape[:3]
    _, leading = _leading_dft(modes[0], grid[0], spectrum.dtype, spectrum.device)
    lines = torch.mm(leading, spectrum.reshape(k1, -1)).view(grid[0], k2, b, o)
    _, inverse = _dft_matrices(grid[1], k2, lines.real.dtype, lines.device)
    weight, x = (None, None) if skip is None else skip
    return _LinesOut.apply(lines, inverse, bias, weight, x)
