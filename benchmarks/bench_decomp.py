"""Dense CP-ALS: factorch against TensorLy (numpy and pytorch backends) and pyttb.

Problem (issue 3): a dense 200 x 200 x 200 float64 tensor, a random rank-10 CP model plus Gaussian
noise at 1 % of its norm; rank 10, 50 sweeps with ``tol=0`` so every library runs all of them.

Measured, single-threaded by default, in one process, each library ``--repeats`` times round-robin
(median reported):

* per-sweep time ``(total - init) / sweeps``, and the total including initialisation;
* the SVD initialisation alone: factorch's Khatri--Rao-sketch init against TensorLy's default
  (``initialize_cp(init="svd")``: full thin SVDs of the unfoldings);
* the final relative error (same data; factorch and TensorLy both start from their SVD init;
  pyttb from its ``nvecs`` init is slower to set up, so it starts from TensorLy's SVD factors);
* the ratio to the machine's floor: MTTKRP flops per sweep (2 passes x 2 IJK R for factorch's
  dimension tree, 3 x 2 IJK R for a per-mode sweep) over the measured large-DGEMM rate.

Then, unless ``--only-cp``, runs the Tucker/TT/TR and non-negative benchmarks
(``bench_decomp_tucker_tt.py``, ``bench_decomp_nn.py``) with the same ``--quick`` flag.

Usage::

    python benchmarks/bench_decomp.py [--quick] [--threads N] [--only-cp]

Writes ``benchmarks/results/bench_decomp.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller run (about a minute)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--sweeps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only-cp", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


IMPLS = ("factorch", "tensorly-numpy", "tensorly-pytorch", "pyttb")


def memory_run(args: argparse.Namespace) -> dict[str, Any]:
    """Peak extra RSS of one full CP-ALS run (init + sweeps) of one library, in this process.

    Run in a fresh subprocess per library (see ``main``) with glibc's caching off, after one
    warm-up run of 2 sweeps, so the number is that run's own working memory above the data.
    """
    import numpy as np
    import pyttb as ttb
    import tensorly as tl
    import torch
    from tensorly.decomposition import parafac
    from tensorly.decomposition._cp import initialize_cp

    from factorch.decomp import cp

    _common.apply_threads(args.threads)
    x = _problem(args.size, args.rank)
    xn = x.numpy()
    rank = args.rank

    def run(sweeps: int):
        if args.worker == "factorch":
            return cp(
                x,
                rank,
                init="svd",
                max_iter=sweeps,
                tol=0,
                generator=torch.Generator().manual_seed(1),
            )
        if args.worker == "pyttb":
            tl.set_backend("numpy")
            init = initialize_cp(xn, rank, init="svd")
            kt = ttb.ktensor([f.copy(order="F") for f in init.factors], np.ones(rank))
            return ttb.cp_als(ttb.tensor(xn), rank, init=kt, maxiters=sweeps, stoptol=0, printitn=0)
        backend = "numpy" if args.worker == "tensorly-numpy" else "pytorch"
        tl.set_backend(backend)
        data = xn if backend == "numpy" else x
        return parafac(data, rank, init="svd", n_iter_max=sweeps, tol=0)

    run(2)
    return {
        "peak_extra": _common.peak_extra_bytes(lambda: run(args.sweeps)),
        "tensor_bytes": x.numel() * x.element_size(),
    }


def _problem(size: int, rank: int):
    import torch

    from factorch.random import add_noise, random_cp

    gen = torch.Generator().manual_seed(0)
    truth = random_cp((size, size, size), rank, generator=gen, dtype=torch.float64)
    return add_noise(truth.to_dense(), relative=0.01, generator=gen)


def _dgemm_rate() -> float:
    import torch

    a = torch.randn(1500, 1500, dtype=torch.float64)
    b = torch.randn(1500, 1500, dtype=torch.float64)
    a @ b
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * 1500**3 / statistics.median(times)


def run_cp(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import pyttb as ttb
    import tensorly as tl
    import torch
    from tensorly.decomposition import parafac
    from tensorly.decomposition._cp import initialize_cp

    from factorch.decomp import cp
    from factorch.decomp._cp_init import init_factors

    threads = _common.apply_threads(args.threads)
    size, rank, sweeps = args.size, args.rank, args.sweeps
    x = _problem(size, rank)
    xn = x.numpy()
    tl.set_backend("numpy")
    tl_svd_init = initialize_cp(xn, rank, init="svd")
    ttb_x = ttb.tensor(xn.copy(order="F"))
    ttb_init = ttb.ktensor([f.copy(order="F") for f in tl_svd_init.factors], np.ones(rank))

    def run_factorch():
        res = cp(
            x, rank, init="svd", max_iter=sweeps, tol=0, generator=torch.Generator().manual_seed(1)
        )
        return res.time_s, res.init_time_s, res.error

    def run_tl(backend: str):
        tl.set_backend(backend)
        data = tl.tensor(xn) if backend == "numpy" else torch.from_numpy(xn)
        t0 = time.perf_counter()
        init = initialize_cp(data, rank, init="svd")
        t1 = time.perf_counter()
        _cpt, errors = parafac(data, rank, init=init, n_iter_max=sweeps, tol=0, return_errors=True)
        t2 = time.perf_counter()
        tl.set_backend("numpy")
        return t2 - t0, t1 - t0, float(errors[-1])

    def run_pyttb():
        t0 = time.perf_counter()
        _model, _, info = ttb.cp_als(
            ttb_x, rank, init=ttb_init, maxiters=sweeps, stoptol=0, printitn=0
        )
        t1 = time.perf_counter()
        return t1 - t0, 0.0, 1.0 - float(info["fit"])

    impls = {
        "factorch": run_factorch,
        "tensorly-numpy": lambda: run_tl("numpy"),
        "tensorly-pytorch": lambda: run_tl("pytorch"),
        "pyttb": run_pyttb,
    }
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in impls}
    for _ in range(args.repeats):
        for name, fn in impls.items():
            samples[name].append(fn())

    # Initialisation alone, interleaved.
    init_calls = {
        "factorch-svd-init": lambda: init_factors(x, rank, "svd", torch.Generator().manual_seed(2)),
        "tensorly-svd-init-numpy": lambda: initialize_cp(xn, rank, init="svd"),
    }
    init_times = _common.time_calls(init_calls, repeats=args.repeats, warmup=0)
    rate = _dgemm_rate()
    flops_tree = 2 * 2 * size**3 * rank
    flops_per_mode = 3 * 2 * size**3 * rank
    out: dict[str, Any] = {
        "problem": {
            "shape": [size] * 3,
            "rank": rank,
            "sweeps": sweeps,
            "noise": 0.01,
            "dtype": "float64",
        },
        "threads": threads,
        "dgemm_gflops": rate / 1e9,
        "floor_ms_tree": flops_tree / rate * 1e3,
        "floor_ms_per_mode_sweep": flops_per_mode / rate * 1e3,
        "libraries": {},
        "init": {k: v["median_s"] for k, v in init_times.items()},
    }
    for name, runs in samples.items():
        total = statistics.median(r[0] for r in runs)
        init = statistics.median(r[1] for r in runs)
        per_sweep = statistics.median((r[0] - r[1]) / sweeps for r in runs)
        out["libraries"][name] = {
            "total_s": total,
            "init_s": init,
            "per_sweep_ms": per_sweep * 1e3,
            "final_error": runs[-1][2],
        }
    return out


def _print_cp(res: dict[str, Any]) -> None:
    libs = res["libraries"]
    ours = libs["factorch"]["per_sweep_ms"]
    rows = []
    for name, v in libs.items():
        rows.append(
            [
                name,
                v["per_sweep_ms"],
                v["per_sweep_ms"] / ours,
                v["total_s"],
                v["init_s"],
                f"{v['final_error']:.6f}",
            ]
        )
    print(
        f"CP-ALS {res['problem']['shape']} rank {res['problem']['rank']}, "
        f"{res['problem']['sweeps']} sweeps, threads={res['threads']['torch']}"
    )
    print(
        _common.format_table(
            ["library", "ms/sweep", "x slower than factorch", "total s", "init s", "final error"],
            rows,
        )
    )
    fi = res["init"]
    print(
        f"SVD init: factorch {fi['factorch-svd-init'] * 1e3:.1f} ms, TensorLy "
        f"{fi['tensorly-svd-init-numpy'] * 1e3:.1f} ms -> "
        f"{fi['tensorly-svd-init-numpy'] / fi['factorch-svd-init']:.1f}x; "
        f"factorch init = {fi['factorch-svd-init'] * 1e3 / ours:.1f} factorch sweeps"
    )
    print(
        f"floor (DGEMM {res['dgemm_gflops']:.1f} GFLOP/s): {res['floor_ms_tree']:.1f} ms "
        f"(2-pass tree) -> factorch at {ours / res['floor_ms_tree']:.2f}x its floor, "
        f"{ours / res['floor_ms_per_mode_sweep']:.2f}x the per-mode-sweep floor"
    )


def main(argv: list[str] | None = None) -> None:
    import json

    args = _parse(argv)
    if args.quick:
        args.size, args.sweeps, args.repeats = min(args.size, 120), min(args.sweeps, 20), 2
    _common.pin_threads(args.threads)
    if args.worker:
        print(json.dumps(memory_run(args)))
        return
    res = run_cp(args)
    if not args.no_memory:
        base = [
            str(Path(__file__).resolve()),
            "--threads",
            str(args.threads),
            "--size",
            str(args.size),
            "--rank",
            str(args.rank),
            "--sweeps",
            str(args.sweeps),
        ]
        res["memory"] = {
            impl: _common.run_json_subprocess(
                [*base, "--worker", impl], env_overrides=_common.MALLOC_NO_CACHE, timeout=900
            )
            for impl in IMPLS
        }
    payload = {"machine": _common.machine_info(), "cp_als": res}
    path = _common.write_results("bench_decomp" + ("_quick" if args.quick else ""), payload)
    _print_cp(res)
    print(f"wrote {path}")
    if args.only_cp:
        return
    for script in ("bench_decomp_tucker_tt.py", "bench_decomp_nn.py"):
        if (HERE / script).exists():
            cmd = [sys.executable, str(HERE / script), "--threads", str(args.threads)]
            if args.quick:
                cmd.append("--quick")
            print(f"\n$ {' '.join(cmd[1:])}", flush=True)
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
