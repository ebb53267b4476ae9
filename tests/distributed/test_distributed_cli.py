"""``python -m factorch.distributed`` in this process, as a one-rank job (multi-rank launches:
``test_distributed_faults.py``): the options reach the solver, rank 0 writes the factors and
the summary, bad options end with status 2 and one message."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
from _distributed_cases import sparse

from factorch.distributed._cli import main
from factorch.io import load_factorized


@pytest.fixture
def launch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment torchrun sets for a one-rank job (port 0: the store picks a free one)."""
    assert not dist.is_initialized()
    for var, value in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "0",
        "GLOO_SOCKET_IFNAME": "lo",
    }.items():
        monkeypatch.setenv(var, value)


def test_cp_nonnegative_writes_factors_and_summary(
    launch_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sp = sparse((9, 7, 5))
    lines = [
        " ".join(str(int(c) + 1) for c in sp.indices[:, p]) + f" {float(sp.values[p])!r}\n"
        for p in range(sp.nnz)
    ]
    (tmp_path / "x.tns").write_text("".join(lines))
    out = tmp_path / "run"
    argv = ["cp", str(tmp_path / "x.tns"), "--rank", "2", "--nonnegative", "--max-iter", "7"]
    argv += ["--tol", "0", "--shape", "9,7,5", "--out", str(out)]
    assert main(argv) == 0
    assert not dist.is_initialized()  # torn down on the way out
    summary = json.loads((out / "summary.json").read_text())
    model = load_factorized(out / "factors.safetensors")
    assert summary["iterations"] == 7 and summary["world_size"] == 1
    assert all(float(f.min()) >= 0 for f in model.factors)
    errors = summary["errors"]  # multiplicative updates never increase the error
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < errors[0]
    assert "sweep 7: relative error" in capsys.readouterr().out


def test_bad_option_ends_with_status_2(
    launch_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np_path = tmp_path / "x.npy"
    np.save(np_path, -np.ones((4, 3, 2)))
    argv = ["cp", str(np_path), "--rank", "2", "--nonnegative", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "factorch.distributed: error: distributed.cp: nonnegative=True needs data without "
        "negative entries; this rank's shard has a minimum of -1.0 (a non-negative model cannot "
        "fit them; use nonnegative=False)."
    ]
    assert not dist.is_initialized()
