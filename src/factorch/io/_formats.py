"""Safe readers for dense tensors stored in common array formats.

Supported extensions and how each is read:

=====================  =========================================================================
``.npy``               ``numpy.load(allow_pickle=False)``
``.npz``               ``numpy.load(allow_pickle=False)``; one array, or the one named ``tensor``
``.pt`` / ``.pth``     ``torch.load(weights_only=True)``; a tensor or a dict of tensors
``.safetensors``       ``safetensors.torch.load_file``; one tensor, or the one named ``tensor``
``.csv`` ``.tsv``      sparse coordinates, one entry per line ``i,j,k,value`` (0-based indices,
``.txt``               comma / tab / space separated, optional header line, ``#`` comments);
                       absent entries are zero
=====================  =========================================================================

Nothing is ever unpickled beyond tensors. Before parsing, the first bytes are checked against the
format the extension promises (NPY magic ``\\x93NUMPY``; zip ``PK\\x03\\x04`` holding ``.npy``
members for NPZ or a ``data.pkl`` for PyTorch; an 8-byte little-endian header length followed by
JSON for safetensors; UTF-8 text for coordinates), and a mismatch is refused with a message that
says what the file looks like instead.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Literal

import torch

__all__ = ["FileFormatError", "describe_content", "file_format", "read_tensor"]

Format = Literal["npy", "npz", "pt", "safetensors", "coo"]

_EXTENSIONS: dict[str, Format] = {
    ".npy": "npy",
    ".npz": "npz",
    ".pt": "pt",
    ".pth": "pt",
    ".safetensors": "safetensors",
    ".csv": "coo",
    ".tsv": "coo",
    ".txt": "coo",
}

_EXPECTED: dict[Format, str] = {
    "npy": "a NumPy .npy array",
    "npz": "a NumPy .npz archive",
    "pt": "a PyTorch .pt file (zip format)",
    "safetensors": "a safetensors file",
    "coo": "a coordinate text file (i,j,...,value per line)",
}

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_ENTRIES = 2**28  # 2 GiB as float64


class FileFormatError(ValueError):
    """A file's content is unreadable or not what its extension says."""


def file_format(path: str | os.PathLike[str]) -> Format:
    """The format :func:`read_tensor` will use for ``path``, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        raise FileFormatError(
            f"{Path(path).name}: unsupported file extension {suffix or '(none)'!r}; "
            f"factorch reads {known}."
        )
    return _EXTENSIONS[suffix]


def _safetensors_header(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a damaged zip archive"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "a PyTorch .pt file"
    if names and all(n.endswith(".npy") for n in names):
        return "a NumPy .npz archive"
    return "a zip archive"


def describe_content(path: str | os.PathLike[str]) -> str:
    """What the first bytes of ``path`` look like, in words (for error messages)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64)
    if not head:
        return "an empty file"
    if head.startswith(_NPY_MAGIC):
        return "a NumPy .npy array"
    if head.startswith(_ZIP_MAGICS):
        return _zip_kind(path)
    if _safetensors_header(head, size):
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
    return "text"


def _mismatch(path: Path, fmt: Format) -> FileFormatError:
    return FileFormatError(
        f"{path.name} is not {_EXPECTED[fmt]}: its content looks like {describe_content(path)}. "
        "Give the file the extension that matches its content, or convert it."
    )


def _choose(names: list[str], key: str | None, path: Path) -> str:
    """The array to take from a container holding ``names``."""
    if key is not None:
        if key not in names:
            raise FileFormatError(
                f"{path.name} has no array named {key!r}; it holds {', '.join(names) or 'none'}."
            )
        return key
    if len(names) == 1:
        return names[0]
    if "tensor" in names:
        return "tensor"
    raise FileFormatError(
        f"{path.name} holds {len(names)} arrays ({', '.join(sorted(names)) or 'none'}); "
        "name the one to use with key= (--key on the command line), or call it 'tensor'."
    )


def _pick(named: dict[str, torch.Tensor], key: str | None, path: Path) -> torch.Tensor:
    return named[_choose(list(named), key, path)]


def _from_numpy(arr: object, path: Path, name: str) -> torch.Tensor:
    import numpy as np

    if not isinstance(arr, np.ndarray):
        raise FileFormatError(f"{path.name}: {name} is not an array.")
    kind = arr.dtype.kind
    if kind not in "biufc":
        raise FileFormatError(
            f"{path.name}: array {name} has dtype {arr.dtype}; factorch reads numeric and "
            "boolean arrays only."
        )
    if kind == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int64)
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return torch.from_numpy(arr)


def _read_npy(path: Path, key: str | None) -> torch.Tensor:
    import numpy as np

    with path.open("rb") as f:
        if not f.read(6).startswith(_NPY_MAGIC):
            raise _mismatch(path, "npy")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise FileFormatError(f"{path.name}: cannot read the .npy array ({e}).") from e
    return _from_numpy(arr, path, "the array")


def _read_npz(path: Path, key: str | None) -> torch.Tensor:
    import numpy as np

    with path.open("rb") as f:
        head = f.read(4)
    if not head.startswith(_ZIP_MAGICS) or _zip_kind(path) != "a NumPy .npz archive":
        raise _mismatch(path, "npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            name = _choose(list(npz.files), key, path)
            arr = npz[name]
    except FileFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise FileFormatError(f"{path.name}: cannot read the .npz archive ({e}).") from e
    return _from_numpy(arr, path, repr(name))


def _read_pt(path: Path, key: str | None) -> torch.Tensor:
    with path.open("rb") as f:
        head = f.read(4)
    if not head.startswith(_ZIP_MAGICS) or _zip_kind(path) != "a PyTorch .pt file":
        raise _mismatch(path, "pt")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... for bad content
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileFormatError(
            f"{path.name}: refused or unreadable PyTorch file ({first}); factorch loads "
            "tensors only (weights_only=True). Save a tensor or a dict of tensors."
        ) from e
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise FileFormatError(f"{path.name} holds a single tensor; drop key={key!r}.")
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _pick({str(k): v for k, v in obj.items()}, key, path)
    raise FileFormatError(
        f"{path.name} holds a {type(obj).__name__}, not a tensor or a dict of tensors."
    )


def _read_safetensors(path: Path, key: str | None) -> torch.Tensor:
    from safetensors.torch import load_file

    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
        ok = _safetensors_header(head, size)
        if ok:
            n = int.from_bytes(head[:8], "little")
            f.seek(8)
            try:
                header = json.loads(f.read(n).decode("utf-8"))
                ok = isinstance(header, dict)
            except (UnicodeDecodeError, json.JSONDecodeError):
                ok = False
    if not ok:
        raise _mismatch(path, "safetensors")
    try:
        named = load_file(path, device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError
        raise FileFormatError(f"{path.name}: cannot read the safetensors file ({e}).") from e
    return _pick(named, key, path)


def _read_coo(path: Path, key: str | None, max_entries: int) -> torch.Tensor:
    if key is not None:
        raise FileFormatError(f"{path.name} is a coordinate file; key= does not apply.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _mismatch(path, "coo") from None
    if "\x00" in text:
        raise _mismatch(path, "coo")
    coords: list[tuple[int, ...]] = []
    values: list[float] = []
    width = None
    header_allowed = True
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(",") if "," in line else line.split()
        fields = [f.strip() for f in fields]
        try:
            nums = [float(f) for f in fields]
        except ValueError:
            if header_allowed:
                header_allowed = False
                continue
            raise FileFormatError(
                f"{path.name}, line {lineno}: expected numbers 'i,j,...,value'; got {line[:60]!r}."
            ) from None
        header_allowed = False
        if width is None:
            if len(nums) < 2:
                raise FileFormatError(
                    f"{path.name}, line {lineno}: a coordinate line needs at least one index and "
                    f"a value ('i,j,k,value'); got {len(nums)} field."
                )
            width = len(nums)
        elif len(nums) != width:
            raise FileFormatError(
                f"{path.name}, line {lineno}: expected {width} fields like the first entry; "
                f"got {len(nums)}."
            )
        idx = nums[:-1]
        if any(not (i >= 0 and i == int(i)) for i in idx):
            raise FileFormatError(
                f"{path.name}, line {lineno}: indices must be non-negative integers (0-based); "
                f"got {line[:60]!r}."
            )
        coords.append(tuple(int(i) for i in idx))
        values.append(nums[-1])
    if not coords:
        raise FileFormatError(f"{path.name} holds no coordinate entries ('i,j,...,value' lines).")
    index = torch.tensor(coords, dtype=torch.int64)
    shape = tuple(int(m) + 1 for m in index.max(dim=0).values)
    numel = 1
    for s in shape:
        numel *= s
    if numel > max_entries:
        raise FileFormatError(
            f"{path.name}: its indices span shape {shape} ({numel:,} entries), more than the "
            f"{max_entries:,} a dense tensor may have here."
        )
    strides = [1] * len(shape)
    for n in range(len(shape) - 2, -1, -1):
        strides[n] = strides[n + 1] * shape[n + 1]
    linear = index @ torch.tensor(strides, dtype=torch.int64)
    unique, counts = torch.unique(linear, return_counts=True)
    if unique.numel() < linear.numel():
        k = int(torch.argmax(counts))
        where = tuple(int(i) for i in torch.unravel_index(unique[k], shape))
        raise FileFormatError(
            f"{path.name}: coordinate {where} appears {int(counts[k])} times; each entry may "
            "appear once."
        )
    dense = torch.zeros(numel, dtype=torch.float64)
    dense[linear] = torch.tensor(values, dtype=torch.float64)
    return dense.reshape(shape)


def read_tensor(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    max_entries: int = _MAX_ENTRIES,
) -> torch.Tensor:
    """Read a dense tensor from a file, safely.

    Args:
        path: a ``.npy``, ``.npz``, ``.pt``/``.pth``, ``.safetensors`` or coordinate
            ``.csv``/``.tsv``/``.txt`` file (see the module docstring).
        key: which array to take from a container holding several (``.npz``, ``.pt`` dict,
            ``.safetensors``); by default the only one, or the one named ``"tensor"``.
        max_entries: largest dense tensor a coordinate file may expand to.

    Returns:
        A CPU tensor with the stored dtype (coordinate files give float64). Not differentiable
        (file I/O).

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: (a ``ValueError``) unsupported extension, content that does not match
            the extension, objects other than tensors, or malformed data.
    """
    p = Path(path)
    fmt = file_format(p)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {str(p)!r}.")
    if p.is_dir():
        raise FileFormatError(f"{str(p)!r} is a directory, not a file.")
    if p.stat().st_size == 0:
        raise FileFormatError(f"{p.name} is empty.")
    if fmt == "npy":
        return _read_npy(p, key)
    if fmt == "npz":
        return _read_npz(p, key)
    if fmt == "pt":
        return _read_pt(p, key)
    if fmt == "safetensors":
        return _read_safetensors(p, key)
    return _read_coo(p, key, max_entries)
