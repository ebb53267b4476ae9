"""Faults: a rank that dies or hangs stops every other rank with a clear error within the
timeout, and a restarted job resumes from the checkpoint with the result of an uninterrupted
run. Launch errors reach every rank as one message through the real ``torchrun`` launcher."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import _distributed_cases as cases
import pytest
import torch

from factorch.decomp import cp as decomp_cp
from factorch.io import load_factorized
from factorch.tensors import SparseTensor

TIMEOUT = 8.0  # the workers' collective timeout (seconds)
DATA = cases.sparse((30, 20, 12), 0.3, seed=8)


def _write_tns(path: Path, sp: SparseTensor) -> None:
    lines = [
        " ".join(str(int(c) + 1) for c in sp.indices[:, p]) + f" {float(sp.values[p])!r}\n"
        for p in range(sp.nnz)
    ]
    path.write_text("".join(lines))


def _start_paced_job(tmp_path: Path) -> tuple[list[subprocess.Popen[str]], Path, Path]:
    data, ckpt, out = tmp_path / "x.tns", tmp_path / "run.safetensors", tmp_path / "fault"
    out.mkdir()
    _write_tns(data, DATA)
    procs = cases.spawn(2, ["fault", str(out), str(data), str(ckpt)])
    deadline = time.monotonic() + 180
    while not ckpt.exists():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            errs = "\n".join(p.communicate()[1] for p in procs)
            pytest.fail(f"the paced job ended or stalled before its first checkpoint:\n{errs}")
        time.sleep(0.05)
    return procs, out, ckpt


def _checkpoint_sweep(ckpt: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="pt") as f:
        return int(json.loads(f.metadata()["factorch"])["iteration"])


def test_killed_rank_stops_the_other_and_a_restart_resumes(tmp_path: Path) -> None:
    procs, out, ckpt = _start_paced_job(tmp_path)
    try:
        procs[1].kill()
        killed = time.monotonic()
        procs[0].wait(timeout=TIMEOUT + 60)
        waited = time.monotonic() - killed
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode == 1
    report = (out / "fault0.txt").read_text()
    assert "communication with the other ranks failed during sweep" in report, report
    assert "restart the job (with a checkpoint, it resumes from the last one)" in report
    assert waited < TIMEOUT + 10  # a dead peer closes its sockets: detected at once
    sweep = _checkpoint_sweep(ckpt)
    assert sweep >= 2 and sweep % 2 == 0
    # A restarted job (the launcher's command line) resumes and finishes the run.
    res = tmp_path / "resumed"
    args = ["-m", "factorch.distributed", "cp", str(tmp_path / "x.tns"), "--rank", "3"]
    args += ["--max-iter", str(sweep + 3), "--tol", "0", "--seed", "0", "--timeout", "60"]
    args += ["--checkpoint", str(ckpt), "--checkpoint-every", "2", "--out", str(res)]
    job = cases.run(2, args)
    assert job.returncodes == [0, 0], "\n".join(job.stderr)
    assert f"resumed from sweep {sweep}" in job.stdout[0] and not job.stdout[1]
    summary = json.loads((res / "summary.json").read_text())
    assert summary["resumed_from"] == sweep and summary["iterations"] == sweep + 3
    uninterrupted = decomp_cp(
        DATA.to_dense(),
        3,
        init="random",
        generator=torch.Generator().manual_seed(0),
        max_iter=sweep + 3,
        tol=0.0,
    )
    assert summary["errors"] == pytest.approx(list(uninterrupted.errors), abs=1e-10)
    model = load_factorized(res / "factors.safetensors")
    torch.testing.assert_close(model.weights, uninterrupted.model.weights, rtol=1e-10, atol=1e-10)
    for a, b in zip(model.factors, uninterrupted.model.factors):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_hung_rank_stops_the_other_after_the_timeout(tmp_path: Path) -> None:
    procs, out, _ = _start_paced_job(tmp_path)
    try:
        procs[1].send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        procs[0].wait(timeout=TIMEOUT + 60)
        waited = time.monotonic() - stopped
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode == 1
    report = (out / "fault0.txt").read_text()
    assert f"hung for more than the timeout ({TIMEOUT:g} s)" in report, report
    assert waited < TIMEOUT + 20


@pytest.mark.slow
def test_torchrun_missing_shard_fails_every_rank_with_one_message(tmp_path: Path) -> None:
    torch.save(cases.dense((11, 7, 5))[:6].clone(), tmp_path / "part.0.pt")
    env = cases.env_for(0, 2, 0)
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    cmd += ["--master-addr=127.0.0.1", f"--master-port={cases.free_port()}"]
    cmd += ["-m", "factorch.distributed", "cp", str(tmp_path / "part.{rank}.pt")]
    cmd += ["--shape", "11,7,5", "--grid", "2x1x1", "--rank", "3", "--out", str(tmp_path / "o")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("factorch.distributed: error")]
    want = (
        "factorch.distributed: error: distributed.read_dense_shard: no such file: "
        f"'{tmp_path / 'part.1.pt'}'. (raised on rank 1; every rank stops)"
    )
    assert lines == [want, want], done.stderr
    assert "exitcode: 2" in done.stderr
