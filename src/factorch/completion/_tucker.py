"""Tucker completion by alternating least squares on the observed entries (P-Tucker style).

Model ``m_p = sum_{q} G[q_0, ..., q_{N-1}] prod_n A_n[i_n(p), q_n]``. Objective over the observed
set ``Omega``:

    sum_{p in Omega} (x_p - m_p)^2 + l2 (||G||_F^2 + sum_n ||A_n||_F^2).

One sweep updates each factor row-wise (row ``i`` of ``A_n`` is a ridge regression on its
slice's entries with features ``h_p = G_(n) kron_{m != n} A_m[i_m(p)]``, see
:mod:`factorch.completion._rowwise`), then re-orthonormalises it (``A_n = Q R``, ``G <- G x_n R``:
the model is unchanged and the next solves stay well conditioned), and finally solves for the
core from ``(K^T K + l2 I) vec(G) = K^T x`` with ``K_p = kron_n A_n[i_n(p)]`` (``prod R_n``
unknowns, so keep the core small: ``prod R_n`` up to a few thousand).

``l2`` is absolute (default 0; without it, a slice with fewer observations than ``R_n`` gets the
minimum-norm least-squares row). The fit runs on the values divided by an exact power of two
``s`` with the ridge on the factor rows divided by ``s^2`` (the factors keep a fixed scale, the
core carries the data's), which gives the iterates of the unscaled problem.

Reference: Oh, Park, Lee, Kang, "Scalable Tucker factorization for sparse tensors — algorithms
and discoveries" (P-Tucker), ICDE 2018; Filipović and Jukić, "Tucker factorization with missing
data with application to low-n-rank tensor completion", Multidim. Syst. Sign. Process. 26, 2015.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from .._checks import as_index
from .._numerics import check_memory, no_autocast
from .._timing import Stopwatch
from ..algebra.internal import SparseLayout
from ..tensors import SparseTensor, TuckerTensor
from ._common import (
    LoopOptions,
    Monitor,
    check_fit_options,
    check_nonneg,
    data_alias,
    empty_slices,
    randn,
    rmse_of,
)
from ._observed import observe, observe_validation, scaled_ridge
from ._output import finish, present_tucker, presenting
from ._result import CompletionCallback, CompletionResult
from ._rowwise import solve_batched, solve_rows
from ._spectral import spectral_factors

__all__ = ["tucker_als"]

_CHUNK_ELEMENTS = 2**20


def _ranks(rank: object, shape: Sequence[int], fn: str) -> tuple[int, ...]:
    n = len(shape)
    entries = rank if isinstance(rank, (tuple, list)) else (rank,) * n
    try:
        ranks = tuple(as_index(r, fn, "rank") for r in entries)
    except TypeError as err:
        raise TypeError(f"{fn}: rank must be an int or a tuple of ints; got {rank!r}.") from err
    if len(ranks) != n:
        raise ValueError(f"{fn}: rank needs {n} entries, one per mode; got {ranks}.")
    for m, (r, s) in enumerate(zip(ranks, shape)):
        if r < 1 or r > s:
            raise ValueError(
                f"{fn}: rank[{m}] must be in [1, {s}] (the size of mode {m}); got {r}."
            )
    return ranks


def _check_tucker_memory(train: SparseTensor, ranks: tuple[int, ...], fn: str) -> None:
    p = math.prod(ranks)
    rows = max(s * r * r + s * r for s, r in zip(train.shape, ranks))
    need = 2 * p * p + max(64, _CHUNK_ELEMENTS // p) * p + rows + train.nnz * 4
    check_memory(
        need,
        train.dtype,
        train.device,
        fn,
        f"a Tucker model of multilinear rank {ranks} (a core of {p} entries)",
        hint="use smaller ranks",
    )


def _kron_rows(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row-wise Kronecker product (first factor's index slowest): ``(n, prod R)``."""
    out = rows[0]
    for r in rows[1:]:
        out = (out.unsqueeze(2) * r.unsqueeze(1)).reshape(out.shape[0], -1)
    return out


def tucker_values(
    core: torch.Tensor, factors: Sequence[torch.Tensor], pattern: SparseTensor
) -> torch.Tensor:
    """Model values at the listed entries of ``pattern`` (chunked, no autograd)."""
    nnz = pattern.nnz
    out = torch.empty(nnz, dtype=core.dtype, device=core.device)
    p = core.numel()
    chunk = max(64, _CHUNK_ELEMENTS // p)
    g = core.reshape(-1)
    for s in range(0, nnz, chunk):
        e = min(nnz, s + chunk)
        k = _kron_rows([f.index_select(0, pattern.indices[n, s:e]) for n, f in enumerate(factors)])
        out[s:e] = k @ g
    return out


def _solve_core(
    train: SparseTensor,
    factors: Sequence[torch.Tensor],
    ranks: tuple[int, ...],
    l2: float,
    damping: float,
) -> torch.Tensor:
    p = math.prod(ranks)
    gram = torch.zeros(p, p, dtype=train.dtype, device=train.device)
    rhs = torch.zeros(p, dtype=train.dtype, device=train.device)
    chunk = max(64, _CHUNK_ELEMENTS // p)
    for s in range(0, train.nnz, chunk):
        e = min(train.nnz, s + chunk)
        k = _kron_rows([f.index_select(0, train.indices[n, s:e]) for n, f in enumerate(factors)])
        gram.addmm_(k.mT, k)
        rhs.addmv_(k.mT, train.values[s:e])
    counts = torch.tensor([train.nnz], device=train.device)
    out = solve_batched(gram[None], rhs[None], l2, counts=counts, damping=damping)
    return out[0].reshape(ranks)


@data_alias("tucker_als")
@no_autocast
def tucker_als(
    tensor: SparseTensor | torch.Tensor,
    rank: int | Sequence[int],
    *,
    mask: torch.Tensor | None = None,
    validation: SparseTensor | None = None,
    l2: float = 0.0,
    damping: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-6,
    patience: int = 10,
    init: Literal["svd", "random"] = "svd",
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> CompletionResult[TuckerTensor]:
    """Tucker completion of a partially observed tensor by row-wise ALS.

    Args:
        tensor: observed entries (:class:`~factorch.tensors.SparseTensor` or torch sparse
            tensor) or a dense tensor / numpy array with ``mask`` (True = observed).
            ``data=`` is a deprecated alias.
        rank: multilinear rank, an int or one int per mode (``R_n <= I_n``; numpy ints too).
        mask: bool tensor or array, True where a dense ``tensor`` is observed.
        validation: held-out entries for early stopping and model selection.
        l2: absolute ridge weight on factor rows and core (default 0).
        damping: data-relative safeguard of the row and core solves, as in :func:`cp_als`
            (default 1e-4; 0 for exact least squares).
        max_iter: maximum number of sweeps; ``tol``: relative change of the objective that
            stops; ``patience``: sweeps without validation improvement before stopping.
        init: starting factors: ``"svd"`` (leading singular subspaces of the zero-filled
            observed unfoldings, from the observed entries only: an HOSVD of the observations)
            or ``"random"`` (orthonormalised Gaussian).
        generator: random source for the starting factors (and the randomized subspaces).
        callback: called after each sweep with a :class:`CompletionState`; True stops.

    Returns:
        :class:`CompletionResult` with a :class:`TuckerTensor` (orthonormal factors) in the
        input's dtype and device. Slices without observations get zero rows before
        orthonormalisation (predictions 0 there): ``extras["empty_slices"]``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: bad values, ranks out of range, or a core whose normal equations cannot fit
            in memory.

    Not differentiable (data that require grad are detached). Runs with autocast off;
    half-precision data are fitted in float32 and the model returned in their dtype.

    Example:
        >>> import torch
        >>> from factorch.completion import tucker_als
        >>> x = torch.rand(6, 5, 4, dtype=torch.float64)
        >>> res = tucker_als(x, 2, mask=torch.rand(6, 5, 4) < 0.7, max_iter=5)
        >>> res.model.rank
        (2, 2, 2)
    """
    fn = "tucker_als"
    obs = observe(tensor, mask, fn)
    train = obs.train
    ranks = _ranks(rank, train.shape, fn)
    l2, loop = check_fit_options(l2, max_iter, tol, patience, generator, fn)
    damping = check_nonneg(damping, fn, "damping")
    if init not in ("svd", "random"):
        raise ValueError(f"{fn}: init must be 'svd' or 'random'; got {init!r}.")
    _check_tucker_memory(train, ranks, fn)
    val = observe_validation(validation, obs, fn)
    with torch.no_grad():
        if init == "svd":
            starts = spectral_factors(train, list(ranks), generator)
        else:
            starts = [
                randn((s, r), generator, train.dtype, train.device)
                for s, r in zip(train.shape, ranks)
            ]
        callback = presenting(callback, obs, lambda m: present_tucker(m, obs, fn, check=False))
        row_l2 = scaled_ridge(l2, obs.scale, -2.0, train.dtype)
        result = _fit(train, val, starts, ranks, (row_l2, l2, damping), loop, callback)
    return finish(result, obs, val, lambda m: present_tucker(m, obs, fn))


def _fit(
    train: SparseTensor,
    val: SparseTensor | None,
    starts: list[torch.Tensor],
    ranks: tuple[int, ...],
    l2: tuple[float, float, float],
    loop: LoopOptions,
    callback: CompletionCallback | None,
) -> CompletionResult[TuckerTensor]:
    """The ALS sweeps from the starting factors; ``l2 = (ridge on factor rows, on the core,
    relative damping)``."""
    clock = Stopwatch()
    row_l2, core_l2, damping = l2
    # Work with orthogonal factors whose rows have unit mean square (Q sqrt(I_n / R_n)), so
    # features, core and ridge live on the scale of the data whatever the mode sizes.
    scales = [math.sqrt(s / r) for s, r in zip(train.shape, ranks)]
    factors = [torch.linalg.qr(u).Q * c for u, c in zip(starts, scales)]
    core = _solve_core(train, factors, ranks, core_l2, damping)
    monitor: Monitor[TuckerTensor] = Monitor(
        "tucker_als", loop, has_validation=val is not None, callback=callback, snapshot=lambda m: m
    )
    layout = SparseLayout.build(train)
    for it in range(1, loop.max_iter + 1):
        for n in range(train.ndim):
            new = _update_factor(layout, core, factors, n, row_l2, damping)
            q, r = torch.linalg.qr(new)
            factors[n] = q * scales[n]
            core = torch.tensordot(r / scales[n], core.movedim(n, 0), dims=1).movedim(0, n)
        core = _solve_core(train, factors, ranks, core_l2, damping)
        resid2 = float(torch.sum((tucker_values(core, factors, train) - train.values) ** 2))
        objective = resid2 + core_l2 * float(torch.sum(core * core))
        objective += row_l2 * sum(float(torch.sum(f * f)) for f in factors)
        val_rmse = math.nan
        if val is not None:
            val_rmse = rmse_of(tucker_values(core, factors, val), val.values)
        model = _orthonormal(core, factors, scales)
        if monitor.step(it, (resid2 / train.nnz) ** 0.5, val_rmse, model, objective):
            break
    return monitor.result(
        _orthonormal(core, factors, scales),
        clock.elapsed,
        extras={"empty_slices": empty_slices(train)},
    )


def _orthonormal(
    core: torch.Tensor, factors: Sequence[torch.Tensor], scales: Sequence[float]
) -> TuckerTensor:
    """The same model with orthonormal factors (the scales moved into the core)."""
    total = math.prod(scales)
    return TuckerTensor(core * total, tuple(f / c for f, c in zip(factors, scales)))


def _update_factor(
    layout: SparseLayout,
    core: torch.Tensor,
    factors: Sequence[torch.Tensor],
    n: int,
    l2: float,
    damping: float,
) -> torch.Tensor:
    lay = layout.mode(n)
    others = [f for m, f in enumerate(factors) if m != n]
    g_n = core.movedim(n, 0).reshape(core.shape[n], -1)  # (R_n, prod_{m != n} R_m)

    def features(s: int, e: int) -> torch.Tensor:
        rows = [f.index_select(0, col[s:e]) for f, col in zip(others, lay.others)]
        return _kron_rows(rows) @ g_n.mT

    return solve_rows(lay, factors[n].shape[0], core.shape[n], features, l2, damping=damping)
