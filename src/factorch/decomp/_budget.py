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

Each format's counting is one :class:`RankFamily` object (format-neutral: pure Python on shapes,
no tensors). :mod:`factorch.nn`'s weight formats use the same objects (through
:mod:`factorch.decomp.internal`), so a layer's parameter count and the public helpers agree by
construction.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, cast, get_args

__all__ = ["BudgetFormat", "param_count", "rank_for_ratio"]

BudgetFormat = Literal["lowrank", "cp", "tucker", "tt", "tt_matrix", "tr"]

Rank = int | tuple[int, ...]
"""A rank: one int (low rank, CP; a uniform rank elsewhere) or one int per mode or bond."""


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


def _is_int(value: object) -> bool:
    """A Python or numpy integer (bools refused)."""
    return as_int(value) is not None


def as_int(value: object) -> int | None:
    """A Python or numpy integer as a Python int; None for anything else (bools included)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


def _int_tuple(rank: object) -> tuple[int, ...] | None:
    """``rank`` as a tuple of ints when it is a sequence of integers, else None."""
    if isinstance(rank, (str, bytes)) or not isinstance(rank, Sequence):
        return None
    if not all(_is_int(r) for r in rank):
        return None
    return tuple(int(r) for r in rank)


def tt_bounds(shape: Sequence[int]) -> tuple[int, ...]:
    """Largest useful rank ``min(prod(I_<k), prod(I_>=k))`` of each internal TT bond."""
    n = len(shape)
    return tuple(min(math.prod(shape[:k]), math.prod(shape[k:])) for k in range(1, n))


def chain_count(shape: Sequence[int], ranks: Sequence[int]) -> int:
    """Numbers stored by cores ``(r_k, I_k, r_{k+1})``."""
    return sum(ranks[k] * shape[k] * ranks[k + 1] for k in range(len(shape)))


def cap_tucker(ranks: Sequence[int]) -> tuple[int, ...]:
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


# --- rank families -------------------------------------------------------------------------------
class RankFamily:
    """How one format's parameter count depends on its rank, and the ranks a budget search tries.

    Subclasses set ``name`` and implement :meth:`normalise` (a user's rank to the canonical
    form, or ``ValueError``/``TypeError`` naming ``fn``), :meth:`count` (stored numbers at a
    canonical rank) and :meth:`members` (ascending family of canonical ranks, the last one
    exact). ``monotone`` says the counts increase along the family (binary search); otherwise
    the whole family is scanned. :meth:`refine` may improve the chosen member within the budget.
    """

    name: str = ""
    monotone: bool = True
    supports_fixed_modes: bool = False

    def normalise(self, shape: tuple[int, ...], rank: object, fn: str) -> Rank:
        raise NotImplementedError  # pragma: no cover - abstract

    def count(self, shape: tuple[int, ...], rank: Rank) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    def members(self, shape: tuple[int, ...], fixed: frozenset[int]) -> list[Rank]:
        raise NotImplementedError  # pragma: no cover - abstract

    def refine(
        self, shape: tuple[int, ...], rank: Rank, fixed: frozenset[int], budget: float
    ) -> Rank:
        return rank


class LowRankFamily(RankFamily):
    """``R (I_0 + prod(I_1..))``: the mode-0 unfolding at matrix rank ``R``."""

    name = "lowrank"

    def normalise(self, shape: tuple[int, ...], rank: object, fn: str) -> Rank:
        value = as_int(rank)
        if value is None or value < 1:
            raise ValueError(
                f"{fn}: rank for format={self.name!r} must be a positive int; got {rank!r}."
            )
        return value

    def count(self, shape: tuple[int, ...], rank: Rank) -> int:
        return cast(int, rank) * (shape[0] + math.prod(shape[1:]))

    def members(self, shape: tuple[int, ...], fixed: frozenset[int]) -> list[Rank]:
        return list(range(1, min(shape[0], math.prod(shape[1:])) + 1))


class CPFamily(LowRankFamily):
    """``R (sum_n I_n + 1)``: factor matrices plus the weights."""

    name = "cp"

    def count(self, shape: tuple[int, ...], rank: Rank) -> int:
        return cast(int, rank) * (sum(shape) + 1)

    def members(self, shape: tuple[int, ...], fixed: frozenset[int]) -> list[Rank]:
        return list(range(1, math.prod(shape) // max(shape) + 1))


def _tuple_rank(
    shape: tuple[int, ...], rank: object, want: int, name: str, fn: str
) -> tuple[int, ...]:
    out = _int_tuple(rank)
    if out is None or not all(r >= 1 for r in out):
        raise ValueError(
            f"{fn}: rank must be a positive int or a tuple of positive ints; got {rank!r}."
        )
    if len(out) != want:
        raise ValueError(
            f"{fn}: rank for format={name!r} needs {want} entries for a {len(shape)}-way "
            f"shape; got {out}."
        )
    return out


def _positive_int_rank(rank: object, fn: str) -> int | None:
    """``rank`` as an int when it is one (checked positive), None when it is not an int."""
    if isinstance(rank, bool):
        raise TypeError(f"{fn}: rank must be an int or a tuple of ints; got {rank!r}.")
    value = as_int(rank)
    if value is None:
        return None
    if value < 1:
        raise ValueError(f"{fn}: rank must be positive; got {value}.")
    return value


class TuckerFamily(RankFamily):
    """``prod R_n + sum_n I_n R_n``; family ``R_n = round(alpha I_n)`` then single +1 steps."""

    name = "tucker"
    monotone = False
    supports_fixed_modes = True

    def normalise(self, shape: tuple[int, ...], rank: object, fn: str) -> Rank:
        value = _positive_int_rank(rank, fn)
        if value is not None:
            return tuple(min(value, s) for s in shape)
        return _tuple_rank(shape, rank, len(shape), self.name, fn)

    def count(self, shape: tuple[int, ...], rank: Rank) -> int:
        ranks = cast(tuple[int, ...], rank)
        return math.prod(ranks) + sum(i * r for i, r in zip(shape, ranks))

    def members(self, shape: tuple[int, ...], fixed: frozenset[int]) -> list[Rank]:
        """Distinct ``R_n = clamp(round(alpha I_n))`` as alpha sweeps (0, 1], ascending."""
        alphas = sorted(
            {(k - 0.5) / s for n, s in enumerate(shape) if n not in fixed for k in range(1, s + 1)}
            | {1.0}
        )
        family: list[Rank] = []
        for a in alphas:
            ranks = [
                s if n in fixed else max(1, min(s, math.floor(a * s + 0.5)))
                for n, s in enumerate(shape)
            ]
            t = cap_tucker(ranks)
            if not family or family[-1] != t:
                family.append(t)
        return family

    def refine(
        self, shape: tuple[int, ...], rank: Rank, fixed: frozenset[int], budget: float
    ) -> Rank:
        """Raise single ranks by one, cheapest first, while the count stays within budget."""
        current = cast(tuple[int, ...], rank)
        while True:
            options = []
            for n in range(len(shape)):
                if n in fixed or current[n] >= shape[n]:
                    continue
                cand = list(current)
                cand[n] += 1
                if cap_tucker(cand) != tuple(cand):
                    continue
                c = self.count(shape, tuple(cand))
                if c <= budget:
                    options.append((c, n, tuple(cand)))
            if not options:
                return current
            current = min(options)[2]


class TTFamily(RankFamily):
    """``sum_k r_k I_k r_{k+1}`` with ``r_0 = r_N = 1``; family ``r_k = min(r, bound_k)``."""

    name = "tt"
    ring = False

    def normalise(self, shape: tuple[int, ...], rank: object, fn: str) -> Rank:
        n = len(shape)
        value = _positive_int_rank(rank, fn)
        if value is not None:
            if self.ring:
                return (value,) * (n + 1)
            return (1, *(min(value, b) for b in tt_bounds(shape)), 1)
        out = _tuple_rank(shape, rank, n + 1, self.name, fn)
        if self.ring and out[0] != out[-1]:
            raise ValueError(f"{fn}: tr ranks must close the ring (r_0 = r_N); got {out}.")
        if not self.ring and (out[0] != 1 or out[-1] != 1):
            raise ValueError(f"{fn}: tt ranks must start and end with 1; got {out}.")
        return out

    def count(self, shape: tuple[int, ...], rank: Rank) -> int:
        return chain_count(shape, cast(tuple[int, ...], rank))

    def members(self, shape: tuple[int, ...], fixed: frozenset[int]) -> list[Rank]:
        bounds = tt_bounds(shape)
        top = max(bounds, default=1)
        if self.ring:
            return [(r,) * (len(shape) + 1) for r in range(1, top + 1)]
        return [(1, *(min(r, b) for b in bounds), 1) for r in range(1, top + 1)]


class TTMatrixFamily(TTFamily):
    """TT over the merged modes ``m_k n_k`` of a TT-matrix (counts as ``tt``)."""

    name = "tt_matrix"


class TRFamily(TTFamily):
    """``sum_k r_k I_k r_{k+1}`` with ``r_0 = r_N``; family ``r_k = r``."""

    name = "tr"
    ring = True


FAMILIES: Mapping[str, RankFamily] = {
    f.name: f
    for f in (LowRankFamily(), CPFamily(), TuckerFamily(), TTFamily(), TTMatrixFamily(), TRFamily())
}


# --- the search, shared with factorch.nn's formats -----------------------------------------------
def budget_error(
    fn: str, name: str, ratio: float, shape: tuple[int, ...], rank: Rank, count: int
) -> ValueError:
    """The ``ValueError`` for a ratio below the smallest member (rank one) of a family."""
    dense = math.prod(shape)
    smallest = count / dense
    return ValueError(
        f"{fn}: ratio {ratio:g} is below the smallest {name} tensor of shape {shape} "
        f"(rank {rank} keeps {count} of {dense} parameters = {smallest:.3g}); use "
        f"ratio >= {smallest:.3g} or another format."
    )


def search_family(
    family: Sequence[Rank], count: Callable[[Rank], int], budget: float, *, monotone: bool
) -> int | None:
    """Index of the member with the largest count not above ``budget`` (None: none fits).

    ``monotone``: counts increase along ``family`` (binary search); otherwise a scan.
    """
    if not family or count(family[0]) > budget:
        return None
    if not monotone:
        within = [i for i in range(len(family)) if count(family[i]) <= budget]
        return max(within, key=lambda i: count(family[i]))
    lo, hi = 0, len(family) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(family[mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_ratio(ratio: object, fn: str) -> float:
    """A positive finite number (numpy floats accepted) as a Python float."""
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise TypeError(f"{fn}: ratio must be a number; got {type(ratio).__name__}.")
    value = float(ratio)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{fn}: ratio must be a positive finite number; got {ratio!r}.")
    return value


def family_rank_for_budget(
    family: RankFamily,
    shape: tuple[int, ...],
    ratio: float,
    fixed: frozenset[int],
    fn: str,
) -> Rank:
    """The member of ``family`` (refined) with the largest count within ``ratio * prod(shape)``."""
    budget = ratio * math.prod(shape)
    members = family.members(shape, fixed)

    def count(r: Rank) -> int:
        return family.count(shape, r)

    best = search_family(members, count, budget, monotone=family.monotone)
    if best is None:
        raise budget_error(fn, family.name, ratio, shape, members[0], count(members[0]))
    return family.refine(shape, members[best], fixed, budget)


# --- public helpers ------------------------------------------------------------------------------
def _check_format(format: object, fn: str) -> RankFamily:
    if format not in get_args(BudgetFormat):
        raise ValueError(f"{fn}: format must be one of {get_args(BudgetFormat)}; got {format!r}.")
    return FAMILIES[str(format)]


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


def check_fixed_modes(
    fixed_modes: Sequence[int], ndim: int, family: RankFamily, fn: str
) -> frozenset[int]:
    """Normalised ``fixed_modes`` (only families that support them accept any)."""
    if not fixed_modes:
        return frozenset()
    if not family.supports_fixed_modes:
        raise ValueError(
            f"{fn}: fixed_modes only applies to format='tucker'; got format={family.name!r}."
        )
    for m in fixed_modes:
        if not _is_int(m) or not -ndim <= int(m) < ndim:
            raise IndexError(
                f"{fn}: fixed_modes entries must be modes in [0, {ndim - 1}]; got {m!r}."
            )
    return frozenset(int(m) % ndim for m in fixed_modes)


def param_count(
    shape: Sequence[int] | tuple[Sequence[int], Sequence[int]], rank: Rank, *, format: BudgetFormat
) -> int:
    """Number of stored parameters of a ``format`` tensor of ``shape`` at ``rank``.

    ``shape`` is the tensor shape, or for ``format="tt_matrix"`` the pair ``(row_shape,
    col_shape)``. ``rank`` is an int (``lowrank``, ``cp``; for the others an int is expanded to a
    uniform rank capped at each mode's bound) or a tuple (``tucker``: one per mode; ``tt`` and
    ``tt_matrix``: ``N + 1`` entries starting and ending with 1; ``tr``: ``N + 1`` entries with
    ``r_0 = r_N``). See the module docstring for the formulas. Pure Python, no tensors; not
    differentiable (integer arithmetic).

    Args:
        shape: the dense tensor shape (or ``(row_shape, col_shape)`` for ``tt_matrix``).
        rank: the format's rank (numpy integers accepted).
        format: ``"lowrank"``, ``"cp"``, ``"tucker"``, ``"tt"``, ``"tt_matrix"`` or ``"tr"``.

    Returns:
        The number of stored numbers (an int).

    Raises:
        TypeError: a shape or rank that is not made of integers.
        ValueError: an unknown format, a bad shape or a rank that does not fit it.

    Example:
        >>> param_count((12, 20), 3, format="lowrank")
        96
    """
    fn = "param_count"
    family = _check_format(format, fn)
    tshape = _tensor_shape(shape, family.name, fn)
    return family.count(tshape, family.normalise(tshape, rank, fn))


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
        Pure Python; not differentiable.

    Raises:
        ValueError: ``ratio`` is not positive, or is below the count of the smallest member
            (rank one), with the smallest achievable ratio in the message.

    Example:
        >>> rank_for_ratio((1024, 1024), 0.1, format="lowrank")
        51
    """
    fn = "rank_for_ratio"
    family = _check_format(format, fn)
    tshape = _tensor_shape(shape, family.name, fn)
    value = check_ratio(ratio, fn)
    fixed = check_fixed_modes(fixed_modes, len(tshape), family, fn)
    return family_rank_for_budget(family, tshape, value, fixed, fn)
