"""The symmetry operations follow the input's device: CUDA results equal CPU results."""

from __future__ import annotations

import pytest
import torch

from factorch.symmetry import (
    FrameAveraging,
    Irreps,
    axial_rotation_group,
    cg_paths,
    cg_tensor_product,
    default_irreps_out,
    equivariant_projector,
    gaunt_tensor_product,
    haar_sample,
    polar_decomposition,
    spherical_harmonics,
    wigner_D,
)

pytestmark = pytest.mark.cuda
F64 = torch.float64


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x, x.cuda()


def test_spherical_harmonics_and_wigner_D_on_cuda() -> None:
    v, vc = _pair((10, 3))
    out = spherical_harmonics(vc, 6)
    assert out.device.type == "cuda" and torch.allclose(out.cpu(), spherical_harmonics(v, 6))
    r = haar_sample("SO", 3, 2, generator=torch.Generator().manual_seed(1), dtype=F64).elements
    assert torch.allclose(wigner_D(3, r.cuda()).cpu(), wigner_D(3, r), atol=1e-12)


@pytest.mark.parametrize("lmax", [1, 3])
def test_tensor_products_on_cuda(lmax: int) -> None:
    ir = Irreps.spherical_harmonics(lmax)
    out = default_irreps_out(ir, ir)
    x, xc = _pair((5, 4, ir.dim))
    w, wc = _pair((len(cg_paths(ir, ir, out)), 4), seed=3)
    z = cg_tensor_product(xc, xc, ir, ir, out, weights=wc)
    assert z.device.type == "cuda"
    assert torch.allclose(z.cpu(), cg_tensor_product(x, x, ir, ir, out, weights=w), atol=1e-12)
    for method in ("fourier", "grid"):
        g = gaunt_tensor_product(xc, xc, method=method)
        assert torch.allclose(g.cpu(), gaunt_tensor_product(x, x, method=method), atol=1e-12)


def test_projector_frames_and_decompositions_on_cuda() -> None:
    so2 = axial_rotation_group(2)
    p = equivariant_projector(so2.vector(2), so2.vector())
    w, wc = _pair((3, 6))
    assert torch.allclose(p(wc).cpu(), p(w))
    pts, ptsc = _pair((2, 6, 3), seed=4)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(18, 2)).double()
    fa = FrameAveraging(net)
    expected = fa(pts)
    assert torch.allclose(fa.cuda()(ptsc).cpu(), expected, atol=1e-12)
    g, gc = _pair((3, 3), seed=5)
    assert torch.allclose(polar_decomposition(gc).positive.cpu(), polar_decomposition(g).positive)
