"""
Completing a tensor with missing values
=======================================

The bundled IL-2 response tensor (13 ligands × 4 time points × 12 doses × 8 cell types) has 192
missing measurements. The completion solvers fit only the observed entries; we hold out 20 % of
them to choose the rank honestly, then predict the missing ones.
"""

import matplotlib.pyplot as plt
import torch

from factorch.completion import cp_als, holdout_mask, predict, rmse
from factorch.datasets import load

data = load("il2_response")
x, observed = data.tensor, data.mask
print(tuple(x.shape), f"{int((~observed).sum())} missing of {x.numel()}")

g = torch.Generator().manual_seed(0)
train, test = holdout_mask(observed, 0.8, generator=g)
truth = x[test]

# %%
# Test error by rank: the model is fitted on ``train`` only.

ranks = [1, 2, 3, 4]
errors = []
for r in ranks:
    fit = cp_als(torch.where(train, x, 0.0), r, mask=train, generator=g)
    pred = predict(fit.model, test.nonzero())
    errors.append(rmse(pred, truth))
    print(f"rank {r}: train RMSE {fit.train_rmse[-1]:.4f}, test RMSE {errors[-1]:.4f}")

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(ranks, errors, marker="o")
ax.set_xlabel("CP rank")
ax.set_ylabel("held-out RMSE")
fig.tight_layout()

# %%
# More components always lower the training error, not the held-out one: past some rank they
# fit noise. Keep the rank with the lowest held-out error, refit it on every observed entry and
# fill in the missing values.

best = ranks[min(range(len(ranks)), key=errors.__getitem__)]
fit = cp_als(torch.where(observed, x, 0.0), best, mask=observed, generator=g)
filled = torch.where(observed, x, fit.model.to_dense())
missing = filled[~observed]
low, high = float(missing.min()), float(missing.max())
print(f"rank {best}: {missing.numel()} entries predicted, in [{low:.3f}, {high:.3f}]")
