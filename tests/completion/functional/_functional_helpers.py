"""Data and references shared by the functional-completion tests."""

from __future__ import annotations

import torch

from factorch.completion.functional import ContinuousData

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dense_gp(kernel, x, y, noise, at):
    """Exact GP posterior mean and variance at ``at`` (kernel-matrix formulas, float64)."""
    k = kernel.covariance(x, x) + noise * torch.eye(x.numel(), dtype=F64)
    ks = kernel.covariance(at, x)
    mean = ks @ torch.linalg.solve(k, y.to(F64))
    var = torch.diagonal(kernel.covariance(at, at) - ks @ torch.linalg.solve(k, ks.T))
    return mean, var


def grid_tucker(
    seed: int = 0, n_axis: int = 12, frac: float = 0.6, noise: float = 0.1, rank: int = 2
) -> tuple[ContinuousData, torch.Tensor]:
    """Smooth 3-mode Tucker data on a random grid of ``n_axis`` coordinates per mode, a random
    ``frac`` of the grid observed, Gaussian noise of ``noise`` times the signal's std.

    Returns the data and the noise-free values."""
    g = gen(seed)
    axes = [torch.rand(n_axis, generator=g, dtype=F64) for _ in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    t = grid[torch.rand(grid.shape[0], generator=g) < frac]
    u = [
        torch.stack([torch.sin(3 * t[:, k] + k), torch.cos(5 * t[:, k] * (k + 1))], 1)[:, :rank]
        for k in range(3)
    ]
    w = torch.randn(rank, rank, rank, generator=g, dtype=F64)
    f = torch.einsum("abc,na,nb,nc->n", w, *u)
    y = f + noise * f.std() * torch.randn(f.shape[0], generator=g, dtype=F64)
    return ContinuousData(t, y), f
