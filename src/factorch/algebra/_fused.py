"""Opt-in fused dense MTTKRP kernel on CPU, compiled once and cached on disk by inductor.

``mttkrp(..., kernel="fused")`` runs the whole MTTKRP of a dense CPU tensor as one C++ loop nest
(:mod:`factorch.algebra._fused_source`): each tensor entry is read once and no intermediate is
written to memory -- where the default path runs a tall-skinny GEMM (MKL/OpenBLAS) and then
contracts its ``|X| R / I_m`` result. Two families of loops: the rank as the vector lane (padded
to whole vectors), and the last, contiguous mode as the lane
(:mod:`factorch.algebra._fused_klane_source`: no padded lanes, a horizontal sum per output); a
fixed rule of the shape, mode, rank and dtype picks one (:func:`fused_lane`). The second also
runs ``X(M, K) @ C`` (the first pass of a 3-way CP-ALS sweep) faster than MKL's GEMM.

Compilation. The source is compiled by PyTorch's inductor C++ code cache (the machinery behind
``torch.compile`` on CPU: the same compiler, flags and vector ISA detection) the first time a
process asks for it -- a few seconds -- and the shared library is kept on disk under inductor's
cache directory (``TORCHINDUCTOR_CACHE_DIR``, by default ``/tmp/torchinductor_<user>``) and loaded
in every later process in milliseconds. Sizes are runtime arguments, so one compilation serves
every shape, rank, order and mode (there is a single "shape class"); float32 and float64 share
it. :func:`fused_mttkrp_status` compiles (or loads) it and says whether it is usable; call it at
start-up to pay the compilation up front.

Why not ``torch.compile`` of a broadcast-and-sum expression: at the pinned torch version inductor
turns ``(X.unsqueeze(-1) * C).sum(-2)`` into a loop with one accumulator chain per row and masked
rank lanes (the rank 10 fills 10 of 16 lanes), 1.5-2x slower than MKL on this CPU; splitting the
reduction did not help (see BENCHMARKS.md, "Fused MTTKRP kernel"). The hand-written loop nest keeps
a register tile of four rows instead.

Fallback (the default GEMM path runs instead, same result to round-off): a CUDA or other non-CPU
tensor, complex or half-precision dtypes, autograd recording the call (the kernel has no
backward), a non-contiguous tensor, tensors of fewer than :data:`FUSED_MIN_ENTRIES` entries
(the GEMM path is as fast there and needs no compiler), vectors, matrices other than
``X(M, K) @ C`` with ``K >= KLANE_MIN`` (one plain GEMM, which MKL runs faster than the rank-lane
loop), inside ``torch.compile``,
and no working C++ compiler (the reason is in :func:`fused_mttkrp_status`). :func:`fused_reason`
names the reason for one call.

Determinism: a fixed order of summation that depends only on the shape, the rank and the vector
width (a fixed rule of the rank and the CPU's vector ISA), never on the thread count; so results
are bit-identical across runs, processes and thread counts on one machine. They differ from the
GEMM path's at round-off level (the order of summation differs).
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ._fused_source import ARGTYPES, SOURCE

__all__ = [
    "FUSED_MIN_ENTRIES",
    "KLANE_MIDDLE_MIN",
    "KLANE_MIN",
    "FusedStatus",
    "Lane",
    "fused_lane",
    "fused_mttkrp",
    "fused_mttkrp_status",
    "fused_reason",
    "fused_tree_partial",
]

FUSED_MIN_ENTRIES = 1 << 15
"""Tensors with fewer entries use the default path (a call costs microseconds there)."""

_DTYPES = (torch.float64, torch.float32)
_EXTRA_FLAGS = ("-ffp-contract=fast",)  # one fused multiply-add per entry and lane


@dataclass(frozen=True)
class FusedStatus:
    """Whether the fused kernel can run in this process.

    Attributes:
        available: the kernel compiled (or loaded from inductor's disk cache) and runs.
        reason: why it is not available ("" when it is).
        vector_bytes: the widest vector the compiled code uses (32 or 64; 0 when unavailable).
        origin: ``"inductor"`` (compiled, or found in its code cache, by inductor),
            ``"disk"`` (the library a previous process compiled, loaded directly: no inductor
            import, no compiler run) or ``""`` (unavailable).

    Example:
        >>> status = FusedStatus(available=False, reason="no C++ compiler", vector_bytes=0)
        >>> status.available or status.reason  # fused_mttkrp_status() returns the real one
        'no C++ compiler'
    """

    available: bool
    reason: str
    vector_bytes: int
    origin: str = ""


class _Kernel:
    """The compiled kernel of this process (compiled or loaded on first use, under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fn: Callable[..., None] | None = None
        self._status: FusedStatus | None = None

    def status(self) -> FusedStatus:
        with self._lock:
            if self._status is None:
                self._status = self._load()
            return self._status

    def fn(self) -> Callable[..., None] | None:
        return self._fn if self.status().available else None

    def _load(self) -> FusedStatus:
        record = _cache_dir() / f"factorch_fused_{_KEY}.json"
        loaded = _load_recorded(record)
        if loaded is not None:
            self._fn, width = loaded
            return FusedStatus(True, "", width, "disk")
        try:
            from torch._inductor.codecache import CppPythonBindingsCodeCache
            from torch._inductor.cpu_vec_isa import pick_vec_isa

            isa = pick_vec_isa()
            width = 64 if isa and isa.bit_width() >= 512 else 32
            fn = CppPythonBindingsCodeCache.load_pybinding(
                ARGTYPES, SOURCE, extra_flags=_EXTRA_FLAGS, needs_vec_isa=bool(isa)
            )
        except Exception as exc:  # any failure means "no usable compiler": fall back
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return FusedStatus(False, f"{type(exc).__name__}: {first}", 0)
        self._fn = fn
        _record(record, fn, width)
        return FusedStatus(True, "", width, "inductor")

    def reset(self) -> None:
        """Forget the loaded kernel (tests; the disk cache stays)."""
        with self._lock:
            self._fn, self._status = None, None


KERNEL = _Kernel()

# What the compiled library depends on: a different source, flag, torch, CPU or Python compiles
# (and records) a new one.
_KEY = hashlib.sha256(
    "\0".join(
        [
            SOURCE,
            *ARGTYPES,
            *_EXTRA_FLAGS,
            torch.__version__,
            torch.backends.cpu.get_cpu_capability(),
            platform.machine(),
            sys.version,
        ]
    ).encode()
).hexdigest()[:32]


def _cache_dir() -> Path:
    """Inductor's cache directory (``TORCHINDUCTOR_CACHE_DIR`` or its default), computed
    without importing inductor (a second or more)."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env:
        return Path(env)
    try:
        user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
    except Exception:  # no user name (some containers)
        user = "unknown"
    return Path(tempfile.gettempdir()) / f"torchinductor_{user}"


def _load_recorded(record: Path) -> tuple[Callable[..., None], int] | None:
    """The kernel a previous process compiled, loaded from the path it recorded; None when
    there is no usable record (then inductor compiles or finds it)."""
    try:
        data = json.loads(record.read_text())
        path, width = str(data["path"]), int(data["vector_bytes"])
        if data.get("key") != _KEY or not Path(path).is_file() or width not in (32, 64):
            return None
        if not Path(path).resolve().is_relative_to(record.parent.resolve()):
            return None  # only a library inside the cache directory (where inductor puts it)
        # The module's init reads the address of torch's tensor-to-pointer helper from this
        # variable, exactly as inductor's own loader sets it.
        os.environ["_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR"] = str(
            torch._C._dynamo.guards._torchinductor_pyobject_tensor_data_ptr  # type: ignore[attr-defined]
        )
        name = f"factorch_fused_{_KEY}.kernel"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.kernel, width
    except Exception:  # a missing, stale or foreign record: compile through inductor instead
        return None


def _record(record: Path, fn: Callable[..., None], width: int) -> None:
    """Record where inductor put the library (atomically; best effort)."""
    try:
        path = getattr(getattr(fn, "__self__", None), "__file__", None)
        if not path:
            return
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": _KEY, "path": path, "vector_bytes": width}))
        os.replace(tmp, record)
    except OSError:
        return


def fused_mttkrp_status() -> FusedStatus:
    """Compile (first call in a process; seconds) or load the fused MTTKRP kernel and report.

    Returns:
        A :class:`FusedStatus`: ``available`` and, when not, the compiler's error in ``reason``.

    Example:
        >>> isinstance(fused_mttkrp_status().available, bool)
        True
    """
    return KERNEL.status()


def fused_reason(tensor: torch.Tensor, factors: Sequence[torch.Tensor | None], mode: int) -> str:
    """Why the fused kernel does not apply to this call ("" when it does). Checks the cheap
    conditions first, so no compilation happens for a call that cannot use the kernel."""
    if tensor.device.type != "cpu":
        return f"the tensor is on {tensor.device.type}, the fused kernel is CPU-only"
    if tensor.dtype not in _DTYPES:
        return f"dtype {tensor.dtype} (the fused kernel takes float32 and float64)"
    if tensor.ndim < 2:
        return "a vector (its MTTKRP is a broadcast: nothing to fuse)"
    if tensor.ndim == 2 and (tensor.shape[1] < KLANE_MIN or mode != 0):
        return (
            f"a matrix other than X @ C with at least {KLANE_MIN} columns (one plain GEMM, "
            "where BLAS is faster than the fused loop)"
        )
    if tensor.numel() < FUSED_MIN_ENTRIES:
        return f"fewer than {FUSED_MIN_ENTRIES} entries"
    if not tensor.is_contiguous():
        return "a non-contiguous tensor"
    used = [f for m, f in enumerate(factors) if m != mode and f is not None]
    if torch.is_grad_enabled() and (tensor.requires_grad or any(f.requires_grad for f in used)):
        return "autograd is recording (the fused kernel has no backward)"
    if torch.compiler.is_compiling():
        return "inside torch.compile"
    status = KERNEL.status()
    return "" if status.available else f"no compiled kernel ({status.reason})"


Lane = Literal["rank", "last"]
"""The vector lane of the fused loops: the (padded) rank, or the last mode (contiguous)."""


KLANE_MIN = 32
"""The last mode's size from which the fused kernel runs the loops with it as the vector lane."""

KLANE_MIDDLE_MIN = 96
"""... and for an output mode between the first and the last (:func:`fused_lane`)."""


def fused_lane(shape: Sequence[int], mode: int, rank: int, dtype: torch.dtype, widest: int) -> Lane:
    """The fixed rule choosing the fused loop, from the shape, mode, rank, dtype and the CPU's
    widest vector (deterministic). ``"last"`` (the last mode as the vector lane) needs at least
    :data:`KLANE_MIN` entries in the last mode, and is taken for mode 0 (every row of
    ``X(.., K)`` is a row of dot products with ``C^T``; includes ``X(M, K) @ C``, the first pass
    of a CP-ALS sweep), for a middle mode when the last mode has at least
    :data:`KLANE_MIDDLE_MIN` entries (shorter rows lost to the rank loop there: 32-48 entries), and
    for the last mode when the rank would leave padded lanes in the rank loop (rank 10: 16
    lanes); elsewhere ``"rank"``, which measured as fast or faster there (BENCHMARKS.md, "The
    last mode as the vector lane")."""
    n = len(shape)
    if shape[-1] < KLANE_MIN:
        return "rank"
    if mode == 0:
        return "last"
    if mode < n - 1:
        return "last" if shape[-1] >= KLANE_MIDDLE_MIN else "rank"
    return "last" if _rank_layout(rank, dtype, widest)[1] != rank else "rank"


def _rank_layout(rank: int, dtype: torch.dtype, widest: int) -> tuple[int, int]:
    """(vector bytes, padded rank): the fewest vector instructions per tensor entry, the
    narrower vector on a tie (less padding). A fixed rule: deterministic."""
    item = torch.finfo(dtype).bits // 8
    best = (32, math.ceil(rank * item / 32) * 32 // item)
    if widest >= 64:
        lanes = 64 // item
        padded = math.ceil(rank / lanes) * lanes
        if padded // lanes < best[1] * item // 32:
            best = (64, padded)
    return best


def _khatri_rao(factors: Sequence[torch.Tensor], rp: int, like: torch.Tensor) -> torch.Tensor:
    """Row-major Khatri--Rao product of ``factors`` (first factor slowest), rank padded to
    ``rp`` with zeros; a single row of ones for no factors."""
    out = torch.ones(1, rp, dtype=like.dtype)
    for f in factors:
        out = (out[:, None, :] * _pad(f, rp)[None, :, :]).reshape(-1, rp)
    return out.contiguous()


def _pad(factor: torch.Tensor, rp: int) -> torch.Tensor:
    return torch.nn.functional.pad(factor, (0, rp - factor.shape[1])).contiguous()


def fused_mttkrp(
    tensor: torch.Tensor,
    factors: Sequence[torch.Tensor | None],
    mode: int,
    *,
    vector_bytes: int | None = None,
    lane: Lane | None = None,
    rank_first: bool = False,
) -> torch.Tensor:
    """MTTKRP of ``tensor`` (contiguous, CPU, float32/float64, at least 2-way) for ``mode`` by
    the fused kernel, without validation; the caller has checked :func:`fused_reason` is "".
    ``vector_bytes`` (32 or 64) and ``lane`` override the fixed rules' vector width and loop
    (:func:`fused_lane`; tests and benchmarks). ``rank_first``: for ``X(M, K) @ C`` by the
    last-mode loop, the result as a transposed view of a contiguous ``R x M`` tensor."""
    fn = KERNEL.fn()
    if fn is None:  # pragma: no cover - callers check fused_reason first
        raise RuntimeError(f"fused_mttkrp: {KERNEL.status().reason}")
    shape, n = tensor.shape, tensor.ndim
    used = [f for m, f in enumerate(factors) if m != mode]
    if any(f is None for f in used):  # pragma: no cover - callers give every other factor
        raise ValueError("fused_mttkrp: a factor is missing.")
    rank = next(f for f in used if f is not None).shape[1]
    widest = KERNEL.status().vector_bytes
    if (lane or fused_lane(shape, mode, rank, tensor.dtype, widest)) == "last":
        vbytes = vector_bytes or widest
        return _klane(fn, tensor, list(factors), mode, rank, vbytes, rank_first)  # type: ignore[arg-type]
    if vector_bytes is None:
        vbytes, rp = _rank_layout(rank, tensor.dtype, KERNEL.status().vector_bytes)
    else:
        lanes = vector_bytes * 8 // torch.finfo(tensor.dtype).bits
        vbytes, rp = vector_bytes, math.ceil(rank / lanes) * lanes
    fs = list(factors)
    last = n - 1
    if mode < last:
        np_, ni = math.prod(shape[:mode]), shape[mode]
        nq, kdim = math.prod(shape[mode + 1 : last]), shape[last]
        wp = _khatri_rao(fs[:mode], rp, tensor)  # type: ignore[arg-type]
        wq = _khatri_rao(fs[mode + 1 : last], rp, tensor)  # type: ignore[arg-type]
        c = _pad(fs[last], rp)  # type: ignore[arg-type]
        out = torch.empty(ni, rp, dtype=tensor.dtype)
        kind = 0
    else:
        np_, ni = math.prod(shape[: last - 1]), 1
        nq, kdim = shape[last - 1], shape[last]
        wp = _khatri_rao(fs[: last - 1], rp, tensor)  # type: ignore[arg-type]
        wq = _pad(fs[last - 1], rp)  # type: ignore[arg-type]
        c = wq  # unused by the cols loop
        out = torch.empty(kdim, rp, dtype=tensor.dtype)
        kind = 1
    ops = [tensor, wp, wq, c, out]
    empty = torch.empty(0, dtype=tensor.dtype)
    blank = [empty] * 5
    args = ops + blank if tensor.dtype == torch.float64 else blank + ops
    kind += 0 if tensor.dtype == torch.float64 else 2
    fn(*args, kind, vbytes, np_, ni, nq, kdim, rp, torch.get_num_threads())
    return out[:, :rank].contiguous() if rp != rank else out


def _klane(
    fn: Callable[..., None],
    tensor: torch.Tensor,
    fs: list[torch.Tensor],
    mode: int,
    rank: int,
    vbytes: int,
    rank_first: bool = False,
) -> torch.Tensor:
    """:func:`fused_mttkrp` by the loops with the last mode as the vector lane (unpadded rank;
    ``C^T`` and, for the last mode, the output transposed, both zero-padded to whole vectors).
    ``rank_first`` (``X(M, K) @ C`` only): the result as the transpose of a contiguous
    ``R x M`` tensor (the layout a CP-ALS sweep contracts next without a copy)."""
    shape, last = tensor.shape, tensor.ndim - 1
    kdim = shape[last]
    lanes = vbytes * 8 // torch.finfo(tensor.dtype).bits
    kp = math.ceil(kdim / lanes) * lanes
    if mode < last:
        np_, ni, nq = math.prod(shape[:mode]), shape[mode], math.prod(shape[mode + 1 : last])
        wp = _khatri_rao(fs[:mode], rank, tensor)
        wq = _khatri_rao(fs[mode + 1 : last], rank, tensor)
        c = torch.zeros(rank, kp, dtype=tensor.dtype)
        c[:, :kdim] = fs[last].mT
        rank_first = rank_first and np_ == nq == 1
        out = torch.empty((rank, ni) if rank_first else (ni, rank), dtype=tensor.dtype)
        kind = 12 if rank_first else 4
    else:
        np_, ni, nq = math.prod(shape[: last - 1]), 1, shape[last - 1]
        wp = _khatri_rao(fs[: last - 1], rank, tensor)
        wq = fs[last - 1].contiguous()
        c = wq  # unused by the colsk loop
        out = torch.empty(rank, kp, dtype=tensor.dtype)
        kind = 5
    ops = [tensor, wp, wq, c, out]
    blank = [torch.empty(0, dtype=tensor.dtype)] * 5
    args = ops + blank if tensor.dtype == torch.float64 else blank + ops
    kind += 0 if tensor.dtype == torch.float64 else 2
    fn(*args, kind, vbytes, np_, ni, nq, kdim, rank, torch.get_num_threads())
    if mode == last:
        return out[:, :kdim].mT.contiguous()
    return out.mT if rank_first else out


def fused_tree_partial(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor | None], modes: Sequence[int]
) -> torch.Tensor | None:
    """``X x_{m in modes} A_m`` (the kept modes in order, then the rank) by the fused kernel,
    for the two passes of a CP-ALS dimension tree: ``modes`` a proper suffix of the modes (the
    kept prefix is merged into one output mode) or a proper prefix (the kept suffix is merged).
    None when the kernel does not apply (:func:`fused_reason` of the merged view: e.g. a suffix
    of one mode whose size is below :data:`KLANE_MIN` is a plain GEMM, left to BLAS) or
    ``modes`` is neither; the caller then runs its default path. No validation."""
    n, shape, modes = tensor.ndim, tensor.shape, sorted(modes)
    if not 0 < len(modes) < n or not tensor.is_contiguous():  # (reshape would copy)
        return None
    h = n - len(modes)
    if modes == list(range(h, n)):  # keep modes 0..h-1
        view = tensor.reshape(math.prod(shape[:h]), *shape[h:])
        facs, mode, kept = [None, *factors[h:]], 0, shape[:h]
    elif modes == list(range(len(modes))):  # keep modes len(modes)..n-1
        h = len(modes)
        view = tensor.reshape(*shape[:h], math.prod(shape[h:]))
        facs, mode, kept = [*factors[:h], None], h, shape[h:]
    else:
        return None
    if any(f is None for m, f in enumerate(facs) if m != mode) or fused_reason(view, facs, mode):
        return None
    # (X(IJ.., K) @ C rank first: the layout the sweep's next contractions read without a copy)
    out = fused_mttkrp(view, facs, mode, rank_first=True)
    return out.reshape(*kept, out.shape[1])
