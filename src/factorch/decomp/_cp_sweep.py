"""The CP-ALS sweep, its error estimates and the kernels it is built from.

One sweep updates every factor once (:func:`als_sweep`). For an N-way tensor split into a left
half ``L = {0..h-1}`` and a right half ``R = {h..N-1}`` (``h = ceil(N/2)``) it reads the tensor
twice instead of N times (a two-level dimension tree):

1. ``P_L = X x_{m in R} A_m`` (shape ``I_0 x ... x I_{h-1} x R``): one GEMM over a right mode on
   a free reshape of X, then small contractions (:func:`tree_partial`). Every left-mode MTTKRP is
   ``P_L`` contracted with the other left factors (:func:`mttkrp_from_partial`), so each left
   factor is updated in turn from it.
2. ``P_R = X x_{m in L} A_m`` with the *updated* left factors, from which every right-mode MTTKRP
   follows in the same way.

This is the two-pass scheme of Phan, Tichavsky and Cichocki (IEEE TSP 61(19), 2013) and the binary
dimension tree of Kaya and Ucar (Algorithmica 2018), restricted to one level; it gives the same
iterates as the textbook mode-by-mode sweep.

Error estimates (relative to ``||X||``), each with the rounding floor below which a change in it
means nothing:

* :func:`gram_error`, free after a sweep:
  ``||X - M||^2 = ||X||^2 - 2 <M_{N-1}, A_{N-1} diag(w)> + w^T (*_m A_m^T A_m) w``. Its three
  terms are each computed to about ``eps`` times their size, so the difference carries an absolute
  error of about ``gamma eps (||X||^2 + 2|<.,.>| + ||M||^2)`` (``gamma = 8``: 3--4 times the
  largest error measured on planted float32 and float64 problems): a floor near ``sqrt(eps)``
  for small errors, ``~ eps / error`` for large ones.
* :func:`exact_error`, the residual summed block by block (one more read of the tensor); its
  floor is a few ``eps`` (the rounding of the model's entries).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..algebra import MTTKRPKernel
from ..algebra.internal import RANK, contract, fused_tree_partial
from ..algebra.internal import khatri_rao as _khatri_rao

__all__ = [
    "CPState",
    "ErrorTrack",
    "als_sweep",
    "exact_error",
    "exact_error_of",
    "gram",
    "gram_error",
    "gram_error_of",
    "hadamard_grams",
    "mttkrp_from_partial",
    "solve_normal",
    "tree_mttkrps",
    "tree_partial",
    "working_set",
]

_LETTERS = "abcdefghijklmnopqstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY"
# Rounding-error constants of the two error estimates (module docstring).
_GAMMA_GRAM = 8.0
_GAMMA_EXACT = 4.0
# Entries of the tensor read per block by the exact residual: a block (4 MiB in float64) is written
# and read back while still in cache. Measured (1 thread, float64, rank 10): 1.6x faster than
# 2**22 at 200^3 and 2x at 300^3; 2**18 gives too few rows per GEMM at 300^3.
_BLOCK = 1 << 19


def gram(factor: torch.Tensor) -> torch.Tensor:
    """The Gram ``A^T conj(A)`` of a factor the normal equations use: ``A^T A`` for real factors,
    the (Hermitian) conjugate of ``A^H A`` for complex ones.

    For a complex model ``X ~ A K^T`` (no conjugation in the model, as in TensorLy), the least
    squares update of ``A`` solves ``A (K^T conj(K)) = X conj(K)``, and for a Khatri--Rao ``K``,
    ``K^T conj(K)`` is the entry-wise product of these Grams; ``X conj(K)`` is the MTTKRP with
    conjugated factors.
    """
    return factor.mT @ factor.conj()


def conjugated(factors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``conj(A_n)`` of every factor (lazy views; the factors themselves when real)."""
    return [f.conj() for f in factors]


@dataclass
class CPState:
    """The CP-ALS iterate ``[[weights; factors]]`` and the Grams (:func:`gram`) of its factors.

    Updated in place by :func:`als_sweep`; factors have unit-norm columns once updated (the scale
    is in ``weights``).
    """

    weights: torch.Tensor
    factors: list[torch.Tensor]
    grams: list[torch.Tensor]

    @classmethod
    def start(cls, weights: torch.Tensor, factors: Sequence[torch.Tensor]) -> CPState:
        """A state from initial weights and factors (Grams computed)."""
        return cls(weights, list(factors), [gram(f) for f in factors])

    def set_factors(self, weights: torch.Tensor, factors: Sequence[torch.Tensor]) -> None:
        """Replace every factor (and Gram) and the weights."""
        self.weights = weights
        self.factors = list(factors)
        self.grams = [gram(f) for f in factors]


def als_sweep(
    tensor: torch.Tensor,
    state: CPState,
    *,
    l2: float = 0.0,
    fixed: frozenset[int] = frozenset(),
    kernel: MTTKRPKernel = "default",
) -> torch.Tensor:
    """One CP-ALS sweep: for each mode, MTTKRP, Gram solve, normalisation (``state`` in place).

    The MTTKRPs come from the two-pass dimension tree (module docstring; ``kernel`` as in
    :func:`tree_mttkrps`). Modes in ``fixed`` keep their factor. Returns the MTTKRP of the last
    mode (for :func:`gram_error`).
    """
    mttkrp = state.factors[-1]  # (set by the last mode)
    for mode, mttkrp in tree_mttkrps(tensor, state.factors, kernel=kernel):
        if mode in fixed:
            continue
        # Least squares A_n (*_{m != n} A_m^T A_m + l2 I) = MTTKRP_n.
        factor = solve_normal(mttkrp, hadamard_grams(state.grams, skip=mode), l2)
        # Unit columns; the column norms become the weights.
        norms = torch.linalg.vector_norm(factor, dim=0)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        state.weights = norms.to(factor.dtype)
        state.factors[mode] = factor / state.weights
        state.grams[mode] = gram(state.factors[mode])
    return mttkrp


def tree_mttkrps(
    tensor: torch.Tensor, factors: list[torch.Tensor], *, kernel: MTTKRPKernel = "default"
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(mode, MTTKRP_mode)`` for every mode in order, from the two-pass dimension tree.

    The caller updates ``factors[mode]`` (in the list, in place) before asking for the next
    pair; later MTTKRPs use the updated factors, as a mode-by-mode sweep does. The tensor is
    read twice per sweep (module docstring).

    ``kernel="fused"`` computes each pass's partial ``X x_{m in other} A_m`` by the compiled
    fused loop (:func:`factorch.algebra.internal.fused_tree_partial`: the tensor read once, no
    intermediate in memory) wherever that applies, and by :func:`tree_partial` otherwise (the
    documented fallback: a one-mode pass over a mode of fewer than 32 entries, a plain GEMM left
    to BLAS; complex, half, non-CPU or small tensors; no compiler). Both give the same partial
    to round-off.
    """
    n = tensor.ndim
    half = (n + 1) // 2
    left, right = range(half), range(half, n)
    for updated, other in ((left, right), (right, left)):
        # One read of X: contract the other half's factors (in the second pass, the left factors
        # this sweep has just updated).
        # (Complex data: the MTTKRPs take conjugated factors, see :func:`gram`.)
        partial = fused_tree_partial(tensor, factors, other) if kernel == "fused" else None
        if partial is None:
            partial = tree_partial(tensor, conjugated(factors), other)
        for mode in updated:
            yield mode, mttkrp_from_partial(partial, conjugated(factors), updated, mode)


def tree_partial(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor | None], modes: Sequence[int]
) -> torch.Tensor:
    """``X x_{m in modes} A_m`` with the remaining modes in order and the rank index last.

    The one GEMM that reads the tensor contracts one of ``modes``; which one, and how, is chosen
    as for the dense MTTKRP (:func:`factorch.algebra.internal.contract`). The other modes are
    contracted out of the (``I_m / R`` times smaller) intermediate.
    """
    shape = tensor.shape
    modes = list(modes)
    keep = [m for m in range(tensor.ndim) if m not in modes]
    y, labels = contract(tensor, factors, modes)
    for m in sorted((m for m in modes if m in labels), key=lambda m: -shape[m]):
        factor = factors[m]
        if factor is None:
            raise RuntimeError(f"tree_partial: no factor for mode {m}.")
        axis, rank_axis = labels.index(m), labels.index(RANK)
        view = [1] * y.ndim
        view[axis], view[rank_axis] = shape[m], y.shape[rank_axis]
        factor = (factor if axis < rank_axis else factor.mT).reshape(view)
        # y is ours: scale it in place unless autograd records the product.
        records = torch.is_grad_enabled() and (y.requires_grad or factor.requires_grad)
        y = (y * factor if records else y.mul_(factor)).sum(axis)
        del labels[axis]
    order = [labels.index(m) for m in keep] + [labels.index(RANK)]
    return y.permute(order)


# The name the algebra tests use for the partial contraction.
_partial = tree_partial


def mttkrp_from_partial(
    partial: torch.Tensor, factors: Sequence[torch.Tensor], modes: Sequence[int], mode: int
) -> torch.Tensor:
    """MTTKRP of ``mode`` from ``partial`` (modes ``modes`` of X, then the rank index): contract
    every other mode of ``modes`` with its factor."""
    k = partial.ndim - 1
    if k == 1:
        return partial
    idx = _LETTERS[:k]
    operands = [partial]
    subs = [idx + "r"]
    for axis, m in enumerate(modes):
        if m != mode:
            operands.append(factors[m])
            subs.append(idx[axis] + "r")
    out = idx[list(modes).index(mode)] + "r"
    return torch.einsum(",".join(subs) + "->" + out, *operands)


def solve_normal(mttkrp: torch.Tensor, gram: torch.Tensor, l2: float) -> torch.Tensor:
    """Solve ``A V = M`` for ``A`` with ``V`` symmetric (complex: Hermitian) positive
    semi-definite (``R x R``).

    Cholesky when ``V + l2 I`` is numerically positive definite; a pseudo-inverse (least-squares)
    fallback otherwise, so rank-deficient Grams (collinear components, fixed zero columns) never
    produce NaN.
    """
    v = gram
    if l2:
        v = v + l2 * torch.eye(v.shape[0], dtype=v.dtype, device=v.device)
    chol, info = torch.linalg.cholesky_ex(v)
    if int(info) == 0:
        diag = chol.diagonal().abs()
        # Guard against Cholesky "succeeding" on a numerically singular matrix.
        if float(diag.min()) > float(diag.max()) * torch.finfo(diag.dtype).eps ** 0.5:
            return torch.cholesky_solve(mttkrp.mH, chol).mH
    return mttkrp @ torch.linalg.pinv(v, hermitian=True)


def hadamard_grams(grams: Sequence[torch.Tensor], skip: int | None = None) -> torch.Tensor:
    """Entry-wise product of the Gram matrices, optionally leaving one out."""
    out: torch.Tensor | None = None
    for m, g in enumerate(grams):
        if m == skip:
            continue
        out = g.clone() if out is None else out.mul_(g)
    if out is None:
        raise RuntimeError(
            "hadamard_grams: needs at least one Gram matrix besides the skipped one."
        )
    return out


def gram_error(norm_x2: float, mttkrp: torch.Tensor, state: CPState) -> tuple[float, float]:
    """Relative error from the Gram formula and its rounding floor (module docstring).

    ``mttkrp`` is the last mode's MTTKRP computed with the other factors of ``state`` (conjugated
    for complex data); the inner product is then ``Re sum(MTTKRP * conj(A_{N-1} diag(w)))`` and
    the model's squared norm ``w^H conj(*_m G_m) w`` with the Grams of :func:`gram`.
    """
    model_last = (state.factors[-1] * state.weights).conj()
    inner = float(torch.sum(mttkrp * model_last).real)
    grams = hadamard_grams(state.grams).conj()
    model2 = float((state.weights.conj() @ grams @ state.weights).real)
    return gram_error_of(norm_x2, inner, model2, torch.finfo(mttkrp.dtype).eps)


def gram_error_of(norm_x2: float, inner: float, model2: float, eps: float) -> tuple[float, float]:
    """:func:`gram_error` from its terms ``||X||^2``, ``Re <X, M>`` and ``||M||^2`` (``eps``: the
    working precision)."""
    scale = max(norm_x2, torch.finfo(torch.float64).tiny)
    res2 = max(norm_x2 - 2.0 * inner + model2, 0.0) / scale
    noise2 = _GAMMA_GRAM * eps * (norm_x2 + 2.0 * abs(inner) + abs(model2)) / scale
    err = math.sqrt(res2)
    # |sqrt(a) - sqrt(b)| <= min(sqrt|a - b|, |a - b| / sqrt(a)).
    return err, noise2 / max(err, math.sqrt(noise2), torch.finfo(torch.float64).tiny)


def exact_error(tensor: torch.Tensor, state: CPState, norm_x2: float) -> tuple[float, float]:
    """``||X - [[w; A]]|| / ||X||`` from the residual, and its rounding floor.

    The modes are split into a row group and a column group of balanced sizes; the residual is
    summed over blocks of rows, so the extra memory is the two Khatri--Rao products
    (``(rows + cols) R`` entries) and one block of about ``2**19`` entries (one row at least),
    never a full-size model or residual. For an all-zero ``X`` the zero model has relative error 0.
    """
    split = _balanced_split(tensor.shape)
    rows = math.prod(tensor.shape[:split])
    cols = tensor.numel() // rows
    x2 = tensor.reshape(rows, cols)
    left = _khatri_rao(state.factors[:split]) * state.weights
    right = _khatri_rao(state.factors[split:]).mT
    step = max(1, _BLOCK // max(1, cols))
    # One block buffer for every block (no allocation and first touch of its pages per block:
    # 6-7 % of the pass at 200^3).
    buffer = torch.empty(min(step, rows), cols, dtype=left.dtype, device=left.device)
    total = 0.0
    with torch.no_grad():  # (a float: out= refuses inputs that require grad)
        for start in range(0, rows, step):
            part = x2[start : start + step]
            block = buffer[: part.shape[0]]
            torch.addmm(part, left[start : start + step], right, alpha=-1, out=block)
            flat = block.reshape(-1)
            total += float(torch.vdot(flat, flat).real)
    eps = torch.finfo(tensor.dtype).eps
    weight_sum = float(state.weights.abs().sum())
    return exact_error_of(total, weight_sum, norm_x2, eps)


def exact_error_of(
    resid2: float, weight_sum: float, norm_x2: float, eps: float
) -> tuple[float, float]:
    """:func:`exact_error` from the squared residual norm, ``sum |w_r|`` and ``||X||^2``."""
    if norm_x2 <= 0:  # all-zero X: the zero model fits it exactly
        return (0.0 if resid2 == 0 else math.inf), 0.0
    norm_x = math.sqrt(norm_x2)
    return math.sqrt(resid2) / norm_x, _GAMMA_EXACT * eps * (1.0 + weight_sum / norm_x)


def working_set(shape: Sequence[int], rank: int) -> int:
    """Elements a rank-``rank`` CP-ALS run on a ``shape`` tensor allocates besides the tensor.

    Factors and Grams; the tree's first GEMM output (``|X| R / I_m``) and its partials; the exact
    error's Khatri--Rao products and block; the "svd" initialisation's sketch of one unfolding.
    """
    total = math.prod(shape)
    half = (len(shape) + 1) // 2
    split = _balanced_split(shape)
    rows = math.prod(shape[:split])
    factors = sum(shape) * rank + (len(shape) + 3) * rank * rank
    tree = max(total // s for s in shape) * rank
    tree += (math.prod(shape[:half]) + math.prod(shape[half:])) * rank
    exact = (rows + total // rows) * rank + min(total, _BLOCK)
    init = max(total // s * min(s, rank + 10) for s in shape)
    return factors + tree + exact + init


def _balanced_split(shape: Sequence[int]) -> int:
    """The ``k`` in ``1 .. N-1`` whose split ``shape[:k] | shape[k:]`` minimises the larger side."""
    total = math.prod(shape)
    sides = [max(math.prod(shape[:k]), total // math.prod(shape[:k])) for k in range(1, len(shape))]
    return 1 + sides.index(min(sides))


@dataclass
class ErrorTrack:
    """Errors per iteration, their rounding floors, and the one convergence rule of the CP
    family.

    The estimate in force is the Gram formula (:func:`gram_error`) until it cannot resolve what
    is asked of it -- it no longer knows the error to 1/8, or (``tol > 0``) a change since the
    last iteration is within the two estimates' rounding floors and those are coarser than
    ``tol`` -- and the exact residual from then on (:meth:`switch_to_exact`). A run has converged
    when the error changes by at most ``max(tol, floor_prev + floor)`` between two iterations
    whose errors come from the same estimate. ``tol = 0`` never converges.
    """

    tol: float
    exact: bool = False
    errors: list[float] = field(default_factory=list)
    floors: list[float] = field(default_factory=list)
    comparable_from: int = 0

    def gram_unresolved(self, err: float, floor: float) -> bool:
        """True when the Gram estimate ``(err, floor)`` cannot do its job any more."""
        if self.exact:
            return False
        if floor > err / 8:
            return True
        if self.tol > 0 and self.errors:
            noise = floor + self.floors[-1]
            return noise > self.tol and abs(self.errors[-1] - err) <= noise
        return False

    def switch_to_exact(self) -> None:
        """From now on every error is the exact residual (comparisons restart)."""
        self.exact, self.comparable_from = True, len(self.errors)

    def converged(self, err: float, floor: float) -> bool:
        """The one rule: the change is within ``tol`` or within the two rounding floors."""
        if self.tol <= 0 or len(self.errors) <= self.comparable_from:
            return False
        return abs(self.errors[-1] - err) <= max(self.tol, self.floors[-1] + floor)

    def record(self, err: float, floor: float) -> None:
        self.errors.append(err)
        self.floors.append(floor)
