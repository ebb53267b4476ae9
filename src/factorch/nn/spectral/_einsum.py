"""Evaluate an opt_einsum contraction path with batched GEMMs on contiguous operands.

``torch.einsum`` hands ``bmm`` permuted (non-contiguous) batches; for complex tensors the CPU
``bmm`` then copies every batch matrix separately (168 copies for a 12 x 7-mode spectral
contraction). :class:`Contraction` follows the pairwise order opt_einsum chose and runs each
pair as one ``bmm`` on operands laid out ``(batch, free, contracted)`` by a single copy each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import opt_einsum
import torch

__all__ = ["Contraction", "pair_einsum"]


class _ContiguousBmm(torch.autograd.Function):
    """``bmm`` whose backward GEMMs also get contiguous operands (autograd's own backward passes
    transposed views, which the complex CPU ``bmm`` copies one batch matrix at a time)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        g = grad.contiguous()
        ga = torch.bmm(g, b.mH.contiguous()) if ctx.needs_input_grad[0] else None
        gb = torch.bmm(a.mH.contiguous(), g) if ctx.needs_input_grad[1] else None
        return ga, gb


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_complex() and (a.requires_grad or b.requires_grad):
        return _ContiguousBmm.apply(a, b)
    return torch.bmm(a, b)


def pair_einsum(eq: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.einsum(eq, a, b)`` for ``"ab..,cd..->.."`` as one batched GEMM (no repeated
    index within an operand; those go to ``torch.einsum``)."""
    lhs, out = eq.split("->")
    sa, sb = lhs.split(",")
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb):
        return torch.einsum(eq, a, b)
    # Indices only one operand has and the output lacks are summed out first.
    drop_a = [i for i, c in enumerate(sa) if c not in sb and c not in out]
    if drop_a:
        a = a.sum(drop_a)
        sa = "".join(c for c in sa if c in sb or c in out)
    drop_b = [i for i, c in enumerate(sb) if c not in sa and c not in out]
    if drop_b:
        b = b.sum(drop_b)
        sb = "".join(c for c in sb if c in sa or c in out)
    batch = [c for c in sa if c in sb and c in out]
    contracted = [c for c in sa if c in sb and c not in out]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]
    size = dict(zip(sa, a.shape)) | dict(zip(sb, b.shape))

    def prod(labels: Sequence[str]) -> int:
        return math.prod(size[c] for c in labels)

    # bmm wants each operand contiguous; permutes that keep the order are skipped (the small
    # operands of factorized networks pay for every dispatched view)
    am = _as_batches(a, [sa.index(c) for c in (*batch, *left, *contracted)])
    am = am.view(prod(batch), prod(left), prod(contracted))
    bm = _as_batches(b, [sb.index(c) for c in (*batch, *contracted, *right)])
    bm = bm.view(prod(batch), prod(contracted), prod(right))
    res = _bmm(am, bm)
    order = "".join((*batch, *left, *right))
    perm = [order.index(c) for c in out]
    if perm == sorted(perm):
        return res.view([size[c] for c in out])
    return res.view([size[c] for c in order]).permute(perm)


def _as_batches(t: torch.Tensor, perm: list[int]) -> torch.Tensor:
    """``t.permute(perm)``, contiguous (no permute call when ``perm`` keeps the order)."""
    if perm != sorted(perm):
        t = t.permute(perm)
    return t.contiguous()


class Contraction:
    """An einsum over fixed operand shapes, evaluated pairwise in opt_einsum's chosen order.

    Example:
        >>> c = Contraction("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)])
        >>> x, y, z = torch.randn(2, 3), torch.randn(3, 4), torch.randn(4, 5)
        >>> bool(torch.allclose(c(x, y, z), x @ y @ z, atol=1e-6))
        True
    """

    def __init__(self, eq: str, shapes: Sequence[Sequence[int]], optimize: Any = "optimal") -> None:
        self.eq = eq
        _, info = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=optimize)
        self.info = info
        self.steps: list[tuple[tuple[int, ...], str]] = [
            (tuple(step[0]), step[2]) for step in info.contraction_list
        ]

    @property
    def flops(self) -> int:
        """opt_einsum's FLOP count of the chosen order."""
        return int(self.info.opt_cost)

    @property
    def intermediates(self) -> int:
        """Numbers written to intermediate tensors (and the output)."""
        return int(sum(self.info.size_list))

    def __call__(self, *operands: torch.Tensor) -> torch.Tensor:
        ops = list(operands)
        for positions, eq in self.steps:
            # opt_einsum's order: pop the positions as listed (descending), the step's equation
            # names the operands in that order.
            picked = [ops.pop(i) for i in positions]
            if len(picked) == 2:
                ops.append(pair_einsum(eq, picked[0], picked[1]))
            else:
                ops.append(torch.einsum(eq, *picked))
        return ops[0]
