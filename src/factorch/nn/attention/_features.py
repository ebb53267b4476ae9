r"""Polynomial feature maps of the exponential for the fast tensor attention (internal).

The truncated Taylor series ``p_g(s) = Σ_{j<=g} s^j / j!`` of ``exp`` is a polynomial in the
pair logit ``s = <q, k1 ∘ k2>`` and factorizes over the three vectors:

* **full monomials**: ``s^j = <q^{⊗j}, k1^{⊗j} ∘ k2^{⊗j}>``, so ``φ(q) = [q^{⊗j} / j!]_j`` and
  ``ψ(k) = [k^{⊗j}]_j`` have ``r = Σ_{j<=g} d^j`` entries;
* **symmetric monomials**: by the multinomial theorem ``s^j / j! = Σ_{|α|=j} (q∘k1∘k2)^α / α!``,
  so ``φ_α(q) = q^α / α!`` and ``ψ_α(k) = k^α`` over the multi-indices ``|α| <= g``: ``r =
  C(d + g, g)`` entries (``≈ d^g / g!``), the same polynomial with ``g!`` times fewer features.

Either way ``p_g(s) = <φ(q), ψ(k1) ∘ ψ(k2)>`` exactly. The feature dimension grows like ``d^g``:
for ``d = 64`` it is 2,145 at degree 2, 47,905 at degree 3 and 814,385 at degree 4 (symmetric),
which is what limits the fast path in practice (see :func:`tensor_attention_plan`).

Truncation error: for ``|s| <= R`` every weight has relative error
``|p_g(s) e^{-s} - 1| <= δ_g(R)``, computed exactly by :func:`taylor_relative_error`
(``δ_g(R) <= e^R R^{g+1} / (g+1)!``).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch

__all__ = [
    "FeatureKind",
    "feature_dimension",
    "monomial_features",
    "taylor_relative_error",
]

FeatureKind = Literal["symmetric", "full"]


def feature_dimension(d: int, degree: int, kind: FeatureKind) -> int:
    """Number of features ``r`` of the degree-``degree`` map in ``d`` variables."""
    if kind == "full":
        return sum(d**j for j in range(degree + 1))
    return math.comb(d + degree, degree)


def _taylor_tail(x: float, degree: int) -> float:
    """``Σ_{j>g} x^j / j!`` summed term by term (no cancellation against ``e^x``)."""
    term = math.copysign(1.0, x) ** (degree + 1) * math.exp(
        (degree + 1) * math.log(abs(x)) - math.lgamma(degree + 2)
    )
    tail, j = 0.0, degree + 1
    while term != 0.0 and (abs(term) > 1e-17 * abs(tail) or j <= abs(x) + 1):
        tail += term
        j += 1
        term *= x / j
    return tail


def taylor_relative_error(bound: float, degree: int) -> float:
    """``δ_g(R) = max_{|s| <= R} |p_g(s) e^{-s} - 1|``, exactly.

    ``h(s) = 1 - p_g(s) e^{-s}`` has ``h(0) = 0`` and ``h'(s) = s^g e^{-s} / g!``, so ``|h|`` is
    largest at ``s = ±R``: ``δ_g(R) = max(e^{-R} |τ(R)|, e^{R} |τ(-R)|)`` with the Taylor tail
    ``τ(x) = Σ_{j>g} x^j / j!``. ``inf`` when it cannot be represented (``R`` in the hundreds).
    """
    r = float(bound)
    if r == 0.0:
        return 0.0
    if r > 300.0:
        return math.inf
    return max(
        math.exp(-r) * abs(_taylor_tail(r, degree)), math.exp(r) * abs(_taylor_tail(-r, degree))
    )


@functools.lru_cache(maxsize=32)
def _symmetric_plan(
    d: int, degree: int
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """Per degree ``j >= 2``: (parent index into degree ``j-1``, variable, ``1/α!``), on the CPU.

    Monomials of degree ``j`` are the non-decreasing index tuples ``(l_1 <= ... <= l_j)``; each
    is its degree ``j-1`` prefix times ``x_{l_j}``. ``1/α!`` divides the parent's by the new
    multiplicity of ``l_j``.
    """
    plans = []
    last = torch.arange(d)
    run = torch.ones(d, dtype=torch.int64)
    coef = torch.ones(d, dtype=torch.float64)
    for _ in range(2, degree + 1):
        parents, variables = [], []
        for var in range(d):
            idx = (last <= var).nonzero().flatten()
            parents.append(idx)
            variables.append(torch.full_like(idx, var))
        parent, variable = torch.cat(parents), torch.cat(variables)
        mult = torch.where(last[parent] == variable, run[parent] + 1, 1)
        coef = coef[parent] / mult
        plans.append((parent, variable, coef))
        last, run = variable, mult
    return tuple(plans)


def monomial_features(
    x: torch.Tensor, degree: int, *, kind: FeatureKind, coefficients: bool
) -> torch.Tensor:
    """Monomials of ``x (..., d)`` of degree ``0..degree`` as ``(..., r)``.

    With ``coefficients`` each monomial is multiplied by its Taylor weight (``1/α!`` for the
    symmetric map, ``1/j!`` for the full one): the query side ``φ``; without, the key side ``ψ``.
    Differentiable.
    """
    d = x.shape[-1]
    parts = [torch.ones_like(x[..., :1])]
    if degree >= 1:
        parts.append(x)
    prev = x
    if kind == "full":
        for j in range(2, degree + 1):
            prev = (prev.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2)
            parts.append(prev / math.factorial(j) if coefficients else prev)
        return torch.cat(parts, -1)
    for parent, variable, coef in _symmetric_plan(d, degree):
        prev = prev.index_select(-1, parent.to(x.device)) * x.index_select(
            -1, variable.to(x.device)
        )
        parts.append(prev * coef.to(device=x.device, dtype=x.dtype) if coefficients else prev)
    return torch.cat(parts, -1)
