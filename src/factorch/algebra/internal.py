"""Kernels of :mod:`factorch.algebra` shared with the other subpackages (not public API).

The public functions of :mod:`factorch.algebra` validate their arguments; the kernels here do not.
Callers inside factorch validate once at their own public boundary, then call these in their inner
loops. Names carry no leading underscore so that no module imports another subpackage's private
names; they are still not part of the user-facing API and may change without notice.

Dependency direction: ``algebra`` imports nothing above it (no ``tensors``, ``decomp``, ...).
"""

from ._args import as_array as as_array
from ._fused import fused_reason as fused_reason
from ._fused import fused_tree_partial as fused_tree_partial
from ._gemm import RANK as RANK
from ._gemm import contract as contract
from ._gemm import mode_product as mode_product
from ._mttkrp import _mttkrp as mttkrp
from ._mttkrp import check_factors_and_mode as check_factors_and_mode
from ._mttkrp import mttkrp_kernel as mttkrp_kernel
from ._products import _khatri_rao as khatri_rao
from ._products import _mode_dot as mode_dot
from ._sparse_layout import ModeLayout as ModeLayout
from ._sparse_layout import SparseLayout as SparseLayout
from ._sparse_mttkrp import Implementation as SparseImplementation
from ._sparse_mttkrp import layout_modes as layout_modes
from ._sparse_mttkrp import sparse_mttkrp_kernel as sparse_mttkrp
from ._svd import _leading_left as leading_left
from ._svd import _randomized_svd as randomized_svd
from ._svd import _truncated_svd as truncated_svd
from ._unfold import _fold as fold
from ._unfold import _unfold as unfold

__all__ = [
    "RANK",
    "ModeLayout",
    "SparseImplementation",
    "SparseLayout",
    "as_array",
    "check_factors_and_mode",
    "contract",
    "fold",
    "fused_reason",
    "fused_tree_partial",
    "khatri_rao",
    "layout_modes",
    "leading_left",
    "mode_dot",
    "mode_product",
    "mttkrp",
    "mttkrp_kernel",
    "randomized_svd",
    "sparse_mttkrp",
    "truncated_svd",
    "unfold",
]
