"""Dense readers bound memory by what a file declares, before allocating (``io._arrays``).

Every crafted file here is small (at most a few kB) but declares a tensor that is huge, larger
than the file, or malformed; each must be refused with a clear ``FileFormatError`` instantly.
"""

from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from factorch.io import FileFormatError, read_tensor


def npy_bytes(header: str, data: bytes = b"", version: int = 1) -> bytes:
    """A ``.npy`` file with a hand-written header (padded as numpy does)."""
    text = header.encode("latin1")
    pre = 10 if version == 1 else 12
    pad = (-(pre + len(text) + 1)) % 64
    text += b" " * pad + b"\n"
    size = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + data


GOOD = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"


def test_hand_written_header_reads(tmp_path):
    p = tmp_path / "a.npy"
    p.write_bytes(npy_bytes(GOOD, np.arange(6.0).tobytes()))
    assert read_tensor(p).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_python2_header_with_long_integers_reads(tmp_path):
    p = tmp_path / "a.npy"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }"
    p.write_bytes(npy_bytes(header, np.arange(6.0).tobytes()))
    assert read_tensor(p).shape == (2, 3)


def test_version_2_header_reads(tmp_path):
    p = tmp_path / "a.npy"
    p.write_bytes(npy_bytes(GOOD, np.arange(6.0).tobytes(), version=2))
    assert read_tensor(p).shape == (2, 3)


BAD_NPY = [
    (npy_bytes(GOOD)[:30], r"the file ends inside the .npy header \(truncated\)"),
    (npy_bytes(GOOD)[:8], r"the file ends inside the .npy header"),
    (npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,"),
     r"the .npy header is not readable \(SyntaxError\)"),
    (npy_bytes("[1, 2, 3]"), r"must be a dict with keys descr, fortran_order, shape"),
    (npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (-2, 3), }"),
     r"shape \(-2, 3\) is not valid"),
    (npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2.5,), }"),
     r"shape \(2.5,\) is not valid"),
    (npy_bytes("{'descr': '<f8', 'fortran_order': 1, 'shape': (2,), }"),
     r"fortran_order is not a bool"),
    (npy_bytes("{'descr': 'zz', 'fortran_order': False, 'shape': (2,), }"),
     r"dtype is not valid"),
    (npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"),
     r"Object arrays cannot be loaded safely"),
    (npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (10**9, 10**9), }"),
     r"the .npy header is not readable"),
    (npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"),
     r"declares shape \(1000000, 1000000\) \(1,000,000,000,000 entries\), more than the "
     r"134,217,728 allowed .*max_entries="),
    (npy_bytes(GOOD, b"\x00" * 40),
     r"truncated or its header lies: it declares shape \(2, 3\) of float64 \(48 bytes of data\) "
     r"but holds 40"),
    (b"\x93NUMPY\x07\x00" + b"\x00" * 60, r"unknown .npy format version 7.0"),
    (b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{" * 60, r"a genuine header is under"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "match"), BAD_NPY, ids=[f"npy{i}" for i in range(len(BAD_NPY))]
)
def test_bad_npy_headers_are_clear_errors(tmp_path, content, match):
    p = tmp_path / "bad.npy"
    p.write_bytes(content)
    with pytest.raises(FileFormatError, match=match):
        read_tensor(p)


def test_max_entries_is_the_documented_override(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.zeros((10, 10)))
    assert read_tensor(p, max_entries=100).shape == (10, 10)
    with pytest.raises(FileFormatError, match=r"\(100 entries\), more than the 99 allowed"):
        read_tensor(p, max_entries=99)


def npz_with(tmp_path, member_bytes: bytes, compress: bool = True):
    p = tmp_path / "a.npz"
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(p, "w", compression=method) as z:
        z.writestr("tensor.npy", member_bytes)
    return p


def test_npz_bomb_is_refused_before_inflating(tmp_path):
    """A 10 kB archive whose member inflates to 80 MB of zeros: refused from its header."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (10000, 1000), }"
    p = npz_with(tmp_path, npy_bytes(header, bytes(80_000_000)))
    assert p.stat().st_size < 200_000
    with pytest.raises(FileFormatError, match=r"\(10,000,000 entries\), more than the 1,000,000"):
        read_tensor(p, max_entries=1_000_000)


def test_npz_member_lying_about_its_shape(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }"
    p = npz_with(tmp_path, npy_bytes(header, b"\x00" * 64))
    with pytest.raises(FileFormatError, match=r"a.npz\['tensor'\] is truncated or its header lies"):
        read_tensor(p)


def test_npz_member_with_a_huge_declared_shape(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2**40,), }"
    p = npz_with(tmp_path, npy_bytes(header.replace("2**40", str(2**40)), b"\x00" * 64))
    with pytest.raises(FileFormatError, match=r"declares shape \(1099511627776,\)"):
        read_tensor(p)


def test_npz_with_a_corrupt_member(tmp_path):
    p = npz_with(tmp_path, npy_bytes(GOOD, np.arange(6.0).tobytes()))
    raw = bytearray(p.read_bytes())
    start = raw.index(b"tensor.npy") + len(b"tensor.npy")
    raw[start + 5 : start + 25] = b"\xff" * 20  # damage the deflate stream
    p.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"a.npz"):
        read_tensor(p)


def test_pt_records_declaring_too_much_are_refused(tmp_path):
    torch.save(torch.zeros(1000, dtype=torch.float64), tmp_path / "a.pt")
    with pytest.raises(
        FileFormatError, match=r"its records declare .* bytes, more than 100 entries"
    ):
        read_tensor(tmp_path / "a.pt", max_entries=100)


def test_pt_tensor_over_the_limit(tmp_path):
    torch.save(torch.zeros(40, dtype=torch.uint8), tmp_path / "a.pt")
    with pytest.raises(FileFormatError, match=r"a.pt: its tensor declares shape \(40,\)"):
        read_tensor(tmp_path / "a.pt", max_entries=39)


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


BAD_SAFETENSORS = [
    ({"tensor": {"dtype": "F64", "shape": [10**6, 10**6], "data_offsets": [0, 8]}},
     r"a.safetensors\['tensor'\]: its header declares shape \(1000000, 1000000\)"),
    ({"tensor": {"dtype": "F64", "shape": [-1], "data_offsets": [0, 8]}},
     r"gives no valid shape"),
    ({"tensor": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}},
     r"cannot read the safetensors file"),
    ({"tensor": "nonsense"}, r"gives no valid shape"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("header", "match"), BAD_SAFETENSORS, ids=[f"st{i}" for i in range(len(BAD_SAFETENSORS))]
)
def test_bad_safetensors_headers_are_clear_errors(tmp_path, header, match):
    p = tmp_path / "a.safetensors"
    p.write_bytes(safetensors_bytes(header, b"\x00" * 8))
    with pytest.raises(FileFormatError, match=match):
        read_tensor(p)


def test_safetensors_header_that_is_not_json(tmp_path):
    p = tmp_path / "a.safetensors"
    p.write_bytes(struct.pack("<Q", 12) + b'{"tensor": [' + b"\x00" * 8)
    with pytest.raises(FileFormatError, match=r"the safetensors header is not a JSON object"):
        read_tensor(p)


def test_safetensors_reads_only_the_chosen_tensor(tmp_path):
    save_file({"tensor": torch.ones(3), "big": torch.zeros(1000)}, tmp_path / "a.safetensors")
    assert read_tensor(tmp_path / "a.safetensors", max_entries=10).tolist() == [1.0, 1.0, 1.0]


def test_truncated_safetensors_is_an_error(tmp_path):
    p = tmp_path / "t.safetensors"
    save_file({"tensor": torch.randn(3, 4, 5, dtype=torch.float64)}, p)
    p.write_bytes(p.read_bytes()[:-50])
    with pytest.raises(FileFormatError, match=r"t.safetensors: cannot read the safetensors file"):
        read_tensor(p)
