"""Random factorized tensors with O(1) dense entries.

Every constructor draws Gaussian entries in float64 on the CPU with ``generator`` and then casts
and moves them, so a seed gives the same tensor on every device (and, up to rounding, every
dtype). Scales are chosen so that the dense tensor's entries have mean square 1 on average
over the draw. Outputs are leaf tensors (``requires_grad=False``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from math import prod

import torch

from ..tensors import CPTensor, TRTensor, TTMatrix, TTTensor, TuckerTensor
from ._common import check_entries, check_rank_value, check_shape, draw, is_int, rank_tuple, resolve

__all__ = ["random_cp", "random_tr", "random_tt", "random_tt_matrix", "random_tucker"]


def random_cp(
    shape: Sequence[int],
    rank: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    normalize: bool = False,
) -> CPTensor:
    """A random rank-``rank`` CP tensor: standard normal factors, weights ``1/sqrt(R)``.

    With ``normalize=True`` the factor columns are rescaled to unit norm and the norms moved into
    the weights (same tensor). ``dtype`` defaults to ``torch.get_default_dtype()``.

    Args:
        shape: the size of each mode.
        rank: the number of components ``R``.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).
        dtype: a floating or complex dtype (default ``torch.get_default_dtype()``).
        device: where the result lives (default the CPU).
        normalize: unit-norm factor columns, the norms moved into the weights.

    Returns:
        A :class:`~factorch.tensors.CPTensor` of ``dtype`` on ``device``.

    Raises:
        TypeError: a shape or rank that is not made of ints, a bad ``dtype``, ``device`` or
            ``generator``.
        ValueError: non-positive sizes or ranks, a generator not on the CPU, or a tensor too large
            for the device's memory.

    Example:
        >>> cp = random_cp((3, 4, 5), 2, generator=torch.Generator().manual_seed(0))
        >>> cp.shape, cp.rank
        ((3, 4, 5), 2)
    """
    fn = "random_cp"
    shape = check_shape(shape, fn)
    r = check_rank_value(rank, fn, "rank")
    dt, dev = resolve(dtype, device, generator, fn)
    check_entries(sum(shape) * r, dt, dev, fn, f"{len(shape)} factors of rank {r}")
    factors = tuple(draw((s, r), generator, dt, dev) for s in shape)
    weights = torch.full((r,), 1.0 / math.sqrt(r), dtype=dt, device=dev)
    cp = CPTensor(weights, factors)
    return cp.normalize() if normalize else cp


def random_tucker(
    shape: Sequence[int],
    rank: int | Sequence[int],
    *,
    orthogonal: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> TuckerTensor:
    """A random Tucker tensor of multilinear rank ``rank`` (an int for every mode, or one per mode).

    Core entries are standard normal. Factors are normal with variance ``1/R_n``, or, with
    ``orthogonal=True``, have orthonormal columns (QR of a Gaussian matrix; needs
    ``R_n <= I_n``), the core then scaled by ``sqrt(prod I_n / R_n)`` to keep entries O(1).

    Args:
        shape: the size of each mode.
        rank: the multilinear rank: an int for every mode, or one per mode.
        orthogonal: factors with orthonormal columns (needs ``rank[n] <= shape[n]``).
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).
        dtype: a floating or complex dtype (default ``torch.get_default_dtype()``).
        device: where the result lives (default the CPU).

    Returns:
        A :class:`~factorch.tensors.TuckerTensor` of ``dtype`` on ``device``.

    Raises:
        TypeError: a shape or rank that is not made of ints, a bad ``dtype``, ``device`` or
            ``generator``.
        ValueError: non-positive sizes or ranks, a rank tuple of the wrong length, an orthogonal
            rank above its mode's size, a generator not on the CPU, or a tensor too large for the
            device's memory.

    Example:
        >>> random_tucker((3, 4, 5), (2, 2, 3), generator=torch.Generator().manual_seed(0)).rank
        (2, 2, 3)
    """
    fn = "random_tucker"
    shape = check_shape(shape, fn)
    ranks = rank_tuple(rank, len(shape), fn, f"one per mode of a {len(shape)}-way tensor")
    dt, dev = resolve(dtype, device, generator, fn)
    if orthogonal:
        for n, (s, r) in enumerate(zip(shape, ranks)):
            if r > s:
                raise ValueError(
                    f"{fn}: orthogonal factors need rank[{n}] <= shape[{n}]; got rank {r} > size "
                    f"{s}. Lower the rank or use orthogonal=False."
                )
    check_entries(
        prod(ranks) + sum(s * r for s, r in zip(shape, ranks)), dt, dev, fn, f"a rank-{ranks} core"
    )
    core = draw(ranks, generator, dt, torch.device("cpu"))
    factors = []
    for s, r in zip(shape, ranks):
        if orthogonal:
            q, _ = torch.linalg.qr(draw((s, r), generator, _wide(dt), torch.device("cpu")))
            factors.append(q.to(device=dev, dtype=dt))
        else:
            factors.append(draw((s, r), generator, dt, dev, std=1.0 / math.sqrt(r)))
    if orthogonal:
        core = core * math.sqrt(prod(s / r for s, r in zip(shape, ranks)))
    return TuckerTensor(core.to(dev), tuple(factors))


def _wide(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype.is_complex else torch.float64


def _tt_ranks(sizes: Sequence[int], rank: int | Sequence[int], fn: str) -> tuple[int, ...]:
    """TT ranks ``(1, r_1, ..., r_{N-1}, 1)``; an int is capped at the largest useful ranks
    ``min(prod_{j<k} I_j, prod_{j>=k} I_j)``; an explicit tuple above them is an error."""
    n = len(sizes)
    caps = [min(prod(sizes[:k]), prod(sizes[k:])) for k in range(n + 1)]
    if is_int(rank):
        r = check_rank_value(rank, fn, "rank")
        return (1, *(min(r, caps[k]) for k in range(1, n)), 1)
    ranks = rank_tuple(rank, n + 1, fn, f"r_0..r_{n} for a {n}-way tensor, r_0 = r_{n} = 1")
    if ranks[0] != 1 or ranks[-1] != 1:
        raise ValueError(f"{fn}: boundary ranks must be r_0 = r_{n} = 1; got {ranks}.")
    for k in range(1, n):
        if ranks[k] > caps[k]:
            raise ValueError(
                f"{fn}: rank[{k}] = {ranks[k]} exceeds the largest possible TT rank "
                f"min(prod sizes[:{k}], prod sizes[{k}:]) = {caps[k]} for sizes {tuple(sizes)}; "
                "lower it (an int rank is capped automatically)."
            )
    return ranks


def _check_cores(
    ranks: Sequence[int], sizes: Sequence[int], dtype: torch.dtype, device: torch.device, fn: str
) -> None:
    entries = sum(ranks[k] * s * ranks[k + 1] for k, s in enumerate(sizes))
    check_entries(entries, dtype, device, fn, f"cores of ranks {tuple(ranks)}")


def random_tt(
    shape: Sequence[int],
    rank: int | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> TTTensor:
    """A random tensor train.

    ``rank`` is an int (every internal rank, capped at the largest possible TT ranks
    ``min(prod_{j<k} I_j, prod_{j>=k} I_j)``) or the full tuple ``(1, r_1, ..., r_{N-1}, 1)``,
    which must not exceed those caps. Core ``k`` has entries of variance ``1/r_k``.

    Args:
        shape: the size of each mode.
        rank: an int (capped) or the full tuple ``(1, r_1, ..., r_{N-1}, 1)``.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).
        dtype: a floating or complex dtype (default ``torch.get_default_dtype()``).
        device: where the result lives (default the CPU).

    Returns:
        A :class:`~factorch.tensors.TTTensor` of ``dtype`` on ``device``.

    Raises:
        TypeError: a shape or rank that is not made of ints, a bad ``dtype``, ``device`` or
            ``generator``.
        ValueError: non-positive sizes or ranks, a rank tuple of the wrong length, boundary ranks
            other than 1 or above the caps, a generator not on the CPU, or a tensor too large for
            the device's memory.

    Example:
        >>> random_tt((2, 3, 4), 50, generator=torch.Generator().manual_seed(0)).rank
        (1, 2, 4, 1)
    """
    fn = "random_tt"
    shape = check_shape(shape, fn)
    ranks = _tt_ranks(shape, rank, fn)
    dt, dev = resolve(dtype, device, generator, fn)
    _check_cores(ranks, shape, dt, dev, fn)
    cores = tuple(
        draw((ranks[k], s, ranks[k + 1]), generator, dt, dev, std=1.0 / math.sqrt(ranks[k]))
        for k, s in enumerate(shape)
    )
    return TTTensor(cores)


def random_tr(
    shape: Sequence[int],
    rank: int | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> TRTensor:
    """A random tensor ring.

    ``rank`` is an int (every rank, ``r_0 = r_N`` included) or the full tuple
    ``(r_0, ..., r_N)`` with ``r_N = r_0``. Ranks are not capped. Core ``k`` has entries of
    variance ``1/r_k``.

    Args:
        shape: the size of each mode.
        rank: an int (every rank) or the full tuple ``(r_0, ..., r_N)`` with ``r_N = r_0``.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).
        dtype: a floating or complex dtype (default ``torch.get_default_dtype()``).
        device: where the result lives (default the CPU).

    Returns:
        A :class:`~factorch.tensors.TRTensor` of ``dtype`` on ``device``.

    Raises:
        TypeError: a shape or rank that is not made of ints, a bad ``dtype``, ``device`` or
            ``generator``.
        ValueError: non-positive sizes or ranks, a rank tuple of the wrong length or a ring that
            does not close, a generator not on the CPU, or a tensor too large for the device's
            memory.

    Example:
        >>> random_tr((3, 4), 2, generator=torch.Generator().manual_seed(0)).rank
        (2, 2, 2)
    """
    fn = "random_tr"
    shape = check_shape(shape, fn)
    n = len(shape)
    ranks = rank_tuple(rank, n + 1, fn, f"r_0..r_{n} for a {n}-way tensor, r_{n} = r_0")
    if ranks[0] != ranks[-1]:
        raise ValueError(f"{fn}: the ring must close, r_{n} = r_0; got {ranks}.")
    dt, dev = resolve(dtype, device, generator, fn)
    _check_cores(ranks, shape, dt, dev, fn)
    cores = tuple(
        draw((ranks[k], s, ranks[k + 1]), generator, dt, dev, std=1.0 / math.sqrt(ranks[k]))
        for k, s in enumerate(shape)
    )
    return TRTensor(cores)


def random_tt_matrix(
    row_shape: Sequence[int],
    col_shape: Sequence[int],
    rank: int | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> TTMatrix:
    """A random ``(prod row_shape, prod col_shape)`` TT-matrix with cores ``(r_k, m_k, n_k,
    r_{k+1})``.

    ``rank`` as in :func:`random_tt` for the merged sizes ``m_k n_k`` (an int is capped). Core
    ``k`` has entries of variance ``1/r_k``, so matrix entries are O(1); rescale for layer
    initialisation.

    Args:
        row_shape: the factorisation ``(m_1, ..., m_N)`` of the row count.
        col_shape: the factorisation ``(n_1, ..., n_N)`` of the column count (as many factors).
        rank: an int (capped) or the full tuple ``(1, r_1, ..., r_{N-1}, 1)``.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).
        dtype: a floating or complex dtype (default ``torch.get_default_dtype()``).
        device: where the result lives (default the CPU).

    Returns:
        A :class:`~factorch.tensors.TTMatrix` of ``dtype`` on ``device``.

    Raises:
        TypeError: a shape or rank that is not made of ints, a bad ``dtype``, ``device`` or
            ``generator``.
        ValueError: non-positive sizes or ranks, row and column shapes of different lengths, ranks
            as in :func:`random_tt`, a generator not on the CPU, or a tensor too large for the
            device's memory.

    Example:
        >>> random_tt_matrix((2, 3), (4, 5), 3, generator=torch.Generator().manual_seed(0)).shape
        (6, 20)
    """
    fn = "random_tt_matrix"
    row_shape = check_shape(row_shape, fn, "row_shape")
    col_shape = check_shape(col_shape, fn, "col_shape")
    if len(row_shape) != len(col_shape):
        raise ValueError(
            f"{fn}: row_shape and col_shape need the same number of factors (one pair per core); "
            f"got {row_shape} and {col_shape}."
        )
    sizes = [m * n for m, n in zip(row_shape, col_shape)]
    ranks = _tt_ranks(sizes, rank, fn)
    dt, dev = resolve(dtype, device, generator, fn)
    _check_cores(ranks, sizes, dt, dev, fn)
    cores = tuple(
        draw((ranks[k], m, n, ranks[k + 1]), generator, dt, dev, std=1.0 / math.sqrt(ranks[k]))
        for k, (m, n) in enumerate(zip(row_shape, col_shape))
    )
    return TTMatrix(cores)
