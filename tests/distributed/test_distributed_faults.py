"""Faults: a rank that dies or hangs stops every other rank with a clear error within the
timeout, and a restarted job resumes from the checkpoint with the result of an uninterrupted
run. Launch errors reach every rank as one message through the real ``torchrun`` launcher."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class Paced:
    """A 2-rank paced CP-ALS job (``_distributed_worker.py fault``) and where it writes."""

    procs: list[subprocess.Popen[str]]
    out: Path
    ckpt: Path
    fault_at: float = 0.0  # when the test killed or stopped rank 1


def _launch(root: Path, name: str, data: Path) -> Paced:
    out, ckpt = root / name, root / f"{name}.safetensors"
    out.mkdir(exist_ok=True)
    return Paced(cases.spawn(2, ["fault", str(out), str(data), str(ckpt)]), out, ckpt)


def _stop_all(job: Paced) -> str:
    for p in job.procs:
        if p.poll() is None:
            p.kill()
    return "\n".join(p.communicate()[1] for p in job.procs)


def _until_first_checkpoint(jobs: dict[str, Paced], root: Path, data: Path) -> None:
    """Wait until every job has written its first checkpoint (a job that lost its port to
    another process is relaunched)."""
    deadline = time.monotonic() + 240
    pending = set(jobs)
    while pending:
        for name in sorted(pending):
            job = jobs[name]
            if job.ckpt.exists():
                pending.discard(name)
            elif any(p.poll() is not None for p in job.procs):
                errs = _stop_all(job)
                if not cases.port_clash(errs.splitlines()):
                    for other in jobs.values():
                        _stop_all(other)
                    pytest.fail(f"the paced job {name} ended before its first checkpoint:\n{errs}")
                jobs[name] = _launch(root, name, data)
        if time.monotonic() > deadline:
            errs = "\n".join(_stop_all(job) for job in jobs.values())
            pytest.fail(f"the paced jobs stalled before their first checkpoint:\n{errs}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def faulted(
    tmp_path_factory: pytest.TempPathFactory,
    torchrun_missing: tuple[subprocess.Popen[str], Path],
) -> Iterator[dict[str, Paced]]:
    """Two paced jobs started together (their slow process starts overlap; ``torchrun_missing``
    is started first for the same reason); once both have checkpointed, rank 1 of ``"killed"``
    is killed and rank 1 of ``"hung"`` stopped."""
    root = tmp_path_factory.mktemp("faults")
    data = root / "x.tns"
    _write_tns(data, DATA)
    jobs = {name: _launch(root, name, data) for name in ("killed", "hung")}
    try:
        _until_first_checkpoint(jobs, root, data)
        jobs["killed"].procs[1].kill()
        jobs["killed"].fault_at = time.monotonic()
        jobs["hung"].procs[1].send_signal(signal.SIGSTOP)
        jobs["hung"].fault_at = time.monotonic()
        yield jobs
    finally:
        for job in jobs.values():
            _stop_all(job)


def _survivor(job: Paced) -> tuple[int, str, float]:
    """Rank 0's exit status, its report and how long after the fault it ended."""
    job.procs[0].wait(timeout=TIMEOUT + 120)
    waited = time.monotonic() - job.fault_at
    return job.procs[0].returncode, (job.out / "fault0.txt").read_text(), waited


def _checkpoint_sweep(ckpt: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="pt") as f:
        return int(json.loads(f.metadata()["factorch"])["iteration"])


def test_killed_rank_stops_the_other_and_a_restart_resumes(
    faulted: dict[str, Paced], tmp_path: Path
) -> None:
    job = faulted["killed"]
    status, report, waited = _survivor(job)
    assert status == 1, report
    assert "communication with the other ranks failed during sweep" in report, report
    assert "restart the job (with a checkpoint, it resumes from the last one)" in report
    # A dead peer closes its sockets: detected at once, well before the timeout (the margin
    # covers a loaded machine's scheduling).
    assert waited < TIMEOUT + 30
    ckpt, data = job.ckpt, job.out.parent / "x.tns"
    sweep = _checkpoint_sweep(ckpt)
    assert sweep >= 2 and sweep % 2 == 0
    # A restarted job (the launcher's command line) resumes and finishes the run.
    res = tmp_path / "resumed"
    args = ["-m", "factorch.distributed", "cp", str(data), "--rank", "3"]
    args += ["--max-iter", str(sweep + 3), "--tol", "0", "--seed", "0", "--timeout", "180"]
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


def test_hung_rank_stops_the_other_after_the_timeout(faulted: dict[str, Paced]) -> None:
    status, report, waited = _survivor(faulted["hung"])
    assert status == 1, report
    assert f"hung for more than the timeout ({TIMEOUT:g} s)" in report, report
    assert TIMEOUT / 2 < waited < TIMEOUT + 60  # it waited for the timeout, not longer


@pytest.fixture(scope="module")
def torchrun_missing(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``torchrun`` launching the command line on per-rank files, rank 1's missing (started
    before the paced jobs, so that the process starts overlap)."""
    root = tmp_path_factory.mktemp("torchrun")
    torch.save(cases.dense((11, 7, 5))[:6].clone(), root / "part.0.pt")
    env = cases.env_for(0, 2, 0)
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var)
    # --standalone: torchrun binds its rendezvous to a free port itself (no port to clash).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd += ["-m", "factorch.distributed", "cp", str(root / "part.{rank}.pt")]
    cmd += ["--shape", "11,7,5", "--grid", "2x1x1", "--rank", "3", "--out", str(root / "o")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc, root
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_torchrun_missing_shard_fails_every_rank_with_one_message(
    torchrun_missing: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, root = torchrun_missing
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode != 0
    lines = [ln for ln in stderr.splitlines() if ln.startswith("factorch.distributed: error")]
    want = (
        "factorch.distributed: error: distributed.read_dense_shard: no such file: "
        f"'{root / 'part.1.pt'}'. (raised on rank 1; every rank stops)"
    )
    assert lines == [want, want], stderr
    assert "exitcode: 2" in stderr
