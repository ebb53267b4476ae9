"""factorch: PyTorch-native tensor methods for deep learning."""

from . import algebra as algebra
from . import completion as completion
from . import datasets as datasets
from . import io as io
from . import nn as nn
from . import plot as plot
from . import random as random
from . import symmetry as symmetry
from . import tensors as tensors
from .nn import compress as compress
from .tensors import CPTensor as CPTensor
from .tensors import TRTensor as TRTensor
from .tensors import TTMatrix as TTMatrix
from .tensors import TTTensor as TTTensor
from .tensors import TuckerTensor as TuckerTensor

__version__ = "0.1.0"

__all__ = [
    "CPTensor",
    "TRTensor",
    "TTMatrix",
    "TTTensor",
    "TuckerTensor",
    "__version__",
    "algebra",
    "completion",
    "compress",
    "datasets",
    "io",
    "nn",
    "plot",
    "random",
    "symmetry",
    "tensors",
]
