"""``factorch decompose``: fit one decomposition and write factors, summary and plots."""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any

import click
import torch

from ._common import (
    CLIError,
    Input,
    call_library,
    check_cp_rank,
    dataset_option,
    dtype_option,
    dumps,
    file_argument,
    force_option,
    iteration_callback,
    key_option,
    nan_as_missing_option,
    open_input,
    out_option,
    parse_rank,
    plan_outputs,
    progress,
    require_matplotlib,
    shape_str,
    threads_option,
    versions,
    write_outputs,
)

METHODS = ("cp", "ntf", "tucker", "tt", "tr")
FUNCTIONS = {
    "cp": "cp",
    "ntf": "non_negative_cp",
    "tucker": "tucker",
    "tt": "tt_svd",
    "tr": "tr_als",
}
TITLES = {
    "cp": "CP",
    "ntf": "Non-negative CP",
    "tucker": "Tucker",
    "tt": "Tensor-train",
    "tr": "Tensor-ring",
}


def find_function(method: str) -> Callable[..., Any]:
    """The ``factorch.decomp`` function behind ``--method``."""
    name = FUNCTIONS[method]
    obj = getattr(importlib.import_module("factorch.decomp"), name, None)
    if obj is None or isinstance(obj, types.ModuleType) or not callable(obj):
        raise CLIError(f"--method {method}: factorch.decomp.{name} is not available in this build.")
    return obj


def check_rank(method: str, rank: int | tuple[int, ...], shape: tuple[int, ...]) -> None:
    """Ranks the data cannot support, with a message saying what would work."""
    if method in ("cp", "ntf"):
        if not isinstance(rank, int):
            raise CLIError(f"--method {method} takes one integer rank; got {rank}.")
        check_cp_rank(rank, shape)
    elif method == "tucker" and isinstance(rank, tuple):
        if len(rank) != len(shape):
            raise CLIError(
                f"--rank for tucker needs one entry per mode ({len(shape)}); got {len(rank)}."
            )
        for n, (r, size) in enumerate(zip(rank, shape)):
            if r > size:
                raise CLIError(
                    f"rank {r} is too large for mode {n} of size {size} (shape {shape}); "
                    f"a Tucker rank is at most the mode's size."
                )
    elif method == "tucker" and rank > max(shape):
        raise CLIError(
            f"rank {rank} is too large for a tensor of shape {shape}: no mode has {rank} "
            "indices; choose a rank per mode with --rank r0,r1,...."
        )


def run_decomposition(
    fn: Callable[..., Any],
    inp: Input,
    rank: int | tuple[int, ...],
    *,
    method: str,
    init: str,
    max_iter: int,
    tol: float,
    seed: int,
    quiet: bool,
) -> Any:
    """Call ``fn`` with the options it accepts; user errors become :class:`CLIError`."""
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    if "max_iter" in params:
        kwargs["max_iter"] = max_iter
    if "tol" in params:
        kwargs["tol"] = tol
    if "generator" in params:
        kwargs["generator"] = torch.Generator().manual_seed(seed)  # CPU: same draws on every device
    if init == "random":
        if "init" not in params:
            raise CLIError(
                f"--init random does not apply to --method {method} (one pass, no init)."
            )
        kwargs["init"] = "random"
    if inp.mask is not None:
        if "mask" not in params:
            raise CLIError(
                f"{inp.name} has {inp.n_missing} missing entries but --method {method} does not "
                "handle missing values; use --method cp (EM imputation)."
            )
        kwargs["mask"] = inp.mask
    iterative = "callback" in params
    with progress(max_iter if iterative else 0, desc=method, quiet=quiet or not iterative) as bar:
        if iterative:
            kwargs["callback"] = iteration_callback(bar)
        return call_library(fn, inp.tensor, rank, **kwargs)


def output_names(method: str, iterative: bool, plots: bool) -> list[str]:
    names = ["factors.safetensors", "summary.json"]
    if plots:
        if method in ("cp", "ntf"):
            names.append("factors.png")
        elif method == "tucker":
            names.append("core.png")
        if iterative:
            names.append("convergence.png")
    return names


def render_plots(method: str, result: Any, inp: Input, rank_text: str) -> dict[str, bytes]:
    from ..plot import figure_to_png, plot_convergence, plot_cp_factors, plot_tucker_core

    title = f"{TITLES[method]} of {inp.name}, rank {rank_text}"
    out: dict[str, bytes] = {}
    if method in ("cp", "ntf"):
        fig = plot_cp_factors(
            result.model, labels=inp.labels, mode_names=inp.mode_names, title=title
        )
        out["factors.png"] = figure_to_png(fig)
    elif method == "tucker":
        fig = plot_tucker_core(result.model, mode_names=inp.mode_names, title=title + ": core")
        out["core.png"] = figure_to_png(fig)
    out["convergence.png"] = figure_to_png(plot_convergence(result, title=title))
    return out


@click.command()
@file_argument
@dataset_option
@click.option(
    "--method",
    type=click.Choice(METHODS),
    help="cp (ALS), ntf (non-negative CP), tucker (HOOI), tt (TT-SVD), tr (tensor-ring ALS) "
    "[default: the dataset's suggested method, else cp].",
)
@click.option(
    "--rank",
    help="An integer, or one per mode for tucker (e.g. 5,4,3) "
    "[default for bundled data: its suggested rank].",
)
@key_option
@click.option(
    "--mask",
    "mask_file",
    type=click.Path(dir_okay=False),
    help="Observed-entry mask (1 = observed), same shape.",
)
@nan_as_missing_option
@click.option(
    "--init", type=click.Choice(["default", "random"]), default="default", show_default=True
)
@click.option("--max-iter", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--tol", type=click.FloatRange(min=0.0), default=1e-8, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the random generator."
)
@dtype_option
@threads_option
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@out_option
@force_option
@click.option("--no-plots", is_flag=True, help="Do not draw PNG plots (no matplotlib needed).")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary to stdout.")
def decompose(
    file: str | None,
    dataset: str | None,
    method: str | None,
    rank: str | None,
    key: str | None,
    mask_file: str | None,
    nan_as_missing: bool,
    init: str,
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
    """Decompose FILE (or a bundled dataset) and write factors, a summary and plots.

    FILE may be .npy, .npz, .pt/.pth (tensors only), .safetensors, or a coordinate
    .csv/.tsv/.txt file with lines i,j,k,value (0-based). Without FILE the bundled
    covid19_serology tensor is used. Outputs go to --out: factors.safetensors,
    summary.json, and PNG plots.
    """
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
    if method is None:
        method = inp.dataset.suggested_method if inp.dataset is not None else "cp"
    if inp.tensor.ndim < 2:
        raise CLIError(f"{inp.name} has shape {shape}; a decomposition needs at least 2 modes.")
    if rank is None:
        if inp.dataset is None:
            raise CLIError("--rank is required when decomposing a FILE (e.g. --rank 3).")
        rank_value: int | tuple[int, ...] = inp.dataset.suggested_rank
    else:
        rank_value = parse_rank(rank)
    check_rank(method, rank_value, shape)
    fn = find_function(method)
    iterative = "callback" in inspect.signature(fn).parameters
    plots = not no_plots
    if plots:
        require_matplotlib()
    paths = plan_outputs(out_dir, output_names(method, iterative, plots), force)

    result = run_decomposition(
        fn,
        inp,
        rank_value,
        method=method,
        init=init,
        max_iter=max_iter,
        tol=tol,
        seed=seed,
        quiet=quiet,
    )
    rank_text = str(rank_value) if isinstance(rank_value, int) else ",".join(map(str, rank_value))
    model = result.model
    n_params = int(getattr(model, "n_params", 0)) or None
    summary: dict[str, Any] = {
        "command": "decompose",
        "input": inp.origin,
        "shape": list(shape),
        "dtype": dtype,
        "device": str(dev),
        "missing": inp.n_missing,
        "method": method,
        "function": f"factorch.decomp.{FUNCTIONS[method]}",
        "model": type(model).__name__,
        "rank": rank_value if isinstance(rank_value, int) else list(rank_value),
        "model_rank": _jsonable_rank(getattr(model, "rank", None)),
        "options": {
            "init": init,
            "max_iter": max_iter if iterative else None,
            "tol": tol if iterative else None,
            "seed": seed,
        },
        "error": float(result.error),
        "fit": float(result.fit),
        "iterations": int(result.iterations),
        "converged": bool(result.converged),
        "time_s": float(result.time_s),
        "init_time_s": float(result.init_time_s),
        "n_params": n_params,
        "compression": inp.tensor.numel() / n_params if n_params else None,
        "errors": [float(e) for e in result.errors],
        "outputs": {name: str(p) for name, p in paths.items()},
        "versions": versions(),
    }
    from ..io import factorized_to_bytes

    files: dict[str, bytes] = {
        "factors.safetensors": factorized_to_bytes(
            model,
            metadata={
                "method": method,
                "rank": rank_text,
                "input": inp.origin.get("dataset") or inp.origin["file"],
                "seed": str(seed),
            },
        ),
        "summary.json": dumps(summary).encode("utf-8"),
    }
    if plots:
        rendered = render_plots(method, result, inp, rank_text)
        files.update({name: data for name, data in rendered.items() if name in paths})
    write_outputs(paths, files, force)

    if as_json:
        click.echo(dumps(summary), nl=False)
    elif not quiet:
        status = "converged" if result.converged else "not converged"
        runs = f"{result.iterations} iterations ({status})" if iterative else "one pass"
        click.echo(
            f"{TITLES[method]} rank {rank_text} of {inp.name} ({shape_str(shape)}, {dtype}"
            + (f", {inp.n_missing} missing" if inp.n_missing else "")
            + ")"
        )
        click.echo(
            f"  relative error {result.error:.4f}, fit {result.fit:.4f}, {runs}, "
            f"{result.time_s:.2f} s"
        )
        got = summary["model_rank"]
        if got is not None and got != summary["rank"] and not isinstance(rank_value, int):
            click.echo(f"  model rank {got} (the data cannot support the requested one)")
        elif isinstance(got, list) and isinstance(rank_value, int) and max(got) < rank_value:
            click.echo(f"  model rank {got} (capped by the data's shape)")
        click.echo("  wrote " + ", ".join(str(paths[n]) for n in files))


def _jsonable_rank(rank: Any) -> Any:
    if isinstance(rank, int):
        return rank
    if isinstance(rank, tuple | list):
        return [int(r) for r in rank]
    return None
