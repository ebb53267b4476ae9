"""Argument checks and the CPU sampler shared by the random constructors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import as_index, check_generator
from .._numerics import check_memory

__all__ = [
    "check_entries",
    "check_rank_value",
    "check_shape",
    "draw",
    "is_int",
    "rank_tuple",
    "resolve",
]


def is_int(value: object) -> bool:
    """A Python or numpy integer (not a bool)."""
    try:
        as_index(value, "", "")
    except TypeError:
        return False
    return not isinstance(value, torch.Tensor)


def check_shape(shape: object, fn: str, name: str = "shape") -> tuple[int, ...]:
    """A non-empty sequence of positive ints (numpy ints accepted)."""
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if is_int(shape) or not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(
            f"{fn}: {name} must be a sequence of positive ints such as (4, 5, 6); got "
            f"{type(shape).__name__}."
        )
    if len(shape) == 0:
        raise ValueError(f"{fn}: {name} must have at least one mode; got ().")
    sizes = []
    for n, s in enumerate(shape):
        if not is_int(s):
            raise TypeError(f"{fn}: {name}[{n}] must be an int; got {type(s).__name__}.")
        size = as_index(s, fn, f"{name}[{n}]")
        if size < 1:
            raise ValueError(f"{fn}: {name}[{n}] must be a positive int; got {size}.")
        sizes.append(size)
    return tuple(sizes)


def check_rank_value(value: object, fn: str, name: str) -> int:
    """A positive int (numpy ints accepted, bools refused)."""
    if not is_int(value):
        raise TypeError(f"{fn}: {name} must be a positive int; got {type(value).__name__}.")
    out = as_index(value, fn, name)
    if out < 1:
        raise ValueError(f"{fn}: {name} must be a positive int; got {out}.")
    return out


def check_entries(
    n_entries: int, dtype: torch.dtype, device: torch.device, fn: str, what: str
) -> None:
    """Refuse (``ValueError``) a draw of ``n_entries`` that cannot fit in the device's memory
    (the draw is made in float64 on the CPU first, hence at least 8 bytes per entry)."""
    wide = torch.complex128 if dtype.is_complex else torch.float64
    check_memory(n_entries, wide, "cpu", fn, what, hint="use a smaller shape or rank")
    if device.type != "cpu":
        check_memory(n_entries, dtype, device, fn, what, hint="use a smaller shape or rank")


def rank_tuple(rank: object, length: int, fn: str, what: str) -> tuple[int, ...]:
    """An int broadcast to ``length`` entries, or a sequence of exactly ``length`` positive ints."""
    if is_int(rank):
        return (check_rank_value(rank, fn, "rank"),) * length
    if isinstance(rank, Sequence) and not isinstance(rank, str):
        if len(rank) != length:
            raise ValueError(f"{fn}: rank needs {length} entries ({what}); got {tuple(rank)}.")
        return tuple(check_rank_value(r, fn, f"rank[{k}]") for k, r in enumerate(rank))
    raise TypeError(f"{fn}: rank must be an int or a sequence of ints; got {type(rank).__name__}.")


def resolve(
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    generator: torch.Generator | None,
    fn: str,
) -> tuple[torch.dtype, torch.device]:
    """Default dtype / device, refusing integer dtypes and non-CPU generators."""
    if dtype is None:
        dtype = torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{fn}: dtype must be a torch.dtype; got {type(dtype).__name__}.")
    if not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"{fn}: dtype must be a floating-point or complex dtype; got {dtype}.")
    generator = check_generator(generator, fn)
    if generator is not None:
        if generator.device.type != "cpu":
            raise ValueError(
                f"{fn}: generator must be a CPU torch.Generator (entries are drawn on the CPU and "
                f"then moved, so results match across devices); got one on {generator.device}."
            )
    if device is None:
        return dtype, torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{fn}: device must be a torch.device or str; got {type(device).__name__}.")
    try:
        return dtype, torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{fn}: device must name a torch device; got {device!r}.") from err


def draw(
    shape: Sequence[int],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
    std: float = 1.0,
) -> torch.Tensor:
    """Standard normal entries (complex: ``E|z|^2 = 1``) times ``std``.

    Drawn in float64 (complex128) on the CPU and then cast and moved, so one seed gives the same
    numbers (up to rounding) for every dtype and device.
    """
    wide = torch.complex128 if dtype.is_complex else torch.float64
    out = torch.randn(tuple(shape), generator=generator, dtype=wide)
    if std != 1.0:
        out = out * std
    return out.to(device=device, dtype=dtype)
