"""Coupled matrix and tensor factorization (CMTF) by alternating least squares.

A tensor ``X`` (``N`` modes) and matrices ``Y_1 .. Y_M`` whose rows share a mode of ``X``
(``Y_m`` is ``I_{n_m} x L_m``) are fitted by one CP model and matrix factors that share its
factor ``A_{n_m}``:

    X ~= [[A_0, ..., A_{N-1}]],        Y_m ~= A_{n_m} V_m^T,

minimising ``w_0/2 ||X - X_hat||^2 + sum_m w_m/2 ||Y_m - Y_hat_m||^2`` (block weights ``w``),
over the observed entries when blocks have missing values (EM: each iteration fills them from
the current model, as :func:`~factorch.decomp.cp` does; every block, tensor or matrix, may have
its own mask). One iteration is a CP sweep over the tensor factors -- the MTTKRPs of
:func:`~factorch.decomp._cp_sweep.tree_mttkrps`, the shared factors solving the normal
equations with the matrices' terms added,

    A_n ((*_{k != n} A_k^T A_k) + sum_{m: n_m = n} (w_m/w_0) V_m^T V_m)
        = MTTKRP_n + sum_{m: n_m = n} (w_m/w_0) Y_m V_m,

-- then ``V_m = Y_m^T A_{n_m} (A_{n_m}^T A_{n_m})^{-1}`` for every matrix (Acar, Kolda and Dunlavy
2011, Figure 5, with the dimension-tree MTTKRP instead of explicit Khatri--Rao products). The
error of the tensor block is CP's free Gram formula while it resolves what is asked of it, the
matrices' errors are exact, and the run stops by the CP family's one rule on the weighted total.

Reference: E. Acar, T. G. Kolda and D. M. Dunlavy, "All-at-once optimization for coupled matrix
and tensor factorizations", KDD Workshop on Mining and Learning with Graphs, 2011
(arXiv:1105.3422).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._checks import as_index, as_tensor, check_positive_int, check_tensor
from .._numerics import HALF_DTYPES, check_memory, no_autocast, upcast, working_dtype
from ..tensors import CPTensor
from ._cp import check_mask, dense_input
from ._cp_init import gram_of_unfolding, init_factors
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
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import fit_scale

__all__ = ["CMTFModel", "cmtf"]


@dataclass(frozen=True, eq=False)
class CMTFModel:
    """A coupled model: a CP tensor and matrix factorizations sharing its factors.

    Attributes:
        tensor: the CP model of the tensor (unit-norm factor columns, scale in ``weights``).
        matrices: one 2-way :class:`CPTensor` per matrix, ``Y_m ~= [[s_m; U, V_m]]``: its
            ``factors[0]`` *is* the shared unit-norm factor ``tensor.factors[modes[m]]``,
            ``factors[1]`` the matrix's own unit-norm factor, ``weights`` its scale.
        modes: the tensor mode each matrix shares.

    Raises:
        ValueError: a number of modes different from the number of matrices.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = factorch.random.random_cp((4, 5, 6), 2, generator=g).to_dense()
        >>> model = cmtf(x, torch.rand(4, 3, generator=g), 2, modes=0, max_iter=5,
        ...              generator=g).model
        >>> model.rank, model.modes, model.matrices[0].shape
        (2, (0,), (4, 3))
    """

    tensor: CPTensor
    matrices: tuple[CPTensor, ...]
    modes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.matrices) != len(self.modes):
            raise ValueError(
                f"CMTFModel: one mode per matrix; got {len(self.matrices)} matrices and "
                f"{len(self.modes)} modes."
            )

    @property
    def rank(self) -> int:
        return self.tensor.rank

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> CMTFModel:
        """Copy to another device and/or dtype (shared factors stay shared)."""
        tensor = self.tensor.to(device=device, dtype=dtype)
        matrices = tuple(
            CPTensor(
                m.weights.to(device=device, dtype=dtype),
                (tensor.factors[n], m.factors[1].to(device=device, dtype=dtype)),
            )
            for m, n in zip(self.matrices, self.modes)
        )
        return CMTFModel(tensor, matrices, self.modes)


@dataclass(frozen=True)
class _Options:
    rank: int
    modes: tuple[int, ...]
    weights: tuple[float, ...]
    init: str
    max_iter: int
    tol: float
    l2: float
    mask: torch.Tensor | None
    matrix_masks: tuple[torch.Tensor | None, ...]
    generator: torch.Generator | None
    callback: Callback | None


@no_autocast
def cmtf(
    tensor: torch.Tensor,
    matrices: torch.Tensor | Sequence[torch.Tensor],
    rank: int,
    *,
    modes: int | Sequence[int] = 0,
    weights: Sequence[float] | None = None,
    mask: torch.Tensor | None = None,
    matrix_masks: Sequence[torch.Tensor | None] | None = None,
    init: str = "svd",
    max_iter: int = 100,
    tol: float = 1e-8,
    l2: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[CMTFModel]:
    """Coupled matrix and tensor factorization (CMTF-ALS) with block weights and missing values.

    See the module docstring for the model and the algorithm.

    Args:
        tensor: real floating tensor (or numpy array) with at least 2 modes; finite except at
            unobserved entries. float16/bfloat16 are fitted in float32; grad is detached.
        matrices: one matrix or a sequence of them (torch or numpy), the rows of matrix ``m``
            indexed like mode ``modes[m]`` of the tensor; same dtype and device as the tensor.
        rank: number of components ``R`` shared by every block (any integral type).
        modes: the tensor mode each matrix shares (one int for all, or one per matrix).
        weights: block weights ``(w_0, w_1, ..., w_M)`` > 0, tensor first (default all 1).
            Each block enters the objective as ``w/2 ||residual||^2`` in its own units: to
            balance blocks of different sizes or scales, divide by their squared norms.
        mask: bool tensor, True where the tensor is observed (missing entries: any value).
        matrix_masks: one bool mask or ``None`` per matrix.
        init: ``"svd"`` (tensor factors as :func:`~factorch.decomp.cp`; each shared factor from
            the leading eigenvectors of ``X_(n) X_(n)^T + sum_m w_m/w_0 Y_m Y_m^T``, the
            concatenated data, as TensorLy) or ``"random"`` (uniform [0, 1)).
        max_iter: maximum number of iterations.
        tol: stop when the weighted relative error changes by less than ``tol`` (or its
            rounding floor); 0 runs ``max_iter`` iterations.
        l2: ridge ``l2 ||A||^2`` on every least-squares update (absolute).
        generator: randomness of the initialisation.
        callback: called with an :class:`IterationState` (``model`` a :class:`CMTFModel`) after
            each iteration; True stops.

    Returns:
        :class:`DecompositionResult` with a :class:`CMTFModel`. ``errors``: the weighted
        relative error ``sqrt(sum_b w_b ||R_b||^2 / sum_b w_b ||D_b||^2)`` over the observed
        entries per iteration, the last one exact; ``extras["block_errors"]``: the final
        relative error of each block, tensor first; ``extras["error_floors"]``.

    Raises:
        TypeError: non-tensor, integer, complex or boolean data; non-bool masks; a non-integral
            rank or mode; a ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN/Inf on observed entries; matrices whose row counts do not match their
            mode, or of another dtype or device; a wrong number of modes, weights or masks;
            non-positive weights; bad option values; a working set too large for the device.
        IndexError: a mode out of range.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the tensor; all blocks are divided by one exact power of four when their largest
    entry is tiny or huge (the objective's balance is unchanged).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b, c, v = (torch.randn(n, 2, generator=g, dtype=torch.float64) for n in (6, 7, 8, 5))
        >>> x = factorch.tensors.CPTensor.from_factors([a, b, c]).to_dense()
        >>> res = cmtf(x, a @ v.T, 2)
        >>> res.error < 1e-3
        True

    References:
        E. Acar, T. G. Kolda and D. M. Dunlavy, "All-at-once optimization for coupled matrix and
        tensor factorizations", arXiv:1105.3422, 2011.
    """
    fn = "cmtf"
    x = dense_input(tensor, fn, allow_nan=mask is not None)
    mats = _check_matrices(matrices, x, matrix_masks, fn)
    opts = _check_options(
        x, mats, rank, modes, weights, mask, matrix_masks, init, max_iter, tol, l2, generator,
        callback,
    )  # fmt: skip
    with torch.no_grad():
        return _fit(x, mats, opts)


def _check_matrices(
    matrices: object, x: torch.Tensor, matrix_masks: object, fn: str
) -> list[torch.Tensor]:
    items = [matrices] if isinstance(matrices, torch.Tensor) or hasattr(matrices, "__array__") \
        else matrices  # fmt: skip
    if not isinstance(items, (list, tuple)) or not items:
        raise TypeError(
            f"{fn}: matrices must be a matrix or a non-empty sequence of matrices; got "
            f"{type(matrices).__name__}."
        )
    out = []
    for m, item in enumerate(items):
        y = as_tensor(item, fn, f"matrices[{m}]").detach()
        check_tensor(y, fn, f"matrices[{m}]", ndim=2, finite=False)
        if y.dtype != x.dtype or y.device != x.device:
            raise ValueError(
                f"{fn}: matrices[{m}] is {y.dtype} on {y.device}; the tensor is {x.dtype} on "
                f"{x.device}. Convert it with .to(...)."
            )
        out.append(y)
    return out


def _check_options(
    x: torch.Tensor,
    mats: list[torch.Tensor],
    rank: object,
    modes: object,
    weights: object,
    mask: object,
    matrix_masks: object,
    init: object,
    max_iter: object,
    tol: object,
    l2: object,
    generator: torch.Generator | None,
    callback: Callback | None,
) -> _Options:
    fn = "cmtf"
    rank = check_positive_int(rank, fn, "rank")
    max_iter, tol_ = _check_loop_options(max_iter, tol, generator, callback, fn)
    l2_ = _check_penalty(l2, fn, "l2")
    _check_choice(init, ("svd", "random"), fn, "init")
    n_mats = len(mats)
    raw = [modes] * n_mats if not isinstance(modes, (list, tuple)) else list(modes)
    if len(raw) != n_mats:
        raise ValueError(f"{fn}: modes needs one entry per matrix ({n_mats}); got {len(raw)}.")
    checked_modes = []
    for m, mode in enumerate(raw):
        n = as_index(mode, fn, f"modes[{m}]")
        if not -x.ndim <= n < x.ndim:
            raise IndexError(f"{fn}: modes[{m}] must be a mode in [0, {x.ndim - 1}]; got {mode}.")
        n %= x.ndim
        if mats[m].shape[0] != x.shape[n]:
            raise ValueError(
                f"{fn}: matrices[{m}] has {mats[m].shape[0]} rows but mode {n} of the tensor has "
                f"size {x.shape[n]}; a coupled matrix's rows index the shared mode."
            )
        checked_modes.append(n)
    w = [1.0] * (n_mats + 1) if weights is None else list(weights)  # type: ignore[call-overload]
    if len(w) != n_mats + 1:
        raise ValueError(
            f"{fn}: weights needs one entry per block (the tensor, then {n_mats} matrices); got "
            f"{len(w)}."
        )
    for b, value in enumerate(w):
        if _check_penalty(value, fn, f"weights[{b}]") <= 0:
            raise ValueError(f"{fn}: weights[{b}] must be positive; got {value}.")
    masks: list[torch.Tensor | None] = [None] * n_mats
    if matrix_masks is not None:
        if not isinstance(matrix_masks, (list, tuple)) or len(matrix_masks) != n_mats:
            raise ValueError(f"{fn}: matrix_masks needs one mask (or None) per matrix ({n_mats}).")
        masks = [None if k is None else check_mask(k, y, fn) for k, y in zip(matrix_masks, mats)]
    for m, (y, k) in enumerate(zip(mats, masks)):
        observed = y if k is None else y[k]
        if not bool(torch.isfinite(observed).all()):
            raise ValueError(
                f"{fn}: matrices[{m}] has NaN or Inf on observed entries; mark them missing in "
                "matrix_masks or remove them."
            )
    extra = x.numel() if x.dtype in HALF_DTYPES else 0
    extra += 0 if mask is None else 2 * x.numel()
    extra += sum(y.numel() * 2 + y.shape[1] * rank for y in mats)
    check_memory(
        working_set(tuple(x.shape), rank) + extra,
        working_dtype(x.dtype),
        x.device,
        fn,
        f"a rank-{rank} coupled fit of a {tuple(x.shape)} tensor and {n_mats} matrices",
    )
    return _Options(
        rank=rank,
        modes=tuple(checked_modes),
        weights=tuple(float(v) for v in w),
        init=str(init),
        max_iter=max_iter,
        tol=tol_,
        l2=l2_,
        mask=None if mask is None else check_mask(mask, x, fn),
        matrix_masks=tuple(masks),
        generator=generator,
        callback=callback,
    )


def _initial(
    x: torch.Tensor, mats: list[torch.Tensor], opts: _Options
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Tensor factors and matrix factors to start from (scaled units)."""
    _, factors = init_factors(x, opts.rank, opts.init, opts.generator)
    if opts.init == "svd":
        for n in set(opts.modes):  # shared factors from the concatenated data
            gram = gram_of_unfolding(x, n)
            for m, y in enumerate(mats):
                if opts.modes[m] == n:
                    gram = gram + (opts.weights[m + 1] / opts.weights[0]) * (y @ y.mT)
            vecs = torch.linalg.eigh(gram).eigenvectors.flip(1)[:, : opts.rank]
            if vecs.shape[1] == opts.rank:
                factors[n] = vecs.contiguous()
    # Scale the tensor factors to the data (least-squares scalar, spread evenly).
    grams = [f.mT @ f for f in factors]
    fit = float(hadamard_grams(grams).sum())
    inner = 0.0
    for n, mttkrp in tree_mttkrps(x, factors):
        if n == x.ndim - 1:
            inner = float((mttkrp * factors[-1]).sum())
    alpha = inner / fit if fit > 0 else 1.0
    if alpha != 0:
        factors = [f * abs(alpha) ** (1.0 / x.ndim) for f in factors]
        factors[0] = factors[0] * (1.0 if alpha > 0 else -1.0)
    vs = [solve_normal(y.mT @ factors[n], factors[n].mT @ factors[n], opts.l2)
          for y, n in zip(mats, opts.modes)]  # fmt: skip
    return factors, vs


def _fit(
    tensor: torch.Tensor, matrices: list[torch.Tensor], opts: _Options
) -> DecompositionResult[CMTFModel]:
    clock = Stopwatch()
    dtype = tensor.dtype
    x = upcast(tensor).contiguous()
    mats = [upcast(y) for y in matrices]
    if opts.mask is not None:
        x = torch.where(opts.mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    mats = [y if k is None else torch.where(k, y, 0.0) for y, k in zip(mats, opts.matrix_masks)]
    # One power of four for every block keeps their balance in the objective.
    scale = max(fit_scale(x), *(fit_scale(y) for y in mats))
    if scale != 1.0:
        x, mats = x / scale, [y / scale for y in mats]
    factors, vs = _initial(x, mats, opts)
    state = CPState.start(torch.ones(opts.rank, dtype=x.dtype, device=x.device), factors)
    init_time = clock.elapsed
    w0 = opts.weights[0]
    ratios = [w / w0 for w in opts.weights[1:]]
    norms2 = [float(torch.linalg.vector_norm(x)) ** 2] + [float(y.square().sum()) for y in mats]
    total2 = sum(w * n2 for w, n2 in zip(opts.weights, norms2))
    if total2 == 0:
        raise ValueError(
            "cmtf: every block is all zeros (on its observed entries); nothing to fit."
        )
    track = ErrorTrack(opts.tol, exact=opts.mask is not None)
    converged, blocks = False, [1.0] * (len(mats) + 1)
    work, work_mats = x, mats
    for it in range(1, opts.max_iter + 1):
        if opts.mask is not None:  # EM: missing entries from the current model
            work = torch.where(opts.mask, x, _dense(state))
        work_mats = [
            y if k is None else torch.where(k, y, state.factors[n] @ v.mT)
            for y, k, n, v in zip(mats, opts.matrix_masks, opts.modes, vs)
        ]
        mttkrp = _sweep(work, work_mats, state, vs, opts, ratios)
        err, floor, blocks = _errors(x, mats, state, vs, mttkrp, norms2, total2, opts, track.exact)
        if track.gram_unresolved(err, floor):
            track.switch_to_exact()
            err, floor, blocks = _errors(x, mats, state, vs, mttkrp, norms2, total2, opts, True)
        converged = track.converged(err, floor)
        if not track.exact and (converged or it == opts.max_iter):
            err, floor, blocks = _errors(x, mats, state, vs, mttkrp, norms2, total2, opts, True)
        track.record(err, floor)
        _rebalance(state, vs, opts.modes)
        if opts.callback is not None:
            model = _output(state, vs, opts.modes, scale, dtype)
            if opts.callback(IterationState(it, err, model)) is True:
                if not track.exact and not converged and it < opts.max_iter:
                    err, floor, blocks = _errors(
                        x, mats, state, vs, None, norms2, total2, opts, True
                    )
                    track.errors[-1], track.floors[-1] = err, floor
                break
        if converged:
            break
    model = _output(state, vs, opts.modes, scale, dtype)
    if dtype != x.dtype:  # the rounding to half precision is part of the model's error
        err, floor, blocks = _rounded_errors(x, mats, model, scale, norms2, total2, opts)
        track.errors[-1], track.floors[-1] = err, floor
    return DecompositionResult(
        model=model,
        errors=tuple(track.errors),
        iterations=len(track.errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={"block_errors": tuple(blocks), "error_floors": tuple(track.floors)},
    )


def _sweep(
    x: torch.Tensor,
    mats: list[torch.Tensor],
    state: CPState,
    vs: list[torch.Tensor],
    opts: _Options,
    ratios: list[float],
) -> torch.Tensor:
    """One ALS iteration: the tensor factors (coupled normal equations for the shared ones),
    then the matrices' own factors. Returns the tensor's last MTTKRP."""
    # The matrices' terms of each shared factor's normal equations (fixed during the sweep).
    extra: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for y, n, v, r in zip(mats, opts.modes, vs, ratios):
        rhs, gram = (y @ v) * r, (v.mT @ v) * r
        if n in extra:
            rhs, gram = rhs + extra[n][0], gram + extra[n][1]
        extra[n] = (rhs, gram)
    mttkrp = state.factors[-1]
    for n, mttkrp in tree_mttkrps(x, state.factors):
        gram = hadamard_grams(state.grams, skip=n)
        rhs = mttkrp
        if n in extra:
            rhs, gram = mttkrp + extra[n][0], gram + extra[n][1]
        state.factors[n] = solve_normal(rhs, gram, opts.l2)
        state.grams[n] = state.factors[n].mT @ state.factors[n]
    for m, (y, n) in enumerate(zip(mats, opts.modes)):
        vs[m] = solve_normal(y.mT @ state.factors[n], state.grams[n], opts.l2)
    return mttkrp


def _rebalance(state: CPState, vs: list[torch.Tensor], modes: tuple[int, ...]) -> None:
    """Equal column norms across the tensor factors (the model is unchanged; the matrices'
    factors take the inverse of their shared factor's change)."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in state.factors])
    ok = (norms > 0).all(0)
    target = norms.prod(0) ** (1.0 / len(state.factors))
    change = torch.where(ok.unsqueeze(0), target / torch.where(ok, norms, 1.0), 1.0)
    for n in range(len(state.factors)):
        state.factors[n] = state.factors[n] * change[n]
        state.grams[n] = state.factors[n].mT @ state.factors[n]
    for m, n in enumerate(modes):
        vs[m] = vs[m] / change[n]


def _dense(state: CPState) -> torch.Tensor:
    return CPTensor(state.weights, tuple(state.factors)).to_dense()


def _errors(
    x: torch.Tensor,
    mats: list[torch.Tensor],
    state: CPState,
    vs: list[torch.Tensor],
    mttkrp: torch.Tensor | None,
    norms2: list[float],
    total2: float,
    opts: _Options,
    exact: bool,
) -> tuple[float, float, list[float]]:
    """The weighted relative error, its floor and each block's relative error (observed
    entries; the tensor's by the Gram formula unless ``exact``)."""
    norm_x2 = norms2[0]
    if opts.mask is not None:
        resid = torch.where(opts.mask, x - _dense(state), 0.0)
        t_err = float(torch.linalg.vector_norm(resid)) / math.sqrt(max(norm_x2, 1e-300))
        t_floor = 4.0 * torch.finfo(x.dtype).eps * (1.0 + t_err)
    elif exact or mttkrp is None:
        t_err, t_floor = exact_error(x, state, norm_x2)
    else:
        t_err, t_floor = gram_error(norm_x2, mttkrp, state)
    # Each block's floor in squared-residual units: from a relative error's floor f,
    # max(2 err f, f^2) ||D||^2; a residual formed entry by entry is off by ~eps ||D|| in norm.
    sq = [t_err * t_err * norm_x2]
    floors = [max(2.0 * t_floor * t_err, t_floor * t_floor) * norm_x2]
    eps = torch.finfo(x.dtype).eps
    for y, k, n, v, y2 in zip(mats, opts.matrix_masks, opts.modes, vs, norms2[1:]):
        resid = y - state.factors[n] @ v.mT
        if k is not None:
            resid = torch.where(k, resid, 0.0)
        r2 = float(resid.square().sum())
        sq.append(r2)
        floors.append(8.0 * eps * math.sqrt(y2) * (math.sqrt(r2) + eps * math.sqrt(y2)))
    err = math.sqrt(sum(w * s for w, s in zip(opts.weights, sq)) / total2)
    noise2 = sum(w * f for w, f in zip(opts.weights, floors)) / total2
    floor = noise2 / max(err, math.sqrt(noise2), 1e-300)
    blocks = [math.sqrt(s / n2) if n2 > 0 else 0.0 for s, n2 in zip(sq, norms2)]
    return err, floor, blocks


def _rounded_errors(
    x: torch.Tensor,
    mats: list[torch.Tensor],
    model: CMTFModel,
    scale: float,
    norms2: list[float],
    total2: float,
    opts: _Options,
) -> tuple[float, float, list[float]]:
    """The errors of the returned (rounded) model, in the fit's units."""
    t = model.tensor
    state = CPState.start(upcast(t.weights) / scale, [upcast(f) for f in t.factors])
    state.set_factors(torch.ones_like(state.weights), [state.factors[0] * state.weights,
                                                       *state.factors[1:]])  # fmt: skip
    vs = []
    for m, n in zip(model.matrices, opts.modes):
        # Y ~= U diag(s) V^T = A_n v^T with A_n = U diag(w_t) (factor 0 carries the weights)
        a_n = state.factors[n]
        u = upcast(m.factors[0]) * (upcast(m.weights) / scale)
        v = upcast(m.factors[1])
        vs.append(solve_normal(v @ (u.mT @ a_n), a_n.mT @ a_n, 0.0))
    return _errors(x, mats, state, vs, None, norms2, total2, opts, True)


def _output(
    state: CPState, vs: list[torch.Tensor], modes: tuple[int, ...], scale: float, dtype: torch.dtype
) -> CMTFModel:
    """Unit-norm factor columns, the scales in the weights, in ``dtype`` and the data's scale."""
    f64 = [f.to(torch.float64) for f in state.factors]
    norms = [torch.linalg.vector_norm(f, dim=0) for f in f64]
    safe = [torch.where(n > 0, n, torch.ones_like(n)) for n in norms]
    units = [(f / s).to(dtype) for f, s in zip(f64, safe)]
    weights = torch.ones_like(norms[0]) * scale
    for n in norms:
        weights = weights * n
    tensor = CPTensor(weights.to(dtype), tuple(units))
    matrices = []
    for v, n in zip(vs, modes):
        v64 = v.to(torch.float64)
        vn = torch.linalg.vector_norm(v64, dim=0)
        vsafe = torch.where(vn > 0, vn, torch.ones_like(vn))
        sigma = norms[n] * vn * scale
        matrices.append(CPTensor(sigma.to(dtype), (units[n], (v64 / vsafe).to(dtype))))
    model = CMTFModel(tensor, tuple(matrices), modes)
    for t in (tensor.weights, *(m.weights for m in matrices)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"cmtf: the fitted model cannot be represented in {dtype} (its weights exceed "
                "the dtype's range); convert the data to a wider dtype first."
            )
    return model
