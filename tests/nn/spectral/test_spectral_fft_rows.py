"""The channel-major transforms on FFT grids (``_fft_rows``: DFT GEMMs along both dimensions of
2-D grids with short lines, the FFT path elsewhere) against ``forward_modes``/``inverse_modes``
in float64: values and gradients, bias and skip, odd and even sizes; exact first and second
derivatives of the hand-written Functions."""

from __future__ import annotations

import pytest
import torch

from factorch.nn.spectral._fft_rows import (
    _leading_dft,
    _lines_gemm,
    _LinesIn,
    _LinesOut,
    fft_rows_in,
    fft_rows_out,
)
from factorch.nn.spectral._modes import _dft_matrices, forward_modes, inverse_modes, mode_sizes

CPU = torch.device("cpu")
# (modes, grid, both dimensions as GEMMs)
CASES = [
    ((12, 12), (32, 32), True),
    ((7, 6), (41, 33), True),
    ((5, 9), (5, 10), True),
    ((65, 4), (70, 8), False),  # the first dimension's DFT matrix is too large: FFT
    ((4, 64), (8, 256), False),  # so is the last one's
    ((3, 3, 4), (5, 6, 7), False),  # 3-D: FFT
]


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    a, b = a.detach(), b.detach()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))


@pytest.mark.parametrize(("modes", "grid", "gemm"), CASES)
def test_fft_rows_match_the_fft_transforms(modes, grid, gemm) -> None:
    assert _lines_gemm(modes, grid) is gemm
    g = torch.Generator().manual_seed(0)
    c, b, o = 3, 2, 4
    signal = torch.randn(c, b, *grid, generator=g, dtype=torch.float64, requires_grad=True)
    d = len(modes)
    kept = fft_rows_in(signal, modes)
    want = forward_modes(signal, modes).permute(*range(2, d + 2), 1, 0)
    _close(kept, want)
    assert kept.is_contiguous() and kept.shape == (*mode_sizes(modes), b, c)
    g_kept = torch.randn(kept.shape, generator=g, dtype=torch.complex128)
    (got,) = torch.autograd.grad(kept, signal, g_kept)
    (expected,) = torch.autograd.grad(want, signal, g_kept)
    _close(got, expected)

    spectrum = torch.randn(*mode_sizes(modes), b, o, generator=g, dtype=torch.complex128)
    spectrum.requires_grad_()
    bias = torch.randn(o, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(o, c, generator=g, dtype=torch.float64, requires_grad=True)
    rows = signal.detach().reshape(c, -1).requires_grad_()
    inputs = (spectrum, bias, weight, rows)
    out = fft_rows_out(spectrum, modes, grid, bias, (weight, rows))
    back = spectrum.permute(d + 1, d, *range(d))
    plain = inverse_modes(back, modes, grid).reshape(o, -1)
    want = plain + bias[:, None] + weight @ rows
    _close(out, want)
    assert out.shape == (o, b * signal[0, 0].numel())
    g_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    for a, e in zip(
        torch.autograd.grad(out, inputs, g_out), torch.autograd.grad(want, inputs, g_out)
    ):
        _close(a, e)
    _close(fft_rows_out(spectrum, modes, grid, None), plain)


def test_leading_dft_matrices_are_the_truncated_fft_and_its_inverse() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(9, 4, generator=g, dtype=torch.complex128)
    forward, inverse = _leading_dft(6, 9, torch.complex128, CPU)
    index = torch.tensor([6, 7, 8, 0, 1, 2])  # frequencies -3 .. 2 on 9 points
    _close(forward @ z, torch.fft.fft(z, dim=0)[index])
    full = torch.zeros(9, 4, dtype=torch.complex128)
    full[index] = forward @ z
    _close(inverse @ (forward @ z), torch.fft.ifft(full, dim=0))


@pytest.mark.parametrize("with_skip", [False, True])
def test_lines_functions_pass_gradcheck_and_gradgradcheck(with_skip: bool) -> None:
    g = torch.Generator().manual_seed(2)
    forward, inverse = _dft_matrices(5, 3, torch.float64, CPU)  # n2 = 5, k2 = 3
    x = torch.randn(2, 2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)

    def lines_in(t: torch.Tensor) -> torch.Tensor:
        return _LinesIn.apply(t, forward)

    assert torch.autograd.gradcheck(lines_in, (x,))
    assert torch.autograd.gradgradcheck(lines_in, (x,))
    # (n1, k2, B, O) lines
    lines = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.complex128, requires_grad=True)
    bias = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    rows = torch.randn(2, 2 * 2 * 5, generator=g, dtype=torch.float64, requires_grad=True)
    if with_skip:
        inputs = (lines, bias, weight, rows)

        def lines_out(s, b, w, r):
            return _LinesOut.apply(s, inverse, b, w, r)
    else:
        inputs = (lines,)

        def lines_out(s):
            return _LinesOut.apply(s, inverse, None, None, None)

    assert torch.autograd.gradcheck(lines_out, inputs)
    assert torch.autograd.gradgradcheck(lines_out, inputs)
