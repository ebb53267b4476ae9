"""Dense MTTKRP: factorch against TensorLy's ``unfolding_dot_khatri_rao`` (numpy, pytorch).

Problem: a dense 200 x 200 x 200 float64 tensor (61 MiB), rank 10, every mode. factorch runs
twice: the default path (``mttkrp(x, factors, m)``) and the opt-in fused kernel
(``kernel="fused"``, "factorch-fused"). Measured:

* time per call: median of repeated calls, all implementations of one mode timed round-robin in
  one process after warm-up calls (TensorLy's global backend is switched untimed before each of
  its calls), with the environment as given;
* the same for factorch and TensorLy-numpy in a subprocess with ``OPENBLAS_CORETYPE`` and
  ``OPENBLAS_L2_SIZE`` unset (they hold numpy's OpenBLAS to its Haswell kernels);
* peak extra resident memory per call, one subprocess per implementation;
* the floor: ``2 I J K R`` flops at the measured DGEMM rate or one read of the tensor at the
  measured read bandwidth, whichever is larger.
* the fused kernel's one-off costs, each in a fresh process: compiling it into an empty inductor
  cache directory, then loading it in a second process from that directory;
* ``--explore``: only time the GEMM formulations of the contraction that reads the tensor.
* ``--sweep``: only time one CP-ALS sweep (``factorch.decomp``'s two-pass dimension tree) as it
  is and with its two tensor-reading passes routed to the fused kernel
  (:func:`factorch.algebra.internal.fused_tree_partial`, patched in for the run: the way to wire
  it into the sweep), and check the two give the same iterates.

Usage::

    python benchmarks/bench_algebra.py [--quick] [--threads N] [--explore]

Writes ``benchmarks/results/bench_algebra.json`` (``--quick``: ``bench_algebra_quick.json``;
``--explore``: ``bench_algebra_explore.json``) and prints a table. ``--quick`` times 7 calls
instead of 21 (about 11 s on the 2-core benchmark machine when idle).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# _common is stdlib-only at import time: numpy and torch are imported after pinning threads.
import _common

IMPLS = ("factorch", "factorch-fused", "tensorly-numpy", "tensorly-pytorch")
ANCHORS = IMPLS[2:]
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (< 30 s)")
    p.add_argument("--threads", type=int, default=1, help="threads for torch and numpy (1)")
    p.add_argument("--size", type=int, default=200, help="side of the cubic tensor (200)")
    p.add_argument("--rank", type=int, default=10, help="CP rank (10)")
    p.add_argument(
        "--explore",
        action="store_true",
        help="instead: time the GEMM formulations of the contraction that reads the tensor",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="instead: one CP-ALS sweep, default against fused tensor-reading passes",
    )
    p.add_argument("--worker", choices=("timing", "memory", "compile"), help=argparse.SUPPRESS)
    p.add_argument("--impl", choices=IMPLS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _problem(size: int, rank: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.empty(size, size, size, dtype=torch.float64).normal_(generator=gen)
    factors = [torch.randn(size, rank, dtype=torch.float64, generator=gen) for _ in range(3)]
    return x, factors


def _callables(impl: str, x, factors):
    """``mode -> zero-argument callable``; the TensorLy ones need their backend set first."""
    from factorch.algebra import mttkrp

    if impl == "factorch":
        return lambda m: lambda: mttkrp(x, factors, m)
    if impl == "factorch-fused":
        return lambda m: lambda: mttkrp(x, factors, m, kernel="fused")
    from tensorly.tenalg import unfolding_dot_khatri_rao

    if impl == "tensorly-numpy":
        xn, fn = x.numpy(), [f.numpy() for f in factors]
        return lambda m: lambda: unfolding_dot_khatri_rao(xn, (None, fn), m)
    return lambda m: lambda: unfolding_dot_khatri_rao(x, (None, factors), m)


def _backend(impl: str) -> str | None:
    return {"tensorly-numpy": "numpy", "tensorly-pytorch": "pytorch"}.get(impl)


def timing_run(
    args: argparse.Namespace,
    anchors: tuple[str, ...] = ANCHORS,
    ours: tuple[str, ...] = IMPLS[:2],
) -> dict[str, Any]:
    """Time factorch (``ours``) and the ``anchors`` in every mode, round-robin in this process;
    also measure the floor."""
    import numpy as np
    import tensorly as tl
    import torch

    from factorch.algebra import fused_mttkrp_status

    threads = _common.apply_threads(args.threads)
    repeats, warmup = (7, 1) if args.quick else (21, 3)
    x, factors = _problem(args.size, args.rank)
    fused = fused_mttkrp_status()  # compile or load before timing
    if "factorch-fused" in ours and not fused.available:
        raise SystemExit(f"the fused kernel is not available: {fused.reason}")
    impls = (*ours, *anchors)
    calls = {impl: _callables(impl, x, factors) for impl in impls}
    setup = {impl: functools.partial(tl.set_backend, _backend(impl)) for impl in anchors}
    samples: dict[str, dict[str, dict[str, float]]] = {impl: {} for impl in impls}
    accuracy: dict[str, dict[str, float]] = {impl: {} for impl in impls[1:]}
    for m in range(x.ndim):
        ref64 = calls["factorch"](m)()
        for impl in impls[1:]:
            if impl in setup:
                setup[impl]()
            ref = torch.as_tensor(np.asarray(calls[impl](m)()))
            accuracy[impl][str(m)] = float((ref64 - ref).abs().max() / ref.abs().max())
        res = _common.time_calls(
            {impl: calls[impl](m) for impl in impls}, repeats=repeats, warmup=warmup, setup=setup
        )
        for impl in impls:
            samples[impl][str(m)] = res[impl]
    tl.set_backend("numpy")

    # Floors: DGEMM rate (1000^3, both BLAS libraries) and read bandwidth (a sum over x).
    a = torch.randn(1000, 1000, dtype=torch.float64)
    an = a.numpy()
    rates = _common.time_calls(
        {"torch_mm": lambda: a @ a, "numpy_dot": lambda: an @ an, "read_x": lambda: x.sum()},
        repeats=max(5, repeats // 2),
        warmup=1,
    )
    gemm_torch = 2e9 / rates["torch_mm"]["median_s"]
    gemm_numpy = 2e9 / rates["numpy_dot"]["median_s"]
    bandwidth = x.numel() * x.element_size() / rates["read_x"]["median_s"]
    flops = 2 * x.numel() * args.rank
    floor = {
        "flops": flops,
        "gemm_gflops_torch": gemm_torch / 1e9,
        "gemm_gflops_numpy": gemm_numpy / 1e9,
        "read_gbytes_per_s": bandwidth / 1e9,
        "compute_floor_ms_torch_rate": flops / gemm_torch * 1e3,
        "compute_floor_ms_numpy_rate": flops / gemm_numpy * 1e3,
        "memory_floor_ms": x.numel() * x.element_size() / bandwidth * 1e3,
    }
    floor["floor_ms"] = max(floor["compute_floor_ms_torch_rate"], floor["memory_floor_ms"])
    return {
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "env": {k: os.environ.get(k) for k in OPENBLAS_VARS},
        "time_s": samples,
        "max_rel_diff_vs_factorch": accuracy,
        "fused_kernel": {"vector_bytes": fused.vector_bytes, "origin": fused.origin},
        "floor": floor,
    }


def memory_run(args: argparse.Namespace) -> dict[str, Any]:
    """Peak extra RSS of one call per mode, for one implementation (run in a fresh process)."""
    import tensorly as tl

    _common.apply_threads(args.threads)
    x, factors = _problem(args.size, args.rank)
    if _backend(args.impl):
        tl.set_backend(_backend(args.impl))
    calls = _callables(args.impl, x, factors)
    out: dict[str, Any] = {}
    for m in range(x.ndim):
        calls(m)()  # warm-up: lazy initialisation is not the call's memory
        out[str(m)] = _common.peak_extra_bytes(calls(m))
    return out


def compile_run() -> dict[str, Any]:
    """The fused kernel's start-up cost in this (fresh) process: compile, or load what an
    earlier process compiled into the same ``TORCHINDUCTOR_CACHE_DIR``."""
    import time

    start = time.perf_counter()
    from factorch.algebra import fused_mttkrp_status

    imported = time.perf_counter()
    status = fused_mttkrp_status()
    done = time.perf_counter()
    return {
        "import_factorch_s": imported - start,
        "status_s": done - imported,
        "origin": status.origin,
        "available": status.available,
    }


def fused_startup(args: argparse.Namespace) -> dict[str, Any]:
    """Compile the fused kernel into an empty cache directory, then load it in a second
    process; each in a fresh process."""
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="factorch-bench-inductor-")
    try:
        env = {"TORCHINDUCTOR_CACHE_DIR": cache}
        argv = _child_argv(args, "--worker", "compile")
        first = _common.run_json_subprocess(argv, env_overrides=env, timeout=600)
        second = _common.run_json_subprocess(argv, env_overrides=env, timeout=600)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"first_process": first, "second_process": second}


def sweep_run(args: argparse.Namespace) -> dict[str, Any]:
    """One CP-ALS sweep with the default tensor-reading passes and with the fused ones."""
    import torch

    from factorch.algebra import fused_mttkrp_status
    from factorch.algebra.internal import fused_tree_partial
    from factorch.decomp import _cp_sweep

    threads = _common.apply_threads(args.threads)
    status = fused_mttkrp_status()
    if not status.available:
        raise SystemExit(f"the fused kernel is not available: {status.reason}")
    x, factors = _problem(args.size, args.rank)
    default_partial = _cp_sweep.tree_partial

    def fused_partial(tensor, fs, modes):
        out = fused_tree_partial(tensor, fs, modes)
        return default_partial(tensor, fs, modes) if out is None else out

    def state():
        return _cp_sweep.CPState.start(torch.ones(args.rank, dtype=x.dtype), list(factors))

    def sweep(partial, st):
        _cp_sweep.tree_partial = partial
        try:
            return _cp_sweep.als_sweep(x, st)
        finally:
            _cp_sweep.tree_partial = default_partial

    # Same iterates: five sweeps from one start, both ways.
    runs = []
    for partial in (default_partial, fused_partial):
        st = state()
        for _ in range(5):
            sweep(partial, st)
        runs.append(st)
    diff = max(
        float((a - b).abs().max() / b.abs().max())
        for a, b in zip(runs[0].factors, runs[1].factors, strict=True)
    )
    st_default, st_fused = state(), state()
    passes = {
        "default sweep": lambda: sweep(default_partial, st_default),
        "fused sweep": lambda: sweep(fused_partial, st_fused),
        "default pass 1 (keep modes 0,1)": lambda: default_partial(x, factors, [2]),
        "fused pass 1 (keep modes 0,1)": lambda: fused_partial(x, factors, [2]),
        "default pass 2 (keep mode 2)": lambda: default_partial(x, factors, [0, 1]),
        "fused pass 2 (keep mode 2)": lambda: fused_partial(x, factors, [0, 1]),
    }
    res = _common.time_calls(passes, repeats=7 if args.quick else 21, warmup=2)
    return {
        "threads": threads,
        "max_rel_diff_factors_after_5_sweeps": diff,
        "ms": {k: v["median_s"] * 1e3 for k, v in res.items()},
        "cpu_ms": {k: v["cpu_median_s"] * 1e3 for k, v in res.items()},
    }


def explore_run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the ways of doing the one tensor-reading contraction of a 3-way MTTKRP (n^3, R)."""
    import torch

    _common.apply_threads(args.threads)
    x, (a, b, c) = _problem(args.size, args.rank)
    n, r = args.size, args.rank
    xn, cn = x.numpy(), c.numpy()
    krp = (b[:, None, :] * c[None]).reshape(-1, r)
    krpn = krp.numpy()
    xf, cf = x.float(), c.float()
    xz = x.view(torch.complex128).reshape(n * n, n // 2)  # pairs of entries as complex numbers
    cz = torch.complex(c[0::2], -c[1::2])  # Re((x0 + i x1)(c0 - i c1)) = x0 c0 + x1 c1

    def chunked(rows: int = 4096):
        x2 = x.reshape(-1, n)
        out = torch.empty(x2.shape[0], r, dtype=x.dtype)
        for s in range(0, x2.shape[0], rows):
            torch.mm(x2[s : s + rows], c, out=out[s : s + rows])
        return out

    variants = {
        "torch X(IJ,K) @ C  [last mode]": lambda: x.reshape(-1, n) @ c,
        "torch bmm C.T @ X(I,J,K).mT  [last mode, R-major out]": lambda: torch.bmm(
            c.mT.expand(n, r, n), x.mT
        ),
        "torch bmm B.T @ X(I,J,K)  [middle mode]": lambda: torch.bmm(b.mT.expand(n, r, n), x),
        "torch A.T @ X(I,JK)  [first mode]": lambda: a.mT @ x.reshape(n, -1),
        "torch X(I,JK) @ KRP(B,C)  [TensorLy-style, K = J*K]": lambda: x.reshape(n, -1) @ krp,
        "torch X(IJ,K) @ C, 4096-row blocks": chunked,
        "torch complex128 packing (zgemm), real part": lambda: (xz @ cz).real,
        "torch float32 X(IJ,K) @ C  [not float64!]": lambda: xf.reshape(-1, n) @ cf,
        "numpy X(IJ,K) @ C": lambda: xn.reshape(-1, n) @ cn,
        "numpy X(I,JK) @ KRP(B,C)": lambda: xn.reshape(n, -1) @ krpn,
    }
    res = _common.time_calls(variants, repeats=5 if args.quick else 11, warmup=1)
    flops = 2 * x.numel() * r
    return {
        name: {"ms": v["median_s"] * 1e3, "gflops": flops / v["median_s"] / 1e9}
        for name, v in res.items()
    }


def _child_argv(args: argparse.Namespace, *extra: str) -> list[str]:
    argv = [__file__, "--threads", str(args.threads), "--size", str(args.size)]
    argv += ["--rank", str(args.rank), *extra]
    return argv + (["--quick"] if args.quick else [])


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    if args.worker == "timing":  # the OpenBLAS-variables-unset run: only numpy is affected
        print(json.dumps(timing_run(args, anchors=("tensorly-numpy",), ours=("factorch",))))
        return
    if args.worker == "compile":
        print(json.dumps(compile_run()))
        return
    if args.worker == "memory":
        print(json.dumps(memory_run(args)))
        return

    if args.sweep:
        res = sweep_run(args)
        print(
            f"CP-ALS sweep, {args.size}^3 float64, R = {args.rank}, threads "
            f"{res['threads']}; max relative difference of the factors after 5 sweeps "
            f"{res['max_rel_diff_factors_after_5_sweeps']:.1e}"
        )
        rows = [[k, v, res["cpu_ms"][k]] for k, v in res["ms"].items()]
        print(_common.format_table(["what", "ms", "cpu ms"], rows))
        gain = res["ms"]["default sweep"] / res["ms"]["fused sweep"]
        print(f"sweep speedup (wall): {gain:.2f}")
        if not args.quick:
            _common.write_results("bench_algebra_sweep", {"command": " ".join(sys.argv), **res})
        return

    if args.explore:
        res = explore_run(args)
        print(f"one n^3 x R contraction, n = {args.size}, R = {args.rank}, threads {args.threads}")
        print(
            _common.format_table(
                ["variant", "ms", "GFLOP/s"], [[k, v["ms"], v["gflops"]] for k, v in res.items()]
            )
        )
        if not args.quick:
            _common.write_results("bench_algebra_explore", {"threads": args.threads, **res})
        return

    startup = fused_startup(args)
    given = timing_run(args)
    unset = _common.run_json_subprocess(
        _child_argv(args, "--worker", "timing"),
        env_overrides=dict.fromkeys(OPENBLAS_VARS),
        timeout=600,
    )
    memory = {
        impl: _common.run_json_subprocess(
            _child_argv(args, "--worker", "memory", "--impl", impl),
            env_overrides=_common.MALLOC_NO_CACHE,
            timeout=600,
        )
        for impl in IMPLS
    }
    payload = {
        "benchmark": "mttkrp",
        "command": "python benchmarks/bench_algebra.py"
        + (" --quick" if args.quick else "")
        + f" --threads {args.threads}",
        "machine": _common.machine_info(),
        "problem": {
            "shape": [args.size] * 3,
            "rank": args.rank,
            "dtype": "float64",
            "tensor_bytes": args.size**3 * 8,
        },
        "timing": {"env_as_given": given, "openblas_vars_unset": unset},
        "peak_extra_bytes": memory,
        "fused_startup": startup,
    }
    payload["summary"] = _summary(payload)
    path = _common.write_results("bench_algebra" + ("_quick" if args.quick else ""), payload)
    _print(payload)
    print(f"\nwrote {path}")


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    given, unset = payload["timing"]["env_as_given"], payload["timing"]["openblas_vars_unset"]
    floor_ms = given["floor"]["floor_ms"]
    for m in given["time_s"]["factorch"]:
        fac = given["time_s"]["factorch"][m]["median_s"] * 1e3
        tl_best = min(
            given["time_s"]["tensorly-numpy"][m]["median_s"],
            given["time_s"]["tensorly-pytorch"][m]["median_s"],
            unset["time_s"]["tensorly-numpy"][m]["median_s"],
        )
        runs = [given["time_s"][i][m] for i in IMPLS if i.startswith("tensorly")]
        runs.append(unset["time_s"]["tensorly-numpy"][m])
        tl_best_cpu = min(r["cpu_median_s"] for r in runs)
        fused = given["time_s"]["factorch-fused"][m]
        rows[m] = {
            "factorch_ms": fac,
            "fused_ms": fused["median_s"] * 1e3,
            "fastest_tensorly_ms": tl_best * 1e3,
            "speedup_vs_fastest_tensorly": tl_best * 1e3 / fac,
            "speedup_vs_fastest_tensorly_cpu_time": tl_best_cpu
            / given["time_s"]["factorch"][m]["cpu_median_s"],
            "fused_speedup_vs_fastest_tensorly": tl_best / fused["median_s"],
            "fused_speedup_vs_fastest_tensorly_cpu_time": tl_best_cpu / fused["cpu_median_s"],
            "fused_speedup_vs_default": fac / (fused["median_s"] * 1e3),
            "factorch_over_floor": fac / floor_ms,
            "fused_over_floor": fused["median_s"] * 1e3 / floor_ms,
        }
    return rows


def _print(payload: dict[str, Any]) -> None:
    given, unset = payload["timing"]["env_as_given"], payload["timing"]["openblas_vars_unset"]
    mem = payload["peak_extra_bytes"]

    def ms(run: dict[str, Any], impl: str, m: str) -> float:
        return run["time_s"][impl][m]["median_s"] * 1e3

    def mb(impl: str, m: str) -> float:
        return mem[impl][m]["bytes"] / 2**20

    header = [
        "mode",
        "factorch ms",
        "fused ms",
        "TL-numpy ms",
        "TL-numpy* ms",
        "TL-torch ms",
        "speedup",
        "(cpu)",
        "fused speedup",
        "(cpu)",
        "x floor",
        "fused x floor",
        "MB factorch",
        "MB fused",
        "MB TL-numpy",
        "MB TL-torch",
    ]
    rows = []
    for m, s in payload["summary"].items():
        rows.append(
            [
                m,
                ms(given, "factorch", m),
                ms(given, "factorch-fused", m),
                ms(given, "tensorly-numpy", m),
                ms(unset, "tensorly-numpy", m),
                ms(given, "tensorly-pytorch", m),
                s["speedup_vs_fastest_tensorly"],
                s["speedup_vs_fastest_tensorly_cpu_time"],
                s["fused_speedup_vs_fastest_tensorly"],
                s["fused_speedup_vs_fastest_tensorly_cpu_time"],
                s["factorch_over_floor"],
                s["fused_over_floor"],
                mb("factorch", m),
                mb("factorch-fused", m),
                mb("tensorly-numpy", m),
                mb("tensorly-pytorch", m),
            ]
        )
    p = payload["problem"]
    fl = given["floor"]
    print(
        f"MTTKRP {'x'.join(map(str, p['shape']))} {p['dtype']}, rank {p['rank']}; threads: "
        f"{given['threads']}; median of {given['repeats']} calls"
    )
    print(_common.format_table(header, rows))
    print(
        "TL-numpy*: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (separate process). speedup = "
        "fastest TensorLy time / factorch time (wall; (cpu): process CPU time); fused: "
        "mttkrp(..., kernel='fused'). "
        "MB = peak extra resident memory per call "
        f"(tensor: {p['tensor_bytes'] / 2**20:.0f} MB)."
    )
    print(
        f"floor {fl['floor_ms']:.2f} ms = max(2IJKR / DGEMM rate {fl['gemm_gflops_torch']:.1f} "
        f"GFLOP/s (torch; numpy {fl['gemm_gflops_numpy']:.1f}) = "
        f"{fl['compute_floor_ms_torch_rate']:.2f} ms, one read at "
        f"{fl['read_gbytes_per_s']:.1f} GB/s = {fl['memory_floor_ms']:.2f} ms)"
    )
    startup = payload["fused_startup"]
    first, second = startup["first_process"], startup["second_process"]
    print(
        f"fused kernel start-up: {first['status_s']:.2f} s in a fresh process with an empty cache "
        f"({first['origin']}), {second['status_s'] * 1e3:.1f} ms in the next process "
        f"({second['origin']})"
    )


if __name__ == "__main__":
    main()
