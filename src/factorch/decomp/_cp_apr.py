"""CP-APR: Poisson CP of count data by alternating Poisson regression (Chi & Kolda 2012).

Fits ``M = [[lambda; A_0, ..., A_{N-1}]]`` with non-negative entries to a non-negative tensor
``X`` (sparse or dense) by maximising the Poisson log-likelihood

    log L(M) = sum_i x_i log m_i - sum_i m_i      (the constant -log x_i! left out, as pyttb)

one mode at a time. With the other factors column-stochastic (columns summing to one), the
subproblem for ``B = A_n diag(lambda)`` is convex and separates by rows; two solvers:

* ``method="mu"``: multiplicative updates ``B <- B * Phi``,
  ``Phi = (X_(n) / (B Pi^T)) Pi`` (a majorisation--minimisation step, so the log-likelihood
  never decreases), up to ``max_inner`` per mode, with Chi & Kolda's fix for inadmissible zeros
  (entries below ``kappa_tol`` whose gradient pulls them up are moved to ``kappa``). The same
  iterates as pyttb's ``cp_apr(algorithm="mu")`` from the same initial model.
* ``method="pdnr"``: a projected damped Newton method on every row at once (Hansen, Plantenga &
  Kolda 2015, PDN-R), with inexact row solves (the row tolerance starts at a hundredth of the
  last KKT violation). pyttb loops over rows in Python; here all rows of a mode take their step
  together (batched ``R x R`` solves and a per-row line search).
* ``method="pqnr"``: a projected quasi-Newton method on every row at once (Hansen, Plantenga &
  Kolda 2015, PQN-R): each row keeps an L-BFGS memory of its last ``lbfgs_memory`` steps and
  takes the two-loop direction over its free variables, with PDN-R's line search and inexact
  schedule; no Hessian is formed, so an inner iteration costs one gradient. pyttb's
  ``algorithm="pqnr"`` loops over rows in Python (pyttb 1.8.6's never advances its L-BFGS
  position and stops on an ``AssertionError`` on the data we tried).

Stopping rule (pyttb's): the KKT violation of each mode's subproblem, ``max |min(B, 1 - Phi)|``,
below ``tol`` at the first inner iteration of every mode.

References:
    E. C. Chi, T. G. Kolda, "On tensors, sparsity, and nonnegative factorizations", SIAM J. Matrix
    Anal. Appl. 33(4), 2012.
    S. Hansen, T. Plantenga, T. G. Kolda, "Newton-based optimization for Kullback--Leibler
    nonnegative tensor factorizations", Optim. Methods Softw. 30(5), 2015.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch

from .._checks import as_tensor, check_generator, check_positive_int, check_tensor
from .._numerics import check_memory, no_autocast, upcast, working_dtype
from .._timing import Stopwatch
from ..tensors import CPTensor, SparseTensor
from ._cp_apr_pqnr import quasi_newton_rows
from ._cp_apr_rows import DenseRows, Rows, SparseRows, Workspace, newton_rows
from ._tucker_common import data_scale

__all__ = ["CPAPRMethod", "CPAPRResult", "cp_apr"]

CPAPRMethod = Literal["mu", "pdnr", "pqnr"]


@dataclass(frozen=True)
class CPAPRResult:
    """The outcome of :func:`cp_apr`.

    Attributes:
        model: the fitted ``CPTensor``: column-stochastic non-negative factors (each column sums
            to one) and the component weights, sorted by decreasing weight (pyttb's convention),
            in the input's dtype.
        log_likelihoods: Poisson log-likelihood ``sum x log m - sum m`` of the model after each
            outer iteration (float64; the ``log x!`` constant left out, as pyttb).
        kkt_violations: the largest KKT violation over the modes at each outer iteration.
        iterations: outer iterations run.
        inner_iterations: inner iterations run (over every mode, and every row for ``"pdnr"`` and
            ``"pqnr"``).
        converged: True when every mode met ``tol`` at its first inner iteration.
        time_s: wall-clock seconds, initialisation included.
        init_time_s: wall-clock seconds spent in initialisation.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> counts = torch.poisson(torch.full((4, 5, 6), 2.0), generator=g)
        >>> result = cp_apr(counts, 2, max_iter=5, generator=g)
        >>> result.iterations, len(result.log_likelihoods), result.model.rank
        (5, 5, 2)
    """

    model: CPTensor
    log_likelihoods: tuple[float, ...]
    kkt_violations: tuple[float, ...]
    iterations: int
    inner_iterations: int
    converged: bool
    time_s: float
    init_time_s: float

    @property
    def log_likelihood(self) -> float:
        """The final log-likelihood."""
        return self.log_likelihoods[-1] if self.log_likelihoods else float("nan")


@dataclass(frozen=True)
class _Options:
    method: str
    max_iter: int
    max_inner: int
    tol: float
    kappa: float
    kappa_tol: float
    eps_div_zero: float
    eps_active: float
    mu0: float
    lbfgs_memory: int


def _nonneg_float(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a non-negative float; got {type(value).__name__}.")
    v = float(value)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{fn}: {name} must be a non-negative finite float; got {value!r}.")
    return v


# --- data ------------------------------------------------------------------------------------
class _SparseData:
    """The listed entries, sorted once by each mode's index."""

    def __init__(self, sp: SparseTensor, scale: float, dtype: torch.dtype, rank: int) -> None:
        self.shape = tuple(sp.shape)
        self.work = Workspace(sp.nnz, rank, dtype, sp.device)
        values = sp.values.to(dtype) / scale
        self.values = values
        self.indices = sp.indices.long()
        self.sum = float(values.double().sum())
        self.layouts = []
        for n in range(len(self.shape)):
            perm = torch.sort(self.indices[n], stable=True).indices
            rows = self.indices[n][perm]
            counts = torch.bincount(rows, minlength=self.shape[n])
            offsets = torch.zeros(self.shape[n] + 1, dtype=torch.int64, device=rows.device)
            torch.cumsum(counts, 0, out=offsets[1:])
            others = [self.indices[m][perm] for m in range(len(self.shape)) if m != n]
            self.layouts.append((rows, offsets, values[perm], others))

    def rows(self, mode: int, factors: list[torch.Tensor], eps: float) -> Rows:
        rows, offsets, vals, others = self.layouts[mode]
        fs = [f for m, f in enumerate(factors) if m != mode]
        return SparseRows.build(rows, offsets, vals, others, fs, eps, self.work)


class _DenseData:
    def __init__(self, x: torch.Tensor, scale: float) -> None:
        self.tensor = x / scale if scale != 1.0 else x
        self.shape = tuple(x.shape)
        self.sum = float(self.tensor.double().sum())
        self.unfolded = torch.empty(x.numel(), dtype=x.dtype, device=x.device)
        self.work = torch.empty(x.numel(), dtype=x.dtype, device=x.device)

    def rows(self, mode: int, factors: list[torch.Tensor], eps: float) -> Rows:
        return DenseRows.build(self.tensor, mode, factors, eps, self.unfolded, self.work)


_Data = _SparseData | _DenseData


def _check_data(tensor: object, fn: str) -> tuple[torch.Tensor | SparseTensor, tuple[int, ...]]:
    if isinstance(tensor, SparseTensor):
        values = tensor.values
        shape = tuple(tensor.shape)
        if tensor.nnz == 0:
            raise ValueError(f"{fn}: tensor has no listed entries; there is nothing to fit.")
        data: torch.Tensor | SparseTensor = tensor
    else:
        x = as_tensor(tensor, fn)
        if x.layout == torch.sparse_coo:
            return _check_data(SparseTensor.from_torch(x), fn)
        check_tensor(x, fn, "tensor", min_ndim=2, finite=True)
        if x.is_complex():
            raise TypeError(f"{fn}: tensor must be real (counts); got {x.dtype}.")
        values, shape, data = x, tuple(x.shape), x.detach()
    if len(shape) < 2:
        raise ValueError(f"{fn}: tensor must have at least 2 modes; got shape {shape}.")
    if bool((values < 0).any()):
        raise ValueError(
            f"{fn}: tensor must be non-negative (Poisson counts); got {int((values < 0).sum())} "
            "negative entries."
        )
    if not bool((values > 0).any()):
        raise ValueError(
            f"{fn}: tensor is all zeros; a Poisson model needs at least one positive count."
        )
    return data, shape


def _check_init(
    init: object, shape: tuple[int, ...], rank: int, dtype: torch.dtype, fn: str
) -> None:
    if isinstance(init, str):
        if init != "random":
            raise ValueError(f"{fn}: init must be 'random' or a CPTensor; got {init!r}.")
        return
    if not isinstance(init, CPTensor):
        raise TypeError(f"{fn}: init must be 'random' or a CPTensor; got {type(init).__name__}.")
    if init.shape != shape or init.rank != rank:
        raise ValueError(
            f"{fn}: init has shape {init.shape} and rank {init.rank}; expected shape {shape} and "
            f"rank {rank}."
        )
    if init.dtype != dtype:
        raise ValueError(
            f"{fn}: init is {init.dtype} but the tensor is {dtype}; convert it with init.to(...)."
        )
    if bool((init.weights < 0).any()) or any(bool((f < 0).any()) for f in init.factors):
        raise ValueError(f"{fn}: init must have non-negative weights and factors.")


def _start(
    init: str | CPTensor,
    shape: tuple[int, ...],
    rank: int,
    dtype: torch.dtype,
    device: torch.device,
    scale: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weights and column-stochastic factors of the starting model (in scaled units)."""
    if isinstance(init, CPTensor):
        weights = upcast(init.weights.detach()).to(device) / scale
        factors = [upcast(f.detach()).to(device).clone() for f in init.factors]
    else:
        where = generator.device if generator is not None else device
        factors = [
            torch.rand(i, rank, generator=generator, dtype=dtype, device=where).to(device)
            for i in shape
        ]
        weights = torch.ones(rank, dtype=dtype, device=device)
    for f in factors:
        sums = f.sum(0)
        weights = weights * sums
        f.div_(torch.where(sums > 0, sums, torch.ones_like(sums)))
    return weights, factors


# --- the fit ----------------------------------------------------------------------------------
@no_autocast
@torch.no_grad()
def cp_apr(
    tensor: SparseTensor | torch.Tensor,
    rank: int,
    *,
    method: CPAPRMethod = "mu",
    init: Literal["random"] | CPTensor = "random",
    max_iter: int = 1000,
    max_inner: int = 10,
    tol: float = 1e-4,
    kappa: float = 0.01,
    kappa_tol: float = 1e-10,
    eps_div_zero: float = 1e-10,
    eps_active: float = 1e-8,
    mu0: float = 1e-5,
    lbfgs_memory: int = 3,
    generator: torch.Generator | None = None,
) -> CPAPRResult:
    """Poisson CP decomposition of count data by alternating Poisson regression (CP-APR).

    Maximises ``sum x log m - sum m`` over non-negative CP models ``m`` (Chi & Kolda 2012), one
    mode at a time; see the module docstring for the two solvers. Defaults and stopping rule are
    pyttb's ``cp_apr``, so ``cp_apr(X, R, init=M0)`` and pyttb's ``cp_apr(X, R, init=M0,
    algorithm="mu")`` run the same iterates (compare with :func:`factorch.interop.to_pyttb`).

    Data are used as they are while their largest entry lies in the working dtype's safe band
    (counts always do); outside it they are divided by an exact power of two and the weights
    scaled back. Half precision is computed in float32. Not differentiable.

    Args:
        tensor: non-negative counts: a :class:`~factorch.tensors.SparseTensor` (unlisted entries
            are zeros), a dense floating tensor or numpy array, or a ``torch.sparse_coo`` tensor;
            at least 2 modes.
        rank: number of components (numpy integers accepted).
        method: ``"mu"`` (multiplicative updates), ``"pdnr"`` (row-wise damped Newton) or
            ``"pqnr"`` (row-wise projected quasi-Newton, L-BFGS).
        init: ``"random"`` (uniform factors, unit weights) or a non-negative ``CPTensor`` of the
            data's shape, rank and dtype (normalised to column-stochastic factors first).
        max_iter: maximum outer iterations.
        max_inner: maximum inner iterations per mode (per row for ``"pdnr"`` and ``"pqnr"``).
        tol: KKT-violation tolerance.
        kappa: ``"mu"``: amount added to inadmissible zeros (0 disables the fix).
        kappa_tol: ``"mu"``: entries below this count as zeros for that fix.
        eps_div_zero: floor of model values in divisions.
        eps_active: ``"pdnr"``, ``"pqnr"``: Bertsekas' tolerance for the active set.
        mu0: ``"pdnr"``: initial damping of the row Hessians.
        lbfgs_memory: ``"pqnr"``: number of L-BFGS pairs each row keeps (pyttb's ``lbfgsMem``).
        generator: random source for ``init="random"``.

    Returns:
        :class:`CPAPRResult`.

    Raises:
        TypeError: a non-tensor, an integer, bool or complex dtype, a bad option type, an init of
            another type.
        ValueError: negative or non-finite entries, fewer than 2 modes, all-zero data, a bad
            rank, option value or init, or more memory than the device has.

    Example:
        >>> import torch
        >>> from factorch.decomp import cp_apr
        >>> from factorch.tensors import CPTensor
        >>> g = torch.Generator().manual_seed(0)
        >>> truth = CPTensor.from_factors([torch.rand(n, 2, generator=g, dtype=torch.float64)
        ...                                for n in (20, 15, 10)]).to_dense() * 5
        >>> counts = torch.poisson(truth, generator=g)
        >>> res = cp_apr(counts, 2, generator=g)
        >>> res.converged, bool((res.model.factors[0] >= 0).all())
        (True, True)
    """
    fn = "cp_apr"
    sw = Stopwatch()
    data_in, shape = _check_data(tensor, fn)
    rank = check_positive_int(rank, fn, "rank")
    opts = _check_options(
        method, max_iter, max_inner, tol, kappa, kappa_tol, eps_div_zero, eps_active, mu0,
        lbfgs_memory, fn,
    )  # fmt: skip
    gen = check_generator(generator, fn)
    dtype = data_in.dtype
    wdtype = working_dtype(dtype)
    device = data_in.device
    _check_init(init, shape, rank, dtype, fn)
    _check_size(data_in, shape, rank, wdtype, device, opts.method, opts.lbfgs_memory, fn)
    values = data_in.values if isinstance(data_in, SparseTensor) else data_in
    scale = data_scale(values)
    data: _Data = (
        _SparseData(data_in, scale, wdtype, rank)
        if isinstance(data_in, SparseTensor)
        else _DenseData(upcast(data_in), scale)
    )
    weights, factors = _start(init, shape, rank, wdtype, device, scale, gen)
    init_time = sw.elapsed
    run = {"mu": _run_mu, "pdnr": _run_rows, "pqnr": _run_rows}[opts.method]
    weights, factors, lls, kkts, inner, converged = run(data, weights, factors, opts)
    model = _final_model(weights, factors, scale, dtype, fn)
    lls = [scale * (ll + math.log(scale) * data.sum) for ll in lls]
    return CPAPRResult(
        model, tuple(lls), tuple(kkts), len(kkts), inner, converged, sw.elapsed, init_time
    )


def _check_options(
    method: object,
    max_iter: object,
    max_inner: object,
    tol: object,
    kappa: object,
    kappa_tol: object,
    eps_div_zero: object,
    eps_active: object,
    mu0: object,
    lbfgs_memory: object,
    fn: str,
) -> _Options:
    if not isinstance(method, str) or method not in get_args(CPAPRMethod):
        raise ValueError(f"{fn}: method must be one of {get_args(CPAPRMethod)}; got {method!r}.")
    return _Options(
        method,
        check_positive_int(max_iter, fn, "max_iter"),
        check_positive_int(max_inner, fn, "max_inner"),
        _nonneg_float(tol, fn, "tol"),
        _nonneg_float(kappa, fn, "kappa"),
        _nonneg_float(kappa_tol, fn, "kappa_tol"),
        _nonneg_float(eps_div_zero, fn, "eps_div_zero"),
        _nonneg_float(eps_active, fn, "eps_active"),
        _nonneg_float(mu0, fn, "mu0"),
        check_positive_int(lbfgs_memory, fn, "lbfgs_memory"),
    )


def _check_size(
    data: torch.Tensor | SparseTensor,
    shape: tuple[int, ...],
    rank: int,
    dtype: torch.dtype,
    device: torch.device,
    method: str,
    memory: int,
    fn: str,
) -> None:
    """Refuse before allocating: factors, multipliers and their copies (``3 sum_n I_n R``),
    the Khatri--Rao rows ``Pi`` (``nnz x R``, or the largest ``prod / I_n x R``), the work
    buffers, for ``"pdnr"`` the row Hessians and pair products, for ``"pqnr"`` the L-BFGS
    memories."""
    factors = 3 * sum(shape) * rank
    pairs = rank * (rank + 1) // 2 if method == "pdnr" else 0
    if isinstance(data, SparseTensor):
        work = data.nnz * (4 * rank + pairs + 4 + 2 * len(shape))
    else:
        numel = math.prod(shape)
        work = 5 * numel + numel // min(shape) * (rank + pairs)
    hess = 2 * max(shape) * rank * rank if method == "pdnr" else 0
    if method == "pqnr":
        hess = (2 * memory + 1) * max(shape) * rank
    check_memory(factors + work + hess, dtype, device, fn, f"CP-APR at rank {rank}")


def _log_likelihood(rows: Rows, b: torch.Tensor) -> float:
    """``sum x log m - sum m`` of the model whose mode-``n`` factor times weights is ``b``."""
    return float(rows.row_log(b).sum()) - float(b.double().sum())


def _normalize(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column sums (the new weights) and the column-stochastic factor (zero columns kept)."""
    sums = b.sum(0)
    return sums, b / torch.where(sums > 0, sums, torch.ones_like(sums))


def _run_mu(
    data: _Data, weights: torch.Tensor, factors: list[torch.Tensor], opts: _Options
) -> tuple[torch.Tensor, list[torch.Tensor], list[float], list[float], int, bool]:
    n_modes = len(factors)
    phis: list[torch.Tensor | None] = [None] * n_modes
    lls: list[float] = []
    kkts: list[float] = []
    inner, converged = 0, False
    for it in range(opts.max_iter):
        converged = True
        mode_kkt = [0.0] * n_modes
        rows: Rows | None = None
        b = factors[0]
        for n in range(n_modes):
            phi_prev = phis[n]
            if it > 0 and opts.kappa > 0 and phi_prev is not None:
                inadmissible = (phi_prev > 0) & (factors[n] < opts.kappa_tol)
                factors[n] = torch.where(inadmissible, factors[n] + opts.kappa, factors[n])
            b = factors[n] * weights
            rows = data.rows(n, factors, opts.eps_div_zero)
            for _ in range(opts.max_inner):
                inner += 1
                phi = rows.phi(b)
                phis[n] = phi
                mode_kkt[n] = float(torch.minimum(b, 1.0 - phi).abs().max())
                if mode_kkt[n] < opts.tol:
                    break
                converged = False
                b = b * phi
            weights, factors[n] = _normalize(b)
        lls.append(_log_likelihood(cast(Rows, rows), b))  # n_modes >= 2: rows is set
        kkts.append(max(mode_kkt))
        if converged:
            break
    return weights, factors, lls, kkts, inner, converged


def _run_rows(
    data: _Data, weights: torch.Tensor, factors: list[torch.Tensor], opts: _Options
) -> tuple[torch.Tensor, list[torch.Tensor], list[float], list[float], int, bool]:
    n_modes = len(factors)
    lls: list[float] = []
    kkts: list[float] = []
    inner, converged = 0, False
    row_tol = opts.tol
    for it in range(opts.max_iter):
        converged = True
        mode_kkt = [0.0] * n_modes
        rows: Rows | None = None
        b = factors[0]
        for n in range(n_modes):
            b = factors[n] * weights
            rows = data.rows(n, factors, opts.eps_div_zero)
            limit = 2 if it == 0 else opts.max_inner  # inexact first sweep, as pyttb
            if opts.method == "pdnr":
                b, mode_kkt[n], done, count = newton_rows(
                    rows, b, max_inner=limit, row_tol=row_tol, mu0=opts.mu0,
                    eps_active=opts.eps_active,
                )  # fmt: skip
            else:
                b, mode_kkt[n], done, count = quasi_newton_rows(
                    rows, b, max_inner=limit, row_tol=row_tol, memory=opts.lbfgs_memory,
                    eps_active=opts.eps_active,
                )  # fmt: skip
            inner += count
            converged = converged and done
            weights, factors[n] = _normalize(b)
        lls.append(_log_likelihood(cast(Rows, rows), b))  # n_modes >= 2: rows is set
        kkts.append(max(mode_kkt))
        row_tol = max(opts.tol, kkts[-1] / 100.0)
        if converged and row_tol <= opts.tol:
            break
    return weights, factors, lls, kkts, inner, converged


def _final_model(
    weights: torch.Tensor, factors: list[torch.Tensor], scale: float, dtype: torch.dtype, fn: str
) -> CPTensor:
    """Weights scaled back, components sorted by decreasing weight, cast to ``dtype``."""
    order = torch.argsort(weights, descending=True, stable=True)
    w = (weights[order] * scale).to(dtype)
    fs = tuple(f[:, order].to(dtype) for f in factors)
    if not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"{fn}: the fitted weights cannot be represented in {dtype} (they overflow); convert "
            "the data to a wider dtype (e.g. .double()) first."
        )
    return CPTensor(w, fs)
