"""The generated data set type, the argument checks the generators share, and the on-disk cache.

A generator draws its random inputs from a ``torch.Generator`` on the CPU (so a seed gives the same
data on every device), solves the PDE in float64 on ``device`` and returns a frozen
:class:`PDEData`. With ``cache_dir`` it first looks for a file keyed by the problem, its
parameters and the generator's state; a miss generates and writes the file atomically
(:func:`factorch.io.write_atomic`), a hit restores the generator to the state generation would
have left it in, so a cached run and a fresh run continue identically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..._checks import check_generator, check_positive_int

__all__ = [
    "CACHE_VERSION",
    "MAX_STEPS",
    "PDEData",
    "cached",
    "check_device",
    "check_dtype",
    "check_positive_float",
    "check_resolution",
    "default_cache_dir",
    "solve_grid",
]

MAX_STEPS = 10**7
"""Time steps one time-dependent solve may take (beyond it a run is refused, not started)."""

CACHE_VERSION = 1
"""Bumped whenever a generator's output for the same arguments changes (invalidates caches)."""

_ENV = "FACTORCH_CACHE"


@dataclass(frozen=True)
class PDEData:
    """Input/output pairs of a PDE solution operator on a uniform grid.

    Attributes:
        x: inputs, ``(n, c_in, *grid)`` (channels first, as the operators take them).
        y: outputs, ``(n, c_out, *grid)``.
        problem: ``"darcy"``, ``"burgers"`` or ``"navier_stokes"``.
        periodic: whether the domain is periodic (spectral derivatives in the H1 loss, circular
            padding in multi-grid patching) or not (finite differences, boundary-aware padding).
        params: the generator's arguments (JSON values), e.g. ``{"viscosity": 0.001, ...}``.

    Raises:
        ValueError: ``x`` and ``y`` with different sample counts or grids.

    Example:
        >>> data = darcy_flow(4, resolution=16, generator=torch.Generator().manual_seed(0))
        >>> data.x.shape, data.y.shape, data.periodic
        (torch.Size([4, 1, 16, 16]), torch.Size([4, 1, 16, 16]), False)
    """

    x: torch.Tensor
    y: torch.Tensor
    problem: str
    periodic: bool
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0] or self.x.shape[2:] != self.y.shape[2:]:
            raise ValueError(
                f"PDEData: x {tuple(self.x.shape)} and y {tuple(self.y.shape)} must have the "
                "same number of samples and the same grid."
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def resolution(self) -> tuple[int, ...]:
        """The grid size per spatial dimension."""
        return tuple(self.x.shape[2:])

    @property
    def dims(self) -> int:
        """The number of spatial dimensions."""
        return self.x.ndim - 2

    def split(self, n_first: int) -> tuple[PDEData, PDEData]:
        """The first ``n_first`` samples and the rest (e.g. train / test)."""
        n = check_positive_int(n_first, "PDEData.split", "n_first")
        if n >= len(self):
            raise ValueError(
                f"PDEData.split: n_first must be smaller than the {len(self)} samples; got {n}."
            )
        return (
            PDEData(self.x[:n], self.y[:n], self.problem, self.periodic, self.params),
            PDEData(self.x[n:], self.y[n:], self.problem, self.periodic, self.params),
        )

    def subsample(self, factor: int) -> PDEData:
        """Every ``factor``-th grid point along each spatial dimension.

        On a periodic grid the size must be a multiple of ``factor``; on a node grid that
        includes both boundaries (Darcy) ``size - 1`` must be, so the boundary stays on the grid.
        """
        f = check_positive_int(factor, "PDEData.subsample", "factor")
        for s in self.resolution:
            ok = s % f == 0 if self.periodic else (s - 1) % f == 0
            if not ok:
                need = "a multiple of" if self.periodic else "1 plus a multiple of"
                raise ValueError(
                    f"PDEData.subsample: the grid size {s} must be {need} the factor {f}."
                )
        idx = (slice(None), slice(None), *([slice(None, None, f)] * self.dims))
        return PDEData(self.x[idx], self.y[idx], self.problem, self.periodic, self.params)


# --- shared checks -------------------------------------------------------------------------------
def check_positive_float(value: object, fn: str, name: str) -> float:
    """A finite number ``> 0`` as a float; ``ValueError`` (``TypeError`` for non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a positive number; got {type(value).__name__}.")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{fn}: {name} must be a finite positive number; got {value!r}.")
    return v


def check_resolution(value: object, fn: str, name: str, minimum: int) -> int:
    """An int grid size ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import operator

            v = operator.index(value)  # type: ignore[arg-type]  # numpy ints
        except TypeError:
            raise TypeError(f"{fn}: {name} must be an int; got {type(value).__name__}.") from None
    else:
        v = value
    if v < minimum:
        raise ValueError(f"{fn}: {name} must be an int >= {minimum}; got {v}.")
    return int(v)


def solve_grid(
    resolution: int, solve_resolution: object, fn: str, *, periodic: bool, minimum: int
) -> tuple[int, int]:
    """``(solve size, subsampling factor)`` for output ``resolution`` and an optional finer
    ``solve_resolution`` (periodic: a multiple of it; node grid: ``(s - 1)`` a multiple of
    ``(resolution - 1)``)."""
    if solve_resolution is None:
        return resolution, 1
    fine = check_resolution(solve_resolution, fn, "solve_resolution", minimum)
    if periodic:
        if fine % resolution:
            raise ValueError(
                f"{fn}: solve_resolution must be a multiple of resolution {resolution} (the "
                f"solution is subsampled); got {fine}."
            )
        return fine, fine // resolution
    if (fine - 1) % (resolution - 1):
        raise ValueError(
            f"{fn}: solve_resolution - 1 must be a multiple of resolution - 1 = {resolution - 1} "
            f"(the node grids share their boundary); got {fine}."
        )
    return fine, (fine - 1) // (resolution - 1)


def check_dtype(dtype: object, fn: str) -> torch.dtype:
    """A real floating dtype for the returned data."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"{fn}: dtype must be a real floating torch.dtype (e.g. torch.float32); got {dtype!r}."
        )
    return dtype


def check_device(device: object, fn: str) -> torch.device:
    """``None`` (the CPU) or something ``torch.device`` accepts."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, (str, int)) or isinstance(device, bool):
        raise TypeError(f"{fn}: device must be a torch.device or a device name; got {device!r}.")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise TypeError(
            f"{fn}: device must be a torch.device or a device name; got {device!r}."
        ) from err


# --- cache ---------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where the generators keep their data when asked for the default cache folder.

    Returns:
        ``$FACTORCH_CACHE/pde`` when that variable is set, else ``~/.cache/factorch/pde`` (the
        folder is not created here).

    Example:
        >>> default_cache_dir().name
        'pde'
    """
    root = os.environ.get(_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "factorch"
    return base / "pde"


def _key(problem: str, params: Mapping[str, Any], state: torch.Tensor) -> str:
    h = hashlib.sha256()
    meta = {"problem": problem, "params": params, "version": CACHE_VERSION}
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(state.numpy().tobytes())
    return h.hexdigest()[:32]


def cached(
    problem: str,
    params: Mapping[str, Any],
    generator: torch.Generator | None,
    cache_dir: object,
    compute: Callable[[torch.Generator], PDEData],
    fn: str,
) -> PDEData:
    """``compute(generator)``, through the on-disk cache when ``cache_dir`` is given.

    The file name is a hash of the problem, its parameters, :data:`CACHE_VERSION` and the
    generator's state before generation; the file (safetensors) holds ``x``, ``y`` and the
    generator's state after generation, which a hit restores. A file that cannot be read is
    regenerated and replaced. Writes are atomic (temporary file + rename).
    """
    gen = check_generator(generator, fn)
    if gen is None:
        gen = torch.Generator()
        gen.seed()
    if gen.device.type != "cpu":
        raise ValueError(
            f"{fn}: generator must be a CPU torch.Generator (random inputs are drawn on the CPU "
            f"so a seed gives the same data on every device); got one on {gen.device}."
        )
    if cache_dir is None:
        return compute(gen)
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            f"{fn}: cache_dir must be a path or None; got {type(cache_dir).__name__}. "
            "factorch.datasets.pde.default_cache_dir() is the default location."
        )
    from safetensors import SafetensorError
    from safetensors.torch import load, save

    from ...io import write_atomic

    path = Path(cache_dir) / f"{problem}-{_key(problem, params, gen.get_state())}.safetensors"
    if path.is_file():
        try:
            tensors = load(path.read_bytes())
            data = PDEData(
                tensors["x"], tensors["y"], problem, bool(int(tensors["periodic"])), dict(params)
            )
            gen.set_state(tensors["generator_state"])
            return data
        except (SafetensorError, KeyError, ValueError, RuntimeError, OSError):
            pass  # unreadable: regenerate below
    data = compute(gen)
    blob = save(
        {
            "x": data.x.detach().cpu().contiguous(),
            "y": data.y.detach().cpu().contiguous(),
            "periodic": torch.tensor([int(data.periodic)], dtype=torch.uint8),
            "generator_state": gen.get_state(),
        },
        metadata={"problem": problem, "params": json.dumps(dict(params), sort_keys=True)},
    )
    write_atomic(path, blob, force=True)
    return data
