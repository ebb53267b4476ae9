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
from typing import Literal, get_args

import torch

from .._checks import check_tensor
from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import unfold as _unfold
from ..tensors import TuckerTensor
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._tucker_common import (
    check_callback,
    check_core_bound,
    check_generator,
    check_iter_options,
    check_linalg_dtype,
    check_literal,
    check_tucker_rank,
    converged,
    rand,
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


@torch.no_grad()
def non_negative_tucker(
    tensor: torch.Tensor,
    rank: int | Sequence[int],
    *,
    init: NonNegativeTuckerInit | TuckerTensor = "hosvd",
    max_iter: int = 100,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    method: NonNegativeTuckerMethod = "hals",
) -> DecompositionResult[TuckerTensor]:
    """Non-negative Tucker decomposition ``X ~= [[G; A_0, ..., A_{N-1}]]``, ``G, A_n >= 0``.

    ``method="hals"`` (default): each factor by hierarchical ALS (exact non-negative
    column-by-column minimisation, several passes), then the core by monotone FISTA with step
    ``1 / prod_n ||A_n^T A_n||_2``. ``method="mu"``: Lee--Seung style multiplicative updates
    (Kim & Choi 2007), which need ``X >= 0``. Both never increase the objective: the errors
    reported per iteration are non-increasing up to rounding.

    The data enter only through ``X x_{m != n} A_m^T`` (computed by a dimension tree, two passes
    over ``X`` per iteration) and ``B = X x_n A_n^T``, so the error per iteration is free:
    ``||X - X_hat||^2 = ||X||^2 - 2 <B, G> + <G, G x_n A_n^T A_n>``.

    Args:
        tensor: real floating tensor, at least 1-D, finite (non-negative for ``"mu"``).
        rank: multilinear rank, an int or one int per mode (at most the mode sizes).
        init: ``"hosvd"`` (absolute values of an ST-HOSVD), ``"random"`` (uniform in [0, 1)) or a
            non-negative ``TuckerTensor`` of the right shape and rank.
        max_iter: maximum number of outer iterations.
        tol: stop when the relative error changes by less than ``tol`` (0: run ``max_iter``).
        generator: random source for ``init="random"``.
        callback: called after each iteration with an :class:`IterationState`; ``True`` stops.
        method: ``"hals"`` or ``"mu"``.

    Not differentiable (runs under ``torch.no_grad``).
    """
    fn = "non_negative_tucker"
    sw = Stopwatch()
    check_tensor(tensor, fn, min_ndim=1)
    check_linalg_dtype(tensor, fn)
    if tensor.is_complex():
        raise TypeError(f"{fn}: tensor must be real; got {tensor.dtype}.")
    check_literal(method, get_args(NonNegativeTuckerMethod), fn, "method")
    max_iter, tol = check_iter_options(max_iter, tol, fn)
    check_generator(generator, fn)
    check_callback(callback, fn)
    shape, n_modes = tuple(tensor.shape), tensor.ndim
    ranks = check_tucker_rank(rank, shape, range(n_modes), fn)
    check_core_bound(dict(enumerate(ranks)), shape, fn)
    if method == "mu" and bool((tensor < 0).any()):
        raise ValueError(
            f"{fn}: method='mu' needs a non-negative tensor; got {int((tensor < 0).sum())} "
            "negative entries. Use method='hals' or shift the data."
        )
    dtype, device = tensor.dtype, tensor.device
    if isinstance(init, TuckerTensor):
        _check_nn_init(init, tensor, ranks, fn)
        core = init.core.clone()
        factors: list[torch.Tensor | None] = [f.clone() for f in init.factors]
    elif isinstance(init, str):
        check_literal(init, get_args(NonNegativeTuckerInit), fn, "init")
        if init == "hosvd":
            from ._tucker import hosvd

            start = hosvd(tensor, ranks).model
            core = start.core.abs()
            factors = [f.abs() for f in start.factors]
        else:
            core = rand(ranks, dtype, device, generator)
            factors = [rand((i, r), dtype, device, generator) for i, r in zip(shape, ranks)]
    else:
        raise TypeError(
            f"{fn}: init must be one of {get_args(NonNegativeTuckerInit)} or a TuckerTensor; got "
            f"{type(init).__name__}."
        )
    init_time = sw.elapsed

    grams = [f.T @ f for f in factors]  # type: ignore[union-attr]
    tiny = torch.finfo(dtype).tiny

    def update(n: int, t: torch.Tensor) -> torch.Tensor:
        g_n = _unfold(core, n)
        xw = _unfold(t, n) @ g_n.T
        ww = _unfold(_with_grams(core, grams, n), n) @ g_n.T
        a: torch.Tensor = factors[n]  # type: ignore[assignment]
        if method == "hals":
            a = _hals_factor(a, xw, ww)
        else:
            a = a * xw / (a @ ww + tiny)
        grams[n] = a.T @ a
        return a

    norm_x2 = sq_norm(tensor)
    modes = list(range(n_modes))
    errors: list[float] = []
    done = False
    for it in range(1, max_iter + 1):
        leaf = sweep(tensor, modes, factors, update)
        b = ttm(leaf, factors[-1].T, n_modes - 1)  # type: ignore[union-attr]
        if method == "hals":
            core, gval = _mfista_core(core, b, grams)
        else:
            core = core * b / (_with_grams(core, grams, None) + tiny)
            gh = _with_grams(core, grams, None)
            gval = float(
                0.5 * torch.vdot(core.reshape(-1), gh.reshape(-1))
                - torch.vdot(b.reshape(-1), core.reshape(-1))
            )
        err = math.sqrt(max(norm_x2 + 2 * gval, 0.0) / norm_x2) if norm_x2 > 0 else 0.0
        errors.append(err)
        if len(errors) > 1 and converged(errors[-2], err, tol, dtype):
            done = True
        if callback is not None and callback(
            IterationState(it, err, TuckerTensor(core, tuple(factors)))  # type: ignore[arg-type]
        ):
            break
        if done:
            break
    result = TuckerTensor(core, tuple(factors))  # type: ignore[arg-type]
    return DecompositionResult(result, tuple(errors), len(errors), done, sw.elapsed, init_time)


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
