"""``TuckerLayer``: the tucker adapter of one Linear or ConvNd layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, cast

import torch

from ...nn import FactorizedLinear
from .._config import AdapterConfig
from .._format_adapter import FormatAdapterLayer
from ._config import TuckerConfig

__all__ = ["TuckerLayer", "tucker_linear", "tucker_weight"]


def _mode_products(t: torch.Tensor, mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``t`` of shape ``(rows, n_1, .., n_k)`` with each mode ``j`` contracted with ``mats[j]``
    (``n_j x m_j``), last mode first: the last mode is one GEMM on the ``(rows n_1.., n_k)``
    view, every other mode a GEMM batched over the modes before it, on views of the
    contiguous result (no transposed copy of ``t``). Explicit ``bmm``: ``torch.matmul`` picks
    its kernel by ``requires_grad``, which would make a frozen copy round differently."""
    rows, dims = t.shape[0], list(t.shape[1:])
    for j in reversed(range(len(dims))):
        before, after = math.prod(dims[:j]), math.prod(dims[j + 1 :])
        if after == 1:
            t = t.reshape(rows * before, dims[j]) @ mats[j]
        else:
            m = mats[j].transpose(0, 1)
            t = torch.bmm(m.expand(rows * before, *m.shape), t.reshape(-1, dims[j], after))
        dims[j] = mats[j].shape[1]
    return t.reshape(rows, *dims)


def tucker_linear(
    core: torch.Tensor, mats: Sequence[torch.Tensor], x: torch.Tensor, n_out: int
) -> torch.Tensor:
    """``x W^T`` for the Tucker weight ``W = core x_1 U_1 .. x_N U_N`` of the tensorized matrix
    ``(o_1..o_p, i_1..i_q)`` (``n_out = p``; ``mats[n]`` of shape ``(I_n, R_n)``) and ``x`` of
    shape ``(rows, in)``: the in-factors contract the input mode by mode, the core acts as one
    ``(rows, prod R_in) x (prod R_in, prod R_out)`` GEMM, then the out-factors, never forming
    ``W``. Differentiable.

    Example:
        >>> core = torch.randn(2, 3, 2, 2, dtype=torch.float64)
        >>> sizes = [(4, 2), (3, 3), (5, 2), (2, 2)]
        >>> mats = [torch.randn(n, r, dtype=torch.float64) for n, r in sizes]
        >>> w = torch.einsum("abcd,ia,jb,kc,ld->ijkl", core, *mats).reshape(12, 10)
        >>> x = torch.randn(7, 10, dtype=torch.float64)
        >>> torch.allclose(tucker_linear(core, mats, x, 2), x @ w.T)
        True
    """
    rows = x.shape[0]
    ins, outs = mats[n_out:], mats[:n_out]
    t = _mode_products(x.reshape(rows, *(m.shape[0] for m in ins)), ins)
    r_out, r_in = math.prod(core.shape[:n_out]), math.prod(core.shape[n_out:])
    z = t.reshape(rows, r_in) @ core.reshape(r_out, r_in).transpose(0, 1)
    y = _mode_products(z.reshape(rows, *core.shape[:n_out]), [u.transpose(0, 1) for u in outs])
    return y.reshape(rows, -1)


def tucker_weight(core: torch.Tensor, mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """The Tucker tensor ``core x_1 U_1 .. x_N U_N`` (``mats[n]`` of shape ``(I_n, R_n)``),
    by the same mode products as :func:`tucker_linear`. Differentiable."""
    return _mode_products(core.unsqueeze(0), [u.transpose(0, 1) for u in mats])[0]


class TuckerLayer(FormatAdapterLayer):
    """The Tucker adapter of one layer (the core, factor 0, starts at zero).

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it).

    Raises:
        TypeError, ValueError: as :class:`~factorch.adapters.Adapter` (a base layer the method
            cannot adapt, or a config of another method).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(16, 8)),
        ...                TuckerConfig(target_modules=["0"], rank=2), generator=gen)
        >>> adapter = model[0].adapters["default"]
        >>> core = adapter.delta.factors[0]
        >>> type(adapter).__name__, tuple(core.shape), bool((core == 0).all())
        ('TuckerLayer', (2, 2, 2, 2), True)
    """

    method: ClassVar[str] = "tucker"
    config_class: ClassVar[type[AdapterConfig]] = TuckerConfig

    def rebuild(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        core, *mats = factors
        return tucker_weight(core, mats)

    def contract(self, factors: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        core, *mats = factors
        n_out = len(cast(FactorizedLinear, self.delta).shape.out_factors)
        return tucker_linear(core, mats, x, n_out)
