"""Shared plumbing for :mod:`factorch.plot`: lazy matplotlib, PNG bytes, atomic saving.

Figures are built as bare :class:`matplotlib.figure.Figure` objects, never through ``pyplot``:
nothing touches matplotlib's global state or backend, so plotting works headless (the PNG is
rendered by the Agg canvas) and the figures are not kept alive by a pyplot figure manager.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_to_png", "new_figure", "save_figure", "to_numpy"]

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A fresh constrained-layout figure of ``width x height`` inches (not registered with
    pyplot)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "factorch.plot needs matplotlib; install it with pip install 'factorch[plot]'."
        ) from e
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_numpy(x: torch.Tensor) -> Any:
    """A float64 NumPy copy of a tensor on any device (for matplotlib)."""
    return x.detach().to(device="cpu", dtype=torch.float64).numpy()


def figure_to_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes of exactly ``figsize * dpi`` pixels."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def save_figure(
    fig: Figure, path: str | os.PathLike[str], *, dpi: int = DPI, force: bool = False
) -> None:
    """Save ``fig`` as a PNG atomically; refuse to overwrite unless ``force``."""
    from ..io import write_atomic

    write_atomic(path, figure_to_png(fig, dpi=dpi), force=force)
