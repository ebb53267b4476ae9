"""``factorch info`` (what is in a tensor file) and ``factorch datasets`` (the bundled data)."""

from __future__ import annotations

import math
from typing import Any

import click
import torch

from ..datasets import list_datasets
from ..datasets import load as load_dataset
from ._common import CLIError, dumps, shape_str
from ._inputs import read_file, unlisted_report
from ._options import ReadArgs, read_options

CHUNK = 1 << 20  # entries converted to float64 at a time: statistics need no full-size copy


def _chunks(x: torch.Tensor) -> list[torch.Tensor]:
    flat = x.reshape(-1)
    return [flat[i : i + CHUNK] for i in range(0, flat.numel(), CHUNK)]


def _split(chunk: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, int]:
    """``(values, magnitudes, finite, n_nan)`` of a chunk, in float64 (``values`` is None for
    complex data)."""
    if chunk.is_complex():
        mags = chunk.abs().to(torch.float64)
        finite = torch.isfinite(chunk)
        n_nan = int((torch.isnan(chunk.real) | torch.isnan(chunk.imag)).sum())
        return None, mags, finite, n_nan
    values = chunk.to(torch.float64)
    return values, values.abs(), torch.isfinite(values), int(torch.isnan(values).sum())


def tensor_stats(x: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, density, missing values (NaN) and norms of a tensor.

    Computed chunk by chunk in float64, so the memory needed beyond the tensor itself is a few
    chunks (a file at the entry limit never needs two or three full-size copies). The norm is
    scaled by the largest magnitude, so it neither under- nor overflows.
    """
    numel = x.numel()
    n_nan = n_inf = nonzero = n = 0
    lo, hi, total, peak = math.inf, -math.inf, 0.0, 0.0
    real = not x.is_complex()
    for chunk in _chunks(x):
        values, mags, finite, nans = _split(chunk)
        n_nan += nans
        n_inf += chunk.numel() - int(finite.sum()) - nans
        good = mags[finite]
        n += good.numel()
        nonzero += int((good != 0).sum())
        peak = max(peak, float(good.max())) if good.numel() else peak
        if values is not None and good.numel():
            kept = values[finite]
            lo, hi, total = (
                min(lo, float(kept.min())),
                max(hi, float(kept.max())),
                total + float(kept.sum()),
            )
    mean = total / n if n and real else None
    sq_dev = scaled = 0.0
    for chunk in _chunks(x):
        values, mags, finite, _ = _split(chunk)
        if peak > 0:
            scaled += float(((mags[finite] / peak) ** 2).sum())
        if values is not None and mean is not None:
            sq_dev += float(((values[finite] - mean) ** 2).sum())
    return {
        "shape": list(x.shape),
        "dtype": str(x.dtype).replace("torch.", ""),
        "entries": numel,
        "missing": n_nan,
        "missing_fraction": n_nan / numel if numel else 0.0,
        "infinite": n_inf,
        "nonzeros": nonzero,
        "density": nonzero / numel if numel else 0.0,
        "min": lo if mean is not None else None,
        "max": hi if mean is not None else None,
        "mean": mean,
        "std": math.sqrt(sq_dev / n) if mean is not None else None,
        "norm_fro": peak * math.sqrt(scaled),
        "max_abs": peak if n else None,
    }


def _describe(name: str, stats: dict[str, Any], fmt: str) -> list[str]:
    def g(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4g}"

    lines = [
        f"{name}: {fmt}, {stats['dtype']}, shape {shape_str(stats['shape'])} "
        f"({stats['entries']:,} entries)",
        f"  missing {stats['missing']:,} ({100 * stats['missing_fraction']:.1f}%), "
        f"infinite {stats['infinite']:,}, nonzeros {stats['nonzeros']:,} "
        f"(density {100 * stats['density']:.1f}%)",
        f"  min {g(stats['min'])}, max {g(stats['max'])}, mean {g(stats['mean'])}, "
        f"std {g(stats['std'])}",
        f"  Frobenius norm {g(stats['norm_fro'])}, max |entry| {g(stats['max_abs'])}",
    ]
    return lines


def _file_entry(path: str, read: ReadArgs) -> tuple[dict[str, Any], str | None]:
    obs = read_file(path, read)
    report = unlisted_report(obs, read.unlisted)
    entry = {"file": path, "format": obs.format} | tensor_stats(obs.tensor)
    entry["unlisted"] = report.as_json() if report is not None else None
    return entry, report.line(path) if report is not None else None


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--dataset", help="Describe a bundled dataset instead of (or besides) FILES.")
@read_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list, one entry per input).")
def info(files: tuple[str, ...], dataset: str | None, read: ReadArgs, as_json: bool) -> None:
    """Shape, dtype, density, missing values and norms of each FILE.

    Missing values are NaN entries, and the entries a coordinate file does not list when they
    are read as missing (--unlisted; the choice is printed). Every file is checked before
    anything is printed; one bad file fails the command.
    """
    if not files and dataset is None:
        raise CLIError("give at least one FILE (or --dataset NAME).")
    entries: list[dict[str, Any]] = []
    notes: list[str | None] = []
    if dataset is not None:
        if dataset not in list_datasets():
            raise CLIError(
                f"--dataset {dataset!r} is not a bundled dataset; choose one of "
                f"{', '.join(list_datasets())}."
            )
        ds = load_dataset(dataset)
        entries.append({"dataset": dataset, "format": "bundled"} | tensor_stats(ds.tensor))
        notes.append(None)
    for path in files:
        entry, line = _file_entry(path, read)
        entries.append(entry)
        notes.append(line)
    if as_json:
        click.echo(dumps(entries), nl=False)
        return
    for e, line in zip(entries, notes):
        for text in _describe(e.get("file") or e["dataset"], e, e["format"]):
            click.echo(text)
        if line is not None:
            click.echo("  " + line)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON with full metadata.")
def datasets(as_json: bool) -> None:
    """List the bundled datasets (use one with: factorch decompose --dataset NAME)."""
    bundled = [load_dataset(name) for name in list_datasets()]
    rows = [
        {
            "name": ds.name,
            "shape": list(ds.shape),
            "mode_names": list(ds.mode_names),
            "missing": ds.n_missing,
            "licence": ds.licence,
            "description": ds.description,
            "source": ds.source,
            "citation": list(ds.citation),
            "suggested_method": ds.suggested_method,
            "suggested_rank": ds.suggested_rank,
        }
        for ds in bundled
    ]
    if as_json:
        click.echo(dumps(rows), nl=False)
        return
    for ds in bundled:
        modes = " × ".join(f"{s} {m}" for s, m in zip(ds.shape, ds.mode_names))
        missing = f", {ds.n_missing} missing" if ds.n_missing else ""
        click.echo(f"{ds.name}: {modes}{missing} [{ds.licence}]")
        click.echo(f"  {ds.description.split('. ')[0]}.")
        click.echo(f"  suggested: --method {ds.suggested_method} --rank {ds.suggested_rank}")
