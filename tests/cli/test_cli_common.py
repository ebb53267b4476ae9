"""Shared command-line helpers (``cli/_common.py``): error mapping, output planning, JSON."""

from __future__ import annotations

import json

import pytest
import torch

from factorch.cli._common import CLIError, Interrupted, as_cli_error, dumps, plan_outputs


@pytest.mark.parametrize(
    ("error", "message", "code"),
    [
        (ValueError("cp: rank must\n be positive."), "cp: rank must be positive.", 2),
        (KeyboardInterrupt(), "interrupted; no output was written.", 130),
        (torch.linalg.LinAlgError("singular"), "the computation failed numerically (singular)", 2),
        (MemoryError(), "not enough memory for this run", 2),
        (torch.OutOfMemoryError("CUDA out of memory."), "not enough memory for this run", 2),
        (FileNotFoundError(2, "No such file or directory", "x"), "No such file or directory: x", 2),
        (OSError(28, "No space left on device"), "No space left on device", 2),
        (ZeroDivisionError("division by zero"), "unexpected ZeroDivisionError", 2),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_as_cli_error(error, message, code):
    mapped = as_cli_error(error)
    assert isinstance(mapped, CLIError)
    assert message in mapped.format_message() and "\n" not in mapped.format_message()
    assert mapped.exit_code == code


def test_interrupted_is_a_cli_error_with_status_130():
    assert as_cli_error(Interrupted()).exit_code == 130


def test_plan_outputs_refuses_an_empty_directory_name(tmp_path):
    with pytest.raises(CLIError, match=r"--out must name a directory; got an empty name"):
        plan_outputs("", ["a.json"], force=False)


def test_plan_outputs_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(CLIError, match=r"--out '.*f' exists and is not a directory"):
        plan_outputs(str(tmp_path / "f"), ["a.json"], force=False)


def test_plan_outputs_names_existing_files(tmp_path):
    (tmp_path / "a.json").write_text("")
    with pytest.raises(CLIError, match=r"'.*a.json' already exists; pass --force"):
        plan_outputs(str(tmp_path), ["a.json", "b.json"], force=False)
    assert plan_outputs(str(tmp_path), ["a.json"], force=True) == {"a.json": tmp_path / "a.json"}


def test_dumps_writes_non_finite_numbers_as_null():
    assert json.loads(dumps({"a": [1.0, float("nan")], "b": float("inf")})) == {
        "a": [1.0, None],
        "b": None,
    }
