r"""Mixture of hidden dimensions (MoHD, Chen et al., ICML 2025) for a feed-forward block.

MoHD observes that trained transformers use few of the model's (hidden) dimensions per token,
some shared across tokens and some specific to each. It splits the hidden dimension ``E`` into
``G`` groups of ``E / G`` dimensions: ``G_s`` **shared** groups always active and ``G_r = G - G_s``
**routed** groups of which a router activates the top ``k`` per token. For a token ``x`` with
active set ``A(x)`` (shared plus routed) the feed-forward block ``W_out σ(W_in x)`` becomes

.. math::

    h = σ\Big(b_{in} + α \sum_{g \in A(x)} W_{in}[:, g]\, x_g\Big), \qquad
    y_g = \begin{cases} c_g(x) \big(W_{out}[g, :]\, h + b_{out,g}\big) & g \in A(x) \\
    0 & \text{otherwise} \end{cases}, \qquad y \leftarrow F\, y \ (\text{group fusion}),

* **routing**: ``π = softmax(W_r x)`` over the routed groups, top-``k`` kept;
* **activation scaling** ``α``: the input restricted to ``|A| = G_s + k`` of ``G`` groups has
  about ``|A| / G`` of the energy of ``x``; ``α = sqrt(G / |A|)`` (default) restores it;
* **gates** ``c_g = k π_g / Σ_{A} π`` (mean 1) on the routed outputs, which is how the router
  learns from the task (``gate=False``: ``c_g = 1``);
* **group fusion** ``F`` (``G x G``, initialised to the identity) mixes the group outputs, so
  the sub-dimensions a token did not activate still receive a share of its update;
* **load balancing**: ``L_bal = G_r Σ_g f_g P_g`` (``f_g`` the fraction of routing slots that
  chose group ``g``, ``P_g`` its mean router probability; 1 when balanced), as in the Switch
  Transformer; read it from :attr:`MixtureOfHiddenDims.last_routing` after a forward pass.

Only ``W_in[:, A]`` and ``W_out[A, :]`` are used per token: the active parameters and the
matrix-multiply FLOPs are ``|A| / G`` of the dense block's (plus the router's ``E G_r`` and the
fusion's ``G²`` / ``2 G E``), reported by :meth:`MixtureOfHiddenDims.cost`. With every group
active, ``α = 1``, no gates and ``F = I`` the block *is* the dense feed-forward block.

Evidence: the mechanism names (shared and routed sub-dimensions, top-k routing, activation
scaling, group fusion) are from the paper's abstract; the exact formulas of its Section 3 could
not be consulted and no official code was found, so the formulas above are this library's
reading, stated so that they can be checked (dense equivalence, cost ratio).

Reference: Y. Chen, J. Shang, Z. Zhang, J. Sheng, T. Liu, S. Wang, Y. Sun, H. Wu, H. Wang,
"Mixture of Hidden-Dimensions Transformer", ICML 2025 (arXiv:2412.05644).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import as_index, check_positive_int
from ._inputs import check_bool, check_parameter_memory

__all__ = ["MixtureOfHiddenDims", "MoHDCost", "RoutingStats"]

Activation = Literal["gelu", "relu", "silu"]
Implementation = Literal["dispatch", "masked"]
_ACT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}


@dataclasses.dataclass(frozen=True)
class MoHDCost:
    """Parameter and FLOP counts of a :class:`MixtureOfHiddenDims` block, per token.

    FLOPs count matrix multiplies (2 per multiply-add); the dense block is
    ``Linear(E, H) -> σ -> Linear(H, E)``.

    Attributes:
        total_params: every parameter of the block.
        active_params: parameters one token uses (active slices, biases, router, fusion).
        dense_params: the dense block's parameters.
        flops_per_token: MoHD's matrix-multiply FLOPs per token.
        dense_flops_per_token: ``4 E H``.
        active_fraction: ``|A| / G``, the configured fraction of active groups.

    Example:
        >>> cost = MixtureOfHiddenDims(32, 128, num_groups=8, num_shared=2, top_k=2).cost()
        >>> cost.dense_flops_per_token, cost.active_fraction, cost.active_params < cost.total_params
        (16384, 0.5, True)
    """

    total_params: int
    active_params: int
    dense_params: int
    flops_per_token: int
    dense_flops_per_token: int
    active_fraction: float


@dataclasses.dataclass(frozen=True)
class RoutingStats:
    """Routing of the last forward pass.

    Attributes:
        load_balancing_loss: ``G_r Σ_g f_g P_g`` (differentiable; 1 when balanced).
        group_load: ``f_g``, fraction of routing slots per routed group ``(G_r,)``.
        mean_probability: ``P_g``, mean router probability per routed group ``(G_r,)``.

    Example:
        >>> ffn = MixtureOfHiddenDims(32, 128, num_groups=8, num_shared=2, top_k=2)
        >>> _ = ffn(torch.randn(4, 10, 32))
        >>> stats = ffn.last_routing
        >>> stats.group_load.shape, round(float(stats.group_load.sum()), 6)
        (torch.Size([6]), 1.0)
    """

    load_balancing_loss: torch.Tensor
    group_load: torch.Tensor
    mean_probability: torch.Tensor


class MixtureOfHiddenDims(nn.Module):
    r"""A feed-forward block with shared and routed hidden-dimension groups (MoHD).

    See the module docstring for the equations and what they are based on.

    Args:
        embed_dim: model (hidden) width ``E``.
        ffn_dim: inner width ``H`` of the feed-forward block.
        num_groups: ``G``, groups of ``E / G`` dimensions (must divide ``E``).
        num_shared: ``G_s``, groups active for every token.
        top_k: ``k``, routed groups activated per token (``<= G - G_s``).
        activation: ``"gelu"``, ``"relu"`` or ``"silu"``.
        activation_scale: ``α``; default ``sqrt(G / (G_s + k))``; ``1.0`` for none.
        gate: multiply routed outputs by their (mean-one) router weights.
        fusion: learn the ``G x G`` group-fusion matrix (identity at initialisation).
        bias: biases in the two projections.
        implementation: ``"dispatch"`` gathers the tokens of each group and multiplies only
            the active slices (the FLOPs :meth:`cost` reports); ``"masked"`` zeroes inactive
            groups and runs the dense matrices (same function, dense FLOPs; a reference).
        device, dtype: of the parameters.

    Raises:
        TypeError: a size or flag of the wrong type; at forward, an input that is not a real
            floating tensor.
        ValueError: non-positive sizes, ``num_groups`` not dividing ``embed_dim``, group counts
            that do not fit (``num_shared + top_k`` between 1 and ``num_groups``), an unknown
            activation or implementation, parameters too large for memory.

    Example:
        >>> import torch
        >>> from factorch.nn.attention import MixtureOfHiddenDims
        >>> ffn = MixtureOfHiddenDims(32, 128, num_groups=8, num_shared=2, top_k=2)
        >>> y = ffn(torch.randn(4, 10, 32))
        >>> y.shape, ffn.cost().active_fraction
        (torch.Size([4, 10, 32]), 0.5)
        >>> loss = ffn.last_routing.load_balancing_loss  # add to the training loss
    """

    last_routing: RoutingStats | None

    def __init__(
        self,
        embed_dim: int,
        ffn_dim: int,
        *,
        num_groups: int,
        num_shared: int,
        top_k: int,
        activation: Activation = "gelu",
        activation_scale: float | None = None,
        gate: bool = True,
        fusion: bool = True,
        bias: bool = True,
        implementation: Implementation = "dispatch",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = "MixtureOfHiddenDims"
        e = check_positive_int(embed_dim, fn, "embed_dim")
        h = check_positive_int(ffn_dim, fn, "ffn_dim")
        g = check_positive_int(num_groups, fn, "num_groups")
        if e % g:
            raise ValueError(f"{fn}: num_groups must divide embed_dim={e}; got {g}.")
        shared = _non_negative(fn, "num_shared", num_shared)
        if shared > g:
            raise ValueError(f"{fn}: num_shared must be at most num_groups={g}; got {shared}.")
        k = _non_negative(fn, "top_k", top_k)
        if k > g - shared:
            raise ValueError(
                f"{fn}: top_k must be at most the {g - shared} routed groups "
                f"(num_groups - num_shared); got {k}."
            )
        if shared + k == 0:
            raise ValueError(f"{fn}: num_shared + top_k must be at least 1; got 0 and 0.")
        if activation not in _ACT:
            raise ValueError(
                f"{fn}: activation must be one of {get_args(Activation)}; got {activation!r}."
            )
        if implementation not in get_args(Implementation):
            raise ValueError(
                f"{fn}: implementation must be one of {get_args(Implementation)}; got "
                f"{implementation!r}."
            )
        if activation_scale is not None and (
            isinstance(activation_scale, bool)
            or not isinstance(activation_scale, (int, float))
            or not (math.isfinite(activation_scale) and activation_scale > 0)
        ):
            raise ValueError(
                f"{fn}: activation_scale must be a positive number or None; got "
                f"{activation_scale!r}."
            )
        check_parameter_memory(fn, 2 * e * h + e + h + e * g + g * g, dtype, device)
        self.embed_dim, self.ffn_dim, self.num_groups = e, h, g
        self.num_shared, self.num_routed, self.top_k = shared, g - shared, k
        self.group_size = e // g
        self.activation: Activation = activation
        self.alpha = (
            math.sqrt(g / (shared + k)) if activation_scale is None else float(activation_scale)
        )
        self.gate = check_bool(fn, "gate", gate)
        self.implementation: Implementation = implementation
        self.w_in = nn.Linear(e, h, bias, device=device, dtype=dtype)
        self.w_out = nn.Linear(h, e, bias, device=device, dtype=dtype)
        self.router: nn.Linear | None = None
        if self.num_routed:
            self.router = nn.Linear(e, self.num_routed, bias=False, device=device, dtype=dtype)
            nn.init.normal_(self.router.weight, std=0.02)
        self.fusion: nn.Parameter | None = None
        if check_bool(fn, "fusion", fusion):
            self.fusion = nn.Parameter(torch.eye(g, device=device, dtype=dtype))
        self.last_routing = None

    def _route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Selected routed groups ``(T, k)`` and their output scales ``(T, k)``."""
        t = x.shape[0]
        if self.router is None or self.top_k == 0:
            empty = x.new_zeros(t, 0)
            self.last_routing = None
            return empty.long(), empty
        probs = torch.softmax(self.router(x), -1)
        top_p, top_i = probs.topk(self.top_k, -1)
        load = torch.zeros(self.num_routed, device=x.device, dtype=probs.dtype)
        load = load.index_add(0, top_i.flatten(), torch.ones_like(top_p.flatten())) / (
            t * self.top_k
        )
        mean_p = probs.mean(0)
        self.last_routing = RoutingStats(
            load_balancing_loss=self.num_routed * (load * mean_p).sum(),
            group_load=load.detach(),
            mean_probability=mean_p.detach(),
        )
        if self.gate:
            scales = self.top_k * top_p / top_p.sum(-1, keepdim=True)
        else:
            scales = torch.ones_like(top_p)
        return top_i, scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x (..., E)``; sets :attr:`last_routing`. Differentiable."""
        fn = "MixtureOfHiddenDims.forward"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{fn}: x must be a torch.Tensor; got {type(x).__name__}.")
        if x.ndim < 1 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{fn}: x must have shape (..., {self.embed_dim}); got {tuple(x.shape)}."
            )
        if not x.is_floating_point():
            raise TypeError(f"{fn}: x must have a real floating dtype; got {x.dtype}.")
        flat = x.reshape(-1, self.embed_dim)
        idx, scales = self._route(flat)
        if self.implementation == "masked":
            y = self._masked(flat, idx, scales)
        else:
            y = self._dispatch(flat, idx, scales)
        if self.fusion is not None:
            y = torch.einsum("gh,thc->tgc", self.fusion, y)
        return y.reshape(x.shape)

    def _group_slice(self, g: int) -> slice:
        return slice(g * self.group_size, (g + 1) * self.group_size)

    def _masked(self, x: torch.Tensor, idx: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        t, g_all, gs = x.shape[0], self.num_groups, self.group_size
        s, routed = self.num_shared, self.num_routed
        in_mask = torch.zeros(t, g_all, device=x.device, dtype=x.dtype)
        in_mask[:, :s] = 1
        out_scale = in_mask.clone()
        if routed:
            sel = torch.zeros(t, routed, device=x.device, dtype=x.dtype)
            in_mask[:, s:] = sel.scatter(1, idx, 1.0)
            out_scale = torch.cat([out_scale[:, :s], sel.scatter(1, idx, scales)], 1)
        x_in = (x.view(t, g_all, gs) * in_mask.unsqueeze(-1)).view(t, -1)
        bias = self.w_in.bias
        pre = self.alpha * (x_in @ self.w_in.weight.T) + (0 if bias is None else bias)
        y = self.w_out(_ACT[self.activation](pre))
        return y.view(t, g_all, gs) * out_scale.unsqueeze(-1)

    def _dispatch(self, x: torch.Tensor, idx: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        t, s = x.shape[0], self.num_shared
        w_in, w_out = self.w_in.weight, self.w_out.weight
        b_in, b_out = self.w_in.bias, self.w_out.bias
        shared = slice(0, s * self.group_size)
        pre = x.new_zeros(t, self.ffn_dim) if s == 0 else x[:, shared] @ w_in[:, shared].T
        members = [(idx == r).nonzero() for r in range(self.num_routed)]  # (tokens, slot)
        for r, hit in enumerate(members):
            if hit.numel():
                cols = self._group_slice(s + r)
                pre = pre.index_add(0, hit[:, 0], x[hit[:, 0], cols] @ w_in[:, cols].T)
        pre = self.alpha * pre + (0 if b_in is None else b_in)
        hidden = _ACT[self.activation](pre)
        groups: list[torch.Tensor] = []
        if s:
            ys = hidden @ w_out[shared].T + (0 if b_out is None else b_out[shared])
            groups.extend(ys.view(t, s, self.group_size).unbind(1))
        for r, hit in enumerate(members):
            rows = self._group_slice(s + r)
            out = x.new_zeros(t, self.group_size)
            if hit.numel():
                tok = hit[:, 0]
                val = hidden[tok] @ w_out[rows].T + (0 if b_out is None else b_out[rows])
                out = out.index_add(0, tok, val * scales[tok, hit[:, 1]].unsqueeze(-1))
            groups.append(out)
        return torch.stack(groups, 1)

    def cost(self) -> MoHDCost:
        """Parameter and FLOP counts per token (see :class:`MoHDCost`)."""
        e, h, g = self.embed_dim, self.ffn_dim, self.num_groups
        active_groups = self.num_shared + self.top_k
        active_in = active_groups * self.group_size
        has_bias = self.w_in.bias is not None
        router = e * self.num_routed if self.router is not None else 0
        fusion_params = g * g if self.fusion is not None else 0
        active = 2 * h * active_in + (h + active_in if has_bias else 0) + router + fusion_params
        dense = 2 * e * h + (h + e if has_bias else 0)
        total = sum(p.numel() for p in self.parameters())
        flops = 4 * h * active_in + 2 * router + (2 * g * e if self.fusion is not None else 0)
        return MoHDCost(
            total_params=total,
            active_params=active,
            dense_params=dense,
            flops_per_token=flops,
            dense_flops_per_token=4 * e * h,
            active_fraction=active_groups / g,
        )

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, ffn_dim={self.ffn_dim}, groups={self.num_groups} "
            f"(shared {self.num_shared}, routed {self.num_routed}, top_k {self.top_k}), "
            f"alpha={self.alpha:.3g}, gate={self.gate}"
        )


def _non_negative(fn: str, name: str, value: object) -> int:
    out = as_index(value, fn, name)
    if out < 0:
        raise ValueError(f"{fn}: {name} must be a non-negative int; got {out}.")
    return out
