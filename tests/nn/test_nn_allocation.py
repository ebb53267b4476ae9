"""The rank allocator (``factorch.nn._allocation``): optimal on convex ladders, never past the
budget. The per-format ladders it consumes are tested with the formats (``test_nn_formats.py``)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from factorch.nn._allocation import Candidate, allocate


def test_allocate_is_optimal_on_convex_ladders_and_locally_optimal_otherwise():

    g = torch.Generator().manual_seed(1)

    def ladder(convex: bool) -> list[Candidate]:
        if convex:  # decreasing cost decrements per 10 parameters, the dense rung included
            steps = sorted(torch.rand(5, generator=g).tolist(), reverse=True)
            costs = [sum(steps[k:]) for k in range(5)]
        else:
            costs = sorted((3 * torch.rand(5, generator=g)).tolist(), reverse=True)
        rungs = [Candidate(r, 10 * (r + 1), 1 - math.exp(-c)) for r, c in enumerate(costs)]
        return [*rungs, Candidate(None, 60, 0.0)]

    for convex in (True, False):
        ladders = [ladder(convex) for _ in range(3)]
        for budget in (40, 60, 90, 130, 170):
            choices = [
                c
                for c in itertools.product(range(6), repeat=3)
                if sum(lad[i].params for lad, i in zip(ladders, c)) <= budget
            ]
            best = min(sum(lad[i].cost for lad, i in zip(ladders, c)) for c in choices)
            got = allocate(ladders, budget)
            spent = sum(lad[i].params for lad, i in zip(ladders, got))
            cost = sum(lad[i].cost for lad, i in zip(ladders, got))
            assert spent <= budget
            if convex:
                assert cost == pytest.approx(best, abs=1e-12), budget
            # no single layer can move to a better rung within the budget
            for layer, lad in enumerate(ladders):
                room = budget - spent + lad[got[layer]].params
                assert all(c.cost >= lad[got[layer]].cost for c in lad if c.params <= room)
    with pytest.raises(ValueError, match="budget of 20 parameters is below the 30"):
        allocate(ladders, 20)
