"""CP (CANDECOMP/PARAFAC) tensors: ``X = sum_r w_r a_r^(0) o a_r^(1) o ... o a_r^(N-1)``.

References: Kolda & Bader, "Tensor Decompositions and Applications", SIAM Review 51(3), 2009,
section 3 (CP model, norm via Grams, factor match score); Tomasi & Bro, "A comparison of
algorithms for fitting the PARAFAC model", CSDA 50(7), 2006 (congruence / factor match).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import torch

from .._checks import check_mode, check_tensor
from ..algebra.internal import khatri_rao as _khatri_rao
from ._base import (
    FactorizedTensor,
    as_tensor_tuple,
    check_dense_other,
    check_indices,
    check_mode_matrix,
    check_one_device_dtype,
    check_same_kind,
    check_vector_contraction,
    real_sqrt,
)

if TYPE_CHECKING:
    from ._tt import TTTensor
    from ._tucker import TuckerTensor

__all__ = ["CPTensor", "FactorMatch"]

_EXHAUSTIVE_MAX = 8


@dataclass(frozen=True)
class FactorMatch:
    """Outcome of :meth:`CPTensor.factor_match`.

    Attributes:
        score: mean over ``self``'s components of the matched per-component congruence, in [0, 1].
        permutation: ``permutation[r]`` is the component of ``other`` matched to component ``r``.
        congruences: per-component congruence ``prod_n |cos(a_r^(n), b_{p(r)}^(n))|``.
        exhaustive: True when the matching is optimal (exhaustive search, ``other.rank <= 8``);
            False when it is greedy.

    Example:
        >>> a = factorch.random.random_cp((4, 5, 6), 2, generator=torch.Generator().manual_seed(0))
        >>> swapped = CPTensor(a.weights.flip(0), [f.flip(1) for f in a.factors])
        >>> match = a.factor_match(swapped)
        >>> match.permutation, round(match.score, 6), match.exhaustive
        ((1, 0), 1.0, True)
    """

    score: float
    permutation: tuple[int, ...]
    congruences: tuple[float, ...]
    exhaustive: bool


@dataclass(frozen=True, eq=False, repr=False)
class CPTensor(FactorizedTensor):
    """A rank-``R`` CP tensor ``[[w; A_0, ..., A_{N-1}]]``.

    ``X[i_0, ..., i_{N-1}] = sum_r w[r] A_0[i_0, r] ... A_{N-1}[i_{N-1}, r]``.

    Attributes:
        weights: ``(R,)`` component weights.
        factors: tuple of ``(I_n, R)`` factor matrices, one per mode (lists are converted).

    Every method is differentiable with respect to weights and factors, except
    :meth:`factor_match` / :meth:`congruence` (diagnostics returning Python numbers).

    Like TensorLy's ``CPTensor``, it unpacks as ``(weights, factors)``: ``w, f = cp_tensor``,
    ``cp_tensor[0]`` is ``weights`` and ``cp_tensor[1]`` is ``factors`` (``len(cp_tensor) == 2``).
    This is a read-only view: the tensor stays frozen, equality stays identity (two CP tensors
    are never compared entry-wise by ``==``) and it is not a :class:`collections.abc.Sequence`.

    Raises:
        TypeError: weights or factors that are not tensors, or of more than one dtype.
        ValueError: factors whose column counts differ from ``len(weights)``, or tensors on
            more than one device.

    Example:
        >>> cp_tensor = factorch.random.random_cp((3, 4, 5), 2)
        >>> weights, factors = cp_tensor
        >>> weights.shape, [tuple(f.shape) for f in factors]
        (torch.Size([2]), [(3, 2), (4, 2), (5, 2)])
    """

    weights: torch.Tensor
    factors: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cls = "CPTensor"
        check_tensor(self.weights, cls, "weights", ndim=1, finite=False)
        factors = as_tensor_tuple(self.factors, cls, "factors", ndim=2)
        rank = self.weights.shape[0]
        for n, f in enumerate(factors):
            if f.shape[1] != rank:
                raise ValueError(
                    f"{cls}: factors[{n}] has {f.shape[1]} columns but weights has {rank} "
                    "entries; every factor needs one column per rank component."
                )
        check_one_device_dtype(
            [("weights", self.weights)] + [(f"factors[{n}]", f) for n, f in enumerate(factors)],
            cls,
        )
        object.__setattr__(self, "factors", factors)

    @classmethod
    def from_factors(
        cls, factors: Sequence[torch.Tensor], weights: torch.Tensor | None = None
    ) -> CPTensor:
        """Build from factors alone (unit weights when ``weights`` is None)."""
        if weights is None and isinstance(factors, (list, tuple)) and factors:
            f0 = factors[0]
            if isinstance(f0, torch.Tensor) and f0.ndim == 2:
                weights = torch.ones(f0.shape[1], dtype=f0.dtype, device=f0.device)
        return cls(weights, tuple(factors))  # type: ignore[arg-type]

    # --- TensorLy-style unpacking: (weights, factors) ----------------------------------------
    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, ...]]:
        """Yield ``weights`` then ``factors`` (so ``w, f = cp_tensor`` works)."""
        yield self.weights
        yield self.factors

    def __len__(self) -> int:
        """2: a CP tensor unpacks as ``(weights, factors)``."""
        return 2

    @overload
    def __getitem__(self, index: Literal[0]) -> torch.Tensor: ...
    @overload
    def __getitem__(self, index: Literal[1]) -> tuple[torch.Tensor, ...]: ...
    @overload
    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, ...]: ...
    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``cp_tensor[0]`` is ``weights``, ``cp_tensor[1]`` (or ``[-1]``) is ``factors``."""
        if isinstance(index, bool) or not hasattr(index, "__index__"):
            raise TypeError(
                f"CPTensor: index must be 0 (weights) or 1 (factors); got {type(index).__name__}. "
                "Use .entries(indices) for entries of the represented tensor."
            )
        index = operator.index(index)  # numpy integers too
        if index in (0, -2):
            return self.weights
        if index in (1, -1):
            return self.factors
        raise IndexError(
            f"CPTensor: index must be 0 (weights) or 1 (factors); got {index}. A CPTensor "
            "unpacks as (weights, factors)."
        )

    # --- structure ----------------------------------------------------------------------------
    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.weights, *self.factors)

    def _replace_tensors(self, tensors: Sequence[torch.Tensor]) -> CPTensor:
        return CPTensor(tensors[0], tuple(tensors[1:]))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(f.shape[0] for f in self.factors)

    @property
    def rank(self) -> int:
        """Number of rank-one components ``R``."""
        return self.weights.shape[0]

    # --- dense views ------------------------------------------------------------------------
    def to_dense(self) -> torch.Tensor:
        """The full tensor: ``(A_0 diag(w)) khatri_rao(A_1, ..., A_{N-1})^T``, reshaped.

        Peak extra memory ``R * prod_{n>0} I_n`` (the Khatri--Rao product). Differentiable.
        """
        first = self.factors[0] * self.weights
        if self.ndim == 1:
            return first.sum(1)
        rest = _khatri_rao(self.factors[1:])
        return (first @ rest.transpose(0, 1)).reshape(self.shape)

    def unfold(self, mode: int) -> torch.Tensor:
        """Mode-``mode`` unfolding ``A_n diag(w) khatri_rao(A_m, m != n)^T`` (TensorLy order).

        Equals ``factorch.algebra.unfold(self.to_dense(), mode)``. Differentiable.
        """
        mode = check_mode(mode, self.ndim, "CPTensor.unfold")
        scaled = self.factors[mode] * self.weights
        others = [f for m, f in enumerate(self.factors) if m != mode]
        if not others:
            return scaled.sum(1, keepdim=True)
        return scaled @ _khatri_rao(others).transpose(0, 1)

    # --- factorized algebra -----------------------------------------------------------------
    def _gram_product(self, other: CPTensor) -> torch.Tensor:
        """``H = prod_n (A_n^H B_n)`` (Hadamard product of cross Grams), ``(R, S)``."""
        out = self.factors[0].mH @ other.factors[0]
        for a, b in zip(self.factors[1:], other.factors[1:]):
            out = out * (a.mH @ b)
        return out

    def norm(self) -> torch.Tensor:
        """Frobenius norm ``sqrt(w^H (*_n A_n^H A_n) w)`` without forming the tensor.

        The weights and every factor are first divided by a power of two near their largest
        magnitude (exact), so the Grams neither overflow nor underflow: weights near ``1e200`` or
        ``1e-200`` (float64) give the true norm whenever it is representable (``inf`` when it
        exceeds the dtype's range). Cost ``O(R^2 sum I_n)``. Returns a real 0-d tensor;
        differentiable (except at 0).
        """
        tensors = self._tensors()
        exponents = [_exponent_of_peak(t) for t in tensors]
        weights, *factors = (_times_power_of_two(t, -e) for t, e in zip(tensors, exponents))
        h = factors[0].mH @ factors[0]
        for f in factors[1:]:
            h = h * (f.mH @ f)
        return _times_power_of_two(real_sqrt(weights.conj() @ h @ weights), sum(exponents))

    def inner(self, other: CPTensor | torch.Tensor) -> torch.Tensor:
        """``<self, other> = sum conj(self) * other`` with a ``CPTensor`` or a dense tensor.

        CP: ``w^H (*_n A_n^H B_n) v``, ``O(R S sum I_n)``. Dense: the dense tensor is contracted
        with one factor per mode (one GEMM then batched contractions), never forming ``self``.
        Differentiable.
        """
        fn = "CPTensor.inner"
        if isinstance(other, torch.Tensor):
            check_dense_other(self, other, fn)
            rank = self.rank
            y = self.factors[0].mH @ other.reshape(self.shape[0], -1)  # (R, rest)
            for f in self.factors[1:]:
                y = torch.einsum("rit,ir->rt", y.reshape(rank, f.shape[0], -1), f.conj())
            return self.weights.conj() @ y.reshape(rank)
        check_same_kind(self, other, fn)
        return self.weights.conj() @ self._gram_product(other) @ other.weights

    def mode_dot(self, matrix: torch.Tensor, mode: int, *, transpose: bool = False) -> CPTensor:
        """``self x_mode matrix`` as a CP tensor: factor ``mode`` becomes ``matrix @ A_mode``.

        A vector ``v`` contracts the mode away: the weights become ``w * (v @ A_mode)`` (needs at
        least two modes). Differentiable.
        """
        fn = "CPTensor.mode_dot"
        matrix, mode = check_mode_matrix(self, matrix, mode, transpose, fn)
        if matrix.ndim == 2:
            factors = list(self.factors)
            factors[mode] = matrix @ factors[mode]
            return CPTensor(self.weights, tuple(factors))
        check_vector_contraction(self, fn)
        weights = self.weights * (matrix @ self.factors[mode])
        return CPTensor(weights, tuple(f for m, f in enumerate(self.factors) if m != mode))

    def entries(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries at ``indices`` (integer ``(B, N)``): ``sum_r w_r prod_n A_n[i_n, r]``.

        ``O(B R N)``; differentiable with respect to weights and factors.
        """
        idx = check_indices(indices, self.shape, "CPTensor.entries", self.device)
        rows = self.weights.expand(idx.shape[0], -1)
        for n, f in enumerate(self.factors):
            rows = rows * f[idx[:, n]]
        return rows.sum(1)

    # --- CP-specific --------------------------------------------------------------------------
    def normalize(self) -> CPTensor:
        """Unit-norm factor columns, the column norms multiplied into the weights.

        A zero column stays zero (its weight becomes 0). The tensor is unchanged. Differentiable.
        """
        weights = self.weights
        factors = []
        for f in self.factors:
            norms = torch.linalg.vector_norm(f, dim=0)
            safe = torch.where(norms > 0, norms, torch.ones_like(norms))
            factors.append(f / safe)
            weights = weights * norms.to(weights.dtype)
        return CPTensor(weights, tuple(factors))

    def canonicalize(self) -> CPTensor:
        """A canonical form: invariant to permuting, rescaling and sign-flipping components.

        1. :meth:`normalize` (unit columns, norms in the weights);
        2. signs: in every mode but the last, each column is multiplied by the sign (for complex
           tensors the phase) of its largest-magnitude entry, so that entry becomes positive
           (ties go to the first such entry); the compensating sign goes into the last mode's
           column. Then a negative (complex: non-positive-real) weight is made positive by
           moving its sign (phase) into the last mode's column too;
        3. components sorted by descending weight (stable).

        After this the weights are real and non-negative (stored in the tensor's dtype), every
        column has unit norm, and the first ``N - 1`` modes have a positive largest entry; the
        last mode carries whatever sign the data needs. Two CP tensors that differ only by a
        permutation, column scalings (with products preserved) or sign flips map to the same
        canonical form, up to ties between weights. Differentiable (away from ties).
        """
        cp = self.normalize()
        factors = list(cp.factors)
        weights = cp.weights
        rank = self.rank
        cols = torch.arange(rank, device=self.device)
        last_phase = torch.ones_like(weights)
        for n in range(self.ndim - 1):
            f = factors[n]
            pivot = f[f.abs().argmax(0), cols]
            phase = _phase(pivot)
            factors[n] = f / phase
            last_phase = last_phase * phase
        w_phase = _phase(weights)
        weights = weights / w_phase
        factors[-1] = factors[-1] * (last_phase * w_phase)
        if weights.is_complex():
            weights = torch.complex(weights.real, torch.zeros_like(weights.real))
        order = torch.argsort(weights.real, descending=True, stable=True)
        return CPTensor(weights[order], tuple(f[:, order] for f in factors))

    def factor_match(self, other: CPTensor) -> FactorMatch:
        """Permutation-matched factor congruence between ``self`` (the reference) and ``other``.

        The congruence of components ``r`` of ``self`` and ``s`` of ``other`` is
        ``prod_n |cos(a_r^(n), b_s^(n))|``: 1 iff the rank-one components agree up to scaling and
        sign, insensitive to the weights. Each component of ``self`` is matched to a distinct
        component of ``other`` (``other.rank >= self.rank``) to maximise the total congruence;
        the score is the mean over ``self``'s components, in [0, 1].

        Matching: exhaustive search over all assignments when ``other.rank <= 8`` (optimal);
        otherwise greedy (repeatedly take the largest remaining congruence), which is fast but
        may be suboptimal when several components are nearly equally similar. Computed in
        float64 without gradients; returns Python numbers.
        """
        fn = "CPTensor.factor_match"
        check_same_kind(self, other, fn)
        if other.rank < self.rank:
            raise ValueError(
                f"{fn}: other has rank {other.rank} < self's rank {self.rank}; every component of "
                "self needs a partner (call it on the lower-rank tensor)."
            )
        with torch.no_grad():
            sim = torch.ones(self.rank, other.rank, dtype=torch.float64)
            for a, b in zip(self.factors, other.factors):
                an = _unit_columns(a.detach().cpu().to(_wide(a.dtype)))
                bn = _unit_columns(b.detach().cpu().to(_wide(b.dtype)))
                sim = sim * (an.mH @ bn).abs().to(torch.float64)
            sim = sim.clamp(0.0, 1.0)
            perm, exhaustive = _assign(sim)
            per = sim[torch.arange(self.rank), torch.tensor(perm, dtype=torch.long)]
        return FactorMatch(
            score=float(per.mean()),
            permutation=perm,
            congruences=tuple(float(v) for v in per),
            exhaustive=exhaustive,
        )

    def congruence(self, other: CPTensor) -> float:
        """Factor match score in [0, 1]: ``self.factor_match(other).score`` (see there)."""
        return self.factor_match(other).score

    # --- conversions --------------------------------------------------------------------------
    def to_tucker(self) -> TuckerTensor:
        """Exact Tucker form with a superdiagonal ``(R, ..., R)`` core (``R^N`` entries: meant for
        small ``R``). Differentiable."""
        from ._tucker import TuckerTensor

        rank, ndim = self.rank, self.ndim
        step = sum(rank**k for k in range(ndim))
        positions = torch.arange(rank, device=self.device) * step
        flat = torch.zeros(rank**ndim, dtype=self.dtype, device=self.device)
        core = flat.index_put((positions,), self.weights).reshape((rank,) * ndim)
        return TuckerTensor(core, self.factors)

    def to_tt(self) -> TTTensor:
        """Exact TT form with ranks ``(1, R, ..., R, 1)``: diagonal middle cores
        ``G_n[r, i, s] = delta_rs A_n[i, r]``. Differentiable."""
        from ._tt import TTTensor

        if self.ndim == 1:
            return TTTensor(((self.factors[0] @ self.weights).reshape(1, -1, 1),))
        first = (self.factors[0] * self.weights).unsqueeze(0)
        middle = [torch.diag_embed(f).permute(1, 0, 2) for f in self.factors[1:-1]]
        last = self.factors[-1].transpose(0, 1).unsqueeze(2)
        return TTTensor((first, *middle, last))


def _exponent_of_peak(t: torch.Tensor) -> int:
    """``e`` with ``max|t|`` in ``[2^(e-1), 2^e)`` (0 for an all-zero or non-finite ``t``)."""
    if t.numel() == 0:
        return 0
    peak = float(t.detach().abs().max())
    if peak == 0.0 or not math.isfinite(peak):
        return 0
    return math.frexp(peak)[1]


def _times_power_of_two(t: torch.Tensor, e: int) -> torch.Tensor:
    """``t * 2^e`` (exact), in two steps so that neither power of two over- or underflows."""
    if e == 0:
        return t
    return t * math.ldexp(1.0, e // 2) * math.ldexp(1.0, e - e // 2)


def _phase(x: torch.Tensor) -> torch.Tensor:
    """``x / |x|`` (``sign`` for real tensors), 1 where ``x == 0``."""
    if x.is_complex():
        mag = x.abs()
        return torch.where(mag > 0, x / torch.where(mag > 0, mag, 1).to(x.dtype), 1)
    return torch.where(x < 0, -1.0, 1.0).to(x.dtype)


def _wide(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype.is_complex else torch.float64


def _unit_columns(a: torch.Tensor) -> torch.Tensor:
    norms = torch.linalg.vector_norm(a, dim=0)
    return a / torch.where(norms > 0, norms, torch.ones_like(norms)).to(a.dtype)


def _assign(sim: torch.Tensor) -> tuple[tuple[int, ...], bool]:
    """Rows to distinct columns maximising the summed similarity (exhaustive or greedy)."""
    n_rows, n_cols = sim.shape
    if n_cols <= _EXHAUSTIVE_MAX:
        perms = torch.tensor(list(itertools.permutations(range(n_cols), n_rows)), dtype=torch.long)
        totals = sim[torch.arange(n_rows), perms].sum(1)
        best = perms[int(torch.argmax(totals))]
        return tuple(int(v) for v in best), True
    work = sim.clone()
    perm = [0] * n_rows
    for _ in range(n_rows):
        flat = int(torch.argmax(work))
        r, c = divmod(flat, n_cols)
        perm[r] = c
        work[r, :] = -1.0
        work[:, c] = -1.0
    return tuple(perm), False
