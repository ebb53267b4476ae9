"""Coordinate text files: one entry per line, indices then the value.

``.csv`` / ``.tsv`` / ``.txt`` hold 0-based indices (``i,j,k,value``; comma, tab or space
separated, an optional header line, ``#`` comments); ``.tns`` is the FROSTT format
(``i j k value``, 1-based). Lines are parsed one at a time into compact arrays, so memory stays
proportional to the entries listed; every index is checked to be a finite non-negative integer
small enough for the entry limit before any dense tensor is sized from it.

A coordinate file lists some entries; what the others are is a choice (``unlisted``):

* ``"zero"``: they are zeros (a sparse tensor, e.g. counts where zeros are not written);
* ``"missing"``: they were not observed (a partially observed tensor, to be completed);
* ``"auto"`` (default): ``"zero"`` when every listed value is a count (a finite non-negative
  integer), the convention of count data such as the FROSTT collection, else ``"missing"``.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .._numerics import check_memory
from ._content import FileFormatError, Format, check_declared, mismatch

__all__ = ["Coordinates", "Unlisted", "densify", "read_coordinates"]

Unlisted = Literal["auto", "missing", "zero"]


@dataclass(frozen=True)
class Coordinates:
    """The entries a coordinate file lists.

    Attributes:
        index: ``(nnz, ndim)`` int64, 0-based.
        values: ``(nnz,)`` float64.
        shape: the smallest shape holding every index.
    """

    index: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]

    @property
    def counts(self) -> bool:
        """Whether every value is a count (a finite non-negative integer)."""
        v = self.values
        return bool((torch.isfinite(v) & (v >= 0) & (v == torch.floor(v))).all())


def _fields(line: str) -> list[str]:
    return [f.strip() for f in (line.split(",") if "," in line else line.split())]


def _check_index(v: float, base: int, limit: int, where: str, mode: int) -> int:
    if not (math.isfinite(v) and v == math.floor(v) and v >= base):
        first = "1-based" if base else "0-based"
        raise FileFormatError(
            f"{where}: indices must be {'positive' if base else 'non-negative'} integers "
            f"({first}); got {v!r} in mode {mode}."
        )
    if v - base >= limit:
        raise FileFormatError(
            f"{where}: index {v:.0f} in mode {mode} needs a tensor of more than the {limit:,} "
            "entries allowed (a memory guard); pass max_entries= (--max-entries on the command "
            "line) to raise the limit."
        )
    return int(v) - base


def read_coordinates(path: Path, fmt: Format, max_entries: int) -> Coordinates:
    """Parse a coordinate file (``fmt`` ``"coo"``: 0-based, ``"tns"``: 1-based)."""
    base = 1 if fmt == "tns" else 0
    index: array[int] = array("q")
    values: array[float] = array("d")
    maxes: list[int] = []
    width = 0
    header_allowed = True
    try:
        with path.open("r", encoding="utf-8", newline=None) as f:
            for lineno, raw in enumerate(f, start=1):
                where = f"{path.name}, line {lineno}"
                if "\x00" in raw:
                    if lineno == 1:
                        raise mismatch(path, fmt)
                    raise FileFormatError(f"{where}: a NUL byte; a coordinate file is plain text.")
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    nums = [float(x) for x in _fields(line)]
                except ValueError:
                    if header_allowed:
                        header_allowed = False
                        continue
                    raise FileFormatError(
                        f"{where}: expected numbers 'i,j,...,value'; got {line[:60]!r}."
                    ) from None
                header_allowed = False
                if not width:
                    if len(nums) < 2:
                        raise FileFormatError(
                            f"{where}: a coordinate line needs at least one index and a value "
                            f"('i,j,k,value'); got {len(nums)} field."
                        )
                    width = len(nums)
                    maxes = [0] * (width - 1)
                elif len(nums) != width:
                    raise FileFormatError(
                        f"{where}: expected {width} fields like the first entry; got {len(nums)}."
                    )
                if len(values) >= max_entries:
                    raise FileFormatError(
                        f"{path.name} lists more than {max_entries:,} entries (a memory guard); "
                        "pass max_entries= (--max-entries on the command line) to raise it."
                    )
                for mode, v in enumerate(nums[:-1]):
                    i = _check_index(v, base, max_entries, where, mode)
                    index.append(i)
                    if i > maxes[mode]:
                        maxes[mode] = i
                values.append(nums[-1])
    except UnicodeDecodeError:
        raise mismatch(path, fmt) from None
    if not values:
        raise FileFormatError(f"{path.name} holds no coordinate entries ('i,j,...,value' lines).")
    import numpy as np

    shape = tuple(m + 1 for m in maxes)
    check_declared(path.name, "its largest indices", shape, max_entries)
    return Coordinates(
        index=torch.from_numpy(np.frombuffer(index, dtype=np.int64).reshape(-1, width - 1)),
        values=torch.from_numpy(np.frombuffer(values, dtype=np.float64)),
        shape=shape,
    )


def densify(
    coords: Coordinates, unlisted: Literal["missing", "zero"], name: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The dense float64 tensor (unlisted entries NaN or 0) and the mask of listed entries
    (``None`` when nothing is unlisted or unlisted entries are zeros)."""
    shape = coords.shape
    numel = 1
    for s in shape:
        numel *= s
    check_memory(numel * 9 // 8 + 1, torch.float64, "cpu", "read_tensor", f"{name} {shape}")
    strides = [1] * len(shape)
    for n in range(len(shape) - 2, -1, -1):
        strides[n] = strides[n + 1] * shape[n + 1]
    linear = coords.index @ torch.tensor(strides, dtype=torch.int64)
    unique, counts = torch.unique(linear, return_counts=True)
    if unique.numel() < linear.numel():
        k = int(torch.argmax(counts))
        where = tuple(int(i) for i in torch.unravel_index(unique[k], shape))
        raise FileFormatError(
            f"{name}: coordinate {where} appears {int(counts[k])} times; each entry may "
            "appear once."
        )
    complete = unique.numel() == numel
    fill = math.nan if unlisted == "missing" and not complete else 0.0
    dense = torch.full((numel,), fill, dtype=torch.float64)
    dense[linear] = coords.values
    mask = None
    if unlisted == "missing" and not complete:
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[linear] = True
        mask = mask.reshape(shape)
    return dense.reshape(shape), mask
