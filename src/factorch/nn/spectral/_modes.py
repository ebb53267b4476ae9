"""Which Fourier modes a spectral convolution keeps, and where they sit in an FFT array.

Along a dimension with ``m`` modes on an ``n``-point grid:

* every dimension but the last (complex FFT): the integer frequencies
  ``-(m // 2) .. (m - 1) // 2`` (``m`` of them; symmetric when ``m`` is odd), stored in that
  (centred) order; frequency ``k`` is entry ``k mod n`` of the FFT. Needs ``m <= n``.
* the last dimension (real FFT): frequencies ``0 .. m // 2`` (``m // 2 + 1`` of them; the
  negative ones follow by Hermitian symmetry). Needs ``m // 2 <= n // 2``.

Indexing by frequency, never by position in a shifted array, is what makes the layer correct on
odd grids: neuraloperator 2.0.0 applies ``fftshift`` where ``ifftshift`` belongs before the
inverse transform, which is the same permutation only for even sizes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "check_grid",
    "forward_modes",
    "inverse_modes",
    "kept_frequencies",
    "mode_sizes",
    "scatter_modes",
    "select_modes",
]


def mode_sizes(modes: Sequence[int]) -> tuple[int, ...]:
    """Stored sizes of the kept modes: ``m`` per dimension, ``m // 2 + 1`` for the last."""
    return (*modes[:-1], modes[-1] // 2 + 1)


def kept_frequencies(m: int, *, last: bool) -> list[int]:
    """The integer frequencies kept along a dimension with ``m`` modes, in stored order.

    Args:
        m: the number of modes along the dimension.
        last: the last spatial dimension (a one-sided real FFT keeps ``m // 2 + 1``
            non-negative frequencies) instead of another one (``m`` centred frequencies).

    Returns:
        The frequencies, in the order the weights store them.

    Raises:
        TypeError: ``m`` is not an int.
        ValueError: ``m`` below 1.

    Example:
        >>> kept_frequencies(5, last=False), kept_frequencies(4, last=False)
        ([-2, -1, 0, 1, 2], [-2, -1, 0, 1])
        >>> kept_frequencies(5, last=True)
        [0, 1, 2]
    """
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"kept_frequencies: m must be an int; got {type(m).__name__}.")
    if m < 1:
        raise ValueError(f"kept_frequencies: m must be at least 1; got {m}.")
    if last:
        return list(range(m // 2 + 1))
    return list(range(-(m // 2), (m - 1) // 2 + 1))


def check_grid(modes: Sequence[int], grid: Sequence[int], fn: str) -> None:
    """``ValueError`` when a grid is too coarse for the modes (see the module docstring)."""
    d = len(modes)
    for j, (m, n) in enumerate(zip(modes, grid)):
        last = j == d - 1
        need = 2 * (m // 2) if last else m
        if n < max(need, 1):
            raise ValueError(
                f"{fn}: {m} modes along spatial dimension {j} need a grid of at least {need} "
                f"points there; got {n} (input grid {tuple(grid)}). Use fewer modes or a finer "
                "grid."
            )


def _index(m: int, n: int, device: torch.device) -> torch.Tensor:
    freqs = torch.tensor(kept_frequencies(m, last=False), device=device)
    return torch.remainder(freqs, n)


def select_modes(spectrum: torch.Tensor, modes: Sequence[int]) -> torch.Tensor:
    """The kept modes of a real-FFT spectrum ``(..., n_1, .., n_{d-1}, n_d // 2 + 1)``."""
    d = len(modes)
    out = spectrum[..., : modes[-1] // 2 + 1]
    for j in range(d - 1):
        dim = out.ndim - d + j
        out = out.index_select(dim, _index(modes[j], out.shape[dim], out.device))
    return out


def scatter_modes(kept: torch.Tensor, modes: Sequence[int], grid: Sequence[int]) -> torch.Tensor:
    """A zero real-FFT spectrum for ``grid`` with the kept modes written back (differentiable)."""
    d = len(modes)
    lead = kept.shape[:-d]
    full = torch.zeros((*lead, *grid[:-1], grid[-1] // 2 + 1), dtype=kept.dtype, device=kept.device)
    index: list[slice | torch.Tensor] = [slice(None)] * len(lead)
    for j in range(d - 1):
        shape = [1] * (d - 1)
        shape[j] = -1
        index.append(_index(modes[j], grid[j], kept.device).reshape(shape))
    index.append(slice(0, modes[-1] // 2 + 1))
    full[tuple(index)] = kept  # a fresh tensor: autograd routes the gradient to ``kept``
    return full


# Along the last dimension only ``k = m // 2 + 1`` of the ``n // 2 + 1`` real-FFT frequencies are
# kept: when ``n * k`` is this small or smaller, the truncated transform and its inverse are one
# real GEMM against a cached ``(n, 2 k)`` DFT matrix instead of an FFT plus slicing, zero-padding
# and copies (on CPUs 3-10x faster at the grids neural operators train on; the FFT's n log n
# wins on long lines with many modes).
DFT_MATRIX_MAX = 4096


@functools.lru_cache(maxsize=64)
def _dft_matrices(
    n: int, k: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(forward, inverse)``: ``x @ forward`` is ``rfft(x)[..., :k]`` as ``(re, im)`` pairs,
    ``pairs @ inverse`` is ``irfft(spectrum, n)`` of the ``k`` kept frequencies (the imaginary
    parts of ``k = 0`` and of the Nyquist frequency ignored, as ``irfft`` does)."""
    freq = torch.arange(k, dtype=torch.float64)
    theta = 2 * math.pi * torch.outer(freq, torch.arange(n, dtype=torch.float64)) / n
    cos, sin = torch.cos(theta), torch.sin(theta)
    edge = (freq == 0) | (2 * freq == n)
    sin[edge] = 0.0  # exact zeros where sin(pi j) rounds to 1e-16
    forward = torch.stack([cos, -sin], dim=1).reshape(2 * k, n).T
    scale = (2.0 - edge.to(torch.float64)).div(n)[:, None]
    inverse = torch.stack([scale * cos, -scale * sin], dim=1).reshape(2 * k, n)
    return (
        forward.to(dtype=dtype, device=device).contiguous(),
        inverse.to(dtype=dtype, device=device).contiguous(),
    )


def _rfft_last(x: torch.Tensor, k: int) -> torch.Tensor:
    n = x.shape[-1]
    if n * k > DFT_MATRIX_MAX:
        return torch.fft.rfft(x, dim=-1)[..., :k]
    forward, _ = _dft_matrices(n, k, x.dtype, x.device)
    pairs = x.reshape(-1, n) @ forward
    return torch.view_as_complex(pairs.view(*x.shape[:-1], k, 2))


def _irfft_last(spectrum: torch.Tensor, n: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``irfft`` along the last dimension, plus ``bias`` (broadcastable to the output with size
    1 along the last dimension), on short lines accumulated into the GEMM."""
    k = spectrum.shape[-1]
    if n * k > DFT_MATRIX_MAX:
        out = torch.fft.irfft(spectrum, n=n, dim=-1)
        return out if bias is None else out + bias
    _, inverse = _dft_matrices(n, k, spectrum.real.dtype, spectrum.device)
    pairs = torch.view_as_real(spectrum).reshape(-1, 2 * k)
    if bias is None:
        return (pairs @ inverse).view(*spectrum.shape[:-1], n)
    rows = bias.expand(*spectrum.shape[:-1], 1).reshape(-1, 1)
    return torch.addmm(rows, pairs, inverse).view(*spectrum.shape[:-1], n)


# On small 2-D and 3-D grids the whole truncated transform (every spatial dimension at once) is
# one real GEMM against a cached ``(N, 2 K)`` matrix (``N`` grid points, ``K`` kept modes) when
# it has this many entries or fewer (256 KiB in float32): at the Darcy 16^2 training shape (batch
# 32 x 24 channels, modes 8 x 8, 20,480 entries) forward + inverse transforms, forward and
# backward, take 1.4 ms against 2.9 ms for the separable path below, whose FFT along the leading
# dimension copies its operand to a transposed layout and back in both passes. Measured on one
# CPU thread: 1.2-2.4x faster up to 73,728 entries, at parity at 172,032 (Darcy 32^2, modes 12).
GRID_MATRIX_MAX = 1 << 16


def _angles(modes: Sequence[int], grid: Sequence[int]) -> list[torch.Tensor]:
    """Per dimension, ``2 pi f j / n`` for the kept frequencies ``f`` and points ``j`` (float64)."""
    d = len(modes)
    out = []
    for j, (m, n) in enumerate(zip(modes, grid)):
        f = torch.tensor(kept_frequencies(m, last=j == d - 1), dtype=torch.float64)
        out.append(2 * math.pi * torch.outer(f, torch.arange(n, dtype=torch.float64)) / n)
    return out


def _outer_sum(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_j parts[j][f_j, n_j]`` over ``(f_1.., f_d, n_1.., n_d)``, as a ``(K, N)`` matrix."""
    d = len(parts)
    total = torch.zeros((), dtype=torch.float64)
    for j, part in enumerate(parts):
        shape = [1] * (2 * d)
        shape[j], shape[d + j] = part.shape
        total = total + part.reshape(shape)
    kept = math.prod(p.shape[0] for p in parts)
    return total.expand(*(p.shape[0] for p in parts), *(p.shape[1] for p in parts)).reshape(
        kept, -1
    )


@functools.lru_cache(maxsize=64)
def _grid_matrices(
    modes: tuple[int, ...], grid: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(forward, inverse)`` of the whole truncated transform: ``x.reshape(-1, N) @ forward``
    is :func:`forward_modes` as ``(re, im)`` pairs of the kept modes in stored order, and
    ``pairs @ inverse`` is :func:`inverse_modes`: the inverse complex DFTs along the leading
    dimensions, then the inverse real DFT along the last, which counts ``0 < f < n / 2`` twice and
    ignores the imaginary parts of ``f = 0`` and the Nyquist frequency (as ``irfft`` does)."""
    angles = _angles(modes, grid)
    theta = _outer_sum(angles)
    forward = torch.stack([torch.cos(theta), -torch.sin(theta)], dim=1).reshape(-1, theta.shape[1])
    # Inverse: y = sum over kept (p, f) of Re(Y e^{i phi_p}) a_f - Im(Y e^{i phi_p}) b_f, with
    # phi the leading dimensions' angles and a_f + i b_f = w_f e^{i theta_f} the last one's
    # (w_f = 2 for 0 < f < n/2, else 1 and b_f = 0), all over the number of grid points.
    f = torch.tensor(kept_frequencies(modes[-1], last=True), dtype=torch.float64)
    edge = (f == 0) | (2 * f == grid[-1])
    weight = (2.0 - edge.to(torch.float64)) / math.prod(grid)
    rows = theta.shape[0] // f.numel()  # the last dimension's frequency is the fastest index
    leading = [torch.zeros_like(t) for t in angles[:-1]]
    phi = _outer_sum([*angles[:-1], torch.zeros_like(angles[-1])])
    theta_last = _outer_sum([*leading, angles[-1]])
    a = torch.cos(theta_last) * weight.repeat(rows)[:, None]
    b = torch.sin(theta_last) * (weight * ~edge).repeat(rows)[:, None]  # exact zeros at edges
    cos_phi, sin_phi = torch.cos(phi), torch.sin(phi)
    inverse = torch.stack([cos_phi * a - sin_phi * b, -sin_phi * a - cos_phi * b], dim=1)
    inverse = inverse.reshape(-1, theta.shape[1])
    return (
        forward.T.to(dtype=dtype, device=device).contiguous(),
        inverse.to(dtype=dtype, device=device).contiguous(),
    )


def _use_grid_matrix(modes: Sequence[int], grid: Sequence[int]) -> bool:
    kept = math.prod(mode_sizes(modes))
    return len(modes) >= 2 and 2 * kept * math.prod(grid) <= GRID_MATRIX_MAX


def forward_modes(x: torch.Tensor, modes: Sequence[int]) -> torch.Tensor:
    """The kept modes of ``rfftn(x)`` over the last ``len(modes)`` dimensions, computing only
    what is kept: on small 2-D/3-D grids one GEMM with the whole truncated DFT matrix; else the
    truncated real transform along the last dimension (a GEMM with a DFT matrix on short lines,
    else a real FFT), then complex FFTs along the others on the kept columns only (fewer
    transforms than a full ``rfftn``; same values)."""
    d = len(modes)
    grid = tuple(x.shape[x.ndim - d :])
    if _use_grid_matrix(modes, grid):
        forward, _ = _grid_matrices(tuple(modes), grid, x.dtype, x.device)
        pairs = x.reshape(-1, forward.shape[0]) @ forward
        return torch.view_as_complex(pairs.view(*x.shape[: x.ndim - d], *mode_sizes(modes), 2))
    out = _rfft_last(x, modes[-1] // 2 + 1)
    for j in reversed(range(d - 1)):
        dim = x.ndim - d + j
        out = torch.fft.fft(out, dim=dim)
        out = out.index_select(dim, _index(modes[j], out.shape[dim], out.device))
    return out


def inverse_modes(
    kept: torch.Tensor,
    modes: Sequence[int],
    grid: Sequence[int],
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``irfftn`` of the spectrum that is ``kept`` on the kept modes and zero elsewhere, without
    building the zeros beyond the kept columns: complex inverse FFTs along the leading
    dimensions on the kept columns, then the inverse real transform of the kept frequencies
    along the last (a GEMM with a DFT matrix on short lines, else a zero-padded inverse FFT);
    on small 2-D/3-D grids one GEMM with the whole inverse matrix. ``bias`` (broadcastable to
    the output, size 1 along the grid dimensions) is added, into the last GEMM where there is
    one."""
    d = len(modes)
    if _use_grid_matrix(modes, grid):
        _, inverse = _grid_matrices(tuple(modes), tuple(grid), kept.real.dtype, kept.device)
        pairs = torch.view_as_real(kept).reshape(-1, inverse.shape[0])
        out = (pairs @ inverse).view(*kept.shape[: kept.ndim - d], *grid)
        return out if bias is None else out + bias
    out = kept
    for j in range(d - 1):
        dim = kept.ndim - d + j
        shape = list(out.shape)
        shape[dim] = grid[j]
        full = torch.zeros(shape, dtype=out.dtype, device=out.device)
        full = full.index_copy(dim, _index(modes[j], grid[j], out.device), out)
        out = torch.fft.ifft(full, dim=dim)
    return _irfft_last(out, grid[-1], bias)
