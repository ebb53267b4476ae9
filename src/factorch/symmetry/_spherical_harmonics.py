r"""Real spherical harmonics in e3nn's basis, for any degree.

Convention (identical to e3nn >= 0.5, checked entry by entry in the tests): with the polar axis
along ``y``, write ``(X, Y, Z) = (z, x, y)`` and ``X + iY = sin(θ) e^{iφ}``, ``Z = cos(θ)``. Then

.. math::

    Y_{l,m} = \sqrt{2}\,\bar P_l^{|m|}(\cos θ)\cos(mφ)\ (m > 0),\quad
    Y_{l,0} = \bar P_l^0(\cos θ),\quad
    Y_{l,m} = \sqrt{2}\,\bar P_l^{|m|}(\cos θ)\sin(|m|φ)\ (m < 0),

with :math:`\bar P_l^m = \sqrt{\tfrac{2l+1}{4π}\tfrac{(l-m)!}{(l+m)!}} P_l^m` (no Condon--Shortley
phase), so that :math:`\int_{S^2} Y_{l,m} Y_{l',m'} dΩ = δ_{ll'}δ_{mm'}` ("integral"
normalisation). Degree 1 is :math:`\sqrt{3/4π}\,(x, y, z)`, so :math:`D^1(R) = R`.

The harmonics are evaluated as homogeneous polynomials of ``(x, y, z)``: ``sin^m θ e^{imφ}`` is
``(X + iY)^m`` (a two-term recursion) and the normalised Legendre part follows the standard
three-term recursion in ``Z`` and ``r^2``; nothing divides by ``sin θ``, so values and gradients
are exact at the poles and stable to high degree (no factorial overflows).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .._numerics import no_autocast, working_dtype
from ._common import check_choice, check_lmax, check_real_tensor, check_representable

__all__ = ["SHNormalization", "sh_normalization_factors", "spherical_harmonics"]

SHNormalization = Literal["integral", "component", "norm"]
_NORMALIZATIONS = ("integral", "component", "norm")


def sh_normalization_factors(lmax: int, normalization: SHNormalization) -> list[float]:
    """Per-degree factor that turns "integral" harmonics into the requested normalisation.

    "integral": ``∫ Y_lm^2 dΩ = 1``; "component": ``|Y^l(x)|^2 = 2l + 1`` on the unit sphere (each
    component has mean square 1); "norm": ``|Y^l(x)| = 1``.
    """
    if normalization == "integral":
        return [1.0] * (lmax + 1)
    if normalization == "component":
        return [math.sqrt(4 * math.pi)] * (lmax + 1)
    return [math.sqrt(4 * math.pi / (2 * l + 1)) for l in range(lmax + 1)]


@no_autocast
def spherical_harmonics(
    vectors: torch.Tensor,
    lmax: int,
    *,
    normalization: SHNormalization = "integral",
    normalize: bool = True,
) -> torch.Tensor:
    r"""Real spherical harmonics of degrees ``0 ... lmax`` of 3-D vectors (e3nn's basis).

    Args:
        vectors: ``(..., 3)`` real tensor of Cartesian vectors ``(x, y, z)``.
        lmax: the largest degree (``0 <= lmax <= 64``).
        normalization: "integral" (:math:`\int Y_{lm}^2 dΩ = 1`), "component"
            (:math:`|Y^l|^2 = 2l+1`) or "norm" (:math:`|Y^l| = 1`) -- e3nn's three options.
        normalize: evaluate at ``x / |x|`` (the harmonics on the sphere; a zero vector gives
            ``Y^0`` and zeros elsewhere, as in e3nn); ``False`` evaluates the homogeneous
            polynomials, ``Y^l(x) = |x|^l Y^l(x / |x|)`` (a value that overflows the dtype is
            refused).

    Returns:
        ``(..., (lmax + 1)**2)`` tensor, degrees in order, ``m = -l ... l`` within a degree; the
        layout of ``Irreps.spherical_harmonics(lmax)``; dtype and device of ``vectors``.
        Differentiable (polynomials; half precision is evaluated in float32).

    Raises:
        TypeError: ``vectors`` not a real floating tensor.
        ValueError: last dimension not 3, non-finite entries, ``lmax`` out of range, unknown
            ``normalization``.

    Example:
        >>> import torch
        >>> y = spherical_harmonics(torch.tensor([[0.0, 0.0, 2.0]]), 1, normalization="component")
        >>> y
        tensor([[1.0000, 0.0000, 0.0000, 1.7321]])
    """
    fn = "spherical_harmonics"
    vectors = check_real_tensor(vectors, fn, "vectors", last_dim=3)
    lmax = check_lmax(lmax, fn)
    normalization = check_choice(normalization, _NORMALIZATIONS, fn, "normalization")  # type: ignore[assignment]
    if not isinstance(normalize, bool):
        raise TypeError(f"{fn}: normalize must be a bool; got {type(normalize).__name__}.")
    dtype = vectors.dtype
    v = vectors.to(working_dtype(dtype))
    if normalize:
        # exact power-of-two scaling per vector first: |x|^2 can neither under- nor overflow
        _, exponent = torch.frexp(v.detach().abs().amax(dim=-1, keepdim=True))
        v = torch.nn.functional.normalize(torch.ldexp(v, -exponent), dim=-1)
    out = _real_sh(v, lmax)
    factors = sh_normalization_factors(lmax, normalization)
    if normalization != "integral":
        scale = torch.cat(
            [
                torch.full((2 * l + 1,), factors[l], dtype=out.dtype, device=out.device)
                for l in range(lmax + 1)
            ]
        )
        out = out * scale
    out = out.to(dtype)
    if not normalize:
        check_representable(out, fn, "polynomial value |x|^l Y^l")
    return out


def _real_sh(v: torch.Tensor, lmax: int) -> torch.Tensor:
    """ "integral"-normalised real SH polynomials of ``v`` (e3nn axes), ``(..., (lmax+1)^2)``."""
    # e3nn's basis is the textbook real basis with polar axis y: (X, Y, Z) = (z, x, y).
    big_x, big_y, big_z = v[..., 2], v[..., 0], v[..., 1]
    r2 = big_x * big_x + big_y * big_y + big_z * big_z
    one = torch.ones_like(big_z)
    # cos/sin parts: C_m + i S_m = (X + iY)^m
    cos_m, sin_m = [one], [torch.zeros_like(big_z)]
    for _ in range(lmax):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(big_x * c - big_y * s)
        sin_m.append(big_x * s + big_y * c)
    # normalised associated Legendre parts Q_l^m (without sin^m), homogeneous in (Z, r^2)
    legendre: dict[tuple[int, int], torch.Tensor] = {}
    pmm = 1.0 / math.sqrt(4 * math.pi)
    for m in range(lmax + 1):
        if m > 0:
            pmm *= math.sqrt((2 * m + 1) / (2 * m))
        legendre[(m, m)] = one * pmm
        if m + 1 <= lmax:
            legendre[(m + 1, m)] = math.sqrt(2 * m + 3) * big_z * legendre[(m, m)]
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            legendre[(l, m)] = a * (big_z * legendre[(l - 1, m)] - b * r2 * legendre[(l - 2, m)])
    cols = []
    sqrt2 = math.sqrt(2.0)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            q = legendre[(l, abs(m))]
            if m > 0:
                cols.append(sqrt2 * q * cos_m[m])
            elif m < 0:
                cols.append(sqrt2 * q * sin_m[-m])
            else:
                cols.append(q)
    return torch.stack(cols, dim=-1)
