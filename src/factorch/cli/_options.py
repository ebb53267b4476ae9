"""Option groups shared by the commands, each collected into one typed, frozen value.

A group is a list of click parameters plus a dataclass with one field per parameter;
:func:`option_group` adds the parameters to a command and hands the command one instance of the
dataclass instead of a keyword per option. ``decompose`` therefore takes
``(source, run, output, iters, method, rank, init)`` rather than twenty-odd keywords, and every
command that reads data spells ``--unlisted``/``--max-entries`` the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import click

from ..io import DEFAULT_MAX_ENTRIES

__all__ = [
    "DEFAULT_OUT",
    "InputArgs",
    "IterArgs",
    "OutputArgs",
    "ReadArgs",
    "RunArgs",
    "input_options",
    "iteration_options",
    "output_options",
    "read_options",
    "run_options",
]

DEFAULT_DATASET = "covid19_serology"
DEFAULT_OUT = "factorch-out"
MAX_ITER = 10**6  # a run of more sweeps than this never ends in practice
MAX_SEED = 2**63 - 1
MAX_ENTRIES_OPTION = 2**48
Unlisted = Literal["auto", "missing", "zero"]
DType = Literal["float32", "float64"]

F = TypeVar("F", bound=Callable[..., Any])
AnyCallable = Callable[..., Any]
Decorator = Callable[[AnyCallable], AnyCallable]


@dataclass(frozen=True)
class ReadArgs:
    """How files are read: ``--key``, ``--unlisted``, ``--max-entries``."""

    key: str | None
    unlisted: Unlisted
    max_entries: int


@dataclass(frozen=True)
class InputArgs:
    """Where the data comes from: FILE or ``--dataset``, its mask and how it is read."""

    file: str | None
    dataset: str | None
    mask_file: str | None
    nan_as_missing: bool
    key: str | None
    unlisted: Unlisted
    max_entries: int

    @property
    def read(self) -> ReadArgs:
        return ReadArgs(self.key, self.unlisted, self.max_entries)


@dataclass(frozen=True)
class RunArgs:
    """Where and how a fit runs: ``--dtype``, ``--device``, ``--threads``, ``--seed``."""

    dtype: DType
    device: str
    threads: int | None
    seed: int


@dataclass(frozen=True)
class OutputArgs:
    """What a fitting command writes and prints."""

    out_dir: str
    force: bool
    no_plots: bool
    quiet: bool
    as_json: bool


@dataclass(frozen=True)
class IterArgs:
    """Stopping rule of iterative methods: ``--max-iter``, ``--tol``."""

    max_iter: int
    tol: float


def option_group(cls: type[Any], name: str, params: Sequence[Decorator]) -> Decorator:
    """Add ``params`` to a command and pass their values as one ``cls`` instance named
    ``name`` (``cls``'s fields are the parameters' names)."""
    fields = [f.name for f in dataclasses.fields(cls)]

    def decorate(command: AnyCallable) -> AnyCallable:
        @functools.wraps(command)
        def collected(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = cls(**{field: kwargs.pop(field) for field in fields})
            return command(*args, **kwargs)

        decorated: AnyCallable = collected
        for param in reversed(params):
            decorated = param(decorated)
        return decorated

    return decorate


def _finite_tol(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number; got {value}.", ctx, param)
    return value


def _cpu_limit() -> int:
    return max(os.cpu_count() or 1, 1)


_KEY = click.option(
    "--key", help="Array to read from a FILE holding several (.npz, .pt, .safetensors)."
)
_UNLISTED = click.option(
    "--unlisted",
    type=click.Choice(["auto", "missing", "zero"]),
    default="auto",
    show_default=True,
    help="What the entries a coordinate file (.csv/.tsv/.txt/.tns) does not list are: missing "
    "values, zeros, or auto = zeros when every listed value is a count (a non-negative "
    "integer), else missing. The choice made is printed and recorded.",
)
_MAX_ENTRIES = click.option(
    "--max-entries",
    type=click.IntRange(1, MAX_ENTRIES_OPTION),
    default=DEFAULT_MAX_ENTRIES,
    show_default=True,
    help="Refuse files declaring a tensor of more entries than this, before reading them "
    "(a memory guard: the default is 1 GiB as float64). Raise it for bigger data.",
)

READ_PARAMS = [_KEY, _UNLISTED, _MAX_ENTRIES]

INPUT_PARAMS = [
    click.argument("file", required=False, type=click.Path(dir_okay=False)),
    click.option(
        "--dataset", help=f"Bundled dataset to use instead of FILE [default: {DEFAULT_DATASET}]."
    ),
    click.option(
        "--mask",
        "mask_file",
        type=click.Path(dir_okay=False),
        help="Observed-entry mask (1 = observed), same shape as the data.",
    ),
    click.option("--nan-as-missing", is_flag=True, help="Treat NaN entries as missing values."),
    *READ_PARAMS,
]

RUN_PARAMS = [
    click.option(
        "--dtype", type=click.Choice(["float32", "float64"]), default="float64", show_default=True
    ),
    click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ..."),
    click.option(
        "--threads",
        type=click.IntRange(1, _cpu_limit()),
        help="CPU threads for PyTorch, at most the CPUs of this machine [default: 1 for tensors "
        "under 2**20 entries, where thread start-up costs more than it saves, else PyTorch's].",
    ),
    click.option(
        "--seed",
        type=click.IntRange(0, MAX_SEED),
        default=0,
        show_default=True,
        help="Seed of the random generator.",
    ),
]

OUTPUT_PARAMS = [
    click.option(
        "--out", "out_dir", default=DEFAULT_OUT, show_default=True, help="Output directory."
    ),
    click.option("--force", is_flag=True, help="Overwrite existing output files."),
    click.option("--no-plots", is_flag=True, help="Do not draw PNG plots (no matplotlib needed)."),
    click.option("--quiet", is_flag=True, help="No progress bar and no summary lines."),
    click.option("--json", "as_json", is_flag=True, help="Print the JSON summary to stdout."),
]


def read_options(command: F) -> F:
    return cast(F, option_group(ReadArgs, "read", READ_PARAMS)(command))


def input_options(command: F) -> F:
    return cast(F, option_group(InputArgs, "source", INPUT_PARAMS)(command))


def run_options(command: F) -> F:
    return cast(F, option_group(RunArgs, "run", RUN_PARAMS)(command))


def output_options(command: F) -> F:
    return cast(F, option_group(OutputArgs, "output", OUTPUT_PARAMS)(command))


def iteration_options(max_iter: int) -> Decorator:
    """``--max-iter`` (default ``max_iter``) and ``--tol``."""
    params = [
        click.option(
            "--max-iter", type=click.IntRange(1, MAX_ITER), default=max_iter, show_default=True
        ),
        click.option(
            "--tol",
            type=click.FloatRange(min=0.0),
            default=1e-8,
            show_default=True,
            callback=_finite_tol,
        ),
    ]
    return option_group(IterArgs, "iters", params)
