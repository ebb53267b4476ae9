"""
CP, Tucker and tensor-train on real data
=========================================

The bundled COVID-19 systems-serology tensor (438 serum samples × 6 SARS-CoV-2 antigens × 11
antibody isotypes and Fc receptors; Zohar et al. 2020, prepared by Tan et al. 2021) fitted with
the three classic formats. Each fit returns a frozen
:class:`~factorch.decomp.DecompositionResult` whose ``error`` is the true relative error of
``result.model``.
"""

import matplotlib.pyplot as plt
import torch

from factorch.datasets import load
from factorch.decomp import cp, tt_svd, tucker

data = load("covid19_serology")
x = data.tensor
print(data.name, tuple(x.shape), x.dtype)

# %%
# CP: a sum of rank-one terms
# ---------------------------
# Two components are what Tan et al. report for this tensor. ``canonicalize`` gives unit-norm
# factor columns, weights sorted in decreasing order and fixed signs, so runs are comparable.

g = torch.Generator().manual_seed(0)
result = cp(x, 2, max_iter=300, generator=g)
model = result.model.canonicalize()
print(
    f"CP rank 2: relative error {result.error:.4f}, {result.iterations} sweeps, "
    f"converged={result.converged}"
)
print("weights:", model.weights)

fig, axes = plt.subplots(1, 3, figsize=(10, 3))
for mode, ax in enumerate(axes):
    factor = model.factors[mode]
    for r in range(factor.shape[1]):
        ax.plot(
            factor[:, r].numpy(), marker="o" if mode else None, lw=1, label=f"component {r + 1}"
        )
    ax.set_title(data.mode_names[mode])
axes[0].legend()
fig.tight_layout()

# %%
# Tucker: a small core and one basis per mode
# -------------------------------------------

tk = tucker(x, (4, 3, 4))
print(f"Tucker (4, 3, 4): relative error {tk.error:.4f}, core {tuple(tk.model.core.shape)}")
print(f"parameters: {tk.model.n_params} instead of {x.numel()}")

# %%
# Tensor train with an accuracy target
# ------------------------------------
# ``eps`` bounds the relative error: the TT ranks are chosen so that
# :math:`\|\mathcal{X} - \hat{\mathcal{X}}\|_F \le \varepsilon \|\mathcal{X}\|_F`.

for eps in (0.3, 0.1, 0.03):
    tt = tt_svd(x, eps=eps)
    print(f"eps={eps}: TT ranks {tt.model.rank}, error {tt.error:.4f}")

# %%
# Error against the number of parameters for the three formats:

rows = []
for r in range(1, 5):
    rows.append(("CP", cp(x, r, generator=torch.Generator().manual_seed(0))))
    rows.append(("Tucker", tucker(x, (r, r, r))))
fig, ax = plt.subplots(figsize=(5, 3.5))
for name in ("CP", "Tucker"):
    pts = [(res.model.n_params, res.error) for n, res in rows if n == name]
    ax.plot(*zip(*pts), marker="o", label=name)
pts = [(t.model.n_params, t.error) for t in (tt_svd(x, eps=e) for e in (0.5, 0.3, 0.1))]
ax.plot(*zip(*pts), marker="s", label="TT")
ax.set_xscale("log")
ax.set_xlabel("parameters")
ax.set_ylabel("relative error")
ax.legend()
fig.tight_layout()
