"""Adapters as files (``factorch.adapters.save_pretrained`` / ``from_pretrained`` on
``factorch.io``'s model directory, which also reads compressed models): files are untrusted
input (each refusal pinned); writes never overwrite without ``force`` and leave no temporary
files; a failed load changes nothing. Compressed models: ``tests/nn/test_nn_pretrained.py``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from _adapters_cases import mlp, mlp_input, perturb
from _adapters_digits import digits, digits_cnn
from safetensors.torch import load_file, save_file
from torch import nn

import factorch.adapters as fa
import factorch.nn as fnn
from factorch.io import CONFIG_NAME, WEIGHTS_NAME, FileFormatError

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def compressed() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    small, _ = fnn.compress(
        digits_cnn().eval(), layer_ranks={"0": 4, "6": (1, 4, 1)}, format={"0": "cp", "6": "tt"}
    )
    return small, digits(0)[2][:16]


def test_adapters_compressed_roundtrip_through_adapters_api(compressed, tmp_path) -> None:
    small, x = compressed
    fa.save_pretrained(small, tmp_path / "c")  # no adapters: written as a factorized model
    files = json.loads((tmp_path / "c" / CONFIG_NAME).read_text())
    assert files["factorch_model"]["kind"] == "factorized"
    assert torch.equal(fnn.from_pretrained(digits_cnn(), tmp_path / "c").eval()(x), small(x))


# --- writes --------------------------------------------------------------------------------------
def _adapted() -> tuple[nn.Module, torch.Tensor]:
    model = fa.inject(mlp(), fa.LoraConfig(target_modules="all-linear", rank=2))
    perturb(model)
    return model, mlp_input()


def test_adapters_save_refuses_overwrite_and_leaves_no_temporaries(tmp_path) -> None:
    model, _ = _adapted()
    fa.save_pretrained(model, tmp_path / "a")
    with pytest.raises(FileExistsError, match="already exist"):
        fa.save_pretrained(model, tmp_path / "a")
    fa.save_pretrained(model, tmp_path / "a", force=True)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]


def test_adapters_saves_selected_adapters_only(tmp_path) -> None:
    model, x = _adapted()
    fa.inject(model, fa.TuckerConfig(target_modules=["0"], rank=2), adapter_name="second")
    fa.save_pretrained(model, tmp_path / "a", adapter_names=["second"])
    loaded = fa.from_pretrained(mlp(), tmp_path / "a")
    assert fa.adapter_names(loaded) == ("second",)
    assert torch.equal(loaded(x), model(x))


# --- untrusted files -----------------------------------------------------------------------------
def _edit_json(directory: Path, edit) -> None:
    path = directory / CONFIG_NAME
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _set(path: list, value):
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


MODULE = "0"
A = ["config", "modules", MODULE, "adapters", "default"]
BAD_ADAPTER_FILES = [
    ("config_text", lambda d: (d / CONFIG_NAME).write_text("{not json"), "not valid UTF-8 JSON"),
    ("nan", lambda d: (d / CONFIG_NAME).write_text('{"a": NaN}'), "non-standard JSON constant"),
    ("duplicate", lambda d: (d / CONFIG_NAME).write_text('{"a": 1, "a": 2}'), "duplicate key"),
    ("version", lambda d: _edit_json(d, _set(["factorch_model", "version"], 2)), "format version"),
    (
        "method",
        lambda d: _edit_json(d, _set(["config", "adapters", "default", "method"], "x")),
        "unknown adapter method",
    ),
    (
        "rank",
        lambda d: _edit_json(d, _set(["config", "adapters", "default", "rank"], 3)),
        "does not match the adapter",
    ),
    (
        "absurd_rank",
        lambda d: _edit_json(d, _set(["config", "adapters", "default", "rank"], 10**9)),
        "cannot rebuild the adapter",
    ),
    (
        "module",
        lambda d: _edit_json(
            d, lambda j: j["config"]["modules"].update({"nope": j["config"]["modules"][MODULE]})
        ),
        "the model has no such module",
    ),
    (
        "base",
        lambda d: _edit_json(
            d, _set(["config", "modules", MODULE, "base", "weight_shape"], [3, 3])
        ),
        "were saved for a base",
    ),
    (
        "manifest",
        lambda d: _edit_json(d, _set(["tensors", f"{MODULE}.default.lora_A", "shape"], [2, 99])),
        "the config records",
    ),
    (
        "pickle",
        lambda d: torch.save({"a": torch.ones(1)}, d / WEIGHTS_NAME),
        "not a safetensors file",
    ),
    (
        "truncated",
        lambda d: (d / WEIGHTS_NAME).write_bytes((d / WEIGHTS_NAME).read_bytes()[:-40]),
        "cannot read the tensors",
    ),
    (
        "missing_tensor",
        lambda d: save_file(
            {k: v for k, v in load_file(d / WEIGHTS_NAME).items() if "lora_B" not in k},
            d / WEIGHTS_NAME,
        ),
        "differ from the config's manifest",
    ),
    ("active", lambda d: _edit_json(d, _set(["config", "active"], "ghost")), "is not saved"),
    (
        "kind",
        lambda d: _edit_json(d, _set(["factorch_model", "kind"], "factorized")),
        "a factorized model's config",
    ),
]


@pytest.mark.parametrize("damage", BAD_ADAPTER_FILES, ids=[b[0] for b in BAD_ADAPTER_FILES])
def test_adapters_untrusted_adapter_files_are_refused(damage, tmp_path) -> None:
    model, _ = _adapted()
    fa.save_pretrained(model, tmp_path / "a")
    _, edit, message = damage
    edit(tmp_path / "a")
    fresh = mlp()
    before = copy.deepcopy(fresh.state_dict())
    with pytest.raises(FileFormatError, match=message):
        fa.from_pretrained(fresh, tmp_path / "a")
    assert not fa.adapted_layers(fresh)  # nothing changed
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())


def test_adapters_missing_files_are_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        fa.from_pretrained(mlp(), tmp_path / "nothing")
    model, _ = _adapted()
    fa.save_pretrained(model, tmp_path / "a")
    (tmp_path / "a" / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="holds no model.safetensors"):
        fa.from_pretrained(mlp(), tmp_path / "a")


def test_adapters_load_refuses_taken_names_and_large_files(tmp_path) -> None:
    model, _ = _adapted()
    fa.save_pretrained(model, tmp_path / "a")
    with pytest.raises(FileFormatError, match="already has adapters named"):
        fa.from_pretrained(model, tmp_path / "a")
    with pytest.raises(FileFormatError, match="more than max_entries"):
        fa.from_pretrained(mlp(), tmp_path / "a", max_entries=10)
