"""FunBaT-MAP: the same functional Tucker/CP model fitted by gradient descent (autograd).

The conditional-EP fit (:func:`funbat`) runs sequential Kalman smoothers and sums messages
over all entries every epoch; for large data the MAP estimate of the same model is cheaper: it
needs only mini-batches of entries, runs wherever PyTorch runs (GPUs included), in the data's
working dtype. It minimises

.. math::

    \\frac{\\tau}{2} \\sum_n (y_n - f_n)^2 + \\frac12 \\sum_{k, r} \\|\\mathbf e^k_r\\|^2
    + \\frac{1}{2 v_W} \\|\\mathcal W\\|^2

over the *whitened innovations* ``e`` of every latent function's state-space chain: the state at
the ``j``-th distinct coordinate is ``x_j = A_j x_{j-1} + L_j e_j`` with ``L_j L_j^T = Q_j``
(``x_0 = L_0 e_0``, ``L_0 L_0^T = P_inf``), so ``e ~ N(0, I)`` is exactly the Matérn prior and the
prior term is perfectly conditioned whatever the spacing of the coordinates (the centred form's
``Q_j^{-1}`` explodes for close coordinates). The states are computed from ``e`` by an
associative scan of the affine recursion (``O(log n)`` depth, differentiable). The noise
precision is updated after every epoch to its conditional posterior mean
``(a_0 + N/2) / (b_0 + SSE/2)``.

The result is a :class:`FunctionalTensor` like EP's. A MAP point has no covariances, so the
model is built by ``posterior_sweeps`` undamped EP epochs started at it (:func:`funbat`'s
updates: each mode's posterior given the others by the Kalman/RTS smoother of its entries'
pseudo-observations, then the core's, then the noise): its means stay close to the MAP values,
predictions at unseen coordinates are GP conditionals, and its intervals are calibrated like
EP's. (A purely block-wise Laplace model -- every block given the others at their MAP values --
leaves prior-sized variances in directions the data do not determine, e.g. a mode with fewer
coordinates than latent functions, and gave 95% intervals covering 100% of held-out values with
a 14-fold too large spread on the Seattle weather data; see BENCHMARKS.md.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ..._numerics import no_autocast, working_dtype
from ..._timing import Stopwatch
from .._result import CompletionCallback, CompletionState
from ._data import ContinuousData
from ._ep import State, check_floats, ep_sweeps
from ._kernels import Matern
from ._model import FunctionalTensor
from ._problem import Problem, Structure, check_common, prepare
from ._result import FunctionalResult
from ._smoother import scan_affine

__all__ = ["funbat_map"]

F64 = torch.float64


def _sqrt_psd(q: torch.Tensor) -> torch.Tensor:
    """A square root ``L L^T = q`` of (batches of) PSD matrices (Cholesky, else eigh)."""
    chol, info = torch.linalg.cholesky_ex(q)
    if bool((info == 0).all()) and bool(torch.isfinite(chol).all()):
        return chol
    w, v = torch.linalg.eigh(q)
    return v * w.clamp_min(0.0).sqrt()[..., None, :]


class _Chains(torch.nn.Module):
    """Whitened state-space chains of every mode and (Tucker) the core, as parameters."""

    def __init__(self, p: Problem, dtype: torch.dtype, generator: torch.Generator | None):
        super().__init__()
        dev = p.y.device
        self.trans: list[torch.Tensor] = []
        self.roots: list[torch.Tensor] = []
        self.innov = torch.nn.ParameterList()
        for k in range(p.ndim):
            kern = p.kernels[k]
            a, q = kern.transitions(p.gaps[k])
            _, p_inf = kern.state_space(dtype=F64, device=dev)
            q[0] = p_inf
            a[0] = 0.0
            self.trans.append(a.to(dtype))
            self.roots.append(_sqrt_psd(q).to(dtype))
            n, m, r = p.coords[k].numel(), kern.order, p.ranks[k]
            e = torch.randn(n, m, r, generator=generator, dtype=F64).to(device=dev, dtype=dtype)
            self.innov.append(torch.nn.Parameter(e))
        self.core: torch.nn.Parameter | None = None
        if p.structure == "tucker":
            w = torch.randn(p.ranks, generator=generator, dtype=F64) / math.sqrt(p.core_size)
            self.core = torch.nn.Parameter(w.to(device=dev, dtype=dtype))

    def values(self) -> list[torch.Tensor]:
        """``(n_k, R_k)`` function values at every mode's distinct coordinates."""
        out = []
        for a, root, e in zip(self.trans, self.roots, self.innov):
            _, states = scan_affine(a, root @ e)
            out.append(states[:, 0, :])
        return out

    def prior(self) -> torch.Tensor:
        return sum((0.5 * e.pow(2).sum() for e in self.innov), torch.zeros(()))


def _predict(
    chains: _Chains, u: Sequence[torch.Tensor], idx: Sequence[torch.Tensor]
) -> torch.Tensor:
    rows = [uk[i] for uk, i in zip(u, idx)]
    if chains.core is None:
        out = rows[0]
        for r in rows[1:]:
            out = out * r
        return out.sum(1)
    letters = "abcdefghijklmnopqrstuvwxy"[: len(rows)]
    expr = letters + "," + ",".join("z" + c for c in letters) + "->z"
    return torch.einsum(expr, chains.core, *rows)


def _posterior(
    p: Problem, chains: _Chains, tau: float, o: _Options, fixed: float | None
) -> FunctionalTensor:
    """The model of the MAP point: ``sweeps`` undamped EP epochs started at it.

    The MAP point has no covariances. One sweep of exact block updates -- each mode's posterior
    given the others, by the Kalman/RTS smoother of its entries' pseudo-observations, then the
    core's, then the noise -- gives them; the blocks updated later see the earlier blocks'
    uncertainty, as in EP. A second sweep lets every block see every other's (without it, a
    mode with fewer coordinates than latent functions keeps prior-sized variances in directions
    the data do not determine, and the intervals come out far too wide).
    """
    with torch.no_grad():
        u = [v.to(F64) for v in chains.values()]
    dev = p.y.device
    zero = [torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=F64, device=dev) for x in u]
    st = State(
        [z.clone() for z in zero],
        [torch.zeros_like(x) for x in u],
        u,
        zero,
        tau=tau,
        fresh={f"mode{k}" for k in range(p.ndim)} | {"core", "tau"},
    )
    if chains.core is not None:
        size = p.core_size
        st.core_mean = chains.core.detach().to(F64)
        st.core_cov = torch.zeros(size, size, dtype=F64, device=dev)
        st.core_prec = torch.zeros(size, size, dtype=F64, device=dev)
        st.core_info = torch.zeros(size, dtype=F64, device=dev)
    return ep_sweeps(p, st, o.sweeps, o.core_var, o.prior, fixed)


@no_autocast
def funbat_map(
    tensor: ContinuousData,
    rank: int | Sequence[int],
    *,
    structure: Structure = "tucker",
    kernel: Matern | Sequence[Matern] | None = None,
    validation: ContinuousData | None = None,
    max_iter: int = 200,
    tol: float = 1e-6,
    patience: int = 10,
    optimizer: Literal["lbfgs", "adam"] = "lbfgs",
    batch_size: int | None = None,
    lr: float = 0.02,
    noise_prior: tuple[float, float] = (1e-3, 1e-3),
    noise_variance: float | None = None,
    core_variance: float = 1.0,
    init_noise: float = 0.01,
    posterior_sweeps: int = 2,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> FunctionalResult:
    """MAP fit of the FunBaT model by Adam on mini-batches (GPU-ready).

    Args:
        tensor: the training entries (:class:`ContinuousData`), standardised preferably.
        rank: latent functions per mode (an int, or one per mode for Tucker).
        structure: ``"tucker"`` or ``"cp"``.
        kernel: Matérn prior(s) (default ``Matern(1.5)``, lengthscale a tenth of each range).
        validation: held-out entries for the best-epoch model and early stopping (each epoch
            then builds the model: ``K`` smoother passes).
        max_iter: epochs (passes over the training entries).
        tol: stop when the relative change of the objective over an epoch is below ``tol``.
        patience: epochs without validation improvement before stopping.
        optimizer: ``"lbfgs"`` (full batch, 20 L-BFGS iterations with a strong-Wolfe line
            search per epoch: fast convergence on data that fit in memory) or ``"adam"``
            (mini-batches, for large data and GPUs).
        batch_size: entries per Adam step (default: all, one step per epoch).
        lr: Adam's learning rate.
        noise_prior: ``(a_0, b_0)`` of the Gamma prior on the noise precision (model units,
            see :func:`funbat`).
        noise_variance: fix the noise variance (data units) instead of updating it.
        core_variance: prior variance of the core entries (Tucker).
        init_noise: initial noise variance as a fraction of the data's mean square.
        posterior_sweeps: undamped EP epochs run from the MAP point to give the model its
            covariances (see the module docstring).
        generator: random source of the initial innovations and of the batch order.
        callback: called after each epoch with a
            :class:`~factorch.completion.CompletionState`; True stops.

    Returns:
        :class:`FunctionalResult` (``method="map"``); the model is built from the final (or the
        best validation) point as described in the module docstring.

    Raises:
        TypeError, ValueError: as :func:`funbat`; a bad ``batch_size`` or ``lr``.

    Optimises in the data's working dtype (float32 for half precision) on its device with
    autocast disabled; the data are detached. The model's posterior is computed in float64.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(15, generator=g, dtype=torch.float64)
        >>> z = torch.rand(12, generator=g, dtype=torch.float64)
        >>> grid = torch.sin(6 * x)[:, None] * torch.cos(4 * z)[None, :]
        >>> data = ContinuousData.from_grid(grid, [x, z])
        >>> fit = funbat_map(data, 1, structure="cp", max_iter=10, generator=g)
        >>> fit.train_rmse[-1] < 0.05
        True
    """
    fn = "funbat_map"
    tensor, validation, max_iter, tol, patience = check_common(
        tensor, structure, validation, max_iter, tol, patience, generator, fn
    )
    _, prior, fixed_var, core_var, _ = check_floats(
        0.0, noise_prior, noise_variance, core_variance, 1.0, fn
    )
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"{fn}: optimizer must be 'lbfgs' or 'adam'; got {optimizer!r}.")
    if batch_size is not None and optimizer == "lbfgs":
        raise ValueError(
            f"{fn}: batch_size needs optimizer='adam' (L-BFGS runs on all entries at once)."
        )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"{fn}: batch_size must be a positive int or None; got {batch_size!r}.")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
        raise ValueError(f"{fn}: lr must be a positive finite number; got {lr!r}.")
    if (
        isinstance(init_noise, bool)
        or not isinstance(init_noise, int | float)
        or not (0 < init_noise < math.inf)
    ):
        raise ValueError(f"{fn}: init_noise must be a positive finite number; got {init_noise!r}.")
    sweeps = posterior_sweeps
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 1:
        raise ValueError(f"{fn}: posterior_sweeps must be a positive int; got {sweeps!r}.")
    p = prepare(tensor, rank, structure, kernel, fn)
    ms = float(p.y.pow(2).mean())
    fixed = None if fixed_var is None else p.scale**2 / fixed_var
    opts = _Options(
        max_iter, tol, patience, optimizer, batch_size, float(lr), prior, core_var, sweeps
    )
    tau0 = fixed if fixed is not None else 1.0 / (init_noise * ms or 1.0)
    return _fit(p, tensor, validation, opts, fixed, tau0, generator, callback)


@dataclass(frozen=True)
class _Options:
    max_iter: int
    tol: float
    patience: int
    optimizer: str
    batch_size: int | None
    lr: float
    prior: tuple[float, float]
    core_var: float
    sweeps: int


def _fit(
    p: Problem,
    tensor: ContinuousData,
    validation: ContinuousData | None,
    o: _Options,
    fixed: float | None,
    tau: float,
    generator: torch.Generator | None,
    callback: CompletionCallback | None,
) -> FunctionalResult:
    clock = Stopwatch()
    dtype = working_dtype(p.value_dtype)
    chains = _Chains(p, dtype, generator)
    adam = torch.optim.Adam(chains.parameters(), lr=o.lr)
    lbfgs = torch.optim.LBFGS(
        chains.parameters(),
        lr=1.0,
        max_iter=20,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    y = p.y.to(dtype)
    idx = [i for i in p.inverse]
    n = p.n
    bs = n if o.batch_size is None else min(o.batch_size, n)
    train: list[float] = []
    val: list[float] = []
    best, best_model, since, prev = math.inf, None, 0, math.inf
    converged = stopped = False
    finite = True
    epoch = 0
    sse = float(y.pow(2).sum())
    for epoch in range(1, o.max_iter + 1):
        if o.optimizer == "lbfgs":
            # False: the line search left the finite region (seen in float32 on flat losses);
            # the step was undone, and the point before it is the answer (not converged).
            finite = _lbfgs_epoch(lbfgs, chains, y, idx, tau, o.core_var)
        else:
            _adam_epoch(adam, chains, y, idx, tau, o.core_var, bs, generator)
        with torch.no_grad():
            u = chains.values()
            resid = y - _predict(chains, u, idx)
            sse = float(resid.to(F64).pow(2).sum())
            objective = 0.5 * tau * sse + float(chains.prior())
            if chains.core is not None:
                objective += 0.5 * float(chains.core.pow(2).sum()) / o.core_var
        train.append(p.scale * math.sqrt(sse / n))
        if fixed is None:
            tau = (o.prior[0] + 0.5 * n) / (o.prior[1] + 0.5 * sse)
        model = None
        if validation is not None or callback is not None:
            model = _posterior(p, chains, tau, o, fixed)
        if validation is not None and model is not None:
            val.append(model.predict(validation).rmse(validation.values))
            if val[-1] < best:
                best, best_model, since = val[-1], model, 0
            else:
                since += 1
        if callback is not None and model is not None:
            if callback(CompletionState(epoch, train[-1], val[-1] if val else math.nan, model)):
                break
        if not finite:
            break
        if abs(prev - objective) <= o.tol * max(abs(objective), 1e-300):
            converged = True
            break
        prev = objective
        if validation is not None and since >= o.patience:
            stopped = True
            break
    if best_model is None:
        best_model = _posterior(p, chains, tau, o, fixed)
    final = best_model
    best_epoch = (val.index(min(val)) + 1) if val else epoch
    train[best_epoch - 1] = final.predict(tensor).rmse(tensor.values)
    return FunctionalResult(
        final,
        tuple(train),
        tuple(val),
        best_epoch,
        epoch,
        converged,
        stopped,
        clock.elapsed,
        "map",
        {"noise_std": final.noise_std},
    )


def _loss(
    chains: _Chains,
    y: torch.Tensor,
    idx: Sequence[torch.Tensor],
    rows: slice | torch.Tensor,
    tau: float,
    core_var: float,
) -> torch.Tensor:
    """The MAP objective on the entries ``rows`` (scaled to all ``N`` entries), divided by N."""
    n = y.shape[0]
    u = chains.values()
    f = _predict(chains, u, [i[rows] for i in idx])
    loss = 0.5 * tau * (y[rows] - f).pow(2).sum() / f.shape[0] + chains.prior().to(y.dtype) / n
    if chains.core is not None:
        loss = loss + 0.5 * chains.core.pow(2).sum() / (core_var * n)
    return loss


def _adam_epoch(
    opt: torch.optim.Optimizer,
    chains: _Chains,
    y: torch.Tensor,
    idx: Sequence[torch.Tensor],
    tau: float,
    core_var: float,
    bs: int,
    generator: torch.Generator | None,
) -> None:
    n = y.shape[0]
    order = torch.randperm(n, generator=generator).to(y.device) if bs < n else None
    for start in range(0, n, bs):
        rows = slice(start, start + bs) if order is None else order[start : start + bs]
        opt.zero_grad(set_to_none=True)
        _loss(chains, y, idx, rows, tau, core_var).backward()
        opt.step()


def _lbfgs_epoch(
    opt: torch.optim.LBFGS,
    chains: _Chains,
    y: torch.Tensor,
    idx: Sequence[torch.Tensor],
    tau: float,
    core_var: float,
) -> bool:
    """One L-BFGS step; ``False`` (parameters restored) when it produced non-finite values."""

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = _loss(chains, y, idx, slice(None), tau, core_var)
        loss.backward()
        return loss

    params = list(chains.parameters())
    saved = [q.detach().clone() for q in params]
    opt.step(closure)
    if all(bool(torch.isfinite(q).all()) for q in params):
        return True
    with torch.no_grad():
        for q, v in zip(params, saved):
            q.copy_(v)
    opt.state.clear()
    return False
