"""Neural operators, one per file: :class:`FNO`, :class:`TFNO`, :class:`MGTFNO`.

* :class:`FNO` (``fno.py``): Fourier neural operator, dense or factorized spectral weights.
* :class:`TFNO` (``tfno.py``): the FNO with Tucker-factorized spectral weights by default.
* :class:`MGTFNO` (``mg_tfno.py``): TFNO on multi-grid patches (:class:`MultigridPatching`).

Each model's structure is a frozen config (:class:`FNOConfig`, :class:`MGTFNOConfig`);
:func:`model_config` / :func:`model_from_config` turn a model into JSON and back (the checkpoint
format of :mod:`factorch.train`).
"""

from ._patching import MultigridPatching as MultigridPatching
from ._registry import model_config as model_config
from ._registry import model_from_config as model_from_config
from .fno import FNO as FNO
from .fno import FNOConfig as FNOConfig
from .mg_tfno import MGTFNO as MGTFNO
from .mg_tfno import MGTFNOConfig as MGTFNOConfig
from .tfno import TFNO as TFNO

__all__ = [
    "FNO",
    "MGTFNO",
    "TFNO",
    "FNOConfig",
    "MGTFNOConfig",
    "MultigridPatching",
    "model_config",
    "model_from_config",
]
