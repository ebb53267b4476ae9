"""Fuzz the ``factorch`` command line with crafted files and extreme options (issue 9.12).

Every run must end one of two ways:

* exit status 2 with exactly one line ``factorch: error: <message>`` on stderr, no traceback, and
  not the catch-all "unexpected ..." message (every crafted input has a specific, clear error);
* success (status 0) on input that is valid, with only ``factorch: warning:``/``note:`` lines on
  stderr.

The files are crafted from valid ones: truncated at any byte, headers that lie about shape,
dtype or size, compression bombs of bounded size (a few kB that would inflate to 100 MB),
coordinate lines with overflowing, negative, fractional or non-finite indices, NaN/inf values;
the options take extreme values. Runs are in-process (``factorch.cli.run`` under click's
``CliRunner`` isolation: the same code path as the console script minus the interpreter start-up);
one real process checks the same contract end to end, and ``tests/cli/test_cli_entry.py`` sends
Ctrl-C to real processes during start-up.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from factorch.cli import run

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
ERROR_LINE = re.compile(r"^factorch: error: [^\n]+\n$")


def invoke(*args: str) -> tuple[int, str, str]:
    with CliRunner().isolation() as (out, err, _):
        code = run(list(args))
    return code, out.getvalue().decode(), err.getvalue().decode()


def assert_clean(code: int, err: str, args: tuple[str, ...]) -> None:
    """Exit 2 with one specific error line, or success with only warning/note lines."""
    assert "Traceback" not in err, (args, err)
    if code == 0:
        for line in err.splitlines():
            assert line.startswith(("factorch: warning: ", "factorch: note: ")), (args, err)
        return
    assert code == 2, (args, code, err)
    assert ERROR_LINE.match(err), (args, err)
    assert "unexpected" not in err, (args, err)


def run_on(path: Path, *extra: str) -> None:
    """``info`` and ``decompose`` on ``path``: both must end cleanly."""
    out = path.parent / "out"
    for args in (
        ("info", str(path), *extra),
        ("decompose", str(path), "--rank", "2", "--max-iter", "3", "--out", str(out),
         "--no-plots", "--quiet", "--force", *extra),
    ):  # fmt: skip
        code, _, err = invoke(*args)
        assert_clean(code, err, args)


# --- crafted binary files ---------------------------------------------------------------------
def npy_file(header: str, data: bytes, version: int = 1) -> bytes:
    text = header.encode("latin1")
    pre = 10 if version == 1 else 12
    text += b" " * ((-(pre + len(text) + 1)) % 64) + b"\n"
    size = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + data


SHAPES = st.one_of(
    st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
    st.lists(st.sampled_from([2**31, 2**62, 10**12, -1, 0, 3]), min_size=1, max_size=3).map(tuple),
)
DESCRS = st.sampled_from(["<f8", "<f4", ">f8", "|u1", "<i2", "|b1", "<c16", "|O", "<U3",
                          "<f16", "|V8", "<M8[s]", "zz", "<f8'"])  # fmt: skip


@st.composite
def npy_bytes(draw: st.DrawFn) -> bytes:
    shape = draw(SHAPES)
    descr = draw(DESCRS)
    fortran = draw(st.sampled_from(["False", "True", "1", "None"]))
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    if draw(st.booleans()):  # a header damaged somewhere
        cut = draw(st.integers(0, len(header)))
        junk = draw(st.sampled_from(["", "(", "{", "'", "\\", ")]"]))
        header = header[:cut] + junk + header[cut:]
    n = draw(st.integers(0, 200))
    blob = npy_file(header, bytes(n), version=draw(st.sampled_from([1, 2])))
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    return blob


@st.composite
def npz_bytes(draw: st.DrawFn) -> bytes:
    members = draw(st.lists(st.tuples(st.sampled_from(["tensor", "a", "b"]), npy_bytes()),
                            min_size=1, max_size=2))  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "a.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, blob in members:
            if name + ".npy" not in z.namelist():
                z.writestr(name + ".npy", blob)
    blob = path.read_bytes()
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    return blob


def bomb_npz(path: Path, entries: int) -> None:
    """A small archive whose one member inflates to ``8 * entries`` bytes of zeros."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({entries},), }}"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("tensor.npy", npy_file(header, bytes(8 * entries)))


@st.composite
def pt_bytes(draw: st.DrawFn) -> bytes:
    path = Path(tempfile.mkdtemp()) / "a.pt"
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.int8, torch.bool,
                                  torch.complex64, torch.float16]))  # fmt: skip
    x = torch.zeros(shape, dtype=dtype)
    obj = draw(st.sampled_from(["tensor", "dict", "list", "sparse"]))
    torch.save({"tensor": x, "b": x} if obj == "dict" else [x] if obj == "list" else
               x.to_sparse() if obj == "sparse" and x.ndim else x, path)  # fmt: skip
    blob = path.read_bytes()
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    elif draw(st.booleans()):
        pos = draw(st.integers(0, len(blob) - 1))
        blob = blob[:pos] + bytes([blob[pos] ^ 0xFF]) + blob[pos + 1 :]
    return blob


@st.composite
def safetensors_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        blob = save({"tensor": torch.zeros(draw(st.integers(0, 5)), 3)})
        return blob[: draw(st.integers(0, len(blob)))]
    shape = list(draw(SHAPES))
    dtype = draw(st.sampled_from(["F64", "F32", "U8", "BOOL", "I64", "XX", 3]))
    begin = draw(st.integers(-1, 10))
    end = draw(st.one_of(st.integers(-1, 200), st.just(2**63)))
    header: dict[str, object] = {
        "tensor": {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    }
    if draw(st.booleans()):
        header["__metadata__"] = {"x": "y"}
    text = json.dumps(header).encode()
    if draw(st.booleans()):
        text = text[: draw(st.integers(2, len(text)))]
    declared = len(text) + draw(st.sampled_from([0, 0, 5, 2**40]))
    return struct.pack("<Q", declared) + text + bytes(draw(st.integers(0, 200)))


# --- crafted coordinate files -----------------------------------------------------------------
WEIRD_INDEX = st.sampled_from(["-1", "1.5", "inf", "-inf", "nan", "1e19", "1e300", str(2**63),
                               str(2**70), "9007199254740993", "3.0", "1_0", "0x10", "", "i",
                               "16383"])  # fmt: skip
# mostly valid indices, so that many files parse and reach the later checks and the fit
INDEX = st.integers(0, 19).flatmap(lambda k: st.just(str(k % 4)) if k < 17 else WEIRD_INDEX)
VALUE = st.one_of(
    st.floats(-1e3, 1e3).map(repr),
    st.integers(0, 20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e-320", "x", ""]),
)


@st.composite
def coordinate_text(draw: st.DrawFn) -> str:
    width = draw(st.integers(1, 4))
    lines = []
    if draw(st.booleans()):
        lines.append("i,j,k,value")
    for _ in range(draw(st.integers(0, 12))):
        count = draw(st.sampled_from([width] * 6 + [width + 1]))
        fields = [draw(INDEX) for _ in range(count)]
        fields.append(draw(VALUE))
        sep = draw(st.sampled_from([",", " ", "\t", ", "]))
        lines.append(sep.join(fields))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["# comment", "", "\x00", "garbage line"])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


# --- the tests ---------------------------------------------------------------------------------
@SETTINGS
@given(blob=npy_bytes())
def test_crafted_npy(blob):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.npy"
        path.write_bytes(blob)
        run_on(path)


@SETTINGS
@given(blob=npz_bytes(), key=st.sampled_from([None, "tensor", "zz"]))
def test_crafted_npz(blob, key):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.npz"
        path.write_bytes(blob)
        run_on(path, *(("--key", key) if key else ()))


@SETTINGS
@given(blob=pt_bytes(), key=st.sampled_from([None, "b", "zz"]))
def test_crafted_pt(blob, key):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.pt"
        path.write_bytes(blob)
        run_on(path, *(("--key", key) if key else ()))


@SETTINGS
@given(blob=safetensors_bytes())
def test_crafted_safetensors(blob):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.safetensors"
        path.write_bytes(blob)
        run_on(path)


@settings(SETTINGS, max_examples=80)
@given(
    text=coordinate_text(),
    ext=st.sampled_from([".csv", ".txt", ".tsv", ".tns"]),
    unlisted=st.sampled_from(["auto", "missing", "zero"]),
)
def test_crafted_coordinates(text, ext, unlisted):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x{ext}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        run_on(path, "--unlisted", unlisted)


def test_compression_bomb_is_refused_unread(tmp_path):
    """A 100 MB member in a few-kB archive, with the limit below it: refused from its header."""
    path = tmp_path / "bomb.npz"
    bomb_npz(path, 12_500_000)
    assert path.stat().st_size < 200_000
    for cmd in ("info", "decompose"):
        args = (cmd, str(path), "--max-entries", "1000000")
        if cmd == "decompose":
            args += ("--rank", "1", "--out", str(tmp_path / "o"))
        code, _, err = invoke(*args)
        assert_clean(code, err, args)
        assert code == 2 and "(12,500,000 entries), more than the 1,000,000 allowed" in err


OPTIONS = st.sampled_from([
    ("--seed", str(2**70)), ("--seed", "-5"), ("--threads", "100000"), ("--threads", "-1"),
    ("--device", "meta"), ("--device", "cuda:99"), ("--device", "nonsense"), ("--device", ""),
    ("--max-iter", str(10**12)), ("--tol", "nan"), ("--tol", "inf"), ("--tol", "-0.5"),
    ("--rank", "0"), ("--rank", str(10**30)), ("--rank", "1,1,1,1,1,1"), ("--rank", "-3"),
    ("--rank", "1e3"), ("--max-entries", "0"), ("--max-entries", "5"), ("--max-entries", "x"),
    ("--out", ""), ("--method", "tucker"), ("--method", "tt"), ("--method", "tr"),
    ("--method", "ntf"), ("--init", "random"), ("--dtype", "float32"), ("--unlisted", "zero"),
    ("--key", "k"), ("--mask", "/nonexistent.npy"), ("--dataset", "il2_response"),
])  # fmt: skip


@settings(SETTINGS, max_examples=60)
@given(options=st.lists(OPTIONS, min_size=1, max_size=3))
def test_extreme_options(options):
    with tempfile.TemporaryDirectory() as d:
        x = np.random.default_rng(0).random((5, 4, 3))
        np.save(Path(d) / "x.npy", x)
        args = ["decompose", str(Path(d) / "x.npy"), "--max-iter", "3", "--no-plots",
                "--quiet", "--out", str(Path(d) / "o")]  # fmt: skip
        for name, value in options:
            args += [name, value]
        if "--rank" not in args:
            args += ["--rank", "2"]
        cwd = os.getcwd()
        os.chdir(d)  # --out '' must not write into the working directory
        try:
            code, _, err = invoke(*args)
        finally:
            os.chdir(cwd)
        assert_clean(code, err, tuple(args))
        if ("--out", "") in options:
            assert code == 2 and sorted(p.name for p in Path(d).iterdir()) == ["x.npy"]


def test_rank_scan_with_a_huge_range():
    code, _, err = invoke("rank-scan", "--ranks", "1-100000000", "--out", "/nonexistent/o")
    assert_clean(code, err, ("rank-scan",))
    assert code == 2 and "rank 100000000 is too large" in err


def test_a_crafted_file_in_a_real_process(tmp_path):
    """The same contract in a real interpreter, through the console-script entry point."""
    path = tmp_path / "x.npy"
    path.write_bytes(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2,", b""))
    proc = subprocess.run(
        [sys.executable, "-c", "import _factorch_entry; _factorch_entry.main()", "info",
         str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "factorch: error: x.npy: the .npy header is not readable (SyntaxError).\n"
