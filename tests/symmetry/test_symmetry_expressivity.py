"""Expressivity (Xie et al., 2025): measured span of reachable equivariant bilinear maps."""

from __future__ import annotations

import pytest
import torch

from factorch.symmetry import Irrep, Irreps, default_irreps_out, expressivity


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _formula(x: Irreps, y: Irreps, z: Irreps, *, even_only: bool) -> int:
    """Sum over allowed path types of m_X m_Y m_Z (only even l1 + l2 + l3 for the Gaunt product)."""

    def mult(ir: Irreps) -> dict[Irrep, int]:
        out: dict[Irrep, int] = {}
        for e in ir.expanded():
            out[e] = out.get(e, 0) + 1
        return out

    mx, my, mz = mult(x), mult(y), mult(z)
    total = 0
    for a, ma in mx.items():
        for b, mb in my.items():
            for c, mc in mz.items():
                allowed = c.p == a.p * b.p and abs(a.l - b.l) <= c.l <= a.l + b.l
                if allowed and (not even_only or (a.l + b.l + c.l) % 2 == 0):
                    total += ma * mb * mc
    return total


@pytest.mark.parametrize("lmax", [1, 2, 3, 4])
def test_spherical_irreps_counts_match_the_formula(lmax: int) -> None:
    ir = Irreps.spherical_harmonics(lmax)
    out = default_irreps_out(ir, ir)
    cg = expressivity("cg", ir, ir, out, generator=_gen())
    gaunt = expressivity("gaunt", ir, ir, out, generator=_gen(1))
    # closed forms of sum_{l1, l2 <= L} (2 min + 1) and sum (min + 1)
    paths = (lmax + 1) * (2 * lmax**2 + 4 * lmax + 3) // 3
    even = (lmax + 1) * (lmax + 2) * (2 * lmax + 3) // 6
    assert cg.maximum == cg.dimension == paths == _formula(ir, ir, out, even_only=False)
    assert gaunt.maximum == paths and gaunt.dimension == even == _formula(
        ir, ir, out, even_only=True
    )
    assert cg.missing == () and len(gaunt.missing) == paths - even
    assert all((a.l + b.l + c.l) % 2 == 1 for a, b, c in gaunt.missing)
    assert max(cg.schur_residual, gaunt.schur_residual) < 1e-12


def test_multiplicities() -> None:
    x, y = Irreps("2x0e + 1x1o + 2x1e"), Irreps("1x0e + 2x1o")
    z = Irreps("2x0e + 1x1o + 1x1e + 2x2e + 1x2o")
    e = expressivity("cg", x, y, z, generator=_gen(2))
    assert e.dimension == e.maximum == _formula(x, y, z, even_only=False)
    xs, ys = Irreps("2x0e + 1x1o + 1x2e"), Irreps("1x0e + 2x1o")
    zs = Irreps("1x0e + 2x1o + 1x1e + 2x2e")
    g = expressivity("gaunt", xs, ys, zs, generator=_gen(3))
    assert g.dimension == _formula(xs, ys, zs, even_only=True) < g.maximum


def test_interactability_cross_product_missing_for_gaunt() -> None:
    e = expressivity("gaunt", "0e + 1o", "0e + 1o", "0e + 1o + 1e + 2e", generator=_gen(4))
    assert [tuple(map(str, p)) for p in e.missing] == [("1o", "1o", "1e")]
    assert (e.dimension, e.maximum) == (5, 6)
    cg = expressivity("cg", "1o", "1o", "1e", generator=_gen(5))
    assert (cg.dimension, cg.maximum) == (1, 1)


def test_too_few_samples_cannot_see_the_dimension() -> None:
    # a path type with m1 m2 m3 = 8 coordinates needs more than 8 samples: the measurement is real
    e = expressivity("cg", "2x1o", "2x1o", "2x0e", samples=3, generator=_gen(6))
    assert e.maximum == 8 and e.dimension == 3
    assert expressivity("cg", "2x1o", "2x1o", "2x0e", generator=_gen(6)).dimension == 8


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        (
            {"operation": "matrix"},
            ValueError,
            r"expressivity: operation must be one of 'cg', 'gaunt'; got 'matrix'",
        ),
        ({"irreps1": "1q"}, ValueError, r"expressivity: irreps1 must be irreps such as"),
        ({"irreps_out": ""}, ValueError, r"expressivity: irreps_out must not be empty"),
        (
            {"samples": 0},
            ValueError,
            r"expressivity: samples must be a positive int or None; got 0",
        ),
        (
            {"samples": 2.5},
            TypeError,
            r"expressivity: samples must be a positive int or None; got float",
        ),
        (
            {"generator": 3},
            TypeError,
            r"expressivity: generator must be a torch.Generator or None; got int",
        ),
        (
            {"operation": "gaunt", "irreps1": "0e + 0o"},
            ValueError,
            r"expressivity: the Gaunt product acts on spherical signals",
        ),
        (
            {"operation": "gaunt", "irreps1": "0e + 1e", "irreps2": "0e + 1o"},
            ValueError,
            r"equivariant under inversion only when both signals",
        ),
    ],
)
def test_errors(kwargs: dict[str, object], kind: type[Exception], match: str) -> None:
    args: dict[str, object] = {
        "operation": "cg",
        "irreps1": "0e + 1o",
        "irreps2": "0e + 1o",
        "irreps_out": "0e + 1o",
    }
    args.update(kwargs)
    with pytest.raises(kind, match=match):
        expressivity(**args)  # type: ignore[arg-type]
