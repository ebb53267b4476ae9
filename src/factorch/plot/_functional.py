"""Figures for functional (continuous-indexed) models: latent functions and 2-D maps."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..completion.functional import ContinuousData, FunctionalTensor
from ._common import new_figure, require_matplotlib, to_numpy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_functional_map", "plot_latent_functions"]

MAX_FUNCTIONS = 8  # latent functions drawn per mode (the rest are listed in the title)
MAX_GRID = 400


def _check_model(model: object, fn: str) -> FunctionalTensor:
    if not isinstance(model, FunctionalTensor):
        raise TypeError(f"{fn}: model must be a FunctionalTensor; got {type(model).__name__}.")
    return model


def _level(level: object, fn: str) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"{fn}: level must be a number in (0, 1); got {level!r}.")
    return float(level)


def plot_latent_functions(
    model: FunctionalTensor,
    *,
    points: int = 200,
    level: float = 0.95,
    mode_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """The posterior of every mode's latent functions with ``level`` credible bands.

    One panel per mode; each latent function is a curve (posterior mean) over a grid spanning
    the mode's training coordinates (plus 5% on each side, where the bands widen towards the
    prior), with a shaded central ``level`` band; ticks at the bottom mark the training
    coordinates. Functions are identified only up to scale (and, for Tucker, rotation); CP
    functions are drawn as fitted.

    Args:
        model: a :class:`~factorch.completion.functional.FunctionalTensor`.
        points: grid points per panel (2 ... 400).
        level: credible level of the bands.
        mode_names: panel titles (default: the model's names with units).
        title: figure title.

    Returns:
        A matplotlib ``Figure``.

    Raises:
        TypeError: ``model`` is not a FunctionalTensor.
        ValueError: bad ``points``, ``level`` or names.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> import torch
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> data = ContinuousData(torch.rand(60, 2, dtype=torch.float64), torch.randn(60))
        >>> fig = plot_latent_functions(funbat(data, 2, max_iter=3).model)
        >>> len(fig.axes)
        2
    """
    fn = "plot_latent_functions"
    model = _check_model(model, fn)
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_GRID:
        raise ValueError(f"{fn}: points must be an int in [2, {MAX_GRID}]; got {points!r}.")
    z = statistics.NormalDist().inv_cdf(0.5 + 0.5 * _level(level, fn))
    names = _mode_names(model, mode_names, fn)
    require_matplotlib(fn)
    k = model.ndim
    fig = new_figure(4.2 * min(k, 4), 3.2 * ((k + 3) // 4), fn=fn)
    axes = fig.subplots((k + 3) // 4, min(k, 4), squeeze=False).ravel()
    for mode, f in enumerate(model.factors):
        ax = axes[mode]
        lo, hi = float(f.coords.min()), float(f.coords.max())
        pad = 0.05 * (hi - lo)
        grid = torch.linspace(lo - pad, hi + pad, points, dtype=torch.float64)
        mean, std = model.latent(mode, grid)
        x = to_numpy(grid)
        shown = min(f.rank, MAX_FUNCTIONS)
        for r in range(shown):
            m, s = to_numpy(mean[:, r]), to_numpy(std[:, r])
            (line,) = ax.plot(x, m, lw=1.5, label=f"u{r + 1}")
            ax.fill_between(x, m - z * s, m + z * s, color=line.get_color(), alpha=0.2, lw=0)
        ax.plot(
            to_numpy(f.coords),
            [0.0] * f.coords.numel(),
            "|",
            color="0.3",
            ms=6,
            transform=ax.get_xaxis_transform(),
        )
        more = f" ({shown} of {f.rank})" if shown < f.rank else ""
        ax.set_title(names[mode] + more, fontsize=10)
        if f.rank > 1:
            ax.legend(fontsize=7, loc="best")
    for ax in axes[k:]:
        ax.set_visible(False)
    fig.suptitle(title or f"latent functions, {level:.0%} bands ({model.structure})", fontsize=11)
    return fig


def _mode_names(model: FunctionalTensor, names: Sequence[str] | None, fn: str) -> list[str]:
    if names is None:
        out = []
        for n, u in zip(model.names or (), model.units or ()):
            out.append(f"{n} [{u}]" if u else str(n))
        return out
    if isinstance(names, str) or len(names) != model.ndim:
        raise ValueError(f"{fn}: mode_names must hold one name per mode ({model.ndim}).")
    return [str(n) for n in names]


def _slice_coordinates(
    data: ContinuousData, modes: tuple[int, int], at: Sequence[float] | None, fn: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed value of every other mode (given, or its most frequent coordinate) and the
    mask of the entries at those values."""
    k = data.ndim
    fixed = torch.zeros(k, dtype=torch.float64)
    keep = torch.ones(len(data), dtype=torch.bool)
    others = [m for m in range(k) if m not in modes]
    if at is not None and len(at) != len(others):
        raise ValueError(
            f"{fn}: at must give one coordinate per other mode ({len(others)}); got {len(at)}."
        )
    for i, m in enumerate(others):
        col = data.coords[:, m].cpu()
        if at is None:
            values, counts = torch.unique(col, return_counts=True)
            value = float(values[counts.argmax()])
        else:
            value = float(at[i])
        fixed[m] = value
        keep &= col == value
    return fixed, keep


def plot_functional_map(
    model: FunctionalTensor,
    data: ContinuousData,
    *,
    modes: tuple[int, int] = (0, 1),
    at: Sequence[float] | None = None,
    grid: int = 80,
    title: str | None = None,
) -> Figure:
    """Predicted versus observed values over two coordinates.

    Three panels over the plane of ``modes``: the observed values of ``data`` as coloured
    points, the model's predictive mean on a ``grid x grid`` raster with the same colour scale
    (the observed points outlined on top), and the predictive standard deviation. With more than
    two modes the others are held at ``at`` (default: each one's most frequent coordinate in
    ``data``) and only the entries at those coordinates are shown.

    Args:
        model: the fitted model.
        data: observed entries (e.g. the test part).
        modes: the two modes spanning the map.
        at: coordinates of the other modes.
        grid: raster points per axis (2 ... 400).
        title: figure title.

    Returns:
        A matplotlib ``Figure``.

    Raises:
        TypeError: wrong model or data types.
        ValueError: a model with one mode, bad ``modes``, ``at`` or ``grid``, data of another
            order.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> import torch
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> data = ContinuousData(torch.rand(60, 2, dtype=torch.float64), torch.randn(60))
        >>> fig = plot_functional_map(funbat(data, 2, max_iter=3).model, data, grid=20)
        >>> len(fig.axes)  # three panels and two colour bars
        5
    """
    fn = "plot_functional_map"
    model = _check_model(model, fn)
    if not isinstance(data, ContinuousData):
        raise TypeError(f"{fn}: data must be a ContinuousData; got {type(data).__name__}.")
    if model.ndim < 2 or data.ndim != model.ndim:
        raise ValueError(
            f"{fn}: needs a model of at least 2 modes and data of the same order; got "
            f"{model.ndim} and {data.ndim}."
        )
    a, b = (int(m) for m in modes)
    if not (0 <= a < model.ndim and 0 <= b < model.ndim) or a == b:
        raise ValueError(f"{fn}: modes must be two distinct modes of the model; got {modes!r}.")
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= MAX_GRID:
        raise ValueError(f"{fn}: grid must be an int in [2, {MAX_GRID}]; got {grid!r}.")
    fixed, keep = _slice_coordinates(data, (a, b), at, fn)
    require_matplotlib(fn)
    ca = torch.linspace(
        float(model.factors[a].coords.min()),
        float(model.factors[a].coords.max()),
        grid,
        dtype=torch.float64,
    )
    cb = torch.linspace(
        float(model.factors[b].coords.min()),
        float(model.factors[b].coords.max()),
        grid,
        dtype=torch.float64,
    )
    ga, gb = torch.meshgrid(ca, cb, indexing="ij")
    query = fixed.expand(grid * grid, -1).clone()
    query[:, a], query[:, b] = ga.reshape(-1), gb.reshape(-1)
    pred = model.predict(query)
    mean = to_numpy(pred.mean.reshape(grid, grid))
    std = to_numpy(pred.std.reshape(grid, grid))
    obs = data.select(keep.to(data.device))
    xa, xb, yv = to_numpy(obs.coords[:, a]), to_numpy(obs.coords[:, b]), to_numpy(obs.values)
    vmin = float(min(mean.min(), yv.min())) if len(obs) else float(mean.min())
    vmax = float(max(mean.max(), yv.max())) if len(obs) else float(mean.max())
    fig = new_figure(13.0, 4.0, fn=fn)
    ax_obs, ax_pred, ax_std = fig.subplots(1, 3)
    extent = (float(cb[0]), float(cb[-1]), float(ca[0]), float(ca[-1]))
    ax_obs.scatter(xb, xa, c=yv, s=12, cmap="viridis", vmin=vmin, vmax=vmax)
    ax_obs.set_title(f"observed ({len(obs)} entries)", fontsize=10)
    im = ax_pred.imshow(
        mean, origin="lower", extent=extent, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax
    )
    ax_pred.scatter(
        xb, xa, c=yv, s=12, cmap="viridis", vmin=vmin, vmax=vmax, edgecolors="w", linewidths=0.5
    )
    ax_pred.set_title("predicted mean (observed on top)", fontsize=10)
    fig.colorbar(im, ax=[ax_obs, ax_pred], shrink=0.85)
    im2 = ax_std.imshow(std, origin="lower", extent=extent, aspect="auto", cmap="magma")
    ax_std.plot(xb, xa, ".", color="w", ms=2)
    ax_std.set_title("predictive std of the mean", fontsize=10)
    fig.colorbar(im2, ax=ax_std, shrink=0.85)
    names = model.names or ()
    for ax in (ax_obs, ax_pred, ax_std):
        ax.set_xlabel(names[b])
        ax.set_ylabel(names[a])
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    held = [f"{names[m]}={float(fixed[m]):.4g}" for m in range(model.ndim) if m not in (a, b)]
    suffix = f" at {', '.join(held)}" if held else ""
    fig.suptitle(title or f"predicted vs observed{suffix}", fontsize=11)
    return fig
