"""Tensor decompositions: CP, Tucker, tensor-train, tensor-ring, non-negative and NMF.

Every algorithm takes the tensor first and the rank second, all else keyword-only, and returns a
:class:`DecompositionResult`.
"""

from ._batched import BatchCPResult as BatchCPResult
from ._batched import BatchTuckerResult as BatchTuckerResult
from ._batched import cp_batch as cp_batch
from ._batched import hosvd_batch as hosvd_batch
from ._budget import BudgetFormat as BudgetFormat
from ._budget import param_count as param_count
from ._budget import rank_for_ratio as rank_for_ratio
from ._cmtf import CMTFModel as CMTFModel
from ._cmtf import cmtf as cmtf
from ._constrained_cp import constrained_cp as constrained_cp
from ._cp import cp as cp
from ._cp_apr import CPAPRResult as CPAPRResult
from ._cp_apr import cp_apr as cp_apr
from ._cp_arls import cp_arls as cp_arls
from ._cp_nn import non_negative_cp as non_negative_cp
from ._cp_power import cp_power as cp_power
from ._cp_power import symmetric_cp_power as symmetric_cp_power
from ._degeneracy import CPDegeneracy as CPDegeneracy
from ._degeneracy import cp_degeneracy as cp_degeneracy
from ._nmf import NMFFactors as NMFFactors
from ._nmf import nmf as nmf
from ._parafac2 import parafac2 as parafac2
from ._prox import ProximalOperator as ProximalOperator
from ._rank import RankScan as RankScan
from ._rank import corcondia as corcondia
from ._rank import rank_scan as rank_scan
from ._rank import tt_rank_for_error as tt_rank_for_error
from ._rank import tucker_rank_for_error as tucker_rank_for_error
from ._result import Callback as Callback
from ._result import DecompositionResult as DecompositionResult
from ._result import IterationState as IterationState
from ._robust import RobustResult as RobustResult
from ._robust import robust_pca as robust_pca
from ._robust import robust_tensor_pca as robust_tensor_pca
from ._semi_nmf import SemiNMFFactors as SemiNMFFactors
from ._semi_nmf import semi_nmf as semi_nmf
from ._tr import tr_als as tr_als
from ._tr import tr_svd as tr_svd
from ._tt import tt_matrix as tt_matrix
from ._tt import tt_round as tt_round
from ._tt import tt_svd as tt_svd
from ._tt_cross import CrossResult as CrossResult
from ._tt_cross import tt_cross as tt_cross
from ._tucker import hosvd as hosvd
from ._tucker import non_negative_tucker as non_negative_tucker
from ._tucker import partial_tucker as partial_tucker
from ._tucker import tucker as tucker

__all__ = [
    "BatchCPResult",
    "BatchTuckerResult",
    "BudgetFormat",
    "CMTFModel",
    "CPAPRResult",
    "CPDegeneracy",
    "Callback",
    "CrossResult",
    "DecompositionResult",
    "IterationState",
    "NMFFactors",
    "ProximalOperator",
    "RankScan",
    "RobustResult",
    "SemiNMFFactors",
    "cmtf",
    "constrained_cp",
    "corcondia",
    "cp",
    "cp_apr",
    "cp_arls",
    "cp_batch",
    "cp_degeneracy",
    "cp_power",
    "hosvd",
    "hosvd_batch",
    "nmf",
    "non_negative_cp",
    "non_negative_tucker",
    "parafac2",
    "param_count",
    "partial_tucker",
    "rank_for_ratio",
    "rank_scan",
    "robust_pca",
    "robust_tensor_pca",
    "semi_nmf",
    "symmetric_cp_power",
    "tr_als",
    "tr_svd",
    "tt_cross",
    "tt_matrix",
    "tt_rank_for_error",
    "tt_round",
    "tt_svd",
    "tucker",
    "tucker_rank_for_error",
]
