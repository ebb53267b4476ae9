"""``factorch complete``: FunBaT or binned CP completion of a table, outputs, one-line errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _cli_helpers import PNG, assert_one_line_error, invoke

from factorch.completion.functional import (
    ContinuousData,
    Matern,
    Standardization,
    funbat,
    functional_from_bytes,
)


def _table(path, n=80, seed=0, missing=(5,)):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([10.0, 3.0])
    y = torch.sin(t[:, 0] / 2) * torch.cos(t[:, 1]) + 0.05 * torch.randn(n, generator=g)
    lines = ["lat,lon,temp,comment"]
    for i in range(n):
        value = "" if i in missing else repr(float(y[i]))
        lines.append(f"{float(t[i, 0])!r},{float(t[i, 1])!r},{value},row {i}")
    path.write_text("\n".join(lines) + "\n")
    keep = [i for i in range(n) if i not in missing]
    return ContinuousData(t[keep], y[keep].double(), ("lat", "lon"), None, "temp")


def test_functional_run_matches_the_library_and_writes_everything(tmp_path):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "out"
    code, _, err = invoke(
        "complete",
        str(tmp_path / "t.csv"),
        "--coords",
        "lat,lon",
        "--value",
        "temp",
        "--functional",
        "--structure",
        "cp",
        "--max-iter",
        "4",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 0, err
    assert "1 rows of" in err and "have no value and were dropped" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "latent.png",
        "map.png",
        "model.safetensors",
        "summary.json",
    ]
    assert (out / "latent.png").read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 79 and summary["dropped_rows"] == 1
    assert summary["train_rows"] + summary["test_rows"] == 79 and summary["test_rows"] == 16
    # the same fit through the library: same split, standardisation and seed
    n_test = 16
    train, test = data.split(
        (1 - n_test / 79, n_test / 79), generator=torch.Generator().manual_seed(0)
    )
    stats = Standardization.fit(train)
    fit = funbat(
        stats.apply(train),
        2,
        structure="cp",
        max_iter=4,
        kernel=[Matern(1.5)] * 2,
        generator=torch.Generator().manual_seed(0),
    )
    expected = fit.model.destandardize(stats).predict(test).rmse(test.values)
    assert summary["metrics"]["test_rmse"] == pytest.approx(expected, rel=1e-9)
    model = functional_from_bytes((out / "model.safetensors").read_bytes())
    assert model.predict(test).rmse(test.values) == pytest.approx(expected, rel=1e-9)
    assert model.names == ("lat", "lon")


def test_discrete_run_and_human_report(tmp_path):
    _table(tmp_path / "t.csv")
    code, stdout, err = invoke(
        "complete",
        str(tmp_path / "t.csv"),
        "--coords",
        "lat,lon",
        "--value",
        "temp",
        "--bins",
        "6",
        "--rank",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, err
    assert stdout.startswith("discrete CP completion (6x6 grid) rank 2 of ")
    assert "test RMSE" in stdout and "wrote" in stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["grid_shape"] == [6, 6] and math.isfinite(summary["metrics"]["test_rmse"])
    assert summary["epochs"] > 1


def test_outputs_are_not_overwritten_without_force(tmp_path):
    _table(tmp_path / "t.csv")
    args = [
        "complete",
        str(tmp_path / "t.csv"),
        "--coords",
        "lat,lon",
        "--value",
        "temp",
        "--functional",
        "--max-iter",
        "2",
        "--no-plots",
        "--out",
        str(tmp_path / "o"),
    ]
    assert invoke(*args)[0] == 0
    code, _, err = invoke(*args)
    assert_one_line_error(code, err, "already exist.*pass --force")
    code, stdout, err = invoke(*args, "--force", "--json")
    assert code == 0, err
    assert json.loads(stdout)["functional"] is True


def _write(tmp_path, text, name="t.csv"):
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


@pytest.mark.parametrize(
    ("text", "args", "match"),
    [
        (
            "a,b,y\n1,2,3\n",
            ["--coords", "a,c", "--value", "y"],
            r"has no column 'c'; its columns are 'a', 'b', 'y'",
        ),
        (
            "a,b,y\n1,2,3\n1,x,3\n",
            ["--coords", "a,b", "--value", "y"],
            r"line 3: column 'b' holds 'x', not a number",
        ),
        ("a,b,y\n1,2,3\n1,2\n", ["--coords", "a,b", "--value", "y"], "line 3: 2 fields, but"),
        ("a,b,y\n1,nan,3\n", ["--coords", "a,b", "--value", "y"], "a coordinate is not finite"),
        ("a,b,y\n1,2,3\n", ["--coords", "a,b", "--value", "a"], "--value 'a' is also one of"),
        ("a,b,y\n1,2,3\n", ["--coords", "a,,b", "--value", "y"], "--coords must list column"),
        ("a,b,y\n1,2,3\n", ["--coords", "a,b", "--value", "y"], "has 1 rows with a value"),
        (
            "a,y\n" + "1,1\n" * 8,
            ["--coords", "a", "--value", "y", "--functional"],
            r"funbat: mode 0 \(a\) has one distinct coordinate",
        ),
        (
            "a,b,y\n" + "".join(f"{i},{i % 3},{i}\n" for i in range(9)),
            [
                "--coords",
                "a,b",
                "--value",
                "y",
                "--functional",
                "--structure",
                "cp",
                "--rank",
                "1,2",
            ],
            "--rank with one value per mode needs --structure tucker",
        ),
        (
            "a,b,y\n" + "".join(f"{i},{i % 3},{i}\n" for i in range(9)),
            ["--coords", "a,b", "--value", "y", "--rank", "x"],
            "--rank must be an int",
        ),
        (
            "a,b,y\n" + "".join(f"{i},{i % 3},{i}\n" for i in range(9)),
            ["--coords", "a,b", "--value", "y", "--max-rows", "5"],
            "more than --max-rows 5 rows",
        ),
        ("", ["--coords", "a", "--value", "y"], "is empty; it needs a header row"),
        (
            "a,y\n1,2\n",
            ["--coords", "a", "--value", "y", "--device", "tpu"],
            "--device .tpu. is not a device name",
        ),
    ],
)
def test_bad_tables_and_options_are_one_line_errors(tmp_path, text, args, match):
    path = _write(tmp_path, text)
    code, _, err = invoke("complete", path, *args, "--out", str(tmp_path / "o"), "--max-iter", "2")
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_unknown_extension_is_refused(tmp_path):
    path = _write(tmp_path, "a,y\n1,2\n", name="t.npy")
    code, _, err = invoke("complete", path, "--coords", "a", "--value", "y")
    assert_one_line_error(code, err, r"complete reads .csv, .tsv or .txt tables")


def test_tab_separated_tables(tmp_path):
    rows = "".join(f"{i * 0.1}\t{(i * 7) % 5}\t{math.sin(i)}\n" for i in range(30))
    path = _write(tmp_path, "t\tx\ty\n" + rows, name="t.tsv")
    code, stdout, err = invoke(
        "complete",
        path,
        "--coords",
        "t,x",
        "--value",
        "y",
        "--functional",
        "--max-iter",
        "2",
        "--no-plots",
        "--json",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, err
    assert json.loads(stdout)["distinct_coordinates"] == [30, 5]
