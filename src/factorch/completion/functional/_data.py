"""Continuous-indexed tensor data: real coordinates per mode and an observed value per entry.

A :class:`ContinuousData` holds ``N`` observations ``y_n`` at coordinates
``(t_{n,1}, ..., t_{n,K}) in R^K`` -- latitude x longitude x time, position x time, dose x time
-- without binning them into a grid. Coordinates are kept in float64 (they are positions, not
data: float32 cannot tell apart neighbouring timestamps), values in their own floating dtype.

Build one from a table of columns (:meth:`ContinuousData.from_table`) or from a dense grid with
its coordinate vectors (:meth:`ContinuousData.from_grid`); split it at random
(:meth:`ContinuousData.split`); standardise values (and optionally coordinates) with statistics of
the training part only (:class:`Standardization`); bin it to an integer grid for the discrete
baselines (:meth:`ContinuousData.to_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..._checks import as_tensor, check_generator, check_positive_int, check_tensor
from ...tensors import SparseTensor

__all__ = ["ContinuousData", "Standardization"]


def _names(value: object, k: int, fn: str, what: str, default: str | None) -> tuple[Any, ...]:
    if value is None:
        return tuple(f"{default}{i}" if default is not None else None for i in range(k))
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            f"{fn}: {what} must be a sequence of {k} strings; got {type(value).__name__}."
        )
    out = tuple(value)
    if len(out) != k:
        raise ValueError(f"{fn}: {what} must have one entry per mode ({k}); got {len(out)}.")
    for v in out:
        if not (isinstance(v, str) or (default is None and v is None)):
            raise TypeError(f"{fn}: {what} must hold strings; got {type(v).__name__}.")
    return out


@dataclass(frozen=True)
class ContinuousData:
    """Observations of a tensor indexed by real coordinates (a frozen value).

    Attributes:
        coords: ``(N, K)`` float64 coordinates, finite; any order, repeats allowed (entries that
            share a coordinate in one mode share the value of that mode's latent functions).
        values: ``(N,)`` observed values, finite, floating (float16 ... float64).
        names: one name per mode (default ``("x0", "x1", ...)``).
        units: one unit (or None) per mode.
        value_name: the name of the observed quantity.
        value_unit: its unit, or None.

    Raises:
        TypeError: non-numeric coordinates or values, integer or complex values, names that are
            not strings.
        ValueError: shapes that do not match, no entries, NaN or infinite coordinates or values.

    Example:
        >>> import torch
        >>> data = ContinuousData(torch.rand(100, 2, dtype=torch.float64), torch.randn(100))
        >>> train, test = data.split((0.8, 0.2), generator=torch.Generator().manual_seed(0))
        >>> len(train), len(test), data.ndim
        (80, 20, 2)
    """

    coords: torch.Tensor
    values: torch.Tensor
    names: tuple[str, ...] | None = None
    units: tuple[str | None, ...] | None = None
    value_name: str = "value"
    value_unit: str | None = None

    def __post_init__(self) -> None:
        fn = "ContinuousData"
        coords = as_tensor(self.coords, fn, "coords")
        values = as_tensor(self.values, fn, "values")
        if coords.is_complex() or coords.dtype == torch.bool:
            raise TypeError(f"{fn}: coords must be real numbers; got dtype {coords.dtype}.")
        if not (values.is_floating_point()):
            raise TypeError(
                f"{fn}: values must have a floating dtype; got {values.dtype}. Convert them, "
                "e.g. values.double()."
            )
        if coords.ndim == 1:
            coords = coords[:, None]
        if coords.ndim != 2 or values.ndim != 1:
            raise ValueError(
                f"{fn}: coords must be (N, K) and values (N,); got shapes "
                f"{tuple(coords.shape)} and {tuple(values.shape)}."
            )
        if coords.shape[0] != values.shape[0]:
            raise ValueError(
                f"{fn}: coords and values must have the same number of entries; got "
                f"{coords.shape[0]} and {values.shape[0]}."
            )
        if coords.shape[1] < 1:
            raise ValueError(f"{fn}: coords must have at least one mode (column); got 0.")
        coords = coords.detach().to(torch.float64)
        values = values.detach()
        if coords.device != values.device:
            values = values.to(coords.device)
        bad = ~torch.isfinite(coords)
        if bool(bad.any()):
            rows = bad.any(1).nonzero().flatten()
            mode = int(bad.any(0).nonzero()[0])
            raise ValueError(
                f"{fn}: coords contain {int(bad.sum())} NaN or infinite entries (first in "
                f"entry {int(rows[0])}, mode {mode}); every coordinate must be finite: drop "
                "those entries."
            )
        n_bad = int((~torch.isfinite(values)).sum()) if values.numel() else 0
        if n_bad:
            raise ValueError(
                f"{fn}: values contain {n_bad} NaN or infinite entries; drop the unobserved "
                "entries (from_table(..., dropna=True) or from_grid(..., mask=...))."
            )
        k = coords.shape[1]
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", _names(self.names, k, fn, "names", "x"))
        object.__setattr__(self, "units", _names(self.units, k, fn, "units", None))
        if not isinstance(self.value_name, str):
            raise TypeError(
                f"{fn}: value_name must be a str; got {type(self.value_name).__name__}."
            )

    # --- basic properties ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def ndim(self) -> int:
        """Number of modes ``K``."""
        return int(self.coords.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        """The values' dtype."""
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    def unique_coords(self, mode: int) -> torch.Tensor:
        """The sorted distinct coordinates of ``mode`` (float64)."""
        return torch.unique(self.coords[:, mode], sorted=True)

    def __repr__(self) -> str:
        sizes = " x ".join(str(self.unique_coords(k).numel()) for k in range(self.ndim))
        return (
            f"ContinuousData({len(self)} entries, modes {self.names}, {sizes} distinct "
            f"coordinates, {self.dtype})"
        )

    def to(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ContinuousData:
        """A copy with values (and coordinates) on ``device`` and values in ``dtype``."""
        return replace(
            self,
            coords=self.coords.to(device=device),
            values=self.values.to(device=device, dtype=dtype),
        )

    def select(self, positions: torch.Tensor) -> ContinuousData:
        """The entries at ``positions`` (an index or bool tensor), names and units kept."""
        return replace(self, coords=self.coords[positions], values=self.values[positions])

    def with_values(self, values: torch.Tensor) -> ContinuousData:
        """The same coordinates with other values (names and units kept)."""
        return replace(self, values=values)

    # --- constructors -------------------------------------------------------------------------
    @classmethod
    def from_table(
        cls,
        table: Any,
        coords: Sequence[str],
        value: str,
        *,
        units: Sequence[str | None] | None = None,
        value_unit: str | None = None,
        dropna: bool = False,
        dtype: torch.dtype = torch.float64,
    ) -> ContinuousData:
        """Build from a table of columns: a mapping ``name -> array`` (a dict, a pandas
        ``DataFrame``, a numpy structured array).

        Args:
            table: the columns.
            coords: the coordinate columns, one per mode, in mode order.
            value: the observed-value column.
            units: one unit (or None) per coordinate column.
            value_unit: the value's unit.
            dropna: drop the rows whose value is NaN (missing); rows with a NaN coordinate are
                refused either way.
            dtype: dtype of the values.

        Raises:
            TypeError: ``coords`` is a bare string, a column is not numeric.
            ValueError: a column is missing (the available ones are listed), columns of
                different lengths, no coordinate column, NaN coordinates.

        Example:
            >>> table = {"t": [0.0, 0.5, 1.0], "x": [1.0, 2.0, 3.0], "y": [0.1, 0.2, 0.3]}
            >>> ContinuousData.from_table(table, ["t", "x"], "y").coords.shape
            torch.Size([3, 2])
        """
        fn = "ContinuousData.from_table"
        if isinstance(coords, str) or not isinstance(coords, Sequence):
            raise TypeError(
                f"{fn}: coords must be a sequence of column names (e.g. ['lat', 'lon']); got "
                f"{type(coords).__name__}."
            )
        if not coords:
            raise ValueError(f"{fn}: coords must name at least one column; got none.")
        cols = [_column(table, c, fn) for c in coords]
        y = _column(table, value, fn).to(dtype)
        n = y.shape[0]
        for c, col in zip(coords, cols):
            if col.shape[0] != n:
                raise ValueError(
                    f"{fn}: column {c!r} has {col.shape[0]} rows but {value!r} has {n}."
                )
        xs = torch.stack([col.to(torch.float64) for col in cols], dim=1)
        if dropna:
            keep = ~torch.isnan(y)
            xs, y = xs[keep], y[keep]
        return cls(xs, y, tuple(coords), None if units is None else tuple(units), value, value_unit)

    @classmethod
    def from_grid(
        cls,
        tensor: torch.Tensor,
        coords: Sequence[torch.Tensor],
        *,
        mask: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
        units: Sequence[str | None] | None = None,
    ) -> ContinuousData:
        """Build from a dense grid of values and the coordinate vector of every mode.

        Args:
            tensor: ``(n_1, ..., n_K)`` values (numpy arrays accepted).
            coords: ``K`` vectors, ``coords[k]`` of length ``n_k`` (any order; the grid's index
                ``i`` of mode ``k`` is at ``coords[k][i]``).
            mask: bool tensor of ``tensor``'s shape, True where observed; without it every entry
                must be finite.
            names, units: per mode.

        Raises:
            ValueError: a coordinate vector of the wrong length, a mask of another shape, NaN in
                an observed entry (without a mask: pass ``mask=~torch.isnan(tensor)``).

        Example:
            >>> import torch
            >>> t, x = torch.linspace(0, 1, 5), torch.linspace(-1, 1, 3)
            >>> len(ContinuousData.from_grid(torch.outer(t, x), [t, x]))
            15
        """
        fn = "ContinuousData.from_grid"
        tensor = as_tensor(tensor, fn)
        if not tensor.is_floating_point():
            raise TypeError(f"{fn}: tensor must have a floating dtype; got {tensor.dtype}.")
        check_tensor(tensor, fn, min_ndim=1, finite=False)
        if isinstance(coords, torch.Tensor) or not isinstance(coords, Sequence):
            raise TypeError(f"{fn}: coords must be a sequence of {tensor.ndim} vectors.")
        if len(coords) != tensor.ndim or tensor.ndim == 0:
            raise ValueError(
                f"{fn}: coords must hold one vector per mode ({tensor.ndim}); got {len(coords)}."
            )
        vecs = [
            as_tensor(c, fn, f"coords[{k}]").to(torch.float64).flatten()
            for k, c in enumerate(coords)
        ]
        for k, v in enumerate(vecs):
            if v.numel() != tensor.shape[k]:
                raise ValueError(
                    f"{fn}: coords[{k}] must have {tensor.shape[k]} entries (mode {k} of the "
                    f"grid); got {v.numel()}."
                )
        if mask is None:
            if not bool(torch.isfinite(tensor).all()):
                raise ValueError(
                    f"{fn}: tensor has NaN or infinite entries; pass mask=~torch.isnan(tensor) "
                    "to treat them as unobserved."
                )
            mask = torch.ones(tensor.shape, dtype=torch.bool, device=tensor.device)
        mask = as_tensor(mask, fn, "mask")
        if mask.dtype != torch.bool or mask.shape != tensor.shape:
            raise ValueError(
                f"{fn}: mask must be a bool tensor of shape {tuple(tensor.shape)}; got "
                f"{mask.dtype} of shape {tuple(mask.shape)}."
            )
        idx = mask.nonzero()
        xs = torch.stack([vecs[k].to(idx.device)[idx[:, k]] for k in range(tensor.ndim)], 1)
        return cls(
            xs,
            tensor[mask],
            None if names is None else tuple(names),
            None if units is None else tuple(units),
        )

    # --- splits and binning -------------------------------------------------------------------
    def split(
        self, fractions: Sequence[float], *, generator: torch.Generator | None = None
    ) -> tuple[ContinuousData, ...]:
        """Random disjoint parts of the entries (e.g. ``(0.8, 0.2)`` or ``(0.7, 0.1, 0.2)``).

        Fractions are positive and sum to 1 (within 1e-9); part sizes are rounded down except
        the last, which takes the rest. Uniformly random (missing completely at random).

        Raises:
            TypeError: a bad generator.
            ValueError: fractions that are not positive or do not sum to 1.
        """
        fn = "ContinuousData.split"
        check_generator(generator, fn)
        fr = [float(f) for f in fractions]
        if len(fr) < 2 or any(not (f > 0) for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
            raise ValueError(
                f"{fn}: fractions must be at least two positive numbers summing to 1; got "
                f"{tuple(fractions)}."
            )
        n = len(self)
        perm = torch.randperm(n, generator=generator).to(self.device)
        sizes = [math.floor(f * n) for f in fr[:-1]]
        sizes.append(n - sum(sizes))
        parts, start = [], 0
        for s in sizes:
            parts.append(self.select(perm[start : start + s]))
            start += s
        return tuple(parts)

    def bin_edges(self, bins: int | Sequence[int]) -> tuple[torch.Tensor, ...]:
        """Equal-width bin edges per mode over this data's coordinate range (``bins + 1`` each)."""
        fn = "ContinuousData.bin_edges"
        nb = [bins] * self.ndim if isinstance(bins, int) else list(bins)
        if len(nb) != self.ndim:
            raise ValueError(f"{fn}: bins must be an int or one int per mode; got {bins!r}.")
        out = []
        for k, b in enumerate(nb):
            b = check_positive_int(b, fn, "bins")
            lo, hi = float(self.coords[:, k].min()), float(self.coords[:, k].max())
            if hi <= lo:
                hi = lo + 1.0
            out.append(torch.linspace(lo, hi, b + 1, dtype=torch.float64))
        return tuple(out)

    def bin_indices(self, edges: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(N, K)`` integer bin of every entry (coordinates outside the edges go to the
        first or last bin)."""
        cols = []
        for k, e in enumerate(edges):
            e = e.to(self.coords.device, torch.float64)
            i = torch.bucketize(self.coords[:, k].contiguous(), e[1:-1].contiguous(), right=True)
            cols.append(i)
        return torch.stack(cols, 1)

    def to_grid(self, edges: Sequence[torch.Tensor]) -> tuple[SparseTensor, torch.Tensor]:
        """Bin the entries onto an integer grid (for discrete completion baselines).

        Entries that fall into the same cell are averaged. Returns the
        :class:`~factorch.tensors.SparseTensor` of cell means and the ``(N, K)`` cell of every
        entry.
        """
        idx = self.bin_indices(edges)
        shape = tuple(int(e.numel()) - 1 for e in edges)
        sp = SparseTensor.from_coo(idx.T, self.values, shape, duplicates="mean")
        return sp, idx


def _column(table: Any, name: str, fn: str) -> torch.Tensor:
    if not isinstance(name, str):
        raise TypeError(f"{fn}: column names must be strings; got {type(name).__name__}.")
    try:
        col = table[name]
    except (KeyError, ValueError, IndexError, TypeError) as err:
        raise ValueError(
            f"{fn}: the table has no column {name!r}; it has {_available(table)}."
        ) from err
    arr = col.to_numpy() if hasattr(col, "to_numpy") else col
    out = as_tensor(arr, fn, f"column {name!r}")
    if out.ndim != 1:
        raise ValueError(f"{fn}: column {name!r} must be 1-D; got shape {tuple(out.shape)}.")
    if out.is_complex() or out.dtype == torch.bool:
        raise TypeError(f"{fn}: column {name!r} must hold real numbers; got {out.dtype}.")
    return out


def _available(table: Any) -> str:
    names: list[str] = []
    if hasattr(table, "keys"):
        names = [str(k) for k in table.keys()]
    elif getattr(getattr(table, "dtype", None), "names", None):
        names = list(table.dtype.names)
    return ", ".join(repr(n) for n in names[:20]) if names else "no named columns"


@dataclass(frozen=True)
class Standardization:
    """Affine maps of values (z-score) and coordinates (to ``[0, 1]``) fitted on training data.

    ``y' = (y - value_mean) / value_std`` and, when coordinates are scaled,
    ``t'_k = (t_k - coord_min[k]) / coord_span[k]``. Fit on the training part only
    (:meth:`fit`), then :meth:`apply` the same map to validation and test parts, so no statistic
    leaks from held-out data.

    Attributes:
        value_mean, value_std: of the training values (``value_std`` is 1 for constant values).
        coord_min, coord_span: per mode (``(0, 1)`` per mode when coordinates are not scaled).

    Example:
        >>> import torch
        >>> train = ContinuousData(torch.rand(50, 2, dtype=torch.float64), 3 + torch.randn(50))
        >>> s = Standardization.fit(train)
        >>> z = s.apply(train)
        >>> abs(float(z.values.mean())) < 1e-6, round(float(z.values.std(unbiased=False)), 4)
        (True, 1.0)
    """

    value_mean: float
    value_std: float
    coord_min: tuple[float, ...]
    coord_span: tuple[float, ...]

    @classmethod
    def fit(cls, train: ContinuousData, *, coords: bool = True) -> Standardization:
        """Statistics of ``train`` (the training part only). ``coords=False`` leaves the
        coordinates unchanged."""
        if not isinstance(train, ContinuousData):
            raise TypeError(
                f"Standardization.fit: train must be a ContinuousData; got {type(train).__name__}."
            )
        y = train.values.to(torch.float64)
        mean = float(y.mean())
        std = float((y - mean).pow(2).mean().sqrt())
        if not std > 0 or not math.isfinite(std):
            std = 1.0
        k = train.ndim
        if coords:
            lo = train.coords.min(0).values
            span = train.coords.max(0).values - lo
            span = torch.where(span > 0, span, torch.ones_like(span))
            return cls(mean, std, tuple(lo.tolist()), tuple(span.tolist()))
        return cls(mean, std, (0.0,) * k, (1.0,) * k)

    def apply(self, data: ContinuousData) -> ContinuousData:
        """``data`` with standardised values and coordinates (names and units kept)."""
        if data.ndim != len(self.coord_min):
            raise ValueError(
                f"Standardization.apply: data has {data.ndim} modes; these statistics have "
                f"{len(self.coord_min)}."
            )
        lo = torch.tensor(self.coord_min, dtype=torch.float64, device=data.coords.device)
        span = torch.tensor(self.coord_span, dtype=torch.float64, device=data.coords.device)
        values = ((data.values.to(torch.float64) - self.value_mean) / self.value_std).to(data.dtype)
        return replace(data, coords=(data.coords - lo) / span, values=values)

    def coords_to_standard(self, coords: torch.Tensor) -> torch.Tensor:
        """Map raw ``(M, K)`` coordinates to standardised ones."""
        lo = torch.tensor(self.coord_min, dtype=torch.float64, device=coords.device)
        span = torch.tensor(self.coord_span, dtype=torch.float64, device=coords.device)
        return (coords.to(torch.float64) - lo) / span

    def values_from_standard(self, values: torch.Tensor) -> torch.Tensor:
        """Undo the value map: ``y = y' value_std + value_mean``."""
        return values * self.value_std + self.value_mean
