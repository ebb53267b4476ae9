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

from .._checks import check_positive_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_FIGURE_INCHES",
    "figure_to_png",
    "new_figure",
    "require_matplotlib",
    "save_figure",
    "to_numpy",
]

DPI = 100
# No figure is drawn larger than this many inches (at DPI pixels per inch) on either side: the
# content is capped first (components, modes, tick labels) so that what is drawn stays readable.
MAX_FIGURE_INCHES = 40.0


def require_matplotlib(fn: str) -> None:
    """Raise the one friendly error every plot function gives when matplotlib is absent.

    Raises:
        ModuleNotFoundError: (an ``ImportError``) naming ``fn`` and the install command.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ModuleNotFoundError(
            f"{fn}: needs matplotlib, which is not installed; install it with "
            "pip install 'factorch[plot]'.",
            name="matplotlib",
        ) from e


def new_figure(width: float, height: float, *, fn: str = "factorch.plot") -> Figure:
    """A fresh constrained-layout figure of ``width x height`` inches (not registered with
    pyplot), each side capped at :data:`MAX_FIGURE_INCHES`."""
    require_matplotlib(fn)
    from matplotlib.figure import Figure

    size = (min(width, MAX_FIGURE_INCHES), min(height, MAX_FIGURE_INCHES))
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def to_numpy(x: torch.Tensor) -> Any:
    """A float64 NumPy copy of a tensor on any device (for matplotlib)."""
    return x.detach().to(device="cpu", dtype=torch.float64).numpy()


def figure_to_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes of exactly ``figsize * dpi`` pixels.

    Args:
        fig: a figure from a ``factorch.plot`` function (or any matplotlib figure).
        dpi: pixels per inch.

    Returns:
        The PNG file's bytes.

    Raises:
        TypeError: ``fig`` is not a matplotlib figure, or ``dpi`` is not an int.
        ValueError: ``dpi`` below 1.

    Example:
        >>> from factorch.plot import plot_convergence
        >>> figure_to_png(plot_convergence([0.5, 0.1]))[:4]
        b'\\x89PNG'
    """
    if not callable(getattr(fig, "savefig", None)):
        raise TypeError(
            f"figure_to_png: fig must be a matplotlib figure (e.g. from factorch.plot); "
            f"got {type(fig).__name__}."
        )
    check_positive_int(dpi, "figure_to_png", "dpi")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def save_figure(
    fig: Figure, path: str | os.PathLike[str], *, dpi: int = DPI, force: bool = False
) -> None:
    """Save ``fig`` as a PNG atomically; refuse to overwrite unless ``force``.

    Args:
        fig: the figure.
        path: the target file.
        dpi: pixels per inch.
        force: overwrite an existing file.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is False.
        IsADirectoryError: ``path`` is a directory.

    Example:
        >>> import tempfile, pathlib
        >>> from factorch.plot import plot_convergence
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / "convergence.png"
        ...     save_figure(plot_convergence([0.5, 0.1]), path)
        ...     path.read_bytes()[:4]
        b'\\x89PNG'
    """
    from ..io import write_atomic

    write_atomic(path, figure_to_png(fig, dpi=dpi), force=force)
