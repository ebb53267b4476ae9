"""Compression time: ``compress`` of eight ``Linear(512, 512)`` to CP at 10 % (issue 14 item 5).

One thread, PyTorch's default init (seed 0), ``compress(model, ratio=0.1, format="cp")``: the
time of the call, per-stage times from the ``progress`` callback, and the per-layer relative
errors. ``--before`` also runs the fit the way it was before issue 14
(``decomposition={"tol": 1e-10}``: CP-ALS to 200 sweeps; about two minutes).

Usage::

    python benchmarks/bench_compress.py [--before]

Writes ``benchmarks/results/bench_compress.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)


def _run(decomposition: dict[str, Any] | None) -> dict[str, Any]:
    import torch

    from factorch.nn import Progress, compress

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(8)])
    stages: dict[str, float] = {}

    def on_step(p: Progress) -> None:
        stages[p.stage] = p.elapsed_s

    start = time.perf_counter()
    _, report = compress(
        model, ratio=0.1, format="cp", decomposition=decomposition, progress=on_step
    )
    total = time.perf_counter() - start
    errors = [layer.relative_error for layer in report.layers]
    return {
        "total_s": total,
        "allocate_s": stages.get("allocate"),
        "decompose_s": stages["decompose"] - stages.get("allocate", 0.0),
        "relative_errors": errors,
        "ratio": report.ratio,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", action="store_true", help="also run with tol=1e-10 (slow)")
    args = p.parse_args(argv)
    _common.pin_threads(1)
    threads = _common.apply_threads(1)
    runs = {"default (tol=1e-3)": _run(None)}
    if args.before:
        runs["before (tol=1e-10)"] = _run({"tol": 1e-10})
    rows = [
        [
            name,
            r["total_s"],
            r["allocate_s"],
            r["decompose_s"],
            f"{min(r['relative_errors']):.4f}-{max(r['relative_errors']):.4f}",
        ]
        for name, r in runs.items()
    ]
    print(_common.format_table(["run", "total s", "allocate s", "decompose s", "rel. error"], rows))
    payload = {"machine": _common.machine_info(), "threads": threads, "runs": runs}
    print(f"wrote {_common.write_results('bench_compress', payload)}")


if __name__ == "__main__":
    main()
