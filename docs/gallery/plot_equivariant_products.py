"""
Equivariant tensor products: Clebsch–Gordan and Gaunt
=====================================================

Features that transform under rotations (spherical-harmonic coefficients up to degree ``L``)
are combined by tensor products that commute with every rotation ``R``:
``TP(D(R) x, D(R) y) = D(R) TP(x, y)``. The full Clebsch–Gordan product costs O(L⁶); the Gaunt
product (the coefficients of the pointwise product of the two spherical functions) keeps only
the paths with even ``l1 + l2 + l3`` and costs O(L³) via an FFT. Both are checked here for
equivariance on random rotations, and the Gaunt product is checked to equal the CG product
restricted to its paths with Gaunt's weights.
"""

import time

import matplotlib.pyplot as plt
import torch

from factorch.symmetry import (
    Irreps,
    cg_paths,
    cg_tensor_product,
    gaunt_path_weight,
    gaunt_tensor_product,
    haar_sample,
    irreps_wigner_D,
)

torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(0)
rotations = haar_sample("SO", 3, 8, generator=g).elements
lmax = [1, 2, 3, 4]
cg_err, gaunt_err, cg_time, gaunt_time = [], [], [], []
for L in lmax:
    irreps = Irreps.spherical_harmonics(L)
    x = torch.randn(64, irreps.dim, generator=g)
    y = torch.randn(64, irreps.dim, generator=g)
    out_cg = Irreps.spherical_harmonics(2 * L)  # every even-parity output up to 2L
    worst_cg = worst_gaunt = 0.0
    for r in rotations:
        d_in, d_out = irreps_wigner_D(irreps, r), irreps_wigner_D(out_cg, r)
        z = cg_tensor_product(x, y, irreps, irreps, out_cg)
        z_rot = cg_tensor_product(x @ d_in.T, y @ d_in.T, irreps, irreps, out_cg)
        worst_cg = max(worst_cg, float((z_rot - z @ d_out.T).abs().max() / z.abs().max()))
        w = gaunt_tensor_product(x, y)
        w_rot = gaunt_tensor_product(x @ d_in.T, y @ d_in.T)
        worst_gaunt = max(worst_gaunt, float((w_rot - w @ d_out.T).abs().max() / w.abs().max()))
    cg_err.append(worst_cg)
    gaunt_err.append(worst_gaunt)
    start = time.perf_counter()
    cg_tensor_product(x, y, irreps, irreps, out_cg)
    cg_time.append(time.perf_counter() - start)
    start = time.perf_counter()
    gaunt_tensor_product(x, y)
    gaunt_time.append(time.perf_counter() - start)
    print(f"L = {L}: equivariance error CG {worst_cg:.1e}, Gaunt {worst_gaunt:.1e}")

# Gaunt = CG on the even paths, each weighted by Gaunt's path weight.
L = 2
irreps = Irreps.spherical_harmonics(L)
x = torch.randn(4, irreps.dim, generator=g)
y = torch.randn(4, irreps.dim, generator=g)
out = Irreps.spherical_harmonics(2 * L)
paths = cg_paths(irreps, irreps, out)
weights = torch.tensor([gaunt_path_weight(p.irrep1.l, p.irrep2.l, p.irrep_out.l) for p in paths])
z_cg = cg_tensor_product(x, y, irreps, irreps, out, weights=weights)
print("Gaunt equals CG with Gaunt's path weights:",
      torch.allclose(gaunt_tensor_product(x, y), z_cg, atol=1e-10))  # fmt: skip

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.semilogy(lmax, cg_err, "o-", label="Clebsch–Gordan")
ax1.semilogy(lmax, gaunt_err, "s-", label="Gaunt (Fourier)")
ax1.set_xlabel("L")
ax1.set_ylabel("worst relative equivariance error")
ax1.legend()
ax2.semilogy(lmax, cg_time, "o-", label="Clebsch–Gordan")
ax2.semilogy(lmax, gaunt_time, "s-", label="Gaunt (Fourier)")
ax2.set_xlabel("L")
ax2.set_ylabel("seconds for 64 products (one run)")
ax2.legend()
fig.tight_layout()
torch.set_default_dtype(torch.float32)
