"""TT-cross: a tensor train from a few evaluations of a black-box function on a grid.

The function is sampled only on *fibres* ``f(I_k, :, J_{k+1})``: ``I_k`` a set of left
multi-indices (modes ``< k``), ``J_{k+1}`` a set of right multi-indices (modes ``> k``). A left-to-
right sweep orthogonalises each fibre matrix (``r_k n_k x r_{k+1}``), truncates it to its numerical
rank (relative singular value cut-off ``eps``, capped by ``rank``), and picks by *maxvol* the rows
of a well-conditioned (quasi-maximal volume) submatrix, which become ``I_{k+1}``; the core is the
interpolation matrix ``Q Q[rows]^{-1}``, so the TT reproduces the function exactly on the chosen
fibres (the skeleton / cross interpolation of Oseledets & Tyrtyshnikov 2010). A right-to-left
sweep does the same for the ``J`` sets. Sweeps alternate until the TT moves by less than ``tol``
(relative, computed in TT form), or the budget of evaluations would be exceeded. The final error
is *estimated* on random entries (the evaluations are counted): unlike TT-SVD, no error bound
comes for free.

References:
    I. Oseledets, E. Tyrtyshnikov, "TT-cross approximation for multidimensional arrays", Linear
    Algebra Appl. 432(1), 2010.
    S. A. Goreinov, I. V. Oseledets, D. V. Savostyanov, E. E. Tyrtyshnikov, N. L. Zamarashkin,
    "How to find a good submatrix", in Matrix Methods: Theory, Algorithms and Applications, 2010
    (maxvol).
    D. Savostyanov, I. Oseledets, "Fast adaptive interpolation of multi-dimensional arrays in
    tensor train format", nDS 2011.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch

from .._checks import as_tensor, check_generator, check_positive_int, check_tensor
from .._numerics import no_autocast, stable_norm, working_dtype
from .._timing import Stopwatch
from ..tensors import TTTensor

__all__ = ["CrossResult", "tt_cross"]

IndexFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CrossResult:
    """The outcome of :func:`tt_cross`.

    Attributes:
        model: the ``TTTensor`` in the function's dtype (half precision is computed in
            float32 and rounded at the end).
        error: relative RMS error on ``n_check`` random entries (``||f - tt|| / ||f||`` over the
            sample; NaN when ``n_check=0``).
        changes: relative change of the TT after each half-sweep (the stopping quantity).
        evaluations: function values requested (fibres and the error sample).
        sweeps: half-sweeps run.
        converged: True when the change fell below ``tol``.
        time_s: wall-clock seconds.

    Example:
        >>> x = torch.arange(60, dtype=torch.float64).reshape(3, 4, 5)
        >>> result = tt_cross(x, 2, generator=torch.Generator().manual_seed(0))
        >>> result.model.shape, result.error < 1e-10, result.converged
        ((3, 4, 5), True, True)
    """

    model: TTTensor
    error: float
    changes: tuple[float, ...]
    evaluations: int
    sweeps: int
    converged: bool
    time_s: float


# --- maxvol -----------------------------------------------------------------------------------
def maxvol(a: torch.Tensor, *, tol: float = 1.05, max_swaps: int = 200) -> torch.Tensor:
    """Rows of a quasi-maximal-volume ``r x r`` submatrix of a tall ``n x r`` matrix ``a``.

    Starts from the pivots of an LU factorisation with partial pivoting and swaps rows while some
    entry of ``B = a a[rows]^{-1}`` exceeds ``tol`` in magnitude (each swap multiplies the volume
    by that entry; Goreinov et al. 2010). At the end every row of ``a`` is a combination of the
    chosen rows with coefficients at most ``tol``.
    """
    n, r = a.shape
    _, pivots = torch.linalg.lu_factor(a)
    perm = torch.arange(n, device=a.device)
    for i, p in enumerate(pivots.tolist()):
        p -= 1
        if p != i:
            perm[[i, p]] = perm[[p, i]]
    rows = perm[:r].clone()
    for _ in range(max_swaps):
        b = torch.linalg.solve(a[rows].T, a.T).T  # a @ inv(a[rows])
        flat = int(b.abs().argmax())
        i, j = divmod(flat, r)
        if float(b[i, j].abs()) <= tol:
            break
        rows[j] = i
    return rows


def _skeleton(c: torch.Tensor, max_rank: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal basis of the fibre matrix truncated to its numerical rank, and maxvol rows.

    Returns the interpolation core ``Q Q[rows]^{-1}`` (``m x k``) and ``rows`` (``k``)."""
    u, s, _ = torch.linalg.svd(c, full_matrices=False)
    keep = int((s > eps * s[0]).sum()) if float(s[0]) > 0 else 1
    k = max(1, min(keep, max_rank))
    q = u[:, :k]
    rows = maxvol(q)
    core = torch.linalg.solve(q[rows].T, q.T).T
    return core, rows


# --- evaluation -------------------------------------------------------------------------------
class _Sampler:
    """Calls the function on index batches, checks what it returns and counts evaluations."""

    def __init__(self, function: IndexFunction, n_modes: int, device: torch.device, fn: str):
        self.function, self.n_modes, self.device, self.fn = function, n_modes, device, fn
        self.count = 0
        self.dtype: torch.dtype | None = None

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        self.count += index.shape[0]
        out = self.function(index)
        if not isinstance(out, torch.Tensor):
            out = as_tensor(out, self.fn, "function output")
        if out.shape != (index.shape[0],):
            raise ValueError(
                f"{self.fn}: the function must return one value per index row, shape "
                f"({index.shape[0]},); got {tuple(out.shape)}."
            )
        if not out.is_floating_point():
            raise TypeError(
                f"{self.fn}: the function must return floating values; got {out.dtype}."
            )
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"{self.fn}: the function returned NaN or Inf values.")
        if self.dtype is None:
            self.dtype = out.dtype
        return out.to(device=self.device, dtype=working_dtype(self.dtype))


def _fibres(left: torch.Tensor, size: int, right: torch.Tensor) -> torch.Tensor:
    """All index rows ``(l, i, r)`` for ``l`` in ``left`` (``a x k``), ``i < size``, ``r`` in
    ``right`` (``b x (N - k - 1)``), in the order ``(a, i, b)``."""
    a, b = left.shape[0], right.shape[0]
    mid = torch.arange(size, device=left.device)
    parts = [
        left[:, None, None, :].expand(a, size, b, left.shape[1]),
        mid[None, :, None, None].expand(a, size, b, 1),
        right[None, None, :, :].expand(a, size, b, right.shape[1]),
    ]
    return torch.cat(parts, dim=3).reshape(a * size * b, -1)


# --- the algorithm ----------------------------------------------------------------------------
def _check_input(
    tensor: object, shape: object, device: torch.device | str | None, fn: str
) -> tuple[IndexFunction, tuple[int, ...], torch.device]:
    if callable(tensor) and not isinstance(tensor, torch.Tensor):
        if shape is None:
            raise TypeError(f"{fn}: shape is required when the input is a function; pass shape=.")
        if not isinstance(shape, (tuple, list, torch.Size)) or not shape:
            raise TypeError(f"{fn}: shape must be a non-empty tuple of ints; got {shape!r}.")
        dims = tuple(check_positive_int(s, fn, "shape entries") for s in shape)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return cast(IndexFunction, tensor), dims, dev
    x = as_tensor(tensor, fn)
    check_tensor(x, fn, "tensor", min_ndim=2)
    if x.is_complex():
        raise TypeError(f"{fn}: tensor must be real; got {x.dtype}.")
    if shape is not None and (
        not isinstance(shape, (tuple, list, torch.Size)) or tuple(shape) != tuple(x.shape)
    ):
        raise ValueError(f"{fn}: shape {shape!r} does not match the tensor's {tuple(x.shape)}.")
    data = x.detach()
    return (lambda idx: data[tuple(idx.T)]), tuple(x.shape), x.device


def _rank_caps(rank: object, shape: tuple[int, ...], fn: str) -> list[int]:
    """Upper ranks ``r_0 = 1, r_1, ..., r_{N-1}, r_N = 1``, capped by the unfoldings' sizes."""
    n = len(shape)
    if isinstance(rank, (list, tuple)):
        if len(rank) != n + 1:
            raise ValueError(
                f"{fn}: rank needs {n + 1} entries for a {n}-way tensor (r_0 = r_N = 1); got "
                f"{tuple(rank)}."
            )
        ranks = [check_positive_int(r, fn, "rank entries") for r in rank]
        if ranks[0] != 1 or ranks[-1] != 1:
            raise ValueError(f"{fn}: rank must start and end with 1; got {tuple(rank)}.")
    else:
        ranks = [1] + [check_positive_int(rank, fn, "rank")] * (n - 1) + [1]
    for k in range(1, n):
        ranks[k] = min(ranks[k], math.prod(shape[:k]), math.prod(shape[k:]))
    return ranks


def _initial_right(
    shape: tuple[int, ...], ranks: list[int], gen: torch.Generator | None, device: torch.device
) -> list[torch.Tensor]:
    """Random distinct right index sets ``J_k`` (``r_k`` rows of modes ``k ..``) for
    ``k = 1 .. N-1``, then ``J_N`` empty. Small grids are enumerated, large ones drawn per mode."""
    where = gen.device if gen is not None else torch.device("cpu")
    out: list[torch.Tensor] = []
    for k in range(1, len(shape)):
        sizes, r = shape[k:], ranks[k]
        total = math.prod(sizes)
        if total <= 4 * r or total <= 2**20:
            flat = torch.randperm(total, generator=gen, device=where)[:r]
            cols = []
            for s in reversed(sizes):
                cols.append(flat % s)
                flat = flat // s
            rows = torch.stack(cols[::-1], 1)
        else:
            draw = [torch.randint(s, (2 * r,), generator=gen, device=where) for s in sizes]
            rows = torch.unique(torch.stack(draw, 1), dim=0)[:r]
        out.append(rows.to(device))
    out.append(torch.zeros(1, 0, dtype=torch.int64, device=device))
    return out


def _relative_change(old: TTTensor, new: TTTensor, probe: torch.Tensor) -> float:
    """``||old - new|| / ||new||`` on the fixed probe entries (exact to rounding; the norm of a
    TT difference computed from inner products bottoms out near ``sqrt(eps)``)."""
    a, b = old.entries(probe), new.entries(probe)
    diff, ref = stable_norm(a - b), stable_norm(b)
    return diff / ref if ref > 0 else (0.0 if diff == 0 else math.inf)


@no_autocast
@torch.no_grad()
def tt_cross(
    tensor: IndexFunction | torch.Tensor,
    rank: int | Sequence[int],
    *,
    shape: Sequence[int] | None = None,
    eps: float = 1e-12,
    tol: float = 1e-8,
    max_sweeps: int = 20,
    max_evals: int | None = None,
    n_check: int = 1000,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> CrossResult:
    """Tensor-train approximation of a black-box function on a grid by alternating cross/maxvol.

    Evaluates ``tensor`` only on fibres chosen by maxvol (see the module docstring): about
    ``2 sum_k r_k n_k r_{k+1}`` values per sweep pair instead of ``prod n_k``. A function of TT
    rank at most ``rank`` is recovered exactly (to rounding) once its index sets are rich enough,
    typically after one or two sweeps. Not differentiable.

    Args:
        tensor: a function ``f(index) -> values`` taking an ``(m, N)`` int64 tensor of grid
            indices and returning ``(m,)`` floating values (vectorise it: it is called once per
            fibre batch), or a dense real tensor (or numpy array) to sample.
        rank: maximum TT rank, an int or ``N + 1`` ints with ``r_0 = r_N = 1`` (capped by the
            grid: ``r_k <= min(prod n_{<k}, prod n_{>=k})``; numpy integers accepted).
        shape: the grid ``(n_0, ..., n_{N-1})``; required for a function.
        eps: relative singular value cut-off of each fibre matrix (ranks drop to the numerical
            rank; raise it for noisy functions).
        tol: stop when a half-sweep changes the TT by less than ``tol`` relative to its norm,
            measured on 2048 fixed random entries of the two TTs (no function evaluations).
        max_sweeps: maximum half-sweeps.
        max_evals: budget of function evaluations (fibres and the error sample); the run stops
            before a half-sweep that would exceed it (``converged=False``). ``None``: no budget.
        n_check: random entries on which the final relative error is estimated (0: skip).
        device: where indices are created for a function (default CPU); a tensor's own device
            otherwise.
        generator: random source for the initial index sets and the error sample.

    Returns:
        :class:`CrossResult`.

    Raises:
        TypeError: a function without ``shape``, bad option types, non-floating function values.
        ValueError: NaN/Inf in a tensor or returned by the function, a function returning the
            wrong shape, bad ranks or options, a budget below one sweep.

    Example:
        >>> import torch
        >>> from factorch.decomp import tt_cross
        >>> f = lambda idx: torch.sin(idx.double().sum(1) / 10)  # TT rank 2
        >>> res = tt_cross(f, 4, shape=(20,) * 6, generator=torch.Generator().manual_seed(0))
        >>> res.model.rank, res.error < 1e-10, res.evaluations < 20**6 // 1000
        ((1, 2, 2, 2, 2, 2, 1), True, True)
    """
    fn = "tt_cross"
    sw = Stopwatch()
    function, dims, dev = _check_input(tensor, shape, device, fn)
    ranks = _rank_caps(rank, dims, fn)
    opts = _check_options(eps, tol, max_sweeps, max_evals, n_check, fn)
    gen = check_generator(generator, fn)
    sample = _Sampler(function, len(dims), dev, fn)
    state = _CrossState(dims, ranks, sample, opts.eps, _initial_right(dims, ranks, gen, dev))
    changes: list[float] = []
    converged = False
    if opts.max_evals is not None and state.cost() > opts.max_evals:
        raise ValueError(
            f"{fn}: max_evals={opts.max_evals} is below the {state.cost()} evaluations one sweep "
            "may need; raise it or lower rank."
        )
    # No truncation on the random initial right sets: a rank drop there can only reflect a poor
    # draw (e.g. two right indices on which the function agrees), and index sets never grow back.
    model = state.left_to_right(truncate=False)
    changes.append(math.inf)
    probe = _random_indices(dims, _PROBE, gen, dev)
    for sweep in range(1, opts.max_sweeps):
        if opts.max_evals is not None and sample.count + state.cost() > opts.max_evals:
            break
        new = state.right_to_left() if sweep % 2 == 1 else state.left_to_right()
        changes.append(_relative_change(model, new, probe))
        model = new
        if changes[-1] <= opts.tol:
            converged = True
            break
    error = _estimate_error(model, sample, opts.n_check, gen, dev)
    out_dtype = sample.dtype if sample.dtype is not None else model.dtype
    model = model.to(dtype=out_dtype)
    if not all(bool(torch.isfinite(c).all()) for c in model.cores):
        raise ValueError(
            f"{fn}: the tensor train cannot be represented in {out_dtype} (its cores overflow); "
            "return wider values (e.g. float64) from the function."
        )
    return CrossResult(
        model, error, tuple(changes), sample.count, len(changes), converged, sw.elapsed
    )


@dataclass(frozen=True)
class _Options:
    eps: float
    tol: float
    max_sweeps: int
    max_evals: int | None
    n_check: int


def _check_options(
    eps: object, tol: object, max_sweeps: object, max_evals: object, n_check: object, fn: str
) -> _Options:
    for name, value in (("eps", eps), ("tol", tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{fn}: {name} must be a float; got {type(value).__name__}.")
        if not (0 <= float(value) < 1):
            raise ValueError(f"{fn}: {name} must be in [0, 1); got {value!r}.")
    evals = None if max_evals is None else check_positive_int(max_evals, fn, "max_evals")
    if isinstance(n_check, bool) or not isinstance(n_check, int) or n_check < 0:
        raise ValueError(f"{fn}: n_check must be a non-negative int; got {n_check!r}.")
    sweeps = check_positive_int(max_sweeps, fn, "max_sweeps")
    return _Options(float(cast(float, eps)), float(cast(float, tol)), sweeps, evals, n_check)


class _CrossState:
    """Index sets and the fibre sweeps."""

    def __init__(
        self,
        shape: tuple[int, ...],
        ranks: list[int],
        sample: _Sampler,
        eps: float,
        right: list[torch.Tensor],
    ) -> None:
        self.shape, self.ranks, self.sample, self.eps = shape, ranks, sample, eps
        n = len(shape)
        dev = sample.device
        self.left: list[torch.Tensor] = [torch.zeros(1, 0, dtype=torch.int64, device=dev)]
        self.left += [torch.zeros(0, k, dtype=torch.int64, device=dev) for k in range(1, n)]
        self.right = right  # right[k] holds J_{k+1} (indices of modes k+1 ..), right[-1] empty

    def cost(self) -> int:
        """An upper bound on the evaluations of the next half-sweep, ``sum r_k n_k r_{k+1}``."""
        r = self.ranks
        return sum(r[k] * n * r[k + 1] for k, n in enumerate(self.shape))

    def _fibre(self, k: int, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        vals = self.sample(_fibres(left, self.shape[k], right))
        return vals.reshape(left.shape[0], self.shape[k], right.shape[0])

    def left_to_right(self, *, truncate: bool = True) -> TTTensor:
        n = len(self.shape)
        eps = self.eps if truncate else 0.0
        cores: list[torch.Tensor] = []
        for k in range(n - 1):
            c = self._fibre(k, self.left[k], self.right[k])
            a, size, b = c.shape
            core, rows = _skeleton(c.reshape(a * size, b), self.ranks[k + 1], eps)
            cores.append(core.reshape(a, size, -1))
            prev, mid = rows // size, rows % size
            self.left[k + 1] = torch.cat([self.left[k][prev], mid[:, None]], 1)
        cores.append(self._fibre(n - 1, self.left[n - 1], self.right[n - 1]))
        return TTTensor(tuple(cores))

    def right_to_left(self) -> TTTensor:
        n = len(self.shape)
        cores: list[torch.Tensor] = [torch.empty(0)] * n
        for k in range(n - 1, 0, -1):
            c = self._fibre(k, self.left[k], self.right[k])
            a, size, b = c.shape
            core, cols = _skeleton(c.reshape(a, size * b).T, self.ranks[k], self.eps)
            cores[k] = core.T.reshape(-1, size, b)
            mid, nxt = cols // b, cols % b
            self.right[k - 1] = torch.cat([mid[:, None], self.right[k][nxt]], 1)
        cores[0] = self._fibre(0, self.left[0], self.right[0])
        return TTTensor(tuple(cores))


_PROBE = 2048  # entries on which successive sweeps are compared (no function evaluations)


def _random_indices(
    shape: tuple[int, ...], n: int, gen: torch.Generator | None, dev: torch.device
) -> torch.Tensor:
    where = gen.device if gen is not None else torch.device("cpu")
    cols = [torch.randint(s, (n,), generator=gen, device=where) for s in shape]
    return torch.stack(cols, 1).to(dev)


def _estimate_error(
    model: TTTensor, sample: _Sampler, n_check: int, gen: torch.Generator | None, dev: torch.device
) -> float:
    if n_check == 0:
        return math.nan
    idx = _random_indices(model.shape, n_check, gen, dev)
    truth = sample(idx).double()
    approx = model.entries(idx).double()
    den, num = stable_norm(truth), stable_norm(truth - approx)
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)
