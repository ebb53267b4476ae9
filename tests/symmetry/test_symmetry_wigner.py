"""Clebsch--Gordan coefficients, Wigner-3j, Wigner-D and so(3) generators."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from factorch.symmetry import (
    clebsch_gordan,
    haar_orthogonal,
    irreps_wigner_D,
    so3_generators,
    wigner_3j,
    wigner_D,
)

o3 = pytest.importorskip("e3nn.o3")
F64 = torch.float64
LMAX = 5


def _rotations(k: int, seed: int = 0) -> torch.Tensor:
    return haar_orthogonal(3, k, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _triplets(lmax: int) -> list[tuple[int, int, int]]:
    return [
        (a, b, c)
        for a in range(lmax + 1)
        for b in range(lmax + 1)
        for c in range(abs(a - b), a + b + 1)
    ]


def _slow_cg(j1: int, m1: int, j2: int, m2: int, j3: int, m3: int) -> float:
    """Textbook Racah formula with Fractions (the obviously correct reference)."""
    if m1 + m2 != m3:
        return 0.0
    f = math.factorial
    pre = Fraction(
        (2 * j3 + 1) * f(j3 + j1 - j2) * f(j3 - j1 + j2) * f(j1 + j2 - j3), f(j1 + j2 + j3 + 1)
    )
    pre *= f(j3 + m3) * f(j3 - m3) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    total = Fraction(0)
    for k in range(0, j1 + j2 + j3 + 1):
        args = [k, j1 + j2 - j3 - k, j1 - m1 - k, j2 + m2 - k, j3 - j2 + m1 + k, j3 - j1 - m2 + k]
        if min(args) < 0:
            continue
        total += Fraction((-1) ** k, math.prod(f(a) for a in args))
    return float(total) * math.sqrt(float(pre))


def test_orthogonality_and_completeness() -> None:
    for l1 in range(LMAX + 1):
        for l2 in range(LMAX + 1):
            stacked = torch.cat(
                [
                    clebsch_gordan(l1, l2, l3).reshape(-1, 2 * l3 + 1)
                    for l3 in range(abs(l1 - l2), l1 + l2 + 1)
                ],
                dim=1,
            )
            eye = torch.eye(stacked.shape[0], dtype=F64)
            # each l3 block is an isometry and together they are an orthogonal change of basis
            assert float((stacked.T @ stacked - eye).abs().max()) < 1e-10
            assert float((stacked @ stacked.T - eye).abs().max()) < 1e-10


def test_equivariance() -> None:
    r = _rotations(3)
    for l1, l2, l3 in _triplets(LMAX):
        c = clebsch_gordan(l1, l2, l3)
        for k in range(3):
            d1, d2, d3 = (wigner_D(l, r[k]) for l in (l1, l2, l3))
            # C(D1 x, D2 y) = D3 C(x, y)
            lhs = torch.einsum("ia,jb,ijk->abk", d1, d2, c)
            rhs = torch.einsum("abq,kq->abk", c, d3)
            assert float((lhs - rhs).abs().max()) < 1e-10, (l1, l2, l3)


def test_matches_e3nn_path_by_path() -> None:
    for l1, l2, l3 in _triplets(6):
        ours = clebsch_gordan(l1, l2, l3)
        ref = o3.wigner_3j(l1, l2, l3, dtype=F64) * math.sqrt(2 * l3 + 1)
        assert torch.allclose(ours, ref, atol=1e-12), (l1, l2, l3)
        assert torch.allclose(
            wigner_3j(l1, l2, l3), o3.wigner_3j(l1, l2, l3, dtype=F64), atol=1e-12
        )


def test_complex_coefficients_match_the_textbook_formula() -> None:
    from factorch.symmetry._wigner import _complex_cg

    for j1, j2, j3 in [(1, 1, 2), (3, 2, 4), (7, 5, 9), (12, 12, 10)]:
        for m1 in range(-j1, j1 + 1, max(1, j1 // 3)):
            for m2 in range(-j2, j2 + 1, max(1, j2 // 3)):
                if abs(m1 + m2) <= j3:
                    assert _complex_cg(j1, m1, j2, m2, j3, m1 + m2) == pytest.approx(
                        _slow_cg(j1, m1, j2, m2, j3, m1 + m2), rel=1e-12, abs=1e-14
                    )


def test_high_degree_equivariance() -> None:
    r = _rotations(1, seed=3)[0]
    for l1, l2, l3 in [(10, 7, 12), (16, 8, 8), (9, 9, 18)]:
        c = clebsch_gordan(l1, l2, l3)
        lhs = torch.einsum("ia,jb,ijk->abk", wigner_D(l1, r), wigner_D(l2, r), c)
        rhs = torch.einsum("abq,kq->abk", c, wigner_D(l3, r))
        assert float((lhs - rhs).abs().max()) < 1e-10


def test_wigner_D_matches_e3nn_and_is_a_representation() -> None:
    # e3nn builds its generators in the default dtype (float32), so its D matrices carry ~1e-7
    # errors even from float64 angles; the float64 checks of ours are the identities below
    g = torch.Generator().manual_seed(5)
    angles = torch.rand(3, 4, generator=g, dtype=F64) * 2 * math.pi
    r_angles = o3.angles_to_matrix(*angles)
    for l in range(7):
        assert torch.allclose(wigner_D(l, r_angles), o3.wigner_D(l, *angles).to(F64), atol=1e-5)
    r = _rotations(4, seed=5)
    for l in range(7):
        d = wigner_D(l, r)
        assert torch.allclose(d @ d.mT, torch.eye(2 * l + 1, dtype=F64).expand_as(d), atol=1e-12)
        assert torch.allclose(wigner_D(l, r[0] @ r[1]), d[0] @ d[1], atol=1e-12)
    assert torch.allclose(wigner_D(1, r), r, atol=1e-14)
    assert wigner_D(2, r.float()).dtype == torch.float32


def test_generators_exponentiate_to_wigner_D() -> None:
    assert so3_generators(0).shape == (3, 1, 1) and float(so3_generators(0).abs().sum()) == 0.0
    for l in (1, 2, 4):
        gens = so3_generators(l)
        assert torch.allclose(gens, -gens.mT)
        for k in range(3):
            axis_gen = so3_generators(1)[k]
            for t in (0.3, -1.7):
                rot = torch.linalg.matrix_exp(t * axis_gen)
                assert torch.allclose(
                    wigner_D(l, rot), torch.linalg.matrix_exp(t * gens[k]), atol=1e-12
                )
        assert torch.allclose(gens, o3.so3_generators(l).to(F64), atol=1e-12)


def test_irreps_wigner_D_parity_and_blocks() -> None:
    r = _rotations(2, seed=7)
    improper = -r[0]
    m = irreps_wigner_D("2x0e + 1o + 1e + 2o", improper)
    ref = o3.Irreps("2x0e + 1o + 1e + 2o").D_from_matrix(improper)  # float32 angles inside
    assert torch.allclose(m, ref, atol=1e-5)
    d1, d2 = wigner_D(1, r[0]), wigner_D(2, r[0])
    assert torch.allclose(
        m, torch.block_diag(torch.ones(2, 2, dtype=F64).diag().diag(), -d1, d1, -d2), atol=1e-14
    )
    assert torch.allclose(irreps_wigner_D("1o", improper), improper, atol=1e-14)
    assert irreps_wigner_D("0e + 1o", r).shape == (2, 4, 4)


def test_cached_coefficients_are_not_shared() -> None:
    c = clebsch_gordan(1, 1, 2)
    c.zero_()
    assert float(clebsch_gordan(1, 1, 2).abs().max()) > 0.1
    assert clebsch_gordan(1, 1, 0, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: clebsch_gordan(1, 1, 3),
            ValueError,
            r"clebsch_gordan: \(l1, l2, l3\) must satisfy \|l1 - l2\| <= l3 <= l1 \+ l2; "
            r"got \(1, 1, 3\)",
        ),
        (
            lambda: clebsch_gordan(-1, 1, 1),
            ValueError,
            r"clebsch_gordan: l1 must be a non-negative int; got -1",
        ),
        (
            lambda: clebsch_gordan(1.0, 1, 1),
            TypeError,
            r"clebsch_gordan: l1 must be a non-negative int; got float",
        ),
        (lambda: wigner_3j(2, 0, 1), ValueError, r"wigner_3j: \(l1, l2, l3\) must satisfy"),
        (
            lambda: wigner_D(1, torch.eye(2)),
            ValueError,
            r"wigner_D: rotation must have shape \(\.\.\., 3, 3\); got \(2, 2\)",
        ),
        (
            lambda: wigner_D(1, 2 * torch.eye(3)),
            ValueError,
            r"wigner_D: rotation must be orthogonal matrices",
        ),
        (
            lambda: wigner_D(1, torch.eye(3, dtype=torch.int64)),
            TypeError,
            r"wigner_D: rotation must have a real floating-point dtype",
        ),
        (
            lambda: wigner_D(True, torch.eye(3)),
            TypeError,
            r"wigner_D: l must be a non-negative int; got bool",
        ),
        (lambda: so3_generators(70), ValueError, r"so3_generators: l must be at most 64"),
        (
            lambda: irreps_wigner_D("1x", torch.eye(3)),
            ValueError,
            r"irreps_wigner_D: irreps must be irreps",
        ),
        (
            lambda: irreps_wigner_D("1o", "eye"),
            TypeError,
            r"irreps_wigner_D: rotation must be a torch.Tensor or a numpy array",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
