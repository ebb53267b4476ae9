"""ContinuousData: constructors, splits, standardisation from training data only, binning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _functional_helpers import F64, gen

from factorch.completion.functional import ContinuousData, Standardization


def _data(n=40, k=2, seed=0):
    g = gen(seed)
    return ContinuousData(torch.rand(n, k, generator=g, dtype=F64), torch.randn(n, generator=g))


def test_from_table_dict_and_structured_array():
    table = {"lat": [1.0, 2.0, 3.0], "lon": np.array([4, 5, 6]), "y": [0.5, float("nan"), 1.5]}
    data = ContinuousData.from_table(table, ["lat", "lon"], "y", units=["deg", None], dropna=True)
    assert data.names == ("lat", "lon") and data.units == ("deg", None)
    assert data.value_name == "y" and len(data) == 2
    assert data.coords.dtype == F64 and data.values.dtype == F64
    torch.testing.assert_close(data.coords[:, 1], torch.tensor([4.0, 6.0], dtype=F64))
    rec = np.array([(0.1, 2.0), (0.2, 3.0)], dtype=[("t", "f8"), ("v", "f4")])
    assert len(ContinuousData.from_table(rec, ["t"], "v", dtype=torch.float32)) == 2


def test_from_grid_with_mask_places_coordinates():
    t, x = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([10.0, 20.0])
    grid = torch.arange(6.0).reshape(3, 2)
    grid[1, 0] = float("nan")
    data = ContinuousData.from_grid(grid, [t, x], mask=~torch.isnan(grid), names=["t", "x"])
    assert len(data) == 5
    for (ti, xi), v in zip(data.coords.tolist(), data.values.tolist()):
        assert grid[[0.0, 0.5, 1.0].index(ti), [10.0, 20.0].index(xi)] == v


def test_split_is_a_random_partition():
    data = _data(101)
    parts = data.split((0.7, 0.1, 0.2), generator=gen(3))
    assert [len(p) for p in parts] == [70, 10, 21]
    rows = torch.cat([p.coords for p in parts])
    assert torch.equal(torch.sort(rows[:, 0]).values, torch.sort(data.coords[:, 0]).values)
    again = data.split((0.7, 0.1, 0.2), generator=gen(3))
    assert torch.equal(again[0].values, parts[0].values)


def test_standardization_uses_training_statistics_only():
    g = gen(1)
    train = ContinuousData(
        torch.rand(50, 2, generator=g, dtype=F64) * 10, 5 + 2 * torch.randn(50, generator=g)
    )
    test = ContinuousData(
        torch.rand(20, 2, generator=g, dtype=F64) * 10, 100 + torch.randn(20, generator=g)
    )
    stats = Standardization.fit(train)
    z_train, z_test = stats.apply(train), stats.apply(test)
    assert float(z_train.values.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(z_train.values.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)
    # the test part is mapped with the training statistics: its mean stays far from zero
    assert float(z_test.values.mean()) > 20
    assert float(z_train.coords.min()) == 0.0 and float(z_train.coords.max()) == 1.0
    back = stats.values_from_standard(z_test.values.double())
    torch.testing.assert_close(back, test.values.double())
    same = Standardization.fit(train, coords=False).apply(train)
    assert torch.equal(same.coords, train.coords)


def test_binning_averages_cells():
    data = ContinuousData(
        torch.tensor([[0.0], [0.1], [0.9], [1.0]], dtype=F64),
        torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=F64),
    )
    edges = data.bin_edges(2)
    sp, idx = data.to_grid(edges)
    assert idx[:, 0].tolist() == [0, 0, 1, 1]
    assert sp.shape == (2,) and sp.values.tolist() == [2.0, 6.0]


def test_numpy_inputs_and_float32_values():
    data = ContinuousData(np.random.default_rng(0).random((5, 3)), np.ones(5, dtype=np.float32))
    assert data.coords.dtype == F64 and data.dtype == torch.float32 and data.ndim == 3
    assert "5 entries" in repr(data)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: ContinuousData([[0.0], [float("nan")]], [1.0, 2.0]),
            ValueError,
            r"ContinuousData: coords contain 1 NaN or infinite entries \(first in entry 1, mode",
        ),
        (
            lambda: ContinuousData([[0.0], [1.0]], [1.0, float("nan")]),
            ValueError,
            "values contain 1 NaN or infinite entries; drop the unobserved entries",
        ),
        (
            lambda: ContinuousData([[0.0], [1.0]], [1, 2]),
            TypeError,
            "values must have a floating dtype; got torch.int64",
        ),
        (
            lambda: ContinuousData([[0.0], [1.0]], [1.0]),
            ValueError,
            "coords and values must have the same number of entries; got 2 and 1",
        ),
        (
            lambda: ContinuousData([[0.0], [1.0]], [1.0, 2.0], names=("a", "b")),
            ValueError,
            r"names must have one entry per mode \(1\); got 2",
        ),
        (lambda: ContinuousData("x", [1.0]), TypeError, "coords must be a torch.Tensor"),
        (
            lambda: ContinuousData.from_table({"a": [1.0]}, ["b"], "a"),
            ValueError,
            "the table has no column 'b'; it has 'a'",
        ),
        (
            lambda: ContinuousData.from_table({"a": [1.0]}, "a", "a"),
            TypeError,
            "coords must be a sequence of column names",
        ),
        (
            lambda: ContinuousData.from_table({"a": [1.0, 2.0], "y": [1.0]}, ["a"], "y"),
            ValueError,
            "column 'a' has 2 rows but 'y' has 1",
        ),
        (
            lambda: ContinuousData.from_grid(torch.ones(2, 3), [torch.ones(2)]),
            ValueError,
            r"coords must hold one vector per mode \(2\); got 1",
        ),
        (
            lambda: ContinuousData.from_grid(torch.ones(2, 3), [torch.ones(2), torch.ones(2)]),
            ValueError,
            r"coords\[1\] must have 3 entries",
        ),
        (
            lambda: ContinuousData.from_grid(torch.tensor([1.0, float("nan")]), [torch.ones(2)]),
            ValueError,
            r"pass mask=~torch.isnan\(tensor\)",
        ),
        (
            lambda: _data().split((0.5, 0.6)),
            ValueError,
            "fractions must be at least two positive numbers summing to 1",
        ),
        (
            lambda: _data().split((0.5, 0.5), generator=3),
            TypeError,
            "generator must be a torch.Generator or None; got int",
        ),
        (lambda: Standardization.fit("x"), TypeError, "train must be a ContinuousData"),
        (
            lambda: Standardization.fit(_data(k=2)).apply(_data(k=3)),
            ValueError,
            "data has 3 modes; these statistics have 2",
        ),
    ],
)
def test_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()
