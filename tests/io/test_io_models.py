"""The model directory of ``factorch.io`` (``save_model_files``, ``read_model_config``,
``read_model_tensors``) on its own: tensors of every supported dtype round-trip bit for bit with
the config; bad arguments and damaged files are refused with pinned messages. (The formats built
on it: ``tests/nn/test_nn_pretrained.py``, ``tests/adapters/test_adapters_files.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factorch.io import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    FileFormatError,
    read_model_config,
    read_model_tensors,
    save_model_files,
)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64]


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {f"t.{dt}": torch.randn(3, 2, generator=g).to(dt) for dt in DTYPES}
    out["mask"] = torch.tensor([True, False, True])
    out["empty"] = torch.zeros(0, 4)
    shared = torch.randn(4, 4, generator=g)
    out["view"] = shared[:, 1]  # a non-contiguous view of a larger storage
    return out


def test_io_models_round_trip(tmp_path: Path) -> None:
    tensors = _tensors()
    config = {"layers": {"0": {"rank": [2, 3]}}, "scale": 0.5, "name": "x", "none": None}
    save_model_files(tmp_path / "m", kind="demo", config=config, tensors=tensors)
    files = read_model_config(tmp_path / "m", kind=("other", "demo"))
    assert files.kind == "demo" and files.config == config
    assert files.tensors == {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    loaded = read_model_tensors(files)
    assert set(loaded) == set(tensors)
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in tensors.items())
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]


BAD_SAVES = [
    ({"kind": ""}, TypeError, "kind must be a non-empty str"),
    ({"config": {"a": float("nan")}}, TypeError, "must hold only JSON values"),
    ({"config": {"a": object()}}, TypeError, "must hold only JSON values"),
    ({"tensors": {"w": [1.0]}}, TypeError, "must map str to torch.Tensor"),
    ({"tensors": {"w": torch.ones(2, dtype=torch.complex64)}}, TypeError, "has dtype"),
]


@pytest.mark.parametrize("change,error,message", BAD_SAVES)
def test_io_models_bad_saves(change, error, message, tmp_path: Path) -> None:
    args = {"kind": "demo", "config": {}, "tensors": {"w": torch.ones(2)}, **change}
    with pytest.raises(error, match=message):
        save_model_files(tmp_path / "m", **args)
    assert not (tmp_path / "m" / CONFIG_NAME).exists()


def test_io_models_refuses_overwrite_and_a_file_as_directory(tmp_path: Path) -> None:
    save_model_files(tmp_path / "m", kind="demo", config={}, tensors={"w": torch.ones(2)})
    with pytest.raises(FileExistsError, match="already exist"):
        save_model_files(tmp_path / "m", kind="demo", config={}, tensors={"w": torch.zeros(2)})
    save_model_files(
        tmp_path / "m", kind="demo", config={}, tensors={"w": torch.zeros(2)}, force=True
    )
    assert torch.equal(read_model_tensors(read_model_config(tmp_path / "m"))["w"], torch.zeros(2))
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        save_model_files(tmp_path / "f", kind="demo", config={}, tensors={})


def _rewrite(directory: Path, edit) -> None:
    data = json.loads((directory / CONFIG_NAME).read_text())
    edit(data)
    (directory / CONFIG_NAME).write_text(json.dumps(data))


BAD_FILES = [
    ("not_object", lambda d: (d / CONFIG_NAME).write_text("[1]"), "must hold a JSON object"),
    ("keys", lambda d: _rewrite(d, lambda j: j.pop("config")), "expected the keys"),
    ("kind", lambda d: _rewrite(d, lambda j: j["factorch_model"].pop("kind")), "record the kind"),
    ("config", lambda d: _rewrite(d, lambda j: j.update(config=[1])), "'config' must be"),
    ("tensors", lambda d: _rewrite(d, lambda j: j.update(tensors=[1])), "'tensors' must be"),
    (
        "spec",
        lambda d: _rewrite(d, lambda j: j["tensors"].update(w={"shape": [2]})),
        "must be {'shape'",
    ),
    (
        "dtype",
        lambda d: _rewrite(d, lambda j: j["tensors"]["w"].update(dtype="complex64")),
        "dtype must be one of",
    ),
    (
        "shape",
        lambda d: _rewrite(d, lambda j: j["tensors"]["w"].update(shape=[-2])),
        "shape must be a list of non-negative ints",
    ),
    (
        "big",
        lambda d: (d / CONFIG_NAME).write_text(" " * (16 * 2**20 + 1)),
        "more than the",
    ),
]


@pytest.mark.parametrize("damage", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_io_models_damaged_configs(damage, tmp_path: Path) -> None:
    save_model_files(tmp_path / "m", kind="demo", config={}, tensors={"w": torch.ones(2)})
    damage[1](tmp_path / "m")
    with pytest.raises(FileFormatError, match=damage[2]):
        read_model_config(tmp_path / "m")


def test_io_models_kind_and_nan_tensors(tmp_path: Path) -> None:
    save_model_files(
        tmp_path / "m", kind="demo", config={}, tensors={"w": torch.tensor([1.0, float("nan")])}
    )
    with pytest.raises(FileFormatError, match="holds a 'demo' model; expected 'adapters'"):
        read_model_config(tmp_path / "m", kind="adapters")
    with pytest.raises(FileFormatError, match="holds NaN entries"):
        read_model_tensors(read_model_config(tmp_path / "m"))
    with pytest.raises(FileFormatError, match="max_entries"):
        read_model_tensors(read_model_config(tmp_path / "m"), max_entries=1)
