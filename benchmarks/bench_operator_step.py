"""One training step (forward, H1 loss, backward, AdamW) of factorch's FNO/TFNO against
neuraloperator 2.0's, alternating in one process at the training shapes of
``bench_operator.py``'s Darcy 16^2, Darcy 32^2 (dense, CP 10 % and 5 %) and Burgers 128 rows
(batch 32; same architecture and parameter counts). A steadier speed measure than seconds per
epoch on a shared machine: both libraries see the same load, step by step.
Random inputs (timing only).

Run: ``python benchmarks/bench_operator_step.py [--reps 12] [--threads 1] [--rows burgers]
[--tag _x]``; writes ``benchmarks/results/bench_operator_step<tag>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import apply_threads, machine_info, pin_threads, write_results

# (name, dims, modes, channels, grid, periodic, factorch options, neuraloperator options)
ROWS: list[tuple[str, tuple[int, ...], int, tuple[int, ...], bool, dict[str, Any], dict[str, Any]]]
ROWS = [
    ("darcy16 FNO dense", (8, 8), 24, (16, 16), False, {}, {}),
    (
        "darcy16 TFNO tucker 5%",
        (8, 8),
        24,
        (16, 16),
        False,
        {"format": "tucker", "ratio": 0.05},
        {"factorization": "Tucker", "rank": 0.05, "implementation": "factorized"},
    ),
    ("darcy32 FNO dense", (12, 12), 32, (32, 32), False, {}, {}),
    (
        "darcy32 TFNO cp 10%",
        (12, 12),
        32,
        (32, 32),
        False,
        {"format": "cp", "ratio": 0.10},
        {"factorization": "CP", "rank": 0.10, "implementation": "factorized"},
    ),
    (
        "darcy32 TFNO cp 5%",
        (12, 12),
        32,
        (32, 32),
        False,
        {"format": "cp", "ratio": 0.05},
        {"factorization": "CP", "rank": 0.05, "implementation": "factorized"},
    ),
    ("burgers128 FNO dense", (16,), 32, (128,), True, {}, {}),
    (
        "burgers128 TFNO tucker 5%",
        (16,),
        32,
        (128,),
        True,
        {"format": "tucker", "ratio": 0.05},
        {"factorization": "Tucker", "rank": 0.05, "implementation": "factorized"},
    ),
]


def _steps(row: tuple[Any, ...]) -> dict[str, Any]:
    import torch
    from neuralop import H1Loss
    from neuralop.models import FNO as NFNO

    from factorch.models import FNO
    from factorch.train import relative_h1
    from factorch.train._optim import RealViewAdamW

    _, modes, hidden, grid, periodic, ours_kw, theirs_kw = row
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, *grid, generator=g)
    y = torch.randn(32, 1, *grid, generator=g)
    ours = FNO(1, 1, modes, hidden_channels=hidden, periodic=periodic, generator=g, **ours_kw)
    torch.manual_seed(0)
    theirs = NFNO(
        n_modes=modes,
        in_channels=1,
        out_channels=1,
        hidden_channels=hidden,
        projection_channel_ratio=2,
        **theirs_kw,
    )
    ours_opt = RealViewAdamW(ours.parameters(), lr=1e-4, weight_decay=1e-4)
    theirs_opt = torch.optim.AdamW(theirs.parameters(), lr=1e-4, weight_decay=1e-4)
    flags = {"periodic_in_x": periodic}
    if len(grid) >= 2:
        flags["periodic_in_y"] = periodic
    h1 = H1Loss(d=len(grid), **flags)

    def ours_step() -> None:
        loss = relative_h1(ours(x), y, periodic=periodic, dims=len(grid))
        ours_opt.zero_grad()
        loss.backward()
        ours_opt.step()

    def theirs_step() -> None:
        loss = h1(theirs(x), y)
        theirs_opt.zero_grad(set_to_none=True)
        loss.backward()
        theirs_opt.step()

    return {"factorch": ours_step, "neuraloperator": theirs_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=12, help="timed blocks of 5 steps each")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--rows", default="", help="only the rows whose name contains this text (e.g. burgers)"
    )
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    pin_threads(args.threads)
    threads = apply_threads(args.threads)
    warnings.simplefilter("ignore")
    out: dict[str, Any] = {"machine": machine_info(), "threads": threads, "rows": {}}
    for row in [r for r in ROWS if args.rows in r[0]]:
        steps = _steps(row)
        for step in steps.values():
            for _ in range(5):
                step()
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.reps):
            for name, step in steps.items():
                start = time.process_time()
                for _ in range(5):
                    step()
                times[name].append((time.process_time() - start) / 5 * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["neuraloperator"] / med["factorch"]
        out["rows"][row[0]] = {"cpu_ms_per_step": med, "ratio": ratio, "samples_ms": times}
        print(
            f"{row[0]:28s} factorch {med['factorch']:6.1f} ms  neuraloperator "
            f"{med['neuraloperator']:6.1f} ms  {ratio:.2f}x",
            flush=True,
        )
    print(f"wrote {write_results('bench_operator_step' + args.tag, out)}")


if __name__ == "__main__":
    main()
