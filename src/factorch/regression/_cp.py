"""CP tensor regression: ``Y_s = <X_s, W>`` with a low-rank CP coefficient tensor, by ALS.

References:
    H. Zhou, L. Li, H. Zhu, "Tensor regression with applications in neuroimaging data analysis",
    J. Amer. Statist. Assoc. 108(502), 2013 (CP regression, block relaxation).
    J. Kossaifi et al., TensorLy's ``CPRegressor`` (the same model and ridge-ALS updates).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import no_autocast
from ..algebra.internal import khatri_rao as _khatri_rao
from ..algebra.internal import mttkrp as _mttkrp
from ..tensors import CPTensor
from ._common import (
    check_features,
    check_nonneg_float,
    check_size,
    check_targets,
    contract_all,
    contract_all_t,
    contract_but,
    rescaled_penalty,
    ridge_solve,
    safe_scale,
    unfoldings,
    working,
)

__all__ = ["CPRegressor"]


@dataclass
class CPRegressor:
    """Regression with a rank-``R`` CP coefficient tensor, fitted by ridge-regularised ALS.

    The model predicts ``Y[s, o] = sum_i X[s, i] W[i, o]`` for features ``X`` of shape
    ``(n, I_1, ..., I_p)`` and responses ``Y`` of shape ``(n,)`` or ``(n, O_1, ..., O_q)``,
    with ``W = [[A_1, ..., A_p, B_1, ..., B_q]]`` of rank ``rank``. :meth:`fit` minimises
    ``1/2 ||Y - <X, W>||^2 + l2/2 sum_k ||A_k||^2`` (all factors, absolute ``l2``) by exact block
    updates: for a feature factor the normal equations are formed directly from the partial
    contraction ``G[s, j, r]`` (``n (I_k R)^2`` flops; no ``n O x I_k R`` design matrix), for an
    output factor it is one CP-ALS step. The objective never increases. With the same initial
    factors and ``l2 = reg_W`` the iterates are TensorLy's ``CPRegressor``'s.

    Attributes:
        rank: CP rank of ``W`` (numpy integers accepted).
        l2: ridge penalty on every factor (absolute, in the data's units; default 0: singular
            normal equations get the minimum-norm solution).
        max_iter: maximum ALS sweeps.
        tol: stop when the objective decreases by less than ``tol`` times its value.
        init: ``"random"`` (standard normal factors) or a ``CPTensor`` of ``W``'s shape and rank.
        generator: random source for ``init="random"``.
        coef_: after :meth:`fit`, the coefficient tensor ``W`` as a ``CPTensor`` (the data's
            scale, when it had to be divided out, sits in its weights).
        losses_: objective after each sweep.
        n_iter_: sweeps run.
        converged_: True when ``tol`` was met.

    Raises:
        TypeError: a rank, ``max_iter``, ``l2`` or ``tol`` of the wrong type, or a bad generator.
        ValueError: a rank or ``max_iter`` below 1, a negative ``l2`` or ``tol``, or an ``init``
            that is neither ``"random"`` nor a ``CPTensor``.

    Example:
        >>> import torch
        >>> from factorch.regression import CPRegressor
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 8, 9, generator=g, dtype=torch.float64)
        >>> w = torch.outer(torch.randn(8, generator=g, dtype=torch.float64),
        ...                 torch.randn(9, generator=g, dtype=torch.float64))
        >>> y = torch.einsum("sij,ij->s", x, w)
        >>> model = CPRegressor(1, generator=g).fit(x, y)
        >>> float((model.predict(x) - y).norm() / y.norm()) < 1e-8
        True
    """

    rank: int
    _: KW_ONLY
    l2: float = 0.0
    max_iter: int = 100
    tol: float = 1e-9
    init: Literal["random"] | CPTensor = "random"
    generator: torch.Generator | None = None
    coef_: CPTensor | None = field(default=None, init=False, repr=False)
    losses_: tuple[float, ...] = field(default=(), init=False, repr=False)
    n_iter_: int = field(default=0, init=False, repr=False)
    converged_: bool = field(default=False, init=False, repr=False)
    _n_features: int = field(default=0, init=False, repr=False)
    _work: CPTensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        fn = "CPRegressor"
        self.rank = check_positive_int(self.rank, fn, "rank")
        self.l2 = check_nonneg_float(self.l2, fn, "l2")
        self.max_iter = check_positive_int(self.max_iter, fn, "max_iter")
        self.tol = check_nonneg_float(self.tol, fn, "tol")
        if not (isinstance(self.init, CPTensor) or self.init == "random"):
            raise ValueError(f"{fn}: init must be 'random' or a CPTensor; got {self.init!r}.")
        check_generator(self.generator, fn)

    @no_autocast
    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> CPRegressor:
        """Fit ``W`` to features ``x`` ``(n, I_1, ..., I_p)`` and responses ``y`` ``(n, ...)``.

        Not differentiable (the data are detached). Half precision is computed in float32; data
        outside the dtype's safe band are divided by exact powers of two first (and ``l2``
        rescaled so that the problem is the same).

        Raises:
            TypeError: non-tensor, integer, bool or complex data, ``x`` and ``y`` of different
                dtypes or devices.
            ValueError: NaN/Inf, fewer than 2 modes in ``x``, different sample counts, an
                ``init`` of another shape or rank, more memory than the device has.
        """
        fn = "CPRegressor.fit"
        xt = check_features(x, fn)
        yt = check_targets(y, xt, fn)
        dtype = xt.dtype
        xw, yw = working(xt), working(yt)
        sx, sy = safe_scale(xw), safe_scale(yw)
        xw, yw = xw / sx, yw / sy
        p, out_shape = xw.ndim - 1, tuple(yw.shape[1:])
        shape = (*xw.shape[1:], *out_shape)
        n, r = xw.shape[0], self.rank
        k = len(shape)
        check_size(n * max(shape) * r + (max(xw.shape[1:]) * r) ** 2 + (p + 2) * xw.numel(),
                   xw.dtype, xw.device, fn)  # fmt: skip
        c = (sy / sx) ** (1.0 / k)
        l2 = rescaled_penalty(self.l2, c, sy)
        factors = self._start(shape, xw.dtype, xw.device, c, fn)
        ymat = yw.reshape(n, -1)
        unfolded = unfoldings(xw)
        flat_t = xw.reshape(n, -1).T.contiguous()
        losses: list[float] = []
        converged = False
        for _ in range(self.max_iter):
            for m in range(p):
                factors[m] = _feature_update(unfolded[m], ymat, factors, m, p, l2)
            z = contract_all_t(flat_t, factors[:p])
            for m in range(p, k):
                factors[m] = _output_update(yw, z, factors, m, p, l2)
            resid = ymat - z @ _outputs(factors, p, r, xw).T
            loss = 0.5 * float(resid.square().sum()) + 0.5 * l2 * sum(
                float(f.square().sum()) for f in factors
            )
            losses.append(loss)
            if len(losses) > 1 and losses[-2] - losses[-1] <= self.tol * abs(losses[-2]):
                converged = True
                break
        scale = torch.full((r,), sy / sx, dtype=xw.dtype, device=xw.device)
        work = CPTensor(scale, tuple(factors))
        coef = work.to(dtype=dtype)
        if not all(bool(torch.isfinite(t).all()) for t in coef._tensors()):
            raise ValueError(
                f"{fn}: the coefficients cannot be represented in {dtype}; convert the data to a "
                "wider dtype (e.g. .double()) first."
            )
        self.coef_, self.n_iter_, self.converged_ = coef, len(losses), converged
        self._n_features, self._work = p, work
        self.losses_ = tuple(v * sy * sy for v in losses)
        return self

    def _start(
        self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, c: float, fn: str
    ) -> list[torch.Tensor]:
        if isinstance(self.init, CPTensor):
            if self.init.shape != shape or self.init.rank != self.rank:
                raise ValueError(
                    f"{fn}: init has shape {self.init.shape} and rank {self.init.rank}; expected "
                    f"shape {shape} (features then outputs) and rank {self.rank}."
                )
            fs = [f.detach().to(dtype=dtype, device=device).clone() for f in self.init.factors]
            fs[0] = fs[0] * self.init.weights.detach().to(dtype=dtype, device=device)
            return [f / c for f in fs]
        gen = self.generator
        where = gen.device if gen is not None else device
        return [
            torch.randn(i, self.rank, generator=gen, dtype=dtype, device=where).to(device)
            for i in shape
        ]

    @no_autocast
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted responses ``(n, O_1, ..., O_q)`` (``(n,)`` for scalar responses) for features
        ``x`` ``(n, I_1, ..., I_p)``, in ``x``'s dtype. Not differentiable.

        Raises:
            ValueError: called before :meth:`fit`, or features of another shape.
        """
        fn = "CPRegressor.predict"
        coef = _fitted(self.coef_, fn)
        xt = check_features(x, fn)
        p = self._n_features
        if tuple(xt.shape[1:]) != coef.shape[:p]:
            raise ValueError(
                f"{fn}: x has feature shape {tuple(xt.shape[1:])} but the model was fitted on "
                f"features of shape {coef.shape[:p]}; pass features of the fitted shape."
            )
        w = (self._work if self._work is not None else coef).to(dtype=working(xt).dtype)
        z = contract_all(working(xt), w.factors[:p]) * w.weights
        outs = w.factors[p:]
        if not outs:
            return z.sum(1).to(xt.dtype)
        pred = z @ _khatri_rao(list(outs)).T
        return pred.reshape(xt.shape[0], *(f.shape[0] for f in outs)).to(xt.dtype)


def _fitted(coef: object, fn: str) -> CPTensor:
    if not isinstance(coef, CPTensor):
        raise ValueError(f"{fn}: the model is not fitted yet; call fit(x, y) first.")
    return coef


def _outputs(factors: list[torch.Tensor], p: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """``C``: the Khatri--Rao product of the output factors (``ones(1, R)`` for scalar y)."""
    outs = factors[p:]
    if not outs:
        return torch.ones(1, r, dtype=like.dtype, device=like.device)
    return _khatri_rao(outs)


def _feature_update(
    unfolded: torch.Tensor,
    ymat: torch.Tensor,
    factors: list[torch.Tensor],
    m: int,
    p: int,
    l2: float,
) -> torch.Tensor:
    """Exact ridge update of feature factor ``m``: normal equations from ``G[s, j, r]``."""
    r = factors[0].shape[1]
    g = contract_but(unfolded, ymat.shape[0], factors[:p], m)
    out = _outputs(factors, p, r, unfolded)
    ctc = out.T @ out
    n, size = g.shape[0], g.shape[1]
    flat = g.reshape(n, size * r)
    gram = (flat.T @ flat).reshape(size, r, size, r) * ctc[None, :, None, :]
    rhs = (g * (ymat @ out).unsqueeze(1)).sum(0)
    sol = ridge_solve(gram.reshape(size * r, size * r), rhs.reshape(-1, 1), l2)
    return sol.reshape(size, r)


def _output_update(
    y: torch.Tensor, z: torch.Tensor, factors: list[torch.Tensor], m: int, p: int, l2: float
) -> torch.Tensor:
    """One CP-ALS step on ``Y ~= [[Z, B_1, ..., B_q]]`` for output factor ``m``."""
    chain = [z, *factors[p:]]
    mode = m - p + 1
    rhs = _mttkrp(y, chain, mode)
    gram = torch.ones_like(rhs[:1].T @ rhs[:1])
    for i, f in enumerate(chain):
        if i != mode:
            gram = gram * (f.T @ f)
    return ridge_solve(gram, rhs.T, l2).T
