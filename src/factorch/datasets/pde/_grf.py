"""Gaussian random fields: periodic (Fourier) and Neumann (cosine) Karhunen--Loève expansions.

Both expand the field in the eigenfunctions of the Laplacian with coefficients drawn for a fixed
set of modes (``max_modes`` per dimension) that does not depend on the grid: the same generator
state gives the *same function* at every resolution, sampled at that grid's points (band-limited
to what the grid resolves). That is what zero-shot super-resolution tests need.

References: Li et al., "Fourier neural operator for parametric partial differential equations"
(ICLR 2021), whose data scripts draw these fields; Lord, Powell and Shardlow, "An introduction to
computational stochastic PDEs" (2014), ch. 7 (KL expansions of random fields).
"""

from __future__ import annotations

import math

import torch

from ..._checks import check_positive_int

__all__ = ["neumann_grf", "periodic_grf"]


def _wavenumbers(modes: int) -> torch.Tensor:
    """Integer frequencies ``-modes .. modes`` (centred order)."""
    return torch.arange(-modes, modes + 1, dtype=torch.float64)


def periodic_grf(
    n_samples: int,
    resolution: int,
    *,
    dims: int,
    alpha: float,
    tau: float,
    sigma: float,
    max_modes: int,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    r"""Mean-zero periodic Gaussian random fields on the unit torus, sampled on a uniform grid.

    .. math::
        u(x) = \sum_{0 < |k|_\infty \le K} c_k \zeta_k e^{2\pi i k\cdot x},\qquad
        c_k = \sqrt2\,\sigma\,(4\pi^2|k|^2 + \tau^2)^{-\alpha/2},

    with ``zeta_{-k} = conj(zeta_k)``, ``E|zeta_k|^2 = 1`` (so ``u`` is real), i.e. covariance
    ``2 sigma^2 (-Delta + tau^2)^(-alpha)`` without the constant mode: the distribution of the
    FNO scripts' ``GaussianRF``. ``K = min(max_modes, (resolution - 1) // 2)``: the modes the grid
    resolves without its Nyquist frequency. The coefficients are drawn on the CPU from
    ``generator`` for all ``|k| <= max_modes`` whatever the resolution.

    A building block of the generators, which check the physical parameters; this checks the
    counts and the generator.

    Args:
        n_samples: number of fields.
        resolution: grid points per dimension (``x_j = j / resolution``).
        dims: number of spatial dimensions.
        alpha: smoothness exponent of the covariance.
        tau: inverse length scale.
        sigma: amplitude.
        max_modes: the highest frequency drawn in each dimension.
        generator: CPU generator the coefficients are drawn from.
        device: where the fields are assembled.

    Returns:
        ``(n_samples, resolution, ..., resolution)`` float64 on ``device``.

    Raises:
        TypeError: a count that is not an int, or ``generator`` not a ``torch.Generator``.
        ValueError: a count below 1.

    Example:
        >>> u = periodic_grf(2, 16, dims=2, alpha=2.5, tau=7.0, sigma=1.0, max_modes=6,
        ...                  generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
        >>> u.shape, bool(u.mean(dim=(1, 2)).abs().max() < 1e-12)  # mean zero: no constant mode
        (torch.Size([2, 16, 16]), True)
    """
    _check_counts(
        "periodic_grf",
        generator,
        n_samples=n_samples,
        resolution=resolution,
        dims=dims,
        max_modes=max_modes,
    )
    m = max_modes
    shape = (n_samples,) + (2 * m + 1,) * dims
    # Real white noise -> Hermitian unit-variance coefficients on the (2m+1)^d block.
    noise = torch.randn(shape, generator=generator, dtype=torch.float64).to(device)
    axes = tuple(range(1, dims + 1))
    zeta = torch.fft.fftn(noise, dim=axes, norm="ortho")
    zeta = torch.fft.fftshift(zeta, dim=axes)  # index j <-> frequency j - m
    k = _wavenumbers(m).to(device)
    grids = torch.meshgrid(*([k] * dims), indexing="ij")
    k2 = torch.stack(grids).pow(2).sum(0)
    coeff = math.sqrt(2.0) * sigma * (4 * math.pi**2 * k2 + tau**2) ** (-alpha / 2)
    coeff[(m,) * dims] = 0.0
    c = zeta * coeff
    keep = min(m, (resolution - 1) // 2)
    block = c[(slice(None),) + (slice(m - keep, m + keep + 1),) * dims]
    # Place frequencies -keep..keep at their FFT positions of the resolution grid.
    full = torch.zeros((n_samples,) + (resolution,) * dims, dtype=c.dtype, device=device)
    idx = torch.cat(
        [
            torch.arange(resolution - keep, resolution, device=device),
            torch.arange(0, keep + 1, device=device),
        ]
    )
    index: tuple[slice | torch.Tensor, ...] = (slice(None),)
    index += tuple(torch.meshgrid(*([idx] * dims), indexing="ij"))
    full[index] = block
    field = torch.fft.ifftn(full, dim=axes, norm="forward")
    return field.real.contiguous()


def neumann_grf(
    n_samples: int,
    resolution: int,
    *,
    alpha: float,
    tau: float,
    max_modes: int,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    r"""Mean-zero 2-D Gaussian random fields with zero Neumann conditions on the unit square.

    .. math::
        u(x, y) = \sum_{(k_1, k_2) \ne 0,\ k_j < K} \tau^{\alpha - 1}
        (\pi^2 |k|^2 + \tau^2)^{-\alpha/2} \xi_k \cos(\pi k_1 x) \cos(\pi k_2 y),

    ``xi_k`` i.i.d. standard normal (the cosine-basis KL expansion of the FNO Darcy script
    ``GRF.m``: covariance ``(-Delta + tau^2)^(-alpha)`` with Neumann conditions, up to the
    constant ``tau^(2 alpha - 2)``), sampled at the nodes ``x_j = j / (resolution - 1)``
    (boundary included). ``K = max_modes`` whatever the resolution, so a generator state gives
    one function at every resolution.

    A building block of the generators, which check the physical parameters; this checks the
    counts and the generator.

    Args:
        n_samples: number of fields.
        resolution: grid nodes per dimension, boundary included.
        alpha: smoothness exponent of the covariance.
        tau: inverse length scale.
        max_modes: the number ``K`` of cosine modes per dimension.
        generator: CPU generator the coefficients are drawn from.
        device: where the fields are assembled.

    Returns:
        ``(n_samples, resolution, resolution)`` float64 on ``device``.

    Raises:
        TypeError: a count that is not an int, or ``generator`` not a ``torch.Generator``.
        ValueError: a count below 1, or ``resolution`` below 2 (the grid includes both ends).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> coarse = neumann_grf(1, 9, alpha=2.0, tau=3.0, max_modes=8, generator=gen,
        ...                      device=torch.device("cpu"))
        >>> gen = torch.Generator().manual_seed(0)
        >>> fine = neumann_grf(1, 17, alpha=2.0, tau=3.0, max_modes=8, generator=gen,
        ...                    device=torch.device("cpu"))
        >>> torch.allclose(fine[:, ::2, ::2], coarse)  # one function at every resolution
        True
    """
    _check_counts(
        "neumann_grf", generator, n_samples=n_samples, resolution=resolution, max_modes=max_modes
    )
    if resolution < 2:
        raise ValueError(
            f"neumann_grf: resolution must be at least 2 (the nodes include both ends); "
            f"got {resolution}."
        )
    k = torch.arange(max_modes, dtype=torch.float64)
    xi = torch.randn((n_samples, max_modes, max_modes), generator=generator, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    coeff = tau ** (alpha - 1) * (math.pi**2 * k2 + tau**2) ** (-alpha / 2)
    coeff[0, 0] = 0.0
    lam = (xi * coeff).to(device)
    nodes = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64, device=device)
    basis = torch.cos(math.pi * nodes[:, None] * k.to(device)[None, :])  # (resolution, K)
    return basis @ lam @ basis.mT


def _check_counts(fn: str, generator: object, **counts: int) -> None:
    for name, value in counts.items():
        check_positive_int(value, fn, name)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{fn}: generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)); "
            f"got {type(generator).__name__}."
        )
