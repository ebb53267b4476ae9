"""``factorch info`` (what is in a tensor file) and ``factorch datasets`` (the bundled data)."""

from __future__ import annotations

from typing import Any

import click
import torch

from ..datasets import list_datasets
from ..datasets import load as load_dataset
from ._common import CLIError, dumps, read_file, shape_str


def tensor_stats(x: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, density, missing values and norms of a tensor (NaN = missing)."""
    numel = x.numel()
    out: dict[str, Any] = {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", "")}
    out["entries"] = numel
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if x.is_complex():
        finite = torch.isfinite(x.real) & torch.isfinite(x.imag)
        values = x[finite]
        mags = values.abs().double()
        stats = {"min": None, "max": None, "mean": None, "std": None}
    else:
        xf = x.double() if not x.is_floating_point() or x.dtype != torch.float64 else x
        finite = torch.isfinite(xf)
        values = xf[finite]
        mags = values.abs()
        n = values.numel()
        stats = {
            "min": float(values.min()) if n else None,
            "max": float(values.max()) if n else None,
            "mean": float(values.mean()) if n else None,
            "std": float(values.std(correction=0)) if n else None,
        }
    n_nan = int(torch.isnan(x.real if x.is_complex() else x.double()).sum()) if numel else 0
    n_inf = numel - int(finite.sum()) - n_nan
    nonzero = int((values != 0).sum())
    out.update(
        missing=n_nan,
        missing_fraction=n_nan / numel if numel else 0.0,
        infinite=n_inf,
        nonzeros=nonzero,
        density=nonzero / numel if numel else 0.0,
        **stats,
        norm_fro=float(torch.linalg.vector_norm(mags)) if mags.numel() else 0.0,
        max_abs=float(mags.max()) if mags.numel() else None,
    )
    return out


def _describe(name: str, stats: dict[str, Any], fmt: str) -> list[str]:
    def g(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4g}"

    lines = [
        f"{name}: {fmt}, {stats['dtype']}, shape {shape_str(stats['shape'])} "
        f"({stats['entries']:,} entries)",
        f"  missing (NaN) {stats['missing']:,} ({100 * stats['missing_fraction']:.1f}%), "
        f"infinite {stats['infinite']:,}, nonzeros {stats['nonzeros']:,} "
        f"(density {100 * stats['density']:.1f}%)",
        f"  min {g(stats['min'])}, max {g(stats['max'])}, mean {g(stats['mean'])}, "
        f"std {g(stats['std'])}",
        f"  Frobenius norm {g(stats['norm_fro'])}, max |entry| {g(stats['max_abs'])}",
    ]
    return lines


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--dataset", help="Describe a bundled dataset instead of (or besides) FILES.")
@click.option("--key", help="Array to read from files holding several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list, one entry per input).")
def info(files: tuple[str, ...], dataset: str | None, key: str | None, as_json: bool) -> None:
    """Shape, dtype, density, missing values and norms of each FILE.

    Every file is checked before anything is printed; one bad file fails the command.
    """
    from ..io import file_format

    if not files and dataset is None:
        raise CLIError("give at least one FILE (or --dataset NAME).")
    entries: list[dict[str, Any]] = []
    if dataset is not None:
        if dataset not in list_datasets():
            raise CLIError(
                f"--dataset {dataset!r} is not a bundled dataset; choose one of "
                f"{', '.join(list_datasets())}."
            )
        ds = load_dataset(dataset)
        entries.append({"dataset": dataset, "format": "bundled"} | tensor_stats(ds.tensor))
    for path in files:
        x = read_file(path, key)
        entries.append({"file": path, "format": file_format(path)} | tensor_stats(x))
    if as_json:
        click.echo(dumps(entries), nl=False)
        return
    for e in entries:
        for line in _describe(e.get("file") or e["dataset"], e, e["format"]):
            click.echo(line)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON with full metadata.")
def datasets(as_json: bool) -> None:
    """List the bundled datasets (use one with: factorch decompose --dataset NAME)."""
    rows = []
    for name in list_datasets():
        ds = load_dataset(name)
        rows.append(
            {
                "name": name,
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
        )
    if as_json:
        click.echo(dumps(rows), nl=False)
        return
    for r in rows:
        modes = " × ".join(f"{s} {m}" for s, m in zip(r["shape"], r["mode_names"]))
        missing = f", {r['missing']} missing" if r["missing"] else ""
        click.echo(f"{r['name']}: {modes}{missing} [{r['licence']}]")
        click.echo(f"  {r['description'].split('. ')[0]}.")
        click.echo(f"  suggested: --method {r['suggested_method']} --rank {r['suggested_rank']}")
