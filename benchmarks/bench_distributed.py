"""Distributed sparse CP-ALS (``factorch.distributed.cp``) over gloo, one thread per process.

1. Strong scaling: one tensor of ``--nnz`` nonzeros (default 20 M; shape 12,092 x 9,184 x
   28,818, NELL-2's), rank 16, float64, fitted by 1 and 2 processes; weak scaling: ``--nnz / 2``
   nonzeros per process (1 process with nnz/2, 2 with nnz). Time per sweep: the median of the
   timed sweeps after one warm-up sweep (and before the last, which also computes the exact
   error), read on rank 0 from the solver's progress log (every rank moves in lockstep: each
   sweep ends with all-reduces).
2. Bytes of factor rows each process sends per sweep (``extras["row_bytes_per_sweep"]``)
   against the SPLATT medium-grained model: a row of a mode-n chunk that ``u`` ranks of its
   layer touch travels ``2 (u - 1)`` times (partial rows to the owner, updated rows back), and
   the all-rows-touched bound ``2 (q - 1) I_n R 8 / (p_n q)`` per rank for a layer of ``q`` ranks.
3. A cost model ``t_sweep(P) = c * nnz / P + calls * alpha + bytes / beta`` with ``c`` (seconds
   per nonzero per sweep) from the one-process run, ``calls`` (collectives per sweep) counted,
   and the model's latency term checked against 2-process runs on ``--latency-nnz`` nonzeros
   (default nnz / 20) with and without ``--latency-ms`` (default 100) of delay injected before
   every collective (``factorch.distributed.inject_latency``): the measured slowdown per sweep
   against ``calls * delay``. Medians and the
   fastest sweeps are both reported (the fastest is the least disturbed by other jobs on a
   shared machine), and rank 0's CPU seconds per sweep (``time.process_time``: what the
   process computed, whatever else ran; ``c`` comes from it).
   Projections for NELL-2 (76.9 M nonzeros) and a 1.7 G-nonzero tensor (Amazon reviews'
   4.8 M x 1.8 M x 1.8 M) on 8-64 nodes use the stated assumptions (``ASSUMPTIONS``).

Processes are launched here with the environment ``torchrun`` sets (loopback, a free port;
retried on a port clash). Data: a planted rank-4 model evaluated at uniformly random
coordinates, generated in chunks by every process and moved to its owner with
``factorch.distributed.redistribute`` (duplicate coordinates carry equal values and merge).

4. ``--latency``: the model checked against injected latency between local processes, alone.
   One process fits the compute term on the CPU seconds per sweep of ``--latency-nnz``
   (default 200 k) and a quarter as many nonzeros (``c`` per nonzero and ``d0`` per sweep for
   the work on all factor rows; CPU time, which other jobs do not inflate); each job
   of ``--worlds`` (2, 3) processes measures its loopback's own collective costs (``alpha0``: a
   one-number all-reduce; ``beta0``: a 1 MB all-to-all) and runs every setting -- injected
   ``alpha`` of ``--latencies-ms`` (0, 1, 5, 20, 50 ms) per collective, and two points with a
   per-byte delay at ``--bandwidth-mbs`` (20 MB/s) -- ``--repeats`` (5) times, round-robin.
   Predicted time per sweep: ``max(1, P / cores) (c nnz_max + d0 rows_local) + calls (alpha0 +
   alpha) + row_bytes (1 / beta0 + 1 / beta)``; reported against the median sweep (median
   over the repeats of each call's median) and against the fastest sweep, with the slope of the
   measured slowdowns on the injected seconds (1: the latency term is exactly additive).

Run:

    python benchmarks/bench_distributed.py [--quick] [--nnz N] [--sweeps K] [--latency-ms D]
        [--latency-nnz M]
    python benchmarks/bench_distributed.py --latency [--quick] [--sweeps K] [--latency-nnz M]
        [--latencies-ms 0,1,5,20,50] [--bandwidth-mbs B] [--worlds 2,3] [--repeats R]

Writes ``benchmarks/results/bench_distributed.json`` (``--latency``:
``bench_distributed_latency.json``; ``_quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

from _common import RESULTS_DIR, format_table, machine_info, pin_threads, write_results

SHAPE = (12092, 9184, 28818)  # NELL-2's dimensions
RANK = 16
CHUNK = 1 << 20
ASSUMPTIONS = {
    "ranks_per_node": 16,  # one single-threaded rank per core, 16 cores per node
    "compute_rate": "the one-process CPU seconds per nonzero per sweep (median), per rank",
    "alpha_s": 50e-6,  # per message: gloo over TCP on a cluster network
    "beta_bytes_per_s": 1.25e9,  # 10 Gbit/s per node, shared by its ranks
    "beta_fast_bytes_per_s": 6.25e9,  # 50 Gbit/s per node (an InfiniBand-class link)
    "grid": "factorch.distributed.choose_grid(shape, P)",
    "rows": "every row of a chunk touched by every rank of its layer (upper bound)",
}
TARGETS = {
    "NELL-2": ((12092, 9184, 28818), 76_879_419),
    "1.7G (Amazon-like)": ((4_821_207, 1_774_269, 1_805_187), 1_741_809_018),
}


# --- worker ---------------------------------------------------------------------------------
def _planted(torch: Any, shape: tuple[int, ...]) -> list[Any]:
    g = torch.Generator().manual_seed(1234)
    return [torch.rand(s, 4, generator=g, dtype=torch.float64) for s in shape]


def _entries(torch: Any, nnz: int, rank: int, world: int) -> tuple[Any, Any]:
    """This process's share of the generated nonzeros (chunks ``c = rank, rank + world, ...``)."""
    factors = _planted(torch, SHAPE)
    idx_parts, val_parts = [], []
    for c in range(rank, math.ceil(nnz / CHUNK), world):
        n = min(CHUNK, nnz - c * CHUNK)
        g = torch.Generator().manual_seed(10_000 + c)
        idx = torch.stack([torch.randint(0, s, (n,), generator=g) for s in SHAPE])
        val = factors[0][idx[0]] * factors[1][idx[1]] * factors[2][idx[2]]
        idx_parts.append(idx)
        val_parts.append(val.sum(1))
    if not idx_parts:
        return torch.zeros(3, 0, dtype=torch.int64), torch.zeros(0, dtype=torch.float64)
    return torch.cat(idx_parts, 1), torch.cat(val_parts)


class _Sweeps(logging.Handler):
    """Rank 0's progress log: the wall clock, collective count and this process's CPU time at
    the end of each sweep."""

    def __init__(self, counter: list[int]) -> None:
        super().__init__()
        self.counter = counter
        self.marks: list[tuple[float, int, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The log line's own seconds are rounded to 1 ms: read the clock here instead (the
        # line is logged right after the sweep's last collective).
        if re.search(r"^sweep \d+: ", record.getMessage()):
            self.marks.append((time.perf_counter(), self.counter[0], time.process_time()))


def _wrap_collectives(dist: Any, counter: list[int]) -> None:
    """Count every collective call into ``torch.distributed`` (independently of the library's
    own count: the model's ``calls`` term)."""
    for name in ("all_reduce", "all_to_all_single", "all_gather", "broadcast"):
        real = getattr(dist, name)

        def wrapped(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            counter[0] += 1
            return _real(*args, **kwargs)

        setattr(dist, name, wrapped)


def worker(spec: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    import factorch.distributed as fd

    rank, world = fd.init(backend="gloo", timeout=1800)
    t0 = time.perf_counter()
    idx, val = _entries(torch, spec["nnz"], rank, world)
    shard = fd.redistribute(idx, val, SHAPE, timeout=1800)
    del idx, val
    setup_s = time.perf_counter() - t0
    counter = [0]
    _wrap_collectives(dist, counter)
    handler = _Sweeps(counter)
    log = logging.getLogger("factorch.distributed")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    with fd.inject_latency(spec["latency_ms"] / 1000):
        res = fd.cp(
            shard,
            RANK,
            init="random",
            generator=torch.Generator().manual_seed(0),
            max_iter=spec["sweeps"] + 2,
            tol=0.0,
            timeout=1800,
        )
    marks = handler.marks[:-1]  # the last sweep also computes the exact error: not timed
    per_sweep = [b[0] - a[0] for a, b in itertools.pairwise(marks)]
    calls = [b[1] - a[1] for a, b in itertools.pairwise(marks)]
    cpu = [b[2] - a[2] for a, b in itertools.pairwise(marks)]
    box: list[Any] = [None] * world
    dist.all_gather_object(box, {"nnz": shard.nnz, "rows": res.extras["row_bytes_per_sweep"]})
    counts = [b["nnz"] for b in box]
    if rank == 0:
        out = {
            "world": world,
            "grid": list(res.extras["grid"]),
            "nnz_per_rank": counts,
            "setup_s": setup_s,
            "sweep_s": per_sweep,
            "calls_per_sweep": calls,
            "cpu_sweep_s": cpu,
            "row_bytes_per_sweep": [b["rows"] for b in box],
            "comm_bytes_rank0": res.extras["comm_bytes"],
            "final_error": res.errors[-1],
            "model_rows": _model_rows(shard.layout),
        }
        Path(spec["out"]).write_text(json.dumps(out))
    dist.barrier()
    dist.destroy_process_group()


def _model_rows(layout: Any) -> float:
    """The all-rows-touched medium-grained bound, bytes per rank per sweep (mean)."""
    total = 0.0
    for n, s in enumerate(SHAPE):
        p_n = layout.grid[n]
        q = layout.world_size // p_n
        total += 2 * (q - 1) * (s / p_n) * RANK * 8 / q
    return total


# --- launcher -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(world: int, spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    tag = spec.get("mode", f"{spec.get('nnz')}_{spec.get('latency_ms')}")
    out = tmp / f"run{world}_{tag}.json"
    spec = {**spec, "out": str(out)}
    for _attempt in range(3):
        port = _free_port()
        procs = []
        for r in range(world):
            env = dict(os.environ)
            env.update(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                GLOO_SOCKET_IFNAME="lo",
            )
            cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
            procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
        errs = [p.communicate()[1] for p in procs]
        if all(p.returncode == 0 for p in procs):
            return json.loads(out.read_text())
        if not any("address already in use" in e.lower() for e in errs):
            raise RuntimeError("a benchmark job failed:\n" + "\n".join(errs))
    raise RuntimeError("no free port after 3 attempts")


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _project(
    c: float, shape: tuple[int, ...], nnz: int, nodes: int, *, alpha: float, beta: float
) -> dict:
    """Projected seconds per sweep on ``nodes`` nodes (``ASSUMPTIONS``): compute ``c nnz / P``;
    latency ``alpha`` per message: per split mode two all-to-alls of ``q_n - 1`` messages each
    (pairwise exchange in a layer of ``q_n`` ranks), per mode one all-reduce of
    ``ceil(log2 P)`` steps; bandwidth: the all-rows-touched bytes of a rank times the ranks of
    a node, over the node's ``beta``."""
    from factorch.distributed import choose_grid

    p = nodes * ASSUMPTIONS["ranks_per_node"]
    grid = choose_grid(shape, p)
    comm_bytes = 0.0
    messages = len(shape) * math.ceil(math.log2(p))
    for n, s in enumerate(shape):
        q = p // grid[n]
        comm_bytes += 2 * (q - 1) * (s / grid[n]) * RANK * 8 / q
        messages += 2 * (q - 1)
    compute = c * nnz / p
    latency = alpha * messages
    bandwidth = comm_bytes * ASSUMPTIONS["ranks_per_node"] / beta
    return {
        "nodes": nodes,
        "ranks": p,
        "grid": list(grid),
        "compute_s": compute,
        "latency_s": latency,
        "messages": messages,
        "bandwidth_s": bandwidth,
        "total_s": compute + latency + bandwidth,
        "bytes_per_rank": comm_bytes,
        "alpha_s": alpha,
        "beta_bytes_per_s": beta,
    }


def projections(c: float, beta: float) -> dict[str, list[dict]]:
    """The projected NELL-2 and 1.7 G-nonzero runs on 8-64 nodes."""
    return {
        name: [
            _project(c, shape, n, nodes, alpha=ASSUMPTIONS["alpha_s"], beta=beta)
            for nodes in (8, 16, 32, 64)
        ]
        for name, (shape, n) in TARGETS.items()
    }


# --- injected-latency sweep (--latency) -----------------------------------------------------
def _loopback(torch: Any, dist: Any, world: int, nbytes: int = 1 << 20) -> dict[str, float]:
    """This machine's own collective costs (no injection): ``alpha0``, the median seconds of a
    one-number all-reduce, and ``beta0``, the bytes per second of an all-to-all sending
    ``nbytes`` per rank (its median time less ``alpha0``). Ranks meet at a barrier before each
    timed call, so rank skew is not counted."""

    def median_time(call: Any, n: int) -> float:
        times = []
        for _ in range(n):
            dist.barrier()
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return statistics.median(times[3:])

    one = torch.zeros(1, dtype=torch.float64)
    alpha0 = median_time(lambda: dist.all_reduce(one), 43)
    per_peer = max(1, nbytes // 8 // (world - 1))
    send = torch.zeros(per_peer * world, dtype=torch.float64)
    recv = torch.empty_like(send)
    t = median_time(lambda: dist.all_to_all_single(recv, send), 13)
    sent = per_peer * 8 * (world - 1)
    beta0 = sent / max(t - alpha0, 1e-9)
    return {"alpha0_s": alpha0, "a2a_s": t, "a2a_bytes": sent, "beta0": beta0}


def latency_worker(spec: dict[str, Any]) -> None:
    """Every setting (``[alpha_s, bandwidth or None]``) on every data set, ``repeats`` rounds,
    round-robin (a drifting machine load hits every setting alike); per call the sweep times
    of rank 0 (after one warm-up sweep, the last sweep excluded)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    import factorch.distributed as fd

    rank, world = fd.init(backend="gloo", timeout=1800)
    shards = {}
    for n in spec["nnz"]:
        idx, val = _entries(torch, n, rank, world)
        shards[n] = fd.redistribute(idx, val, SHAPE, timeout=1800)
        del idx, val
    loop = _loopback(torch, dist, world) if world > 1 else None
    counter = [0]
    _wrap_collectives(dist, counter)
    handler = _Sweeps(counter)
    log = logging.getLogger("factorch.distributed")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    calls_out = []
    for repeat in range(spec["repeats"]):
        for n in spec["nnz"]:
            for alpha, bandwidth in spec["settings"]:
                handler.marks.clear()
                with fd.inject_latency(alpha, bandwidth=bandwidth or math.inf):
                    res = fd.cp(
                        shards[n],
                        RANK,
                        init="random",
                        generator=torch.Generator().manual_seed(0),
                        max_iter=spec["sweeps"] + 2,
                        tol=0.0,
                        timeout=1800,
                    )
                marks = handler.marks[:-1]
                calls_out.append(
                    {
                        "nnz": n,
                        "alpha_s": alpha,
                        "bandwidth": bandwidth,
                        "repeat": repeat,
                        "sweep_s": [b[0] - a[0] for a, b in itertools.pairwise(marks)],
                        "cpu_sweep_s": [b[2] - a[2] for a, b in itertools.pairwise(marks)],
                        "calls_per_sweep": [b[1] - a[1] for a, b in itertools.pairwise(marks)],
                        "row_bytes_per_sweep": res.extras["row_bytes_per_sweep"],
                        "injected_s": res.extras["comm_injected_seconds"],
                        "final_error": res.errors[-1],
                    }
                )
    box: list[Any] = [None] * world
    mine = {
        "nnz": {n: sh.nnz for n, sh in shards.items()},
        "rows": [c["row_bytes_per_sweep"] for c in calls_out],
        "injected": [c["injected_s"] for c in calls_out],
    }
    dist.all_gather_object(box, mine)
    if rank == 0:
        for i, c in enumerate(calls_out):
            c["row_bytes_per_sweep"] = [b["rows"][i] for b in box]
            c["injected_s"] = [b["injected"][i] for b in box]
        out = {
            "world": world,
            "grid": list(shards[spec["nnz"][0]].layout.grid),
            "nnz_per_rank": {str(n): [b["nnz"][n] for b in box] for n in spec["nnz"]},
            "loopback": loop,
            "calls": calls_out,
        }
        Path(spec["out"]).write_text(json.dumps(out))
    dist.barrier()
    dist.destroy_process_group()


def _picked(job: dict[str, Any], nnz: int, alpha: float, bandwidth: Any) -> list[dict]:
    """The calls of one setting (one per repeat)."""
    return [
        c
        for c in job["calls"]
        if c["nnz"] == nnz and c["alpha_s"] == alpha and c["bandwidth"] == bandwidth
    ]


# The two statistics the model is checked on: the median sweep of each call, then the median
# over the repeats (what the time per sweep is), and the fastest sweep of all repeats (the one
# least disturbed by other jobs on a shared machine).
STATS = {
    "median": lambda calls: _median([_median(c["sweep_s"]) for c in calls]),
    "fastest": lambda calls: min(min(c["sweep_s"]) for c in calls),
}


def _cpu(calls: list[dict]) -> float:
    """Median CPU seconds per sweep (rank 0's process time: what it computed, whatever else
    ran on the machine)."""
    return _median([_median(c["cpu_sweep_s"]) for c in calls])


def _predict(
    stat: str, one: dict[str, Any], jobs: dict[int, dict[str, Any]], spec: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Predict every multi-process point; compare with the measured statistic ``stat``.

    ``t(P, alpha, beta) = share (c nnz_max + d0 rows_local) + calls (alpha0 + alpha)
    + row_bytes (1 / beta0 + 1 / beta)``: ``c`` and ``d0`` from the CPU seconds per sweep of the
    one-process runs on ``nnz`` and ``nnz / 4`` nonzeros (``d0``: the per-sweep work on all
    factor rows, which does not shrink with the nonzeros; CPU time, so that other jobs on the
    machine do not enter the fit), ``rows_local`` the fraction of factor rows a rank holds,
    ``share = max(1, P / cores)``, ``alpha0`` and ``beta0`` this machine's loopback costs
    (measured in the job), ``calls`` and ``row_bytes`` (the largest over ranks) counted per
    sweep.
    """
    nnz, small, cores = spec["nnz"], spec["nnz"] // 4, spec["cores"]
    n_full = sum(one["nnz_per_rank"][str(nnz)])
    n_small = sum(one["nnz_per_rank"][str(small)])
    t_full = _cpu(_picked(one, nnz, 0.0, None))
    t_small = _cpu(_picked(one, small, 0.0, None))
    c = (t_full - t_small) / (n_full - n_small)
    d0 = t_full - c * n_full
    fit = {"c_s_per_nnz": c, "d0_s": d0, "t1_cpu_s": [t_full, t_small], "nnz": [n_full, n_small]}
    points = []
    for w, job in jobs.items():
        loop, grid = job["loopback"], job["grid"]
        local_rows = sum(size / p for size, p in zip(SHAPE, grid)) / sum(SHAPE)
        share = max(1.0, w / cores)  # more processes than cores: each gets cores / w of one
        compute = (c * max(job["nnz_per_rank"][str(nnz)]) + d0 * local_rows) * share
        base_t = STATS[stat](_picked(job, nnz, 0.0, None))
        for alpha, bandwidth in spec["settings"]:
            calls_of = _picked(job, nnz, alpha, bandwidth)
            calls = _median([_median(x["calls_per_sweep"]) for x in calls_of])
            row_bytes = max(max(x["row_bytes_per_sweep"]) for x in calls_of)
            measured = STATS[stat](calls_of)
            injected = calls * alpha + (row_bytes / bandwidth if bandwidth else 0.0)
            comm = calls * loop["alpha0_s"] + row_bytes / loop["beta0"]
            predicted = compute + comm + injected
            points.append(
                {
                    "world": w,
                    "grid": grid,
                    "alpha_s": alpha,
                    "bandwidth": bandwidth,
                    "calls_per_sweep": calls,
                    "row_bytes_per_sweep": row_bytes,
                    "measured_s": measured,
                    "cpu_s": _cpu(calls_of),
                    "per_repeat_median_s": [_median(x["sweep_s"]) for x in calls_of],
                    "predicted_s": predicted,
                    "terms_s": {"compute": compute, "loopback": comm, "injected": injected},
                    "error": (predicted - measured) / measured,
                    "measured_increment_s": measured - base_t,
                    "injected_s": injected,
                }
            )
    return fit, points


def _slope(points: list[dict[str, Any]]) -> float:
    """Least-squares slope (through 0) of the measured increments on the injected seconds."""
    x = [p["injected_s"] for p in points]
    y = [p["measured_increment_s"] for p in points]
    return sum(a * b for a, b in zip(x, y)) / max(sum(a * a for a in x), 1e-30)


def _latency_projections() -> dict[str, Any] | None:
    """The projections again, with ``c`` from the last full run (its CPU seconds per nonzero
    per sweep, 20 M nonzeros on one process), at both node bandwidths."""
    main_run = RESULTS_DIR / "bench_distributed.json"
    if not main_run.exists():
        print(f"no {main_run.name}: run the full benchmark first for the projections")
        return None
    c = json.loads(main_run.read_text())["seconds_per_nnz_sweep"]
    out: dict[str, Any] = {"c_s_per_nnz": c, "source": main_run.name, "by_beta": {}}
    rows = []
    for key in ("beta_bytes_per_s", "beta_fast_bytes_per_s"):
        beta = ASSUMPTIONS[key]
        out["by_beta"][f"{beta:g}"] = projected = projections(c, beta)
        for name, ps in projected.items():
            for pr in ps:
                rows.append(
                    [
                        name,
                        f"{beta * 8 / 1e9:g} Gbit/s",
                        pr["nodes"],
                        "x".join(map(str, pr["grid"])),
                        f"{pr['compute_s']:.3f}",
                        f"{pr['latency_s']:.4f}",
                        f"{pr['bandwidth_s']:.3f}",
                        f"{pr['total_s']:.3f}",
                    ]
                )
    header = ["tensor", "node link", "nodes", "grid", "compute s", "latency s", "bandwidth s"]
    print(format_table([*header, "s/iter"], rows))
    return out


def latency_main(args: argparse.Namespace) -> None:
    """Fit the model on one process and the loopback's own costs, then predict the time per
    sweep of 2 and 3 processes under every injected latency; print and save the errors."""
    nnz = 100_000 if args.quick else (args.latency_nnz or 200_000)
    sweeps = 3 if args.quick else args.sweeps
    worlds = [int(w) for w in args.worlds.split(",")]
    settings: list[list[Any]] = [[float(ms) / 1000, None] for ms in args.latencies_ms.split(",")]
    if args.bandwidth_mbs > 0:
        bw = args.bandwidth_mbs * 1e6
        settings += [[0.0, bw], [settings[min(2, len(settings) - 1)][0], bw]]
    cores = len(os.sched_getaffinity(0))
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_distributed_lat_{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    base = {"mode": "latency", "sweeps": sweeps, "repeats": args.repeats}
    one = launch(1, {**base, "nnz": [nnz, nnz // 4], "settings": [[0.0, None]]}, tmp)
    jobs = {w: launch(w, {**base, "nnz": [nnz], "settings": settings}, tmp) for w in worlds}
    spec = {"nnz": nnz, "cores": cores, "settings": settings}
    points, summary = {}, {}
    for stat in STATS:
        fit, points[stat] = _predict(stat, one, jobs, spec)
    print(
        f"one process, {fit['nnz'][0]} and {fit['nnz'][1]} nonzeros: "
        f"{fit['t1_cpu_s'][0]:.4f} / {fit['t1_cpu_s'][1]:.4f} CPU s per sweep -> c = "
        f"{fit['c_s_per_nnz']:.3e} s per nonzero, d0 = {fit['d0_s']:.4f} s per sweep (all rows)"
    )
    for w, job in jobs.items():
        loop = job["loopback"]
        print(
            f"{w} processes, grid {'x'.join(map(str, job['grid']))}: loopback alpha0 "
            f"{loop['alpha0_s'] * 1e6:.0f} us, beta0 {loop['beta0'] / 1e6:.0f} MB/s"
        )
    rows: list[list[Any]] = []
    for med, fast in zip(points["median"], points["fastest"]):
        rows.append(
            [
                med["world"],
                f"{med['alpha_s'] * 1e3:g}",
                "-" if not med["bandwidth"] else f"{med['bandwidth'] / 1e6:g}",
                f"{med['calls_per_sweep']:.0f}",
                f"{med['injected_s']:.4f}",
                f"{med['measured_s']:.4f}",
                f"{med['predicted_s']:.4f}",
                f"{100 * med['error']:+.1f}%",
                f"{med['measured_increment_s']:+.4f}",
                f"{fast['measured_s']:.4f}",
                f"{fast['predicted_s']:.4f}",
                f"{100 * fast['error']:+.1f}%",
                f"{fast['measured_increment_s']:+.4f}",
            ]
        )
    header = ["P", "alpha ms", "beta MB/s", "calls", "injected s"]
    header += ["median s", "predicted", "error", "increment"]
    header += ["fastest s", "predicted", "error", "increment"]
    print(format_table(header, rows))
    for stat, pts in points.items():
        for w in worlds:
            mine = [p for p in pts if p["world"] == w]
            errs = [abs(p["error"]) for p in mine]
            summary[f"{stat}_p{w}"] = {
                "median_abs_error": _median(errs),
                "max_abs_error": max(errs),
                "increment_slope": _slope(mine),
            }
            print(
                f"[{stat}] {w} processes: |prediction error| median {100 * _median(errs):.1f}%,"
                f" worst {100 * max(errs):.1f}%; measured increment / injected (least "
                f"squares) {_slope(mine):.3f}"
            )
    projected = _latency_projections()
    payload = {
        "command": ["benchmarks/bench_distributed.py", *sys.argv[1:]],
        "projections": projected,
        "config": {
            "nnz": nnz,
            "shape": SHAPE,
            "rank": RANK,
            "sweeps": sweeps,
            "repeats": args.repeats,
            "settings": settings,
            "cores": cores,
        },
        "machine": machine_info(),
        "fit": fit,
        "loopback": {w: jobs[w]["loopback"] for w in worlds},
        "points": points,
        "summary": summary,
        "runs": {"p1": one, **{f"p{w}": jobs[w] for w in worlds}},
    }
    name = "bench_distributed_latency_quick" if args.quick else "bench_distributed_latency"
    print(f"wrote {write_results(name, payload)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 k nonzeros, 2 timed sweeps")
    ap.add_argument("--nnz", type=int, default=20_000_000)
    ap.add_argument("--sweeps", type=int, default=5, help="timed sweeps (after one warm-up)")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument(
        "--latency-nnz",
        type=int,
        default=None,
        help="nonzeros of the latency check (nnz / 20; --latency: 200 k)",
    )
    ap.add_argument(
        "--latency",
        action="store_true",
        help="only the injected-latency sweep (writes bench_distributed_latency.json)",
    )
    ap.add_argument(
        "--latencies-ms",
        default="0,1,5,20,50",
        help="--latency: injected seconds per collective, in ms, comma-separated",
    )
    ap.add_argument(
        "--bandwidth-mbs",
        type=float,
        default=20.0,
        help="--latency: the per-byte delay's bandwidth (MB/s) of the extra points (0: none)",
    )
    ap.add_argument("--worlds", default="2,3", help="--latency: process counts")
    ap.add_argument("--repeats", type=int, default=5, help="--latency: repeats of every setting")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        pin_threads(1)
        spec = json.loads(args.worker)
        (latency_worker if spec.get("mode") == "latency" else worker)(spec)
        return
    if args.latency:
        pin_threads(1)
        latency_main(args)
        return
    pin_threads(1)
    nnz = 200_000 if args.quick else args.nnz
    sweeps = 2 if args.quick else args.sweeps
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_distributed_{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    base = {"sweeps": sweeps, "latency_ms": 0.0}
    small = args.latency_nnz or nnz // 20
    runs = {
        "p1_half": launch(1, {**base, "nnz": nnz // 2}, tmp),
        "p1_full": launch(1, {**base, "nnz": nnz}, tmp),
        "p2_full": launch(2, {**base, "nnz": nnz}, tmp),
        "p2_small": launch(2, {**base, "nnz": small}, tmp),
        "p2_small_latency": launch(2, {**base, "nnz": small, "latency_ms": args.latency_ms}, tmp),
    }
    t = {k: _median(v["sweep_s"]) for k, v in runs.items()}
    best = {k: min(v["sweep_s"]) for k, v in runs.items()}
    cpu = {k: _median(v["cpu_sweep_s"]) for k, v in runs.items()}
    rows = []
    for k, v in runs.items():
        rows.append(
            [
                k,
                v["world"],
                "x".join(map(str, v["grid"])),
                sum(v["nnz_per_rank"]),
                f"{t[k]:.3f}",
                f"{best[k]:.3f}",
                f"{cpu[k]:.3f}",
                f"{_median(v['calls_per_sweep']):.0f}",
                f"{max(v['row_bytes_per_sweep']) / 1e6:.2f}",
                f"{v['model_rows'] / 1e6:.2f}",
            ]
        )
    header = ["run", "P", "grid", "nnz", "s/sweep", "min", "cpu s", "calls", "row MB", "bound MB"]
    print(format_table(header, rows))
    strong = t["p1_full"] / t["p2_full"]
    weak = t["p1_half"] / t["p2_full"]
    strong_min = best["p1_full"] / best["p2_full"]
    weak_min = best["p1_half"] / best["p2_full"]
    print(
        f"strong scaling speedup (1 -> 2 processes, {nnz} nnz): {strong:.2f}x median, "
        f"{strong_min:.2f}x fastest sweeps"
    )
    print(
        f"weak scaling efficiency ({nnz // 2} nnz per process): {weak:.2f} median, "
        f"{weak_min:.2f} fastest sweeps"
    )
    strong_cpu = cpu["p1_full"] / cpu["p2_full"]
    weak_cpu = cpu["p1_half"] / cpu["p2_full"]
    print(
        f"CPU seconds per sweep on rank 0 (insensitive to other jobs): strong {strong_cpu:.2f}x, "
        f"weak efficiency {weak_cpu:.2f}"
    )
    c = cpu["p1_full"] / sum(runs["p1_full"]["nnz_per_rank"])
    calls = _median(runs["p2_small"]["calls_per_sweep"])
    injected = t["p2_small_latency"] - t["p2_small"]
    predicted = calls * args.latency_ms / 1000
    print(
        f"injected {args.latency_ms:g} ms per collective: +{injected:.3f} s per sweep measured, "
        f"{predicted:.3f} s predicted ({calls:.0f} calls); ratio {injected / predicted:.2f}"
    )
    projected = projections(c, ASSUMPTIONS["beta_bytes_per_s"])
    prow = []
    for name, ps in projected.items():
        for pr in ps:
            prow.append(
                [
                    name,
                    pr["nodes"],
                    "x".join(map(str, pr["grid"])),
                    f"{pr['compute_s']:.3f}",
                    f"{pr['latency_s']:.3f}",
                    f"{pr['bandwidth_s']:.3f}",
                    f"{pr['total_s']:.3f}",
                ]
            )
    print(
        format_table(
            ["tensor", "nodes", "grid", "compute s", "latency s", "bandwidth s", "s/iter"], prow
        )
    )
    payload = {
        "config": {"nnz": nnz, "shape": SHAPE, "rank": RANK, "sweeps": sweeps},
        "machine": machine_info(),
        "runs": runs,
        "median_sweep_s": t,
        "fastest_sweep_s": best,
        "median_cpu_sweep_s": cpu,
        "strong_speedup_cpu": strong_cpu,
        "weak_efficiency_cpu": weak_cpu,
        "strong_speedup": strong,
        "weak_efficiency": weak,
        "strong_speedup_fastest": strong_min,
        "weak_efficiency_fastest": weak_min,
        "seconds_per_nnz_sweep": c,
        "latency_check": {
            "injected_ms": args.latency_ms,
            "nnz": small,
            "calls_per_sweep": calls,
            "measured_s": injected,
            "predicted_s": predicted,
        },
        "assumptions": ASSUMPTIONS,
        "projections": projected,
    }
    path = write_results("bench_distributed_quick" if args.quick else "bench_distributed", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
