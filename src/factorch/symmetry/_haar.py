r"""Haar-measure sampling on SO(n), O(n), SL(n) and GL⁺(n).

* **Compact groups** (exact samples). The QR decomposition of a matrix with i.i.d. standard normal
  entries, with the signs of ``R``'s diagonal moved into ``Q`` (``Q ← Q diag(sign(diag R))``), is
  Haar distributed on O(n) (Mezzadri, 2007); flipping the first column where ``det Q = -1`` gives
  Haar samples on SO(n).
* **Non-compact groups** (weighted samples). Haar measure on GL⁺(n) and SL(n) is infinite, so no
  probability distribution is invariant; Monte-Carlo integrals use importance weights instead. In
  the Cartan chart :math:`g = \exp(S) R` (:func:`cartan_decomposition`) the Haar measure factorises
  (Mironenco & Forré, 2024) into Haar measure on SO(n) and the GL-invariant measure of the
  symmetric factor, whose density with respect to the Lebesgue measure of :math:`S` (Frobenius
  coordinates) is

  .. math::

      J(S) = \prod_{i<j} \frac{\sinh(s_i - s_j)}{s_i - s_j}, \qquad s = \mathrm{eig}(S)

  (the Jacobian of :math:`S \mapsto \exp(2S)` times the invariant density
  :math:`\det(Y)^{-(n+1)/2}` of :math:`Y = g g^T`). Samples draw :math:`R` from Haar on SO(n) and
  :math:`S` from an isotropic Gaussian of scale :math:`σ` (traceless for SL(n)); the log weights
  :math:`\log J(S) - \log p_σ(S)` make :math:`\frac1N \sum_i e^{w_i} f(g_i)` an unbiased estimate of
  :math:`\int f\, dμ` for :math:`dμ = J(S)\, dS\, dR` (``dR`` the Haar probability), and the
  estimate of :math:`\int f(h g)\, dμ(g)` equals it for every :math:`h` (left invariance).

References:
    F. Mezzadri, How to generate random matrices from the classical compact groups, Notices of
    the AMS 54 (2007).
    M. Mironenco, P. Forré, Lie group decompositions for equivariant neural networks, ICLR 2024.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import check_memory
from ._common import check_choice

__all__ = ["GroupSample", "HaarGroup", "haar_orthogonal", "haar_sample", "log_haar_density"]

HaarGroup = Literal["SO", "O", "SL", "GL+"]
_GROUPS = ("SO", "O", "SL", "GL+")


@dataclasses.dataclass(frozen=True)
class GroupSample:
    """Group elements with Monte-Carlo importance weights.

    Attributes:
        elements: ``(num_samples, n, n)`` matrices.
        log_weights: ``(num_samples,)``; ``mean(exp(log_weights) * f(elements))`` estimates the
            Haar integral of ``f`` (zeros for the compact groups, whose samples are exact).
        symmetric: ``(num_samples, n, n)`` the Cartan factor ``S`` (zeros for SO/O).
        rotation: ``(num_samples, n, n)`` the rotation factor ``R``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> s = haar_sample("SO", 3, 2, generator=gen, dtype=torch.float64)
        >>> s.elements.shape, s.log_weights.tolist()  # exact samples: equal weights
        (torch.Size([2, 3, 3]), [0.0, 0.0])
    """

    elements: torch.Tensor
    log_weights: torch.Tensor
    symmetric: torch.Tensor
    rotation: torch.Tensor


def _resolve(
    n: object, num_samples: object, dtype: object, generator: object, fn: str
) -> tuple[int, int, torch.dtype, torch.Generator | None]:
    n_ = check_positive_int(n, fn, "n")
    m = check_positive_int(num_samples, fn, "num_samples")
    if dtype is None:
        dtype = torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{fn}: dtype must be a real floating torch.dtype or None; got {dtype!r}.")
    gen = check_generator(generator, fn)
    if gen is not None and gen.device.type != "cpu":
        raise ValueError(
            f"{fn}: generator must be a CPU torch.Generator (samples are drawn on the CPU); "
            f"got {gen.device}."
        )
    check_memory(
        3 * m * n_ * n_,
        torch.float64,
        "cpu",
        fn,
        f"{m} samples of {n_} x {n_} matrices",
        hint="draw fewer samples",
    )
    return n_, m, dtype, gen


def _qr_haar(n: int, m: int, special: bool, gen: torch.Generator | None) -> torch.Tensor:
    z = torch.randn(m, n, n, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(z)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    q = q * signs[:, None, :]
    if special:
        det = torch.linalg.det(q)
        q[:, :, 0] = q[:, :, 0] * torch.where(det < 0, -1.0, 1.0)[:, None]
    return q


def haar_orthogonal(
    n: int,
    num_samples: int,
    *,
    special: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Exact Haar samples of SO(n) (``special=True``) or O(n): QR with the sign fix.

    Drawn in float64 on the CPU (same samples on every device for a seed), then cast and moved.

    Args:
        n: matrix size. num_samples: how many.
        special: SO(n) (determinant +1) or O(n).
        generator: a CPU ``torch.Generator``; dtype, device: of the result.

    Returns:
        ``(num_samples, n, n)`` orthogonal matrices. Not differentiable (samples).

    Raises:
        TypeError: non-int sizes, a seed instead of a generator, a non-floating dtype.
        ValueError: sizes below 1, absurd sizes, a CUDA generator.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> q = haar_orthogonal(3, 5, generator=gen, dtype=torch.float64)
        >>> torch.allclose(q @ q.mT, torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
        True
    """
    n_, m, dt, gen = _resolve(n, num_samples, dtype, generator, "haar_orthogonal")
    if not isinstance(special, bool):
        raise TypeError(f"haar_orthogonal: special must be a bool; got {type(special).__name__}.")
    return _qr_haar(n_, m, special, gen).to(dtype=dt, device=device)


def _log_sinhc(x: torch.Tensor) -> torch.Tensor:
    """``log(sinh(x) / x)``, stable for small and large ``|x|``."""
    a = x.abs()
    small = a < 1e-3
    safe = torch.where(small, torch.ones_like(a), a)
    big = safe + torch.log1p(-torch.exp(-2 * safe)) - math.log(2.0) - torch.log(safe)
    return torch.where(small, a * a / 6, big)


def log_haar_density(symmetric: torch.Tensor) -> torch.Tensor:
    r""":math:`\log J(S) = \sum_{i<j} \log(\sinh(s_i - s_j)/(s_i - s_j))` for symmetric ``S``.

    The log density of the Haar measure of GL⁺(n) / SL(n) in the Cartan chart
    :math:`g = \exp(S)R` with respect to ``dS dR`` (module docstring).

    Args:
        symmetric: ``(..., n, n)`` symmetric matrices ``S``.

    Returns:
        The log densities, shape ``(...)``; differentiable.

    Raises:
        TypeError, ValueError: not a real square finite tensor.

    Example:
        >>> float(log_haar_density(torch.zeros(3, 3)))
        0.0
    """
    from ._lie import _check_square

    s = _check_square(symmetric, "log_haar_density", "symmetric")
    evals = torch.linalg.eigvalsh(0.5 * (s + s.mT))
    n = evals.shape[-1]
    iu = torch.triu_indices(n, n, offset=1, device=evals.device)
    diff = evals[..., iu[1]] - evals[..., iu[0]]
    return _log_sinhc(diff).sum(dim=-1)


def haar_sample(
    group: HaarGroup,
    n: int,
    num_samples: int,
    *,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> GroupSample:
    r"""Samples for Monte-Carlo integration against Haar measure on SO(n), O(n), SL(n), GL⁺(n).

    SO/O: exact Haar samples (zero log weights). SL/GL⁺: :math:`g = \exp(S) R` with :math:`R` Haar
    on SO(n) and :math:`S` isotropic Gaussian of standard deviation ``scale`` per Frobenius
    coordinate (traceless for SL), with importance log weights :math:`\log J(S) - \log p(S)`
    (module docstring). Drawn in float64 on the CPU, then cast and moved.

    Args:
        group: "SO", "O", "SL" or "GL+".
        n: matrix size. num_samples: how many.
        scale: spread of the symmetric factor (SL/GL⁺): the proposal covers
            :math:`\|S\|_F \lesssim 3σ \sqrt{\dim}`.
        generator: a CPU ``torch.Generator``; dtype, device: of the result.

    Returns:
        :class:`GroupSample`. Not differentiable (samples).

    Raises:
        TypeError: bad types (see :func:`haar_orthogonal`).
        ValueError: unknown ``group``, non-positive ``scale``, absurd sizes.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> s = haar_sample("SL", 3, 4, generator=gen, dtype=torch.float64)
        >>> torch.allclose(torch.linalg.det(s.elements), torch.ones(4, dtype=torch.float64))
        True
    """
    fn = "haar_sample"
    group = check_choice(group, _GROUPS, fn, "group")  # type: ignore[assignment]
    n_, m, dt, gen = _resolve(n, num_samples, dtype, generator, fn)
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not scale > 0
        or not math.isfinite(scale)
    ):
        raise ValueError(f"{fn}: scale must be a positive finite number; got {scale!r}.")
    rot = _qr_haar(n_, m, group != "O", gen)
    zeros = torch.zeros(m, n_, n_, dtype=torch.float64)
    if group in ("SO", "O"):
        out = GroupSample(rot, torch.zeros(m, dtype=torch.float64), zeros, rot)
    else:
        # isotropic Gaussian in Frobenius coordinates: diagonal N(0, σ²), off-diagonal N(0, σ²/2)
        a = torch.randn(m, n_, n_, generator=gen, dtype=torch.float64) * scale
        sym = (a + a.mT) / 2
        sym = sym + torch.diag_embed(
            torch.diagonal(a, dim1=-2, dim2=-1) - torch.diagonal(sym, dim1=-2, dim2=-1)
        )
        dim = n_ * (n_ + 1) // 2
        if group == "SL":
            trace = torch.diagonal(sym, dim1=-2, dim2=-1).sum(-1)
            sym = sym - trace[:, None, None] / n_ * torch.eye(n_, dtype=torch.float64)
            dim -= 1
        frob2 = sym.pow(2).sum(dim=(-2, -1))
        log_p = -frob2 / (2 * scale**2) - 0.5 * dim * math.log(2 * math.pi * scale**2)
        from ._lie import _sym_function

        elements = _sym_function(sym, "exp") @ rot
        out = GroupSample(elements, log_haar_density(sym) - log_p, sym, rot)
    return GroupSample(
        *(
            t.to(dtype=dt, device=device)
            for t in (out.elements, out.log_weights, out.symmetric, out.rotation)
        )
    )
