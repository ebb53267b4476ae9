"""Functional (continuous-indexed) completion on real data bundled in a pip package.

Data (read at run time from the installed ``vega-datasets`` package, MIT licence; the data are
public-domain NOAA records, see the package's ``dataset_info.json``; nothing is vendored):

* ``seattle-temps``: hourly temperature (deg F) in Seattle, 2010 -- modes day of year (1-365)
  x hour (0-23), 8,759 entries (smooth: hourly climate normals, not raw weather);
* ``sf-temps``: the same for San Francisco, 8,760 entries;
* ``seattle-weather``: daily maximum temperature (deg C) in Seattle 2012-2015 -- modes year x
  day of year, 1,461 entries.

Protocol, per data set and split (``--splits``, default 3 seeds): a uniformly random 80/20
train/test split; values standardised with the training part's mean and std and coordinates
min-max scaled with the training range (errors reported in the original units). Methods:

* global mean; per-mode means (additive model ``mu + sum_k b_k[t_k]`` by backfitting on the
  distinct coordinates, unseen coordinates get 0);
* discrete CP and Tucker completion (``factorch.completion.cp_als`` / ``tucker_als``, row-wise
  ALS) on binned indices, twice: on the natural grid (every distinct coordinate its own index:
  the strongest discrete baseline, possible here because the coordinates are whole days and
  hours) and on ``--coarse-bins`` (30) equal-width bins per mode (what binning genuinely
  continuous coordinates costs). Rank and ``l2`` are chosen on a validation part (10 % of the
  training rows) from ranks {2, 5, 8} x l2 {1e-3, 1e-1}, then refitted on all training
  rows (this favours the baselines: FunBaT's ranks are fixed);
* FunBaT (Tucker, rank 5 per mode), FunBaT-CP (rank 8) -- conditional EP, Matern-3/2 priors with
  the default lengthscale (a tenth of each coordinate range), ``--epochs`` (25) epochs -- and
  FunBaT-MAP (Tucker rank 5, L-BFGS, the same number of epochs).

Reported: test RMSE and MAE (mean +- std over splits), predictive NLL and the coverage of the
95% predictive intervals (Bayesian methods), seconds per epoch (median) and total fit seconds.
Run ``python benchmarks/bench_functional.py [--quick]``; writes
``benchmarks/results/bench_functional.json`` (``_quick.json`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import apply_threads, format_table, machine_info, pin_threads, write_results

DATASETS = ("seattle-temps", "sf-temps", "seattle-weather")


def _vega_file(name: str) -> Path:
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "bench_functional needs the vega-datasets package: pip install vega-datasets"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "_data" / f"{name}.csv"


def load(name: str):
    """``ContinuousData`` of one data set (coordinates in natural units)."""
    import torch

    from factorch.completion.functional import ContinuousData

    rows = list(csv.DictReader(open(_vega_file(name), newline="")))
    coords, values = [], []
    for r in rows:
        if name == "seattle-weather":
            d = dt.datetime.strptime(r["date"], "%Y/%m/%d")
            coords.append((d.year, d.timetuple().tm_yday))
            values.append(float(r["temp_max"]))
        else:
            stamp = r["date"][:16]
            d = dt.datetime.strptime(stamp, "%Y/%m/%d %H:%M")
            coords.append((d.timetuple().tm_yday, d.hour))
            values.append(float(r["temp"]))
    names = ("year", "day") if name == "seattle-weather" else ("day", "hour")
    unit = "degC" if name == "seattle-weather" else "degF"
    return ContinuousData(
        torch.tensor(coords, dtype=torch.float64),
        torch.tensor(values, dtype=torch.float64),
        names,
        None,
        "temp",
        unit,
    )


def _edges(train, bins):
    import torch

    out = []
    for k in range(train.ndim):
        d = torch.unique(train.coords[:, k])
        if d.numel() <= bins:
            mids = (d[1:] + d[:-1]) / 2
            out.append(torch.cat([d[:1] - 1.0, mids, d[-1:] + 1.0]))
        else:
            out.append(train.bin_edges(bins)[k])
    return out


def additive_means(train, test, sweeps=20):
    """Per-mode means by backfitting: y ~ mu + sum_k b_k[coordinate]."""
    import torch

    mu = float(train.values.mean())
    keys = [torch.unique(train.coords[:, k], return_inverse=True) for k in range(train.ndim)]
    b = [torch.zeros(u.numel(), dtype=torch.float64) for u, _ in keys]
    for _ in range(sweeps):
        for k, (_, inv) in enumerate(keys):
            rest = train.values - mu - sum(b[j][keys[j][1]] for j in range(train.ndim) if j != k)
            s = torch.zeros_like(b[k]).index_add_(0, inv, rest)
            c = torch.zeros_like(b[k]).index_add_(0, inv, torch.ones_like(rest))
            b[k] = s / c
    pred = torch.full((len(test),), mu, dtype=torch.float64)
    for k, (u, _) in enumerate(keys):
        pos = torch.searchsorted(u, test.coords[:, k].contiguous()).clamp_max(u.numel() - 1)
        hit = u[pos] == test.coords[:, k]
        pred += torch.where(hit, b[k][pos], torch.zeros_like(pred))
    return pred


def discrete(kind, train, test, bins, generator):
    """Binned CP/Tucker completion with rank and l2 chosen on a validation part."""

    from factorch.completion import cp_als, tucker_als

    fit_fn = cp_als if kind == "cp" else tucker_als
    sub, val = train.split((0.9, 0.1), generator=generator)
    edges = _edges(train, bins)
    sizes = [e.numel() - 1 for e in edges]

    def fit(data, rank, l2):
        grid, _ = data.to_grid(edges)
        r = rank if kind == "cp" else tuple(min(rank, s) for s in sizes)
        return fit_fn(grid, r, l2=l2, max_iter=100).model

    def rmse(model, data):
        return float((model.entries(data.bin_indices(edges)) - data.values).pow(2).mean().sqrt())

    best = min(
        ((rmse(fit(sub, r, l2), val), r, l2) for r in (2, 5, 8) for l2 in (1e-3, 1e-1)),
        key=lambda t: t[0],
    )
    start = time.perf_counter()
    model = fit(train, best[1], best[2])
    seconds = time.perf_counter() - start
    return (
        model.entries(test.bin_indices(edges)).double(),
        seconds,
        {"rank": best[1], "l2": best[2]},
    )


def run_split(name, data, seed, args):
    import torch

    from factorch.completion.functional import Standardization, funbat, funbat_map

    g = torch.Generator().manual_seed(seed)
    train_raw, test_raw = data.split((0.8, 0.2), generator=g)
    stats = Standardization.fit(train_raw)
    train, test = stats.apply(train_raw), stats.apply(test_raw)
    y = test_raw.values

    def raw(z):
        return stats.values_from_standard(z.double())

    def errors(pred):
        r = pred - y
        return {"rmse": float(r.pow(2).mean().sqrt()), "mae": float(r.abs().mean())}

    out = {}
    out["global mean"] = errors(torch.full_like(y, stats.value_mean)) | {"time_s": 0.0}
    start = time.perf_counter()
    out["per-mode means"] = errors(raw(additive_means(train, test))) | {
        "time_s": time.perf_counter() - start
    }
    for bins, label in ((args.bins, "grid"), (args.coarse_bins, f"{args.coarse_bins} bins")):
        for kind in ("cp", "tucker"):
            pred, seconds, chosen = discrete(kind, train, test, bins, g)
            out[f"{kind.upper()}-ALS ({label})"] = errors(raw(pred)) | {"time_s": seconds} | chosen
    e = args.epochs
    runs = {
        "FunBaT (Tucker R=5, EP)": lambda: funbat(train, 5, max_iter=e, generator=g),
        "FunBaT-CP (R=8, EP)": lambda: funbat(train, 8, structure="cp", max_iter=e, generator=g),
        "FunBaT-MAP (Tucker R=5)": lambda: funbat_map(train, 5, max_iter=e, generator=g),
    }
    for label, run in runs.items():
        start = time.perf_counter()
        fit = run()
        seconds = time.perf_counter() - start
        pred = fit.model.destandardize(stats).predict(test_raw)
        out[label] = errors(pred.mean.double()) | {
            "nll": pred.nll(y),
            "coverage95": pred.coverage(y, 0.95),
            "time_s": seconds,
            "s_per_epoch": seconds / fit.epochs,
            "epochs": fit.epochs,
        }
    return out


def summarise(per_split):
    methods = per_split[0].keys()
    table = {}
    for m in methods:
        vals = [s[m] for s in per_split]
        row = {}
        for key in ("rmse", "mae", "nll", "coverage95", "time_s", "s_per_epoch"):
            xs = [v[key] for v in vals if key in v]
            if xs:
                row[key] = statistics.mean(xs)
                row[key + "_std"] = statistics.pstdev(xs) if len(xs) > 1 else 0.0
                if key in ("time_s", "s_per_epoch"):
                    row[key] = statistics.median(xs)
        table[m] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one split, 2 data sets, 10 epochs")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--bins", type=int, default=400, help="grid: distinct coordinates")
    parser.add_argument("--coarse-bins", type=int, default=30, help="coarse equal-width bins")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.splits, args.epochs = 1, 10
    pin_threads(args.threads)
    threads = apply_threads(args.threads)
    names = ("seattle-temps", "seattle-weather") if args.quick else DATASETS
    results = {}
    start = time.perf_counter()
    for name in names:
        data = load(name)
        per_split = [run_split(name, data, seed, args) for seed in range(args.splits)]
        table = summarise(per_split)
        results[name] = {"entries": len(data), "per_split": per_split, "summary": table}
        print(
            f"\n{name}: {len(data)} entries, modes {data.names}, unit {data.value_unit}, "
            f"{args.splits} splits, {args.epochs} epochs"
        )
        rows = []
        for m, r in table.items():
            rows.append(
                [
                    m,
                    f"{r['rmse']:.3f} ± {r['rmse_std']:.3f}",
                    f"{r['mae']:.3f}",
                    f"{r['nll']:.3f}" if "nll" in r else None,
                    f"{r['coverage95']:.3f}" if "coverage95" in r else None,
                    f"{r['s_per_epoch']:.3f}" if "s_per_epoch" in r else None,
                    f"{r['time_s']:.1f}",
                ]
            )
        print(
            format_table(["method", "test RMSE", "MAE", "NLL", "cov95", "s/epoch", "fit s"], rows)
        )
    elapsed = time.perf_counter() - start
    print(f"\ntotal {elapsed:.0f} s wall, {time.process_time():.0f} s CPU")
    payload = {
        "args": vars(args),
        "threads": threads,
        "machine": machine_info(),
        "wall_s": elapsed,
        "cpu_s": time.process_time(),
        "results": results,
    }
    path = write_results("bench_functional_quick" if args.quick else "bench_functional", payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
