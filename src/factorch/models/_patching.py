"""Multi-grid domain decomposition (MG-TFNO, Kossaifi et al., TMLR 2024, section 3.1).

An ``N^d`` field is cut into ``(2^L)^d`` patches of side ``P = N / 2^L``. Each patch is extended
by ``p`` points on every side (taken from its neighbours, or from the boundary condition at the
edge of the domain), giving a window of side ``W = P + 2p`` at full resolution. For each level
``l = 1 .. L`` the whole field is average-pooled by ``2^l`` and a window of the same side ``W``,
centred on the patch, is cut from it: context from a ``2^l`` times wider region at ``2^l`` times
coarser resolution. The windows are stacked as channels (``C (L + 1)`` channels per patch), so a
model sees fine detail locally and the wider domain coarsely. Outputs, one per patch, are cropped
by ``p`` and stitched back into the ``N^d`` field, or (``stitching="blend"``) overlap-added
with a window that ramps linearly across the ``2p`` points two neighbours share and divided by
the summed window, so neighbouring outputs meet without a seam.

The padding respects the boundary: ``"periodic"`` wraps around the torus; ``"replicate"``,
``"reflect"`` and ``"zeros"`` never mix opposite sides of a non-periodic domain (neuraloperator
pads circularly whatever the problem).

Centring the level-``l`` window on the patch needs ``N`` divisible by ``2^(2L+1)`` (e.g. 8 for
one level, 32 for two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F

__all__ = ["Boundary", "MultigridPatching", "Stitching"]

Boundary = Literal["periodic", "replicate", "reflect", "zeros"]
Stitching = Literal["crop", "blend"]
_TORCH_MODE = {"periodic": "circular", "replicate": "replicate", "reflect": "reflect"}


class MultigridPatching:
    """Cut fields into multi-grid patches and stitch patch outputs back (module docstring).

    Args:
        levels: number of coarser context levels ``L >= 0`` (``L = 0``: one patch, the field).
        padding: extension ``p`` of each patch as a fraction of the field's side (rounded to
            points: ``round(padding * N)``), as neuraloperator's ``padding_fraction``.
        boundary: how fields are extended beyond the domain (``"periodic"``, ``"replicate"``,
            ``"reflect"``, ``"zeros"``).
        stitching: ``"crop"`` each patch output by the padding, or ``"blend"`` the overlaps
            (module docstring).

    Raises:
        ValueError: ``levels`` that is not an int >= 0, ``padding`` outside ``[0, 0.5)``, an
            unknown ``boundary`` or an unknown ``stitching``.

    Example:
        >>> mg = MultigridPatching(levels=1, padding=0.125, boundary="periodic")
        >>> x = torch.randn(2, 3, 16, 16)
        >>> patches = mg.patch(x)
        >>> patches.shape  # 4 patches per field, 3 x 2 channels, 8 + 2 * 2 points per side
        torch.Size([8, 6, 12, 12])
        >>> torch.equal(mg.stitch(patches[:, :3], batch=2, grid=(16, 16)), x)
        True
    """

    def __init__(
        self,
        levels: int,
        padding: float = 0.0,
        boundary: Boundary = "periodic",
        stitching: Stitching = "crop",
    ) -> None:
        fn = "MultigridPatching"
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
            raise ValueError(f"{fn}: levels must be an int >= 0; got {levels!r}.")
        if (
            isinstance(padding, bool)
            or not isinstance(padding, (int, float))
            or not 0 <= padding < 0.5
        ):
            raise ValueError(f"{fn}: padding must be a fraction in [0, 0.5); got {padding!r}.")
        if boundary not in get_args(Boundary):
            raise ValueError(
                f"{fn}: boundary must be one of {get_args(Boundary)}; got {boundary!r}."
            )
        if stitching not in get_args(Stitching):
            raise ValueError(
                f"{fn}: stitching must be one of {get_args(Stitching)}; got {stitching!r}."
            )
        self.levels = levels
        self.stitching: Stitching = stitching
        self.padding = float(padding)
        self.boundary: Boundary = boundary

    # --- geometry --------------------------------------------------------------------------------
    def geometry(self, grid: Sequence[int]) -> tuple[int, int, int]:
        """``(patch side P, padding p, patches per side)`` for a grid (all sides equal)."""
        fn = "MultigridPatching"
        sides = set(grid)
        if len(sides) != 1:
            raise ValueError(f"{fn}: the grid must have equal sides; got {tuple(grid)}.")
        n = sides.pop()
        per_side = 2**self.levels
        need = 2 ** (2 * self.levels + 1) if self.levels else 1
        if n % need:
            raise ValueError(
                f"{fn}: {self.levels} level(s) need a grid side divisible by {need} (patches of "
                f"side N / 2^L with context windows centred on them); got {n}."
            )
        p = round(self.padding * n)
        side = n // per_side
        if p > side:
            raise ValueError(
                f"{fn}: the padding of {p} points exceeds the patch side {side}; use a smaller "
                "padding fraction."
            )
        return side, p, per_side

    def n_patches(self, grid: Sequence[int]) -> int:
        """Patches per field."""
        return (2**self.levels) ** len(grid)

    def _pad(self, x: torch.Tensor, left: int, right: int) -> torch.Tensor:
        d = x.ndim - 2
        flat = [left, right] * d
        if not (left or right):
            return x
        if self.boundary == "zeros":
            return F.pad(x, flat)
        size = min(x.shape[2:])
        if self.boundary == "reflect" and max(left, right) >= size:
            raise ValueError(
                f"MultigridPatching: reflect padding of {max(left, right)} points needs fields of "
                f"more than that many points (a level has {size}); use boundary='replicate'."
            )
        if self.boundary == "periodic" and max(left, right) > size:
            reps = math.ceil(max(left, right) / size)
            x = _tile(x, 2 * reps + 1)
            offset = reps * size
            index = (slice(None), slice(None), *([slice(offset - left, offset + size + right)] * d))
            return x[index]
        return F.pad(x, flat, mode=_TORCH_MODE[self.boundary])

    def windows(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unfolded views ``(B, C, n_1..n_d, W_1..W_d)`` of every level's padded field."""
        fn = "MultigridPatching"
        if not isinstance(x, torch.Tensor) or not 3 <= x.ndim <= 5:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{fn}: fields must be a (batch, channels, *grid) tensor with 1 to 3 grid "
                f"dimensions; got {got}."
            )
        if not x.is_floating_point():
            raise TypeError(
                f"{fn}: fields must be a real floating-point tensor (levels are averages); got "
                f"{x.dtype}."
            )
        d = x.ndim - 2
        side, p, per_side = self.geometry(x.shape[2:])
        width = side + 2 * p
        out = []
        for level in range(self.levels + 1):
            s = 2**level
            field = x if level == 0 else _avg_pool(x, s)
            step = side // s
            offset = side // (2 * s) - width // 2  # start of patch 0's window (may be < 0)
            left = -offset
            right = offset + (per_side - 1) * step + width - field.shape[-1]
            padded = self._pad(field, left, max(right, 0))
            view = padded
            for j in range(d):
                view = view.unfold(2 + j, width, step)
            out.append(view)
        return out

    # --- patch and stitch ------------------------------------------------------------------------
    def patch(self, x: torch.Tensor, indices: slice | None = None) -> torch.Tensor:
        """Patches ``(B * n^d, C (L + 1), W..)`` ordered batch-major (then row-major over the
        patch grid); ``indices`` selects a range of that order without building the rest."""
        views = self.windows(x)
        parts = [self._flatten(v, indices) for v in views]
        return torch.cat(parts, dim=1)

    def _flatten(self, view: torch.Tensor, indices: slice | None) -> torch.Tensor:
        d = (view.ndim - 2) // 2
        b, c = view.shape[:2]
        grid, window = view.shape[2 : 2 + d], view.shape[2 + d :]
        perm = (0, *range(2, 2 + d), 1, *range(2 + d, 2 + 2 * d))
        v = view.permute(perm)  # (B, n.., C, W..) still a view
        flat = (
            v.reshape(b * math.prod(grid), c, *window) if indices is None else _rows(v, indices, d)
        )
        return flat

    def stitch(self, patches: torch.Tensor, batch: int, grid: Sequence[int]) -> torch.Tensor:
        """Assemble patch outputs ``(B * n^d, C, W..)`` into the fields: crop each by the padding
        (``stitching="crop"``) or blend the overlaps (``"blend"``)."""
        d = len(grid)
        side, p, per_side = self.geometry(grid)
        c = patches.shape[1]
        if self.stitching == "blend" and p:
            return self._blend(patches, batch, d, side, p, per_side)
        index = (slice(None), slice(None), *([slice(p, p + side)] * d))
        core = patches[index].reshape(batch, *([per_side] * d), c, *([side] * d))
        # (B, n_1..n_d, C, P_1..P_d) -> (B, C, n_1, P_1, ..., n_d, P_d)
        perm = [0, d + 1]
        for j in range(d):
            perm += [1 + j, d + 2 + j]
        return core.permute(perm).reshape(batch, c, *grid)

    def _blend(
        self, patches: torch.Tensor, batch: int, d: int, side: int, p: int, per_side: int
    ) -> torch.Tensor:
        """Overlap-add of the patch outputs weighted by a separable window that ramps linearly
        over the ``2p`` points two neighbours share, divided by the overlap-added weights."""
        width = side + 2 * p
        ramp = (torch.arange(2 * p, dtype=patches.dtype, device=patches.device) + 0.5) / (2 * p)
        w1 = torch.ones(width, dtype=patches.dtype, device=patches.device)
        w1[: 2 * p] = ramp
        w1[width - 2 * p :] = ramp.flip(0)
        c = patches.shape[1]
        out = patches.reshape(batch, *([per_side] * d), c, *([width] * d))
        weight = torch.ones((1,) * (d + 2) + (width,) * d, dtype=w1.dtype, device=w1.device)
        for j in range(d):
            shape = [1] * (2 * d + 2)
            shape[d + 2 + j] = width
            weight = weight * w1.reshape(shape)
        out = out * weight
        weight = weight.expand(1, *([per_side] * d), 1, *([width] * d))
        periodic = self.boundary == "periodic"
        for _ in range(d):
            # (B, n_j+1.., C, lines of the folded axes.., W_j+1..): the next patch axis is at 1
            # and its window axis at d + 2
            out = _overlap_add(out, 1, d + 2, side, p, periodic)
            weight = _overlap_add(weight, 1, d + 2, side, p, periodic)
        return out / weight


def _overlap_add(
    x: torch.Tensor, axis: int, window_axis: int, side: int, p: int, periodic: bool
) -> torch.Tensor:
    """Sum the windows of side ``side + 2p`` along ``window_axis`` placed ``side`` apart (one per
    index of ``axis``, which is removed) into a line of ``n * side`` points: the overhang of
    ``p`` points at either end wraps around when periodic and is dropped otherwise."""
    n = x.shape[axis]
    line = n * side
    xs = x.movedim((axis, window_axis), (-2, -1))  # (..., n, W)
    buf = xs.new_zeros(*xs.shape[:-2], line + 2 * p)
    for i in range(n):
        buf[..., i * side : i * side + side + 2 * p] += xs[..., i, :]
    if periodic:
        buf[..., p : 2 * p] += buf[..., line + p :]
        buf[..., line : line + p] += buf[..., :p]
    out = buf[..., p : p + line]
    return out.movedim(-1, window_axis - 1)


def _rows(view: torch.Tensor, indices: slice, d: int) -> torch.Tensor:
    """Rows ``indices`` of the flattened (batch, patch) order without flattening the rest."""
    b = view.shape[0]
    grid = view.shape[1 : 1 + d]
    per = math.prod(grid)
    start, stop, _ = indices.indices(b * per)
    rows = []
    for r in range(start, stop):
        i, rest = divmod(r, per)
        pos = []
        for n in reversed(grid):
            rest, q = divmod(rest, n)
            pos.append(q)
        rows.append(view[tuple([i, *pos[::-1]])])
    return torch.stack(rows)


def _avg_pool(x: torch.Tensor, s: int) -> torch.Tensor:
    d = x.ndim - 2
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[d]
    return pool(x, s)


def _tile(x: torch.Tensor, reps: int) -> torch.Tensor:
    d = x.ndim - 2
    return x.repeat(1, 1, *([reps] * d))
