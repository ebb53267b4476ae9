"""CP-ALS sweep with the fused MTTKRP kernel (``cp(..., kernel="fused")``) against the default
path, TensorLy (numpy and pytorch backends) and pyttb, and against the floor. Issue 14, item 2.

For each dense float64 cube ``n^3`` (rank ``R``), in ONE process, one thread (BLAS pools pinned
before import), every case ``--repeats`` times round-robin after a warm-up call, medians:

* whole fits (``tol=0``, every library from the same random factors) of ``S`` and ``3 S``
  sweeps: ``factorch`` (default), ``factorch-fused``, ``tensorly-numpy``, ``tensorly-pytorch``,
  ``pyttb``. Two numbers per library: the ``S``-sweep call divided by ``S`` (what
  ``bench_sweep.py`` reports: it includes each library's once-per-call work, e.g. factorch's
  input checks and its exact final error), and the *marginal sweep*
  ``(t(3 S) - t(S)) / (2 S)``, the steady-state cost of one more sweep (the once-per-call work
  cancels);
* a bare sweep (``factorch.decomp._cp_sweep.als_sweep``, no checks, no error terms; three in a
  row per call, the time divided by three) with the default and the fused passes, and its two
  tensor-reading passes alone: ``pass 1`` (``X(IJ, K) @ A_2``: MKL's GEMM on the default path,
  the fused loop with ``K`` as the vector lane on the fused one) and ``pass 2`` (the last mode's
  MTTKRP: default GEMM path vs the fused kernel by its rule -- ``K`` as the lane at rank 10 --
  and with the rank as the lane);
* cp's once-per-call work (issue 14, helper ``percall2``): the entry scan before (``finite_peak``
  then ``||X||^2``: two reads) and after (``finite_fit_scale``: one read), and the final error
  (the exact pass, the Gram formula, and cp's rule choosing between them on the 8-sweep model);
* the floor's ingredients in the same process: a STREAM-like read of X (``x.sum()``) and the
  square-DGEMM rate (``1024^2 @ 1024^2`` in torch). A sweep must read X twice (the second pass
  needs the factors the first pass produced) and do ``4 |X| R`` flops of tensor contractions, so
  the fused-kernel floor of a sweep is ``2 * max(read of X, 2 |X| R / DGEMM rate)``.

Usage::

    python benchmarks/bench_cp_fused.py [--sizes 100,200,300] [--rank 10] [--repeats 7]

Writes ``benchmarks/results/bench_cp_fused.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)

FITS = ("factorch", "factorch-fused", "tensorly-numpy", "tensorly-pytorch", "pyttb")
ANCHORS = ("tensorly-numpy", "tensorly-pytorch", "pyttb")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,200,300")
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default="bench_cp_fused")
    return p.parse_args(argv)


def _sweeps(n: int) -> int:
    return 20 if n <= 100 else 8 if n <= 200 else 3


def _cases(n: int, rank: int) -> tuple[dict[str, Callable[[], object]], dict[str, Any]]:
    import numpy as np
    import pyttb as ttb
    import torch
    from tensorly.cp_tensor import CPTensor as TLCP
    from tensorly.decomposition import parafac

    from factorch.algebra._fused import fused_mttkrp
    from factorch.algebra.internal import mttkrp
    from factorch.decomp import cp
    from factorch.decomp._cp import _IDENTITY_TOLERANCE, _final_error
    from factorch.decomp._cp_sweep import CPState, als_sweep, exact_error, gram_error
    from factorch.decomp._scale import finite_fit_scale, finite_peak
    from factorch.random import add_noise, random_cp
    from factorch.tensors import CPTensor

    shape = (n, n, n)
    gen = torch.Generator().manual_seed(0)
    sweeps = _sweeps(n)
    x = add_noise(
        random_cp(shape, rank, generator=gen, dtype=torch.float64).to_dense(),
        relative=0.05,
        generator=gen,
    )
    xn = x.numpy()
    xt = torch.from_numpy(xn.copy())
    init = [torch.rand(s, rank, generator=gen, dtype=torch.float64) for s in shape]
    ones = torch.ones(rank, dtype=torch.float64)
    fc_init = CPTensor(ones, tuple(init))
    ttb_x = ttb.tensor(xn.copy(order="F"))
    ttb_init = ttb.ktensor([f.numpy().copy(order="F") for f in init], np.ones(rank))
    tl_np = TLCP((ones.numpy(), [f.numpy() for f in init]))
    tl_pt = TLCP((ones.clone(), [f.clone() for f in init]))
    calls: dict[str, Callable[[], object]] = {}
    for tag, k in (("", sweeps), (" x3", 3 * sweeps)):
        calls["factorch" + tag] = _bind(cp, x, rank, init=fc_init, max_iter=k, tol=0)
        calls["factorch-fused" + tag] = _bind(
            cp, x, rank, init=fc_init, max_iter=k, tol=0, kernel="fused"
        )
        calls["tensorly-numpy" + tag] = _bind(parafac, xn, rank, init=tl_np, n_iter_max=k, tol=0)
        calls["tensorly-pytorch" + tag] = _bind(parafac, xt, rank, init=tl_pt, n_iter_max=k, tol=0)
        calls["pyttb" + tag] = _bind(
            ttb.cp_als, ttb_x, rank, init=ttb_init, maxiters=k, stoptol=0, printitn=0
        )
    st_default = CPState.start(ones.clone(), [f.clone() for f in init])
    st_fused = CPState.start(ones.clone(), [f.clone() for f in init])
    factors = [f.clone() for f in init]
    square = torch.randn(1024, 1024, dtype=torch.float64, generator=gen)
    calls.update(
        {
            "sweep default": lambda: [als_sweep(x, st_default) for _ in range(3)],
            "sweep fused": lambda: [als_sweep(x, st_fused, kernel="fused") for _ in range(3)],
            "pass 1 (GEMM X(IJ,K) @ A_2)": lambda: x.reshape(n * n, n) @ factors[2],
            "pass 1 fused (X(IJ,K) @ A_2, K as lane)": lambda: fused_mttkrp(
                x.reshape(n * n, n), [None, factors[2]], 0
            ),
            "pass 2 default (mttkrp mode 2)": lambda: mttkrp(x, factors, 2),
            "pass 2 fused (mttkrp mode 2)": lambda: fused_mttkrp(x, factors, 2),
            "pass 2 fused, rank as lane": lambda: fused_mttkrp(x, factors, 2, lane="rank"),
            "read X (x.sum())": lambda: x.sum(),
            "DGEMM 1024^3": lambda: square @ square,
        }
    )
    # The once-per-call work of cp (issue 14, helper percall2): the entry scan before (peak, then
    # ||X||^2: two reads) and after (one read), and the final error: exact pass vs Gram formula.
    fit = cp(x, rank, init=fc_init, max_iter=sweeps, tol=0)
    state = CPState.start(fit.model.weights.clone(), [f.clone() for f in fit.model.factors])
    flat = x.reshape(-1)
    norm_x2 = float(torch.vdot(flat, flat))
    last = mttkrp(x, state.factors, 2)
    calls.update(
        {
            "entry before (finite_peak, ||X||^2)": lambda: (
                finite_peak(x, "cp"),
                float(torch.vdot(flat, flat)),
            ),
            "entry after (finite_fit_scale)": lambda: finite_fit_scale(x, "cp"),
            "final error: exact pass": lambda: exact_error(x, state, norm_x2),
            "final error: Gram formula": lambda: gram_error(norm_x2, last, state),
        }
    )
    gram_e, gram_floor = gram_error(norm_x2, last, state)
    chosen = _final_error(x, state, last, norm_x2, (gram_e, gram_floor), small=None)
    bound = chosen[1] if chosen[0] == gram_e else math.nan  # nan: the exact pass ran
    calls["final error: the rule (cp)"] = lambda: _final_error(
        x, state, last, norm_x2, (gram_e, gram_floor), small=None
    )
    # Same iterates: the fused fit against the default one (float64).
    a = cp(x, rank, init=fc_init, max_iter=sweeps, tol=0)
    b = cp(x, rank, init=fc_init, max_iter=sweeps, tol=0, kernel="fused")
    diff = max(float((fa - fb).abs().max()) for fa, fb in zip(a.model.factors, b.model.factors))
    info = {
        "sweeps": sweeps,
        "max_abs_diff_factors_fused_vs_default": diff,
        "max_abs_diff_errors": max(abs(p - q) for p, q in zip(a.errors, b.errors)),
        "final_error": fit.error,
        "gram_minus_exact": gram_e - exact_error(x, state, norm_x2)[0],
        "identity_bound": bound,
        "identity_used": bound <= _IDENTITY_TOLERANCE,
        "identity_drift_bound_1e-10_needs_error_above": _needed(x, state, norm_x2),
        "bytes": x.numel() * x.element_size(),
        "flops_per_sweep": 4 * x.numel() * rank,
    }
    return calls, info


def _needed(x: Any, state: Any, norm_x2: float) -> float:
    """The smallest error at which cp's final-error rule takes the Gram formula (this model)."""
    import torch

    from factorch.decomp._cp import _IDENTITY_TOLERANCE, _LAMBDA

    n = x.numel() + state.weights.numel() * sum(x.shape)
    columns = torch.stack([g.diagonal() for g in state.grams]).prod(0).sqrt()
    size = float((state.weights.abs() * columns).sum()) / math.sqrt(norm_x2)
    drift = (_LAMBDA * math.sqrt(n) + 3.0) * torch.finfo(x.dtype).eps / 2 * (1.0 + size) ** 2
    return drift / _IDENTITY_TOLERANCE


def _bind(fn: Callable[..., object], *args: object, **kwargs: object) -> Callable[[], object]:
    return lambda: fn(*args, **kwargs)


def _setups(names: list[str]) -> dict[str, Callable[[], object]]:
    import tensorly as tl

    return {
        k: (lambda: tl.set_backend("pytorch"))
        if k.startswith("tensorly-pytorch")
        else (lambda: tl.set_backend("numpy"))
        for k in names
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    from factorch.algebra import fused_mttkrp_status

    threads = _common.apply_threads(1)
    start = time.perf_counter()
    status = fused_mttkrp_status()
    startup = {"status": repr(status), "seconds": time.perf_counter() - start}
    print(f"fused kernel: {status} ({startup['seconds']:.3f} s)", flush=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        calls, info = _cases(n, args.rank)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = _common.time_calls(calls, repeats=args.repeats, setup=_setups(list(calls)))
        sweeps = info["sweeps"]
        ms = {k: v["median_s"] * 1e3 for k, v in times.items()}
        cpu = {k: v["cpu_median_s"] * 1e3 for k, v in times.items()}
        for k in FITS:
            for d in (ms, cpu):
                if k == "factorch":  # (three bare sweeps per call: X warm after the first)
                    d["sweep default"] /= 3
                    d["sweep fused"] /= 3
                d[k + " marginal"] = (d.pop(k + " x3") - d[k]) / (2 * sweeps)
                d[k] /= sweeps
        read_ms = cpu["read X (x.sum())"]
        gemm_rate = 2 * 1024**3 / (cpu["DGEMM 1024^3"] * 1e-3)  # flop/s
        pass_floor = max(read_ms, info["flops_per_sweep"] / 2 / gemm_rate * 1e3)
        floor = 2 * pass_floor
        row = {
            "shape": [n, n, n],
            "rank": args.rank,
            **info,
            "repeats": args.repeats,
            "ms_wall": ms,
            "ms_cpu": cpu,
            "read_GBps": info["bytes"] / (read_ms * 1e-3) / 1e9,
            "dgemm_GFLOPs": gemm_rate / 1e9,
            "fused_floor_sweep_ms_cpu": floor,
            "ratios_cpu": {
                f"{a}{m} / {k}{m}": cpu[a + m] / cpu[k + m]
                for m in ("", " marginal")
                for k in ("factorch", "factorch-fused")
                for a in ANCHORS
            },
            "ratios_wall": {
                f"{a}{m} / {k}{m}": ms[a + m] / ms[k + m]
                for m in ("", " marginal")
                for k in ("factorch", "factorch-fused")
                for a in ANCHORS
            },
            "x_floor_cpu": {
                k: cpu[k] / floor
                for k in (
                    "factorch",
                    "factorch-fused",
                    "factorch marginal",
                    "factorch-fused marginal",
                    "sweep default",
                    "sweep fused",
                )
            },
        }
        rows.append(row)
        _print_row(row)
        _common.write_results(args.out, {"command": sys.argv, "partial": True, "rows": rows})
    return {"threads": threads, "startup": startup, "rows": rows}


def _print_row(row: dict[str, Any]) -> None:
    n = row["shape"][0]
    print(f"\n{n}^3 R={row['rank']}, {row['sweeps']} sweeps per fit; ms per sweep (cpu / wall):")
    for k in sorted(row["ms_cpu"], key=lambda k: (not k.startswith(FITS), k)):
        print(f"  {k:34s} {row['ms_cpu'][k]:9.2f} / {row['ms_wall'][k]:9.2f}")
    print(
        f"  read {row['read_GBps']:.1f} GB/s, DGEMM {row['dgemm_GFLOPs']:.1f} GFLOP/s, "
        f"fused floor {row['fused_floor_sweep_ms_cpu']:.2f} ms/sweep"
    )
    for k, v in row["ratios_cpu"].items():
        print(f"  {k:36s} cpu {v:5.2f}x  wall {row['ratios_wall'][k]:5.2f}x")
    for k, v in row["x_floor_cpu"].items():
        print(f"  {k:20s} {v:5.2f} x floor (cpu)")
    print(
        f"  fused vs default: factors {row['max_abs_diff_factors_fused_vs_default']:.1e}, "
        f"errors {row['max_abs_diff_errors']:.1e}",
        flush=True,
    )
    if "identity_bound" in row:
        print(
            f"  final error {row['final_error']:.3g}: Gram - exact {row['gram_minus_exact']:.1e}, "
            f"bound {row['identity_bound']:.1e}, identity used: {row['identity_used']} "
            f"(needs error >= {row['identity_drift_bound_1e-10_needs_error_above']:.3f})",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(1)
    res = run(args)
    payload = {"machine": _common.machine_info(), "command": sys.argv, **res}
    path = _common.write_results(args.out, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
