"""``decompose --method``: one small typed adapter per method, in a static table.

Each :class:`Method` says what the method is (title, library function, iterative or one pass,
whether it handles missing values, whether ``--init random`` applies), checks a ``--rank`` against
the data's shape and the memory the fit would need, and calls the library function directly with
the parsed options. Adding a method means adding one adapter and one table entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._numerics import device_memory, format_bytes
from ..decomp import Callback, DecompositionResult, cp, non_negative_cp, tr_als, tt_svd, tucker
from ._common import CLIError

__all__ = ["METHODS", "FitRequest", "Method", "Rank", "cp_rank_bound", "parse_rank"]

Rank = int | tuple[int, ...]
Init = Literal["default", "random"]


@dataclass(frozen=True)
class FitRequest:
    """The parsed options a fit needs."""

    tensor: torch.Tensor
    mask: torch.Tensor | None
    rank: Rank
    init: Init
    max_iter: int
    tol: float
    seed: int
    callback: Callback | None

    def generator(self) -> torch.Generator:
        """A fresh CPU generator seeded with ``--seed`` (same draws on every device)."""
        return torch.Generator().manual_seed(self.seed)


@dataclass(frozen=True)
class Method:
    """One ``--method``: what it is, how its rank is checked, how it is called."""

    name: str
    title: str
    function: str
    iterative: bool
    handles_mask: bool
    has_init: bool
    fit: Callable[[FitRequest], DecompositionResult[Any]]
    check_rank: Callable[[str, Rank, tuple[int, ...]], None]
    working_set: Callable[[Rank, tuple[int, ...]], int]


def parse_rank(text: str) -> Rank:
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


def cp_rank_bound(shape: tuple[int, ...]) -> int:
    """``prod(shape) / max(shape)``: a CP model of this rank can already be exact."""
    return math.prod(shape) // max(shape)


def _one(rank: Rank, method: str) -> int:
    if not isinstance(rank, int):
        raise CLIError(f"--method {method} takes one integer rank; got {','.join(map(str, rank))}.")
    return rank


def _check_cp_rank(method: str, rank: Rank, shape: tuple[int, ...]) -> None:
    r = _one(rank, method)
    bound = cp_rank_bound(shape)
    if r > bound:
        raise CLIError(
            f"rank {r} is too large for a tensor of shape {shape}: at most {bound} "
            f"(= product of the dimensions / largest dimension) components are ever needed; "
            f"choose --rank {bound} or less."
        )


def _check_tucker_rank(method: str, rank: Rank, shape: tuple[int, ...]) -> None:
    if isinstance(rank, int):
        if rank > max(shape):
            raise CLIError(
                f"rank {rank} is too large for a tensor of shape {shape}: no mode has {rank} "
                "indices; choose a rank per mode with --rank r0,r1,...."
            )
        return
    if len(rank) != len(shape):
        raise CLIError(
            f"--rank for tucker needs one entry per mode ({len(shape)}); got {len(rank)}."
        )
    for n, (r, size) in enumerate(zip(rank, shape)):
        if r > size:
            raise CLIError(
                f"rank {r} is too large for mode {n} of size {size} (shape {shape}); "
                f"a Tucker rank is at most the mode's size."
            )


def _check_ring_rank(method: str, rank: Rank, shape: tuple[int, ...]) -> None:
    bound = cp_rank_bound(shape)
    for r in (rank,) if isinstance(rank, int) else rank:
        if r > bound:
            raise CLIError(
                f"rank {r} is too large for a tensor of shape {shape}: a ring of rank {bound} "
                f"(= product of the dimensions / largest dimension) can already be exact; "
                f"choose --rank {bound} or less."
            )


def _no_rank_check(method: str, rank: Rank, shape: tuple[int, ...]) -> None:
    """TT-SVD lowers ranks the unfoldings cannot support itself (the model rank is reported)."""


def _cp_working_set(rank: Rank, shape: tuple[int, ...]) -> int:
    r = rank if isinstance(rank, int) else max(rank)
    return 2 * math.prod(shape) + 3 * sum(shape) * r + len(shape) * r * r


def _tucker_working_set(rank: Rank, shape: tuple[int, ...]) -> int:
    return 3 * math.prod(shape)


def _ring_working_set(rank: Rank, shape: tuple[int, ...]) -> int:
    """The largest subchain design matrix, ``prod(others) x r_k r_{k+1}``, and the cores."""
    n = len(shape)
    ranks = [rank] * (n + 1) if isinstance(rank, int) else list(rank)
    if len(ranks) != n + 1:
        return 2 * math.prod(shape)  # the library refuses the rank with its own message
    total = math.prod(shape)
    design = max(total // shape[k] * ranks[k] * ranks[k + 1] for k in range(n))
    cores = sum(ranks[k] * shape[k] * ranks[k + 1] for k in range(n))
    return 2 * total + design + cores


def check_memory(method: Method, rank: Rank, tensor: torch.Tensor) -> None:
    """Refuse a fit whose working set cannot fit the device, before it starts."""
    shape = tuple(tensor.shape)
    need = method.working_set(rank, shape) * tensor.element_size()
    have = device_memory(tensor.device)
    if need > have:
        text = str(rank) if isinstance(rank, int) else ",".join(map(str, rank))
        raise CLIError(
            f"--method {method.name} --rank {text} on shape {shape} needs about "
            f"{format_bytes(need)} of memory, more than the {format_bytes(have)} of this "
            f"{tensor.device.type} device; choose a lower --rank."
        )


# --- the adapters: parsed options -> library call -----------------------------------------
def _fit_cp(req: FitRequest) -> DecompositionResult[Any]:
    return cp(
        req.tensor,
        _one(req.rank, "cp"),
        init="random" if req.init == "random" else "svd",
        max_iter=req.max_iter,
        tol=req.tol,
        mask=req.mask,
        generator=req.generator(),
        callback=req.callback,
    )


def _fit_ntf(req: FitRequest) -> DecompositionResult[Any]:
    return non_negative_cp(
        req.tensor,
        _one(req.rank, "ntf"),
        init="random" if req.init == "random" else "svd",
        max_iter=req.max_iter,
        tol=req.tol,
        mask=req.mask,
        generator=req.generator(),
        callback=req.callback,
    )


def _fit_tucker(req: FitRequest) -> DecompositionResult[Any]:
    return tucker(
        req.tensor,
        req.rank,
        init="random" if req.init == "random" else "hosvd",
        max_iter=req.max_iter,
        tol=req.tol,
        mask=req.mask,
        generator=req.generator(),
        callback=req.callback,
    )


def _fit_tt(req: FitRequest) -> DecompositionResult[Any]:
    return tt_svd(req.tensor, req.rank, generator=req.generator())


def _fit_tr(req: FitRequest) -> DecompositionResult[Any]:
    return tr_als(
        req.tensor,
        req.rank,
        init="random" if req.init == "random" else "svd",
        max_iter=req.max_iter,
        tol=req.tol,
        generator=req.generator(),
        callback=req.callback,
    )


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("cp", "CP", "factorch.decomp.cp", True, True, True,
               _fit_cp, _check_cp_rank, _cp_working_set),
        Method("ntf", "Non-negative CP", "factorch.decomp.non_negative_cp", True, True, True,
               _fit_ntf, _check_cp_rank, _cp_working_set),
        Method("tucker", "Tucker", "factorch.decomp.tucker", True, True, True,
               _fit_tucker, _check_tucker_rank, _tucker_working_set),
        Method("tt", "Tensor-train", "factorch.decomp.tt_svd", False, False, False,
               _fit_tt, _no_rank_check, _tucker_working_set),
        Method("tr", "Tensor-ring", "factorch.decomp.tr_als", True, False, True,
               _fit_tr, _check_ring_rank, _ring_working_set),
    )
}  # fmt: skip
