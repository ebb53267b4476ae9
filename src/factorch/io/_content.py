"""What a file is, before it is parsed: extensions, content sniffing, size limits.

Shared by the readers in ``_arrays.py`` (NumPy, PyTorch, safetensors) and ``_coordinates.py``
(coordinate text files): each checks that a file's first bytes match its extension and that the
tensor it *declares* fits the entry limit before allocating anything.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "MAX_ENTRIES_CEILING",
    "FileFormatError",
    "Format",
    "check_declared",
    "describe_content",
    "file_format",
    "mismatch",
]

Format = Literal["npy", "npz", "pt", "safetensors", "coo", "tns"]

EXTENSIONS: dict[str, Format] = {
    ".npy": "npy",
    ".npz": "npz",
    ".pt": "pt",
    ".pth": "pt",
    ".safetensors": "safetensors",
    ".csv": "coo",
    ".tsv": "coo",
    ".txt": "coo",
    ".tns": "tns",
}

EXPECTED: dict[Format, str] = {
    "npy": "a NumPy .npy array",
    "npz": "a NumPy .npz archive",
    "pt": "a PyTorch .pt file (zip format)",
    "safetensors": "a safetensors file",
    "coo": "a coordinate text file (i,j,...,value per line)",
    "tns": "a FROSTT .tns coordinate file (i j ... value per line, 1-based)",
}

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")

# 2**27 entries: 1 GiB as float64. A file declaring a larger tensor is refused before anything is
# allocated, unless the caller raises the limit (``max_entries=`` / ``--max-entries``).
DEFAULT_MAX_ENTRIES = 2**27
# The largest limit accepted: beyond it, index arithmetic in int64 could overflow.
MAX_ENTRIES_CEILING = 2**48


class FileFormatError(ValueError):
    """A file's content is unreadable, too large, or not what its extension says."""


def file_format(path: str | os.PathLike[str]) -> Format:
    """The format :func:`~factorch.io.read_tensor` will use for ``path``, from its extension.

    Args:
        path: a file name (it need not exist).

    Returns:
        ``"npy"``, ``"npz"``, ``"pt"``, ``"safetensors"``, ``"coo"`` (``.csv``, ``.tsv``,
        ``.txt``) or ``"tns"``.

    Raises:
        FileFormatError: the extension is not one factorch reads.

    Example:
        >>> file_format("data.csv")
        'coo'
    """
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(sorted(EXTENSIONS))
        raise FileFormatError(
            f"{Path(path).name}: unsupported file extension {suffix or '(none)'!r}; "
            f"factorch reads {known}."
        )
    return EXTENSIONS[suffix]


def safetensors_header(head: bytes, size: int) -> bool:
    """Whether ``head`` (the first bytes of a file of ``size`` bytes) starts a safetensors file."""
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def zip_kind(path: Path) -> str:
    """What a zip archive holds, in words."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "a damaged zip archive"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "a PyTorch .pt file"
    if names and all(n.endswith(".npy") for n in names):
        return "a NumPy .npz archive"
    return "a zip archive"


def describe_content(path: str | os.PathLike[str]) -> str:
    """What the first bytes of ``path`` look like, in words (for error messages).

    Args:
        path: an existing file.

    Returns:
        A short phrase such as ``"a PDF document"`` or ``"an empty file"``.

    Raises:
        FileNotFoundError: no file at ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
        >>> _ = p.write_bytes(b"%PDF-1.7")
        >>> describe_content(p)
        'a PDF document'
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64)
    if not head:
        return "an empty file"
    if head.startswith(NPY_MAGIC):
        return "a NumPy .npy array"
    if head.startswith(ZIP_MAGICS):
        return zip_kind(path)
    if safetensors_header(head, size):
        return "a safetensors file"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (refused: unpickling can run arbitrary code)"
    for magic, what in (
        (b"\x89HDF", "an HDF5 file"),
        (b"\x1f\x8b", "a gzip file"),
        (b"\x89PNG", "a PNG image"),
        (b"%PDF", "a PDF document"),
    ):
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    return "binary data of an unknown format" if b"\x00" in head else "text"


def mismatch(path: Path, fmt: Format) -> FileFormatError:
    """The error for a file whose content is not what its extension promises (or is damaged)."""
    if describe_content(path) == "a damaged zip archive":
        return FileFormatError(
            f"{path.name} is damaged: it starts like a zip archive ({EXPECTED[fmt]} is one) but "
            "its directory cannot be read (truncated or corrupted)."
        )
    return FileFormatError(
        f"{path.name} is not {EXPECTED[fmt]}: its content looks like {describe_content(path)}. "
        "Give the file the extension that matches its content, or convert it."
    )


def shape_entries(shape: tuple[int, ...]) -> int:
    """Number of entries of ``shape`` (exact: Python ints never overflow)."""
    n = 1
    for s in shape:
        n *= s
    return n


def check_declared(name: str, what: str, shape: tuple[int, ...], max_entries: int) -> int:
    """Refuse a declared ``shape`` with more than ``max_entries`` entries; return the count."""
    numel = shape_entries(shape)
    if numel > max_entries:
        raise FileFormatError(
            f"{name}: {what} declares shape {shape} ({numel:,} entries), more than the "
            f"{max_entries:,} allowed (a memory guard); pass max_entries= (--max-entries on the "
            "command line) to raise the limit if the data is genuine and fits in memory."
        )
    return numel


def check_max_entries(max_entries: object, fn: str) -> int:
    """Validate the ``max_entries`` argument."""
    if isinstance(max_entries, bool) or not isinstance(max_entries, int):
        raise TypeError(f"{fn}: max_entries must be an int; got {type(max_entries).__name__}.")
    if not 1 <= max_entries <= MAX_ENTRIES_CEILING:
        raise ValueError(
            f"{fn}: max_entries must be in [1, 2**48]; got {max_entries}. The default is "
            f"{DEFAULT_MAX_ENTRIES:,} entries (1 GiB as float64)."
        )
    return max_entries
