"""Test data and launching shared by the distributed tests and their worker processes.

Everything here is deterministic (seeded CPU generators), so a worker process and the test
process build bit-identical inputs: the worker runs the distributed solver, the test the
single-process reference.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from factorch.tensors import CPTensor, SparseTensor

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_distributed_worker.py"
RANK = 3
LATENCY = (2e-3, 5e7)  # injected by the latency checks: 2 ms + bytes / (50 MB/s) per collective


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dense(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A rank-3 tensor plus 10% noise (float64): ALS converges in tens of sweeps."""
    g = gen(seed)
    factors = [torch.rand(s, RANK, generator=g, dtype=torch.float64) for s in shape]
    letters = "abc"[: len(shape)]
    x = torch.einsum(",".join(f"{c}r" for c in letters) + "->" + letters, *factors)
    return x + 0.1 * torch.rand(shape, generator=g, dtype=torch.float64)


def sparse(shape: tuple[int, ...], density: float = 0.35, seed: int = 1) -> SparseTensor:
    x = dense(shape, seed)
    keep = torch.rand(shape, generator=gen(seed + 100)) < density
    return SparseTensor.from_dense(torch.where(keep, x, torch.zeros_like(x)))


def observed(shape: tuple[int, ...], seed: int = 2) -> tuple[SparseTensor, SparseTensor]:
    """Training and validation entries of a noisy low-rank tensor (about 45% and 20%)."""
    x = dense(shape, seed)
    u = torch.rand(shape, generator=gen(seed + 200))
    return SparseTensor.from_dense(x, u < 0.45), SparseTensor.from_dense(x, u > 0.8)


def start(shape: tuple[int, ...], seed: int = 7, rank: int = RANK) -> CPTensor:
    g = gen(seed)
    return CPTensor(
        torch.rand(rank, generator=g, dtype=torch.float64) + 0.5,
        tuple(torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape),
    )


@dataclass(frozen=True)
class Job:
    """What a launched job left behind."""

    returncodes: list[int]
    stdout: list[str]
    stderr: list[str]
    seconds: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(rank: int, world: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "GLOO_SOCKET_IFNAME": "lo",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        }
    )
    return env


def spawn(world: int, args: list[str], port: int | None = None) -> list[subprocess.Popen[str]]:
    """Start ``world`` processes (loopback only, the environment ``torchrun`` would set) running
    ``_distributed_worker.py args`` or, when ``args`` starts with ``-m``, ``python args``."""
    port = free_port() if port is None else port
    command = (
        [sys.executable, *args] if args[:1] == ["-m"] else [sys.executable, str(WORKER), *args]
    )
    return [
        subprocess.Popen(
            command,
            env=env_for(r, world, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]


def wait(procs: list[subprocess.Popen[str]], timeout: float) -> Job:
    t0 = time.monotonic()
    outs, errs, codes = [], [], []
    for p in procs:
        left = max(1.0, timeout - (time.monotonic() - t0))
        try:
            out, err = p.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append(out)
        errs.append(err)
        codes.append(p.returncode)
    return Job(codes, outs, errs, time.monotonic() - t0)


def port_clash(stderr: list[str]) -> bool:
    """Whether a job failed because its rendezvous port was taken between :func:`free_port`
    and the bind (another process on the machine grabbed it): then it is simply relaunched."""
    return any("address already in use" in e.lower() or "eaddrinuse" in e.lower() for e in stderr)


def run(world: int, args: list[str], timeout: float = 240.0) -> Job:
    """Launch ``world`` processes and wait for all (relaunched on a port clash)."""
    for _ in range(3):
        job = wait(spawn(world, args), timeout)
        if not (any(job.returncodes) and port_clash(job.stderr)):
            return job
    return job


def run_many(jobs: dict[int, list[str]], timeout: float = 300.0) -> dict[int, Job]:
    """Launch several jobs (world size -> arguments) at once, each on its own port, and wait
    for all: on a busy machine, starting processes (importing torch) dominates, and overlapping
    the jobs' starts saves most of it. A job that lost its port is relaunched alone."""
    started = {world: spawn(world, args) for world, args in jobs.items()}
    done = {world: wait(procs, timeout) for world, procs in started.items()}
    for world, job in done.items():
        if any(job.returncodes) and port_clash(job.stderr):
            done[world] = run(world, jobs[world], timeout)
    return done


# --- the checks a battery job runs (the worker) and compares (the tests) ----------------------
@dataclass(frozen=True)
class Check:
    """One distributed computation and its single-process reference.

    ``method``: "cp" (dense or sparse data), "nncp" (the same, non-negative), "cp_als" or
    "hosvd"; ``data``: the full tensor
    (dense tensor or SparseTensor); ``grid`` and optional explicit ``bounds``; ``options``: the
    keyword arguments both sides get (``init`` included).
    """

    name: str
    method: str
    data: object
    grid: tuple[int, ...]
    options: dict[str, object]
    bounds: tuple[tuple[int, ...], ...] | None = None
    validation: SparseTensor | None = None

    def layout(self):  # -> ShardLayout (import kept local: the worker imports it too)
        from factorch.distributed import ShardLayout

        shape = tuple(self.data.shape)
        if self.bounds is not None:
            return ShardLayout(shape, self.grid, self.bounds)
        if isinstance(self.data, SparseTensor):
            counts = [self.data.counts(n) for n in range(len(shape))]
            return ShardLayout.balanced(shape, self.grid, counts)
        return ShardLayout.even(shape, self.grid)


def _grid(world: int, mode: int, ndim: int = 3) -> tuple[int, ...]:
    g = [1] * ndim
    g[mode] = world
    return tuple(g)


def _tail_empty(sp: SparseTensor, mode: int, keep: int) -> SparseTensor:
    """``sp`` without the entries whose ``mode`` index is ``>= keep``."""
    return sp.select(sp.indices[mode] < keep)


def _empty_last_bounds(shape: tuple[int, ...], world: int, mode: int, keep: int):
    """Even chunks of ``[0, keep)`` for all ranks but the last, which gets ``[keep, I)``."""
    inner = [round(c * keep / (world - 1)) for c in range(world)]
    bounds = []
    for n, s in enumerate(shape):
        bounds.append((*inner, s) if n == mode else (0, s))
    return tuple(bounds)


def checks(world: int) -> list[Check]:
    """The battery for ``world`` ranks: uneven shards, an empty shard, a mode smaller than the
    number of ranks, dense and sparse CP, CP completion, HOSVD."""
    out: list[Check] = []
    x = dense((11, 7, 5))
    cp_opts = {"init": start((11, 7, 5)), "max_iter": 25, "tol": 1e-9}
    for mode in (0, 2):
        out.append(Check(f"dense_m{mode}", "cp", x, _grid(world, mode), cp_opts))
    small = (world - 1, 9, 6)
    out.append(
        Check(
            "dense_small_mode",
            "cp",
            dense(small, 3),
            _grid(world, 0),
            {"init": start(small), "max_iter": 20, "tol": 1e-9, "l2": 1e-3},
        )
    )
    sp = sparse((12, 9, 8))
    sp_opts = {"init": start((12, 9, 8)), "max_iter": 20, "tol": 1e-9}
    for mode in (0, 1):
        out.append(Check(f"sparse_m{mode}", "cp", sp, _grid(world, mode), sp_opts))
    out.append(
        Check(
            "sparse_random_init",
            "cp",
            sp,
            _grid(world, 2),
            {"init": "random", "generator": gen(11), "max_iter": 8, "tol": 0.0},
        )
    )
    nn_opts = {"init": start((12, 9, 8)), "max_iter": 15, "tol": 1e-9}
    out.append(Check("nncp_dense_m1", "nncp", dense((12, 9, 8), 5), _grid(world, 1), nn_opts))
    out.append(Check("nncp_sparse_m0", "nncp", sp, _grid(world, 0), nn_opts))
    tail = _tail_empty(sp, 2, 6)
    out.append(
        Check(
            "sparse_empty_shard",
            "cp",
            tail,
            _grid(world, 2),
            sp_opts,
            bounds=_empty_last_bounds((12, 9, 8), world, 2, 6),
        )
    )
    sp_small = sparse(small, 0.6, seed=4)
    out.append(
        Check(
            "sparse_small_mode",
            "cp",
            sp_small,
            _grid(world, 0),
            {"init": start(small), "max_iter": 15, "tol": 1e-9},
        )
    )
    train, val = observed((12, 9, 8))
    als_opts = {"init": start((12, 9, 8), 9), "max_iter": 12, "tol": 1e-10, "l2": 1e-2}
    out.append(Check("als_m0", "cp_als", train, _grid(world, 0), als_opts, validation=val))
    out.append(Check("als_m2", "cp_als", train, _grid(world, 2), als_opts))
    out.append(
        Check(
            "als_empty_shard",
            "cp_als",
            _tail_empty(train, 1, 6),
            _grid(world, 1),
            als_opts,
            bounds=_empty_last_bounds((12, 9, 8), world, 1, 6),
            validation=_tail_empty(val, 1, 6),
        )
    )
    train_s, _ = observed(small, 5)
    out.append(
        Check(
            "als_small_mode",
            "cp_als",
            train_s,
            _grid(world, 0),
            {"init": start(small), "max_iter": 10, "tol": 1e-10, "l2": 1e-3},
        )
    )
    for mode in range(3):
        out.append(Check(f"hosvd_m{mode}_st", "hosvd", x, _grid(world, mode), {"rank": (4, 3, 3)}))
        out.append(
            Check(
                f"hosvd_m{mode}_t_eps",
                "hosvd",
                x,
                _grid(world, mode),
                {"eps": 0.05, "sequential": False},
            )
        )
    out.append(
        Check(
            "hosvd_small_mode", "hosvd", dense((world - 1, 8, 7), 6), _grid(world, 0), {"eps": 0.1}
        )
    )
    if world == 4:
        # Four processes on a 2-core CI machine: only what 2 and 3 ranks cannot show, grids
        # split along two modes (layers of two ranks in every split mode).
        keep = {"dense_m0", "sparse_empty_shard"}
        out = [c for c in out if c.name in keep]
        out.append(Check("dense_2x2x1", "cp", x, (2, 2, 1), cp_opts))
        out.append(Check("sparse_2x1x2", "cp", sp, (2, 1, 2), sp_opts))
        out.append(Check("als_1x2x2", "cp_als", train, (1, 2, 2), als_opts, validation=val))
        out.append(Check("hosvd_m1_st_4", "hosvd", x, (1, 4, 1), {"rank": (4, 3, 3)}))
    return out
