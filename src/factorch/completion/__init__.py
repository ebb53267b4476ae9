"""Tensor completion: low-rank and neural models fitted to the observed entries of a tensor.

Data are a :class:`~factorch.tensors.SparseTensor` of observed entries or a dense tensor with a
bool ``mask`` (True = observed). Every method returns a :class:`CompletionResult` (the model,
training and validation RMSE per epoch, the best epoch) and accepts a validation set for early
stopping and a callback.

* :func:`cp_als` -- CP by row-wise ALS on observed entries, or EM imputation (``method="em"``);
* :func:`cp_wopt` -- CP by weighted optimisation (L-BFGS / Adam, autograd);
* :func:`gcp` -- generalized CP under Gaussian, Poisson, Bernoulli, Gamma, Huber or a user loss;
* :func:`tucker_als`, :func:`tt_als` -- Tucker and tensor-train completion by ALS;
* :class:`CoSTCo`, :class:`EmbeddingMLP` with :func:`fit_neural` -- neural completion;
* :func:`dain` -- influence-guided data augmentation for neural completion;
* :func:`sparse_cp` -- CP-ALS of a sparse tensor whose unlisted entries are zeros;
* :func:`predict`, :func:`evaluate`, :func:`rmse`, :func:`mae`, :func:`relative_error`;
  :func:`holdout_mask`, :func:`split_mask` (see also :meth:`SparseTensor.split`).

Conventions shared by every fit (the low-rank ones; the neural ones where noted):

* the data come first (``tensor``; ``data=`` is a deprecated alias): a SparseTensor or torch
  sparse tensor (its listed entries are the observed ones), or a dense tensor / numpy array with
  an optional ``mask``; data that require grad are detached (the fits are not differentiable);
* ``l2`` is an absolute ridge (in the data's units squared), 0 by default; without it, a factor
  row with fewer observations than unknowns gets the minimum-norm least-squares solution;
* the fits compute in the input's precision whatever ``torch.autocast`` region is active
  (float16 / bfloat16 data in float32, the model returned in the input dtype with the RMSEs of
  that model), on the values divided by an exact power of two so that data of any magnitude in
  the dtype's range (float32 1e-30 ... 1e30) give the same fit; a rank whose working set cannot
  fit the device is refused before anything is allocated. :func:`fit_neural` honours autocast
  for its training passes and reports RMSEs computed without it.
"""

from . import functional as functional
from ._cp_als import CPCompletionMethod as CPCompletionMethod
from ._cp_als import cp_als as cp_als
from ._dain import DAINResult as DAINResult
from ._dain import dain as dain
from ._gcp import GCPLoss as GCPLoss
from ._gcp import gcp as gcp
from ._gcp import gcp_loss as gcp_loss
from ._gradient import Optimizer as Optimizer
from ._metrics import evaluate as evaluate
from ._metrics import mae as mae
from ._metrics import predict as predict
from ._metrics import relative_error as relative_error
from ._metrics import rmse as rmse
from ._neural import CoSTCo as CoSTCo
from ._neural import EmbeddingMLP as EmbeddingMLP
from ._neural import NeuralCompletionModel as NeuralCompletionModel
from ._neural import fit_neural as fit_neural
from ._result import CompletionCallback as CompletionCallback
from ._result import CompletionResult as CompletionResult
from ._result import CompletionState as CompletionState
from ._result import Link as Link
from ._sparse_cp import sparse_cp as sparse_cp
from ._split import holdout_mask as holdout_mask
from ._split import split_mask as split_mask
from ._tt import tt_als as tt_als
from ._tucker import tucker_als as tucker_als
from ._wopt import cp_wopt as cp_wopt

__all__ = [
    "CPCompletionMethod",
    "CoSTCo",
    "CompletionCallback",
    "CompletionResult",
    "CompletionState",
    "DAINResult",
    "EmbeddingMLP",
    "GCPLoss",
    "Link",
    "NeuralCompletionModel",
    "Optimizer",
    "cp_als",
    "cp_wopt",
    "dain",
    "evaluate",
    "fit_neural",
    "gcp",
    "gcp_loss",
    "holdout_mask",
    "mae",
    "predict",
    "relative_error",
    "rmse",
    "sparse_cp",
    "split_mask",
    "tt_als",
    "tucker_als",
]
