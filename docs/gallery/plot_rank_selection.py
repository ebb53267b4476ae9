"""
Choosing a CP rank
==================

:func:`~factorch.decomp.rank_scan` fits CP models of each candidate rank from several random
starts and reports, per rank, the best relative error, the explained variance and the core
consistency diagnostic (CORCONDIA, Bro & Kiers 2003): near 100 when a CP model of that rank is
appropriate, dropping sharply once components start to model noise.

We first check it on data with a known answer (rank 3 plus noise), then apply it to the bundled
serology tensor.
"""

import matplotlib.pyplot as plt
import torch

from factorch.datasets import load
from factorch.decomp import rank_scan
from factorch.random import add_noise, random_cp

g = torch.Generator().manual_seed(0)
truth = random_cp((30, 25, 20), 3, generator=g, dtype=torch.float64).to_dense()
noisy = add_noise(truth, relative=0.1, generator=g)

scan = rank_scan(noisy, [1, 2, 3, 4, 5], starts=2, generator=g)
for r, err, cc in zip(scan.ranks, scan.best_errors, scan.corcondia):
    print(f"rank {r}: error {err:.3f}, CORCONDIA {cc:6.1f}")
print("recommended:", scan.recommended, "-", scan.reason)

# %%
# The error drops sharply up to the true rank and then flattens: further components only fit
# the noise. The recommendation follows a fixed rule (the largest rank whose core consistency
# stays above 80 % while the fit improves) and prints its reason; read it together with the two
# curves, which is what they are drawn for.

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.plot(scan.ranks, scan.best_errors, marker="o")
ax1.set_xlabel("rank")
ax1.set_ylabel("relative error")
ax2.plot(scan.ranks, scan.corcondia, marker="o", color="C1")
ax2.axhline(80, ls="--", color="grey", lw=1)
ax2.set_xlabel("rank")
ax2.set_ylabel("core consistency (%)")
fig.tight_layout()

# %%
# The same scan on real data
# --------------------------

data = load("covid19_serology")
scan = rank_scan(data.tensor, [1, 2, 3, 4], starts=2, generator=torch.Generator().manual_seed(0))
for r, err, cc in zip(scan.ranks, scan.best_errors, scan.corcondia):
    print(f"rank {r}: error {err:.3f}, CORCONDIA {cc:6.1f}")
print("recommended:", scan.recommended)
