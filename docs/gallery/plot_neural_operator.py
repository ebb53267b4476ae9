"""
A tensorized Fourier neural operator on Darcy flow
==================================================

Darcy flow maps a piecewise-constant permeability field to the pressure it induces
(:func:`~factorch.datasets.pde.darcy_flow` solves it here, nothing is downloaded). A Fourier
neural operator learns that map on a 16 × 16 grid; its tensorized version (TFNO) stores the
spectral weights as a Tucker tensor with 5 % of the dense parameters. Both are then evaluated
*zero-shot* on the 31 × 31 solutions of the same problems: the operator acts on functions, not
on a fixed grid. (A short run on 200 samples; ``benchmarks/bench_operator.py`` has the full
comparison with neuraloperator.)
"""

import matplotlib.pyplot as plt
import torch

from factorch.datasets.pde import darcy_flow
from factorch.models import FNO
from factorch.nn.spectral import count_real
from factorch.train import evaluate, train_operator

gen = torch.Generator().manual_seed(0)
fine = darcy_flow(240, resolution=31, generator=gen)  # solved on 31 x 31
train, test = fine.subsample(2).split(200)  # 16 x 16 for training
_, test_fine = fine.split(200)

results = {}
variants = {"FNO (dense)": {}, "TFNO (Tucker, 5 %)": {"format": "tucker", "ratio": 0.05}}
for name, options in variants.items():
    model = FNO(1, 1, (8, 8), hidden_channels=16, periodic=False,
                generator=torch.Generator().manual_seed(1), **options)  # fmt: skip
    res = train_operator(model, train, epochs=15, batch_size=20, lr=5e-3,
                         generator=torch.Generator().manual_seed(2))  # fmt: skip
    errors = {grid: evaluate(res.model, data)["l2"] for grid, data in
              {"16": test, "31": test_fine}.items()}  # fmt: skip
    results[name] = res.model
    print(f"{name:20s} {count_real(model):7,d} parameters, relative L2 "
          f"16x16 {errors['16']:.3f}, 31x31 (zero-shot) {errors['31']:.3f}")  # fmt: skip

x, y = test_fine.x[:1], test_fine.y[:1]
with torch.no_grad():
    preds = {name: model(x) for name, model in results.items()}
panels = {"permeability": x, "pressure (solver)": y, **preds}
fig, axes = plt.subplots(1, len(panels), figsize=(11, 2.8))
for ax, (title, field) in zip(axes, panels.items()):
    ax.imshow(field[0, 0].numpy(), cmap="viridis")
    ax.set_title(title + ("\n31 x 31, zero-shot" if title in preds else "\n31 x 31"), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
