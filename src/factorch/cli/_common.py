"""Helpers shared by the ``factorch`` commands: errors, messages, progress, output files.

Every user mistake becomes a :class:`CLIError` (exit status 2, one line on stderr, no traceback);
:func:`as_cli_error` maps every other exception a run can meet to one, and ``_main.py`` prints it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import torch

from .. import __version__
from ..io import check_targets

P = ParamSpec("P")
R = TypeVar("R")

DEBUG_ENV = "FACTORCH_DEBUG"  # set to 1 to see the traceback of an unexpected error


class CLIError(click.ClickException):
    """A user error: reported as ``factorch: error: <message>`` with exit status 2."""

    exit_code = 2


class Interrupted(CLIError):
    """Ctrl-C: exit status 130, nothing written."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted; no output was written.")


def one_line(message: object) -> str:
    """Collapse a (possibly multi-line) message to one line."""
    text = " ".join(str(message).split())
    return text or "unknown error"


def _out_of_memory(e: BaseException) -> bool:
    if isinstance(e, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def as_cli_error(e: BaseException) -> CLIError:
    """The one-line error a run reports for ``e`` (any exception but a bug is mapped here)."""
    if isinstance(e, CLIError):
        return e
    if isinstance(e, KeyboardInterrupt | click.Abort):
        return Interrupted()
    if isinstance(e, ValueError | TypeError | IndexError):  # the library's input errors
        return CLIError(one_line(e))
    if isinstance(e, torch.linalg.LinAlgError):
        return CLIError(
            f"the computation failed numerically ({one_line(e)}); try --dtype float64, a lower "
            "rank or --init random."
        )
    if _out_of_memory(e):
        return CLIError(
            "not enough memory for this run; use a smaller input, a lower rank or --dtype float32."
        )
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return CLIError(one_line(f"{e.strerror or e}{where}"))
    return CLIError(
        f"unexpected {type(e).__name__}: {one_line(e)} (a bug in factorch; please report it, "
        f"with the command; {DEBUG_ENV}=1 shows the traceback)."
    )


def call_library(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` with every error turned into a :class:`CLIError`."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        if os.environ.get(DEBUG_ENV) and not isinstance(e, ValueError | TypeError | IndexError):
            raise
        raise as_cli_error(e) from None
    except KeyboardInterrupt:
        raise Interrupted() from None


def warn(message: str) -> None:
    """One ``factorch: warning: ...`` line on stderr (shown even with --quiet)."""
    click.echo(f"factorch: warning: {one_line(message)}", err=True)


def note(message: str) -> None:
    """One ``factorch: note: ...`` line on stderr."""
    click.echo(f"factorch: note: {one_line(message)}", err=True)


def write_outputs(paths: dict[str, Path], files: dict[str, bytes], force: bool) -> None:
    """Write ``files`` (output name to bytes) to their planned ``paths``, all or none."""
    from ..io import write_files

    try:
        write_files({paths[name]: data for name, data in files.items()}, force=force)
    except (FileExistsError, IsADirectoryError, OSError) as e:
        raise CLIError(f"cannot write the outputs: {one_line(e)}") from None


def plan_outputs(out_dir: str, names: Sequence[str], force: bool) -> dict[str, Path]:
    """Target paths in ``out_dir``; refuse existing ones before any work is done."""
    if not out_dir.strip():
        raise CLIError(
            "--out must name a directory; got an empty name (use --out . for the current one)."
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out_dir!r} exists and is not a directory.")
    paths = {name: out / name for name in names}
    try:
        check_targets(paths.values(), force=force)
    except (FileExistsError, IsADirectoryError) as e:
        raise CLIError(
            one_line(e).replace("pass force=True (--force on the command line)", "pass --force")
        ) from None
    return paths


def matplotlib_missing() -> bool:
    """True when matplotlib cannot be imported (a core install without the ``plot`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def skip_plots_note(names: Sequence[str]) -> None:
    note(
        f"matplotlib is not installed, so {', '.join(names)} {'was' if len(names) == 1 else 'were'}"
        " not drawn; pip install 'factorch[plot]' to get plots, or pass --no-plots."
    )


@contextmanager
def progress(total: int, *, desc: str, quiet: bool) -> Iterator[Any]:
    """A tqdm bar on stderr that appears only after half a second (nothing for quick runs)."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        disable=quiet,
        delay=0.5,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def versions() -> dict[str, str]:
    return {
        "factorch": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _finite(obj: object) -> object:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: object) -> str:
    """JSON text (NaN and infinities become null, which JSON can represent)."""
    return json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n"


def shape_str(shape: Sequence[int]) -> str:
    return " × ".join(str(s) for s in shape)
