"""Dense tensor algebra: unfolding, mode products, Khatri--Rao, MTTKRP, norms, truncated SVD.

Also the sparse MTTKRP with its caller-owned :class:`SparseLayout`, and the switch of the opt-in
autotuner of the tensor-reading GEMM (:func:`set_autotune`, :func:`autotune`; off by default, so
results are bit-identical across runs and processes), and the opt-in fused MTTKRP kernel for large
dense CPU tensors (``mttkrp(..., kernel="fused")``, :func:`fused_mttkrp_status`).
"""

from ._autotune import autotune as autotune
from ._autotune import autotune_cache as autotune_cache
from ._autotune import clear_autotune_cache as clear_autotune_cache
from ._autotune import is_autotune_enabled as is_autotune_enabled
from ._autotune import set_autotune as set_autotune
from ._fused import FusedStatus as FusedStatus
from ._fused import fused_mttkrp_status as fused_mttkrp_status
from ._mttkrp import MTTKRPKernel as MTTKRPKernel
from ._mttkrp import mttkrp as mttkrp
from ._norms import inner as inner
from ._norms import norm as norm
from ._plans import ContractionPlan as ContractionPlan
from ._plans import ContractionProblem as ContractionProblem
from ._products import khatri_rao as khatri_rao
from ._products import kron as kron
from ._products import mode_dot as mode_dot
from ._products import multi_mode_dot as multi_mode_dot
from ._sparse_layout import ModeLayout as ModeLayout
from ._sparse_layout import SparseCoordinates as SparseCoordinates
from ._sparse_layout import SparseLayout as SparseLayout
from ._sparse_mttkrp import sparse_mttkrp as sparse_mttkrp
from ._svd import SVDMethod as SVDMethod
from ._svd import leading_singular_vectors as leading_singular_vectors
from ._svd import randomized_svd as randomized_svd
from ._svd import truncated_svd as truncated_svd
from ._unfold import fold as fold
from ._unfold import unfold as unfold

__all__ = [
    "ContractionPlan",
    "ContractionProblem",
    "FusedStatus",
    "MTTKRPKernel",
    "ModeLayout",
    "SVDMethod",
    "SparseCoordinates",
    "SparseLayout",
    "autotune",
    "autotune_cache",
    "clear_autotune_cache",
    "fold",
    "fused_mttkrp_status",
    "inner",
    "is_autotune_enabled",
    "khatri_rao",
    "kron",
    "leading_singular_vectors",
    "mode_dot",
    "mttkrp",
    "multi_mode_dot",
    "norm",
    "randomized_svd",
    "set_autotune",
    "sparse_mttkrp",
    "truncated_svd",
    "unfold",
]
