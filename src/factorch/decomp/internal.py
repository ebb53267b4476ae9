"""Pieces of :mod:`factorch.decomp` shared with higher layers (not public API).

``completion`` and ``nn`` build on these: the CP normal-equation solver, rank normalisation and
parameter counting for the budget helpers, and the TT rank check. Unchecked or loosely checked;
callers validate at their own public boundary. Names carry no leading underscore so that no
module imports another subpackage's private names.
"""

from ._budget import _count as count_params
from ._budget import _normalise_rank as normalise_rank
from ._budget import _tt_bounds as tt_bounds
from ._budget import _tucker_family as tucker_family
from ._cp_sweep import hadamard_grams as hadamard_grams
from ._cp_sweep import solve_normal as solve_normal
from ._tt import check_tt_rank as check_tt_rank

__all__ = [
    "check_tt_rank",
    "count_params",
    "hadamard_grams",
    "normalise_rank",
    "solve_normal",
    "tt_bounds",
    "tucker_family",
]
