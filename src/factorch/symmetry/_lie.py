r"""Polar and Cartan decompositions of GL⁺(n), SL(n) and SPD matrices, and a global chart.

The exponential map of GL⁺(n) and SL(n) is not surjective, so their elements cannot all be
written as :math:`\exp(X)`. They decompose instead into a symmetric positive definite factor and a
rotation (Mironenco & Forré, 2024):

.. math::

    g = P R,\quad P = (g g^T)^{1/2} \in \mathrm{SPD}(n),\ R = P^{-1} g \in \mathrm{SO}(n)
    \quad(\det g > 0),

and :math:`P = \exp(S)` with :math:`S` symmetric (traceless when :math:`\det g = 1`): the map
:math:`(S, R) \mapsto \exp(S) R` is a diffeomorphism :math:`\mathrm{Sym}(n) \times \mathrm{SO}(n)
\to \mathrm{GL}^+(n)` (the Cartan decomposition), and :math:`\mathrm{GL}^+(n) = \mathbb R_{>0}
\times \mathrm{SL}(n)` splits off :math:`\det(g)^{1/n}`. :func:`lie_chart` turns these into global
coordinates (upper triangle of :math:`S`, the skew part of :math:`\log R`) on which kernels of group
convolutions are defined.

All functions are batched over leading dimensions, computed through the SVD or ``eigh`` (stable),
and differentiable where the decomposition is smooth (distinct singular values for the polar
factors' gradients).

Reference:
    M. Mironenco, P. Forré, Lie group decompositions for equivariant neural networks, ICLR 2024.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from .._numerics import no_autocast, upcast
from ._common import check_choice, check_real_tensor, check_representable

__all__ = [
    "CartanDecomposition",
    "PolarDecomposition",
    "cartan_decomposition",
    "lie_chart",
    "lie_chart_inverse",
    "polar_decomposition",
    "rotation_log",
    "spd_exp",
    "spd_log",
]


@dataclasses.dataclass(frozen=True)
class PolarDecomposition:
    """``g = positive @ orthogonal`` (side "left") or ``g = orthogonal @ positive`` ("right").

    Attributes:
        positive: the symmetric positive semi-definite factor.
        orthogonal: the orthogonal factor.
        side: ``"left"`` or ``"right"``.

    Example:
        >>> g = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> pd = polar_decomposition(g, side="right")
        >>> pd.side, torch.allclose(pd.orthogonal @ pd.positive, g)
        ('right', True)
    """

    positive: torch.Tensor
    orthogonal: torch.Tensor
    side: str


@dataclasses.dataclass(frozen=True)
class CartanDecomposition:
    """``g = matrix_exp(symmetric) @ rotation``, ``symmetric`` symmetric, ``rotation`` in SO(n).

    Attributes:
        symmetric: the symmetric factor ``S``.
        rotation: the rotation ``R``.

    Example:
        >>> g = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> c = cartan_decomposition(g)
        >>> torch.allclose(torch.linalg.matrix_exp(c.symmetric) @ c.rotation, g)
        True
    """

    symmetric: torch.Tensor
    rotation: torch.Tensor


def _check_square(g: object, fn: str, name: str = "matrices") -> torch.Tensor:
    g = check_real_tensor(g, fn, name, min_ndim=2)
    if g.shape[-1] != g.shape[-2]:
        raise ValueError(f"{fn}: {name} must be square, shape (..., n, n); got {tuple(g.shape)}.")
    return g


def _svd_checked(g: torch.Tensor, fn: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(g)
    if g.numel():
        tol = s[..., :1] * g.shape[-1] * torch.finfo(g.dtype).eps
        if bool((s[..., -1:] <= tol).any()):
            raise ValueError(
                f"{fn}: the matrices must be invertible; got a singular value below "
                f"{float(tol.detach().max()):.1e} (numerically singular)."
            )
    return u, s, vh


@no_autocast
def polar_decomposition(
    matrices: torch.Tensor, *, side: Literal["left", "right"] = "left"
) -> PolarDecomposition:
    r"""Polar decomposition of invertible matrices: :math:`g = PR` (left) or :math:`g = RP` (right).

    From the SVD :math:`g = U Σ V^T`: :math:`R = U V^T` (orthogonal, :math:`\det R = \mathrm{sign}
    \det g`, so :math:`R \in SO(n)` on GL⁺(n)), :math:`P = U Σ U^T` (left) or :math:`V Σ V^T`
    (right), symmetric positive definite (:math:`\det P = 1` on SL(n)).

    Args:
        matrices: ``(..., n, n)`` invertible real matrices.
        side: "left" (``g = P R``) or "right" (``g = R P``).

    Returns:
        :class:`PolarDecomposition` in the input's dtype and device; differentiable.

    Raises:
        TypeError: not a real floating tensor.
        ValueError: not square, non-finite, numerically singular, unknown ``side``.

    Example:
        >>> g = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> pd = polar_decomposition(g)
        >>> torch.allclose(pd.positive @ pd.orthogonal, g)
        True
    """
    fn = "polar_decomposition"
    g = _check_square(matrices, fn)
    side = check_choice(side, ("left", "right"), fn, "side")  # type: ignore[assignment]
    dtype = g.dtype
    u, s, vh = _svd_checked(upcast(g), fn)
    rotation = u @ vh
    if side == "left":
        positive = (u * s[..., None, :]) @ u.mT
    else:
        positive = (vh.mT * s[..., None, :]) @ vh
    positive = 0.5 * (positive + positive.mT)
    return PolarDecomposition(positive.to(dtype), rotation.to(dtype), side)


def _sym_function(p: torch.Tensor, f: str) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(0.5 * (p + p.mT))
    vals = torch.log(evals) if f == "log" else torch.exp(evals)
    return (evecs * vals[..., None, :]) @ evecs.mT


@no_autocast
def spd_log(matrices: torch.Tensor) -> torch.Tensor:
    """Matrix logarithm of symmetric positive definite matrices (symmetric result; via ``eigh``).

    Args:
        matrices: ``(..., n, n)`` symmetric positive definite, real floating.

    Returns:
        The symmetric logarithms, ``(..., n, n)`` in the input's dtype and device (computed in
        float64 at least); differentiable.

    Raises:
        TypeError: not a real floating tensor.
        ValueError: not square, non-finite, not symmetric, or not positive definite.

    Example:
        >>> log = spd_log(torch.diag(torch.tensor([1.0, math.e], dtype=torch.float64)))
        >>> torch.allclose(log, torch.diag(torch.tensor([0.0, 1.0], dtype=torch.float64)))
        True
    """
    fn = "spd_log"
    p = _check_square(matrices, fn)
    asym = float((p - p.mT).detach().abs().max()) if p.numel() else 0.0
    scale = float(p.detach().abs().max()) if p.numel() else 1.0
    if asym > 1e3 * torch.finfo(p.dtype).eps * max(scale, 1.0):
        raise ValueError(f"{fn}: matrices must be symmetric; got an asymmetry of {asym:.1e}.")
    evals = torch.linalg.eigvalsh(upcast(0.5 * (p + p.mT)))
    if p.numel() and bool((evals <= 0).any()):
        raise ValueError(
            f"{fn}: matrices must be positive definite; got an eigenvalue "
            f"{float(evals.detach().min()):.3e}."
        )
    return _sym_function(upcast(p), "log").to(p.dtype)


@no_autocast
def spd_exp(matrices: torch.Tensor) -> torch.Tensor:
    """Matrix exponential of symmetric matrices (SPD result; via ``eigh``).

    Args:
        matrices: ``(..., n, n)`` symmetric, real floating.

    Returns:
        The symmetric positive definite exponentials, ``(..., n, n)`` in the input's dtype and
        device; differentiable.

    Raises:
        TypeError: not a real floating tensor.
        ValueError: not square, non-finite, or an exponential that overflows the dtype.

    Example:
        >>> spd_exp(torch.zeros(2, 2))
        tensor([[1., 0.],
                [0., 1.]])
    """
    s = _check_square(matrices, "spd_exp")
    return check_representable(
        _sym_function(upcast(s), "exp").to(s.dtype), "spd_exp", "exponential"
    )


@no_autocast
def cartan_decomposition(matrices: torch.Tensor) -> CartanDecomposition:
    r"""Cartan decomposition of GL⁺(n): :math:`g = \exp(S) R`, S symmetric, R a rotation.

    :math:`S = \tfrac12 \log(g g^T)` (traceless exactly when :math:`\det g = 1`, i.e. on SL(n)) and
    :math:`R = \exp(-S) g`; the map is a global diffeomorphism
    :math:`\mathrm{Sym}(n) \times SO(n) \to GL^+(n)`.

    Args:
        matrices: ``(..., n, n)`` with positive determinant.

    Returns:
        :class:`CartanDecomposition`; differentiable.

    Raises:
        TypeError: not a real floating tensor.
        ValueError: not square, non-finite, singular, or a non-positive determinant (use
            :func:`polar_decomposition` for those).

    Example:
        >>> g = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> c = cartan_decomposition(g)
        >>> torch.allclose(torch.linalg.matrix_exp(c.symmetric) @ c.rotation, g)
        True
    """
    fn = "cartan_decomposition"
    g = _check_square(matrices, fn)
    u, s, vh = _svd_checked(upcast(g), fn)
    if g.numel():
        det_sign = torch.linalg.det(u @ vh)
        if bool((det_sign <= 0).any()):
            raise ValueError(
                f"{fn}: matrices must have a positive determinant (GL+(n)); got a negative one. "
                "Use polar_decomposition, whose orthogonal factor then has determinant -1."
            )
    symmetric = (u * torch.log(s)[..., None, :]) @ u.mT
    return CartanDecomposition((0.5 * (symmetric + symmetric.mT)).to(g.dtype), (u @ vh).to(g.dtype))


@no_autocast
def rotation_log(rotations: torch.Tensor) -> torch.Tensor:
    r"""The principal logarithm of rotations: skew-symmetric :math:`X` with :math:`\exp(X) = R`.

    Closed forms for ``n = 2`` (the angle) and ``n = 3`` (axis--angle, stable near the identity);
    other ``n`` through the complex eigendecomposition. Ill-defined at angle :math:`π` (any axis
    works), as for every logarithm.

    Args:
        rotations: ``(..., n, n)`` rotation matrices.

    Returns:
        The skew-symmetric logarithms, ``(..., n, n)`` in the input's dtype.

    Raises:
        TypeError, ValueError: not real square finite matrices, or not in SO(n) (to 1e-6).

    Example:
        >>> r = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> math.isclose(rotation_log(r)[1, 0].item(), math.pi / 2, rel_tol=1e-12)
        True
    """
    fn = "rotation_log"
    r_in = _check_square(rotations, fn, "rotations")
    r = upcast(r_in)
    n = r.shape[-1]
    if r.numel():
        eye = torch.eye(n, dtype=r.dtype, device=r.device)
        orth = float((r.mT @ r - eye).detach().abs().max())
        if orth > 1e-6 or bool((torch.linalg.det(r) <= 0).any()):
            raise ValueError(
                f"{fn}: rotations must be in SO(n) (orthogonal, determinant +1); got an "
                f"orthogonality error of {orth:.1e} or a negative determinant."
            )
    return _rotation_log(r, n).to(r_in.dtype)


def _rotation_log(r: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(r)
    if n == 2:
        angle = torch.atan2(r[..., 1, 0] - r[..., 0, 1], r[..., 0, 0] + r[..., 1, 1])
        out = torch.zeros_like(r)
        out[..., 1, 0], out[..., 0, 1] = angle, -angle
        return out
    if n == 3:
        return _so3_log(r)
    evals, evecs = torch.linalg.eig(r)
    logs = torch.log(evals)
    x = (evecs * logs[..., None, :]) @ torch.linalg.inv(evecs)
    x = x.real
    return 0.5 * (x - x.mT)


def _skew3(v: torch.Tensor) -> torch.Tensor:
    out = v.new_zeros(*v.shape[:-1], 3, 3)
    out[..., 2, 1], out[..., 1, 2] = v[..., 0], -v[..., 0]
    out[..., 0, 2], out[..., 2, 0] = v[..., 1], -v[..., 1]
    out[..., 1, 0], out[..., 0, 1] = v[..., 2], -v[..., 2]
    return out


def _so3_log(r: torch.Tensor) -> torch.Tensor:
    """Axis--angle logarithm: ``θ = atan2(|w|, (tr R - 1)/2)`` with ``w = sin θ a`` from the skew
    part; near ``θ = π`` the axis comes from the symmetric part ``(R + R^T)/2 = cos θ I +
    (1 - cos θ) a a^T`` (the skew part vanishes there)."""
    w = (
        torch.stack(
            [r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]],
            -1,
        )
        / 2
    )
    sin = w.norm(dim=-1)
    cos = (r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    angle = torch.atan2(sin, cos)
    small = angle < 1e-4
    factor = torch.where(
        small, 1 + angle**2 / 6, angle / torch.where(small, torch.ones_like(sin), sin)
    )
    generic = w * factor[..., None]
    # near π: a a^T from the symmetric part, the column with the largest diagonal, sign from w
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    outer = (0.5 * (r + r.mT) - cos[..., None, None] * eye) / (1 - cos).clamp_min(1e-12)[
        ..., None, None
    ]
    j = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)
    col = torch.gather(outer, -1, j[..., None, None].expand(*outer.shape[:-1], 1))[..., 0]
    axis = col / col.gather(-1, j[..., None]).clamp_min(1e-300).sqrt()
    axis = axis * torch.where((axis * w).sum(-1) < 0, -1.0, 1.0)[..., None]
    near_pi = angle > math.pi - 1e-3
    vec = torch.where(near_pi[..., None], axis * angle[..., None], generic)
    return _skew3(vec)


def _diag_scale(iu: torch.Tensor, off: float, like: torch.Tensor) -> torch.Tensor:
    """1 on the diagonal pairs of ``iu``, ``off`` elsewhere, in ``like``'s dtype (exactly)."""
    out = torch.full((iu.shape[1],), off, dtype=like.dtype, device=like.device)
    return out.masked_fill(iu[0] == iu[1], 1.0)


def lie_chart(matrices: torch.Tensor) -> torch.Tensor:
    r"""Global coordinates of GL⁺(n): the Cartan factors flattened, ``(..., n(n+1)/2 + n(n-1)/2)``.

    ``[S_ij for i <= j (off-diagonal entries times sqrt(2)), X_ij for i < j]`` with
    :math:`g = \exp(S)\exp(X)`, :math:`X = \log R` (:func:`rotation_log`). The ``sqrt(2)`` makes
    the Euclidean norm of the coordinates equal the Frobenius norm of :math:`S` (and of
    :math:`X / \sqrt2`). Inverse: :func:`lie_chart_inverse`.

    Args:
        matrices: ``(..., n, n)`` real matrices with positive determinant.

    Returns:
        The coordinates, ``(..., n^2)`` in the input's dtype; differentiable.

    Raises:
        TypeError, ValueError: as :func:`cartan_decomposition`.

    Example:
        >>> float(lie_chart(torch.eye(2)).abs().max()) < 1e-6
        True
    """
    c = cartan_decomposition(matrices)
    n = c.symmetric.shape[-1]
    iu = torch.triu_indices(n, n, device=c.symmetric.device)
    iu1 = torch.triu_indices(n, n, offset=1, device=c.symmetric.device)
    scale = _diag_scale(iu, math.sqrt(2.0), c.symmetric)
    sym = c.symmetric[..., iu[0], iu[1]] * scale
    x = rotation_log(c.rotation)
    return torch.cat([sym, x[..., iu1[0], iu1[1]]], dim=-1)


def lie_chart_inverse(coordinates: torch.Tensor, n: int) -> torch.Tensor:
    """``g = exp(S) exp(X)`` from :func:`lie_chart` coordinates.

    Args:
        coordinates: ``(..., n^2)`` coordinates from :func:`lie_chart`.
        n: the matrix size.

    Returns:
        The matrices ``g``, ``(..., n, n)``; differentiable.

    Raises:
        TypeError, ValueError: non-floating coordinates, or a last dimension other than ``n^2``.

    Example:
        >>> g = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> torch.allclose(lie_chart_inverse(lie_chart(g), 2), g)
        True
    """
    fn = "lie_chart_inverse"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{fn}: n must be a positive int; got {n!r}.")
    c = check_real_tensor(coordinates, fn, "coordinates", last_dim=n * n)
    iu = torch.triu_indices(n, n, device=c.device)
    iu1 = torch.triu_indices(n, n, offset=1, device=c.device)
    k = iu.shape[1]
    scale = _diag_scale(iu, 1 / math.sqrt(2.0), c)
    sym = c.new_zeros(*c.shape[:-1], n, n)
    sym[..., iu[0], iu[1]] = c[..., :k] * scale
    sym[..., iu[1], iu[0]] = c[..., :k] * scale
    x = c.new_zeros(*c.shape[:-1], n, n)
    x[..., iu1[0], iu1[1]] = c[..., k:]
    x = x - x.mT
    out = _sym_function(upcast(sym), "exp") @ torch.linalg.matrix_exp(upcast(x))
    return check_representable(out.to(c.dtype), fn, "group element")
