"""The power-law deep residual network that infers PLGA's metric tensor (PLDR-LLM, internal to
:mod:`factorch.nn.attention`; see :mod:`factorch.nn.attention._metric` for the equations)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_positive_int
from ..._numerics import power_of_two_scale
from ._inputs import check_memory_if_large, check_parameter_memory

__all__ = ["Context", "MetricCache", "PowerLawMetric"]

Context = Literal["sequence", "prefix"]
Device = torch.device | str | None


def _iswiglu(x: torch.Tensor) -> torch.Tensor:
    """``x · silu(x) = x² σ(x) >= 0`` (SwiGLU with identity weights)."""
    return x * F.silu(x)


class _GLU(nn.Module):
    """``W_3 (silu(W_1 x) ∘ W_2 x)``: the gated unit of the residual metric network."""

    def __init__(self, width: int, hidden: int, device: Device, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, hidden, device=device, dtype=dtype)
        self.w2 = nn.Linear(width, hidden, device=device, dtype=dtype)
        self.w3 = nn.Linear(hidden, width, device=device, dtype=dtype)
        for lin in (self.w1, self.w2, self.w3):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class _ResidualUnit(nn.Module):
    """``A <- LN(A + GLU_m(...GLU_1(A)))``."""

    def __init__(
        self, width: int, hidden: int, num_dense: int, device: Device, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.dense = nn.ModuleList([_GLU(width, hidden, device, dtype) for _ in range(num_dense)])
        self.norm = nn.LayerNorm(width, eps=1e-6, device=device, dtype=dtype)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        h = a
        for layer in self.dense:
            h = layer(h)
        return self.norm(h + a)


@dataclasses.dataclass(frozen=True)
class MetricCache:
    """A G-cache: the inferred ``A_LM`` and metric ``G_LM``, ``(N, H, d, d)`` (or
    ``(N, H, L, d, d)`` with ``context="prefix"``), reusable in place of the metric network.

    Attributes:
        a_lm: the inferred ``A_LM`` (positive entries).
        metric: the metric ``G_LM``.

    Example:
        >>> net = PowerLawMetric(4, 2, context="prefix")
        >>> cache = net(torch.randn(3, 2, 7, 4))
        >>> cache.metric.shape
        torch.Size([3, 2, 7, 4, 4])
    """

    a_lm: torch.Tensor
    metric: torch.Tensor


class PowerLawMetric(nn.Module):
    r"""The power-law deep residual network that infers PLGA's metric ``G_LM`` from queries.

    See the module docstring for the equations. Parameters per head: ``W, b, P, α, β``
    (``d x d`` each); shared across heads: the input LayerNorm and ``num_residual`` residual
    units of ``num_dense`` GLUs of width ``hidden_dim``.

    Args:
        head_dim: ``d``.
        num_heads: ``H``.
        hidden_dim: width of the GLUs (the paper's ``A_dff``); default ``2 d``.
        num_residual: residual units (the paper's ``num_reslayerA``).
        num_dense: GLUs per unit (``num_denseA``).
        context: ``"sequence"`` (the paper's) or ``"prefix"`` (no look-ahead; see the module
            docstring).
        device, dtype: of the parameters.

    Raises:
        TypeError: a size of the wrong type; at forward, queries that are not a real floating
            tensor.
        ValueError: non-positive sizes, an unknown ``context``, parameters too large for memory;
            at forward, queries of the wrong shape or with NaN/Inf entries.

    Example:
        >>> import torch
        >>> from factorch.nn.attention import PowerLawMetric
        >>> net = PowerLawMetric(4, 2)
        >>> cache = net(torch.randn(3, 2, 7, 4))
        >>> cache.metric.shape, bool((cache.a_lm > 0).all())
        (torch.Size([3, 2, 4, 4]), True)
    """

    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        *,
        hidden_dim: int | None = None,
        num_residual: int = 1,
        num_dense: int = 2,
        context: Context = "sequence",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "PowerLawMetric"
        d = check_positive_int(head_dim, fn, "head_dim")
        h = check_positive_int(num_heads, fn, "num_heads")
        hidden = 2 * d if hidden_dim is None else check_positive_int(hidden_dim, fn, "hidden_dim")
        if isinstance(num_residual, bool) or not isinstance(num_residual, int) or num_residual < 0:
            raise ValueError(
                f"{fn}: num_residual must be a non-negative int; got {num_residual!r}."
            )
        num_dense = check_positive_int(num_dense, fn, "num_dense")
        if context not in get_args(Context):
            raise ValueError(f"{fn}: context must be one of {get_args(Context)}; got {context!r}.")
        glu = 3 * d * hidden + 2 * hidden + d
        check_parameter_memory(
            fn, 5 * h * d * d + 2 * d + num_residual * (num_dense * glu + 2 * d), dtype, device
        )
        self.head_dim, self.num_heads, self.context = d, h, context
        self.hidden_dim = hidden
        self.norm = nn.LayerNorm(d, eps=1e-6, device=device, dtype=dtype)
        self.residual = nn.ModuleList(
            [_ResidualUnit(d, hidden, num_dense, device, dtype) for _ in range(num_residual)]
        )

        def param(init: str) -> nn.Parameter:
            t = torch.empty(h, d, d, device=device, dtype=dtype)
            if init == "xavier":
                nn.init.xavier_normal_(t)
            else:
                nn.init.zeros_(t)
            return nn.Parameter(t)

        self.weight, self.bias = param("xavier"), param("zeros")
        self.power = param("xavier")
        self.coupling, self.coupling_bias = param("xavier"), param("zeros")

    def forward(
        self, q: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None
    ) -> MetricCache:
        """Infer ``A_LM`` and ``G_LM`` from queries ``(N, H, L, d)`` (padded positions, bool
        ``(N, L)`` ``True`` = padding, are left out of ``Qᵀ Q``). Differentiable."""
        fn = "PowerLawMetric.forward"
        if not isinstance(q, torch.Tensor):
            raise TypeError(f"{fn}: q must be a torch.Tensor; got {type(q).__name__}.")
        if q.ndim != 4 or q.shape[1::2] != (self.num_heads, self.head_dim):
            raise ValueError(
                f"{fn}: q must have shape (N, {self.num_heads}, L, {self.head_dim}); got "
                f"{tuple(q.shape)}."
            )
        if not q.is_floating_point():
            raise TypeError(f"{fn}: q must have a real floating dtype; got {q.dtype}.")
        if not bool(torch.isfinite(q).all()):
            raise ValueError(f"{fn}: q contains NaN or Inf entries; all must be finite.")
        n, _, length, d = q.shape
        if key_padding_mask is not None:
            if (
                not isinstance(key_padding_mask, torch.Tensor)
                or key_padding_mask.dtype != torch.bool
                or tuple(key_padding_mask.shape) != (n, length)
            ):
                got = (
                    f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
                    if isinstance(key_padding_mask, torch.Tensor)
                    else type(key_padding_mask).__name__
                )
                raise ValueError(
                    f"{fn}: key_padding_mask must be a bool tensor of shape ({n}, {length}) "
                    f"(True = padding) or None; got {got}."
                )
            q = q * (~key_padding_mask).to(q.dtype)[:, None, :, None]
        per_position = length if self.context == "prefix" else 1
        check_memory_if_large(
            4 * n * self.num_heads * per_position * d * max(d, self.hidden_dim),
            q.dtype,
            q.device,
            fn,
            f"the {self.context} metric of {n} x {self.num_heads} x {length} queries",
            "use shorter sequences or context='sequence'",
        )
        # The Gram QᵀQ (up to L d max|q|²) overflows for huge queries: form it from q / s (s a
        # power of two, exact) and undo the scale inside the LayerNorm, which is invariant to it
        # but for its eps: LN_eps(s² A) = LN_{eps / s⁴}(A).
        s = power_of_two_scale(q)
        if s * s * length * d < torch.finfo(q.dtype).max / 16:
            s = 1.0  # ordinary data are used as they are
        q = q / s if s != 1.0 else q
        params: list[torch.Tensor] = [
            self.weight,
            self.bias,
            self.power,
            self.coupling,
            self.coupling_bias,
        ]
        if self.context == "sequence":
            a = q.mT @ q  # (N, H, d, d)
        else:
            a = (q.unsqueeze(-1) * q.unsqueeze(-2)).cumsum(2)  # (N, H, L, d, d)
            params = [t.unsqueeze(1) for t in params]  # one metric per position
        weight, bias, power, coupling, coupling_bias = params
        # eps / s⁴ underflows to 0 for huge s, where eps is negligible anyway
        eps = math.ldexp(self.norm.eps, -4 * (math.frexp(s)[1] - 1))
        a = F.layer_norm(a, self.norm.normalized_shape, self.norm.weight, self.norm.bias, eps)
        for unit in self.residual:
            a = unit(a)
        a_lm = _iswiglu(weight @ a + bias) + 1e-9
        metric = coupling @ a_lm.pow(power) + coupling_bias
        return MetricCache(a_lm=a_lm, metric=metric)
