r"""Frame averaging: any point-cloud network made exactly invariant or equivariant.

For a group :math:`G` acting on inputs by :math:`ρ_1` and on outputs by :math:`ρ_2`, and a *frame*
:math:`F(X) \subset G` that is equivariant (:math:`F(gX) = gF(X)`), the frame average of any
backbone :math:`Φ`,

.. math::

    \langle Φ \rangle_F(X) = \frac{1}{|F(X)|} \sum_{g \in F(X)} ρ_2(g)\, Φ(ρ_1(g)^{-1} X),

is exactly :math:`G`-equivariant (invariant when :math:`ρ_2` is trivial), at the cost of
:math:`|F(X)|` backbone evaluations instead of an integral over :math:`G` (Puny et al., 2022).

For point clouds :math:`X \in \mathbb R^{n \times d}` under E(d) (:math:`x \mapsto Rx + t`) the
PCA frame is: the centroid :math:`t`, the eigenvectors :math:`V` of the covariance
:math:`(X - t)^T (X - t)`, and all sign choices
:math:`\{(V \mathrm{diag}(s), t) : s \in \{\pm1\}^d\}`
(:math:`2^d` elements; the signs of eigenvectors are arbitrary, the set of all of them is not).
For SO(d)/SE(d) only the :math:`2^{d-1}` elements with determinant ``+1`` are kept (the last sign
is fixed by the others); for O(d)/SO(d) (no translations) :math:`t = 0`.
Inputs in the frame are :math:`(X - t) V_s`; equivariant vector outputs are rotated back,
:math:`Y V_s^T`, and positions also translated, :math:`Y V_s^T + t`.

The frame is well defined only when the covariance has distinct eigenvalues; near-degenerate
spectra (symmetric or planar/collinear clouds) make the eigenvectors ill-conditioned, and the
average is then only approximately equivariant: a :class:`FrameDegeneracyWarning` is raised when
the smallest relative gap falls below ``degeneracy_tol``.

Reference:
    O. Puny, M. Atzmon, H. Ben-Hamu, I. Misra, A. Grover, E. J. Smith, Y. Lipman, Frame averaging
    for invariant and equivariant network design, ICLR 2022 (the sign-flip PCA frames follow the
    authors' code, omri1348/Frame-Averaging).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Literal

import torch

from .._numerics import power_of_two_scale, working_dtype
from ._common import check_choice, check_real_tensor

__all__ = ["FrameAveraging", "FrameDegeneracyWarning", "PCAFrames", "pca_frames"]

FrameGroup = Literal["O(3)", "SO(3)", "E(3)", "SE(3)", "O(n)", "SO(n)", "E(n)", "SE(n)"]
FrameOutput = Literal["invariant", "vectors", "positions"]
_GROUPS = ("O(3)", "SO(3)", "E(3)", "SE(3)", "O(n)", "SO(n)", "E(n)", "SE(n)")
_OUTPUTS = ("invariant", "vectors", "positions")


class FrameDegeneracyWarning(UserWarning):
    """The covariance of a point cloud has (nearly) repeated eigenvalues: the PCA frame is
    ill-defined and frame averaging only approximately equivariant for that input."""


@dataclasses.dataclass(frozen=True)
class PCAFrames:
    """The PCA frames of a batch of point clouds.

    Attributes:
        rotations: ``(..., K, d, d)`` frame matrices ``V_s`` (orthogonal; columns are axes).
        centroid: ``(..., 1, d)`` translation ``t`` (zeros for O(d), SO(d)).
        eigenvalues: ``(..., d)`` covariance eigenvalues divided by the largest one, ascending
            (relative: the absolute ones are squares of the data and may not be representable).
        min_relative_gap: ``(...)`` smallest gap between eigenvalues over the largest one.

    Example:
        >>> x = torch.tensor([[0.0, 0, 0], [3, 0, 0], [0, 2, 0], [0, 0, 1]], dtype=torch.float64)
        >>> f = pca_frames(x, group="O(3)")  # no translations: the points are not centred
        >>> f.rotations.shape, [round(v, 4) for v in f.eigenvalues.tolist()]
        (torch.Size([8, 3, 3]), [0.1111, 0.4444, 1.0])
    """

    rotations: torch.Tensor
    centroid: torch.Tensor
    eigenvalues: torch.Tensor
    min_relative_gap: torch.Tensor


def _group_parts(group: str, d: int, fn: str) -> tuple[bool, bool]:
    """``(translations, special)``; checks the dimension of the named 3-D groups."""
    if group.endswith("(3)") and d != 3:
        raise ValueError(
            f"{fn}: group {group!r} acts on 3-D points but the points have {d} coordinates; "
            f"use {group.replace('(3)', '(n)')!r} for d-dimensional points."
        )
    return group.startswith(("E", "SE")), group.startswith("S")


def pca_frames(
    points: torch.Tensor,
    *,
    group: FrameGroup = "E(3)",
    degeneracy_tol: float | None = None,
) -> PCAFrames:
    r"""The PCA frames of point clouds for O(d), SO(d), E(d) or SE(d).

    Args:
        points: ``(..., n, d)`` real tensor, ``n >= 1`` points in ``d`` dimensions.
        group: "O(3)", "SO(3)", "E(3)", "SE(3)" (3-D points) or the same with ``(n)`` for any
            ``d``. E/SE include translations (the centroid is removed).
        degeneracy_tol: warn when an eigenvalue gap is below this fraction of the largest
            eigenvalue (default: the square root of the dtype's machine epsilon).

    Returns:
        :class:`PCAFrames` (``K = 2^d`` frames for O/E, ``2^(d-1)`` for SO/SE). Differentiable
        where the spectrum is simple (the eigenvectors' gradient grows like one over the gap).

    Raises:
        TypeError: ``points`` not a real floating tensor.
        ValueError: fewer than 2 dimensions, no points, non-finite entries, a 3-D group for
            other ``d``, an unknown ``group``, a negative ``degeneracy_tol``.

    Warns:
        FrameDegeneracyWarning: nearly repeated covariance eigenvalues.

    Example:
        >>> x = torch.tensor([[0.0, 0, 0], [3, 0, 0], [0, 2, 0], [0, 0, 1]], dtype=torch.float64)
        >>> f = pca_frames(x, group="SE(3)")
        >>> det = torch.linalg.det(f.rotations)
        >>> f.rotations.shape, bool(torch.allclose(det, torch.ones(4, dtype=torch.float64)))
        (torch.Size([4, 3, 3]), True)
    """
    fn = "pca_frames"
    points = check_real_tensor(points, fn, "points", min_ndim=2)
    group = check_choice(group, _GROUPS, fn, "group")  # type: ignore[assignment]
    n, d = points.shape[-2], points.shape[-1]
    if n < 1 or d < 1:
        raise ValueError(
            f"{fn}: points must have shape (..., n, d) with n, d >= 1; got {tuple(points.shape)}."
        )
    translations, special = _group_parts(group, d, fn)
    if degeneracy_tol is None:
        degeneracy_tol = math.sqrt(torch.finfo(working_dtype(points.dtype)).eps)
    elif (
        isinstance(degeneracy_tol, bool)
        or not isinstance(degeneracy_tol, (int, float))
        or degeneracy_tol < 0
    ):
        raise ValueError(
            f"{fn}: degeneracy_tol must be a non-negative number or None; got {degeneracy_tol!r}."
        )
    # eigh in float32 at least; an exact power-of-two scaling keeps the covariance in range
    dtype = points.dtype
    scale = power_of_two_scale(points)
    x = points.to(working_dtype(dtype)) / scale
    centroid = x.mean(dim=-2, keepdim=True) if translations else torch.zeros_like(x[..., :1, :])
    centred = x - centroid
    evals, evecs = torch.linalg.eigh(centred.mT @ centred)
    top = evals[..., -1:].abs().clamp_min(torch.finfo(evals.dtype).tiny)
    gaps = (evals[..., 1:] - evals[..., :-1]) / top if d > 1 else evals[..., :0]
    min_gap = (
        gaps.min(dim=-1).values
        if d > 1
        else torch.full(evals.shape[:-1], math.inf, dtype=evals.dtype, device=evals.device)
    )
    if d > 1 and points.numel() and bool((min_gap < degeneracy_tol).any()):
        worst = float(min_gap.detach().min())
        warnings.warn(
            f"{fn}: a point cloud's covariance has nearly repeated eigenvalues (relative gap "
            f"{worst:.2e} < {degeneracy_tol:.1e}); its PCA frame is ill-defined, so frame "
            "averaging is only approximately equivariant for it (symmetric, planar or collinear "
            "clouds).",
            FrameDegeneracyWarning,
            stacklevel=3,
        )
    free = d - 1 if special else d
    signs = torch.tensor(
        list(itertools.product((1.0, -1.0), repeat=free)), dtype=evecs.dtype, device=evecs.device
    )
    if special:
        # the last sign makes det(V diag(s)) = det(V) * prod(s) = +1
        det = torch.linalg.det(evecs)  # (...)
        last = det[..., None] * signs.prod(dim=-1)  # (..., K)
        full = torch.cat([signs.expand(*det.shape, *signs.shape), last[..., None]], dim=-1)
    else:
        full = signs.expand(*evals.shape[:-1], *signs.shape)
    rotations = evecs[..., None, :, :] * full[..., :, None, :]
    return PCAFrames(
        rotations.to(dtype),
        (centroid * scale).to(dtype),
        (evals / top).to(dtype),
        min_gap.to(dtype),
    )


class FrameAveraging(torch.nn.Module):
    r"""Wrap a point-cloud network so it is exactly invariant or equivariant (frame averaging).

    Args:
        backbone: any module or callable taking ``(B, n, d)`` points (in the frame's
            coordinates) and returning ``(B, ...)``; for ``output="vectors"`` or "positions" the
            last output dimension must be ``d``.
        group: "E(3)" (default), "SE(3)", "O(3)", "SO(3)", or their ``(n)`` forms for ``d``-dim
            points.
        output: "invariant" (average of the outputs), "vectors" (rotated back: forces,
            velocities, normals) or "positions" (rotated back and translated).
        degeneracy_tol: see :func:`pca_frames`.

    Forward:
        ``points``: ``(..., n, d)`` -> ``(..., *backbone output shape)``; the backbone runs once
        on all ``K`` frames of all clouds (a batch of ``prod(...) * K``). Differentiable.

    Raises:
        TypeError: a backbone that is not callable.
        ValueError: unknown ``group`` or ``output``; at call time: bad points (see
            :func:`pca_frames`) or a vector output whose last dimension is not ``d``.

    Warns:
        FrameDegeneracyWarning: at call time, for clouds with nearly repeated eigenvalues.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 1)).double()
        >>> fa = FrameAveraging(net, group="E(3)")
        >>> x = torch.randn(2, 5, 3, dtype=torch.float64)
        >>> q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
        >>> torch.allclose(fa(x), fa(x @ q.T + 1.5))
        True
    """

    def __init__(
        self,
        backbone: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        group: FrameGroup = "E(3)",
        output: FrameOutput = "invariant",
        degeneracy_tol: float | None = None,
    ) -> None:
        super().__init__()
        fn = "FrameAveraging"
        if not callable(backbone):
            raise TypeError(
                f"{fn}: backbone must be a module or callable; got {type(backbone).__name__}."
            )
        self.backbone = backbone
        self.group: FrameGroup = check_choice(group, _GROUPS, fn, "group")  # type: ignore[assignment]
        self.output: FrameOutput = check_choice(output, _OUTPUTS, fn, "output")  # type: ignore[assignment]
        self.degeneracy_tol = degeneracy_tol

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        fn = "FrameAveraging"
        frames = pca_frames(points, group=self.group, degeneracy_tol=self.degeneracy_tol)
        lead = points.shape[:-2]
        n, d = points.shape[-2:]
        k = frames.rotations.shape[-3]
        framed = (points - frames.centroid)[..., None, :, :] @ frames.rotations  # (..., K, n, d)
        out = self.backbone(framed.reshape(-1, n, d))
        out = out.reshape(*lead, k, *out.shape[1:])
        if self.output == "invariant":
            return out.mean(dim=len(lead))
        if out.shape[-1] != d:
            raise ValueError(
                f"{fn}: with output={self.output!r} the backbone's last output dimension must be "
                f"{d} (vectors in the frame); got output shape {tuple(out.shape[len(lead) + 1 :])}."
            )
        extra = out.ndim - len(lead) - 2  # dimensions between the frame axis and the vector axis
        rot = frames.rotations.reshape(*lead, k, *([1] * extra), d, d)
        back = (out[..., None, :] @ rot.mT)[..., 0, :]  # y V_s^T, row vectors
        mean = back.mean(dim=len(lead))
        if self.output == "positions":
            mean = mean + frames.centroid.reshape(*lead, *([1] * extra), d)
        return mean
