"""The ``factorch`` command group and its entry point.

``main()`` runs click in non-standalone mode so that every user error, click's own usage errors
included, is reported the same way: one line ``factorch: error: <message>`` on stderr and exit
status 2, never a traceback. Outputs are written only at the end of a successful run, atomically,
so an error or an interrupt leaves no partial file behind.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .. import __version__
from ._common import one_line
from ._decompose import decompose
from ._info import datasets, info
from ._scan import rank_scan

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="factorch", message="%(prog)s %(version)s")
def cli() -> None:
    """factorch: tensor decompositions from the command line.

    \b
    factorch decompose                    CP of the bundled COVID-19 serology tensor
    factorch decompose data.npy --rank 4  CP of your own tensor
    factorch rank-scan --ranks 1-6        fit and core consistency per rank
    factorch info data.npy                shape, density, missing values, norms
    factorch datasets                     the bundled datasets
    """


cli.add_command(decompose)
cli.add_command(rank_scan)
cli.add_command(info)
cli.add_command(datasets)


def _fail(message: str, code: int = 2) -> int:
    click.echo(f"factorch: error: {one_line(message)}", err=True)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status (for tests and embedding)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(cli.get_help(click.Context(cli, info_name="factorch")))
        return 0
    try:
        rv = cli.main(args=args, prog_name="factorch", standalone_mode=False)
    except click.ClickException as e:  # usage errors, CLIError (2) and Interrupted (130)
        return _fail(e.format_message(), e.exit_code if e.exit_code in (2, 130) else 2)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted; no output was written.", 130)
    return int(rv) if isinstance(rv, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: ``factorch ...`` and ``python -m factorch ...``."""
    sys.exit(run(argv))
