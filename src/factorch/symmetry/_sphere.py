r"""Separable tables for spherical signals: SH <-> 2-D Fourier series, SH <-> S² grids (internal).

A signal :math:`f = \sum_{l \le L} \sum_m x_{lm} Y_{lm}` in the basis of
:func:`spherical_harmonics` is written in the spherical coordinates of its polar axis
(:math:`θ` from ``y``, :math:`φ` in the ``z``--``x`` plane, e3nn's convention):
:math:`Y_{lm}(θ, φ) = T_{l|m|}(θ)\, Φ_m(φ)` with :math:`Φ_m = \sqrt2 \cos mφ` (``m > 0``),
:math:`1` (``m = 0``), :math:`\sqrt2 \sin |m| φ` (``m < 0``) and
:math:`T_{lμ}(θ) = \bar P_l^{μ}(\cos θ)` (normalised Legendre function, ``sin^μ θ`` included).

* :math:`T_{lμ}` is a trigonometric polynomial of degree ``l`` on the whole circle,
  :math:`T_{lμ}(θ) = \sum_{|s| \le l} a_{lμs} e^{isθ}` (``a`` from an FFT of ``2L+1`` samples:
  exact up to rounding) -- the sparse SH-to-Fourier table of Gaunt tensor products: a degree-``l``
  harmonic has at most ``2(l+1)`` nonzero 2-D Fourier coefficients (``v = ±m``, ``s ≡ l mod 2``).
* Projection of a 2-D Fourier series back onto :math:`Y_{lm}` integrates over the sphere,
  :math:`\int_0^π \int_0^{2π} e^{iuθ} e^{ivφ} Y_{lm} \sin θ\, dφ\, dθ`, in closed form:
  :math:`\int_0^π e^{ikθ} \sin θ\, dθ = 2/(1-k^2)` (``k`` even), :math:`\pm iπ/2` (``k = ±1``),
  ``0`` otherwise.
* A product grid with Gauss--Legendre nodes in :math:`\cos θ` and uniform :math:`φ` integrates
  spherical polynomials of degree ``n`` exactly with ``⌈(n+1)/2⌉ × (n+1)`` points.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch

from ._spherical_harmonics import _real_sh

__all__ = [
    "GridTables",
    "fourier_input_index",
    "fourier_to_sh_table",
    "grid_tables",
    "sh_index",
    "sh_to_fourier_table",
]


def _legendre_on_circle(lmax: int, theta: np.ndarray) -> np.ndarray:
    """``T[μ, l, k] = T_{lμ}(θ_k)`` for ``θ`` anywhere on the circle (zero for ``l < μ``)."""
    # points with φ = 0: (X, Y, Z) = (sin θ, 0, cos θ) i.e. e3nn's (x, y, z) = (0, cos θ, sin θ)
    pts = torch.from_numpy(np.stack([np.zeros_like(theta), np.cos(theta), np.sin(theta)], -1))
    y = _real_sh(pts, lmax).numpy()  # (k, (lmax+1)^2)
    out = np.zeros((lmax + 1, lmax + 1, theta.size))
    for l in range(lmax + 1):
        for mu in range(l + 1):
            col = y[:, l * l + l + mu]
            out[mu, l] = col if mu == 0 else col / math.sqrt(2.0)
    return out


@functools.lru_cache(maxsize=64)
def sh_index(lmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(idx, mask)`` of shape ``(2lmax+1, lmax+1)``: flat position of ``(l, m)`` at ``[m+L, l]``.

    Entries with ``l < |m|`` point to position ``(lmax+1)^2`` (a zero padding column).
    """
    size = (lmax + 1) ** 2
    idx = torch.full((2 * lmax + 1, lmax + 1), size, dtype=torch.long)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            idx[m + lmax, l] = l * l + l + m
    return idx, idx < size


def _theta_coefficients(lmax: int) -> np.ndarray:
    n = 2 * lmax + 1
    theta = 2 * np.pi * np.arange(n) / n
    t = _legendre_on_circle(lmax, theta)  # (μ, l, k)
    coef = np.fft.fft(t, axis=-1) / n  # index s mod n
    coef = np.fft.fftshift(coef, axes=-1)  # s = -lmax ... lmax
    return coef  # (μ, l, 2lmax+1)


def _sin_moment(k: np.ndarray) -> np.ndarray:
    """:math:`\\int_0^π e^{ikθ} \\sin θ\\, dθ` for integer ``k``."""
    out = np.zeros(k.shape, dtype=np.complex128)
    even = k % 2 == 0
    out[even] = 2.0 / (1.0 - k[even].astype(np.float64) ** 2)
    out[k == 1] = 0.5j * np.pi
    out[k == -1] = -0.5j * np.pi
    return out


@functools.lru_cache(maxsize=64)
def fourier_input_index(lmax: int) -> torch.Tensor:
    """``idx[v, k]``: flat position of ``x_{l, v}`` (``k = l``) and ``x_{l, -v}`` (``k = L+1+l``).

    Missing entries (``l < v``, and the sine part of ``v = 0``) point to ``(L+1)^2``, a zero pad.
    """
    size = (lmax + 1) ** 2
    idx = torch.full((lmax + 1, 2 * (lmax + 1)), size, dtype=torch.long)
    for v in range(lmax + 1):
        for l in range(v, lmax + 1):
            idx[v, l] = l * l + l + v
            if v > 0:
                idx[v, lmax + 1 + l] = l * l + l - v
    return idx


@functools.lru_cache(maxsize=64)
def sh_to_fourier_table(lmax: int, n: int) -> torch.Tensor:
    r"""Sparse SH -> 2-D Fourier table as a real ``(L+1, 2(L+1), 2n)`` tensor (float64, CPU).

    For the inputs arranged by :func:`fourier_input_index`, ``x_v @ table[v]`` is the
    ``e^{ivφ}`` (``v >= 0``) coefficient series in θ: entries ``2s' + (0, 1)`` are the real and
    imaginary parts of the coefficient of ``e^{isθ}``, ``s' = s mod n`` (FFT order; ``n >= 2L+1``).
    From :math:`Y_{l,\pm v} = T_{lv}(θ) Φ_{\pm v}(φ)`,
    :math:`\sqrt2\cos vφ = (e^{ivφ} + e^{-ivφ})/\sqrt2`
    and :math:`\sqrt2 \sin vφ = (e^{ivφ} - e^{-ivφ})/(i\sqrt2)`; a degree-``l`` harmonic has at
    most ``l + 1`` nonzero θ-coefficients per ``v``.
    """
    coef = _theta_coefficients(lmax)  # (μ, l, s), s = -L .. L
    rows = np.arange(-lmax, lmax + 1) % n
    table = np.zeros((lmax + 1, 2 * (lmax + 1), n), dtype=np.complex128)
    for v in range(lmax + 1):
        if v == 0:
            table[0, : lmax + 1, rows] = coef[0].T
        else:
            table[v, : lmax + 1, rows] = coef[v].T / math.sqrt(2.0)
            table[v, lmax + 1 :, rows] = -1j * coef[v].T / math.sqrt(2.0)
    real = np.stack([table.real, table.imag], axis=-1).reshape(lmax + 1, 2 * (lmax + 1), 2 * n)
    return torch.from_numpy(np.ascontiguousarray(real))


@functools.lru_cache(maxsize=64)
def fourier_to_sh_table(lmax_out: int, lmax_prod: int, n: int) -> torch.Tensor:
    r"""Projection table ``t[v, l, u']`` (complex128, CPU), ``u' = u mod n`` (FFT order).

    For the 2-D Fourier coefficients ``c[v, u]`` (``v >= 0``) of a real function ``f`` of degree
    ``<= lmax_prod``: :math:`\int f Y_{l, v} dΩ = \mathrm{Re} \sum_u c_{vu} t_{vlu}` and
    :math:`\int f Y_{l, -v} dΩ = -\mathrm{Im} \sum_u c_{vu} t_{vlu}`, with
    ``t[0] = 2π Θ_0`` and ``t[v] = sqrt2 π (Θ_v(u) + conj Θ_v(-u))``, where
    :math:`Θ_v(u) = \int_0^π e^{iuθ} T_{lv}(θ) \sin θ dθ = \sum_s a_{lvs} J(u + s)` with the
    closed-form moments ``J`` of :func:`_sin_moment` (the φ-integral selects ``±v``; the ``-v``
    coefficients are conjugates of the ``v`` ones).
    """
    coef = _theta_coefficients(lmax_out)  # (μ, l, s), s = -Lo .. Lo
    s = np.arange(-lmax_out, lmax_out + 1)
    u = np.arange(-lmax_prod, lmax_prod + 1)
    theta = np.einsum("vls,us->vlu", coef, _sin_moment(u[:, None] + s[None, :]))
    theta_neg = theta[:, :, ::-1]  # Θ(-u)
    table = np.zeros((lmax_out + 1, lmax_out + 1, n), dtype=np.complex128)
    cols = u % n
    table[0][:, cols] = 2 * np.pi * theta[0]
    table[1:][:, :, cols] = math.sqrt(2.0) * np.pi * (theta[1:] + theta_neg[1:].conj())
    return torch.from_numpy(table)


@dataclasses.dataclass(frozen=True)
class GridTables:
    """A product grid exact for spherical polynomials of degree ``degree``, float64 CPU.

    ``legendre[m + L, l, i]``: ``T_{l|m|}(θ_i)`` (``L`` the table's ``lmax``, zero for ``l < |m|``);
    ``weights[i]``: Gauss--Legendre weights in ``cos θ``; ``phi[m + L, j]``: ``Φ_m(φ_j)``.
    """

    lmax: int
    degree: int
    legendre: torch.Tensor
    weights: torch.Tensor
    phi: torch.Tensor


@functools.lru_cache(maxsize=64)
def grid_tables(lmax: int, degree: int) -> GridTables:
    n_theta = degree // 2 + 1
    n_phi = degree + 1
    z, w = np.polynomial.legendre.leggauss(n_theta)
    theta = np.arccos(z)
    t = _legendre_on_circle(lmax, theta)  # (μ, l, i)
    leg = np.zeros((2 * lmax + 1, lmax + 1, n_theta))
    for m in range(-lmax, lmax + 1):
        leg[m + lmax] = t[abs(m)]
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    ph = np.zeros((2 * lmax + 1, n_phi))
    for m in range(-lmax, lmax + 1):
        if m > 0:
            ph[m + lmax] = math.sqrt(2) * np.cos(m * phi)
        elif m < 0:
            ph[m + lmax] = math.sqrt(2) * np.sin(-m * phi)
        else:
            ph[m + lmax] = 1.0
    return GridTables(
        lmax, degree, torch.from_numpy(leg), torch.from_numpy(w), torch.from_numpy(ph)
    )
