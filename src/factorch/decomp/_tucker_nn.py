"""Non-negative Tucker decomposition: HALS factors with a monotone accelerated core, or MU.

Minimises ``f = 1/2 ||X - G x_0 A_0 ... x_{N-1} A_{N-1}||^2`` over ``G >= 0`` and ``A_n >= 0``.

References:
    A. Cichocki, A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix and tensor
    factorizations", IEICE Trans. Fundamentals E92-A(3), 2009 (HALS).
    Y.-D. Kim, S. Choi, "Nonnegative Tucker decomposition", CVPR 2007 (multiplicative updates).
    A. Beck, M. Teboulle, "Fast gradient-based algorithms for constrained total variation image
    denoising and deblurring problems", IEEE Trans. Image Process. 18(11), 2009 (monotone FISTA).
    J. E. Cohen, "A note on the NTD-HALS algorithm" / TensorLy's ``non_negative_tucker_hals``
    (HALS factors + FISTA core; here the core step is the monotone MFISTA variant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, cast, get_args

import torch

from .._numerics import no_autocast, upcast
from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import unfold as _unfold
from ..tensors import TuckerTensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._tucker_common import (
    Work,
    check_callback,
    check_core_bound,
    check_generator,
    check_iter_options,
    check_literal,
    check_masked_data,
    check_tucker_rank,
    converged,
    finish,
    masked_rel_error,
    prepare,
    rand,
    refine_error,
    scale_tucker,
    sq_norm,
    sweep,
    ttm,
)

__all__ = ["NonNegativeTuckerMethod", "non_negative_tucker"]

NonNegativeTuckerMethod = Literal["hals", "mu"]
NonNegativeTuckerInit = Literal["hosvd", "random"]

_INNER_FACTOR = 5  # HALS sweeps over the columns of one factor per outer iteration
_INNER_CORE = 20  # MFISTA steps on the core per outer iteration


def _with_grams(
    core: torch.Tensor, grams: Sequence[torch.Tensor], skip: int | None
) -> torch.Tensor:
    out = core
    for m, h in enumerate(grams):
        if m != skip:
            out = _mode_dot(out, h, m)
    return out


def _hals_factor(a: torch.Tensor, xw: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
    """Exact block coordinate descent over the columns of ``a`` for ``1/2 ||X_(n) - a W||^2``.

    ``xw = X_(n) W^T``, ``ww = W W^T``. Each column update is the exact non-negative minimiser with
    the other columns fixed, so the objective never increases.
    """
    diag = torch.diagonal(ww)
    tiny = torch.finfo(a.dtype).tiny
    for _ in range(_INNER_FACTOR):
        for r in range(a.shape[1]):
            d = float(diag[r])
            if d <= tiny:
                continue
            step = (xw[:, r] - a @ ww[:, r]) / d
            a[:, r] = (a[:, r] + step).clamp_min_(0)
    return a


def _mfista_core(
    core: torch.Tensor, b: torch.Tensor, grams: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, float]:
    """Monotone FISTA on ``g(G) = 1/2 <G, G x H> - <B, G>`` over ``G >= 0``.

    Returns the new core and ``g`` at it. The accepted iterate never has a larger ``g`` than the
    starting core (Beck & Teboulle's MFISTA keeps the better of the proximal point and the previous
    iterate), which makes the outer objective monotone.
    """

    def value(g: torch.Tensor, gh: torch.Tensor) -> float:
        return float(
            0.5 * torch.vdot(g.reshape(-1), gh.reshape(-1))
            - torch.vdot(b.reshape(-1), g.reshape(-1))
        )

    lips = math.prod(float(torch.linalg.eigvalsh(h)[-1]) for h in grams)
    x = core
    fx = value(x, _with_grams(x, grams, None))
    if not lips > 0:
        return x, fx
    y, t = x, 1.0
    for _ in range(_INNER_CORE):
        z = (y - (_with_grams(y, grams, None) - b) / lips).clamp_min_(0)
        fz = value(z, _with_grams(z, grams, None))
        x_new, f_new = (z, fz) if fz <= fx else (x, fx)
        t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        y = x_new + (t / t_new) * (z - x_new) + ((t - 1) / t_new) * (x_new - x)
        small = abs(fx - f_new) <= 1e-13 * max(abs(fx), 1e-300)
        x, fx, t = x_new, f_new, t_new
        if small:
            break
    return x, fx


@no_autocast
@torch.no_grad()
def non_negative_tucker(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    init: NonNegativeTuckerInit | TuckerTensor = "hosvd",
    method: NonNegativeTuckerMethod = "hals",
    max_iter: int = 100,
    tol: float = 1e-8,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[TuckerTensor]:
    """Non-negative Tucker decomposition ``X ~= [[G; A_0, ..., A_{N-1}]]``, ``G, A_n >= 0``.

    ``method="hals"`` (default): each factor by hierarchical ALS (exact non-negative
    column-by-column minimisation, several passes), then the core by monotone FISTA with step
    ``1 / prod_n ||A_n^T A_n||_2``. ``method="mu"``: Lee--Seung style multiplicative updates
    (Kim & Choi 2007), which need ``X >= 0``. Both never increase the objective: the errors
    reported per iteration are non-increasing up to rounding.

    The data enter only through ``X x_{m != n} A_m^T`` (computed by a dimension tree, two passes
    over ``X`` per iteration) and ``B = X x_n A_n^T``, so the error per iteration is free:
    ``||X - X_hat||^2 = ||X||^2 - 2 <B, G> + <G, G x_n A_n^T A_n>``; the final one is measured
    from the residual where that formula has run out of digits.

    The data are divided by an exact power of two before the fit (any scale in the dtype's
    normal range fits alike), half precision is computed in float32, and the model comes back in
    the input dtype.

    **Missing values** (``mask=``): EM imputation, as in :func:`tucker` -- the unobserved entries
    start at the mean of the observed ones and are replaced by the current (non-negative) model
    before every iteration; each iteration is then one HALS or MU iteration on the completed
    tensor, which never increases the error on the observed entries (the completed objective
    majorises the observed one). The error is measured on the observed entries, exactly.

    Args:
        tensor: real floating tensor (or numpy array), at least 1-D, finite (non-negative for
            ``"mu"``; both on the observed entries when ``mask`` is given).
        rank: multilinear rank, an int or one int per mode (at most the mode sizes; numpy
            integers accepted).
        init: ``"hosvd"`` (absolute values of an ST-HOSVD), ``"random"`` (uniform in [0, 1)) or a
            non-negative ``TuckerTensor`` of the right shape, rank and dtype.
        method: ``"hals"`` or ``"mu"``.
        max_iter: maximum number of outer iterations.
        tol: stop when the relative error changes by less than ``tol`` (0: run ``max_iter``).
        mask: bool tensor of the data's shape, True where observed (unobserved entries may hold
            NaN); ``None``: every entry is observed.
        generator: random source for ``init="random"``.
        callback: called after each iteration with an :class:`IterationState`; ``True`` stops.

    Returns:
        ``DecompositionResult`` with a non-negative ``TuckerTensor`` and the relative error after
        each iteration (the last one the true error of the returned model; on the observed
        entries with a mask).

    Raises:
        TypeError: for a non-tensor, integer or complex dtype, or bad option types.
        ValueError: for NaN/Inf (among observed entries), empty dimensions, bad ranks, negative
            data with ``"mu"``, a bad ``init`` or mask, or a model that overflows the input
            dtype.

    Not differentiable: runs under ``torch.no_grad`` on the detached data.

    Example:
        >>> import torch
        >>> from factorch.decomp import non_negative_tucker
        >>> x = torch.rand(5, 6, 7, dtype=torch.float64)
        >>> res = non_negative_tucker(x, 2, max_iter=20)
        >>> bool((res.model.core >= 0).all()), res.model.rank
        (True, (2, 2, 2))
    """
    fn = "non_negative_tucker"
    sw = Stopwatch()
    x, observed, ranks, iters, tol = _check_nn_args(tensor, mask, rank, method, max_iter, tol, fn)
    gen = check_generator(generator, fn)
    check_callback(callback, fn)
    if not isinstance(init, (str, TuckerTensor)):
        raise TypeError(
            f"{fn}: init must be one of {get_args(NonNegativeTuckerInit)} or a TuckerTensor; got "
            f"{type(init).__name__}."
        )
    if isinstance(init, TuckerTensor):
        _check_nn_init(init, x, ranks, fn)
    else:
        check_literal(init, get_args(NonNegativeTuckerInit), fn, "init")
    work = prepare(x, detach=True)
    data = work.data
    if observed is not None:
        data = torch.where(observed, data, data[observed].mean())
    core, factors = _nn_start(work, data, init, ranks, gen)
    init_time = sw.elapsed
    fit = _NNTucker(data, core, factors, method)

    errors: list[float] = []
    done = False
    for it in range(1, iters + 1):
        if observed is None:
            errors.append(fit.step())
            done = len(errors) > 1 and converged(errors[-2], errors[-1], tol, data.dtype)
        else:  # EM: impute from the current model, one iteration on the completed tensor
            fit.set_data(torch.where(observed, work.data, fit.model().to_dense()))
            fit.step()
            errors.append(masked_rel_error(work.data, fit.model().to_dense(), observed))
            done = len(errors) > 1 and converged(errors[-2], errors[-1], tol, data.dtype,
                                                 exact=True)  # fmt: skip
        if callback is not None:
            shown = finish(work, fit.model(), scale_tucker, (), fn, observed)[0]
            if callback(IterationState(it, errors[-1], shown)):
                break
        if done:
            break
    model = fit.model()
    if observed is None:
        errors[-1] = refine_error(work.data, model, errors[-1])
    model, errs = finish(work, model, scale_tucker, errors, fn, observed)
    return DecompositionResult(model, errs, len(errs), done, sw.elapsed, init_time)


def _check_nn_args(
    tensor: object,
    mask: object,
    rank: object,
    method: object,
    max_iter: object,
    tol: object,
    fn: str,
) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, ...], int, float]:
    x, observed = check_masked_data(tensor, mask, fn)
    if x.is_complex():
        raise TypeError(f"{fn}: tensor must be real; got {x.dtype}.")
    check_literal(method, get_args(NonNegativeTuckerMethod), fn, "method")
    iters, tolerance = check_iter_options(max_iter, tol, fn)
    ranks = check_tucker_rank(rank, x.shape, range(x.ndim), fn)
    check_core_bound(dict(enumerate(ranks)), x.shape, fn)
    if method == "mu" and bool((x < 0).any()):
        raise ValueError(
            f"{fn}: method='mu' needs a non-negative tensor; got {int((x < 0).sum())} "
            "negative entries. Use method='hals' or shift the data."
        )
    return x, observed, ranks, iters, tolerance


def _nn_start(
    work: Work,
    data: torch.Tensor,
    init: str | TuckerTensor,
    ranks: Sequence[int],
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Starting core and factors for the scaled working data ``data`` (missing entries filled)."""
    if isinstance(init, TuckerTensor):
        core = upcast(init.core.detach()) / work.scale
        return core, [upcast(f.detach()).clone() for f in init.factors]
    if init == "hosvd":
        from ._tucker import hosvd

        start = hosvd(data, tuple(ranks)).model
        return start.core.abs(), [f.abs() for f in start.factors]
    dtype, device = data.dtype, data.device
    core = rand(ranks, dtype, device, generator)
    return core, [rand((i, r), dtype, device, generator) for i, r in zip(data.shape, ranks)]


class _NNTucker:
    """The state of a non-negative Tucker fit: one :meth:`step` is one outer iteration."""

    def __init__(
        self, data: torch.Tensor, core: torch.Tensor, factors: list[torch.Tensor], method: str
    ) -> None:
        self.data, self.core, self.method = data, core, method
        self.factors: list[torch.Tensor | None] = list(factors)
        self.grams = [f.T @ f for f in factors]
        self.norm_x2 = sq_norm(data)
        self.tiny = torch.finfo(data.dtype).tiny

    def set_data(self, data: torch.Tensor) -> None:
        """Replace the tensor being fitted (EM imputation of missing entries)."""
        self.data = data
        self.norm_x2 = sq_norm(data)

    def _factor(self, n: int) -> torch.Tensor:
        return cast(torch.Tensor, self.factors[n])  # every mode is decomposed: never None

    def _update(self, n: int, t: torch.Tensor) -> torch.Tensor:
        g_n = _unfold(self.core, n)
        xw = _unfold(t, n) @ g_n.T
        ww = _unfold(_with_grams(self.core, self.grams, n), n) @ g_n.T
        a = self._factor(n)
        if self.method == "hals":
            a = _hals_factor(a, xw, ww)
        else:
            a = a * xw / (a @ ww + self.tiny)
        self.grams[n] = a.T @ a
        return a

    def step(self) -> float:
        """One outer iteration; returns the relative error from the norm formula."""
        n_modes = self.data.ndim
        leaf = sweep(self.data, list(range(n_modes)), self.factors, self._update)
        b = ttm(leaf, self._factor(n_modes - 1).T, n_modes - 1)
        if self.method == "hals":
            self.core, gval = _mfista_core(self.core, b, self.grams)
        else:
            self.core = self.core * b / (_with_grams(self.core, self.grams, None) + self.tiny)
            gh = _with_grams(self.core, self.grams, None)
            gval = float(
                0.5 * torch.vdot(self.core.reshape(-1), gh.reshape(-1))
                - torch.vdot(b.reshape(-1), self.core.reshape(-1))
            )
        if self.norm_x2 <= 0:
            return 0.0
        return math.sqrt(max(self.norm_x2 + 2 * gval, 0.0) / self.norm_x2)

    def model(self) -> TuckerTensor:
        return TuckerTensor(self.core, tuple(self._factor(n) for n in range(self.data.ndim)))


def _check_nn_init(init: TuckerTensor, tensor: torch.Tensor, ranks: Sequence[int], fn: str) -> None:
    if tuple(init.shape) != tuple(tensor.shape) or tuple(init.core.shape) != tuple(ranks):
        raise ValueError(
            f"{fn}: init has shape {tuple(init.shape)} and rank {tuple(init.core.shape)}; expected "
            f"shape {tuple(tensor.shape)} and rank {tuple(ranks)}."
        )
    if init.dtype != tensor.dtype or init.device != tensor.device:
        raise ValueError(
            f"{fn}: init is {init.dtype} on {init.device} but the tensor is {tensor.dtype} on "
            f"{tensor.device}; convert it with init.to(...)."
        )
    if bool((init.core < 0).any()) or any(bool((f < 0).any()) for f in init.factors):
        raise ValueError(f"{fn}: init must have a non-negative core and factors.")
