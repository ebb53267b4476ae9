"""PARAFAC2 by alternating least squares (Kiers, ten Berge and Bro 1999), with non-negativity or
proximal constraints (AO-ADMM) on the non-evolving modes.

Model (TensorLy's layout, see :class:`~factorch.tensors.Parafac2Tensor`): slices ``X_i``
(``J_i x K``, lengths may differ) ``~= P_i B diag(a_i) C^T`` with ``P_i^T P_i = I``. Each
iteration

1. updates every projection by orthogonal Procrustes: ``P_i = U_i V_i^T`` from the SVD of
   ``X_i C diag(a_i) B^T`` (``J_i x R``; here a QR of it, then an ``R x R`` SVD), for all slices
   at once on a zero-padded stack (padded rows stay exactly zero);
2. projects the data, ``T_i = P_i^T X_i`` (an ``I x R x K`` tensor), and
3. runs ``cp_sweeps`` CP sweeps on ``T`` for ``A, B, C`` -- the MTTKRPs of
   :func:`~factorch.decomp._cp_sweep.tree_mttkrps`, each factor updated by exact least squares,
   by HALS (non-negative modes, Cichocki and Phan 2009) or by ADMM with a proximal operator
   (``constraints``, Huang, Sidiropoulos and Liavas 2016; as in Roald et al. 2022 for the
   non-evolving modes).

Because ``P_i`` has orthonormal columns,
``sum_i ||X_i - P_i M_i||^2 = ||X||^2 - ||T||^2 + ||T - [[A, B, C]]||^2``, so the error after a
sweep is CP's free Gram formula with ``||X||^2`` in place of ``||T||^2``: an iteration costs two
passes over the data (Procrustes and projection) plus CP sweeps on the small ``T``. The run
stops by the CP family's one rule (:class:`~factorch.decomp._cp_sweep.ErrorTrack`).

References: H. A. L. Kiers, J. M. F. ten Berge and R. Bro, "PARAFAC2 -- Part I. A direct fitting
algorithm for the PARAFAC2 model", J. Chemometrics 13(3-4), 1999; M. Roald, C. Schenker, V. D.
Calhoun, T. Adali, R. Bro, J. E. Cohen and E. Acar, "An AO-ADMM approach to constraining PARAFAC2
on all modes", SIAM J. Math. Data Sci. 4(3), 2022.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._checks import as_tensor, check_modes, check_positive_int, check_tensor
from .._numerics import check_memory, no_autocast, upcast, working_dtype
from ..algebra.internal import leading_left as _leading_left
from ..tensors import Parafac2Tensor
from ._constrained_cp import Constraints, admm_update, check_constraints, mode_scales, rescaled
from ._cp_sweep import CPState, ErrorTrack, gram_error, hadamard_grams, solve_normal, tree_mttkrps
from ._nn_common import _check_choice, _check_loop_options, _check_penalty, _hals_rows, _max_sweeps
from ._prox import ProximalOperator
from ._result import Callback, DecompositionResult, IterationState, Stopwatch
from ._scale import fit_scale

__all__ = ["Parafac2Init", "parafac2"]

Parafac2Init = Literal["svd", "random"]
_Rule = Literal["solve", "hals", "admm"]
# Slices whose residual is summed per block by the exact error.
_BLOCK = 1 << 22


@dataclass(frozen=True)
class _Options:
    rank: int
    init: Parafac2Init | Parafac2Tensor
    max_iter: int
    tol: float
    rules: tuple[_Rule, _Rule, _Rule]
    ops: tuple[ProximalOperator | None, ...]
    cp_sweeps: int
    linesearch: bool
    inner_iter: int
    inner_tol: float
    generator: torch.Generator | None
    callback: Callback | None


@no_autocast
def parafac2(
    tensor: torch.Tensor | Sequence[torch.Tensor],
    rank: int,
    *,
    init: Parafac2Init | Parafac2Tensor = "svd",
    max_iter: int = 2000,
    tol: float = 1e-10,
    nonneg_modes: Sequence[int] = (),
    constraints: Constraints = None,
    cp_sweeps: int = 5,
    linesearch: bool = True,
    inner_iter: int = 10,
    inner_tol: float = 1e-6,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> DecompositionResult[Parafac2Tensor]:
    """PARAFAC2 decomposition of a stack of matrices (slices may have different row counts).

    See the module docstring for the model and the algorithm.

    Args:
        tensor: an ``(I, J, K)`` tensor (slices ``tensor[i]``) or a sequence of ``I`` matrices
            ``(J_i, K)`` with a common ``K`` (torch tensors or numpy arrays; one dtype and
            device). Real floating, finite; float16/bfloat16 are fitted in float32. Tensors that
            require grad are detached.
        rank: number of components ``R``, at most the smallest ``J_i`` (``P_i`` needs ``R``
            orthonormal columns).
        init: ``"svd"`` (``C`` from the leading eigenvectors of ``sum_i X_i^T X_i``, ``A = 1``,
            ``B = I``, as TensorLy; a non-negative or constrained ``C`` starts from each
            eigenvector's larger sign part, as NNDSVD), ``"random"`` (uniform [0, 1) ``A``,
            ``B``, ``C``), or a
            :class:`~factorch.tensors.Parafac2Tensor` (its weights folded into ``A``; its
            projections are recomputed from the factors).
        max_iter: maximum number of iterations (TensorLy's default, 2000).
        tol: stop when the relative error changes by less than ``tol`` (or by less than the
            estimates' rounding floor); 0 runs ``max_iter`` iterations. The default, 1e-10, is
            about TensorLy's stopping point (its relative change of the squared error below
            1e-8 is a change of ``5e-9 * error`` in the error).
        nonneg_modes: modes among 0 (``A``) and 2 (``C``) kept non-negative by exact HALS
            updates. Mode 1 (the evolving ``B_i = P_i B``) cannot be made non-negative this
            way; TensorLy warns and returns a ``B`` whose ``B_i`` are not non-negative, this
            raises.
        constraints: a :class:`~factorch.decomp.ProximalOperator` per mode (as in
            :func:`~factorch.decomp.constrained_cp`) for modes 0 and 2, fitted by ADMM; mode 1
            must stay free (``None``).
        cp_sweeps: CP sweeps over ``A, B, C`` on the projected tensor per Procrustes update
            (TensorLy's ``n_iter_parafac``, default 5): a sweep on the small ``I x R x K``
            tensor costs far less than the two passes over the data that refresh ``P_i``, and
            several of them make each pass count (1 is Kiers et al.'s original scheme).
        linesearch: Bro's extrapolation of ``A, B, C`` on every other iteration (as TensorLy's
            default; one more pass over the data when tried). Not used with ``constraints``
            (an extrapolated factor could leave its set).
        inner_iter: maximum ADMM iterations per constrained factor update.
        inner_tol: relative residual at which an ADMM update stops early.
        generator: randomness of ``init="random"`` (and of ``"svd"`` when ``R > K``).
        callback: called with an :class:`IterationState` (its ``model`` a ``Parafac2Tensor``)
            after each iteration; True stops.

    Returns:
        :class:`DecompositionResult` with a :class:`~factorch.tensors.Parafac2Tensor` whose
        projections have orthonormal columns (recomputed for the final factors). Without
        ``constraints``, ``A``, ``B`` and ``C`` have unit-norm columns and the scale is in
        ``weights``; with them, the weights are 1 and each factor satisfies its constraint.
        ``errors``: ``sqrt(sum_i ||X_i - X_hat_i||^2 / sum_i ||X_i||^2)`` per iteration, the last
        one exact; ``extras["error_floors"]``.

    Raises:
        TypeError: non-tensor data or slices, integer/complex dtypes, a non-integral rank, bad
            ``constraints`` entries, a ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN/Inf, an all-zero input, a 3-D tensor expected but another shape given,
            slices with different column counts, dtypes or devices, a rank above the shortest
            slice, a constraint or non-negativity on mode 1, bad option values, a working set
            too large for the device.
        IndexError: a mode in ``nonneg_modes`` out of range.

    Not differentiable (runs under ``torch.no_grad``); autocast is ignored. Device and dtype
    follow the input; tiny or huge data is scaled by an exact power of four for the fit.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> c = torch.rand(6, 2, generator=g, dtype=torch.float64)
        >>> slices = [torch.linalg.qr(torch.randn(n, 2, generator=g, dtype=torch.float64)).Q
        ...           @ torch.rand(2, 2, generator=g, dtype=torch.float64) @ c.T
        ...           for n in (5, 8, 7)]
        >>> res = parafac2(slices, 2)
        >>> res.error < 1e-6 and [tuple(s.shape) for s in res.model.slices()]
        [(5, 6), (8, 6), (7, 6)]

    References:
        H. A. L. Kiers, J. M. F. ten Berge and R. Bro, J. Chemometrics 13(3-4), 1999; M. Roald
        et al., SIAM J. Math. Data Sci. 4(3), 2022.
    """
    fn = "parafac2"
    padded, lengths = _stack(tensor, fn)
    opts = _check_options(
        padded, lengths, rank, init, max_iter, tol, nonneg_modes, constraints, cp_sweeps,
        linesearch, inner_iter, inner_tol, generator, callback,
    )  # fmt: skip
    with torch.no_grad():
        return _fit(padded, lengths, opts)


def _stack(tensor: object, fn: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The slices as one zero-padded ``(I, J_max, K)`` tensor (detached, checked) and their row
    counts."""
    if isinstance(tensor, (list, tuple)):
        if not tensor:
            raise ValueError(f"{fn}: tensor must hold at least one slice; got an empty sequence.")
        slices = []
        for i, s in enumerate(tensor):
            m = check_tensor(as_tensor(s, fn, f"tensor[{i}]").detach(), fn, f"tensor[{i}]", ndim=2)
            if m.is_complex():
                raise TypeError(f"{fn}: complex slices are not supported; got {m.dtype}.")
            slices.append(m)
        first = slices[0]
        for i, m in enumerate(slices[1:], 1):
            if m.shape[1] != first.shape[1] or m.dtype != first.dtype or m.device != first.device:
                raise ValueError(
                    f"{fn}: every slice must have the columns, dtype and device of tensor[0] "
                    f"({first.shape[1]}, {first.dtype}, {first.device}); tensor[{i}] has "
                    f"({m.shape[1]}, {m.dtype}, {m.device})."
                )
        lengths = tuple(m.shape[0] for m in slices)
        shape = (len(slices), max(lengths), first.shape[1])
        check_memory(
            math.prod(shape),
            working_dtype(first.dtype),
            first.device,
            fn,
            f"the {len(slices)} slices padded to a common {shape[1]} rows",
        )
        padded = first.new_zeros(shape)
        for i, m in enumerate(slices):
            padded[i, : m.shape[0]] = m
        return padded, lengths
    x = check_tensor(as_tensor(tensor, fn).detach(), fn, "tensor")
    if x.ndim != 3:
        raise ValueError(
            f"{fn}: tensor must be an (I, J, K) stack of slices or a sequence of (J_i, K) "
            f"matrices; got shape {tuple(x.shape)}."
        )
    if x.is_complex():
        raise TypeError(f"{fn}: complex tensors are not supported; got {x.dtype}.")
    return x, (x.shape[1],) * x.shape[0]


def _check_options(
    x: torch.Tensor,
    lengths: tuple[int, ...],
    rank: object,
    init: object,
    max_iter: object,
    tol: object,
    nonneg_modes: object,
    constraints: object,
    cp_sweeps: object,
    linesearch: object,
    inner_iter: object,
    inner_tol: object,
    generator: torch.Generator | None,
    callback: Callback | None,
) -> _Options:
    fn = "parafac2"
    rank = check_positive_int(rank, fn, "rank")
    if rank > min(lengths):
        raise ValueError(
            f"{fn}: rank must be at most the smallest slice's row count ({min(lengths)}), so "
            f"each projection P_i can have {rank} orthonormal columns; got rank {rank}."
        )
    max_iter, tol_ = _check_loop_options(max_iter, tol, generator, callback, fn)
    sweeps = check_positive_int(cp_sweeps, fn, "cp_sweeps")
    inner = check_positive_int(inner_iter, fn, "inner_iter")
    inner_tol_ = _check_penalty(inner_tol, fn, "inner_tol")
    if isinstance(nonneg_modes, (str, int)) or not isinstance(nonneg_modes, Sequence):
        raise TypeError(
            f"{fn}: nonneg_modes must be a sequence of modes; got {type(nonneg_modes).__name__}."
        )
    nonneg = set(check_modes(nonneg_modes, 3, fn, "nonneg_modes"))
    ops = check_constraints(constraints, 3, fn)
    if 1 in nonneg or ops[1] is not None:
        raise ValueError(
            f"{fn}: mode 1 (the evolving factors B_i = P_i B) cannot be constrained by this "
            "algorithm; constrain modes 0 (A) and 2 (C) only."
        )
    for n in nonneg:
        if ops[n] is not None:
            raise ValueError(
                f"{fn}: mode {n} is in nonneg_modes and has a constraint; give it one of the two "
                "(constraints.NonNegative() is the ADMM form)."
            )
    rules = tuple(
        "admm" if ops[n] is not None else "hals" if n in nonneg else "solve" for n in range(3)
    )
    if isinstance(init, Parafac2Tensor):
        _check_init(init, x, lengths, rank, fn)
    else:
        _check_choice(init, get_args(Parafac2Init), fn, "init")
    i, j, k = x.shape
    work = i * j * k + 3 * i * j * rank + 2 * i * k * rank + (i + k + rank) * rank
    check_memory(
        work + min(i * j * k, _BLOCK),
        working_dtype(x.dtype),
        x.device,
        fn,
        f"a rank-{rank} PARAFAC2 fit of {i} slices of up to {j} x {k}",
    )
    return _Options(
        rank=rank,
        init=init,  # type: ignore[arg-type]
        max_iter=max_iter,
        tol=tol_,
        rules=rules,  # type: ignore[arg-type]
        ops=ops,
        cp_sweeps=sweeps,
        linesearch=bool(linesearch) and all(r != "admm" for r in rules),
        inner_iter=inner,
        inner_tol=inner_tol_,
        generator=generator,
        callback=callback,
    )


def _check_init(
    init: Parafac2Tensor, x: torch.Tensor, lengths: tuple[int, ...], rank: int, fn: str
) -> None:
    want = tuple((n, x.shape[2]) for n in lengths)
    if init.slice_shapes != want or init.rank != rank:
        raise ValueError(
            f"{fn}: init must be a Parafac2Tensor of rank {rank} with slices of shapes matching "
            f"the data; got rank {init.rank} and slice shapes {init.slice_shapes[:3]}..."
        )
    if init.dtype != x.dtype or init.device != x.device:
        raise ValueError(
            f"{fn}: init must match the data's dtype and device ({x.dtype}, {x.device}); got "
            f"({init.dtype}, {init.device}). Use init.to(...)."
        )


def _initial(x: torch.Tensor, opts: _Options, scale: float) -> list[torch.Tensor]:
    """``[A, B, C]`` to start from (scaled data's units)."""
    i, _, k = x.shape
    rank = opts.rank
    if isinstance(opts.init, Parafac2Tensor):
        a, b, c = (upcast(f.detach()) for f in opts.init.factors)
        return [a * upcast(opts.init.weights.detach()) / scale, b, c]
    g = opts.generator

    def rand(*shape: int) -> torch.Tensor:
        out = torch.rand(shape, generator=g, dtype=x.dtype, device=g.device if g else x.device)
        return out.to(x.device)

    if opts.init == "random":
        return [rand(i, rank), rand(rank, rank), rand(k, rank)]
    c = _leading_left(x.reshape(-1, k).mT, rank)  # eigenvectors of sum_i X_i^T X_i
    if c.shape[1] < rank:
        c = torch.cat([c, rand(k, rank - c.shape[1])], 1)
    if opts.rules[2] != "solve":  # a non-negative or constrained C: start non-negative
        c = _dominant_part(c)
    ones = torch.ones(i, rank, dtype=x.dtype, device=x.device)
    return [ones, torch.eye(rank, dtype=x.dtype, device=x.device), c.contiguous()]


def _dominant_part(u: torch.Tensor) -> torch.Tensor:
    """Each column's positive or negative part, whichever is larger (NNDSVD's start for a
    non-negative factor from singular vectors, Boutsidis and Gallopoulos 2008)."""
    pos, neg = u.clamp_min(0.0), (-u).clamp_min(0.0)
    keep = torch.linalg.vector_norm(pos, dim=0) >= torch.linalg.vector_norm(neg, dim=0)
    return torch.where(keep, pos, neg)


def _procrustes(x: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``P_i = U_i V_i^T`` (``(I, J_max, R)``, zero in padded rows) maximising
    ``tr(P_i^T X_i C diag(a_i) B^T)``."""
    a, b, c = factors
    w = (c.unsqueeze(0) * a.unsqueeze(1)) @ b.mT  # (I, K, R) = C diag(a_i) B^T
    z = x @ w  # (I, J, R)
    q, r = torch.linalg.qr(z)
    u, _, vh = torch.linalg.svd(r)
    return q @ (u @ vh)


def _exact_error(
    x: torch.Tensor, p: torch.Tensor, factors: Sequence[torch.Tensor], norm_x2: float
) -> tuple[float, float]:
    """``||X - X_hat|| / ||X||`` summed over blocks of slices, and its rounding floor."""
    a, b, c = factors
    step = max(1, _BLOCK // max(1, x.shape[1] * x.shape[2]))
    total = 0.0
    model2 = 0.0
    for s in range(0, x.shape[0], step):
        core = (b.unsqueeze(0) * a[s : s + step].unsqueeze(1)) @ c.mT  # (blk, R, K)
        model = p[s : s + step] @ core
        total += float((x[s : s + step] - model).square().sum())
        model2 += float(core.square().sum())
    norm_x = math.sqrt(max(norm_x2, torch.finfo(torch.float64).tiny))
    eps = torch.finfo(x.dtype).eps
    return math.sqrt(total) / norm_x, 4.0 * eps * (1.0 + math.sqrt(model2) / norm_x)


_Projected = tuple[torch.Tensor, torch.Tensor]


def _project(x: torch.Tensor, factors: Sequence[torch.Tensor]) -> _Projected:
    """The Procrustes projections for ``factors`` and the projected tensor ``T_i = P_i^T X_i``
    (``(I, R, K)``); both depend on the factors only through ``C diag(a_i) B^T``, which
    :func:`_rebalance` leaves unchanged."""
    p = _procrustes(x, factors)
    return p, p.mT @ x


def _projected_error(
    proj: _Projected, factors: Sequence[torch.Tensor], norm_x2: float, dtype: torch.dtype
) -> tuple[float, float]:
    """``||X - X_hat|| / ||X||`` from the projected tensor: the projections have orthonormal
    columns, so ``||X_i - P_i M_i||^2 = ||X_i||^2 - ||T_i||^2 + ||T_i - M_i||^2`` with
    ``M_i = B diag(a_i) C^T``; one read of ``X`` fewer than :func:`_exact_error`. The difference
    of the first two terms carries about ``gamma eps ||X||^2`` of rounding: its floor."""
    _, t = proj
    a, b, c = factors
    model = (b.unsqueeze(0) * a.unsqueeze(1)) @ c.mT  # (I, R, K)
    norm_t2 = float(t.square().sum())
    resid2 = float((t - model).square().sum())
    norm_x = math.sqrt(max(norm_x2, torch.finfo(torch.float64).tiny))
    total = max(norm_x2 - norm_t2, 0.0) + resid2
    err = math.sqrt(total) / norm_x
    eps = torch.finfo(dtype).eps
    floor = 8.0 * eps * (norm_x2 + norm_t2) / (norm_x2 * max(2.0 * err, math.sqrt(eps)))
    return err, floor


def _cp_sweep(
    t: torch.Tensor,
    state: CPState,
    duals: list[torch.Tensor],
    opts: _Options,
    ops: Sequence[ProximalOperator | None],
    sweeps: Sequence[int],
) -> torch.Tensor:
    """One sweep over ``A, B, C`` on the projected tensor ``t`` (rules in the module
    docstring); returns the last MTTKRP."""
    mttkrp = state.factors[-1]
    for n, mttkrp in tree_mttkrps(t, state.factors):
        gram = hadamard_grams(state.grams, skip=n)
        rule = opts.rules[n]
        if rule == "solve":
            state.factors[n] = solve_normal(mttkrp, gram, 0.0)
        elif rule == "hals":
            rows = state.factors[n].mT.contiguous().unsqueeze(0)
            rhs = mttkrp.mT.contiguous().unsqueeze(0)
            _hals_rows(rows, rhs, gram.unsqueeze(0), 0.0, nonneg=True, max_sweeps=sweeps[n])
            state.factors[n] = rows[0].mT
        else:
            op = ops[n]
            if op is None:  # rules and ops agree (checked at entry)
                raise RuntimeError(f"parafac2: mode {n} has no operator for its ADMM update.")
            state.factors[n], duals[n], _ = admm_update(
                mttkrp, gram, state.factors[n], duals[n], op,
                inner_iter=opts.inner_iter, inner_tol=opts.inner_tol, fn="parafac2", mode=n,
            )  # fmt: skip
        if not bool(torch.isfinite(state.factors[n]).all()):
            raise ValueError(
                f"parafac2: the update of mode {n} produced NaN or Inf; check the operator of "
                "that mode, or lower its weight."
            )
        state.grams[n] = state.factors[n].mT @ state.factors[n]
    return mttkrp


def _rebalance(state: CPState) -> None:
    """Give every column of ``A``, ``B``, ``C`` the geometric mean of their norms (the model is
    unchanged; keeps the least-squares problems well scaled)."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in state.factors])
    ok = (norms > 0).all(0)
    target = norms.prod(0) ** (1.0 / 3.0)
    for n, f in enumerate(state.factors):
        factor = torch.where(ok, target / torch.where(ok, norms[n], 1.0), 1.0)
        state.factors[n] = f * factor
        state.grams[n] = state.factors[n].mT @ state.factors[n]


def _fit(
    padded: torch.Tensor, lengths: tuple[int, ...], opts: _Options
) -> DecompositionResult[Parafac2Tensor]:
    clock = Stopwatch()
    dtype = padded.dtype
    x = upcast(padded).contiguous()
    scale = fit_scale(x)
    if scale != 1.0:
        x = x / scale
    norm_x2 = float(torch.linalg.vector_norm(x)) ** 2
    if norm_x2 == 0:
        raise ValueError("parafac2: the slices are all zeros; nothing to fit.")
    ops = rescaled(opts.ops, scale)
    state = CPState.start(
        torch.ones(opts.rank, dtype=x.dtype, device=x.device), _initial(x, opts, scale)
    )
    duals = [torch.zeros_like(f) for f in state.factors]
    cost = 4.0 * x.shape[0] * opts.rank * x.shape[2] * opts.rank / 3
    sweeps = [_max_sweeps(cost, size, opts.rank) for size in (x.shape[0], opts.rank, x.shape[2])]
    init_time = clock.elapsed
    track = ErrorTrack(opts.tol)
    converged = False
    p = _procrustes(x, state.factors)
    mttkrp = state.factors[-1]
    search = _LineSearch(opts.rules) if opts.linesearch else None
    kept: _Projected | None = None  # the projections of an accepted line-search step
    for it in range(1, opts.max_iter + 1):
        if search is not None:
            search.remember(state, it)
        p, projected = kept if kept is not None else _project(x, state.factors)  # (I, R, K)
        kept = None
        for _ in range(opts.cp_sweeps):
            mttkrp = _cp_sweep(projected, state, duals, opts, ops, sweeps)
        # ||X||^2 - 2 <T, M> + ||M||^2: the Gram formula with ||X||^2 (module docstring).
        err, floor = (
            _exact_error(x, p, state.factors, norm_x2)
            if track.exact
            else gram_error(norm_x2, mttkrp, state)
        )
        if track.gram_unresolved(err, floor):
            track.switch_to_exact()
            err, floor = _exact_error(x, p, state.factors, norm_x2)
        if search is not None:
            (err, floor), kept = search.try_step(x, state, (err, floor), norm_x2)
        converged = track.converged(err, floor)
        track.record(err, floor)
        if all(rule != "admm" for rule in opts.rules):
            _rebalance(state)
        if opts.callback is not None:
            model = _output(p, lengths, state, opts, scale, dtype)
            if opts.callback(IterationState(it, err, model)) is True:
                break
        if converged:
            break
    # Projections for the final factors; the last error is that of the returned model.
    p = _procrustes(x, state.factors)
    model = _output(p, lengths, state, opts, scale, dtype)
    final = _rounded_state(model, opts, scale, x.dtype) if model.dtype != x.dtype else None
    if final is None:
        track.errors[-1], track.floors[-1] = _exact_error(x, p, state.factors, norm_x2)
    else:
        track.errors[-1], track.floors[-1] = _exact_error(x, final[0], final[1], norm_x2)
    return DecompositionResult(
        model=model,
        errors=tuple(track.errors),
        iterations=len(track.errors),
        converged=converged,
        time_s=clock.elapsed,
        init_time_s=init_time,
        extras={"error_floors": tuple(track.floors)},
    )


@dataclass
class _LineSearch:
    """Bro's extrapolation as TensorLy's PARAFAC2 does it: on every other iteration after the
    sixth, try ``F_old + it^(1/p) (F_new - F_old)`` for ``A, B, C`` (non-negative modes
    clipped), with projections refreshed for it, and keep it when its exact error is lower;
    ``p`` grows by one after four rejections in a row (Bro 1998; Yu, Augustijn and Bro 2021)."""

    rules: tuple[_Rule, _Rule, _Rule]
    power: float = 2.0
    failures: int = 0
    start: list[torch.Tensor] | None = None
    iteration: int = 0

    def remember(self, state: CPState, it: int) -> None:
        self.iteration = it - 1  # TensorLy's 0-based count
        active = self.iteration > 5 and self.iteration % 2 == 0
        self.start = [f.clone() for f in state.factors] if active else None

    def try_step(
        self, x: torch.Tensor, state: CPState, current: tuple[float, float], norm_x2: float
    ) -> tuple[tuple[float, float], _Projected | None]:
        """The error after this iteration, and the candidate's projections when it is kept."""
        if self.start is None:
            return current, None
        jump = self.iteration ** (1.0 / self.power)
        cand = [s + jump * (f - s) for s, f in zip(self.start, state.factors)]
        cand = [f.clamp_min(0.0) if rule == "hals" else f for f, rule in zip(cand, self.rules)]
        proj = _project(x, cand)
        found = _projected_error(proj, cand, norm_x2, x.dtype)
        if found[1] > 1e-3 * found[0]:  # near the formula's floor: sum the residual instead
            found = _exact_error(x, proj[0], cand, norm_x2)
        if found[0] < current[0]:
            self.failures = 0
            state.set_factors(state.weights, cand)
            return found, proj
        self.failures += 1
        if self.failures == 4:
            self.power, self.failures = self.power + 1.0, 0
        return current, None


def _output(
    p: torch.Tensor,
    lengths: tuple[int, ...],
    state: CPState,
    opts: _Options,
    scale: float,
    dtype: torch.dtype,
) -> Parafac2Tensor:
    """The model in ``dtype`` and the data's scale: unit columns and the scale in the weights
    without constraints; unit weights and each factor in its operator's units with them."""
    projections = tuple(p[i, :n].to(dtype) for i, n in enumerate(lengths))
    factors64 = [f.to(torch.float64) for f in state.factors]
    if any(rule == "admm" for rule in opts.rules):
        scales = mode_scales(opts.ops, scale)
        a, b, c = (f * s for f, s in zip(factors64, scales))
        weights = torch.ones(opts.rank, dtype=torch.float64, device=p.device)
    else:
        norms = [torch.linalg.vector_norm(f, dim=0) for f in factors64]
        safe = [torch.where(v > 0, v, torch.ones_like(v)) for v in norms]
        a, b, c = (f / s for f, s in zip(factors64, safe))
        weights = norms[0] * norms[1] * norms[2] * scale
    out = [t.to(dtype) for t in (weights, a, b, c)]
    if not all(bool(torch.isfinite(t).all()) for t in out):
        raise ValueError(
            f"parafac2: the fitted model cannot be represented in {dtype}; convert the data to "
            "a wider dtype first."
        )
    return Parafac2Tensor(out[0], (out[1], out[2], out[3]), projections)


def _rounded_state(
    model: Parafac2Tensor, opts: _Options, scale: float, work: torch.dtype
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The returned (half-precision) model back in the fit's units, for its true error."""
    a, b, c = (upcast(f).to(work) for f in model.factors)
    weights = upcast(model.weights).to(work)
    if any(rule == "admm" for rule in opts.rules):
        sa, sb, sc = mode_scales(opts.ops, scale)
        factors = [a / sa, b / sb, c / sc]
    else:
        factors = [a * weights / scale, b, c]
    rows = max(p.shape[0] for p in model.projections)
    p = torch.zeros(len(model.projections), rows, opts.rank, dtype=work, device=a.device)
    for i, proj in enumerate(model.projections):
        p[i, : proj.shape[0]] = upcast(proj).to(work)
    return p, factors
