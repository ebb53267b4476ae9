"""Shared base class and validation helpers for the factorized tensor types.

Every factorized tensor in :mod:`factorch.tensors` is a frozen dataclass holding torch tensors
(weights, factors, cores). It validates its structure on creation (types, numbers of dimensions,
matching sizes, one device and one dtype, floating or complex dtype) but never scans the data
for NaN/Inf: constructors run inside training loops and must stay O(number of tensors).

Conventions shared by all types:

* ``inner(a, b) = sum conj(a) * b`` (the conjugate falls on ``self``), as ``torch.vdot`` and
  :func:`factorch.algebra.inner`; ``norm() = sqrt(real(inner(self, self)))``.
* ``entries(indices)`` takes an integer tensor of shape ``(B, ndim)``; negative indices count from
  the end of their mode, as in Python.
* ``mode_dot(matrix, mode)`` follows :func:`factorch.algebra.mode_dot`: ``matrix`` is
  ``(J, I_mode)`` (``(I_mode, J)`` with ``transpose=True``, which also conjugates complex
  matrices); a vector contracts the mode away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from math import prod
from typing import Any

import torch

from .._checks import as_index, as_tensor, check_mode, check_tensor

__all__ = ["FactorizedTensor"]

Scalar = int | float | complex


class FactorizedTensor:
    """Common behaviour of :class:`CPTensor`, :class:`TuckerTensor`, :class:`TTTensor`,
    :class:`TRTensor` and :class:`TTMatrix`.

    Subclasses implement ``_tensors()`` (every stored tensor, in a fixed order), ``shape``,
    ``rank``, ``to_dense``, ``norm``, ``inner``, ``mode_dot``, ``entries``, ``unfold`` and
    ``_replace_tensors`` (rebuild from a list in ``_tensors()`` order, used by :meth:`to`).

    Example:
        >>> x = factorch.random.random_tt((3, 4, 5), 2, generator=torch.Generator().manual_seed(0))
        >>> isinstance(x, FactorizedTensor), x.shape
        (True, (3, 4, 5))
        >>> torch.allclose(x.norm(), x.to_dense().norm())
        True
    """

    __slots__ = ()

    # --- to be provided by subclasses -------------------------------------------------------
    def _tensors(self) -> tuple[torch.Tensor, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _replace_tensors(self, tensors: Sequence[torch.Tensor]) -> Any:  # pragma: no cover
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def rank(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dense(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of modes of the represented tensor (``len(self.shape)``)."""
        return len(self.shape)

    @property
    def dtype(self) -> torch.dtype:
        """dtype shared by every stored tensor."""
        return self._tensors()[0].dtype

    @property
    def device(self) -> torch.device:
        """Device shared by every stored tensor."""
        return self._tensors()[0].device

    @property
    def n_params(self) -> int:
        """Number of stored scalars (weights, factors, core(s))."""
        return sum(t.numel() for t in self._tensors())

    @property
    def compression(self) -> float:
        """``prod(shape) / n_params``: how many dense entries each stored scalar stands for."""
        return prod(self.shape) / self.n_params

    def to(
        self,
        device: torch.device | str | int | torch.dtype | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """Copy to another device and/or dtype (a no-op per tensor when nothing changes).

        Accepts a dtype as the first positional argument, as ``torch.Tensor.to`` does
        (``model.to(torch.float32)``). Differentiable (``Tensor.to`` is).

        Raises:
            TypeError: a ``device`` that is not a device, string or index, a ``dtype`` that is not a
                ``torch.dtype``, or a dtype given twice.
        """
        device, dtype = split_to_args(device, dtype, type(self).__name__)
        return self._replace_tensors([t.to(device=device, dtype=dtype) for t in self._tensors()])

    def __repr__(self) -> str:
        rank = self.rank
        dev = "" if self.device.type == "cpu" else f", device={self.device}"
        return (
            f"{type(self).__name__}(shape={self.shape}, rank={rank}, params={self.n_params}, "
            f"compression={self.compression:.1f}x, dtype={str(self.dtype).removeprefix('torch.')}"
            f"{dev})"
        )


# --- validation helpers ---------------------------------------------------------------------


def split_to_args(
    device: object, dtype: object, owner: str
) -> tuple[torch.device | str | int | None, torch.dtype | None]:
    """``(device, dtype)`` for a ``.to(...)`` call, with a dtype given positionally in the device
    slot moved to its place (``x.to(torch.float64)``, as ``torch.Tensor.to`` allows)."""
    if isinstance(device, torch.dtype):
        if dtype is not None:
            raise TypeError(
                f"{owner}.to: dtype given twice ({device} and {dtype}); pass it once, e.g. "
                f".to(dtype={device})."
            )
        device, dtype = None, device
    if device is not None and (
        isinstance(device, bool) or not isinstance(device, (torch.device, str, int))
    ):
        raise TypeError(
            f"{owner}.to: device must be a torch.device, a string like 'cpu' or a CUDA index; got "
            f"{type(device).__name__}."
        )
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(
            f"{owner}.to: dtype must be a torch.dtype such as torch.float32; got "
            f"{type(dtype).__name__}."
        )
    return device, dtype


def as_array_tensor(x: object, fn: str, name: str) -> object:
    """A numpy array (anything with ``__array__`` that is not already a tensor) converted once to
    a torch tensor; anything else unchanged, for the caller's own type check to refuse."""
    if isinstance(x, (torch.Tensor, FactorizedTensor)) or not hasattr(x, "__array__"):
        return x
    return as_tensor(x, fn, name)


def as_tensor_tuple(
    items: object, cls: str, name: str, ndim: int, *, min_len: int = 1
) -> tuple[torch.Tensor, ...]:
    """A non-empty list/tuple of floating (or complex) tensors, each with ``ndim`` dimensions
    (numpy arrays are converted once)."""
    if isinstance(items, torch.Tensor) or not isinstance(items, (list, tuple)):
        raise TypeError(
            f"{cls}: {name} must be a list or tuple of torch.Tensor; got {type(items).__name__}."
        )
    if len(items) < min_len:
        raise ValueError(
            f"{cls}: {name} must hold at least {min_len} tensor(s) (one per mode); got "
            f"{len(items)}."
        )
    out = []
    for i, t in enumerate(items):
        t = as_array_tensor(t, cls, f"{name}[{i}]")
        out.append(check_tensor(t, cls, f"{name}[{i}]", ndim=ndim, finite=False))
    return tuple(out)


def check_one_device_dtype(named: Sequence[tuple[str, torch.Tensor]], cls: str) -> None:
    """Every tensor on the device and with the dtype of the first one."""
    name0, t0 = named[0]
    for name, t in named[1:]:
        if t.dtype != t0.dtype:
            raise TypeError(
                f"{cls}: {name} has dtype {t.dtype} but {name0} has {t0.dtype}; all tensors must "
                "share one dtype (convert with .to(dtype))."
            )
        if t.device != t0.device:
            raise ValueError(
                f"{cls}: {name} is on {t.device} but {name0} is on {t0.device}; move all tensors "
                "to one device."
            )


def check_chain_ranks(cores: Sequence[torch.Tensor], cls: str, rank_dim: int = -1) -> None:
    """Consecutive cores agree: ``cores[k].shape[-1] == cores[k+1].shape[0]``."""
    for k in range(len(cores) - 1):
        right, left = cores[k].shape[-1], cores[k + 1].shape[0]
        if right != left:
            raise ValueError(
                f"{cls}: cores[{k + 1}] has left rank {left} but cores[{k}] has right rank "
                f"{right}; consecutive ranks must agree (cores[k].shape[-1] == "
                "cores[k+1].shape[0])."
            )


def check_vector_contraction(self: FactorizedTensor, fn: str) -> None:
    """A vector can contract a mode away only when another mode is left to hold the result."""
    if self.ndim == 1:
        raise ValueError(
            f"{fn}: cannot contract the only mode of a 1-way tensor with a vector; use "
            "inner() for a scalar result."
        )


def check_same_kind(self: FactorizedTensor, other: object, fn: str) -> None:
    """``other`` is a factorized tensor of the same class, shape, dtype and device."""
    if type(other) is not type(self):
        raise TypeError(
            f"{fn}: other must be a {type(self).__name__} or a torch.Tensor; got "
            f"{type(other).__name__} (convert one of them first, e.g. with .to_tt() or "
            ".to_dense())."
        )
    check_compatible(self, other.shape, other.dtype, other.device, fn, "other")


def check_compatible(
    self: FactorizedTensor,
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    fn: str,
    name: str,
) -> None:
    if tuple(shape) != tuple(self.shape):
        raise ValueError(f"{fn}: {name} must have shape {self.shape}; got {tuple(shape)}.")
    if dtype != self.dtype:
        raise TypeError(f"{fn}: {name} has dtype {dtype} but self has {self.dtype}; use one dtype.")
    if device != self.device:
        raise ValueError(
            f"{fn}: {name} is on {device} but self is on {self.device}; move them to one device."
        )


def check_dense_other(self: FactorizedTensor, other: object, fn: str) -> torch.Tensor:
    other = check_tensor(as_array_tensor(other, fn, "other"), fn, "other", finite=False)
    check_compatible(self, other.shape, other.dtype, other.device, fn, "other")
    return other


def check_mode_matrix(
    self: FactorizedTensor,
    matrix: object,
    mode: object,
    transpose: bool,
    fn: str,
    shape: Sequence[int] | None = None,
) -> tuple[torch.Tensor, int]:
    """Validate a ``mode_dot`` argument; returns the ``(J, I)`` matrix (or vector) and the mode."""
    shape = tuple(self.shape) if shape is None else tuple(shape)
    mode = check_mode(as_index(mode, fn, "mode"), len(shape), fn)
    matrix = check_tensor(as_array_tensor(matrix, fn, "matrix"), fn, "matrix", finite=False)
    if matrix.ndim not in (1, 2):
        raise ValueError(
            f"{fn}: matrix must be a matrix or a vector; got shape {tuple(matrix.shape)}."
        )
    if matrix.dtype != self.dtype:
        raise TypeError(
            f"{fn}: matrix has dtype {matrix.dtype} but the tensor has {self.dtype}; convert "
            "with matrix.to(dtype)."
        )
    if matrix.device != self.device:
        raise ValueError(
            f"{fn}: matrix is on {matrix.device} but the tensor is on {self.device}; move it "
            "with matrix.to(device)."
        )
    if transpose and matrix.ndim == 2:
        matrix = matrix.mH
    if matrix.shape[-1] != shape[mode]:
        raise ValueError(
            f"{fn}: matrix has {matrix.shape[-1]} columns but the tensor has size {shape[mode]} "
            f"along mode {mode}; shapes must agree"
            + (" (transpose=True transposes the matrix first)." if transpose else ".")
        )
    return matrix, mode


def check_indices(
    indices: object, shape: Sequence[int], fn: str, device: torch.device
) -> torch.Tensor:
    """An integer ``(B, len(shape))`` tensor (or numpy array) of in-range indices, normalised to
    ``[0, I_n)``."""
    indices = as_array_tensor(indices, fn, "indices")
    if not isinstance(indices, torch.Tensor):
        raise TypeError(
            f"{fn}: indices must be an integer torch.Tensor of shape (B, {len(shape)}); got "
            f"{type(indices).__name__}."
        )
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(
            f"{fn}: indices must have an integer dtype; got {indices.dtype} (use .long())."
        )
    if indices.ndim != 2 or indices.shape[1] != len(shape):
        raise ValueError(
            f"{fn}: indices must have shape (B, {len(shape)}), one row per entry; got "
            f"{tuple(indices.shape)}."
        )
    indices = indices.to(device=device, dtype=torch.long)
    sizes = torch.tensor(shape, device=device, dtype=torch.long)
    bad = (indices < -sizes) | (indices >= sizes)
    if indices.numel() and bool(bad.any()):
        b, n = (int(v) for v in bad.nonzero()[0])
        raise IndexError(
            f"{fn}: indices[{b}, {n}] = {int(indices[b, n])} is out of range for mode {n} of size "
            f"{shape[n]}; valid indices are in [{-shape[n]}, {shape[n] - 1}]."
        )
    return torch.remainder(indices, sizes)


def check_scalar(value: object, dtype: torch.dtype, fn: str) -> Scalar | torch.Tensor:
    """A Python number or 0-d tensor usable as a multiplier without changing ``dtype``."""
    if isinstance(value, bool):
        raise TypeError(f"{fn}: the multiplier must be a number or a 0-d tensor; got bool.")
    if isinstance(value, torch.Tensor):
        if value.ndim != 0:
            raise TypeError(
                f"{fn}: only scalars (Python numbers or 0-d tensors) can multiply; got a tensor of "
                f"shape {tuple(value.shape)}."
            )
        if value.is_complex() and not dtype.is_complex:
            raise TypeError(f"{fn}: cannot multiply a {dtype} tensor by a complex scalar.")
        return value.to(dtype=dtype)
    if isinstance(value, (int, float, complex)):
        if isinstance(value, complex) and not dtype.is_complex:
            raise TypeError(f"{fn}: cannot multiply a {dtype} tensor by a complex scalar.")
        return value
    raise TypeError(
        f"{fn}: only scalars (Python numbers or 0-d tensors) can multiply; got "
        f"{type(value).__name__}."
    )


def real_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(real(sq), 0))``: a squared norm computed in factorized form may round below 0."""
    if sq.is_complex():
        sq = sq.real
    return torch.sqrt(torch.clamp(sq, min=0))


# --- scaled arithmetic (norms and inner products free of under- and overflow) ---------------------
def exponent_of(t: torch.Tensor) -> int:
    """The power of two a tensor is divided by before a norm or contraction: 0 while its largest
    magnitude ``m`` lies in ``[2**-q, 2**q]`` (``q`` a quarter of the dtype's exponent range:
    float32 ``2e-10 .. 4e9``, float64 ``1e-77 .. 1e77``), where products of a few such tensors
    and their sums cannot under- or overflow; outside it ``e`` with ``m / 2**e`` in
    ``[0.5, 1)``. 0 for all-zero or non-finite tensors. One pass (``aminmax`` for real tensors,
    no temporary copy)."""
    if t.numel() == 0:
        return 0
    x = t.detach()
    if x.is_complex():
        peak = float(x.abs().max())
    else:
        low, high = torch.aminmax(x)
        peak = max(-float(low), float(high))
    if peak == 0.0 or not math.isfinite(peak):
        return 0
    _, e = math.frexp(peak)
    real = x.real.dtype if x.is_complex() else x.dtype
    quarter = int(math.log2(torch.finfo(real).max)) // 4
    return 0 if -quarter <= e <= quarter else e


def times_power_of_two(t: torch.Tensor, exponent: int) -> torch.Tensor:
    """``t * 2**exponent`` in steps the dtype can hold: exact unless the result itself over- or
    underflows (then it is the correctly rounded ``inf`` or 0). Differentiable."""
    real = t.real.dtype if t.is_complex() else t.dtype
    step = int(math.log2(torch.finfo(real).max)) - 1
    while exponent != 0:
        e = max(-step, min(step, exponent))
        t = t * (2.0**e)
        exponent -= e
    return t


def normalised(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(t / 2**e, e)`` with ``e`` from :func:`exponent_of` (exact; ``t`` itself if ``e = 0``)."""
    e = exponent_of(t)
    return (times_power_of_two(t, -e) if e else t), e


def scaled_sqrt(mantissa: torch.Tensor, exponent: int) -> torch.Tensor:
    """``sqrt(max(real(mantissa), 0) * 2**exponent)`` without forming ``mantissa * 2**exponent``
    (a squared norm may not be representable when the norm is)."""
    if exponent % 2:
        mantissa, exponent = mantissa * 2.0, exponent - 1
    return times_power_of_two(real_sqrt(mantissa), exponent // 2)
