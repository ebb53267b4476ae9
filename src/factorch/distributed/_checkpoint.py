"""Checkpoints of a distributed ALS run: written by rank 0 atomically, read back on restart.

A checkpoint is one safetensors file: the full state tensors (factor matrices, weights, Gram
matrices, ...) in the units the run works in, and a JSON header that says what problem it belongs
to (method, shape, rank, dtype, data scale, regularisation) and where the run stood (iteration,
error history, the error estimate in force). It is written through
:func:`factorch.io.write_atomic` (a temporary file and an atomic rename), so a job killed while
writing leaves the previous checkpoint intact. The layout is not part of the problem: a run may
resume on a different number of ranks.

On restart rank 0 reads the file and broadcasts it; a checkpoint of another problem is refused on
every rank with a message naming the difference.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._checks import check_positive_int
from ..io import write_atomic
from ._comm import Comm

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often a distributed run saves its state.

    Attributes:
        path: the checkpoint file (``.safetensors``); on a filesystem rank 0 can write and read.
        every: save after every ``every`` iterations (and never the same iteration twice).
        resume: when the file exists at the start, continue from it (its problem must match);
            False ignores it and overwrites it.

    Raises:
        TypeError: a ``path`` that is not a path, a non-int ``every``, or a non-bool ``resume``.
        ValueError: ``every`` below 1.

    Example:
        >>> Checkpoint("run.safetensors", every=5).every
        5
    """

    path: str | os.PathLike[str]
    every: int = 10
    resume: bool = True

    def __post_init__(self) -> None:
        fn = "Checkpoint"
        if not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(
                f"{fn}: path must be a str or os.PathLike; got {type(self.path).__name__}."
            )
        check_positive_int(self.every, fn, "every")
        if not isinstance(self.resume, bool):
            raise TypeError(f"{fn}: resume must be a bool; got {type(self.resume).__name__}.")


def save_checkpoint(
    comm: Comm, ckpt: Checkpoint, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Rank 0 writes ``tensors`` (full, identical on every rank) and ``meta`` atomically."""
    if comm.rank != 0:
        return
    from safetensors.torch import save

    data = save(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        metadata={"factorch": json.dumps(meta)},
    )
    write_atomic(Path(ckpt.path), data, force=True)


def load_checkpoint(
    comm: Comm, ckpt: Checkpoint, problem: dict[str, Any], device: torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The checkpoint's tensors and metadata on every rank (rank 0 reads, then broadcasts), or
    None when there is none to resume from. Every rank raises the same ``ValueError`` when the
    file belongs to another problem or cannot be read."""
    payload: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    error: Exception | None = None
    if comm.rank == 0 and ckpt.resume and Path(ckpt.path).exists():
        try:
            payload = _read(Path(ckpt.path), problem, comm.fn)
        except (OSError, ValueError) as err:
            error = ValueError(str(err))
    comm.agree(error)
    found = comm.broadcast_object(payload is not None)
    if not found:
        return None
    meta = comm.broadcast_object(payload[1] if payload is not None else None)
    names = comm.broadcast_object(
        [(k, tuple(v.shape), str(v.dtype)) for k, v in payload[0].items()] if payload else None
    )
    tensors = {}
    for name, shape, dtype in names:
        mine = payload[0][name] if payload is not None else None
        like = torch.empty(shape, dtype=getattr(torch, dtype.split(".")[-1]))
        t = comm.broadcast(mine if mine is not None else like, kind="gather")
        tensors[name] = t.to(device)
    return tensors, meta


def _read(
    path: Path, problem: dict[str, Any], fn: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ValueError(
            f"{fn}: checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); "
            "delete it or pass Checkpoint(..., resume=False) to start over."
        ) from None
    try:
        meta = json.loads(header["factorch"])
    except (KeyError, ValueError):
        raise ValueError(
            f"{fn}: {str(path)!r} is not a factorch checkpoint (no 'factorch' metadata); pass "
            "another path or Checkpoint(..., resume=False)."
        ) from None
    for key, want in problem.items():
        got = meta.get(key)
        if got != want:
            raise ValueError(
                f"{fn}: checkpoint {str(path)!r} is for another problem ({key} {got!r}, this "
                f"run has {want!r}); delete it, pass another path, or "
                "Checkpoint(..., resume=False)."
            )
    return tensors, meta
