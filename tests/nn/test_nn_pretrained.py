"""Compressed models as files (``factorch.nn.save_pretrained`` / ``from_pretrained`` /
``merge_and_unload`` / ``model_config``, on ``factorch.io``'s model directory): a compressed
digits CNN reloads in a fresh process without ``compress``, with identical outputs; ``compress``
keeps each layer's training/eval mode; ``merge_and_unload`` gives dense layers back; damaged or
mismatched files are refused (each refusal pinned) and leave the model unchanged."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _nn_digits import load_digits_split, make_cnn, train
from safetensors.torch import load_file, save_file
from torch import nn

import factorch.nn as fnn
from factorch.io import CONFIG_NAME, FileFormatError

HERE = Path(__file__).parent
digits_cnn = make_cnn


@pytest.fixture(scope="module")
def compressed() -> tuple[nn.Module, torch.Tensor]:
    xtr, ytr, xte, _ = load_digits_split(0)
    torch.manual_seed(0)
    model = train(make_cnn(), xtr[:640], ytr[:640], epochs=1)
    small, report = fnn.compress(
        model,
        layer_ranks={"0": 4, "2": (6, 4, 3, 3), "6": (1, 4, 1), "8": 4},
        format={"0": "cp", "2": "tucker", "6": "tt", "8": "lowrank"},
    )
    assert report.config == fnn.model_config(small)
    return small.eval(), xte[:64]


def test_nn_compressed_cnn_reloads_in_a_fresh_process(compressed, tmp_path) -> None:
    small, x = compressed
    fnn.save_pretrained(small, tmp_path / "cnn")
    save_file({"x": x, "y": small(x).detach()}, tmp_path / "io.safetensors")
    saved = json.loads((tmp_path / "cnn" / CONFIG_NAME).read_text())
    assert saved["config"] == json.loads(json.dumps(fnn.model_config(small)))
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        import torch
        import factorch.nn as fnn
        def refuse(*args, **kwargs):
            raise AssertionError("a decomposition ran while loading")
        fnn.compress = refuse
        fnn.WeightFormat.right_inverse = refuse
        from safetensors.torch import load_file, save_file
        from _nn_digits import make_cnn
        io = load_file({str(tmp_path / "io.safetensors")!r})
        start = time.perf_counter()
        model = fnn.from_pretrained(make_cnn(), {str(tmp_path / "cnn")!r}).eval()
        seconds = time.perf_counter() - start
        save_file({{"y": model(io["x"]).detach()}}, {str(tmp_path / "out.safetensors")!r})
        print(seconds, [type(m).__name__ for m in model])
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "FactorizedConv2d" in run.stdout and "FactorizedLinear" in run.stdout
    out = load_file(tmp_path / "out.safetensors")["y"]
    assert torch.equal(out, small(x).detach())


@pytest.mark.parametrize("training", [False, True])
def test_nn_compress_keeps_each_layers_mode(training: bool) -> None:
    model = digits_cnn().train(training)
    small, _ = fnn.compress(model, layer_ranks={"0": 2, "6": 3})
    assert all(m.training == training for m in small.modules())


def test_nn_compressed_merge_and_unload_gives_dense_layers(compressed) -> None:
    small, x = compressed
    model = copy.deepcopy(small)
    dense = fnn.merge_and_unload(model)
    assert [type(m) for m in dense] == [type(m) for m in digits_cnn()]
    assert not any(m.training for m in dense.modules())
    assert torch.allclose(dense(x), small(x), rtol=1e-5, atol=1e-5)


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
BAD_COMPRESSED_FILES = [
    ("layer", _set(["config", "modules", "6", "layer"], "Linear"), "must name a factorized layer"),
    (
        "module",
        lambda j: j["config"]["modules"].update({"9": j["config"]["modules"]["6"]}),
        "the model has no such module",
    ),
    ("args", _set(["config", "modules", "6", "args", "in_features"], 255), "folds a 64 x 256"),
    ("rank", _set(["config", "modules", "0", "args", "rank"], 10**9), "invalid layer config"),
    ("rank_capped", _set(["config", "modules", "6", "args", "rank"], 10**9), "inconsistent"),
    ("layout", _set(["config", "modules", "6", "weight", "rank"], [1, 2, 1]), "inconsistent"),
]


@pytest.mark.parametrize("edit", BAD_COMPRESSED_FILES, ids=[b[0] for b in BAD_COMPRESSED_FILES])
def test_nn_untrusted_compressed_files_are_refused(edit, compressed, tmp_path) -> None:
    small, _ = compressed
    fnn.save_pretrained(small, tmp_path / "c")
    _edit_json(tmp_path / "c", edit[1])
    fresh = digits_cnn()
    with pytest.raises(FileFormatError, match=edit[2]):
        fnn.from_pretrained(fresh, tmp_path / "c")
    assert [type(m) for m in fresh] == [type(m) for m in digits_cnn()]


def test_nn_compressed_file_needs_the_right_architecture(compressed, tmp_path) -> None:
    small, _ = compressed
    fnn.save_pretrained(small, tmp_path / "c")
    with pytest.raises(FileFormatError, match="the model's module is a Conv1d"):
        other = digits_cnn()
        other[0] = nn.Conv1d(1, 8, 3)
        fnn.from_pretrained(other, tmp_path / "c")
    with pytest.raises(FileFormatError, match="holds a 'factorized' model"):
        fnn.save_pretrained(small, tmp_path / "d")
        _edit_json(tmp_path / "d", _set(["factorch_model", "kind"], "factorized"))
        from factorch.io import read_model_config

        read_model_config(tmp_path / "d", kind="adapters")
