"""Argument checks and the CPU sampler shared by the random constructors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["check_rank_value", "check_shape", "draw", "rank_tuple", "resolve"]


def check_shape(shape: object, fn: str, name: str = "shape") -> tuple[int, ...]:
    """A non-empty sequence of positive ints."""
    if isinstance(shape, int) or not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(
            f"{fn}: {name} must be a sequence of positive ints such as (4, 5, 6); got "
            f"{type(shape).__name__}."
        )
    if len(shape) == 0:
        raise ValueError(f"{fn}: {name} must have at least one mode; got ().")
    for n, s in enumerate(shape):
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"{fn}: {name}[{n}] must be an int; got {type(s).__name__}.")
        if s < 1:
            raise ValueError(f"{fn}: {name}[{n}] must be a positive int; got {s}.")
    return tuple(shape)


def check_rank_value(value: object, fn: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be a positive int; got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be a positive int; got {value}.")
    return value


def rank_tuple(rank: object, length: int, fn: str, what: str) -> tuple[int, ...]:
    """An int broadcast to ``length`` entries, or a sequence of exactly ``length`` positive ints."""
    if isinstance(rank, int) and not isinstance(rank, bool):
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
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"{fn}: generator must be a torch.Generator or None; got "
                f"{type(generator).__name__}."
            )
        if generator.device.type != "cpu":
            raise ValueError(
                f"{fn}: generator must be a CPU torch.Generator (entries are drawn on the CPU and "
                f"then moved, so results match across devices); got one on {generator.device}."
            )
    return dtype, torch.device("cpu") if device is None else torch.device(device)


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
