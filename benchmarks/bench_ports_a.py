"""Issue 11, part A: factorch against TensorLy 0.10 (and pyttb 1.8 where it has a counterpart).

Sections (``--only NAME`` runs one), each over ``--seeds`` seeds, every library timed round-robin
``--repeats`` times in this one process (median wall time; ratios = anchor time / factorch time):

* ``parafac2``  -- ``parafac2`` vs TensorLy ``parafac2`` (defaults: 5 CP sweeps per Procrustes
  update, line search, their tolerance 1e-8 on the squared error, ours 1e-10 on the error), both
  from TensorLy's random start, on planted data with slices of different lengths: a small case
  and one of about 1.6e6 entries; also factorch's time to first reach TensorLy's final error
  (our tolerance is tighter, so we run more sweeps to the same digits).
* ``constrained`` -- ``constrained_cp`` vs TensorLy ``constrained_parafac`` on every constraint
  TensorLy offers, same start, both to their defaults (at most 100 iterations): the objective
  TensorLy documents (``1/2 ||X - X_hat||^2`` plus the penalty) and time (factorch timed without
  a callback; a separate untimed run with one gives its time to TensorLy's objective); also both
  at TensorLy's iteration count (factorch run ``max_iter`` = TensorLy's count with ``tol=0``:
  the same number of outer iterations and the same inner ADMM budget); small planted data and
  the Indian Pines image (145 x 145 x 200, 4.2e6 entries, bundled with TensorLy) for the
  constraints that suit it.
* ``masked`` -- masked non-negative CP: ``non_negative_cp(mask=)`` (HALS and MU, EM) vs TensorLy
  ``non_negative_parafac(mask=)`` (MU) on the two tensors TensorLy bundles with missing values:
  IL-2 (13 x 4 x 12 x 8, 192 missing) and the kinetic fluorescence tensor (64 x 12 x 10 x 60,
  its missing-value mask), same random start, both to tolerance; observed-entry error and time.
* ``power`` -- ``cp_power`` / ``symmetric_cp_power`` vs TensorLy ``parafac_power_iteration`` /
  ``symmetric_parafac_power_iteration`` (defaults: 10 starts, 10 + 10 sweeps) on planted data,
  small and 1e6 entries.
* ``cmtf`` -- ``cmtf`` vs TensorLy ``coupled_matrix_tensor_3d_factorization`` (same data; each
  its own SVD start) small and 1e6 entries.
* ``arls`` -- ``cp_arls`` (CP-ARLS-LEV) vs exact CP-ALS (``cp``; ``completion.sparse_cp`` for a
  SparseTensor) from the same random start: the time CP-ALS needs to reach the fit CP-ARLS
  stops at, on a dense 250^3 tensor and a sparse low-rank 2000^3 tensor with about 1e6
  nonzeros. (pyttb 1.8.6
  has no ``cp_arls``; TensorLy's ``randomised_parafac`` is uniform/leverage sampling without the
  epoch rule and is not timed here.)

Usage::

    python benchmarks/bench_ports_a.py [--quick] [--only NAME] [--seeds 3] [--repeats 3]

Writes ``benchmarks/results/bench_ports_a.json`` (``_quick`` with ``--quick``).
"""

# The timed lambdas and closures run inside the loop iteration that defines them.
# ruff: noqa: B023
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (stdlib-only; numpy/torch are imported after pinning threads)

SECTIONS = ("parafac2", "constrained", "masked", "power", "cmtf", "arls")


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small cases only, 1 repeat")
    p.add_argument("--only", choices=SECTIONS, action="append")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time (one thread each; robust on a loaded machine)",
    )
    return p.parse_args(argv)


_CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_now = time.perf_counter


def _timed(calls: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, Any], dict]:
    """Run each call ``repeats`` times round-robin; return the last results and median times."""
    out: dict[str, Any] = {}
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = _now()
            out[name] = fn()
            times[name].append(_now() - start)
    return out, {k: statistics.median(v) for k, v in times.items()}


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


# --- PARAFAC2 ----------------------------------------------------------------------------------


def _parafac2_data(seed: int, n_slices: int, rows: tuple[int, int], k: int, rank: int):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    lengths = rng.integers(rows[0], rows[1], size=n_slices)
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n_slices, rank, generator=g, dtype=torch.float64) + 0.2
    b = torch.randn(rank, rank, generator=g, dtype=torch.float64)
    c = torch.rand(k, rank, generator=g, dtype=torch.float64)
    xs = []
    for i, n in enumerate(lengths):
        p = torch.linalg.qr(torch.randn(int(n), rank, generator=g, dtype=torch.float64)).Q
        s = p @ b @ torch.diag(a[i]) @ c.T
        e = torch.randn(s.shape, generator=g, dtype=torch.float64)
        xs.append(s + 0.01 * s.norm() / e.norm() * e)
    return xs


def bench_parafac2(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import torch
    from tensorly.decomposition import parafac2 as tl_parafac2
    from tensorly.decomposition._parafac2 import initialize_decomposition
    from tensorly.parafac2_tensor import parafac2_to_slices

    from factorch.decomp import parafac2
    from factorch.tensors import Parafac2Tensor

    cases = [("small", 30, (20, 60), 40, 3)]
    if not args.quick:
        cases.append(("1.6e6 entries", 100, (100, 220), 100, 5))
    rows = []
    for name, n, span, k, rank in cases:
        for seed in range(args.seeds):
            xs = _parafac2_data(seed, n, span, k, rank)
            xn = [x.numpy() for x in xs]
            entries = sum(x.numel() for x in xs)
            start = initialize_decomposition(xn, rank, init="random", random_state=seed)
            _, f, p = start
            init = Parafac2Tensor.from_factors(*(torch.from_numpy(np.asarray(t)) for t in f),
                                               [torch.from_numpy(q) for q in p])  # fmt: skip
            res, t = _timed({
                "tensorly": lambda: tl_parafac2(xn, rank, init=start, return_errors=True),
                "factorch": lambda: parafac2(xs, rank, init=init),
                # TensorLy's default tolerance: both stop by the same rule.
                "factorch_tol": lambda: parafac2(xs, rank, init=init, tol=1e-8),
            }, args.repeats)  # fmt: skip
            (tl_model, tl_errs) = res["tensorly"]
            tl_err = math.sqrt(sum(float(np.square(s - x).sum()) for s, x in
                                   zip(parafac2_to_slices(tl_model), xn))
                               / sum(float(np.square(x).sum()) for x in xn))  # fmt: skip
            ours, ours_tol = res["factorch"], res["factorch_tol"]
            # factorch's time to first reach TensorLy's final error: a run that stops there
            # (its callback builds the model every iteration, so this time is pessimistic).
            began = _now()
            reached = parafac2(xs, rank, init=init,
                               callback=lambda s: s.error <= tl_err * (1 + 1e-6))  # fmt: skip
            reach = _now() - began if reached.error <= tl_err * (1 + 1e-6) else math.inf
            rows.append({
                "case": name, "entries": entries, "seed": seed,
                "error_factorch": ours.error, "error_tensorly": tl_err,
                "error_factorch_tol": ours_tol.error,
                # TensorLy records no error on its line-search iterations: count them all.
                "iters_factorch": ours.iterations, "iters_factorch_tol": ours_tol.iterations,
                "iters_tensorly_recorded": len(tl_errs),
                "time_factorch_s": t["factorch"], "time_tensorly_s": t["tensorly"],
                "time_factorch_tol_s": t["factorch_tol"],
                "speedup": t["tensorly"] / t["factorch"],
                "speedup_same_tol": t["tensorly"] / t["factorch_tol"],
                "time_factorch_to_tensorly_error_s": reach,
                "speedup_at_tensorly_error": t["tensorly"] / reach,
            })  # fmt: skip
            _print_row("parafac2", rows[-1])
    return rows


# --- constrained CP ------------------------------------------------------------------------------


def _constrained_cases():
    from factorch.decomp import constraints as C

    all3 = (0, 1, 2)
    return [
        ("non_negative", {"non_negative": True}, dict.fromkeys(all3, C.NonNegative())),
        ("l1_reg", {"l1_reg": 0.05}, dict.fromkeys(all3, C.L1(0.05))),
        ("group_lasso", {"group_lasso": 0.05}, dict.fromkeys(all3, C.GroupLasso(0.05))),
        ("l2_reg", {"l2_reg": 0.05}, dict.fromkeys(all3, C.L2(0.05))),
        ("l2_square_reg", {"l2_square_reg": 0.01}, dict.fromkeys(all3, C.Ridge(0.01))),
        ("unimodality", {"unimodality": {1: True}}, {1: C.Unimodal()}),
        ("normalize", {"normalize": {1: True}}, {1: C.UnitNorm()}),
        ("simplex", {"simplex": {1: 1.0}}, {1: C.Simplex()}),
        ("normalized_sparsity", {"normalized_sparsity": {1: 30}},
         {1: C.HardSparsity(30, unit_norm=True)}),
        ("soft_sparsity", {"soft_sparsity": {1: 1.0}}, {1: C.L1Ball(1.0)}),
        ("smoothness", {"smoothness": {2: 0.5}}, {2: C.Smooth(0.5)}),
        ("monotonicity", {"monotonicity": {1: True}}, {1: C.Monotone()}),
        ("hard_sparsity", {"hard_sparsity": {1: 30}}, {1: C.HardSparsity(30)}),
    ]  # fmt: skip


def _objective(factors, weights, x, ops) -> float:
    import torch

    from factorch.tensors import CPTensor

    model = CPTensor(torch.as_tensor(weights, dtype=torch.float64),
                     tuple(torch.as_tensor(f) for f in factors))  # fmt: skip
    err2 = float((model.to_dense() - x).square().sum())
    return 0.5 * err2 + sum(op.penalty(model.factors[n]) for n, op in ops.items())


def bench_constrained(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import tensorly as tl
    import torch
    from tensorly.datasets import load_indian_pines
    from tensorly.decomposition import constrained_parafac

    from factorch.decomp import constrained_cp
    from factorch.decomp import constraints as C
    from factorch.random import random_cp
    from factorch.tensors import CPTensor

    rows = []
    problems = [("planted 20x21x22", None, _constrained_cases(), 3)]
    if not args.quick:
        pines = torch.from_numpy(np.asarray(load_indian_pines().tensor, dtype=np.float64))
        pines = pines / pines.max()
        big = [c for c in _constrained_cases() if c[0] in ("non_negative", "l1_reg", "simplex")]
        big = [(name, kw, ops) for name, kw, ops in big]
        big[1] = ("l1_reg", {"l1_reg": 10.0}, dict.fromkeys((0, 1, 2), C.L1(10.0)))
        problems.append(("Indian Pines 145x145x200", pines, big, 5))
    for label, data, cases, rank in problems:
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(seed)
            if data is None:
                truth = random_cp((20, 21, 22), 3, generator=g, dtype=torch.float64)
                truth = CPTensor(truth.weights.abs(), tuple(f.abs() for f in truth.factors))
                x = truth.to_dense()
                e = torch.randn(x.shape, generator=g, dtype=torch.float64)
                x = x + 0.01 * x.norm() / e.norm() * e
            else:
                x = data
            init = [torch.rand(s, rank, generator=g, dtype=torch.float64) + 0.1 for s in x.shape]
            xn = x.numpy()
            for name, kw, ops in cases:

                def tl_init(init=init):  # fresh each call: TensorLy updates its init's list
                    return tl.cp_tensor.CPTensor((np.ones(rank), [f.numpy().copy() for f in init]))

                def run_tl(kw=kw, tl_init=tl_init):
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            return constrained_parafac(xn, rank, init=tl_init(), **kw)
                        except np.linalg.LinAlgError:
                            return None

                def run_ours(ops=ops, **kw):
                    return constrained_cp(
                        x, rank, constraints=ops, init=CPTensor.from_factors(init), **kw
                    )

                def tl_iterations(kw=kw, tl_init=tl_init) -> int:
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            _, errs = constrained_parafac(xn, rank, init=tl_init(),
                                                         return_errors=True, **kw)  # fmt: skip
                        except np.linalg.LinAlgError:
                            return 0
                    return len(errs)

                n_tl = tl_iterations()
                matched = n_tl or 1
                calls = {
                    "tensorly": run_tl,
                    "factorch": run_ours,
                    "factorch_matched": lambda run_ours=run_ours, m=matched: run_ours(
                        max_iter=m, tol=0.0
                    ),
                }
                res, t = _timed(calls, args.repeats)
                ref, ours = res["tensorly"], res["factorch"]
                stamps: list[float] = []
                start = _now()
                run_ours(callback=lambda s: stamps.append(_now() - start))
                obj_tl = math.inf if ref is None else _objective(ref.factors, ref.weights, x, ops)
                obj = _objective([f for f in ours.model.factors], ours.model.weights, x, ops)
                # factorch's time to first reach TensorLy's final objective (its own trace).
                reach = next((stamps[k] for k, v in enumerate(ours.extras["objective"])
                              if v <= obj_tl * (1 + 1e-9)), math.inf)  # fmt: skip
                rows.append({
                    "data": label, "constraint": name, "seed": seed,
                    "objective_factorch": obj, "objective_tensorly": obj_tl,
                    "objective_ratio": obj / obj_tl if obj_tl else math.nan,
                    "iters_factorch": ours.iterations, "iters_tensorly": n_tl,
                    "time_factorch_at_tensorly_iterations_s": t["factorch_matched"],
                    "speedup_at_tensorly_iterations": (
                        t["tensorly"] / t["factorch_matched"] if n_tl else math.nan
                    ),
                    "objective_ratio_at_tensorly_iterations": (
                        _objective(res["factorch_matched"].model.factors,
                                   res["factorch_matched"].model.weights, x, ops) / obj_tl
                        if n_tl else math.nan
                    ),
                    "time_factorch_s": t["factorch"], "time_tensorly_s": t["tensorly"],
                    "time_factorch_to_tensorly_objective_s": reach,
                    "speedup": t["tensorly"] / t["factorch"],
                    "speedup_at_tensorly_objective": t["tensorly"] / reach,
                    "tensorly_failed": ref is None,
                })  # fmt: skip
                _print_row("constrained", rows[-1])
    return rows


# --- masked non-negative CP ---------------------------------------------------------------------


def bench_masked(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import tensorly as tl
    import torch
    from tensorly.datasets import load_IL2data, load_kinetic
    from tensorly.decomposition import non_negative_parafac

    from factorch.decomp import non_negative_cp
    from factorch.tensors import CPTensor

    il2 = np.asarray(load_IL2data().tensor, dtype=np.float64)
    kin = load_kinetic()
    kx = np.asarray(kin.tensor, dtype=np.float64)
    kmask = ~np.asarray(kin.missing_values_position, dtype=bool)
    data = [("IL-2 (rank 3)", il2, ~np.isnan(il2), 3)]
    if not args.quick:
        data.append(("kinetic (rank 4)", np.clip(kx, 0, None), kmask, 4))
    rows = []
    for label, raw, mask, rank in data:
        filled = np.where(mask, raw, 0.0)
        x = torch.from_numpy(np.where(mask, raw, np.nan))
        m = torch.from_numpy(mask)
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(seed)
            init = [torch.rand(s, rank, generator=g, dtype=torch.float64) + 0.01 for s in x.shape]
            tl_init = tl.cp_tensor.CPTensor((np.ones(rank), [f.numpy().copy() for f in init]))
            calls = {
                "tensorly_mu": lambda: non_negative_parafac(
                    filled, rank, init=tl_init, n_iter_max=2000, tol=1e-9,
                    mask=mask.astype(np.float64)),
                "factorch_hals": lambda: non_negative_cp(
                    x, rank, init=CPTensor.from_factors(init), mask=m, max_iter=2000),
                "factorch_mu": lambda: non_negative_cp(
                    x, rank, method="mu", init=CPTensor.from_factors(init), mask=m,
                    max_iter=2000),
            }  # fmt: skip
            res, t = _timed(calls, args.repeats)
            obs = np.where(mask, raw, 0.0)

            def err(dense, obs=obs, mask=mask):
                return float(np.linalg.norm(np.where(mask, obs - dense, 0.0)) / np.linalg.norm(obs))

            row = {"data": label, "seed": seed}
            row["error_tensorly_mu"] = err(tl.cp_to_tensor(res["tensorly_mu"]))
            for name in ("factorch_hals", "factorch_mu"):
                row[f"error_{name}"] = err(res[name].model.to_dense().numpy())
                row[f"iters_{name}"] = res[name].iterations
                row[f"speedup_{name}"] = t["tensorly_mu"] / t[name]
            row.update({f"time_{k}_s": v for k, v in t.items()})
            rows.append(row)
            _print_row("masked", row)
    return rows


# --- power iteration ---------------------------------------------------------------------------


def bench_power(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import tensorly as tl
    import torch
    from tensorly.decomposition import parafac_power_iteration, symmetric_parafac_power_iteration

    from factorch.decomp import cp_power, symmetric_cp_power
    from factorch.random import random_cp
    from factorch.tensors import CPTensor

    sizes = [40] if args.quick else [40, 100]
    rows = []
    for size in sizes:
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(seed)
            x = random_cp((size,) * 3, 5, generator=g, dtype=torch.float64).to_dense()
            a = torch.randn(size, 5, generator=g, dtype=torch.float64)
            xs = CPTensor(torch.linspace(5, 1, 5, dtype=torch.float64), (a, a, a)).to_dense()
            xn, xsn = x.numpy(), xs.numpy()

            def tl_general():
                np.random.seed(seed)  # noqa: NPY002 (TensorLy draws from numpy's global state)
                return parafac_power_iteration(xn, 5)

            def tl_sym():
                np.random.seed(seed)  # noqa: NPY002
                return symmetric_parafac_power_iteration(xsn, 5)

            calls = {
                "tensorly": tl_general,
                "factorch": lambda: cp_power(x, 5, generator=torch.Generator().manual_seed(seed)),
                "tensorly_sym": tl_sym,
                "factorch_sym": lambda: symmetric_cp_power(
                    xs, 5, generator=torch.Generator().manual_seed(seed)),
            }  # fmt: skip
            res, t = _timed(calls, args.repeats)
            w, f = res["tensorly"]
            ws, fs = res["tensorly_sym"]
            row = {
                "size": f"{size}^3", "seed": seed,
                "error_factorch": res["factorch"].error,
                "error_tensorly": _rel(xn, tl.cp_to_tensor((w, f))),
                "speedup": t["tensorly"] / t["factorch"],
                "error_factorch_sym": res["factorch_sym"].error,
                "error_tensorly_sym": _rel(xsn, tl.cp_to_tensor((ws, [fs] * 3))),
                "speedup_sym": t["tensorly_sym"] / t["factorch_sym"],
            }  # fmt: skip
            row.update({f"time_{k}_s": v for k, v in t.items()})
            rows.append(row)
            _print_row("power", row)
    return rows


# --- CMTF ----------------------------------------------------------------------------------------


def bench_cmtf(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import tensorly as tl
    import torch
    from tensorly.decomposition import coupled_matrix_tensor_3d_factorization as tl_cmtf

    from factorch.decomp import cmtf
    from factorch.tensors import CPTensor

    shapes = [((30, 40, 50), 30)] if args.quick else [((30, 40, 50), 30), ((100, 100, 100), 80)]
    rows = []
    for shape, cols in shapes:
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(seed)
            f = [torch.randn(n, 4, generator=g, dtype=torch.float64) for n in shape]
            v = torch.randn(cols, 4, generator=g, dtype=torch.float64)
            x = CPTensor.from_factors(f).to_dense()
            y = f[0] @ v.T
            ex = torch.randn(x.shape, generator=g, dtype=torch.float64)
            ey = torch.randn(y.shape, generator=g, dtype=torch.float64)
            x = x + 0.1 * x.norm() / ex.norm() * ex
            y = y + 0.1 * y.norm() / ey.norm() * ey
            xn, yn = x.numpy(), y.numpy()

            def run_tl():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return tl_cmtf(xn, yn, 4)

            res, t = _timed({"tensorly": run_tl, "factorch": lambda: cmtf(x, y, 4)}, args.repeats)
            tt, tm, _ = res["tensorly"]
            tl_err = math.sqrt(
                (float(np.square(xn - tl.cp_to_tensor(tt)).sum())
                 + float(np.square(yn - tl.cp_to_tensor(tm)).sum()))
                / (float(np.square(xn).sum()) + float(np.square(yn).sum())))  # fmt: skip
            rows.append({
                "shape": "x".join(map(str, shape)) + f" + {shape[0]}x{cols}", "seed": seed,
                "error_factorch": res["factorch"].error, "error_tensorly": tl_err,
                "time_factorch_s": t["factorch"], "time_tensorly_s": t["tensorly"],
                "speedup": t["tensorly"] / t["factorch"],
            })  # fmt: skip
            _print_row("cmtf", rows[-1])
    return rows


# --- CP-ARLS-LEV against exact CP-ALS -----------------------------------------------------------


def _time_to_reach(run: Callable[[Callable], Any], target: float) -> tuple[float, float, Any]:
    """Run ``run(callback)``; return (seconds until the error first reached ``target``, total
    seconds, result)."""
    start = time.perf_counter()
    reached = [math.inf]

    def callback(state):
        if state.error <= target and reached[0] == math.inf:
            reached[0] = time.perf_counter() - start
        return None

    out = run(callback)
    return reached[0], time.perf_counter() - start, out


def bench_arls(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from factorch.completion import sparse_cp
    from factorch.decomp import cp, cp_arls
    from factorch.random import random_cp
    from factorch.tensors import CPTensor

    rows = []
    size = 120 if args.quick else 250
    for seed in range(args.seeds):
        g = torch.Generator().manual_seed(seed)
        truth = random_cp((size,) * 3, 10, generator=g, dtype=torch.float64)
        x = truth.to_dense()
        e = torch.randn(x.shape, generator=g, dtype=torch.float64)
        x = x + 0.01 * x.norm() / e.norm() * e
        init = CPTensor.from_factors([torch.rand(size, 10, generator=g, dtype=torch.float64)
                                      for _ in range(3)])  # fmt: skip
        start = time.perf_counter()
        arls = cp_arls(x, 10, init=init, n_samples=4096, generator=torch.Generator().manual_seed(9))
        t_arls = time.perf_counter() - start
        target = arls.error
        t_als, total_als, als = _time_to_reach(
            lambda cb: cp(x, 10, init=init, max_iter=500, tol=1e-9, callback=cb), target
        )
        rows.append({
            "data": f"dense {size}^3 rank 10", "seed": seed, "error_arls": arls.error,
            "error_als": als.error, "time_arls_s": t_arls, "time_als_to_reach_s": t_als,
            "time_als_total_s": total_als, "speedup_at_matching_fit": t_als / t_arls,
            "arls_sweeps": arls.extras["sweeps"], "als_sweeps": als.iterations,
        })  # fmt: skip
        _print_row("arls", rows[-1])
    dim, nnz = (400, 2 * 10**5) if args.quick else (2000, 10**6)
    for seed in range(args.seeds):
        g = torch.Generator().manual_seed(100 + seed)
        st = _sparse_low_rank(dim, nnz, 5, g)
        init = CPTensor.from_factors([torch.rand(dim, 5, generator=g, dtype=torch.float64)
                                      for _ in range(3)])  # fmt: skip
        start = time.perf_counter()
        arls = cp_arls(st, 5, init=init, n_samples=4096, generator=torch.Generator().manual_seed(9))
        t_arls = time.perf_counter() - start
        t_als, total_als, als = _time_to_reach(
            lambda cb: sparse_cp(st, 5, init=init, max_iter=300, tol=1e-7, callback=cb),
            arls.error,
        )
        rows.append({
            "data": f"sparse {dim}^3, {st.nnz} nnz, rank 5", "seed": seed,
            "error_arls": arls.error, "error_als": als.error, "time_arls_s": t_arls,
            "time_als_to_reach_s": t_als, "time_als_total_s": total_als,
            "speedup_at_matching_fit": t_als / t_arls,
            "arls_sweeps": arls.extras["sweeps"], "als_sweeps": als.iterations,
        })  # fmt: skip
        _print_row("arls", rows[-1])
    return rows


def _sparse_low_rank(dim: int, nnz: int, rank: int, g):
    """A sparse rank-``rank`` tensor: sparse non-negative factors (about ``(nnz / rank)^(1/3)``
    nonzeros per column), the nonzeros of the sum of their outer products, 1 % noise on them."""
    import torch

    from factorch.tensors import SparseTensor

    per = max(2, round((nnz / rank) ** (1 / 3)))
    idx, vals = [], []
    for _ in range(rank):
        rows = [torch.randperm(dim, generator=g)[:per] for _ in range(3)]
        w = [torch.rand(per, generator=g, dtype=torch.float64) + 0.5 for _ in range(3)]
        grid = torch.cartesian_prod(*rows).T
        val = torch.cartesian_prod(*w).prod(1)
        idx.append(grid)
        vals.append(val)
    coords, values = torch.cat(idx, 1), torch.cat(vals)
    values = values * (1 + 0.01 * torch.randn(values.shape, generator=g, dtype=torch.float64))
    return SparseTensor.from_coo(coords, values, (dim,) * 3, duplicates="sum")


def _print_row(section: str, row: dict[str, Any]) -> None:
    parts = []
    for k, v in row.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    print(f"[{section}] " + " ".join(parts), flush=True)


def _summary(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the speedups and the worst accuracy ratios per case."""
    out: dict[str, Any] = {}
    keys = [k for k in rows[0] if k.startswith("speedup")] if rows else []
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), float) and math.isfinite(r[k])]
        if vals:
            out[f"median_{k}"] = statistics.median(vals)
            out[f"min_{k}"] = min(vals)
    return out


def main(argv: list[str] | None = None) -> None:
    global _now
    args = _parse(argv)
    _now = _CLOCK[args.clock]
    _common.pin_threads(args.threads)
    threads = _common.apply_threads(args.threads)
    if args.quick:
        args.repeats = 1
    runners = {"parafac2": bench_parafac2, "constrained": bench_constrained,
               "masked": bench_masked, "power": bench_power, "cmtf": bench_cmtf,
               "arls": bench_arls}  # fmt: skip
    meta = {"machine": _common.machine_info(), "threads": threads, "args": vars(args)}
    results: dict[str, Any] = {}
    chosen = args.only or list(SECTIONS)
    for name in chosen:
        rows = runners[name](args)
        results[name] = {"rows": rows, "summary": _summary(name, rows)}
        print(f"== {name}: {results[name]['summary']}", flush=True)
    path = _common.write_sections(
        "bench_ports_a" + ("_quick" if args.quick else ""),
        meta,
        results,
        partial=set(chosen) != set(SECTIONS),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
