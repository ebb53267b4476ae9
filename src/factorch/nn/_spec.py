"""Tensorized shapes: how a layer's dense weight is folded into the tensor that gets factorized.

Two immutable value types, parsed once at layer construction:

* :class:`TensorizedShape` says how the ``out`` and ``in`` features of a matrix weight split into
  factors (``1024 -> (32, 32)``), chosen by :meth:`TensorizedShape.auto` or given.
* :class:`TensorLayout` is the exact index map between the dense weight and the factorized tensor:
  ``tensor = weight.reshape(split).permute(order).reshape(tensor_shape)``. It lets one factorized
  format serve linear layers (tensorized features), convolutions (kernel modes, possibly
  reordered) and embeddings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["TensorLayout", "TensorizedShape", "balanced_factorization"]


def _positive_ints(fn: str, *named: tuple[str, object]) -> None:
    """Each ``(name, value)`` is a positive Python int: ``TypeError`` for another type (bools
    included), ``ValueError`` for an int below 1."""
    for name, v in named:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(
                f"{fn}: {name} must be a positive int; got {type(v).__name__} {v!r} (pass an "
                "int, e.g. int(x))."
            )
        if v < 1:
            raise ValueError(f"{fn}: {name} must be a positive int; got {v!r}.")


def _positive_tuple(value: object, fn: str, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise TypeError(f"{fn}: {name} must be a non-empty tuple of positive ints; got {value!r}.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(
                f"{fn}: {name} must contain positive ints; got {type(v).__name__} {v!r} in "
                f"{tuple(value)!r} (pass ints, e.g. (4, 8))."
            )
        if v < 1:
            raise ValueError(f"{fn}: {name} must contain positive ints; got {tuple(value)!r}.")
        out.append(int(v))
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _best_split(n: int, k: int, floor: int) -> tuple[int, ...] | None:
    """Non-increasing factors (each >= floor) of n into k parts minimising the largest part."""
    if k == 1:
        return (n,) if n >= floor else None
    best: tuple[int, ...] | None = None
    # the largest part d is at least n ** (1/k); try candidates ascending, first valid wins
    for d in sorted(x for x in _divisors(n) if x >= floor and x**k >= n):
        rest = _best_split(n // d, k - 1, floor)
        if rest is not None and rest[0] <= d:
            cand = (d, *rest)
            if best is None or (cand[0], -cand[-1]) < (best[0], -best[-1]):
                best = cand
            break
    return best


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def balanced_factorization(n: int, k: int) -> tuple[int, ...]:
    """Split ``n`` into ``k`` integer factors as equal as possible (largest factor minimal).

    Factors are returned in non-increasing order and multiply to ``n``; a prime ``n`` gives
    ``(n, 1, ..., 1)``.

    Args:
        n: the number to split (a positive int).
        k: the number of factors (a positive int).

    Returns:
        ``k`` positive ints, non-increasing, whose product is ``n``.

    Raises:
        TypeError: ``n`` or ``k`` not an int.
        ValueError: ``n`` or ``k`` below 1.

    Example:
        >>> balanced_factorization(1024, 3), balanced_factorization(7, 2)
        ((16, 8, 8), (7, 1))
    """
    fn = "balanced_factorization"
    _positive_ints(fn, ("n", n), ("k", k))
    out = _best_split(n, k, 1)
    if out is None:  # pragma: no cover - floor 1 always succeeds
        raise ValueError(f"{fn}: cannot split {n} into {k} factors.")
    return out


@dataclass(frozen=True)
class TensorizedShape:
    """How a ``(out_features, in_features)`` weight matrix is folded into a tensor.

    ``W[o, i]`` with ``o = ravel(o_1, ..., o_p)`` and ``i = ravel(i_1, ..., i_q)`` (row-major, the
    first factor varies slowest) becomes the tensor ``W[o_1, ..., o_p, i_1, ..., i_q]`` (CP,
    Tucker) or the TT-/TR-matrix with cores ``(r_k, o_k, i_k, r_{k+1})`` (the shorter side is
    padded with 1s to pair the factors).

    Attributes:
        out_factors: factors of ``out_features`` (for an embedding: of ``num_embeddings``).
        in_factors: factors of ``in_features`` (for an embedding: of ``embedding_dim``).

    Raises:
        TypeError: a side that is not a non-empty sequence, or a factor that is not an int.
        ValueError: a factor below 1.

    Example:
        >>> TensorizedShape.auto(1024, 512, n_factors=2)
        TensorizedShape(out_factors=(32, 32), in_factors=(32, 16))
    """

    out_factors: tuple[int, ...]
    in_factors: tuple[int, ...]

    def __post_init__(self) -> None:
        fn = "TensorizedShape"
        object.__setattr__(
            self, "out_factors", _positive_tuple(self.out_factors, fn, "out_factors")
        )
        object.__setattr__(self, "in_factors", _positive_tuple(self.in_factors, fn, "in_factors"))

    @classmethod
    def auto(
        cls, out_features: int, in_features: int, *, n_factors: int | tuple[int, int] = 2
    ) -> TensorizedShape:
        """Balanced factorization of each side into ``n_factors`` factors (an int for both sides
        or an ``(n_out, n_in)`` pair); see :func:`balanced_factorization`."""
        fn = "TensorizedShape.auto"
        n_out, n_in = (n_factors, n_factors) if isinstance(n_factors, int) else n_factors
        _positive_ints(
            fn,
            ("out_features", out_features),
            ("in_features", in_features),
            ("n_factors", n_out),
            ("n_factors", n_in),
        )
        return cls(
            balanced_factorization(out_features, n_out), balanced_factorization(in_features, n_in)
        )

    @property
    def out_features(self) -> int:
        return math.prod(self.out_factors)

    @property
    def in_features(self) -> int:
        return math.prod(self.in_factors)

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        """``out_factors + in_factors``: the tensor CP and Tucker factorize."""
        return self.out_factors + self.in_factors

    def pairs(self) -> tuple[tuple[int, int], ...]:
        """``(o_k, i_k)`` per TT/TR-matrix core, the shorter side padded with 1s."""
        n = max(len(self.out_factors), len(self.in_factors))
        out = self.out_factors + (1,) * (n - len(self.out_factors))
        inn = self.in_factors + (1,) * (n - len(self.in_factors))
        return tuple(zip(out, inn))

    def check(self, out_features: int, in_features: int, fn: str) -> None:
        """Raise ``ValueError`` unless the factors multiply to the layer's feature counts."""
        if self.out_features != out_features or self.in_features != in_features:
            raise ValueError(
                f"{fn}: shape {self.out_factors} x {self.in_factors} folds a "
                f"{self.out_features} x {self.in_features} matrix but the layer is "
                f"{out_features} x {in_features}; give factors whose products match, or use "
                "TensorizedShape.auto(out_features, in_features)."
            )


@dataclass(frozen=True)
class TensorLayout:
    """Index map ``tensor = weight.reshape(split).permute(order).reshape(tensor_shape)``.

    ``tensor_shape`` may only merge consecutive axes of the permuted ``split`` shape.

    Attributes:
        weight_shape: shape of the dense weight the layer uses.
        split: ``weight_shape`` split into finer axes (same number of elements).
        order: permutation of the ``split`` axes.
        tensor_shape: the factorized tensor's shape (consecutive permuted axes merged).

    Raises:
        TypeError: a shape that is not a non-empty sequence.
        ValueError: a size that is not a positive int, an ``order`` that is not a permutation of the
            ``split`` axes, or shapes holding different numbers of elements.

    Example:
        >>> TensorLayout.tensorized(TensorizedShape((4, 2), (3,)))
        TensorLayout(weight_shape=(8, 3), split=(4, 2, 3), order=(0, 1, 2), tensor_shape=(4, 2, 3))
    """

    weight_shape: tuple[int, ...]
    split: tuple[int, ...]
    order: tuple[int, ...]
    tensor_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        fn = "TensorLayout"
        for name in ("weight_shape", "split", "tensor_shape"):
            object.__setattr__(self, name, _positive_tuple(getattr(self, name), fn, name))
        order = tuple(int(o) for o in self.order)
        if sorted(order) != list(range(len(self.split))):
            raise ValueError(f"{fn}: order must permute range({len(self.split)}); got {order}.")
        object.__setattr__(self, "order", order)
        n = math.prod(self.weight_shape)
        if math.prod(self.split) != n or math.prod(self.tensor_shape) != n:
            raise ValueError(
                f"{fn}: split {self.split} and tensor_shape {self.tensor_shape} must hold "
                f"prod(weight_shape) = {n} elements."
            )

    # --- constructors ----------------------------------------------------------------------------
    @classmethod
    def identity(cls, weight_shape: Sequence[int]) -> TensorLayout:
        shape = tuple(weight_shape)
        return cls(shape, shape, tuple(range(len(shape))), shape)

    @classmethod
    def tensorized(cls, spec: TensorizedShape) -> TensorLayout:
        """``(O, I)`` weight as the tensor ``(o_1..o_p, i_1..i_q)`` (CP, Tucker)."""
        split = spec.tensor_shape
        return cls((spec.out_features, spec.in_features), split, tuple(range(len(split))), split)

    @classmethod
    def matrix_chain(cls, spec: TensorizedShape) -> TensorLayout:
        """``(O, I)`` weight as the chain tensor with modes ``(o_k i_k)`` (TT-/TR-matrix cores)."""
        pairs = spec.pairs()
        n = len(pairs)
        split = tuple(p[0] for p in pairs) + tuple(p[1] for p in pairs)
        order = tuple(j for k in range(n) for j in (k, n + k))
        return cls(
            (spec.out_features, spec.in_features), split, order, tuple(o * i for o, i in pairs)
        )

    @classmethod
    def conv_chain(cls, weight_shape: Sequence[int]) -> TensorLayout:
        """``(out, in, k_1..k_d)`` kernel as the chain ``(in, k_1..k_d, out)`` (TT/TR convs)."""
        shape = tuple(weight_shape)
        order = (*range(1, len(shape)), 0)
        return cls(shape, shape, order, tuple(shape[o] for o in order))

    # --- maps ------------------------------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        return self.tensor_shape == self.weight_shape and self.order == tuple(
            range(len(self.order))
        )

    def to_tensor(self, weight: torch.Tensor) -> torch.Tensor:
        """Dense weight (``weight_shape``) to the factorized tensor's shape."""
        if self.is_identity:
            return weight
        return weight.reshape(self.split).permute(self.order).reshape(self.tensor_shape)

    def to_weight(self, tensor: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_tensor`."""
        if self.is_identity:
            return tensor
        permuted = tuple(self.split[o] for o in self.order)
        inverse = tuple(sorted(range(len(self.order)), key=self.order.__getitem__))
        return tensor.reshape(permuted).permute(inverse).reshape(self.weight_shape)


def resolve_shape(
    shape: TensorizedShape | None,
    out_features: int,
    in_features: int,
    fn: str,
    *,
    n_factors: int | tuple[int, int] = 2,
) -> TensorizedShape:
    """The folding a layer was given, checked against its sizes, or by default
    ``TensorizedShape.auto(out_features, in_features, n_factors=n_factors)``."""
    if shape is None:
        shape = TensorizedShape.auto(out_features, in_features, n_factors=n_factors)
    elif not isinstance(shape, TensorizedShape):
        raise TypeError(f"{fn}: shape must be a TensorizedShape; got {type(shape).__name__}.")
    shape.check(out_features, in_features, fn)
    return shape
