"""
Factorized layers from scratch
==============================

A factorized layer stores its weight in a tensor format and is trained like any other
``nn.Module``. Here a linear model on a planted low-rank problem: the targets are
:math:`y = W x + \\text{noise}` with a 128 × 128 weight of rank 4. A dense layer has 16,512
parameters to learn from 256 samples; a factorized one with enough rank has far fewer and
generalises better, while one with too little rank cannot fit.
"""

import matplotlib.pyplot as plt
import torch
from torch import nn

from factorch.nn import FactorizedLinear

g = torch.Generator().manual_seed(0)
n_in, n_out, n_train = 128, 128, 256
w = torch.randn(n_out, 4, generator=g) @ torch.randn(4, n_in, generator=g) / 11
x_train = torch.randn(n_train, n_in, generator=g)
x_test = torch.randn(2048, n_in, generator=g)
y_train = x_train @ w.T + 0.1 * torch.randn(n_train, n_out, generator=g)
y_test = x_test @ w.T


def fit(layer: nn.Module, steps: int = 150) -> list[float]:
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(layer(x_train), y_train)
        loss.backward()
        opt.step()
        with torch.no_grad():
            history.append(float(nn.functional.mse_loss(layer(x_test), y_test)))
    return history


torch.manual_seed(0)  # default initialisation of nn.Linear
layers = {
    "dense": nn.Linear(n_in, n_out),
    "low-rank, rank 8": FactorizedLinear(n_in, n_out, format="lowrank", rank=8, generator=g),
    "low-rank, rank 2": FactorizedLinear(n_in, n_out, format="lowrank", rank=2, generator=g),
}
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, layer in layers.items():
    history = fit(layer)
    params = sum(p.numel() for p in layer.parameters())
    print(f"{name:18s} {params:6d} parameters, test MSE {history[-1]:.4f}")
    ax.plot(history, label=f"{name} ({params} params)")
ax.set_yscale("log")
ax.set_xlabel("Adam step")
ax.set_ylabel("test MSE")
ax.legend()
fig.tight_layout()
