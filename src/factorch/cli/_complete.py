"""``factorch complete``: fit a completion model to a table of coordinates and values.

The input is a delimited text table with a header row (``.csv``, ``.tsv`` or ``.txt``): the
``--coords`` columns give each entry's coordinates (one column per mode, real numbers) and the
``--value`` column its observed value (empty, ``nan`` or ``NA`` cells are missing: those rows are
dropped and counted). The rows are split at random into training and test parts (``--test``),
values are standardised with the training part's statistics, and

* with ``--functional``: FunBaT (``--method ep``, conditional EP) or its MAP variant
  (``--method map``) -- a Tucker (``--structure tucker``) or CP core times Gaussian-process latent
  functions of the raw coordinates, predicting at any coordinate with an uncertainty;
* without it: discrete CP completion (row-wise ALS) of the table binned onto a grid (``--bins``
  equal-width bins per mode; every distinct coordinate is its own index when there are at most
  that many).

It reports the test RMSE and MAE (plus the predictive NLL and the 95% interval coverage of the
functional model) in the value's units and writes, atomically and never over existing files
without ``--force``: ``model.safetensors`` (the functional model in raw units, or the CP
factors), ``summary.json``, and for the functional model ``latent.png`` (latent functions with
95% bands) and ``map.png`` (predicted versus observed test values over the first two modes).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

from ._common import (
    CLIError,
    call_library,
    dumps,
    matplotlib_missing,
    note,
    plan_outputs,
    progress,
    skip_plots_note,
    versions,
    write_outputs,
)
from ._inputs import resolve_device
from ._options import OutputArgs, RunArgs, output_options, run_options

MAX_ROWS = 10**7
_MISSING = {"", "nan", "na", "n/a", "null", "none"}


@dataclass(frozen=True)
class Table:
    """The numeric columns read from a file."""

    path: str
    coords: torch.Tensor  # (N, K) float64
    values: torch.Tensor  # (N,) float64
    names: tuple[str, ...]
    value_name: str
    dropped: int  # rows without a value


def _split_names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise CLIError(f"{option} must list column names separated by commas; got {text!r}.")
    if len(set(names)) != len(names):
        raise CLIError(f"{option} names a column twice: {text!r}.")
    return names


def _dialect(path: Path, first: str) -> str:
    if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first):
        return "\t"
    if path.suffix.lower() == ".txt" and "," not in first:
        return " "
    return ","


def _number(cell: str, name: str, line: int, path: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise CLIError(
            f"{path}, line {line}: column {name!r} holds {cell[:40]!r}, not a number; convert "
            "it (dates to e.g. days since a start) or drop the row."
        ) from None


def read_table(path: str, coords: list[str], value: str, max_rows: int) -> Table:
    """Read the coordinate and value columns of a delimited text table with a header."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".tsv", ".txt"):
        raise CLIError(f"{path}: complete reads .csv, .tsv or .txt tables with a header row.")
    try:
        fh = open(p, newline="", encoding="utf-8")
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror or e}.") from None
    with fh:
        first = fh.readline()
        fh.seek(0)
        delim = _dialect(p, first)
        rows = csv.reader(fh, delimiter=delim, skipinitialspace=delim == " ")
        try:
            header = [h.strip() for h in next(rows)]
        except StopIteration:
            raise CLIError(f"{path} is empty; it needs a header row and data rows.") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise CLIError(f"{path} is not a readable text table ({e}).") from None
        missing = [c for c in [*coords, value] if c not in header]
        if missing:
            shown = ", ".join(repr(h) for h in header[:20])
            raise CLIError(
                f"{path} has no column {missing[0]!r}; its columns are {shown} (--coords and "
                "--value name them)."
            )
        cols = [header.index(c) for c in coords]
        vcol = header.index(value)
        xs: list[list[float]] = []
        ys: list[float] = []
        dropped = 0
        try:
            for line, row in enumerate(rows, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise CLIError(
                        f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}."
                    )
                cell = row[vcol].strip()
                if cell.lower() in _MISSING:
                    dropped += 1
                    continue
                y = _number(cell, value, line, path)
                x = [_number(row[c].strip(), coords[i], line, path) for i, c in enumerate(cols)]
                if not all(math.isfinite(v) for v in x):
                    raise CLIError(f"{path}, line {line}: a coordinate is not finite ({x}).")
                if not math.isfinite(y):
                    dropped += 1
                    continue
                xs.append(x)
                ys.append(y)
                if len(ys) > max_rows:
                    raise CLIError(
                        f"{path} has more than --max-rows {max_rows} rows; raise --max-rows."
                    )
        except (csv.Error, UnicodeDecodeError) as e:
            raise CLIError(f"{path} is not a readable text table ({e}).") from None
    if len(ys) < 4:
        raise CLIError(f"{path} has {len(ys)} rows with a value; a fit needs at least 4.")
    return Table(
        path,
        torch.tensor(xs, dtype=torch.float64),
        torch.tensor(ys, dtype=torch.float64),
        tuple(coords),
        value,
        dropped,
    )


def _rank(text: str, k: int, structure: str) -> int | tuple[int, ...]:
    try:
        parts = [int(t) for t in text.split(",")]
    except ValueError:
        raise CLIError(f"--rank must be an int or one int per mode; got {text!r}.") from None
    if any(r < 1 for r in parts) or len(parts) not in (1, k):
        raise CLIError(f"--rank must be one positive int or {k} of them; got {text!r}.")
    if len(parts) > 1 and structure == "cp":
        raise CLIError("--rank with one value per mode needs --structure tucker.")
    return parts[0] if len(parts) == 1 else tuple(parts)


@dataclass(frozen=True)
class ModelArgs:
    functional: bool
    method: str
    structure: str
    rank: str
    nu: float
    lengthscale: float | None
    max_iter: int
    test: float
    bins: int
    max_rows: int


def _functional_fit(
    train: Any, test: Any, args: ModelArgs, rank: Any, run: RunArgs, quiet: bool
) -> tuple[Any, Any, dict[str, Any]]:
    from ..completion.functional import Matern, Standardization, funbat, funbat_map

    stats = Standardization.fit(train)
    z_train = stats.apply(train)
    ls = None if args.lengthscale is None else args.lengthscale
    kernels = [Matern(args.nu, None if ls is None else ls / s) for s in stats.coord_span]
    g = torch.Generator().manual_seed(run.seed)
    with progress(args.max_iter, desc=f"funbat-{args.method}", quiet=quiet) as bar:

        def callback(state: Any) -> None:
            bar.update(1)
            bar.set_postfix_str(f"train RMSE {state.train_rmse:.4g}", refresh=False)

        data = z_train.to(device=run.device, dtype=_dtype(run))
        structure: Any = args.structure
        if args.method == "ep":
            fit = call_library(
                funbat,
                data,
                rank,
                structure=structure,
                kernel=kernels,
                max_iter=args.max_iter,
                generator=g,
                callback=callback,
            )
        else:
            fit = call_library(
                funbat_map,
                data,
                rank,
                structure=structure,
                kernel=kernels,
                max_iter=args.max_iter,
                generator=g,
                callback=callback,
            )
    model = fit.model.to(device="cpu").destandardize(stats)
    pred = model.predict(test)
    metrics = {
        "test_rmse": pred.rmse(test.values),
        "test_mae": pred.mae(test.values),
        "test_nll": pred.nll(test.values),
        "test_coverage_95": pred.coverage(test.values, 0.95),
        "train_rmse": model.predict(train).rmse(train.values),
        "noise_std": model.noise_std,
    }
    info = {
        "epochs": fit.epochs,
        "converged": fit.converged,
        "time_s": fit.time_s,
        "train_rmse_per_epoch": [r * stats.value_std for r in fit.train_rmse],
        "kernels": [
            {"nu": f.kernel.nu, "lengthscale": f.kernel.lengthscale, "variance": f.kernel.variance}
            for f in model.factors
        ],
        "standardization": {"value_mean": stats.value_mean, "value_std": stats.value_std},
        "metrics": metrics,
    }
    return model, fit, info


def _dtype(run: RunArgs) -> torch.dtype:
    return torch.float32 if run.dtype == "float32" else torch.float64


def _discrete_fit(
    train: Any, test: Any, args: ModelArgs, rank: Any, run: RunArgs, quiet: bool
) -> tuple[Any, Any, dict[str, Any]]:
    from ..completion import cp_als
    from ..completion.functional import Standardization

    stats = Standardization.fit(train, coords=False)
    edges = []
    for k in range(train.ndim):
        distinct = torch.unique(train.coords[:, k])
        if distinct.numel() <= args.bins:
            mids = (distinct[1:] + distinct[:-1]) / 2
            lo, hi = distinct[:1] - 1.0, distinct[-1:] + 1.0
            edges.append(torch.cat([lo, mids, hi]))
        else:
            edges.append(train.bin_edges(args.bins)[k])
    grid, _ = stats.apply(train).to_grid(edges)
    grid = grid.to(device=run.device, dtype=_dtype(run))
    with progress(args.max_iter, desc="cp-als", quiet=quiet) as bar:
        fit = call_library(
            cp_als,
            grid,
            rank,
            l2=1e-3,
            max_iter=args.max_iter,
            generator=torch.Generator().manual_seed(run.seed),
            callback=lambda s: bar.update(1),
        )
    model = fit.model
    cells = test.bin_indices(edges).to(run.device)

    def predict(cells: torch.Tensor) -> torch.Tensor:
        z = model.entries(cells).to(torch.float64).cpu()
        return stats.values_from_standard(z)

    test_pred = predict(cells)
    train_pred = predict(train.bin_indices(edges).to(run.device))
    metrics = {
        "test_rmse": float((test_pred - test.values).pow(2).mean().sqrt()),
        "test_mae": float((test_pred - test.values).abs().mean()),
        "train_rmse": float((train_pred - train.values).pow(2).mean().sqrt()),
    }
    info = {
        "epochs": fit.epochs,
        "converged": fit.converged,
        "time_s": fit.time_s,
        "grid_shape": list(grid.shape),
        "bin_edges": [e.tolist() for e in edges],
        "standardization": {"value_mean": stats.value_mean, "value_std": stats.value_std},
        "metrics": metrics,
    }
    return model, fit, info


def _render(model: Any, test: Any, names: tuple[str, ...], source: str) -> dict[str, bytes]:
    from ..plot import figure_to_png, plot_functional_map, plot_latent_functions

    out = {
        "latent.png": figure_to_png(
            plot_latent_functions(model, title=f"{source}: latent functions, 95% bands")
        )
    }
    if model.ndim >= 2:
        fig = plot_functional_map(
            model, test, title=f"{source}: test values vs prediction ({names[0]} x {names[1]})"
        )
        out["map.png"] = figure_to_png(fig)
    return out


@click.command()
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--coords", required=True, help="Coordinate columns, one per mode (e.g. lat,lon,t).")
@click.option("--value", required=True, help="The observed-value column.")
@click.option(
    "--functional",
    is_flag=True,
    help="FunBaT: latent functions of the continuous coordinates (else discrete CP of "
    "the binned table).",
)
@click.option(
    "--method",
    type=click.Choice(["ep", "map"]),
    default="ep",
    show_default=True,
    help="Functional inference: conditional EP or MAP (L-BFGS).",
)
@click.option(
    "--structure",
    type=click.Choice(["tucker", "cp"]),
    default="tucker",
    show_default=True,
    help="Functional core: Tucker or CP.",
)
@click.option(
    "--rank",
    default="2",
    show_default=True,
    help="Latent functions (components) per mode; Tucker also takes one per mode.",
)
@click.option(
    "--nu",
    type=click.Choice(["0.5", "1.5", "2.5"]),
    default="1.5",
    show_default=True,
    help="Matérn smoothness of the latent functions.",
)
@click.option(
    "--lengthscale",
    type=click.FloatRange(min=0.0, min_open=True),
    help="Prior lengthscale in coordinate units [default: a tenth of each mode's range].",
)
@click.option("--max-iter", type=click.IntRange(1, 10**5), default=100, show_default=True)
@click.option(
    "--test",
    "test_fraction",
    type=click.FloatRange(0.0, 0.9, min_open=True),
    default=0.2,
    show_default=True,
    help="Share of the rows held out for testing.",
)
@click.option(
    "--bins",
    type=click.IntRange(2, 10**5),
    default=50,
    show_default=True,
    help="Discrete model: bins per mode (distinct coordinates, if fewer).",
)
@click.option(
    "--max-rows",
    type=click.IntRange(4, 2**40),
    default=MAX_ROWS,
    show_default=True,
    help="Refuse tables with more rows (a memory guard).",
)
@run_options
@output_options
def complete(
    table: str,
    coords: str,
    value: str,
    functional: bool,
    method: str,
    structure: str,
    rank: str,
    nu: str,
    lengthscale: float | None,
    max_iter: int,
    test_fraction: float,
    bins: int,
    max_rows: int,
    run: RunArgs,
    output: OutputArgs,
) -> None:
    """Complete TABLE (a .csv/.tsv/.txt table with a header) and report the test error.

    \b
    factorch complete temps.csv --coords lat,lon,year --value temp --functional
    factorch complete temps.csv --coords lat,lon,year --value temp --bins 30
    """
    names = _split_names(coords, "--coords")
    (value_name,) = _split_names(value, "--value")
    if value_name in names:
        raise CLIError(f"--value {value_name!r} is also one of --coords.")
    args = ModelArgs(
        functional,
        method,
        structure,
        rank,
        float(nu),
        lengthscale,
        max_iter,
        test_fraction,
        bins,
        max_rows,
    )
    plots: tuple[str, ...] = ("latent.png", "map.png") if functional and not output.no_plots else ()
    skipped = plots if plots and matplotlib_missing() else ()
    plots = () if skipped else plots[: 1 if len(names) < 2 else 2]
    paths = plan_outputs(
        output.out_dir, ("model.safetensors", "summary.json", *plots), output.force
    )
    if skipped:
        skip_plots_note(skipped)
    resolve_device(run.device)  # an unknown or absent device is a one-line error, before reading
    tab = read_table(table, names, value_name, max_rows)
    # as decompose: one thread for small data (thread start-up costs more than it saves)
    torch.set_num_threads(
        run.threads or (1 if len(tab.values) < 2**20 else torch.get_num_threads())
    )
    r = _rank(rank, len(names), structure if functional else "cp")
    if not functional and not isinstance(r, int):
        raise CLIError("--rank with one value per mode needs --functional --structure tucker.")
    summary, files = _run(tab, args, r, run, output, paths, plots)
    write_outputs(paths, files, output.force)
    if output.as_json:
        click.echo(dumps(summary), nl=False)
    elif not output.quiet:
        for line in _report(summary):
            click.echo(line)
        click.echo("  wrote " + ", ".join(str(paths[n]) for n in files))


def _run(
    tab: Table,
    args: ModelArgs,
    rank: Any,
    run: RunArgs,
    output: OutputArgs,
    paths: dict[str, Path],
    plots: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, bytes]]:
    from ..completion.functional import ContinuousData, functional_to_bytes

    data = call_library(ContinuousData, tab.coords, tab.values, tab.names, None, tab.value_name)
    n_test = max(1, round(args.test * len(data)))
    train, test = data.split(
        (1 - n_test / len(data), n_test / len(data)),
        generator=torch.Generator().manual_seed(run.seed),
    )
    if tab.dropped:
        note(f"{tab.dropped} rows of {tab.path} have no value and were dropped.")
    source = os.path.basename(tab.path)
    if args.functional:
        model, _, info = _functional_fit(train, test, args, rank, run, output.quiet)
        meta = {"input": source, "seed": str(run.seed), "method": f"funbat-{args.method}"}
        files = {"model.safetensors": functional_to_bytes(model, metadata=meta)}
        if plots:
            files.update(_render(model, test, tab.names, source))
        title = f"FunBaT ({args.structure}, {args.method.upper()})"
    else:
        from ..io import factorized_to_bytes

        model, _, info = _discrete_fit(train, test, args, rank, run, output.quiet)
        meta = {"input": source, "seed": str(run.seed), "method": "cp_als (binned)"}
        files = {"model.safetensors": factorized_to_bytes(model, metadata=meta)}
        title = f"discrete CP completion ({'x'.join(map(str, info['grid_shape']))} grid)"
    summary = {
        "command": "complete",
        "input": tab.path,
        "coords": list(tab.names),
        "value": tab.value_name,
        "rows": len(data),
        "dropped_rows": tab.dropped,
        "distinct_coordinates": [
            int(torch.unique(data.coords[:, k]).numel()) for k in range(data.ndim)
        ],
        "train_rows": len(train),
        "test_rows": len(test),
        "model": title,
        "functional": args.functional,
        "rank": rank if isinstance(rank, int) else list(rank),
        "options": {
            "method": args.method,
            "structure": args.structure,
            "nu": args.nu,
            "lengthscale": args.lengthscale,
            "max_iter": args.max_iter,
            "test": args.test,
            "bins": args.bins,
            "seed": run.seed,
            "dtype": run.dtype,
            "device": run.device,
        },
        **info,
        "outputs": {name: str(p) for name, p in paths.items()},
        "versions": versions(),
    }
    files["summary.json"] = dumps(summary).encode("utf-8")
    return summary, files


def _report(s: dict[str, Any]) -> list[str]:
    m = s["metrics"]
    lines = [
        f"{s['model']} rank {s['rank']} of {s['input']}: {s['rows']} rows, modes "
        + ", ".join(f"{n} ({d} distinct)" for n, d in zip(s["coords"], s["distinct_coordinates"])),
        f"  test RMSE {m['test_rmse']:.4g}, MAE {m['test_mae']:.4g} ({s['test_rows']} held-out "
        f"rows); train RMSE {m['train_rmse']:.4g}",
    ]
    if "test_nll" in m:
        lines.append(
            f"  predictive NLL {m['test_nll']:.4g}, 95% interval coverage "
            f"{m['test_coverage_95']:.3f}, noise std {m['noise_std']:.4g}"
        )
    status = "converged" if s["converged"] else "not converged"
    lines.append(f"  {s['epochs']} epochs ({status}), {s['time_s']:.2f} s")
    return lines
