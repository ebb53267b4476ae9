"""Functional (continuous-indexed) tensor completion: FunBaT and its MAP variant.

Data indexed by real coordinates -- latitude x longitude x time, position x time, dose x time --
are modelled without binning them into a grid: a Tucker core (or CP) times Gaussian-process latent
functions per mode (Fang et al., "Functional Bayesian Tucker decomposition for continuous-indexed
tensor data", ICLR 2024), with Matérn priors in state-space form so inference costs ``O(n)``
batched work per mode (``O(log n)`` sequential depth) and predictions at unseen coordinates come
with variances.

* :class:`ContinuousData` (coordinates + values; from a table or a grid; splits, binning) and
  :class:`Standardization` (statistics of the training part only);
* :func:`funbat` -- conditional-EP inference (Kalman/RTS smoothing of the messages per mode);
* :func:`funbat_map` -- the MAP estimate of the same model by L-BFGS or mini-batch Adam;
* :class:`FunctionalTensor` (the model: :meth:`~FunctionalTensor.predict` returns a
  :class:`Prediction` with mean, standard deviation, RMSE/MAE/NLL/coverage helpers),
  :func:`functional_to_bytes` / :func:`functional_from_bytes`;
* :class:`Matern` priors and :func:`state_space_gp` (1-D GP regression in ``O(n)``);
* :func:`funbat_synthetic` -- the paper's synthetic data.
"""

from ._data import ContinuousData as ContinuousData
from ._data import Standardization as Standardization
from ._ep import funbat as funbat
from ._io import functional_from_bytes as functional_from_bytes
from ._io import functional_to_bytes as functional_to_bytes
from ._kernels import Matern as Matern
from ._map import funbat_map as funbat_map
from ._model import FunctionalTensor as FunctionalTensor
from ._model import LatentFunctions as LatentFunctions
from ._result import FunctionalResult as FunctionalResult
from ._result import Prediction as Prediction
from ._smoother import state_space_gp as state_space_gp
from ._synthetic import funbat_synthetic as funbat_synthetic

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
    "funbat_synthetic",
    "functional_from_bytes",
    "functional_to_bytes",
    "state_space_gp",
]
