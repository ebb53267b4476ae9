r"""Expressivity of a tensor-product operation: which equivariant bilinear maps it reaches.

Following Xie et al. (2025), the *expressivity* of a tensor-product operation :math:`T` for input
irreps :math:`X, Y` and output irreps :math:`Z` is the dimension of the span of the bilinear maps

.. math::

    B = \mathrm{Lin}_Z \circ T_θ \circ (\mathrm{Lin}_X, \mathrm{Lin}_Y),

over all equivariant linear maps (which mix copies of the same irrep) and all of :math:`T`'s own
parameters :math:`θ`. Every equivariant bilinear map :math:`X \times Y \to Z` is, block by block,
a multiple of the Clebsch--Gordan coefficients (Schur), so the space of all of them has dimension

.. math::

    \sum_{(l_1 p_1, l_2 p_2, l_3 p_3)} m_X(l_1 p_1)\, m_Y(l_2 p_2)\, m_Z(l_3 p_3)

over the triples allowed by the selection rules (:math:`|l_1-l_2| \le l_3 \le l_1+l_2`,
:math:`p_3 = p_1 p_2`); the full CG product reaches all of it, the Gaunt product only the triples
with even :math:`l_1 + l_2 + l_3` (its *interactability* misses e.g. ``1o x 1o -> 1e``, the cross
product).

:func:`expressivity` *measures* the dimension: it draws random linear maps and parameters, computes
each composite map's coordinates on the CG basis, block by block (one evaluation of the operation
per pair of input copies, on random vectors inside the two copies) and sums, over path types
:math:`(l_1 p_1, l_2 p_2, l_3 p_3)`, the numerical rank of their coordinates. (The span splits over
path types because the equivariant linear maps scale each irrep type independently, so each
multi-homogeneous part of the family is reached on its own; a path type needs more samples than
its :math:`m_X m_Y m_Z` coordinates.) The Schur residual (what is left of a block after
projection on the CG coefficients) is reported as an equivariance check.

Reference:
    Y. Xie, A. Daigavane, M. Kotak, T. Smidt, The price of freedom: exploring expressivity and
    runtime tradeoffs in equivariant tensor products, ICML 2025.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from .._checks import check_generator
from ._cg_product import _paths, cg_tensor_product, default_irreps_out
from ._common import check_choice, check_irreps
from ._gaunt import gaunt_tensor_product
from ._irreps import Irrep, Irreps
from ._wigner import clebsch_gordan64

__all__ = ["Expressivity", "ExpressivityOperation", "expressivity"]

ExpressivityOperation = Literal["cg", "gaunt"]
_OPERATIONS = ("cg", "gaunt")

PathType = tuple[Irrep, Irrep, Irrep]


@dataclasses.dataclass(frozen=True)
class Expressivity:
    """What :func:`expressivity` measured.

    Attributes:
        operation: the operation ("cg" or "gaunt").
        dimension: measured dimension of the span of the maps the operation reaches.
        maximum: dimension of the space of all equivariant bilinear maps ``X × Y -> Z``.
        reached: the path types ``(ir1, ir2, ir3)`` the operation reaches (interactability).
        missing: the allowed path types it does not reach.
        schur_residual: largest relative residual of a block after projection on the CG
            coefficients (rounding level for an equivariant operation).

    Example:
        >>> e = expressivity("cg", "1o", "1o", "0e + 1e + 2e",
        ...                  generator=torch.Generator().manual_seed(0))
        >>> e.dimension, e.maximum, e.missing, e.schur_residual < 1e-10
        (3, 3, (), True)
    """

    operation: str
    dimension: int
    maximum: int
    reached: tuple[PathType, ...]
    missing: tuple[PathType, ...]
    schur_residual: float


def _types(irreps: Irreps) -> list[Irrep]:
    return sorted(set(irreps.expanded()), key=lambda ir: (ir.l, ir.p))


def _signal_pattern(irreps: Irreps, fn: str, name: str) -> tuple[int, int]:
    """``(a, b)`` with every copy's parity ``a * b**l`` (spherical-signal parities)."""
    for b in (-1, 1):
        for a in (1, -1):
            if all(ir.p == a * b**ir.l for ir in irreps.expanded()):
                return a, b
    raise ValueError(
        f"{fn}: the Gaunt product acts on spherical signals, whose degree-l parts have parity "
        f"a * b**l; {name} {irreps} mixes parities that no (a, b) fits."
    )


def _random_lin(
    src: Irreps, dst: Irreps, x: torch.Tensor, gen: torch.Generator | None
) -> torch.Tensor:
    """Apply independent random equivariant linear maps ``src -> dst``, one per sample.

    ``x``: ``(pairs, samples, src.dim)`` -> ``(pairs, samples, dst.dim)``. For each irrep, the dst
    copies are random combinations of the src copies of that irrep (Schur: nothing else is
    equivariant).
    """
    es, ed = src.expanded(), dst.expanded()
    os_, od = src.offsets(), dst.offsets()
    out = x.new_zeros(*x.shape[:-1], dst.dim)
    samples = x.shape[1]
    for ir in sorted(set(ed), key=lambda i: (i.l, i.p)):
        js = [j for j, e in enumerate(es) if e == ir]
        if not js:
            continue
        is_ = [i for i, e in enumerate(ed) if e == ir]
        blocks = torch.stack([x[..., os_[j] : os_[j] + ir.dim] for j in js], dim=2)  # (P, S, J, m)
        coef = torch.randn(samples, len(is_), len(js), generator=gen, dtype=torch.float64)
        mixed = torch.einsum("sij,psjm->psim", coef.to(x.dtype), blocks)
        for k, i in enumerate(is_):
            out[..., od[i] : od[i] + ir.dim] = mixed[:, :, k]
    return out


def expressivity(
    operation: ExpressivityOperation,
    irreps1: Irreps | str,
    irreps2: Irreps | str,
    irreps_out: Irreps | str,
    *,
    samples: int | None = None,
    generator: torch.Generator | None = None,
) -> Expressivity:
    r"""Measure the dimension of the equivariant bilinear maps a tensor product reaches.

    See the module docstring for the definition. "cg" is :func:`cg_tensor_product` with free
    per-path weights; "gaunt" is :func:`gaunt_tensor_product` with free per-degree weights on both
    inputs and the output (the Fourier and grid algorithms compute the same operation).

    Args:
        operation: "cg" or "gaunt".
        irreps1, irreps2, irreps_out: the irreps ``X``, ``Y``, ``Z``. For "gaunt" each input's
            parities must follow one pattern ``a * b**l`` (a spherical signal) with the same ``b``.
        samples: number of random composite maps (default: 4 more than the largest
            ``m_X m_Y m_Z`` of a path type, the most one path type can reach).
        generator: for the random draws.

    Returns:
        An :class:`Expressivity`. Not differentiable (a count).

    Raises:
        TypeError: bad irreps, ``samples`` or ``generator`` types.
        ValueError: unknown ``operation``, ``samples < 1``, irreps the Gaunt product cannot take.

    Example:
        >>> e = expressivity("gaunt", "0e + 1o", "0e + 1o", "0e + 1o + 1e + 2e",
        ...                  generator=torch.Generator().manual_seed(0))
        >>> e.dimension, e.maximum, [tuple(map(str, p)) for p in e.missing]
        (5, 6, [('1o', '1o', '1e')])
    """
    fn = "expressivity"
    operation = check_choice(operation, _OPERATIONS, fn, "operation")  # type: ignore[assignment]
    x_ir = check_irreps(irreps1, fn, "irreps1")
    y_ir = check_irreps(irreps2, fn, "irreps2")
    z_ir = check_irreps(irreps_out, fn, "irreps_out")
    gen = check_generator(generator, fn)
    for name, ir in (("irreps1", x_ir), ("irreps2", y_ir), ("irreps_out", z_ir)):
        if ir.dim == 0:
            raise ValueError(f"{fn}: {name} must not be empty; got {ir!r}.")
    ex, ey, ez = x_ir.expanded(), y_ir.expanded(), z_ir.expanded()
    coords = [
        (a, b, c)
        for a in range(len(ex))
        for b in range(len(ey))
        for c in range(len(ez))
        if ez[c] in ex[a].couple(ey[b])
    ]
    maximum = len(coords)
    per_type: dict[tuple[Irrep, Irrep, Irrep], int] = {}
    for a, b, c in coords:
        t = (ex[a], ey[b], ez[c])
        per_type[t] = per_type.get(t, 0) + 1
    if samples is None:
        samples = max(per_type.values(), default=0) + 4
    elif isinstance(samples, bool) or not isinstance(samples, int):
        raise TypeError(
            f"{fn}: samples must be a positive int or None; got {type(samples).__name__}."
        )
    elif samples < 1:
        raise ValueError(f"{fn}: samples must be a positive int or None; got {samples}.")
    if maximum == 0:
        return Expressivity(operation, 0, 0, (), (), 0.0)
    px, py, pairs = _probes(x_ir, y_ir, gen)
    if operation == "cg":
        z = _composite_cg(px, py, x_ir, y_ir, z_ir, samples, gen)
    else:
        z = _composite_gaunt(px, py, x_ir, y_ir, z_ir, samples, gen, fn)
    matrix, residual = _coordinates(z, px, py, pairs, coords, x_ir, y_ir, z_ir)
    dimension, reached, missing = _rank_by_path_type(matrix, coords, ex, ey, ez)
    return Expressivity(operation, dimension, maximum, reached, missing, residual)


def _probes(
    x_ir: Irreps, y_ir: Irreps, gen: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """One random unit vector inside each input copy, for every pair of copies."""
    ex, ey = x_ir.expanded(), y_ir.expanded()
    pairs = [(a, b) for a in range(len(ex)) for b in range(len(ey))]
    px = torch.zeros(len(pairs), x_ir.dim, dtype=torch.float64)
    py = torch.zeros(len(pairs), y_ir.dim, dtype=torch.float64)
    ox, oy = x_ir.offsets(), y_ir.offsets()
    for k, (a, b) in enumerate(pairs):
        va = torch.randn(ex[a].dim, generator=gen, dtype=torch.float64)
        vb = torch.randn(ey[b].dim, generator=gen, dtype=torch.float64)
        px[k, ox[a] : ox[a] + ex[a].dim] = va / va.norm()
        py[k, oy[b] : oy[b] + ey[b].dim] = vb / vb.norm()
    return px, py, pairs


def _coordinates(
    z: torch.Tensor,
    px: torch.Tensor,
    py: torch.Tensor,
    pairs: list[tuple[int, int]],
    coords: list[tuple[int, int, int]],
    x_ir: Irreps,
    y_ir: Irreps,
    z_ir: Irreps,
) -> tuple[torch.Tensor, float]:
    """Each sample's coordinates on the CG basis, block by block, and the Schur residual.

    Block ``(a, b) -> c`` of an equivariant map is ``coef * CG(x_a, y_b)``; what is left after
    projecting on it (and any output in a block no path reaches) is the residual.
    """
    ex, ey, ez = x_ir.expanded(), y_ir.expanded(), z_ir.expanded()
    ox, oy, oz = x_ir.offsets(), y_ir.offsets(), z_ir.offsets()
    pair_index = {p: k for k, p in enumerate(pairs)}
    matrix = torch.zeros(z.shape[1], len(coords), dtype=torch.float64)
    scale = float(z.abs().max()) or 1.0
    residual = 0.0
    reached: dict[tuple[int, int], set[int]] = {p: set() for p in pairs}
    for j, (a, b, c) in enumerate(coords):
        reached[(a, b)].add(c)
        k = pair_index[(a, b)]
        cg = clebsch_gordan64(ex[a].l, ey[b].l, ez[c].l)
        xa, yb = px[k, ox[a] : ox[a] + ex[a].dim], py[k, oy[b] : oy[b] + ey[b].dim]
        basis = torch.einsum("i,j,ijk->k", xa, yb, cg)
        block = z[k, :, oz[c] : oz[c] + ez[c].dim]  # (samples, 2l+1)
        coef = block @ basis / basis.dot(basis)
        matrix[:, j] = coef
        residual = max(residual, float((block - coef[:, None] * basis).abs().max()) / scale)
    for (a, b), cs in reached.items():
        for c in set(range(len(ez))) - cs:
            block = z[pair_index[(a, b)], :, oz[c] : oz[c] + ez[c].dim]
            residual = max(residual, float(block.abs().max()) / scale)
    return matrix, residual


def _rank_by_path_type(
    matrix: torch.Tensor,
    coords: list[tuple[int, int, int]],
    ex: tuple[Irrep, ...],
    ey: tuple[Irrep, ...],
    ez: tuple[Irrep, ...],
) -> tuple[int, tuple[PathType, ...], tuple[PathType, ...]]:
    """Sum of numerical ranks per path type; the reached and the missing path types.

    The span splits over path types: the linear maps scale each irrep type independently, so
    the multi-homogeneous parts of the family are reached one by one.
    """
    by_type: dict[PathType, list[int]] = {}
    for j, (a, b, c) in enumerate(coords):
        by_type.setdefault((ex[a], ey[b], ez[c]), []).append(j)
    peak = float(matrix.abs().max()) or 1.0
    dimension = 0
    reached: set[PathType] = set()
    for t, cols in by_type.items():
        rank = int((torch.linalg.svdvals(matrix[:, cols]) > 1e-9 * peak).sum())
        dimension += rank
        if rank:
            reached.add(t)

    def key(t: PathType) -> tuple[int, int, int, int, int, int]:
        return (t[0].l, t[0].p, t[1].l, t[1].p, t[2].l, t[2].p)

    missing = set(by_type) - reached
    return dimension, tuple(sorted(reached, key=key)), tuple(sorted(missing, key=key))


def _composite_cg(
    px: torch.Tensor,
    py: torch.Tensor,
    x_ir: Irreps,
    y_ir: Irreps,
    z_ir: Irreps,
    samples: int,
    gen: torch.Generator | None,
) -> torch.Tensor:
    """``(pairs, samples, Z.dim)``: Lin_Z ∘ CG_w ∘ (Lin_X, Lin_Y) applied to the probes."""
    mid = default_irreps_out(x_ir, y_ir)
    xs = _random_lin(x_ir, x_ir, px[:, None].expand(-1, samples, -1), gen)
    ys = _random_lin(y_ir, y_ir, py[:, None].expand(-1, samples, -1), gen)
    num_paths = len(_paths(x_ir, y_ir, mid))
    w = torch.randn(num_paths, samples, generator=gen, dtype=torch.float64)
    out = cg_tensor_product(xs, ys, x_ir, y_ir, mid, weights=w)
    return _random_lin(mid, z_ir, out, gen)


def _composite_gaunt(
    px: torch.Tensor,
    py: torch.Tensor,
    x_ir: Irreps,
    y_ir: Irreps,
    z_ir: Irreps,
    samples: int,
    gen: torch.Generator | None,
    fn: str,
) -> torch.Tensor:
    """``(pairs, samples, Z.dim)`` for the Gaunt product with per-degree weights."""
    a1, b1 = _signal_pattern(x_ir, fn, "irreps1")
    a2, b2 = _signal_pattern(y_ir, fn, "irreps2")
    if b1 != b2:
        raise ValueError(
            f"{fn}: the Gaunt product is equivariant under inversion only when both signals' "
            f"parities follow the same b in a * b**l; got irreps1 {x_ir} and irreps2 {y_ir}."
        )
    l1, l2 = x_ir.lmax, y_ir.lmax
    lo = min(z_ir.lmax, l1 + l2)
    sig1 = Irreps([(1, Irrep(l, a1 * b1**l)) for l in range(l1 + 1)])
    sig2 = Irreps([(1, Irrep(l, a2 * b2**l)) for l in range(l2 + 1)])
    sig_out = Irreps([(1, Irrep(l, a1 * a2 * b1**l)) for l in range(lo + 1)])
    # the per-degree input and output weights are absorbed in the random linear maps
    xs = _random_lin(x_ir, sig1, px[:, None].expand(-1, samples, -1), gen)
    ys = _random_lin(y_ir, sig2, py[:, None].expand(-1, samples, -1), gen)
    out = gaunt_tensor_product(xs, ys, lmax_out=lo, method="grid")
    return _random_lin(sig_out, z_ir, out, gen)
