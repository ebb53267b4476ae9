"""Proximal operators of factor constraints and penalties, for AO-ADMM fits.

A :class:`ProximalOperator` is a function ``g`` of one factor matrix ``A`` (``I x R``, one column
per component) used through its proximal map

    prox_{g / rho}(V) = argmin_Z  g(Z) + (rho / 2) ||Z - V||_F^2,

the step the ADMM inner loop of :func:`~factorch.decomp.constrained_cp` (and of
:func:`~factorch.decomp.parafac2` with ``constraints=``) takes for that mode. A constraint is
the indicator function of a set (its prox is the Euclidean projection; ``penalty`` is 0 on the
set); a penalty adds ``g(A)`` to the objective ``1/2 ||X - X_hat||^2``, in the data's units.

To add your own, subclass :class:`ProximalOperator` and implement ``prox``; override ``penalty``
when ``g`` is not an indicator (the objective the fits report is then right)::

    class Positive(ProximalOperator):
        def prox(self, factor, rho):
            return factor.clamp_min(1e-3)

Every built-in is a frozen dataclass checked on creation, works column by column (or entry by
entry) on any device and dtype, and is exact: its output satisfies its constraint to rounding
(``Simplex`` columns sum to ``total``, ``Monotone`` columns are monotone, ...).

References: N. Parikh and S. Boyd, "Proximal algorithms", Foundations and Trends in
Optimization 1(3), 2014 (soft thresholding, projections, block soft thresholding); J. Duchi et
al., "Efficient projections onto the l1-ball", ICML 2008 (simplex and L1 ball); T. Robertson, F.
Wright and R. Dykstra, "Order restricted statistical inference", Wiley 1988 (isotonic
regression by pool-adjacent-violators and its min-max formula); R. Bro and N. Sidiropoulos,
"Least squares algorithms under unimodality and non-negativity constraints", J. Chemometrics
12(4), 1998, and Q. Stout, "Unimodal regression via prefix isotonic regression", Comput. Stat.
Data Anal. 53(2), 2008 (exact unimodal fit).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

__all__ = [
    "L1",
    "L2",
    "Box",
    "GroupLasso",
    "HardSparsity",
    "L1Ball",
    "L2Ball",
    "Monotone",
    "NonNegative",
    "ProximalOperator",
    "Ridge",
    "Simplex",
    "Smooth",
    "Unimodal",
    "UnitNorm",
]

# Columns at most this long take the vectorised O(n^2) isotonic regression; longer ones the
# O(n) pool-adjacent-violators loop on the host.
_ISOTONIC_DENSE_MAX = 512


class ProximalOperator(ABC):
    """A constraint or penalty ``g`` on one factor matrix, used through its proximal map.

    Subclasses implement :meth:`prox`; penalties also :meth:`penalty` (constraints keep the
    default 0). Instances should be immutable: a fit may call them many times.

    Example:
        >>> from factorch.decomp.constraints import ProximalOperator
        >>> class Clip(ProximalOperator):
        ...     def prox(self, factor, rho):
        ...         return factor.clamp(-1.0, 1.0)
        >>> Clip().prox(torch.tensor([[2.0, -0.5]]), 1.0)
        tensor([[ 1.0000, -0.5000]])
    """

    @abstractmethod
    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        """``argmin_Z g(Z) + (rho / 2) ||Z - factor||_F^2`` for ``factor`` of shape ``(I, R)``
        and a step ``rho > 0``; returns a new tensor of the same shape, dtype and device."""

    def penalty(self, factor: torch.Tensor) -> float:
        """``g(factor)`` for a factor the prox returned (0 for a constraint)."""
        return 0.0

    @property
    def pins_scale(self) -> bool:
        """True when the constraint fixes the factor's magnitude (a simplex, unit columns, a
        bounded box or ball), False for cones and penalties (the default). A fit of data
        rescaled for its numerics then keeps that mode in the data's units and moves the scale
        through the other modes."""
        return False


def _check_number(value: object, cls: str, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{cls}: {name} must be a float; got {type(value).__name__}.")
    value = float(value)
    ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        what = "a finite positive" if positive else "a finite non-negative"
        raise ValueError(f"{cls}: {name} must be {what} float; got {value}.")
    return value


def _check_count(value: object, cls: str, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{cls}: {name} must be a positive int; got {type(value).__name__}.")
    count = int(value)
    if count < 1:
        raise ValueError(f"{cls}: {name} must be a positive int; got {count}.")
    return count


# --- constraints (projections) -------------------------------------------------------------


@dataclass(frozen=True)
class NonNegative(ProximalOperator):
    """``A >= 0`` entry-wise (projection: ``max(A, 0)``).

    Example:
        >>> from factorch.decomp.constraints import NonNegative
        >>> NonNegative().prox(torch.tensor([[-1.0, 2.0]]), 1.0)
        tensor([[0., 2.]])
    """

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        return factor.clamp_min(0.0)


@dataclass(frozen=True)
class Box(ProximalOperator):
    """``low <= A <= high`` entry-wise (projection: clamping). ``low`` may be ``-inf`` and
    ``high`` ``inf``.

    Args:
        low: the lower bound (``-inf`` for none).
        high: the upper bound (``inf`` for none), at least ``low``.

    Raises:
        TypeError: a bound that is not a number, or NaN.
        ValueError: ``low > high``.

    Example:
        >>> from factorch.decomp.constraints import Box
        >>> Box(0.0, 1.0).prox(torch.tensor([[-1.0, 0.5, 2.0]]), 1.0)
        tensor([[0.0000, 0.5000, 1.0000]])
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise TypeError(f"Box: {name} must be a float; got {value!r}.")
        if not self.low <= self.high:
            raise ValueError(f"Box: low must be <= high; got low={self.low}, high={self.high}.")

    @property
    def pins_scale(self) -> bool:
        return not (self.low in (0.0, -math.inf) and self.high in (0.0, math.inf))

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        return factor.clamp(min=float(self.low), max=float(self.high))


@dataclass(frozen=True)
class Simplex(ProximalOperator):
    """Each column non-negative with entries summing to ``total`` (projection by sorting,
    Duchi et al. 2008).

    Args:
        total: the sum of each column, positive (default 1).

    Raises:
        TypeError: ``total`` that is not a number.
        ValueError: ``total`` that is not finite and positive.

    Example:
        >>> from factorch.decomp.constraints import Simplex
        >>> Simplex().prox(torch.tensor([[2.0], [0.0]]), 1.0)
        tensor([[1.],
                [0.]])
    """

    total: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "total", _check_number(self.total, "Simplex", "total", positive=True)
        )

    @property
    def pins_scale(self) -> bool:
        return True

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        return _simplex(factor, self.total)


@dataclass(frozen=True)
class L1Ball(ProximalOperator):
    """Each column with L1 norm at most ``radius`` (TensorLy's ``soft_sparsity``): columns
    inside the ball are kept, the others projected onto its surface.

    Args:
        radius: the largest L1 norm of a column, finite and non-negative.

    Raises:
        TypeError: ``radius`` that is not a number.
        ValueError: ``radius`` that is not a finite non-negative number.

    Example:
        >>> from factorch.decomp.constraints import L1Ball
        >>> L1Ball(1.0).prox(torch.tensor([[3.0], [0.0]]), 1.0)
        tensor([[1.],
                [0.]])
    """

    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", _check_number(self.radius, "L1Ball", "radius"))

    @property
    def pins_scale(self) -> bool:
        return True

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        if self.radius == 0:
            return torch.zeros_like(factor)
        inside = factor.abs().sum(0, keepdim=True) <= self.radius
        projected = _simplex(factor.abs(), self.radius) * factor.sign()
        return torch.where(inside, factor, projected)


@dataclass(frozen=True)
class L2Ball(ProximalOperator):
    """Each column with Euclidean norm at most ``radius`` (longer columns are shrunk onto the
    sphere).

    Args:
        radius: the largest Euclidean norm of a column, finite and non-negative.

    Raises:
        TypeError: ``radius`` that is not a number.
        ValueError: ``radius`` that is not a finite non-negative number.

    Example:
        >>> from factorch.decomp.constraints import L2Ball
        >>> L2Ball(1.0).prox(torch.tensor([[3.0], [4.0]]), 1.0)
        tensor([[0.6000],
                [0.8000]])
    """

    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", _check_number(self.radius, "L2Ball", "radius"))

    @property
    def pins_scale(self) -> bool:
        return True

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        norms = torch.linalg.vector_norm(factor, dim=0, keepdim=True)
        return factor * (self.radius / norms.clamp_min(self.radius)).nan_to_num(0.0)


@dataclass(frozen=True)
class UnitNorm(ProximalOperator):
    """Each column of unit Euclidean norm (a non-convex set; the projection divides by the norm
    and maps a zero column to the constant unit vector). It fixes the scale of a mode, the role
    TensorLy's ``normalize`` plays.

    Example:
        >>> from factorch.decomp.constraints import UnitNorm
        >>> UnitNorm().prox(torch.tensor([[3.0, 0.0], [4.0, 0.0]]), 1.0)
        tensor([[0.6000, 0.7071],
                [0.8000, 0.7071]])
    """

    @property
    def pins_scale(self) -> bool:
        return True

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        norms = torch.linalg.vector_norm(factor, dim=0, keepdim=True)
        fill = torch.full_like(factor, 1.0 / math.sqrt(factor.shape[0]))
        return torch.where(norms > 0, factor / torch.where(norms > 0, norms, 1.0), fill)


@dataclass(frozen=True)
class Monotone(ProximalOperator):
    """Each column non-decreasing (``decreasing=True``: non-increasing) down the rows, by exact
    isotonic regression (least-squares projection onto the monotone cone).

    Args:
        decreasing: non-increasing columns instead of non-decreasing ones.

    Raises:
        TypeError: ``decreasing`` that is not a bool.

    Example:
        >>> from factorch.decomp.constraints import Monotone
        >>> Monotone().prox(torch.tensor([[1.0], [3.0], [2.0]]), 1.0)
        tensor([[1.0000],
                [2.5000],
                [2.5000]])
    """

    decreasing: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.decreasing, bool):
            raise TypeError(
                f"Monotone: decreasing must be a bool; got {type(self.decreasing).__name__}."
            )

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        if self.decreasing:
            return -_isotonic(-factor)
        return _isotonic(factor)


@dataclass(frozen=True)
class Unimodal(ProximalOperator):
    """Each column unimodal down the rows (non-decreasing up to a peak, non-increasing after
    it), by the exact least-squares fit: the best split into an increasing prefix and a
    decreasing suffix (Bro and Sidiropoulos 1998; Stout 2008), ``O(I)`` per column on the host.
    ``nonneg=True`` also keeps the columns non-negative (the exact fit over both sets).

    Args:
        nonneg: also keep the columns non-negative.

    Raises:
        TypeError: ``nonneg`` that is not a bool.

    Example:
        >>> from factorch.decomp.constraints import Unimodal
        >>> Unimodal().prox(torch.tensor([[1.0], [3.0], [1.0], [2.0]]), 1.0)
        tensor([[1.0000],
                [3.0000],
                [1.5000],
                [1.5000]])
    """

    nonneg: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.nonneg, bool):
            raise TypeError(f"Unimodal: nonneg must be a bool; got {type(self.nonneg).__name__}.")

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        cols = factor.detach().to("cpu", torch.float64).mT.tolist()
        out = [_unimodal(col, self.nonneg) for col in cols]
        return torch.tensor(out, dtype=torch.float64).mT.to(factor.device, factor.dtype)


@dataclass(frozen=True)
class HardSparsity(ProximalOperator):
    """At most ``count`` non-zero entries (in the whole factor, or in each column with
    ``per_column=True``): keeps the largest magnitudes (a non-convex projection, TensorLy's
    ``hard_sparsity``). ``unit_norm=True`` then scales the result to unit Frobenius norm
    (TensorLy's ``normalized_sparsity``).

    Args:
        count: the number of non-zero entries kept, a positive int.
        per_column: keep ``count`` entries in each column instead of in the whole factor.
        unit_norm: scale the result to unit Frobenius norm.

    Raises:
        TypeError: ``count`` that is not an int, or flags that are not bools.
        ValueError: ``count`` below 1.

    Example:
        >>> from factorch.decomp.constraints import HardSparsity
        >>> HardSparsity(1).prox(torch.tensor([[1.0], [-3.0], [2.0]]), 1.0)
        tensor([[ 0.],
                [-3.],
                [ 0.]])
    """

    count: int
    per_column: bool = False
    unit_norm: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", _check_count(self.count, "HardSparsity", "count"))
        for name in ("per_column", "unit_norm"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"HardSparsity: {name} must be a bool; got "
                    f"{type(getattr(self, name)).__name__}."
                )

    @property
    def pins_scale(self) -> bool:
        return self.unit_norm

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        flat = factor if self.per_column else factor.reshape(-1, 1)
        k = min(self.count, flat.shape[0])
        keep = flat.abs().topk(k, dim=0).indices
        out = torch.zeros_like(flat).scatter_(0, keep, flat.gather(0, keep)).reshape(factor.shape)
        if self.unit_norm:
            norm = torch.linalg.vector_norm(out)
            out = out / norm if float(norm) > 0 else out
        return out


# --- penalties ------------------------------------------------------------------------------


@dataclass(frozen=True)
class L1(ProximalOperator):
    """Penalty ``weight * sum |A|`` (soft thresholding by ``weight / rho``); ``nonneg=True``
    also keeps ``A >= 0`` (a sparse non-negative factor).

    Args:
        weight: the penalty weight, finite and non-negative.
        nonneg: also keep the factor non-negative.

    Raises:
        TypeError: ``weight`` that is not a number, or ``nonneg`` that is not a bool.
        ValueError: ``weight`` that is negative or not finite.

    Example:
        >>> from factorch.decomp.constraints import L1
        >>> L1(1.0).prox(torch.tensor([[3.0], [0.5]]), 1.0)
        tensor([[2.],
                [0.]])
    """

    weight: float
    nonneg: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_number(self.weight, "L1", "weight"))
        if not isinstance(self.nonneg, bool):
            raise TypeError(f"L1: nonneg must be a bool; got {type(self.nonneg).__name__}.")

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        t = self.weight / rho
        if self.nonneg:
            return (factor - t).clamp_min(0.0)
        return factor - factor.clamp(-t, t)

    def penalty(self, factor: torch.Tensor) -> float:
        return self.weight * float(factor.abs().sum())


@dataclass(frozen=True)
class L2(ProximalOperator):
    """Penalty ``weight * ||A||_F`` (block soft thresholding, TensorLy's ``l2_reg``): shrinks
    the whole factor towards 0 and sets it to 0 once its norm is below ``weight / rho``.

    Args:
        weight: the penalty weight, finite and non-negative.

    Raises:
        TypeError: ``weight`` that is not a number.
        ValueError: ``weight`` that is not a finite non-negative number.

    Example:
        >>> from factorch.decomp.constraints import L2
        >>> L2(1.0).prox(torch.tensor([[3.0], [4.0]]), 1.0)
        tensor([[2.4000],
                [3.2000]])
    """

    weight: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_number(self.weight, "L2", "weight"))

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        t = self.weight / rho
        norm = float(torch.linalg.vector_norm(factor))
        return factor * (1.0 - t / norm) if norm > t else torch.zeros_like(factor)

    def penalty(self, factor: torch.Tensor) -> float:
        return self.weight * float(torch.linalg.vector_norm(factor))


@dataclass(frozen=True)
class Ridge(ProximalOperator):
    """Penalty ``weight * ||A||_F^2`` (TensorLy's ``l2_square_reg``): prox
    ``rho V / (rho + 2 weight)``.

    Args:
        weight: the penalty weight, finite and non-negative.

    Raises:
        TypeError: ``weight`` that is not a number.
        ValueError: ``weight`` that is not a finite non-negative number.

    Example:
        >>> from factorch.decomp.constraints import Ridge
        >>> Ridge(0.5).prox(torch.ones(2, 1), 1.0)
        tensor([[0.5000],
                [0.5000]])
    """

    weight: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_number(self.weight, "Ridge", "weight"))

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        return factor * (rho / (rho + 2.0 * self.weight))

    def penalty(self, factor: torch.Tensor) -> float:
        return self.weight * float(factor.square().sum())


@dataclass(frozen=True)
class GroupLasso(ProximalOperator):
    """Penalty ``weight * sum_i ||A[i, :]||_2`` (rows are groups: a row is zeroed as a whole,
    dropping that index from every component; Yuan and Lin 2006).

    Args:
        weight: the penalty weight, finite and non-negative.

    Raises:
        TypeError: ``weight`` that is not a number.
        ValueError: ``weight`` that is not a finite non-negative number.

    Example:
        >>> from factorch.decomp.constraints import GroupLasso
        >>> GroupLasso(1.0).prox(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), 1.0)
        tensor([[2.4000, 3.2000],
                [0.0000, 0.0000]])
    """

    weight: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_number(self.weight, "GroupLasso", "weight"))

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        t = self.weight / rho
        norms = torch.linalg.vector_norm(factor, dim=1, keepdim=True)
        return factor * (1.0 - t / norms.clamp_min(t)).nan_to_num(0.0)

    def penalty(self, factor: torch.Tensor) -> float:
        return self.weight * float(torch.linalg.vector_norm(factor, dim=1).sum())


@dataclass(frozen=True)
class Smooth(ProximalOperator):
    """Penalty ``weight * sum_r ||D a_r||^2`` with ``D`` the second difference along the rows
    (``(D a)_i = a_{i-1} - 2 a_i + a_{i+1}``): smooth columns, straight lines cost nothing.

    The prox solves ``(2 weight D^T D + rho I) Z = rho V``; ``D^T D`` is diagonalised once per
    column length (``eigh``, cached), so each call costs one ``I x I`` by ``I x R`` product pair.

    Args:
        weight: the penalty weight, finite and non-negative.

    Raises:
        TypeError: ``weight`` that is not a number.
        ValueError: ``weight`` that is not a finite non-negative number.

    Example:
        >>> from factorch.decomp.constraints import Smooth
        >>> line = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
        >>> torch.allclose(Smooth(10.0).prox(line, 1.0), line)  # a straight line costs nothing
        True
    """

    weight: float
    _cache: dict[tuple[int, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _check_number(self.weight, "Smooth", "weight"))

    def _basis(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.shape[0], like.dtype, like.device)
        if key not in self._cache:
            d = _second_difference(like.shape[0], torch.float64)
            vals, vecs = torch.linalg.eigh(d.mT @ d)
            self._cache[key] = (
                vals.clamp_min(0.0).to(like.device, like.dtype),
                vecs.to(like.device, like.dtype),
            )
        return self._cache[key]

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        if factor.shape[0] < 3 or self.weight == 0:
            return factor.clone()
        vals, vecs = self._basis(factor)
        gain = rho / (rho + 2.0 * self.weight * vals)
        return vecs @ (gain.unsqueeze(1) * (vecs.mT @ factor))

    def penalty(self, factor: torch.Tensor) -> float:
        if factor.shape[0] < 3:
            return 0.0
        diff = factor[:-2] - 2.0 * factor[1:-1] + factor[2:]
        return self.weight * float(diff.square().sum())


# --- kernels -----------------------------------------------------------------------------------


def _second_difference(n: int, dtype: torch.dtype) -> torch.Tensor:
    d = torch.zeros(n - 2, n, dtype=dtype)
    idx = torch.arange(n - 2)
    d[idx, idx], d[idx, idx + 1], d[idx, idx + 2] = 1.0, -2.0, 1.0
    return d


def _simplex(factor: torch.Tensor, total: float) -> torch.Tensor:
    """Each column projected onto ``{a >= 0, sum a = total}`` (sort-based, exact)."""
    n = factor.shape[0]
    srt = factor.sort(dim=0, descending=True).values
    cssv = srt.cumsum(0) - total
    ks = torch.arange(1, n + 1, dtype=factor.dtype, device=factor.device).unsqueeze(1)
    cond = srt - cssv / ks > 0
    cond[0] = True  # true in exact arithmetic; rounding may lose it when |v| >> total
    # The last k where the condition holds (it always holds at k = 1).
    k = (cond * torch.arange(1, n + 1, device=factor.device).unsqueeze(1)).amax(0)
    theta = cssv.gather(0, (k - 1).unsqueeze(0)) / k.to(factor.dtype).unsqueeze(0)
    return (factor - theta).clamp_min(0.0)


def _isotonic(factor: torch.Tensor) -> torch.Tensor:
    """Non-decreasing least-squares fit of each column."""
    n = factor.shape[0]
    if n <= 1:
        return factor.clone()
    if n > _ISOTONIC_DENSE_MAX:
        cols = factor.detach().to("cpu", torch.float64).mT.tolist()
        fitted = [_pava(col) for col in cols]
        return torch.tensor(fitted, dtype=torch.float64).mT.to(factor.device, factor.dtype)
    # Min-max formula: x_j = max_{i <= j} min_{k >= j} mean(v[i..k]) (vectorised, O(n^2 R)).
    work = factor.to(torch.float64) if factor.dtype != torch.float64 else factor
    csum = torch.cat([torch.zeros_like(work[:1]), work.cumsum(0)])  # (n + 1, R)
    i = torch.arange(n, device=factor.device)
    lengths = (i.unsqueeze(0) - i.unsqueeze(1) + 1).to(work.dtype)  # [i, k] = k - i + 1
    means = (csum[1:].unsqueeze(0) - csum[:-1].unsqueeze(1)) / lengths.unsqueeze(2)  # (i, k, R)
    upper = (i.unsqueeze(0) >= i.unsqueeze(1)).unsqueeze(2)  # k >= i
    means = torch.where(upper, means, torch.inf)
    # suffix minimum over k >= j, for every start i: (i, j, R)
    suffix_min = means.flip(1).cummin(1).values.flip(1)
    suffix_min = torch.where(upper, suffix_min, -torch.inf)  # only i <= j counts
    return suffix_min.amax(0).to(factor.dtype)


def _pava(values: list[float]) -> list[float]:
    """Pool adjacent violators: the non-decreasing least-squares fit of ``values``."""
    sums: list[float] = []
    counts: list[int] = []
    for v in values:
        sums.append(v)
        counts.append(1)
        while len(sums) > 1 and sums[-2] * counts[-1] > sums[-1] * counts[-2]:
            s, c = sums.pop(), counts.pop()
            sums[-1] += s
            counts[-1] += c
    out: list[float] = []
    for s, c in zip(sums, counts):
        out.extend([s / c] * c)
    return out


def _prefix_isotonic_errors(values: list[float], nonneg: bool) -> list[float]:
    """``errs[j]`` = squared error of the non-decreasing fit of ``values[:j]`` (``j = 0..n``),
    clamped at 0 when ``nonneg`` (the clamp of an isotonic fit is the fit over both sets)."""
    sums: list[float] = []
    counts: list[int] = []
    sqs: list[float] = []
    errs = [0.0]
    total = 0.0  # sum over blocks of their error
    for v in values:
        sums.append(v)
        counts.append(1)
        sqs.append(v * v)
        total += _block_error(v, 1, v * v, nonneg)
        while len(sums) > 1 and sums[-2] * counts[-1] > sums[-1] * counts[-2]:
            s, c, q = sums.pop(), counts.pop(), sqs.pop()
            total -= _block_error(s, c, q, nonneg) + _block_error(
                sums[-1], counts[-1], sqs[-1], nonneg
            )
            sums[-1] += s
            counts[-1] += c
            sqs[-1] += q
            total += _block_error(sums[-1], counts[-1], sqs[-1], nonneg)
        errs.append(max(total, 0.0))
    return errs


def _block_error(s: float, c: int, q: float, nonneg: bool) -> float:
    """Squared error of fitting one block (sum ``s``, count ``c``, sum of squares ``q``) by its
    mean, or by 0 when ``nonneg`` and the mean is negative."""
    if nonneg and s < 0:
        return q
    return q - s * s / c


def _unimodal(values: list[float], nonneg: bool) -> list[float]:
    """Least-squares unimodal fit: the best split into a non-decreasing prefix and a
    non-increasing suffix (Stout 2008)."""
    n = len(values)
    inc = _prefix_isotonic_errors(values, nonneg)  # inc[j]: prefix values[:j]
    dec = _prefix_isotonic_errors(values[::-1], nonneg)[::-1]  # dec[j]: suffix values[j:]
    split = min(range(n + 1), key=lambda j: inc[j] + dec[j])
    left = _pava(values[:split])
    right = _pava(values[split:][::-1])[::-1]
    out = left + right
    return [max(v, 0.0) for v in out] if nonneg else out
