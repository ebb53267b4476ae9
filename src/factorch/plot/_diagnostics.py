"""Convergence curves, rank-scan curves and Tucker core heat maps."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._common import new_figure, require_matplotlib, to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..decomp import DecompositionResult
    from ..tensors import TuckerTensor

__all__ = ["plot_convergence", "plot_rank_scan", "plot_tucker_core"]

_MAX_TICKS = 30  # label every index only up to this many per axis


def plot_convergence(
    result: DecompositionResult[Any] | Sequence[float], *, title: str | None = None
) -> Figure:
    """Relative error per iteration, and how much it changed at each iteration.

    The left panel shows the error (log scale when it spans more than a decade); the right one,
    drawn when there are at least two iterations, the absolute change ``|e_k - e_{k-1}|`` on a
    log scale, the quantity stopping tolerances are compared with.

    Args:
        result: a :class:`~factorch.decomp.DecompositionResult` (its ``errors``) or a sequence
            of errors.
        title: figure title (default ``"Convergence"``).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).

    Raises:
        ModuleNotFoundError: matplotlib is not installed (``pip install 'factorch[plot]'``).
        ValueError: no errors to plot.

    Example:
        >>> fig = plot_convergence([0.5, 0.2, 0.1], title="CP-ALS")
        >>> len(fig.get_axes())
        2
    """
    require_matplotlib("plot_convergence")
    import numpy as np

    errors = np.asarray(
        [float(e) for e in (result.errors if hasattr(result, "errors") else result)]
    )
    if errors.size == 0:
        raise ValueError("plot_convergence: there are no errors to plot (empty sequence).")
    two = errors.size >= 2
    fig = new_figure(10.0 if two else 6.0, 4.2, fn="plot_convergence")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    iters = np.arange(1, errors.size + 1)
    marker = "o" if errors.size <= 30 else None
    ax = axes[0]
    ax.plot(iters, errors, marker=marker, markersize=3, linewidth=1.5)
    if errors.min() > 0 and errors.max() > 10 * errors.min():
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative error  ‖X − X̂‖ / ‖X‖")
    ax.set_title("error", fontsize=11)
    if two:
        change = np.abs(np.diff(errors))
        ax = axes[1]
        positive = change > 0
        ax.plot(iters[1:][positive], change[positive], marker=marker, markersize=3, color="C1")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("|change in relative error|")
        ax.set_title("change per iteration", fontsize=11)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    note = f"final error {errors[-1]:.4g} after {errors.size} iteration"
    note += "s" if two else ""
    if hasattr(result, "converged"):
        note += ", converged" if result.converged else ", not converged"
    head = title if title is not None else "Convergence"
    fig.suptitle(f"{head}\n{note}", fontsize=12)
    return fig


def plot_rank_scan(scan: Any, *, title: str | None = None) -> Figure:
    """Fit and core consistency against rank, with the recommended rank marked.

    Args:
        scan: a :class:`~factorch.decomp.RankScan` (``ranks``, ``errors`` per start,
            ``best_errors``, ``corcondia``, ``recommended``, ``reason``).
        title: figure title (default ``"CP rank scan"``).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).

    Raises:
        ModuleNotFoundError: matplotlib is not installed (``pip install 'factorch[plot]'``).

    Example:
        >>> import torch
        >>> from factorch.decomp import rank_scan
        >>> from factorch.random import random_cp
        >>> x = random_cp((6, 5, 4), 2, generator=torch.Generator().manual_seed(0)).to_dense()
        >>> fig = plot_rank_scan(rank_scan(x, (1, 2, 3), starts=1, max_iter=20))
        >>> fig.get_axes()[1].get_ylabel()
        'core consistency (%)'
    """
    require_matplotlib("plot_rank_scan")
    ranks = list(scan.ranks)
    fig = new_figure(10.0, 4.6, fn="plot_rank_scan")
    ax_err, ax_cc = fig.subplots(1, 2)
    for r, errs in zip(ranks, scan.errors):
        ax_err.scatter([r] * len(errs), errs, s=14, color="0.6", zorder=2)
    ax_err.plot(ranks, scan.best_errors, marker="o", color="C0", label="best start", zorder=3)
    ax_err.scatter([], [], s=14, color="0.6", label="each start")
    ax_err.set_xlabel("rank")
    ax_err.set_ylabel("relative error  ‖X − X̂‖ / ‖X‖")
    ax_err.set_title("fit")
    ax_err.legend(frameon=False)
    floor = -100.0
    shown = [max(float(c), floor) for c in scan.corcondia]
    ax_cc.plot(ranks, shown, marker="o", color="C1")
    pinned = 0
    for r, c in zip(ranks, scan.corcondia):
        if c < floor:  # off the scale: pin to the floor and print the value
            ax_cc.plot([r], [floor], marker="v", color="C3", markersize=8)
            text = f"{c:.0f}%" if c > -1e4 else f"{c:.0e}%".replace("e+0", "e")
            ax_cc.annotate(
                text,
                xy=(r, floor),
                xytext=(0, 9 if pinned % 2 == 0 else 20),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color="C3",
            )
            pinned += 1
    ax_cc.axhline(100.0, color="0.5", linewidth=0.8, linestyle=":")
    ax_cc.set_xlabel("rank")
    ax_cc.set_ylabel("core consistency (%)")
    ax_cc.set_title("core consistency (CORCONDIA)")
    if pinned:
        ax_cc.text(
            0.99,
            0.93,
            "▼ below -100% (value printed)",
            transform=ax_cc.transAxes,
            fontsize=8,
            color="C3",
            ha="right",
        )
    ax_cc.set_ylim(min(min(shown), 0.0) - 8.0, 108.0)
    for ax in (ax_err, ax_cc):
        ax.axvline(scan.recommended, color="C2", linestyle="--", linewidth=1.2)
        if len(ranks) <= _MAX_TICKS:
            ax.set_xticks(ranks)
        ax.grid(True, alpha=0.3)
    ax_cc.annotate(
        f"recommended: {scan.recommended}",
        xy=(scan.recommended, 100.0),
        xytext=(4, -14),
        textcoords="offset points",
        color="C2",
    )
    fig.suptitle(title if title is not None else "CP rank scan", fontsize=13)
    fig.supxlabel("\n".join(textwrap.wrap(str(scan.reason), 120)), fontsize=9)
    return fig


def plot_tucker_core(
    tucker: TuckerTensor, *, mode_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """Heat map of a Tucker core (diverging colours centred on 0, one shared scale).

    A matrix core is one map; a 3-way core is drawn as its frontal slices ``G[:, :, k]`` side by
    side (up to 12, else its mode-0 unfolding); higher-order cores as their mode-0 unfolding.
    Entries are printed in the cells when a map has at most 12 x 12 of them, and every index
    is labelled on an axis of at most 30.

    Args:
        tucker: the model whose core to show.
        mode_names: one name per mode (axis labels).
        title: figure title (default ``"Tucker core (r0×r1×...)"``).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).

    Raises:
        ModuleNotFoundError: matplotlib is not installed (``pip install 'factorch[plot]'``).
        ValueError: ``mode_names`` of the wrong length.

    Example:
        >>> import torch
        >>> from factorch.random import random_tucker
        >>> t = random_tucker((5, 4, 3), (3, 2, 2), generator=torch.Generator().manual_seed(0))
        >>> plot_tucker_core(t).get_suptitle()
        'Tucker core (3×2×2)'
    """
    require_matplotlib("plot_tucker_core")
    import numpy as np

    core = to_numpy(tucker.core)
    names = list(mode_names) if mode_names is not None else [f"mode {n}" for n in range(core.ndim)]
    if len(names) != core.ndim:
        raise ValueError(f"plot_tucker_core: mode_names needs {core.ndim} names; got {len(names)}.")
    if core.ndim == 1:
        core = core[:, None]
        names = [names[0], ""]
    if core.ndim == 3 and core.shape[2] <= 12:
        panels = [(core[:, :, k], f"{names[2]} component {k + 1}") for k in range(core.shape[2])]
        xlabel = f"{names[1]} component"
    elif core.ndim == 2:
        panels = [(core, "")]
        xlabel = f"{names[1]} component"
    else:
        panels = [(core.reshape(core.shape[0], -1), "mode-0 unfolding")]
        xlabel = "component of " + " × ".join(names[1:]) + " (row-major)"
    vmax = float(np.abs(core).max()) or 1.0
    n = len(panels)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = new_figure(max(5.0, 2.8 * cols + 1.2), 2.8 * rows + 1.0, fn="plot_tucker_core")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    for ax, (mat, label) in zip(axes, panels):
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_title(label, fontsize=10)
        for size, set_ticks in ((mat.shape[1], ax.set_xticks), (mat.shape[0], ax.set_yticks)):
            if size <= _MAX_TICKS:  # beyond, matplotlib's own locator keeps the labels legible
                set_ticks(range(size), [str(j + 1) for j in range(size)])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{names[0]} component")
        if mat.shape[0] <= 12 and mat.shape[1] <= 12:
            for (i, j), v in np.ndenumerate(mat):
                strong = abs(v) > 0.6 * vmax
                ax.text(
                    j,
                    i,
                    f"{v:.3g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if strong else "black",
                )
    for ax in axes[n:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:n]), label="core entry", shrink=0.9)
    shape = "×".join(str(s) for s in tucker.core.shape)
    fig.suptitle(title if title is not None else f"Tucker core ({shape})", fontsize=13)
    return fig
