"""Sparse tensors in coordinate (COO) form: index columns, values and a shape.

A :class:`SparseTensor` stores ``nnz`` listed entries ``X[indices[:, p]] = values[p]``. What an
unlisted entry means is up to the algorithm: a zero (sparse data, ``to_dense()``,
:func:`factorch.algebra.sparse_mttkrp`) or a missing value (tensor completion, where the listed
entries are the observed ones).

Layout: ``indices`` is ``(N, nnz)`` (one contiguous column per mode, as in
``torch.sparse_coo_tensor``) in int32 when every mode size fits (int64 otherwise), ``values`` is
``(nnz,)`` of a real floating dtype: 16 bytes per nonzero for a 3-way float32 tensor (torch's own
COO format needs 28). Entries are kept sorted lexicographically by index (row-major order of the
dense tensor) with no duplicates, so mode-0 fibres are contiguous and subsets stay sorted.

A :class:`SparseTensor` is an immutable value and caches nothing. Kernels that group the entries
by one mode (sparse MTTKRP, the row-wise solves of completion) read a
:class:`factorch.algebra.SparseLayout`, which the solver builds once from the tensor and owns.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from .._numerics import power_of_two_scale
from ..algebra.internal import as_array
from ._base import split_to_args

__all__ = ["Duplicates", "SparseTensor"]

Duplicates = Literal["error", "sum", "mean"]

_INT32_MAX = 2**31 - 1
_KEY_LIMIT = 2**62  # linear keys are used when prod(shape) stays below this
_DENSE_LIMIT = 2**31  # to_dense refuses more entries than this


def _index_dtype(shape: Sequence[int]) -> torch.dtype:
    return torch.int32 if max(shape) <= _INT32_MAX else torch.int64


def _check_shape(shape: object, fn: str) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise TypeError(f"{fn}: shape must be a non-empty tuple of positive ints; got {shape!r}.")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"{fn}: shape must contain positive ints only; got {tuple(shape)}.")
    return tuple(shape)


def _linear_keys(indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Row-major linear index of each entry (int64); needs ``prod(shape) < 2**62``."""
    keys = indices[0].to(torch.int64)
    for n in range(1, len(shape)):
        keys = keys * shape[n] + indices[n].to(torch.int64)
    return keys


def _lex_order(indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Permutation sorting the columns of ``indices`` lexicographically (stable)."""
    if math.prod(shape) < _KEY_LIMIT:
        return torch.sort(_linear_keys(indices, shape), stable=True).indices
    order = torch.arange(indices.shape[1], device=indices.device)
    for n in range(len(shape) - 1, -1, -1):
        sub = torch.sort(indices[n][order], stable=True).indices
        order = order[sub]
    return order


def _canonicalize(
    indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, ...], duplicates: str, fn: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort lexicographically and merge duplicate coordinates under the given policy."""
    nnz = indices.shape[1]
    if nnz == 0:
        return indices, values
    if math.prod(shape) < _KEY_LIMIT:
        keys = _linear_keys(indices, shape)
        if bool((keys[1:] > keys[:-1]).all()):
            return indices, values  # already canonical: nothing to copy
        order = torch.sort(keys, stable=True).indices
        keys = keys[order]
        new_group = torch.ones(nnz, dtype=torch.bool, device=indices.device)
        new_group[1:] = keys[1:] != keys[:-1]
    else:
        order = _lex_order(indices, shape)
        sorted_idx = indices[:, order]
        new_group = torch.ones(nnz, dtype=torch.bool, device=indices.device)
        new_group[1:] = (sorted_idx[:, 1:] != sorted_idx[:, :-1]).any(0)
    indices, values = indices[:, order], values[order]
    if bool(new_group.all()):
        return indices, values
    group = torch.cumsum(new_group, 0) - 1
    n_groups = int(group[-1]) + 1
    first = new_group.nonzero().squeeze(1)
    if duplicates == "error":
        if bool((values != values[first][group]).any()):
            p = int((values != values[first][group]).nonzero()[0, 0])
            where = tuple(int(i) for i in indices[:, p])
            raise ValueError(
                f"{fn}: coordinate {where} is listed more than once with different values "
                f"({float(values[first[group[p]]])} and {float(values[p])}); remove the "
                "duplicates or pass duplicates='sum' or 'mean' to combine them."
            )
        return indices[:, first], values[first]
    summed = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    summed.index_add_(0, group, values)
    if duplicates == "mean":
        counts = torch.bincount(group, minlength=n_groups).to(values.dtype)
        summed = summed / counts
    return indices[:, first], summed


def _check_values(values: object, fn: str) -> torch.Tensor:
    values = as_array(values, fn, "values")
    if values.ndim != 1:
        raise ValueError(f"{fn}: values must be 1-D (nnz,); got shape {tuple(values.shape)}.")
    if not values.is_floating_point():
        raise TypeError(
            f"{fn}: values must have a real floating dtype; got {values.dtype} "
            "(convert with values.double() or values.float())."
        )
    # a finite sum proves every value finite (one reduction, ~10x cheaper than an elementwise
    # test); only a sum that overflows or meets NaN / Inf takes the elementwise test
    if values.numel() and not (
        bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all())
    ):
        bad = int((~torch.isfinite(values)).nonzero()[0, 0])
        raise ValueError(
            f"{fn}: values must be finite; values[{bad}] = {float(values[bad])}. Leave missing "
            "entries out of the coordinate list instead of storing NaN."
        )
    return values


def _check_indices(
    indices: object, values: torch.Tensor, shape: tuple[int, ...], fn: str
) -> torch.Tensor:
    indices = as_array(indices, fn, "indices")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"{fn}: indices must have an integer dtype; got {indices.dtype}.")
    n = len(shape)
    if indices.ndim != 2 or indices.shape[0] != n:
        raise ValueError(
            f"{fn}: indices must have shape (N, nnz) = ({n}, nnz), one row per mode (transpose "
            f"an (nnz, N) array with .T); got {tuple(indices.shape)}."
        )
    if indices.shape[1] != values.shape[0]:
        raise ValueError(
            f"{fn}: indices list {indices.shape[1]} entries but values has {values.shape[0]}."
        )
    if indices.device != values.device:
        raise ValueError(
            f"{fn}: indices are on {indices.device} but values on {values.device}; use one device."
        )
    if indices.shape[1]:
        lo = indices.amin(1)
        hi = indices.amax(1)
        for m in range(n):
            if int(lo[m]) < 0 or int(hi[m]) >= shape[m]:
                bad = int(lo[m]) if int(lo[m]) < 0 else int(hi[m])
                raise IndexError(
                    f"{fn}: index {bad} is out of range for mode {m} of size {shape[m]}; "
                    f"indices must be in [0, {shape[m] - 1}]."
                )
    return indices.to(_index_dtype(shape)).contiguous()


@dataclass(frozen=True, eq=False, repr=False)
class SparseTensor:
    """A sparse tensor in sorted, duplicate-free coordinate form.

    Attributes:
        indices: ``(N, nnz)`` integer coordinates (int32 when every mode size is below 2**31).
        values: ``(nnz,)`` real floating values, finite.
        shape: the dense shape ``(I_0, ..., I_{N-1})``.

    The constructor validates (``IndexError`` for out-of-range coordinates, ``ValueError`` for
    non-finite values or duplicate coordinates with different values), sorts the entries and
    merges duplicates with equal values; use :meth:`from_coo` to choose another duplicate policy.
    ``nnz = 0`` is allowed (an empty split); algorithms that need data refuse it.
    Not differentiable (a container); ``values`` may be used in differentiable code.

    Raises:
        TypeError: indices that are not integer, or values that are not real floating.
        ValueError: indices and values whose sizes disagree, non-finite values, or duplicate
            coordinates with different values.
        IndexError: a coordinate outside ``shape``.

    Example:
        >>> x = SparseTensor(torch.tensor([[0, 1], [2, 0]]), torch.tensor([1.0, 5.0]), (2, 3))
        >>> x.nnz, x.shape
        (2, (2, 3))
        >>> x.to_dense()
        tensor([[0., 0., 1.],
                [5., 0., 0.]])
    """

    indices: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        fn = "SparseTensor"
        shape = _check_shape(self.shape, fn)
        values = _check_values(self.values, fn)
        indices = _check_indices(self.indices, values, shape, fn)
        indices, values = _canonicalize(indices, values, shape, "error", fn)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    @classmethod
    def _trusted(
        cls, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, ...]
    ) -> SparseTensor:
        """Wrap canonical data without validation (internal: subsets of a canonical tensor)."""
        out = object.__new__(cls)
        object.__setattr__(out, "indices", indices)
        object.__setattr__(out, "values", values)
        object.__setattr__(out, "shape", shape)
        return out

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def from_coo(
        cls,
        indices: torch.Tensor,
        values: torch.Tensor,
        shape: Sequence[int],
        *,
        duplicates: Duplicates = "error",
    ) -> SparseTensor:
        """Build from coordinates ``(N, nnz)`` and values ``(nnz,)``.

        ``duplicates``: ``"error"`` (default) merges repeated coordinates whose values agree and
        raises ``ValueError`` when they differ; ``"sum"`` adds them (counts, COO semantics);
        ``"mean"`` averages them (repeated measurements).
        """
        fn = "SparseTensor.from_coo"
        if duplicates not in get_args(Duplicates):
            raise ValueError(
                f"{fn}: duplicates must be one of {get_args(Duplicates)}; got {duplicates!r}."
            )
        shape = _check_shape(shape, fn)
        values = _check_values(values, fn)
        indices = _check_indices(indices, values, shape, fn)
        indices, values = _canonicalize(indices, values, shape, duplicates, fn)
        return cls._trusted(indices, values, shape)

    @classmethod
    def from_dense(cls, tensor: torch.Tensor, mask: torch.Tensor | None = None) -> SparseTensor:
        """The entries of ``tensor`` where ``mask`` is True (observed), or its nonzeros.

        With a mask, observed zeros are kept and unobserved entries may hold anything (NaN
        included); observed entries must be finite. Without a mask, the nonzero entries are
        kept and NaN is refused (pass ``mask=~torch.isnan(tensor)`` to treat NaN as missing).
        """
        fn = "SparseTensor.from_dense"
        tensor = as_array(tensor, fn)
        if mask is not None and not isinstance(mask, torch.Tensor):
            mask = as_array(mask, fn, "mask")
        if not tensor.is_floating_point():
            raise TypeError(f"{fn}: tensor must have a real floating dtype; got {tensor.dtype}.")
        if tensor.ndim == 0 or tensor.numel() == 0:
            raise ValueError(
                f"{fn}: tensor must have at least one mode and no empty mode; got shape "
                f"{tuple(tensor.shape)}."
            )
        if mask is None:
            if bool(torch.isnan(tensor).any()):
                raise ValueError(
                    f"{fn}: tensor contains NaN; pass mask=~torch.isnan(tensor) to treat NaN "
                    "entries as missing."
                )
            mask = tensor != 0
        else:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise TypeError(f"{fn}: mask must be a bool tensor (True = observed); got {got}.")
            if mask.shape != tensor.shape:
                raise ValueError(
                    f"{fn}: mask shape {tuple(mask.shape)} must equal the tensor shape "
                    f"{tuple(tensor.shape)}."
                )
            if mask.device != tensor.device:
                raise ValueError(f"{fn}: mask is on {mask.device} but tensor on {tensor.device}.")
        shape = tuple(tensor.shape)
        idx = mask.nonzero().mT.to(_index_dtype(shape)).contiguous()  # row-major: sorted
        values = _check_values(tensor[mask], fn)
        return cls._trusted(idx, values, shape)

    @classmethod
    def from_torch(cls, tensor: torch.Tensor) -> SparseTensor:
        """From a ``torch.sparse_coo_tensor`` (coalesced or not; duplicates are summed, as torch
        does)."""
        fn = "SparseTensor.from_torch"
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.sparse_coo:
            raise TypeError(f"{fn}: expected a torch.sparse_coo tensor; got {_describe(tensor)}.")
        t = tensor.coalesce()
        return cls.from_coo(t.indices(), t.values(), tuple(t.shape), duplicates="sum")

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        shape: Sequence[int] | None = None,
        delimiter: str | None = None,
        index_base: Literal[0, 1] = 0,
        dtype: torch.dtype | None = None,
        duplicates: Duplicates = "error",
    ) -> SparseTensor:
        """Read a coordinate file: one entry per line, ``i,j,k,value`` (CSV) or whitespace
        separated (FROSTT ``.tns``: use ``index_base=1``).

        ``delimiter=None`` splits on commas when the first data line has one, else on
        whitespace. Blank lines and lines starting with ``#`` are skipped; a first line whose
        fields are not all numbers is taken as a header. ``shape`` defaults to
        ``max index + 1`` per mode. ``dtype`` of the values defaults to torch's default dtype.
        """
        fn = "SparseTensor.from_file"
        if index_base not in (0, 1):
            raise ValueError(f"{fn}: index_base must be 0 or 1; got {index_base!r}.")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"{fn}: dtype must be a floating torch.dtype; got {dtype!r}.")
        rows: list[list[int]] = []
        vals: list[float] = []
        width = None
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                if delimiter is None:
                    delimiter = "," if "," in text else ""
                parts = [p.strip() for p in (text.split(delimiter) if delimiter else text.split())]
                try:
                    idx = [int(p) for p in parts[:-1]]
                    val = float(parts[-1])
                except ValueError:
                    if not rows and width is None:
                        width = len(parts)  # a header line
                        continue
                    raise ValueError(
                        f"{fn}: line {lineno} of {os.fspath(path)!r} is not 'index,...,value': "
                        f"{text!r}."
                    ) from None
                if width is None:
                    width = len(parts)
                if len(parts) != width or width < 2:
                    raise ValueError(
                        f"{fn}: line {lineno} has {len(parts)} fields; expected {width} "
                        "(N indices and one value)."
                    )
                rows.append([i - index_base for i in idx])
                vals.append(val)
        if not rows:
            raise ValueError(f"{fn}: {os.fspath(path)!r} lists no entries.")
        indices = torch.tensor(rows, dtype=torch.int64).mT
        values = torch.tensor(vals, dtype=dtype)
        if shape is None:
            if int(indices.min()) < 0:
                raise IndexError(
                    f"{fn}: a negative index was read (index_base={index_base}); check index_base."
                )
            shape = tuple(int(s) + 1 for s in indices.amax(1))
        return cls.from_coo(indices, values, shape, duplicates=duplicates)

    # --- properties -------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nnz(self) -> int:
        """Number of listed entries."""
        return int(self.values.shape[0])

    @property
    def density(self) -> float:
        """``nnz / prod(shape)``."""
        return self.nnz / math.prod(self.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    def __repr__(self) -> str:
        return (
            f"SparseTensor(shape={self.shape}, nnz={self.nnz}, density={self.density:.3g}, "
            f"dtype={self.dtype}, device={self.device})"
        )

    # --- conversions ------------------------------------------------------------------------
    def to(
        self,
        device: torch.device | str | int | torch.dtype | None = None,
        dtype: torch.dtype | None = None,
    ) -> SparseTensor:
        """Move to ``device`` and/or cast the values to floating ``dtype`` (indices keep theirs;
        a dtype may come first, as in ``torch.Tensor.to``)."""
        device, dtype = split_to_args(device, dtype, "SparseTensor")
        if dtype is not None and (
            not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
        ):
            raise TypeError(
                f"SparseTensor.to: dtype must be a floating torch.dtype; got {dtype!r}."
            )
        return SparseTensor._trusted(
            self.indices.to(device=device), self.values.to(device=device, dtype=dtype), self.shape
        )

    def with_values(self, values: torch.Tensor) -> SparseTensor:
        """The same coordinates with new ``(nnz,)`` finite floating values (e.g. residuals)."""
        values = _check_values(values, "SparseTensor.with_values")
        if values.shape[0] != self.nnz or values.device != self.device:
            raise ValueError(
                f"SparseTensor.with_values: values must have shape ({self.nnz},) on "
                f"{self.device}; got {tuple(values.shape)} on {values.device}."
            )
        return SparseTensor._trusted(self.indices, values, self.shape)

    def to_dense(self, *, fill: float = 0.0) -> torch.Tensor:
        """The dense tensor with unlisted entries set to ``fill`` (``float('nan')`` marks them
        missing). Refuses more than 2**31 entries."""
        numel = math.prod(self.shape)
        if numel > _DENSE_LIMIT:
            gb = numel * self.values.element_size() / 1e9
            raise ValueError(
                f"SparseTensor.to_dense: the dense tensor would have {numel} entries "
                f"({gb:.1f} GB); to_dense is for small tensors (at most 2**31 entries)."
            )
        out = torch.full(self.shape, fill, dtype=self.dtype, device=self.device)
        out[tuple(self.indices.long())] = self.values
        return out

    def mask(self) -> torch.Tensor:
        """Dense bool tensor, True at the listed coordinates."""
        out = torch.zeros(self.shape, dtype=torch.bool, device=self.device)
        out[tuple(self.indices.long())] = True
        return out

    def to_torch(self) -> torch.Tensor:
        """A coalesced ``torch.sparse_coo_tensor`` (int64 indices, as torch requires)."""
        return torch.sparse_coo_tensor(
            self.indices.long(), self.values, self.shape, is_coalesced=True, check_invariants=False
        )

    def to_file(
        self, path: str | os.PathLike[str], *, delimiter: str = ",", index_base: int = 0
    ) -> None:
        """Write one ``i,j,k,value`` line per entry (round-trips through :meth:`from_file`)."""
        idx = (self.indices.long() + index_base).cpu().tolist()
        vals = self.values.detach().cpu().double().tolist()
        with open(path, "w", encoding="utf-8") as fh:
            for p, v in enumerate(vals):
                fh.write(delimiter.join(str(col[p]) for col in idx) + f"{delimiter}{v!r}\n")

    # --- subsets ----------------------------------------------------------------------------
    def select(self, positions: torch.Tensor) -> SparseTensor:
        """The entries at the given positions (``(k,)`` integer, or a ``(nnz,)`` bool mask)."""
        fn = "SparseTensor.select"
        if not isinstance(positions, torch.Tensor):
            raise TypeError(f"{fn}: positions must be a torch.Tensor; got {_describe(positions)}.")
        if positions.dtype == torch.bool:
            if positions.shape != (self.nnz,):
                raise ValueError(
                    f"{fn}: a bool mask must have shape ({self.nnz},); got "
                    f"{tuple(positions.shape)}."
                )
            positions = positions.nonzero().squeeze(1)
        elif positions.is_floating_point() or positions.ndim != 1:
            raise TypeError(f"{fn}: positions must be a 1-D integer or bool tensor.")
        positions = positions.to(device=self.device, dtype=torch.int64)
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= self.nnz):
            raise IndexError(f"{fn}: positions must be in [0, {self.nnz - 1}].")
        positions = torch.unique(positions)  # sorted: keeps the canonical order
        return SparseTensor._trusted(self.indices[:, positions], self.values[positions], self.shape)

    def split(
        self, fractions: Sequence[float], *, generator: torch.Generator | None = None
    ) -> tuple[SparseTensor, ...]:
        """Split the entries at random into disjoint parts of the given fractions.

        ``fractions`` are positive and sum to 1 (``(0.8, 0.1, 0.1)`` for train / validation /
        test); part ``k`` gets ``round(c_k nnz) - round(c_{k-1} nnz)`` entries with ``c`` the
        cumulative fractions. Deterministic given ``generator`` (a CPU generator).
        """
        fn = "SparseTensor.split"
        if isinstance(fractions, (int, float)) or not isinstance(fractions, Sequence):
            raise TypeError(f"{fn}: fractions must be a sequence of floats; got {fractions!r}.")
        fr = [float(f) for f in fractions]
        if not fr or any(not math.isfinite(f) or f <= 0 for f in fr):
            raise ValueError(f"{fn}: fractions must be positive; got {tuple(fractions)}.")
        if abs(sum(fr) - 1.0) > 1e-6:
            raise ValueError(f"{fn}: fractions must sum to 1; got sum {sum(fr):.6g}.")
        order = torch.randperm(self.nnz, generator=generator).to(self.device)
        bounds = [0]
        acc = 0.0
        for f in fr:
            acc += f
            bounds.append(min(self.nnz, round(acc * self.nnz)))
        bounds[-1] = self.nnz
        return tuple(self.select(order[a:b]) for a, b in itertools.pairwise(bounds))

    def contains(self, indices: torch.Tensor) -> torch.Tensor:
        """Bool ``(B,)``: whether each row of the ``(B, N)`` integer ``indices`` is listed."""
        fn = "SparseTensor.contains"
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point():
            raise TypeError(f"{fn}: indices must be an integer tensor of shape (B, {self.ndim}).")
        if indices.ndim != 2 or indices.shape[1] != self.ndim:
            raise ValueError(
                f"{fn}: indices must have shape (B, {self.ndim}); got {tuple(indices.shape)}."
            )
        query = indices.mT.to(self.device)
        sizes = torch.tensor(self.shape, device=self.device)
        inside = ((query >= 0) & (query < sizes[:, None])).all(0)
        if self.nnz == 0 or query.shape[1] == 0:
            return torch.zeros(query.shape[1], dtype=torch.bool, device=self.device)
        if math.prod(self.shape) < _KEY_LIMIT:
            keys = _linear_keys(self.indices, self.shape)
            q = _linear_keys(query.clamp(min=0), self.shape)
            pos = torch.searchsorted(keys, q).clamp(max=self.nnz - 1)
            return inside & (keys[pos] == q)
        both = torch.cat([self.indices.long(), query.long()], 1)
        _, inverse = torch.unique(both, dim=1, return_inverse=True)
        listed = torch.zeros(int(inverse.max()) + 1, dtype=torch.bool, device=self.device)
        listed[inverse[: self.nnz]] = True
        return inside & listed[inverse[self.nnz :]]

    def norm(self) -> torch.Tensor:
        """Frobenius norm of the listed values (unlisted entries count as zeros), a 0-d tensor
        in the values' dtype.

        Computed on the values divided by a power of two near their largest magnitude, so it
        neither underflows nor overflows while the norm itself is representable (float32 values
        of ``1e-30`` or ``1e30``). Differentiable with respect to the values.
        """
        scale = power_of_two_scale(self.values)
        return torch.linalg.vector_norm(self.values / scale) * scale

    def counts(self, mode: int) -> torch.Tensor:
        """Number of listed entries in each slice of ``mode`` (``(I_mode,)`` int64)."""
        from .._checks import check_mode

        mode = check_mode(mode, self.ndim, "SparseTensor.counts")
        return torch.bincount(self.indices[mode].long(), minlength=self.shape[mode])

    def clear_cache(self) -> None:
        """Deprecated: does nothing. A :class:`SparseTensor` no longer caches per-mode layouts;
        build a :class:`factorch.algebra.SparseLayout` and pass it to the kernels instead."""
        warnings.warn(
            "SparseTensor.clear_cache is deprecated and does nothing: the tensor caches no "
            "layouts; build factorch.algebra.SparseLayout.build(tensor) and pass layout= to "
            "sparse_mttkrp instead.",
            DeprecationWarning,
            stacklevel=2,
        )


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.layout} tensor"
    return type(x).__name__
