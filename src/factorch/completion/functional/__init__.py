"""Functional (continuous-indexed) tensor completion: FunBaT and its MAP variant."""

from ._data import ContinuousData as ContinuousData
from ._data import Standardization as Standardization
from ._ep import funbat as funbat
from ._kernels import Matern as Matern
from ._map import funbat_map as funbat_map
from ._model import FunctionalTensor as FunctionalTensor
from ._model import LatentFunctions as LatentFunctions
from ._result import FunctionalResult as FunctionalResult
from ._result import Prediction as Prediction
from ._smoother import state_space_gp as state_space_gp

__all__ = [
    "ContinuousData",
    "FunctionalResult",
    "FunctionalTensor",
    "LatentFunctions",
    "Matern",
    "Prediction",
    "Standardization",
    "funbat",
    "funbat_map",
    "state_space_gp",
]
