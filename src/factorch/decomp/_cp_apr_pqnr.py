"""PQN-R: projected quasi-Newton on the CP-APR row subproblems (internal).

Hansen, Plantenga & Kolda (2015), the limited-memory counterpart of PDN-R: every row of the
mode's factor keeps its own L-BFGS memory (the last ``memory`` pairs ``s = b_new - b_old``,
``y = g_new - g_old``), and its search direction is the two-loop recursion applied to the
gradient over the free variables (Bertsekas' epsilon-active set held at zero), followed by the
same projected backtracking line search as PDN-R. A row's first step is a projected gradient
step, which also gives the first pair. No ``R x R`` Hessian is formed or solved: an iteration
costs one gradient (one segment sum over the row's entries) plus the line search, against
PDN-R's Hessian build and solve.

All rows of a mode take their step together: the memories are ``(memory, rows, R)`` tensors,
newest pair first, and a row whose pair is rejected (``s . y <= 0``: curvature not positive,
which the convex subproblem only gives in round-off) keeps its old memory.
"""

from __future__ import annotations

import torch

from ._cp_apr_rows import Rows, SparseRows, line_search

__all__: list[str] = []


class _Memory:
    """Per-row L-BFGS pairs, newest first: ``s``, ``y`` ``(m, k, R)`` and ``rho = 1 / s.y``
    ``(m, k)`` (zero in an empty slot, which then takes no part in the recursion)."""

    def __init__(self, memory: int, k: int, rank: int, like: torch.Tensor) -> None:
        self.s = like.new_zeros(memory, k, rank)
        self.y = like.new_zeros(memory, k, rank)
        self.rho = like.new_zeros(memory, k)

    def push(self, s: torch.Tensor, y: torch.Tensor, accept: torch.Tensor) -> None:
        """Add the pair ``(s, y)`` of the rows ``accept`` where its curvature ``s . y`` is
        positive (the oldest pair drops out)."""
        sy = (s * y).sum(1)
        ok = accept & (sy > 0) & torch.isfinite(sy)
        if not bool(ok.any()):
            return
        rho = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), 0.0)
        keep = ok[None, :, None]
        self.s = torch.where(keep, torch.cat((s[None], self.s[:-1])), self.s)
        self.y = torch.where(keep, torch.cat((y[None], self.y[:-1])), self.y)
        self.rho = torch.where(ok[None, :], torch.cat((rho[None], self.rho[:-1])), self.rho)

    def select(self, keep: torch.Tensor) -> None:
        self.s, self.y, self.rho = self.s[:, keep], self.y[:, keep], self.rho[:, keep]

    def direction(self, grad: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The two-loop recursion ``-H g`` on the free variables (zero on the fixed ones),
        ``H_0 = (s.y / y.y) I`` from the newest pair (the identity for a row without one)."""
        d = torch.where(fixed, 0.0, -grad)
        alphas = []
        for j in range(self.s.shape[0]):
            a = self.rho[j] * (self.s[j] * d).sum(1)
            d = d - a[:, None] * self.y[j]
            alphas.append(a)
        yy = (self.y[0] * self.y[0]).sum(1)
        has = (self.rho[0] > 0) & (yy > 0)
        gamma = torch.where(has, 1.0 / torch.where(has, self.rho[0] * yy, 1.0), 1.0)
        d = d * gamma[:, None]
        for j in reversed(range(self.s.shape[0])):
            beta = self.rho[j] * (self.y[j] * d).sum(1)
            d = d + (alphas[j] - beta)[:, None] * self.s[j]
        return torch.where(fixed, 0.0, d)


def quasi_newton_rows(
    rows: Rows,
    b: torch.Tensor,
    *,
    max_inner: int,
    row_tol: float,
    memory: int,
    eps_active: float,
) -> tuple[torch.Tensor, float, bool, int]:
    """Projected L-BFGS on every row subproblem at once (PQN-R; Hansen, Plantenga & Kolda).

    Each row first takes a projected gradient step (line search along ``-g``), then runs up to
    ``max_inner`` iterations: stop when its KKT violation ``max |min(b, g)|`` is below
    ``row_tol``, else step along the L-BFGS direction over the free variables (those not at the
    bound with a positive gradient, Bertsekas' epsilon-active set), with the projected
    backtracking line search of PDN-R (falling back to the multiplicative update when it fails).
    Once half the rows have stopped, the rest continue on a compacted subproblem. Returns the new
    ``B``, the largest KKT violation at the first check (after the gradient step, as pyttb),
    whether every row was converged at that check, and the inner iterations run (summed over
    the rows, the gradient step not counted, as pyttb).
    """
    b = b.clone()
    b[rows.empty] = 0.0  # an empty row's optimum: f_i(b) = sum(b)
    idx = (~rows.empty).nonzero().squeeze(1)
    if idx.shape[0] == 0:
        return b, 0.0, True, 0
    sub = rows if idx.shape[0] == rows.n_rows else rows.restrict(idx)
    bs = b[idx]
    mem = _Memory(memory, idx.shape[0], bs.shape[1], bs)
    # Sparse rows: the model values at the current rows, kept through the line searches so a
    # gradient costs one segment sum (dense rows recompute them).
    phi, v = _phi(sub, bs, None)
    grad = 1.0 - phi
    everyone = torch.ones(idx.shape[0], dtype=torch.bool, device=b.device)
    new, _, _, f_cur, v = line_search(sub, bs, -grad, grad, phi, everyone, v_old=v)
    phi, v = _phi(sub, new, v)
    mem.push(new - bs, (1.0 - phi) - grad, everyone)
    bs, grad = new, 1.0 - phi
    first_kkt, all_done, count = 0.0, True, 0
    for it in range(max_inner):
        kkt = torch.minimum(bs, grad).abs().amax(1)
        if it == 0:
            first_kkt = float(kkt.max())
        act = kkt >= row_tol
        n_act = int(act.sum())
        if n_act == 0:
            break
        all_done = False
        if n_act <= idx.shape[0] // 2:  # compact: continue on the unconverged rows only
            b[idx] = bs
            keep = act.nonzero().squeeze(1)
            idx, sub, bs = idx[keep], sub.restrict(keep), bs[keep]
            phi, grad, act, f_cur = phi[keep], grad[keep], act[keep], f_cur[keep]
            mem.select(keep)
            v = sub.model(bs) if isinstance(sub, SparseRows) else None
        count += n_act
        proj = (bs - grad).clamp_min(0.0)
        wk = torch.linalg.vector_norm(bs - proj, dim=1, keepdim=True)
        fixed = (bs <= torch.clamp(wk, max=eps_active)) & (grad > 0)
        step = mem.direction(grad, fixed)
        bad = ((step * grad).sum(1) >= 0) | ~torch.isfinite(step).all(1)
        step = torch.where(bad[:, None], torch.where(fixed, 0.0, -grad), step)
        new, _, _, f_cur, v = line_search(sub, bs, step, grad, phi, act, f_old=f_cur, v_old=v)
        phi, v = _phi(sub, new, v)
        new_grad = 1.0 - phi
        mem.push(new - bs, new_grad - grad, act)
        bs, grad = new, new_grad
    b[idx] = bs
    return b, first_kkt, all_done, count


def _phi(
    rows: Rows, b: torch.Tensor, v: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``phi`` at ``b`` and, for sparse rows, the model values it used (``v`` when given)."""
    if isinstance(rows, SparseRows):
        if v is None:
            v = rows.model(b)
        return rows.phi_at(v), v
    return rows.phi(b), None
