"""Spectral convolutions (Fourier layers) with dense or factorized complex weights.

:class:`SpectralConv` is the Fourier layer of Fourier neural operators in 1, 2 or 3 dimensions;
its weight is a :class:`SpectralWeight` (dense, any registered weight format, per channel, or one
tensor shared by a stack of layers). :func:`register_spectral_network` lets a new weight format's
factors be contracted with the spectrum directly; :func:`kept_frequencies` says which Fourier
modes are kept.
"""

from ._conv import SpectralConv as SpectralConv
from ._modes import kept_frequencies as kept_frequencies
from ._networks import Network as Network
from ._networks import register_spectral_network as register_spectral_network
from ._weight import SpectralWeight as SpectralWeight
from ._weight import count_real as count_real

__all__ = [
    "Network",
    "SpectralConv",
    "SpectralWeight",
    "count_real",
    "kept_frequencies",
    "register_spectral_network",
]
