"""Move nonzeros read anywhere to the rank whose block holds them (a collective).

Readers rarely hold the right nonzeros: a FROSTT file read in byte ranges gives each rank a
stripe of lines, per-rank files may be split any way. :func:`redistribute` takes whatever each
rank has, builds (unless given) the nnz-balanced layout from the summed per-slice counts
(one all-reduce of ``sum_n I_n`` integers), and sends every nonzero to its rank with one
``all_to_all`` of coordinates and one of values (each nonzero crosses the network at most once).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._comm import Comm
from ._common import agree_problem
from ._layout import ShardLayout, choose_grid
from ._shard import SparseShard

__all__ = ["redistribute"]


def _check_entries(
    indices: object, values: object, shape: Sequence[int], fn: str
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape:
        raise TypeError(
            f"{fn}: shape must be a non-empty sequence of positive ints; got {shape!r}."
        )
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"{fn}: shape must contain positive ints only; got {tuple(shape)}.")
    if not isinstance(indices, torch.Tensor) or not isinstance(values, torch.Tensor):
        raise TypeError(f"{fn}: indices and values must be torch tensors.")
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise TypeError(f"{fn}: indices must be an integer tensor; got {indices.dtype}.")
    if not values.is_floating_point():
        raise TypeError(f"{fn}: values must be a real floating tensor; got {values.dtype}.")
    n = len(shape)
    if indices.ndim != 2 or indices.shape[0] != n or values.shape != (indices.shape[1],):
        raise ValueError(
            f"{fn}: indices must be ({n}, nnz) and values (nnz,) for a {n}-way shape; got "
            f"{tuple(indices.shape)} and {tuple(values.shape)}."
        )
    idx = indices.to(torch.int64)
    if idx.numel():
        sizes = torch.tensor(shape, dtype=torch.int64, device=idx.device)[:, None]
        bad = (idx < 0) | (idx >= sizes)
        if bool(bad.any()):
            mode = int(bad.any(1).nonzero()[0])
            raise IndexError(
                f"{fn}: indices in mode {mode} must be in [0, {shape[mode] - 1}]; got "
                f"{int(idx[mode][bad[mode]][0])}."
            )
    if values.numel() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{fn}: values contain NaN or Inf; entries must be finite.")
    return idx, values.detach(), tuple(int(s) for s in shape)


def redistribute(
    indices: torch.Tensor,
    values: torch.Tensor,
    shape: Sequence[int],
    *,
    layout: ShardLayout | None = None,
    grid: Sequence[int] | None = None,
    timeout: float = 600.0,
) -> SparseShard:
    """This rank's :class:`SparseShard` from the nonzeros every rank happens to hold.

    A collective: every rank calls it with its own entries (any subset; together they are the
    tensor, each nonzero listed once) and the same ``shape`` and ``layout``/``grid``.

    Args:
        indices: ``(N, k)`` global coordinates of this rank's entries (0-based).
        values: ``(k,)`` values.
        shape: the global shape.
        layout: the layout to use; default: the nonzero-balanced layout on ``grid``.
        grid: chunks per mode when ``layout`` is None (default :func:`choose_grid`).
        timeout: seconds any collective waits before every rank stops.

    Returns:
        The :class:`SparseShard` of this rank (sorted, duplicates merged when equal).

    Raises:
        TypeError, ValueError, IndexError: bad entries (out of range, NaN, a coordinate listed
            twice with different values) or ranks that disagree -- the same error on every rank.
        DistributedError: a rank died or hung past ``timeout``.

    Example:
        A one-rank job in this process (under ``torchrun --nproc-per-node=N`` every rank runs
        the same lines after :func:`init`, each with its own shard):

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> indices = torch.tensor([[0, 2], [1, 3], [0, 2]])  # (ndim, nnz): (0, 1, 0), (2, 3, 2)
        >>> values = torch.tensor([2.5, -1.0], dtype=torch.float64)
        >>> shard = redistribute(indices, values, (3, 4, 3))
        >>> shard.shape, shard.nnz
        ((3, 4, 3), 2)
        >>> dist.destroy_process_group()
    """
    fn = "distributed.redistribute"
    device = values.device if isinstance(values, torch.Tensor) else torch.device("cpu")
    comm = Comm.open(fn, timeout, device)
    error: Exception | None = None
    summary: dict[str, object] = {}
    try:
        idx, vals, shape_t = _check_entries(indices, values, shape, fn)
        if layout is not None:
            if not isinstance(layout, ShardLayout):
                raise TypeError(f"{fn}: layout must be a ShardLayout or None.")
            if layout.shape != shape_t or layout.world_size != comm.world_size:
                raise ValueError(
                    f"{fn}: layout is for shape {layout.shape} and {layout.world_size} ranks; "
                    f"the data has shape {shape_t} and the job {comm.world_size} ranks."
                )
        grid_t = tuple(grid) if grid is not None else choose_grid(shape_t, comm.world_size)
        summary = {
            "shape": shape_t,
            "dtype": str(vals.dtype),
            "layout": layout.fingerprint if layout is not None else grid_t,
        }
    except (TypeError, ValueError, IndexError) as err:
        error = err
    comm.agree(error)
    agree_problem(comm, summary)
    if layout is None:
        counts = [torch.bincount(idx[n].cpu(), minlength=s) for n, s in enumerate(shape_t)]
        sizes = [c.numel() for c in counts]
        total = comm.all_reduce(torch.cat(counts), kind="setup")
        counts = list(torch.split(total, sizes))
        try:
            layout = ShardLayout.for_sparse(shape_t, counts, comm.world_size, grid=grid_t)
        except ValueError as err:
            error = err
        comm.agree(error)
    assert layout is not None
    dest = layout.locate(idx)
    order = torch.argsort(dest, stable=True)
    send_counts = torch.bincount(dest, minlength=comm.world_size)
    recv_counts = comm.all_to_all_rows(
        send_counts.reshape(-1, 1),
        [1] * comm.world_size,
        [1] * comm.world_size,
        group=comm.world,
        self_index=comm.rank,
        kind="setup",
    ).reshape(-1)
    sc, rc = send_counts.tolist(), recv_counts.tolist()
    got_idx = comm.all_to_all_rows(
        idx[:, order].mT.contiguous(), sc, rc, group=comm.world, self_index=comm.rank
    )
    got_val = comm.all_to_all_rows(
        vals[order].reshape(-1, 1), sc, rc, group=comm.world, self_index=comm.rank
    )
    shard: SparseShard | None = None
    try:
        shard = SparseShard.from_global(got_idx.mT, got_val.reshape(-1), layout, comm.rank)
    except (TypeError, ValueError, IndexError) as err:
        error = err
    comm.agree(error)
    assert shard is not None
    return shard
