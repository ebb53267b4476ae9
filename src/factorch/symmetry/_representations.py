r"""Matrix groups given by generators, and their representations as direct sums of blocks.

A :class:`MatrixGroup` is given in its defining representation on :math:`\mathbb R^n` by Lie-algebra
generators :math:`A_1 \dots A_k` (the identity component is :math:`\exp(\mathrm{span} A)`) and
discrete generators :math:`h_1 \dots h_j` (one per extra component, e.g. the inversion :math:`-I`
of O(3)). A :class:`Representation` assigns matrices to those generators; it is kept as a direct
sum of blocks with multiplicities, so that the equivariance constraint of a weight matrix between
two representations splits into small independent block pairs (see
:func:`equivariant_projector`) -- the structure that avoids the full Kronecker matrix.

Built-in groups: :func:`rotation_group` (SO(n), O(n)) and :func:`axial_rotation_group` (SO(2)
rotations of :math:`\mathbb R^3` about one axis, the symmetry of data with a preferred axis).
Representations: ``group.trivial()``, ``group.vector()``, ``group.irreps("0e + 2x1o")`` (for
subgroups of O(3), in the basis of :func:`spherical_harmonics`), direct sums ``+``, multiples
``k * rep`` and tensor products ``rep.tensor(other)``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence

import torch

from ._common import check_irreps
from ._irreps import Irreps
from ._wigner import so3_generators64, wigner_D

__all__ = [
    "MatrixGroup",
    "RepBlock",
    "Representation",
    "axial_rotation_group",
    "rotation_group",
]


def _check_stack(x: object, fn: str, name: str, n: int | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor of shape (count, n, n); got {type(x).__name__}."
        )
    if not x.is_floating_point():
        raise TypeError(f"{fn}: {name} must have a real floating-point dtype; got {x.dtype}.")
    if x.ndim != 3 or x.shape[1] != x.shape[2] or (n is not None and x.shape[1] != n):
        want = "(count, n, n)" if n is None else f"(count, {n}, {n})"
        raise ValueError(f"{fn}: {name} must have shape {want}; got {tuple(x.shape)}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{fn}: {name} contains NaN or Inf entries; all entries must be finite.")
    return x.detach().to(torch.float64, copy=True)


@dataclasses.dataclass(frozen=True, eq=False)
class MatrixGroup:
    """A matrix group on ``R^n`` given by Lie-algebra and discrete generators.

    Args:
        lie_algebra: ``(k, n, n)`` generators of the identity component (``k`` may be 0).
        discrete: ``(j, n, n)`` generators of the other components (``j`` may be 0).
        name: a label for messages and reprs.

    Raises:
        TypeError: non-tensor or non-floating generators.
        ValueError: shapes that are not ``(count, n, n)`` with one ``n``, no generator at all,
            non-finite entries.

    Example:
        >>> g = rotation_group(3, reflections=True)
        >>> g.name, tuple(g.lie_algebra.shape), tuple(g.discrete.shape)
        ('O(3)', (3, 3, 3), (1, 3, 3))
    """

    lie_algebra: torch.Tensor
    discrete: torch.Tensor
    name: str = "G"

    def __post_init__(self) -> None:
        fn = "MatrixGroup"
        lie = _check_stack(self.lie_algebra, fn, "lie_algebra", None)
        disc = _check_stack(self.discrete, fn, "discrete", lie.shape[1])
        if lie.shape[0] + disc.shape[0] == 0:
            raise ValueError(f"{fn}: give at least one Lie-algebra or discrete generator.")
        object.__setattr__(self, "lie_algebra", lie)
        object.__setattr__(self, "discrete", disc)

    def same_as(self, other: object) -> bool:
        """The same group: the same object, or the same generators (two ``rotation_group(3)``)."""
        return other is self or (
            isinstance(other, MatrixGroup)
            and self.lie_algebra.shape == other.lie_algebra.shape
            and self.discrete.shape == other.discrete.shape
            and bool(torch.equal(self.lie_algebra, other.lie_algebra))
            and bool(torch.equal(self.discrete, other.discrete))
        )

    @property
    def n(self) -> int:
        """Dimension of the defining representation."""
        return int(self.lie_algebra.shape[1])

    def trivial(self, multiplicity: int = 1) -> Representation:
        """The trivial representation (scalars), ``multiplicity`` copies."""
        k, j = self.lie_algebra.shape[0], self.discrete.shape[0]
        block = RepBlock(
            torch.zeros(k, 1, 1, dtype=torch.float64),
            torch.ones(j, 1, 1, dtype=torch.float64),
            "scalar",
        )
        return Representation(self, ((block, _check_mult(multiplicity, "trivial")),))

    def vector(self, multiplicity: int = 1) -> Representation:
        """The defining representation on ``R^n``, ``multiplicity`` copies."""
        block = RepBlock(self.lie_algebra, self.discrete, "vector")
        return Representation(self, ((block, _check_mult(multiplicity, "vector")),))

    def irreps(self, irreps: Irreps | str) -> Representation:
        """O(3) irreps restricted to this group (``n == 3``), in e3nn's real basis.

        Each Lie generator ``A`` (a 3x3 skew matrix, ``A = sum_i c_i L_i``) acts on degree ``l`` by
        ``sum_i c_i G^l_i`` (:func:`so3_generators`); a discrete generator ``h`` (orthogonal) by
        ``p^(det h < 0) D^l(det(h) h)``.
        """
        fn = "MatrixGroup.irreps"
        if self.n != 3:
            raise ValueError(f"{fn}: irreps need a group acting on R^3; got n = {self.n}.")
        ir = check_irreps(irreps, fn, "irreps")
        skew = self.lie_algebra - self.lie_algebra.mT
        if (
            self.lie_algebra.numel()
            and float((self.lie_algebra + self.lie_algebra.mT).abs().max()) > 1e-10
        ):
            raise ValueError(
                f"{fn}: the Lie-algebra generators must be skew-symmetric (rotations)."
            )
        coeffs = torch.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], dim=1) / 2  # (k, 3)
        entries = []
        for mul, irrep in ir:
            lie = torch.einsum("ki,iab->kab", coeffs, so3_generators64(irrep.l))
            disc = []
            for h in self.discrete:
                det = float(torch.linalg.det(h))
                d = wigner_D(irrep.l, h * (1.0 if det > 0 else -1.0))
                disc.append(d * (irrep.p if det < 0 else 1))
            disc_t = (
                torch.stack(disc)
                if disc
                else torch.zeros(0, irrep.dim, irrep.dim, dtype=torch.float64)
            )
            entries.append((RepBlock(lie, disc_t, f"irrep:{irrep}"), mul))
        return Representation(self, tuple(entries))


def _check_mult(m: object, fn: str) -> int:
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"{fn}: multiplicity must be a positive int; got {m!r}.")
    return m


@dataclasses.dataclass(frozen=True, eq=False)
class RepBlock:
    """One block of a representation: the matrices of the generators (float64, CPU).

    ``key`` identifies equal blocks (same matrices), whose equivariant bases are computed once.

    Attributes:
        lie: ``(n_lie, d, d)`` the block's matrices of the Lie-algebra generators.
        discrete: ``(n_discrete, d, d)`` its matrices of the discrete generators.
        key: the name shared by equal blocks.

    Example:
        >>> (block, multiplicity), = rotation_group(3).vector().blocks
        >>> block.key, block.dim, multiplicity, tuple(block.lie.shape)
        ('vector', 3, 1, (3, 3, 3))
    """

    lie: torch.Tensor
    discrete: torch.Tensor
    key: str

    @property
    def dim(self) -> int:
        return int(self.lie.shape[1]) if self.lie.shape[0] else int(self.discrete.shape[1])


@dataclasses.dataclass(frozen=True, eq=False)
class Representation:
    """A representation of a :class:`MatrixGroup` as a direct sum of blocks with multiplicities.

    Attributes:
        group: the group.
        blocks: ``((block, multiplicity), ...)``; the matrix of a generator is block diagonal,
            each block repeated ``multiplicity`` times, in order.

    Example:
        >>> g = rotation_group(3)
        >>> rep = g.trivial() + 2 * g.vector()
        >>> rep.dim, rep.lie_matrices().shape
        (7, torch.Size([3, 7, 7]))
    """

    group: MatrixGroup
    blocks: tuple[tuple[RepBlock, int], ...]

    @property
    def dim(self) -> int:
        return sum(b.dim * m for b, m in self.blocks)

    def __add__(self, other: object) -> Representation:
        if not isinstance(other, Representation):
            return NotImplemented
        if not self.group.same_as(other.group):
            raise ValueError("Representation: a direct sum needs representations of one group.")
        return Representation(self.group, self.blocks + other.blocks)

    def __rmul__(self, factor: object) -> Representation:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            return NotImplemented
        return Representation(self.group, tuple((b, m * factor) for b, m in self.blocks))

    def tensor(self, other: Representation) -> Representation:
        """The tensor product: generators act by ``A ⊗ I + I ⊗ B``, discrete ones by ``h ⊗ h'``."""
        if not self.group.same_as(other.group):
            raise ValueError("Representation.tensor: both representations must be of one group.")
        out = []
        for (b1, m1), (b2, m2) in itertools.product(self.blocks, other.blocks):
            out.append((_tensor_block(b1, b2), m1 * m2))
        return Representation(self.group, tuple(out))

    def lie_matrices(self) -> torch.Tensor:
        """``(k, dim, dim)`` block-diagonal matrices of the Lie generators."""
        return self._stack([b.lie for b, _ in self.blocks], self.group.lie_algebra.shape[0])

    def discrete_matrices(self) -> torch.Tensor:
        """``(j, dim, dim)`` block-diagonal matrices of the discrete generators."""
        return self._stack([b.discrete for b, _ in self.blocks], self.group.discrete.shape[0])

    def _stack(self, per_block: list[torch.Tensor], count: int) -> torch.Tensor:
        if not count:
            return torch.zeros(0, self.dim, self.dim, dtype=torch.float64)
        mults = [m for _, m in self.blocks]
        return torch.stack(
            [
                torch.block_diag(*[mat[i] for mat, m in zip(per_block, mults) for _ in range(m)])
                for i in range(count)
            ]
        )

    def matrix(self, lie_coefficients: torch.Tensor, discrete: Sequence[int] = ()) -> torch.Tensor:
        """``ρ(exp(sum_i c_i A_i) h_{d_1} h_{d_2} ...)``: the matrix of one group element (float64).

        Example:
            >>> g = axial_rotation_group(2)
            >>> r = g.vector().matrix(torch.tensor([math.pi / 2], dtype=torch.float64))
            >>> torch.allclose(r @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
            ...                torch.tensor([0.0, 1, 0], dtype=torch.float64))
            True
        """
        c = torch.as_tensor(lie_coefficients, dtype=torch.float64)
        k = self.group.lie_algebra.shape[0]
        if c.shape != (k,):
            raise ValueError(
                f"Representation.matrix: lie_coefficients must have shape ({k},); got "
                f"{tuple(c.shape)}."
            )
        out = (
            torch.matrix_exp(torch.einsum("k,kab->ab", c, self.lie_matrices()))
            if k
            else torch.eye(self.dim, dtype=torch.float64)
        )
        disc = self.discrete_matrices()
        for d in discrete:
            if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < disc.shape[0]:
                raise IndexError(
                    f"Representation.matrix: discrete indices must be in [0, {disc.shape[0] - 1}]; "
                    f"got {d!r}."
                )
            out = out @ disc[d]
        return out


@functools.lru_cache(maxsize=256)
def _tensor_key(k1: str, k2: str) -> str:
    return f"({k1})⊗({k2})"


def _tensor_block(b1: RepBlock, b2: RepBlock) -> RepBlock:
    d1, d2 = b1.dim, b2.dim
    i1, i2 = torch.eye(d1, dtype=torch.float64), torch.eye(d2, dtype=torch.float64)
    lie = (
        torch.stack([torch.kron(a, i2) + torch.kron(i1, b) for a, b in zip(b1.lie, b2.lie)])
        if b1.lie.shape[0]
        else torch.zeros(0, d1 * d2, d1 * d2, dtype=torch.float64)
    )
    disc = (
        torch.stack([torch.kron(a, b) for a, b in zip(b1.discrete, b2.discrete)])
        if b1.discrete.shape[0]
        else torch.zeros(0, d1 * d2, d1 * d2, dtype=torch.float64)
    )
    return RepBlock(lie, disc, _tensor_key(b1.key, b2.key))


def _so_generators(n: int) -> torch.Tensor:
    gens = []
    for i in range(n):
        for j in range(i + 1, n):
            a = torch.zeros(n, n, dtype=torch.float64)
            a[j, i], a[i, j] = 1.0, -1.0
            gens.append(a)
    return torch.stack(gens) if gens else torch.zeros(0, n, n, dtype=torch.float64)


def _axis_generators() -> torch.Tensor:
    """Exact ``L_x, L_y, L_z`` with ``L_k v = e_k × v`` (= ``so3_generators(1)`` up to rounding)."""
    out = torch.zeros(3, 3, 3, dtype=torch.float64)
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        out[k, j, i], out[k, i, j] = 1.0, -1.0
    return out


def rotation_group(n: int, *, reflections: bool = False) -> MatrixGroup:
    """SO(n) (``reflections=False``) or O(n) on ``R^n``.

    For ``n = 3`` the Lie generators are ``L_x, L_y, L_z`` (``L_k v = e_k × v``); O(n) adds one
    reflection (the inversion ``-I`` for odd ``n``, ``diag(-1, 1, ..., 1)`` for even ``n``).

    Args:
        n: the dimension, at least 2.
        reflections: O(n) instead of SO(n).

    Returns:
        The :class:`MatrixGroup` with its Lie algebra generators (and the reflection for O(n)).

    Raises:
        TypeError, ValueError: ``n`` not an int ``>= 2``.

    Example:
        >>> rotation_group(3).name, rotation_group(2, reflections=True).name
        ('SO(3)', 'O(2)')
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"rotation_group: n must be an int >= 2; got {type(n).__name__}.")
    if n < 2:
        raise ValueError(f"rotation_group: n must be an int >= 2; got {n}.")
    lie = _axis_generators() if n == 3 else _so_generators(n)
    if reflections:
        refl = (
            -torch.eye(n, dtype=torch.float64)
            if n % 2
            else torch.diag(torch.tensor([-1.0] + [1.0] * (n - 1), dtype=torch.float64))
        )
        disc = refl[None]
    else:
        disc = torch.zeros(0, n, n, dtype=torch.float64)
    return MatrixGroup(lie, disc, f"{'O' if reflections else 'SO'}({n})")


def axial_rotation_group(axis: int = 2) -> MatrixGroup:
    """SO(2): rotations of ``R^3`` about coordinate ``axis`` (0, 1 or 2 for x, y, z).

    Args:
        axis: the rotation axis, 0, 1 or 2.

    Returns:
        The :class:`MatrixGroup` with one generator.

    Raises:
        TypeError, IndexError: ``axis`` not an int in ``[0, 2]``.

    Example:
        >>> axial_rotation_group(2).lie_algebra[0]
        tensor([[ 0., -1.,  0.],
                [ 1.,  0.,  0.],
                [ 0.,  0.,  0.]], dtype=torch.float64)
    """
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(
            f"axial_rotation_group: axis must be an int in [0, 2]; got {type(axis).__name__}."
        )
    if not 0 <= axis <= 2:
        raise IndexError(f"axial_rotation_group: axis must be in [0, 2]; got {axis}.")
    lie = _axis_generators()[axis : axis + 1].clone()
    return MatrixGroup(lie, torch.zeros(0, 3, 3, dtype=torch.float64), f"SO(2)_{'xyz'[axis]}")
