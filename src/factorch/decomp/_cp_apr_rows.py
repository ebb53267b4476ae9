"""The row subproblems of CP-APR for one mode, on sparse or dense data (internal).

With every factor except ``B = A_n diag(lambda)`` fixed and column-stochastic, the Poisson
negative log-likelihood splits into one problem per row ``i`` of the mode-``n`` unfolding:

    f_i(b) = sum_r b_r - sum_j x_ij log(b . pi_j),

``pi_j`` the rows of ``Pi``, the Khatri--Rao product of the other factors (its columns sum to
one, so the linear term is ``sum_r b_r``). Only the entries with ``x_ij > 0`` enter the log term,
the gradient ``1 - phi`` with ``phi_r = sum_j x_ij pi_jr / (b . pi_j)``, and the Hessian
``sum_j x_ij / (b . pi_j)^2 pi_j pi_j^T``. Both structures below compute these for every row at
once: :class:`SparseRows` over the listed entries (sorted by the mode's index, so each row is a
contiguous segment reduced by ``embedding_bag``), :class:`DenseRows` over the unfolding with
GEMMs. ``Pi`` is built once per mode visit and reused by every inner iteration, as pyttb does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..algebra.internal import khatri_rao as _khatri_rao

__all__: list[str] = []


class Workspace:
    """Buffers reused by every mode visit: fresh large temporaries cost page faults on every
    allocation (measured: a 1e6 x 10 float64 product takes ~8x longer into a new tensor than
    into a reused one on the CPU)."""

    def __init__(
        self,
        n: int,
        rank: int,
        dtype: torch.dtype,
        device: torch.device,
        *,
        gather_only: bool = False,
    ) -> None:
        self.gather = torch.empty(n, rank, dtype=dtype, device=device)
        self._pairs: torch.Tensor | None = None
        self._reuse = not gather_only
        if not gather_only:
            self.pi = torch.empty(n, rank, dtype=dtype, device=device)
            self.tmp = torch.empty(n, rank, dtype=dtype, device=device)

    def pairs(self, n_pairs: int) -> torch.Tensor | None:
        """The reused ``n x n_pairs`` buffer of pair products (None for a compacted subproblem,
        whose copy is made by :meth:`SparseRows.restrict`)."""
        if not self._reuse:
            return None
        if self._pairs is None:
            n = self.gather.shape[0]
            self._pairs = torch.empty(
                n, n_pairs, dtype=self.gather.dtype, device=self.gather.device
            )
        return self._pairs


_PAIRS_LIMIT = 2**25  # entries of the precomputed pair products pi_r pi_s (256 MiB in float64)


def _triu(rank: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    iu = torch.triu_indices(rank, rank, device=device)
    return iu[0], iu[1]


def _pair_products(pi: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``pi_r * pi_s`` for ``r <= s`` (row-major upper triangle), column block by column block
    (basic slicing: an advanced-index gather of the columns was 2.5x slower), into ``out`` when
    given (a reused buffer: a fresh one costs as much again in page faults)."""
    rank = pi.shape[1]
    if out is None:
        out = torch.empty(pi.shape[0], rank * (rank + 1) // 2, dtype=pi.dtype, device=pi.device)
    start = 0
    for r in range(rank):
        width = rank - r
        torch.mul(pi[:, r : r + 1], pi[:, r:], out=out[:, start : start + width])
        start += width
    return out


def _symmetric(upper: torch.Tensor, rank: int) -> torch.Tensor:
    """``(k, R(R+1)/2)`` upper-triangle entries -> ``(k, R, R)`` symmetric matrices."""
    i, j = _triu(rank, upper.device)
    out = upper.new_zeros(upper.shape[0], rank, rank)
    out[:, i, j] = upper
    out[:, j, i] = upper
    return out


class SparseRows:
    """Row subproblems of one mode on the listed entries (sorted by the mode's index)."""

    def __init__(
        self,
        rows: torch.Tensor,
        offsets: torch.Tensor,
        values: torch.Tensor,
        pi: torch.Tensor,
        eps: float,
        work: Workspace,
    ) -> None:
        self.rows, self.offsets, self.x, self.pi, self.eps, self.work = (
            rows, offsets, values, pi, eps, work,
        )  # fmt: skip
        self.n_rows = offsets.shape[0] - 1
        self.bag = torch.arange(values.shape[0], device=values.device)
        self.empty = offsets[1:] == offsets[:-1]
        self._pairs: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        rows: torch.Tensor,
        offsets: torch.Tensor,
        values: torch.Tensor,
        others: list[torch.Tensor],
        factors: list[torch.Tensor],
        eps: float,
        work: Workspace,
    ) -> SparseRows:
        """``Pi`` at the entries: the product of the other factors' rows (reused buffer)."""
        pi = torch.index_select(factors[0], 0, others[0], out=work.pi)
        for f, idx in zip(factors[1:], others[1:]):
            pi.mul_(torch.index_select(f, 0, idx, out=work.tmp))
        return cls(rows, offsets, values, pi, eps, work)

    def restrict(self, keep: torch.Tensor) -> SparseRows:
        """The subproblems of rows ``keep`` only (renumbered ``0 .. len(keep) - 1``)."""
        counts = self.offsets[keep + 1] - self.offsets[keep]
        offsets = torch.zeros(keep.shape[0] + 1, dtype=torch.int64, device=keep.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        total = int(offsets[-1])
        shift = torch.repeat_interleave(self.offsets[keep] - offsets[:-1], counts)
        pos = shift + torch.arange(total, device=keep.device)
        rows = torch.repeat_interleave(torch.arange(keep.shape[0], device=keep.device), counts)
        work = Workspace(total, self.pi.shape[1], self.pi.dtype, self.pi.device, gather_only=True)
        out = SparseRows(rows, offsets, self.x[pos], self.pi[pos], self.eps, work)
        if self._pairs is not None:
            out._pairs = self._pairs[pos]
        return out

    def _segment_sum(self, table: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``out[i] = sum_{p in row i} weights[p] table[p]`` (``I x R``)."""
        return F.embedding_bag(
            self.bag, table, self.offsets, mode="sum", per_sample_weights=weights,
            include_last_offset=True,
        )  # fmt: skip

    def model(self, b: torch.Tensor) -> torch.Tensor:
        """``b[i_p] . pi_p`` at every listed entry (a batched dot: no ``nnz x R`` product)."""
        rows_b = torch.index_select(b, 0, self.rows, out=self.work.gather)
        return torch.einsum("pr,pr->p", rows_b, self.pi)

    def phi(self, b: torch.Tensor) -> torch.Tensor:
        return self.phi_at(self.model(b))

    def phi_at(self, v: torch.Tensor) -> torch.Tensor:
        """``phi`` from the model values ``v = model(b)`` (already computed by a line search)."""
        return self._segment_sum(self.pi, self.x / v.clamp_min(self.eps))

    def partials(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi`` (``I x R``) and the Hessians (``I x R x R``).

        The Hessian sums ``ups_p pi_p pi_p^T`` per row: the upper triangle of the pair
        products is formed once per mode visit (when it fits in ``_PAIRS_LIMIT`` entries) and
        reduced by one weighted segment sum per call; otherwise one segment sum per column.
        """
        v = self.model(b)
        phi = self._segment_sum(self.pi, self.x / v.clamp_min(self.eps))
        ups = self.x / (v * v).clamp_min(self.eps)
        rank = b.shape[1]
        n_pairs = rank * (rank + 1) // 2
        if self._pairs is None and self.x.shape[0] * n_pairs <= _PAIRS_LIMIT:
            self._pairs = _pair_products(self.pi, self.work.pairs(n_pairs))
        if self._pairs is not None:
            return phi, _symmetric(self._segment_sum(self._pairs, ups), rank)
        cols = []
        tmp = torch.empty_like(self.pi)
        for r in range(rank):
            torch.mul(self.pi, self.pi[:, r : r + 1], out=tmp)
            cols.append(self._segment_sum(tmp, ups))
        return phi, torch.stack(cols, 1)

    def row_log(self, b: torch.Tensor) -> torch.Tensor:
        """``sum_p x_p log(b[i_p] . pi_p)`` per row, in float64 (-inf where a model value is 0)."""
        return self.row_log_at(self.model(b))

    def row_log_at(self, v: torch.Tensor) -> torch.Tensor:
        """:meth:`row_log` from the model values ``v = model(b)``."""
        terms = self.x.double() * torch.log(v.double())
        out = torch.zeros(self.n_rows, dtype=torch.float64, device=v.device)
        return out.index_add_(0, self.rows, terms)


class DenseRows:
    """Row subproblems of one mode on the dense unfolding ``X_(n)``."""

    def __init__(self, x: torch.Tensor, pi: torch.Tensor, eps: float, work: torch.Tensor) -> None:
        self.x, self.pi, self.eps = x, pi, eps
        self.n_rows = x.shape[0]
        self.buffer = work
        self.work = work[: x.numel()].view(x.shape)
        self.positive = x > 0
        self.empty = ~self.positive.any(1)
        self._pairs: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        tensor: torch.Tensor,
        mode: int,
        factors: list[torch.Tensor],
        eps: float,
        unfolded: torch.Tensor,
        work: torch.Tensor,
    ) -> DenseRows:
        """The unfolding (copied into a reused buffer) and the Khatri--Rao product ``Pi``."""
        moved = tensor.movedim(mode, 0)
        x = unfolded.view(moved.shape)
        x.copy_(moved)
        pi = _khatri_rao([f for m, f in enumerate(factors) if m != mode])
        return cls(x.view(tensor.shape[mode], -1), pi, eps, work)

    def restrict(self, keep: torch.Tensor) -> DenseRows:
        out = DenseRows(self.x[keep], self.pi, self.eps, self.buffer)
        out._pairs = self._pairs
        return out

    def _ratio(self, b: torch.Tensor, squared: bool = False) -> torch.Tensor:
        """``X_(n) / max(B Pi^T, eps)`` (or over ``(B Pi^T)^2``), in the reused buffer."""
        v = torch.matmul(b, self.pi.T, out=self.work)
        if squared:
            v.mul_(v)
        return torch.div(self.x, v.clamp_min_(self.eps), out=v)

    def phi(self, b: torch.Tensor) -> torch.Tensor:
        return self._ratio(b) @ self.pi

    def partials(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.phi(b)
        rank = b.shape[1]
        if self._pairs is None:
            self._pairs = _pair_products(self.pi)
        return phi, _symmetric(self._ratio(b, squared=True) @ self._pairs, rank)

    def row_log(self, b: torch.Tensor) -> torch.Tensor:
        v = torch.matmul(b, self.pi.T, out=self.work).double()
        logs = torch.where(self.positive, torch.log(v), torch.zeros((), dtype=v.dtype))
        return (self.x.double() * logs).sum(1)


Rows = SparseRows | DenseRows


def newton_rows(
    rows: Rows,
    b: torch.Tensor,
    *,
    max_inner: int,
    row_tol: float,
    mu0: float,
    eps_active: float,
) -> tuple[torch.Tensor, float, bool, int]:
    """Projected damped Newton on every row subproblem at once (PDN-R; Hansen, Plantenga & Kolda).

    Each row runs up to ``max_inner`` iterations: free variables (not at the bound with a
    positive gradient, Bertsekas' epsilon-active set) take the damped Newton step
    ``-(H_FF + mu I)^{-1} g_F``, bound ones a gradient step; a projected backtracking line search
    (steps 1, 1/2, ..., 10 tries, sufficient decrease 1e-4) accepts the new row, falling back to
    the multiplicative update when it fails; the damping ``mu`` adapts to the ratio of actual and
    predicted reduction. A row stops when its KKT violation ``max |min(b, g)|`` is below
    ``row_tol``; once half the rows have stopped, the rest continue on a compacted subproblem
    (their entries only). Returns the new ``B``, the largest initial KKT violation, whether every
    row was already converged at its first check, and the inner iterations run (summed over the
    rows, as pyttb counts them).
    """
    dtype, device = b.dtype, b.device
    b = b.clone()
    b[rows.empty] = 0.0  # an empty row's optimum: f_i(b) = sum(b)
    idx = (~rows.empty).nonzero().squeeze(1)
    sub = rows if idx.shape[0] == rows.n_rows else rows.restrict(idx)
    bs = b[idx]
    mu = torch.full((idx.shape[0],), mu0, dtype=dtype, device=device)
    zero = torch.zeros((), dtype=dtype, device=device)
    first_kkt, all_done, count = 0.0, True, 0
    for it in range(max_inner):
        if idx.shape[0] == 0:
            break
        phi, hess = sub.partials(bs)
        grad = 1.0 - phi
        kkt = torch.minimum(bs, grad).abs().amax(1)
        if it == 0:
            first_kkt = float(kkt.max())
        act = kkt >= row_tol
        n_act = int(act.sum())
        if n_act == 0:
            break
        all_done = all_done and it > 0
        if n_act <= idx.shape[0] // 2:  # compact: continue on the unconverged rows only
            b[idx] = bs
            keep = act.nonzero().squeeze(1)
            idx, sub, bs, mu = idx[keep], sub.restrict(keep), bs[keep], mu[keep]
            phi, hess, grad, act = phi[keep], hess[keep], grad[keep], act[keep]
        count += n_act
        rank = bs.shape[1]
        proj = (bs - grad).clamp_min(0.0)
        wk = torch.linalg.vector_norm(bs - proj, dim=1, keepdim=True)
        bound = (bs <= torch.clamp(wk, max=eps_active)) & (grad > 0)
        free = ~bound
        eye = torch.eye(rank, dtype=dtype, device=device)
        damped = torch.where(
            free[:, :, None] & free[:, None, :], hess + mu[:, None, None] * eye, eye
        )
        step, info = torch.linalg.solve_ex(damped, torch.where(free, -grad, zero).unsqueeze(-1))
        step = step.squeeze(-1)
        step = torch.where(bound, torch.where(bs != 0, -grad, zero), step)
        quad = (step * (damped @ step.unsqueeze(-1)).squeeze(-1) * free).sum(1)
        pred = (step * grad * free).sum(1) + 0.5 * quad
        bad = (info != 0) | (pred > 0) | ~torch.isfinite(step).all(1)
        step = torch.where(bad[:, None], -grad, step)
        bs, f_old, f_unit, _, _ = line_search(sub, bs, step, grad, phi, act)
        rho = (f_old - f_unit) / (-pred.double())
        scale = torch.where(
            pred == 0,
            10.0,
            torch.where(rho < 0.25, 3.5, torch.where(rho > 0.75, 2.0 / 7.0, 1.0)),
        ).to(dtype)
        mu = torch.where(act, mu * scale, mu)
    b[idx] = bs
    return b, first_kkt, all_done, count


def _row_objective(rows: Rows, b: torch.Tensor) -> torch.Tensor:
    """``f_i(b_i) = sum_r b_ir - sum_j x_ij log(b_i . pi_j)`` per row, float64."""
    return b.double().sum(1) - rows.row_log(b)


def line_search(
    rows: Rows,
    b: torch.Tensor,
    step: torch.Tensor,
    grad: torch.Tensor,
    phi: torch.Tensor,
    active: torch.Tensor,
    *,
    f_old: torch.Tensor | None = None,
    v_old: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Projected backtracking along ``step`` for the ``active`` rows (others unchanged).

    ``f_old``, when given, is the objective at ``b`` (from the previous call's output), saving
    one evaluation. Returns the new rows, the objective before, the objective at the unit step
    (the old value where the unit step was infeasible) and the objective at the new rows, all
    float64 per row; and, on sparse rows given ``v_old = model(b)``, the model values at the new
    rows (kept from the accepted trials, so the caller's next gradient needs no new model
    evaluation), else None.
    """
    keep = isinstance(rows, SparseRows) and v_old is not None
    if f_old is None:
        f_old = _row_objective(rows, b)
    f_unit = f_old.clone()
    f_out = f_old.clone()
    v_out = v_old
    new = b.clone()
    pending = active.clone()
    size = 1.0
    g64 = grad.double()
    for count in range(10):
        trial = (b + size * step).clamp_min(0.0)
        gdotd = ((trial - b).double() * g64).sum(1)
        feasible = (gdotd <= 0) & (trial.double().sum(1) >= 1e-7)
        if keep and isinstance(rows, SparseRows):
            v = rows.model(trial)
            f_trial = trial.double().sum(1) - rows.row_log_at(v)
        else:
            f_trial = _row_objective(rows, trial)
        f_new = torch.where(feasible, f_trial, torch.inf)
        if count == 0:
            f_unit = torch.where(feasible & active, f_new, f_old)
        ok = pending & feasible & (f_new <= f_old + 1e-4 * gdotd)
        new = torch.where(ok[:, None], trial, new)
        f_out = torch.where(ok, f_new, f_out)
        if keep and isinstance(rows, SparseRows) and v_out is not None:
            v_out = torch.where(ok[rows.rows], v, v_out)
        pending = pending & ~ok
        if not bool(pending.any()):
            break
        size *= 0.5
    if bool(pending.any()):  # line search failed: the multiplicative update never increases f
        new = torch.where(pending[:, None], b * phi, new)
        f_out = torch.where(pending, _row_objective(rows, new), f_out)
        v_out = None
    return new, f_old, f_unit, f_out, (v_out if keep else None)
