"""Decompositions of tensors sharded over the ranks of a ``torch.distributed`` job.

Launch with ``torchrun --nproc-per-node=N`` (gloo on CPU, NCCL on GPU); every rank holds one
block of the tensor and the factor rows of its chunks (SPLATT's medium-grained layout):

* :class:`ShardLayout` -- the grid of per-mode chunks every rank agrees on (balanced by nonzero
  count for sparse data); :class:`DenseShard`, :class:`SparseShard` -- one rank's block;
  :func:`redistribute` -- move nonzeros read anywhere to the rank that holds them;
* :func:`cp` -- CP-ALS (dense or sparse), :func:`cp_als` -- CP completion by row-wise ALS on the
  observed entries, :func:`hosvd` -- (ST-)HOSVD of a dense tensor split along one mode; each
  gives the single-process result and the same result object on every rank;
* :class:`Checkpoint` -- save every k sweeps, resume after a restart; :class:`DistributedError`
  -- what every surviving rank raises when a rank dies or hangs past the timeout;
* :func:`inject_latency` -- a test and benchmark hook that delays every collective (off by
  default);
* ``python -m factorch.distributed`` -- the launcher's command line (reads shards, writes the
  factors from rank 0, logs once).
"""

from ._checkpoint import Checkpoint as Checkpoint
from ._comm import DistributedError as DistributedError
from ._comm import init as init
from ._completion import cp_als as cp_als
from ._cp import cp as cp
from ._hosvd import hosvd as hosvd
from ._io import read_dense_shard as read_dense_shard
from ._io import read_sparse_shard as read_sparse_shard
from ._latency import inject_latency as inject_latency
from ._layout import ShardLayout as ShardLayout
from ._layout import choose_grid as choose_grid
from ._redistribute import redistribute as redistribute
from ._shard import DenseShard as DenseShard
from ._shard import SparseShard as SparseShard

__all__ = [
    "Checkpoint",
    "DenseShard",
    "DistributedError",
    "ShardLayout",
    "SparseShard",
    "choose_grid",
    "cp",
    "cp_als",
    "hosvd",
    "init",
    "inject_latency",
    "read_dense_shard",
    "read_sparse_shard",
    "redistribute",
]
