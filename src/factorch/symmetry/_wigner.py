r"""Clebsch--Gordan coefficients, Wigner-3j symbols, Wigner-D matrices and so(3) generators.

All in the real basis of :mod:`~factorch.symmetry._spherical_harmonics` (e3nn's).

**Clebsch--Gordan coefficients** are computed exactly: the complex (Condon--Shortley)
coefficients :math:`\langle l_1 m_1 l_2 m_2 | l_3 m_3\rangle` from Racah's formula in rational
arithmetic (``fractions.Fraction``; one correctly rounded square root at the end), then changed to
the real basis, :math:`C = (U_1 \otimes U_2)\, C^{\mathbb C}\, U_3^\dagger` with :math:`U` the
complex-to-real change of basis of the harmonics, times the phase :math:`i^{l_1+l_2-l_3}`
that makes it real (e3nn's sign convention). They are cached (float64, CPU) per
``(l1, l2, l3)`` and satisfy, for every rotation :math:`R`,

.. math::

    \sum_{m_1 m_2} C_{m_1 m_2 m_3} C_{m_1 m_2 m_3'} = δ_{m_3 m_3'}, \qquad
    (D^{l_1}(R) \otimes D^{l_2}(R))\, C = C\, D^{l_3}(R),

with e3nn's sign: ``clebsch_gordan(l1, l2, l3) == sqrt(2 l3 + 1) * e3nn.o3.wigner_3j(l1, l2, l3)``.

**Wigner-D matrices** come from the harmonics by exact quadrature: with a product rule (Gauss--
Legendre in :math:`\cos θ` times a uniform rule in :math:`φ`) exact for spherical polynomials of
degree :math:`2l`, :math:`D^l(R) = \sum_q w_q\, Y^l(R x_q)\, Y^l(x_q)^T`. This works for any
rotation (no Euler angles, no gimbal lock), is batched and differentiable in :math:`R`.

References:
    G. Racah, Theory of complex spectra II, Phys. Rev. 62 (1942).
    M. Geiger, T. Smidt, e3nn: Euclidean neural networks, arXiv:2207.09453 (2022).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import torch

from .._numerics import no_autocast, working_dtype
from ._common import check_irreps, check_lmax, check_rotations
from ._irreps import Irreps
from ._spherical_harmonics import _real_sh

__all__ = [
    "clebsch_gordan",
    "clebsch_gordan64",
    "irreps_wigner_D",
    "so3_generators",
    "so3_generators64",
    "wigner_3j",
    "wigner_D",
]


# --------------------------------------------------------------------------------------------
# exact complex Clebsch--Gordan coefficients (Racah's formula)
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _fact(n: int) -> int:
    return math.factorial(n)


def _complex_cg(j1: int, m1: int, j2: int, m2: int, j3: int, m3: int) -> float:
    """<j1 m1 j2 m2 | j3 m3> (Condon--Shortley), exact up to one final rounding.

    Racah's sum :math:`S = \\sum_k (-1)^k / D_k` is taken over a common integer denominator
    ``P`` (every ``D_k`` divides it), so the whole coefficient is ``sign(T) sqrt(T^2 A / P^2)``
    with integers ``T``, ``P`` and the rational prefactor ``A``: one rounding, at the square root.
    """
    if m1 + m2 != m3 or not abs(j1 - j2) <= j3 <= j1 + j2:
        return 0.0
    if abs(m1) > j1 or abs(m2) > j2 or abs(m3) > j3:
        return 0.0
    f = _fact
    k_min = max(0, j2 - j3 - m1, j1 - j3 + m2)
    k_max = min(j1 + j2 - j3, j1 - m1, j2 + m2)
    a, b, c = j1 + j2 - j3, j1 - m1, j2 + m2
    d, e = j3 - j2 + m1, j3 - j1 - m2
    common = f(k_max) * f(a - k_min) * f(b - k_min) * f(c - k_min) * f(d + k_max) * f(e + k_max)
    total = 0
    for k in range(k_min, k_max + 1):
        denom = f(k) * f(a - k) * f(b - k) * f(c - k) * f(d + k) * f(e + k)
        total += (-1) ** k * (common // denom)
    if total == 0:
        return 0.0
    numerator = (2 * j3 + 1) * f(j3 + j1 - j2) * f(j3 - j1 + j2) * f(a)
    numerator *= f(j3 + m3) * f(j3 - m3) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    value = math.sqrt(Fraction(total * total * numerator, f(j1 + j2 + j3 + 1) * common * common))
    return value if total > 0 else -value


def _complex_to_real(l: int) -> np.ndarray:
    """``U`` with ``Y_real = U Y_complex`` (Condon--Shortley complex harmonics)."""
    u = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    s = 1 / math.sqrt(2)
    u[l, l] = 1
    for m in range(1, l + 1):
        u[l + m, l + m] = (-1) ** m * s
        u[l + m, l - m] = s
        u[l - m, l - m] = 1j * s
        u[l - m, l + m] = -1j * (-1) ** m * s
    return u


@functools.cache
def _cg_cached(l1: int, l2: int, l3: int) -> torch.Tensor:
    # complex coefficients: nonzero only on m3 = m1 + m2
    rows = []
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -l3 - m1), min(l2, l3 - m1) + 1):
            rows.append((m1, m2, _complex_cg(l1, m1, l2, m2, l3, m1 + m2)))
    m1s = np.array([r[0] for r in rows])
    m2s = np.array([r[1] for r in rows])
    vals = np.array([r[2] for r in rows], dtype=np.complex128)
    m3s = m1s + m2s
    u1, u2, u3 = _complex_to_real(l1), _complex_to_real(l2), _complex_to_real(l3)
    real = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1), dtype=np.complex128)
    # each complex basis vector m enters the real basis vectors +|m| and -|m| (U is 2-sparse)
    for s1 in (1, -1):
        for s2 in (1, -1):
            for s3 in (1, -1):
                a, b, c = s1 * np.abs(m1s), s2 * np.abs(m2s), s3 * np.abs(m3s)
                coef = u1[l1 + a, l1 + m1s] * u2[l2 + b, l2 + m2s] * u3[l3 + c, l3 + m3s].conj()
                keep = ((s1 == 1) | (a != 0)) & ((s2 == 1) | (b != 0)) & ((s3 == 1) | (c != 0))
                np.add.at(real, (l1 + a[keep], l2 + b[keep], l3 + c[keep]), (coef * vals)[keep])
    # the tensor is real times i^(l1+l2-l3); this phase makes it real with e3nn's sign
    real = real * (1j ** ((l1 + l2 - l3) % 4))
    out = torch.from_numpy(np.ascontiguousarray(real.real))
    out.requires_grad_(False)
    return out


def _check_triplet(l1: object, l2: object, l3: object, fn: str) -> tuple[int, int, int]:
    a, b, c = (check_lmax(v, fn, n) for v, n in ((l1, "l1"), (l2, "l2"), (l3, "l3")))
    if not abs(a - b) <= c <= a + b:
        raise ValueError(
            f"{fn}: (l1, l2, l3) must satisfy |l1 - l2| <= l3 <= l1 + l2; got ({a}, {b}, {c})."
        )
    return a, b, c


def clebsch_gordan64(l1: int, l2: int, l3: int) -> torch.Tensor:
    """The cached float64 CPU coefficients (internal: do not modify the returned tensor)."""
    return _cg_cached(l1, l2, l3)


def clebsch_gordan(
    l1: int,
    l2: int,
    l3: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Real Clebsch--Gordan coefficients coupling degrees ``l1 ⊗ l2 -> l3``.

    The tensor :math:`C` of shape ``(2l1+1, 2l2+1, 2l3+1)`` with
    :math:`\sum_{m_1 m_2} C_{m_1 m_2 m_3} C_{m_1 m_2 m_3'} = δ_{m_3 m_3'}` and
    :math:`(D^{l_1}(R) \otimes D^{l_2}(R))\, C = C\, D^{l_3}(R)` (see the module docstring):
    ``z_{m3} = sum C[m1, m2, m3] x_{m1} y_{m2}`` is the degree-``l3`` part of ``x ⊗ y``.
    Computed exactly once (Racah's formula) and cached; a fresh copy is returned.

    Args:
        l1, l2, l3: degrees with ``|l1 - l2| <= l3 <= l1 + l2`` (each at most 64).
        dtype, device: of the returned tensor (default float64 on the CPU).

    Returns:
        ``(2l1+1, 2l2+1, 2l3+1)`` tensor; equals ``sqrt(2l3+1) * e3nn.o3.wigner_3j(l1, l2, l3)``.

    Raises:
        TypeError: a degree that is not an int.
        ValueError: a negative degree, one above 64, or a triplet that violates the triangle rule.

    Example:
        >>> c = clebsch_gordan(1, 1, 0)
        >>> torch.allclose(c[:, :, 0], torch.eye(3, dtype=torch.float64) / 3**0.5)
        True
    """
    l1, l2, l3 = _check_triplet(l1, l2, l3, "clebsch_gordan")
    return _cg_cached(l1, l2, l3).to(dtype=dtype, device=device, copy=True)


def wigner_3j(
    l1: int,
    l2: int,
    l3: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Real Wigner-3j symbols in e3nn's normalisation (:math:`\sum C^2 = 1`).

    ``wigner_3j(l1, l2, l3) == clebsch_gordan(l1, l2, l3) / sqrt(2 l3 + 1)``; they are invariant:
    :math:`\sum C_{ijk} D^{l_1}_{ia} D^{l_2}_{jb} D^{l_3}_{kc} = C_{abc}`. Same arguments and errors
    as :func:`clebsch_gordan`.

    Args:
        l1: degree of the first input.
        l2: degree of the second input.
        l3: degree of the output.
        dtype: the result's dtype.
        device: the result's device.

    Returns:
        ``(2 l1 + 1, 2 l2 + 1, 2 l3 + 1)`` symbols.

    Raises:
        TypeError: a degree that is not an int.
        ValueError: a negative degree, one above 64, or a triplet that violates the triangle
            rule.

    Example:
        >>> round(float(wigner_3j(2, 1, 2).pow(2).sum()), 12)
        1.0
    """
    l1, l2, l3 = _check_triplet(l1, l2, l3, "wigner_3j")
    out = _cg_cached(l1, l2, l3) / math.sqrt(2 * l3 + 1)
    return out.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Wigner-D matrices by exact quadrature, and the Lie-algebra generators
# --------------------------------------------------------------------------------------------
@functools.cache
def _quadrature(degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (n, 3) and weights (n,) exact for spherical polynomials of ``degree``."""
    n_theta = degree // 2 + 1
    n_phi = degree + 1
    z, w = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    s = np.sqrt(1 - z**2)
    pts = np.stack(
        [np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(z, np.ones_like(phi))], -1
    ).reshape(-1, 3)
    wts = np.outer(w, np.full(n_phi, 2 * np.pi / n_phi)).reshape(-1)
    return torch.from_numpy(pts), torch.from_numpy(wts)


@functools.cache
def _sh_at_quadrature(l: int) -> tuple[torch.Tensor, torch.Tensor]:
    pts, wts = _quadrature(2 * l)
    y = _real_sh(pts, l)[:, l * l : (l + 1) ** 2]
    return pts, (wts[:, None] * y)


@no_autocast
def wigner_D(l: int, rotation: torch.Tensor) -> torch.Tensor:
    r"""Real Wigner-D matrices :math:`D^l(R)` of rotation matrices, in e3nn's basis.

    :math:`Y^l(R x) = D^l(R)\, Y^l(x)` for the harmonics of :func:`spherical_harmonics`;
    ``wigner_D(1, R) == R``. A matrix with determinant -1 is accepted and treated as the rotation
    ``-R`` (parity is the caller's: multiply by ``p`` for an odd irrep).

    Args:
        l: the degree (``0 <= l <= 64``).
        rotation: ``(..., 3, 3)`` orthogonal matrices (``R^T R = I`` to 1e-8, float32: 1e-4).

    Returns:
        ``(..., 2l+1, 2l+1)`` orthogonal matrices; dtype and device of ``rotation``;
        differentiable in ``rotation``.

    Raises:
        TypeError: ``rotation`` not a real floating tensor; ``l`` not an int.
        ValueError: wrong shape, non-orthogonal matrices, non-finite entries, ``l`` out of range.

    Example:
        >>> r = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> torch.allclose(wigner_D(1, r), r)
        True
    """
    fn = "wigner_D"
    l = check_lmax(l, fn, "l")
    rotation = check_rotations(rotation, fn)
    dtype = rotation.dtype
    r = rotation.to(working_dtype(dtype))
    det = torch.linalg.det(r) if r.numel() else r.new_ones(r.shape[:-2])
    r = r * torch.where(det < 0, -1.0, 1.0)[..., None, None].to(r.dtype)
    pts, wy = _sh_at_quadrature(l)
    pts = pts.to(dtype=r.dtype, device=r.device)
    wy = wy.to(dtype=r.dtype, device=r.device)
    rotated = torch.einsum("...ij,qj->...qi", r, pts)
    y_rot = _real_sh(rotated, l)[..., l * l : (l + 1) ** 2]
    d = torch.einsum("...qa,qb->...ab", y_rot, wy)
    return d.to(dtype)


@functools.cache
def _generators_cached(l: int) -> torch.Tensor:
    if l == 0:
        return torch.zeros(3, 1, 1, dtype=torch.float64)
    pts, wy = _sh_at_quadrature(l)
    basis = torch.zeros(3, 3, 3, dtype=torch.float64)
    # L_k x = e_k × x: the so(3) generators of the defining representation
    basis[0, 2, 1], basis[0, 1, 2] = 1.0, -1.0
    basis[1, 0, 2], basis[1, 2, 0] = 1.0, -1.0
    basis[2, 1, 0], basis[2, 0, 1] = 1.0, -1.0
    with torch.enable_grad():  # also when called under no_grad (a cached, exact derivative)
        x = pts.clone().requires_grad_(True)
        y = _real_sh(x, l)[:, l * l : (l + 1) ** 2]
        grads = torch.stack(
            [torch.autograd.grad(y[:, a].sum(), x, retain_graph=True)[0] for a in range(2 * l + 1)],
            1,
        )  # (q, 2l+1, 3)
    out = torch.stack(
        [torch.einsum("qaj,jk,qk,qb->ab", grads, basis[k], pts, wy) for k in range(3)]
    )
    out = 0.5 * (out - out.mT)  # exactly skew-symmetric
    # structural zeros come out at rounding level (1e-16): make them exact
    out = torch.where(out.abs() < 1e-13, torch.zeros_like(out), out)
    return out.detach()


def so3_generators64(l: int) -> torch.Tensor:
    """Cached float64 generators (internal: do not modify)."""
    return _generators_cached(l)


def so3_generators(
    l: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""The so(3) generators of degree ``l`` in the real basis: ``(3, 2l+1, 2l+1)``.

    ``G[k]`` is skew-symmetric and :math:`D^l(\exp(t L_k)) = \exp(t G_k)` where
    :math:`L_k x = e_k \times x` generates rotations about axis ``k`` of ``(x, y, z)``;
    ``so3_generators(1) == L``. Exact (derivative of the quadrature formula of :func:`wigner_D`).

    Args:
        l: the degree, an int in ``[0, 64]``.
        dtype: the result's dtype.
        device: the result's device.

    Returns:
        ``(3, 2l+1, 2l+1)`` skew-symmetric generators.

    Raises:
        TypeError, ValueError: ``l`` not an int in ``[0, 64]``.

    Example:
        >>> lz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float64)
        >>> torch.allclose(so3_generators(1)[2], lz)
        True
    """
    l = check_lmax(l, "so3_generators", "l")
    return _generators_cached(l).to(dtype=dtype, device=device, copy=True)


@no_autocast
def irreps_wigner_D(irreps: Irreps | str, rotation: torch.Tensor) -> torch.Tensor:
    r"""Block-diagonal representation matrices of O(3) elements on ``irreps``.

    Each copy of ``(l, p)`` gets :math:`p^{[\det R < 0]} D^l(\det(R) R)`: rotations act by Wigner-D
    matrices and the inversion :math:`-I` by the parity. ``irreps_wigner_D("1o", R) == R`` for
    every orthogonal ``R``.

    Args:
        irreps: the irreps (string or :class:`Irreps`).
        rotation: ``(..., 3, 3)`` orthogonal matrices (proper or improper).

    Returns:
        ``(..., irreps.dim, irreps.dim)``, dtype and device of ``rotation``; differentiable.

    Raises:
        TypeError, ValueError: as :func:`wigner_D`, or irreps that cannot be parsed.

    Example:
        >>> r = -torch.eye(3, dtype=torch.float64)
        >>> irreps_wigner_D("0e + 1o + 1e", r).diagonal().round(decimals=12).tolist()
        [1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
    """
    fn = "irreps_wigner_D"
    ir = check_irreps(irreps, fn, "irreps")
    rotation = check_rotations(rotation, fn)
    det = torch.linalg.det(rotation) if rotation.numel() else rotation.new_ones(rotation.shape[:-2])
    sign = torch.where(det < 0, -1.0, 1.0).to(rotation.dtype)
    blocks = []
    cache: dict[int, torch.Tensor] = {}
    for mul, irrep in ir:
        if irrep.l not in cache:
            cache[irrep.l] = wigner_D(irrep.l, rotation)
        d = cache[irrep.l]
        if irrep.p == -1:
            d = d * sign[..., None, None]
        blocks.extend([d] * mul)
    lead = rotation.shape[:-2]
    out = rotation.new_zeros(*lead, ir.dim, ir.dim)
    start = 0
    for d in blocks:
        k = d.shape[-1]
        out[..., start : start + k, start : start + k] = d
        start += k
    return out
