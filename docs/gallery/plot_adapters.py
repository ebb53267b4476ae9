"""
Fine-tuning with tensor-structured adapters
===========================================

An adapter leaves a pretrained layer frozen and learns a small update to it. Here the
"pretrained" layer is a ``Linear(64, 64)`` with weight ``W0`` and the new task wants
``W* = W0 + dW`` with a rank-4 ``dW``. LoRA of rank 4 can represent that update exactly; the
Tucker and TT adapters (factorch's tensor formats on the tensorized update, here with fewer
parameters) cannot: a low-rank *matrix* update is LoRA's regime, and the tensor adapters pay
off when the update has tensor structure (TLoRA's regime, a transform of ``W0``, is shown in
``tests/adapters/test_adapters_papers.py``). Each adapter is injected with
:func:`~factorch.adapters.inject`, trained on the same inputs, then merged back into a plain
``nn.Linear`` with :func:`~factorch.adapters.merge_and_unload` (same outputs).
"""

import copy

import matplotlib.pyplot as plt
import torch
from torch import nn

import factorch.adapters as fa

g = torch.Generator().manual_seed(0)
base = nn.Sequential(nn.Linear(64, 64))
with torch.no_grad():
    base[0].weight.copy_(torch.randn(64, 64, generator=g) / 8)
    update = 0.1 * torch.randn(64, 4, generator=g) @ torch.randn(4, 64, generator=g)
    target_weight = base[0].weight + update
x = torch.randn(512, 64, generator=g)
y = x @ target_weight.T + base[0].bias.detach()

configs = {
    "LoRA rank 4": fa.LoraConfig(target_modules=["0"], rank=4, alpha=4),
    "Tucker adapter": fa.TuckerConfig(target_modules=["0"], rank=4),
    "TT adapter": fa.TTConfig(target_modules=["0"], rank=4),
}
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, config in configs.items():
    torch.manual_seed(0)
    model = fa.inject(copy.deepcopy(base), config)
    count = fa.trainable_parameters(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    history = []
    for _ in range(300):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    merged = fa.merge_and_unload(copy.deepcopy(model))
    same = torch.allclose(merged(x), model(x), atol=1e-5)
    print(f"{name:15s} {count.trainable:5d} trainable parameters, "
          f"loss {history[0]:.2e} -> {history[-1]:.2e}, "
          f"merged into {type(merged[0]).__name__} with the same outputs: {same}")  # fmt: skip
    ax.plot(history, label=f"{name} ({count.trainable} parameters)")
ax.set_yscale("log")
ax.set_xlabel("Adam step")
ax.set_ylabel("training MSE")
ax.legend()
fig.tight_layout()
