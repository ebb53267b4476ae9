"""
Compressing a small CNN
=======================

:func:`factorch.nn.compress` replaces the convolutions and linear layers of a trained model by
factorized ones within one parameter budget, allocating ranks to the layers by the energy their
weights keep, and reports parameters, FLOPs and weight error per layer. Here: a small CNN
trained on the bundled digits tensor (8 × 8 block counts of 1,797 handwritten digits).
"""

import torch
from torch import nn

from factorch.datasets import load
from factorch.nn import FineTune, compress

torch.manual_seed(0)  # the layers' default initialisation uses the global generator
data = load("digits_counts", dtype=torch.float32)
x = data.tensor.unsqueeze(1) / 16.0
y = torch.tensor([int(s) for s in data.labels[0]])
perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
train, test = perm[:1350], perm[1350:]


def accuracy(model: nn.Module) -> float:
    with torch.no_grad():
        return float((model(x[test]).argmax(1) == y[test]).float().mean())


model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(32 * 4 * 4, 64),
    nn.ReLU(),
    nn.Linear(64, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
batches = [(x[train][i : i + 64], y[train][i : i + 64]) for i in range(0, len(train), 64)]
for _epoch in range(5):
    for xb, yb in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
dense_params = sum(p.numel() for p in model.parameters())
print(f"dense: {dense_params} parameters, test accuracy {accuracy(model):.3f}")

# %%
# Compress to a quarter of the parameters with CP-factorized layers, then fine-tune briefly:

small, report = compress(
    model, ratio=0.25, format="cp", finetune=FineTune(data=batches, epochs=2, lr=1e-3)
)
print(report.table())
small_params = sum(p.numel() for p in small.parameters())
print(f"compressed: {small_params} parameters, test accuracy {accuracy(small):.3f}")
