"""The one-read degeneracy check (issue 14) against the per-entry reading it replaced."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.decomp import cp_degeneracy
from factorch.tensors import CPTensor


def _old_report(model: CPTensor, threshold: float = -0.85) -> tuple[bool, float, tuple, float]:
    """The check as it was computed before (argmin and four reads on the device)."""
    rank = model.rank
    wide = torch.complex128 if model.weights.is_complex() else torch.float64
    weights = model.weights.detach().to(wide)
    scale = torch.ones(rank, dtype=torch.float64)
    cosines = torch.ones(rank, rank, dtype=wide)
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
    r, s = divmod(int(torch.argmin(congruence)), rank)
    c = float(congruence[r, s])
    wr, ws = float(signed_w[r].abs()), float(signed_w[s].abs())
    big = max(wr, ws)
    a, b = (wr / big, ws / big) if big > 0 else (0.0, 0.0)
    joint2 = max(a * a + b * b + 2.0 * a * b * c, 0.0)
    cancellation = (a + b) / math.sqrt(joint2) if joint2 > 0 else math.inf
    if big == 0:
        cancellation = 1.0
    return c <= threshold, c, (min(r, s), max(r, s)), cancellation


def _models() -> list[CPTensor]:
    g = torch.Generator().manual_seed(3)
    out = []
    for shape, rank in [((4, 5, 6), 3), ((3, 7), 5), ((2, 3, 4, 5), 4), ((6, 6, 6), 2)]:
        factors = [torch.randn(n, rank, generator=g, dtype=torch.float64) for n in shape]
        out.append(CPTensor(torch.randn(rank, generator=g, dtype=torch.float64), factors))
    # Degenerate: two near-opposite components with huge weights, a third one apart.
    a = torch.randn(5, 3, generator=g, dtype=torch.float64)
    a[:, 1] = a[:, 0] + 1e-3 * torch.randn(5, generator=g, dtype=torch.float64)
    out.append(CPTensor(torch.tensor([1e6, -1e6, 1.0], dtype=torch.float64), [a, a, a]))
    # Ties (equal columns), a zero column and a zero weight.
    b = torch.ones(4, 3, dtype=torch.float64)
    b[:, 2] = 0.0
    out.append(CPTensor(torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64), [b, b]))
    # float32, complex and a NaN entry.
    out.append(CPTensor(torch.tensor([2.0, -3.0, 1.0]), [f.float() for f in (a, a, a)]))
    zf = [torch.randn(n, 3, generator=g, dtype=torch.complex128) for n in (3, 4, 5)]
    out.append(CPTensor(torch.tensor([1.0, 1j, -1.0], dtype=torch.complex128), zf))
    nan = a.clone()
    nan[2, 2] = math.nan
    out.append(CPTensor(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), [a, nan, a]))
    return out


@pytest.mark.parametrize("index", range(9))
def test_report_equals_the_old_reading(index: int) -> None:
    model = _models()[index]
    got = cp_degeneracy(model)
    want = _old_report(model)
    assert got.degenerate == want[0]
    assert got.pair == want[2]
    # Same operations in the same order: equal to the last bit (NaN compared as NaN).
    for new, old in ((got.min_congruence, want[1]), (got.cancellation, want[3])):
        assert new == old or (math.isnan(new) and math.isnan(old))


def test_degenerate_pair_found() -> None:
    got = cp_degeneracy(_models()[4])
    assert got.degenerate and got.pair == (0, 1) and got.cancellation > 100
