"""Safe readers for tensors stored in common array formats.

Supported extensions and how each is read:

=====================  =========================================================================
``.npy``               NumPy array: header parsed and checked here, then the declared bytes read
``.npz``               NumPy archive: one array, or the one named ``tensor`` (or ``key=``)
``.pt`` / ``.pth``     ``torch.load(weights_only=True)``: a tensor or a dict of tensors
``.safetensors``       one tensor, or the one named ``tensor`` (or ``key=``)
``.csv`` ``.tsv``      coordinates, one entry per line ``i,j,k,value`` (0-based indices, comma /
``.txt``               tab / space separated, optional header line, ``#`` comments)
``.tns``               FROSTT coordinates ``i j k value`` (1-based indices)
=====================  =========================================================================

Nothing is ever unpickled beyond tensors. Before parsing, the first bytes are checked against the
format the extension promises (NPY magic ``\\x93NUMPY``; zip ``PK\\x03\\x04`` holding ``.npy``
members for NPZ or a ``data.pkl`` for PyTorch; an 8-byte little-endian header length followed by
JSON for safetensors; UTF-8 text for coordinates), and a mismatch is refused with a message that
says what the file looks like instead.

**Memory is bounded by what a file declares, before anything is allocated**: the shape in an
``.npy`` header (also inside an ``.npz``, so a small archive that would inflate to gigabytes is
refused unread), the record sizes of a ``.pt`` zip, the shapes in a safetensors header, the largest
indices of a coordinate file. A tensor of more than ``max_entries`` entries (default
``2**27``, 1 GiB as float64) is refused with a message naming the override, and a header that
declares more data than the file holds is refused as truncated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from ._arrays import read_npy, read_npz, read_pt, read_safetensors
from ._content import (
    DEFAULT_MAX_ENTRIES,
    FileFormatError,
    Format,
    check_max_entries,
    describe_content,
    file_format,
)
from ._coordinates import Unlisted, densify, read_coordinates

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "FileFormatError",
    "ObservedTensor",
    "describe_content",
    "file_format",
    "read_observed",
    "read_tensor",
]


@dataclass(frozen=True)
class ObservedTensor:
    """A tensor read from a file, with which entries the file actually gives.

    Attributes:
        tensor: the values (a CPU tensor in the stored dtype; float64 for coordinate files).
            Entries a coordinate file does not list are NaN when read as missing, 0 when read
            as zeros.
        mask: boolean, True where the file gives a value; ``None`` when it gives every entry
            (dense formats, complete coordinate files, or unlisted entries read as zeros).
        format: the format read (see :func:`file_format`).
        unlisted: how a coordinate file's unlisted entries were read, ``"missing"`` or
            ``"zero"`` (the resolved choice when ``"auto"`` was asked); ``None`` for dense
            formats and for coordinate files that list every entry.
        n_unlisted: entries of the tensor a coordinate file does not list (0 otherwise).
        counts: for coordinate files, whether every listed value is a count (a finite
            non-negative integer), the rule ``unlisted="auto"`` follows; ``None`` otherwise.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     p = pathlib.Path(folder) / "ratings.csv"
        ...     _ = p.write_text("0,0,4.5\\n1,1,3.5\\n")
        ...     obs = read_observed(p)
        >>> obs.format, obs.unlisted, obs.n_missing, obs.mask.tolist()
        ('coo', 'missing', 2, [[True, False], [False, True]])
    """

    tensor: torch.Tensor
    mask: torch.Tensor | None
    format: Format
    unlisted: Literal["missing", "zero"] | None
    n_unlisted: int
    counts: bool | None

    @property
    def n_missing(self) -> int:
        """Entries the file does not give (0 when ``mask`` is None)."""
        return 0 if self.mask is None else int((~self.mask).sum())


def read_observed(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    unlisted: Unlisted = "auto",
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> ObservedTensor:
    """Read a tensor from a file, safely, with the mask of the entries the file gives.

    Args:
        path: a ``.npy``, ``.npz``, ``.pt``/``.pth``, ``.safetensors``, coordinate
            ``.csv``/``.tsv``/``.txt`` or FROSTT ``.tns`` file (see the module docstring).
        key: which array to take from a container holding several (``.npz``, ``.pt`` dict,
            ``.safetensors``); by default the only one, or the one named ``"tensor"``.
        unlisted: what the entries a coordinate file does not list are: ``"missing"`` (not
            observed: NaN in ``tensor``, False in ``mask``), ``"zero"`` (a sparse tensor), or
            ``"auto"``: ``"zero"`` when every listed value is a count (a finite non-negative
            integer; count data omit zeros), else ``"missing"``. Ignored for dense formats.
        max_entries: refuse a file declaring a tensor of more entries than this (checked
            before anything is allocated; default ``2**27``, 1 GiB as float64). Raise it for
            larger data that fits in memory.

    Returns:
        :class:`ObservedTensor`. Not differentiable (file I/O).

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: (a ``ValueError``) unsupported extension; content that does not match
            the extension; truncated or inconsistent headers; a declared size over
            ``max_entries``; objects other than tensors; malformed coordinates.
        ValueError: an unknown ``unlisted``; ``max_entries`` out of range.
        TypeError: ``max_entries`` not an int.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "ratings.csv"
        >>> _ = p.write_text("0,0,4.5\\n1,1,3.5\\n0,1,2.5\\n")
        >>> obs = read_observed(p)
        >>> obs.unlisted, obs.n_missing, obs.mask.tolist()
        ('missing', 1, [[True, True], [False, True]])
    """
    return _read(path, key, unlisted, max_entries, "read_observed")


def _read(
    path: str | os.PathLike[str], key: str | None, unlisted: Unlisted, max_entries: int, fn: str
) -> ObservedTensor:
    if unlisted not in get_args(Unlisted):
        raise ValueError(
            f"{fn}: unlisted must be one of {', '.join(map(repr, get_args(Unlisted)))}; "
            f"got {unlisted!r}."
        )
    max_entries = check_max_entries(max_entries, fn)
    p = Path(path)
    fmt = file_format(p)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {str(p)!r}.")
    if p.is_dir():
        raise FileFormatError(f"{str(p)!r} is a directory, not a file.")
    if p.stat().st_size == 0:
        raise FileFormatError(f"{p.name} is empty.")
    try:
        if fmt in ("coo", "tns"):
            return _observed_coordinates(p, fmt, key, unlisted, max_entries)
        readers = {"npy": read_npy, "npz": read_npz, "pt": read_pt}
        tensor = readers.get(fmt, read_safetensors)(p, key, max_entries)
    except MemoryError:
        raise FileFormatError(f"{p.name}: not enough memory to read it.") from None
    return ObservedTensor(tensor, None, fmt, None, 0, None)


def _observed_coordinates(
    p: Path, fmt: Format, key: str | None, unlisted: Unlisted, max_entries: int
) -> ObservedTensor:
    if key is not None:
        raise FileFormatError(f"{p.name} is a coordinate file; key= does not apply.")
    coords = read_coordinates(p, fmt, max_entries)
    counts = coords.counts
    resolved: Literal["missing", "zero"]
    if unlisted == "auto":
        resolved = "zero" if counts else "missing"
    else:
        resolved = unlisted
    tensor, mask = densify(coords, resolved, p.name)
    n_unlisted = tensor.numel() - coords.values.numel()
    return ObservedTensor(tensor, mask, fmt, resolved if n_unlisted else None, n_unlisted, counts)


def read_tensor(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    unlisted: Unlisted = "auto",
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> torch.Tensor:
    """Read a dense tensor from a file, safely: :func:`read_observed` without the mask.

    Entries a coordinate file does not list are NaN when read as missing (the convention of
    :mod:`factorch.datasets`; ``torch.isnan`` recovers the mask) and 0 when read as zeros; see
    ``unlisted`` in :func:`read_observed`, whose arguments and errors this shares.

    Returns:
        A CPU tensor with the stored dtype (coordinate files give float64). Not differentiable
        (file I/O).

    Args:
        path: the file (formats as in :func:`read_observed`).
        key: which array of a container holding several.
        unlisted: ``"missing"``, ``"zero"`` or ``"auto"`` (see :func:`read_observed`).
        max_entries: refuse a file declaring more entries than this.

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: (a ``ValueError``) content :func:`read_observed` refuses.
        ValueError: an unknown ``unlisted``; ``max_entries`` out of range.
        TypeError: ``max_entries`` not an int.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "counts.tns"
        >>> _ = p.write_text("1 1 3\\n2 2 1\\n")
        >>> read_tensor(p).tolist()  # counts: unlisted entries are zeros
        [[3.0, 0.0], [0.0, 1.0]]
    """
    return _read(path, key, unlisted, max_entries, "read_tensor").tensor
