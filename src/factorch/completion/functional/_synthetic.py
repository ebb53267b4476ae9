"""The synthetic continuous-indexed tensor of the FunBaT paper's first experiment."""

from __future__ import annotations

import math

import torch

from ..._checks import check_generator, check_positive_int
from ._data import ContinuousData

__all__ = ["funbat_synthetic"]


def funbat_synthetic(
    *, grids: int = 6, size: int = 15, generator: torch.Generator | None = None
) -> tuple[ContinuousData, tuple[torch.Tensor, torch.Tensor]]:
    """Rank-one functional data ``y = u_1(x) u_2(z)`` sampled on random grids (FunBaT, §5.1).

    The generator of the reference notebook (``simu_data_generate_CP_r1.ipynb``):
    ``u_1(x) = sin^2(2 pi x) cos(2 pi x)``, ``u_2(z) = e^{-2 z} sin(1.5 pi z)``, evaluated without
    noise on ``grids`` random ``size x size`` grids (each grid's ``size`` coordinates per mode
    uniform on ``[0, 1)``), then each mode min-max scaled to ``[0, 1]`` (the true functions are
    evaluated at the raw coordinates, as in the notebook). Defaults: 1,350 entries, 90 distinct
    coordinates per mode; the paper splits them 50/50 at random.

    Args:
        grids: number of random grids.
        size: coordinates per mode and grid.
        generator: random source.

    Returns:
        ``(data, (u1, u2))``: the data (float64) and the true functions' values at every entry.

    Raises:
        TypeError: ``grids`` or ``size`` that is not an int, or a bad generator.
        ValueError: ``grids`` or ``size`` below 1.

    Example:
        >>> import torch
        >>> data, (u1, u2) = funbat_synthetic(generator=torch.Generator().manual_seed(0))
        >>> len(data), bool(torch.equal(data.values, u1 * u2))
        (1350, True)
    """
    fn = "funbat_synthetic"
    grids = check_positive_int(grids, fn, "grids")
    size = check_positive_int(size, fn, "size")
    check_generator(generator, fn)
    xs, zs = [], []
    for _ in range(grids):
        a = torch.sort(torch.rand(size, generator=generator, dtype=torch.float64)).values
        b = torch.sort(torch.rand(size, generator=generator, dtype=torch.float64)).values
        x, z = torch.meshgrid(a, b, indexing="ij")
        xs.append(x.reshape(-1))
        zs.append(z.reshape(-1))
    x, z = torch.cat(xs), torch.cat(zs)
    u1 = torch.sin(2 * math.pi * x) ** 2 * torch.cos(2 * math.pi * x)
    u2 = torch.exp(-2 * z) * torch.sin(1.5 * math.pi * z)

    def unit(t: torch.Tensor) -> torch.Tensor:
        span = t.max() - t.min()
        return (t - t.min()) / (span if span > 0 else 1.0)

    coords = torch.stack([unit(x), unit(z)], dim=1)
    return ContinuousData(coords, u1 * u2, ("x", "z")), (u1, u2)
