"""The classic CP factor plot: one panel per mode, one colour per component."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._common import new_figure, require_matplotlib, to_numpy

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..tensors import CPTensor

__all__ = ["normalized_cp_factors", "plot_cp_factors"]

_SHORT = 30  # modes up to this length are drawn as grouped bars with one tick per index
_LABEL_CHARS = 18


def normalized_cp_factors(cp: CPTensor) -> tuple[Any, list[Any]]:
    """Weights and factors (NumPy) in a canonical form for display.

    Columns are scaled to unit 2-norm (the scale moves into the weights); signs are chosen so
    each column sums to a non-negative value in every mode but the longest one, which absorbs
    the flips (the tensor is unchanged: two sign flips per component cancel), and weights are
    made non-negative the same way; components are sorted by decreasing weight.

    Args:
        cp: the model (any device and float dtype).

    Returns:
        ``(weights, factors)``: float64 NumPy arrays, ``weights`` of shape ``(R,)`` and one
        ``(I_n, R)`` factor per mode; ``CPTensor(weights, factors)`` is the same tensor as ``cp``.
        Needs NumPy only (no matplotlib). Not differentiable.

    Raises:
        TypeError: ``cp`` is not a :class:`~factorch.tensors.CPTensor`.

    Example:
        >>> from factorch.random import random_cp
        >>> w, fs = normalized_cp_factors(random_cp((5, 4, 3), 2))
        >>> bool((w[:-1] >= w[1:]).all()), [f.shape for f in fs]
        (True, [(5, 2), (4, 2), (3, 2)])
    """
    import numpy as np

    from ..tensors import CPTensor

    if not isinstance(cp, CPTensor):
        raise TypeError(
            f"normalized_cp_factors: cp must be a CPTensor (e.g. result.model of "
            f"factorch.decomp.cp); got {type(cp).__name__}."
        )
    weights = to_numpy(cp.weights).copy()
    factors = [to_numpy(f).copy() for f in cp.factors]
    for f in factors:
        norms = np.linalg.norm(f, axis=0)
        norms[norms == 0] = 1.0
        f /= norms
        weights *= norms
    absorb = max(range(len(factors)), key=lambda n: (factors[n].shape[0], -n))
    for n, f in enumerate(factors):
        if n != absorb:
            s = np.where(f.sum(axis=0) < 0, -1.0, 1.0)
            f *= s
            factors[absorb] *= s
    s = np.where(weights < 0, -1.0, 1.0)
    weights *= s
    factors[absorb] *= s
    order = np.argsort(-weights, kind="stable")
    return weights[order], [f[:, order] for f in factors]


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"


def _runs(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Contiguous runs ``(label, start, stop)`` of equal labels."""
    runs: list[tuple[str, int, int]] = []
    for i, lab in enumerate(labels):
        if runs and runs[-1][0] == lab:
            runs[-1] = (lab, runs[-1][1], i + 1)
        else:
            runs.append((lab, i, i + 1))
    return runs


def _colors(rank: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if rank <= 10 else "tab20"]
    return [cmap(r % cmap.N) for r in range(rank)]


def _tick_labels(ax: Axes, positions: Sequence[float], texts: Sequence[str]) -> None:
    rotate = len(texts) > 15 or max(len(t) for t in texts) > 3
    ax.set_xticks(positions)
    ax.set_xticklabels(texts, rotation=45 if rotate else 0, ha="right" if rotate else "center")


def _draw_short(ax: Axes, col: Any, color: Any, labels: Sequence[str] | None, bottom: bool) -> None:
    size = col.shape[0]
    ax.bar(range(size), col, width=0.75, color=color)
    ax.set_xlim(-0.6, size - 0.4)
    if bottom and labels is not None:
        _tick_labels(ax, range(size), [_short(str(lab)) for lab in labels])
    elif bottom:
        ax.set_xlabel("index")


def _draw_long(
    ax: Axes, col: Any, color: Any, runs: list[tuple[str, int, int]], bottom: bool
) -> None:
    size = col.shape[0]
    ax.set_xlim(-0.5, size - 0.5)
    if not runs:
        ax.plot(range(size), col, color=color, linewidth=1.0)
        if bottom:
            ax.set_xlabel("index")
        return
    ax.plot(range(size), col, ".", color=color, markersize=2.5, alpha=0.8)
    for k, (_, start, stop) in enumerate(runs):
        if k % 2 == 0:
            ax.axvspan(start - 0.5, stop - 0.5, color="0.5", alpha=0.12, linewidth=0)
        ax.hlines(col[start:stop].mean(), start - 0.5, stop - 0.5, color="black", linewidth=1.8)
    if bottom:
        _tick_labels(
            ax, [(start + stop - 1) / 2 for _, start, stop in runs], [_short(r[0]) for r in runs]
        )


MAX_COMPONENTS = 12  # default cap on the components drawn (one row each)


def _check_args(
    cp: CPTensor,
    labels: Sequence[Sequence[str] | None] | None,
    mode_names: Sequence[str] | None,
    max_components: object,
) -> int:
    fn = "plot_cp_factors"
    n_modes = len(cp.factors)
    if labels is not None and len(labels) != n_modes:
        raise ValueError(f"{fn}: labels needs one entry per mode ({n_modes}); got {len(labels)}.")
    if mode_names is not None and len(mode_names) != n_modes:
        raise ValueError(
            f"{fn}: mode_names needs one name per mode ({n_modes}); got {len(mode_names)}."
        )
    for n, f in enumerate(cp.factors):
        lab = labels[n] if labels is not None else None
        if lab is not None and len(lab) != f.shape[0]:
            raise ValueError(
                f"{fn}: labels[{n}] has {len(lab)} entries but mode {n} has {f.shape[0]} indices."
            )
    if isinstance(max_components, bool) or not isinstance(max_components, int):
        raise TypeError(
            f"{fn}: max_components must be a positive int; got {type(max_components).__name__}."
        )
    if max_components < 1:
        raise ValueError(f"{fn}: max_components must be a positive int; got {max_components}.")
    return max_components


def plot_cp_factors(
    cp: CPTensor,
    *,
    labels: Sequence[Sequence[str] | None] | None = None,
    mode_names: Sequence[str] | None = None,
    title: str | None = None,
    max_components: int = MAX_COMPONENTS,
) -> Figure:
    """Plot the factor loadings of a CP tensor: one row per component, one column per mode.

    Columns are shown normalised (see :func:`normalized_cp_factors`), components ordered by
    weight, one colour per component, a shared vertical scale per mode. Modes of up to 30
    indices are bar charts with one tick label per index. Longer modes are line plots, unless
    their labels form a few contiguous groups (e.g. patient outcome): then each index is a dot,
    the groups are shaded and named on the axis and a black bar marks each group's mean.

    Args:
        cp: the model to show.
        labels: per mode, one label per index (or None for that mode).
        mode_names: one name per mode (column titles).
        title: figure title (default ``"CP factors, rank R"``).
        max_components: draw at most this many components, the strongest by weight (default
            12); when some are left out the title says ``"the 12 strongest of 100 components
            shown"``. Drawing costs time and height per component (a rank-100 figure took 44 s
            and 11,190 pixels).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot; save it with
        :func:`save_figure` or ``fig.savefig``).

    Raises:
        ModuleNotFoundError: matplotlib is not installed (``pip install 'factorch[plot]'``).
        ValueError: ``labels`` or ``mode_names`` of the wrong length; ``max_components < 1``.
        TypeError: ``max_components`` not an int.

    Example:
        >>> from factorch.random import random_cp
        >>> fig = plot_cp_factors(random_cp((20, 5, 4), 15), max_components=4)
        >>> fig.get_suptitle()
        'CP factors, rank 15 (the 4 strongest of 15 components shown)'
    """
    require_matplotlib("plot_cp_factors")
    cap = _check_args(cp, labels, mode_names, max_components)
    weights, factors = normalized_cp_factors(cp)
    full_rank = len(weights)
    rank = min(full_rank, cap)
    weights, factors = weights[:rank], [f[:, :rank] for f in factors]
    n_modes = len(factors)
    colors = _colors(rank)
    sizes = [f.shape[0] for f in factors]
    widths = [2.0 if i > _SHORT else max(1.0, min(1.8, i / 7)) for i in sizes]
    row_h = 1.5 if rank <= 6 else 1.1
    fig = new_figure(max(7.0, 2.8 * sum(widths)), 1.9 + row_h * rank, fn="plot_cp_factors")
    axes = fig.subplots(
        rank,
        n_modes,
        squeeze=False,
        sharex="col",
        sharey="col",
        gridspec_kw={"width_ratios": widths},
    )
    for n, f in enumerate(factors):
        lab = labels[n] if labels is not None else None
        runs = _runs([str(x) for x in lab]) if lab is not None and sizes[n] > _SHORT else []
        runs = runs if 1 < len(runs) <= 20 else []
        for r in range(rank):
            _draw_panel(axes[r, n], f[:, r], colors[r], lab, runs, r == rank - 1)
            if n == 0:
                axes[r, n].set_ylabel(f"component {r + 1}\nweight {weights[r]:.4g}", fontsize=9)
        name = mode_names[n] if mode_names is not None else f"mode {n}"
        axes[0, n].set_title(f"{name} ({sizes[n]})")
    head = title if title is not None else f"CP factors, rank {full_rank}"
    if rank < full_rank:
        head += f" (the {rank} strongest of {full_rank} components shown)"
    fig.suptitle(head, fontsize=13)
    fig.supylabel("loading (unit-norm columns)", fontsize=10)
    return fig


def _draw_panel(
    ax: Axes,
    col: Any,
    color: Any,
    labels: Sequence[str] | None,
    runs: list[tuple[str, int, int]],
    bottom: bool,
) -> None:
    if col.shape[0] <= _SHORT:
        _draw_short(ax, col, color, labels, bottom)
    else:
        _draw_long(ax, col, color, runs, bottom)
    ax.axhline(0.0, color="0.3", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)
    if not bottom:
        ax.tick_params(labelbottom=False)
