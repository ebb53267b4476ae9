"""Diagnosis of degenerate CP models ("two-factor degeneracy", "swamps").

When a tensor has no best rank-``R`` CP approximation, or ALS is stuck in a swamp, two or more
components grow without bound while cancelling each other: their vectors point in nearly opposite
directions in every mode (the product of their cosines approaches -1) and their weights are much
larger than the norm of what they jointly model. The fit then improves by tiny amounts for many
iterations and the components are meaningless. Kruskal, Harshman and Lundy ("How 3-MFA data can
cause degenerate PARAFAC solutions", 1989) give the diagnostic used here: the *congruence* of two
components is ``prod_n cos(a_r^(n), a_s^(n))`` (with the signs of the weights), and a pair whose
congruence is close to -1 signals degeneracy.

References: Kruskal, Harshman & Lundy, in *Multiway Data Analysis*, 1989; Krijnen, Dijkstra &
Stegeman, "On the non-existence of optimal solutions and the occurrence of degeneracy in the
CANDECOMP/PARAFAC model", Psychometrika 73, 2008.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..tensors import CPTensor

__all__ = ["CPDegeneracy", "cp_degeneracy"]


@dataclass(frozen=True)
class CPDegeneracy:
    """Outcome of :func:`cp_degeneracy`.

    Attributes:
        degenerate: True when some pair of components has congruence at or below ``threshold``.
        min_congruence: the most negative congruence over pairs of components (1.0 for rank 1).
        pair: the two components ``(r, s)`` with that congruence, or None for rank 1.
        cancellation: ``(|w_r| + |w_s|) / ||w_r c_r + w_s c_s||`` for that pair (``c`` the unit
            rank-one tensors): 1 for orthogonal or aligned components, large when they cancel.
        threshold: the congruence at or below which a pair counts as degenerate.

    Example:
        >>> a = torch.tensor([[1.0, 1.0], [0.0, 0.1]])
        >>> model = factorch.tensors.CPTensor(torch.tensor([1.0, -1.0]), [a, a, a])
        >>> check = factorch.decomp.cp_degeneracy(model)
        >>> check.degenerate, check.pair
        (True, (0, 1))
    """

    degenerate: bool
    min_congruence: float
    pair: tuple[int, int] | None
    cancellation: float
    threshold: float

    @property
    def message(self) -> str:
        """One line for a report, empty when the model is not degenerate."""
        if not self.degenerate or self.pair is None:
            return ""
        r, s = self.pair
        return (
            f"degenerate model: components {r} and {s} cancel (congruence "
            f"{self.min_congruence:.2f}, weights {self.cancellation:.1f}x what they jointly "
            "model); try a lower rank, non-negativity or an L2 penalty"
        )


def cp_degeneracy(model: CPTensor, *, threshold: float = -0.85) -> CPDegeneracy:
    """Check a CP model for two-factor degeneracy.

    Args:
        model: the CP tensor to check (any scaling of its factor columns).
        threshold: a pair of components whose congruence (product over modes of the cosines of
            their vectors, signed by their weights) is at or below this is flagged. The default
            -0.85 flags the cancelling pairs of diverging ALS runs while leaving merely
            correlated components alone.

    Returns:
        :class:`CPDegeneracy`.

    Raises:
        TypeError: ``model`` that is not a :class:`~factorch.tensors.CPTensor`.
        ValueError: ``threshold`` outside ``[-1, 1]``.

    Not differentiable. Costs ``O(sum_n I_n R^2)``.

    Example:
        >>> from factorch.random import random_cp
        >>> cp_degeneracy(random_cp((5, 6, 7), 3, generator=torch.Generator().manual_seed(0)))
        ...  # doctest: +ELLIPSIS
        CPDegeneracy(degenerate=False, ...)
    """
    if not isinstance(model, CPTensor):
        raise TypeError(f"cp_degeneracy: model must be a CPTensor; got {type(model).__name__}.")
    if not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
        raise ValueError(
            f"cp_degeneracy: threshold must be a number in [-1, 1]; got {threshold!r}."
        )
    rank = model.rank
    if rank < 2:
        return CPDegeneracy(False, 1.0, None, 1.0, float(threshold))
    # Complex models: cosines a^H b and weight phases, the congruence the real part of their
    # product (then |w_r c_r + w_s c_s|^2 = |w_r|^2 + |w_s|^2 + 2 |w_r w_s| congruence).
    wide = torch.complex128 if model.weights.is_complex() else torch.float64
    with torch.no_grad():
        weights = model.weights.detach().to(wide)
        scale = torch.ones(rank, dtype=torch.float64, device=weights.device)
        cosines = torch.ones(rank, rank, dtype=wide, device=weights.device)
        for factor in model.factors:
            f = factor.detach().to(wide)
            norms = torch.linalg.vector_norm(f, dim=0)
            scale = scale * norms
            unit = f / torch.where(norms > 0, norms, torch.ones_like(norms))
            cosines = cosines * (unit.mH @ unit)
        signed_w = weights * scale
        sign = torch.sgn(signed_w)
        congruence = (cosines * sign.conj()[:, None] * sign[None, :]).real.contiguous()
        congruence.fill_diagonal_(math.inf)
        flat = int(torch.argmin(congruence))
        r, s = divmod(flat, rank)
        c = float(congruence[r, s])
        wr, ws = float(signed_w[r].abs()), float(signed_w[s].abs())
    # Relative to the larger weight, so weights near 1e200 or 1e-200 neither over- nor underflow.
    big = max(wr, ws)
    a, b = (wr / big, ws / big) if big > 0 else (0.0, 0.0)
    joint2 = max(a * a + b * b + 2.0 * a * b * c, 0.0)
    cancellation = (a + b) / math.sqrt(joint2) if joint2 > 0 else math.inf
    if big == 0:
        cancellation = 1.0
    pair = (min(r, s), max(r, s))
    return CPDegeneracy(c <= threshold, c, pair, cancellation, float(threshold))
