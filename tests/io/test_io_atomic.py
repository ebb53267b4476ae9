"""Atomic no-clobber writes (``factorch.io._atomic``)."""

from __future__ import annotations

import os
import stat

import pytest

from factorch import io
from factorch.io import check_targets, write_atomic, write_files


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_files_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b"
    write_files({target / "x.bin": b"one", target / "y.bin": b"two"})
    assert (target / "x.bin").read_bytes() == b"one"
    assert (target / "y.bin").read_bytes() == b"two"
    assert _leftovers(target) == []


def test_refuses_overwrite_and_writes_nothing(tmp_path):
    (tmp_path / "old.bin").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match=r"'.*old.bin' already exists; pass force=True"):
        write_files({tmp_path / "new.bin": b"n", tmp_path / "old.bin": b"x"})
    assert (tmp_path / "old.bin").read_bytes() == b"keep"
    assert not (tmp_path / "new.bin").exists()
    assert _leftovers(tmp_path) == []
    write_files({tmp_path / "new.bin": b"n", tmp_path / "old.bin": b"x"}, force=True)
    assert (tmp_path / "old.bin").read_bytes() == b"x"


def test_check_targets_names_every_existing_file(tmp_path):
    for n in ("a", "b"):
        (tmp_path / n).write_bytes(b"")
    with pytest.raises(FileExistsError, match=r"output files '.*a', '.*b' already exist"):
        check_targets([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    check_targets([tmp_path / "a"], force=True)


def test_check_targets_refuses_a_directory_even_with_force(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match=r"output '.*d' is a directory"):
        check_targets([tmp_path / "d"], force=True)


def test_failure_before_rename_leaves_targets_untouched(tmp_path, monkeypatch):
    (tmp_path / "a.bin").write_bytes(b"old")
    calls = {"n": 0}
    real = io._atomic._write_temp

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(path, data)

    monkeypatch.setattr(io._atomic, "_write_temp", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_files({tmp_path / "a.bin": b"new", tmp_path / "b.bin": b"new"}, force=True)
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert not (tmp_path / "b.bin").exists()
    assert _leftovers(tmp_path) == []


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o640


def test_write_files_wants_bytes(tmp_path):
    with pytest.raises(TypeError, match=r"content for '.*f' must be bytes"):
        write_files({tmp_path / "f": "text"})  # type: ignore[dict-item]
