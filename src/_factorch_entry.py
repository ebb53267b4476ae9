"""Entry point of the ``factorch`` console script: Ctrl-C is clean from the first instant.

Importing ``factorch`` imports PyTorch, which takes most of a second; a Ctrl-C in that time would
raise ``KeyboardInterrupt`` inside the import machinery and print a traceback. This module lives
outside the ``factorch`` package so that it runs *before* that import: it installs a SIGINT
handler that prints the one interrupt line and exits with status 130 at once (nothing has been
written yet), imports the command line, then restores Python's own handler for the run itself,
where ``factorch.cli`` turns ``KeyboardInterrupt`` into the same line and status.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

_INTERRUPTED = b"factorch: error: interrupted; no output was written.\n"


def _interrupted_during_startup(signum: int, frame: FrameType | None) -> None:
    os.write(2, _INTERRUPTED)
    os._exit(130)


def main() -> None:
    """Run ``factorch`` with ``sys.argv``; exit 0, 2 (one-line error) or 130 (Ctrl-C)."""
    previous = signal.signal(signal.SIGINT, _interrupted_during_startup)
    try:
        from factorch.cli import run
    except ImportError as e:
        sys.stderr.write(f"factorch: error: cannot import factorch ({e}); reinstall it.\n")
        sys.exit(2)
    try:
        signal.signal(signal.SIGINT, previous)
        code = run()
    except KeyboardInterrupt:
        os.write(2, _INTERRUPTED)
        code = 130
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # finished: a late Ctrl-C changes nothing
    sys.exit(code)


if __name__ == "__main__":
    main()
