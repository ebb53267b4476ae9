"""Factorized tensors in safetensors files (``factorch.io._factors``)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save

from factorch.io import (
    FileFormatError,
    factorized_from_bytes,
    factorized_to_bytes,
    load_factorized,
    save_factorized,
)
from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker


def _models(dtype: torch.dtype):
    g = torch.Generator().manual_seed(1)
    return [
        random_cp((3, 4, 5), 2, generator=g, dtype=dtype),
        random_tucker((3, 4, 5), (2, 3, 2), generator=g, dtype=dtype),
        random_tt((3, 4, 5), 2, generator=g, dtype=dtype),
        random_tr((3, 4, 5), 2, generator=g, dtype=dtype),
        random_tt_matrix((2, 3), (3, 2), 2, generator=g, dtype=dtype),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_factorized_round_trip(tmp_path, dtype):
    for k, model in enumerate(_models(dtype)):
        path = tmp_path / f"m{k}.safetensors"
        save_factorized(model, path, metadata={"note": "hi"})
        back = load_factorized(path)
        assert type(back) is type(model)
        assert back.dtype == dtype
        torch.testing.assert_close(back.to_dense(), model.to_dense(), rtol=0, atol=0)
        header_len = int.from_bytes(path.read_bytes()[:8], "little")
        meta = json.loads(path.read_bytes()[8 : 8 + header_len])["__metadata__"]
        assert meta["factorch.type"] == type(model).__name__
        assert meta["note"] == "hi"
    with pytest.raises(FileExistsError, match="already exists"):
        save_factorized(_models(dtype)[0], tmp_path / "m0.safetensors")


def test_factorized_layout_names():
    cp = _models(torch.float64)[0]
    from safetensors.torch import load

    named = load(factorized_to_bytes(cp))
    assert sorted(named) == ["factors.0", "factors.1", "factors.2", "weights"]


def test_to_bytes_refuses_non_factorized():
    with pytest.raises(TypeError, match=r"must be a CPTensor, TuckerTensor, .*; got Tensor"):
        factorized_to_bytes(torch.zeros(2))


def test_to_bytes_refuses_non_string_metadata():
    with pytest.raises(TypeError, match=r"metadata must map str to str"):
        factorized_to_bytes(_models(torch.float64)[0], metadata={"a": 1})  # type: ignore[dict-item]


BAD_FILES = [
    (save({"weights": torch.ones(2)}), r"no 'factorch.type' in the safetensors metadata"),
    (
        save({"weights": torch.ones(2)}, metadata={"factorch.type": "CPTensor"}),
        r"no 'factors.0' tensor for a CPTensor",
    ),
    (
        save(
            {"weights": torch.ones(2), "factors.0": torch.ones(3, 3)},
            metadata={"factorch.type": "CPTensor"},
        ),
        r"inconsistent CPTensor",
    ),
    (
        save({"w": torch.ones(2)}, metadata={"factorch.type": "Mystery"}),
        r"unknown factorch.type 'Mystery'",
    ),
    (b"not a safetensors file at all", r"data is not a safetensors file"),
]


@pytest.mark.parametrize(("data", "match"), BAD_FILES, ids=[f"bad{i}" for i in range(5)])
def test_from_bytes_refuses_bad_content(data, match):
    with pytest.raises(FileFormatError, match=match):
        factorized_from_bytes(data)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file"):
        load_factorized(tmp_path / "none.safetensors")
