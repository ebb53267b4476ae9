"""Sparse MTTKRP kernels and the first sparse CP-ALS iteration (issue 14, item 3).

Random 10000^3 tensor with 5 M nonzeros (``--nnz``), rank 16, float32, one intra-op thread.

1. ``sparse_mttkrp`` per mode: the eager kernel (layout sorted by every mode, as before) and the
   opt-in ``implementation="compiled"`` kernel (inductor; without a layout: the entries in their
   stored order), timed round-robin in one process (median process CPU time, which a busy shared
   machine inflates least; wall medians in the JSON), in nonzeros per second; agreement of both
   with a float64 reference.
2. Layout build per mode: the previous build (int32 stable sort, advanced-indexing gathers,
   reproduced here) against ``SparseLayout.build`` (int16 key, ``index_select``).
3. First compiled call: in this process (cold or warm inductor cache, whichever it finds) and in
   a fresh subprocess after it (the on-disk cache warm: what a later run pays).
4. ``completion.sparse_cp``: first iteration (layout build + first sweep) and the median of the
   following ones (process CPU time; wall in the JSON), eager and compiled (compiled after its
   kernel is loaded in this process).

5. ``--first-iteration`` (alone, ~3 min): the eager path's first-iteration cost. In one process,
   alternating, each run on a freshly generated tensor: ``completion.sparse_cp`` (6 sweeps,
   eager) with the previous layout build and value check (reproduced here: int16 key, int64
   permutation, bincount row pointers, an elementwise finiteness test) against the current ones
   (int32 permutation, binary-search row pointers, a one-sum finiteness test): first iteration
   over the median steady one, median of ``--repeats`` runs (at least 5). Also the layout build
   per mode and the float64 error recomputation (the previous whole-array gather, reproduced,
   against the chunked one; same value), and the eager MTTKRP per mode in nonzeros per second.

Run:

    python benchmarks/bench_sparse.py [--nnz 5000000] [--repeats 7] [--big-output]
    python benchmarks/bench_sparse.py --first-iteration [--repeats 7]

Writes ``benchmarks/results/bench_sparse.json`` and prints the tables. ``--big-output`` runs
only a 10000 x 10^6 x 10000 tensor's mode 1 (a 64 MB output: the compiled kernel on the stored
order against the mode-sorted layout, which ``SORT_ABOVE`` picks) into
``bench_sparse_big_output.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    apply_threads,
    format_table,
    machine_info,
    pin_threads,
    run_json_subprocess,
    time_calls,
    write_results,
)

SHAPE = (10000, 10000, 10000)
RANK = 16


def _tensor(torch, nnz: int):
    from factorch.tensors import SparseTensor

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, SHAPE[0], (3, nnz), generator=g)
    vals = torch.randn(nnz, generator=g)
    return SparseTensor.from_coo(idx, vals, SHAPE, duplicates="sum")


def _factors(torch):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(s, RANK, generator=g) for s in SHAPE]


def _old_build(torch, sp, mode: int):
    """The previous ModeLayout.build: int32 stable sort, advanced-indexing gathers."""
    col = sp.indices[mode]
    perm = torch.sort(col, stable=True).indices
    rows = col[perm]
    others = [sp.indices[m][perm] for m in range(3) if m != mode]
    values = sp.values[perm]
    counts = torch.bincount(rows.long(), minlength=SHAPE[mode])
    return rows, others, values, torch.cumsum(counts, 0)


def bench_kernels(torch, sp, repeats: int) -> dict:
    from factorch.algebra import SparseLayout, sparse_mttkrp

    factors = _factors(torch)
    layout = SparseLayout.build(sp)
    idx = sp.indices.long()
    hi = [f.double() for f in factors]
    calls, errors = {}, {}
    for mode in range(3):
        others = [m for m in range(3) if m != mode]
        prod = sp.values.double()[:, None] * hi[others[0]][idx[others[0]]]
        prod *= hi[others[1]][idx[others[1]]]
        ref = torch.zeros(SHAPE[mode], RANK, dtype=torch.float64).index_add_(0, idx[mode], prod)
        del prod

        def eager(mode=mode):
            return sparse_mttkrp(sp, factors, mode, layout=layout)

        def compiled(mode=mode):
            return sparse_mttkrp(sp, factors, mode, implementation="compiled")

        for name, fn in ((f"eager mode {mode}", eager), (f"compiled mode {mode}", compiled)):
            out = fn()
            errors[name] = float((out.double() - ref).abs().max() / ref.abs().max())
            calls[name] = fn
    timings = time_calls(calls, repeats=repeats)
    return {
        "timings": timings,
        "m_nnz_per_s": {k: sp.nnz / v["cpu_median_s"] / 1e6 for k, v in timings.items()},
        "max_rel_err_vs_float64": errors,
    }


def bench_build(torch, sp, repeats: int) -> dict:
    from factorch.algebra import SparseLayout

    calls = {}
    for mode in (1, 2):
        calls[f"previous build mode {mode}"] = lambda mode=mode: _old_build(torch, sp, mode)
        calls[f"SparseLayout.build mode {mode}"] = lambda mode=mode: SparseLayout.build(
            sp, modes=(mode,)
        )
    return time_calls(calls, repeats=repeats)


def first_call_worker(nnz: int) -> dict:
    import torch

    apply_threads(1)
    from factorch.algebra import sparse_mttkrp

    sp = _tensor(torch, nnz)
    factors = _factors(torch)
    start = time.perf_counter()
    sparse_mttkrp(sp, factors, 0, implementation="compiled")
    first = time.perf_counter() - start
    start = time.perf_counter()
    sparse_mttkrp(sp, factors, 0, implementation="compiled")
    return {"first_call_s": first, "second_call_s": time.perf_counter() - start}


def bench_cp(torch, sp, implementation: str, iters: int) -> dict:
    from factorch.completion import sparse_cp
    from factorch.tensors import CPTensor

    g = torch.Generator().manual_seed(2)
    init = CPTensor.from_factors([torch.rand(s, RANK, generator=g) for s in SHAPE])
    stamps: list[tuple[float, float]] = []
    start = (time.perf_counter(), time.process_time())
    res = sparse_cp(
        sp,
        RANK,
        init=init,
        max_iter=iters,
        tol=0.0,
        implementation=implementation,
        callback=lambda s: stamps.append((time.perf_counter(), time.process_time())),
    )
    out: dict = {"fit": res.fit, "errors": list(res.errors)}
    for clock, name in ((1, "cpu"), (0, "wall")):
        ticks = [start[clock], *(s[clock] for s in stamps)]
        per_iter = [b - a for a, b in itertools.pairwise(ticks)]
        steady = statistics.median(per_iter[1:])
        out[name] = {
            "first_iteration_s": per_iter[0],
            "steady_iteration_s": steady,
            "first_over_steady": per_iter[0] / steady,
        }
    return out


def _previous_mode_build(torch):
    """The ModeLayout.build before the int32 permutation (int16 key, int64 permutation, full
    sortedness test, bincount row pointers), as a drop-in classmethod."""
    from factorch.algebra._sparse_layout import _INT16_LIMIT

    def build(cls, indices, values, size, mode):
        col = indices[mode]
        other_modes = [m for m in range(indices.shape[0]) if m != mode]
        nnz = col.shape[0]
        if nnz < 2 or bool((col[1:] >= col[:-1]).all()):
            perm, rows, others = None, col, tuple(indices[m] for m in other_modes)
        else:
            key = col.to(torch.int16) if size <= _INT16_LIMIT else col
            sorted_key, perm = torch.sort(key, stable=True)
            rows = sorted_key.to(col.dtype)
            others = tuple(indices[m].index_select(0, perm) for m in other_modes)
            values = values.index_select(0, perm)
        counts = torch.bincount(rows, minlength=size)
        offsets = torch.zeros(size + 1, dtype=torch.int64, device=indices.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        return cls(mode, perm, rows, offsets, others, values)

    return classmethod(build)


def _previous_check_values(torch, current):
    """The SparseTensor value check with the previous elementwise finiteness test (added to the
    current check, whose one-sum test, ~2 ms on 5 M values, it then also pays)."""

    def check(values, fn):
        checked = current(values, fn)
        if checked.numel():
            bool(torch.isfinite(checked).all())
        return checked

    return check


def _previous_error64(torch, train, model, scale: float) -> float:
    """The float64 error recomputation before chunking: every factor gathered for every entry."""
    import math

    wide = model.to(dtype=torch.float64)
    weights = wide.weights / scale
    x = train.values.double()
    idx = train.indices.long()
    norm_x = float(torch.linalg.vector_norm(x))
    rows = weights.expand(train.nnz, -1).clone()
    for n, f in enumerate(wide.factors):
        rows *= f[idx[n]]
    m = rows.sum(1)
    gram = torch.ones(model.rank, model.rank, dtype=torch.float64)
    for f in wide.factors:
        gram *= f.mT @ f
    unlisted = max(float(weights @ gram @ weights) - float(torch.dot(m, m)), 0.0)
    return math.sqrt(float(torch.sum((m - x) ** 2)) + unlisted) / norm_x


def bench_first_iteration(torch, nnz: int, repeats: int) -> dict:
    """Eager sparse_cp first vs steady iteration, previous vs current layout build (module
    docstring, item 5), plus the build per mode, the error recomputation and the eager kernel."""
    import factorch.tensors._sparse as sparse_module
    from factorch.algebra import SparseLayout, sparse_mttkrp
    from factorch.algebra._sparse_layout import ModeLayout
    from factorch.completion import _sparse_cp

    current_build = ModeLayout.__dict__["build"]
    current_check = sparse_module._check_values
    variants = {
        "previous": (_previous_mode_build(torch), _previous_check_values(torch, current_check)),
        "current": (current_build, current_check),
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    seeds = itertools.count()
    try:
        for _ in range(max(5, repeats)):
            for name, (build, check) in variants.items():
                ModeLayout.build = build
                sparse_module._check_values = check
                g = torch.Generator().manual_seed(next(seeds))
                idx = torch.randint(0, SHAPE[0], (3, nnz), generator=g)
                sp = sparse_module.SparseTensor.from_coo(
                    idx, torch.randn(nnz, generator=g), SHAPE, duplicates="sum"
                )
                del idx
                runs[name].append(bench_cp(torch, sp, "eager", 6))
                del sp
    finally:
        ModeLayout.build = current_build
        sparse_module._check_values = current_check
    cp = {}
    for name, rs in runs.items():
        cp[name] = {
            clock: {
                key: statistics.median(r[clock][key] for r in rs)
                for key in ("first_iteration_s", "steady_iteration_s", "first_over_steady")
            }
            for clock in ("cpu", "wall")
        }
        cp[name]["runs"] = len(rs)
        cp[name]["cpu_first_over_steady_per_run"] = [r["cpu"]["first_over_steady"] for r in rs]
    out: dict = {"sparse_cp": cp}

    sp = _tensor(torch, nnz)
    previous_build = variants["previous"][0]

    def build_previous(mode: int) -> None:
        ModeLayout.build = previous_build
        try:
            SparseLayout.build(sp, modes=(mode,))
        finally:
            ModeLayout.build = current_build

    calls = {}
    for mode in (1, 2):
        calls[f"previous build mode {mode}"] = lambda mode=mode: build_previous(mode)
        calls[f"current build mode {mode}"] = lambda mode=mode: SparseLayout.build(
            sp, modes=(mode,)
        )
    out["build"] = time_calls(calls, repeats=max(5, repeats))

    from factorch.tensors import CPTensor

    g = torch.Generator().manual_seed(4)
    model = CPTensor(
        torch.rand(RANK, generator=g), tuple(torch.randn(s, RANK, generator=g) for s in SHAPE)
    )
    values = {
        "previous": _previous_error64(torch, sp, model, 1.0),
        "current": _sparse_cp._relative_error64(sp, model, 1.0),
    }
    out["error64"] = {
        "timings": time_calls(
            {
                "previous": lambda: _previous_error64(torch, sp, model, 1.0),
                "current": lambda: _sparse_cp._relative_error64(sp, model, 1.0),
            },
            repeats=5,
        ),
        "values": values,
    }

    factors = _factors(torch)
    layout = SparseLayout.build(sp)
    kernel = time_calls(
        {
            f"eager mode {mode}": lambda mode=mode: sparse_mttkrp(sp, factors, mode, layout=layout)
            for mode in range(3)
        },
        repeats=max(5, repeats),
    )
    out["eager_mttkrp"] = {
        "timings": kernel,
        "m_nnz_per_s": {k: sp.nnz / v["cpu_median_s"] / 1e6 for k, v in kernel.items()},
    }
    return out


def print_first_iteration(res: dict) -> None:
    print(
        format_table(
            [
                "eager sparse_cp",
                "first CPU s",
                "steady CPU s",
                "first / steady",
                "range over runs",
                "wall ratio",
            ],
            [
                [
                    name,
                    f"{v['cpu']['first_iteration_s']:.3f}",
                    f"{v['cpu']['steady_iteration_s']:.3f}",
                    f"{v['cpu']['first_over_steady']:.2f}",
                    f"{min(v['cpu_first_over_steady_per_run']):.2f}-"
                    f"{max(v['cpu_first_over_steady_per_run']):.2f}",
                    f"{v['wall']['first_over_steady']:.2f}",
                ]
                for name, v in res["sparse_cp"].items()
            ],
        )
    )
    print(
        format_table(
            ["layout build", "CPU ms"],
            [[n, f"{v['cpu_median_s'] * 1e3:.0f}"] for n, v in res["build"].items()],
        )
    )
    e = res["error64"]
    print(
        format_table(
            ["float64 error", "CPU s", "value"],
            [
                [n, f"{v['cpu_median_s']:.3f}", f"{e['values'][n]:.15g}"]
                for n, v in e["timings"].items()
            ],
        )
    )
    k = res["eager_mttkrp"]
    print(
        format_table(
            ["eager MTTKRP", "CPU ms", "M nnz/s"],
            [
                [n, f"{v['cpu_median_s'] * 1e3:.1f}", f"{k['m_nnz_per_s'][n]:.0f}"]
                for n, v in k["timings"].items()
            ],
        )
    )


def bench_big_output(torch, nnz: int, repeats: int) -> dict:
    """Output of 10^6 x 16 (64 MB, far above L2): the compiled kernel on the stored order against
    the mode-sorted layout (what ``SORT_ABOVE`` chooses), and the eager kernel."""
    from factorch.algebra import SparseLayout, sparse_mttkrp
    from factorch.tensors import SparseTensor

    shape = (10000, 1_000_000, 10000)
    g = torch.Generator().manual_seed(3)
    idx = torch.stack([torch.randint(0, s, (nnz,), generator=g) for s in shape])
    sp = SparseTensor.from_coo(idx, torch.randn(nnz, generator=g), shape, duplicates="sum")
    factors = [torch.randn(s, RANK, generator=g) for s in shape]
    unsorted, layout = SparseLayout.build(sp, modes=[]), SparseLayout.build(sp)
    calls = {
        "compiled, stored order": lambda: sparse_mttkrp(
            sp, factors, 1, layout=unsorted, implementation="compiled"
        ),
        "compiled, mode-sorted layout": lambda: sparse_mttkrp(
            sp, factors, 1, layout=layout, implementation="compiled"
        ),
        "eager, mode-sorted layout": lambda: sparse_mttkrp(sp, factors, 1, layout=layout),
    }
    return time_calls(calls, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nnz", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--big-output",
        action="store_true",
        help="only the 10^6-row output case (bench_sparse_big_output.json)",
    )
    parser.add_argument(
        "--first-iteration",
        action="store_true",
        help="only the eager first-iteration study (bench_sparse_first_iteration.json)",
    )
    parser.add_argument("--worker", choices=["first-call"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin_threads(1)
    if args.worker == "first-call":
        print(json.dumps(first_call_worker(args.nnz)))
        return
    import torch

    threads = apply_threads(1)
    results: dict = {"machine": machine_info(), "threads": threads, "nnz_requested": args.nnz}
    if args.first_iteration:
        print(f"eager first iteration, {SHAPE}, nnz {args.nnz}, rank {RANK}, 1 thread", flush=True)
        first = bench_first_iteration(torch, args.nnz, args.repeats)
        results["command"] = (
            "python benchmarks/bench_sparse.py --first-iteration"
            f" --nnz {args.nnz} --repeats {args.repeats}"
        )
        results["first_iteration"] = first
        print_first_iteration(first)
        print(f"wrote {write_results('bench_sparse_first_iteration', results)}")
        return
    if args.big_output:
        big = bench_big_output(torch, args.nnz, args.repeats)
        results["big_output"] = big
        print(
            format_table(
                ["10^6-row output", "CPU ms"],
                [[k, f"{v['cpu_median_s'] * 1e3:.1f}"] for k, v in big.items()],
            )
        )
        print(f"wrote {write_results('bench_sparse_big_output', results)}")
        return
    sp = _tensor(torch, args.nnz)
    results["nnz"] = sp.nnz
    factors = _factors(torch)

    from factorch.algebra import sparse_mttkrp

    start = time.perf_counter()
    sparse_mttkrp(sp, factors, 0, implementation="compiled")
    results["first_compiled_call_in_process_s"] = time.perf_counter() - start
    print(f"first compiled call here: {results['first_compiled_call_in_process_s']:.1f} s")

    print(f"1. sparse MTTKRP {SHAPE}, nnz {sp.nnz}, rank {RANK}, float32, 1 thread", flush=True)
    k = bench_kernels(torch, sp, args.repeats)
    results["mttkrp"] = k
    rows = []
    for mode in range(3):
        e, c = f"eager mode {mode}", f"compiled mode {mode}"
        te, tc = k["timings"][e]["cpu_median_s"], k["timings"][c]["cpu_median_s"]
        rows.append(
            [
                mode,
                f"{te * 1e3:.1f}",
                f"{k['m_nnz_per_s'][e]:.0f}",
                f"{tc * 1e3:.1f}",
                f"{k['m_nnz_per_s'][c]:.0f}",
                f"{te / tc:.2f}",
                f"{k['max_rel_err_vs_float64'][c]:.1e}",
            ]
        )
    print(
        format_table(
            ["mode", "eager ms", "eager M/s", "compiled ms", "compiled M/s", "ratio", "err"], rows
        )
    )

    print("2. layout build per mode", flush=True)
    b = bench_build(torch, sp, max(3, args.repeats // 2))
    results["build"] = b
    print(
        format_table(
            ["build", "CPU ms"], [[n, f"{v['cpu_median_s'] * 1e3:.0f}"] for n, v in b.items()]
        )
    )

    print("3. first compiled call in a fresh process (on-disk cache warm)", flush=True)
    try:
        results["fresh_process"] = run_json_subprocess(
            [__file__, "--worker", "first-call", "--nnz", str(args.nnz)], timeout=900
        )
    except Exception as exc:  # report, do not fail the run
        results["fresh_process"] = {"error": str(exc)[-500:]}
    print(f"   {results['fresh_process']}")

    print("4. sparse_cp, first vs steady iteration", flush=True)
    cp = {impl: bench_cp(torch, sp, impl, 6) for impl in ("eager", "compiled")}
    results["sparse_cp"] = cp
    print(
        format_table(
            ["implementation", "first CPU s", "steady CPU s", "first / steady", "wall ratio"],
            [
                [
                    impl,
                    f"{v['cpu']['first_iteration_s']:.3f}",
                    f"{v['cpu']['steady_iteration_s']:.3f}",
                    f"{v['cpu']['first_over_steady']:.2f}",
                    f"{v['wall']['first_over_steady']:.2f}",
                ]
                for impl, v in cp.items()
            ],
        )
    )
    path = write_results("bench_sparse", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
