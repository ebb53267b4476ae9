"""Option groups (``cli/_options.py``): typed values, and extreme values refused in one line."""

from __future__ import annotations

import dataclasses

import click
import numpy as np
import pytest
from _cli_helpers import assert_one_line_error, invoke, planted
from click.testing import CliRunner

from factorch.cli._options import (
    InputArgs,
    IterArgs,
    OutputArgs,
    RunArgs,
    input_options,
    iteration_options,
    output_options,
    run_options,
)


def test_groups_hand_the_command_one_frozen_value_each():
    seen = {}

    @click.command()
    @input_options
    @iteration_options(max_iter=7)
    @run_options
    @output_options
    def probe(source, iters, run, output):
        seen.update(source=source, iters=iters, run=run, output=output)

    result = CliRunner().invoke(probe, ["f.npy", "--unlisted", "zero", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert seen["source"] == InputArgs("f.npy", None, None, False, None, "zero", 2**27)
    assert seen["iters"] == IterArgs(7, 1e-8)
    assert seen["run"] == RunArgs("float64", "cpu", None, 3)
    assert seen["output"] == OutputArgs("factorch-out", False, False, False, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen["run"].seed = 4


EXTREME = [
    (["--seed", str(2**70)], r"Invalid value for '--seed': 1180591620717411303424 is not in the "
     r"range 0<=x<=9223372036854775807"),
    (["--seed", "-1"], r"Invalid value for '--seed'"),
    (["--threads", "100000"], r"Invalid value for '--threads': 100000 is not in the range 1<=x<="),
    (["--threads", "0"], r"Invalid value for '--threads'"),
    (["--max-iter", "0"], r"Invalid value for '--max-iter'"),
    (["--max-iter", str(10**7)], r"Invalid value for '--max-iter': 10000000 is not in the range"),
    (["--tol", "nan"], r"Invalid value for '--tol': must be a finite number; got nan"),
    (["--tol", "inf"], r"Invalid value for '--tol': must be a finite number; got inf"),
    (["--tol", "-1"], r"Invalid value for '--tol'"),
    (["--max-entries", "0"], r"Invalid value for '--max-entries'"),
    (["--max-entries", str(2**60)], r"Invalid value for '--max-entries'"),
    (["--unlisted", "nan"], r"Invalid value for '--unlisted': 'nan' is not one of"),
    (["--dtype", "float16"], r"Invalid value for '--dtype'"),
    (["--out", ""], r"--out must name a directory; got an empty name"),
    (["--out", "   "], r"--out must name a directory; got an empty name"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "match"), EXTREME, ids=[f"opt{i}" for i in range(len(EXTREME))])
def test_extreme_option_values_exit_2_with_one_line(tmp_path, monkeypatch, extra, match):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", planted().numpy())
    args = ["decompose", "x.npy", "--rank", "2", "--no-plots"]
    if "--out" not in extra:
        args += ["--out", "o"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = invoke(*args, *extra)
    assert_one_line_error(code, err, match)
    assert stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before
