"""Tucker (HOOI), TT-SVD and TR-SVD: factorch against TensorLy (numpy and pytorch backends).

Problems (float64):

* **Tucker**: a 200^3 tensor = rank-10 CP (``factorch.random.random_cp``) + 1 % Gaussian noise;
  HOOI at multilinear rank (20, 20, 20), exactly 10 sweeps (``tol=0`` everywhere), SVD-based
  initialisation (TensorLy ``init="svd"``: thin SVDs of the unfoldings; factorch: ST-HOSVD from
  Gram eigen-decompositions).
* **TT-SVD**: a 32^4 tensor = random TT of rank 8 (``random_tt``) + 1 % noise, maximal rank 8.
* **TR-SVD**: the same tensor, ranks (4, 8, 8, 8, 4) (``r_0 r_1 = 32`` fits the first unfolding).

For each implementation: median wall time (and process CPU time) over round-robin repeats in one
process, after one untimed run that also gives the final relative error ``||X - X_hat|| / ||X||``
(computed densely, the same way for everyone), and the ratio anchor time / factorch time.
TensorLy's global backend is switched before each of its calls and restored at the end.

Peak memory (unless ``--no-memory``): for each case and implementation, a fresh subprocess
(glibc caching off, :data:`_common.MALLOC_NO_CACHE`) builds the same data, runs the
decomposition once as a warm-up, then measures the peak RSS growth of one more decomposition call
(:func:`_common.peak_extra_bytes`): the call's own working memory above the data, without the
dense reconstruction that the timed calls include for the error.

Usage::

    python benchmarks/bench_decomp_tucker_tt.py [--quick] [--threads N] [--no-memory]

Writes ``benchmarks/results/bench_decomp_tucker_tt.json`` (``_quick.json`` with ``--quick``) and
prints a table. ``--quick`` times one repeat per implementation after the untimed run (about a
minute on a 2-core machine, most of it TensorLy's SVD initialisation of the Tucker case).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

NAME = "bench_decomp_tucker_tt"
TUCKER_ITERS = 10
MIB = 2**20


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one timed repeat per implementation")
    p.add_argument("--threads", type=int, default=1, help="threads for torch and numpy (1)")
    p.add_argument("--size", type=int, default=200, help="side of the Tucker tensor (200)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--worker-case", help=argparse.SUPPRESS)
    p.add_argument("--worker-impl", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _problems(size: int):
    import torch

    from factorch.random import add_noise, random_cp, random_tt

    g = torch.Generator().manual_seed(0)
    cp = random_cp((size,) * 3, 10, generator=g, dtype=torch.float64).to_dense()
    x_tucker = add_noise(cp, relative=0.01, generator=g)
    tt = random_tt((32,) * 4, 8, generator=g, dtype=torch.float64).to_dense()
    x_tt = add_noise(tt, relative=0.01, generator=g)
    return x_tucker, x_tt


def _cases(x_tucker, x_tt) -> dict[str, dict[str, Any]]:
    """``case -> {impl -> (backend or None, decompose, to_dense)}``: ``decompose()`` runs the
    decomposition (TensorLy's backend already set), ``to_dense(result)`` reconstructs it."""
    import tensorly as tl
    from tensorly.decomposition import tensor_ring, tensor_train
    from tensorly.decomposition import tucker as tl_tucker

    from factorch.decomp import hosvd, tr_svd, tt_svd, tucker

    rank3 = (20, 20, 20)
    tr_rank = (4, 8, 8, 8, 4)
    xn_tucker, xn_tt = x_tucker.numpy(), x_tt.numpy()

    def tl_hooi(x):
        return tl_tucker(x, rank=list(rank3), n_iter_max=TUCKER_ITERS, tol=0, init="svd")

    def ours(result):
        return result.model.to_dense()

    return {
        "tucker_hooi": {
            "factorch": (
                None,
                lambda: tucker(x_tucker, rank3, max_iter=TUCKER_ITERS, tol=0),
                ours,
            ),
            "tensorly-numpy": ("numpy", lambda: tl_hooi(xn_tucker), tl.tucker_to_tensor),
            "tensorly-pytorch": ("pytorch", lambda: tl_hooi(x_tucker), tl.tucker_to_tensor),
            "factorch hosvd only (info)": (None, lambda: hosvd(x_tucker, rank3), ours),
        },
        "tt_svd": {
            "factorch": (None, lambda: tt_svd(x_tt, 8), ours),
            "tensorly-numpy": ("numpy", lambda: tensor_train(xn_tt, 8), tl.tt_to_tensor),
            "tensorly-pytorch": ("pytorch", lambda: tensor_train(x_tt, 8), tl.tt_to_tensor),
            "factorch svd=full (info)": (None, lambda: tt_svd(x_tt, 8, svd="full"), ours),
            "factorch svd=randomized (info)": (
                None,
                lambda: tt_svd(x_tt, 8, svd="randomized"),
                ours,
            ),
        },
        "tr_svd": {
            "factorch": (None, lambda: tr_svd(x_tt, tr_rank), ours),
            "tensorly-numpy": (
                "numpy",
                lambda: tensor_ring(xn_tt, list(tr_rank)),
                tl.tr_to_tensor,
            ),
            "tensorly-pytorch": (
                "pytorch",
                lambda: tensor_ring(x_tt, list(tr_rank)),
                tl.tr_to_tensor,
            ),
        },
    }


def _dense_call(decompose, to_dense):
    return lambda: to_dense(decompose())


def memory_run(args: argparse.Namespace) -> dict[str, Any]:
    """Peak extra RSS of one decomposition call of one implementation, in this process.

    Meant for a fresh subprocess per implementation (see ``main``) with glibc's caching off; one
    warm-up call on the same data comes first.
    """
    import tensorly as tl

    _common.apply_threads(args.threads)
    x_tucker, x_tt = _problems(args.size)
    backend, decompose, _ = _cases(x_tucker, x_tt)[args.worker_case][args.worker_impl]
    tl.set_backend(backend or "numpy")
    decompose()
    return _common.peak_extra_bytes(decompose)


def memory(args: argparse.Namespace, cases: dict[str, list[str]], data_bytes: dict[str, int]):
    """``case -> {"data_bytes", "impls": {impl -> {"bytes", "method"}}}``, one subprocess each."""
    base = [str(Path(__file__).resolve()), "--threads", str(args.threads), "--size", str(args.size)]
    return {
        case: {
            "data_bytes": data_bytes[case],
            "impls": {
                impl: _common.run_json_subprocess(
                    [*base, "--worker-case", case, "--worker-impl", impl],
                    env_overrides=_common.MALLOC_NO_CACHE,
                    timeout=900,
                )
                for impl in impls
            },
        }
        for case, impls in cases.items()
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import tensorly as tl
    import torch

    threads = _common.apply_threads(args.threads)
    previous_backend = tl.get_backend()
    repeats = 1 if args.quick else 5
    x_tucker, x_tt = _problems(args.size)
    data = {"tucker_hooi": x_tucker, "tt_svd": x_tt, "tr_svd": x_tt}
    results: dict[str, Any] = {}
    try:
        for case, impls in _cases(x_tucker, x_tt).items():
            x = data[case]
            setup = {
                name: functools.partial(tl.set_backend, backend or "numpy")
                for name, (backend, _, _) in impls.items()
            }
            calls = {name: _dense_call(dec, dense) for name, (_, dec, dense) in impls.items()}
            errors = {}
            for name, fn in calls.items():
                setup[name]()
                dense = torch.as_tensor(np.asarray(fn()))
                errors[name] = float(
                    torch.linalg.vector_norm(dense - x) / torch.linalg.vector_norm(x)
                )
            times = _common.time_calls(
                calls,
                repeats=repeats,
                warmup=0,
                setup=setup,
            )
            ours = times["factorch"]["median_s"]
            results[case] = {
                name: {
                    **times[name],
                    "error": errors[name],
                    "time_ratio_vs_factorch": times[name]["median_s"] / ours,
                }
                for name in impls
            }
    finally:
        tl.set_backend(previous_backend)
    out: dict[str, Any] = {
        "machine": _common.machine_info(),
        "threads": threads,
        "repeats": repeats,
        "problems": {
            "tucker_hooi": f"{args.size}^3 rank-10 CP + 1% noise, rank (20,20,20), "
            f"{TUCKER_ITERS} sweeps, tol=0",
            "tt_svd": "32^4 TT-rank-8 + 1% noise, max rank 8",
            "tr_svd": "same tensor, ranks (4,8,8,8,4)",
        },
        "results": results,
    }
    if not args.no_memory:
        out["memory"] = memory(
            args,
            {case: list(impls) for case, impls in results.items()},
            {case: x.numel() * x.element_size() for case, x in data.items()},
        )
    return out


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    if args.worker_case:
        print(json.dumps(memory_run(args)))
        return
    out = run(args)
    path = _common.write_results(NAME + ("_quick" if args.quick else ""), out)
    mem = out.get("memory", {})
    rows = []
    for case, impls in out["results"].items():
        data_mib = mem[case]["data_bytes"] / MIB if case in mem else None
        for name, r in impls.items():
            peak = mem[case]["impls"][name]["bytes"] / MIB if case in mem else None
            rows.append(
                [
                    case,
                    name,
                    r["median_s"] * 1e3,
                    r["cpu_median_s"] * 1e3,
                    f"{r['error']:.6f}",
                    r["time_ratio_vs_factorch"],
                    data_mib,
                    peak,
                ]
            )
    header = [
        "case",
        "implementation",
        "median ms",
        "cpu ms",
        "rel. error",
        "time / factorch",
        "data MiB",
        "peak extra MiB",
    ]
    print(_common.format_table(header, rows))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
