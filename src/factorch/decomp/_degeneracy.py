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
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..tensors import CPTensor

__all__ = ["CPDegeneracy", "cp_degeneracy", "degeneracy_from_grams"]


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
    # About 10 small operations per mode and one read to the host: the check runs after every
    # fit, and on small models its fixed cost is a visible part of the call.
    wide = torch.complex128 if model.weights.is_complex() else torch.float64
    with torch.no_grad():  # inside no_grad the casts below carry no graph: no detach needed
        first, *rest = model.factors
        scale, cosines = _norms_and_cosines(first, wide)
        for factor in rest:
            norms, gram = _norms_and_cosines(factor, wide)
            scale = scale * norms
            cosines = cosines * gram
        signed_w = model.weights.to(wide) * scale
        sign = torch.sgn(signed_w)
        congruence = (cosines * sign.conj()[:, None] * sign[None, :]).real
        # One read: the R x R congruences, then the R weight magnitudes.
        values = torch.cat((congruence.reshape(-1), signed_w.abs())).tolist()
    return _report(values, rank, float(threshold))


def degeneracy_from_grams(
    weights: torch.Tensor, grams: Sequence[torch.Tensor], *, threshold: float = -0.85
) -> CPDegeneracy:
    """:func:`cp_degeneracy` of ``CPTensor(weights, factors)`` from the Grams ``A_n^T A_n`` of
    its real float64 factors, on the host: no pass over the factors when a fit has their Grams
    at hand (the same numbers to rounding, about ``1e-15``). The caller checks its inputs.

    The cosine of columns ``r`` and ``s`` of ``A_n`` is ``G_n[r, s] / sqrt(G_n[r, r] G_n[s, s])``
    (0 beside a zero column, as in :func:`cp_degeneracy`), their norms ``sqrt(G_n[r, r])``.
    """
    rank = weights.numel()
    if rank < 2:
        return CPDegeneracy(False, 1.0, None, 1.0, float(threshold))
    signed_w = weights.tolist()
    cosines = [[1.0] * rank for _ in range(rank)]
    for g in grams:
        rows = g.tolist()
        # (a zero or NaN diagonal passes through: zero cosines, or NaN ones, as from the factors)
        norms = [math.sqrt(rows[r][r]) if rows[r][r] > 0 else rows[r][r] for r in range(rank)]
        inv = [1.0 / n if n != 0 else 1.0 for n in norms]
        for r in range(rank):
            signed_w[r] *= norms[r]
            row, cos_r, inv_r = rows[r], cosines[r], inv[r]
            for s in range(rank):
                cos_r[s] *= row[s] * inv_r * inv[s]
    sign = [(w > 0) - (w < 0) if w == w else w for w in signed_w]
    values = [cosines[r][s] * sign[r] * sign[s] for r in range(rank) for s in range(rank)]
    values += [abs(w) for w in signed_w]
    return _report(values, rank, float(threshold))


def _report(values: list[float], rank: int, threshold: float) -> CPDegeneracy:
    """The :class:`CPDegeneracy` of the row-major ``rank x rank`` congruences followed by the
    ``rank`` weight magnitudes in ``values``."""
    r, s, c = _most_negative(values, rank)
    wr, ws = values[rank * rank + r], values[rank * rank + s]
    # Relative to the larger weight, so weights near 1e200 or 1e-200 neither over- nor underflow.
    big = max(wr, ws)
    a, b = (wr / big, ws / big) if big > 0 else (0.0, 0.0)
    joint2 = max(a * a + b * b + 2.0 * a * b * c, 0.0)
    cancellation = (a + b) / math.sqrt(joint2) if joint2 > 0 else math.inf
    if big == 0:
        cancellation = 1.0
    pair = (min(r, s), max(r, s))
    return CPDegeneracy(c <= threshold, c, pair, cancellation, threshold)


def _norms_and_cosines(
    factor: torch.Tensor, wide: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The column norms of ``factor`` and the cosines between its columns (zero columns give
    zero cosines), in ``wide``."""
    f = factor.to(wide)
    norms = torch.linalg.vector_norm(f, dim=0)
    # Zero columns divided by 1 (a NaN or Inf norm gives NaN cosines either way).
    unit = f / norms.masked_fill(norms == 0, 1.0)
    return norms, unit.mH @ unit


def _most_negative(values: list[float], rank: int) -> tuple[int, int, float]:
    """``(r, s, c)``: the off-diagonal entry ``c`` of the row-major ``rank x rank`` matrix at the
    head of ``values`` that ``torch.argmin`` would pick (the first NaN if any, else the first
    smallest)."""
    best, best_r, best_s = math.inf, 0, 0
    found = False
    for r in range(rank):
        row = r * rank
        for s in range(rank):
            if s == r:
                continue
            c = values[row + s]
            if c != c:  # NaN: argmin returns the first one
                return r, s, c
            if not found or c < best:
                best, best_r, best_s, found = c, r, s, True
    return best_r, best_s, best
