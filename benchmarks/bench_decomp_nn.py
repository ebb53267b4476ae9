"""Non-negative CP and NMF: factorch against TensorLy and scikit-learn at equal iterations.

1. Non-negative CP of a planted non-negative 100^3 float64 tensor (rank 10, 1 % noise, clipped at
   0), rank 10, fixed iterations (``tol=0``), all runs from the same random non-negative factors:
   factorch ``non_negative_cp`` (HALS, MU) vs TensorLy 0.10 ``non_negative_parafac_hals`` and
   ``non_negative_parafac`` (MU) on the numpy and pytorch backends.
2. NMF of a planted 2000 x 1000 non-negative matrix (rank 10, 1 % noise), same iterations and
   the same initial ``(W, H)``: factorch ``nmf`` (HALS, MU) vs scikit-learn ``NMF`` (solver
   ``"cd"`` = one HALS sweep per factor and iteration, and ``"mu"``).
3. Batched NMF: 256 matrices of 100 x 80, rank 5, one vectorised factorch call vs a Python
   loop of scikit-learn ``"cd"``.

Reported: median wall time per iteration over repeats (calls timed round-robin), and the final
relative error ``||X - X_hat|| / ||X||`` computed outside the timed region.

Peak memory (unless ``--no-memory``): for each case and implementation, a fresh subprocess
(glibc caching off, ``_common.MALLOC_NO_CACHE``) builds the same data and initial factors, runs
the fit once as a warm-up, then measures the peak RSS growth of one more fit of the same number of
iterations (``_common.peak_extra_bytes``): the fit's own working memory above the data, without
the dense reconstruction that the timed calls include for the error. Run:

    python benchmarks/bench_decomp_nn.py [--quick] [--threads N] [--no-memory]

Writes ``benchmarks/results/bench_decomp_nn.json`` and prints the ratio tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from math import prod
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MALLOC_NO_CACHE,
    apply_threads,
    format_table,
    machine_info,
    peak_extra_bytes,
    pin_threads,
    run_json_subprocess,
    time_calls,
    write_results,
)

MIB = 2**20
# case -> (m, n, rank, batch) of the NMF problems
NMF_CASES = {"nmf": (2000, 1000, 10, None), "nmf_batched": (100, 80, 5, 256)}


def _planted_cp(torch, shape, rank, noise, seed):
    g = torch.Generator().manual_seed(seed)
    factors = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    x = torch.einsum("ir,jr,kr->ijk", *factors)
    e = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return (x + e * (noise * x.norm() / e.norm())).clamp_min(0)


def _cp_problem(torch):
    shape, rank = (100, 100, 100), 10
    x = _planted_cp(torch, shape, rank, 0.01, 0)
    g = torch.Generator().manual_seed(1)
    init = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    return x, init


def _cp_impls(torch, x, init, iters):
    """``name -> (fit, dense)``: ``fit()`` runs ``iters`` iterations from ``init``,
    ``dense(result)`` returns the reconstruction as a numpy array."""
    import numpy as np
    import tensorly as tl
    from tensorly.decomposition import non_negative_parafac, non_negative_parafac_hals

    from factorch.decomp import non_negative_cp
    from factorch.tensors import CPTensor

    rank = init[0].shape[1]
    x_np = x.numpy()

    def ours(method):
        def fit():
            return non_negative_cp(
                x, rank, method=method, init=CPTensor.from_factors(init), max_iter=iters, tol=0
            )

        return fit, lambda res: res.model.to_dense().numpy()

    def tensorly(backend, fn):
        def fit():
            tl.set_backend(backend)
            factors = [f.numpy().copy() if backend == "numpy" else f.clone() for f in init]
            weights = np.ones(rank) if backend == "numpy" else torch.ones(rank, dtype=x.dtype)
            init_cp = tl.cp_tensor.CPTensor((weights, factors))
            tensor = x_np if backend == "numpy" else x
            return fn(tensor, rank, init=init_cp, n_iter_max=iters, tol=0)

        def dense(cp):
            tl.set_backend(backend)
            out = tl.cp_to_tensor(cp)
            tl.set_backend("numpy")
            return out if backend == "numpy" else out.numpy()

        return fit, dense

    return {
        "factorch hals": ours("hals"),
        "factorch mu": ours("mu"),
        "tensorly hals numpy": tensorly("numpy", non_negative_parafac_hals),
        "tensorly hals pytorch": tensorly("pytorch", non_negative_parafac_hals),
        "tensorly mu numpy": tensorly("numpy", non_negative_parafac),
        "tensorly mu pytorch": tensorly("pytorch", non_negative_parafac),
    }


def _nmf_problem(torch, m, n, rank, batch):
    g = torch.Generator().manual_seed(2)
    lead = () if batch is None else (batch,)
    w = torch.rand(*lead, m, rank, generator=g, dtype=torch.float64)
    h = torch.rand(*lead, rank, n, generator=g, dtype=torch.float64)
    x = w @ h
    e = torch.rand(x.shape, generator=g, dtype=x.dtype)
    x = x + e * (0.01 * x.norm() / e.norm())
    w0 = torch.rand(*lead, m, rank, generator=g, dtype=torch.float64)
    h0 = torch.rand(*lead, rank, n, generator=g, dtype=torch.float64)
    return x, w0, h0


def _nmf_impls(x, w0, h0, rank, iters, batch):
    """``name -> (fit, dense)`` as in :func:`_cp_impls`."""
    import numpy as np
    from sklearn.decomposition import NMF

    from factorch.decomp import nmf

    x_np, w0_np, h0_np = x.numpy(), w0.numpy(), h0.numpy()

    def ours(method):
        def fit():
            return nmf(x, rank, method=method, init=(w0, h0), max_iter=iters, tol=0)

        return fit, lambda res: res.model.to_dense().numpy()

    def sklearn(solver):
        def fit_one(xb, wb, hb):
            model = NMF(rank, init="custom", solver=solver, max_iter=iters, tol=0)
            return model.fit_transform(xb, W=wb.copy(), H=hb.copy()), model.components_

        def fit():
            with warnings.catch_warnings():
                # ConvergenceWarning: max_iter is reached on purpose
                warnings.simplefilter("ignore")
                if batch is None:
                    return [fit_one(x_np, w0_np, h0_np)]
                return [fit_one(x_np[b], w0_np[b], h0_np[b]) for b in range(batch)]

        def dense(pairs):
            if batch is None:
                return pairs[0][0] @ pairs[0][1]
            return np.stack([wf @ hf for wf, hf in pairs])

        return fit, dense

    impls = {"factorch hals": ours("hals"), "factorch mu": ours("mu"), "sklearn cd": sklearn("cd")}
    if batch is None:
        impls["sklearn mu"] = sklearn("mu")
    return impls


def _timed(impls, x_np, repeats):
    """Time ``dense(fit())`` per implementation round-robin; rows with the final error and, for
    factorch, the error history."""
    import numpy as np

    outputs, histories = {}, {}

    def call(name, fit, dense):
        def run():
            res = fit()
            outputs[name] = dense(res)
            if hasattr(res, "errors"):
                histories[name] = res.errors

        return run

    calls = {name: call(name, fit, dense) for name, (fit, dense) in impls.items()}
    times = time_calls(calls, repeats=repeats)
    x_norm = float(np.linalg.norm(x_np))
    rows = {}
    for name, t in times.items():
        err = float(np.linalg.norm(outputs[name] - x_np) / x_norm)
        rows[name] = {"ms_per_iter": None, "final_error": err, **t}
        if name in histories:
            rows[name]["errors"] = list(histories[name])
    return rows


def bench_cp(torch, iters, repeats):
    x, init = _cp_problem(torch)
    rows = _timed(_cp_impls(torch, x, init, iters), x.numpy(), repeats)
    for row in rows.values():
        row["ms_per_iter"] = 1e3 * row["median_s"] / iters
    noise = float((x - _planted_cp(torch, x.shape, init[0].shape[1], 0.0, 0)).norm() / x.norm())
    return {
        "shape": tuple(x.shape),
        "rank": init[0].shape[1],
        "iterations": iters,
        "noise_level": noise,
        "runs": rows,
    }


def bench_nmf(torch, m, n, rank, iters, repeats, batch=None):
    x, w0, h0 = _nmf_problem(torch, m, n, rank, batch)
    rows = _timed(_nmf_impls(x, w0, h0, rank, iters, batch), x.numpy(), repeats)
    for row in rows.values():
        row["ms_per_iter"] = 1e3 * row["median_s"] / iters
    return {"shape": tuple(x.shape), "rank": rank, "iterations": iters, "runs": rows}


def _case_impls(torch, case, iters):
    """``(data tensor, impls)`` of one case, built exactly as the timed benchmark builds it."""
    if case == "nn_cp":
        x, init = _cp_problem(torch)
        return x, _cp_impls(torch, x, init, iters)
    m, n, rank, batch = NMF_CASES[case]
    x, w0, h0 = _nmf_problem(torch, m, n, rank, batch)
    return x, _nmf_impls(x, w0, h0, rank, iters, batch)


def memory_run(torch, case, impl, iters):
    """Peak extra RSS of one fit (after one warm-up fit), in this process: run it in a fresh
    subprocess per implementation with glibc's caching off (see :func:`memory`)."""
    _, impls = _case_impls(torch, case, iters)
    fit, _ = impls[impl]
    fit()
    return peak_extra_bytes(fit)


def memory(args, cases):
    """``case -> {"data_bytes", "iterations", "impls": {impl -> {"bytes", "method"}}}``.

    ``cases``: ``case -> (iterations, data bytes, implementation names)``."""
    script = str(Path(__file__).resolve())
    out = {}
    for case, (iters, data_bytes, impls) in cases.items():
        argv = [script, "--threads", str(args.threads), "--worker-case", case]
        out[case] = {
            "data_bytes": data_bytes,
            "iterations": iters,
            "impls": {
                impl: run_json_subprocess(
                    [*argv, "--worker-impl", impl, "--worker-iters", str(iters)],
                    env_overrides=MALLOC_NO_CACHE,
                    timeout=900,
                )
                for impl in impls
            },
        }
    return out


def _iters_to_reach(errors, target):
    """First iteration (1-based) whose error is within 0.01 % of ``target``; None if never."""
    for i, e in enumerate(errors, 1):
        if e <= target * (1 + 1e-4):
            return i
    return None


def _table(title, result, pairs, iters):
    """Rows: time per iteration and final error vs a reference; for factorch runs whose error
    history is known, also the time to reach the reference's final error and its ratio to the
    reference's total time (the fair comparison when the methods do different work per
    iteration)."""
    runs = result["runs"]
    rows = []
    for name, ref in pairs:
        run, base = runs[name], runs[ref]
        k = _iters_to_reach(run["errors"], base["final_error"]) if "errors" in run else None
        to_err = None if k is None else k * run["ms_per_iter"]
        rows.append(
            [
                name,
                run["ms_per_iter"],
                f"{run['final_error']:.6f}",
                ref,
                run["ms_per_iter"] / base["ms_per_iter"],
                "-" if name == ref or k is None else f"{k} it, {to_err:.0f} ms",
                None if name == ref or k is None else to_err / (iters * base["ms_per_iter"]),
            ]
        )
    header = [
        "implementation",
        "ms/iter",
        "final rel. err",
        "vs",
        "time/iter ratio",
        "to reach vs's error",
        "time-to-error ratio",
    ]
    return f"{title}\n{format_table(header, rows)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--worker-case", help=argparse.SUPPRESS)
    parser.add_argument("--worker-impl", help=argparse.SUPPRESS)
    parser.add_argument("--worker-iters", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin_threads(args.threads)
    import torch

    threads = apply_threads(args.threads)
    if args.worker_case:
        print(json.dumps(memory_run(torch, args.worker_case, args.worker_impl, args.worker_iters)))
        return
    repeats = 3 if args.quick else 5
    cp_iters, nmf_iters = (10, 20) if args.quick else (50, 100)
    cp = bench_cp(torch, cp_iters, repeats)
    nmf_res = bench_nmf(torch, 2000, 1000, 10, nmf_iters, repeats)
    batched = bench_nmf(torch, 100, 80, 5, nmf_iters, repeats, batch=256)
    payload = {
        "benchmark": "bench_decomp_nn",
        "quick": args.quick,
        "threads": threads,
        "machine": machine_info(),
        "nn_cp": cp,
        "nmf": nmf_res,
        "nmf_batched": batched,
    }
    if not args.no_memory:
        payload["memory"] = memory(
            args,
            {
                case: (res["iterations"], 8 * prod(res["shape"]), list(res["runs"]))
                for case, res in (("nn_cp", cp), ("nmf", nmf_res), ("nmf_batched", batched))
            },
        )
    path = write_results("bench_decomp_nn" + ("_quick" if args.quick else ""), payload)
    tables = [
        (
            f"Non-negative CP, 100^3 float64, rank 10, {cp_iters} iterations, same init "
            f"(noise level {cp['noise_level']:.4f}); ratios = row / vs (< 1: row is faster)",
            cp,
            cp_iters,
            [
                ("tensorly hals numpy", "tensorly hals numpy"),
                ("tensorly hals pytorch", "tensorly hals numpy"),
                ("factorch hals", "tensorly hals numpy"),
                ("tensorly mu numpy", "tensorly mu numpy"),
                ("tensorly mu pytorch", "tensorly mu numpy"),
                ("factorch mu", "tensorly mu numpy"),
            ],
        ),
        (
            f"NMF 2000 x 1000 float64, rank 10, {nmf_iters} iterations, same init",
            nmf_res,
            nmf_iters,
            [
                ("sklearn cd", "sklearn cd"),
                ("factorch hals", "sklearn cd"),
                ("sklearn mu", "sklearn mu"),
                ("factorch mu", "sklearn mu"),
            ],
        ),
        (
            f"Batched NMF 256 x (100 x 80) float64, rank 5, {nmf_iters} iterations "
            "(factorch: one call; scikit-learn: a Python loop)",
            batched,
            nmf_iters,
            [
                ("sklearn cd", "sklearn cd"),
                ("factorch hals", "sklearn cd"),
                ("factorch mu", "sklearn cd"),
            ],
        ),
    ]
    for title, result, iters, pairs in tables:
        print(_table(title, result, pairs, iters))
        print()
    if "memory" in payload:
        rows = [
            [case, m["data_bytes"] / MIB, impl, r["bytes"] / MIB]
            for case, m in payload["memory"].items()
            for impl, r in m["impls"].items()
        ]
        print("Peak extra memory of one fit (fresh process each, after one warm-up fit)")
        print(format_table(["case", "data MiB", "implementation", "peak extra MiB"], rows))
        print()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
