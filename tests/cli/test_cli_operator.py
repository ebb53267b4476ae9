"""``factorch train-operator`` (``cli/_operator.py``): generated data, training, errors per
resolution, a checkpoint the library reloads to the same errors, refusals."""

from __future__ import annotations

import json
import re

import pytest
from _cli_helpers import PNG, assert_one_line_error, invoke

from factorch.cli._operator import DEFAULTS, generate
from factorch.train import evaluate, load_checkpoint

TINY = ("--n-train", "6", "--n-test", "2", "--epochs", "1", "--hidden", "4", "--batch-size", "6")


def test_burgers_json_summary_and_a_checkpoint_that_reproduces_the_errors(tmp_path) -> None:
    out = tmp_path / "run"
    code, stdout, err = invoke(
        "train-operator", "--problem", "burgers", *TINY, "--hidden", "8", "--seed", "3",
        "--out", str(out), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors", "config.json", "summary.json", "prediction.png",
    }  # fmt: skip
    assert (out / "prediction.png").read_bytes().startswith(PNG)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["model"] == "tfno" and summary["format"] == "tucker"
    assert set(summary["errors"]) == {"128", "256"} and len(summary["train_loss"]) == 1
    # The checkpoint, reloaded by the library, gives the reported errors on the same data.
    model = load_checkpoint(out)
    data = generate("burgers", 8, DEFAULTS["burgers"], 3, None)
    _, test_fine = data.split(6)
    _, test = data.subsample(2).split(6)
    assert evaluate(model, test) == pytest.approx(summary["errors"]["128"], rel=1e-5)
    assert evaluate(model, test_fine) == pytest.approx(summary["errors"]["256"], rel=1e-5)


def test_darcy_fno_text_report(tmp_path) -> None:
    out = tmp_path / "run"
    code, stdout, err = invoke(
        "train-operator", "--model", "fno", *TINY, "--out", str(out), "--no-plots",
    )  # fmt: skip
    assert code == 0, err
    lines = stdout.splitlines()
    assert (
        lines[0].startswith("FNO (dense, ") and "on darcy: 6 training samples, 1 epochs" in lines[0]
    )
    assert (
        lines[1].startswith("  resolution 32: relative L2 ") and "(training resolution)" in lines[1]
    )
    assert lines[2].startswith("  resolution 63: relative L2 ") and "(zero-shot)" in lines[2]
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "summary.json",
    ]  # fmt: skip
    assert json.loads((out / "config.json").read_text())["model"] == "fno"


def test_existing_outputs_are_kept_without_force(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    code, _, err = invoke("train-operator", *TINY, "--out", str(out), "--quiet")
    assert_one_line_error(code, err, r"exist")
    assert (out / "config.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--ratio", "0"), r"--ratio"),
        (("--problem", "heat"), r"--problem"),
        (("--model", "unet"), r"--model"),
        (("--epochs", "0"), r"--epochs"),
    ],
)
def test_bad_options_are_usage_errors(args, match, tmp_path) -> None:
    code, _, err = invoke("train-operator", *args, "--out", str(tmp_path / "o"))
    assert code == 2 and re.search(match, err), err
    assert not (tmp_path / "o").exists()


def test_a_ratio_too_small_for_the_weight_is_a_one_line_error(tmp_path) -> None:
    code, _, err = invoke(
        "train-operator", "--problem", "burgers", *TINY, "--out", str(tmp_path / "o"), "--quiet"
    )
    assert_one_line_error(code, err, r"TFNO: ratio 0.1 is below the smallest tucker tensor")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
