"""Atomic, no-clobber file writes.

Every output is first written to a temporary file in the target's own directory (same file
system, so the final ``os.replace`` is an atomic rename) and flushed to disk; an interrupted run
leaves either the old file or the complete new one, never half of one. :func:`write_files` checks
every target before writing any, so a refused overwrite writes nothing at all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["check_targets", "write_atomic", "write_files"]

PathLike = str | os.PathLike[str]


def check_targets(paths: Iterable[PathLike], *, force: bool = False) -> None:
    """Refuse to write over existing files unless ``force``; refuse directories always.

    Args:
        paths: the files about to be written.
        force: allow existing files (directories are refused even then).

    Raises:
        FileExistsError: some targets exist and ``force`` is False (all of them are named).
        IsADirectoryError: a target is an existing directory.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     check_targets([folder])
        Traceback (most recent call last):
            ...
        IsADirectoryError: output '...' is a directory; choose another name.
    """
    existing = []
    for p in map(Path, paths):
        if p.is_dir():
            raise IsADirectoryError(f"output {str(p)!r} is a directory; choose another name.")
        if p.exists() or p.is_symlink():
            existing.append(str(p))
    if existing and not force:
        names = ", ".join(repr(e) for e in existing)
        raise FileExistsError(
            f"output file{'s' if len(existing) > 1 else ''} {names} already "
            f"exist{'' if len(existing) > 1 else 's'}; pass force=True (--force on the command "
            "line) to overwrite, or choose another output directory."
        )


def _write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a fresh hidden file next to ``path``; the umask applies to its mode."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {str(path)!r}.")


def write_files(files: Mapping[PathLike, bytes], *, force: bool = False) -> None:
    """Write several files all-or-nothing as far as the file system allows.

    All targets are checked first (:func:`check_targets`), then every file is written to a
    temporary sibling, then each temporary file is renamed over its target. If anything fails
    before the renames, the temporary files are removed and no target is touched. Parent
    directories are created as needed.

    Args:
        files: the content of each file, by path.
        force: overwrite existing files.

    Raises:
        TypeError: content that is not bytes.
        FileExistsError: some targets exist and ``force`` is False (nothing is written).
        IsADirectoryError: a target is an existing directory (nothing is written).

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     root = pathlib.Path(folder)
        ...     write_files({root / "a.txt": b"1", root / "sub" / "b.txt": b"2"})
        ...     sorted(p.name for p in root.rglob("*.txt"))
        ['a.txt', 'b.txt']
    """
    for p, d in files.items():
        if not isinstance(d, bytes | bytearray | memoryview):
            raise TypeError(
                f"write_files: content for {str(p)!r} must be bytes; got {type(d).__name__}."
            )
    targets = {Path(p): bytes(d) for p, d in files.items()}
    check_targets(targets, force=force)
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temps.append((_write_temp(path, data), path))
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    done = 0
    try:
        for tmp, path in temps:
            os.replace(tmp, path)
            done += 1
    except BaseException:
        for tmp, _ in temps[done:]:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def write_atomic(path: PathLike, data: bytes, *, force: bool = False) -> None:
    """Write one file atomically (temporary sibling + rename); refuse to overwrite unless
    ``force``.

    Args:
        path: the file to write (parent directories are created).
        data: its content.
        force: overwrite an existing file.

    Raises:
        TypeError: ``data`` that is not bytes.
        FileExistsError: ``path`` exists and ``force`` is False.
        IsADirectoryError: ``path`` is an existing directory.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / "a.txt"
        ...     write_atomic(path, b"hello")
        ...     path.read_bytes()
        b'hello'
    """
    write_files({path: data}, force=force)
