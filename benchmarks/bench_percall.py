"""Fixed per-call cost of ``factorch.decomp.cp`` on a small tensor, against TensorLy (issue 14).

One process, one thread, float64 10x10x10, rank 3, one sweep (``max_iter=1`` /
``n_iter_max=1``), random and SVD starts; callables timed round-robin (``--rounds`` rounds of 10
calls each, median of process-CPU time per call, less inflated by a busy shared machine than wall
time). Also: ATen dispatches of one call and of ``cp_degeneracy`` (counted with a
``TorchDispatchMode``), and 100 fits (``max_iter=100``) in a loop.

Usage::

    python benchmarks/bench_percall.py [--rounds N]

Run it once with ``PYTHONPATH=<checkout of another commit>/src`` to compare two versions.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

torch.set_num_threads(1)

import tensorly as tl  # noqa: E402
from tensorly.decomposition import parafac  # noqa: E402

from factorch.decomp import cp, cp_degeneracy  # noqa: E402


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def _count(fn: Callable[[], object]) -> int:
    with _Count() as counter:
        fn()
    return sum(counter.ops.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=201)
    args = parser.parse_args()
    tl.set_backend("numpy")
    x = torch.rand(10, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xn = x.numpy()
    model = cp(x, 3, max_iter=1, init="random", generator=torch.Generator().manual_seed(1)).model

    def fac_random() -> object:
        return cp(x, 3, max_iter=1, init="random", generator=torch.Generator().manual_seed(1))

    calls: dict[str, Callable[[], object]] = {
        "factorch cp, random start": fac_random,
        "TensorLy parafac, random start": lambda: parafac(
            xn, 3, n_iter_max=1, init="random", random_state=1
        ),
        "factorch cp, svd start": lambda: cp(x, 3, max_iter=1),
        "TensorLy parafac, svd start": lambda: parafac(xn, 3, n_iter_max=1),
        "factorch cp_degeneracy": lambda: cp_degeneracy(model),
    }
    print(
        f"ATen dispatches: cp call {_count(fac_random)}, cp_degeneracy "
        f"{_count(lambda: cp_degeneracy(model))}"
    )
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in calls.items():
            start = time.process_time()
            for _ in range(10):
                fn()
            times[name].append((time.process_time() - start) / 10 * 1e3)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, m in med.items():
        print(f"{name:32s} {m:.3f} ms CPU (median of {args.rounds} x 10 calls)")
    for start in ("random", "svd"):
        ratio = med[f"TensorLy parafac, {start} start"] / med[f"factorch cp, {start} start"]
        print(f"ratio TensorLy / factorch, {start} start: {ratio:.2f}")
    loop: dict[str, list[float]] = {"factorch": [], "TensorLy": []}
    for _ in range(5):
        start = time.process_time()
        for seed in range(100):
            cp(x, 3, max_iter=100, init="random", generator=torch.Generator().manual_seed(seed))
        loop["factorch"].append(time.process_time() - start)
        start = time.process_time()
        for seed in range(100):
            parafac(xn, 3, n_iter_max=100, init="random", random_state=seed, tol=1e-8)
        loop["TensorLy"].append(time.process_time() - start)
    print(
        "100 fits (max_iter=100, tol=1e-8) in a loop, CPU s (median of 5): "
        + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in loop.items())
    )


if __name__ == "__main__":
    main()
