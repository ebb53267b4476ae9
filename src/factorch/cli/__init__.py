"""The ``factorch`` command line (``factorch ...`` or ``python -m factorch ...``).

Commands: ``decompose``, ``rank-scan``, ``info``, ``datasets``; see ``factorch --help``.
"""

from ._main import cli as cli
from ._main import main as main
from ._main import run as run

__all__ = ["cli", "main", "run"]
