"""Size sweep: factorch against TensorLy (numpy and pytorch backends) and pyttb, 10^3 to 400^3.

Issue 14 ("fast at every size"). For every dense float64 shape and rank, in ONE process, one
thread (``torch.set_num_threads(1)``, BLAS pools pinned before import), each library ``--repeats``
times round-robin after a warm-up call, median reported:

* ``cp``: CP-ALS time per sweep (whole call with ``tol=0`` divided by the sweeps; every library
  starts from the same random factors, so no initialisation is timed);
* ``tucker``: HOOI time per iteration (same: a shared random orthonormal start, ``tol=0``);
* ``masked_cp``: CP with 20 % of the entries missing (EM imputation: factorch ``cp(mask=...)``,
  TensorLy ``parafac(mask=...)``; pyttb has no masked CP-ALS);
* ``nn_cp``: non-negative CP by HALS (factorch ``non_negative_cp(method="hals")``, TensorLy
  ``non_negative_parafac_hals``; pyttb has no HALS CP, its ``cp_apr`` fits a Poisson model).

The ratio printed is ``anchor time / factorch time``: above 1, factorch is faster. TensorLy's global
backend is switched before each TensorLy call (untimed) and restored to numpy afterwards.

Usage::

    python benchmarks/bench_sweep.py [--quick] [--repeats N] [--workloads cp,tucker,...]

Writes ``benchmarks/results/bench_sweep[_quick].json`` and ``docs/images/bench_sweep[_quick].png``
(ratio against size).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)

WORKLOADS = ("cp", "tucker", "masked_cp", "nn_cp")
ANCHORS = ("tensorly-numpy", "tensorly-pytorch", "pyttb")
QUICK_SHAPES = ((10, 10, 10), (20, 20, 20), (40, 50, 60), (438, 6, 11), (100, 100, 100))
FULL_SHAPES = (*QUICK_SHAPES, (200, 200, 200), (400, 400, 400))
RANKS = (3, 10, 32)


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="no 200^3 / 400^3, ranks 3 and 10")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args(argv)


def _ranks(shape: tuple[int, ...], quick: bool) -> tuple[int, ...]:
    n = math.prod(shape)
    ranks = (3, 10) if quick else RANKS
    # rank 32 only where the tensor has room for it (more than ~30 entries per parameter).
    return tuple(r for r in ranks if r <= 10 or n >= 30 * r * sum(shape))


def _sweeps(shape: tuple[int, ...]) -> int:
    n = math.prod(shape)
    return 50 if n <= 30_000 else 20 if n <= 1_000_000 else 5 if n <= 10_000_000 else 2


def _cases(shape: tuple[int, ...], rank: int, workload: str) -> dict[str, Callable[[], object]]:
    """The callables to time (name -> call), plus per-name setup via the module's ``tl``."""
    import numpy as np
    import pyttb as ttb
    import tensorly as tl
    import torch
    from tensorly.cp_tensor import CPTensor as TLCP
    from tensorly.decomposition import non_negative_parafac_hals, parafac
    from tensorly.decomposition import tucker as tl_tucker

    from factorch.decomp import cp, non_negative_cp, tucker
    from factorch.random import add_noise, random_cp
    from factorch.tensors import CPTensor, TuckerTensor

    gen = torch.Generator().manual_seed(0)
    sweeps = _sweeps(shape)
    truth = random_cp(shape, rank, generator=gen, dtype=torch.float64)
    x = add_noise(truth.to_dense(), relative=0.05, generator=gen)
    if workload == "nn_cp":
        x = x.abs()
    xn = x.numpy()
    xt = torch.from_numpy(xn.copy())
    calls: dict[str, Callable[[], object]] = {}
    if workload in ("cp", "masked_cp", "nn_cp"):
        init = [torch.rand(s, rank, generator=gen, dtype=torch.float64) for s in shape]
        ones = torch.ones(rank, dtype=torch.float64)
        fc_init = CPTensor(ones, tuple(init))
        tl_np_init = TLCP((ones.numpy(), [f.numpy() for f in init]))
        tl_pt_init = TLCP((ones.clone(), [f.clone() for f in init]))
        mask = None
        if workload == "masked_cp":
            mask = torch.rand(shape, generator=gen) > 0.2
            x = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
            xn, xt = x.numpy(), x.clone()
        if workload == "cp":
            calls["factorch"] = lambda: cp(x, rank, init=fc_init, max_iter=sweeps, tol=0)
            for name, data, ini in (
                ("tensorly-numpy", xn, tl_np_init),
                ("tensorly-pytorch", xt, tl_pt_init),
            ):
                calls[name] = _bind(parafac, data, rank, init=ini, n_iter_max=sweeps, tol=0)
            ttb_x = ttb.tensor(xn.copy(order="F"))
            ttb_init = ttb.ktensor([f.numpy().copy(order="F") for f in init], np.ones(rank))
            calls["pyttb"] = lambda: ttb.cp_als(
                ttb_x, rank, init=ttb_init, maxiters=sweeps, stoptol=0, printitn=0
            )
        elif workload == "masked_cp":
            m_np, m_t = mask.double().numpy(), mask.double()
            calls["factorch"] = lambda: cp(x, rank, init=fc_init, max_iter=sweeps, tol=0, mask=mask)
            calls["tensorly-numpy"] = _bind(
                parafac, xn, rank, init=tl_np_init, n_iter_max=sweeps, tol=0, mask=m_np
            )
            calls["tensorly-pytorch"] = _bind(
                parafac, xt, rank, init=tl_pt_init, n_iter_max=sweeps, tol=0, mask=m_t
            )
        else:
            calls["factorch"] = lambda: non_negative_cp(
                x, rank, method="hals", init=fc_init, max_iter=sweeps, tol=0
            )
            for name, data, ini in (
                ("tensorly-numpy", xn, tl_np_init),
                ("tensorly-pytorch", xt, tl_pt_init),
            ):
                calls[name] = _bind(
                    non_negative_parafac_hals, data, rank, init=ini, n_iter_max=sweeps, tol=0
                )
    else:
        ranks = [min(rank, s) for s in shape]
        qs = [
            torch.linalg.qr(torch.randn(s, r, generator=gen, dtype=torch.float64)).Q
            for s, r in zip(shape, ranks)
        ]
        core = x
        for m, q in enumerate(qs):
            core = torch.movedim(torch.tensordot(core, q, dims=([m], [0])), -1, m)
        fc_init = TuckerTensor(core, tuple(qs))
        calls["factorch"] = lambda: tucker(x, ranks, init=fc_init, max_iter=sweeps, tol=0)
        for name, data, conv in (
            ("tensorly-numpy", xn, lambda t: t.numpy()),
            ("tensorly-pytorch", xt, lambda t: t.clone()),
        ):
            ini = (conv(core), [conv(q) for q in qs])
            calls[name] = _bind(tl_tucker, data, ranks, init=ini, n_iter_max=sweeps, tol=0)
        ttb_x = ttb.tensor(xn.copy(order="F"))
        ttb_init = [q.numpy().copy(order="F") for q in qs]
        calls["pyttb"] = lambda: ttb.tucker_als(
            ttb_x, ranks, init=ttb_init, maxiters=sweeps, stoptol=0, printitn=0
        )
    del tl
    return calls


def _bind(fn: Callable[..., object], *args: object, **kwargs: object) -> Callable[[], object]:
    return lambda: fn(*args, **kwargs)


def _setups() -> dict[str, Callable[[], object]]:
    import tensorly as tl

    return {
        "factorch": lambda: tl.set_backend("numpy"),
        "tensorly-numpy": lambda: tl.set_backend("numpy"),
        "tensorly-pytorch": lambda: tl.set_backend("pytorch"),
        "pyttb": lambda: tl.set_backend("numpy"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    import tensorly as tl

    threads = _common.apply_threads(1)
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    workloads = [w for w in args.workloads.split(",") if w]
    rows: list[dict[str, Any]] = []
    for workload in workloads:
        for shape in shapes:
            for rank in _ranks(shape, args.quick):
                calls = _cases(shape, rank, workload)
                repeats = (
                    args.repeats if math.prod(shape) <= 10_000_000 else max(2, args.repeats // 2)
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    times = _common.time_calls(calls, repeats=repeats, setup=_setups())
                tl.set_backend("numpy")
                sweeps = _sweeps(shape)
                per = {k: v["median_s"] / sweeps * 1e3 for k, v in times.items()}
                cpu = {k: v["cpu_median_s"] / sweeps * 1e3 for k, v in times.items()}
                row = {
                    "workload": workload,
                    "shape": list(shape),
                    "rank": rank,
                    "sweeps": sweeps,
                    "repeats": repeats,
                    "per_sweep_ms": per,
                    "cpu_per_sweep_ms": cpu,
                    "ratio": {a: per[a] / per["factorch"] for a in ANCHORS if a in per},
                    "cpu_ratio": {a: cpu[a] / cpu["factorch"] for a in ANCHORS if a in cpu},
                }
                rows.append(row)
                print(_row_line(row), flush=True)
                partial = {"command": sys.argv, "partial": True, "rows": rows}
                _common.write_results("bench_sweep" + ("_quick" if args.quick else ""), partial)
    return {"threads": threads, "rows": rows}


def _row_line(row: dict[str, Any]) -> str:
    shape = "x".join(map(str, row["shape"]))
    per = row["per_sweep_ms"]
    parts = [
        f"{row['workload']:9s} {shape:>11s} r{row['rank']:<2d} factorch {per['factorch']:8.3f} ms"
    ]
    for a in ANCHORS:
        if a in per:
            parts.append(f"{a} {per[a]:8.3f} ({row['ratio'][a]:.2f}x)")
    return " | ".join(parts)


def table(rows: list[dict[str, Any]]) -> str:
    header = ["workload", "shape", "rank", "factorch ms", *[f"{a} ms (x)" for a in ANCHORS]]
    body = []
    for r in rows:
        per = r["per_sweep_ms"]
        cells = [r["workload"], "x".join(map(str, r["shape"])), r["rank"], f"{per['factorch']:.3f}"]
        for a in ANCHORS:
            cells.append(f"{per[a]:.3f} ({r['ratio'][a]:.2f}x)" if a in per else "-")
        body.append(cells)
    return _common.format_table(header, body)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(1, len(workloads), figsize=(3.6 * len(workloads), 3.2), squeeze=False)
    markers = {3: "o", 10: "s", 32: "^"}
    colours = {"tensorly-numpy": "C0", "tensorly-pytorch": "C1", "pyttb": "C2"}
    for ax, w in zip(axes[0], workloads):
        sel = [r for r in rows if r["workload"] == w]
        for a in ANCHORS:
            for rank in sorted({r["rank"] for r in sel}):
                pts = sorted(
                    (math.prod(r["shape"]), r["ratio"][a])
                    for r in sel
                    if r["rank"] == rank and a in r["ratio"]
                )
                if pts:
                    ax.plot(
                        *zip(*pts),
                        marker=markers.get(rank, "x"),
                        color=colours[a],
                        lw=1,
                        ms=4,
                        label=f"{a} r{rank}",
                    )
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(w, fontsize=9)
        ax.set_xlabel("entries", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("anchor time / factorch time", fontsize=8)
    axes[0][0].legend(fontsize=5, loc="best")  # the CP panel has every anchor
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(1)
    res = run(args)
    suffix = "_quick" if args.quick else ""
    payload = {"machine": _common.machine_info(), "command": sys.argv, **res}
    path = _common.write_results("bench_sweep" + suffix, payload)
    print(table(res["rows"]))
    print(f"wrote {path}")
    if not args.no_plot:
        png = HERE.parent / "docs" / "images" / f"bench_sweep{suffix}.png"
        plot(res["rows"], png)
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
