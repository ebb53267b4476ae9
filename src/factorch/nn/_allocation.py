"""Rank allocation across layers under a global parameter budget (energy criterion).

Each layer's format predicts (``WeightFormat.energy_ladder``), from singular values alone where
it can, the relative squared error ``e^2(rank) = ||W - W_rank||^2 / ||W||^2`` along a ladder of
ranks: exact for low rank (Eckart--Young) and Tucker (the truncated HOSVD), the TT-SVD upper
bound for TT, unfolding-rank lower bounds for CP and TR, and the measured error of the
decomposition for a format that defines no prediction. This module is format-neutral: it holds
the ladder rung (:class:`Candidate`), the spectral helpers the formats share, and the allocator.

The allocator maximises the product of the energy fractions the layers retain,
``prod_l (1 - e_l^2)``, i.e. minimises ``sum_l -log(1 - e_l^2)``, subject to
``sum_l params_l <= budget``. A signal passing through the network is attenuated by every
layer's lost energy, so the product is what matters; unlike ``sum_l e_l^2`` this cost grows
without bound as one layer's error approaches 1, so no layer is sacrificed to keep others
exact. Each layer starts at its cheapest rank; steps along each layer's lower convex hull of
``(params, cost)`` are taken greedily by cost removed per parameter while they fit (optimal for
the convexified problem, the classic marginal-gain rule); a last pass upgrades each layer to the
best ladder point (hull or not) that still fits. Keeping a layer dense (``e = 0``) is the last
point of every ladder, so small layers that factorization cannot shrink stay dense.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import torch

from ..decomp.internal import Rank

__all__ = ["Candidate", "allocate", "mode_tails", "sequential_tails", "sq_singular_values", "tails"]


@dataclass(frozen=True)
class Candidate:
    """One rung of a layer's ladder: ``rank`` (None = keep dense), its params and predicted
    relative squared error."""

    rank: Rank | None
    params: int
    error2: float

    @property
    def cost(self) -> float:
        """``-log(1 - e^2)``: the log of the energy fraction lost (capped for ``e -> 1``)."""
        return -math.log(max(1.0 - self.error2, 1e-12))


def sq_singular_values(mat: torch.Tensor) -> torch.Tensor:
    """Squared singular values, descending, via the eigenvalues of the smaller Gram (float64 or
    complex128; real result)."""
    m = mat.to(torch.complex128 if mat.is_complex() else torch.float64)
    gram = m @ m.mH if m.shape[0] <= m.shape[1] else m.mH @ m
    return torch.linalg.eigvalsh(gram).flip(0).clamp_min(0)


def tails(sq: torch.Tensor, total: float) -> list[float]:
    """``tails[r]`` = energy beyond the first ``r`` values, relative to ``total``."""
    c = torch.cumsum(sq, 0)
    kept = [0.0, *c.tolist()]
    return [max(total - k, 0.0) / total for k in kept]


def sequential_tails(t: torch.Tensor, total: float) -> list[list[float]]:
    """:func:`tails` of every sequential unfolding ``(I_0..I_{k-1}) x (I_k..)`` of ``t``."""
    shape = t.shape
    return [
        tails(sq_singular_values(t.reshape(math.prod(shape[:k]), -1)), total)
        for k in range(1, t.ndim)
    ]


def mode_tails(t: torch.Tensor, total: float, modes: range) -> list[list[float]]:
    """:func:`tails` of the mode-``n`` unfoldings of ``t`` for ``n`` in ``modes``."""
    return [
        tails(sq_singular_values(t.movedim(n, 0).reshape(t.shape[n], -1)), total) for n in modes
    ]


def _hull(points: list[Candidate]) -> list[int]:
    """Indices of the lower convex hull of ``(params, error2)`` from the cheapest point."""
    hull: list[int] = []
    for i, p in enumerate(points):
        if hull and p.cost >= points[hull[-1]].cost:
            continue  # never worth more params for no less error
        while len(hull) >= 2:
            a, b = points[hull[-2]], points[hull[-1]]
            # drop b if it lies on or above the segment a -> p
            if (b.cost - a.cost) * (p.params - a.params) >= (p.cost - a.cost) * (
                b.params - a.params
            ):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def allocate(ladders: list[list[Candidate]], budget: float) -> list[int]:
    """Chosen ladder index per layer minimising ``sum -log(1 - e^2)`` within ``budget`` params.

    Each ladder must end with the dense option. Raises ``ValueError`` when even the cheapest
    rungs exceed the budget.
    """
    choice = [0] * len(ladders)
    spent = sum(lad[0].params for lad in ladders)
    if spent > budget:
        raise ValueError(
            f"compress: the budget of {budget:.0f} parameters is below the {spent} that rank-1 "
            "factorizations of the selected layers need; raise ratio or exclude small layers."
        )
    hulls = [_hull(lad) for lad in ladders]
    pos = [0] * len(ladders)
    heap: list[tuple[float, int]] = []

    def push(layer: int) -> None:
        h, k = hulls[layer], pos[layer]
        if k + 1 < len(h):
            a, b = ladders[layer][h[k]], ladders[layer][h[k + 1]]
            slope = (a.cost - b.cost) / max(b.params - a.params, 1)
            heapq.heappush(heap, (-slope, layer))

    for layer in range(len(ladders)):
        push(layer)
    while heap:
        _, layer = heapq.heappop(heap)
        h, k = hulls[layer], pos[layer]
        cost = ladders[layer][h[k + 1]].params - ladders[layer][h[k]].params
        if spent + cost > budget:
            continue  # this layer is done: its later hull steps have lower gain per parameter
        spent += cost
        pos[layer] = k + 1
        choice[layer] = h[k + 1]
        push(layer)
    # fill: any ladder point (hull or not) that fits and lowers the error
    for layer, lad in enumerate(ladders):
        cur = lad[choice[layer]]
        room = budget - spent + cur.params
        best = choice[layer]
        for i, cand in enumerate(lad):
            if cand.params <= room and cand.cost < lad[best].cost:
                best = i
        spent += lad[best].params - cur.params
        choice[layer] = best
    return choice
