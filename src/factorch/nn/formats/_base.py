"""The abstract weight format every factorized layer is built on, and the format registry.

A :class:`WeightFormat` is a ``torch.nn.utils.parametrize``-style module without parameters:
the *format* of a dense weight (its :class:`~factorch.nn.TensorLayout`, rank and decomposition
options). ``forward(*factors)`` rebuilds the dense weight, ``right_inverse(weight)`` decomposes
one into factors, exactly the contract of ``torch.nn.utils.parametrize.register_parametrization``.
Beyond that contract the format owns everything that depends on it, so the layers,
:func:`factorch.nn.compress` and its allocator ask the format and never switch on its name:

=====================  =========================================================================
extension point        what it provides (required ones marked *)
=====================  =========================================================================
``normalise_rank`` *   a user's rank checked and put in canonical form (classmethod)
``factor_shapes`` *    the shapes of the factors at this rank
``to_tensor`` *        factors -> the tensor of ``layout.tensor_shape`` (differentiable)
``decompose`` *        a tensor -> factors, through :mod:`factorch.decomp` (not differentiable)
``random_factors`` *   variance-preserving random factors (see :meth:`init_factors`)
``rank_family`` *      ascending ranks a budget search tries (classmethod)
``matrix_layout``      how an ``(out, in)`` matrix folds (default: tensorized features)
``kernel_layout``      how a convolution kernel folds (default: as it is)
``count_params``       stored numbers at a rank (default: from ``factor_shapes``)
``rank_for_ratio``     the rank within a fraction of the dense count (default: family search)
``energy_ladder``      predicted error per rank for the allocator (default: measured)
``linear``             ``x W^T + b`` from the factors (default: rebuild ``W``)
``conv``               the convolution from the factors (default: rebuild the kernel)
``embedding_rows``     table rows from the factors (default: rebuild the table)
``*_flops/_traffic``   the cost model of those three forwards (default: the rebuild's cost)
``dropout``            tensor dropout of rank components (default: refused)
``component_*``        rank-one components for the tensor lasso and pruning (default: refused)
=====================  =========================================================================

Formats are registered by name (:func:`register_format`); layers take the name
(``format="cp"``) and look the class up with :func:`get_format`. A new format is one file with
one :class:`WeightFormat` subclass and one :func:`register_format` call. Formats are
dtype-agnostic: real and complex weights go through the same code wherever the decomposition
engine supports the dtype (complex CP is refused by :func:`factorch.decomp.cp` itself).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import as_tensor
from ..._numerics import HALF_DTYPES, autocast_disabled, check_memory, power_of_two_scale
from ...decomp.internal import Rank, as_int, budget_error, check_ratio, search_family
from .._allocation import Candidate
from .._spec import TensorizedShape, TensorLayout
from ._geometry import ConvGeometry

__all__ = [
    "MEMORY_WEIGHT",
    "WeightFormat",
    "check_weight_finite",
    "dense_init_std",
    "gaussian",
    "int_rank",
    "keep_mask",
    "orthonormal",
    "row_digits",
]

MEMORY_WEIGHT = 32
"""Cost of one number written to (and read back from) memory, in FLOPs: roughly peak FLOP rate /
memory bandwidth in numbers per second (CPU core: ~100 GFLOP/s / ~3 G numbers/s). The cost model
of ``implementation="auto"`` is ``FLOPs + MEMORY_WEIGHT x intermediate numbers``."""

MAX_MEASURED_RUNGS = 12
"""Ranks the default (measured) :meth:`WeightFormat.energy_ladder` decomposes at, at most."""


def dense_init_std(fan_in: int) -> float:
    """Standard deviation of PyTorch's default ``nn.Linear`` / ``nn.ConvNd`` weight init.

    ``kaiming_uniform_(a=sqrt(5))`` draws ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)``, whose
    variance is ``b^2 / 3 = 1 / (3 fan_in)``.

    Args:
        fan_in: the number of inputs of one output (``in`` or ``in * prod(kernel_size)``).

    Returns:
        ``1 / sqrt(3 fan_in)``.

    Raises:
        TypeError: ``fan_in`` is not an int.
        ValueError: ``fan_in`` below 1.

    Example:
        >>> round(dense_init_std(3), 6)
        0.333333
    """
    if isinstance(fan_in, bool) or not isinstance(fan_in, int):
        raise TypeError(f"dense_init_std: fan_in must be an int; got {type(fan_in).__name__}.")
    if fan_in < 1:
        raise ValueError(f"dense_init_std: fan_in must be at least 1; got {fan_in!r}.")
    return 1.0 / math.sqrt(3.0 * fan_in)


class WeightFormat(nn.Module, metaclass=abc.ABCMeta):
    """A factorized format for a dense weight (abstract base; see the module docstring).

    Args:
        layout: how the dense weight folds into the factorized tensor.
        rank: the format's rank (checked by :meth:`normalise_rank`).
        decomposition: options for :meth:`decompose` (passed to :mod:`factorch.decomp`).

    Random init (:meth:`init_factors`) targets a weight whose entries have mean 0, variance
    ``sigma^2`` and are pairwise uncorrelated. Then for an input ``x`` independent of the weight,
    each output ``y_o = sum_i W_oi x_i`` has ``Var(y_o) = sigma^2 sum_i E[x_i^2]``: exactly the
    output variance of a dense layer with i.i.d. entries of variance ``sigma^2``. The default
    ``sigma^2 = 1 / (3 fan_in)`` is PyTorch's dense init (:func:`dense_init_std`). Each format
    reaches ``E[W_a^2] = sigma^2`` as ``E||W||^2 / numel`` and uncorrelated entries by sign
    symmetry (flipping the sign of one slice of one factor flips ``W_a`` but not ``W_b`` whenever
    ``a`` and ``b`` differ in that mode's index, so ``E[W_a W_b] = 0``); the built-in formats use
    orthonormal factors where possible so that ``||W||`` itself, not only its mean, hits the
    target (see each format's ``random_factors``).

    Raises:
        TypeError: ``layout`` not a :class:`TensorLayout` or ``decomposition`` not a mapping
            (each format's ``rank`` checks add their own errors).

    Example:
        >>> fmt = get_format("cp")(TensorLayout.identity((4, 6)), 3)
        >>> isinstance(fmt, WeightFormat), fmt.format, fmt.n_params
        (True, 'cp', 33)
    """

    format: ClassVar[str] = ""
    """The registry name (``"cp"``); also what configs and reports record."""

    budget_monotone: ClassVar[bool] = True
    """Whether :meth:`count_params` increases along :meth:`rank_family` (binary search)."""

    compress_options: ClassVar[Mapping[str, Any]] = {}
    """Decomposition options :func:`~factorch.nn.compress` uses unless its ``decomposition=``
    sets them (e.g. a looser stopping tolerance for an iterative fit: a compressed layer needs
    its error to a few digits, not to convergence)."""

    def __init__(
        self,
        layout: TensorLayout,
        rank: Any,
        *,
        decomposition: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(layout, TensorLayout):
            raise TypeError(f"{name}: layout must be a TensorLayout; got {type(layout).__name__}.")
        if decomposition is not None and not isinstance(decomposition, Mapping):
            raise TypeError(
                f"{name}: decomposition must be a mapping of options or None; "
                f"got {type(decomposition).__name__}."
            )
        self.layout = layout
        self.rank: Rank = type(self).normalise_rank(layout, rank, fn=name)
        self.decomposition: dict[str, Any] = dict(decomposition or {})

    # --- required extension points ---------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> Rank:
        """``rank`` checked against ``layout`` and in canonical form; errors name ``fn``.

        ``fixed_modes`` (modes a convolution keeps at full rank, see :meth:`kernel_fixed_modes`)
        lets an int rank expand to full size on those modes.
        """

    @property
    @abc.abstractmethod
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the factors, in the order ``forward`` takes them."""

    @abc.abstractmethod
    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        """The factorized tensor (``layout.tensor_shape``) from the factors. Differentiable."""

    @abc.abstractmethod
    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Factors of a finite tensor of ``layout.tensor_shape`` (float32/64 or complex, scaled to
        ``max|x|`` in ``[0.5, 1)``, autocast off: :meth:`right_inverse` prepares it)."""

    @abc.abstractmethod
    def random_factors(
        self, std: float, generator: torch.Generator | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, ...]:
        """Random factors (CPU, ``dtype``) whose weight has entries of variance ``std**2``."""

    @classmethod
    @abc.abstractmethod
    def rank_family(cls, layout: TensorLayout, fixed_modes: Sequence[int] = ()) -> list[Rank]:
        """Canonical ranks a budget search tries, ascending in parameters, the last exact."""

    # --- layouts ---------------------------------------------------------------------------------
    @classmethod
    def matrix_layout(cls, spec: TensorizedShape) -> TensorLayout:
        """How an ``(out, in)`` matrix (linear weight, embedding table) folds for this format."""
        return TensorLayout.tensorized(spec)

    @classmethod
    def kernel_layout(cls, weight_shape: Sequence[int]) -> TensorLayout:
        """How a convolution kernel ``(out, in, k_1..k_d)`` folds for this format."""
        return TensorLayout.identity(weight_shape)

    @classmethod
    def kernel_fixed_modes(cls, layout: TensorLayout, dims: int) -> tuple[int, ...]:
        """Modes of a convolution kernel's tensor kept at full rank by default (none)."""
        return ()

    # --- budget ----------------------------------------------------------------------------------
    @classmethod
    def count_params(cls, layout: TensorLayout, rank: Rank) -> int:
        """Numbers stored at a canonical ``rank`` (default: from :attr:`factor_shapes`)."""
        return sum(math.prod(s) for s in cls(layout, rank).factor_shapes)

    @classmethod
    def refine_rank(
        cls, layout: TensorLayout, rank: Rank, fixed_modes: Sequence[int], budget: float
    ) -> Rank:
        """Improve the family member a budget search chose, staying within ``budget``."""
        return rank

    @classmethod
    def rank_for_ratio(
        cls,
        layout: TensorLayout,
        ratio: float,
        *,
        fixed_modes: Sequence[int] = (),
        fn: str = "rank_for_ratio",
    ) -> Rank:
        """The rank of :meth:`rank_family` with the largest count within ``ratio`` of the dense
        count (refined by :meth:`refine_rank`); ``ValueError`` naming ``fn`` when none fits."""
        value = check_ratio(ratio, fn)
        shape = layout.tensor_shape
        budget = value * math.prod(shape)
        family = cls.rank_family(layout, fixed_modes)

        def count(r: Rank) -> int:
            return cls.count_params(layout, r)

        best = search_family(family, count, budget, monotone=cls.budget_monotone)
        if best is None:
            raise budget_error(fn, cls.format, value, shape, family[0], count(family[0]))
        return cls.refine_rank(layout, family[best], fixed_modes, budget)

    @classmethod
    def resolve_rank(
        cls,
        layout: TensorLayout,
        *,
        rank: object,
        ratio: float | None,
        fn: str,
        fixed_modes: Sequence[int] = (),
    ) -> Rank:
        """The rank given (checked) or the one :meth:`rank_for_ratio` picks: exactly one."""
        if (rank is None) == (ratio is None):
            raise ValueError(
                f"{fn}: give exactly one of rank= (an int or tuple) and ratio= (a fraction of "
                f"the dense parameter count); got rank={rank!r}, ratio={ratio!r}."
            )
        if ratio is not None:
            return cls.rank_for_ratio(layout, ratio, fixed_modes=fixed_modes, fn=fn)
        if isinstance(rank, float):
            raise TypeError(
                f"{fn}: rank must be an int or a tuple of ints; got the float {rank!r}. For a "
                "fraction of the dense parameter count pass ratio= instead."
            )
        return cls.normalise_rank(layout, rank, fn=fn, fixed_modes=fixed_modes)

    # --- allocator -------------------------------------------------------------------------------
    @classmethod
    def energy_ladder(
        cls,
        tensor: torch.Tensor,
        layout: TensorLayout,
        *,
        fixed_modes: Sequence[int] = (),
        decomposition: Mapping[str, Any] | None = None,
    ) -> list[Candidate]:
        """Predicted ``(rank, params, e^2)`` per rank, ascending in params, below the dense count.

        ``tensor`` is the weight folded by ``layout``, finite, in float64 (or complex128) and
        scaled to ``max|x|`` near 1; ``e^2`` is the relative squared error. The default measures
        it: the decomposition at up to ``MAX_MEASURED_RUNGS = 12`` ranks spread over
        :meth:`rank_family`. Built-in formats override it with a prediction from singular values.
        """
        dense = math.prod(layout.tensor_shape)
        family = [
            r for r in cls.rank_family(layout, fixed_modes) if cls.count_params(layout, r) < dense
        ]
        if len(family) > MAX_MEASURED_RUNGS:
            step = (len(family) - 1) / (MAX_MEASURED_RUNGS - 1)
            family = [family[round(i * step)] for i in range(MAX_MEASURED_RUNGS)]
        total = float(tensor.abs().pow(2).sum()) or 1.0
        out = []
        for rank in family:
            fmt = cls(layout, rank, decomposition=decomposition)
            approx = fmt.to_tensor(*fmt.decompose(tensor))
            err2 = float((approx - tensor).abs().pow(2).sum()) / total
            out.append(Candidate(rank, cls.count_params(layout, rank), min(err2, 1.0)))
        return out

    # --- forwards (default: rebuild the weight) --------------------------------------------------
    def linear(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        spec: TensorizedShape,
    ) -> torch.Tensor:
        """``x W^T + b`` for ``x`` of shape ``(batch, in)`` contracting the factors directly."""
        return F.linear(x, self(*factors), bias)

    def conv(
        self,
        factors: Sequence[torch.Tensor],
        x: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        """The convolution of a batched ``x`` with the kernel, from the factors."""
        return geometry.conv(x, self(*factors), bias)

    def embedding_rows(
        self, factors: Sequence[torch.Tensor], idx: torch.Tensor, spec: TensorizedShape
    ) -> torch.Tensor:
        """Rows ``idx`` (1-D, in range) of the ``(rows, dim)`` table, from the factors."""
        return self(*factors)[idx]

    # --- cost model of those forwards ------------------------------------------------------------
    def reconstruction_flops(self) -> int:
        """FLOPs of :meth:`to_tensor` (default: ``2 numel max(rank)``, override for accuracy)."""
        width = self.rank if isinstance(self.rank, int) else max(self.rank)
        return 2 * math.prod(self.layout.tensor_shape) * width

    def linear_flops(self, spec: TensorizedShape, batch: int) -> int:
        """FLOPs of :meth:`linear` on ``batch`` rows."""
        return self.reconstruction_flops() + 2 * batch * self.dense_params

    def linear_traffic(self, spec: TensorizedShape, batch: int) -> int:
        """Numbers :meth:`linear` writes to intermediate tensors."""
        return 2 * self.dense_params

    def conv_flops(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        return self.reconstruction_flops() + geometry.dense_flops(input_shape)

    def conv_traffic(self, geometry: ConvGeometry, input_shape: Sequence[int]) -> int:
        return 2 * self.dense_params

    def embedding_flops(self, spec: TensorizedShape, n: int) -> int:
        return self.reconstruction_flops() + n * spec.in_features

    def embedding_traffic(self, spec: TensorizedShape, n: int) -> int:
        """Gathered rows and partial products: about ``n`` rows of the rank-widened dimension."""
        width = self.rank if isinstance(self.rank, int) else max(self.rank)
        return n * spec.in_features * width

    # --- rank components -------------------------------------------------------------------------
    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        """Factors with rank components dropped at random (tensor dropout), unbiased."""
        raise ValueError(
            f"{type(self).__name__}: format {self.format!r} defines no rank components to drop; "
            "set rank_dropout=0."
        )

    def component_magnitudes(self, factors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Magnitude of each rank-one component (formats that have them). Differentiable."""
        raise ValueError(
            f"component_magnitudes: format {self.format!r} has no rank-one components (the "
            "built-in 'cp' and 'lowrank' formats have them)."
        )

    def component_penalty(
        self, factors: Sequence[torch.Tensor], factor_decay: float
    ) -> torch.Tensor:
        """The tensor-lasso penalty of these factors (see :func:`factorch.nn.tensor_lasso`)."""
        raise ValueError(
            f"tensor_lasso: format {self.format!r} has no rank-one components to sparsify (the "
            "built-in 'cp' and 'lowrank' formats have them)."
        )

    def select_components(
        self, factors: Sequence[torch.Tensor], keep: torch.Tensor
    ) -> tuple[Rank, tuple[torch.Tensor, ...]]:
        """``(new rank, factors)`` keeping the rank-one components ``keep`` (1-D indices)."""
        raise ValueError(
            f"prune_components_: format {self.format!r} has no rank-one components to prune "
            "(the built-in 'cp' and 'lowrank' formats have them)."
        )

    @property
    def has_components(self) -> bool:
        """Whether the format has rank-one components (tensor lasso, pruning)."""
        return type(self).component_magnitudes is not WeightFormat.component_magnitudes

    # --- common API ------------------------------------------------------------------------------
    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self.layout.weight_shape

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        return self.layout.tensor_shape

    @property
    def n_params(self) -> int:
        """Number of stored numbers (all factors)."""
        return sum(math.prod(s) for s in self.factor_shapes)

    @property
    def dense_params(self) -> int:
        return math.prod(self.weight_shape)

    def forward(self, *factors: torch.Tensor) -> torch.Tensor:
        """Rebuild the dense weight from the factors. Differentiable."""
        return self.layout.to_weight(self.to_tensor(*factors))

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decompose a dense weight into factors (the inverse map of :meth:`forward`).

        Runs the decomposition engine (:mod:`factorch.decomp`) with autocast off, in the weight's
        dtype (float16 and bfloat16 are decomposed in float32 and cast back; complex weights
        where the engine supports them) on its device, on the weight divided by a power of two
        near its largest entry (exact), so tiny and huge weights decompose as well as ``O(1)``
        ones. An all-zero weight gives all-zero factors. Numpy arrays are accepted. Not
        differentiable (the weight is detached).

        Raises:
            TypeError: ``weight`` is not a floating or complex tensor (or array).
            ValueError: wrong shape, or NaN/Inf entries.
        """
        fn = f"{type(self).__name__}.right_inverse"
        weight = as_tensor(weight, fn, "weight")
        if tuple(weight.shape) != self.weight_shape:
            raise ValueError(
                f"{fn}: weight must have shape {self.weight_shape}; got {tuple(weight.shape)}."
            )
        if not (weight.is_floating_point() or weight.is_complex()):
            raise TypeError(f"{fn}: weight must be floating point or complex; got {weight.dtype}.")
        check_weight_finite(weight, fn)
        dtype = weight.dtype
        work = weight.detach()
        if not bool(work.any()):  # exactly represented by zero factors (no decomposition)
            zeros = (torch.zeros(s, dtype=dtype, device=work.device) for s in self.factor_shapes)
            return tuple(zeros)
        if dtype in HALF_DTYPES:
            work = work.float()
        scale = power_of_two_scale(work)
        with torch.no_grad(), autocast_disabled():
            factors = self.decompose(self.layout.to_tensor(work / scale))
            factors = self.scale_factors(factors, scale)
        return tuple(f.to(dtype).contiguous() for f in factors)

    def scale_factors(
        self, factors: Sequence[torch.Tensor], scale: float
    ) -> tuple[torch.Tensor, ...]:
        """Factors of ``scale`` times the tensor of ``factors``: every factor times
        ``scale ** (1 / n_factors)`` (the tensor is multilinear in its factors)."""
        if scale == 1.0:
            return tuple(factors)
        per = scale ** (1.0 / len(factors))
        return tuple(f * per for f in factors)

    def init_factors(
        self,
        *,
        std: float,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Random factors whose rebuilt weight has entries of variance ``std**2`` (class docs).

        Drawn on the CPU from ``generator`` (reproducible across devices), then moved. Refuses
        (``ValueError``) factors that cannot fit the device's memory before allocating them.
        """
        dtype = dtype or torch.get_default_dtype()
        check_memory(  # half precision is drawn in float64, then cast
            self.n_params,
            torch.float64 if dtype in HALF_DTYPES else dtype,
            device if device is not None else "cpu",
            type(self).__name__,
            f"{self.format} factors at rank {self.rank}",
        )
        work = torch.float64 if dtype in HALF_DTYPES else dtype
        factors = self.random_factors(float(std), generator, work)
        return tuple(f.to(device=device, dtype=dtype) for f in factors)

    # --- config ----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``format``, ``rank`` and ``layout`` (its four
        tuples as lists). :func:`format_from_config` rebuilds the format from it (decomposition
        options are not recorded: they only matter for :meth:`right_inverse`)."""
        rank = self.rank if isinstance(self.rank, int) else list(self.rank)
        layout = self.layout
        return {
            "format": self.format,
            "rank": rank,
            "layout": {
                "weight_shape": list(layout.weight_shape),
                "split": list(layout.split),
                "order": list(layout.order),
                "tensor_shape": list(layout.tensor_shape),
            },
        }

    def extra_repr(self) -> str:
        return (
            f"weight_shape={self.weight_shape}, tensor_shape={self.tensor_shape}, rank={self.rank}"
        )


def check_weight_finite(weight: torch.Tensor, fn: str) -> None:
    """``ValueError`` naming NaN (or Inf) entries of a weight, before any decomposition.

    Args:
        weight: the dense weight.
        fn: the caller's name, which starts the message.

    Raises:
        ValueError: ``weight`` has a NaN or Inf entry (the message counts them).

    Example:
        >>> check_weight_finite(torch.ones(2, 3), "demo")  # finite: nothing happens
        >>> check_weight_finite(torch.tensor([1.0, float("nan")]), "demo")
        Traceback (most recent call last):
        ...
        ValueError: demo: the weight contains 1 NaN and 0 Inf entries; ...
    """
    if weight.numel() and not bool(torch.isfinite(weight).all()):
        n_nan = int(torch.isnan(weight).sum())
        n_inf = int(torch.isinf(weight).sum())
        raise ValueError(
            f"{fn}: the weight contains {n_nan} NaN and {n_inf} Inf entries; a weight must be "
            "finite to be factorized (fix or re-initialise the layer first)."
        )


def int_rank(rank: object, fn: str) -> int:
    """An integral rank (numpy integers accepted) as a Python int; ``TypeError`` otherwise."""
    value = as_int(rank)
    if value is None:
        raise TypeError(f"{fn}: rank must be a positive int; got {type(rank).__name__}.")
    return value


def row_digits(idx: torch.Tensor, factors: Sequence[int]) -> list[torch.Tensor]:
    """Row-major multi-index of flat row indices (first factor slowest).

    Args:
        idx: integer flat indices, each below ``prod(factors)``.
        factors: the sizes the index is split into.

    Returns:
        One tensor of digits per factor, each of ``idx``'s shape.

    Raises:
        TypeError: ``idx`` is not an integer tensor.
        ValueError: a factor below 1.

    Example:
        >>> [d.tolist() for d in row_digits(torch.tensor([0, 5, 11]), (3, 4))]
        [[0, 1, 2], [0, 1, 3]]
    """
    if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.is_complex():
        raise TypeError(f"row_digits: idx must be an integer tensor; got {_describe(idx)}.")
    if any(not f >= 1 for f in factors):
        raise ValueError(f"row_digits: every factor must be at least 1; got {tuple(factors)}.")
    out, stride = [], math.prod(factors)
    for f in factors:
        stride //= f
        out.append(torch.div(idx, stride, rounding_mode="floor") % f)
    return out


# --- random factors and masks --------------------------------------------------------------------
def keep_mask(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli(1 - p) keep-mask of length ``n`` (real dtype of ``like``), never all zero,
    scaled to mean one.

    When every entry is dropped, one uniformly chosen entry is kept (branch-free, so it traces
    under ``torch.compile``); this avoids the empty-rank failure of TensorLy-Torch's CP dropout.
    The rescue raises each entry's keep probability to ``q = 1 - p + p^n / n``, so the mask is
    divided by ``q`` (not ``1 - p``) and stays unbiased: ``E[mask] = 1``.

    Args:
        n: the mask's length.
        p: the drop probability.
        like: a tensor whose (real) dtype and device the mask takes; the global RNG draws it.

    Returns:
        ``(n,)`` entries, each 0 or ``1 / q``, at least one of them nonzero.

    Raises:
        TypeError: ``n`` is not an int or ``p`` not a real number.
        ValueError: ``n`` below 1 or ``p`` outside ``[0, 1]``.

    Example:
        >>> mask = keep_mask(4, 0.5, torch.zeros(1))
        >>> mask.shape, bool((mask > 0).any())
        (torch.Size([4]), True)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"keep_mask: n must be an int; got {type(n).__name__}.")
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"keep_mask: p must be a float in [0, 1]; got {type(p).__name__}.")
    if n < 1:
        raise ValueError(f"keep_mask: n must be at least 1; got {n!r}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"keep_mask: the drop probability p must be in [0, 1]; got {p!r}.")
    probs = torch.full((n,), 1.0 - p, dtype=like.real.dtype, device=like.device)
    mask = torch.bernoulli(probs)
    rescue = torch.zeros_like(mask)
    rescue[torch.randint(n, (1,), device=like.device)] = 1.0
    mask = torch.maximum(mask, rescue * (mask.sum() == 0).to(mask.dtype))
    return mask / (1.0 - p + p**n / n)


def gaussian(
    shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal entries (complex: ``E|z|^2 = 1``).

    Args:
        shape: the tensor's shape.
        generator: the random source (default: torch's global one).
        dtype: a real or complex floating dtype.

    Returns:
        A CPU tensor of ``shape`` and ``dtype``.

    Raises:
        TypeError: ``dtype`` is not a floating or complex dtype.

    Example:
        >>> gaussian((2, 3), torch.Generator().manual_seed(0), torch.complex64).shape
        torch.Size([2, 3])
    """
    _check_float_dtype(dtype, "gaussian")
    return torch.randn(shape, generator=generator, dtype=dtype)


def _check_float_dtype(dtype: torch.dtype, fn: str) -> None:
    if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(
            f"{fn}: dtype must be a floating or complex torch.dtype (e.g. torch.float32); "
            f"got {dtype!r}."
        )


def orthonormal(
    rows: int, cols: int, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """Haar-distributed ``rows x cols`` matrix with orthonormal columns; for ``cols > rows`` the
    transpose of one with orthonormal rows, scaled by ``sqrt(rows / cols)`` so that the
    expected squared norm of its action on a fixed vector is preserved.

    Args:
        rows: the number of rows.
        cols: the number of columns.
        generator: the random source (default: torch's global one).
        dtype: a floating dtype.

    Returns:
        A CPU ``(rows, cols)`` tensor of ``dtype``.

    Raises:
        ValueError: ``rows`` or ``cols`` below 1.
        TypeError: ``dtype`` is not a floating or complex dtype.

    Example:
        >>> q = orthonormal(5, 3, torch.Generator().manual_seed(0), torch.float64)
        >>> torch.allclose(q.T @ q, torch.eye(3, dtype=torch.float64))
        True
    """
    if not (rows >= 1 and cols >= 1):
        raise ValueError(f"orthonormal: rows and cols must be at least 1; got {rows!r}, {cols!r}.")
    _check_float_dtype(dtype, "orthonormal")
    if cols > rows:
        return orthonormal(cols, rows, generator, dtype).transpose(0, 1) * math.sqrt(rows / cols)
    q, r = torch.linalg.qr(gaussian((rows, cols), generator, dtype))
    d = torch.diagonal(r)
    return q * torch.sgn(d + (d == 0).to(dtype))


def _describe(obj: object) -> str:
    if isinstance(obj, torch.Tensor):
        return f"a {obj.dtype} tensor"
    return type(obj).__name__
