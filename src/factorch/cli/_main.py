"""The ``factorch`` command group and its entry point.

``run()`` runs click in non-standalone mode so that every error, click's own usage errors
included, is reported the same way: one line ``factorch: error: <message>`` on stderr and exit
status 2 (130 for Ctrl-C), never a traceback. :class:`Group` maps whatever a command raises
through :func:`~factorch.cli._common.as_cli_error`; an exception nobody anticipated is reported
as a bug in one line too (``FACTORCH_DEBUG=1`` shows its traceback). Outputs are written only at
the end of a successful run, atomically, so an error or an interrupt leaves no partial file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from .. import __version__
from ._common import DEBUG_ENV, CLIError, Interrupted, as_cli_error, one_line
from ._complete import complete
from ._decompose import decompose
from ._info import datasets, info
from ._operator import train_operator_command
from ._scan import rank_scan

__all__ = ["cli", "main", "run"]


class Group(click.Group):
    """A click group whose commands fail with one-line :class:`CLIError` s only."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:  # while parsing: click would print a blank line first
            raise Interrupted() from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit):
            raise
        except KeyboardInterrupt:
            raise Interrupted() from None
        except Exception as e:
            if os.environ.get(DEBUG_ENV):
                raise
            raise as_cli_error(e) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="factorch", message="%(prog)s %(version)s")
def cli() -> None:
    """factorch: tensor decompositions from the command line.

    \b
    factorch decompose                    CP of the bundled COVID-19 serology tensor
    factorch decompose data.npy --rank 4  CP of your own tensor
    factorch rank-scan --ranks 1-6        fit and core consistency per rank
    factorch info data.npy                shape, density, missing values, norms
    factorch datasets                     the bundled datasets
    factorch complete t.csv --coords x,t --value y --functional
                                          FunBaT completion of a table
    factorch train-operator               train a neural operator on generated PDE data
    """


cli.add_command(decompose)
cli.add_command(rank_scan)
cli.add_command(info)
cli.add_command(datasets)
cli.add_command(complete)
cli.add_command(train_operator_command)


def _fail(message: str, code: int = 2) -> int:
    click.echo(f"factorch: error: {one_line(message)}", err=True)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status (for tests and embedding).

    Args:
        argv: the arguments after ``factorch`` (default ``sys.argv[1:]``).

    Returns:
        0 on success, 2 after an error (one line on stderr), 130 after Ctrl-C.

    Raises:
        Exception: only with the environment variable ``FACTORCH_DEBUG`` set: an unexpected
            error (not a usage error or a refused input) is re-raised, with its traceback,
            instead of being turned into exit status 2.

    Example:
        >>> run(["--version"])  # doctest: +ELLIPSIS
        factorch ...
        0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(cli.get_help(click.Context(cli, info_name="factorch")))
        return 0
    try:
        rv = cli.main(args=args, prog_name="factorch", standalone_mode=False)
    except CLIError as e:
        return _fail(e.format_message(), e.exit_code)
    except click.ClickException as e:  # usage errors
        return _fail(e.format_message(), 2)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        return _fail(Interrupted().format_message(), 130)
    except Exception as e:  # raised outside a command (option parsing); see Group.invoke
        if os.environ.get(DEBUG_ENV):
            raise
        err = as_cli_error(e)
        return _fail(err.format_message(), err.exit_code)
    return int(rv) if isinstance(rv, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: ``factorch ...`` and ``python -m factorch ...``.

    Args:
        argv: the arguments after ``factorch`` (default ``sys.argv[1:]``).

    Raises:
        SystemExit: always, with :func:`run`'s exit status (0 on success).

    Example:
        >>> try:
        ...     main(["--version"])  # doctest: +ELLIPSIS
        ... except SystemExit as stop:
        ...     print("exit status", stop.code)
        factorch ...
        exit status 0
    """
    sys.exit(run(argv))
