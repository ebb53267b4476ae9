"""Real tensors bundled with factorch (no download at run time).

``load(name)`` returns a frozen :class:`Dataset` (tensor, mask of observed entries, mode names,
labels per mode, description, source, citation, licence); ``list_datasets()`` names them. Each
file's provenance and licence are recorded in ``factorch/datasets/data/SOURCES.md``.
"""

from ._registry import Dataset as Dataset
from ._registry import list_datasets as list_datasets
from ._registry import load as load

__all__ = ["Dataset", "list_datasets", "load"]
