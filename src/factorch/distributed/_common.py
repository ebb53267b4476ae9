"""Plumbing shared by the distributed solvers: option checks, agreement on the problem, the rows
of a full factor, and the local data of a shard."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import upcast, working_dtype
from ..decomp.internal import fit_scale
from ..tensors import CPTensor
from ._checkpoint import Checkpoint
from ._comm import Comm
from ._exchange import RowExchange
from ._local import DenseLocal, SparseLocal
from ._shard import DenseShard, LocalCoordinates, SparseShard

__all__ = [
    "Shard",
    "check_number",
    "check_run_options",
    "digest",
    "gather_full",
    "open_local",
]

Shard = DenseShard | SparseShard


def digest(*tensors: torch.Tensor) -> str:
    """A short hash of the tensors' shapes, dtypes and bytes (equal data, equal digest)."""
    h = hashlib.sha256()
    for t in tensors:
        flat = t.detach().reshape(-1).contiguous().cpu()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def check_number(value: object, fn: str, name: str) -> float:
    """A finite real number ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number; got {type(value).__name__}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{fn}: {name} must be a finite number >= 0; got {value!r}.")
    return float(value)


def check_shard(shard: object, comm: Comm, fn: str, *, sparse_ok: bool = True) -> Shard:
    """The shard (right type, this process's block, a layout of this job's size)."""
    kinds = (DenseShard, SparseShard) if sparse_ok else (DenseShard,)
    if not isinstance(shard, kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise TypeError(
            f"{fn}: shard must be a {want} (build one with DenseShard.from_full, "
            f"SparseShard.from_full or redistribute); got {type(shard).__name__}."
        )
    if shard.layout.world_size != comm.world_size:
        raise ValueError(
            f"{fn}: the shard's layout has {shard.layout.world_size} ranks (grid "
            f"{shard.layout.grid}) but the job has {comm.world_size}; build the layout for "
            f"{comm.world_size} ranks."
        )
    if shard.rank != comm.rank:
        raise ValueError(
            f"{fn}: this process is rank {comm.rank} but holds the shard of rank {shard.rank}; "
            "give every process the shard of its own rank (torch.distributed.get_rank())."
        )
    return shard


def check_run_options(
    fn: str,
    max_iter: object,
    tol: object,
    l2: object,
    checkpoint: object,
    generator: object,
    callback: object,
) -> tuple[int, float, float]:
    """``max_iter``, ``tol``, ``l2`` checked; ``checkpoint``, ``generator``, ``callback`` typed."""
    iters = check_positive_int(max_iter, fn, "max_iter")
    tol_ = check_number(tol, fn, "tol")
    l2_ = check_number(l2, fn, "l2")
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(
            f"{fn}: checkpoint must be a factorch.distributed.Checkpoint or None; got "
            f"{type(checkpoint).__name__}."
        )
    check_generator(generator, fn)
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: callback must be callable or None; got {type(callback).__name__}.")
    return iters, tol_, l2_


def check_init(
    init: object, shape: tuple[int, ...], rank: int, dtype: torch.dtype, fn: str
) -> None:
    if isinstance(init, CPTensor):
        if init.shape != shape or init.rank != rank:
            raise ValueError(
                f"{fn}: init CPTensor has shape {init.shape} and rank {init.rank}; expected "
                f"shape {shape} and rank {rank}."
            )
        if init.dtype != dtype:
            raise ValueError(
                f"{fn}: init CPTensor is {init.dtype}; the data is {dtype}. Use init.to(...)."
            )
    elif init != "random":
        raise ValueError(f"{fn}: init must be 'random' or a CPTensor; got {init!r}.")


def init_summary(init: object, generator: torch.Generator | None) -> dict[str, str | None]:
    """What every rank must agree on about the start: the init's digest, the generator state."""
    start = digest(init.weights, *init.factors) if isinstance(init, CPTensor) else str(init)
    gen = digest(generator.get_state()) if generator is not None else None
    return {"init": start, "generator state": gen}


def agree_problem(comm: Comm, summary: Mapping[str, object]) -> None:
    """ValueError on every rank (same message) unless every rank passed an equal ``summary``."""
    values = comm.all_gather_object(dict(summary), kind="setup")
    keys = [k for k in values[0] if any(v.get(k) != values[0].get(k) for v in values)]
    keys += [k for v in values for k in v if k not in values[0] and k not in keys]
    if keys:
        parts = []
        for k in keys:
            listing = ", ".join(f"rank {r}: {v.get(k)!r}" for r, v in enumerate(values))
            parts.append(f"{k} ({listing})")
        raise ValueError(
            f"{comm.fn}: the ranks disagree on {'; '.join(parts)}; every rank must pass the same "
            "layout, shape, dtype, rank and options (and a generator in the same state)."
        )


def open_local(
    comm: Comm, shard: Shard
) -> tuple[DenseLocal | SparseLocal, float, float, list[RowExchange]]:
    """The shard's data scaled by the global :func:`fit_scale` in the working dtype, the scale,
    ``||X||^2`` and one row exchange per mode (collectives)."""
    layout = shard.layout
    local: DenseLocal | SparseLocal
    if isinstance(shard, DenseShard):
        local = DenseLocal(upcast(shard.local))
    else:
        coords = shard.local()
        local = SparseLocal(LocalCoordinates(coords.indices, upcast(coords.values), coords.shape))
    work = working_dtype(shard.dtype)
    peak = comm.all_reduce(torch.tensor([local.peak()], dtype=torch.float64), op="max")
    scale = fit_scale(torch.ones(1, dtype=work), float(peak[0]))
    if scale != 1.0:
        if isinstance(local, DenseLocal):
            local = DenseLocal(local.x / scale)
        else:
            c = local.coords
            local = SparseLocal(LocalCoordinates(c.indices, c.values / scale, c.shape))
    norm_x2 = comm.all_reduce_sum([local.sq_norm()])[0]
    comm.setup_layers([layout.layers(n) for n in range(layout.ndim)])
    grid_at = layout.coords(comm.rank)
    exchanges = [
        RowExchange.build(comm, n, layout.chunk(n, grid_at[n])[0], local.touched(n), shard.device)
        for n in range(layout.ndim)
    ]
    return local, scale, norm_x2, exchanges


def gather_full(comm: Comm, ex: RowExchange, local: torch.Tensor, size: int) -> torch.Tensor:
    """The full ``(size, w)`` matrix on every rank from the rows each rank owns."""
    vals = comm.all_gather_rows(local.index_select(0, ex.owned), kind="gather")
    ids = comm.all_gather_rows((ex.owned + ex.start).reshape(-1, 1), kind="gather")
    out = torch.zeros(size, local.shape[1], dtype=local.dtype, device=local.device)
    for v, i in zip(vals, ids):
        out[i[:, 0].to(local.device)] = v.to(local.device)
    return out


def chunk_rows(full: torch.Tensor, ex: RowExchange) -> torch.Tensor:
    """This rank's chunk of a full factor (a copy)."""
    return full[ex.start : ex.start + ex.rows].clone()


def problem_json(problem: Mapping[str, Any]) -> dict[str, Any]:
    """``problem`` as it reads back from JSON (tuples become lists)."""
    import json

    out: dict[str, Any] = json.loads(json.dumps(dict(problem)))
    return out


def as_list(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values]
