"""Readers: every supported format round-trips; wrong content, pickles and bad data are refused."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from factorch.io import FileFormatError, describe_content, file_format, read_tensor


@pytest.fixture
def x() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, 5, generator=g, dtype=torch.float64)


class Opaque:
    """Not a tensor: weights_only loading must refuse it."""


def test_npy_round_trip(tmp_path, x):
    p = tmp_path / "a.npy"
    np.save(p, x.numpy())
    got = read_tensor(p)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, x, rtol=0, atol=0)
    assert file_format(p) == "npy"


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.bool_])
def test_npy_dtypes_kept(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    np.save(tmp_path / "a.npy", arr)
    got = read_tensor(tmp_path / "a.npy")
    assert got.numpy().dtype == arr.dtype
    np.testing.assert_array_equal(got.numpy(), arr)


def test_npy_big_endian_and_wide_unsigned(tmp_path):
    arr = np.arange(6, dtype=">f8").reshape(2, 3)
    np.save(tmp_path / "be.npy", arr)
    got = read_tensor(tmp_path / "be.npy")
    np.testing.assert_array_equal(got.numpy(), arr.astype("<f8"))
    np.save(tmp_path / "u.npy", np.array([[1, 2], [3, 65535]], dtype=np.uint16))
    got = read_tensor(tmp_path / "u.npy")
    assert got.dtype == torch.int64
    assert got.tolist() == [[1, 2], [3, 65535]]


def test_npz_single_named_and_key(tmp_path, x):
    np.savez_compressed(tmp_path / "one.npz", data=x.numpy())
    torch.testing.assert_close(read_tensor(tmp_path / "one.npz"), x, rtol=0, atol=0)
    np.savez(tmp_path / "two.npz", tensor=x.numpy(), other=np.zeros(2))
    torch.testing.assert_close(read_tensor(tmp_path / "two.npz"), x, rtol=0, atol=0)
    assert read_tensor(tmp_path / "two.npz", key="other").shape == (2,)
    np.savez(tmp_path / "amb.npz", a=x.numpy(), b=np.zeros(2))
    with pytest.raises(FileFormatError, match=r"amb.npz holds 2 arrays \(a, b\); name the one"):
        read_tensor(tmp_path / "amb.npz")
    with pytest.raises(FileFormatError, match=r"has no array named 'c'; it holds a, b"):
        read_tensor(tmp_path / "amb.npz", key="c")


def test_pt_tensor_and_dict(tmp_path, x):
    torch.save(x, tmp_path / "a.pt")
    torch.testing.assert_close(read_tensor(tmp_path / "a.pt"), x, rtol=0, atol=0)
    torch.save({"tensor": x, "mask": x > 0}, tmp_path / "d.pth")
    torch.testing.assert_close(read_tensor(tmp_path / "d.pth"), x, rtol=0, atol=0)
    assert read_tensor(tmp_path / "d.pth", key="mask").dtype == torch.bool
    with pytest.raises(FileFormatError, match=r"holds a single tensor; drop key='k'"):
        read_tensor(tmp_path / "a.pt", key="k")


def test_pt_refuses_objects(tmp_path, x):
    torch.save({"w": Opaque()}, tmp_path / "obj.pt")
    with pytest.raises(FileFormatError, match=r"obj.pt: refused or unreadable PyTorch file"):
        read_tensor(tmp_path / "obj.pt")
    torch.save([x, x], tmp_path / "list.pt")
    with pytest.raises(FileFormatError, match=r"list.pt holds a list, not a tensor or a dict"):
        read_tensor(tmp_path / "list.pt")


def test_pickle_is_refused_whatever_the_extension(tmp_path, x):
    for name in ("p.pt", "p.npy", "p.npz", "p.safetensors"):
        with open(tmp_path / name, "wb") as f:
            pickle.dump({"x": x.numpy()}, f, protocol=2)
        with pytest.raises(FileFormatError, match=r"looks like a Python pickle \(refused"):
            read_tensor(tmp_path / name)


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"Object arrays cannot be loaded"):
        read_tensor(tmp_path / "o.npy")
    np.save(tmp_path / "s.npy", np.array(["ab", "c"]))
    with pytest.raises(FileFormatError, match=r"has dtype <U2; factorch reads numeric"):
        read_tensor(tmp_path / "s.npy")


def test_safetensors(tmp_path, x):
    save_file({"tensor": x, "extra": torch.zeros(2)}, tmp_path / "a.safetensors")
    torch.testing.assert_close(read_tensor(tmp_path / "a.safetensors"), x, rtol=0, atol=0)
    save_file({"only": x.float()}, tmp_path / "b.safetensors")
    assert read_tensor(tmp_path / "b.safetensors").dtype == torch.float32


@pytest.mark.parametrize(
    ("written_as", "named", "looks_like"),
    [
        ("pt", "f.npy", "a PyTorch .pt file"),
        ("npy", "f.npz", "a NumPy .npy array"),
        ("npz", "f.pt", "a NumPy .npz archive"),
        ("npy", "f.safetensors", "a NumPy .npy array"),
        ("safetensors", "f.npy", "a safetensors file"),
        ("npy", "f.csv", "a NumPy .npy array"),
        ("bytes", "f.txt", "binary data of an unknown format"),
        ("png", "f.npy", "a PNG image"),
        ("text", "f.pt", "text"),
        ("zip", "f.npz", "a zip archive"),
    ],
)
def test_content_must_match_extension(tmp_path, x, written_as, named, looks_like):
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


def test_missing_empty_directory_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file: '.*nope.npy'"):
        read_tensor(tmp_path / "nope.npy")
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(FileFormatError, match=r"e.npy is empty"):
        read_tensor(tmp_path / "e.npy")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(FileFormatError, match=r"is a directory, not a file"):
        read_tensor(tmp_path / "d.npy")
    with pytest.raises(FileFormatError, match=r"unsupported file extension '.mat'; factorch reads"):
        read_tensor(tmp_path / "x.mat")
    with pytest.raises(FileFormatError, match=r"unsupported file extension '\(none\)'"):
        file_format(tmp_path / "noext")


def test_truncated_npy_is_an_error(tmp_path, x):
    p = tmp_path / "t.npy"
    np.save(p, x.numpy())
    p.write_bytes(p.read_bytes()[:-50])
    with pytest.raises(FileFormatError, match=r"t.npy: cannot read the .npy array"):
        read_tensor(p)


def test_truncated_safetensors_is_an_error(tmp_path, x):
    p = tmp_path / "t.safetensors"
    save_file({"tensor": x}, p)
    p.write_bytes(p.read_bytes()[:-50])
    with pytest.raises(FileFormatError, match=r"t.safetensors: cannot read the safetensors file"):
        read_tensor(p)


# --- coordinate text files -----------------------------------------------------------------
def test_coordinates_csv_with_header_and_comments(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("# a comment\ni,j,k,value\n0,0,0,1.5\n1,2,3,-2\n\n0,1,0,4e-1\n")
    got = read_tensor(p)
    want = torch.zeros(2, 3, 4, dtype=torch.float64)
    want[0, 0, 0], want[1, 2, 3], want[0, 1, 0] = 1.5, -2.0, 0.4
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "sep"), [("c.txt", " "), ("c.tsv", "\t"), ("c.txt", "  ")])
def test_coordinates_whitespace_separated(tmp_path, name, sep):
    p = tmp_path / name
    p.write_text(f"0{sep}1{sep}2.5\n2{sep}0{sep}nan\n")
    got = read_tensor(p)
    assert got.shape == (3, 2)
    assert got[0, 1] == 2.5
    assert torch.isnan(got[2, 0])
    assert int((got != 0).sum()) == 2  # NaN != 0 is True; the rest are zeros


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0,0,1\n0,0,2\n", r"coordinate \(0, 0\) appears 2 times"),
        ("0,-1,1\n", r"line 1: indices must be non-negative integers"),
        ("0,1.5,1\n", r"line 1: indices must be non-negative integers"),
        ("0,1,1\n0,1\n", r"line 2: expected 3 fields like the first entry; got 2"),
        ("0,1,1\nfoo,bar,baz\n", r"line 2: expected numbers 'i,j,...,value'"),
        ("5\n", r"line 1: a coordinate line needs at least one index and a value"),
        ("i,j,value\n", r"holds no coordinate entries"),
        ("100000,100000,100000,1\n", r"span shape \(100001, 100001, 100001\)"),
    ],
)
def test_coordinates_malformed(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(FileFormatError, match=match):
        read_tensor(p)


def test_coordinates_refuse_key(tmp_path):
    (tmp_path / "c.csv").write_text("0,0,1\n")
    with pytest.raises(FileFormatError, match=r"is a coordinate file; key= does not apply"):
        read_tensor(tmp_path / "c.csv", key="x")


def test_coordinates_max_entries(tmp_path):
    (tmp_path / "c.csv").write_text("9,9,1\n")
    assert read_tensor(tmp_path / "c.csv", max_entries=100).shape == (10, 10)
    with pytest.raises(FileFormatError, match=r"more than the 99 a dense tensor may have"):
        read_tensor(tmp_path / "c.csv", max_entries=99)
