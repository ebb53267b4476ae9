"""Sparse tensors and completion: sparse MTTKRP, sparse CP-ALS against pyttb and TensorLy, and
completion RMSE on real data against TensorLy's masked CP.

1. Sparse MTTKRP, random 10000^3 tensor with 5 M nonzeros (``--quick``: 1 M), rank 16, float32,
   mode 0 (sorted) and mode 2 (through the layout's permutation): factorch ``sparse_mttkrp``
   against the textbook ``M.index_add_(0, i, x[:, None] * B[j] * C[k])`` and a chunked 1-D
   ``index_add_`` on the flattened output (the best eager variant of the notes). Median process
   CPU time of timed calls (one intra-op thread; CPU time is what a busy shared machine inflates
   least), converted to nonzeros per second. ``--compile`` adds ``torch.compile`` of the
   one-liner (minutes of compilation).
2. Sparse CP-ALS per iteration on the same tensor, rank 16, all from the same random start:
   factorch ``completion.sparse_cp`` (first iteration, which sorts and caches the per-mode
   orders, and the median of the following ones) against pyttb 1.8.6 ``cp_als`` on an
   ``sptensor`` (2 iterations, run in a subprocess with a time cap) and TensorLy's sparse
   ``parafac`` (``tensorly.contrib.sparse``, which needs the ``sparse`` package).
3. Completion RMSE on real tensors bundled with factorch (the same files TensorLy ships):
   IL-2 (13 x 4 x 12 x 8, 192 real missing values; 10 % of the observed cells held out as a test
   set, 5 seeds) and the COVID-19 serology tensor (438 x 6 x 11, no missing values; 10 % and
   50 % held out). factorch methods choose ``l2`` in {0, 1e-3, ..., 100} and the number of epochs
   on a validation set (10 % of the non-test cells), then refit on all non-test cells;
   TensorLy ``parafac(mask=)`` (EM imputation) and ``non_negative_parafac(mask=)`` (IL-2 only:
   the serology data are z-scored) fit all non-test cells from an SVD and from a random start
   (both reported), ``n_iter_max=1000``, ``tol=1e-9``. factorch also chooses its start
   (``"svd"`` or ``"random"``) on the validation set. The rows marked "defaults" fit all
   non-test cells with every option at its default (no tuning: the default ``l2``, start and
   number of sweeps). Equal ranks (Tucker: multilinear rank
   ``(r, ..., r)`` capped by the mode sizes, TT: inner ranks ``r``). Test RMSE, mean and
   standard deviation over seeds.

Run:

    python benchmarks/bench_completion.py [--quick] [--compile] [--skip-pyttb]

Writes ``benchmarks/results/bench_completion.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
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
    write_results,
)

SHAPE = (10000, 10000, 10000)
RANK = 16


def _coo(torch, nnz: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, SHAPE[0], (3, nnz), generator=g)
    vals = torch.randn(nnz, generator=g)
    return idx, vals


def _sparse(torch, nnz: int):
    from factorch.tensors import SparseTensor

    idx, vals = _coo(torch, nnz)
    start = time.perf_counter()
    sp = SparseTensor.from_coo(idx, vals, SHAPE, duplicates="sum")
    return sp, time.perf_counter() - start


def _cpu_median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- 1. MTTKRP


def bench_mttkrp(torch, nnz: int, repeats: int, use_compile: bool) -> dict:
    from factorch.algebra import SparseLayout, sparse_mttkrp

    sp, build_s = _sparse(torch, nnz)
    g = torch.Generator().manual_seed(1)
    factors = [torch.randn(s, RANK, generator=g) for s in SHAPE]
    i, j, k = (sp.indices[m].long() for m in range(3))
    v = sp.values

    def naive():
        out = torch.zeros(SHAPE[0], RANK)
        return out.index_add_(0, i, v[:, None] * factors[1][j] * factors[2][k])

    ar = torch.arange(RANK)

    def flat_1d(chunk=1 << 15):
        out = torch.zeros(SHAPE[0] * RANK)
        for s in range(0, sp.nnz, chunk):
            e = min(sp.nnz, s + chunk)
            t = factors[1][j[s:e]] * factors[2][k[s:e]] * v[s:e, None]
            out.index_add_(0, (i[s:e, None] * RANK + ar).reshape(-1), t.reshape(-1))
        return out.view(SHAPE[0], RANK)

    ref = naive()
    first = {}
    for mode in (0, 2):
        start = time.perf_counter()
        out = sparse_mttkrp(sp, factors, mode)  # builds (sorts) the layout of this mode
        first[mode] = time.perf_counter() - start
    layout = SparseLayout.build(sp, modes=(0, 2))  # what a solver builds once and reuses
    err = float((sparse_mttkrp(sp, factors, 0) - ref).abs().max() / ref.abs().max())
    rows = {}
    rows["naive 2-D index_add_ (mode 0)"] = _cpu_median(naive, max(1, repeats // 2))
    rows["chunked 1-D index_add_ (mode 0)"] = _cpu_median(flat_1d, repeats)
    rows["factorch sparse_mttkrp (mode 0)"] = _cpu_median(
        lambda: sparse_mttkrp(sp, factors, 0, layout=layout), repeats
    )
    rows["factorch sparse_mttkrp (mode 2)"] = _cpu_median(
        lambda: sparse_mttkrp(sp, factors, 2, layout=layout), repeats
    )
    compile_info = None
    if use_compile:

        def one_liner(out, i, j, k, v, b, c):
            return out.index_add_(0, i, v[:, None] * b[j] * c[k])

        compiled = torch.compile(one_liner, dynamic=False)
        chunk = 1 << 20

        def run_compiled():
            out = torch.zeros(SHAPE[0], RANK)
            for s in range(0, sp.nnz, chunk):
                e = min(sp.nnz, s + chunk)
                if e - s == chunk:
                    compiled(out, i[s:e], j[s:e], k[s:e], v[s:e], factors[1], factors[2])
                else:
                    one_liner(out, i[s:e], j[s:e], k[s:e], v[s:e], factors[1], factors[2])
            return out

        start = time.perf_counter()
        run_compiled()
        compile_info = {"first_call_s": time.perf_counter() - start}
        rows["torch.compile one-liner (mode 0)"] = _cpu_median(run_compiled, repeats)
    del out
    return {
        "nnz": sp.nnz,
        "build_s": build_s,
        "first_call_s": {str(m): t for m, t in first.items()},
        "max_rel_diff_vs_naive": err,
        "cpu_s": rows,
        "m_nnz_per_s": {name: sp.nnz / t / 1e6 for name, t in rows.items()},
        "compile": compile_info,
    }


def mttkrp_threads_worker(nnz: int, threads: int) -> dict:
    import torch

    apply_threads(threads)
    from factorch.algebra import sparse_mttkrp

    sp, _ = _sparse(torch, nnz)
    g = torch.Generator().manual_seed(1)
    factors = [torch.randn(s, RANK, generator=g) for s in SHAPE]
    sparse_mttkrp(sp, factors, 0)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        sparse_mttkrp(sp, factors, 0)
        times.append(time.perf_counter() - start)
    wall = statistics.median(times)
    return {"threads": threads, "wall_s": wall, "m_nnz_per_s": sp.nnz / wall / 1e6}


# --------------------------------------------------------------------------- 2. sparse CP-ALS


def _start(torch):
    g = torch.Generator().manual_seed(2)
    return [torch.rand(s, RANK, generator=g, dtype=torch.float64) for s in SHAPE]


def bench_sparse_cp(torch, nnz: int, iters: int) -> dict:
    from factorch.completion import sparse_cp
    from factorch.tensors import CPTensor

    sp, _ = _sparse(torch, nnz)
    init = CPTensor.from_factors([f.float() for f in _start(torch)])
    stamps = []
    start = time.perf_counter()
    res = sparse_cp(
        sp,
        RANK,
        init=init,
        max_iter=iters,
        tol=0.0,
        callback=lambda s: stamps.append(time.perf_counter()),
    )
    per_iter = [b - a for a, b in zip([start, *stamps[:-1]], stamps)]
    return {
        "nnz": sp.nnz,
        "first_iteration_s": per_iter[0],
        "steady_iteration_s": statistics.median(per_iter[1:]) if len(per_iter) > 1 else None,
        "iterations": res.iterations,
        "fit": res.fit,
    }


def pyttb_worker(nnz: int, iters: int) -> dict:
    import numpy as np
    import pyttb
    import torch

    idx, vals = _coo(torch, nnz)
    subs = idx.mT.numpy().astype(np.int64)
    start = time.perf_counter()
    x = pyttb.sptensor(subs, vals.double().numpy()[:, None], SHAPE)  # duplicates are summed
    build = time.perf_counter() - start
    k0 = pyttb.ktensor([f.numpy() for f in _start(torch)], np.ones(RANK))
    start = time.perf_counter()
    _, _, info = pyttb.cp_als(x, RANK, init=k0, maxiters=iters, stoptol=0, printitn=0)
    total = time.perf_counter() - start
    return {
        "nnz": int(x.nnz),
        "build_s": build,
        "iterations": iters,
        "per_iteration_s": total / iters,
        "fit": float(info["fit"]),
    }


def tensorly_sparse_status() -> dict:
    try:
        import sparse  # noqa: F401
    except ImportError:
        return {
            "ran": False,
            "reason": "tensorly.contrib.sparse needs the 'sparse' package, which is not "
            "installed in the benchmark environment",
        }
    return {"ran": False, "reason": "not run (add a runner once 'sparse' is installed)"}


# --------------------------------------------------------------------------- 3. real data


L2_GRID = (0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def _default_fits():
    """name -> fit(rest, rank, generator) with every option at the library default (what a user
    who passes only the data and the rank gets: the default ``l2``, start and ``max_iter``)."""
    from factorch import completion as C

    return {
        "cp_als": lambda x, r, g: C.cp_als(x, r, generator=g),
        "cp_wopt": lambda x, r, g: C.cp_wopt(x, r, generator=g),
        "tucker_als": lambda x, r, g: C.tucker_als(
            x, tuple(min(r, s) for s in x.shape), generator=g
        ),
        "tt_als": lambda x, r, g: C.tt_als(x, r, generator=g),
    }


def _factorch_methods(quick: bool):
    """name -> (fit(train, val, rank, l2, init, epochs, generator), max epochs, inits);
    ``val=None`` refits."""
    from factorch import completion as C

    def als(train, val, rank, l2, init, epochs, gen):
        return C.cp_als(
            train, rank, validation=val, l2=l2, init=init, max_iter=epochs, generator=gen
        )

    def wopt(train, val, rank, l2, init, epochs, gen):
        return C.cp_wopt(
            train, rank, validation=val, l2=l2, init=init, max_iter=epochs, generator=gen
        )

    def tucker(train, val, rank, l2, init, epochs, gen):
        ranks = tuple(min(rank, s) for s in train.shape)
        return C.tucker_als(
            train, ranks, validation=val, l2=l2, init=init, max_iter=epochs, generator=gen
        )

    def tt(train, val, rank, l2, init, epochs, gen):
        return C.tt_als(
            train, rank, validation=val, l2=l2, init=init, max_iter=epochs, generator=gen
        )

    def costco(train, val, rank, l2, init, epochs, gen):
        model = C.CoSTCo(train.shape, rank=8, channels=32, generator=gen, dtype=train.dtype)
        return C.fit_neural(
            model,
            train,
            validation=val,
            epochs=epochs,
            batch_size=128,
            lr=3e-3,
            weight_decay=l2,
            patience=15,
            generator=gen,
        )

    inits = ("svd", "random")
    methods = {
        "cp_als": (als, 1000, inits, L2_GRID),
        "cp_wopt": (wopt, 200, inits, L2_GRID),
        "tucker_als": (tucker, 300, inits, L2_GRID),
        "tt_als": (tt, 300, inits, L2_GRID),
    }
    if not quick:
        methods["costco"] = (costco, 100, (None,), (0.0,))
    return methods


def _select_and_test(method, max_epochs, inits, train, val, rest, test, rank, seed, grid):
    """Choose ``l2``, the start and the number of epochs on the validation cells, refit on all
    the non-test cells (``rest`` = train + validation) with them, and score the test cells."""
    import torch

    from factorch.completion import evaluate

    best = None
    for l2 in grid:
        for init in inits:
            gen = torch.Generator().manual_seed(seed)
            res = method(train, val, rank, l2, init, max_epochs, gen)
            if best is None or res.best_val_rmse < best[0]:
                best = (res.best_val_rmse, l2, init, res.best_epoch)
    _, l2, init, epochs = best
    final = method(rest, None, rank, l2, init, epochs, torch.Generator().manual_seed(seed))
    return evaluate(final.model, test)["rmse"], (l2, init)


def _tensorly_rmse(x, train_mask, test_mask, rank, nonneg: bool, init: str, seed: int) -> float:
    import numpy as np
    import tensorly as tl
    from tensorly.decomposition import non_negative_parafac, parafac

    tl.set_backend("numpy")
    data = np.where(train_mask, x, 0.0)
    kw = {
        "mask": train_mask,
        "n_iter_max": 1000,
        "tol": 1e-9,
        "init": init,
        "random_state": seed,
    }
    cp = non_negative_parafac(data, rank, **kw) if nonneg else parafac(data, rank, **kw)
    pred = tl.cp_to_tensor(cp)
    return float(np.sqrt(np.mean((pred[test_mask] - x[test_mask]) ** 2)))


def bench_real(quick: bool, on_setting=None) -> dict:
    import numpy as np
    import torch

    from factorch.completion import evaluate, split_mask
    from factorch.datasets import load
    from factorch.tensors import SparseTensor

    # (dataset, held-out fraction, ranks, seeds, neural models too)
    settings = [
        ("il2_response", 0.1, (2, 3, 5), 5, True),
        ("covid19_serology", 0.1, (3,), 3, False),
        ("covid19_serology", 0.5, (3,), 3, False),
    ]
    if quick:
        settings = [
            ("il2_response", 0.1, (3,), 2, False),
            ("covid19_serology", 0.5, (3,), 2, False),
        ]
    out = []
    for name, held, ranks, n_seeds, neural in settings:
        methods = _factorch_methods(not neural)
        seeds = range(n_seeds)
        ds = load(name)
        x = ds.tensor
        observed = ds.mask if ds.mask is not None else torch.ones_like(x, dtype=torch.bool)
        for rank in ranks:
            scores: dict[str, list[float]] = {}
            chosen: dict[str, list[float]] = {}
            for seed in seeds:
                gen = torch.Generator().manual_seed(seed)
                rest, test_mask = split_mask(observed, (1 - held, held), generator=gen)
                train_mask, val_mask = split_mask(rest, (0.9, 0.1), generator=gen)
                train = SparseTensor.from_dense(x, train_mask)
                val = SparseTensor.from_dense(x, val_mask)
                rest_sp = SparseTensor.from_dense(x, rest)
                test = SparseTensor.from_dense(x, test_mask)
                mean = float(train.values.mean())
                scores.setdefault("mean (baseline)", []).append(
                    float(torch.sqrt(torch.mean((test.values - mean) ** 2)))
                )
                for mname, (method, epochs, inits, grid) in methods.items():
                    rmse, l2 = _select_and_test(
                        method, epochs, inits, train, val, rest_sp, test, rank, seed, grid
                    )
                    scores.setdefault(f"factorch {mname}", []).append(rmse)
                    chosen.setdefault(f"factorch {mname}", []).append(l2)
                for mname, fit in _default_fits().items():
                    res = fit(rest_sp, rank, torch.Generator().manual_seed(seed))
                    scores.setdefault(f"factorch {mname}, defaults", []).append(
                        evaluate(res.model, test)["rmse"]
                    )
                xn, rn, tn = x.numpy(), rest.numpy(), test_mask.numpy()
                xn = np.nan_to_num(xn)
                for init in ("svd", "random"):
                    scores.setdefault(f"tensorly parafac(mask), init={init}", []).append(
                        _tensorly_rmse(xn, rn, tn, rank, False, init, seed)
                    )
                    if name == "il2_response":
                        key = f"tensorly non_negative_parafac(mask), init={init}"
                        scores.setdefault(key, []).append(
                            _tensorly_rmse(xn, rn, tn, rank, True, init, seed)
                        )
            out.append(
                {
                    "dataset": name,
                    "held_out": held,
                    "rank": rank,
                    "seeds": len(seeds),
                    "test_rmse": {
                        k: {"mean": statistics.mean(v), "std": statistics.pstdev(v), "all": v}
                        for k, v in scores.items()
                    },
                    "chosen_l2": chosen,
                }
            )
            print(f"  {name} held={held} rank={rank} done", flush=True)
            if on_setting is not None:
                on_setting({"settings": out})
    return {"settings": out}


# ------------------------------------------------------- 4. the l2 default, before and after

# (label, l2, damping): the old default (absolute ridge 1e-3, no damping), the new one (l2 = 0
# with the data-relative damping 1e-4 of the ALS row solves) and exact least squares.
RIDGE_CONFIGS = (
    ("before: l2=1e-3", 1e-3, 0.0),
    ("after: l2=0, damping=1e-4", 0.0, 1e-4),
    ("l2=0, damping=0", 0.0, 0.0),
)


def bench_defaults(quick: bool) -> dict:
    """Test RMSE of each method with every option at its default except ``l2`` / ``damping``
    (the three :data:`RIDGE_CONFIGS`), on the splits of section 3 (same seeds, fit on all
    non-test cells). ``cp_wopt`` has no damping: its two l2 = 0 rows are the same fit."""

    import torch

    from factorch import completion as C
    from factorch.completion import evaluate, split_mask
    from factorch.datasets import load
    from factorch.tensors import SparseTensor

    def fits(l2: float, damping: float):
        return {
            "cp_als": lambda x, r, g: C.cp_als(x, r, l2=l2, damping=damping, generator=g),
            "cp_wopt": lambda x, r, g: C.cp_wopt(x, r, l2=l2, generator=g),
            "tucker_als": lambda x, r, g: C.tucker_als(
                x, tuple(min(r, s) for s in x.shape), l2=l2, damping=damping, generator=g
            ),
            "tt_als": lambda x, r, g: C.tt_als(x, r, l2=l2, damping=damping, generator=g),
        }

    settings = [
        ("il2_response", 0.1, (2, 3, 5), 5),
        ("covid19_serology", 0.1, (3,), 3),
        ("covid19_serology", 0.5, (3,), 3),
    ]
    if quick:
        settings = [("il2_response", 0.1, (3,), 2), ("covid19_serology", 0.5, (3,), 2)]
    out = []
    for name, held, ranks, n_seeds in settings:
        ds = load(name)
        x = ds.tensor
        observed = ds.mask if ds.mask is not None else torch.ones_like(x, dtype=torch.bool)
        for rank in ranks:
            scores: dict[str, list[float]] = {}
            for seed in range(n_seeds):
                gen = torch.Generator().manual_seed(seed)
                rest, test_mask = split_mask(observed, (1 - held, held), generator=gen)
                rest_sp = SparseTensor.from_dense(x, rest)
                test = SparseTensor.from_dense(x, test_mask)
                for label, l2, damping in RIDGE_CONFIGS:
                    for mname, fit in fits(l2, damping).items():
                        res = fit(rest_sp, rank, torch.Generator().manual_seed(seed))
                        rmse = evaluate(res.model, test)["rmse"]
                        scores.setdefault(f"{mname}, {label}", []).append(rmse)
            out.append(
                {
                    "dataset": name,
                    "held_out": held,
                    "rank": rank,
                    "seeds": n_seeds,
                    "test_rmse": {
                        k: {
                            "mean": statistics.mean(v),
                            "median": statistics.median(v),
                            "std": statistics.pstdev(v),
                            "all": v,
                        }
                        for k, v in scores.items()
                    },
                }
            )
            print(f"  {name} held={held} rank={rank} done", flush=True)
    return {"configs": [list(c) for c in RIDGE_CONFIGS], "settings": out}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller tensor, fewer seeds")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--skip-pyttb", action="store_true")
    parser.add_argument(
        "--sections",
        default="mttkrp,cp,real",
        help="comma-separated subset of mttkrp,cp,real,defaults (defaults: the l2 default, "
        "before and after; not run unless named)",
    )
    parser.add_argument("--worker", choices=["pyttb", "threads"], help=argparse.SUPPRESS)
    parser.add_argument("--nnz", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pin_threads(args.threads)
    if args.worker == "pyttb":
        print(json.dumps(pyttb_worker(args.nnz, args.iters)))
        return
    if args.worker == "threads":
        print(json.dumps(mttkrp_threads_worker(args.nnz, args.threads)))
        return
    import torch

    threads = apply_threads(args.threads)
    nnz = 1_000_000 if args.quick else 5_000_000
    results: dict = {"machine": machine_info(), "threads": threads, "quick": args.quick}

    sections = set(args.sections.split(","))
    name = "bench_completion_quick" if args.quick else "bench_completion"
    if sections != {"mttkrp", "cp", "real"}:
        name += "_" + "_".join(sorted(sections))
    if "mttkrp" in sections:
        _run_mttkrp(torch, args, nnz, results)
    if "cp" in sections:
        _run_cp(torch, args, nnz, results)
    if "real" in sections:
        _run_real(args, results, name)
    if "defaults" in sections:
        _run_defaults(args, results)
    path = write_results(name, results)
    print(f"wrote {path}")


def _run_mttkrp(torch, args, nnz, results) -> None:
    print(f"1. sparse MTTKRP, {SHAPE}, nnz {nnz}, rank {RANK}, float32, 1 thread", flush=True)
    mk = bench_mttkrp(torch, nnz, 3 if args.quick else 5, args.compile)
    try:
        mk["two_threads"] = run_json_subprocess(
            [__file__, "--worker", "threads", "--nnz", str(nnz), "--threads", "2"], timeout=600
        )
    except Exception as exc:  # report, do not fail the run
        mk["two_threads"] = {"error": str(exc)[-500:]}
    results["mttkrp"] = mk
    rows = [
        [name, f"{t * 1e3:.1f}", f"{mk['m_nnz_per_s'][name]:.1f}"]
        for name, t in mk["cpu_s"].items()
    ]
    print(format_table(["variant", "CPU ms", "M nnz/s"], rows))
    print(f"   build {mk['build_s']:.2f} s; first call per mode (sorts) {mk['first_call_s']}")
    print(f"   two threads: {mk['two_threads']}")


def _run_cp(torch, args, nnz, results) -> None:
    print(f"2. sparse CP-ALS per iteration, rank {RANK}", flush=True)
    ours = bench_sparse_cp(torch, nnz, 4 if args.quick else 6)
    results["sparse_cp"] = {"factorch": ours, "tensorly": tensorly_sparse_status()}
    if not args.skip_pyttb:
        cap = 900 if not args.quick else 300
        try:
            results["sparse_cp"]["pyttb"] = run_json_subprocess(
                [__file__, "--worker", "pyttb", "--nnz", str(nnz), "--iters", "2"], timeout=cap
            )
        except Exception as exc:
            results["sparse_cp"]["pyttb"] = {"error": f"did not finish: {str(exc)[-300:]}"}
    sc = results["sparse_cp"]
    rows = [
        ["factorch sparse_cp (first, incl. sorting)", f"{ours['first_iteration_s']:.3f}"],
        ["factorch sparse_cp (steady)", f"{ours['steady_iteration_s']:.3f}"],
    ]
    if "pyttb" in sc and "per_iteration_s" in sc["pyttb"]:
        rows.append(["pyttb cp_als (sptensor)", f"{sc['pyttb']['per_iteration_s']:.3f}"])
        ratio = sc["pyttb"]["per_iteration_s"] / ours["steady_iteration_s"]
        print(f"   pyttb / factorch (steady) = {ratio:.1f}x")
    print(format_table(["implementation", "s / iteration"], rows))
    print(f"   tensorly sparse parafac: {sc['tensorly']['reason']}")


def _run_real(args, results, name) -> None:
    print("3. completion RMSE on real data", flush=True)

    def save(partial):  # keep what is done if a long run is interrupted
        write_results(name, {**results, "real": partial})

    results["real"] = bench_real(args.quick, save)
    for s in results["real"]["settings"]:
        print(
            f"   {s['dataset']}, {int(s['held_out'] * 100)} % held out, rank {s['rank']}, "
            f"{s['seeds']} seeds"
        )
        rows = [[k, f"{v['mean']:.4f}", f"{v['std']:.4f}"] for k, v in s["test_rmse"].items()]
        print(format_table(["method", "test RMSE", "std"], rows))


def _run_defaults(args, results) -> None:
    print("4. the l2 default, before (1e-3) and after (0 with damping 1e-4)", flush=True)
    results["defaults"] = bench_defaults(args.quick)
    for s in results["defaults"]["settings"]:
        print(
            f"   {s['dataset']}, {int(s['held_out'] * 100)} % held out, rank {s['rank']}, "
            f"{s['seeds']} seeds"
        )
        rows = [
            [k, f"{v['median']:.4f}", f"{v['mean']:.4f}", f"{v['std']:.4f}"]
            for k, v in s["test_rmse"].items()
        ]
        print(format_table(["method, ridge", "median", "mean", "std"], rows))


if __name__ == "__main__":
    main()
