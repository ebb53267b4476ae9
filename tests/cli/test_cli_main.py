"""The ``factorch`` group and ``run`` (``cli/_main.py``): help, version, one-line errors."""

from __future__ import annotations

import pytest
import torch
from _cli_helpers import assert_one_line_error, invoke, planted

import factorch.cli._decompose as decompose_mod


def test_help_lists_the_commands():
    code, out, _ = invoke("--help")
    assert code == 0 and "decompose" in out and "rank-scan" in out and "info" in out


def test_no_arguments_prints_the_help():
    code, out, _ = invoke()
    assert code == 0 and "Usage: factorch" in out


def test_version():
    code, out, _ = invoke("--version")
    assert code == 0 and out.startswith("factorch ")


def test_decompose_help_shows_the_options_of_every_group():
    code, out, _ = invoke("decompose", "--help")
    assert code == 0
    for option in ("--nan-as-missing", "--unlisted", "--max-entries", "--seed", "--out",
                   "--max-iter", "--method"):  # fmt: skip
        assert option in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["frobnicate"], r"No such command 'frobnicate'"),
        (["decompose", "--frobnicate"], r"No such option '--frobnicate'"),
        (["decompose", "--rank"], r"Option '--rank' requires an argument"),
    ],
)
def test_usage_errors_are_one_line(argv, match):
    code, out, err = invoke(*argv)
    assert_one_line_error(code, err, match)
    assert out == ""


def failing_fit(error: BaseException):
    def fit(request):
        raise error

    return fit


MAPPED = [
    (torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge"),
     r"the computation failed numerically \(linalg.eigh: The algorithm failed to converge\); "
     r"try --dtype float64"),
    (MemoryError(), r"not enough memory for this run"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
     r"not enough memory for this run"),
    (ValueError("cp: tol must be\na non-negative number; got nan."),
     r"cp: tol must be a non-negative number; got nan\."),
    (OSError(28, "No space left on device"), r"No space left on device"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "match"), MAPPED, ids=lambda e: type(e).__name__)
def test_library_failures_become_one_line(tmp_path, monkeypatch, error, match):
    import dataclasses

    methods = decompose_mod.METHODS
    monkeypatch.setitem(methods, "cp", dataclasses.replace(methods["cp"], fit=failing_fit(error)))
    code, _out, err = invoke("decompose", "--out", str(tmp_path / "o"), "--no-plots")
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "o").exists()


def test_an_unexpected_error_is_one_line_naming_a_bug(tmp_path, monkeypatch):
    import dataclasses

    methods = decompose_mod.METHODS
    fit = failing_fit(AttributeError("'NoneType' object has no attribute 'x'"))
    monkeypatch.setitem(methods, "cp", dataclasses.replace(methods["cp"], fit=fit))
    code, _out, err = invoke("decompose", "--out", str(tmp_path / "o"), "--no-plots")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("factorch: error: unexpected AttributeError: 'NoneType' object has no ")
    assert "a bug in factorch; please report it" in err and "FACTORCH_DEBUG=1" in err


def test_debug_env_shows_the_traceback(tmp_path, monkeypatch):
    import dataclasses

    methods = decompose_mod.METHODS
    fit = failing_fit(AttributeError("boom"))
    monkeypatch.setitem(methods, "cp", dataclasses.replace(methods["cp"], fit=fit))
    monkeypatch.setenv("FACTORCH_DEBUG", "1")
    with pytest.raises(AttributeError, match="boom"):
        invoke("decompose", "--out", str(tmp_path / "o"), "--no-plots")


def test_interrupt_while_reading_is_one_line(tmp_path, monkeypatch):
    import factorch.cli._inputs as inputs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inputs, "read_observed", interrupted)
    import numpy as np

    np.save(tmp_path / "x.npy", planted().numpy())
    code, out, err = invoke("info", str(tmp_path / "x.npy"))
    assert (code, out, err) == (130, "", "factorch: error: interrupted; no output was written.\n")


def test_interrupt_while_parsing_is_one_line(monkeypatch):
    import click

    def interrupted(self, ctx, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(click.Group, "parse_args", interrupted)
    code, out, err = invoke("datasets")
    assert (code, out, err) == (130, "", "factorch: error: interrupted; no output was written.\n")
