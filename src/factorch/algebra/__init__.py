"""Dense tensor algebra: unfolding, mode products, Khatri--Rao, MTTKRP, norms, truncated SVD."""

from ._mttkrp import mttkrp as mttkrp
from ._norms import inner as inner
from ._norms import norm as norm
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
    "ModeLayout",
    "SVDMethod",
    "SparseCoordinates",
    "SparseLayout",
    "fold",
    "inner",
    "khatri_rao",
    "kron",
    "leading_singular_vectors",
    "mode_dot",
    "mttkrp",
    "multi_mode_dot",
    "norm",
    "randomized_svd",
    "sparse_mttkrp",
    "truncated_svd",
    "unfold",
]
