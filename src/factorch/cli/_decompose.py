"""``factorch decompose``: fit one decomposition and write factors, summary and plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..decomp import CPDegeneracy, DecompositionResult, IterationState, cp_degeneracy
from ..tensors import CPTensor
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
from ._methods import METHODS, FitRequest, Method, Rank, check_memory, parse_rank
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

MAX_PLOTTED_COMPONENTS = 12


@dataclass(frozen=True)
class Plan:
    """What a run will do, settled before any work: method, rank, outputs."""

    method: Method
    rank: Rank
    paths: dict[str, Path]
    plots: tuple[str, ...]  # PNGs to draw
    skipped_plots: tuple[str, ...]  # PNGs wanted but not drawn (no matplotlib)

    @property
    def rank_text(self) -> str:
        return str(self.rank) if isinstance(self.rank, int) else ",".join(map(str, self.rank))


def _method(name: str | None, inp: Input) -> Method:
    suggested = inp.dataset.suggested_method if inp.dataset is not None else "cp"
    method = METHODS[name or suggested]
    if inp.mask is not None and not method.handles_mask:
        why = f"{inp.name} has {inp.n_missing} missing entries, but"
        if method.name == "ntf":
            whose = "its suggested method, " if name is None else ""
            raise CLIError(
                f"{why} {whose}non-negative CP (--method ntf), cannot use missing values yet; "
                "pass --method cp to fit an unconstrained CP with EM imputation (its components "
                "are checked for degeneracy)."
            )
        raise CLIError(
            f"{why} --method {method.name} does not handle missing values; use --method cp "
            "(EM imputation)."
        )
    return method


def _plot_names(method: Method) -> tuple[str, ...]:
    names = {"cp": ("factors.png",), "ntf": ("factors.png",), "tucker": ("core.png",)}
    return names.get(method.name, ()) + (("convergence.png",) if method.iterative else ())


def make_plan(
    inp: Input, method_name: str | None, rank_text: str | None, init: str, output: OutputArgs
) -> Plan:
    """Resolve the method and rank, check them against the data, and plan the outputs."""
    shape = tuple(inp.tensor.shape)
    if inp.tensor.ndim < 2:
        raise CLIError(f"{inp.name} has shape {shape}; a decomposition needs at least 2 modes.")
    method = _method(method_name, inp)
    if rank_text is None:
        if inp.dataset is None:
            raise CLIError("--rank is required when decomposing a FILE (e.g. --rank 3).")
        rank: Rank = inp.dataset.suggested_rank
    else:
        rank = parse_rank(rank_text)
    method.check_rank(method.name, rank, shape)
    check_memory(method, rank, inp.tensor)
    if init == "random" and not method.has_init:
        raise CLIError(f"--init random does not apply to --method {method.name} (one pass).")
    wanted = () if output.no_plots else _plot_names(method)
    skipped = wanted if wanted and matplotlib_missing() else ()
    plots = () if skipped else wanted
    names = ("factors.safetensors", "summary.json", *plots)
    return Plan(method, rank, plan_outputs(output.out_dir, names, output.force), plots, skipped)


def fit(plan: Plan, inp: Input, init: str, iters: IterArgs, seed: int, quiet: bool) -> Any:
    """Run the method with a progress bar; every error becomes a one-line CLIError."""
    iterative = plan.method.iterative
    with progress(iters.max_iter if iterative else 0, desc=plan.method.name,
                  quiet=quiet or not iterative) as bar:  # fmt: skip

        def callback(state: IterationState) -> None:
            bar.update(1)
            bar.set_postfix_str(f"error {state.error:.4g}", refresh=False)

        request = FitRequest(
            inp.tensor,
            inp.mask,
            plan.rank,
            "random" if init == "random" else "default",
            iters.max_iter,
            iters.tol,
            seed,
            callback if iterative else None,
        )
        return call_library(plan.method.fit, request)


def degeneracy(model: object) -> CPDegeneracy | None:
    """The two-factor degeneracy check of a CP model (None for other models)."""
    return cp_degeneracy(model) if isinstance(model, CPTensor) else None


def _jsonable_rank(rank: object) -> Any:
    if isinstance(rank, int):
        return rank
    if isinstance(rank, tuple | list):
        return [int(r) for r in rank]
    return None


def build_summary(
    plan: Plan,
    inp: Input,
    result: DecompositionResult[Any],
    deg: CPDegeneracy | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Everything ``summary.json`` records about the run."""
    model = result.model
    n_params = int(getattr(model, "n_params", 0)) or None
    return {
        "command": "decompose",
        "input": inp.origin,
        "shape": list(inp.tensor.shape),
        "dtype": str(inp.tensor.dtype).replace("torch.", ""),
        "device": str(inp.tensor.device),
        "missing": inp.n_missing,
        "unlisted": inp.unlisted.as_json() if inp.unlisted is not None else None,
        "method": plan.method.name,
        "function": plan.method.function,
        "model": type(model).__name__,
        "rank": _jsonable_rank(plan.rank),
        "model_rank": _jsonable_rank(getattr(model, "rank", None)),
        "options": options,
        "error": float(result.error),
        "fit": float(result.fit),
        "iterations": int(result.iterations),
        "converged": bool(result.converged),
        "degeneracy": None if deg is None else _degeneracy_json(deg),
        "time_s": float(result.time_s),
        "init_time_s": float(result.init_time_s),
        "n_params": n_params,
        "compression": inp.tensor.numel() / n_params if n_params else None,
        "errors": [float(e) for e in result.errors],
        "outputs": {name: str(p) for name, p in plan.paths.items()},
        "plots_skipped": list(plan.skipped_plots) or None,
        "versions": versions(),
    }


def _degeneracy_json(deg: CPDegeneracy) -> dict[str, Any]:
    return {
        "degenerate": deg.degenerate,
        "min_congruence": deg.min_congruence,
        "pair": list(deg.pair) if deg.pair is not None else None,
        "cancellation": deg.cancellation,
        "threshold": deg.threshold,
        "message": deg.message or None,
    }


def render_plots(
    plan: Plan, result: DecompositionResult[Any], inp: Input, deg: CPDegeneracy | None
) -> dict[str, bytes]:
    from ..plot import figure_to_png, plot_convergence, plot_cp_factors, plot_tucker_core

    title = f"{plan.method.title} of {inp.name}, rank {plan.rank_text}"
    if deg is not None and deg.degenerate:
        title += " (degenerate: two components cancel)"
    out: dict[str, bytes] = {}
    if "factors.png" in plan.plots:
        fig = plot_cp_factors(
            result.model,
            labels=inp.labels,
            mode_names=inp.mode_names,
            title=title,
            max_components=MAX_PLOTTED_COMPONENTS,
        )
        out["factors.png"] = figure_to_png(fig)
    if "core.png" in plan.plots:
        fig = plot_tucker_core(result.model, mode_names=inp.mode_names, title=title + ": core")
        out["core.png"] = figure_to_png(fig)
    if "convergence.png" in plan.plots:
        out["convergence.png"] = figure_to_png(plot_convergence(result, title=title))
    return out


def report_lines(plan: Plan, inp: Input, summary: dict[str, Any]) -> list[str]:
    """The human-readable report on stdout."""
    shape = tuple(summary["shape"])
    missing = f", {inp.n_missing} missing" if inp.n_missing else ""
    lines = [
        f"{plan.method.title} rank {plan.rank_text} of {inp.name} "
        f"({shape_str(shape)}, {summary['dtype']}{missing})"
    ]
    if inp.unlisted is not None:
        lines.append("  " + inp.unlisted.line(inp.name))
    status = "converged" if summary["converged"] else "not converged"
    runs = f"{summary['iterations']} iterations ({status})" if plan.method.iterative else "one pass"
    lines.append(
        f"  relative error {summary['error']:.4f}, fit {summary['fit']:.4f}, {runs}, "
        f"{summary['time_s']:.2f} s"
    )
    got, asked = summary["model_rank"], summary["rank"]
    if got is not None and got != asked and not isinstance(asked, int):
        lines.append(f"  model rank {got} (the data cannot support the requested one)")
    elif isinstance(got, list) and isinstance(asked, int) and max(got) < asked:
        lines.append(f"  model rank {got} (capped by the data's shape)")
    r = summary["model_rank"]
    if "factors.png" in plan.plots and isinstance(r, int) and r > MAX_PLOTTED_COMPONENTS:
        lines.append(
            f"  factors.png shows the {MAX_PLOTTED_COMPONENTS} strongest of {r} components"
        )
    return lines


@click.command()
@input_options
@click.option(
    "--method",
    type=click.Choice(list(METHODS)),
    help="cp (ALS), ntf (non-negative CP), tucker (HOOI), tt (TT-SVD), tr (tensor-ring ALS) "
    "[default: the dataset's suggested method, else cp].",
)
@click.option(
    "--rank",
    help="An integer, or one per mode for tucker (e.g. 5,4,3) "
    "[default for bundled data: its suggested rank].",
)
@click.option(
    "--init", type=click.Choice(["default", "random"]), default="default", show_default=True
)
@iteration_options(max_iter=500)
@run_options
@output_options
def decompose(
    source: InputArgs,
    method: str | None,
    rank: str | None,
    init: str,
    iters: IterArgs,
    run: RunArgs,
    output: OutputArgs,
) -> None:
    """Decompose FILE (or a bundled dataset) and write factors, a summary and plots.

    FILE may be .npy, .npz, .pt/.pth (tensors only), .safetensors, a coordinate
    .csv/.tsv/.txt file with lines i,j,k,value (0-based), or a FROSTT .tns file
    (1-based). Entries a coordinate file does not list are missing values or zeros
    (--unlisted; the choice is printed). Without FILE the bundled covid19_serology
    tensor is used. Outputs go to --out: factors.safetensors, summary.json, and PNG
    plots (skipped, with a note, when matplotlib is not installed).
    """
    inp = load_input(source, run)
    plan = make_plan(inp, method, rank, init, output)
    if plan.skipped_plots:
        skip_plots_note(plan.skipped_plots)
    result = fit(plan, inp, init, iters, run.seed, output.quiet)
    deg = degeneracy(result.model)
    iterative = plan.method.iterative
    options = {
        "init": init,
        "max_iter": iters.max_iter if iterative else None,
        "tol": iters.tol if iterative else None,
        "seed": run.seed,
    }
    summary = build_summary(plan, inp, result, deg, options)
    from ..io import factorized_to_bytes

    metadata = {
        "method": plan.method.name,
        "rank": plan.rank_text,
        "input": str(inp.origin.get("dataset") or inp.origin["file"]),
        "seed": str(run.seed),
    }
    files = {
        "factors.safetensors": factorized_to_bytes(result.model, metadata=metadata),
        "summary.json": dumps(summary).encode("utf-8"),
    }
    files.update(render_plots(plan, result, inp, deg))
    write_outputs(plan.paths, files, output.force)
    if deg is not None and deg.degenerate:
        warn(deg.message)
    if output.as_json:
        click.echo(dumps(summary), nl=False)
    elif not output.quiet:
        for line in report_lines(plan, inp, summary):
            click.echo(line)
        click.echo("  wrote " + ", ".join(str(plan.paths[n]) for n in files))
