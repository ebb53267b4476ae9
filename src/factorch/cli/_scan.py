"""``factorch rank-scan``: fit CP at several ranks and recommend one."""

from __future__ import annotations

from typing import Any

import click
import torch

from ..decomp import DecompositionResult, RankScan, cp_degeneracy
from ..decomp import rank_scan as scan_fn
from ._common import (
    CLIError,
    call_library,
    dumps,
    matplotlib_missing,
    plan_outputs,
    progress,
    shape_str,
    skip_plots_note,
    versions,
    warn,
    write_outputs,
)
from ._inputs import Input, load_input
from ._methods import cp_rank_bound
from ._options import (
    InputArgs,
    IterArgs,
    OutputArgs,
    RunArgs,
    input_options,
    iteration_options,
    output_options,
    run_options,
)

MAX_RANKS = 100  # ranks one scan may try
MAX_STARTS = 1000


def parse_ranks(text: str, max_rank: int) -> tuple[int, ...]:
    """``"1-8"`` -> (1, ..., 8); ``"1,2,4"``; ``"1-3,6"``. Every range is checked against
    ``max_rank`` and the count against :data:`MAX_RANKS` before it is expanded."""
    spans: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            lo_text, sep, hi_text = part.strip().partition("-")
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
            if hi < lo:
                raise ValueError
            spans.append((lo, hi))
    except ValueError:
        raise CLIError(f"--ranks must look like 1-8 or 1,2,4 or 1-3,6; got {text!r}.") from None
    if min(lo for lo, _ in spans) < 1:
        raise CLIError(f"--ranks must be positive; got {text!r}.")
    top = max(hi for _, hi in spans)
    if top > max_rank:
        raise CLIError(
            f"rank {top} is too large: at most {max_rank} (= product of the dimensions / largest "
            f"dimension) components are ever needed; choose --ranks up to {max_rank}."
        )
    if any(hi - lo + 1 > MAX_RANKS for lo, hi in spans):
        raise CLIError(
            f"--ranks lists more than {MAX_RANKS} ranks; scan at most {MAX_RANKS} (e.g. 1-20 or "
            "5,10,20)."
        )
    ranks = sorted({r for lo, hi in spans for r in range(lo, hi + 1)})
    if len(ranks) > MAX_RANKS:
        raise CLIError(
            f"--ranks lists {len(ranks)} ranks; scan at most {MAX_RANKS} (e.g. 1-20 or 5,10,20)."
        )
    return tuple(ranks)


def run_scan(inp: Input, ranks: tuple[int, ...], starts: int, iters: IterArgs, seed: int,
             quiet: bool) -> RankScan:  # fmt: skip
    with progress(len(ranks) * starts, desc="rank scan", quiet=quiet) as bar:

        def callback(rank: int, start: int, result: DecompositionResult[Any]) -> None:
            bar.update(1)
            bar.set_postfix_str(f"rank {rank} error {result.error:.4g}", refresh=False)

        return call_library(
            scan_fn,
            inp.tensor,
            ranks,
            mask=inp.mask,
            starts=starts,
            max_iter=iters.max_iter,
            tol=iters.tol,
            generator=torch.Generator().manual_seed(seed),  # CPU: same draws on every device
            callback=callback,
        )


def scan_rows(scan: RankScan) -> list[dict[str, Any]]:
    rows = []
    for r, best, cc, errs, model in zip(
        scan.ranks, scan.best_errors, scan.corcondia, scan.errors, scan.models
    ):
        deg = cp_degeneracy(model)
        rows.append(
            {
                "rank": r,
                "best_error": float(best),
                "fit": 1.0 - float(best),
                "corcondia": float(cc),
                "errors": [float(e) for e in errs],
                "degenerate": deg.degenerate,
                "min_congruence": deg.min_congruence,
            }
        )
    return rows


def table_lines(inp: Input, starts: int, rows: list[dict[str, Any]], scan: RankScan) -> list[str]:
    shape = shape_str(tuple(inp.tensor.shape))
    per_rank = f"{starts} start{'s' if starts != 1 else ''} per rank"
    lines = [
        f"CP rank scan of {inp.name} ({shape}), {per_rank}",
        f"{'rank':>4}  {'best error':>10}  {'fit':>6}  {'core consistency':>16}",
    ]
    if inp.unlisted is not None:
        lines.insert(1, "  " + inp.unlisted.line(inp.name))
    for row in rows:
        mark = "  <- recommended" if row["rank"] == scan.recommended else ""
        mark += "  (degenerate)" if row["degenerate"] else ""
        cc = row["corcondia"]
        cc_text = f"{cc:>15.1f}%" if cc > -1000 else f"{'< -1000':>15}%"
        lines.append(
            f"{row['rank']:>4}  {row['best_error']:>10.4f}  {row['fit']:>6.3f}  {cc_text}{mark}"
        )
    lines.append(f"recommended rank: {scan.recommended}; {scan.reason}")
    return lines


@click.command("rank-scan")
@input_options
@click.option("--method", type=click.Choice(["cp"]), default="cp", show_default=True)
@click.option(
    "--ranks", default="1-8", show_default=True, help="Ranks to try: 1-8, 1,2,4 or 1-3,6."
)
@click.option(
    "--starts",
    type=click.IntRange(1, MAX_STARTS),
    default=5,
    show_default=True,
    help="Fits per rank.",
)
@iteration_options(max_iter=100)
@run_options
@output_options
def rank_scan(
    source: InputArgs,
    method: str,
    ranks: str,
    starts: int,
    iters: IterArgs,
    run: RunArgs,
    output: OutputArgs,
) -> None:
    """Fit CP models of each rank from several starts; report fit and core consistency.

    Prints a table (error, fit, core consistency per rank; degenerate models flagged) and the
    recommended rank with the reason, and writes rank_scan.json and rank_scan.png to --out.
    Missing entries (--mask, --nan-as-missing, unlisted coordinates read as missing, or a
    bundled dataset's own mask) are imputed by EM in every fit; the errors are then on the
    observed entries (see factorch.decomp.rank_scan).
    """
    inp = load_input(source, run)
    shape = tuple(inp.tensor.shape)
    if inp.tensor.ndim < 2:
        raise CLIError(f"{inp.name} has shape {shape}; a rank scan needs at least 2 modes.")
    rank_list = parse_ranks(ranks, cp_rank_bound(shape))
    wanted = () if output.no_plots else ("rank_scan.png",)
    skipped = wanted if wanted and matplotlib_missing() else ()
    names = ["rank_scan.json", *(() if skipped else wanted)]
    paths = plan_outputs(output.out_dir, names, output.force)
    if skipped:
        skip_plots_note(skipped)
    scan = run_scan(inp, rank_list, starts, iters, run.seed, output.quiet)
    rows = scan_rows(scan)
    summary: dict[str, Any] = {
        "command": "rank-scan",
        "input": inp.origin,
        "shape": list(shape),
        "dtype": run.dtype,
        "device": str(inp.tensor.device),
        "missing": inp.n_missing,
        "unlisted": inp.unlisted.as_json() if inp.unlisted is not None else None,
        "method": method,
        "ranks": rows,
        "recommended": int(scan.recommended),
        "reason": str(scan.reason),
        "options": {
            "starts": starts,
            "max_iter": iters.max_iter,
            "tol": iters.tol,
            "seed": run.seed,
        },
        "outputs": {name: str(p) for name, p in paths.items()},
        "plots_skipped": list(skipped) or None,
        "versions": versions(),
    }
    files = {"rank_scan.json": dumps(summary).encode("utf-8")}
    if "rank_scan.png" in paths:
        from ..plot import figure_to_png, plot_rank_scan

        fig = plot_rank_scan(scan, title=f"CP rank scan of {inp.name} ({shape_str(shape)})")
        files["rank_scan.png"] = figure_to_png(fig)
    write_outputs(paths, files, output.force)
    if any(row["degenerate"] and row["rank"] == scan.recommended for row in rows):
        warn(f"the recommended rank {scan.recommended} gives a degenerate model (two components "
             "cancel); prefer a lower rank.")  # fmt: skip
    if output.as_json:
        click.echo(dumps(summary), nl=False)
    elif not output.quiet:
        for line in table_lines(inp, starts, rows, scan):
            click.echo(line)
        click.echo("  wrote " + ", ".join(str(paths[n]) for n in files))
