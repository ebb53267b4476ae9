"""The data a fitting command works on: FILE or a bundled dataset, its mask, device and threads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..datasets import Dataset, list_datasets
from ..datasets import load as load_dataset
from ..io import FileFormatError, ObservedTensor, read_observed
from ._common import CLIError, one_line
from ._options import DEFAULT_DATASET, InputArgs, ReadArgs, RunArgs, Unlisted

__all__ = ["Input", "UnlistedReport", "load_input", "read_file", "resolve_device", "set_threads"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
SMALL_TENSOR = 1 << 20


@dataclass(frozen=True)
class UnlistedReport:
    """What a coordinate file's unlisted entries were taken to be, and why."""

    policy: Literal["missing", "zero"]
    count: int
    total: int
    asked: Unlisted
    counts: bool

    @property
    def reason(self) -> str:
        if self.asked != "auto":
            return f"--unlisted {self.asked}"
        kind = "counts (non-negative integers)" if self.counts else "not all counts"
        return f"the listed values are {kind}"

    def line(self, name: str) -> str:
        """One sentence for the command output."""
        other = "zero" if self.policy == "missing" else "missing"
        as_what = "missing values" if self.policy == "missing" else "zeros"
        return (
            f"{name} lists {self.total - self.count:,} of {self.total:,} entries; the other "
            f"{self.count:,} are read as {as_what} ({self.reason}; --unlisted {other} to change)"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "entries": self.count,
            "read_as": self.policy,
            "asked": self.asked,
            "reason": self.reason,
        }


def unlisted_report(obs: ObservedTensor, asked: Unlisted) -> UnlistedReport | None:
    if obs.unlisted is None:
        return None
    return UnlistedReport(obs.unlisted, obs.n_unlisted, obs.tensor.numel(), asked, bool(obs.counts))


@dataclass(frozen=True)
class Input:
    """A tensor ready to decompose, with where it came from."""

    tensor: torch.Tensor  # unobserved entries set to 0
    mask: torch.Tensor | None  # True = observed; None when every entry is observed
    name: str  # dataset name or file name, for titles
    origin: dict[str, Any]  # {"dataset": name} or {"file": path, "format": fmt, "key": key}
    dataset: Dataset | None
    unlisted: UnlistedReport | None  # coordinate files with unlisted entries

    @property
    def n_missing(self) -> int:
        return 0 if self.mask is None else int((~self.mask).sum())

    @property
    def mode_names(self) -> tuple[str, ...] | None:
        return self.dataset.mode_names if self.dataset is not None else None

    @property
    def labels(self) -> tuple[tuple[str, ...], ...] | None:
        return self.dataset.labels if self.dataset is not None else None


def resolve_device(device: str) -> torch.device:
    """``--device``: a CPU or an existing CUDA device."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise CLIError(
            f"--device {device!r} is not a device name (use cpu, cuda, cuda:1)."
        ) from None
    if dev.type not in ("cpu", "cuda"):
        raise CLIError(f"--device {device}: the command line runs on cpu or cuda; use one of them.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(
                f"--device {device}: CUDA is not available on this machine; use --device cpu."
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise CLIError(
                f"--device {device}: this machine has {count} CUDA device"
                f"{'s' if count != 1 else ''} (cuda:0 ... cuda:{count - 1})."
            )
    return dev


def set_threads(threads: int | None, tensor: torch.Tensor) -> None:
    """Apply ``--threads``; by default one thread for small CPU tensors.

    Small ALS iterations are dominated by OpenMP start-up and synchronisation: on a 2-core
    machine the bundled 438 x 6 x 11 tensor ran ~30x slower per iteration with two threads.
    """
    if threads is not None:
        torch.set_num_threads(min(threads, os.cpu_count() or 1))
    elif tensor.device.type == "cpu" and tensor.numel() < SMALL_TENSOR:
        torch.set_num_threads(1)


def read_file(path: str, read: ReadArgs, what: str = "FILE") -> ObservedTensor:
    """:func:`factorch.io.read_observed` with errors turned into :class:`CLIError`."""
    try:
        return read_observed(
            path, key=read.key, unlisted=read.unlisted, max_entries=read.max_entries
        )
    except FileNotFoundError:
        raise CLIError(f"{what} {path!r} does not exist.") from None
    except (FileFormatError, ValueError, OSError) as e:
        message = one_line(e)
        for api, option in (("max_entries=", "--max-entries"), ("key=", "--key")):
            message = message.replace(f"{api} ({option} on the command line)", option)
        raise CLIError(message) from None


def _as_mask(raw: torch.Tensor, shape: torch.Size, path: str) -> torch.Tensor:
    if tuple(raw.shape) != tuple(shape):
        raise CLIError(
            f"--mask {path}: shape {tuple(raw.shape)} does not match the tensor's {tuple(shape)}."
        )
    if raw.dtype == torch.bool:
        return raw
    if raw.is_complex() or not bool(((raw == 0) | (raw == 1)).all()):
        raise CLIError(f"--mask {path}: entries must be 0/1 or boolean (1 = observed).")
    return raw != 0


def _dataset(name: str, source: InputArgs, dtype: torch.dtype) -> Dataset:
    if name not in list_datasets():
        raise CLIError(
            f"--dataset {name!r} is not a bundled dataset; choose one of "
            f"{', '.join(list_datasets())} (see: factorch datasets)."
        )
    if source.key is not None:
        raise CLIError("--key applies to FILE only, not to a bundled dataset.")
    return load_dataset(name, dtype=dtype)


def _numeric(obs: ObservedTensor, label: str, dtype: torch.dtype) -> torch.Tensor:
    raw = obs.tensor
    if raw.dtype == torch.bool:
        raise CLIError(f"{label} holds a boolean tensor; factorch decomposes numeric data.")
    if raw.is_complex():
        raise CLIError(f"{label} holds a complex tensor; the command line handles real data.")
    out = raw.to(dtype)
    if dtype != raw.dtype and raw.is_floating_point() and bool(torch.isinf(out).any()):
        if not bool(torch.isinf(raw).any()):
            raise CLIError(
                f"{label} has entries beyond the range of {str(dtype).replace('torch.', '')} "
                "(about 3.4e38); use --dtype float64."
            )
    return out


def _combine_masks(
    raw: torch.Tensor, mask: torch.Tensor | None, source: InputArgs, label: str
) -> torch.Tensor | None:
    """The mask of observed entries from the data's own mask, --mask and --nan-as-missing."""
    nan = torch.isnan(raw)
    if source.mask_file is not None:
        read = ReadArgs(None, "zero", source.max_entries)
        given = read_file(source.mask_file, read, "--mask").tensor
        user_mask = _as_mask(given, raw.shape, source.mask_file)
        mask = user_mask if mask is None else mask & user_mask
    if source.nan_as_missing:
        mask = ~nan if mask is None else mask & ~nan
    n_nan = int((nan & mask).sum()) if mask is not None else int(nan.sum())
    if n_nan:
        where = " among its observed entries" if mask is not None else ""
        raise CLIError(
            f"{label} contains {n_nan} NaN entries{where}; pass --nan-as-missing to treat them "
            "as missing values, or give --mask FILE."
        )
    if mask is not None and bool(mask.all()):
        return None
    if mask is not None and not bool(mask.any()):
        raise CLIError(f"{label}: the mask leaves no observed entry.")
    return mask


def load_input(source: InputArgs, run: RunArgs) -> Input:
    """Load FILE or a bundled dataset (the default one when neither is given) onto
    ``--device`` in ``--dtype``, with its mask, and apply ``--threads``."""
    device = resolve_device(run.device)
    dtype = DTYPES[run.dtype]
    if source.file is not None and source.dataset is not None:
        raise CLIError("give either FILE or --dataset, not both.")
    ds, report = None, None
    if source.file is None:
        label = source.dataset or DEFAULT_DATASET
        ds = _dataset(label, source, dtype)
        raw, mask = ds.tensor, ds.mask
        origin: dict[str, Any] = {"dataset": label}
    else:
        obs = read_file(source.file, source.read)
        label = Path(source.file).name
        origin = {"file": str(Path(source.file).resolve()), "format": obs.format}
        origin["key"] = source.key
        raw, mask = _numeric(obs, label, dtype), obs.mask
        report = unlisted_report(obs, source.unlisted)
    if raw.ndim == 0 or raw.numel() == 0:
        raise CLIError(
            f"{label} holds an empty or 0-dimensional tensor (shape {tuple(raw.shape)})."
        )
    n_inf = int(torch.isinf(raw).sum())
    if n_inf:
        raise CLIError(f"{label} contains {n_inf} infinite entries; replace them first.")
    mask = _combine_masks(raw, mask, source, label)
    tensor = raw if mask is None else torch.where(mask, raw, torch.zeros((), dtype=raw.dtype))
    tensor = tensor.to(device)
    mask = None if mask is None else mask.to(device)
    set_threads(run.threads, tensor)
    return Input(tensor, mask, label, origin, ds, report)
