"""A slow, obviously correct spectral convolution: explicit DFT matrices in float64."""

from __future__ import annotations

import math

import torch

from factorch.nn.spectral import kept_frequencies

# Every weight format with a small rank that fits the test layers: (format, options).
FORMATS = [
    ("dense", {}),
    ("cp", {"rank": 3}),
    ("tucker", {"rank": 2}),
    ("tt", {"rank": 2}),
    ("tr", {"rank": 2}),
    ("lowrank", {"rank": 2}),
]


def explicit_dft_conv(
    x: torch.Tensor, weight: torch.Tensor, modes: tuple[int, ...], *, separable: bool = False
) -> torch.Tensor:
    r"""``y(x) = (1/N) Re sum_{k kept} c_k W(k) X(k) e^{2 pi i k.x/n}``, ``X(k) = sum_x x e^{-..}``.

    ``c_k = 2`` for the last dimension's frequencies ``0 < k < n/2`` (their negative partners are
    implied by Hermitian symmetry), ``1`` for ``k = 0`` and ``k = n/2``.
    """
    grid = x.shape[2:]
    d = len(grid)
    x = x.detach().to(torch.complex128)
    w = weight.detach().to(torch.complex128)
    freqs = [
        torch.tensor(kept_frequencies(m, last=j == d - 1), dtype=torch.float64)
        for j, m in enumerate(modes)
    ]
    points = [torch.arange(n, dtype=torch.float64) for n in grid]
    fwd = [
        torch.exp(-2j * math.pi * f[:, None] * p[None, :] / n)
        for f, p, n in zip(freqs, points, grid)
    ]
    inv = [
        torch.exp(2j * math.pi * p[:, None] * f[None, :] / n)
        for f, p, n in zip(freqs, points, grid)
    ]
    n_last = grid[-1]
    c = torch.tensor(
        [1.0 if k == 0 or 2 * k == n_last else 2.0 for k in kept_frequencies(modes[-1], last=True)],
        dtype=torch.float64,
    )
    inv[-1] = inv[-1] * c
    sp, fr = "xyz"[:d], "uvw"[:d]
    x_hat = torch.einsum(
        f"bc{sp}," + ",".join(k + s for k, s in zip(fr, sp)) + f"->bc{fr}", x, *fwd
    )
    y_hat = x_hat * w if separable else torch.einsum(f"bi{fr},io{fr}->bo{fr}", x_hat, w)
    y = torch.einsum(
        f"bo{fr}," + ",".join(s + k for k, s in zip(fr, sp)) + f"->bo{sp}", y_hat, *inv
    )
    return y.real / math.prod(grid)
