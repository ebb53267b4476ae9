"""Factorized layers: factorized weights as parametrizations, layers built on them, compression.

* Weight formats (:mod:`factorch.nn.formats`; ``torch.nn.utils.parametrize``-style modules:
  ``forward`` rebuilds the dense weight, ``right_inverse`` decomposes one):
  :class:`LowRankWeight`, :class:`CPWeight`, :class:`TuckerWeight`, :class:`TTWeight`,
  :class:`TRWeight`, subclasses of :class:`WeightFormat`, which owns each format's contractions,
  cost model, parameter budget and energy estimate; :func:`register_format` adds a format by
  name. Over a :class:`TensorLayout` (how the weight folds into a tensor;
  :class:`TensorizedShape` for matrix weights).
* Layers: :class:`FactorizedLinear`, :class:`FactorizedConv1d` / ``2d`` / ``3d``,
  :class:`FactorizedEmbedding`, :class:`TensorContraction`, :class:`TensorRegression`; each
  contracts its input with the factors or rebuilds the weight, whichever costs less for the actual
  input shape (``implementation="auto"``); ``from_dense`` factorizes a trained layer.
* :func:`compress`: factorize a trained model's layers under a global parameter budget with
  energy-based rank allocation; returns the new model and a :class:`CompressionReport`.
* Maestro (trainable, ordered low rank): :class:`LowRankLinear`, :class:`LowRankConv2d`,
  :class:`OrderedDropout`, :func:`hierarchical_group_lasso`.
* Regularisers: :func:`tensor_dropout`, :func:`tensor_lasso`, :func:`prune_components_`.
"""

from typing import Any

from . import attention as attention  # structured attention (tensor, metric, MoHD)
from ._compress import CompressionReport as CompressionReport
from ._compress import FineTune as FineTune
from ._compress import LayerReport as LayerReport
from ._compress import compress as compress
from ._conv import FactorizedConv1d as FactorizedConv1d
from ._conv import FactorizedConv2d as FactorizedConv2d
from ._conv import FactorizedConv3d as FactorizedConv3d
from ._embedding import FactorizedEmbedding as FactorizedEmbedding
from ._layer import FactorizedLayer as FactorizedLayer
from ._linear import FactorizedLinear as FactorizedLinear
from ._maestro import LowRankConv1d as LowRankConv1d
from ._maestro import LowRankConv2d as LowRankConv2d
from ._maestro import LowRankConv3d as LowRankConv3d
from ._maestro import LowRankLinear as LowRankLinear
from ._maestro import OrderedDropout as OrderedDropout
from ._maestro import hierarchical_group_lasso as hierarchical_group_lasso
from ._maestro import ordered_layers as ordered_layers
from ._regularizers import component_magnitudes as component_magnitudes
from ._regularizers import prune_components_ as prune_components_
from ._regularizers import tensor_dropout as tensor_dropout
from ._regularizers import tensor_lasso as tensor_lasso
from ._spec import TensorizedShape as TensorizedShape
from ._spec import TensorLayout as TensorLayout
from ._spec import balanced_factorization as balanced_factorization
from ._tensor_layers import TensorContraction as TensorContraction
from ._tensor_layers import TensorRegression as TensorRegression
from .formats import CPWeight as CPWeight
from .formats import LowRankWeight as LowRankWeight
from .formats import TRWeight as TRWeight
from .formats import TTWeight as TTWeight
from .formats import TuckerWeight as TuckerWeight
from .formats import WeightFormat as WeightFormat
from .formats import available_formats as available_formats
from .formats import format_from_config as format_from_config
from .formats import get_format as get_format
from .formats import register_format as register_format

__all__ = [
    "CPWeight",
    "CompressionReport",
    "FactorizedConv1d",
    "FactorizedConv2d",
    "FactorizedConv3d",
    "FactorizedEmbedding",
    "FactorizedLayer",
    "FactorizedLinear",
    "FineTune",
    "LayerReport",
    "LowRankConv1d",
    "LowRankConv2d",
    "LowRankConv3d",
    "LowRankLinear",
    "LowRankWeight",
    "OrderedDropout",
    "TRWeight",
    "TTWeight",
    "TensorContraction",
    "TensorLayout",
    "TensorRegression",
    "TensorizedShape",
    "TuckerWeight",
    "WeightFormat",
    "available_formats",
    "balanced_factorization",
    "component_magnitudes",
    "compress",
    "format_from_config",
    "get_format",
    "hierarchical_group_lasso",
    "ordered_layers",
    "prune_components_",
    "register_format",
    "tensor_dropout",
    "tensor_lasso",
]


def __getattr__(name: str) -> Any:
    """``FactorizedWeight``: the deprecated name of :class:`WeightFormat` (warns)."""
    if name == "FactorizedWeight":
        import warnings

        warnings.warn(
            "factorch.nn.FactorizedWeight is deprecated; use factorch.nn.WeightFormat.",
            DeprecationWarning,
            stacklevel=2,
        )
        return WeightFormat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
