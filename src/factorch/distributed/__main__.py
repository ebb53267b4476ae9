"""``python -m factorch.distributed`` (under ``torchrun``): see :mod:`factorch.distributed._cli`."""

import sys

from ._cli import main

sys.exit(main())
