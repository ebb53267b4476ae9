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

from collections.abc import Sequence

import torch

__all__ = ["check_grid", "kept_frequencies", "mode_sizes", "scatter_modes", "select_modes"]


def mode_sizes(modes: Sequence[int]) -> tuple[int, ...]:
    """Stored sizes of the kept modes: ``m`` per dimension, ``m // 2 + 1`` for the last."""
    return (*modes[:-1], modes[-1] // 2 + 1)


def kept_frequencies(m: int, *, last: bool) -> list[int]:
    """The integer frequencies kept along a dimension with ``m`` modes, in stored order.

    Example:
        >>> kept_frequencies(5, last=False), kept_frequencies(4, last=False)
        ([-2, -1, 0, 1, 2], [-2, -1, 0, 1])
        >>> kept_frequencies(5, last=True)
        [0, 1, 2]
    """
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
