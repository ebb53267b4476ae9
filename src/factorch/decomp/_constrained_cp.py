"""Constrained and regularised CP by AO-ADMM (Huang, Sidiropoulos and Liavas 2016).

Fits ``X ~= [[A_0, ..., A_{N-1}]]`` (unit weights: the factors carry the scale, so a constraint
on a factor holds on the returned model exactly) by minimising

    1/2 ||X - [[A_0, ..., A_{N-1}]]||_F^2 + sum_n g_n(A_n),

each ``g_n`` a :class:`~factorch.decomp.ProximalOperator` (a constraint or a penalty) or nothing.
Alternating optimisation over the factors; each factor with a ``g_n`` is updated by a few ADMM
iterations on ``min_A 1/2 ||X_(n) - A K^T||^2 + g_n(A)``, which need only ``M = MTTKRP_n``
(from the two-pass dimension tree of :mod:`factorch.decomp._cp_sweep`: two reads of ``X`` per
sweep) and ``G = *_{m != n} A_m^T A_m``:

    rho = trace(G) / R,  L = chol(G + rho I)                     (once per mode update)
    A~  = (M + rho (Z + U)) (G + rho I)^{-1}                       (least squares)
    Z   = prox_{g_n / rho}(A~ - U)                                 (the constraint or penalty)
    U   = U + Z - A~                                               (scaled dual)

until ``||Z - A~|| <= inner_tol ||Z||`` and ``||Z - Z_prev|| <= inner_tol ||U||`` or
``inner_iter`` steps; ``Z`` (feasible) becomes the factor and ``U`` is kept as a warm start.
Free modes get the exact least-squares update. The relative error after a sweep is the free
Gram formula while it resolves what is asked of it, then the exact residual, and the run stops
by the CP family's one rule (:class:`~factorch.decomp._cp_sweep.ErrorTrack`) applied to the
penalised error ``sqrt(err^2 + 2 sum_n g_n / ||X||^2)``.

Reference: K. Huang, N. D. Sidiropoulos and A. P. Liavas, "A flexible and efficient
algorithmic framework for constrained matrix and tensor factorization", IEEE Trans. Signal
Process. 64(19), 2016.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .._checks import as_index, check_positive_int
from .._numerics import HALF_DTYPES, check_memory, no_autocast, upcast, working_dtype
from ..algebra.internal import mttkrp as _mttkrp
from ..tensors import CPTensor
from ._cp import check_mask, dense_input
from ._cp_init import CPInit, init_factors
from ._cp_sweep import (
    CPState,
    ErrorTrack,
    exact_error,
    gram_error,
    hadamard_grams,
    solve_normal,
    tree_mttkrps,
    working_set,
)
from ._nn_common import _check_choice, _check_loop_options, _check_penalty
from ._prox import HardSparsity, ProximalOperator
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import fit_scale

__all__ = [
    "Constraints",
    "admm_update",
    "check_constraints",
    "constrained_cp",
    "mode_scales",
    "rescaled",
    "support_refit",
]

Constraints = (
    ProximalOperator | Sequence[ProximalOperator | None] | Mapping[int, ProximalOperator] | None
)


@dataclass(frozen=True)
class _Options:
    rank: int
    ops: tuple[ProximalOperator | None, ...]
    init: CPInit | CPTensor
    max_iter: int
    tol: float
    inner_iter: int
    inner_tol: float
    mask: torch.Tensor | None
    generator: torch.Generator | None
    callback: Callback | None


@no_autocast
def constrained_cp(
    tensor: torch.Tensor,
    rank: int,
    *,
    constraints: Constraints,
    init: CPInit | CPTensor = "svd",
    max_iter: int = 100,
    tol: float = 1e-8,
    inner_iter: int = 10,
    inner_tol: float = 1e-6,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CPTensor]:
    """CP decomposition with a constraint or penalty per mode, by AO-ADMM.

    See the module docstring for the objective and the algorithm. The built-in operators live
    in :mod:`factorch.decomp.constraints` (non-negativity, L1, L2, ridge, group lasso, L1 and L2
    balls, simplex, unit-norm columns, box, monotonicity, unimodality, smoothness, hard
    sparsity); subclass :class:`~factorch.decomp.ProximalOperator` to add one.

    Hard sparsity (:class:`~factorch.decomp.constraints.HardSparsity`, non-convex) gets two
    extras: when ``max_iter > 20`` its count is annealed from every entry down to ``count``
    over the first 10 iterations (the support is chosen gradually instead of locked in at the
    start; the run does not stop during them, and a callback that stops it there gets the
    factor projected onto ``count`` entries), and after the loop up to 20 sweeps re-solve the
    factor exactly on its support (free modes by least squares), kept only when they lower
    the error (``extras["polish_sweeps"]``; their error is the last entry of ``errors``).

    Args:
        tensor: real floating tensor (or numpy array) with at least 2 modes; float16/bfloat16
            are fitted in float32. A tensor that requires grad is detached.
        rank: number of components ``R`` (any integral type).
        constraints: one :class:`~factorch.decomp.ProximalOperator` for every mode, a sequence
            with one entry per mode (``None`` leaves a mode free), or a mapping
            ``{mode: operator}``. Penalty weights are in the units of ``1/2 ||X - X_hat||^2``
            (absolute: scaling the data changes their effect). CP's scaling freedom lets a free
            mode absorb scale, so a penalty shrinks its mode's columns while another mode grows
            them: penalise every mode, or fix the scale of the others (``UnitNorm``, ``Simplex``).
        init: ``"svd"`` (as :func:`~factorch.decomp.cp`; for non-negative data the
            constrained modes take the absolute values of the singular vectors, as NNDSVD does)
            or ``"random"`` (uniform [0, 1)), rescaled to the data and passed once through each
            mode's operator (at the step the first ADMM update will use); or a
            :class:`CPTensor` whose weights are spread evenly over its factors, used as given
            (never modified).
        max_iter: maximum number of outer iterations (one update of every factor each).
        tol: stop when the penalised relative error changes by less than ``tol`` (or by less
            than its rounding floor); 0 runs ``max_iter`` iterations.
        inner_iter: maximum ADMM iterations per factor update.
        inner_tol: relative primal and dual residual at which an ADMM update stops early.
        mask: bool tensor, True where observed; missing entries (any value, NaN included) are
            filled from the current model before every iteration (EM, as in
            :func:`~factorch.decomp.cp`); errors are measured on the observed entries.
        generator: randomness of ``init``.
        callback: called with an :class:`IterationState` after each iteration; True stops.

    Returns:
        :class:`DecompositionResult` with a :class:`CPTensor` of unit weights whose factors
        satisfy their constraints exactly (in the working dtype; rounding to float16/bfloat16
        can perturb them by that dtype's eps). ``errors``: relative error per iteration (the
        last one exact); ``extras["objective"]``: the penalised objective per iteration, in the
        data's units; ``extras["error_floors"]``; ``extras["admm_iterations"]``: ADMM steps per
        outer iteration.

    Raises:
        TypeError: wrong argument types (non-tensor data, complex or integer dtype, an entry of
            ``constraints`` that is not a ``ProximalOperator``, an operator whose ``prox``
            returns a tensor of another shape, dtype or device).
        ValueError: NaN/Inf data, bad option values, a rank whose working set cannot fit the
            device, an ``init`` of the wrong shape, dtype or device, a ``prox`` that returns
            NaN or Inf.
        IndexError: a mode of a ``constraints`` mapping out of range.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input; tiny or huge data is fitted after exact power-of-four scaling, the scale
    spread evenly over the modes whose operator does not pin it (``pins_scale``: simplex, unit
    columns, bounded boxes and balls keep their units) and each operator seeing its factor in
    the data's units (the model is returned unscaled). So a fit of ``s X`` is the fit of ``X``
    with those ``m`` factors multiplied by ``s^(1/m)``, whenever the penalties are scaled to
    match (an L1 weight on all 3 modes of a 3-way tensor by ``s^(5/3)``, say).

    Example:
        >>> from factorch.decomp import constraints as C
        >>> x = factorch.random.random_cp((8, 9, 10), 2).to_dense().abs()
        >>> res = constrained_cp(x, 2, constraints=[C.NonNegative(), C.Simplex(), None])
        >>> bool(torch.allclose(res.model.factors[1].sum(0), torch.ones(2, dtype=x.dtype)))
        True

    References:
        K. Huang, N. D. Sidiropoulos and A. P. Liavas, "A flexible and efficient algorithmic
        framework for constrained matrix and tensor factorization", IEEE Trans. Signal Process.
        64(19), 2016.
    """
    fn = "constrained_cp"
    x = dense_input(tensor, fn, allow_nan=mask is not None)
    opts = _check_options(
        x, rank, constraints, init, max_iter, tol, inner_iter, inner_tol, mask, generator, callback
    )
    with torch.no_grad():
        return _fit(x, opts)


def check_constraints(
    constraints: object, ndim: int, fn: str
) -> tuple[ProximalOperator | None, ...]:
    """One operator (or None) per mode from the accepted forms of ``constraints``."""
    hint = "Subclass factorch.decomp.ProximalOperator to add your own."
    if constraints is None:
        return (None,) * ndim
    if isinstance(constraints, ProximalOperator):
        return (constraints,) * ndim
    if isinstance(constraints, Mapping):
        ops: list[ProximalOperator | None] = [None] * ndim
        for key, op in constraints.items():
            try:
                mode = as_index(key, fn, "constraints key")
            except TypeError:
                mode = ndim  # reported below
            if not -ndim <= mode < ndim:
                raise IndexError(
                    f"{fn}: constraints keys must be modes in [0, {ndim - 1}]; got {key!r}."
                )
            if not isinstance(op, ProximalOperator):
                raise TypeError(
                    f"{fn}: constraints[{key!r}] must be a ProximalOperator; got "
                    f"{type(op).__name__}. {hint}"
                )
            ops[mode % ndim] = op
        return tuple(ops)
    if isinstance(constraints, Sequence) and not isinstance(constraints, str):
        if len(constraints) != ndim:
            raise ValueError(
                f"{fn}: constraints needs one entry per mode ({ndim}, None for a free mode); "
                f"got {len(constraints)}."
            )
        for n, op in enumerate(constraints):
            if op is not None and not isinstance(op, ProximalOperator):
                raise TypeError(
                    f"{fn}: constraints[{n}] must be a ProximalOperator or None; got "
                    f"{type(op).__name__}. {hint}"
                )
        return tuple(constraints)
    raise TypeError(
        f"{fn}: constraints must be a ProximalOperator, a sequence of them (None for a free "
        f"mode) or a mapping mode -> ProximalOperator; got {type(constraints).__name__}."
    )


def _check_options(
    x: torch.Tensor,
    rank: object,
    constraints: object,
    init: object,
    max_iter: object,
    tol: object,
    inner_iter: object,
    inner_tol: object,
    mask: object,
    generator: torch.Generator | None,
    callback: Callback | None,
) -> _Options:
    fn = "constrained_cp"
    rank = check_positive_int(rank, fn, "rank")
    max_iter, tol_ = _check_loop_options(max_iter, tol, generator, callback, fn)
    inner = check_positive_int(inner_iter, fn, "inner_iter")
    inner_tol_ = _check_penalty(inner_tol, fn, "inner_tol")
    ops = check_constraints(constraints, x.ndim, fn)
    if isinstance(init, CPTensor):
        if init.shape != tuple(x.shape) or init.rank != rank:
            raise ValueError(
                f"{fn}: init must be a CPTensor of shape {tuple(x.shape)} and rank {rank}; got "
                f"shape {init.shape} and rank {init.rank}."
            )
        if init.dtype != x.dtype or init.device != x.device:
            raise ValueError(
                f"{fn}: init must match the tensor's dtype and device ({x.dtype}, {x.device}); "
                f"got ({init.dtype}, {init.device}). Use init.to(...)."
            )
    else:
        _check_choice(init, ("svd", "random"), fn, "init")
    checked_mask = None if mask is None else check_mask(mask, x, fn)
    extra = x.numel() if x.dtype in HALF_DTYPES else 0
    extra += 0 if checked_mask is None else 2 * x.numel()
    check_memory(
        working_set(tuple(x.shape), rank) + extra,
        working_dtype(x.dtype),
        x.device,
        fn,
        f"a rank-{rank} constrained CP fit of a {tuple(x.shape)} tensor",
    )
    return _Options(
        rank=rank,
        ops=ops,
        init=init,  # type: ignore[arg-type]
        max_iter=max_iter,
        tol=tol_,
        inner_iter=inner,
        inner_tol=inner_tol_,
        mask=checked_mask,
        generator=generator,
        callback=callback,
    )


@dataclass(frozen=True)
class _Rescaled(ProximalOperator):
    """``g~(A) = g(c A) / s^2``: the operator ``g`` seen by a fit that divided the data by
    ``s`` and this mode's factor by ``c`` (``c = s`` or 1). Exact:
    ``prox_{g~/rho}(V) = prox_{g/(rho (s/c)^2)}(c V) / c``."""

    op: ProximalOperator
    factor_scale: float
    scale: float

    def prox(self, factor: torch.Tensor, rho: float) -> torch.Tensor:
        c = self.factor_scale
        ratio = self.scale / c
        # The step in the operator's units; kept inside float64's range (an underflow means the
        # penalty dominates the data's fit completely, an overflow that it does not count).
        step = min(max(rho * ratio * ratio, sys.float_info.min), sys.float_info.max)
        return self.op.prox(factor * c, step) / c

    def penalty(self, factor: torch.Tensor) -> float:
        return self.op.penalty(factor * self.factor_scale) / self.scale / self.scale


def mode_scales(ops: Sequence[ProximalOperator | None], scale: float) -> list[float]:
    """How a fit on data divided by ``scale`` divides each factor: the modes whose operator
    pins the scale (:attr:`~factorch.decomp.ProximalOperator.pins_scale`) by 1, the others by
    ``scale^(1/m)`` each (``m`` of them; every mode when all pin it), exact powers of two when
    ``scale`` is one and its exponent divides by ``m``."""
    free = [op is None or not op.pins_scale for op in ops]
    if not any(free):
        free = [True] * len(ops)
    m = sum(free)
    exponent = math.frexp(scale)[1] - 1
    if scale == math.ldexp(1.0, exponent) and exponent % m == 0:
        share = math.ldexp(1.0, exponent // m)
    else:
        share = scale ** (1.0 / m)
    return [share if f else 1.0 for f in free]


def rescaled(ops: Sequence[ProximalOperator | None], scale: float) -> list[ProximalOperator | None]:
    """The operators of a fit on data divided by ``scale`` whose factors are divided by
    :func:`mode_scales`; ``ops`` themselves when ``scale == 1``."""
    if scale == 1.0:
        return list(ops)
    return [
        None if op is None else _Rescaled(op, c, scale)
        for op, c in zip(ops, mode_scales(ops, scale))
    ]


def _checked_prox(
    op: ProximalOperator, v: torch.Tensor, rho: float, fn: str, mode: int
) -> torch.Tensor:
    out = op.prox(v, rho)
    if (
        type(out) is torch.Tensor
        and out.shape == v.shape
        and out.dtype == v.dtype
        and out.device == v.device
    ):  # the common case in one test (this runs at every ADMM step)
        return out
    if not isinstance(out, torch.Tensor) or out.shape != v.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TypeError(
            f"{fn}: the operator of mode {mode} ({type(op).__name__}) returned {got} from prox; "
            f"it must return a tensor of the factor's shape {tuple(v.shape)}."
        )
    if out.dtype != v.dtype or out.device != v.device:
        raise TypeError(
            f"{fn}: the operator of mode {mode} ({type(op).__name__}) returned a {out.dtype} "
            f"tensor on {out.device} from prox; it must keep the factor's {v.dtype} on {v.device}."
        )
    return out


def admm_update(
    mttkrp: torch.Tensor,
    gram: torch.Tensor,
    factor: torch.Tensor,
    dual: torch.Tensor,
    op: ProximalOperator,
    *,
    inner_iter: int,
    inner_tol: float,
    fn: str,
    mode: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """ADMM for ``min_A 1/2 tr(A G A^T) - tr(M^T A) + g(A)`` from ``(factor, dual)`` (module
    docstring); returns the new factor (the prox output), the dual and the steps taken.

    ``(G + rho I)^{-1}`` is formed once (Cholesky; ``rho = trace(G) / R`` keeps its condition
    number below ``R + 1``), so a step is one ``I x R`` by ``R x R`` product, the prox and
    three element-wise updates; the residuals are read in one go.
    """
    rank = gram.shape[0]
    rho = float(gram.diagonal().sum()) / rank
    if not rho > 0 or not math.isfinite(rho):
        rho = 1.0
    shifted = gram.clone()
    shifted.diagonal().add_(rho)  # G + rho I
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(shifted))
    base = mttkrp @ inverse  # the least-squares part, fixed during the loop
    step_matrix = inverse * rho
    # One buffer for the four tensors whose norms each step reads back (Z - A~, Z - Z_prev,
    # Z, U): no per-step stack or allocation; U lives in it.
    norms_of = torch.empty((4, *factor.shape), dtype=factor.dtype, device=factor.device)
    primal_t, change_t, z_t, u = norms_of.unbind(0)
    u.copy_(dual)
    z = factor
    steps = 0
    while steps < inner_iter:
        steps += 1
        a = torch.addmm(base, z + u, step_matrix)  # (M + rho (Z + U)) (G + rho I)^{-1}
        z_prev = z
        z = _checked_prox(op, a - u, rho, fn, mode)
        torch.sub(z, a, out=primal_t)
        u.add_(primal_t)
        torch.sub(z, z_prev, out=change_t)
        z_t.copy_(z)
        # ||Z - A~|| <= tol ||Z|| and ||Z - Z_prev|| <= tol ||U||, from one read-back.
        primal, change, size, dual_size = torch.linalg.vector_norm(norms_of, dim=(1, 2)).tolist()
        if primal <= inner_tol * size and change <= inner_tol * dual_size:
            break
    return z, u, steps


def support_refit(
    mttkrp: torch.Tensor, gram: torch.Tensor, factor: torch.Tensor, *, unit_norm: bool
) -> torch.Tensor:
    """The exact least-squares factor on the support of ``factor`` (a hard-sparsity update):
    each row ``i`` solves ``G[S_i, S_i] a = M[i, S_i]`` on its non-zero columns ``S_i``, scaled
    to unit Frobenius norm when ``unit_norm``. Returned only when it lowers the block objective
    ``1/2 tr(A G A^T) - tr(M^T A)`` below ``factor``'s (the ADMM projection picks the support,
    this solves the problem the support leaves, which ADMM's few steps approach only slowly);
    otherwise ``factor`` itself. The support, hence the constraint, is unchanged."""
    keep = factor != 0
    if bool(keep.all()) or not bool(keep.any()):
        return factor
    s = keep.to(factor.dtype)
    # Rows' systems: G restricted to the support, identity on the rest (those entries stay 0).
    systems = gram * (s.unsqueeze(2) * s.unsqueeze(1)) + torch.diag_embed(1.0 - s)
    solved, info = torch.linalg.solve_ex(systems, (mttkrp * s).unsqueeze(2))
    if bool((info != 0).any()):
        return factor
    cand = solved.squeeze(2) * s
    if unit_norm:
        norm = float(torch.linalg.vector_norm(cand))
        if not norm > 0 or not math.isfinite(norm):
            return factor
        cand = cand / norm

    def block(a: torch.Tensor) -> float:
        return float(0.5 * torch.sum((a @ gram) * a) - torch.sum(mttkrp * a))

    if not bool(torch.isfinite(cand).all()) or block(cand) >= block(factor):
        return factor
    return cand


def _initial(
    x: torch.Tensor, opts: _Options, ops: Sequence[ProximalOperator | None], scale: float
) -> list[torch.Tensor]:
    """Initial factors in the scaled data's units (see ``init`` in :func:`constrained_cp`)."""
    if isinstance(opts.init, CPTensor):
        weights = upcast(opts.init.weights.detach()).to(torch.float64)
        spread = weights.abs() ** (1.0 / x.ndim)
        scales = mode_scales(opts.ops, scale)
        factors = [
            (f.detach().to(torch.float64) * spread / c).to(x.dtype)
            for f, c in zip(opts.init.factors, scales)
        ]
        factors[0] = factors[0] * torch.sign(weights).to(x.dtype)
        return factors
    _, factors = init_factors(x, opts.rank, opts.init, opts.generator)
    if opts.init == "svd" and float(x.min()) >= 0:
        # Non-negative data: the absolute values of the singular vectors of the constrained
        # modes (NNDSVD's choice; clamping them instead strands components at zero).
        factors = [f.abs() if op is not None else f for f, op in zip(factors, ops)]
    # Rescale to the data (least-squares scalar, spread evenly), then through each operator.
    grams = [f.mT @ f for f in factors]
    fit = float(hadamard_grams(grams).sum())  # ||[[A]]||^2
    inner = float(torch.sum(_mttkrp(x, factors, x.ndim - 1) * factors[-1]))  # <X, [[A]]>
    alpha = inner / fit if fit > 0 else 0.0
    if alpha != 0:
        sign = 1.0 if alpha > 0 else -1.0
        factors = [f * abs(alpha) ** (1.0 / x.ndim) for f in factors]
        factors[0] = factors[0] * sign
    grams = [f.mT @ f for f in factors]
    for n, op in enumerate(ops):
        if op is not None:
            rho = float(hadamard_grams(grams, skip=n).diagonal().sum()) / opts.rank
            factors[n] = _checked_prox(op, factors[n], rho if rho > 0 else 1.0, "constrained_cp", n)
            _check_finite_factor(factors[n], n, op, "constrained_cp")
            grams[n] = factors[n].mT @ factors[n]
    return factors


def _fit(tensor: torch.Tensor, opts: _Options) -> DecompositionResult[CPTensor]:
    fn = "constrained_cp"
    clock = Stopwatch()
    dtype = tensor.dtype
    x = upcast(tensor).contiguous()
    mask = opts.mask
    if mask is not None:
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    scale = fit_scale(x)
    if scale != 1.0:
        x = x / scale
    ops = rescaled(opts.ops, scale)
    state = CPState.start(
        torch.ones(opts.rank, dtype=x.dtype, device=x.device), _initial(x, opts, ops, scale)
    )
    duals = [torch.zeros_like(f) for f in state.factors]
    init_time = clock.elapsed
    norm_x2 = float(torch.linalg.vector_norm(x)) ** 2
    track = ErrorTrack(opts.tol, exact=mask is not None)
    errors: list[float] = []
    objective: list[float] = []
    admm_steps: list[int] = []
    converged = False
    work = x
    ramp = _ramp(opts)
    for it in range(1, opts.max_iter + 1):
        if mask is not None:  # EM: missing entries filled from the current model
            work = torch.where(mask, x, _dense(state))
        steps = 0
        mttkrp = state.factors[-1]
        for n, mttkrp in tree_mttkrps(work, state.factors):
            gram = hadamard_grams(state.grams, skip=n)
            op = _annealed(opts.ops[n], it, ramp, state.factors[n]) or ops[n]
            if op is None:
                state.factors[n] = solve_normal(mttkrp, gram, 0.0)
            else:
                state.factors[n], duals[n], k = admm_update(
                    mttkrp, gram, state.factors[n], duals[n], op,
                    inner_iter=opts.inner_iter, inner_tol=opts.inner_tol, fn=fn, mode=n,
                )  # fmt: skip
                steps += k
            _check_finite_factor(state.factors[n], n, opts.ops[n], fn)
            state.grams[n] = state.factors[n].mT @ state.factors[n]
        err, floor = _error(x, state, mttkrp, norm_x2, mask, exact=track.exact)
        penalty = sum(op.penalty(f) for op, f in zip(ops, state.factors) if op is not None)
        q, q_floor = _penalised(err, floor, penalty, norm_x2)
        if track.gram_unresolved(q, q_floor):
            track.switch_to_exact()
            err, floor = _error(x, state, mttkrp, norm_x2, mask, exact=True)
            q, q_floor = _penalised(err, floor, penalty, norm_x2)
        converged = track.converged(q, q_floor) and it > ramp
        if not track.exact and (converged or it == opts.max_iter):  # the true final error
            err, floor = _error(x, state, mttkrp, norm_x2, mask, exact=True)
            q, q_floor = _penalised(err, floor, penalty, norm_x2)
        track.record(q, q_floor)
        errors.append(err)
        objective.append((0.5 * err * err * norm_x2 + penalty) * scale * scale)
        admm_steps.append(steps)
        if opts.callback is not None:
            model = _output(state, opts.ops, scale, dtype)
            if opts.callback(IterationState(it, err, model)) is True:
                if not track.exact and not converged and it < opts.max_iter:
                    errors[-1], track.floors[-1] = _error(x, state, None, norm_x2, mask, exact=True)
                break
        if converged:
            break
    sweeps = 0
    if any(isinstance(op, HardSparsity) for op in opts.ops):
        if len(errors) <= ramp:  # stopped by the callback while the count was relaxed
            for n, op in enumerate(ops):
                if isinstance(opts.ops[n], HardSparsity) and op is not None:
                    state.factors[n] = _checked_prox(op, state.factors[n], 1.0, fn, n)
                    state.grams[n] = state.factors[n].mT @ state.factors[n]
        sweeps = _polish(x, state, ops, opts, mask)
        if sweeps or len(errors) <= ramp:
            err, _ = _error(x, state, None, norm_x2, mask, exact=True)
            penalty = sum(op.penalty(f) for op, f in zip(ops, state.factors) if op is not None)
            errors.append(err)
            objective.append((0.5 * err * err * norm_x2 + penalty) * scale * scale)
            admm_steps.append(0)
            track.floors.append(track.floors[-1])
    model = _output(state, opts.ops, scale, dtype)
    if dtype != x.dtype:  # the rounding to half precision is part of the model's error
        rounded = CPState.start(
            torch.ones(opts.rank, dtype=x.dtype, device=x.device),
            [upcast(f) / c for f, c in zip(model.factors, mode_scales(opts.ops, scale))],
        )
        errors[-1], _ = _error(x, rounded, None, norm_x2, mask, exact=True)
    return DecompositionResult(
        model=model,
        errors=tuple(errors),
        iterations=len(errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={
            "objective": tuple(objective),
            "error_floors": tuple(track.floors),
            "admm_iterations": tuple(admm_steps),
            "polish_sweeps": sweeps,
        },
    )


def _ramp(opts: _Options) -> int:
    """Iterations over which a hard-sparsity count is annealed (:func:`_annealed`): 10, or
    none when no mode has a hard-sparsity constraint or ``max_iter <= 20``."""
    if not any(isinstance(op, HardSparsity) for op in opts.ops):
        return 0
    return 10 if opts.max_iter > 20 else 0


def _annealed(
    raw: ProximalOperator | None, it: int, ramp: int, factor: torch.Tensor
) -> HardSparsity | None:
    """The hard-sparsity operator of iteration ``it <= ramp``: its count lowered linearly
    from every entry (iteration 0) to ``count`` (iteration ``ramp + 1``), so the support is
    chosen gradually (projecting onto ``count`` entries from the first iteration locks in the
    support of the start and lands in poorer local minima: the median objective
    from the same start on the planted case of ``benchmarks/bench_ports_a.py --only constrained``:
    0.67x TensorLy's over 10 seeds, against 1.02x without it).
    None otherwise. The count is scale-free (so is ``unit_norm``: it pins the mode's scale),
    so the operator applies to the scaled factors as it is."""
    if not isinstance(raw, HardSparsity) or it > ramp:
        return None
    total = factor.shape[0] if raw.per_column else factor.numel()
    count = round(raw.count + (total - raw.count) * (1.0 - it / (ramp + 1)))
    return HardSparsity(max(count, raw.count), per_column=raw.per_column, unit_norm=raw.unit_norm)


def _polish(
    x: torch.Tensor,
    state: CPState,
    ops: Sequence[ProximalOperator | None],
    opts: _Options,
    mask: torch.Tensor | None,
) -> int:
    """Support-fixed sweeps after the AO-ADMM loop when a mode has a hard-sparsity
    constraint: each such factor re-solved exactly on its support (:func:`support_refit`),
    free modes by least squares, other constrained modes left as they are; until the error
    changes by less than ``max(tol, 1e-12)`` relatively, at most 20 sweeps. Every step
    minimises the objective over one block with the support fixed, so the error does not
    rise; the constraint (the support) is unchanged. Returns the sweeps run (0, the state
    unchanged, when they did not lower the error)."""
    norm_x2 = float(torch.linalg.vector_norm(x)) ** 2
    first, _ = _error(x, state, None, norm_x2, mask, exact=True)
    saved = ([f.clone() for f in state.factors], [g.clone() for g in state.grams])
    before, sweeps = first, 0
    while sweeps < 20:
        work = x if mask is None else torch.where(mask, x, _dense(state))
        for n, mttkrp in tree_mttkrps(work, state.factors):
            raw = opts.ops[n]
            gram = hadamard_grams(state.grams, skip=n)
            if raw is None:
                state.factors[n] = solve_normal(mttkrp, gram, 0.0)
            elif isinstance(raw, HardSparsity):
                state.factors[n] = support_refit(
                    mttkrp, gram, state.factors[n], unit_norm=raw.unit_norm
                )
            state.grams[n] = state.factors[n].mT @ state.factors[n]
        sweeps += 1
        err, _ = _error(x, state, None, norm_x2, mask, exact=True)
        if before - err <= max(opts.tol, 1e-12) * before:
            break
        before = err
    if not err < first:  # every step is a block minimisation, so this is rounding: undo
        state.factors[:], state.grams[:] = saved
        return 0
    return sweeps


def _penalised(err: float, floor: float, penalty: float, norm_x2: float) -> tuple[float, float]:
    """``sqrt(err^2 + 2 penalty / ||X||^2)`` and its floor (the error's, scaled by its share)."""
    if norm_x2 <= 0:
        return err, floor
    q = math.sqrt(err * err + 2.0 * penalty / norm_x2)
    return q, floor * (err / q if q > 0 else 1.0)


def _check_finite_factor(
    factor: torch.Tensor, mode: int, op: ProximalOperator | None, fn: str
) -> None:
    if not bool(torch.isfinite(factor).all()):
        who = "" if op is None else f" (its operator is {type(op).__name__})"
        raise ValueError(
            f"{fn}: the update of mode {mode}{who} produced NaN or Inf; check the operator's "
            "prox, or lower its weight."
        )


def _dense(state: CPState) -> torch.Tensor:
    return CPTensor(state.weights, tuple(state.factors)).to_dense()


def _error(
    x: torch.Tensor,
    state: CPState,
    mttkrp: torch.Tensor | None,
    norm_x2: float,
    mask: torch.Tensor | None,
    *,
    exact: bool,
) -> tuple[float, float]:
    if mask is not None:
        dense = _dense(state)
        resid = torch.where(mask, x - dense, 0.0)
        norm_x = max(math.sqrt(norm_x2), torch.finfo(torch.float64).tiny)
        model = float(torch.linalg.vector_norm(torch.where(mask, dense, 0.0)))
        eps = torch.finfo(x.dtype).eps
        return float(torch.linalg.vector_norm(resid)) / norm_x, 4 * eps * (1 + model / norm_x)
    if exact or mttkrp is None:
        return exact_error(x, state, norm_x2)
    return gram_error(norm_x2, mttkrp, state)


def _output(
    state: CPState, ops: Sequence[ProximalOperator | None], scale: float, dtype: torch.dtype
) -> CPTensor:
    """The model in ``dtype`` with the data's scale restored (as :func:`mode_scales` spread
    it)."""
    scales = mode_scales(ops, scale)
    out = tuple((f.to(torch.float64) * c).to(dtype) for f, c in zip(state.factors, scales))
    if not all(bool(torch.isfinite(f).all()) for f in out):
        raise ValueError(
            f"constrained_cp: the fitted model cannot be represented in {dtype} (its factors "
            "exceed the dtype's range); convert the tensor to a wider dtype first."
        )
    weights = torch.ones(state.weights.shape[0], dtype=dtype, device=state.weights.device)
    return CPTensor(weights, out)
