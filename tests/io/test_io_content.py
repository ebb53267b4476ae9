"""What a file is before it is parsed: extensions and content sniffing (``io._content``)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from factorch.io import FileFormatError, describe_content, file_format, read_tensor


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.npy", "npy"), ("a.NPZ", "npz"), ("a.pth", "pt"), ("a.safetensors", "safetensors"),
     ("a.tsv", "coo"), ("a.txt", "coo"), ("a.tns", "tns")],
)  # fmt: skip
def test_file_format_from_extension(name, fmt):
    assert file_format(name) == fmt


@pytest.mark.parametrize(
    ("name", "match"),
    [("noext", r"unsupported file extension '\(none\)'"), ("a.mat", r"extension '.mat'")],
)
def test_file_format_refuses_unknown_extensions(name, match):
    with pytest.raises(FileFormatError, match=match):
        file_format(name)


@pytest.mark.parametrize(
    ("written_as", "named", "looks_like"),
    [
        ("pt", "f.npy", "a PyTorch .pt file"),
        ("npy", "f.npz", "a NumPy .npy array"),
        ("npz", "f.pt", "a NumPy .npz archive"),
        ("npy", "f.safetensors", "a NumPy .npy array"),
        ("safetensors", "f.npy", "a safetensors file"),
        ("npy", "f.csv", "a NumPy .npy array"),
        ("npy", "f.tns", "a NumPy .npy array"),
        ("bytes", "f.txt", "binary data of an unknown format"),
        ("png", "f.npy", "a PNG image"),
        ("gzip", "f.npz", "a gzip file"),
        ("text", "f.pt", "text"),
        ("zip", "f.npz", "a zip archive"),
    ],
)
def test_content_must_match_extension(tmp_path, written_as, named, looks_like):
    x = torch.arange(6.0).reshape(2, 3)
    p = tmp_path / named
    if written_as == "pt":
        torch.save(x, p)
    elif written_as == "npy":
        with open(p, "wb") as f:
            np.save(f, x.numpy())
    elif written_as == "npz":
        with open(p, "wb") as f:
            np.savez(f, a=x.numpy())
    elif written_as == "safetensors":
        save_file({"t": x}, p)
    elif written_as == "png":
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    elif written_as == "gzip":
        p.write_bytes(b"\x1f\x8b\x08" + b"\x00" * 40)
    elif written_as == "bytes":
        p.write_bytes(bytes(range(200, 256)) * 2)
    elif written_as == "zip":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "hello")
    else:
        p.write_text("0,0,0,1.0\n")
    with pytest.raises(FileFormatError, match=rf"{named} is not .*looks like {looks_like}"):
        read_tensor(p)
    assert describe_content(p) == looks_like


@pytest.mark.parametrize("name", ["f.pt", "f.npz"])
def test_damaged_zip_is_called_damaged(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    assert describe_content(p) == "a damaged zip archive"
    with pytest.raises(FileFormatError, match=rf"{name} is damaged: it starts like a zip archive"):
        read_tensor(p)
