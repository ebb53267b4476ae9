"""Gaunt tensor products (2-D Fourier and S² grid) against the CG product, equivariance, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.symmetry import (
    GauntTensorProduct,
    Irreps,
    cg_paths,
    cg_tensor_product,
    clebsch_gordan,
    gaunt_path_weight,
    gaunt_tensor_product,
    haar_orthogonal,
    irreps_wigner_D,
    spherical_harmonics,
)

F64 = torch.float64
CASES = [(1, 1, 2), (2, 3, 5), (3, 3, 2), (4, 2, 4), (3, 1, 3)]


def _inputs(l1: int, l2: int, seed: int = 0, batch: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(batch, (l1 + 1) ** 2, generator=g, dtype=F64)
    x2 = torch.randn(batch, (l2 + 1) ** 2, generator=g, dtype=F64)
    return x1, x2


def _cg_with_gaunt_weights(
    x1: torch.Tensor, x2: torch.Tensor, l1: int, l2: int, lo: int
) -> torch.Tensor:
    i1, i2, io = (Irreps.spherical_harmonics(l) for l in (l1, l2, lo))
    paths = cg_paths(i1, i2, io)  # parity selects exactly the paths with even l1 + l2 + l3
    assert all(sum(p.ls) % 2 == 0 for p in paths)
    w = torch.tensor([gaunt_path_weight(*p.ls) for p in paths], dtype=F64)
    return cg_tensor_product(x1, x2, i1, i2, io, weights=w)


@pytest.mark.parametrize(("l1", "l2", "lo"), CASES)
@pytest.mark.parametrize("method", ["fourier", "grid"])
def test_equals_cg_on_even_paths_with_gaunt_weights(l1: int, l2: int, lo: int, method: str) -> None:
    x1, x2 = _inputs(l1, l2)
    z = gaunt_tensor_product(x1, x2, lmax_out=lo, method=method)  # type: ignore[arg-type]
    ref = _cg_with_gaunt_weights(x1, x2, l1, l2, lo)
    assert float((z - ref).abs().max()) < 1e-10 * max(1.0, float(ref.abs().max()))


@pytest.mark.parametrize(("l1", "l2", "lo"), [*CASES, (4, 4, 8), (6, 5, 9)])
def test_fourier_and_grid_agree(l1: int, l2: int, lo: int) -> None:
    x1, x2 = _inputs(l1, l2, seed=1)
    zf = gaunt_tensor_product(x1, x2, lmax_out=lo, method="fourier")
    zg = gaunt_tensor_product(x1, x2, lmax_out=lo, method="grid")
    assert float((zf - zg).abs().max()) < 1e-11 * float(zg.abs().max())


def test_odd_paths_vanish_no_cross_product() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    x1 = torch.cat([torch.zeros(5, 1, dtype=F64), a], dim=1)  # pure l = 1
    x2 = torch.cat([torch.zeros(5, 1, dtype=F64), b], dim=1)
    cross = cg_tensor_product(a, b, "1o", "1o", "1e")  # what CG has on the odd path 1 x 1 -> 1
    assert float(cross.abs().min(dim=1).values.max()) > 1e-3  # clearly non-zero under CG
    for method in ("fourier", "grid"):
        z = gaunt_tensor_product(x1, x2, method=method)
        assert float(z[:, 1:4].abs().max()) < 1e-15 * float(z.abs().max()) + 1e-16
        # and the even outputs are those of CG with the Gaunt weights (dot product, l = 2 part)
        assert torch.allclose(z, _cg_with_gaunt_weights(x1, x2, 1, 1, 2), atol=1e-12)


def test_gaunt_path_weight_is_the_integral_of_three_harmonics() -> None:
    # exact product quadrature for degree 30
    z, w = np.polynomial.legendre.leggauss(16)
    phi = 2 * np.pi * np.arange(31) / 31
    s = np.sqrt(1 - z**2)
    pts = np.stack(
        [np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(z, np.ones_like(phi))], -1
    )
    wts = torch.from_numpy(np.outer(w, np.full(31, 2 * np.pi / 31)).reshape(-1))
    y = spherical_harmonics(torch.from_numpy(pts.reshape(-1, 3)), 9)
    for l1 in range(5):
        for l2 in range(5):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                blocks = [y[:, l * l : (l + 1) ** 2] for l in (l1, l2, l3)]
                integral = torch.einsum("q,qa,qb,qc->abc", wts, *blocks)
                c = clebsch_gordan(l1, l2, l3)
                assert torch.allclose(integral, gaunt_path_weight(l1, l2, l3) * c, atol=1e-13)
    assert gaunt_path_weight(0, 0, 0) == pytest.approx(1 / math.sqrt(4 * math.pi))
    assert gaunt_path_weight(2, 1, 2) == 0.0 and gaunt_path_weight(1, 1, 5) == 0.0


@pytest.mark.parametrize("method", ["fourier", "grid"])
def test_equivariant_under_rotations_and_inversion(method: str) -> None:
    l1, l2, lo = 3, 2, 4
    x1, x2 = _inputs(l1, l2, seed=3)
    z = gaunt_tensor_product(x1, x2, lmax_out=lo, method=method)  # type: ignore[arg-type]
    ir1, ir2, iro = (Irreps.spherical_harmonics(l) for l in (l1, l2, lo))
    for r in haar_orthogonal(
        3, 3, special=False, generator=torch.Generator().manual_seed(4), dtype=F64
    ):
        zr = gaunt_tensor_product(
            x1 @ irreps_wigner_D(ir1, r).T,
            x2 @ irreps_wigner_D(ir2, r).T,
            lmax_out=lo,
            method=method,  # type: ignore[arg-type]
        )
        assert float((zr - z @ irreps_wigner_D(iro, r).T).abs().max()) < 1e-10


def test_pointwise_product_of_functions() -> None:
    # the product of the expansions equals the expansion of the product at any point
    x1, x2 = _inputs(2, 3, seed=5, batch=1)
    z = gaunt_tensor_product(x1, x2)
    pts = torch.randn(20, 3, generator=torch.Generator().manual_seed(6), dtype=F64)
    f1 = spherical_harmonics(pts, 2) @ x1[0]
    f2 = spherical_harmonics(pts, 3) @ x2[0]
    assert torch.allclose(spherical_harmonics(pts, 5) @ z[0], f1 * f2, atol=1e-12)


def test_output_degrees_above_the_product_are_zero() -> None:
    x1, x2 = _inputs(1, 1, seed=7)
    for method in ("fourier", "grid"):
        z = gaunt_tensor_product(x1, x2, lmax_out=4, method=method)
        assert z.shape == (6, 25) and float(z[:, 9:].abs().max()) < 1e-15
        assert torch.allclose(z[:, :9], gaunt_tensor_product(x1, x2, method=method), atol=1e-13)


def test_gradients_dtypes_and_channels() -> None:
    x1, x2 = _inputs(1, 2, seed=8, batch=2)
    for method in ("fourier", "grid"):
        fn = lambda a, b, m=method: gaunt_tensor_product(a, b, lmax_out=2, method=m)  # noqa: E731
        assert torch.autograd.gradcheck(
            fn, (x1.clone().requires_grad_(), x2.clone().requires_grad_())
        )
        z32 = gaunt_tensor_product(x1.float(), x2.float(), method=method)
        assert z32.dtype == torch.float32
        assert (
            float((z32.double() - gaunt_tensor_product(x1, x2, method=method)).abs().max()) < 1e-5
        )
    # leading dimensions broadcast (channels x batch)
    a = torch.randn(4, 3, 4, generator=torch.Generator().manual_seed(9), dtype=F64)
    b = torch.randn(1, 3, 9, generator=torch.Generator().manual_seed(10), dtype=F64)
    z = gaunt_tensor_product(a, b)
    assert z.shape == (4, 3, 16)
    assert torch.allclose(z[2, 1], gaunt_tensor_product(a[2, 1], b[0, 1]), atol=1e-13)


def test_module_per_degree_weights() -> None:
    tp = GauntTensorProduct(2, 1, lmax_out=3, channels=2, method="grid", dtype=F64)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for w in (tp.weight1, tp.weight2, tp.weight_out):
            w.copy_(torch.randn(w.shape, generator=g, dtype=F64))
    x1 = torch.randn(5, 2, 9, generator=g, dtype=F64)
    x2 = torch.randn(5, 2, 4, generator=g, dtype=F64)
    rep = lambda w, l: w.repeat_interleave(torch.arange(l + 1) * 2 + 1, dim=-1)  # noqa: E731
    ref = gaunt_tensor_product(x1 * rep(tp.weight1, 2), x2 * rep(tp.weight2, 1), lmax_out=3) * rep(
        tp.weight_out, 3
    )
    assert torch.allclose(tp(x1, x2), ref.detach(), atol=1e-12)
    tp(x1, x2).sum().backward()
    assert tp.weight1.grad is not None and "method='grid'" in repr(tp)


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: gaunt_tensor_product(torch.ones(2, 5), torch.ones(2, 4)),
            ValueError,
            r"gaunt_tensor_product: the last dimension of x1 must be \(lmax \+ 1\)\*\*2 .*got 5",
        ),
        (
            lambda: gaunt_tensor_product(torch.ones(2, 4), torch.ones(3, 4)),
            ValueError,
            r"gaunt_tensor_product: the leading shapes of x1 \(2,\) and x2 \(3,\) must broadcast",
        ),
        (
            lambda: gaunt_tensor_product(torch.ones(4), torch.ones(4, dtype=F64)),
            TypeError,
            r"gaunt_tensor_product: x1 and x2 must have one dtype",
        ),
        (
            lambda: gaunt_tensor_product(torch.ones(4), torch.ones(4), method="fft"),
            ValueError,
            r"gaunt_tensor_product: method must be one of 'fourier', 'grid'; got 'fft'",
        ),
        (
            lambda: gaunt_tensor_product(torch.ones(4), torch.ones(4), lmax_out=-1),
            ValueError,
            r"gaunt_tensor_product: lmax_out must be a non-negative int; got -1",
        ),
        (
            lambda: gaunt_tensor_product(torch.ones(4), torch.ones(4, dtype=torch.int32)),
            TypeError,
            r"gaunt_tensor_product: x2 must have a real floating-point dtype",
        ),
        (
            lambda: gaunt_tensor_product(torch.ones(4) * 1e30, torch.ones(4) * 1e30),
            ValueError,
            r"gaunt_tensor_product: the product overflows torch.float32",
        ),
        (
            lambda: gaunt_path_weight(1, -1, 1),
            ValueError,
            r"gaunt_path_weight: l2 must be a non-negative int; got -1",
        ),
        (
            lambda: GauntTensorProduct(1, 1, method="s2"),
            ValueError,
            r"GauntTensorProduct: method must be one of",
        ),
        (
            lambda: GauntTensorProduct(1, 1, channels=-2),
            ValueError,
            r"GauntTensorProduct: channels must be a positive int or None; got -2",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]


def test_autocast_does_not_lower_precision() -> None:
    x1, x2 = _inputs(2, 2, seed=12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = gaunt_tensor_product(x1.float(), x2.float(), method="grid")
        c = cg_tensor_product(x1.float(), x2.float(), "0e + 1o + 2e", "0e + 1o + 2e")
        y = spherical_harmonics(x1[:, :3].float(), 3)
    assert z.dtype == c.dtype == y.dtype == torch.float32
    ref = gaunt_tensor_product(x1, x2, method="grid")
    assert float((z.double() - ref).abs().max()) < 1e-5 * float(ref.abs().max())
