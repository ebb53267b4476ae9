"""Readers for dense arrays: NumPy ``.npy``/``.npz``, PyTorch ``.pt``, safetensors.

Each reader parses what the file *declares* (an ``.npy`` header, a zip directory, a safetensors
JSON header) with bounded effort, refuses a declared size beyond ``max_entries`` or beyond what the
file actually holds (truncated or lying headers), and only then allocates. Nothing is unpickled
beyond tensors.
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import torch

from ._content import (
    FileFormatError,
    check_declared,
    mismatch,
    safetensors_header,
    zip_kind,
)

__all__ = ["read_npy", "read_npz", "read_pt", "read_safetensors"]

_MAX_NPY_HEADER = 10_000  # characters, as numpy's own limit for untrusted files
_MAX_SAFETENSORS_HEADER = 100 * 2**20  # bytes, as the safetensors library's limit
_MAX_PICKLE = 64 * 2**20  # bytes of a .pt file's data.pkl (tensor metadata only)
_LARGEST_ITEM = 16  # bytes per entry of the widest dtype read (complex128)
_CHUNK = 2**24  # bytes read per call when filling an array from a stream


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


# --- NumPy -----------------------------------------------------------------------------------
def _exact(f: IO[bytes], n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise FileFormatError(f"{where}: the file ends inside the .npy header (truncated).")
    return data


def _parse_npy_header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, Any]:
    """``(shape, fortran_order, dtype)`` from an ``.npy`` stream positioned at its start.

    Parsed here rather than by numpy so that every malformed header (truncated, not a dict,
    unbalanced brackets, negative or non-integer sizes, object dtypes) is one clear error.
    """
    import numpy as np

    if _exact(f, 6, where) != b"\x93NUMPY":
        raise FileFormatError(f"{where}: not a .npy array (no NumPy magic bytes).")
    major, minor = _exact(f, 2, where)
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise FileFormatError(f"{where}: unknown .npy format version {major}.{minor}.")
    length = int.from_bytes(_exact(f, 2 if major == 1 else 4, where), "little")
    if length > _MAX_NPY_HEADER:
        raise FileFormatError(
            f"{where}: the .npy header claims {length:,} bytes; a genuine header is under "
            f"{_MAX_NPY_HEADER:,}."
        )
    raw = _exact(f, length, where)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
        try:
            header = ast.literal_eval(text)
        except SyntaxError:  # headers written by Python 2 spell integers 3L
            header = ast.literal_eval(re.sub(r"(\d+)L\b", r"\1", text))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise FileFormatError(
            f"{where}: the .npy header is not readable ({type(e).__name__})."
        ) from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise FileFormatError(
            f"{where}: the .npy header must be a dict with keys descr, fortran_order, shape."
        )
    shape, fortran = header["shape"], header["fortran_order"]
    if not isinstance(shape, tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise FileFormatError(f"{where}: the .npy header's shape {shape!r} is not valid.")
    if not isinstance(fortran, bool):
        raise FileFormatError(f"{where}: the .npy header's fortran_order is not a bool.")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (TypeError, ValueError, KeyError, SyntaxError) as e:
        raise FileFormatError(f"{where}: the .npy header's dtype is not valid ({e}).") from None
    return shape, fortran, dtype


def _numeric_dtype(dtype: Any, where: str) -> None:
    import numpy as np

    if dtype.hasobject:
        raise FileFormatError(
            f"{where}: Object arrays cannot be loaded safely (they need unpickling); factorch "
            "reads numeric and boolean arrays only."
        )
    kind = dtype.kind
    if kind not in "biufc" or dtype.itemsize > _LARGEST_ITEM or dtype == np.longdouble:
        if kind in "fc" and dtype.itemsize > 8 * (2 if kind == "c" else 1):
            detail = f"{dtype} (extended precision, which PyTorch has no dtype for)"
        else:
            detail = str(dtype)
        raise FileFormatError(
            f"{where} has dtype {detail}; factorch reads numeric and boolean arrays only "
            "(bool, integers, float16/32/64, complex64/128)."
        )


def _fill(f: IO[bytes], nbytes: int, where: str) -> bytearray:
    """Exactly ``nbytes`` from ``f`` into one buffer (no intermediate copies)."""
    buf = bytearray(nbytes)
    view = memoryview(buf)
    done = 0
    while done < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - done))
        if not chunk:
            raise FileFormatError(
                f"{where} is truncated: its header declares {nbytes:,} bytes of data; the file "
                f"holds {done:,}."
            )
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    return buf


def _npy_from_stream(f: IO[bytes], available: int, where: str, max_entries: int) -> torch.Tensor:
    """Read one ``.npy`` from ``f``; ``available`` is the byte count of the whole member/file."""
    import numpy as np

    shape, fortran, dtype = _parse_npy_header(f, where)
    _numeric_dtype(dtype, where)
    numel = check_declared(where, "its header", shape, max_entries)
    nbytes = numel * dtype.itemsize
    if available - f.tell() < nbytes:
        raise FileFormatError(
            f"{where} is truncated or its header lies: it declares shape {shape} of {dtype} "
            f"({nbytes:,} bytes of data) but holds {max(available - f.tell(), 0):,}."
        )
    arr = np.frombuffer(_fill(f, nbytes, where), dtype=dtype, count=numel)
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    return from_numpy(arr, where)


def from_numpy(arr: Any, where: str) -> torch.Tensor:
    """A torch tensor from a numeric NumPy array (native byte order, wide unsigned as int64)."""
    import numpy as np

    _numeric_dtype(arr.dtype, where)
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int64)
    # astype keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)
    arr = arr.astype(arr.dtype.newbyteorder("="), order="C", copy=False)
    return torch.from_numpy(arr)


def read_npy(path: Path, key: str | None, max_entries: int) -> torch.Tensor:
    """A ``.npy`` file (its header checked, then exactly the declared bytes read)."""
    if key is not None:
        raise FileFormatError(f"{path.name} holds a single array; drop key={key!r}.")
    size = path.stat().st_size
    with path.open("rb") as f:
        if not f.read(6).startswith(b"\x93NUMPY"):
            raise mismatch(path, "npy")
        f.seek(0)
        return _npy_from_stream(f, size, path.name, max_entries)


def read_npz(path: Path, key: str | None, max_entries: int) -> torch.Tensor:
    """One member of a ``.npz`` archive; its declared size is checked before it is inflated."""
    with path.open("rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or zip_kind(path) != (
        "a NumPy .npz archive"
    ):
        raise mismatch(path, "npz")
    try:
        with zipfile.ZipFile(path) as z:
            members = {n[: -len(".npy")]: n for n in z.namelist()}
            name = _choose(list(members), key, path)
            info = z.getinfo(members[name])
            with z.open(info) as member:
                return _npy_from_stream(
                    member, info.file_size, f"{path.name}[{name!r}]", max_entries
                )
    except FileFormatError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,  # an unsupported compression method
    ) as e:
        raise FileFormatError(f"{path.name}: cannot read the .npz archive ({e}).") from None


# --- PyTorch -----------------------------------------------------------------------------------
def read_pt(path: Path, key: str | None, max_entries: int) -> torch.Tensor:
    """A tensor (or one of a dict of tensors) from a ``torch.save`` zip file, weights only.

    The zip directory is read first: the records' declared sizes bound what loading allocates.
    """
    with path.open("rb") as f:
        head = f.read(4)
    if (
        not head.startswith((b"PK\x03\x04", b"PK\x05\x06"))
        or zip_kind(path) != "a PyTorch .pt file"
    ):
        raise mismatch(path, "pt")
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise FileFormatError(f"{path.name}: cannot read the PyTorch file ({e}).") from None
    pickle_size = sum(i.file_size for i in infos if i.filename.endswith("data.pkl"))
    data_size = sum(i.file_size for i in infos) - pickle_size
    if pickle_size > _MAX_PICKLE or data_size > _LARGEST_ITEM * max_entries:
        raise FileFormatError(
            f"{path.name}: its records declare {data_size + pickle_size:,} bytes, more than "
            f"{max_entries:,} entries can need (a memory guard); pass max_entries= "
            "(--max-entries on the command line) to raise the limit."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise FileFormatError(f"{path.name}: not enough memory to load it.") from None
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... for bad content
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileFormatError(
            f"{path.name}: refused or unreadable PyTorch file ({first}); factorch loads "
            "tensors only (weights_only=True). Save a tensor or a dict of tensors."
        ) from None
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise FileFormatError(f"{path.name} holds a single tensor; drop key={key!r}.")
        tensor = obj
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        named = {str(k): v for k, v in obj.items()}
        tensor = named[_choose(list(named), key, path)]
    else:
        raise FileFormatError(
            f"{path.name} holds a {type(obj).__name__}, not a tensor or a dict of tensors."
        )
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise FileFormatError(
            f"{path.name} holds a {str(tensor.layout).replace('torch.', '')}"
            f"{' quantized' if tensor.is_quantized else ''} tensor; save it as a plain dense "
            "tensor (e.g. tensor.to_dense() or tensor.dequantize())."
        )
    check_declared(path.name, "its tensor", tuple(tensor.shape), max_entries)
    return tensor.detach()


# --- safetensors -------------------------------------------------------------------------------
def _safetensors_entries(path: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file; None when the file does not start like one."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
        if not safetensors_header(head, size):
            return None
        n = int.from_bytes(head[:8], "little")
        if n > _MAX_SAFETENSORS_HEADER:
            raise FileFormatError(
                f"{path.name}: the safetensors header claims {n:,} bytes, more than the "
                f"{_MAX_SAFETENSORS_HEADER:,} the format allows."
            )
        f.seek(8)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            header = None
    if not isinstance(header, dict):
        raise FileFormatError(
            f"{path.name}: the safetensors header is not a JSON object (damaged or truncated)."
        )
    return header


def _declared_shape(entry: object, where: str) -> tuple[int, ...]:
    shape = entry.get("shape") if isinstance(entry, dict) else None
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise FileFormatError(f"{where}: the safetensors header gives no valid shape.")
    return tuple(shape)


def read_safetensors(path: Path, key: str | None, max_entries: int) -> torch.Tensor:
    """One tensor of a safetensors file; only that tensor is read, after its size is checked."""
    from safetensors import safe_open

    header = _safetensors_entries(path)
    if header is None:
        raise mismatch(path, "safetensors")
    names = [k for k in header if k != "__metadata__"]
    name = _choose(names, key, path)
    where = f"{path.name}[{name!r}]"
    check_declared(where, "its header", _declared_shape(header[name], where), max_entries)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensor: torch.Tensor = f.get_tensor(name)
    except MemoryError:
        raise FileFormatError(f"{path.name}: not enough memory to load it.") from None
    except Exception as e:  # safetensors raises its own SafetensorError
        raise FileFormatError(f"{path.name}: cannot read the safetensors file ({e}).") from None
    return tensor
