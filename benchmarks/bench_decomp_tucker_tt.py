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

Usage::

    python benchmarks/bench_decomp_tucker_tt.py [--quick] [--threads N]

Writes ``benchmarks/results/bench_decomp_tucker_tt.json`` and prints a table. ``--quick`` times
one repeat per implementation after the untimed run (about a minute on a 2-core machine, most of
it TensorLy's SVD initialisation of the Tucker case).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

NAME = "bench_decomp_tucker_tt"
TUCKER_ITERS = 10


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one timed repeat per implementation")
    p.add_argument("--threads", type=int, default=1, help="threads for torch and numpy (1)")
    p.add_argument("--size", type=int, default=200, help="side of the Tucker tensor (200)")
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
    """``case -> {impl -> (backend or None, zero-arg callable returning a dense tensor)}``."""
    import tensorly as tl
    from tensorly.decomposition import tensor_ring, tensor_train
    from tensorly.decomposition import tucker as tl_tucker

    from factorch.decomp import hosvd, tr_svd, tt_svd, tucker

    rank3 = (20, 20, 20)
    tr_rank = (4, 8, 8, 8, 4)
    xn_tucker, xn_tt = x_tucker.numpy(), x_tt.numpy()

    def tl_hooi(x):
        core, factors = tl_tucker(x, rank=list(rank3), n_iter_max=TUCKER_ITERS, tol=0, init="svd")
        return tl.tucker_to_tensor((core, factors))

    return {
        "tucker_hooi": {
            "factorch": (
                None,
                lambda: tucker(x_tucker, rank3, max_iter=TUCKER_ITERS, tol=0).tensor.to_dense(),
            ),
            "tensorly-numpy": ("numpy", lambda: tl_hooi(xn_tucker)),
            "tensorly-pytorch": ("pytorch", lambda: tl_hooi(x_tucker)),
            "factorch hosvd only (info)": (None, lambda: hosvd(x_tucker, rank3).tensor.to_dense()),
        },
        "tt_svd": {
            "factorch": (None, lambda: tt_svd(x_tt, 8).tensor.to_dense()),
            "tensorly-numpy": ("numpy", lambda: tl.tt_to_tensor(tensor_train(xn_tt, 8))),
            "tensorly-pytorch": ("pytorch", lambda: tl.tt_to_tensor(tensor_train(x_tt, 8))),
            "factorch method=full (info)": (
                None,
                lambda: tt_svd(x_tt, 8, method="full").tensor.to_dense(),
            ),
            "factorch method=randomized (info)": (
                None,
                lambda: tt_svd(x_tt, 8, method="randomized").tensor.to_dense(),
            ),
        },
        "tr_svd": {
            "factorch": (None, lambda: tr_svd(x_tt, tr_rank).tensor.to_dense()),
            "tensorly-numpy": ("numpy", lambda: tl.tr_to_tensor(tensor_ring(xn_tt, list(tr_rank)))),
            "tensorly-pytorch": (
                "pytorch",
                lambda: tl.tr_to_tensor(tensor_ring(x_tt, list(tr_rank))),
            ),
        },
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
                for name, (backend, _) in impls.items()
            }
            errors = {}
            for name, (_, fn) in impls.items():
                setup[name]()
                dense = torch.as_tensor(np.asarray(fn()))
                errors[name] = float(
                    torch.linalg.vector_norm(dense - x) / torch.linalg.vector_norm(x)
                )
            times = _common.time_calls(
                {name: fn for name, (_, fn) in impls.items()},
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
    return {
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


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    out = run(args)
    path = _common.write_results(NAME, out)
    rows = []
    for case, impls in out["results"].items():
        for name, r in impls.items():
            rows.append(
                [
                    case,
                    name,
                    r["median_s"] * 1e3,
                    r["cpu_median_s"] * 1e3,
                    f"{r['error']:.6f}",
                    r["time_ratio_vs_factorch"],
                ]
            )
    header = ["case", "implementation", "median ms", "cpu ms", "rel. error", "time / factorch"]
    print(_common.format_table(header, rows))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
