"""Small tensors: CP-ALS per sweep and masked CP on IL-2, factorch against TensorLy and pyttb.

Issue 14, items 1 and 4. One process, one thread (BLAS pools pinned before import), float64, every
library from the same random start, callables timed round-robin after a warm-up call (median of
``--repeats``; wall and process-CPU time, the latter inflated less by a busy shared machine):

1. ``sweep``: CP-ALS with ``tol=0`` on 10x10x10 rank 3, 438x6x11 (COVID-19 serology shape)
   rank 3 and 40x50x60 rank 5 (a random CP model plus 5 % noise), whole call divided by the sweeps
   (50, 50 and 20, as ``bench_sweep.py``): factorch ``cp`` (automatic path, and the reference
   dimension-tree path forced for comparison), TensorLy 0.10 ``parafac`` (numpy and pytorch
   backends), pyttb ``cp_als``. Also the fixed cost: a one-sweep call of each.
   ``factorch-before-percall2``: ``cp`` with its once-per-call work as before helper percall2
   (two reads for the entry scan and ``||X||^2``, the exact final error always), same process;
   ``fixed`` (not run by default): the one-sweep calls of both alone, many times alternated.
   ``factorch-late``: the ``factorch`` call again, last in each round (the position effect).
   ``factorch-torch-normal``: ``cp`` with the small sweep's ``R x R`` normal equations solved by
   torch calls, as before helper small3, same process.
   ``others`` (not run by default): Tucker/HOOI, masked CP (20 % missing) and HALS NN-CP on the
   same three shapes against TensorLy numpy (the callables of ``bench_sweep.py``), per sweep and
   per one-sweep call. ``dispatches`` (not run by default): the ATen operations of ``cp``, NN-CP
   and masked CP per sweep and per call, counted by a ``TorchDispatchMode``.
2. ``masked``: IL-2 (13x4x12x8, 192 missing values) at ranks 3 and 4, 10 % of the observed
   entries held out (``--seeds`` splits); every library fits the rest from the same random start
   until its error changes by less than ``tol=1e-8`` (at most 2000 sweeps): factorch
   ``cp(mask=...)`` and TensorLy ``parafac(mask=...)`` (both EM imputation). Reported: time,
   sweeps, held-out RMSE, relative error on the fitted entries.

The ratio printed is ``anchor time / factorch time`` (above 1: factorch faster).

Usage::

    python benchmarks/bench_small.py [--repeats N] [--seeds N]
        [--parts sweep,fixed,others,dispatches,masked]

Writes ``benchmarks/results/bench_small.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)

CASES = (((10, 10, 10), 3, 50), ((438, 6, 11), 3, 50), ((40, 50, 60), 5, 20))


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--parts", default="sweep,masked")
    return p.parse_args(argv)


def _forced(path: str, fn: Callable[[], object]) -> Callable[[], object]:
    from factorch.decomp import _cp

    def call() -> object:
        _cp._PATH = path  # type: ignore[assignment]
        try:
            return fn()
        finally:
            _cp._PATH = "auto"

    return call


def _before_percall2(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with cp's once-per-call work as before helper percall2 (issue 14): the peak scan
    then ``||X||^2`` (two reads) and the exact final error always."""
    from factorch.decomp import _cp, _scale

    def old_entry(tensor: object, fn_name: str, name: str = "tensor") -> tuple[float, None]:
        largest = _scale.finite_peak(tensor, fn_name, name)  # type: ignore[arg-type]
        return _scale.fit_scale(tensor, largest), None  # type: ignore[arg-type]

    def call() -> object:
        entry, tolerance = _cp.finite_fit_scale, _cp._IDENTITY_TOLERANCE
        _cp.finite_fit_scale, _cp._IDENTITY_TOLERANCE = old_entry, -1.0  # type: ignore[assignment]
        try:
            return fn()
        finally:
            _cp.finite_fit_scale, _cp._IDENTITY_TOLERANCE = entry, tolerance

    return call


def _torch_normal(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` with the small sweep's normal equations solved by torch calls, as before helper
    small3 (issue 14), instead of on the host."""
    from factorch.decomp import _cp_small

    def call() -> object:
        limit = _cp_small.HOST_RANK
        _cp_small.HOST_RANK = 0
        try:
            return fn()
        finally:
            _cp_small.HOST_RANK = limit

    return call


def _sweep_calls(
    shape: tuple[int, ...], rank: int, sweeps: int | None, *, counting: bool = False
) -> dict[str, Callable[[], object]]:
    """The timed calls (name -> call); with ``counting``, calls of factorch, TensorLy numpy and
    pyttb that return the number of sweeps they ran instead."""
    import numpy as np
    import pyttb as ttb
    import torch
    from tensorly.cp_tensor import CPTensor as TLCP
    from tensorly.decomposition import parafac

    from factorch.decomp import cp
    from factorch.random import add_noise, random_cp
    from factorch.tensors import CPTensor

    gen = torch.Generator().manual_seed(0)
    truth = random_cp(shape, rank, generator=gen, dtype=torch.float64)
    x = add_noise(truth.to_dense(), relative=0.05, generator=gen)
    init = [torch.rand(s, rank, generator=gen, dtype=torch.float64) for s in shape]
    ones = torch.ones(rank, dtype=torch.float64)
    fc_init = CPTensor(ones, tuple(init))
    xn, xt = x.numpy(), x.clone()
    tl_np = TLCP((ones.numpy(), [f.numpy() for f in init]))
    tl_pt = TLCP((ones.clone(), [f.clone() for f in init]))
    ttb_x = ttb.tensor(xn.copy(order="F"))
    ttb_init = ttb.ktensor([f.numpy().copy(order="F") for f in init], np.ones(rank))

    # sweeps=None: every library's default stopping rule (factorch max_iter=100, tol=1e-8;
    # TensorLy n_iter_max=100, tol=1e-8; pyttb maxiters=1000, stoptol=1e-4).
    stop_fc: dict[str, Any] = {} if sweeps is None else {"max_iter": sweeps, "tol": 0}
    stop_tl: dict[str, Any] = {} if sweeps is None else {"n_iter_max": sweeps, "tol": 0}
    stop_pt: dict[str, Any] = {} if sweeps is None else {"maxiters": sweeps, "stoptol": 0}

    def fc() -> object:
        return cp(x, rank, init=fc_init, **stop_fc)

    if counting:
        return {
            "factorch": lambda: fc().iterations,  # type: ignore[attr-defined]
            "tensorly-numpy": lambda: len(
                parafac(xn, rank, init=tl_np, return_errors=True, **stop_tl)[1]
            ),
            "pyttb": lambda: ttb.cp_als(ttb_x, rank, init=ttb_init, printitn=0, **stop_pt)[2][
                "iters"
            ],
        }
    return {
        "factorch": fc,
        "factorch-reference": _forced("reference", fc),
        "factorch-before-percall2": _before_percall2(fc),
        "factorch-torch-normal": _torch_normal(fc),
        "tensorly-numpy": lambda: parafac(xn, rank, init=tl_np, **stop_tl),
        "tensorly-pytorch": lambda: parafac(xt, rank, init=tl_pt, **stop_tl),
        "pyttb": lambda: ttb.cp_als(ttb_x, rank, init=ttb_init, printitn=0, **stop_pt),
        # The same call as "factorch", timed last in each round (after pyttb instead of first,
        # after the TensorLy backend switch): the size of the round-robin position effect.
        "factorch-late": fc,
    }


def _default_sweeps(shape: tuple[int, ...], rank: int) -> dict[str, int]:
    """The sweeps each library's default call (``_sweep_calls(..., None)``) runs."""
    import tensorly as tl

    calls = _sweep_calls(shape, rank, None, counting=True)
    tl.set_backend("numpy")
    return {k: int(calls[k]()) for k in ("factorch", "tensorly-numpy", "pyttb")}  # type: ignore[call-overload]


def _setups(names: list[str]) -> dict[str, Callable[[], object]]:
    import tensorly as tl

    return {
        n: (lambda: tl.set_backend("pytorch"))
        if n == "tensorly-pytorch"
        else (lambda: tl.set_backend("numpy"))
        for n in names
    }


def bench_fixed(repeats: int) -> list[dict[str, Any]]:
    """A one-sweep ``cp`` call, now and as before helper percall2, alternated ``30 * repeats``
    times (process CPU time, median): the once-per-call work the two differ in."""
    rows = []
    for shape, rank, _ in CASES:
        one = _sweep_calls(shape, rank, 1)
        calls = {"after": one["factorch"], "before": one["factorch-before-percall2"]}
        times = _common.time_calls(calls, repeats=30 * repeats, warmup=5)
        us = {k: v["cpu_median_s"] * 1e6 for k, v in times.items()}
        rows.append({"shape": list(shape), "rank": rank, "cpu_one_sweep_call_us": us})
        print(
            f"fixed {shape} r{rank}: one-sweep call {us['after']:.1f} us, before percall2 "
            f"{us['before']:.1f} us",
            flush=True,
        )
    return rows


def bench_sweep(repeats: int) -> list[dict[str, Any]]:
    import tensorly as tl

    rows = []
    for shape, rank, sweeps in CASES:
        row: dict[str, Any] = {"shape": list(shape), "rank": rank, "sweeps": sweeps}
        labels = (("per_sweep_ms", sweeps), ("one_sweep_call_ms", 1), ("default_call_ms", None))
        for label, n_sweeps in labels:
            calls = _sweep_calls(shape, rank, n_sweeps)
            times = _common.time_calls(calls, repeats=repeats, setup=_setups(list(calls)))
            tl.set_backend("numpy")
            div = n_sweeps or 1
            row[label] = {k: v["median_s"] / div * 1e3 for k, v in times.items()}
            row["cpu_" + label] = {k: v["cpu_median_s"] / div * 1e3 for k, v in times.items()}
        row["default_call_sweeps"] = _default_sweeps(shape, rank)
        per, cpu = row["per_sweep_ms"], row["cpu_per_sweep_ms"]
        row["ratio"] = {k: per[k] / per["factorch"] for k in per if k != "factorch"}
        row["cpu_ratio"] = {k: cpu[k] / cpu["factorch"] for k in cpu if k != "factorch"}
        rows.append(row)
        print(
            f"sweep {shape} r{rank}: "
            + ", ".join(f"{k} {v:.3f} ms" for k, v in per.items())
            + " | ratio "
            + ", ".join(f"{k} {v:.2f}" for k, v in row["ratio"].items())
            + " | cpu ratio "
            + ", ".join(f"{k} {v:.2f}" for k, v in row["cpu_ratio"].items()),
            flush=True,
        )
        for label in ("cpu_one_sweep_call_ms", "cpu_default_call_ms"):
            ms = row[label]
            print(
                f"  {label} {shape}: "
                + ", ".join(f"{k} {v:.3f} ({ms[k] / ms['factorch']:.2f}x)" for k, v in ms.items())
                + ("" if "default" not in label else f" | sweeps {row['default_call_sweeps']}"),
                flush=True,
            )
    return rows


def bench_dispatches() -> list[dict[str, Any]]:
    """ATen operations (counted by a ``TorchDispatchMode``) of ``cp`` and NN-CP calls of 1 and 11
    sweeps on the three shapes: per sweep (the difference / 10) and fixed (the rest)."""
    import collections

    import bench_sweep
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.n += 1
            return func(*args, **(kwargs or {}))

    rows = []
    for workload in ("cp", "nn_cp", "masked_cp"):
        for shape, rank, _ in CASES:
            counts: dict[int, int] = collections.Counter()
            for n_sweeps in (1, 11):
                with _sweeps_set(bench_sweep, n_sweeps):
                    call = bench_sweep._cases(shape, rank, workload)["factorch"]
                with Count() as mode:
                    call()
                counts[n_sweeps] = mode.n
            per = (counts[11] - counts[1]) / 10
            row = {"workload": workload, "shape": list(shape), "rank": rank,
                   "per_sweep": per, "fixed": counts[1] - per}  # fmt: skip
            rows.append(row)
            print(f"dispatches {workload} {shape} r{rank}: {per:.0f} per sweep, "
                  f"{row['fixed']:.0f} fixed", flush=True)  # fmt: skip
    return rows


def bench_others(repeats: int) -> list[dict[str, Any]]:
    """Tucker/HOOI, masked CP (20 % missing, EM) and HALS NN-CP on the three shapes, factorch
    against TensorLy numpy (the callables of ``bench_sweep.py``): per sweep (``tol=0``, the
    sweeps of ``bench_sweep.py``) and per one-sweep call."""
    import bench_sweep
    import tensorly as tl

    rows = []
    for workload in ("tucker", "masked_cp", "nn_cp"):
        for shape, rank, _ in CASES:
            sweeps = bench_sweep._sweeps(shape)
            row: dict[str, Any] = {"workload": workload, "shape": list(shape), "rank": rank}
            for label, n_sweeps in (("per_sweep_ms", sweeps), ("one_sweep_call_ms", 1)):
                with _sweeps_set(bench_sweep, n_sweeps):
                    every = bench_sweep._cases(shape, rank, workload)
                calls = {k: every[k] for k in ("factorch", "tensorly-numpy")}
                times = _common.time_calls(calls, repeats=repeats, setup=bench_sweep._setups())
                tl.set_backend("numpy")
                row[label] = {k: v["median_s"] / n_sweeps * 1e3 for k, v in times.items()}
                row["cpu_" + label] = {
                    k: v["cpu_median_s"] / n_sweeps * 1e3 for k, v in times.items()
                }
            ratios = {
                key: row[key]["tensorly-numpy"] / row[key]["factorch"]
                for key in ("cpu_per_sweep_ms", "cpu_one_sweep_call_ms")
            }
            row["cpu_ratio"] = ratios
            rows.append(row)
            print(
                f"{workload} {shape} r{rank}: per sweep factorch "
                f"{row['cpu_per_sweep_ms']['factorch']:.3f} ms, tensorly-numpy "
                f"{row['cpu_per_sweep_ms']['tensorly-numpy']:.3f} ms "
                f"({ratios['cpu_per_sweep_ms']:.2f}x); one-sweep call "
                f"{row['cpu_one_sweep_call_ms']['factorch']:.3f} vs "
                f"{row['cpu_one_sweep_call_ms']['tensorly-numpy']:.3f} ms "
                f"({ratios['cpu_one_sweep_call_ms']:.2f}x)",
                flush=True,
            )
    return rows


@contextlib.contextmanager
def _sweeps_set(module: Any, n: int) -> Iterator[None]:
    """Within the block, ``bench_sweep._sweeps`` returns ``n`` (the one-sweep calls)."""
    saved = module._sweeps
    module._sweeps = lambda shape: n
    try:
        yield
    finally:
        module._sweeps = saved


def bench_masked(repeats: int, seeds: int) -> list[dict[str, Any]]:
    import numpy as np
    import tensorly as tl
    import torch
    from tensorly.cp_tensor import CPTensor as TLCP
    from tensorly.decomposition import parafac

    from factorch.completion import split_mask
    from factorch.datasets import load
    from factorch.decomp import cp
    from factorch.tensors import CPTensor

    tl.set_backend("numpy")
    ds = load("il2_response")
    x = ds.tensor.to(torch.float64)
    observed = ds.mask if ds.mask is not None else torch.ones_like(x, dtype=torch.bool)
    filled = torch.where(observed, x, torch.zeros((), dtype=x.dtype))
    rows = []
    for rank in (3, 4):
        for seed in range(seeds):
            gen = torch.Generator().manual_seed(seed)
            fit_mask, test_mask = split_mask(observed, (0.9, 0.1), generator=gen)
            init = [torch.rand(s, rank, generator=gen, dtype=torch.float64) for s in x.shape]
            ones = torch.ones(rank, dtype=torch.float64)
            fc_init = CPTensor(ones, tuple(init))
            xn = torch.where(fit_mask, x, torch.zeros((), dtype=x.dtype)).numpy()
            mn = fit_mask.double().numpy()
            tl_init = TLCP((ones.numpy(), [f.numpy().copy() for f in init]))

            def fc(fit_mask=fit_mask, fc_init=fc_init, rank=rank) -> object:
                return cp(x, rank, init=fc_init, mask=fit_mask, max_iter=2000, tol=1e-8)

            def tly(xn=xn, mn=mn, tl_init=tl_init, rank=rank) -> object:
                return parafac(
                    xn, rank, init=tl_init, mask=mn, n_iter_max=2000, tol=1e-8,
                    return_errors=True,
                )  # fmt: skip

            calls = {
                "factorch": fc,
                "factorch-reference": _forced("reference", fc),
                "tensorly": tly,
            }
            times = _common.time_calls(calls, repeats=repeats)
            row: dict[str, Any] = {"rank": rank, "seed": seed}
            row["time_ms"] = {k: v["median_s"] * 1e3 for k, v in times.items()}
            row["cpu_time_ms"] = {k: v["cpu_median_s"] * 1e3 for k, v in times.items()}
            for name in calls:
                out = calls[name]()
                if name == "tensorly":
                    model, errs = out  # type: ignore[misc]
                    dense = torch.from_numpy(tl.cp_to_tensor(model))
                    sweeps = len(errs)
                else:
                    dense = out.model.to_dense()  # type: ignore[attr-defined]
                    sweeps = out.iterations  # type: ignore[attr-defined]
                resid = (dense - filled)[test_mask]
                row.setdefault("test_rmse", {})[name] = float(resid.pow(2).mean().sqrt())
                fit_res = torch.where(fit_mask, dense - filled, 0.0)
                fit_err = float(fit_res.norm() / filled[fit_mask].norm())
                row.setdefault("fit_error", {})[name] = fit_err
                row.setdefault("sweeps", {})[name] = sweeps
            rows.append(row)
            print(
                f"masked IL-2 r{rank} seed {seed}: "
                + ", ".join(
                    f"{k} {row['time_ms'][k]:.1f} ms ({row['sweeps'][k]} sweeps, test RMSE "
                    f"{row['test_rmse'][k]:.5f}, fit error {row['fit_error'][k]:.6f})"
                    for k in calls
                ),
                flush=True,
            )
    del np
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over seeds of the masked rows, per rank."""
    out: dict[str, Any] = {}
    for rank in sorted({r["rank"] for r in rows}):
        sel = [r for r in rows if r["rank"] == rank]
        out[str(rank)] = {
            key: {k: statistics.median(r[key][k] for r in sel) for k in sel[0][key]}
            for key in ("time_ms", "cpu_time_ms", "test_rmse", "fit_error", "sweeps")
        }
    return out


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(1)
    threads = _common.apply_threads(1)
    parts = [p for p in args.parts.split(",") if p]
    payload: dict[str, Any] = {"command": sys.argv, "threads": threads}
    payload["machine"] = _common.machine_info()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "sweep" in parts:
            payload["sweep"] = bench_sweep(args.repeats)
        if "fixed" in parts:
            payload["fixed"] = bench_fixed(args.repeats)
        if "dispatches" in parts:
            payload["dispatches"] = bench_dispatches()
        if "others" in parts:
            payload["others"] = bench_others(args.repeats)
        if "masked" in parts:
            rows = bench_masked(max(3, args.repeats // 3), args.seeds)
            payload["masked"] = rows
            payload["masked_median"] = summary(rows)
            print(payload["masked_median"])
    path = _common.write_results("bench_small", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
