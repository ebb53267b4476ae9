"""``python -m factorch.distributed``: run a distributed decomposition under ``torchrun``.

::

    torchrun --nproc-per-node=4 -m factorch.distributed cp nell-2.tns --rank 16 --out run1
    torchrun --nproc-per-node=2 -m factorch.distributed hosvd data.npy --eps 0.05 --grid 2x1x1
    torchrun --nproc-per-node=2 -m factorch.distributed cp-als 'ratings.{rank}.csv' --rank 8 \
        --shape 1000,500,24 --checkpoint run.ckpt.safetensors

Every rank reads its part of the input (module :mod:`factorch.distributed._io`), the solver runs,
rank 0 writes ``factors.safetensors`` (:func:`factorch.io.load_factorized` reads it) and
``summary.json`` atomically into ``--out`` and logs progress (other ranks stay silent). Any
error ends every rank with the same one-line ``factorch.distributed: error: ...`` on stderr:
exit status 2 for bad input or options, 1 when a rank died or hung (``--timeout``), 130 after
Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..io import DEFAULT_MAX_ENTRIES, check_targets, factorized_to_bytes, file_format, write_files
from ._checkpoint import Checkpoint
from ._comm import Comm, DistributedError, init
from ._completion import cp_als
from ._cp import cp
from ._hosvd import hosvd
from ._io import read_dense_shard, read_sparse_shard

__all__ = ["main"]

PROG = "factorch.distributed"
_LOG = logging.getLogger("factorch.distributed")


def _ints(text: str, sep: str) -> tuple[int, ...]:
    try:
        out = tuple(int(t) for t in text.split(sep))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by {sep!r}; got {text!r}"
        ) from None
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"torchrun --nproc-per-node=N -m {PROG}",
        description="Distributed CP-ALS, CP completion and (ST-)HOSVD over torch.distributed.",
    )
    sub = p.add_subparsers(dest="method", required=True)
    for name, helptext in (
        ("cp", "CP-ALS of a dense (.npy) or sparse (.tns/.csv) tensor"),
        ("cp-als", "CP completion by row-wise ALS on observed entries (coordinate files)"),
        ("hosvd", "ST-HOSVD / T-HOSVD of a dense tensor split along one mode"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("input", help="shared file, or a pattern with {rank} (one file per rank)")
        s.add_argument("--grid", type=lambda t: _ints(t, "x"), help="chunks per mode, e.g. 2x1x1")
        s.add_argument("--shape", type=lambda t: _ints(t, ","), help="global shape, e.g. 100,80,60")
        s.add_argument("--dtype", choices=("float32", "float64"), default="float64")
        s.add_argument("--out", default="factorch-dist-out", help="output directory (rank 0)")
        s.add_argument("--force", action="store_true", help="overwrite existing outputs")
        s.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
        s.add_argument("--max-entries", type=int, default=DEFAULT_MAX_ENTRIES)
        s.add_argument("--backend", choices=("gloo", "nccl"), default=None)
        if name == "hosvd":
            s.add_argument("--rank", type=lambda t: _ints(t, ","), help="multilinear rank")
            s.add_argument("--eps", type=float, help="target relative error")
            s.add_argument("--t-hosvd", action="store_true", help="T-HOSVD instead of ST-HOSVD")
            continue
        s.add_argument("--rank", type=int, required=True, help="number of components")
        s.add_argument("--max-iter", type=int, default=100)
        s.add_argument("--tol", type=float, default=1e-8 if name == "cp" else 1e-6)
        s.add_argument("--l2", type=float, default=0.0)
        s.add_argument("--seed", type=int, default=0, help="seed of the random init")
        s.add_argument("--checkpoint", help="checkpoint file (resumed from when it exists)")
        s.add_argument("--checkpoint-every", type=int, default=10)
        if name == "cp":
            s.add_argument(
                "--nonnegative", action="store_true", help="non-negative factors (MU updates)"
            )
        if name == "cp-als":
            s.add_argument("--validation", help="held-out entries (same conventions as input)")
    return p


def _read(args: argparse.Namespace, path: str) -> Any:
    fmt = file_format(Path(path.replace("{rank}", "0")))
    dtype = getattr(torch, args.dtype)
    common = {"grid": args.grid, "shape": args.shape, "max_entries": args.max_entries}
    if fmt in ("coo", "tns"):
        return read_sparse_shard(path, dtype=dtype, timeout=args.timeout, **common)
    shard = read_dense_shard(path, timeout=args.timeout, **common)
    return shard


def _run(args: argparse.Namespace) -> int:
    rank, world = init(backend=args.backend, timeout=args.timeout)
    out = Path(args.out)
    targets = [out / "factors.safetensors", out / "summary.json"]
    comm = Comm.open(PROG, args.timeout, torch.device("cpu"))
    error: Exception | None = None
    if rank == 0:
        try:
            check_targets(targets, force=args.force)
        except (OSError, ValueError) as err:
            error = ValueError(str(err))
    comm.agree(error)
    shard = _read(args, args.input)
    if args.method == "hosvd":
        rank_arg = (
            None if args.rank is None else (args.rank[0] if len(args.rank) == 1 else args.rank)
        )
        res: Any = hosvd(
            shard, rank_arg, eps=args.eps, sequential=not args.t_hosvd, timeout=args.timeout
        )
        summary: dict[str, Any] = {"errors": list(res.errors)}
    else:
        ckpt = Checkpoint(args.checkpoint, every=args.checkpoint_every) if args.checkpoint else None
        options = {
            "max_iter": args.max_iter,
            "tol": args.tol,
            "l2": args.l2,
            "checkpoint": ckpt,
            "timeout": args.timeout,
            "generator": torch.Generator().manual_seed(args.seed),
        }
        if args.method == "cp":
            res = cp(shard, args.rank, nonnegative=args.nonnegative, **options)
            summary = {
                "errors": list(res.errors),
                "iterations": res.iterations,
                "converged": res.converged,
                "resumed_from": res.extras["resumed_from"],
            }
        else:
            val = _read(args, args.validation) if args.validation else None
            res = cp_als(shard, args.rank, validation=val, **options)
            summary = {
                "train_rmse": list(res.train_rmse),
                "val_rmse": list(res.val_rmse),
                "epochs": res.epochs,
                "best_epoch": res.best_epoch,
                "converged": res.converged,
                "resumed_from": res.extras["resumed_from"],
            }
    summary.update(
        {
            "method": args.method,
            "input": args.input,
            "world_size": world,
            "grid": list(shard.layout.grid),
            "time_s": res.time_s,
            "comm_bytes_rank0": res.extras["comm_bytes"],
            "torch": torch.__version__,
        }
    )
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str | os.PathLike[str], bytes] = {
            targets[0]: factorized_to_bytes(res.model, metadata={"method": args.method}),
            targets[1]: (json.dumps(summary, indent=2) + "\n").encode(),
        }
        write_files(files, force=True)
        _LOG.info("wrote %s and %s", targets[0], targets[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m factorch.distributed`` (returns the exit status)."""
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    _LOG.addHandler(handler)
    _LOG.setLevel(logging.INFO)
    try:
        return _main(args)
    finally:
        _LOG.removeHandler(handler)


def _main(args: argparse.Namespace) -> int:
    try:
        status = _run(args)
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted")
        status = 130
    except DistributedError as err:
        _say(f"{PROG}: error: {err}")
        return _leave(1, clean=False)
    except (TypeError, ValueError, IndexError, OSError, RuntimeError) as err:
        _say(f"{PROG}: error: {err}")
        status = 2
    return _leave(status, clean=True)


def _say(line: str) -> None:
    """One line to stderr in one write: ranks share the launcher's stderr, and ``print`` writes
    the text and its newline separately, so two ranks' lines could run together."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _leave(status: int, *, clean: bool) -> int:
    """Tear the process group down (every rank agreed on the outcome), or, after a lost rank,
    leave at once: the group's background threads cannot be joined cleanly then."""
    sys.stdout.flush()
    sys.stderr.flush()
    if not clean:
        os._exit(status)
    if dist.is_initialized():
        dist.destroy_process_group()
    return status
