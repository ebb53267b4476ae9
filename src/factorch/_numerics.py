"""Numerical guards shared by every algorithm (internal).

What a decomposition, completion method or layer constructor uses so that its result is true
whatever the input's scale, dtype or the autocast state:

* :func:`no_autocast` -- run a function with autocast off, so that an active
  ``torch.autocast`` region cannot silently lower the working precision of a fit.
* :func:`working_dtype` / :func:`upcast` -- half-precision inputs (float16, bfloat16) are
  computed in float32 (torch has no half-precision ``eigh``, ``qr`` or ``cholesky`` on the CPU, and
  their 8--11 bit mantissas cannot carry an ALS sweep); the result is cast back to the input dtype.
* :func:`power_of_two_scale` -- a power of two close to the largest magnitude of the data: dividing
  by it is exact, brings the data to ``O(1)``, and keeps squared norms inside the dtype's range
  (float32 data of magnitude ``1e-30`` or ``1e30`` has squared norms that under- or overflow).
* :func:`stable_norm` -- the Euclidean norm computed with that scaling.
* :func:`check_memory` -- refuse a call whose working set cannot fit the device, before it
  allocates anything, with a message that states the sizes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import torch

__all__ = [
    "HALF_DTYPES",
    "autocast_disabled",
    "check_memory",
    "device_memory",
    "format_bytes",
    "no_autocast",
    "power_of_two_scale",
    "stable_norm",
    "upcast",
    "working_dtype",
]

P = ParamSpec("P")
R = TypeVar("R")

HALF_DTYPES = (torch.float16, torch.bfloat16)


@contextlib.contextmanager
def autocast_disabled() -> Iterator[None]:
    """A context in which autocast is off on the CPU and (where present) on CUDA."""
    with contextlib.ExitStack() as stack:
        if torch.is_autocast_enabled("cpu"):
            stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available() and torch.is_autocast_enabled("cuda"):
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


def no_autocast(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` with autocast disabled (it computes in its inputs' dtypes)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with autocast_disabled():
            return fn(*args, **kwargs)

    return wrapper


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an algorithm computes in for data of ``dtype``: float32 for half precision."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in its :func:`working_dtype` (no copy when it already is)."""
    return tensor.to(working_dtype(tensor.dtype))


def power_of_two_scale(tensor: torch.Tensor) -> float:
    """A power of two ``s`` with ``max|x| / s`` in ``[0.5, 1)``; 1.0 for an all-zero tensor.

    Division by a power of two is exact (barring underflow into subnormals), so ``x / s`` carries
    the same digits as ``x`` at a magnitude where squares and sums of squares cannot under- or
    overflow. Returned as a Python float (the exponent of a float64 ``max``).
    """
    if tensor.numel() == 0:
        return 1.0
    peak = float(tensor.detach().abs().max())
    if peak == 0.0 or not math.isfinite(peak):
        return 1.0
    _, exponent = math.frexp(peak)
    return math.ldexp(1.0, exponent)


def stable_norm(tensor: torch.Tensor) -> float:
    """Euclidean (Frobenius) norm as a Python float, free of under- and overflow.

    ``torch.linalg.vector_norm`` squares the entries, so float32 entries of ``1e-30`` give 0 and
    entries of ``1e30`` give ``inf``; here the entries are first divided by
    :func:`power_of_two_scale`. The result is returned as a float64 number, so it may exceed the
    input dtype's range (a float32 tensor's norm can be larger than float32's largest value).
    """
    s = power_of_two_scale(tensor)
    return float(torch.linalg.vector_norm(tensor.detach() / s)) * s


@functools.cache
def _cpu_memory() -> int:
    """Physical RAM in bytes (read once per process: the memory checks run on every call of
    every decomposition, and reading ``/proc/meminfo`` costs more than a small fit's sweep)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 40  # unknown: assume 1 TiB, so only absurd requests are refused


def device_memory(device: torch.device | str) -> int:
    """Total memory in bytes of ``device`` (physical RAM for the CPU)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    return _cpu_memory()


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def check_memory(
    n_elements: int,
    dtype: torch.dtype,
    device: torch.device | str,
    fn: str,
    what: str,
    *,
    hint: str = "use a smaller rank",
) -> None:
    """Refuse (``ValueError``) when ``n_elements`` of ``dtype`` cannot fit in ``device``'s memory.

    Called before allocating, with the element count of the working set the caller is about to
    create (for CP: the factor matrices, the Gram matrices and the MTTKRP workspace). The limit is
    the device's total memory, so only requests that cannot possibly succeed are refused.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    need = int(n_elements) * itemsize
    have = device_memory(device)
    if need > have:
        raise ValueError(
            f"{fn}: {what} needs about {format_bytes(need)} of memory, more than the "
            f"{format_bytes(have)} this {torch.device(device).type} device has; {hint}."
        )
