"""The tensor-reading GEMM: the default (fixed) rule against the opt-in autotuner.

Part 1, per GEMM problem (shape, contracted-mode set, rank R, dtype), timed round-robin in one
process:

* ``plain``: the plain form (what factorch's fixed rule did before the default rule had a table;
  small tensors still use it);
* ``default``: the plan :func:`factorch.algebra._plans.default_plan` picks (no timing);
* ``tuned``: the plan the autotuner picks (tuned once, untimed, before the measurement);
* ``best``: the fastest of all candidate plans, each timed ``--repeats`` times (median): what a
  perfect tuner would pick;

and the one-off cost of tuning (wall time). Times are medians of process CPU time (one thread).
Mode sets: ``(1, 2)`` is the GEMM of a mode-0 MTTKRP, ``(2,)`` and
``(0, 1)`` the two passes of the CP sweep.

Part 2, whole MTTKRPs (``factorch.algebra.mttkrp``) on 200^3 float64 at R = 10, 16, 32, every
mode: autotuning off (the default) against on (``with factorch.algebra.autotune():``, tuned
before timing), round-robin in one process.

``--explore`` instead times every candidate of a grid of problems and writes them all (the data
the default rule was read from).

Usage::

    python benchmarks/bench_gemm.py [--quick] [--threads N] [--repeats N] [--explore]

Writes ``benchmarks/results/bench_gemm.json`` (``--quick``: ``bench_gemm_quick.json``,
``--explore``: ``bench_gemm_explore.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _common is stdlib-only at import time: torch is imported after pinning threads.
import _common

BIG = (200, 200, 200)
PROBLEMS: list[tuple[tuple[int, ...], tuple[int, ...], int, str]] = [
    *((BIG, (1, 2), r, "float64") for r in (2, 5, 10, 16, 20, 32, 50)),
    (BIG, (2,), 10, "float64"),
    (BIG, (0, 1), 10, "float64"),
    *((BIG, (1, 2), r, "float32") for r in (10, 16, 32)),
    ((60, 60, 60, 60), (1, 2, 3), 10, "float64"),
    ((60, 60, 60, 60), (1, 2, 3), 16, "float64"),
    ((1000, 1000, 8), (0, 1), 10, "float64"),
    ((400, 100, 200), (0, 2), 16, "float64"),
]
QUICK = [(BIG, (1, 2), r, "float64") for r in (10, 16, 32)]
MTTKRP_RANKS = (10, 16, 32)


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="three problems, 7 repeats")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--explore", action="store_true", help="time every candidate of a grid")
    return p.parse_args(argv)


def _inputs(shape, rank, dtype_name):
    import torch

    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    x = torch.empty(shape, dtype=dtype).normal_(generator=gen)
    factors = [torch.randn(s, rank, dtype=dtype, generator=gen) for s in shape]
    return x, factors


def _round_robin(calls: dict[Any, Any], repeats: int) -> dict[Any, float]:
    """Median ms of process CPU time per callable (one thread: the time the call needed when it
    ran, which a busy shared machine inflates far less than wall time); one call of each per
    round, so drifts hit all alike."""
    for fn in calls.values():
        fn()
    samples: dict[Any, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k, fn in calls.items():
            start = time.process_time()
            fn()
            samples[k].append(time.process_time() - start)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def run_problem(shape, modes, rank, dtype_name, repeats) -> dict[str, Any]:
    from factorch.algebra._autotune import Autotuner
    from factorch.algebra._plans import (
        ContractionProblem,
        candidates,
        default_plan,
        plain_plan,
        run,
    )

    x, factors = _inputs(shape, rank, dtype_name)
    problem = ContractionProblem.of("labels", x, modes, rank)
    start = time.perf_counter()
    tuned, _ = Autotuner().tune(problem, x, factors)
    tune_ms = (time.perf_counter() - start) * 1e3
    plans = {"plain": plain_plan(shape, modes, rank), "default": default_plan(problem)}
    plans["tuned"] = tuned
    for i, plan in enumerate(candidates(problem)):
        plans[f"c{i}"] = plan
    calls = {k: (lambda p=p: run(p, x, factors[p.mode])) for k, p in plans.items()}
    ms = _round_robin(calls, repeats)
    best_key = min((k for k in ms if k.startswith("c")), key=ms.__getitem__)
    return {
        "shape": list(shape),
        "modes": list(modes),
        "rank": rank,
        "dtype": dtype_name,
        "plain_ms": ms["plain"],
        "default_ms": ms["default"],
        "tuned_ms": ms["tuned"],
        "best_ms": ms[best_key],
        "tune_once_ms": tune_ms,
        "default_over_tuned": ms["default"] / ms["tuned"],
        "default_over_best": ms["default"] / ms[best_key],
        "plain_plan": repr(plans["plain"]),
        "default_plan": repr(plans["default"]),
        "tuned_plan": repr(tuned),
        "best_plan": repr(plans[best_key]),
    }


def run_mttkrp(rank: int, repeats: int) -> dict[str, Any]:
    import factorch.algebra as fa

    x, factors = _inputs(BIG, rank, "float64")
    fa.clear_autotune_cache()
    with fa.autotune():
        for mode in range(3):
            fa.mttkrp(x, factors, mode)  # tunes each mode's key once, untimed

    def tuned_call(mode):
        with fa.autotune():
            return fa.mttkrp(x, factors, mode)

    calls = {}
    for mode in range(3):
        calls[f"default {mode}"] = lambda mode=mode: fa.mttkrp(x, factors, mode)
        calls[f"tuned {mode}"] = lambda mode=mode: tuned_call(mode)
    ms = _round_robin(calls, repeats)
    return {
        "rank": rank,
        "default_ms": [ms[f"default {m}"] for m in range(3)],
        "tuned_ms": [ms[f"tuned {m}"] for m in range(3)],
        "default_over_tuned": [ms[f"default {m}"] / ms[f"tuned {m}"] for m in range(3)],
    }


def explore(repeats: int) -> list[dict[str, Any]]:
    """Every candidate of a grid of problems (the data the default rule was read from)."""
    from factorch.algebra._plans import ContractionProblem, candidates, plain_plan, run

    grid = [
        (BIG, ms, r, "float64")
        for r in (1, 2, 3, 5, 8, 10, 12, 16, 20, 24, 32, 50, 64)
        for ms in ((1, 2), (0, 2), (0, 1), (2,), (1,), (0,))
    ]
    grid += [
        (BIG, ms, r, "float32")
        for r in (2, 5, 10, 16, 32, 64)
        for ms in ((1, 2), (0, 1), (2,), (0, 2))
    ]
    others = [(400, 100, 200), (1000, 1000, 8), (128, 128, 128), (100, 120, 90)]
    for r in (5, 10, 16, 32):
        grid += [
            ((60, 60, 60, 60), ms, r, "float64")
            for ms in ((1, 2, 3), (0, 1, 2), (2, 3), (0, 1), (0, 2, 3))
        ]
        grid += [(sh, ms, r, "float64") for ms in ((1, 2), (0, 1), (2,), (0, 2)) for sh in others]
    out = []
    for shape, modes, rank, dtype_name in grid:
        x, factors = _inputs(shape, rank, dtype_name)
        problem = ContractionProblem.of("labels", x, modes, rank)
        plans = [plain_plan(shape, modes, rank), *candidates(problem)]
        ms = _round_robin(
            {
                i: (lambda p=p, x=x, factors=factors: run(p, x, factors[p.mode]))
                for i, p in enumerate(plans)
            },
            repeats,
        )
        out.append(
            {
                "shape": list(shape),
                "modes": list(modes),
                "rank": rank,
                "dtype": dtype_name,
                "plain_ms": ms[0],
                "plans": [
                    [p.mode, p.rank_at, p.pad, p.col_major, ms[i + 1]]
                    for i, p in enumerate(plans[1:])
                ],
            }
        )
        print(f"{shape} {modes} R={rank} {dtype_name}: best {min(ms.values()):.2f} ms", flush=True)
    return out


def _plan_text(text: str) -> str:
    return text.replace("ContractionPlan(", "").replace(")", "").replace("rank_at=", "at ")


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    threads = _common.apply_threads(args.threads)
    repeats = 7 if args.quick else args.repeats
    command = "python benchmarks/bench_gemm.py" + (" --quick" if args.quick else "")
    command += f" --threads {args.threads}"
    if args.explore:
        rows = explore(repeats)
        payload = {"benchmark": "every GEMM candidate", "command": command + " --explore"}
        payload.update(machine=_common.machine_info(), threads=threads, results=rows)
        print(f"wrote {_common.write_results('bench_gemm_explore', payload)}")
        return
    problems = QUICK if args.quick else PROBLEMS
    rows = [run_problem(*p, repeats) for p in problems]
    mttkrps = [run_mttkrp(r, repeats) for r in MTTKRP_RANKS]
    payload = {
        "benchmark": "tensor-reading GEMM, default rule vs tuned plan",
        "command": command,
        "machine": _common.machine_info(),
        "threads": threads,
        "repeats": repeats,
        "results": rows,
        "mttkrp": mttkrps,
    }
    path = _common.write_results("bench_gemm" + ("_quick" if args.quick else ""), payload)
    header = ["shape", "modes", "R", "dtype", "plain", "default", "tuned", "best"]
    header += ["default/tuned", "default/best", "tune ms", "default plan", "tuned plan"]
    table = [
        [
            "x".join(map(str, r["shape"])),
            ",".join(map(str, r["modes"])),
            r["rank"],
            r["dtype"],
            r["plain_ms"],
            r["default_ms"],
            r["tuned_ms"],
            r["best_ms"],
            r["default_over_tuned"],
            r["default_over_best"],
            r["tune_once_ms"],
            _plan_text(r["default_plan"]),
            _plan_text(r["tuned_plan"]),
        ]
        for r in rows
    ]
    print(f"threads={threads['torch']}, CPU ms, median of {repeats} round-robin calls")
    print(_common.format_table(header, table))
    header = ["R", "mode", "default ms", "tuned ms", "default/tuned"]
    table = [
        [m["rank"], mode, m["default_ms"][mode], m["tuned_ms"][mode], m["default_over_tuned"][mode]]
        for m in mttkrps
        for mode in range(3)
    ]
    print("\nmttkrp 200^3 float64, autotuning off (default) vs on")
    print(_common.format_table(header, table))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
