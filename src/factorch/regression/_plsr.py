"""CP-PLSR: multilinear partial least squares regression (N-PLS) of a tensor on a matrix.

References:
    R. Bro, "Multiway calibration. Multilinear PLS", J. Chemometrics 10(1), 1996.
    TensorLy's ``CP_PLSR`` (C. Tan, J. Chin, A. Meyer): the same component-by-component fit with
    a rank-one CP of the covariance tensor and deflation of both blocks.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

import torch

from .._checks import check_positive_int
from .._numerics import no_autocast
from ..algebra.internal import unfold as _unfold
from ._common import (
    check_features,
    check_nonneg_float,
    check_size,
    check_targets,
    safe_scale,
    working,
)

__all__ = ["CPPLSR"]


def _leading(a: torch.Tensor) -> torch.Tensor:
    """The unit leading left singular vector of ``a`` (eigenvector of the smaller Gram)."""
    if a.shape[0] <= a.shape[1]:
        vec = torch.linalg.eigh(a @ a.T)[1][:, -1]
    else:
        vec = a @ torch.linalg.eigh(a.T @ a)[1][:, -1]
    return _unit(vec)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """``v / ||v||``, or ``v`` (zero) when it has no norm (no covariance left to explain)."""
    norm = torch.linalg.vector_norm(v)
    return v / norm if float(norm) > 0 else v


def _weights_of(z: torch.Tensor, start: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """One sweep of the rank-one power iteration on ``z`` (unit vectors per mode), started from
    the leading singular vectors of its unfoldings when ``start`` is None."""
    if z.ndim == 1:
        return [_unit(z)]
    vecs = start if start is not None else [_leading(_unfold(z, m)) for m in range(z.ndim)]
    vecs = list(vecs)
    for mode in range(z.ndim):
        v = _contract_except(z, vecs, mode)
        vecs[mode] = _unit(v)
    return vecs


def _contract_except(z: torch.Tensor, vecs: list[torch.Tensor], mode: int) -> torch.Tensor:
    out = z
    for m in range(z.ndim - 1, -1, -1):
        if m != mode:
            out = torch.tensordot(out, vecs[m], dims=([m], [0]))
    return out


def _scores(x: torch.Tensor, vecs: list[torch.Tensor]) -> torch.Tensor:
    """``t[s] = x[s] contracted with every feature vector``."""
    out = x
    for m in range(x.ndim - 1, 0, -1):
        out = torch.tensordot(out, vecs[m - 1], dims=([m], [0]))
    return out


def _outer(t: torch.Tensor, vecs: list[torch.Tensor]) -> torch.Tensor:
    out = t
    for v in vecs:
        out = out.unsqueeze(-1) * v
    return out


@dataclass
class CPPLSR:
    """Multilinear PLS regression (N-PLS): ``Y ~ T B Q^T`` with ``X ~ sum_c t_c o w_c^1 o ...``.

    For features ``X`` ``(n, I_1, ..., I_p)`` and responses ``Y`` ``(n,)`` or ``(n, m)``, both
    centred, each of the ``n_components`` components takes the rank-one CP ``w^1 o ... o w^p``
    of the covariance tensor ``Z = X x_0 u`` (leading singular vectors, then power sweeps),
    the scores ``t = X x_1 w^1 ... x_p w^p``, the response loading ``q = Y^T t / ||Y^T t||`` and
    ``u = Y q``, until ``u`` moves less than ``tol``; then the inner relation ``B`` (least squares
    of ``u`` on the scores so far) and deflation of ``X`` and ``Y``. Predictions are those of
    TensorLy's ``CP_PLSR`` on the same data (signs of components may differ; predictions do not
    depend on them).

    Attributes:
        n_components: number of latent components.
        max_iter: maximum power iterations per component.
        tol: stop a component when ``||u_new - u_old|| < tol`` (absolute, as TensorLy).
        x_factors_: after :meth:`fit`, ``[T, W^1, ..., W^p]`` (columns per component).
        y_loadings_: ``(m, n_components)`` response loadings ``Q``.
        coef_: ``(n_components, n_components)`` inner relation ``B``.
        x_mean_: the centring of ``X``.
        y_mean_: the centring of ``Y``.

    Raises:
        TypeError: ``n_components``, ``max_iter`` or ``tol`` of the wrong type.
        ValueError: ``n_components`` or ``max_iter`` below 1, or a negative ``tol``.

    Example:
        >>> import torch
        >>> from factorch.regression import CPPLSR
        >>> g = torch.Generator().manual_seed(0)
        >>> t = torch.randn(50, generator=g, dtype=torch.float64)  # one latent component
        >>> a, b = torch.rand(6, generator=g), torch.rand(7, generator=g)
        >>> x = torch.einsum("s,i,j->sij", t, a.double(), b.double())
        >>> model = CPPLSR(1).fit(x, 3 * t)
        >>> float((model.predict(x)[:, 0] - 3 * t).norm() / (3 * t).norm()) < 1e-10
        True
    """

    n_components: int
    _: KW_ONLY
    max_iter: int = 100
    tol: float = 1e-9
    x_factors_: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    y_loadings_: torch.Tensor | None = field(default=None, init=False, repr=False)
    coef_: torch.Tensor | None = field(default=None, init=False, repr=False)
    x_mean_: torch.Tensor | None = field(default=None, init=False, repr=False)
    y_mean_: torch.Tensor | None = field(default=None, init=False, repr=False)
    _scales: tuple[float, float] = field(default=(1.0, 1.0), init=False, repr=False)

    def __post_init__(self) -> None:
        fn = "CPPLSR"
        self.n_components = check_positive_int(self.n_components, fn, "n_components")
        self.max_iter = check_positive_int(self.max_iter, fn, "max_iter")
        self.tol = check_nonneg_float(self.tol, fn, "tol")

    @no_autocast
    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> CPPLSR:
        """Fit to features ``x`` ``(n, I_1, ..., I_p)`` and responses ``y`` ``(n,)`` or
        ``(n, m)``. Not differentiable (the data are detached).

        Raises:
            TypeError: non-tensor, integer, bool or complex data, mismatched dtypes or devices.
            ValueError: NaN/Inf, ``y`` with more than 2 modes, sample counts that differ, or
                more memory than the device has.
        """
        fn = "CPPLSR.fit"
        xt = check_features(x, fn)
        yt = check_targets(y, xt, fn)
        if yt.ndim > 2:
            raise ValueError(
                f"{fn}: y must be (n,) or (n, m); got shape {tuple(yt.shape)}. Reshape tensor "
                "responses to a matrix first."
            )
        xw, yw = working(xt), working(yt).reshape(xt.shape[0], -1)
        check_size(3 * xw.numel() + 3 * yw.numel(), xw.dtype, xw.device, fn)
        sx, sy = safe_scale(xw), safe_scale(yw)
        xw, yw = xw / sx, yw / sy
        self.x_mean_, self.y_mean_ = xw.mean(0), yw.mean(0)
        xc, yc = xw - self.x_mean_, yw - self.y_mean_
        n_comp = self.n_components
        factors = [xc.new_zeros(size, n_comp) for size in xc.shape]
        q_all = yc.new_zeros(yc.shape[1], n_comp)
        coef = xc.new_zeros(n_comp, n_comp)
        for c in range(n_comp):
            t, vecs, u, q = self._component(xc, yc)
            factors[0][:, c] = t
            for k, v in enumerate(vecs):
                factors[k + 1][:, c] = v
            q_all[:, c] = q
            coef[:, c] = torch.linalg.pinv(factors[0]) @ u
            xc = xc - _outer(t, vecs)
            yc = yc - (factors[0] @ coef[:, c]).unsqueeze(1) * q
        self.x_factors_, self.y_loadings_, self.coef_ = factors, q_all, coef
        self._scales = (sx, sy)
        return self

    def _component(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        u = y[:, 0]
        vecs: list[torch.Tensor] | None = None
        old: torch.Tensor | None = None
        t = q = u
        for _ in range(self.max_iter):
            z = torch.tensordot(x, u, dims=([0], [0]))
            vecs = _weights_of(z, vecs)
            t = _scores(x, vecs)
            q = _unit(y.T @ t)
            u = y @ q
            if old is not None and float(torch.linalg.vector_norm(old - u)) < self.tol:
                break
            old = u
        return t, list(vecs or []), u, q

    @no_autocast
    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(n, n_components)`` scores of new features (with deflation, as in the fit).

        Raises:
            ValueError: called before :meth:`fit`, or features of another shape.
        """
        fn = "CPPLSR.transform"
        if self.x_mean_ is None:
            raise ValueError(f"{fn}: the model is not fitted yet; call fit(x, y) first.")
        xt = check_features(x, fn)
        if tuple(xt.shape[1:]) != tuple(self.x_mean_.shape):
            raise ValueError(
                f"{fn}: x has feature shape {tuple(xt.shape[1:])} but the model was fitted on "
                f"features of shape {tuple(self.x_mean_.shape)}; pass features of that shape."
            )
        xc = working(xt) / self._scales[0] - self.x_mean_
        scores = xc.new_zeros(xc.shape[0], self.n_components)
        for c in range(self.n_components):
            vecs = [f[:, c] for f in self.x_factors_[1:]]
            scores[:, c] = _scores(xc, vecs)
            xc = xc - _outer(scores[:, c], vecs)
        return scores

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted responses ``(n, m)`` in ``x``'s dtype. Not differentiable.

        Raises:
            ValueError: called before :meth:`fit`, or features of another shape.
        """
        fn = "CPPLSR.predict"
        if self.coef_ is None or self.y_loadings_ is None or self.y_mean_ is None:
            raise ValueError(f"{fn}: the model is not fitted yet; call fit(x, y) first.")
        xt = check_features(x, fn)
        scores = self.transform(xt)
        pred = scores @ self.coef_ @ self.y_loadings_.T + self.y_mean_
        return (pred * self._scales[1]).to(xt.dtype)
