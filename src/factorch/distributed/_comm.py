"""The process groups, collectives and failure handling of one distributed computation.

Everything goes through ``torch.distributed`` (gloo on CPU, NCCL on GPU); nothing here is a
transport of its own. A :class:`Comm` is opened at the start of a distributed solve. It creates,
with the solve's ``timeout``, a group spanning every rank and one group per layer of the layout
(the ranks that share the factor rows of one chunk of one mode), so that

* a rank that dies closes its connections and every other rank's next collective fails at once;
* a rank that hangs makes the others' collectives time out after ``timeout`` seconds;
* either way every surviving rank raises :class:`DistributedError` with a message that says what
  happened, where, and how to resume, instead of hanging.

Argument and input errors are *agreed on* before any computation (:meth:`Comm.agree`): every rank
reports its local error, if any, and every rank raises the same exception (type and message, of
the lowest rank that failed), so a rank that brings a mismatched shard or lacks its input file
stops the whole job with one message.

Bytes sent by this rank are counted per kind (:class:`CommStats`): row exchanges exactly (the
rows it sends), all-reduces as ``2 (q - 1) / q`` times the payload for a group of ``q`` ranks
(what a bandwidth-optimal ring all-reduce sends per rank).
"""

from __future__ import annotations

import datetime
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from . import _latency

__all__ = ["Comm", "CommStats", "DistributedError", "init"]

_ERRORS: dict[str, type[Exception]] = {
    "TypeError": TypeError,
    "ValueError": ValueError,
    "IndexError": IndexError,
    "FileNotFoundError": FileNotFoundError,
}


class DistributedError(RuntimeError):
    """A distributed computation could not continue: a rank died, hung past the timeout, or the
    job was torn down. Every surviving rank raises it (the message names the phase and how to
    resume). The process group is broken afterwards and its threads cannot be joined: report
    the error and end the process with ``os._exit(status)`` (``python -m factorch.distributed``
    does), rather than a normal interpreter exit, which the C++ runtime may abort."""


def init(*, backend: str | None = None, timeout: float = 600.0) -> tuple[int, int]:
    """Join the job ``torchrun`` started (its ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT`` environment); no-op when ``torch.distributed`` is already initialized.

    Args:
        backend: ``"gloo"`` (CPU), ``"nccl"`` (CUDA) or None: NCCL when CUDA is available and
            ``LOCAL_RANK`` names a device, else gloo.
        timeout: seconds any collective may wait for the other ranks (default 600).

    Returns:
        ``(rank, world_size)``.

    Raises:
        ValueError: the launch environment is missing (not started by ``torchrun``) or
            ``timeout`` is not positive.

    Example:
        Under ``torchrun`` the first call joins the job; in this process a one-rank job is
        started by hand, so :func:`init` only reports it:

        >>> import torch.distributed as dist
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> init()  # already initialized: only reports this rank and the job's size
        (0, 1)
        >>> dist.destroy_process_group()
    """
    fn = "factorch.distributed.init"
    if not dist.is_initialized():
        missing = [
            v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
        ]
        if missing:
            raise ValueError(
                f"{fn}: environment variables {', '.join(missing)} are not set; start the job "
                "with torchrun --nproc-per-node=N ... (or call "
                "torch.distributed.init_process_group yourself)."
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(
                f"{fn}: timeout must be a positive number of seconds; got {timeout!r}."
            )
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=float(timeout)))
    return dist.get_rank(), dist.get_world_size()


@dataclass
class CommStats:
    """Bytes this rank sent, per kind (``"rows"``: factor-row exchanges; ``"grams"``: R x R and
    other small all-reduces; ``"setup"``: ownership and agreement; ``"gather"``: results and
    checkpoints), the number of collective calls and the seconds spent inside them (waiting for
    slower ranks included), of which ``injected_seconds`` were slept by
    :func:`~factorch.distributed.inject_latency`."""

    bytes: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    seconds: float = 0.0
    injected_seconds: float = 0.0

    def add(self, kind: str, nbytes: float) -> None:
        self.bytes[kind] = self.bytes.get(kind, 0) + round(nbytes)
        self.calls += 1

    def total(self, *kinds: str) -> int:
        """Bytes of the given kinds (all kinds when none is named)."""
        return sum(v for k, v in self.bytes.items() if not kinds or k in kinds)

    def snapshot(self) -> dict[str, int]:
        return dict(self.bytes)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Comm:
    """Process groups with a timeout, guarded collectives and agreed errors (module docstring).

    Open one per distributed solve with :meth:`open` (a collective: every rank calls it).
    """

    def __init__(self, fn: str, timeout_s: float, world: Any, device: torch.device) -> None:
        self.fn = fn
        self.timeout_s = timeout_s
        self.world = world
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = device
        self.stats = CommStats()
        self.phase = "setup"
        self._layers: dict[int, tuple[Any, tuple[int, ...]]] = {}

    @classmethod
    def open(cls, fn: str, timeout: object, device: torch.device) -> Comm:
        """Check that ``torch.distributed`` is initialized and create the job-wide group."""
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                f"{fn}: torch.distributed is not initialized; launch with torchrun "
                "--nproc-per-node=N and call factorch.distributed.init() (or "
                "torch.distributed.init_process_group) first."
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(
                f"{fn}: timeout must be a positive number of seconds; got {timeout!r}."
            )
        delta = datetime.timedelta(seconds=float(timeout))
        try:
            world = dist.new_group(timeout=delta)
        except RuntimeError as err:
            raise DistributedError(_lost(fn, "setup", float(timeout), err)) from err
        return cls(fn, float(timeout), world, device)

    @property
    def backend_device(self) -> torch.device:
        """Where tensors must live for this backend's collectives."""
        return self.device if dist.get_backend(self.world) == "nccl" else torch.device("cpu")

    # --- agreement ---------------------------------------------------------------------------
    def agree(self, error: Exception | None) -> None:
        """Every rank reports ``error`` (or None); if any rank has one, every rank raises the
        lowest failing rank's error, with the same type and message."""
        report = None if error is None else (type(error).__name__, str(error))
        reports = self.all_gather_object(report, kind="setup")
        for r, rep in enumerate(reports):
            if rep is not None:
                name, msg = rep
                if not msg.startswith(f"{self.fn}:"):
                    msg = f"{self.fn}: {msg}"
                if self.world_size > 1:
                    msg = f"{msg} (raised on rank {r}; every rank stops)"
                raise _ERRORS.get(name, ValueError)(msg)

    def agree_equal(self, what: str, value: object, hint: str) -> None:
        """ValueError on every rank unless every rank passed an equal ``value``."""
        values = self.all_gather_object(value, kind="setup")
        if any(v != values[0] for v in values):
            listing = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
            raise ValueError(f"{self.fn}: the ranks disagree on {what} ({listing}); {hint}.")

    # --- groups ------------------------------------------------------------------------------
    def setup_layers(self, layers_per_mode: Sequence[Sequence[tuple[int, ...]]]) -> None:
        """Create one group per layer of every mode (a collective over all ranks)."""
        delta = datetime.timedelta(seconds=self.timeout_s)
        with self.guard("setup"):
            for mode, layers in enumerate(layers_per_mode):
                mine = next(layer for layer in layers if self.rank in layer)
                if len(mine) == 1:
                    self._layers[mode] = (None, mine)
                elif len(mine) == self.world_size:
                    self._layers[mode] = (self.world, mine)
                else:
                    group, _ = dist.new_subgroups_by_enumeration(
                        [list(layer) for layer in layers], timeout=delta
                    )
                    self._layers[mode] = (group, mine)

    def layer(self, mode: int) -> tuple[Any, tuple[int, ...]]:
        """``(group or None, member ranks)`` of this rank's layer of ``mode``."""
        return self._layers[mode]

    # --- guarded collectives -----------------------------------------------------------------
    @contextmanager
    def guard(self, phase: str) -> Iterator[None]:
        """Turn a failed collective into :class:`DistributedError` naming ``phase``."""
        start = time.perf_counter()
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as err:
            raise DistributedError(_lost(self.fn, phase, self.timeout_s, err)) from err
        finally:
            self.stats.seconds += time.perf_counter() - start

    def _pause(self, nbytes: float, size: int) -> None:
        """The injected delay before a collective (:func:`inject_latency`; none by default)."""
        self.stats.injected_seconds += _latency.pause(nbytes, size)

    def _dev(self, t: torch.Tensor) -> tuple[torch.Tensor, bool]:
        target = self.backend_device
        return (t, False) if t.device == target else (t.to(target), True)

    def all_reduce(
        self, t: torch.Tensor, *, op: str = "sum", kind: str = "grams", group: Any = None
    ) -> torch.Tensor:
        """Sum (or max) of ``t`` over the group's ranks (a new tensor on ``t``'s device)."""
        group = self.world if group is None else group
        size = dist.get_world_size(group)
        work, _ = self._dev(t.clone() if t.device == self.backend_device else t)
        red = dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM
        nbytes = 2.0 * (size - 1) / max(size, 1) * _nbytes(t)
        with self.guard(self.phase):
            self._pause(nbytes, size)
            dist.all_reduce(work, op=red, group=group)
        self.stats.add(kind, nbytes)
        return work.to(t.device)

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        """Float64 sums over all ranks of a few scalars."""
        out = self.all_reduce(torch.tensor(list(values), dtype=torch.float64))
        return [float(v) for v in out]

    def all_gather_object(self, obj: object, *, kind: str = "setup") -> list[Any]:
        """Every rank's ``obj`` (picklable, small), in rank order."""
        out: list[Any] = [None] * self.world_size
        nbytes = len(pickle.dumps(obj)) * (self.world_size - 1)
        with self.guard(self.phase):
            self._pause(nbytes, self.world_size)
            dist.all_gather_object(out, obj, group=self.world)
        self.stats.add(kind, nbytes)
        return out

    def broadcast_object(self, obj: object, *, src: int = 0, kind: str = "setup") -> Any:
        """Rank ``src``'s ``obj`` on every rank."""
        box = [obj if self.rank == src else None]
        nbytes = len(pickle.dumps(obj)) if self.rank == src else 0
        with self.guard(self.phase):
            self._pause(nbytes, self.world_size)
            dist.broadcast_object_list(box, src=src, group=self.world)
        self.stats.add(kind, nbytes)  # receivers: a call, no bytes sent
        return box[0]

    def broadcast(self, t: torch.Tensor, *, src: int = 0, kind: str = "gather") -> torch.Tensor:
        """Rank ``src``'s ``t`` (same shape and dtype on every rank) on every rank."""
        work, moved = self._dev(t.contiguous())
        nbytes = _nbytes(t) * (self.world_size - 1) if self.rank == src else 0
        with self.guard(self.phase):
            self._pause(nbytes, self.world_size)
            dist.broadcast(work, src=src, group=self.world)
        self.stats.add(kind, nbytes)
        return work.to(t.device) if moved else work

    def all_gather_rows(
        self, rows: torch.Tensor, *, group: Any = None, kind: str = "gather"
    ) -> list[torch.Tensor]:
        """Every group member's ``rows`` (``(k_r, w)``, any ``k_r``), in group rank order."""
        group = self.world if group is None else group
        size = dist.get_world_size(group)
        counts = self.all_reduce_counts(rows.shape[0], group=group)
        width = rows.shape[1]
        longest = max(counts) if counts else 0
        pad = torch.zeros(longest, width, dtype=rows.dtype, device=self.backend_device)
        pad[: rows.shape[0]] = rows.to(self.backend_device)
        out = [torch.empty_like(pad) for _ in range(size)]
        with self.guard(self.phase):
            self._pause(_nbytes(pad) * (size - 1), size)
            dist.all_gather(out, pad, group=group)
        self.stats.add(kind, _nbytes(pad) * (size - 1))
        return [o[:c].to(rows.device) for o, c in zip(out, counts)]

    def all_reduce_counts(self, count: int, *, group: Any = None) -> list[int]:
        """Every group member's ``count``, in group rank order."""
        group = self.world if group is None else group
        size = dist.get_world_size(group)
        mine = torch.zeros(size, dtype=torch.int64, device=self.backend_device)
        mine[dist.get_rank(group)] = int(count)
        with self.guard(self.phase):
            self._pause(8 * size, size)
            dist.all_reduce(mine, group=group)
        self.stats.add("setup", 8 * size)
        return [int(c) for c in mine.cpu()]

    def all_to_all_rows(
        self,
        send: torch.Tensor,
        send_counts: Sequence[int],
        recv_counts: Sequence[int],
        *,
        group: Any,
        self_index: int,
        kind: str = "rows",
    ) -> torch.Tensor:
        """Rows ``send`` (grouped by destination, ``send_counts`` per member) to the members of
        ``group``; returns the rows received (``recv_counts`` per member, in member order)."""
        width = send.shape[1] if send.ndim == 2 else 1
        recv = torch.empty(sum(recv_counts), width, dtype=send.dtype, device=self.backend_device)
        work, _ = self._dev(send.reshape(-1, width).contiguous())
        sent = sum(c for j, c in enumerate(send_counts) if j != self_index)
        with self.guard(self.phase):
            self._pause(sent * width * send.element_size(), len(send_counts))
            dist.all_to_all_single(
                recv,
                work,
                output_split_sizes=list(recv_counts),
                input_split_sizes=list(send_counts),
                group=group,
            )
        self.stats.add(kind, sent * width * send.element_size())
        return recv.to(send.device)


def _lost(fn: str, phase: str, timeout_s: float, err: BaseException) -> str:
    cause = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return (
        f"{fn}: communication with the other ranks failed during {phase}: a rank died, hung "
        f"for more than the timeout ({timeout_s:g} s) or left the job. Every rank stops; "
        "restart the job (with a checkpoint, it resumes from the last one). "
        f"Cause: {cause}"
    )
