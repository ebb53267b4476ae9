"""``TLoraLayer``: ``W' = W_0 T + s Delta`` with tensor-ring transform and residual."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import TensorizedShape, TensorLayout, TRWeight, balanced_factorization
from ...nn.formats import chain_contract, known_size
from .._config import AdapterConfig
from .._layer import CONV_LAYERS, LINEAR_LAYERS, Adapter, allocate, base_weight, draw, matrix_view
from ._config import TLoraConfig

__all__ = ["TLoraLayer", "identity_trm_cores", "ring_halves", "ring_tensor"]


def identity_trm_cores(
    factors: tuple[int, ...], rank: int, like: torch.Tensor
) -> list[torch.Tensor]:
    """Cores ``(R, I_d I_d, R)`` of the tensor-ring matrix equal to the identity: every slice
    ``A_d[:, (i, j), :] = delta_ij / R``. Then ``A_1[i_1 j_1] ... A_D[i_D j_D]`` is
    ``prod_d delta / R^D`` times ``J^D = R^(D-1) J`` (``J`` all ones), whose trace is
    ``prod_d delta_(i_d j_d)`` (Tao et al., Prop. 1), exactly in floating point for
    ``R`` a power of two.

    Args:
        factors: the sizes ``I_d`` (the identity is ``prod I_d`` square).
        rank: the ring rank ``R``.
        like: a tensor whose dtype and device the cores take.

    Returns:
        One ``(R, I_d I_d, R)`` core per factor.

    Raises:
        ValueError: ``rank`` or a factor below 1.

    Example:
        >>> cores = identity_trm_cores((2, 3), 2, torch.zeros(1))
        >>> [tuple(core.shape) for core in cores]
        [(2, 4, 2), (2, 9, 2)]
    """
    if not rank >= 1 or any(not n >= 1 for n in factors):
        raise ValueError(
            f"identity_trm_cores: rank and every factor must be at least 1; got rank {rank!r}, "
            f"factors {tuple(factors)}."
        )
    out = []
    for n in factors:
        eye = torch.eye(n, dtype=like.dtype, device=like.device).reshape(1, n * n, 1)
        out.append(eye.expand(rank, n * n, rank) / rank)
    return out


def ring_tensor(fmt: TRWeight, cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """The dense weight of the tensor ring ``fmt`` with ``cores`` (equal to ``fmt(*cores)``),
    contracted as two half chains ``L (R, P, S)`` and ``M (S, Q, R)`` joined by one
    ``(P, RS) x (RS, Q)`` product: ``P Q R S`` multiply-adds and a ``P Q`` result, where the
    full chain costs ``P Q R^2 S`` and holds an ``R^2 P Q`` intermediate. Differentiable.

    Args:
        fmt: the :class:`~factorch.nn.TRWeight` (its layout maps the ring's tensor to the
            weight).
        cores: its cores, of ``fmt.factor_shapes`` (only their number is checked: an internal
            fast path).

    Returns:
        The weight, of ``fmt.weight_shape``, in the cores' dtype and device.

    Raises:
        ValueError: not one core per factor of ``fmt``.

    Example:
        >>> from factorch.nn import TensorizedShape, TensorLayout, TRWeight
        >>> fmt = TRWeight(TensorLayout.matrix_chain(TensorizedShape((2, 3), (2, 3))), 2)
        >>> cores = [torch.randn(s, dtype=torch.float64) for s in fmt.factor_shapes]
        >>> torch.allclose(ring_tensor(fmt, cores), fmt(*cores))
        True
    """
    if len(cores) != len(fmt.factor_shapes):
        raise ValueError(
            f"ring_tensor: the format has {len(fmt.factor_shapes)} cores; got {len(cores)}."
        )
    sizes = [c.shape[1] for c in cores]
    total = math.prod(sizes)
    split, best = 1, math.inf
    for k in range(1, len(cores)):
        p = math.prod(sizes[:k])
        if abs(math.log(p) - 0.5 * math.log(total)) < best:
            split, best = k, abs(math.log(p) - 0.5 * math.log(total))
    left, right = chain_contract(cores[:split]), chain_contract(cores[split:])
    r, p, s = left.shape
    q = right.shape[1]
    full = left.permute(1, 0, 2).reshape(p, r * s) @ right.permute(2, 0, 1).reshape(r * s, q)
    return fmt.layout.to_weight(full.reshape(fmt.tensor_shape))


def ring_halves(cores: Sequence[torch.Tensor], split: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensor ring with ``cores`` as the product ``A B`` of an ``(P, R S)`` and an
    ``(R S, Q)`` matrix: ``P`` the product of the first ``split`` cores' sizes, ``Q`` of the
    others, ``R`` the ring rank at the ends and ``S`` at the split (the half chains of
    :func:`ring_tensor`, not multiplied out). Differentiable.

    Args:
        cores: ``(r_k, I_k, r_(k+1))`` cores of a ring (``r_0 = r_N``).
        split: how many cores the first half takes (``0 < split < len(cores)``).

    Returns:
        ``(A, B)`` with ``A B`` the ring's tensor as a ``P x Q`` matrix.

    Example:
        >>> from factorch.nn import TensorizedShape, TensorLayout, TRWeight
        >>> fmt = TRWeight(TensorLayout.tensorized(TensorizedShape((2, 3), (4, 2))), 2)
        >>> cores = [torch.randn(s, dtype=torch.float64) for s in fmt.factor_shapes]
        >>> a, b = ring_halves(cores, 2)
        >>> tuple(a.shape), tuple(b.shape), torch.allclose(a @ b, fmt(*cores))
        ((6, 4), (4, 8), True)
    """
    left, right = chain_contract(cores[:split]), chain_contract(cores[split:])
    r, p, s = left.shape
    q = right.shape[1]
    return left.permute(1, 0, 2).reshape(p, r * s), right.permute(2, 0, 1).reshape(r * s, q)


class TLoraLayer(Adapter):
    """TLoRA on one Linear or ConvNd (a kernel as its ``(out, in k..)`` matrix, ``T`` acting
    on ``in k..``); see :class:`TLoraConfig`. Parameters: ``transform`` (the TRM cores) and
    ``residual`` (TR cores, or ``B, A``).

    Two forwards, the same function. *Merged*: the base operation with ``W_0 T + s Delta``
    (rebuilt once per call, independent of the batch). *Activations* (Linear layers): ``T``
    applied to the input, ``y = (x T^T) W_0^T + b + s (x B^T) A^T``, with ``Delta = A B``
    the residual ring's two half chains (``ring_halves``, width ``k = R^2``; ``k = r``
    for a LoRA residual) never multiplied out. Multiply-adds of a training step on ``n``
    rows beyond the frozen base layer's (``d_o = out``, ``d = fan_in``;
    :meth:`step_costs`): merged ``2 d_o d^2`` (``W_0 T`` and the transform's gradient
    ``W_0^T G``) ``+ n d_o d`` (``G = g^T x``) ``+ 3 d_o d k`` (``Delta`` and its
    gradients); activations ``3 n d^2`` (``x T^T``, the input gradient ``g' T``, the
    transform's gradient ``g'^T x``) ``+ 3 n k (d_o + d)``. A Linear layer takes the cheaper
    (a rule of the shapes only: about ``n < d`` rows for a square weight); a convolution
    takes the merged one. Either way a full-rank ``T`` costs a multiple of a rank-``r``
    update: on MiniLM's 384 x 384 projections at 256 rows ``3 n d^2 = 113 M`` against PEFT
    LoRA's ``6 n d r = 4.7 M`` at ``r = 8`` (``BENCHMARKS.md``).

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it).

    Raises:
        TypeError, ValueError: as :class:`~factorch.adapters.Adapter` (a base layer the method
            cannot adapt, or a config of another method).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(16, 8)),
        ...                TLoraConfig(target_modules=["0"], rank=2), generator=gen)
        >>> x = torch.ones(2, 16)
        >>> torch.allclose(model(x), model[0].base_layer(x))  # identity transform at init
        True
    """

    method: ClassVar[str] = "tlora"
    config_class: ClassVar[type[AdapterConfig]] = TLoraConfig
    supported: ClassVar[tuple[type[nn.Module], ...]] = LINEAR_LAYERS + CONV_LAYERS

    def __init__(
        self,
        base: nn.Module,
        config: AdapterConfig,
        *,
        context: object = None,
        generator: torch.Generator | None = None,
        shared: nn.ParameterDict | None = None,
        structure: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(base, config)
        cfg = cast(TLoraConfig, config)
        fn = type(self).__name__
        w = base_weight(base)
        out, fan_in = self.weight_shape[0], math.prod(self.weight_shape[1:])
        self.in_factors = balanced_factorization(fan_in, cfg.n_factors)
        self.out_factors = balanced_factorization(out, cfg.n_factors)
        layout = TensorLayout.matrix_chain(TensorizedShape(self.in_factors, self.in_factors))
        self.transform_format = TRWeight(layout, cfg.transform_rank)
        self.residual_format: TRWeight | None = None
        if cfg.residual == "tr":
            spec = TensorizedShape(self.out_factors, self.in_factors)
            self.residual_format = TRWeight(TensorLayout.tensorized(spec), cfg.rank)
            res_shapes = list(self.residual_format.factor_shapes)
        elif cfg.residual == "lora":
            res_shapes = [(out, cfg.rank), (cfg.rank, fan_in)]
        else:
            res_shapes = []
        t_shapes = list(self.transform_format.factor_shapes)
        tensors = allocate(t_shapes + res_shapes, w, fn, "the transform and residual")
        self.transform = nn.ParameterList([nn.Parameter(t) for t in tensors[: len(t_shapes)]])
        self.residual = nn.ParameterList([nn.Parameter(t) for t in tensors[len(t_shapes) :]])
        self.scaling = cfg.scaling
        if structure is None:
            with torch.no_grad():
                self.initialise(generator)

    def initialise(self, generator: torch.Generator | None) -> None:
        cfg = cast(TLoraConfig, self.config)
        for core, ident in zip(
            self.transform,
            identity_trm_cores(self.in_factors, cfg.transform_rank, self.transform[0]),
        ):
            core.copy_(ident)
        if cfg.residual == "tr":
            r, d = cfg.rank, len(self.out_factors)
            for k, core in enumerate(self.residual):
                if k == 0:
                    continue  # the first out-core stays zero: Delta = 0
                size = core.shape[1]
                std = math.sqrt(size) / r**2 if k < d else 1.0 / math.sqrt(size)
                core.copy_(draw(tuple(core.shape), core, generator, std=std))
        elif cfg.residual == "lora":
            a = self.residual[1]
            a.copy_(draw(tuple(a.shape), a, generator, bound=1.0 / math.sqrt(a.shape[1])))

    # --- update ----------------------------------------------------------------------------------
    def transform_matrix(self) -> torch.Tensor:
        """``T`` (``fan_in x fan_in``). Differentiable."""
        return ring_tensor(self.transform_format, list(self.transform))

    def residual_matrix(self) -> torch.Tensor | None:
        """``Delta`` (``out x fan_in``, unscaled), or None without a residual."""
        if self.residual_format is not None:
            return ring_tensor(self.residual_format, list(self.residual))
        if len(self.residual):
            return self.residual[0] @ self.residual[1]
        return None

    def residual_factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(A, B)`` with ``Delta = A B`` (``out x k``, ``k x fan_in``, unscaled), or None
        without a residual."""
        if self.residual_format is not None:
            return ring_halves(list(self.residual), len(self.out_factors))
        if len(self.residual):
            return self.residual[0], self.residual[1]
        return None

    def step_costs(self, rows: int) -> tuple[int, int]:
        """``(activations, merged)`` multiply-adds of a training step on ``rows`` rows beyond
        the frozen base layer's (the formulas of the class docstring; the rebuild of ``T``
        from its cores, common to both, is left out).

        Example:
            >>> from torch import nn
            >>> model = nn.Sequential(nn.Linear(384, 384))
            >>> _ = inject(model, TLoraConfig(target_modules=["0"], rank=6, transform_rank=5))
            >>> activations, merged = model[0].adapters["default"].step_costs(256)
            >>> activations < merged  # 256 rows of MiniLM's projections: T on the input
            True
        """
        out, fan_in = self.weight_shape[0], math.prod(self.weight_shape[1:])
        cfg = cast(TLoraConfig, self.config)
        k = {"tr": cfg.rank**2, "lora": cfg.rank, "none": 0}[cfg.residual]
        activations = 3 * rows * fan_in**2 + 3 * rows * k * (out + fan_in)
        merged = 2 * out * fan_in**2 + rows * out * fan_in + 3 * out * fan_in * k
        return activations, merged

    def takes_activations(self, rows: int) -> bool:
        """Whether a Linear layer's forward on ``rows`` rows applies ``T`` to the input (the
        cheaper path by :meth:`step_costs`; a rule of the shapes only, so the same input always
        takes the same path)."""
        activations, merged = self.step_costs(rows)
        return activations < merged

    def forward(self, x: torch.Tensor, base: nn.Module) -> torch.Tensor:
        if isinstance(base, nn.Linear):
            rows = known_size(math.prod(x.shape[:-1]))
            if rows > 0 and self.takes_activations(rows):
                return self.activation_forward(x, base)
        return super().forward(x, base)

    def activation_forward(self, x: torch.Tensor, base: nn.Linear) -> torch.Tensor:
        """``(x T^T) W_0^T + b + s (x B^T) A^T`` (the activations path; ``Delta = A B``)."""
        y = F.linear(F.linear(x, self.transform_matrix()), base.weight, base.bias)
        low = self.residual_factors()
        if low is None:
            return y
        a, b = low
        return torch.add(y, F.linear(F.linear(x, b), a), alpha=self.scaling)

    def merged_weight(self, weight: torch.Tensor) -> torch.Tensor:
        merged = matrix_view(weight) @ self.transform_matrix().to(weight.dtype)
        delta = self.residual_matrix()
        if delta is not None:
            merged = merged + self.scaling * delta.to(weight.dtype)
        return merged.reshape(self.weight_shape)

    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return self.merged_weight(weight) - weight

    def extra_repr(self) -> str:
        cfg = cast(TLoraConfig, self.config)
        return (
            f"in_factors={self.in_factors}, transform_rank={cfg.transform_rank}, "
            f"residual={cfg.residual!r}, rank={cfg.rank}, {super().extra_repr()}"
        )
