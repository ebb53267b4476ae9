"""Ports from TensorLy and pyttb (issue 11, part B): factorch against the anchor, side by side.

Cases (float64, one process, TensorLy on its numpy backend, 1 thread unless ``--threads``):

* ``robust_pca``: a 200 x 160 matrix = rank 5 + 5 % sparse outliers (size 10). factorch
  ``robust_pca`` (principal component pursuit, inexact ALM, ``tol=1e-10``) against TensorLy's
  ``robust_pca`` on the matrix (its default ADMM, ``reg_E = 2 / sqrt(200)`` since its nuclear norm
  term counts the matrix twice, ``n_iter_max=500``, ``tol=1e-7``). Accuracy: ``||L - L*|| /
  ||L*||`` against the planted low-rank part.
* ``robust_tensor_pca``: 30^3 = Tucker rank (2, 2, 2) + 5 % outliers, 10 % of the entries
  missing; the same model and parameters on both sides (``reg_E = reg_sparse = 0.3``: TensorLy's
  default 1 recovers nothing here, on either side; TensorLy's defaults otherwise,
  ``mu_init=1e-4``, ``learning_rate=1.1``; ``n_iter_max=300``). TensorLy stops when the
  *absolute* residuals fall below ``tol=1e-7``; factorch's ``tol`` is relative to
  ``||P_Omega(X)||``, so it gets ``1e-7 / ||P_Omega(X)||``: the same stopping rule. Accuracy as
  above, on every entry (the missing ones are completed).
* ``tucker_mask_il2``: the IL-2 response tensor bundled with TensorLy (real data, 6 % missing),
  Tucker rank (3, 3, 3, 3), 100 sweeps (``tol=0``) on both sides; factorch's EM imputation
  against TensorLy's masked HOOI (same ``svd`` start). Accuracy: relative error on the observed
  entries. Deterministic: one "seed".
* ``tucker_mask_planted``: 100^3 (10^6 entries) = Tucker rank (5, 5, 5) + 1 % noise, 20 %
  missing, rank (5, 5, 5), 30 sweeps, ``tol=0``. Accuracy: observed relative error.
* ``cp_apr_mu`` / ``cp_apr_pdnr``: Poisson counts from a planted non-negative CP of rank 4 on
  60 x 50 x 40 (mean count 0.5; ``SparseTensor`` / ``pyttb.sptensor``), rank 4, the same
  random start, pyttb's default stopping rule (``tol=1e-4`` on the KKT violation) on both sides,
  ``max_iter=50`` (mu) / 30 (pdnr). Accuracy: the final log-likelihood (higher is better).
* ``cp_apr_pqnr``: the same data and start, ``max_iter=200`` (to convergence): factorch's PQN-R
  against pyttb's PQN-R (which stops on an ``AssertionError`` in pyttb 1.8.6: accuracy NaN) and
  pyttb's PDN-R (its fastest solver that runs).
* ``cp_regressor`` / ``tucker_regressor``: n = 1000 samples of 20 x 20 features, scalar response
  from a rank-3 CP coefficient + noise; rank 3 / (3, 3), ``l2 = reg_W = 0.5``, 50 sweeps,
  ``tol=0``, the same random start (TensorLy's ``random_state``). Accuracy: relative prediction
  error on 500 held-out samples.
* ``cp_plsr``: n = 400 samples of 20 x 15 x 10, 4 responses, 5 components, TensorLy's
  ``CP_PLSR(tol=1e-9)``. Accuracy: held-out relative prediction error.
* ``tt_cross``: the dense 16^5 tensor (1.05 * 10^6 entries) of ``1 / (1 + sum_k i_k / 16)``,
  TT rank 6, ``tol=1e-8``; TensorLy's ``tensor_train_cross`` reads the same dense tensor.
  Accuracy: relative error of the whole TT.

Per case and seed the implementations are timed round-robin (:func:`_common.time_calls`; one
untimed warm-up call first, whose result gives the accuracy); the table shows the median over the
seeds of each seed's median wall time, the worst accuracy over the seeds, and ``anchor / factorch``
(> 1: factorch faster), the median of the per-seed ratios.

Usage::

    python benchmarks/bench_ports_b.py [--quick] [--threads N] [--cases a,b,...]

Writes ``benchmarks/results/bench_ports_b.json`` (``_quick.json`` with ``--quick``: one timed
repeat, 3 seeds) and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

NAME = "bench_ports_b"
SEEDS = (0, 1, 2)

# A case builds its data for a seed and returns {implementation: (run, accuracy)}: ``run()``
# fits, ``accuracy(result)`` scores the fit. The first implementation is factorch.
Impl = tuple[Callable[[], Any], Callable[[Any], float]]
Case = Callable[[int], dict[str, Impl]]


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one timed repeat per implementation")
    p.add_argument("--threads", type=int, default=1, help="threads for torch and numpy (1)")
    p.add_argument("--cases", default="", help="comma-separated subset of the cases")
    return p.parse_args(argv)


def _gen(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(seed)


def _rel(a: Any, b: Any) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _spikes(shape: tuple[int, ...], frac: float, g: Any) -> Any:
    import torch

    s = torch.zeros(shape, dtype=torch.float64)
    n = s.numel()
    k = int(frac * n)
    where = torch.randperm(n, generator=g)[:k]
    s.view(-1)[where] = 10 * torch.randn(k, generator=g, dtype=torch.float64)
    return s


# --- robust decompositions ---------------------------------------------------------------------
def case_robust_pca(seed: int) -> dict[str, Impl]:
    import torch
    from tensorly.decomposition import robust_pca as tl_robust_pca

    from factorch.decomp import robust_pca

    m, n, r = 200, 160, 5
    g = _gen(seed)
    low = torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(
        r, n, generator=g, dtype=torch.float64
    )
    x = low + _spikes((m, n), 0.05, g)
    xn, lown = x.numpy(), low.numpy()
    return {
        "factorch": (lambda: robust_pca(x, tol=1e-10), lambda res: _rel(res.low_rank, lown)),
        "tensorly": (
            lambda: tl_robust_pca(xn, reg_E=2 / m**0.5, n_iter_max=500, tol=1e-7, verbose=0),
            lambda out: _rel(out[0], lown),
        ),
    }


def case_robust_tensor_pca(seed: int) -> dict[str, Impl]:
    import torch
    from tensorly.decomposition import robust_pca as tl_robust_pca

    from factorch.decomp import robust_tensor_pca
    from factorch.random import random_tucker

    shape = (30, 30, 30)
    g = _gen(seed)
    low = random_tucker(shape, (2, 2, 2), generator=g, dtype=torch.float64).to_dense()
    low = low / low.std()
    x = low + _spikes(shape, 0.05, g)
    mask = torch.rand(shape, generator=g, dtype=torch.float64) > 0.1
    given = torch.where(mask, x, 0.0)
    gn, maskf, lown = given.numpy(), mask.double().numpy(), low.numpy()
    tol = 1e-7 / float(given.norm())  # TensorLy's absolute stopping rule, made relative

    def ours() -> Any:
        return robust_tensor_pca(given, mask=mask, reg_sparse=0.3, mu_init=1e-4, mu_max=1e10,
                                 learning_rate=1.1, max_iter=300, tol=tol)  # fmt: skip

    def theirs() -> Any:
        return tl_robust_pca(gn, mask=maskf, reg_E=0.3, n_iter_max=300, tol=1e-7, verbose=0)

    return {
        "factorch": (ours, lambda res: _rel(res.low_rank, lown)),
        "tensorly": (theirs, lambda out: _rel(out[0], lown)),
    }


# --- masked Tucker -----------------------------------------------------------------------------
def _masked_tucker(x: Any, mask: Any, rank: tuple[int, ...], iters: int) -> dict[str, Impl]:
    import numpy as np
    import tensorly as tl
    from tensorly.decomposition import tucker as tl_tucker

    from factorch.decomp import tucker

    zeros = np.where(mask, x, 0.0)
    maskf = mask.astype(np.float64)
    observed = np.linalg.norm(zeros[mask])

    def tl_error(out: Any) -> float:
        approx = tl.tucker_to_tensor(out)
        return float(np.linalg.norm((approx - zeros)[mask]) / observed)

    def ours_error(res: Any) -> float:
        approx = res.model.to_dense().numpy()
        return float(np.linalg.norm((approx - zeros)[mask]) / observed)

    return {
        "factorch": (lambda: tucker(x, rank, mask=mask, max_iter=iters, tol=0), ours_error),
        "tensorly": (
            lambda: tl_tucker(zeros, rank, mask=maskf, n_iter_max=iters, tol=0, init="svd"),
            tl_error,
        ),
    }


def case_tucker_mask_il2(seed: int) -> dict[str, Impl]:
    import numpy as np
    from tensorly.datasets import load_IL2data

    x = load_IL2data().tensor
    return _masked_tucker(x, ~np.isnan(x), (3, 3, 3, 3), 100)


def case_tucker_mask_planted(seed: int) -> dict[str, Impl]:
    import torch

    from factorch.random import random_tucker

    shape = (100, 100, 100)
    g = _gen(seed)
    x = random_tucker(shape, (5, 5, 5), generator=g, dtype=torch.float64).to_dense()
    x = x + 0.01 * x.std() * torch.randn(shape, generator=g, dtype=torch.float64)
    mask = torch.rand(shape, generator=g, dtype=torch.float64) > 0.2
    return _masked_tucker(x.numpy(), mask.numpy(), (5, 5, 5), 30)


# --- CP-APR ------------------------------------------------------------------------------------
def _cp_apr(seed: int, method: Literal["mu", "pdnr"]) -> dict[str, Impl]:
    import pyttb as ttb
    import torch

    from factorch.decomp import cp_apr
    from factorch.interop import to_pyttb
    from factorch.tensors import CPTensor, SparseTensor

    shape, rank = (60, 50, 40), 4
    g = _gen(seed)
    truth = CPTensor.from_factors(
        [torch.rand(n, rank, generator=g, dtype=torch.float64) ** 3 for n in shape]
    ).to_dense()
    x = torch.poisson(truth * (0.5 / float(truth.mean())), generator=g)
    sp = SparseTensor.from_dense(x)
    init = CPTensor.from_factors(
        [torch.rand(n, rank, generator=g, dtype=torch.float64) for n in shape]
    )
    sp_ttb, init_ttb = to_pyttb(sp), to_pyttb(init)
    iters = 50 if method == "mu" else 30

    def theirs() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ttb.cp_apr(sp_ttb, rank, algorithm=method, init=init_ttb, maxiters=iters,
                              printitn=0)  # fmt: skip

    return {
        "factorch": (
            lambda: cp_apr(sp, rank, method=method, init=init, max_iter=iters),
            lambda res: res.log_likelihood,
        ),
        "pyttb": (theirs, lambda out: float(out[2]["obj"])),
    }


def case_cp_apr_mu(seed: int) -> dict[str, Impl]:
    return _cp_apr(seed, "mu")


def case_cp_apr_pdnr(seed: int) -> dict[str, Impl]:
    return _cp_apr(seed, "pdnr")


def case_cp_apr_pqnr(seed: int) -> dict[str, Impl]:
    """factorch's PQN-R against pyttb's PQN-R (which fails in pyttb 1.8.6: its L-BFGS
    direction collapses to a scalar and it stops on an ``AssertionError``; recorded as NaN) and
    pyttb's PDN-R, the fastest pyttb solver that runs, all to pyttb's default stopping rule."""
    import pyttb as ttb
    import torch

    from factorch.decomp import cp_apr
    from factorch.interop import to_pyttb
    from factorch.tensors import CPTensor, SparseTensor

    shape, rank = (60, 50, 40), 4
    g = _gen(seed)
    truth = CPTensor.from_factors(
        [torch.rand(n, rank, generator=g, dtype=torch.float64) ** 3 for n in shape]
    ).to_dense()
    x = torch.poisson(truth * (0.5 / float(truth.mean())), generator=g)
    sp = SparseTensor.from_dense(x)
    init = CPTensor.from_factors(
        [torch.rand(n, rank, generator=g, dtype=torch.float64) for n in shape]
    )
    sp_ttb, init_ttb = to_pyttb(sp), to_pyttb(init)
    iters = 200

    def theirs(algorithm: str) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return ttb.cp_apr(sp_ttb, rank, algorithm=algorithm, init=init_ttb.copy(),
                                  maxiters=iters, printitn=0)  # fmt: skip
            except AssertionError:  # pyttb 1.8.6's PQN-R: "L-BFGS first iterate is bad"
                return None

    def score(out: Any) -> float:
        return float("nan") if out is None else float(out[2]["obj"])

    return {
        "factorch": (
            lambda: cp_apr(sp, rank, method="pqnr", init=init, max_iter=iters),
            lambda res: res.log_likelihood,
        ),
        "pyttb_pqnr": (lambda: theirs("pqnr"), score),
        "pyttb_pdnr": (lambda: theirs("pdnr"), score),
    }


# --- regression --------------------------------------------------------------------------------
def _regression_data(seed: int, n: int, xshape: tuple[int, ...], outputs: int) -> tuple[Any, ...]:
    import torch

    from factorch.tensors import CPTensor

    g = _gen(seed)
    total = n + 500
    x = torch.randn(total, *xshape, generator=g, dtype=torch.float64)
    yshape = (outputs,) if outputs else ()
    w = CPTensor.from_factors(
        [torch.randn(i, 3, generator=g, dtype=torch.float64) for i in (*xshape, *yshape)]
    ).to_dense()
    y = torch.tensordot(x, w, dims=len(xshape))
    y = y + 0.1 * y.std() * torch.randn(y.shape, generator=g, dtype=torch.float64)
    return x[:n], y[:n], x[n:], y[n:]


def case_cp_regressor(seed: int) -> dict[str, Impl]:
    import numpy as np
    import torch
    from tensorly.regression import CPRegressor as TLCPRegressor

    from factorch.regression import CPRegressor
    from factorch.tensors import CPTensor

    x, y, xt, yt = _regression_data(seed, 1000, (20, 20), 0)
    rng = np.random.RandomState(seed)
    start = [rng.randn(20, 3), rng.randn(20, 3)]
    init = CPTensor.from_factors([torch.from_numpy(f) for f in start])
    xn, yn, xtn = x.numpy(), y.numpy(), xt.numpy()

    def theirs() -> Any:
        est = TLCPRegressor(3, reg_W=0.5, n_iter_max=50, tol=0, verbose=0)
        est.random_state = np.random.RandomState(seed)  # draws `start`
        return est.fit(xn, yn)

    return {
        "factorch": (
            lambda: CPRegressor(3, l2=0.5, max_iter=50, tol=0, init=init).fit(x, y),
            lambda est: _rel(est.predict(xt), yt),
        ),
        "tensorly": (theirs, lambda est: _rel(est.predict(xtn), yt)),
    }


def case_tucker_regressor(seed: int) -> dict[str, Impl]:
    import numpy as np
    import torch
    from tensorly.regression import TuckerRegressor as TLTuckerRegressor

    from factorch.regression import TuckerRegressor
    from factorch.tensors import TuckerTensor

    x, y, xt, yt = _regression_data(seed, 1000, (20, 20), 0)
    rng = np.random.RandomState(seed)
    core, factors = rng.randn(3, 3), [rng.randn(20, 3), rng.randn(20, 3)]
    init = TuckerTensor(torch.from_numpy(core), [torch.from_numpy(f) for f in factors])
    xn, yn, xtn = x.numpy(), y.numpy(), xt.numpy()

    def theirs() -> Any:
        est = TLTuckerRegressor([3, 3], reg_W=0.5, n_iter_max=50, tol=0, verbose=0)
        est.random_state = np.random.RandomState(seed)
        return est.fit(xn, yn)

    return {
        "factorch": (
            lambda: TuckerRegressor((3, 3), l2=0.5, max_iter=50, tol=0, init=init).fit(x, y),
            lambda est: _rel(est.predict(xt), yt),
        ),
        "tensorly": (theirs, lambda est: _rel(est.predict(xtn), yt)),
    }


def case_cp_plsr(seed: int) -> dict[str, Impl]:
    from tensorly.regression import CP_PLSR

    from factorch.regression import CPPLSR

    x, y, xt, yt = _regression_data(seed, 400, (20, 15, 10), 4)
    xn, yn, xtn = x.numpy(), y.numpy(), xt.numpy()
    return {
        "factorch": (lambda: CPPLSR(5).fit(x, y), lambda est: _rel(est.predict(xt), yt)),
        "tensorly": (
            lambda: CP_PLSR(5, tol=1e-9).fit(xn, yn),
            lambda est: _rel(est.predict(xtn), yt),
        ),
    }


# --- TT-cross ----------------------------------------------------------------------------------
def case_tt_cross(seed: int) -> dict[str, Impl]:
    import torch
    from tensorly.contrib.decomposition import tensor_train_cross
    from tensorly.tt_tensor import tt_to_tensor

    from factorch.decomp import tt_cross

    shape = (16,) * 5
    grid = torch.cartesian_prod(*[torch.arange(n, dtype=torch.float64) for n in shape])
    x = (1.0 / (1.0 + grid.sum(1) / 16.0)).reshape(shape)
    xn = x.numpy()
    return {
        "factorch": (
            lambda: tt_cross(x, 6, tol=1e-8, generator=_gen(seed)),
            lambda res: _rel(res.model.to_dense(), xn),
        ),
        "tensorly": (
            lambda: tensor_train_cross(xn, [1, 6, 6, 6, 6, 1], tol=1e-8, random_state=seed),
            lambda cores: _rel(tt_to_tensor(cores), xn),
        ),
    }


CASES: dict[str, tuple[Case, str, tuple[int, ...]]] = {
    # name: (builder, accuracy metric (lower is better unless "log-likelihood"), seeds)
    "robust_pca": (case_robust_pca, "rel. error of L", SEEDS),
    "robust_tensor_pca": (case_robust_tensor_pca, "rel. error of L", SEEDS),
    "tucker_mask_il2": (case_tucker_mask_il2, "observed rel. error", (0,)),
    "tucker_mask_planted": (case_tucker_mask_planted, "observed rel. error", SEEDS),
    "cp_apr_mu": (case_cp_apr_mu, "log-likelihood", SEEDS),
    "cp_apr_pdnr": (case_cp_apr_pdnr, "log-likelihood", SEEDS),
    "cp_apr_pqnr": (case_cp_apr_pqnr, "log-likelihood", SEEDS),
    "cp_regressor": (case_cp_regressor, "held-out rel. error", SEEDS),
    "tucker_regressor": (case_tucker_regressor, "held-out rel. error", SEEDS),
    "cp_plsr": (case_cp_plsr, "held-out rel. error", SEEDS),
    "tt_cross": (case_tt_cross, "rel. error", SEEDS),
}


def run_case(build: Case, seeds: tuple[int, ...], repeats: int) -> dict[str, Any]:
    per_seed: list[dict[str, dict[str, float]]] = []
    for seed in seeds:
        impls = build(seed)
        accuracy = {name: acc(run()) for name, (run, acc) in impls.items()}  # untimed warm-up
        timing = _common.time_calls(
            {name: run for name, (run, _) in impls.items()}, repeats=repeats, warmup=0
        )
        per_seed.append({name: {**timing[name], "accuracy": accuracy[name]} for name in impls})
    names = list(per_seed[0])
    out: dict[str, Any] = {"seeds": list(seeds), "per_seed": per_seed}
    for name in names:
        ratios = [s[name]["median_s"] / s[names[0]]["median_s"] for s in per_seed]
        out[name] = {
            "median_s": statistics.median(s[name]["median_s"] for s in per_seed),
            "cpu_median_s": statistics.median(s[name]["cpu_median_s"] for s in per_seed),
            "accuracy": [s[name]["accuracy"] for s in per_seed],
            "time_ratio_vs_factorch": statistics.median(ratios),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    import tensorly as tl

    threads = _common.apply_threads(args.threads)
    tl.set_backend("numpy")
    chosen = [c for c in args.cases.split(",") if c] or list(CASES)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; choose from {list(CASES)}")
    repeats = 1 if args.quick else 3
    results: dict[str, Any] = {}
    rows = []
    for case in chosen:
        build, metric, seeds = CASES[case]
        res = run_case(build, seeds, repeats)
        results[case] = {"metric": metric, **res}
        higher_better = metric == "log-likelihood"
        for name in res["per_seed"][0]:
            acc = res[name]["accuracy"]
            worst = min(acc) if higher_better else max(acc)
            rows.append([case, name, res[name]["median_s"] * 1e3, metric,
                         f"{worst:.6g}", res[name]["time_ratio_vs_factorch"]])  # fmt: skip
        print(f"done {case}", flush=True)
    meta = {"machine": _common.machine_info(), "threads": threads, "repeats": repeats}
    path = _common.write_sections(
        NAME + ("_quick" if args.quick else ""),
        meta,
        results,
        key="results",
        partial=set(chosen) != set(CASES),
    )
    header = ["case", "implementation", "median ms", "accuracy", "worst over seeds",
              "time / factorch"]  # fmt: skip
    print(_common.format_table(header, rows))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
