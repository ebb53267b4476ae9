"""The console-script entry point (``src/_factorch_entry.py``): Ctrl-C is clean at any time.

A real process gets SIGINT while it imports PyTorch (start-up) or while it fits; both must end
with status 130, the one interrupt line on stderr, no traceback and no output written. The
signal is sent once the process is known to be inside the torch import (its memory map holds
libtorch), so the test does not depend on how fast the machine is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/PID/maps to time the signal"
)

LINE = "factorch: error: interrupted; no output was written.\n"


def start(*args: str) -> subprocess.Popen[str]:
    code = "import _factorch_entry; _factorch_entry.main()"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_interactive_sigint,
    )


def _interactive_sigint() -> None:
    """Start the child with SIGINT at its default disposition, as a terminal's foreground job
    gets it. A suite run in the background (``nohup ... &``) inherits SIGINT *ignored*, and the
    command line rightly keeps an inherited ignore (as Python does), so Ctrl-C could not reach
    it: the "later" case then waited out its timeout."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_torch_import(proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"exited early with {proc.returncode}: {proc.communicate()}")
        time.sleep(0.002)
    raise AssertionError("the process never started importing torch")


@pytest.mark.parametrize("delay", [0.0, 4.0], ids=["during-import", "later"])
def test_ctrl_c_exits_130_with_one_line(tmp_path, delay):
    out = tmp_path / "o"
    proc = start(
        "decompose", "--dataset", "il2_response", "--method", "cp", "--max-iter", "1000000",
        "--tol", "0", "--quiet", "--out", str(out),
    )  # fmt: skip
    try:
        wait_for_torch_import(proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (stdout, stderr)
    assert stderr == LINE and stdout == ""
    assert not out.exists()
