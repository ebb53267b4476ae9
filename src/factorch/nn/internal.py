"""Pieces of :mod:`factorch.nn` shared with higher layers (not public API).

``models`` builds on these: the spectral layers' single-GEMM transform test and grid check, the
channel-major entry of :class:`~factorch.nn.spectral.SpectralConv` that the FNO blocks use
(:meth:`SpectralConv._rows`), and the check of the spectral weights' ``lr_scale``. Unchecked;
callers validate at their own public boundary. Names carry no leading underscore so that no
module imports another subpackage's private names.
"""

from __future__ import annotations

import torch

from .spectral._conv import SpectralConv
from .spectral._gemm_modes import gemm_matrices as gemm_matrices
from .spectral._modes import check_grid as check_grid
from .spectral._weight import check_lr_scale as check_lr_scale


def spectral_rows(
    conv: SpectralConv,
    x: torch.Tensor,
    batch: int,
    grid: tuple[int, ...],
    skip: torch.Tensor | None = None,
) -> torch.Tensor:
    """``conv`` on a channel-major ``(C, B * N)`` signal, plus ``skip @ x`` for an ``(O, C)``
    matrix ``skip``: ``(O, B * N)`` (see ``SpectralConv._rows``; FFT grids included)."""
    return conv._rows(x, batch, grid, skip)
