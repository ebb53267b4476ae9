"""Row-wise regularised least squares over observed entries (the inner step of completion ALS).

With every other parameter fixed, each observed entry ``p`` in slice ``i`` of mode ``n`` gives
one linear equation ``x_p ~= h_p^T u_i`` in the row ``u_i`` (CP: a factor row and
``h_p = *_{m != n} A_m[i_m(p)]``; Tucker: ``h_p = G_(n) kron_{m != n} A_m[i_m(p)]``; TT: the slice
``G_n[:, i, :]`` and ``h_p = l_p kron r_p``). Each row solves its own normal equations

    (sum_{p in slice i} h_p h_p^T + l2 I) u_i = sum_{p in slice i} x_p h_p,

(Tomasi and Bro 2005; Acar et al. 2011; the row-wise updates of P-Tucker, Oh et al. ICDE 2018).
The per-row Grams are accumulated in chunks of the entries sorted by mode ``n`` (the solver's
:class:`~factorch.algebra.SparseLayout`): upper triangles of the outer products are
formed for a chunk and summed per row by ``embedding_bag`` (a fused segment sum), then all rows
are solved at once by batched Cholesky. A row whose system is singular (no observed entry and
``l2 = 0``, or fewer entries than unknowns) gets the minimum-norm least-squares solution from a
pseudo-inverse, so an all-missing slice gets a zero row, never NaN.

Cost: ``P (P + 3) / 2`` multiply-adds per entry for ``P`` unknowns per row, plus ``I_n P^3 / 3``
for the solves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..algebra.internal import ModeLayout

__all__ = ["solve_rows"]

_CHUNK_ELEMENTS = 2**20


def solve_rows(
    lay: ModeLayout,
    n_rows: int,
    n_unknowns: int,
    features: Callable[[int, int], torch.Tensor],
    l2: float,
    values: torch.Tensor | None = None,
) -> torch.Tensor:
    """Solve every row's normal equations; ``features(s, e)`` returns ``h_p`` for the layout
    positions ``s:e`` as an ``(e - s, P)`` tensor. Returns ``(n_rows, P)``."""
    vals = lay.values if values is None else values
    nnz = vals.shape[0]
    p = n_unknowns
    dtype, device = vals.dtype, vals.device
    iu = torch.triu_indices(p, p, device=device)
    n_tri = iu.shape[1]
    grams = torch.zeros(n_rows, n_tri, dtype=dtype, device=device)
    rhs = torch.zeros(n_rows, p, dtype=dtype, device=device)
    chunk = max(64, _CHUNK_ELEMENTS // (n_tri + p))
    chunk = min(chunk, max(nnz, 1))
    bag = torch.arange(chunk, device=device)
    ones = torch.ones(chunk, dtype=dtype, device=device)
    starts = list(range(0, nnz, chunk))
    ends = [min(nnz, s + chunk) for s in starts]
    if starts:
        first = lay.rows[torch.tensor(starts, device=device)].tolist()
        last = lay.rows[torch.tensor(ends, device=device) - 1].tolist()
    else:
        first, last = [], []
    for s, e, r0, r1 in zip(starts, ends, first, last):
        n = e - s
        h = features(s, e)
        tri = h.index_select(1, iu[0]).mul_(h.index_select(1, iu[1]))
        offs = lay.offsets[r0 : r1 + 2].clamp(s, e) - s
        grams[r0 : r1 + 1] += F.embedding_bag(
            bag[:n], tri, offs, mode="sum", per_sample_weights=ones[:n], include_last_offset=True
        )
        rhs[r0 : r1 + 1] += F.embedding_bag(
            bag[:n], h, offs, mode="sum", per_sample_weights=vals[s:e], include_last_offset=True
        )
    full = torch.zeros(n_rows, p, p, dtype=dtype, device=device)
    full[:, iu[0], iu[1]] = grams
    full[:, iu[1], iu[0]] = grams
    return solve_batched(full, rhs, l2)


def solve_batched(gram: torch.Tensor, rhs: torch.Tensor, l2: float) -> torch.Tensor:
    """Solve ``(G_i + l2 I) u_i = b_i`` for every ``i`` (Cholesky; pseudo-inverse for the rows
    whose system is numerically singular)."""
    p = gram.shape[-1]
    if l2:
        gram = gram + l2 * torch.eye(p, dtype=gram.dtype, device=gram.device)
    chol, info = torch.linalg.cholesky_ex(gram)
    diag = chol.diagonal(dim1=-2, dim2=-1).abs()
    eps = torch.finfo(gram.dtype).eps
    bad = (info != 0) | ~(diag.amin(-1) > diag.amax(-1) * eps**0.5)
    bad |= ~torch.isfinite(diag).all(-1)
    out = torch.empty_like(rhs)
    good = ~bad
    if bool(good.any()):
        out[good] = torch.cholesky_solve(rhs[good].unsqueeze(-1), chol[good]).squeeze(-1)
    if bool(bad.any()):
        pinv = torch.linalg.pinv(gram[bad], hermitian=True)
        out[bad] = (pinv @ rhs[bad].unsqueeze(-1)).squeeze(-1)
    return out
