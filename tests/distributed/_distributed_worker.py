"""A worker process of the distributed tests (started by ``_distributed_cases.spawn``).

``python _distributed_worker.py battery OUT`` runs every check of ``checks(world)`` and the bad
launches, and saves this rank's results to ``OUT/rank{r}.pt``. ``... fault OUT INPUT CKPT`` runs
a paced CP-ALS with checkpoints until the test kills or stops a rank, and records how this rank
ended in ``OUT/fault{r}.txt``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
T = 180  # collective timeout (s): generous, a loaded CI machine starts processes slowly

from _distributed_cases import LATENCY, checks  # noqa: E402

import factorch.distributed as fd  # noqa: E402
from factorch.tensors import SparseTensor  # noqa: E402


def _comm(res) -> dict[str, object]:
    return {
        "injected": res.extras["comm_injected_seconds"],
        "seconds": res.extras["comm_seconds"],
        "bytes": sum(res.extras["comm_bytes"].values()),
        "calls": res.extras.get("comm_calls"),
    }


def _result(check, rank: int) -> dict[str, object]:
    layout = check.layout()
    opts = dict(check.options)
    if isinstance(check.data, SparseTensor):
        shard = fd.SparseShard.from_full(check.data, layout, rank)
    else:
        shard = fd.DenseShard.from_full(check.data, layout, rank)
    if check.method in ("cp", "nncp"):
        res = fd.cp(shard, 3, timeout=T, nonnegative=check.method == "nncp", **opts)
        return {
            "weights": res.model.weights,
            "factors": list(res.model.factors),
            "errors": list(res.errors),
            "iterations": res.iterations,
            "converged": res.converged,
            "row_bytes": res.extras["row_bytes_per_sweep"],
            "comm": _comm(res),
        }
    if check.method == "cp_als":
        val = None
        if check.validation is not None:
            val = fd.SparseShard.from_full(check.validation, layout, rank)
        res = fd.cp_als(shard, 3, validation=val, timeout=T, **opts)
        return {
            "weights": res.model.weights,
            "factors": list(res.model.factors),
            "train_rmse": list(res.train_rmse),
            "val_rmse": list(res.val_rmse),
            "best_epoch": res.best_epoch,
            "epochs": res.epochs,
            "converged": res.converged,
            "empty_slices": list(res.extras["empty_slices"]),
            "comm": _comm(res),
        }
    res = fd.hosvd(shard, timeout=T, **opts)
    return {"core": res.model.core, "factors": list(res.model.factors), "errors": list(res.errors)}


def _bad_launches(rank: int, out: Path) -> dict[str, object]:
    """Each bad launch: the (type, message) this rank raised."""
    import _distributed_cases as cases

    got: dict[str, object] = {}

    def attempt(name, fn):
        try:
            fn()
            got[name] = None
        except Exception as err:  # recorded for the test to compare across ranks
            got[name] = (type(err).__name__, str(err))

    shape = (11, 7, 5) if rank == 0 else (11, 7, 6)
    x = cases.dense(shape)
    lay = fd.ShardLayout.even(shape, (2, 1, 1))
    attempt("shape", lambda: fd.cp(fd.DenseShard.from_full(x, lay, rank), 3, timeout=T))
    x = cases.dense((11, 7, 5))
    lay = fd.ShardLayout.even(x.shape, (2, 1, 1))
    shard = fd.DenseShard.from_full(x, lay, rank)
    attempt("rank", lambda: fd.cp(shard, 3 + rank, timeout=T))
    other = fd.DenseShard.from_full(x, lay, 0)
    attempt("wrong_shard", lambda: fd.cp(other, 3, timeout=T))
    if rank == 0:
        torch.save(x[:6].clone(), out / "part.0.pt")
    attempt(
        "missing_file",
        lambda: fd.read_dense_shard(str(out / "part.{rank}.pt"), shape=(11, 7, 5), grid=(2, 1, 1)),
    )
    attempt("healthy_after", lambda: fd.cp(shard, 3, max_iter=2, timeout=T))
    return got


def _latency_checks(rank: int) -> dict[str, object]:
    """CP-ALS and CP completion without and with injected latency (``fd.inject_latency``)."""
    got: dict[str, object] = {}
    for check in checks(2):
        if check.name not in ("sparse_m0", "als_m0"):
            continue
        for state in ("off", "on"):
            hook = fd.inject_latency(LATENCY[0], bandwidth=LATENCY[1])
            with hook if state == "on" else contextlib.nullcontext():
                got[f"{check.name}_{state}"] = _result(check, rank)
    return got


def battery(out: Path) -> None:
    rank, world = fd.init(timeout=T)
    results: dict[str, object] = {}
    for check in checks(world):
        results[check.name] = _result(check, rank)
    if world == 2:
        results["bad_launches"] = _bad_launches(rank, out)
        results["latency"] = _latency_checks(rank)
    torch.save(results, out / f"rank{rank}.pt")


def fault(out: Path, data: Path, ckpt: Path) -> None:
    """A CP-ALS paced by a sleeping callback, checkpointing every 2 sweeps; records its end."""
    # Joining and reading get a generous timeout (processes start slowly on a loaded machine);
    # the solve gets the short one under test.
    rank, _ = fd.init(timeout=T)
    shard = fd.read_sparse_shard(str(data), timeout=T)
    start = time.monotonic()

    def pace(state) -> bool:
        time.sleep(0.3)
        return False

    try:
        fd.cp(
            shard,
            3,
            init="random",
            generator=torch.Generator().manual_seed(0),
            max_iter=10_000,
            tol=0.0,
            checkpoint=fd.Checkpoint(ckpt, every=2),
            timeout=8,
            callback=pace,
        )
        (out / f"fault{rank}.txt").write_text("finished\n")
    except fd.DistributedError as err:
        (out / f"fault{rank}.txt").write_text(f"{time.monotonic() - start:.3f}\n{err}\n")
        os._exit(1)  # the broken group's threads cannot be joined: leave at once


if __name__ == "__main__":
    scenario, outdir = sys.argv[1], Path(sys.argv[2])
    if scenario == "battery":
        battery(outdir)
    elif scenario == "fault":
        fault(outdir, Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
