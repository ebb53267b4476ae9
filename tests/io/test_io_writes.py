"""Atomic no-clobber writes and factorized tensors in safetensors files."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors.torch import save

from factorch import io
from factorch.io import (
    FileFormatError,
    check_targets,
    factorized_from_bytes,
    factorized_to_bytes,
    load_factorized,
    save_factorized,
    write_atomic,
    write_files,
)
from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker


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


# --- factorized tensors ----------------------------------------------------------------------
def _models(dtype: torch.dtype):
    g = torch.Generator().manual_seed(1)
    return [
        random_cp((3, 4, 5), 2, generator=g, dtype=dtype),
        random_tucker((3, 4, 5), (2, 3, 2), generator=g, dtype=dtype),
        random_tt((3, 4, 5), 2, generator=g, dtype=dtype),
        random_tr((3, 4, 5), 2, generator=g, dtype=dtype),
        random_tt_matrix((2, 3), (3, 2), 2, generator=g, dtype=dtype),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_factorized_round_trip(tmp_path, dtype):
    for k, model in enumerate(_models(dtype)):
        path = tmp_path / f"m{k}.safetensors"
        save_factorized(model, path, metadata={"note": "hi"})
        back = load_factorized(path)
        assert type(back) is type(model)
        assert back.dtype == dtype
        torch.testing.assert_close(back.to_dense(), model.to_dense(), rtol=0, atol=0)
        header_len = int.from_bytes(path.read_bytes()[:8], "little")
        meta = json.loads(path.read_bytes()[8 : 8 + header_len])["__metadata__"]
        assert meta["factorch.type"] == type(model).__name__
        assert meta["note"] == "hi"
    with pytest.raises(FileExistsError, match="already exists"):
        save_factorized(_models(dtype)[0], tmp_path / "m0.safetensors")


def test_factorized_layout_names():
    cp = _models(torch.float64)[0]
    from safetensors.torch import load

    named = load(factorized_to_bytes(cp))
    assert sorted(named) == ["factors.0", "factors.1", "factors.2", "weights"]


def test_factorized_errors(tmp_path):
    with pytest.raises(TypeError, match=r"must be a CPTensor, TuckerTensor, .*; got Tensor"):
        factorized_to_bytes(torch.zeros(2))
    with pytest.raises(TypeError, match=r"metadata must map str to str"):
        factorized_to_bytes(_models(torch.float64)[0], metadata={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(FileFormatError, match=r"no 'factorch.type' in the safetensors metadata"):
        factorized_from_bytes(save({"weights": torch.ones(2)}))
    bad = save({"weights": torch.ones(2)}, metadata={"factorch.type": "CPTensor"})
    with pytest.raises(FileFormatError, match=r"no 'factors.0' tensor for a CPTensor"):
        factorized_from_bytes(bad)
    bad = save(
        {"weights": torch.ones(2), "factors.0": torch.ones(3, 3)},
        metadata={"factorch.type": "CPTensor"},
    )
    with pytest.raises(FileFormatError, match=r"inconsistent CPTensor"):
        factorized_from_bytes(bad)
    bad = save({"w": torch.ones(2)}, metadata={"factorch.type": "Mystery"})
    with pytest.raises(FileFormatError, match=r"unknown factorch.type 'Mystery'"):
        factorized_from_bytes(bad)
    with pytest.raises(FileFormatError, match=r"data is not a safetensors file"):
        factorized_from_bytes(b"not a safetensors file at all")
    with pytest.raises(FileNotFoundError, match=r"no such file"):
        load_factorized(tmp_path / "none.safetensors")
