"""Pieces of :mod:`factorch.decomp` shared with higher layers (not public API).

``completion`` and ``nn`` build on these: the CP normal-equation solver, the TT rank check, and
the format-neutral parameter counting behind :func:`factorch.decomp.rank_for_ratio` (one
:class:`RankFamily` per format, the budget search and its error). Unchecked or loosely checked;
callers validate at their own public boundary. Names carry no leading underscore so that no
module imports another subpackage's private names.
"""

from ._budget import FAMILIES as RANK_FAMILIES
from ._budget import CPFamily as CPFamily
from ._budget import LowRankFamily as LowRankFamily
from ._budget import Rank as Rank
from ._budget import RankFamily as RankFamily
from ._budget import TRFamily as TRFamily
from ._budget import TTFamily as TTFamily
from ._budget import TuckerFamily as TuckerFamily
from ._budget import as_int as as_int
from ._budget import budget_error as budget_error
from ._budget import cap_tucker as cap_tucker
from ._budget import chain_count as chain_count
from ._budget import check_ratio as check_ratio
from ._budget import family_rank_for_budget as family_rank_for_budget
from ._budget import search_family as search_family
from ._budget import tt_bounds as tt_bounds
from ._cp_sweep import hadamard_grams as hadamard_grams
from ._cp_sweep import solve_normal as solve_normal
from ._tt import check_tt_rank as check_tt_rank

__all__ = [
    "RANK_FAMILIES",
    "CPFamily",
    "LowRankFamily",
    "Rank",
    "RankFamily",
    "TRFamily",
    "TTFamily",
    "TuckerFamily",
    "as_int",
    "budget_error",
    "cap_tucker",
    "chain_count",
    "check_ratio",
    "check_tt_rank",
    "family_rank_for_budget",
    "hadamard_grams",
    "search_family",
    "solve_normal",
    "tt_bounds",
]
