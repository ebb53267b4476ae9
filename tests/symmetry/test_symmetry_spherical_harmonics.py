"""Real spherical harmonics: e3nn's basis entry by entry, equivariance, orthonormality, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.symmetry import haar_orthogonal, spherical_harmonics, wigner_D

o3 = pytest.importorskip("e3nn.o3")
F64 = torch.float64


def _vectors(n: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g, dtype=F64) * 2).to(dtype)


@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_e3nn_every_entry(normalization: str, normalize: bool) -> None:
    v = _vectors(64)
    ours = spherical_harmonics(v, 12, normalization=normalization, normalize=normalize)  # type: ignore[arg-type]
    ref = o3.spherical_harmonics(
        list(range(13)), v, normalize=normalize, normalization=normalization
    )
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


def test_float32_matches_float64() -> None:
    v = _vectors(32)
    y64 = spherical_harmonics(v, 8)
    y32 = spherical_harmonics(v.float(), 8)
    assert y32.dtype == torch.float32
    assert float((y32.double() - y64).abs().max()) < 1e-5


def test_equivariance_with_wigner_D() -> None:
    v = _vectors(20)
    r = haar_orthogonal(3, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    for l in (0, 1, 2, 5, 10):
        y = spherical_harmonics(v, l)[:, l * l :]
        for k in range(4):
            rotated = spherical_harmonics(v @ r[k].T, l)[:, l * l :]
            assert torch.allclose(rotated, y @ wigner_D(l, r[k]).T, atol=1e-10)


def test_orthonormal_to_high_degree() -> None:
    # Gauss-Legendre x uniform product rule, exact for degree 2 * 30
    lmax = 30
    z, w = np.polynomial.legendre.leggauss(lmax + 1)
    phi = 2 * np.pi * np.arange(2 * lmax + 1) / (2 * lmax + 1)
    s = np.sqrt(1 - z**2)
    pts = np.stack(
        [np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(z, np.ones_like(phi))], -1
    )
    wts = np.outer(w, np.full(phi.size, 2 * np.pi / phi.size)).reshape(-1)
    y = spherical_harmonics(torch.from_numpy(pts.reshape(-1, 3)), lmax)
    gram = y.T @ (torch.from_numpy(wts)[:, None] * y)
    assert float((gram - torch.eye(gram.shape[0], dtype=F64)).abs().max()) < 1e-11


def test_norm_normalization_has_unit_norm_and_zero_vector() -> None:
    y = spherical_harmonics(_vectors(10), 4, normalization="norm")
    for l in range(5):
        assert torch.allclose(y[:, l * l : (l + 1) ** 2].norm(dim=1), torch.ones(10, dtype=F64))
    z = spherical_harmonics(torch.zeros(1, 3, dtype=F64), 3)
    assert z[0, 0] == pytest.approx(1 / math.sqrt(4 * math.pi)) and float(z[0, 1:].abs().max()) == 0


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_extreme_scales_float32(scale: float) -> None:
    v = _vectors(8)
    ref = spherical_harmonics(v, 6)
    out = spherical_harmonics((v * scale).float(), 6)
    assert torch.isfinite(out).all() and float((out.double() - ref).abs().max()) < 1e-5


def test_gradient_is_finite_at_the_poles_and_correct() -> None:
    v = torch.tensor(
        [[0.0, 1.0, 0.0], [0.0, -2.0, 0.0], [0.3, -0.2, 0.9]], dtype=F64, requires_grad=True
    )
    spherical_harmonics(v, 6).pow(2).sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()
    assert torch.autograd.gradcheck(
        lambda x: spherical_harmonics(x, 3), (v.detach()[2:].clone().requires_grad_(),)
    )


def test_half_precision_and_numpy_inputs() -> None:
    v = _vectors(4)
    assert spherical_harmonics(v.half(), 2).dtype == torch.float16
    out = spherical_harmonics(v.numpy(), 2)
    assert isinstance(out, torch.Tensor) and torch.allclose(out, spherical_harmonics(v, 2))


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        (
            {"vectors": "x"},
            TypeError,
            r"spherical_harmonics: vectors must be a torch.Tensor or a numpy array",
        ),
        (
            {"vectors": torch.zeros(2, 3, dtype=torch.int64)},
            TypeError,
            r"vectors must have a real floating-point dtype",
        ),
        (
            {"vectors": torch.zeros(2, 4)},
            ValueError,
            r"vectors must have last dimension 3; got shape \(2, 4\)",
        ),
        ({"vectors": torch.zeros(0, 3)}, ValueError, r"vectors has an empty dimension"),
        (
            {"vectors": torch.tensor([[0.0, float("nan"), 0]])},
            ValueError,
            r"vectors contains NaN or Inf",
        ),
        ({"lmax": -1}, ValueError, r"spherical_harmonics: lmax must be a non-negative int; got -1"),
        ({"lmax": 65}, ValueError, r"lmax must be at most 64"),
        ({"lmax": 1.5}, TypeError, r"lmax must be a non-negative int; got float"),
        (
            {"normalization": "unit"},
            ValueError,
            r"normalization must be one of 'integral', 'component', 'norm'",
        ),
        ({"normalize": 1}, TypeError, r"spherical_harmonics: normalize must be a bool; got int"),
        (
            {"vectors": torch.full((1, 3), 1e30), "normalize": False},
            ValueError,
            r"overflows torch.float32",
        ),
    ],
)
def test_errors(kwargs: dict[str, object], kind: type[Exception], match: str) -> None:
    args: dict[str, object] = {"vectors": torch.ones(2, 3), "lmax": 2}
    args.update(kwargs)
    with pytest.raises(kind, match=match):
        spherical_harmonics(**args)  # type: ignore[arg-type]
