"""Reading a tensor as shards: one file per rank, or slices of one shared file.

``path`` names either one file every rank reads a part of, or, when it contains ``{rank}``,
one file per rank (``data.{rank}.npy`` -> ``data.0.npy``, ``data.1.npy``, ...).

* Dense (``.npy``, or any format :func:`factorch.io.read_tensor` reads for per-rank files):
  a shared ``.npy`` is memory-mapped without unpickling (``allow_pickle=False``; its header
  checked by numpy) and each rank copies only its block; a per-rank file is read whole by
  :func:`factorch.io.read_tensor` (bounded by ``max_entries``) and must be that rank's block.
* Sparse (coordinate text: FROSTT ``.tns`` 1-based, ``.csv``/``.tsv``/``.txt`` 0-based): each
  rank parses the byte range ``[k size / p, (k + 1) size / p)`` of a shared file (a line belongs
  to the range its first byte is in), or its own whole file, then
  :func:`~factorch.distributed.redistribute` moves every nonzero to its rank. Parsing checks
  what :mod:`factorch.io` checks (NUL bytes, consistent field counts, non-negative integer
  indices, finite values) and refuses more than ``max_entries`` entries per rank.

Every reader is a collective: a rank that cannot read (missing file, bad content, a block of the
wrong shape) makes every rank raise the same error.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..io import DEFAULT_MAX_ENTRIES, FileFormatError, file_format, read_tensor
from ._comm import Comm
from ._layout import ShardLayout
from ._redistribute import redistribute
from ._shard import DenseShard, SparseShard

__all__ = ["read_dense_shard", "read_sparse_shard"]

_COORD_FORMATS = ("coo", "tns")
# Largest index a coordinate file may hold when the shape is not given (a sanity bound).
_INDEX_LIMIT = 1 << 40
_LINES_PER_BLOCK = 1 << 16


def _path_for(path: str | os.PathLike[str], rank: int) -> tuple[Path, bool]:
    text = os.fspath(path)
    per_rank = "{rank}" in text
    return Path(text.replace("{rank}", str(rank))), per_rank


def read_dense_shard(
    path: str | os.PathLike[str],
    *,
    grid: tuple[int, ...] | None = None,
    shape: tuple[int, ...] | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    timeout: float = 600.0,
) -> DenseShard:
    """This rank's :class:`DenseShard` of a dense tensor (a collective; see the module docstring).

    Args:
        path: a shared ``.npy`` file, or a pattern with ``{rank}`` for one file per rank.
        grid: chunks per mode (default :func:`choose_grid`).
        shape: the global shape; required for per-rank files (each holds only its block),
            checked against a shared file's header.
        max_entries: refuse a block of more entries than this (a memory guard).
        timeout: seconds any collective waits before every rank stops.

    Returns:
        This rank's :class:`DenseShard`.

    Raises:
        FileNotFoundError, ValueError, TypeError: a missing or unreadable file, a block of the
            wrong shape, ranks that disagree -- the same error on every rank.

    Example:
        A one-rank job in this process (under ``torchrun --nproc-per-node=N`` every rank runs
        the same lines after :func:`init`, each with its own shard):

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> import os, tempfile
        >>> x = torch.arange(24.0, dtype=torch.float64).reshape(4, 3, 2)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = os.path.join(tmp.name, "x.npy")
        >>> np.save(path, x.numpy())
        >>> shard = read_dense_shard(path)
        >>> shard.shape, torch.equal(shard.local, x)  # one rank holds the whole tensor
        ((4, 3, 2), True)
        >>> tmp.cleanup()
        >>> dist.destroy_process_group()
    """
    fn = "distributed.read_dense_shard"
    comm = Comm.open(fn, timeout, torch.device("cpu"))
    shard: DenseShard | None = None
    error: Exception | None = None
    try:
        file, per_rank = _path_for(path, comm.rank)
        if per_rank:
            if shape is None:
                raise ValueError(
                    f"{fn}: shape is required with one file per rank (each file holds only its "
                    "block)."
                )
            layout = _dense_layout(tuple(shape), grid, comm.world_size)
            local = read_tensor(file, max_entries=max_entries)
            shard = DenseShard(local, layout, comm.rank)
        else:
            shard = _npy_block(file, grid, shape, comm, max_entries, fn)
    except (OSError, ValueError, TypeError, IndexError) as err:
        error = err
    comm.agree(_plain(error))
    if shard is None:
        raise RuntimeError(f"{fn}: no shard was read.")
    return shard


def _dense_layout(
    shape: tuple[int, ...], grid: tuple[int, ...] | None, world_size: int
) -> ShardLayout:
    return ShardLayout.for_dense(shape, world_size, grid=grid)


def _npy_block(
    file: Path,
    grid: tuple[int, ...] | None,
    shape: tuple[int, ...] | None,
    comm: Comm,
    max_entries: int,
    fn: str,
) -> DenseShard:
    if not file.exists():
        raise FileNotFoundError(f"no such file: {str(file)!r}.")
    if file_format(file) != "npy":
        raise FileFormatError(
            f"{file.name}: a shared dense input must be a .npy file (memory-mapped per block); "
            "for other formats pass one file per rank with '{rank}' in the path."
        )
    try:
        arr = np.load(file, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise FileFormatError(f"{file.name}: not a readable .npy array ({err}).") from None
    if arr.dtype.kind != "f":
        raise FileFormatError(
            f"{file.name}: holds {arr.dtype}; a dense input must be float16/32/64."
        )
    full = tuple(int(s) for s in arr.shape)
    if shape is not None and tuple(shape) != full:
        raise ValueError(f"{fn}: {file.name} has shape {full}; shape= says {tuple(shape)}.")
    layout = _dense_layout(full, grid, comm.world_size)
    block = layout.block(comm.rank)
    if math.prod(e - s for s, e in block) > max_entries:
        raise FileFormatError(
            f"{file.name}: rank {comm.rank}'s block has more than {max_entries:,} entries (a "
            "memory guard); pass max_entries= (--max-entries) to raise it or use more ranks."
        )
    local = np.array(arr[tuple(slice(s, e) for s, e in block)], copy=True, order="C")
    return DenseShard(torch.from_numpy(local), layout, comm.rank)


def read_sparse_shard(
    path: str | os.PathLike[str],
    *,
    grid: tuple[int, ...] | None = None,
    shape: tuple[int, ...] | None = None,
    dtype: torch.dtype = torch.float64,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    timeout: float = 600.0,
) -> SparseShard:
    """This rank's :class:`SparseShard` of a coordinate file (a collective; module docstring).

    Args:
        path: a shared coordinate file (``.tns`` 1-based; ``.csv``/``.tsv``/``.txt`` 0-based),
            or a pattern with ``{rank}`` for one file per rank (global coordinates, any split).
        grid: chunks per mode (default :func:`choose_grid`).
        shape: the global shape (default: the largest index per mode plus one).
        dtype: the values' dtype.
        max_entries: refuse more than this many entries on one rank (a memory guard).
        timeout: seconds any collective waits before every rank stops.

    Returns:
        This rank's :class:`SparseShard`.

    Raises:
        FileNotFoundError: a missing file (the same error on every rank).
        FileFormatError: an unreadable coordinate file (a ``ValueError``).
        ValueError: bad options, indices outside ``shape``, ranks that disagree, or more than
            ``max_entries`` entries on a rank.
        TypeError: options of the wrong type.

    Example:
        A one-rank job in this process (under ``torchrun --nproc-per-node=N`` every rank runs
        the same lines after :func:`init`, each with its own shard):

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> import os, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = os.path.join(tmp.name, "x.tns")  # 1-based coordinates, then value
        >>> with open(path, "w") as f:
        ...     _ = f.write("1 1 1 2.5\\n3 2 1 -1.0\\n2 4 3 4.0\\n")
        >>> shard = read_sparse_shard(path)
        >>> shard.shape, shard.nnz
        ((3, 4, 3), 3)
        >>> tmp.cleanup()
        >>> dist.destroy_process_group()
    """
    fn = "distributed.read_sparse_shard"
    comm = Comm.open(fn, timeout, torch.device("cpu"))
    error: Exception | None = None
    idx = torch.zeros(0, 0, dtype=torch.int64)
    vals = torch.zeros(0, dtype=torch.float64)
    try:
        file, per_rank = _path_for(path, comm.rank)
        if not file.exists():
            raise FileNotFoundError(f"no such file: {str(file)!r}.")
        fmt = file_format(file)
        if fmt not in _COORD_FORMATS:
            raise FileFormatError(
                f"{file.name}: a sparse input must be a coordinate file (.tns, .csv, .tsv, "
                f".txt); got a {fmt} file."
            )
        size = file.stat().st_size
        start, stop = (0, size) if per_rank else _byte_range(size, comm.rank, comm.world_size)
        idx, vals = read_coordinate_range(
            file, start, stop, base=1 if fmt == "tns" else 0, max_entries=max_entries
        )
    except (OSError, ValueError, TypeError) as err:
        error = err
    comm.agree(_plain(error))
    widths = comm.all_gather_object(idx.shape[0] if vals.numel() else None)
    known = {w for w in widths if w is not None}
    if len(known) > 1:
        raise FileFormatError(
            f"{fn}: the ranks' parts hold entries of different orders {sorted(known)}; one "
            "tensor's entries must all have the same number of indices."
        )
    if not known:
        raise FileFormatError(f"{fn}: no rank read any entry; the input holds no coordinates.")
    ndim = known.pop()
    if not vals.numel():
        idx = torch.zeros(ndim, 0, dtype=torch.int64)
    if shape is None:
        top = idx.amax(1) if idx.shape[1] else torch.full((ndim,), -1, dtype=torch.int64)
        shape = tuple(int(v) + 1 for v in comm.all_reduce(top, op="max", kind="setup"))
    return redistribute(idx, vals.to(dtype), tuple(shape), grid=grid, timeout=comm.timeout_s)


def _plain(error: Exception | None) -> Exception | None:
    """An error as :meth:`Comm.agree` transports it (FileFormatError travels as ValueError)."""
    if isinstance(error, FileNotFoundError):
        return error
    if isinstance(error, OSError):
        return ValueError(f"cannot read the input: {error}")
    return error


def _byte_range(size: int, rank: int, world: int) -> tuple[int, int]:
    return size * rank // world, size * (rank + 1) // world


def read_coordinate_range(
    path: Path, start: int, stop: int, *, base: int, max_entries: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entries of the lines of ``path`` whose first byte lies in ``[start, stop)``.

    Returns ``(N, k)`` int64 0-based indices and ``(k,)`` float64 values. Lines starting with
    ``#`` and blank lines are skipped, as is a first line of the file that is not numeric (a
    header). Raises :class:`factorch.io.FileFormatError` naming the line's byte offset.
    """
    with path.open("rb") as f:
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the partial line belongs to the previous range
        begin = f.tell()
        data = f.read(max(0, stop - begin))
        if data and not data.endswith(b"\n") and begin + len(data) < path.stat().st_size:
            data += f.readline()  # finish the last line that starts inside the range
    if b"\x00" in data:
        raise FileFormatError(f"{path.name}: a NUL byte near offset {begin}; not a text file.")
    lines = [ln for ln in data.split(b"\n") if ln.strip() and not ln.lstrip().startswith(b"#")]
    if start == 0 and lines and not _numeric(lines[0]):
        lines = lines[1:]  # a header line
    if not lines:
        return torch.zeros(0, 0, dtype=torch.int64), torch.zeros(0, dtype=torch.float64)
    width = len(lines[0].replace(b",", b" ").split())
    if width < 2:
        raise FileFormatError(
            f"{path.name}: a coordinate line needs indices and a value ('i j k value'); got "
            f"{lines[0][:60]!r}."
        )
    if len(lines) > max_entries:
        raise FileFormatError(
            f"{path.name}: this rank's part lists more than {max_entries:,} entries (a memory "
            "guard); pass max_entries= (--max-entries) to raise it or use more ranks."
        )
    blocks = []
    for s in range(0, len(lines), _LINES_PER_BLOCK):
        chunk = lines[s : s + _LINES_PER_BLOCK]
        tokens = b" ".join(chunk).replace(b",", b" ").split()
        if len(tokens) != width * len(chunk):
            bad = next(ln for ln in chunk if len(ln.replace(b",", b" ").split()) != width)
            raise FileFormatError(
                f"{path.name}: expected {width} fields per line like the first entry; got "
                f"{bad[:60]!r}."
            )
        try:
            blocks.append(np.array(tokens).astype(np.float64).reshape(-1, width))
        except ValueError:
            bad = next(ln for ln in chunk if not _numeric(ln))
            raise FileFormatError(
                f"{path.name}: expected numbers 'i j ... value'; got {bad[:60]!r}."
            ) from None
    table = np.concatenate(blocks)
    index, values = table[:, :-1], table[:, -1]
    ok = np.isfinite(index) & (index == np.floor(index)) & (index >= base)
    if not ok.all():
        row = int(np.argwhere(~ok.all(1))[0, 0])
        first = "1-based" if base else "0-based"
        raise FileFormatError(
            f"{path.name}: indices must be {first} non-negative integers; got "
            f"{index[row].tolist()}."
        )
    if (index - base >= _INDEX_LIMIT).any():
        raise FileFormatError(
            f"{path.name}: an index exceeds {_INDEX_LIMIT:,}; not a tensor index."
        )
    if not np.isfinite(values).all():
        raise FileFormatError(f"{path.name}: values must be finite; got NaN or Inf.")
    idx = torch.from_numpy((index - base).astype(np.int64).T.copy())
    return idx, torch.from_numpy(values.copy())


def _numeric(line: bytes) -> bool:
    try:
        [float(t) for t in line.replace(b",", b" ").split()]
    except ValueError:
        return False
    return True
