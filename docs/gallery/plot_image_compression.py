"""
Image compression with CP and Tucker
====================================

A colour photograph is a height × width × 3 tensor. Its Tucker decomposition with ranks
``(r, r, 3)`` keeps an ``r × r × 3`` core and two factor matrices; a CP decomposition keeps
``R`` rank-one terms. Both trade parameters for reconstruction error; the titles give the
compression factor and the relative error of each. The image is matplotlib's bundled
``grace_hopper.jpg`` (downsampled to 300 × 256 to keep the example fast; CP is stopped after 30
sweeps, so its error is an upper bound of what more sweeps reach).
"""

import matplotlib.cbook as cbook
import matplotlib.pyplot as plt
import torch

from factorch.decomp import cp, tucker

with cbook.get_sample_data("grace_hopper.jpg") as f:
    image = torch.from_numpy(plt.imread(f).copy()).to(torch.float64) / 255.0
image = image[::2, ::2]  # 300 x 256 x 3
print("image", tuple(image.shape), f"{image.numel():,} numbers")

results = []
for r in (10, 25, 50):
    fit = tucker(image, (r, r, 3))
    results.append((f"Tucker ({r}, {r}, 3)", fit))
for rank in (20, 40):
    fit = cp(image, rank, init="svd", max_iter=30)
    results.append((f"CP rank {rank}", fit))

fig, axes = plt.subplots(1, len(results) + 1, figsize=(13, 2.9))
axes[0].imshow(image.numpy())
axes[0].set_title("original", fontsize=9)
for ax, (name, fit) in zip(axes[1:], results):
    model = fit.model
    ratio = image.numel() / model.n_params
    print(f"{name:18s} {model.n_params:7,d} parameters ({ratio:5.1f}x), error {fit.error:.3f}")
    ax.imshow(model.to_dense().clamp(0, 1).numpy())
    ax.set_title(f"{name}\n{ratio:.0f}x fewer, error {fit.error:.3f}", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
