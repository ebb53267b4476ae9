"""Haar sampling: exact on SO(n)/O(n); importance-weighted and left-invariant on SL(n), GL+(n)."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.symmetry import cartan_decomposition, haar_orthogonal, haar_sample, log_haar_density

F64 = torch.float64


def _z(a: torch.Tensor, b: torch.Tensor) -> float:
    """Difference of two Monte-Carlo means in units of its standard error (paired samples)."""
    d = a - b
    return float(d.mean() / (d.std() / math.sqrt(d.numel())))


def test_orthogonal_samples() -> None:
    q = haar_orthogonal(4, 100, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(q @ q.mT, torch.eye(4, dtype=F64).expand(100, 4, 4), atol=1e-12)
    assert torch.allclose(torch.linalg.det(q), torch.ones(100, dtype=F64))
    o = haar_orthogonal(
        3, 400, special=False, generator=torch.Generator().manual_seed(1), dtype=F64
    )
    dets = torch.linalg.det(o)
    assert 0.4 < float((dets < 0).double().mean()) < 0.6
    again = haar_orthogonal(4, 100, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.equal(q, again)


def test_SO3_haar_moments_and_left_invariance() -> None:
    n, count = 3, 20000
    q = haar_orthogonal(n, count, generator=torch.Generator().manual_seed(2), dtype=F64)
    # E[g] = 0 and E[g_ij^2] = 1/n under Haar
    se = 1 / math.sqrt(count)
    assert float(q.mean(0).abs().max()) < 5 * se
    assert float((q.pow(2).mean(0) - 1 / n).abs().max()) < 5 * se
    h = haar_orthogonal(n, 1, generator=torch.Generator().manual_seed(3), dtype=F64)[0]
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(4), dtype=F64)
    f = lambda g: torch.exp(torch.einsum("ij,kij->k", a, g))  # noqa: E731
    assert abs(_z(f(h @ q), f(q))) < 4
    # a sampler that is not Haar (no sign fix in QR) fails the same check
    z = torch.randn(count, n, n, generator=torch.Generator().manual_seed(5), dtype=F64)
    biased = torch.linalg.qr(z)[0]
    biased = biased * torch.sign(torch.linalg.det(biased))[:, None, None]
    assert abs(_z(f(h @ biased), f(biased))) > 4


@pytest.mark.parametrize(("group", "n"), [("SL", 3), ("GL+", 3), ("GL+", 2)])
def test_weighted_samples_are_left_invariant(group: str, n: int) -> None:
    count = 40000
    gen = torch.Generator().manual_seed(6)
    s = haar_sample(group, n, count, generator=gen, dtype=F64)  # type: ignore[arg-type]
    w = torch.exp(s.log_weights)
    a = torch.randn(n, n, generator=gen, dtype=F64)

    def f(g: torch.Tensor) -> torch.Tensor:
        c = cartan_decomposition(g)
        bump = torch.exp(-2.0 * c.symmetric.pow(2).sum((-2, -1)))
        return bump * (1 + 0.5 * torch.einsum("ij,kij->k", a, c.rotation))

    h = torch.linalg.matrix_exp(0.4 * torch.randn(n, n, generator=gen, dtype=F64))
    if group == "SL":
        h = h / torch.linalg.det(h) ** (1 / n)
    assert abs(_z(w * f(h @ s.elements), w * f(s.elements))) < 4
    # dropping the Haar density of the symmetric factor breaks left invariance visibly
    w_wrong = w / torch.exp(log_haar_density(s.symmetric))
    if n == 3:
        assert abs(_z(w_wrong * f(h @ s.elements), w_wrong * f(s.elements))) > 4


def test_sample_structure() -> None:
    s = haar_sample("SL", 3, 50, scale=0.5, generator=torch.Generator().manual_seed(7), dtype=F64)
    assert torch.allclose(torch.linalg.det(s.elements), torch.ones(50, dtype=F64), atol=1e-10)
    assert torch.allclose(torch.linalg.matrix_exp(s.symmetric) @ s.rotation, s.elements, atol=1e-12)
    so = haar_sample("SO", 3, 10, generator=torch.Generator().manual_seed(8))
    assert so.elements.dtype == torch.float32 and float(so.log_weights.abs().max()) == 0.0
    assert float(
        log_haar_density(torch.diag(torch.tensor([1.0, 0.0], dtype=F64)))
    ) == pytest.approx(math.log(math.sinh(1.0)))


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: haar_orthogonal(0, 3),
            ValueError,
            r"haar_orthogonal: n must be a positive int; got 0",
        ),
        (
            lambda: haar_orthogonal(3, 2.5),
            TypeError,
            r"haar_orthogonal: num_samples must be a positive int; got float",
        ),
        (
            lambda: haar_orthogonal(3, 2, generator=0),
            TypeError,
            r"haar_orthogonal: generator must be a torch.Generator or None; got int",
        ),
        (
            lambda: haar_orthogonal(3, 2, dtype=torch.int64),
            TypeError,
            r"haar_orthogonal: dtype must be a real floating torch.dtype or None",
        ),
        (
            lambda: haar_orthogonal(3, 2, special=1),
            TypeError,
            r"haar_orthogonal: special must be a bool; got int",
        ),
        (
            lambda: haar_orthogonal(10**6, 10**6),
            ValueError,
            r"haar_orthogonal: .* needs about .* of memory",
        ),
        (
            lambda: haar_sample("Sp", 3, 2),
            ValueError,
            r"haar_sample: group must be one of 'SO', 'O', 'SL', 'GL\+'; got 'Sp'",
        ),
        (
            lambda: haar_sample("SL", 3, 2, scale=0.0),
            ValueError,
            r"haar_sample: scale must be a positive finite number; got 0.0",
        ),
        (
            lambda: log_haar_density(torch.ones(2, 3)),
            ValueError,
            r"log_haar_density: symmetric must be square",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
