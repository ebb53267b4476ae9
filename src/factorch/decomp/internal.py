"""Pieces of :mod:`factorch.decomp` shared with higher layers (not public API).

``completion``, ``nn`` and ``distributed`` build on these: the CP-ALS state, kernels, error
estimates and convergence rule (:mod:`._cp_sweep`, :mod:`._cp`), the data scaling, the pieces of
the truncated eigen-decomposition (:mod:`._truncate`), the Tucker/TT rank checks, and
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
from ._cp import _gram_unresolved as gram_unresolved
from ._cp import output_model as output_model
from ._cp_sweep import _GAMMA_EXACT as EXACT_ERROR_GAMMA
from ._cp_sweep import CPState as CPState
from ._cp_sweep import exact_error as exact_error
from ._cp_sweep import gram_error as gram_error
from ._cp_sweep import hadamard_grams as hadamard_grams
from ._cp_sweep import mttkrp_from_partial as mttkrp_from_partial
from ._cp_sweep import solve_normal as solve_normal
from ._cp_sweep import tree_partial as tree_partial
from ._scale import fit_scale as fit_scale
from ._truncate import _needs_refinement as needs_refinement
from ._truncate import _pick_rank as pick_rank
from ._truncate import _signed as signed_basis
from ._truncate import _tails as spectrum_tails
from ._tt import check_tt_rank as check_tt_rank
from ._tucker_common import check_core_bound as check_core_bound
from ._tucker_common import check_rel_tol as check_rel_tol
from ._tucker_common import check_tucker_rank as check_tucker_rank
from ._tucker_common import data_scale as data_scale

__all__ = [
    "EXACT_ERROR_GAMMA",
    "RANK_FAMILIES",
    "CPFamily",
    "CPState",
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
    "check_core_bound",
    "check_ratio",
    "check_rel_tol",
    "check_tt_rank",
    "check_tucker_rank",
    "data_scale",
    "exact_error",
    "family_rank_for_budget",
    "fit_scale",
    "gram_error",
    "gram_unresolved",
    "hadamard_grams",
    "mttkrp_from_partial",
    "needs_refinement",
    "output_model",
    "pick_rank",
    "search_family",
    "signed_basis",
    "solve_normal",
    "spectrum_tails",
    "tree_partial",
    "tt_bounds",
]
