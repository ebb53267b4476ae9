"""Fuzz of factorch.distributed's entry points that one process can drive (issue 9): the shard
constructor, CP-ALS, CP completion and HOSVD on a one-rank gloo group (their multi-rank
behaviour is tested in tests/distributed), and layout construction from arbitrary shapes, grids
and counts. Each call ends in a clear error naming the function, or in a finite result in the
input's dtype whose reported error is the true error of the returned model."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import _harness
import pytest
import torch
import torch.distributed as dist
from _harness import (
    BAD_KINDS,
    CLEAR_ERRORS,
    EXTREME_KINDS,
    Case,
    Entry,
    assert_clear_or_true,
    assert_finite_result,
    fuzz_cases,
    relative_error64,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import factorch.distributed as fd
from factorch.tensors import SparseTensor

_RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank", "numpy_rank")
_DATA_KINDS = tuple(k for k in BAD_KINDS + EXTREME_KINDS if k not in _RANK_KINDS)
# The solvers get a valid shard (the shard constructor is fuzzed for bad data): rank classes and
# the numeric extremes.
_SOLVER_KINDS = _RANK_KINDS + tuple(k for k in EXTREME_KINDS if k != "numpy_rank")


@pytest.fixture(autouse=True, scope="module")
def _one_rank_and_contiguous_cases() -> Iterator[None]:
    """A one-rank gloo group for the module; the harness's planted tensor drawn contiguous (its
    ``nan``/``inf`` classes write through ``view(-1)``)."""
    owned = not dist.is_initialized()
    if owned:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    draw = _harness._low_rank
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_harness, "_low_rank", lambda *args: draw(*args).contiguous())
            yield
    finally:
        if owned:
            dist.destroy_process_group()


def _layout_for(x: Any) -> fd.ShardLayout:
    shape = tuple(int(s) for s in getattr(x, "shape", ())) or (1,)
    shape = tuple(max(s, 1) for s in shape)
    return fd.ShardLayout.even(shape, (1,) * len(shape))


def _shard(x: Any) -> fd.DenseShard:
    return fd.DenseShard.from_full(x, _layout_for(x), 0)


def _tol(case: Case) -> float:
    working = torch.float64 if case.dtype == torch.float64 else torch.float32
    return 64 * torch.finfo(working).eps


def _check_shard(case: Case, shard: fd.DenseShard) -> None:
    assert isinstance(shard, fd.DenseShard)
    x = torch.as_tensor(case.tensor) if not isinstance(case.tensor, torch.Tensor) else case.tensor
    assert shard.local.dtype == x.dtype and torch.equal(shard.local, x.detach())
    assert not shard.local.requires_grad


def _check_error(case: Case, reported: float, dense: torch.Tensor) -> None:
    true = relative_error64(case.tensor, dense)
    assert math.isfinite(reported), f"{case!r}: reported error {reported}"
    assert abs(reported - true) <= _tol(case) + 1e-5 * true, f"{case!r}: {reported} vs {true}"


def _check_cp(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    _check_error(case, res.error, res.model.to(dtype=torch.float64).to_dense())


def _check_hosvd(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    _check_error(case, res.error, res.model.to(dtype=torch.float64).to_dense())


def _check_cp_als(case: Case, res: Any) -> None:
    assert_finite_result(case, res)
    assert all(math.isfinite(v) for v in res.train_rmse), f"{case!r}: {res.train_rmse}"


def _observed(x: Any) -> fd.SparseShard:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    sp = SparseTensor.from_dense(t.detach())
    return fd.SparseShard.from_full(sp, _layout_for(t), 0)


ENTRIES = [
    Entry(
        "DenseShard.from_full", lambda t, r: _shard(t), _check_shard, min_ndim=1, kinds=_DATA_KINDS
    ),
    Entry(
        "distributed.cp",
        lambda t, r: fd.cp(_shard(t), r, max_iter=8, generator=torch.Generator().manual_seed(0)),
        _check_cp,
        kinds=_SOLVER_KINDS,
    ),
    Entry(
        "distributed.cp",  # nonnegative=True
        lambda t, r: fd.cp(
            _shard(t), r, nonnegative=True, max_iter=8, generator=torch.Generator().manual_seed(0)
        ),
        _check_cp,
        kinds=_SOLVER_KINDS,
    ),
    Entry(
        "distributed.cp_als",
        lambda t, r: fd.cp_als(
            _observed(t), r, max_iter=4, l2=1e-3, generator=torch.Generator().manual_seed(0)
        ),
        _check_cp_als,
        kinds=_SOLVER_KINDS,
    ),
    Entry(
        "distributed.hosvd",
        lambda t, r: fd.hosvd(_shard(t), r),
        _check_hosvd,
        kinds=_SOLVER_KINDS,
    ),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fuzz_distributed(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(fuzz_cases(entry))
    assert_clear_or_true(entry, case)


_SIZES = st.one_of(st.integers(-2, 12), st.sampled_from([True, 2.5, "3", None]))


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(_SIZES, min_size=0, max_size=4),
    grid=st.lists(_SIZES, min_size=0, max_size=4),
    seed=st.integers(0, 2**16),
    balanced=st.booleans(),
)
def test_fuzz_layouts(shape: list[Any], grid: list[Any], seed: int, balanced: bool) -> None:
    """Any shape and grid: a clear ``ShardLayout`` error, or a layout whose blocks tile the
    tensor exactly once and whose balanced chunks never hold more than needed."""
    name = "ShardLayout.balanced" if balanced else "ShardLayout.even"
    try:
        if balanced:
            g = torch.Generator().manual_seed(seed)
            ok = all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
            counts = [torch.randint(0, 5, (s,), generator=g) for s in shape] if ok else []
            layout = fd.ShardLayout.balanced(shape, grid, counts)
        else:
            layout = fd.ShardLayout.even(shape, grid)
    except CLEAR_ERRORS as err:
        assert str(err).startswith(f"{name}:"), str(err)
        return
    cover = torch.zeros(layout.shape, dtype=torch.int64)
    for r in range(layout.world_size):
        assert layout.rank_of(layout.coords(r)) == r
        cover[tuple(slice(s, e) for s, e in layout.block(r))] += 1
    assert bool((cover == 1).all())
    if balanced:
        for n, (b, p) in enumerate(zip(layout.bounds, layout.grid)):
            c = counts[n]
            total, heaviest = int(c.sum()), int(c.max()) if c.numel() else 0
            for k in range(p):
                # a chunk exceeds its share by at most one slice
                assert int(c[b[k] : b[k + 1]].sum()) <= math.ceil(total / p) + heaviest


_SECONDS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**12),
    st.sampled_from([True, None, "1", 1j, torch.tensor(0.1), 5e-324, 0.999, 3600.0, 10**400]),
)


@settings(max_examples=120, deadline=None)
@given(alpha=_SECONDS, bandwidth=_SECONDS, nbytes=st.integers(0, 2**40), size=st.integers(1, 64))
def test_fuzz_inject_latency(alpha: Any, bandwidth: Any, nbytes: int, size: int) -> None:
    """Any alpha and bandwidth: a clear ``distributed.inject_latency`` error at the call, or a
    hook whose delay per collective is ``alpha + nbytes / bandwidth`` (finite, >= 0: none for a
    single-rank group), switched off again on exit."""
    from factorch.distributed import _latency

    try:
        hook = fd.inject_latency(alpha, bandwidth=bandwidth)
    except CLEAR_ERRORS as err:
        assert str(err).startswith("distributed.inject_latency:"), str(err)
        return
    slept: list[float] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_latency, "_sleep", slept.append)
        with hook:
            got = _latency.pause(nbytes, size)
        assert _latency.pause(nbytes, size) == 0.0
    want = 0.0 if size == 1 else float(alpha) + nbytes / float(bandwidth)
    assert math.isfinite(got) and got >= 0
    assert got == pytest.approx(want)
    assert slept == ([got] if got > 0 else [])
