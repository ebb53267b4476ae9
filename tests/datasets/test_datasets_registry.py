"""Bundled datasets (``datasets/_registry.py``): contents, provenance, loader contract."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from factorch.datasets import Dataset, list_datasets, load

DATA = resources.files("factorch.datasets").joinpath("data")

EXPECTED = {
    "covid19_serology": ((438, 6, 11), 0, "MIT"),
    "il2_response": ((13, 4, 12, 8), 192, "MIT"),
    "digits_counts": ((1797, 8, 8), 0, "CC-BY-4.0"),
}


def test_list_datasets():
    assert list_datasets() == tuple(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_dataset_contract(name):
    shape, missing, licence = EXPECTED[name]
    ds = load(name)
    assert isinstance(ds, Dataset)
    assert ds.name == name
    assert ds.shape == shape
    assert ds.tensor.dtype == torch.float64
    assert ds.n_missing == missing
    assert len(ds.mode_names) == len(shape)
    assert [len(lab) for lab in ds.labels] == list(shape)
    assert all(isinstance(s, str) for lab in ds.labels for s in lab)
    assert ds.licence == licence
    assert len(ds.licence_text) > 100
    assert ds.citation and all(len(c) > 30 for c in ds.citation)
    assert ds.description and ds.source
    assert ds.suggested_method in ("cp", "ntf")
    assert ds.suggested_rank >= 1
    if missing:
        assert ds.mask is not None and ds.mask.dtype == torch.bool
        assert torch.equal(~ds.mask, torch.isnan(ds.tensor))
    else:
        assert ds.mask is None
        assert bool(torch.isfinite(ds.tensor).all())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_files_match_recorded_hash_and_sources(name):
    blob = DATA.joinpath(f"{name}.safetensors").read_bytes()
    meta = json.loads(DATA.joinpath(f"{name}.json").read_text(encoding="utf-8"))
    assert hashlib.sha256(blob).hexdigest() == meta["sha256"]
    assert meta["shape"] == list(EXPECTED[name][0])
    sources = DATA.joinpath("SOURCES.md").read_text(encoding="utf-8")
    assert f"## {name}" in sources


def test_bundle_is_small():
    import factorch.datasets

    folder = Path(factorch.datasets.__file__).parent / "data"
    files = list(folder.iterdir())
    assert len(files) == 2 * len(EXPECTED) + 1  # tensor + metadata per dataset, SOURCES.md
    assert sum(f.stat().st_size for f in files) < 2_000_000


def test_dtype_device_and_fresh_copies():
    a = load("covid19_serology", dtype=torch.float32, device="cpu")
    assert a.tensor.dtype == torch.float32
    b = load("covid19_serology")
    torch.testing.assert_close(a.tensor, b.tensor.float(), rtol=0, atol=0)
    b.tensor[0, 0, 0] = 1e6
    assert load("covid19_serology").tensor[0, 0, 0] != 1e6


def test_digits_are_integer_counts_sorted_by_label():
    ds = load("digits_counts")
    x = ds.tensor
    assert bool((x == x.round()).all()) and x.min() == 0 and x.max() == 16
    labels = [int(s) for s in ds.labels[0]]
    assert labels == sorted(labels)


def test_matches_tensorly_copies():
    datasets = pytest.importorskip("tensorly.datasets")
    covid = datasets.load_covid19_serology()
    ds = load("covid19_serology")
    np.testing.assert_array_equal(ds.tensor.numpy(), np.asarray(covid.tensor))
    assert list(ds.labels[0]) == [str(s) for s in covid.ticks[0]]
    il2 = datasets.load_IL2data()
    ds = load("il2_response")
    np.testing.assert_array_equal(ds.tensor.numpy(), np.asarray(il2.tensor))  # NaN == NaN here
    assert list(ds.labels[0]) == list(il2.ticks[0])


def test_matches_scikit_learn_digits():
    sk = pytest.importorskip("sklearn.datasets")
    digits = sk.load_digits()
    order = np.argsort(digits.target, kind="stable")
    ds = load("digits_counts")
    np.testing.assert_array_equal(ds.tensor.numpy(), digits.images[order])
    assert [int(s) for s in ds.labels[0]] == digits.target[order].tolist()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("iris",), {}, ValueError, r"load: unknown dataset 'iris'; choose one of"),
        ((3,), {}, TypeError, r"load: name must be a str; got int"),
        (("covid19_serology",), {"dtype": torch.int64}, TypeError,
         r"load: dtype must be a floating torch.dtype"),
    ],
)  # fmt: skip
def test_load_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        load(*args, **kwargs)


def test_il2_suggests_non_negative_cp():
    """The responses are non-negative; an unconstrained rank-3 CP of them is degenerate."""
    ds = load("il2_response")
    assert (ds.suggested_method, ds.suggested_rank) == ("ntf", 3)
    assert float(ds.tensor[ds.mask].min()) >= 0
