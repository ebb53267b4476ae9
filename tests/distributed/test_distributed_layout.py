"""Layouts, shards, row ownership and the coordinate reader: everything a rank computes alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import factorch.distributed as fd
from factorch.distributed._exchange import assign_owners
from factorch.distributed._io import read_coordinate_range
from factorch.io import FileFormatError
from factorch.tensors import SparseTensor


def _sparse(shape: tuple[int, ...], density: float, seed: int = 0) -> SparseTensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    return SparseTensor.from_dense(torch.where(torch.rand(shape, generator=g) < density, x, 0.0))


# --- ShardLayout -----------------------------------------------------------------------------
def test_even_layout_blocks_tile_the_tensor() -> None:
    lay = fd.ShardLayout.even((7, 5, 3), (3, 2, 1))
    assert lay.world_size == 6
    assert lay.bounds == ((0, 3, 5, 7), (0, 3, 5), (0, 3))
    covered = torch.zeros(7, 5, 3, dtype=torch.int64)
    for r in range(6):
        assert lay.rank_of(lay.coords(r)) == r
        idx = tuple(slice(s, e) for s, e in lay.block(r))
        covered[idx] += 1
    assert bool((covered == 1).all())
    assert lay.layer(0, 1) == (2, 3)  # row-major: the last grid coordinate varies fastest
    assert [len(layer) for layer in lay.layers(1)] == [3, 3]


def test_balanced_layout_balances_nonzeros_per_layer() -> None:
    # Heavily skewed slices: counts proportional to the slice index.
    counts = torch.arange(1, 101, dtype=torch.int64)
    lay = fd.ShardLayout.balanced((100, 4), (4, 1), [counts, torch.full((4,), 1262)])
    sums = [int(counts[b:e].sum()) for b, e in zip(lay.bounds[0], lay.bounds[0][1:])]
    assert max(sums) / (sum(sums) / 4) < 1.05  # even chunks would hold 1.8x the mean


def test_balanced_layout_with_a_huge_slice_leaves_chunks_empty() -> None:
    counts = torch.tensor([0, 50, 0])
    lay = fd.ShardLayout.balanced((3,), (3,), [counts])
    assert lay.bounds == ((0, 2, 2, 3),)
    assert lay.block_shape(1) == (0,)


def test_locate_and_block_counts_agree_with_blocks() -> None:
    sp = _sparse((9, 8, 7), 0.4)
    lay = fd.ShardLayout.for_sparse(sp.shape, [sp.counts(n) for n in range(3)], 4)
    ranks = lay.locate(sp.indices)
    for r in range(4):
        mine = sp.indices[:, ranks == r]
        for n, (s, e) in enumerate(lay.block(r)):
            assert bool(((mine[n] >= s) & (mine[n] < e)).all())
    assert int(lay.block_counts(sp.indices).sum()) == sp.nnz


def test_choose_grid_gives_primes_to_the_longest_chunks() -> None:
    assert fd.choose_grid((1000, 10, 800), 4) == (2, 1, 2)
    assert fd.choose_grid((5, 5), 6) == (3, 2)
    assert fd.choose_grid((2, 3), 1) == (1, 1)
    assert math.prod(fd.choose_grid((100, 50, 20, 10), 12)) == 12


def test_fingerprint_tells_layouts_apart() -> None:
    a = fd.ShardLayout.even((10, 4), (2, 1))
    assert a.fingerprint == fd.ShardLayout.even((10, 4), (2, 1)).fingerprint
    assert a.fingerprint != fd.ShardLayout.even((10, 4), (1, 2)).fingerprint
    assert a.fingerprint != fd.ShardLayout.even((10, 5), (2, 1)).fingerprint


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: fd.ShardLayout((4, 0), (1, 1), ((0, 4), (0, 0))), ValueError, "shape must be"),
        (lambda: fd.ShardLayout((4,), (2,), ((0, 3, 2, 4),)), ValueError, r"bounds\[0\] must be"),
        (lambda: fd.ShardLayout((4,), (2, 1), ((0, 4),)), ValueError, "grid must hold one"),
        (lambda: fd.ShardLayout.even((4, 3), (2,)), ValueError, "ShardLayout.even: grid must"),
        (lambda: fd.ShardLayout.even((4, 3), (0, 1)), ValueError, "grid entry must be"),
        (lambda: fd.ShardLayout.even("ab", (1, 1)), TypeError, "shape must be a non-empty"),
        (
            lambda: fd.ShardLayout.balanced((4,), (2,), [torch.ones(3, dtype=torch.int64)]),
            ValueError,
            "counts must be one integer",
        ),
        (
            lambda: fd.ShardLayout.for_dense((4, 4), 3, grid=(2, 1)),
            ValueError,
            "has 2 blocks but the job has 3",
        ),
        (lambda: fd.choose_grid((4, 4), 0), ValueError, "choose_grid: world_size must be"),
        (
            lambda: fd.ShardLayout.even((4,), (2,)).coords(2),
            IndexError,
            r"rank must be in \[0, 1\]",
        ),
    ],
)
def test_layout_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- shards ----------------------------------------------------------------------------------
def test_dense_shard_from_full_is_the_block() -> None:
    x = torch.arange(60.0, dtype=torch.float64).reshape(5, 4, 3)
    lay = fd.ShardLayout.even(x.shape, (2, 2, 1))
    for r in range(4):
        sh = fd.DenseShard.from_full(x, lay, r)
        (a, b), (c, d), _ = lay.block(r)
        assert torch.equal(sh.local, x[a:b, c:d])
    empty = fd.DenseShard.from_full(
        torch.ones(1, 3, dtype=torch.float32), fd.ShardLayout.even((1, 3), (2, 1)), 1
    )
    assert empty.local.shape == (0, 3)


def test_sparse_shard_round_trips_the_tensor() -> None:
    sp = _sparse((6, 5, 4), 0.5)
    lay = fd.ShardLayout.for_sparse(sp.shape, [sp.counts(n) for n in range(3)], 3)
    parts = [fd.SparseShard.from_full(sp, lay, r) for r in range(3)]
    assert sum(p.nnz for p in parts) == sp.nnz
    assert all(p.indices.dtype == torch.int32 for p in parts)
    back = SparseTensor.from_coo(
        torch.cat([p.global_indices() for p in parts], 1),
        torch.cat([p.values for p in parts]),
        sp.shape,
    )
    assert torch.equal(back.indices.long(), sp.indices.long())
    assert torch.equal(back.values, sp.values)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: fd.DenseShard(torch.ones(3, 3), fd.ShardLayout.even((4, 3), (2, 1)), 0),
            ValueError,
            r"block under this layout has shape \(2, 3\)",
        ),
        (
            lambda: fd.DenseShard(torch.ones(2, 3), fd.ShardLayout.even((4, 3), (2, 1)), 2),
            ValueError,
            r"rank must be in \[0, 1\]",
        ),
        (
            lambda: fd.DenseShard(torch.ones(2, 3), "layout", 0),
            TypeError,
            "layout must be a ShardLayout",
        ),
        (
            lambda: fd.DenseShard.from_full(
                torch.ones(4, 3, dtype=torch.int64), fd.ShardLayout.even((4, 3), (2, 1)), 0
            ),
            TypeError,
            "DenseShard.from_full: tensor must be a real floating",
        ),
        (
            lambda: fd.DenseShard.from_full(
                torch.full((4, 3), math.nan), fd.ShardLayout.even((4, 3), (2, 1)), 0
            ),
            ValueError,
            "DenseShard.from_full: tensor contains NaN",
        ),
        (
            lambda: fd.SparseShard(
                torch.tensor([[2], [0]]), torch.ones(1), fd.ShardLayout.even((4, 3), (2, 1)), 0
            ),
            IndexError,
            "coordinates must lie in rank 0's block",
        ),
        (
            lambda: fd.SparseShard(
                torch.ones(2, 1), torch.ones(1), fd.ShardLayout.even((4, 3), (2, 1)), 0
            ),
            TypeError,
            "indices must be an integer tensor",
        ),
        (
            lambda: fd.SparseShard.from_full(
                torch.ones(4, 3), fd.ShardLayout.even((4, 3), (2, 1)), 0
            ),
            TypeError,
            "SparseShard.from_full: tensor must be a SparseTensor",
        ),
    ],
)
def test_shard_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- row ownership ---------------------------------------------------------------------------
def test_owners_keep_private_rows_and_spread_shared_ones() -> None:
    touched = torch.tensor(
        [
            [1, 1, 0, 1, 1, 0, 0, 1],
            [0, 1, 1, 1, 1, 0, 1, 1],
            [0, 0, 0, 1, 1, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    owner = assign_owners(touched)
    for i in range(8):
        touching = touched[:, i].nonzero().squeeze(1).tolist()
        if touching:
            assert int(owner[i]) in touching  # a row is owned by a rank that touches it
        if len(touching) == 1:
            assert int(owner[i]) == touching[0]
    # Rows touched by all three go to different members in turn.
    assert len({int(owner[3]), int(owner[4])}) == 2
    assert int(owner[5]) in range(3)  # untouched rows still get an owner


# --- coordinate byte ranges ------------------------------------------------------------------
def _write_tns(path: Path, sp: SparseTensor) -> None:
    with path.open("w") as f:
        f.write("# FROSTT-style, 1-based\n")
        for p in range(sp.nnz):
            i = [int(c) + 1 for c in sp.indices[:, p]]
            f.write(" ".join(map(str, i)) + f" {float(sp.values[p])!r}\n")


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_byte_ranges_partition_the_lines(tmp_path: Path, parts: int) -> None:
    sp = _sparse((7, 6, 5), 0.3, seed=3)
    path = tmp_path / "t.tns"
    _write_tns(path, sp)
    size = path.stat().st_size
    idx, vals = [], []
    for k in range(parts):
        i, v = read_coordinate_range(
            path, size * k // parts, size * (k + 1) // parts, base=1, max_entries=10**6
        )
        if v.numel():
            idx.append(i)
            vals.append(v)
    got = SparseTensor.from_coo(torch.cat(idx, 1), torch.cat(vals), sp.shape)
    assert torch.equal(got.indices.long(), sp.indices.long())
    assert torch.equal(got.values, sp.values)  # repr round-trips float64 exactly


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 2 3 1.0\n1 2 0.5\n", "expected 4 fields per line"),
        ("1 2 3 1.0\n1 x 3 0.5\n", "expected numbers"),
        ("1 2 3 1.0\n0 2 3 0.5\n", "indices must be 1-based"),
        ("1 2 3 1.0\n1 2 3 nan\n", "values must be finite"),
        ("1 2 3 1.0\n1.5 2 3 1\n", "indices must be 1-based"),
        ("7\n", "needs indices and a value"),
    ],
)
def test_coordinate_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.tns"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=match):
        read_coordinate_range(path, 0, path.stat().st_size, base=1, max_entries=100)


def test_coordinate_entry_guard(tmp_path: Path) -> None:
    path = tmp_path / "big.tns"
    path.write_text("".join(f"{i + 1} 1 1.0\n" for i in range(20)))
    with pytest.raises(FileFormatError, match="more than 10 entries"):
        read_coordinate_range(path, 0, path.stat().st_size, base=1, max_entries=10)


# --- checkpoints -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"path": 3}, TypeError, "path must be a str"),
        ({"path": "c.safetensors", "every": 0}, ValueError, "every must be"),
        ({"path": "c.safetensors", "resume": "yes"}, TypeError, "resume must be a bool"),
    ],
)
def test_checkpoint_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        fd.Checkpoint(**kwargs)


def test_entry_points_need_an_initialized_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    x = torch.ones(2, 2, dtype=torch.float64)
    shard = fd.DenseShard.from_full(x, fd.ShardLayout.even((2, 2), (1, 1)), 0)
    with pytest.raises(RuntimeError, match="distributed.cp: torch.distributed is not initialized"):
        fd.cp(shard, 1)


def test_init_without_launcher_environment(monkeypatch) -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="environment variables RANK, WORLD_SIZE"):
        fd.init()
