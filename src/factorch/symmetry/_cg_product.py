r"""The full Clebsch--Gordan tensor product with per-path weights.

For inputs :math:`x \in V_1 = \bigoplus_a V_{l_a p_a}` and :math:`y \in V_2` and an output
:math:`V_3 = \bigoplus_c V_{l_c p_c}`, a *path* is a triple of copies ``(a, b, c)`` with
:math:`|l_a - l_b| \le l_c \le l_a + l_b` and :math:`p_c = p_a p_b`; the product is

.. math::

    z_c = \sum_{(a, b, c)} w_{abc}\; C^{l_a l_b l_c} (x_a \otimes y_b),\qquad
    \bigl(C (x \otimes y)\bigr)_{m_3} = \sum_{m_1 m_2} C_{m_1 m_2 m_3} x_{m_1} y_{m_2},

with the orthonormal Clebsch--Gordan coefficients of :func:`clebsch_gordan` (each path is e3nn's
``FullTensorProduct`` path with ``irrep_normalization="component"``). Every bilinear
O(3)-equivariant map :math:`V_1 \times V_2 \to V_3` is of this form (Schur), so with free weights
the product reaches all of them (its *expressivity* is the number of paths, see
:func:`expressivity`). The weights may carry a channel axis: ``w[path, channel]`` multiplies the
path in each channel of a channel-wise (e3nn ``"uuu"``) product.

Algorithm. Paths are grouped by input pair ``(a, b)``; the pair's coefficients for all its
output copies form one dense ``((2l_a+1)(2l_b+1), width)`` matrix, and the output copies of a pair
are contiguous once the output is held internally sorted by ``(parity, degree)``: one outer product
and one matrix product per input pair write a contiguous slice, and a final gather restores the
requested layout. The flop count equals e3nn's (``sum_paths (2l_a+1)(2l_b+1)(2l_c+1)`` per sample),
with one kernel per input pair instead of one ``einsum`` per path.

References:
    N. Thomas et al., Tensor field networks, arXiv:1802.08219 (2018).
    M. Geiger, T. Smidt, e3nn: Euclidean neural networks, arXiv:2207.09453 (2022).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch

from .._numerics import no_autocast
from ._common import check_irreps, check_real_tensor, rescale_product, scale_input
from ._irreps import Irrep, Irreps
from ._wigner import clebsch_gordan64

__all__ = [
    "ClebschGordanTensorProduct",
    "TensorProductPath",
    "cg_paths",
    "cg_tensor_product",
    "default_irreps_out",
]


@dataclasses.dataclass(frozen=True)
class TensorProductPath:
    """One path ``(a, b, c)``: copy ``a`` of ``irreps1``, ``b`` of ``irreps2``, ``c`` of the output.

    Copies are counted in layout order (``Irreps.expanded()``); ``l1, l2, l3`` are their degrees.

    Attributes:
        a: the copy of ``irreps1``'s irreps.
        b: the copy of ``irreps2``'s irreps.
        c: the copy of the output's irreps.
        irrep1: copy ``a``'s irrep.
        irrep2: copy ``b``'s irrep.
        irrep_out: copy ``c``'s irrep.

    Example:
        >>> path = cg_paths("0e + 1o", "1o")[-1]
        >>> path.a, path.b, path.c, path.ls
        (1, 0, 3, (1, 1, 2))
    """

    a: int
    b: int
    c: int
    irrep1: Irrep
    irrep2: Irrep
    irrep_out: Irrep

    @property
    def ls(self) -> tuple[int, int, int]:
        return (self.irrep1.l, self.irrep2.l, self.irrep_out.l)


def default_irreps_out(irreps1: Irreps, irreps2: Irreps) -> Irreps:
    """Every irrep in some ``ir1 ⊗ ir2``, once each, sorted by ``(l, p)``.

    Args:
        irreps1: the first input's irreps (an :class:`Irreps`, or a string such as ``"1o"``).
        irreps2: the second input's irreps.

    Returns:
        The output irreps of the full tensor product, multiplicity 1 each.

    Raises:
        TypeError: an argument that is not irreps or a string.
        ValueError: a string that does not parse as irreps.

    Example:
        >>> default_irreps_out(Irreps("1o"), Irreps("1o"))
        Irreps('1x0e+1x1e+1x2e')
    """
    irreps1 = check_irreps(irreps1, "default_irreps_out", "irreps1")
    irreps2 = check_irreps(irreps2, "default_irreps_out", "irreps2")
    found = {ir for a in irreps1.expanded() for b in irreps2.expanded() for ir in a.couple(b)}
    return Irreps([(1, ir) for ir in sorted(found, key=lambda ir: (ir.l, ir.p))])


def cg_paths(
    irreps1: Irreps | str, irreps2: Irreps | str, irreps_out: Irreps | str | None = None
) -> tuple[TensorProductPath, ...]:
    """All paths of the full CG product, in weight order (``a``, then ``b``, then ``c``).

    Args:
        irreps1, irreps2: input irreps.
        irreps_out: output irreps (default :func:`default_irreps_out`).

    Returns:
        The paths; ``weights[k]`` of :func:`cg_tensor_product` multiplies path ``k``.

    Raises:
        TypeError, ValueError: irreps that cannot be parsed.

    Example:
        >>> [p.ls for p in cg_paths("1o", "1o")]
        [(1, 1, 0), (1, 1, 1), (1, 1, 2)]
    """
    fn = "cg_paths"
    i1, i2 = check_irreps(irreps1, fn, "irreps1"), check_irreps(irreps2, fn, "irreps2")
    io = (
        default_irreps_out(i1, i2)
        if irreps_out is None
        else check_irreps(irreps_out, fn, "irreps_out")
    )
    return _paths(i1, i2, io)


@functools.lru_cache(maxsize=256)
def _paths(irreps1: Irreps, irreps2: Irreps, irreps_out: Irreps) -> tuple[TensorProductPath, ...]:
    e1, e2, e3 = irreps1.expanded(), irreps2.expanded(), irreps_out.expanded()
    return tuple(
        TensorProductPath(a, b, c, ir1, ir2, ir3)
        for a, ir1 in enumerate(e1)
        for b, ir2 in enumerate(e2)
        for c, ir3 in enumerate(e3)
        if ir3.p == ir1.p * ir2.p and abs(ir1.l - ir2.l) <= ir3.l <= ir1.l + ir2.l
    )


@dataclasses.dataclass(frozen=True)
class _PairBlock:
    """The paths of one input pair: slices into x1, x2, the dense coefficients, output slice."""

    slice1: slice
    slice2: slice
    dim1: int
    dim2: int
    coeffs: torch.Tensor  # (dim1 * dim2, width), float64 CPU
    columns: torch.Tensor  # (width,) path index of each output column
    start: int
    stop: int


@dataclasses.dataclass(frozen=True)
class _CGPlan:
    irreps1: Irreps
    irreps2: Irreps
    irreps_out: Irreps
    num_paths: int
    blocks: tuple[_PairBlock, ...]
    gather: torch.Tensor  # internal column of each output component (irreps_out layout)
    fused: _Fused | None  # one dense coupling matrix for small products (see _plan)
    _cache: dict[tuple[torch.dtype, torch.device], _Tensors] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def tensors(self, dtype: torch.dtype, device: torch.device) -> _Tensors:
        key = (dtype, device)
        if key not in self._cache:
            mats = tuple(b.coeffs.to(dtype=dtype, device=device) for b in self.blocks)
            fused = None
            if self.fused is not None:
                fused = _Fused(
                    self.fused.coupling.to(dtype=dtype, device=device),
                    self.fused.columns.to(device),
                    self.fused.assemble.to(dtype=dtype, device=device),
                    self.fused.summed.to(dtype=dtype, device=device),
                    self.fused.block_flops,
                )
            self._cache[key] = _Tensors(mats, self.gather.to(device), fused)
        return self._cache[key]


@dataclasses.dataclass(frozen=True)
class _Fused:
    """All paths at once: ``(x1 ⊗ x2) @ coupling`` gives every path's output (columns), which
    ``assemble`` (0/1) sums into the output layout; ``summed = coupling @ assemble``."""

    coupling: torch.Tensor  # (dim1 * dim2, path columns)
    columns: torch.Tensor  # (path columns,) path index of each column
    assemble: torch.Tensor  # (path columns, irreps_out.dim)
    summed: torch.Tensor  # (dim1 * dim2, irreps_out.dim)
    block_flops: int  # multiply-adds per row of the per-pair route


@dataclasses.dataclass(frozen=True)
class _Tensors:
    mats: tuple[torch.Tensor, ...]
    gather: torch.Tensor
    fused: _Fused | None


@functools.lru_cache(maxsize=64)
def _plan(irreps1: Irreps, irreps2: Irreps, irreps_out: Irreps) -> _CGPlan:
    paths = _paths(irreps1, irreps2, irreps_out)
    e1, e2, e3 = irreps1.expanded(), irreps2.expanded(), irreps_out.expanded()
    off1, off2, off3 = irreps1.offsets(), irreps2.offsets(), irreps_out.offsets()
    # internal output layout: copies sorted by (parity, degree, copy) -> every pair's targets
    # (all copies with the pair's parity and a degree in its triangle) are one contiguous range
    order = sorted(range(len(e3)), key=lambda c: (e3[c].p, e3[c].l, c))
    internal_start: dict[int, int] = {}
    pos = 0
    for c in order:
        internal_start[c] = pos
        pos += e3[c].dim
    gather = torch.empty(irreps_out.dim, dtype=torch.long)
    for c, ir in enumerate(e3):
        gather[off3[c] : off3[c] + ir.dim] = internal_start[c] + torch.arange(ir.dim)
    by_pair: dict[tuple[int, int], list[tuple[int, TensorProductPath]]] = {}
    for k, path in enumerate(paths):
        by_pair.setdefault((path.a, path.b), []).append((k, path))
    blocks = []
    for (a, b), items in by_pair.items():
        items.sort(key=lambda kp: internal_start[kp[1].c])
        ir1, ir2 = e1[a], e2[b]
        mats, cols = [], []
        for k, path in items:
            mats.append(
                clebsch_gordan64(ir1.l, ir2.l, path.irrep_out.l).reshape(ir1.dim * ir2.dim, -1)
            )
            cols.extend([k] * path.irrep_out.dim)
        start = internal_start[items[0][1].c]
        stop = internal_start[items[-1][1].c] + items[-1][1].irrep_out.dim
        if stop - start != len(cols):  # pragma: no cover - guaranteed by the internal order
            raise AssertionError("cg_tensor_product: internal layout is not contiguous")
        blocks.append(
            _PairBlock(
                slice(off1[a], off1[a] + ir1.dim),
                slice(off2[b], off2[b] + ir2.dim),
                ir1.dim,
                ir2.dim,
                torch.cat(mats, dim=1).contiguous(),
                torch.tensor(cols, dtype=torch.long),
                start,
                stop,
            )
        )
    return _CGPlan(
        irreps1,
        irreps2,
        irreps_out,
        len(paths),
        tuple(blocks),
        gather,
        _fuse(blocks, irreps1, irreps2, gather),
    )


def _fuse(
    blocks: list[_PairBlock], irreps1: Irreps, irreps2: Irreps, gather: torch.Tensor
) -> _Fused | None:
    """Dense coupling matrices, for products small enough to hold them (see `_use_fused`)."""
    d1, d2 = irreps1.dim, irreps2.dim
    width = sum(b.coeffs.shape[1] for b in blocks)
    if d1 * d2 * max(width, gather.numel()) > 2**20:
        return None
    coupling = torch.zeros(d1 * d2, width, dtype=torch.float64)
    assemble = torch.zeros(width, gather.numel(), dtype=torch.float64)
    position = torch.empty_like(gather)
    position[gather] = torch.arange(gather.numel())  # internal column -> output column
    columns, col = [], 0
    for b in blocks:
        i = torch.arange(b.slice1.start, b.slice1.stop)[:, None] * d2
        rows = (i + torch.arange(b.slice2.start, b.slice2.stop)[None, :]).reshape(-1)
        k = b.coeffs.shape[1]
        coupling[rows, col : col + k] = b.coeffs
        assemble[torch.arange(col, col + k), position[b.start : b.stop]] = 1.0
        columns.append(b.columns)
        col += k
    block_flops = sum(b.coeffs.numel() for b in blocks)
    return _Fused(coupling, torch.cat(columns), assemble, coupling @ assemble, block_flops)


def _use_fused(f: _Fused | None, weights: torch.Tensor | None) -> bool:
    """The dense route when it costs at most 4x the flops of the per-pair route.

    Without per-channel weights the dense route is one product with the summed coupling
    ``(d1 d2, out)``, otherwise one with ``(d1 d2, path columns)`` plus the assembly; for small
    products a few large matrix products beat one small product per input pair, whose fixed cost
    per call dominates. A fixed rule on the sizes, never a timing.
    """
    if f is None:
        return False
    rows, cols = f.coupling.shape
    dense = rows * f.assemble.shape[1] if weights is None or weights.ndim == 1 else rows * cols
    return dense <= 4 * f.block_flops


def _check_weights(weights: object, num_paths: int, channels: int, fn: str) -> torch.Tensor | None:
    if weights is None:
        return None
    if not isinstance(weights, torch.Tensor):
        raise TypeError(
            f"{fn}: weights must be a torch.Tensor or None; got {type(weights).__name__}."
        )
    if not weights.is_floating_point():
        raise TypeError(
            f"{fn}: weights must have a real floating-point dtype; got {weights.dtype}."
        )
    if weights.ndim not in (1, 2) or weights.shape[0] != num_paths:
        raise ValueError(
            f"{fn}: weights must have shape ({num_paths},) or ({num_paths}, channels) -- one "
            f"per path (see cg_paths); got {tuple(weights.shape)}."
        )
    if weights.ndim == 2 and weights.shape[1] not in (1, channels):
        raise ValueError(
            f"{fn}: weights with a channel axis must have {channels} channels (the size of the "
            f"inputs' second-to-last dimension); got {weights.shape[1]}."
        )
    if not bool(torch.isfinite(weights).all()):
        raise ValueError(f"{fn}: weights contains NaN or Inf entries; all entries must be finite.")
    return weights


@no_autocast
def cg_tensor_product(
    x1: torch.Tensor,
    x2: torch.Tensor,
    irreps1: Irreps | str,
    irreps2: Irreps | str,
    irreps_out: Irreps | str | None = None,
    *,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Full Clebsch--Gordan tensor product with per-path (and per-channel) weights.

    :math:`z_c = \sum_{(a,b,c)} w_{abc}\, C^{l_a l_b l_c}(x_a \otimes y_b)` over all paths of
    :func:`cg_paths` (module docstring). Leading dimensions of ``x1`` and ``x2`` broadcast;
    with channel weights the second-to-last dimension is the channel axis (a channel-wise,
    e3nn ``"uuu"``, product).

    Args:
        x1: ``(..., irreps1.dim)`` in e3nn's layout.
        x2: ``(..., irreps2.dim)``.
        irreps1, irreps2: the inputs' irreps.
        irreps_out: output irreps (default: every reachable irrep once, sorted by ``(l, p)``);
            an output copy receives every path that the selection rules allow.
        weights: ``None`` (all ones), ``(num_paths,)`` or ``(num_paths, channels)``.

    Returns:
        ``(..., irreps_out.dim)`` in the inputs' dtype and device (half precision is computed in
        float32); differentiable in ``x1``, ``x2`` and ``weights``.

    Raises:
        TypeError: non-tensor or non-floating inputs; dtypes that differ.
        ValueError: last dimensions that do not match the irreps, leading shapes that do not
            broadcast, non-finite entries, weights of the wrong shape.

    Example:
        >>> a = torch.tensor([[1.0, 0.0, 0.0]]); b = torch.tensor([[0.0, 1.0, 0.0]])
        >>> z = cg_tensor_product(a, b, "1o", "1o", "1e")  # the cross product / sqrt(2)
        >>> torch.allclose(z, torch.linalg.cross(a, b) / 2**0.5)
        True
    """
    fn = "cg_tensor_product"
    i1, i2 = check_irreps(irreps1, fn, "irreps1"), check_irreps(irreps2, fn, "irreps2")
    io = (
        default_irreps_out(i1, i2)
        if irreps_out is None
        else check_irreps(irreps_out, fn, "irreps_out")
    )
    x1 = check_real_tensor(x1, fn, "x1", last_dim=i1.dim, finite=False)  # checked when scaled
    x2 = check_real_tensor(x2, fn, "x2", last_dim=i2.dim, finite=False)
    if x1.dtype != x2.dtype:
        raise TypeError(f"{fn}: x1 and x2 must have one dtype; got {x1.dtype} and {x2.dtype}.")
    try:
        lead = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"{fn}: the leading shapes of x1 {tuple(x1.shape[:-1])} and x2 "
            f"{tuple(x2.shape[:-1])} must broadcast."
        ) from err
    plan = _plan(i1, i2, io)
    channels = lead[-1] if lead else 1
    w = _check_weights(weights, plan.num_paths, channels, fn)
    # bilinear: exact power-of-two scaling of each input keeps products in range
    a, s1 = scale_input(x1, fn, "x1")
    b, s2 = scale_input(x2, fn, "x2")
    out = _apply(plan, a, b, w, lead)
    return rescale_product(out, s1 * s2, x1.dtype, fn)


def _apply(
    plan: _CGPlan,
    x1: torch.Tensor,
    x2: torch.Tensor,
    weights: torch.Tensor | None,
    lead: torch.Size,
) -> torch.Tensor:
    wd = x1.dtype
    x1 = x1.expand(*lead, x1.shape[-1])
    x2 = x2.expand(*lead, x2.shape[-1])
    channels = lead[-1] if lead else 1
    rows = math.prod(lead)
    t = plan.tensors(wd, x1.device)
    if weights is not None:
        weights = weights.to(wd)
    if t.fused is not None and _use_fused(t.fused, weights):
        return _apply_fused(t.fused, x1, x2, weights, lead, rows, channels)
    if weights is not None and weights.ndim == 2 and channels > 1:
        return _apply_channels(plan, t, x1, x2, weights, lead, rows, channels)
    out = x1.new_zeros(rows, plan.irreps_out.dim)
    for block, mat in zip(plan.blocks, t.mats):
        outer = x1[..., block.slice1, None] * x2[..., None, block.slice2]
        outer = outer.reshape(rows, block.dim1 * block.dim2)
        if weights is None:
            out[:, block.start : block.stop] += outer @ mat
        elif weights.ndim == 1:
            cols = block.columns.to(x1.device)
            out[:, block.start : block.stop] += outer @ (mat * weights[cols])
        else:
            cols = block.columns.to(x1.device)
            z = (outer @ mat).reshape(rows // channels, channels, -1) * weights[cols].T
            out[:, block.start : block.stop] += z.reshape(rows, -1)
    return out[:, t.gather].reshape(*lead, plan.irreps_out.dim)


def _apply_channels(
    plan: _CGPlan,
    t: _Tensors,
    x1: torch.Tensor,
    x2: torch.Tensor,
    weights: torch.Tensor,
    lead: torch.Size,
    rows: int,
    channels: int,
) -> torch.Tensor:
    """Per-channel weights folded into the coefficients: one batched product per input pair
    (channel-major), instead of weighting every row of every path's output."""
    batch = rows // channels
    x1t = x1.reshape(batch, channels, -1).transpose(0, 1)  # (C, B, D1), a view
    x2t = x2.reshape(batch, channels, -1).transpose(0, 1)
    out = x1.new_zeros(channels, batch, plan.irreps_out.dim)
    w_t = weights.T  # (C, paths)
    for block, mat in zip(plan.blocks, t.mats):
        outer = (x1t[..., block.slice1, None] * x2t[..., None, block.slice2]).reshape(
            channels, batch, block.dim1 * block.dim2
        )
        mw = mat[None] * w_t[:, block.columns.to(x1.device)][:, None, :]  # (C, n, width)
        out[:, :, block.start : block.stop] += torch.bmm(outer, mw)
    return out.transpose(0, 1)[..., t.gather].reshape(*lead, plan.irreps_out.dim)


def _apply_fused(
    f: _Fused,
    x1: torch.Tensor,
    x2: torch.Tensor,
    weights: torch.Tensor | None,
    lead: torch.Size,
    rows: int,
    channels: int,
) -> torch.Tensor:
    outer = (x1[..., :, None] * x2[..., None, :]).reshape(rows, -1)
    if weights is None:
        out = outer @ f.summed
    elif weights.ndim == 1:
        out = outer @ ((f.coupling * weights[f.columns]) @ f.assemble)
    else:
        z = (outer @ f.coupling).reshape(rows // channels, channels, -1) * weights[f.columns].T
        out = z.reshape(rows, -1) @ f.assemble
    return out.reshape(*lead, f.assemble.shape[1])


class ClebschGordanTensorProduct(torch.nn.Module):
    r"""The full CG tensor product as a module with learnable per-path weights.

    Args:
        irreps1, irreps2: input irreps.
        irreps_out: output irreps (default: every reachable irrep once).
        channels: ``None`` for one weight per path, or the number of channels for one weight per
            path and channel (a channel-wise product; inputs ``(..., channels, dim)``).
        dtype, device: of the weights (initialised to one).

    Attributes:
        weight: ``(num_paths,)`` or ``(num_paths, channels)`` parameter.
        paths: the paths (:func:`cg_paths`), in weight order.

    Raises:
        TypeError: an irreps argument that is not a string, an :class:`Irreps` or an iterable
            of ``(mul, irrep)`` pairs.
        ValueError: an irreps string that does not parse, ``channels`` not a positive int or
            None, or no path coupling ``irreps1`` and ``irreps2`` to ``irreps_out``.

    Example:
        >>> tp = ClebschGordanTensorProduct("0e + 1o", "0e + 1o", channels=4)
        >>> tp(torch.randn(8, 4, 4), torch.randn(8, 4, 4)).shape, tp.weight.shape
        (torch.Size([8, 4, 12]), torch.Size([6, 4]))
    """

    def __init__(
        self,
        irreps1: Irreps | str,
        irreps2: Irreps | str,
        irreps_out: Irreps | str | None = None,
        *,
        channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        fn = "ClebschGordanTensorProduct"
        self.irreps1 = check_irreps(irreps1, fn, "irreps1")
        self.irreps2 = check_irreps(irreps2, fn, "irreps2")
        self.irreps_out = (
            default_irreps_out(self.irreps1, self.irreps2)
            if irreps_out is None
            else check_irreps(irreps_out, fn, "irreps_out")
        )
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"{fn}: channels must be a positive int or None; got {channels!r}.")
        self.paths = _paths(self.irreps1, self.irreps2, self.irreps_out)
        if not self.paths:
            raise ValueError(
                f"{fn}: no path couples {self.irreps1} and {self.irreps2} to {self.irreps_out}; "
                "check the output parities and degrees."
            )
        shape = (len(self.paths),) if channels is None else (len(self.paths), channels)
        self.weight = torch.nn.Parameter(torch.ones(shape, dtype=dtype, device=device))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return cg_tensor_product(
            x1, x2, self.irreps1, self.irreps2, self.irreps_out, weights=self.weight
        )

    def extra_repr(self) -> str:
        return f"{self.irreps1} x {self.irreps2} -> {self.irreps_out}, paths={len(self.paths)}"
