"""100 small CP fits: ``cp_batch`` against a loop of ``cp`` and a loop of TensorLy ``parafac``.

Issue 14 item 6. 100 members of the COVID-19 serology shape (438 x 6 x 11), each a random rank-3
CP model plus 1 % Gaussian noise, float64, rank 3, one thread, in one process, round-robin,
median of ``--repeats``. Every implementation uses its default SVD start and default tolerance
(factorch: ``tol=1e-8`` on the change in relative error; TensorLy: ``tol=1e-8``). Reports the
time and the error distribution (median, 90th percentile, fraction above twice the median).

Usage::

    python benchmarks/bench_cp_batch.py [--repeats N] [--members B]

Writes ``benchmarks/results/bench_cp_batch.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--members", type=int, default=100)
    args = p.parse_args(argv)
    _common.pin_threads(1)
    import tensorly as tl
    import torch
    from tensorly.decomposition import parafac

    from factorch.decomp import cp, cp_batch
    from factorch.random import random_cp

    threads = _common.apply_threads(1)
    g = torch.Generator().manual_seed(0)
    xs = torch.stack(
        [
            random_cp((438, 6, 11), 3, generator=g, dtype=torch.float64).to_dense()
            for _ in range(args.members)
        ]
    )
    xs = xs + 0.01 * torch.randn(xs.shape, generator=g, dtype=torch.float64) * xs.std()
    xn = xs.numpy()
    tl.set_backend("numpy")
    errors: dict[str, torch.Tensor] = {}

    def loop() -> None:
        errors["factorch cp loop"] = torch.tensor([cp(x, 3).error for x in xs])

    def batch() -> None:
        errors["factorch cp_batch"] = cp_batch(xs, 3).error

    def batch_random() -> None:
        res = cp_batch(xs, 3, init="random", generator=torch.Generator().manual_seed(1))
        errors["factorch cp_batch random"] = res.error

    def tensorly_loop() -> None:
        errs = []
        for x in xn:
            model = parafac(x, 3, init="svd", tol=1e-8)
            errs.append(float(tl.norm(x - tl.cp_to_tensor(model)) / tl.norm(x)))
        errors["tensorly parafac loop"] = torch.tensor(errs)

    calls = {
        "factorch cp loop": loop,
        "factorch cp_batch": batch,
        "factorch cp_batch random": batch_random,
        "tensorly parafac loop": tensorly_loop,
    }
    times = _common.time_calls(calls, repeats=args.repeats, warmup=1)
    rows: list[list[Any]] = []
    out: dict[str, Any] = {}
    base = times["factorch cp_batch"]["median_s"]
    for name, t in times.items():
        e = errors[name]
        med = float(e.median())
        stuck = float((e > 2 * float(errors["factorch cp loop"].median())).double().mean())
        out[name] = {
            "median_s": t["median_s"],
            "cpu_median_s": t["cpu_median_s"],
            "error_median": med,
            "error_p90": float(e.quantile(0.9)),
            "fraction_stuck": stuck,
        }
        rows.append([name, t["median_s"], t["median_s"] / base, f"{med:.5f}", f"{stuck:.2f}"])
    print(
        _common.format_table(
            ["implementation", "time s", "x cp_batch", "median error", "stuck"], rows
        )
    )
    payload = {"machine": _common.machine_info(), "threads": threads, "members": args.members}
    path = _common.write_results("bench_cp_batch", {**payload, "results": out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
