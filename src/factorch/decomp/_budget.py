"""Parameter counts of factorized formats and the rank that meets a compression ratio.

``param_count(shape, rank, format=...)`` is the number of numbers a factorized tensor stores;
``rank_for_ratio(shape, ratio, format=...)`` returns the rank whose count is the largest one not
above ``ratio * prod(shape)`` (the dense count) within a one-parameter family of ranks:

=========  ==============================================  =====================================
format     stored numbers                                  rank family searched
=========  ==============================================  =====================================
lowrank    ``R (I_0 + prod(I_1..))`` (mode-0 unfolding)    ``R = 1 .. min(I_0, prod(I_1..))``
cp         ``R (sum_n I_n + 1)`` (factors + weights)       ``R = 1 .. prod(I) / max(I)``
tucker     ``prod R_n + sum_n I_n R_n``                    ``R_n = round(alpha I_n)``, then +1s
tt         ``sum_k r_k I_k r_{k+1}``, ``r_0 = r_N = 1``    ``r_k = min(r, bound_k)``
tt_matrix  TT over merged modes ``m_k n_k``                as tt
tr         ``sum_k r_k I_k r_{k+1}``, ``r_0 = r_N``        ``r_k = min(r, bound_k)``, ``r_0 = r``
=========  ==============================================  =====================================

For Tucker, after the uniform-fraction member is chosen, single ranks are raised by one (the
cheapest first) while the count stays within budget.
``bound_k = min(prod(I_0..I_{k-1}), prod(I_k..))`` is the rank of the ``k``-th sequential unfolding,
beyond which TT ranks cannot help; Tucker ranks obey ``R_n <= I_n`` and
``R_n <= prod_{m != n} R_m``. Every family stops at its full (exact) rank, so a ratio above the
full-rank count returns the full rank. A ratio below the smallest member (rank one) raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

__all__ = ["BudgetFormat", "param_count", "rank_for_ratio"]

BudgetFormat = Literal["lowrank", "cp", "tucker", "tt", "tt_matrix", "tr"]

Rank = int | tuple[int, ...]


def _check_shape(shape: object, fn: str, name: str = "shape") -> tuple[int, ...]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise TypeError(
            f"{fn}: {name} must be a non-empty sequence of positive ints; got {shape!r}."
        )
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"{fn}: {name} must contain positive ints; got {tuple(shape)!r}.")
        out.append(int(s))
    return tuple(out)


def _check_format(format: object, fn: str) -> str:
    if format not in get_args(BudgetFormat):
        raise ValueError(f"{fn}: format must be one of {get_args(BudgetFormat)}; got {format!r}.")
    return str(format)


def _tensor_shape(shape: object, format: str, fn: str) -> tuple[int, ...]:
    """The shape the count is taken over (merged row/col modes for ``tt_matrix``)."""
    if format != "tt_matrix":
        return _check_shape(shape, fn)
    if (
        not isinstance(shape, Sequence)
        or len(shape) != 2
        or not all(isinstance(s, Sequence) and not isinstance(s, str) for s in shape)
    ):
        raise TypeError(
            f"{fn}: for format='tt_matrix' shape must be a pair (row_shape, col_shape); "
            f"got {shape!r}."
        )
    rows = _check_shape(shape[0], fn, "row_shape")
    cols = _check_shape(shape[1], fn, "col_shape")
    if len(rows) != len(cols):
        raise ValueError(
            f"{fn}: row_shape and col_shape need the same number of factors (pad with 1s); "
            f"got {rows} and {cols}."
        )
    return tuple(m * n for m, n in zip(rows, cols))


def _tt_bounds(shape: Sequence[int]) -> tuple[int, ...]:
    """Largest useful rank ``min(prod(I_<k), prod(I_>=k))`` of each internal TT bond."""
    n = len(shape)
    return tuple(min(math.prod(shape[:k]), math.prod(shape[k:])) for k in range(1, n))


def _chain_count(shape: Sequence[int], ranks: Sequence[int]) -> int:
    return sum(ranks[k] * shape[k] * ranks[k + 1] for k in range(len(shape)))


def _count(shape: tuple[int, ...], rank: Rank, format: str) -> int:
    if isinstance(rank, int):
        if format == "lowrank":
            return rank * (shape[0] + math.prod(shape[1:]))
        return rank * (sum(shape) + 1)  # cp
    if format == "tucker":
        return math.prod(rank) + sum(i * r for i, r in zip(shape, rank))
    return _chain_count(shape, rank)


def _normalise_rank(shape: tuple[int, ...], rank: object, format: str, fn: str) -> Rank:
    n = len(shape)
    if format in ("lowrank", "cp"):
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(
                f"{fn}: rank for format={format!r} must be a positive int; got {rank!r}."
            )
        return int(rank)
    if isinstance(rank, bool):
        raise TypeError(f"{fn}: rank must be an int or a tuple of ints; got {rank!r}.")
    if isinstance(rank, int):
        if rank < 1:
            raise ValueError(f"{fn}: rank must be positive; got {rank}.")
        if format == "tucker":
            return tuple(min(rank, s) for s in shape)
        if format == "tr":
            return (rank,) * (n + 1)
        return (1, *(min(rank, b) for b in _tt_bounds(shape)), 1)
    if not isinstance(rank, Sequence) or not all(
        isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rank
    ):
        raise ValueError(
            f"{fn}: rank must be a positive int or a tuple of positive ints; got {rank!r}."
        )
    out = tuple(int(r) for r in rank)
    want = n if format == "tucker" else n + 1
    if len(out) != want:
        raise ValueError(
            f"{fn}: rank for format={format!r} needs {want} entries for a {n}-way shape; got {out}."
        )
    if format == "tt" or format == "tt_matrix":
        if out[0] != 1 or out[-1] != 1:
            raise ValueError(f"{fn}: tt ranks must start and end with 1; got {out}.")
    if format == "tr" and out[0] != out[-1]:
        raise ValueError(f"{fn}: tr ranks must close the ring (r_0 = r_N); got {out}.")
    return out


def param_count(
    shape: Sequence[int] | tuple[Sequence[int], Sequence[int]], rank: Rank, *, format: BudgetFormat
) -> int:
    """Number of stored parameters of a ``format`` tensor of ``shape`` at ``rank``.

    ``shape`` is the tensor shape, or for ``format="tt_matrix"`` the pair ``(row_shape,
    col_shape)``. ``rank`` is an int (``lowrank``, ``cp``; for the others an int is expanded to a
    uniform rank capped at each mode's bound) or a tuple (``tucker``: one per mode; ``tt`` and
    ``tt_matrix``: ``N + 1`` entries starting and ending with 1; ``tr``: ``N + 1`` entries with
    ``r_0 = r_N``). See the module docstring for the formulas. Pure Python, no tensors.
    """
    fn = "param_count"
    fmt = _check_format(format, fn)
    tshape = _tensor_shape(shape, fmt, fn)
    return _count(tshape, _normalise_rank(tshape, rank, fmt, fn), fmt)


def _tucker_family(shape: tuple[int, ...], fixed: frozenset[int]) -> list[tuple[int, ...]]:
    """Distinct rank tuples ``R_n = clamp(round(alpha I_n))`` as alpha sweeps (0, 1], ascending."""
    alphas = sorted(
        {(k - 0.5) / s for n, s in enumerate(shape) if n not in fixed for k in range(1, s + 1)}
        | {1.0}
    )
    family: list[tuple[int, ...]] = []
    for a in alphas:
        ranks = [
            s if n in fixed else max(1, min(s, math.floor(a * s + 0.5)))
            for n, s in enumerate(shape)
        ]
        t = _cap_tucker(ranks)
        if not family or family[-1] != t:
            family.append(t)
    return family


def _cap_tucker(ranks: Sequence[int]) -> tuple[int, ...]:
    """Cap each Tucker rank at the product of the others (larger ranks are redundant)."""
    out = list(ranks)
    changed = True
    while changed:
        changed = False
        for n in range(len(out)):
            others = math.prod(out[:n] + out[n + 1 :])
            if out[n] > others:
                out[n] = others
                changed = True
    return tuple(out)


def _tucker_fill(
    shape: tuple[int, ...], rank: tuple[int, ...], fixed: frozenset[int], budget: float
) -> tuple[int, ...]:
    """Raise single Tucker ranks by one, cheapest first, while the count stays within budget."""
    current = rank
    while True:
        options = []
        for n in range(len(shape)):
            if n in fixed or current[n] >= shape[n]:
                continue
            cand = list(current)
            cand[n] += 1
            if _cap_tucker(cand) != tuple(cand):
                continue
            c = _count(shape, tuple(cand), "tucker")
            if c <= budget:
                options.append((c, n, tuple(cand)))
        if not options:
            return current
        current = min(options)[2]


def rank_for_ratio(
    shape: Sequence[int] | tuple[Sequence[int], Sequence[int]],
    ratio: float,
    *,
    format: BudgetFormat,
    fixed_modes: Sequence[int] = (),
) -> Rank:
    """The rank of a ``format`` tensor whose parameter count is closest to, not above,
    ``ratio * prod(shape)``.

    Args:
        shape: the dense tensor shape, or ``(row_shape, col_shape)`` for ``format="tt_matrix"``
            (the dense count is then ``prod(row_shape) * prod(col_shape)``).
        ratio: target fraction of the dense parameter count, a positive number (values above
            the full-rank fraction give the full, exact rank).
        format: ``"lowrank"``, ``"cp"``, ``"tucker"``, ``"tt"``, ``"tt_matrix"`` or ``"tr"``.
        fixed_modes: for ``tucker`` only, modes kept at full rank (e.g. the spatial modes of a
            convolution kernel in a Tucker-2 layer).

    Returns:
        An int for ``lowrank`` and ``cp``; a tuple for ``tucker`` (one per mode), ``tt``,
        ``tt_matrix`` and ``tr`` (``N + 1`` bond ranks). The search runs over the one-parameter
        families in the module docstring, so other rank tuples with a closer count may exist.

    Raises:
        ValueError: ``ratio`` is not positive, or is below the count of the smallest member
            (rank one), with the smallest achievable ratio in the message.

    Example:
        >>> rank_for_ratio((1024, 1024), 0.1, format="lowrank")
        51
    """
    fn = "rank_for_ratio"
    fmt = _check_format(format, fn)
    tshape = _tensor_shape(shape, fmt, fn)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TypeError(f"{fn}: ratio must be a number; got {type(ratio).__name__}.")
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"{fn}: ratio must be a positive finite number; got {ratio!r}.")
    fixed = frozenset()
    if fixed_modes:
        if fmt != "tucker":
            raise ValueError(
                f"{fn}: fixed_modes only applies to format='tucker'; got format={fmt!r}."
            )
        n = len(tshape)
        for m in fixed_modes:
            if isinstance(m, bool) or not isinstance(m, int) or not -n <= m < n:
                raise IndexError(
                    f"{fn}: fixed_modes entries must be modes in [0, {n - 1}]; got {m!r}."
                )
        fixed = frozenset(m % n for m in fixed_modes)
    dense = math.prod(tshape)
    budget = ratio * dense

    family: list[Rank]
    if fmt == "lowrank":
        family = list(range(1, min(tshape[0], math.prod(tshape[1:])) + 1))
    elif fmt == "cp":
        family = list(range(1, dense // max(tshape) + 1))
    elif fmt == "tucker":
        family = list(_tucker_family(tshape, fixed))
    else:
        bounds = _tt_bounds(tshape)
        top = max(bounds, default=1)
        if fmt == "tr":
            family = [(r,) * (len(tshape) + 1) for r in range(1, top + 1)]
        else:
            family = [(1, *(min(r, b) for b in bounds), 1) for r in range(1, top + 1)]

    def count(i: int) -> int:
        return _count(tshape, family[i], fmt)

    if count(0) > budget:
        smallest = count(0) / dense
        raise ValueError(
            f"{fn}: ratio {ratio:g} is below the smallest {fmt} tensor of shape {tshape} "
            f"(rank {family[0]} keeps {count(0)} of {dense} parameters = {smallest:.3g}); use "
            f"ratio >= {smallest:.3g} or another format."
        )
    if fmt == "tucker":  # short family, counts not strictly monotone after capping: scan
        within = [i for i in range(len(family)) if count(i) <= budget]
        best = family[max(within, key=count)]
        return _tucker_fill(tshape, best, fixed, budget)
    # counts increase along the other families: binary search for the last one in budget
    lo, hi = 0, len(family) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return family[lo]
