"""
Distributed CP-ALS on two processes
===================================

:mod:`factorch.distributed` fits decompositions to a tensor split over the ranks of a
``torch.distributed`` job: every rank reads only its block
(:func:`~factorch.distributed.read_dense_shard`), holds the factor rows of its chunks, and
exchanges rows and small Gram matrices with the others. :func:`~factorch.distributed.cp` computes what
:func:`factorch.decomp.cp` computes on the whole tensor: from the same random start, the same
iterates.

Here ``torchrun`` starts two CPU processes (gloo, loopback only) on a tensor saved as ``.npy``;
rank 0 writes the result, which we compare with the single-process fit. On a cluster the same
worker script runs under ``torchrun --nnodes=... --nproc-per-node=...``.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from factorch.decomp import cp
from factorch.random import random_cp

work = Path(tempfile.mkdtemp(prefix="factorch-distributed-"))
g = torch.Generator().manual_seed(0)
planted = random_cp((40, 30, 20), 3, generator=g, dtype=torch.float64)
x = planted.to_dense() + 0.05 * torch.randn(40, 30, 20, generator=g, dtype=torch.float64)
np.save(work / "x.npy", x.numpy())

# %%
# The worker every rank runs: join the job, read this rank's block, fit, and save the result
# (the same :class:`~factorch.decomp.DecompositionResult` on every rank) from rank 0.

worker = textwrap.dedent(
    """
    import sys

    import torch

    import factorch.distributed as fd

    rank, world = fd.init(backend="gloo", timeout=60)
    shard = fd.read_dense_shard(sys.argv[1], timeout=60)
    res = fd.cp(shard, 3, max_iter=30, generator=torch.Generator().manual_seed(1), timeout=60)
    print(f"rank {rank}/{world}: block {tuple(shard.local.shape)}, "
          f"{res.extras['comm_bytes']} bytes sent")
    if rank == 0:
        torch.save({"model": res.model, "errors": res.errors, "grid": res.extras["grid"]},
                   sys.argv[2])
    """
)
(work / "worker.py").write_text(worker)

# %%
# Two processes, as ``torchrun --standalone --nproc-per-node=2 worker.py x.npy out.pt`` would
# start them. A timeout keeps a stuck job from hanging the caller (each collective also gives up
# after ``timeout`` seconds and every rank raises :class:`~factorch.distributed.DistributedError`).

command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
command += [str(work / "worker.py"), str(work / "x.npy"), str(work / "out.pt")]
env = dict(os.environ, OMP_NUM_THREADS="1")
job = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
if job.returncode != 0:
    raise RuntimeError(f"the distributed job failed:\n{job.stderr[-3000:]}")
print("\n".join(sorted(line for line in job.stdout.splitlines() if line.startswith("rank"))))
out = torch.load(work / "out.pt", weights_only=False)
print(f"process grid (chunks per mode): {out['grid']}")

# %%
# The single-process fit from the same random start (``init="random"`` with the same generator
# state: the draws the distributed function makes on every rank) agrees sweep by sweep:

single = cp(x, 3, init="random", max_iter=30, generator=torch.Generator().manual_seed(1))
n = min(len(out["errors"]), len(single.errors))
gap = max(abs(a - b) for a, b in zip(out["errors"][:n], single.errors[:n]))
dense_gap = (out["model"].to_dense() - single.model.to_dense()).norm() / x.norm()
print(f"final relative error: distributed {out['errors'][-1]:.4f}, single {single.error:.4f}")
print(f"largest per-sweep difference: {gap:.1e}; relative model difference: {dense_gap:.1e}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(single.errors, "o-", label="factorch.decomp.cp (one process)")
ax.semilogy(out["errors"], "x--", label="factorch.distributed.cp (two processes)")
ax.set_xlabel("sweep")
ax.set_ylabel("relative error")
ax.legend()
fig.tight_layout()

shutil.rmtree(work)
