"""Equivariant tensor products: factorch CG vs e3nn vs Gaunt (2-D Fourier, S² grid), by degree L.

The paper-28 table on this machine: for inputs of all degrees ``0..L`` (spherical-harmonic irreps
``0e + 1o + ... + L``, one copy each) and every output ``0 .. 2L`` of both parities,

* ``factorch-cg``: :func:`factorch.symmetry.cg_tensor_product`, all paths (channels 1: no
  weights, like e3nn's ``FullTensorProduct``; channels 32: one weight per path and channel);
* ``e3nn-cg``: e3nn 0.6 -- ``FullTensorProduct`` for one channel, a ``TensorProduct`` with an
  ``"uuu"`` instruction per path (the channel-wise full product, weights per path and channel)
  for 32 channels;
* ``gaunt-fourier`` / ``gaunt-grid``: :func:`factorch.symmetry.gaunt_tensor_product` to degree 2L.

Beside each: the measured expressivity (:func:`factorch.symmetry.expressivity`, reached /
possible equivariant bilinear maps): the Gaunt products are faster *and* reach fewer maps.

Timing: one process, one thread, float32, forward only, all implementations of one configuration
timed round-robin after a warm-up (median of the repeats; wall and process CPU time, the ratios
on CPU time, which a loaded shared machine inflates far less). Memory: peak resident-memory
growth of one call in this process (glibc is set to return freed blocks to the OS, so each
call's peak is its own). ``--device cuda`` times on a GPU (synchronised; peak CUDA memory).

Usage::

    python benchmarks/bench_symmetry.py [--quick] [--device cpu|cuda]

Writes ``benchmarks/results/bench_symmetry.json`` (``--quick``: ``bench_symmetry_quick.json``; on
CUDA ``..._cuda.json``) and prints the table. Default: L = 1..8, batch 1000 (1 channel) and 256
(32 channels), 5 repeats (about 3.5 minutes on the 2-core machine); ``--quick``: L = 1..4, 3 repeats
(under a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="L <= 4, 3 repeats (< 1 minute)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--lmax", type=int, default=None, help="largest L (8; quick: 4)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per implementation")
    return p.parse_args(argv)


def _ensure_malloc_env() -> None:
    """Re-exec once with glibc returning freed blocks to the OS (honest per-call RSS peaks)."""
    if all(os.environ.get(k) == v for k, v in _common.MALLOC_NO_CACHE.items()):
        return
    env = dict(os.environ, **_common.MALLOC_NO_CACHE)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _e3nn_cg(ir: Any, out: Any, channels: int, device: str) -> Any:
    from e3nn import o3

    if channels == 1:
        tp = o3.FullTensorProduct(str(ir), str(ir))
        return tp.to(device), None
    paths = _paths(ir, out)
    e_in, e_out = o3.Irreps(str(ir * channels)), o3.Irreps(str(out * channels))
    instructions = [(p.a, p.b, p.c, "uuu", True) for p in paths]
    tp = o3.TensorProduct(
        e_in,
        e_in,
        e_out,
        instructions,
        irrep_normalization="component",
        path_normalization="none",
        internal_weights=False,
        shared_weights=True,
    ).to(device)
    return tp, tp.weight_numel


def _paths(ir: Any, out: Any) -> Any:
    from factorch.symmetry import cg_paths

    return cg_paths(ir, ir, out)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _memory(fn: Any, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return _common.peak_extra_bytes(fn)["bytes"] / 2**20


def _config(
    lmax: int, channels: int, batch: int, repeats: int, device: str
) -> list[dict[str, Any]]:
    import torch

    from factorch.symmetry import (
        Irreps,
        cg_tensor_product,
        default_irreps_out,
        from_e3nn_layout,
        gaunt_tensor_product,
        to_e3nn_layout,
    )

    ir = Irreps.spherical_harmonics(lmax)
    out = default_irreps_out(ir, ir)
    g = torch.Generator().manual_seed(lmax)
    x1 = torch.randn(batch, channels, ir.dim, generator=g).to(device)
    x2 = torch.randn(batch, channels, ir.dim, generator=g).to(device)
    start = time.perf_counter()
    e3nn_tp, _ = _e3nn_cg(ir, out, channels, device)
    build_s = time.perf_counter() - start
    w_paths = (
        None
        if channels == 1
        else torch.randn(len(_paths(ir, out)), channels, generator=g).to(device)
    )
    if channels == 1:
        e1, e2 = x1[:, 0], x2[:, 0]
        e3nn_call = lambda: e3nn_tp(e1, e2)  # noqa: E731
    else:
        e1, e2 = to_e3nn_layout(x1, ir), to_e3nn_layout(x2, ir)
        w_flat = w_paths.reshape(-1)  # type: ignore[union-attr]
        e3nn_call = lambda: e3nn_tp(e1, e2, w_flat)  # noqa: E731
        # the two compute the same numbers: check once
        with torch.no_grad():
            ours = cg_tensor_product(x1, x2, ir, ir, out, weights=w_paths)
            ref = from_e3nn_layout(e3nn_call(), out, channels)
        err = float((ours - ref).abs().max() / ref.abs().max())
        if err > 1e-4:
            raise AssertionError(f"factorch and e3nn disagree at L={lmax}: {err:.1e}")

    def wrap(fn: Any) -> Any:
        def call() -> Any:
            with torch.no_grad():
                r = fn()
            _sync(device)
            return r

        return call

    calls = {
        "factorch-cg": wrap(lambda: cg_tensor_product(x1, x2, ir, ir, out, weights=w_paths)),
        "e3nn-cg": wrap(e3nn_call),
        "gaunt-fourier": wrap(lambda: gaunt_tensor_product(x1, x2, method="fourier")),
        "gaunt-grid": wrap(lambda: gaunt_tensor_product(x1, x2, method="grid")),
    }
    # fast configurations get more repeats (about 2 s of timing each, 5 to 40 rounds)
    start = time.perf_counter()
    for fn in calls.values():
        fn()
    per_round = time.perf_counter() - start
    rounds = max(repeats, min(8 * repeats, int(2.0 / max(per_round, 1e-6))))
    timing = _common.time_calls(calls, repeats=rounds, warmup=0)
    rows = []
    for name, fn in calls.items():
        rows.append(
            {
                "L": lmax,
                "channels": channels,
                "batch": batch,
                "impl": name,
                "median_ms": timing[name]["median_s"] * 1e3,
                "min_ms": timing[name]["min_s"] * 1e3,
                "cpu_median_ms": timing[name]["cpu_median_s"] * 1e3,
                "repeats": rounds,
                "peak_mib": _memory(fn, device),
                "e3nn_build_s": build_s if name == "e3nn-cg" else None,
            }
        )
    # ratios on process CPU time (one thread: the time the call computed; a loaded shared machine
    # inflates wall time, not this); on CUDA on wall time
    key = "median_ms" if device == "cuda" else "cpu_median_ms"
    e3nn_ms = next(r[key] for r in rows if r["impl"] == "e3nn-cg")
    for r in rows:
        r["speedup_vs_e3nn"] = e3nn_ms / r[key]
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _common.pin_threads(1)
    _ensure_malloc_env()
    import torch

    from factorch.symmetry import Irreps, default_irreps_out, expressivity

    threads = _common.apply_threads(1)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    lmax = args.lmax or (4 if args.quick else 8)
    repeats = args.repeats or (3 if args.quick else 5)
    express: dict[int, dict[str, Any]] = {}
    for l in range(1, lmax + 1):
        ir = Irreps.spherical_harmonics(l)
        out = default_irreps_out(ir, ir)
        gen = torch.Generator().manual_seed(0)
        cg, gaunt = (
            expressivity("cg", ir, ir, out, generator=gen),
            expressivity("gaunt", ir, ir, out, generator=gen),
        )
        express[l] = {"cg": cg.dimension, "gaunt": gaunt.dimension, "maximum": cg.maximum}
    rows: list[dict[str, Any]] = []
    for channels, batch in ((1, 1000), (32, 256)):
        for l in range(1, lmax + 1):
            rows.extend(_config(l, channels, batch, repeats, args.device))
            print(f"done L={l} channels={channels}", file=sys.stderr, flush=True)
    table = []
    for r in rows:
        e = express[r["L"]]
        reached = e["gaunt"] if r["impl"].startswith("gaunt") else e["cg"]
        r["expressivity"] = f"{reached}/{e['maximum']}"
        table.append(
            [
                r["L"],
                r["channels"],
                r["batch"],
                r["impl"],
                r["median_ms"],
                r["cpu_median_ms"],
                r["speedup_vs_e3nn"],
                # RSS growth below ~1 MiB is not resolved (the kernel syncs RSS every 64 faults)
                "<1" if args.device == "cpu" and r["peak_mib"] < 1 else r["peak_mib"],
                r["expressivity"],
            ]
        )
    print(
        _common.format_table(
            [
                "L",
                "C",
                "batch",
                "impl",
                "wall ms",
                "cpu ms",
                "x vs e3nn",
                "peak MiB",
                "expressivity",
            ],
            table,
        )
    )
    # the targets
    verdicts = []
    for channels in (1, 32):
        sub = [r for r in rows if r["channels"] == channels]
        for impl in ("gaunt-grid", "gaunt-fourier"):
            slow = [
                (r["L"], round(r["speedup_vs_e3nn"], 2))
                for r in sub
                if r["impl"] == impl and r["L"] >= 4 and r["speedup_vs_e3nn"] < 1
            ]
            verdict = "yes" if not slow else f"no at (L, x) {slow}"
            verdicts.append(f"C={channels} {impl} faster than e3nn for L>=4: {verdict}")
        slow = [
            (r["L"], round(r["speedup_vs_e3nn"], 2))
            for r in sub
            if r["impl"] == "factorch-cg" and r["speedup_vs_e3nn"] < 1
        ]
        verdict = "yes" if not slow else f"no at (L, x) {slow}"
        verdicts.append(f"C={channels} factorch-cg no slower than e3nn: {verdict}")
    print("\n".join(verdicts))
    name = (
        "bench_symmetry"
        + ("_quick" if args.quick else "")
        + ("_cuda" if args.device == "cuda" else "")
    )
    path = _common.write_results(
        name,
        {
            "machine": _common.machine_info(),
            "threads": threads,
            "device": args.device,
            "repeats": repeats,
            "expressivity": express,
            "rows": rows,
            "verdicts": verdicts,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
