"""Helpers shared by the command-line tests: in-process runs, data, one-line error checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from factorch.cli import run

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> tuple[int, str, str]:
    """``factorch ARGS`` in-process (same code path as the console script minus start-up):
    exit status, stdout, stderr."""
    with CliRunner().isolation() as (out, err, _):
        code = run(list(args))
    return code, out.getvalue().decode(), err.getvalue().decode()


def subprocess_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``factorch ARGS`` in a fresh interpreter through the console script's entry point
    (``_factorch_entry.main``), with one BLAS/OpenMP thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", "import _factorch_entry; _factorch_entry.main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_one_line_error(code: int, err: str, match: str) -> None:
    """Exit 2, exactly one line ``factorch: error: ...`` on stderr matching ``match``."""
    assert code == 2, (code, err)
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("factorch: error: "), err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert re.search(match, err), (match, err)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planted(shape: tuple[int, ...] = (6, 5, 4), rank: int = 2, seed: int = 3) -> torch.Tensor:
    """A non-negative exactly rank-``rank`` float64 tensor."""
    g = gen(seed)
    factors = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    letters = "ijklmn"[: len(shape)]
    spec = ",".join(f"{c}r" for c in letters) + "->" + letters
    return torch.einsum(spec, *factors)


def assert_same_cp(a, b, tol: float = 1e-10) -> None:
    torch.testing.assert_close(a.weights, b.weights, rtol=tol, atol=tol)
    for fa, fb in zip(a.factors, b.factors):
        torch.testing.assert_close(fa, fb, rtol=tol, atol=tol)


FORMAT_FILES = ("t.npy", "t.npz", "t.pt", "t.pth", "t.safetensors", "t.csv", "t.txt", "t.tns")


def write_all_formats(directory: Path, x: torch.Tensor) -> list[str]:
    """``x`` in every readable format (coordinate files list every entry)."""
    np.save(directory / "t.npy", x.numpy())
    np.savez_compressed(directory / "t.npz", tensor=x.numpy(), other=np.zeros(3))
    torch.save(x, directory / "t.pt")
    torch.save({"tensor": x}, directory / "t.pth")
    save_file({"tensor": x}, directory / "t.safetensors")
    rows = [",".join(map(str, idx)) + f",{x[idx].item()!r}" for idx in np.ndindex(*x.shape)]
    (directory / "t.csv").write_text("i,j,k,value\n" + "\n".join(rows) + "\n")
    (directory / "t.txt").write_text("\n".join(r.replace(",", " ") for r in rows) + "\n")
    one_based = [
        " ".join(str(i + 1) for i in idx) + f" {x[idx].item()!r}" for idx in np.ndindex(*x.shape)
    ]
    (directory / "t.tns").write_text("\n".join(one_based) + "\n")
    return [str(directory / name) for name in FORMAT_FILES]


def write_partial_listing(
    path: Path, x: torch.Tensor, fraction: float, seed: int = 0
) -> torch.Tensor:
    """List ``fraction`` of ``x``'s entries in a coordinate file; return the listed mask."""
    listed = torch.rand(x.shape, generator=gen(seed)) < fraction
    listed.view(-1)[-1] = True  # the indices span the whole shape
    rows = [
        ",".join(map(str, idx)) + f",{x[tuple(idx)].item()!r}" for idx in listed.nonzero().tolist()
    ]
    path.write_text("\n".join(rows) + "\n")
    return listed
