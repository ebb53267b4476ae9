"""Maestro: trainable low-rank layers with ordered components (Horvath et al., ICML 2024).

A layer ``W = U V^T`` (``U (out, k)``, ``V (in, k)``, ``k = min(in, out)`` by default) is trained
with *ordered dropout* on its components: each step uses only the first ``j`` components, ``j``
sampled at random (:class:`OrderedDropout`). Every prefix then has to be a good layer on its own,
which orders the components by importance; for a linear map with isotropic inputs the training
objective ``E_j ||W - U_j V_j^T||^2`` is minimised by the truncated SVDs, nested (the paper's
Theorem). A *hierarchical group lasso* ``sum_i (||V[:, i:]|| + ||U[:, i:]||)``
(:func:`hierarchical_group_lasso`) pushes the tails towards zero, and components whose importance
``||V[:, i:]|| ||U[:, i:]||`` falls below a threshold are pruned during training
(:meth:`LowRankLinear.prune_`), so the ranks shrink to what the task needs. After one training
run, :meth:`LowRankLinear.truncate` gives any member of the nested family.

A training step (the paper's loss with self-distillation, ``--no-full-pass`` drops the first term)::

    sampler = OrderedDropout(model, generator=g)
    full = model(x)
    with sampler.sample():
        part = model(x)
    loss = F.cross_entropy(full, y) + F.cross_entropy(part, full.softmax(-1).detach())
    loss = loss + lam * hierarchical_group_lasso(model)
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal, get_args

import torch
from torch import nn

from ._conv import (
    FactorizedConv1d,
    FactorizedConv2d,
    FactorizedConv3d,
    _FactorizedConvNd,
    _tuple,
)
from ._layer import FactorizedLayer, Implementation, errors_named
from ._linear import FactorizedLinear
from ._spec import _positive_ints
from .formats._geometry import PaddingMode

__all__ = [
    "LowRankConv1d",
    "LowRankConv2d",
    "LowRankConv3d",
    "LowRankLinear",
    "OrderedDropout",
    "hierarchical_group_lasso",
    "ordered_layers",
]

SampleMode = Literal["per_layer", "all", "shared"]


def _tail_norms(m: torch.Tensor) -> torch.Tensor:
    """``||m[:, i:]||_F`` for every ``i`` (differentiable, finite gradient at zero tails)."""
    sq = (m * m).sum(0).flip(0).cumsum(0).flip(0)
    pos = sq > 0
    safe = torch.where(pos, sq, torch.ones_like(sq))
    return torch.where(pos, safe.sqrt(), torch.zeros_like(sq))


class _Ordered(FactorizedLayer):
    """Methods shared by the ordered low-rank layers (mixed into factorized lowrank layers)."""

    truncation: int | None

    @property
    def full_rank(self) -> int:
        """The number of components (the low-rank format's int rank)."""
        return int(self.factors[0].shape[1])

    def current_factors(self) -> tuple[torch.Tensor, ...]:
        factors = super().current_factors()
        r = self.truncation
        if r is None or r >= factors[0].shape[1]:
            return factors
        return tuple(f[:, :r] for f in factors)

    def importance(self) -> torch.Tensor:
        """``||U[:, i:]|| ||V[:, i:]||`` per component ``i`` (non-increasing in ``i``)."""
        with torch.no_grad():
            u, v = self.factors
            return _tail_norms(u) * _tail_norms(v)

    def group_lasso(self) -> torch.Tensor:
        """Hierarchical group lasso ``sum_i (||U[:, i:]|| + ||V[:, i:]||)``. Differentiable."""
        u, v = self.factors
        return _tail_norms(u).sum() + _tail_norms(v).sum()

    def prune_(self, threshold: float, *, relative: bool = True) -> int:
        """Drop trailing components whose importance is below ``threshold`` (times the leading
        importance when ``relative``); keeps at least one. Returns the new rank. The factor
        parameters are replaced: rebuild the optimizer afterwards."""
        fn = f"{type(self).__name__}.prune_"
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise ValueError(f"{fn}: threshold must be a non-negative number; got {threshold!r}.")
        imp = self.importance()
        cut = threshold * float(imp[0]) if relative else float(threshold)
        keep = max(1, int((imp >= cut).sum()))
        if keep < imp.shape[0]:
            u, v = self.factors
            self.reparametrize_(keep, (u[:, :keep], v[:, :keep]))
            if self.truncation is not None:
                self.truncation = min(self.truncation, keep)
        return keep

    def truncate(self, rank: int) -> Any:
        """A copy keeping the first ``rank`` components (the nested family member)."""
        fn = f"{type(self).__name__}.truncate"
        full = self.full_rank
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= full:
            raise ValueError(f"{fn}: rank must be an int in [1, {full}]; got {rank!r}.")
        out = copy.deepcopy(self)
        u, v = out.factors
        out.reparametrize_(rank, (u[:, :rank], v[:, :rank]))
        out.truncation = None
        return out


class LowRankLinear(_Ordered, FactorizedLinear):
    """Maestro linear layer ``y = x V U^T + b`` with ordered components.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        rank: number of components ``k``; default ``min(in, out)`` (full rank, no a-priori
            choice, as in Maestro).
        init_std, generator, device, dtype: as :class:`FactorizedLinear` (variance-preserving
            orthonormal init).

    ``truncation`` (int or None) limits the forward to the first components; set by
    :class:`OrderedDropout`. ``from_dense`` starts from the SVD (``U = U_k S^(1/2)``,
    ``V = V_k S^(1/2)``), already ordered.

    Raises:
        TypeError: a non-int size, a non-floating ``dtype``, a float ``rank`` or a bad generator.
        ValueError: bad sizes, or a rank outside ``[1, min(in, out)]``.

    Example:
        >>> layer = LowRankLinear(6, 4, rank=3, generator=torch.Generator().manual_seed(0))
        >>> [tuple(f.shape) for f in layer.factors], layer(torch.ones(2, 6)).shape
        ([(4, 3), (6, 3)], torch.Size([2, 4]))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rank: int | None = None,
        implementation: Implementation = "factorized",
        init_std: float | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if rank is None and isinstance(in_features, int) and isinstance(out_features, int):
            rank = min(in_features, out_features)
        super().__init__(
            in_features,
            out_features,
            bias,
            format="lowrank",
            rank=rank,
            implementation=implementation,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )
        self.truncation: int | None = None

    # Maestro layers are low rank by construction: no format, ratio or shape to choose, hence
    # the narrower signature than FactorizedLinear.from_dense.
    @classmethod
    def from_dense(  # type: ignore[override]
        cls,
        linear: nn.Module,
        *,
        rank: int | None = None,
        implementation: Implementation = "factorized",
    ) -> LowRankLinear:
        """Start from a trained ``nn.Linear`` by truncated SVD (ordered components), keeping its
        device, dtype and training/eval mode."""
        fn = f"{cls.__name__}.from_dense"
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{fn}: expected an nn.Linear; got {type(linear).__name__}.")
        w = linear.weight
        with errors_named(fn, inner=cls.__name__):
            layer = cls(
                linear.in_features,
                linear.out_features,
                linear.bias is not None,
                rank=rank,
                implementation=implementation,
                device=w.device,
                dtype=w.dtype,
            )
            layer._load_dense(w, linear.bias, training=linear.training, fn=fn)
        return layer

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> LowRankLinear:
        """The layer :meth:`config` describes, with random factors (no decomposition is run)."""
        return cls(**_ordered_args(cls._check_config(config)), device=device, dtype=dtype)


def _ordered_args(args: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of a Maestro layer: low rank only, no format/shape/ratio."""
    for key in ("format", "shape"):
        args.pop(key, None)
    return args


class _LowRankConv(_Ordered, _FactorizedConvNd):
    """Maestro convolution: a ``k``-sized convolution to ``rank`` channels (``V``), then a 1x1
    convolution (``U``), with ordered components; default rank ``min(out, in prod(k))``.
    See :class:`LowRankLinear`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias, padding_mode:
            as the ``nn.Conv*d`` it replaces (``groups=1`` only).
        rank: number of components; default ``min(out, in prod(k))`` (full rank).
        implementation, init_std, generator, device, dtype: as :class:`FactorizedConv2d`.

    Raises:
        TypeError: a non-int channel count, ``kernel_size``, ``stride`` or ``dilation``, a
            float ``rank``, a non-floating ``dtype`` or a bad generator.
        ValueError: non-positive channels, a bad ``kernel_size``, ``stride``, ``padding``,
            ``dilation`` or ``padding_mode``, or an out-of-range rank.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> conv = LowRankConv2d(3, 8, 3, padding=1, rank=4, generator=gen)
        >>> conv(torch.ones(1, 3, 6, 6)).shape
        torch.Size([1, 8, 6, 6])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
        rank: int | None = None,
        implementation: Implementation = "factorized",
        init_std: float | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if rank is None:  # the default needs the sizes: check them first
            fn = type(self).__name__
            _positive_ints(fn, ("in_channels", in_channels), ("out_channels", out_channels))
            ks = _tuple(kernel_size, self.dims, fn, "kernel_size", 1)
            rank = min(out_channels, in_channels * math.prod(ks))
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            bias,
            padding_mode,
            format="lowrank",
            rank=rank,
            implementation=implementation,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )
        self.truncation = None

    # low rank by construction: a narrower signature than _FactorizedConvNd.from_dense
    @classmethod
    def from_dense(  # type: ignore[override]
        cls,
        conv: nn.Module,
        *,
        rank: int | None = None,
        implementation: Implementation = "factorized",
    ) -> Any:
        """Start from a trained convolution by truncated SVD of its ``(out, in k..)`` matrix,
        keeping its device, dtype and training/eval mode."""
        fn = f"{cls.__name__}.from_dense"
        dense = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[cls.dims - 1]
        if not isinstance(conv, dense) or conv.groups != 1:
            raise TypeError(f"{fn}: expected an ungrouped {dense.__name__}; got {conv!r}.")
        w = conv.weight
        with errors_named(fn, inner=cls.__name__):
            layer = cls(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.bias is not None,
                conv.padding_mode,
                rank=rank,
                implementation=implementation,
                device=w.device,
                dtype=w.dtype,
            )
            layer._load_dense(w, conv.bias, training=conv.training, fn=fn)
        return layer

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The layer :meth:`config` describes, with random factors (no decomposition is run)."""
        return cls(**_ordered_args(cls._check_config(config)), device=device, dtype=dtype)


class LowRankConv1d(_LowRankConv, FactorizedConv1d):
    __doc__ = _LowRankConv.__doc__


class LowRankConv2d(_LowRankConv, FactorizedConv2d):
    __doc__ = _LowRankConv.__doc__


class LowRankConv3d(_LowRankConv, FactorizedConv3d):
    __doc__ = _LowRankConv.__doc__


def ordered_layers(model: nn.Module) -> list[tuple[str, _Ordered]]:
    """``(name, layer)`` of every ordered low-rank (Maestro) layer in ``model``.

    Args:
        model: the model to look in.

    Returns:
        The pairs in module order (empty when there is none).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = torch.nn.Sequential(LowRankLinear(6, 4), torch.nn.ReLU(), LowRankLinear(4, 2))
        >>> [name for name, _ in ordered_layers(model)]
        ['0', '2']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"ordered_layers: model must be a torch.nn.Module; got {type(model).__name__} "
            "(pass the model itself, not its state_dict or parameters)."
        )
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _Ordered)]


def hierarchical_group_lasso(model: nn.Module) -> torch.Tensor:
    """Sum of the layers' ``group_lasso()`` penalties over the Maestro layers of ``model``.

    Args:
        model: a model with at least one Maestro layer (:class:`LowRankLinear`,
            :class:`LowRankConv2d`, ...).

    Returns:
        A scalar tensor, differentiable: add it (times a weight) to the training loss.

    Raises:
        ValueError: ``model`` has no Maestro layer.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = torch.nn.Sequential(LowRankLinear(6, 4, generator=gen), torch.nn.ReLU())
        >>> penalty = hierarchical_group_lasso(model)
        >>> penalty.shape, penalty.requires_grad, bool(penalty > 0)
        (torch.Size([]), True, True)
    """
    terms = [m.group_lasso() for _, m in ordered_layers(model)]
    if not terms:
        raise ValueError(
            "hierarchical_group_lasso: the model has no LowRankLinear/LowRankConv layer."
        )
    return torch.stack(terms).sum()


class OrderedDropout:
    """Samples truncation ranks of a model's Maestro layers (ordered dropout).

    Args:
        model: a module containing :class:`LowRankLinear` / ``LowRankConv*`` layers.
        mode: ``"per_layer"`` (Maestro's sampler: one layer chosen uniformly, truncated to ``j``
            uniform in ``[min_rank, rank]``; the others run in full), ``"all"`` (every layer
            draws its own ``j``) or ``"shared"`` (one fraction ``p ~ U(0, 1]`` for all layers,
            ``j = ceil(p * rank)``).
        min_rank: smallest truncation drawn.
        generator: random source (CPU ``torch.Generator``).

    ``with sampler.sample() as ranks:`` sets the truncations for the forward passes inside the
    block (``ranks`` maps layer names to the drawn rank) and restores full rank on exit.

    Raises:
        ValueError: an unknown ``mode``, a non-positive ``min_rank``, or a model without
            Maestro layers.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = torch.nn.Sequential(LowRankLinear(8, 8, generator=gen), torch.nn.ReLU(),
        ...                             LowRankLinear(8, 4, generator=gen))
        >>> sampler = OrderedDropout(model, mode="shared", generator=gen)
        >>> with sampler.sample() as ranks:
        ...     y = model(torch.ones(2, 8))  # the truncated network
        ...     print(sorted(ranks), model[0].truncation == ranks["0"])
        ['0', '2'] True
        >>> model[0].truncation is None  # full rank again
        True
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mode: SampleMode = "per_layer",
        min_rank: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        fn = "OrderedDropout"
        if mode not in get_args(SampleMode):
            raise ValueError(f"{fn}: mode must be one of {get_args(SampleMode)}; got {mode!r}.")
        _positive_ints(fn, ("min_rank", min_rank))
        self.model, self.mode, self.min_rank, self.generator = model, mode, min_rank, generator
        if not ordered_layers(model):
            raise ValueError(f"{fn}: the model has no LowRankLinear/LowRankConv layer to sample.")

    def _uniform(self, low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def draw(self) -> dict[str, int]:
        """Truncation ranks for one step (layers absent from the dict run at full rank)."""
        layers = ordered_layers(self.model)
        if self.mode == "per_layer":
            name, layer = layers[self._uniform(0, len(layers) - 1)]
            r = layer.full_rank
            return {name: self._uniform(min(self.min_rank, r), r)}
        if self.mode == "all":
            return {
                n: self._uniform(min(self.min_rank, m.full_rank), m.full_rank) for n, m in layers
            }
        p = float(torch.rand((1,), generator=self.generator)) or 1.0
        return {
            n: max(min(self.min_rank, m.full_rank), math.ceil(p * m.full_rank)) for n, m in layers
        }

    @contextlib.contextmanager
    def sample(self) -> Iterator[dict[str, int]]:
        ranks = self.draw()
        modules = dict(self.model.named_modules())
        try:
            for n, r in ranks.items():
                modules[n].truncation = r
            yield ranks
        finally:
            for n in ranks:
                modules[n].truncation = None
