"""The tensor-reading GEMM: the fixed rule against the autotuned plan (factorch.algebra._gemm).

For each problem (shape, contracted-mode set, rank R, dtype) times, round-robin in one process:

* ``fixed``: the plan the fixed rule picks (what factorch did before the tuner);
* ``tuned``: the plan the tuner picks (tuned once, untimed, before the measurement);
* ``best``: the fastest of all candidate plans, each timed ``--repeats`` times (median), i.e.
  what a perfect tuner would pick;

and the one-off cost of tuning (wall time of the tuning call). Mode sets: ``(1, 2)`` is the
GEMM of a mode-0 MTTKRP and of the CP sweep's second pass (``(0, 1)``); ``(2,)`` the first pass.

Usage::

    python benchmarks/bench_gemm.py [--quick] [--threads N]

Writes ``benchmarks/results/bench_gemm.json`` (``--quick``: ``bench_gemm_quick.json``).
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

PROBLEMS: list[tuple[tuple[int, ...], tuple[int, ...], int, str]] = [
    *(((200, 200, 200), (1, 2), r, "float64") for r in (2, 5, 10, 16, 20, 32, 50)),
    ((200, 200, 200), (2,), 10, "float64"),
    ((200, 200, 200), (0, 1), 10, "float64"),
    *(((200, 200, 200), (1, 2), r, "float32") for r in (10, 16, 32)),
    ((60, 60, 60, 60), (1, 2, 3), 10, "float64"),
    ((60, 60, 60, 60), (1, 2, 3), 16, "float64"),
    ((1000, 1000, 8), (0, 1), 10, "float64"),
    ((400, 100, 200), (0, 2), 16, "float64"),
]


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="three problems, 3 repeats")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    return p.parse_args(argv)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def run_problem(shape, modes, rank, dtype_name, repeats) -> dict[str, Any]:
    import torch

    from factorch.algebra import _gemm

    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    x = torch.empty(shape, dtype=dtype).normal_(generator=gen)
    factors = [torch.randn(s, rank, dtype=dtype, generator=gen) for s in shape]
    _gemm.clear_cache()
    start = time.perf_counter()
    tuned, _, _ = _gemm.tune(x, factors, modes)
    tune_ms = (time.perf_counter() - start) * 1e3
    fixed = _gemm.fixed_plan(shape, modes, rank)
    plans = {"fixed": fixed, "tuned": tuned}
    for i, plan in enumerate(_gemm.candidates(shape, modes, rank, dtype)):
        plans[f"c{i}"] = plan
    calls = {k: (lambda p=p: _gemm.run(p, x, factors[p.mode])) for k, p in plans.items()}
    for fn in calls.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):  # round-robin: load from other jobs hits every plan alike
        for k, fn in calls.items():
            samples[k].append(_median_ms(fn, 1))
    ms = {k: statistics.median(v) for k, v in samples.items()}
    best_key = min((k for k in ms if k.startswith("c")), key=ms.__getitem__)
    flops = 2 * x.numel() * rank
    return {
        "shape": list(shape),
        "modes": list(modes),
        "rank": rank,
        "dtype": dtype_name,
        "fixed_ms": ms["fixed"],
        "tuned_ms": ms["tuned"],
        "best_ms": ms[best_key],
        "tune_once_ms": tune_ms,
        "speedup_tuned_vs_fixed": ms["fixed"] / ms["tuned"],
        "tuned_gflops": flops / ms["tuned"] / 1e6,
        "fixed_plan": repr(fixed),
        "tuned_plan": repr(tuned),
        "best_plan": repr(plans[best_key]),
    }


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    threads = _common.apply_threads(args.threads)
    problems = PROBLEMS[1:4] if args.quick else PROBLEMS
    repeats = 3 if args.quick else args.repeats
    rows = [run_problem(*p, repeats) for p in problems]
    payload = {
        "benchmark": "tensor-reading GEMM, fixed rule vs tuned plan",
        "command": "python benchmarks/bench_gemm.py"
        + (" --quick" if args.quick else "")
        + f" --threads {args.threads}",
        "machine": _common.machine_info(),
        "threads": threads,
        "repeats": repeats,
        "results": rows,
    }
    path = _common.write_results("bench_gemm" + ("_quick" if args.quick else ""), payload)
    header = ["shape", "modes", "R", "dtype", "fixed ms", "tuned ms", "best ms", "speedup"]
    header += ["tune ms", "tuned plan"]
    table = [
        [
            "x".join(map(str, r["shape"])),
            ",".join(map(str, r["modes"])),
            r["rank"],
            r["dtype"],
            r["fixed_ms"],
            r["tuned_ms"],
            r["best_ms"],
            r["speedup_tuned_vs_fixed"],
            r["tune_once_ms"],
            r["tuned_plan"].replace("Plan(", "").replace(")", ""),
        ]
        for r in rows
    ]
    print(f"threads={threads['torch']}, median of {repeats} round-robin calls")
    print(_common.format_table(header, table))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
