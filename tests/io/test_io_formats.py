"""``read_tensor`` / ``read_observed``: every format round-trips; arguments are checked."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from factorch.io import (
    DEFAULT_MAX_ENTRIES,
    FileFormatError,
    ObservedTensor,
    file_format,
    read_observed,
    read_tensor,
)


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


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.uint8, np.bool_,
                                   np.complex64])  # fmt: skip
def test_npy_dtypes_kept(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    np.save(tmp_path / "a.npy", arr)
    got = read_tensor(tmp_path / "a.npy")
    assert got.numpy().dtype == arr.dtype
    np.testing.assert_array_equal(got.numpy(), arr)


def test_npy_fortran_order_and_zero_dim(tmp_path, x):
    np.save(tmp_path / "f.npy", np.asfortranarray(x.numpy()))
    torch.testing.assert_close(read_tensor(tmp_path / "f.npy"), x, rtol=0, atol=0)
    np.save(tmp_path / "s.npy", np.float64(2.5))
    assert read_tensor(tmp_path / "s.npy").shape == ()
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    assert read_tensor(tmp_path / "e.npy").shape == (0, 3)


def test_npy_big_endian(tmp_path):
    arr = np.arange(6, dtype=">f8").reshape(2, 3)
    np.save(tmp_path / "be.npy", arr)
    got = read_tensor(tmp_path / "be.npy")
    np.testing.assert_array_equal(got.numpy(), arr.astype("<f8"))


def test_npy_wide_unsigned_become_int64(tmp_path):
    np.save(tmp_path / "u.npy", np.array([[1, 2], [3, 65535]], dtype=np.uint16))
    got = read_tensor(tmp_path / "u.npy")
    assert got.dtype == torch.int64
    assert got.tolist() == [[1, 2], [3, 65535]]


def test_npz_single_array(tmp_path, x):
    np.savez_compressed(tmp_path / "one.npz", data=x.numpy())
    torch.testing.assert_close(read_tensor(tmp_path / "one.npz"), x, rtol=0, atol=0)


def test_npz_named_tensor_and_key(tmp_path, x):
    np.savez(tmp_path / "two.npz", tensor=x.numpy(), other=np.zeros(2))
    torch.testing.assert_close(read_tensor(tmp_path / "two.npz"), x, rtol=0, atol=0)
    assert read_tensor(tmp_path / "two.npz", key="other").shape == (2,)


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (None, r"amb.npz holds 2 arrays \(a, b\); name the one"),
        ("c", r"has no array named 'c'; it holds a, b"),
    ],
)
def test_npz_ambiguous_or_unknown_key(tmp_path, x, key, match):
    np.savez(tmp_path / "amb.npz", a=x.numpy(), b=np.zeros(2))
    with pytest.raises(FileFormatError, match=match):
        read_tensor(tmp_path / "amb.npz", key=key)


def test_pt_tensor_and_dict(tmp_path, x):
    torch.save(x, tmp_path / "a.pt")
    torch.testing.assert_close(read_tensor(tmp_path / "a.pt"), x, rtol=0, atol=0)
    torch.save({"tensor": x, "mask": x > 0}, tmp_path / "d.pth")
    torch.testing.assert_close(read_tensor(tmp_path / "d.pth"), x, rtol=0, atol=0)
    assert read_tensor(tmp_path / "d.pth", key="mask").dtype == torch.bool


@pytest.mark.parametrize(
    ("saved", "key", "match"),
    [
        ("tensor", "k", r"holds a single tensor; drop key='k'"),
        ("object", None, r"obj.pt: refused or unreadable PyTorch file"),
        ("list", None, r"obj.pt holds a list, not a tensor or a dict"),
        ("sparse", None, r"obj.pt holds a sparse_coo tensor; save it as a plain dense tensor"),
    ],
)
def test_pt_refusals(tmp_path, x, saved, key, match):
    obj = {
        "tensor": x,
        "object": {"w": Opaque()},
        "list": [x, x],
        "sparse": x.to_sparse(),
    }[saved]
    torch.save(obj, tmp_path / "obj.pt")
    with pytest.raises(FileFormatError, match=match):
        read_tensor(tmp_path / "obj.pt", key=key)


@pytest.mark.parametrize("name", ["p.pt", "p.npy", "p.npz", "p.safetensors"])
def test_pickle_is_refused_whatever_the_extension(tmp_path, x, name):
    with open(tmp_path / name, "wb") as f:
        pickle.dump({"x": x.numpy()}, f, protocol=2)
    with pytest.raises(FileFormatError, match=r"looks like a Python pickle \(refused"):
        read_tensor(tmp_path / name)


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"Object arrays cannot be loaded"):
        read_tensor(tmp_path / "o.npy")


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.array(["ab", "c"]), r"has dtype <U2; factorch reads numeric"),
        (np.zeros(3, dtype=np.longdouble), r"extended precision, which PyTorch has no dtype for"),
        (np.zeros(3, dtype="M8[s]"), r"has dtype datetime64\[s\]"),
    ],
    ids=["str", "longdouble", "datetime"],
)
def test_npy_non_numeric_dtypes_refused(tmp_path, arr, match):
    np.save(tmp_path / "s.npy", arr)
    with pytest.raises(FileFormatError, match=match):
        read_tensor(tmp_path / "s.npy")


def test_safetensors_named_and_single(tmp_path, x):
    save_file({"tensor": x, "extra": torch.zeros(2)}, tmp_path / "a.safetensors")
    torch.testing.assert_close(read_tensor(tmp_path / "a.safetensors"), x, rtol=0, atol=0)
    save_file({"only": x.float()}, tmp_path / "b.safetensors")
    assert read_tensor(tmp_path / "b.safetensors").dtype == torch.float32
    assert read_tensor(tmp_path / "a.safetensors", key="extra").shape == (2,)


def test_dense_formats_have_no_mask(tmp_path, x):
    np.save(tmp_path / "a.npy", x.numpy())
    obs = read_observed(tmp_path / "a.npy")
    assert isinstance(obs, ObservedTensor)
    assert (obs.mask, obs.format, obs.unlisted, obs.n_unlisted, obs.counts) == (
        None, "npy", None, 0, None,
    )  # fmt: skip
    assert obs.n_missing == 0


def test_default_limit_is_one_gib_of_float64():
    assert DEFAULT_MAX_ENTRIES * 8 == 2**30


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file: '.*nope.npy'"):
        read_tensor(tmp_path / "nope.npy")


@pytest.mark.parametrize(
    ("make", "name", "match"),
    [
        ("empty", "e.npy", r"e.npy is empty"),
        ("dir", "d.npy", r"is a directory, not a file"),
        ("none", "x.mat", r"unsupported file extension '.mat'; factorch reads"),
    ],
)
def test_unreadable_paths(tmp_path, make, name, match):
    p = tmp_path / name
    if make == "empty":
        p.write_bytes(b"")
    elif make == "dir":
        p.mkdir()
    with pytest.raises(FileFormatError, match=match):
        read_tensor(p)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"unlisted": "nan"}, ValueError, r"read_tensor: unlisted must be one of 'auto', "),
        ({"max_entries": 0}, ValueError, r"read_tensor: max_entries must be in \[1, 2\*\*48\]"),
        ({"max_entries": 2**49}, ValueError, r"read_tensor: max_entries must be in"),
        ({"max_entries": 1.5}, TypeError, r"read_tensor: max_entries must be an int; got float"),
        ({"max_entries": True}, TypeError, r"read_tensor: max_entries must be an int; got bool"),
    ],
)
def test_argument_errors(tmp_path, x, kwargs, error, match):
    np.save(tmp_path / "a.npy", x.numpy())
    with pytest.raises(error, match=match):
        read_tensor(tmp_path / "a.npy", **kwargs)


def test_read_observed_names_itself_in_errors(tmp_path, x):
    np.save(tmp_path / "a.npy", x.numpy())
    with pytest.raises(ValueError, match=r"read_observed: unlisted must be one of"):
        read_observed(tmp_path / "a.npy", unlisted="none")  # type: ignore[arg-type]
