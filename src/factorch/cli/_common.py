"""Helpers shared by the ``factorch`` commands: input loading, option parsing, progress, output.

Every user mistake becomes a :class:`CLIError` (exit status 2, one line on stderr, no traceback);
``main`` in ``_main.py`` does the printing.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

from .. import __version__
from ..datasets import Dataset, list_datasets
from ..datasets import load as load_dataset
from ..io import FileFormatError, check_targets, file_format, read_tensor

DEFAULT_DATASET = "covid19_serology"
DEFAULT_OUT = "factorch-out"
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# --- click arguments and options shared by the fitting commands (decompose, rank-scan) ------
file_argument = click.argument("file", required=False, type=click.Path(dir_okay=False))
dataset_option = click.option(
    "--dataset", help=f"Bundled dataset to use instead of FILE [default: {DEFAULT_DATASET}]."
)
key_option = click.option(
    "--key", help="Array to read from a FILE holding several (.npz, .pt, .safetensors)."
)
nan_as_missing_option = click.option(
    "--nan-as-missing", is_flag=True, help="Treat NaN entries as missing values."
)
dtype_option = click.option(
    "--dtype", type=click.Choice(list(DTYPES)), default="float64", show_default=True
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for PyTorch [default: 1 for tensors under 2**20 entries, where thread "
    "start-up costs more than it saves, else PyTorch's choice].",
)
out_option = click.option(
    "--out", "out_dir", default=DEFAULT_OUT, show_default=True, help="Output directory."
)
force_option = click.option("--force", is_flag=True, help="Overwrite existing output files.")


class CLIError(click.ClickException):
    """A user error: reported as ``factorch: error: <message>`` with exit status 2."""

    exit_code = 2


class Interrupted(CLIError):
    """Ctrl-C during a computation: exit status 130, nothing written."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted; no output was written.")


def one_line(message: object) -> str:
    """Collapse a (possibly multi-line) message to one line."""
    text = " ".join(str(message).split())
    return text or "unknown error"


@dataclass(frozen=True)
class Input:
    """A tensor ready to decompose, with where it came from."""

    tensor: torch.Tensor  # unobserved entries set to 0
    mask: torch.Tensor | None  # True = observed; None when every entry is observed
    name: str  # dataset name or file name, for titles
    origin: dict[str, Any]  # {"dataset": name} or {"file": path, "format": fmt, "key": key}
    dataset: Dataset | None
    mode_names: tuple[str, ...] | None
    labels: tuple[tuple[str, ...], ...] | None

    @property
    def n_missing(self) -> int:
        return 0 if self.mask is None else int((~self.mask).sum())


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"--device {device!r} is not a device name (use cpu, cuda, cuda:1).") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(
            f"--device {device}: CUDA is not available on this machine; use --device cpu."
        )
    return dev


def read_file(path: str, key: str | None, what: str = "FILE") -> torch.Tensor:
    """:func:`factorch.io.read_tensor` with errors turned into :class:`CLIError`."""
    try:
        return read_tensor(path, key=key)
    except FileNotFoundError:
        raise CLIError(f"{what} {path!r} does not exist.") from None
    except (FileFormatError, OSError) as e:
        raise CLIError(one_line(e)) from None


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


def load_input(
    file: str | None,
    *,
    dataset: str | None,
    key: str | None = None,
    mask_file: str | None = None,
    nan_as_missing: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> Input:
    """Load FILE or a bundled dataset (the default one when neither is given) and its mask."""
    if file is not None and dataset is not None:
        raise CLIError("give either FILE or --dataset, not both.")
    ds = None
    if file is None:
        name = dataset or DEFAULT_DATASET
        if name not in list_datasets():
            raise CLIError(
                f"--dataset {name!r} is not a bundled dataset; choose one of "
                f"{', '.join(list_datasets())} (see: factorch datasets)."
            )
        if key is not None:
            raise CLIError("--key applies to FILE only, not to a bundled dataset.")
        ds = load_dataset(name, dtype=dtype)
        raw, mask = ds.tensor, ds.mask
        origin: dict[str, Any] = {"dataset": name}
        label = name
    else:
        raw = read_file(file, key)
        mask = None
        origin = {"file": str(Path(file).resolve()), "format": file_format(file), "key": key}
        label = Path(file).name
        if raw.dtype == torch.bool:
            raise CLIError(f"{label} holds a boolean tensor; factorch decomposes numeric data.")
        if raw.is_complex():
            raise CLIError(f"{label} holds a complex tensor; the command line handles real data.")
        raw = raw.to(dtype)
    if raw.ndim == 0 or raw.numel() == 0:
        raise CLIError(
            f"{label} holds an empty or 0-dimensional tensor (shape {tuple(raw.shape)})."
        )
    n_inf = int(torch.isinf(raw).sum())
    if n_inf:
        raise CLIError(f"{label} contains {n_inf} infinite entries; replace them first.")
    nan = torch.isnan(raw)
    if mask_file is not None:
        user_mask = _as_mask(read_file(mask_file, None, "--mask"), raw.shape, mask_file)
        mask = user_mask if mask is None else mask & user_mask
    if nan_as_missing:
        mask = ~nan if mask is None else mask & ~nan
    n_nan = int((nan & mask).sum()) if mask is not None else int(nan.sum())
    if n_nan:
        hint = (
            "the mask marks some NaN entries as observed; fix the mask"
            if mask is not None
            else "pass --nan-as-missing to treat them as missing values, or give --mask FILE"
        )
        raise CLIError(f"{label} contains {n_nan} NaN entries; {hint}.")
    if mask is not None and bool(mask.all()):
        mask = None
    if mask is not None and not bool(mask.any()):
        raise CLIError(f"{label}: the mask leaves no observed entry.")
    tensor = raw if mask is None else torch.where(mask, raw, torch.zeros((), dtype=raw.dtype))
    if device is not None:
        tensor = tensor.to(device)
        mask = None if mask is None else mask.to(device)
    return Input(
        tensor=tensor,
        mask=mask,
        name=label,
        origin=origin,
        dataset=ds,
        mode_names=ds.mode_names if ds is not None else None,
        labels=ds.labels if ds is not None else None,
    )


def open_input(
    file: str | None,
    *,
    dataset: str | None,
    key: str | None,
    mask_file: str | None,
    nan_as_missing: bool,
    dtype: str,
    device: str,
    threads: int | None,
) -> tuple[Input, torch.device]:
    """The fitting commands' common start: resolve ``--device``, load the input in ``--dtype``
    onto it, and apply ``--threads``. Returns the input and the device."""
    dev = resolve_device(device)
    inp = load_input(
        file,
        dataset=dataset,
        key=key,
        mask_file=mask_file,
        nan_as_missing=nan_as_missing,
        dtype=DTYPES[dtype],
        device=dev,
    )
    set_threads(threads, inp.tensor)
    return inp, dev


def call_library(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; the library's input errors become :class:`CLIError` and Ctrl-C
    :class:`Interrupted`."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError, IndexError) as e:
        raise CLIError(one_line(e)) from None
    except KeyboardInterrupt:
        raise Interrupted() from None


def write_outputs(paths: dict[str, Path], files: dict[str, bytes], force: bool) -> None:
    """Write ``files`` (output name to bytes) to their planned ``paths``, all or none."""
    from ..io import write_files

    try:
        write_files({paths[name]: data for name, data in files.items()}, force=force)
    except (FileExistsError, IsADirectoryError, OSError) as e:
        raise CLIError(f"cannot write the outputs: {one_line(e)}") from None


def parse_rank(text: str) -> int | tuple[int, ...]:
    """``"3"`` -> 3; ``"3,4,5"`` -> (3, 4, 5)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise CLIError(
            f"--rank must be a positive integer or a comma-separated list of them; got {text!r}."
        ) from None
    if any(v < 1 for v in values):
        raise CLIError(f"--rank entries must be positive; got {text!r}.")
    return values[0] if len(values) == 1 else tuple(values)


def parse_ranks(text: str) -> tuple[int, ...]:
    """``"1-8"`` -> (1, ..., 8); ``"1,2,4"``; ``"1-3,6"``."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise CLIError(f"--ranks must look like 1-8 or 1,2,4 or 1-3,6; got {text!r}.") from None
    if not out or min(out) < 1:
        raise CLIError(f"--ranks must be positive; got {text!r}.")
    return tuple(sorted(set(out)))


def cp_rank_bound(shape: Sequence[int]) -> int:
    """``prod(shape) / max(shape)``: a CP model of this rank can already be exact."""
    total = 1
    for s in shape:
        total *= s
    return total // max(shape)


def check_cp_rank(rank: int, shape: Sequence[int]) -> None:
    bound = cp_rank_bound(shape)
    if rank > bound:
        raise CLIError(
            f"rank {rank} is too large for a tensor of shape {tuple(shape)}: at most {bound} "
            f"(= product of the dimensions / largest dimension) components are ever needed; "
            f"choose --rank {bound} or less."
        )


@contextmanager
def progress(total: int, *, desc: str, quiet: bool) -> Iterator[Any]:
    """A tqdm bar on stderr that appears only after half a second (nothing for quick runs)."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        disable=quiet,
        delay=0.5,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def iteration_callback(bar: Any) -> Callable[[Any], None]:
    """A decomposition callback advancing ``bar`` and showing the current error."""

    def callback(state: Any) -> None:
        bar.update(1)
        bar.set_postfix_str(f"error {state.error:.4g}", refresh=False)

    return callback


def plan_outputs(out_dir: str, names: Sequence[str], force: bool) -> dict[str, Path]:
    """Target paths in ``out_dir``; refuse existing ones before any work is done."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out_dir!r} exists and is not a directory.")
    paths = {name: out / name for name in names}
    try:
        check_targets(paths.values(), force=force)
    except (FileExistsError, IsADirectoryError) as e:
        raise CLIError(
            one_line(e).replace("pass force=True (--force on the command line)", "pass --force")
        ) from None
    return paths


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError(
            "plots need matplotlib: pip install 'factorch[plot]', or pass --no-plots."
        ) from None


def versions() -> dict[str, str]:
    return {
        "factorch": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """JSON text (NaN and infinities become null, which JSON can represent)."""
    return json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n"


def shape_str(shape: Sequence[int]) -> str:
    return " × ".join(str(s) for s in shape)


SMALL_TENSOR = 1 << 20


def set_threads(threads: int | None, tensor: torch.Tensor) -> None:
    """Apply ``--threads``; by default one thread for small CPU tensors.

    Small ALS iterations are dominated by OpenMP start-up and synchronisation: on a 2-core
    machine the bundled 438 x 6 x 11 tensor ran ~30x slower per iteration with two threads.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    elif tensor.device.type == "cpu" and tensor.numel() < SMALL_TENSOR:
        torch.set_num_threads(1)
