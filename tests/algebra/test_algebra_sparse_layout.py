"""SparseLayout: the mode-sorted index structure the solver owns (sorted rows, row pointers, the
permutation back to the original order, no copies for an already sorted mode), its checks, and
that a SparseTensor caches nothing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from factorch.algebra import ModeLayout, SparseCoordinates, SparseLayout
from factorch.tensors import SparseTensor

F64 = torch.float64


def _sparse(shape=(6, 5, 4), density=0.5, seed=7):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(shape, generator=gen, dtype=F64)
    dense = dense * (torch.rand(shape, generator=gen, dtype=F64) < density)
    return SparseTensor.from_dense(dense)


def test_every_mode_is_sorted_with_row_pointers_and_a_permutation():
    sp = _sparse()
    layout = SparseLayout.build(sp)
    assert isinstance(sp, SparseCoordinates)
    assert layout.shape == sp.shape and layout.nnz == sp.nnz and layout.ndim == 3
    assert tuple(layout.layouts) == (0, 1, 2)
    for mode in range(3):
        lay = layout.mode(mode)
        assert isinstance(lay, ModeLayout) and lay.mode == mode
        assert bool((lay.rows[1:] >= lay.rows[:-1]).all())
        counts = torch.bincount(sp.indices[mode].long(), minlength=sp.shape[mode])
        assert torch.equal(lay.offsets.diff(), counts)
        assert int(lay.offsets[-1]) == sp.nnz
        perm = torch.arange(sp.nnz) if lay.perm is None else lay.perm
        assert torch.equal(lay.values, sp.values[perm])
        assert torch.equal(lay.rows, sp.indices[mode][perm])
        others = [m for m in range(3) if m != mode]
        for col, m in zip(lay.others, others):
            assert torch.equal(col, sp.indices[m][perm])
        # stable: within a row the original (lexicographic) order is kept
        for i in range(sp.shape[mode]):
            seg = perm[lay.offsets[i] : lay.offsets[i + 1]]
            assert bool((seg[1:] > seg[:-1]).all())
        assert torch.equal(lay.permute(sp.values), lay.values)


def test_an_already_sorted_mode_costs_no_copy():
    sp = _sparse()
    lay = SparseLayout.build(sp, modes=[0]).mode(0)
    assert lay.perm is None
    assert lay.rows.data_ptr() == sp.indices[0].data_ptr()
    assert lay.values is sp.values


def test_negative_modes_and_subsets():
    sp = _sparse()
    layout = SparseLayout.build(sp, modes=[-1, 2])
    assert tuple(layout.layouts) == (2,)
    assert layout.mode(-1) is layout.mode(2)


def test_layout_and_tensor_are_immutable_and_the_tensor_caches_nothing():
    sp = _sparse()
    layout = SparseLayout.build(sp)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.shape = (1,)  # type: ignore[misc]
    with pytest.raises(TypeError):
        layout.layouts[0] = layout.mode(1)  # type: ignore[index]
    assert {f.name for f in dataclasses.fields(sp)} == {"indices", "values", "shape"}
    assert not hasattr(sp, "_cache")


def test_clear_cache_is_a_deprecated_no_op():
    sp = _sparse()
    with pytest.warns(DeprecationWarning, match=r"SparseTensor.clear_cache is deprecated"):
        sp.clear_cache()


def test_empty_and_single_entry_tensors():
    empty = SparseTensor(torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0, dtype=F64), (3, 2))
    lay = SparseLayout.build(empty).mode(1)
    assert lay.perm is None and lay.offsets.tolist() == [0, 0, 0]
    one = SparseTensor(torch.tensor([[2], [1]]), torch.tensor([5.0], dtype=F64), (3, 2))
    assert SparseLayout.build(one).mode(0).offsets.tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda sp: SparseLayout.build(sp.to_dense()),
            TypeError,
            r"SparseLayout.build: tensor must be a factorch.tensors.SparseTensor .*got a dense",
        ),
        (
            lambda sp: SparseLayout.build(sp, modes=[3]),
            IndexError,
            r"SparseLayout.build: mode must be in \[-3, 2\] for a 3-way tensor; got 3",
        ),
        (
            lambda sp: SparseLayout.build(sp, modes=[0]).mode(1),
            ValueError,
            r"SparseLayout.mode: this layout was built for modes \(0,\), not mode 1",
        ),
    ],
)
def test_layout_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(_sparse())


def test_any_coordinate_object_is_accepted():
    sp = _sparse()

    @dataclasses.dataclass(frozen=True)
    class Coords:
        indices: torch.Tensor
        values: torch.Tensor
        shape: tuple[int, ...]

    coords = Coords(sp.indices, sp.values, sp.shape)
    layout = SparseLayout.build(coords)
    assert torch.equal(layout.mode(2).values, SparseLayout.build(sp).mode(2).values)


@dataclasses.dataclass(frozen=True)
class _Coords:
    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]


def _dense_reference(indices, values, shape, factors, mode):
    """Float64 MTTKRP of the densified coordinates (duplicates summed), slowly and obviously."""
    dense = torch.zeros(shape, dtype=F64)
    dense.index_put_(tuple(indices.long()), values.double(), accumulate=True)
    others = [m for m in range(len(shape)) if m != mode]
    letters = "abcd"[: len(shape)]
    spec = ",".join(f"{letters[m]}r" for m in others)
    wide = [factors[m].double() for m in others]
    return torch.einsum(f"{letters},{spec}->{letters[mode]}r", dense, *wide)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_layout_mttkrp_equals_the_float64_reference_with_empty_slices_duplicates_and_a_unit_mode(
    dtype,
):
    from factorch.algebra import sparse_mttkrp

    # mode 1 has one index; mode 0 uses only even rows (empty slices); mode 2 is larger than the
    # int16 key limit (an int32 key) with most slices empty; coordinates repeat and are unsorted
    gen = torch.Generator().manual_seed(11)
    shape, nnz, rank = (9, 1, 2**15 + 7), 600, 3
    idx = torch.stack(
        [
            2 * torch.randint(0, 5, (nnz,), generator=gen),
            torch.zeros(nnz, dtype=torch.int64),
            torch.randint(0, 40, (nnz,), generator=gen) * 800,
        ]
    )
    idx[:, 300:] = idx[:, :300]  # every coordinate twice
    values = torch.randn(nnz, generator=gen, dtype=F64).to(dtype)
    coords = _Coords(idx.to(torch.int32), values, shape)
    factors = [torch.randn(s, rank, generator=gen, dtype=F64).to(dtype) for s in shape]
    layout = SparseLayout.build(coords)
    tol = {torch.float32: 1e-5, F64: 1e-12}[dtype]
    for mode in range(3):
        lay = layout.mode(mode)
        assert lay.perm is None or lay.perm.dtype == torch.int32
        assert int(lay.offsets[-1]) == nnz and bool((lay.offsets.diff() >= 0).all())
        got = sparse_mttkrp(coords, factors, mode, layout=layout)
        ref = _dense_reference(idx, values, shape, factors, mode)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol)
    assert layout.mode(1).perm is None  # one index: already sorted, no copy


def test_a_column_sorted_only_at_its_start_is_sorted():
    # the cheap probe of the first entries passes; the full check must still catch the tail
    col = torch.arange(5000, dtype=torch.int32) // 2
    col[-1] = 0
    values = torch.arange(5000, dtype=F64)
    lay = ModeLayout.build(col[None], values, 2500, 0)
    assert lay.perm is not None and bool((lay.rows[1:] >= lay.rows[:-1]).all())
    assert lay.values[:3].tolist() == [0.0, 1.0, 4999.0]  # stable: the moved entry after row 0's


@pytest.mark.parametrize(("bad", "match"), [(-1, r"got values in \[-1, 3\]"), (4, r"\[0, 4\]")])
@pytest.mark.parametrize("sorted_col", [True, False])
def test_indices_outside_the_mode_are_refused(bad, match, sorted_col):
    col = torch.tensor([0, 1, 2, 3]) if sorted_col else torch.tensor([3, 1, 2, 0])
    col[0 if (bad < 0) == sorted_col else -1] = bad
    coords = _Coords(torch.stack([col, torch.zeros(4, dtype=torch.int64)]), torch.ones(4), (4, 1))
    pinned = r"SparseLayout.build: mode-0 indices must lie in \[0, 4\)"
    with pytest.raises(ValueError, match=pinned):
        SparseLayout.build(coords, modes=[0])
    with pytest.raises(ValueError, match=match):
        SparseLayout.build(coords, modes=[0])
