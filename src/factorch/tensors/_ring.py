"""Contraction sweeps over chains of 3-D cores, shared by TT, TR and TT-matrix tensors.

A chain of cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})`` with ``r_N = r_0`` represents

    X[i_0, ..., i_{N-1}] = trace(G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]),

the tensor ring (TR) format; the tensor train (TT) is the case ``r_0 = r_N = 1``, where the trace
is the single entry. Every routine below handles the general ring, costs a small multiple of the
core sizes (never the dense size, except ``chain`` and ``unfold`` which build dense results) and
is differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._base import normalised, scaled_sqrt, times_power_of_two

__all__ = [
    "chain",
    "contract_vector",
    "dense_inner",
    "entries",
    "mode_dot_core",
    "ring_to_dense",
    "transfer_inner",
    "transfer_inner_scaled",
    "transfer_norm",
    "unfold",
]


def chain(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Merge consecutive cores into one ``(r_first, prod I, r_last)`` core (row-major index)."""
    first = cores[0]
    r0 = first.shape[0]
    out = first.reshape(-1, first.shape[2])
    for g in cores[1:]:
        out = (out @ g.reshape(g.shape[0], -1)).reshape(-1, g.shape[2])
    return out.reshape(r0, -1, out.shape[-1])


def ring_to_dense(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """The represented tensor, flattened (length ``prod I``).

    The first ``N - 1`` cores are merged into ``(r_0, prod_{k<N-1} I_k, r_{N-1})`` and the ring is
    closed against the last core, ``X[p, i] = sum_{a,b} L[a, p, b] G_{N-1}[b, i, a]``, so the
    largest intermediate is ``r_0 r_{N-1} prod_{k<N-1} I_k`` rather than ``r_0^2 prod I``.
    """
    last = cores[-1]
    if len(cores) == 1:
        return torch.diagonal(last, dim1=0, dim2=2).sum(-1)
    left = chain(cores[:-1])
    return torch.einsum("apb,bia->pi", left, last).reshape(-1)


def transfer_inner_scaled(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, int]:
    """``<A, B> = sum conj(A) B = mantissa * 2**exponent`` for two rings with the same mode sizes.

    Transfer-matrix sweep: the state ``M[p, q, a, c]`` (``p, a`` ranks of ``A``, ``q, c`` of
    ``B``) starts as the identity and absorbs one pair of cores at a time,
    ``M <- sum_{a,c,i} M[p,q,a,c] conj(A_k[a,i,b]) B_k[c,i,d]``; the result is
    ``sum_{p,q} M[p,q,p,q]``. Cost ``O(sum_k r_0 s_0 (r_k s_k I_k (r_{k+1} + s_{k+1})))``.

    Every core is divided by a power of two first and the state is renormalised after each step
    (exact scalings whose exponents are summed as integers), so cores with entries near ``1e200``
    or ``1e-200`` -- whose products over- or underflow -- give the true result.
    """
    ra, rb = a[0].shape[0], b[0].shape[0]
    dev, dt = a[0].device, a[0].dtype
    state = torch.einsum(
        "pa,qc->pqac",
        torch.eye(ra, device=dev, dtype=dt),
        torch.eye(rb, device=dev, dtype=dt),
    )
    exponent = 0
    for ga, gb in zip(a, b):
        ga, ea = normalised(ga)
        gb, eb = normalised(gb)
        tmp = torch.einsum("pqac,cid->pqaid", state, gb)
        state, es = normalised(torch.einsum("pqaid,aib->pqbd", tmp, ga.conj()))
        exponent += ea + eb + es
    return torch.einsum("pqpq->", state), exponent


def transfer_inner(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """``<A, B>`` by :func:`transfer_inner_scaled` (``inf`` only when the result itself is)."""
    mantissa, exponent = transfer_inner_scaled(a, b)
    return times_power_of_two(mantissa, exponent)


def transfer_norm(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Frobenius norm of a ring, ``sqrt(<A, A>)`` without forming ``<A, A>`` (the squared norm of
    a representable tensor may overflow)."""
    return scaled_sqrt(*transfer_inner_scaled(cores, cores))


def dense_inner(cores: Sequence[torch.Tensor], dense: torch.Tensor) -> torch.Tensor:
    """``<A, X> = sum conj(A) X`` for a ring ``A`` and a dense tensor ``X`` of its shape.

    Sweeps the modes of ``X`` left to right, contracting each with one (conjugated) core: the
    intermediate after mode ``k`` is ``(r_0, r_{k+1}, prod_{m>k} I_m)``. Cores, data and the
    intermediate are scaled by powers of two as in :func:`transfer_inner_scaled`.
    """
    r0 = cores[0].shape[0]
    dense, exponent = normalised(dense)
    g0, e0 = normalised(cores[0])
    state, es = normalised(torch.einsum("aib,it->abt", g0.conj(), dense.reshape(g0.shape[1], -1)))
    exponent += e0 + es
    for g in cores[1:]:
        ra, size, _ = g.shape
        g, eg = normalised(g)
        state = torch.einsum("pait,aib->pbt", state.reshape(r0, ra, size, -1), g.conj())
        state, es = normalised(state)
        exponent += eg + es
    return times_power_of_two(torch.diagonal(state.reshape(r0, r0), 0).sum(), exponent)


def entries(cores: Sequence[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
    """Entries at ``indices`` (``(B, N)`` in-range longs): batched products of core slices."""
    mats = cores[0].permute(1, 0, 2)[indices[:, 0]]  # (B, r_0, r_1)
    for k in range(1, len(cores)):
        mats = torch.bmm(mats, cores[k].permute(1, 0, 2)[indices[:, k]])
    return torch.diagonal(mats, dim1=1, dim2=2).sum(-1)


def unfold(cores: Sequence[torch.Tensor], mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding (row-major column order) without a permuted copy of the tensor."""
    r0 = cores[0].shape[0]
    dev, dt = cores[0].device, cores[0].dtype
    eye = torch.eye(r0, device=dev, dtype=dt).reshape(r0, 1, r0)
    left = chain(cores[:mode]) if mode > 0 else eye
    right = chain(cores[mode + 1 :]) if mode < len(cores) - 1 else eye
    g = cores[mode]
    out = torch.einsum("pla,aib,brp->ilr", left, g, right)
    return out.reshape(g.shape[1], -1)


def mode_dot_core(core: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``core x_1 matrix`` on the physical (middle) index: ``(r, I, s), (J, I) -> (r, J, s)``."""
    return torch.einsum("aib,ji->ajb", core, matrix)


def contract_vector(
    cores: Sequence[torch.Tensor], vector: torch.Tensor, mode: int
) -> tuple[torch.Tensor, ...]:
    """Contract mode ``mode`` with ``vector`` and merge the resulting ``(r_k, r_{k+1})`` matrix
    into a neighbouring core (the next one, or the previous one for the last mode)."""
    mat = torch.einsum("aib,i->ab", cores[mode], vector)
    out = list(cores)
    if mode < len(cores) - 1:
        out[mode + 1] = torch.einsum("ab,bic->aic", mat, cores[mode + 1])
    else:
        out[mode - 1] = torch.einsum("aib,bc->aic", cores[mode - 1], mat)
    del out[mode]
    return tuple(out)
