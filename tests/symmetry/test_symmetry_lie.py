"""Polar / Cartan decompositions of GL+(n), SL(n), SPD; rotation logarithm; the global chart."""

from __future__ import annotations

import pytest
import torch

from factorch.symmetry import (
    cartan_decomposition,
    haar_orthogonal,
    lie_chart,
    lie_chart_inverse,
    polar_decomposition,
    rotation_log,
    spd_exp,
    spd_log,
)

F64 = torch.float64


def _gl_plus(n: int, k: int, seed: int = 0, special: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(k, n, n, generator=g, dtype=F64) + 2 * torch.eye(n, dtype=F64)
    det = torch.linalg.det(m)
    m[det < 0, :, 0] *= -1  # positive determinant
    if special:
        m = m / torch.linalg.det(m).abs()[:, None, None] ** (1 / n)
    return m


def _is_spd(p: torch.Tensor) -> bool:
    return bool(torch.allclose(p, p.mT, atol=1e-12)) and bool((torch.linalg.eigvalsh(p) > 0).all())


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("special", [False, True])
def test_polar_round_trip(n: int, special: bool) -> None:
    g = _gl_plus(n, 6, seed=n, special=special)
    eye = torch.eye(n, dtype=F64)
    for side in ("left", "right"):
        pd = polar_decomposition(g, side=side)  # type: ignore[arg-type]
        recon = pd.positive @ pd.orthogonal if side == "left" else pd.orthogonal @ pd.positive
        assert float((recon - g).abs().max()) < 1e-12
        assert _is_spd(pd.positive)
        assert torch.allclose(pd.orthogonal.mT @ pd.orthogonal, eye.expand(6, n, n), atol=1e-12)
        assert torch.allclose(torch.linalg.det(pd.orthogonal), torch.ones(6, dtype=F64), atol=1e-12)
        if special:
            assert torch.allclose(
                torch.linalg.det(pd.positive), torch.ones(6, dtype=F64), atol=1e-10
            )
    # negative determinant: the orthogonal factor is a reflection
    flipped = g.clone()
    flipped[:, :, 0] *= -1
    pd = polar_decomposition(flipped)
    assert torch.allclose(torch.linalg.det(pd.orthogonal), -torch.ones(6, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("special", [False, True])
def test_cartan_round_trip_and_chart(special: bool) -> None:
    g = _gl_plus(3, 5, seed=7, special=special)
    c = cartan_decomposition(g)
    assert torch.allclose(c.symmetric, c.symmetric.mT, atol=1e-14)
    assert float((torch.linalg.matrix_exp(c.symmetric) @ c.rotation - g).abs().max()) < 1e-12
    trace = torch.diagonal(c.symmetric, dim1=-2, dim2=-1).sum(-1)
    if special:
        assert float(trace.abs().max()) < 1e-12  # SL(n): traceless symmetric factor
    coords = lie_chart(g)
    assert coords.shape == (5, 9)
    assert float((lie_chart_inverse(coords, 3) - g).abs().max()) < 1e-11


def test_spd_log_exp_inverse() -> None:
    g = _gl_plus(4, 3, seed=8)
    p = g @ g.mT
    s = spd_log(p)
    assert torch.allclose(s, s.mT, atol=1e-12)
    assert torch.allclose(spd_exp(s), p, atol=1e-10)
    assert torch.allclose(torch.linalg.matrix_exp(s), p, atol=1e-10)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_rotation_log(n: int) -> None:
    r = haar_orthogonal(n, 5, generator=torch.Generator().manual_seed(n), dtype=F64)
    x = rotation_log(r)
    assert torch.allclose(x, -x.mT, atol=1e-12)
    assert float((torch.linalg.matrix_exp(x) - r).abs().max()) < 1e-10
    near_identity = torch.linalg.matrix_exp(1e-7 * x)
    assert torch.allclose(rotation_log(near_identity), 1e-7 * x, atol=1e-15)


def test_gradients_and_half_precision() -> None:
    g = _gl_plus(3, 2, seed=9).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: polar_decomposition(m).positive, (g,))
    assert torch.autograd.gradcheck(lambda m: cartan_decomposition(m).symmetric, (g,))
    pd = polar_decomposition(g.detach().half())
    assert pd.positive.dtype == torch.float16 and pd.orthogonal.dtype == torch.float16


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: polar_decomposition(torch.ones(2, 3)),
            ValueError,
            r"polar_decomposition: matrices must be square, shape \(\.\.\., n, n\); got \(2, 3\)",
        ),
        (
            lambda: polar_decomposition(torch.ones(2, 2)),
            ValueError,
            r"polar_decomposition: the matrices must be invertible",
        ),
        (
            lambda: polar_decomposition(torch.eye(2), side="up"),
            ValueError,
            r"polar_decomposition: side must be one of 'left', 'right'; got 'up'",
        ),
        (
            lambda: polar_decomposition("eye"),
            TypeError,
            r"polar_decomposition: matrices must be a torch.Tensor or a numpy array",
        ),
        (
            lambda: cartan_decomposition(torch.diag(torch.tensor([-1.0, 1.0]))),
            ValueError,
            r"cartan_decomposition: matrices must have a positive determinant \(GL\+\(n\)\)",
        ),
        (
            lambda: spd_log(torch.diag(torch.tensor([1.0, -1.0]))),
            ValueError,
            r"spd_log: matrices must be positive definite",
        ),
        (
            lambda: spd_log(torch.tensor([[1.0, 2.0], [0.0, 1.0]])),
            ValueError,
            r"spd_log: matrices must be symmetric",
        ),
        (
            lambda: spd_exp(torch.eye(2) * 1e3),
            ValueError,
            r"spd_exp: the exponential overflows torch.float32",
        ),
        (
            lambda: rotation_log(torch.diag(torch.tensor([-1.0, 1.0]))),
            ValueError,
            r"rotation_log: rotations must be in SO\(n\)",
        ),
        (
            lambda: lie_chart_inverse(torch.zeros(5), 2),
            ValueError,
            r"lie_chart_inverse: coordinates must have last dimension 4",
        ),
        (
            lambda: lie_chart_inverse(torch.zeros(4), 0),
            ValueError,
            r"lie_chart_inverse: n must be a positive int; got 0",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
