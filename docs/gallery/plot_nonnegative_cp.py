"""
Non-negative CP of handwritten digits
=====================================

The bundled ``digits_counts`` tensor holds 1,797 images of 8 × 8 blocks, each entry counting
the "on" pixels of a 4 × 4 block (0 to 16). Counts are non-negative, and a non-negative CP model
(:func:`~factorch.decomp.non_negative_cp`, HALS updates) explains them as a sum of non-negative
parts: each component is an 8 × 8 stroke pattern (the outer product of a row and a column
profile) and a loading per image.
"""

import matplotlib.pyplot as plt
import torch

from factorch.datasets import load
from factorch.decomp import non_negative_cp

data = load("digits_counts", dtype=torch.float32)
x = data.tensor
labels = torch.tensor([int(s) for s in data.labels[0]])
print(tuple(x.shape), "min", float(x.min()), "max", float(x.max()))

g = torch.Generator().manual_seed(0)
result = non_negative_cp(x, 10, max_iter=60, generator=g)
model = result.model.canonicalize()
print(f"relative error {result.error:.3f} after {result.iterations} sweeps")
print("all factors non-negative:", all(bool((f >= 0).all()) for f in model.factors))

# %%
# Each component's spatial pattern :math:`b_r c_r^\top` and its mean loading per digit:

images, rows, cols = model.factors
fig, axes = plt.subplots(2, 10, figsize=(12, 3))
for r in range(10):
    pattern = torch.outer(rows[:, r], cols[:, r])
    axes[0, r].imshow(pattern.numpy(), cmap="Greys")
    axes[0, r].set_axis_off()
    per_digit = torch.stack([images[labels == d, r].mean() for d in range(10)])
    axes[1, r].bar(range(10), per_digit.numpy())
    axes[1, r].set_xticks([0, 5, 9])
    axes[1, r].set_yticks([])
axes[0, 0].set_title("patterns", loc="left")
axes[1, 0].set_title("mean loading per digit", loc="left")
fig.tight_layout()
