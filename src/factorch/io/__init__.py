"""Safe file input and output: tensor readers, atomic writes, factorized-tensor files.

Readers never unpickle arbitrary objects (``.npy`` headers parsed here, ``torch.load(weights_only=
True)``, safetensors), check that a file's content is what its extension says, and bound memory by
the size a file declares before allocating (``max_entries``). Coordinate files say explicitly what
their unlisted entries are (``unlisted="missing"`` or ``"zero"``; :func:`read_observed` returns the
mask). Writers go through a temporary file in the same directory and an atomic rename,
and refuse to overwrite existing files unless told to.
"""

from ._atomic import check_targets as check_targets
from ._atomic import write_atomic as write_atomic
from ._atomic import write_files as write_files
from ._factors import factorized_from_bytes as factorized_from_bytes
from ._factors import factorized_to_bytes as factorized_to_bytes
from ._factors import load_factorized as load_factorized
from ._factors import save_factorized as save_factorized
from ._formats import DEFAULT_MAX_ENTRIES as DEFAULT_MAX_ENTRIES
from ._formats import FileFormatError as FileFormatError
from ._formats import ObservedTensor as ObservedTensor
from ._formats import describe_content as describe_content
from ._formats import file_format as file_format
from ._formats import read_observed as read_observed
from ._formats import read_tensor as read_tensor
from ._models import CONFIG_NAME as CONFIG_NAME
from ._models import WEIGHTS_NAME as WEIGHTS_NAME
from ._models import ModelFiles as ModelFiles
from ._models import read_model_config as read_model_config
from ._models import read_model_tensors as read_model_tensors
from ._models import save_model_files as save_model_files

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_MAX_ENTRIES",
    "WEIGHTS_NAME",
    "FileFormatError",
    "ModelFiles",
    "ObservedTensor",
    "check_targets",
    "describe_content",
    "factorized_from_bytes",
    "factorized_to_bytes",
    "file_format",
    "load_factorized",
    "read_model_config",
    "read_model_tensors",
    "read_observed",
    "read_tensor",
    "save_factorized",
    "save_model_files",
    "write_atomic",
    "write_files",
]
