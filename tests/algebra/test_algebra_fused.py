"""The fused MTTKRP kernel (``mttkrp(..., kernel="fused")``) against the float64 reference, in
float32 and float64, every mode, orders 2-4, both vector widths; determinism across calls and
thread counts; the documented fallbacks; a compiler that fails. The kernel compiles once per
machine (then loads from inductor's disk cache) in a module-scoped fixture."""

from __future__ import annotations

import pytest
import torch
from _algebra_reference import assert_close, randn, ref_mttkrp, to_hi

import factorch.algebra._fused as fused_mod
from factorch.algebra import FusedStatus, fused_mttkrp_status, mttkrp
from factorch.algebra._fused import (
    FUSED_MIN_ENTRIES,
    KLANE_MIDDLE_MIN,
    KLANE_MIN,
    _Kernel,
    _rank_layout,
    fused_lane,
    fused_mttkrp,
    fused_reason,
)
from factorch.algebra.internal import mttkrp_kernel

F64, F32 = torch.float64, torch.float32


@pytest.fixture(scope="module")
def kernel() -> FusedStatus:
    status = fused_mttkrp_status()
    if not status.available:
        pytest.skip(f"the fused MTTKRP kernel does not compile here: {status.reason}")
    return status


def _problem(shape, rank, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return randn(shape, gen, dtype), [randn((s, rank), gen, dtype) for s in shape]


# Shapes reach every loop of the kernel: a 4-row tile over q (rows of X(.., K)) with and without
# remainder, a tile over p when fewer than 4 q, single rows when both are small, the cols loop
# with several k blocks (K > 256) and remainders. With the last mode as the lane: K shorter than
# a vector, whole vectors and a partial last one; rank chunks (17 -> 6 + 6 + 5 with 64-byte
# vectors, 40 -> five chunks), P = Q = 1 with and without weights ((11, 9), (7, 1, 40)); the
# cols loop over several row blocks with the next block prefetched ((3, 40, 300): 120 rows).
CASES = [
    ((5, 6, 7), 3),
    ((9, 4, 13), 10),
    ((3, 2, 300), 5),
    ((6, 5, 4, 3), 17),
    ((2, 3, 5, 7), 40),
    ((11, 9), 8),
    ((1, 4, 6), 1),
    ((3, 5, 37), 10),
    ((4, 6, 3, 40), 17),
    ((7, 1, 40), 2),
    ((3, 40, 300), 9),
    ((50, 45), 10),
]


@pytest.mark.parametrize("lane", [None, "rank", "last"])
@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("vector_bytes", [32, 64])
@pytest.mark.parametrize(("shape", "rank"), CASES)
def test_fused_matches_reference_in_every_mode(kernel, shape, rank, dtype, vector_bytes, lane):
    x, fs = _problem(shape, rank, dtype)
    hi = [to_hi(f) for f in fs]
    for mode in range(len(shape)):
        out = fused_mttkrp(x, fs, mode, vector_bytes=vector_bytes, lane=lane)
        assert out.shape == (shape[mode], rank)
        assert out.dtype == dtype
        assert out.is_contiguous()
        assert_close(out, ref_mttkrp(to_hi(x), hi, mode, None))


def test_mttkrp_fused_keyword_on_a_large_tensor_matches_default(kernel):
    x, fs = _problem((32, 33, 34), 10, F64)
    weights = torch.linspace(0.5, 2.0, 10, dtype=F64)
    assert not fused_reason(x, fs, 0)
    for mode in range(3):
        fast = mttkrp(x, fs, mode, weights=weights, kernel="fused")
        torch.testing.assert_close(fast, mttkrp(x, fs, mode, weights=weights))
        assert torch.equal(fast, fused_mttkrp(x, fs, mode) * weights)


@pytest.mark.parametrize(("shape", "dtype"), [((40, 36, 30), F32), ((30, 36, 40), F64)])
def test_fused_is_bit_identical_across_calls_and_thread_counts(kernel, shape, dtype):
    # (30, 36, 40): the last mode as the lane in modes 0 and 2 (K = 40 >= KLANE_MIN)
    x, fs = _problem(shape, 12 if dtype == F32 else 10, dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ones = [fused_mttkrp(x, fs, m) for m in range(3)]
        torch.set_num_threads(2)
        twos = [fused_mttkrp(x, fs, m) for m in range(3)]
    finally:
        torch.set_num_threads(threads)
    for a, b, m in zip(ones, twos, range(3), strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, fused_mttkrp(x, fs, m))


def test_a_matrix_mode_1_is_left_to_blas():
    x = torch.zeros(2048, 40, dtype=F64)
    assert "a matrix other than X @ C" in fused_reason(x, [torch.zeros(2048, 3), None], 1)
    assert not fused_reason(x, [None, torch.zeros(40, 3)], 0)


def test_lane_rule():
    k = KLANE_MIN
    assert fused_lane((100, 100, k), 0, 10, F64, 64) == "last"  # mode 0: rows dotted with C^T
    assert fused_lane((100, k), 0, 10, F64, 64) == "last"  # X(M, K) @ C
    assert fused_lane((100, 100, k - 1), 0, 10, F64, 64) == "rank"  # K too short
    assert fused_lane((100, 100, k), 1, 10, F64, 64) == "rank"  # middle modes: short rows
    assert fused_lane((100, 100, KLANE_MIDDLE_MIN), 1, 10, F64, 64) == "last"
    assert fused_lane((9, 100, 100, KLANE_MIDDLE_MIN - 1), 2, 10, F64, 64) == "rank"
    assert fused_lane((100, 100, k), 2, 10, F64, 64) == "last"  # rank 10 pads to 16 lanes
    assert fused_lane((100, 100, k), 2, 8, F64, 64) == "rank"  # rank 8: no padded lane
    assert fused_lane((100, 100, k), 2, 16, F32, 64) == "rank"


def test_rank_layout_rule():
    # fewest vector instructions per entry; the narrower vector on a tie
    assert _rank_layout(10, F64, 64) == (64, 16)  # 2 zmm against 3 ymm
    assert _rank_layout(10, F64, 32) == (32, 12)
    assert _rank_layout(4, F64, 64) == (32, 4)  # 1 ymm, no padding
    assert _rank_layout(8, F64, 64) == (64, 8)  # 1 zmm against 2 ymm
    assert _rank_layout(9, F64, 64) == (64, 16)
    assert _rank_layout(10, F32, 64) == (64, 16)
    assert _rank_layout(3, F32, 64) == (32, 8)


def _fallback_cases():
    big = (32, 32, 32)
    x, fs = _problem(big, 3, F64)
    yield "CPU-only", x.to("meta"), [f.to("meta") for f in fs]
    yield "float32 and float64", x.to(torch.complex128), [f.to(torch.complex128) for f in fs]
    yield "float32 and float64", x.half(), [f.half() for f in fs]
    yield "a vector", torch.zeros(FUSED_MIN_ENTRIES, dtype=F64), [torch.zeros(1, 3)]
    yield "a matrix other than X @ C", x.reshape(2048, 16), [None, torch.zeros(16, 3)]
    yield "fewer than", torch.zeros(4, 5, 6, dtype=F64), [torch.zeros(s, 3) for s in (4, 5, 6)]
    yield "non-contiguous", x.mT, [fs[0], fs[2], fs[1]]
    yield "autograd", x, [fs[0], fs[1].requires_grad_(), fs[2]]


@pytest.mark.parametrize(("reason", "x", "fs"), list(_fallback_cases()))
def test_fused_reason_names_each_fallback(reason, x, fs):
    assert reason in fused_reason(x, fs, 0)


def test_fused_keyword_falls_back_to_the_default_path_with_autograd(kernel):
    x, fs = _problem((32, 32, 32), 3, F64)
    fs = [f.requires_grad_() for f in fs]
    out = mttkrp(x, fs, 0, kernel="fused")
    assert torch.equal(out, mttkrp(x, fs, 0))
    out.sum().backward()
    assert fs[1].grad is not None


def test_no_compiler_gives_a_status_with_the_reason_and_falls_back(monkeypatch):
    from torch._inductor.codecache import CppPythonBindingsCodeCache

    def broken(*args, **kwargs):
        raise OSError("g++: not found\nmore lines")

    monkeypatch.setattr(CppPythonBindingsCodeCache, "load_pybinding", broken)
    monkeypatch.setattr(fused_mod, "_load_recorded", lambda record: None)  # no earlier process
    fresh = _Kernel()
    status = fresh.status()
    assert status == FusedStatus(False, "OSError: g++: not found", 0)
    assert fresh.fn() is None
    monkeypatch.setattr(fused_mod, "KERNEL", fresh)
    x, fs = _problem((32, 32, 32), 3, F64)
    assert "no compiled kernel (OSError: g++: not found)" in fused_reason(x, fs, 1)
    assert torch.equal(mttkrp(x, fs, 1, kernel="fused"), mttkrp(x, fs, 1))
    assert torch.equal(mttkrp_kernel(x, fs, 1, "fused"), mttkrp_kernel(x, fs, 1, "default"))


def test_mttkrp_rejects_an_unknown_kernel():
    x, fs = _problem((2, 3, 4), 2, F64)
    with pytest.raises(ValueError, match=r"mttkrp: kernel must be one of \['default', 'fused'\]"):
        mttkrp(x, fs, 0, kernel="blas")  # type: ignore[arg-type]


def test_a_second_load_uses_the_recorded_library_and_agrees(kernel):
    fresh = _Kernel()  # what a new process does: the record written by the first load
    status = fresh.status()
    assert status.available
    assert status.origin == "disk"
    assert status.vector_bytes == kernel.vector_bytes
    x, fs = _problem((6, 7, 8), 10, F64)
    ref = fused_mttkrp(x, fs, 0)
    fn = fresh.fn()
    assert fn is not None
    rp = 16 if kernel.vector_bytes == 64 else 12
    c = torch.nn.functional.pad(fs[2], (0, rp - 10)).contiguous()
    wq = torch.nn.functional.pad(fs[1], (0, rp - 10)).contiguous()
    ones, out, blank = torch.ones(1, rp, dtype=F64), torch.empty(6, rp, dtype=F64), torch.empty(0)
    fn(x, ones, wq, c, out, blank, blank, blank, blank, blank, 0, kernel.vector_bytes, 1, 6, 7, 8,
       rp, 1)  # fmt: skip
    assert torch.equal(out[:, :10], ref)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"key": "other", "path": "/nonexistent.so", "vector_bytes": 64}',
        '{"key": "KEY", "path": "/nonexistent.so", "vector_bytes": 64}',
        '{"key": "KEY", "path": "RECORD", "vector_bytes": 64}',  # exists, not a library
        '{"key": "KEY"}',
        '{"key": "KEY", "path": "/bin/sh", "vector_bytes": 64}',  # outside the cache directory
    ],
)
def test_a_missing_stale_or_broken_record_is_ignored(tmp_path, text):
    record = tmp_path / "record.json"
    record.write_text(text.replace("KEY", fused_mod._KEY).replace("RECORD", str(record)))
    assert fused_mod._load_recorded(record) is None
    assert fused_mod._load_recorded(tmp_path / "missing.json") is None


def test_cache_dir_follows_inductor(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert fused_mod._cache_dir() == tmp_path
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert fused_mod._cache_dir().name.startswith("torchinductor_")


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize(
    ("shape", "modes"),
    [((40, 30, 35), [0, 1]), ((40, 30, 35), [2]), ((16, 12, 14, 13), [2, 3]),
     ((16, 12, 14, 13), [0, 1]), ((16, 12, 14, 13), [0, 1, 2])],
)  # fmt: skip
def test_fused_tree_partial_matches_einsum(kernel, shape, modes, dtype):
    x, fs = _problem(shape, 7, dtype)
    out = fused_mod.fused_tree_partial(x, fs, modes)
    assert out is not None
    letters = "abcd"[: len(shape)]
    kept = "".join(c for m, c in enumerate(letters) if m not in modes)
    expr = letters + "," + ",".join(f"{letters[m]}r" for m in modes) + f"->{kept}r"
    expected = torch.einsum(expr, to_hi(x), *(to_hi(fs[m]) for m in modes))
    assert out.shape == expected.shape
    assert_close(out, expected)


def test_fused_tree_partial_declines_what_it_cannot_do():
    x, fs = _problem((40, 30, 35), 3, F64)
    assert fused_mod.fused_tree_partial(x, fs, [1]) is None  # neither prefix nor suffix
    assert fused_mod.fused_tree_partial(x.reshape(40, 35, 30), fs, [2]) is None  # K < 32: BLAS
    assert fused_mod.fused_tree_partial(x, fs, []) is None
    assert fused_mod.fused_tree_partial(x, fs, [0, 1, 2]) is None
    assert fused_mod.fused_tree_partial(x.mT, fs, [0, 1]) is None  # non-contiguous
    assert fused_mod.fused_tree_partial(x, [fs[0], None, fs[2]], [0, 1]) is None


def test_fused_tree_partial_of_the_last_mode_is_rank_first(kernel):
    # X(IJ, K) @ C comes back as a view of a contiguous R x I x J tensor: the layout the sweep's
    # next contractions read without a copy; same values as the I x J x R result.
    x, fs = _problem((40, 30, 35), 5, F64)
    out = fused_mod.fused_tree_partial(x, fs, [2])
    assert out is not None and out.shape == (40, 30, 5)
    assert out.permute(2, 0, 1).is_contiguous()
    plain = fused_mttkrp(x.reshape(1200, 35), [None, fs[2]], 0)
    assert plain.is_contiguous()
    assert torch.equal(out.reshape(1200, 5), plain)
