"""Safe file input and output: tensor readers, atomic writes, factorized-tensor files.

Readers never unpickle arbitrary objects (``numpy.load(allow_pickle=False)``,
``torch.load(weights_only=True)``, safetensors) and check that a file's content is what its
extension says. Writers go through a temporary file in the same directory and an atomic rename,
and refuse to overwrite existing files unless told to.
"""

from ._atomic import check_targets as check_targets
from ._atomic import write_atomic as write_atomic
from ._atomic import write_files as write_files
from ._factors import factorized_from_bytes as factorized_from_bytes
from ._factors import factorized_to_bytes as factorized_to_bytes
from ._factors import load_factorized as load_factorized
from ._factors import save_factorized as save_factorized
from ._formats import FileFormatError as FileFormatError
from ._formats import describe_content as describe_content
from ._formats import file_format as file_format
from ._formats import read_tensor as read_tensor

__all__ = [
    "FileFormatError",
    "check_targets",
    "describe_content",
    "factorized_from_bytes",
    "factorized_to_bytes",
    "file_format",
    "load_factorized",
    "read_tensor",
    "save_factorized",
    "write_atomic",
    "write_files",
]
