"""``factorch rank-scan``: fit CP at several ranks and recommend one."""

from __future__ import annotations

from typing import Any

import click
import torch

from ._common import (
    CLIError,
    call_library,
    check_cp_rank,
    dataset_option,
    dtype_option,
    dumps,
    file_argument,
    force_option,
    key_option,
    nan_as_missing_option,
    open_input,
    out_option,
    parse_ranks,
    plan_outputs,
    progress,
    require_matplotlib,
    shape_str,
    threads_option,
    versions,
    write_outputs,
)


@click.command("rank-scan")
@file_argument
@dataset_option
@click.option("--method", type=click.Choice(["cp"]), default="cp", show_default=True)
@click.option(
    "--ranks", default="1-8", show_default=True, help="Ranks to try: 1-8, 1,2,4 or 1-3,6."
)
@click.option(
    "--starts", type=click.IntRange(min=1), default=5, show_default=True, help="Fits per rank."
)
@key_option
@click.option(
    "--mask",
    "mask_file",
    type=click.Path(dir_okay=False),
    help="Observed-entry mask (1 = observed).",
)
@nan_as_missing_option
@click.option("--max-iter", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--tol", type=click.FloatRange(min=0.0), default=1e-8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@dtype_option
@threads_option
@click.option("--device", default="cpu", show_default=True)
@out_option
@force_option
@click.option("--no-plots", is_flag=True, help="Do not draw the PNG plot.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result to stdout.")
def rank_scan(
    file: str | None,
    dataset: str | None,
    method: str,
    ranks: str,
    starts: int,
    key: str | None,
    mask_file: str | None,
    nan_as_missing: bool,
    max_iter: int,
    tol: float,
    seed: int,
    dtype: str,
    device: str,
    out_dir: str,
    force: bool,
    no_plots: bool,
    quiet: bool,
    as_json: bool,
    threads: int | None,
) -> None:
    """Fit CP models of each rank from several starts; report fit and core consistency.

    Prints a table (error, fit, core consistency per rank) and the recommended rank with the
    reason, and writes rank_scan.json and rank_scan.png to --out. Missing entries (--mask,
    --nan-as-missing, or a bundled dataset's own mask) are imputed by EM in every fit; the
    errors are then on the observed entries (see factorch.decomp.rank_scan).
    """
    from ..decomp import rank_scan as scan_fn

    inp, dev = open_input(
        file,
        dataset=dataset,
        key=key,
        mask_file=mask_file,
        nan_as_missing=nan_as_missing,
        dtype=dtype,
        device=device,
        threads=threads,
    )
    shape = tuple(inp.tensor.shape)
    if inp.tensor.ndim < 2:
        raise CLIError(f"{inp.name} has shape {shape}; a rank scan needs at least 2 modes.")
    rank_list = parse_ranks(ranks)
    check_cp_rank(max(rank_list), shape)
    plots = not no_plots
    if plots:
        require_matplotlib()
    names = ["rank_scan.json"] + (["rank_scan.png"] if plots else [])
    paths = plan_outputs(out_dir, names, force)

    kwargs: dict[str, Any] = {
        "starts": starts,
        "max_iter": max_iter,
        "tol": tol,
        "generator": torch.Generator().manual_seed(seed),  # CPU: same draws on every device
    }
    if inp.mask is not None:
        kwargs["mask"] = inp.mask
    with progress(len(rank_list) * starts, desc="rank scan", quiet=quiet) as bar:

        def callback(rank: int, start: int, result: Any) -> None:
            bar.update(1)
            bar.set_postfix_str(f"rank {rank} error {result.error:.4g}", refresh=False)

        kwargs["callback"] = callback
        scan = call_library(scan_fn, inp.tensor, rank_list, **kwargs)

    rows = [
        {
            "rank": r,
            "best_error": float(best),
            "fit": 1.0 - float(best),
            "corcondia": float(cc),
            "errors": [float(e) for e in errs],
        }
        for r, best, cc, errs in zip(scan.ranks, scan.best_errors, scan.corcondia, scan.errors)
    ]
    summary: dict[str, Any] = {
        "command": "rank-scan",
        "input": inp.origin,
        "shape": list(shape),
        "dtype": dtype,
        "device": str(dev),
        "missing": inp.n_missing,
        "method": method,
        "ranks": rows,
        "recommended": int(scan.recommended),
        "reason": str(scan.reason),
        "options": {"starts": starts, "max_iter": max_iter, "tol": tol, "seed": seed},
        "outputs": {name: str(p) for name, p in paths.items()},
        "versions": versions(),
    }
    files = {"rank_scan.json": dumps(summary).encode("utf-8")}
    if plots:
        from ..plot import figure_to_png, plot_rank_scan

        fig = plot_rank_scan(scan, title=f"CP rank scan of {inp.name} ({shape_str(shape)})")
        files["rank_scan.png"] = figure_to_png(fig)
    write_outputs(paths, files, force)

    if as_json:
        click.echo(dumps(summary), nl=False)
    elif not quiet:
        per_rank = f"{starts} start{'s' if starts != 1 else ''} per rank"
        click.echo(f"CP rank scan of {inp.name} ({shape_str(shape)}), {per_rank}")
        click.echo(f"{'rank':>4}  {'best error':>10}  {'fit':>6}  {'core consistency':>16}")
        for row in rows:
            mark = "  <- recommended" if row["rank"] == scan.recommended else ""
            cc = row["corcondia"]
            cc_text = f"{cc:>15.1f}%" if cc > -1000 else f"{'< -1000':>15}%"
            click.echo(
                f"{row['rank']:>4}  {row['best_error']:>10.4f}  {row['fit']:>6.3f}  {cc_text}{mark}"
            )
        click.echo(f"recommended rank: {scan.recommended}; {scan.reason}")
        click.echo("  wrote " + ", ".join(str(paths[n]) for n in files))
