"""Base class of factorized weights, usable as ``torch.nn.utils.parametrize`` parametrizations.

A :class:`FactorizedWeight` holds no parameters: it is the *format* (layout, rank, how to rebuild
and how to decompose). ``forward(*factors)`` rebuilds the dense weight and
``right_inverse(weight)`` decomposes a dense weight into factors, exactly the contract of
``torch.nn.utils.parametrize.register_parametrization`` (which then stores the factors as
``parametrizations.<name>.original0, original1, ...``). The factorized layers of this package
hold the factors as their own parameters and call the same two methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ._spec import TensorLayout

__all__ = ["FactorizedWeight", "FormatName", "dense_init_std"]

FormatName = Literal["lowrank", "cp", "tucker", "tt", "tr"]


def dense_init_std(fan_in: int) -> float:
    """Standard deviation of PyTorch's default ``nn.Linear`` / ``nn.ConvNd`` weight init.

    ``kaiming_uniform_(a=sqrt(5))`` draws ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)``, whose
    variance is ``b^2 / 3 = 1 / (3 fan_in)``.
    """
    return 1.0 / math.sqrt(3.0 * fan_in)


class FactorizedWeight(nn.Module):
    """A factorized format for a dense weight: rebuild (``forward``) and decompose
    (``right_inverse``).

    Subclasses define ``factor_shapes``, ``to_tensor`` (factors -> tensor of
    ``layout.tensor_shape``), ``_decompose`` (tensor -> factors), ``_random_factors``,
    ``dropout`` and ``reconstruction_flops``.

    Random init (:meth:`init_factors`) targets a weight whose entries have mean 0, variance
    ``sigma^2`` and are pairwise uncorrelated. Then for an input ``x`` independent of the weight,
    each output ``y_o = sum_i W_oi x_i`` has ``Var(y_o) = sigma^2 sum_i E[x_i^2]``: exactly the
    output variance of a dense layer with i.i.d. entries of variance ``sigma^2``. The default
    ``sigma^2 = 1 / (3 fan_in)`` is PyTorch's dense init (:func:`dense_init_std`). Each format
    reaches ``E[W_a^2] = sigma^2`` as ``E||W||^2 / numel`` and uncorrelated entries by sign
    symmetry (flipping the sign of one slice of one factor flips ``W_a`` but not ``W_b`` whenever
    ``a`` and ``b`` differ in that mode's index, so ``E[W_a W_b] = 0``); where possible the
    factors are orthonormal so that ``||W||`` itself, not only its mean, hits the target:

    * low rank: ``U = c Q_U``, ``V = c Q_V`` with orthonormal ``Q`` (Haar), so
      ``||W||^2 = c^4 R`` and ``c^4 = sigma^2 m n / R``;
    * CP: each factor column a random unit vector times ``c``, ``weights = 1``, so
      ``E||W||^2 = R c^(2N)`` and ``c^(2N) = sigma^2 prod(I) / R``;
    * Tucker: orthonormal factors (``||W|| = ||G||``) and a Gaussian core of variance
      ``sigma^2 prod(I) / prod(R)``;
    * TT: left-orthonormal cores ``0..N-2`` (the chain preserves norms) and a Gaussian last core
      with ``E||G_{N-1}||^2 = sigma^2 prod(I)``; the scale is then spread evenly over the cores;
    * TR (no norm-preserving gauge): i.i.d. Gaussian cores of variance ``s^2`` with
      ``E[W_a^2] = prod(r) s^(2N)``, i.e. ``s^(2N) = sigma^2 / prod(r)``.
    """

    format: ClassVar[str] = ""

    def __init__(
        self,
        layout: TensorLayout,
        rank: Any,
        *,
        decomposition: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(layout, TensorLayout):
            raise TypeError(
                f"{type(self).__name__}: layout must be a TensorLayout; "
                f"got {type(layout).__name__}."
            )
        self.layout = layout
        self.rank = self._normalise_rank(rank)
        self.decomposition = dict(decomposition or {})

    # --- subclass interface ------------------------------------------------------------------
    def _normalise_rank(self, rank: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:  # pragma: no cover
        raise NotImplementedError

    def dropout(self, factors: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError  # pragma: no cover

    def reconstruction_flops(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- common API ----------------------------------------------------------------------------
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

        Runs the decomposition engine (:mod:`factorch.decomp`) in the weight's dtype (float16 and
        bfloat16 are decomposed in float32 and cast back) on its device. Not differentiable.
        """
        fn = f"{type(self).__name__}.right_inverse"
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{fn}: weight must be a torch.Tensor; got {type(weight).__name__}.")
        if tuple(weight.shape) != self.weight_shape:
            raise ValueError(
                f"{fn}: weight must have shape {self.weight_shape}; got {tuple(weight.shape)}."
            )
        if not weight.is_floating_point():
            raise TypeError(f"{fn}: weight must be floating point; got {weight.dtype}.")
        dtype = weight.dtype
        work = weight.detach()
        if dtype in (torch.float16, torch.bfloat16):
            work = work.float()
        with torch.no_grad():
            factors = self._decompose(self.layout.to_tensor(work))
        return tuple(f.to(dtype).contiguous() for f in factors)

    def init_factors(
        self,
        *,
        std: float,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Random factors whose rebuilt weight has entries of variance ``std**2`` (class docs).

        Drawn on the CPU from ``generator`` (reproducible across devices), then moved.
        """
        dtype = dtype or torch.get_default_dtype()
        work = torch.float64 if dtype in (torch.float16, torch.bfloat16) else dtype
        factors = self._random_factors(float(std), generator, work)
        return tuple(f.to(device=device, dtype=dtype) for f in factors)

    def _random_factors(
        self, std: float, generator: torch.Generator | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"weight_shape={self.weight_shape}, tensor_shape={self.tensor_shape}, rank={self.rank}"
        )


def keep_mask(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli(1 - p) keep-mask of length ``n``, never all zero, scaled to mean one.

    When every entry is dropped, one uniformly chosen entry is kept (branch-free, so it traces
    under ``torch.compile``); this avoids the empty-rank failure of TensorLy-Torch's CP dropout.
    The rescue raises each entry's keep probability to ``q = 1 - p + p^n / n``, so the mask is
    divided by ``q`` (not ``1 - p``) and stays unbiased: ``E[mask] = 1``.
    """
    probs = torch.full((n,), 1.0 - p, dtype=like.dtype, device=like.device)
    mask = torch.bernoulli(probs)
    rescue = torch.zeros_like(mask)
    rescue[torch.randint(n, (1,), device=like.device)] = 1.0
    mask = torch.maximum(mask, rescue * (mask.sum() == 0).to(mask.dtype))
    return mask / (1.0 - p + p**n / n)


def gaussian(
    shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype)


def orthonormal(
    rows: int, cols: int, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """Haar-distributed ``rows x cols`` matrix with orthonormal columns; for ``cols > rows`` the
    transpose of one with orthonormal rows, scaled by ``sqrt(rows / cols)`` so that the
    expected squared norm of its action on a fixed vector is preserved."""
    if cols > rows:
        return orthonormal(cols, rows, generator, dtype).transpose(0, 1) * math.sqrt(rows / cols)
    q, r = torch.linalg.qr(gaussian((rows, cols), generator, dtype))
    return q * torch.sign(torch.diagonal(r) + (torch.diagonal(r) == 0).to(dtype))
