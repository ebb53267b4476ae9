"""``FactorizedLinear``: a linear layer whose weight is stored in a factorized format."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..algebra.internal import khatri_rao as _khatri_rao
from ..algebra.internal import mode_dot as _mode_dot
from ._layer import FactorizedLayer, check_format, make_weight, resolve_rank
from ._spec import TensorizedShape, TensorLayout, _positive_ints, resolve_shape
from ._weight import FormatName

__all__ = ["MEMORY_WEIGHT", "FactorizedLinear", "linear_costs", "linear_flops", "linear_layout"]


def linear_layout(format: str, spec: TensorizedShape) -> TensorLayout:
    """The weight layout each format factorizes for an ``(out, in)`` matrix."""
    if format == "lowrank":
        return TensorLayout.identity((spec.out_features, spec.in_features))
    if format in ("cp", "tucker"):
        return TensorLayout.tensorized(spec)
    return TensorLayout.matrix_chain(spec)


# --- factorized contractions ---------------------------------------------------------------------
def _n_out(layer: FactorizedLinear) -> int:
    return len(layer.shape.out_factors)


def _kr(mats):
    return mats[0] if len(mats) == 1 else _khatri_rao(list(mats))


def _apply_lowrank(layer, factors, x, bias):
    u, v = factors
    return F.linear(x @ v, u, bias)


def _cp_sequential(layer: FactorizedLinear, batch: int) -> bool:
    """Contract mode by mode (no Khatri--Rao products) when its intermediates, of
    ``batch (I / i_q + O / o_p) R`` numbers, are under half the Khatri--Rao products' ``(I + O) R``:
    small batches, where forming the Khatri--Rao products would cost as much as the product."""
    o_feat, i_feat = layer.out_features, layer.in_features
    last_in, last_out = layer.shape.in_factors[-1], layer.shape.out_factors[-1]
    return 2 * batch * (i_feat // last_in + o_feat // last_out) <= i_feat + o_feat


def _apply_cp(layer, factors, x, bias):
    weights, *mats = factors
    n_out = _n_out(layer)
    outs, ins = mats[:n_out], mats[n_out:]
    if not _cp_sequential(layer, x.shape[0]):
        z = (x @ _kr(ins)) * weights
        return F.linear(z, _kr(outs), bias)
    batch, rank = x.shape[0], weights.shape[0]
    t = x.reshape(batch, -1, ins[-1].shape[0]) @ ins[-1]  # (B, i_1..i_{q-1}, R)
    for a in reversed(ins[:-1]):
        t = torch.einsum("bjir,ir->bjr", t.reshape(batch, -1, a.shape[0], rank), a)
    s = (t.reshape(batch, rank) * weights).unsqueeze(1)  # (B, 1, R)
    for a in outs[:-1]:
        s = (s.unsqueeze(2) * a).reshape(batch, -1, rank)  # (B, o_1..o_j, R)
    return F.linear(s, outs[-1], None).reshape(batch, -1) + (0 if bias is None else bias)


def _tucker_orders(layer):
    p = layer.parametrization
    shape, rank, n_out = p.layout.tensor_shape, p.rank, _n_out(layer)
    ins = sorted(range(n_out, len(shape)), key=lambda n: rank[n] / shape[n])
    outs = sorted(range(n_out), key=lambda n: shape[n] / rank[n])
    return ins, outs


def _apply_tucker(layer, factors, x, bias):
    core, *mats = factors
    shape, rank = layer.parametrization.tensor_shape, tuple(core.shape)
    n_out = _n_out(layer)
    batch = x.shape[0]
    ins, outs = _tucker_orders(layer)
    t = x.reshape(batch, *shape[n_out:])
    for n in ins:  # contract i_n -> r_n (mode n - n_out + 1 of t)
        t = _mode_dot(t, mats[n].transpose(0, 1), n - n_out + 1)
    r_out, r_in = math.prod(rank[:n_out]), math.prod(rank[n_out:])
    z = t.reshape(batch, r_in) @ core.reshape(r_out, r_in).transpose(0, 1)
    t = z.reshape(batch, *rank[:n_out])
    for n in outs:
        t = _mode_dot(t, mats[n], n + 1)
    y = t.reshape(batch, -1)
    return y if bias is None else y + bias.to(y.dtype)


def _apply_chain(layer, factors, x, bias):
    pairs = layer.shape.pairs()
    batch = x.shape[0]
    ring = layer.parametrization.ring
    t = x.reshape(batch, 1, pairs[0][1], -1)
    n = len(pairs)
    for k, core in enumerate(factors):
        i = pairs[k][1]
        # (r, o, i, s); the ring index r_0 of the first core rides along as an output index
        lead = 1 if k == 0 else core.shape[0]
        g = core.reshape(lead, -1, i, core.shape[2])
        t = torch.einsum("mrin,rois->mosn", t, g)
        if k + 1 < n:
            t = t.reshape(t.shape[0] * t.shape[1], t.shape[2], pairs[k + 1][1], -1)
    if ring:
        r0 = factors[0].shape[0]
        y = torch.diagonal(t.reshape(batch, r0, -1, r0), dim1=1, dim2=3).sum(-1)
    else:
        y = t.reshape(batch, -1)
    return y if bias is None else y + bias.to(y.dtype)


_APPLY = {
    "lowrank": _apply_lowrank,
    "cp": _apply_cp,
    "tucker": _apply_tucker,
    "tt": _apply_chain,
    "tr": _apply_chain,
}


# --- FLOP counts ---------------------------------------------------------------------------------
def linear_flops(layer: FactorizedLinear, batch: int) -> tuple[int, int]:
    """Multiply-add FLOPs (x2) of ``(factorized, reconstructed)`` forwards on ``batch`` rows."""
    p = layer.parametrization
    o_feat, i_feat = p.layout.weight_shape
    recon = p.reconstruction_flops() + 2 * batch * o_feat * i_feat
    fmt = p.format
    if fmt == "lowrank":
        fact = 2 * batch * p.rank * (o_feat + i_feat)
    elif fmt == "cp":
        fact = 2 * batch * p.rank * (o_feat + i_feat) + p.rank * (o_feat + i_feat)
    elif fmt == "tucker":
        shape, rank, n_out = p.layout.tensor_shape, p.rank, _n_out(layer)
        ins, outs = _tucker_orders(layer)
        cur = list(shape[n_out:])
        fact = 0
        for n in ins:
            fact += 2 * batch * math.prod(cur) * rank[n]
            cur[n - n_out] = rank[n]
        fact += 2 * batch * math.prod(rank)
        cur = list(rank[:n_out])
        for n in outs:
            fact += 2 * batch * math.prod(cur) * shape[n]
            cur[n] = shape[n]
    else:
        pairs, r = layer.shape.pairs(), p.rank
        m = batch * (r[0] if p.ring else 1)
        rest = i_feat
        fact = 0
        for k, (o, i) in enumerate(pairs):
            rest //= i
            fact += 2 * m * r[k] * i * o * r[k + 1] * rest
            m *= o
    return int(fact), int(recon)


def linear_traffic(layer: FactorizedLinear, batch: int) -> tuple[int, int]:
    """Numbers written to intermediate tensors by ``(factorized, reconstructed)`` forwards (the
    rebuilt weight counts twice: written, then read by the GEMM)."""
    p = layer.parametrization
    o_feat, i_feat = p.layout.weight_shape
    recon = 2 * o_feat * i_feat
    fmt = p.format
    if fmt == "lowrank":
        return batch * p.rank, recon
    if fmt == "cp":
        if _cp_sequential(layer, batch):
            last_in, last_out = layer.shape.in_factors[-1], layer.shape.out_factors[-1]
            return batch * p.rank * (i_feat // last_in + o_feat // last_out + 1), recon
        return (i_feat + o_feat + batch) * p.rank, recon
    if fmt == "tucker":
        shape, rank, n_out = p.layout.tensor_shape, p.rank, _n_out(layer)
        ins, outs = _tucker_orders(layer)
        cur, fact = list(shape[n_out:]), 0
        for n in ins:
            cur[n - n_out] = rank[n]
            fact += batch * math.prod(cur)
        cur = list(rank[:n_out])
        for n in outs:
            cur[n] = shape[n]
            fact += batch * math.prod(cur)
        return fact, recon
    pairs, r = layer.shape.pairs(), p.rank
    m, rest, fact = batch * (r[0] if p.ring else 1), i_feat, 0
    for k, (o, i) in enumerate(pairs):
        rest //= i
        m *= o
        fact += m * r[k + 1] * rest
    return fact, recon


# Cost of one number written to (and read back from) memory, in FLOPs: roughly peak FLOP rate /
# memory bandwidth in numbers per second (CPU core: ~100 GFLOP/s / ~3 G numbers/s).
MEMORY_WEIGHT = 32


def linear_costs(layer: FactorizedLinear, batch: int) -> tuple[int, int]:
    """``(factorized, reconstructed)`` cost = FLOPs + ``MEMORY_WEIGHT`` x intermediate numbers."""
    (f1, r1), (f2, r2) = linear_flops(layer, batch), linear_traffic(layer, batch)
    return f1 + MEMORY_WEIGHT * f2, r1 + MEMORY_WEIGHT * r2


class FactorizedLinear(FactorizedLayer):
    """``y = x W^T + b`` with ``W`` stored factorized.

    Formats (``format``), on the ``(out, in)`` weight folded by ``shape`` (a
    :class:`TensorizedShape`, default ``TensorizedShape.auto(out, in)``: two balanced factors per
    side):

    * ``"lowrank"``: ``W = U V^T`` (``shape`` unused). Forward ``(x V) U^T``.
    * ``"cp"``: CP of the tensor ``(o_1..o_p, i_1..i_q)``. Forward
      ``((x KR_in) * w) KR_out^T`` with the Khatri--Rao products of the in/out factors.
    * ``"tucker"``: Tucker of the same tensor. Forward: mode products of the input with the
      in-factors, the core as a ``prod(R_in) x prod(R_out)`` matrix, then the out-factors.
    * ``"tt"``: TT-matrix (Novikov et al. 2015), cores ``(r_k, o_k i_k, r_{k+1})``. Forward
      contracts the input one core at a time, never forming ``W``.
    * ``"tr"``: tensor-ring matrix (ring closure by a trace), same forward carrying ``r_0``.

    ``implementation="auto"`` counts the FLOPs of both forwards for the actual number of rows
    (:func:`linear_flops`), adds the memory traffic of their intermediates (each number written
    weighs ``MEMORY_WEIGHT = 32`` FLOPs: a TT-matrix contraction with a small inner dimension is
    memory-bound, a GEMM is not) and takes the cheaper; ``"factorized"`` / ``"reconstructed"`` force
    one (reconstructed: rebuild ``W``, then ``F.linear``). Both give the same values and
    gradients. Works with autograd, ``state_dict``, ``torch.compile``, autocast and any device.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: learn an additive bias (init ``U(-1/sqrt(in), 1/sqrt(in))`` as ``nn.Linear``).
        format: ``"lowrank"`` (default), ``"cp"``, ``"tucker"``, ``"tt"`` or ``"tr"``.
        rank: int or tuple (see the weight classes); exclusive with ``ratio``.
        ratio: fraction of the dense ``out * in`` parameter count; the rank is chosen by
            :func:`factorch.decomp.rank_for_ratio`.
        shape: how features fold into factors (ignored by ``"lowrank"``).
        implementation: ``"auto"``, ``"factorized"`` or ``"reconstructed"``.
        rank_dropout: tensor-dropout probability of rank components in training mode.
        init_std: entry standard deviation of the random weight; default that of ``nn.Linear``
            (``1 / sqrt(3 in)``), preserved by the factorized init (see
            :class:`FactorizedWeight`).
        decomposition: options for the decomposition used by :meth:`from_dense`.
        generator: random source of the initial factors and bias.
        device, dtype: of the parameters.

    Example:
        >>> layer = FactorizedLinear(1024, 1024, format="tucker", ratio=0.1)
        >>> layer(torch.randn(8, 1024)).shape
        torch.Size([8, 1024])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        format: FormatName = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: str = "auto",
        rank_dropout: float = 0.0,
        init_std: float | None = None,
        decomposition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        _positive_ints(fn, ("in_features", in_features), ("out_features", out_features))
        fmt = check_format(format, fn)
        shape = resolve_shape(shape, out_features, in_features, fn)
        self.in_features, self.out_features, self.shape = in_features, out_features, shape
        layout = linear_layout(fmt, shape)
        rank = resolve_rank(fn, fmt, layout, rank, ratio)
        param = make_weight(fmt, layout, rank, decomposition)
        self._setup(
            param,
            bias_shape=(out_features,) if bias else None,
            fan_in=in_features,
            implementation=implementation,
            rank_dropout=rank_dropout,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def from_dense(
        cls,
        linear: nn.Linear,
        *,
        format: FormatName = "lowrank",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: str = "auto",
        decomposition: Mapping[str, Any] | None = None,
    ) -> FactorizedLinear:
        """Factorize a trained ``nn.Linear`` with the decomposition engine (SVD, CP-ALS, HOOI,
        TT-SVD, TR-SVD/ALS, see the weight classes). At full rank the layer computes the same
        function (up to the decomposition's accuracy). Device and dtype follow ``linear``."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(
                f"FactorizedLinear.from_dense: expected an nn.Linear; got {type(linear).__name__}."
            )
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            format=format,
            rank=rank,
            ratio=ratio,
            shape=shape,
            implementation=implementation,
            decomposition=decomposition,
            device=w.device,
            dtype=w.dtype,
        )
        layer._load_dense(w, linear.bias)
        return layer

    def flops(self, batch: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` forward FLOPs for ``batch`` input rows."""
        return linear_flops(self, batch)

    def costs(self, batch: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` costs the ``"auto"`` choice compares."""
        return linear_costs(self, batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"FactorizedLinear: input must have {self.in_features} features in its last "
                f"dimension; got shape {tuple(x.shape)}."
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        factors = self.current_factors()
        if self.use_factorized(*linear_costs(self, x2.shape[0])):
            y = _APPLY[self.format](self, factors, x2, self.bias)
        else:
            y = F.linear(x2, self.parametrization(*factors), self.bias)
        return y.reshape(*lead, self.out_features)

    def to_dense(self) -> nn.Linear:
        """An ``nn.Linear`` holding the rebuilt weight (and a copy of the bias)."""
        w = self.weight.detach()
        out = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(w)
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out
