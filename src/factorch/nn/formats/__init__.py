"""Weight formats: each factorized format is one :class:`WeightFormat` subclass that owns its logic.

The abstract base (:class:`WeightFormat`) documents the extension points: rebuild and
decompose (the ``torch.nn.utils.parametrize`` contract), the contractions a Linear, Conv and
Embedding layer run directly with the factors, their FLOP and memory-traffic counts (the cost
model behind ``implementation="auto"``), the parameter count and the rank for a budget, the
energy estimate :func:`~factorch.nn.compress` allocates ranks with, and a JSON config.

Built in: :class:`LowRankWeight` (``"lowrank"``), :class:`CPWeight` (``"cp"``),
:class:`TuckerWeight` (``"tucker"``), :class:`TTWeight` (``"tt"``), :class:`TRWeight` (``"tr"``).
A new format is one file: a subclass and a :func:`register_format` call; then
``FactorizedLinear(..., format="<name>")`` and ``compress(..., format="<name>")`` use it.
"""

from ._base import MEMORY_WEIGHT as MEMORY_WEIGHT
from ._base import WeightFormat as WeightFormat
from ._base import check_weight_finite as check_weight_finite
from ._base import dense_init_std as dense_init_std
from ._base import gaussian as gaussian
from ._base import keep_mask as keep_mask
from ._base import orthonormal as orthonormal
from ._base import row_digits as row_digits
from ._chain import TRWeight as TRWeight
from ._chain import TTWeight as TTWeight
from ._chain import chain_contract as chain_contract
from ._cp import CPWeight as CPWeight
from ._geometry import ConvGeometry as ConvGeometry
from ._geometry import known_size as known_size
from ._lowrank import LowRankWeight as LowRankWeight
from ._registry import available_formats as available_formats
from ._registry import format_from_config as format_from_config
from ._registry import get_format as get_format
from ._registry import register_format as register_format
from ._registry import unregister_format as unregister_format
from ._tucker import TuckerWeight as TuckerWeight

for _builtin in (LowRankWeight, CPWeight, TuckerWeight, TTWeight, TRWeight):
    register_format(_builtin)

__all__ = [
    "MEMORY_WEIGHT",
    "CPWeight",
    "ConvGeometry",
    "LowRankWeight",
    "TRWeight",
    "TTWeight",
    "TuckerWeight",
    "WeightFormat",
    "available_formats",
    "chain_contract",
    "check_weight_finite",
    "dense_init_std",
    "format_from_config",
    "gaussian",
    "get_format",
    "keep_mask",
    "known_size",
    "orthonormal",
    "register_format",
    "row_digits",
    "unregister_format",
]
