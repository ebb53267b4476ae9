"""Factorized layers: factorized weights as parametrizations, layers built on them, compression."""

from ._chain import TRWeight as TRWeight
from ._chain import TTWeight as TTWeight
from ._embedding import FactorizedEmbedding as FactorizedEmbedding
from ._formats import CPWeight as CPWeight
from ._formats import LowRankWeight as LowRankWeight
from ._formats import TuckerWeight as TuckerWeight
from ._compress import CompressionReport as CompressionReport
from ._compress import FineTune as FineTune
from ._compress import LayerReport as LayerReport
from ._compress import compress as compress
from ._conv import FactorizedConv1d as FactorizedConv1d
from ._conv import FactorizedConv2d as FactorizedConv2d
from ._conv import FactorizedConv3d as FactorizedConv3d
from ._layer import FactorizedLayer as FactorizedLayer
from ._linear import FactorizedLinear as FactorizedLinear
from ._spec import TensorizedShape as TensorizedShape
from ._spec import TensorLayout as TensorLayout
from ._spec import balanced_factorization as balanced_factorization
from ._tensor_layers import TensorContraction as TensorContraction
from ._tensor_layers import TensorRegression as TensorRegression
from ._weight import FactorizedWeight as FactorizedWeight

__all__ = [
    "CPWeight",
    "CompressionReport",
    "FactorizedConv1d",
    "FactorizedConv2d",
    "FactorizedConv3d",
    "FactorizedEmbedding",
    "FactorizedLayer",
    "FactorizedLinear",
    "FactorizedWeight",
    "FineTune",
    "LayerReport",
    "LowRankWeight",
    "TRWeight",
    "TTWeight",
    "TensorContraction",
    "TensorLayout",
    "TensorRegression",
    "TensorizedShape",
    "TuckerWeight",
    "balanced_factorization",
    "compress",
]
