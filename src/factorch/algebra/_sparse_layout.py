"""Mode-sorted layouts of sparse coordinates: the index structure a sparse kernel reads.

A sparse tensor in coordinate form lists ``nnz`` entries ``X[indices[:, p]] = values[p]``. A
kernel that reduces over every mode but ``n`` (the sparse MTTKRP, the row-wise solves of
completion ALS) wants the entries grouped by their mode-``n`` index, so that each output row is
one contiguous segment. :class:`ModeLayout` is that grouping for one mode: a stable sort of the
entries by ``i_n`` (the permutation, the sorted rows, CSR-style row pointers, the other modes'
index columns and the values in sorted order). :class:`SparseLayout` holds one per requested mode.

Ownership. A layout is an explicit, immutable object that the *caller* builds once and passes to
every kernel call that reads the same coordinates (a solver builds it before its loop). The value
type (:class:`factorch.tensors.SparseTensor`) carries no hidden cache: building costs one stable
sort per mode whose index column is not already sorted (mode 0 of a canonically ordered tensor is
free), about 0.2 s for 5 M entries on one core (an int16 key for modes of up to ``2**15``, an
int32 permutation, ``index_select`` gathers, row pointers by binary search), and
``4 + 4 N + itemsize`` bytes per entry and mode (int32 permutation, sorted rows and the other
index columns, the values).

The kernels in :mod:`factorch.algebra` read coordinates through the structural protocol
:class:`SparseCoordinates` (anything with ``indices``, ``values`` and ``shape``), so this layer
imports nothing from :mod:`factorch.tensors`.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from .._checks import check_mode

__all__ = ["ModeLayout", "SparseCoordinates", "SparseLayout", "as_coordinates"]

_INT16_LIMIT = 2**15  # mode sizes up to this sort an int16 copy of the index column


@runtime_checkable
class SparseCoordinates(Protocol):
    """Coordinate-form sparse data: what the sparse kernels of :mod:`factorch.algebra` read.

    ``indices`` is ``(N, nnz)`` integer, ``values`` ``(nnz,)`` floating, ``shape`` the dense
    shape. :class:`factorch.tensors.SparseTensor` satisfies it (duplicate coordinates are summed
    by the kernels, as in COO).

    Example:
        >>> from factorch.tensors import SparseTensor
        >>> sp = SparseTensor.from_dense(torch.eye(2))
        >>> isinstance(sp, SparseCoordinates)  # a runtime-checkable protocol
        True
        >>> tuple(sp.indices.shape), tuple(sp.values.shape), sp.shape
        ((2, 2), (2,), (2, 2))
    """

    @property
    def indices(self) -> torch.Tensor: ...

    @property
    def values(self) -> torch.Tensor: ...

    @property
    def shape(self) -> tuple[int, ...]: ...


def as_coordinates(tensor: object, fn: str, name: str = "tensor") -> SparseCoordinates:
    """``tensor`` if it has tensor-valued ``indices`` ``(N, nnz)``, ``values`` ``(nnz,)`` and a
    shape of ``N`` sizes (e.g. a :class:`factorch.tensors.SparseTensor`); else ``TypeError``."""
    if isinstance(tensor, torch.Tensor) or not isinstance(tensor, SparseCoordinates):
        got = "a dense torch.Tensor" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise TypeError(
            f"{fn}: {name} must be a factorch.tensors.SparseTensor (or an object with indices, "
            f"values and shape); got {got} (use factorch.algebra.mttkrp for dense tensors)."
        )
    idx, vals, shape = tensor.indices, tensor.values, tensor.shape
    if not isinstance(idx, torch.Tensor) or not isinstance(vals, torch.Tensor):
        raise TypeError(f"{fn}: {name}.indices and {name}.values must be torch tensors.")
    if idx.ndim != 2 or vals.ndim != 1 or idx.shape != (len(shape), vals.shape[0]):
        raise ValueError(
            f"{fn}: {name} must have indices of shape (N, nnz) and values of shape (nnz,) for "
            f"its {len(shape)}-way shape; got {tuple(idx.shape)} and {tuple(vals.shape)}."
        )
    return tensor


@dataclass(frozen=True, eq=False)
class ModeLayout:
    """The entries sorted (stably) by their mode-``mode`` index.

    Attributes:
        mode: the mode the entries are grouped by.
        perm: ``(nnz,)`` int32 (int64 beyond ``2**31 - 1`` entries), layout position ->
            original position; ``None`` when the original order is already sorted by this
            mode (no copies are made then).
        rows: ``(nnz,)`` the sorted mode-``mode`` indices.
        offsets: ``(I_mode + 1,)`` int64 row pointers: row ``i``'s entries are
            ``offsets[i]:offsets[i + 1]`` in layout order.
        others: the other modes' index columns (in mode order) in layout order.
        values: the values in layout order.

    Example:
        >>> indices = torch.tensor([[2, 0, 2], [0, 1, 1]])
        >>> values = torch.tensor([1.0, 2.0, 3.0])
        >>> layout = ModeLayout.build(indices, values, 3, 0)  # group the entries by row
        >>> layout.offsets.tolist(), layout.values.tolist()
        ([0, 1, 1, 3], [2.0, 1.0, 3.0])
    """

    mode: int
    perm: torch.Tensor | None
    rows: torch.Tensor
    offsets: torch.Tensor
    others: tuple[torch.Tensor, ...]
    values: torch.Tensor

    def permute(self, values: torch.Tensor) -> torch.Tensor:
        """Per-entry data given in the original order (e.g. residuals), in layout order."""
        return values if self.perm is None else values.index_select(0, self.perm)

    @classmethod
    def build(cls, indices: torch.Tensor, values: torch.Tensor, size: int, mode: int) -> ModeLayout:
        """Sort ``indices`` (``(N, nnz)``) by row ``mode`` (whose size is ``size``).

        Raises:
            ValueError: an index of row ``mode`` is outside ``[0, size)``.
        """
        col = indices[mode]
        other_modes = [m for m in range(indices.shape[0]) if m != mode]
        nnz = col.shape[0]
        if _is_sorted(col):
            _check_range(col[[0, -1]] if nnz else col, size, mode)  # the ends bound every row
            perm = None
            rows = col
            others = tuple(indices[m] for m in other_modes)
        else:
            _check_range(col, size, mode)  # before the int16 cast, which would wrap
            # the narrowest key sorts fastest (int16 1.6x int32, 3x int64 on one core)
            key = col.to(torch.int16) if size <= _INT16_LIMIT else col
            sorted_key, perm64 = torch.sort(key, stable=True)
            # an int32 permutation gathers 1.25x faster than torch's int64 one (and is half
            # the memory); the sorted keys are the rows (no gather)
            perm = perm64.to(torch.int32) if nnz <= _INT32_LIMIT else perm64
            del perm64
            rows = sorted_key.to(col.dtype)
            others = tuple(indices[m].index_select(0, perm) for m in other_modes)
            values = values.index_select(0, perm)
        # row pointers by binary search in the sorted rows: cheaper than a bincount pass
        bounds = torch.arange(size + 1, dtype=rows.dtype, device=rows.device)
        offsets = torch.searchsorted(rows.contiguous(), bounds).to(torch.int64)
        return cls(mode, perm, rows, offsets, others, values)


_INT32_LIMIT = 2**31 - 1
_SORTED_PROBE = 4096  # leading entries checked first: an unsorted column fails there, cheaply


def _is_sorted(col: torch.Tensor) -> bool:
    """Whether ``col`` is non-decreasing (a short prefix first: random columns fail there)."""
    head = col[: _SORTED_PROBE + 1]
    if not bool((head[1:] >= head[:-1]).all()):
        return False
    return col.shape[0] <= head.shape[0] or bool((col[1:] >= col[:-1]).all())


def _check_range(col: torch.Tensor, size: int, mode: int) -> None:
    if col.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(col))
    if low < 0 or high >= size:
        raise ValueError(
            f"SparseLayout.build: mode-{mode} indices must lie in [0, {size}); got values in "
            f"[{low}, {high}]."
        )


@dataclass(frozen=True, eq=False)
class SparseLayout:
    """Mode-sorted layouts of one set of coordinates (see the module docstring).

    Build it once with :meth:`build` and pass it to every kernel call on the same coordinates
    (:func:`factorch.algebra.sparse_mttkrp` ``layout=``); it holds references to the coordinates
    and values it was built from (no copy) and is immutable.

    Attributes:
        shape: the dense shape.
        indices: the ``(N, nnz)`` coordinates it describes.
        values: the values it was built with (kernels may be given other values for the same
            coordinates).
        layouts: mode -> :class:`ModeLayout`, for the modes it was built for.

    Example:
        >>> from factorch.tensors import SparseTensor
        >>> sp = SparseTensor.from_dense(torch.eye(3, dtype=torch.float64))
        >>> layout = SparseLayout.build(sp)
        >>> layout.mode(1).offsets.tolist()
        [0, 1, 2, 3]
    """

    shape: tuple[int, ...]
    indices: torch.Tensor
    values: torch.Tensor
    layouts: Mapping[int, ModeLayout]

    @classmethod
    def build(
        cls, tensor: SparseCoordinates, *, modes: Iterable[int] | None = None
    ) -> SparseLayout:
        """The layouts of ``tensor``'s coordinates for ``modes`` (default: every mode).

        Args:
            tensor: a :class:`factorch.tensors.SparseTensor` or any :class:`SparseCoordinates`.
            modes: the modes to sort by (negative values count from the end).

        Returns:
            A :class:`SparseLayout`. Not differentiable (index structure); the values it holds
            are the tensor's, in layout order, and carry their autograd history.

        Raises:
            TypeError: ``tensor`` is not coordinate-form sparse data.
            ValueError: an index of a sorted mode lies outside that mode's size.
            IndexError: a mode is out of range.
        """
        fn = "SparseLayout.build"
        tensor = as_coordinates(tensor, fn)
        shape = tuple(int(s) for s in tensor.shape)
        ndim = len(shape)
        wanted = range(ndim) if modes is None else [check_mode(m, ndim, fn) for m in modes]
        idx, vals = tensor.indices, tensor.values
        layouts = {m: ModeLayout.build(idx, vals, shape[m], m) for m in sorted(set(wanted))}
        return cls(shape, idx, vals, types.MappingProxyType(layouts))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[1])

    def mode(self, mode: int) -> ModeLayout:
        """The layout sorted by ``mode``; ``ValueError`` when it was not built."""
        m = check_mode(mode, self.ndim, "SparseLayout.mode")
        lay = self.layouts.get(m)
        if lay is None:
            raise ValueError(
                f"SparseLayout.mode: this layout was built for modes {tuple(self.layouts)}, not "
                f"mode {m}; build it with SparseLayout.build(tensor, modes=...) including {m}."
            )
        return lay

    def check_describes(self, tensor: SparseCoordinates, fn: str) -> None:
        """``ValueError`` unless ``tensor`` has this layout's shape and coordinates (the same
        index tensor, or an equal one: one comparison, cheaper than the sort it saves)."""
        if tuple(tensor.shape) != self.shape:
            raise ValueError(
                f"{fn}: layout was built for shape {self.shape}; the tensor has shape "
                f"{tuple(tensor.shape)}. Build the layout from this tensor."
            )
        idx = tensor.indices
        same = idx is self.indices or (
            idx.shape == self.indices.shape
            and idx.device == self.indices.device
            and bool(torch.equal(idx, self.indices))
        )
        if not same:
            raise ValueError(
                f"{fn}: layout was built for other coordinates ({self.nnz} entries) than the "
                f"tensor's ({idx.shape[1]} entries); build it with SparseLayout.build(tensor)."
            )
