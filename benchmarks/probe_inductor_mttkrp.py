"""Probe: a torch.compile (inductor) fused loop for the tensor-reading MTTKRP contraction.

Times ``(X.unsqueeze(-1) * C).sum(-2)`` compiled by inductor (a fused C++ loop over rows with the
rank as the vector lane) against MKL's ``X(IJ, K) @ C`` for a 200^3 float64 tensor, R = 10, one
thread, and checks the two agree. Not used by factorch yet (compile costs seconds per shape):
recorded as the most promising route past MKL's skinny-GEMM rate. See BENCHMARKS.md.

Usage: ``python benchmarks/probe_inductor_mttkrp.py [--size 200] [--rank 10]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--rank", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    n, r = args.size, args.rank
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, n, n, dtype=torch.float64, generator=gen)
    c = torch.randn(n, r, dtype=torch.float64, generator=gen)

    def fused(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(-1) * c).sum(-2)

    start = time.perf_counter()
    compiled = torch.compile(fused, dynamic=False)
    out = compiled(x, c)
    compile_s = time.perf_counter() - start
    ref = x.reshape(-1, n) @ c
    err = float((out.reshape(-1, r) - ref).abs().max() / ref.abs().max())

    def median_ms(fn, k: int = 9) -> float:
        fn()
        times = []
        for _ in range(k):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    ind = median_ms(lambda: compiled(x, c))
    mkl = median_ms(lambda: x.reshape(-1, n) @ c)
    print(
        f"inductor {ind:.2f} ms, MKL {mkl:.2f} ms -> {mkl / ind:.2f}x; first call (compile) "
        f"{compile_s:.1f} s; max relative difference {err:.1e}"
    )


if __name__ == "__main__":
    main()
