"""Tucker tensor regression: ``y_s = <X_s, W>`` with a low multilinear-rank coefficient tensor.

References:
    X. Li, D. Xu, H. Zhou, L. Li, "Tucker tensor regression and neuroimaging analysis",
    Stat. Biosci. 10, 2018.
    J. Kossaifi et al., TensorLy's ``TuckerRegressor`` (the same model and ridge-ALS updates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import no_autocast
from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import unfold as _unfold
from ..tensors import TuckerTensor
from ._common import (
    check_features,
    check_nonneg_float,
    check_size,
    check_targets,
    rescaled_penalty,
    ridge_solve,
    safe_scale,
    working,
)

__all__ = ["TuckerRegressor"]


def _check_ranks(rank: object, fn: str) -> tuple[int, ...]:
    if isinstance(rank, (list, tuple)) and rank:
        return tuple(check_positive_int(r, fn, f"rank[{i}]") for i, r in enumerate(rank))
    raise TypeError(f"{fn}: rank must be a non-empty tuple of ints (one per feature mode); got "
                    f"{rank!r}.")  # fmt: skip


def _project(x: torch.Tensor, factors: Sequence[torch.Tensor], skip: int | None) -> torch.Tensor:
    """``x`` (samples first) times ``U_m^T`` along every feature mode ``m != skip``."""
    out = x
    for m, u in enumerate(factors):
        if m != skip:
            out = _mode_dot(out, u.T, m + 1)
    return out


def _kron_t(factors: Sequence[torch.Tensor], skip: int | None, like: torch.Tensor) -> torch.Tensor:
    """``kron(U_m for m != skip)^T`` (``prod R x prod I`` over those modes, row-major)."""
    out = torch.ones(1, 1, dtype=like.dtype, device=like.device)
    for m, u in enumerate(factors):
        if m != skip:
            a, b = out.shape
            out = (out[:, None, :, None] * u[None, :, None, :]).reshape(
                a * u.shape[0], b * u.shape[1]
            )
    return out.T


class _Projector:
    """The projections of the features onto the factors that the ALS sweeps need.

    When a Kronecker product of factors is no larger than the data, each projection is one wide
    GEMM ``kron(U)^T U_(k)^T`` on a transposed, contiguous unfolding stored once per fit (BLAS
    runs it 2-3x faster than the skinny mode products); otherwise mode products one at a time
    (:func:`_project`), which never materialise a Kronecker product."""

    def __init__(self, x: torch.Tensor, rank: tuple[int, ...]) -> None:
        self.x, self.n = x, x.shape[0]
        self.shape = tuple(x.shape[1:])
        per_sample = x.numel() // max(self.n, 1)
        total_r = math.prod(rank)
        self.fast = per_sample * total_r <= x.numel()
        self.unf_t: list[torch.Tensor] = []
        self.flat_t: torch.Tensor | None = None
        if self.fast:
            n = self.n
            self.unf_t = [
                x.movedim(k + 1, 1).reshape(n * x.shape[k + 1], -1).T.contiguous()
                for k in range(x.ndim - 1)
            ]
            self.flat_t = x.reshape(n, -1).T.contiguous()

    def but(self, factors: Sequence[torch.Tensor], k: int) -> torch.Tensor:
        """``X x_{m != k} U_m^T`` as ``(prod_{m != k} R_m, n I_k)`` (samples, then ``i_k``)."""
        if self.fast:
            return _kron_t(factors, k, self.x) @ self.unf_t[k]
        t = _project(self.x, factors, k)  # (n, ..., I_k, ..., R_m, ...)
        return t.movedim(k + 1, 1).reshape(self.n * self.shape[k], -1).T

    def design(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """``X x_m U_m^T`` for every mode, as ``(n, prod R)``."""
        if self.flat_t is not None:
            return (_kron_t(factors, None, self.x) @ self.flat_t).T
        return _project(self.x, factors, None).reshape(self.n, -1)


@dataclass
class TuckerRegressor:
    """Regression with a Tucker coefficient tensor ``W = [[G; U_1, ..., U_p]]``, by ridge ALS.

    Predicts ``y_s = <X_s, W>`` for features ``X`` ``(n, I_1, ..., I_p)`` and scalar responses
    ``y`` ``(n,)``. :meth:`fit` minimises ``1/2 ||y - <X, W>||^2 + l2/2 (||G||^2 +
    sum_k ||U_k||^2)`` by exact block updates: each factor from the ``n x I_k R_k`` design
    ``(X x_{m != k} U_m^T)_(k) G_(k)^T`` (the projections applied mode by mode, never a
    Kronecker product of factors), then the core from the ``n x prod R`` design
    ``X x_m U_m^T``. The objective never increases; with the same initial core and factors the
    iterates are TensorLy's ``TuckerRegressor``'s.

    Attributes:
        rank: the core's shape, one int per feature mode.
        l2: ridge penalty (absolute; default 0: singular systems get the minimum-norm solution).
        max_iter: maximum ALS sweeps.
        tol: stop when the objective decreases by less than ``tol`` times its value.
        init: ``"random"`` (standard normal core and factors) or a ``TuckerTensor`` of ``W``'s
            shape and rank.
        generator: random source for ``init="random"``.
        coef_: after :meth:`fit`, ``W`` as a ``TuckerTensor``.
        losses_: objective after each sweep.
        n_iter_: sweeps run.
        converged_: ``tol`` met.

    Raises:
        TypeError: ranks, ``max_iter``, ``l2`` or ``tol`` of the wrong type, or a bad generator.
        ValueError: ranks or ``max_iter`` below 1, a negative ``l2`` or ``tol``, or an ``init``
            that is neither ``"random"`` nor a ``TuckerTensor``.

    Example:
        >>> import torch
        >>> from factorch.regression import TuckerRegressor
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 8, 9, generator=g, dtype=torch.float64)
        >>> w = torch.randn(8, 2, generator=g, dtype=torch.float64) @ torch.randn(
        ...     2, 9, generator=g, dtype=torch.float64)
        >>> y = torch.einsum("sij,ij->s", x, w)
        >>> model = TuckerRegressor((2, 2), generator=g).fit(x, y)
        >>> float((model.predict(x) - y).norm() / y.norm()) < 1e-8
        True
    """

    rank: tuple[int, ...]
    _: KW_ONLY
    l2: float = 0.0
    max_iter: int = 100
    tol: float = 1e-9
    init: Literal["random"] | TuckerTensor = "random"
    generator: torch.Generator | None = None
    coef_: TuckerTensor | None = field(default=None, init=False, repr=False)
    losses_: tuple[float, ...] = field(default=(), init=False, repr=False)
    n_iter_: int = field(default=0, init=False, repr=False)
    converged_: bool = field(default=False, init=False, repr=False)
    _work: TuckerTensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        fn = "TuckerRegressor"
        self.rank = _check_ranks(self.rank, fn)
        self.l2 = check_nonneg_float(self.l2, fn, "l2")
        self.max_iter = check_positive_int(self.max_iter, fn, "max_iter")
        self.tol = check_nonneg_float(self.tol, fn, "tol")
        if not (isinstance(self.init, TuckerTensor) or self.init == "random"):
            raise ValueError(f"{fn}: init must be 'random' or a TuckerTensor; got {self.init!r}.")
        check_generator(self.generator, fn)

    @no_autocast
    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> TuckerRegressor:
        """Fit ``W`` to features ``x`` ``(n, I_1, ..., I_p)`` and responses ``y`` ``(n,)``.

        Not differentiable (the data are detached). Half precision is computed in float32; data
        outside the dtype's safe band are divided by exact powers of two first (``l2`` rescaled
        so that the problem is the same).

        Raises:
            TypeError: non-tensor, integer, bool or complex data, mismatched dtypes or devices.
            ValueError: NaN/Inf, ``y`` not 1-D, sample counts that differ, a rank of the wrong
                length or above a mode size, a bad ``init``, more memory than the device has.
        """
        fn = "TuckerRegressor.fit"
        xt = check_features(x, fn)
        yt = check_targets(y, xt, fn)
        if yt.ndim != 1:
            raise ValueError(
                f"{fn}: y must be 1-D (one response per sample); got shape {tuple(yt.shape)}. Fit "
                "one TuckerRegressor per output, or use CPRegressor for tensor responses."
            )
        shape = tuple(xt.shape[1:])
        if len(self.rank) != len(shape) or any(r > i for r, i in zip(self.rank, shape)):
            raise ValueError(
                f"{fn}: rank {self.rank} must have one entry per feature mode of {shape}, each at "
                "most that mode's size."
            )
        xw, yw = working(xt), working(yt)
        n = xw.shape[0]
        big = max(i * r for i, r in zip(shape, self.rank))
        core_size = 1
        for r in self.rank:
            core_size *= r
        check_size((len(shape) + 3) * xw.numel() + n * max(big, core_size)
                   + max(big, core_size) ** 2,
                   xw.dtype, xw.device, fn)  # fmt: skip
        sx, sy = safe_scale(xw), safe_scale(yw)
        xw, yw = xw / sx, yw / sy
        c = (sy / sx) ** (1.0 / (len(shape) + 1))
        l2 = rescaled_penalty(self.l2, c, sy)
        core, factors = self._start(shape, xw.dtype, xw.device, c, fn)
        losses: list[float] = []
        converged = False
        proj = _Projector(xw, self.rank)
        for _ in range(self.max_iter):
            for k in range(len(shape)):
                factors[k] = _factor_update(proj, yw, core, factors, k, l2)
            design = proj.design(factors)
            core = ridge_solve(design.T @ design, (design.T @ yw).unsqueeze(1), l2)
            core = core.reshape(self.rank)
            resid = yw - design @ core.reshape(-1)
            penalty = float(core.square().sum()) + sum(float(u.square().sum()) for u in factors)
            losses.append(0.5 * float(resid.square().sum()) + 0.5 * l2 * penalty)
            if len(losses) > 1 and losses[-2] - losses[-1] <= self.tol * abs(losses[-2]):
                converged = True
                break
        work = TuckerTensor(core * (sy / sx), tuple(factors))
        coef = work.to(dtype=xt.dtype)
        if not all(bool(torch.isfinite(t).all()) for t in coef._tensors()):
            raise ValueError(
                f"{fn}: the coefficients cannot be represented in {xt.dtype}; convert the data "
                "to a wider dtype (e.g. .double()) first."
            )
        self.coef_, self.n_iter_, self.converged_ = coef, len(losses), converged
        self.losses_ = tuple(v * sy * sy for v in losses)
        self._work = work
        return self

    def _start(
        self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, c: float, fn: str
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if isinstance(self.init, TuckerTensor):
            if self.init.shape != shape or tuple(self.init.core.shape) != self.rank:
                raise ValueError(
                    f"{fn}: init has shape {self.init.shape} and rank "
                    f"{tuple(self.init.core.shape)}; expected {shape} and {self.rank}."
                )
            core = self.init.core.detach().to(dtype=dtype, device=device) / c
            return core, [f.detach().to(dtype=dtype, device=device) / c for f in self.init.factors]
        gen = self.generator
        where = gen.device if gen is not None else device

        def draw(*size: int) -> torch.Tensor:
            return torch.randn(*size, generator=gen, dtype=dtype, device=where).to(device)

        return draw(*self.rank), [draw(i, r) for i, r in zip(shape, self.rank)]

    @no_autocast
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted responses ``(n,)`` for features ``x`` ``(n, I_1, ..., I_p)``, in ``x``'s
        dtype. Not differentiable.

        Raises:
            ValueError: called before :meth:`fit`, or features of another shape.
        """
        fn = "TuckerRegressor.predict"
        if not isinstance(self.coef_, TuckerTensor):
            raise ValueError(f"{fn}: the model is not fitted yet; call fit(x, y) first.")
        xt = check_features(x, fn)
        if tuple(xt.shape[1:]) != self.coef_.shape:
            raise ValueError(
                f"{fn}: x has feature shape {tuple(xt.shape[1:])} but the model was fitted on "
                f"features of shape {self.coef_.shape}; pass features of the fitted shape."
            )
        w = (self._work if self._work is not None else self.coef_).to(dtype=working(xt).dtype)
        proj = _project(working(xt), w.factors, None).reshape(xt.shape[0], -1)
        return (proj @ w.core.reshape(-1)).to(xt.dtype)


def _factor_update(
    proj: _Projector,
    y: torch.Tensor,
    core: torch.Tensor,
    factors: list[torch.Tensor],
    k: int,
    l2: float,
) -> torch.Tensor:
    """Exact ridge update of ``U_k`` from the design ``(X x_{m != k} U_m^T)_(k) G_(k)^T``."""
    n = proj.n
    t = proj.but(factors, k)  # (prod other R, n I_k)
    size, r = factors[k].shape
    g = _unfold(core, k)  # (R_k, prod(other R)), the same row-major order as t's rows
    design = (g @ t).reshape(r, n, size).permute(1, 2, 0).reshape(n, size * r)
    sol = ridge_solve(design.T @ design, (design.T @ y).unsqueeze(1), l2)
    return sol.reshape(size, r)
