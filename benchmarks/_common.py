"""Small shared harness for the benchmarks in this folder.

* :func:`pin_threads` must run **before** numpy or torch are imported: OpenBLAS and MKL read their
  thread counts from the environment when they load (``threadpoolctl`` is used too if installed).
* :func:`time_calls` times several callables round-robin (so slow drifts of a shared machine hit
  every implementation alike) after warm-up calls, and reports the median.
* :func:`peak_extra_bytes` measures the peak resident-memory growth of one call in the current
  process (Linux: ``/proc/self/clear_refs`` resets the high-water mark). ``tracemalloc`` does not
  see torch's or BLAS's allocations, hence RSS; run each implementation in its own subprocess
  (:func:`run_json_subprocess`) with :data:`MALLOC_NO_CACHE` in its environment, so that memory
  freed by one call (or by another implementation) is not silently reused by the next.
* :func:`write_results` writes ``benchmarks/results/<name>.json``; :func:`format_table` prints a
  plain-text table.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
BLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS")
# For memory subprocesses: glibc serves every block >= 64 KiB by mmap and returns it to the OS on
# free (a fixed threshold also turns off glibc's adaptive threshold, which would otherwise keep
# freed blocks in the heap, so that a second call reuses them and shows no RSS growth).
MALLOC_NO_CACHE = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def pin_threads(n: int) -> None:
    """Set every BLAS/OpenMP thread-count variable to ``n`` (call before importing numpy/torch)."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)


def apply_threads(n: int) -> dict[str, Any]:
    """After import: set torch's and (if threadpoolctl is installed) numpy's pools to ``n``;
    return what each library reports it uses."""
    import torch

    torch.set_num_threads(n)
    report: dict[str, Any] = {"requested": n, "torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        report["numpy"] = f"env {os.environ.get('OPENBLAS_NUM_THREADS')} (no threadpoolctl)"
        return report
    threadpool_limits(n)
    report["numpy"] = [
        {"api": p.get("internal_api"), "threads": p.get("num_threads")} for p in threadpool_info()
    ]
    return report


def time_calls(
    calls: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    setup: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, dict[str, float]]:
    """Median, min and max wall seconds per call, timing the callables round-robin.

    ``setup[name]``, if given, runs untimed before every call of ``calls[name]`` (e.g. switching
    TensorLy's global backend).

    Also ``cpu_median_s``: the median process CPU time per call (all threads of the process). With
    one thread it is the time the call needed when it ran, which a busy shared machine inflates
    less than wall time.
    """
    setup = setup or {}
    for name, fn in calls.items():
        for _ in range(warmup):
            setup.get(name, _noop)()
            fn()
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            setup.get(name, _noop)()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: {
            "median_s": statistics.median(v),
            "min_s": min(v),
            "max_s": max(v),
            "cpu_median_s": statistics.median(cpu[name]),
            "n": len(v),
        }
        for name, v in wall.items()
    }


def _noop() -> None:
    return None


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_extra_bytes(fn: Callable[[], object]) -> dict[str, Any]:
    """Peak RSS growth while ``fn()`` runs (the result is dropped only after the measurement).

    Returns ``{"bytes": int, "method": str}``; method ``"vmhwm"`` resets the kernel's high-water
    mark first (exact for this call), ``"ru_maxrss"`` (no ``clear_refs``) is only an upper bound
    of this call's extra memory when nothing earlier in the process peaked higher.
    """
    try:
        rss_before = _status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        out = fn()
        peak = _status_kb("VmHWM")
        del out
        return {"bytes": max(0, peak - rss_before) * 1024, "method": "vmhwm"}
    except OSError:
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = fn()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        del out
        return {"bytes": max(0, after - before) * 1024, "method": "ru_maxrss"}


def peak_allocated_bytes(fn: Callable[[], object]) -> dict[str, Any]:
    """Peak bytes held by PyTorch's CPU allocator while ``fn()`` runs, above what was held before.

    Unlike :func:`peak_extra_bytes` (the process RSS high-water mark, which reads 0 when the
    allocator reuses memory freed by an earlier call), this replays the allocator's own events
    recorded by ``torch.profiler`` (``profile_memory=True``): every tensor allocation and free
    during the call, in order, so the result is the CPU counterpart of
    ``torch.cuda.max_memory_allocated`` growth. Memory that ``fn`` allocates outside PyTorch
    (NumPy, Python objects) is not counted. Returns ``{"bytes": int, "end_bytes": int,
    "events": int, "method": "profiler"}``; ``end_bytes`` is what the call left allocated.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()  # type: ignore[union-attr]
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return {
        "bytes": int(peak),
        "end_bytes": int(current),
        "events": len(events),
        "method": "profiler",
    }


def run_json_subprocess(
    argv: Sequence[str], *, env_overrides: Mapping[str, str | None] | None = None, timeout: float
) -> Any:
    """Run ``python <argv>``; its last stdout line must be JSON. ``None`` values unset a
    variable in the child only."""
    env = dict(os.environ)
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    cmd = [sys.executable, *argv]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess {argv} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "env": {k: os.environ.get(k) for k in (*THREAD_VARS, *BLAS_TUNING_VARS)},
    }
    try:
        import tensorly

        info["tensorly"] = tensorly.__version__
    except ImportError:
        pass
    return info


def command_line() -> str | None:
    """The command that runs this benchmark script as typed from the repository root, or None
    when not run as a script."""
    if not (sys.argv and sys.argv[0].endswith(".py")):
        return None
    script = f"benchmarks/{Path(sys.argv[0]).name}"
    return "python " + shlex.join([script, *sys.argv[1:]])


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json`` atomically, with the command line
    that produced it (``"command"``) unless the payload records its own."""
    command = command_line()
    if "command" not in payload and command is not None:
        payload = {"command": command, **payload}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        # three significant digits below 1 (relative errors such as 0.0527 vs 0.0496 would
        # both print as 0.05), two decimals above
        return f"{value:.3g}" if 0 < abs(value) < 1 else f"{value:.2f}"
    return "-" if value is None else str(value)


def write_sections(
    name: str,
    meta: Mapping[str, Any],
    sections: Mapping[str, Mapping[str, Any]],
    *,
    key: str | None = None,
    partial: bool,
) -> Path:
    """Write a benchmark made of independent sections without losing earlier ones.

    Every section records the command that produced it (``"command"``). A ``partial`` run (a
    subset of the sections was asked for) keeps the sections of the existing file that it did
    not rerun, with their own commands; a full run replaces the file. ``meta`` (machine,
    threads, ...) describes the latest run. ``key`` nests the sections under one entry of the
    payload (``payload[key][section]``) instead of at its top level.
    """
    command = command_line()
    fresh = {s: ({"command": command, **v} if command else dict(v)) for s, v in sections.items()}
    path = RESULTS_DIR / f"{name}.json"
    payload: dict[str, Any] = {}
    if partial and path.exists():
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):  # unreadable: keep it aside, never overwrite it
            kept = path.with_suffix(".json.unreadable")
            path.replace(kept)
            print(f"warning: {path} could not be read; moved to {kept}", file=sys.stderr)
    payload.update({k: v for k, v in meta.items() if k != key})
    if key is None:
        payload.update(fresh)
    else:
        payload[key] = {**payload.get(key, {}), **fresh}
    # the file's own command: this run's, unless a partial run merges into an older file
    old_command = payload.pop("command", None)
    top = old_command if partial and old_command is not None else command
    return write_results(name, {"command": top, **payload} if top is not None else payload)
