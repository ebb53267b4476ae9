"""factorch: PyTorch-native tensor methods for deep learning."""

from . import algebra as algebra

__version__ = "0.1.0"

__all__ = ["__version__", "algebra"]
