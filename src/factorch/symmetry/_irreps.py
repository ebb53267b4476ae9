"""Irreducible representations of O(3) and their direct sums, as immutable values.

An irrep of O(3) is a degree ``l >= 0`` and a parity ``p = +1`` (even, ``"e"``) or ``-1`` (odd,
``"o"``): it acts on ``R^(2l+1)`` by ``D^l(R) * p^(det R == -1)``. A direct sum is written as in
e3nn, ``"2x0e + 1x1o + 1x2e"``, and parsed once into an :class:`Irreps` value. Within a tensor the
components of a direct sum follow e3nn's layout: the blocks in order, each block ``mul`` copies of
``2l+1`` components (copy-major), so a flat vector of ``Irreps("2x0e + 1x1o")`` reads
``[s_0, s_1, v_x, v_y, v_z]``.

Choice (issue 18, item 1): factorch keeps its own ``Irreps`` rather than requiring e3nn's, so the
library has no runtime dependency on e3nn; the value is built from an e3nn string or from any
iterable of ``(mul, (l, p))`` pairs (which is what an ``e3nn.o3.Irreps`` iterates as), and
:func:`~factorch.symmetry.irreps_to_e3nn` converts back when e3nn is installed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple, cast, overload

__all__ = ["Irrep", "Irreps", "MulIrrep"]

_IRREP_RE = re.compile(r"^\s*(\d+)\s*([eoy])\s*$")
_MUL_IRREP_RE = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+\s*[eoy])\s*$")


@dataclasses.dataclass(frozen=True, order=True)
class Irrep:
    """An irrep of O(3): degree ``l`` and parity ``p`` (``+1`` even, ``-1`` odd).

    Args:
        l: the degree, a non-negative int.
        p: the parity, ``1`` or ``-1``.

    Raises:
        ValueError: a negative or non-int ``l``, or ``p`` other than 1 and -1.

    Example:
        >>> Irrep(1, -1), Irrep.parse("2e"), Irrep.parse("1y")
        (Irrep(l=1, p=-1), Irrep(l=2, p=1), Irrep(l=1, p=-1))
        >>> [str(ir) for ir in Irrep(1, -1).couple(Irrep(1, -1))]
        ['0e', '1e', '2e']
    """

    l: int
    p: int

    def __post_init__(self) -> None:
        if isinstance(self.l, bool) or not isinstance(self.l, int) or self.l < 0:
            raise ValueError(f"Irrep: l must be a non-negative int; got {self.l!r}.")
        if isinstance(self.p, bool) or self.p not in (1, -1):
            raise ValueError(f"Irrep: p must be 1 (even) or -1 (odd); got {self.p!r}.")

    @classmethod
    def parse(cls, text: str) -> Irrep:
        """``"1o"`` -> ``Irrep(1, -1)``; ``"ly"`` means the parity of a spherical harmonic."""
        if not isinstance(text, str):
            raise TypeError(
                f"Irrep.parse: text must be a str such as '1o'; got {type(text).__name__}."
            )
        match = _IRREP_RE.match(text)
        if match is None:
            raise ValueError(
                f"Irrep.parse: text must be a degree followed by e, o or y, such as '1o'; got "
                f"{text!r}."
            )
        l = int(match.group(1))
        kind = match.group(2)
        p = 1 if kind == "e" else -1 if kind == "o" else (-1) ** l
        return cls(l, p)

    @property
    def dim(self) -> int:
        """``2l + 1``."""
        return 2 * self.l + 1

    def couple(self, other: Irrep) -> tuple[Irrep, ...]:
        """The irreps in ``self ⊗ other``: degrees ``|l1-l2| ... l1+l2``, parity ``p1 p2``."""
        p = self.p * other.p
        return tuple(Irrep(l, p) for l in range(abs(self.l - other.l), self.l + other.l + 1))

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"


class MulIrrep(NamedTuple):
    """``mul`` copies of ``irrep`` (a named pair; an :class:`Irreps` holds a tuple of them).

    Args:
        mul: the multiplicity.
        irrep: the :class:`Irrep`.

    Example:
        >>> term = Irreps("2x1o")[0]
        >>> term, term.dim, str(term)
        (MulIrrep(mul=2, irrep=Irrep(l=1, p=-1)), 6, '2x1o')
    """

    mul: int
    irrep: Irrep

    @property
    def dim(self) -> int:
        return self.mul * self.irrep.dim

    def __str__(self) -> str:
        return f"{self.mul}x{self.irrep}"


def _as_irrep(value: object) -> Irrep:
    if isinstance(value, Irrep):
        return value
    if isinstance(value, str):
        return Irrep.parse(value)
    if not isinstance(value, Iterable):
        raise TypeError(
            f"Irreps: an irrep must be an Irrep, a string such as '1o' or a pair (l, p); got "
            f"{type(value).__name__}."
        )
    # a comprehension, not tuple(): e3nn's Irrep is a tuple (l, p) whose len() raises
    pair = [v for v in value]
    if len(pair) != 2:
        raise TypeError(f"Irreps: an irrep must be a pair (l, p); got {value!r}.")
    l, p = pair
    for v in (l, p):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"Irreps: an irrep must be (l, p) with ints; got {value!r}.")
    return Irrep(cast(int, l), cast(int, p))


@dataclasses.dataclass(frozen=True, init=False)
class Irreps:
    """A direct sum of O(3) irreps with multiplicities, parsed once; immutable and hashable.

    Args:
        spec: a string ``"2x0e + 1x1o"`` (e3nn syntax; ``"1o"`` means ``"1x1o"``, ``""`` the
            empty sum), another :class:`Irreps`, or an iterable of ``(mul, irrep)`` pairs where the
            irrep is an :class:`Irrep`, a string or ``(l, p)`` -- an ``e3nn.o3.Irreps`` is such an
            iterable, so ``Irreps(e3nn_irreps)`` converts without importing e3nn.

    Raises:
        TypeError: ``spec`` of another type.
        ValueError: a malformed string, a negative multiplicity or degree, a parity not +-1.

    Example:
        >>> irreps = Irreps("2x0e + 1x1o")
        >>> irreps.dim, irreps.lmax, str(irreps)
        (5, 1, '2x0e+1x1o')
        >>> [s for s in irreps.slices()]
        [slice(0, 2, None), slice(2, 5, None)]
        >>> str(Irreps.spherical_harmonics(2))
        '1x0e+1x1o+1x2e'
    """

    entries: tuple[MulIrrep, ...]

    def __init__(self, spec: str | Irreps | Iterable[object] = "") -> None:
        object.__setattr__(self, "entries", _parse(spec))

    @classmethod
    def spherical_harmonics(cls, lmax: int, *, p: int = -1) -> Irreps:
        """``1x0e + 1x1o + ... + 1xlmax`` with parities ``p**l`` (``p=-1``: of a vector's SH)."""
        if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 0:
            raise ValueError(
                f"Irreps.spherical_harmonics: lmax must be a non-negative int; got {lmax!r}."
            )
        if p not in (1, -1):
            raise ValueError(f"Irreps.spherical_harmonics: p must be 1 or -1; got {p!r}.")
        return cls([(1, Irrep(l, p**l)) for l in range(lmax + 1)])

    # --- sizes -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Total dimension ``sum mul * (2l + 1)``."""
        return sum(e.dim for e in self.entries)

    @property
    def num_irreps(self) -> int:
        """Total multiplicity ``sum mul``."""
        return sum(e.mul for e in self.entries)

    @property
    def lmax(self) -> int:
        """Largest degree (``ValueError`` for the empty sum)."""
        if not self.entries:
            raise ValueError("Irreps.lmax: the empty direct sum has no degrees.")
        return max(e.irrep.l for e in self.entries)

    @property
    def ls(self) -> tuple[int, ...]:
        """The degree of every copy, in layout order (``"2x0e+1x1o"`` -> ``(0, 0, 1)``)."""
        return tuple(e.irrep.l for e in self.entries for _ in range(e.mul))

    def slices(self) -> tuple[slice, ...]:
        """The slice of each block in a flat vector."""
        out, start = [], 0
        for e in self.entries:
            out.append(slice(start, start + e.dim))
            start += e.dim
        return tuple(out)

    def expanded(self) -> tuple[Irrep, ...]:
        """Each copy as its own irrep, in layout order."""
        return tuple(e.irrep for e in self.entries for _ in range(e.mul))

    def offsets(self) -> tuple[int, ...]:
        """Start of each copy (of :meth:`expanded`) in a flat vector."""
        out, start = [], 0
        for ir in self.expanded():
            out.append(start)
            start += ir.dim
        return tuple(out)

    # --- algebra -----------------------------------------------------------------------------
    def simplify(self) -> Irreps:
        """Merge consecutive blocks of the same irrep and drop empty ones."""
        out: list[MulIrrep] = []
        for e in self.entries:
            if e.mul == 0:
                continue
            if out and out[-1].irrep == e.irrep:
                out[-1] = MulIrrep(out[-1].mul + e.mul, e.irrep)
            else:
                out.append(e)
        return Irreps(out)

    def sorted(self) -> Irreps:
        """Blocks sorted by ``(l, p)`` (e3nn's order: odd before even at equal ``l``) and merged."""
        entries = sorted(self.entries, key=lambda e: (e.irrep.l, e.irrep.p))
        return Irreps(entries).simplify()

    def __add__(self, other: object) -> Irreps:
        if not isinstance(other, (Irreps, str)):
            return NotImplemented
        return Irreps(self.entries + Irreps(other).entries)

    def __mul__(self, factor: object) -> Irreps:
        """``irreps * c`` multiplies every multiplicity by ``c``."""
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 0:
            return NotImplemented
        return Irreps([(e.mul * factor, e.irrep) for e in self.entries])

    __rmul__ = __mul__

    # --- container ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[MulIrrep]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> MulIrrep: ...

    @overload
    def __getitem__(self, index: slice) -> Irreps: ...

    def __getitem__(self, index: int | slice) -> MulIrrep | Irreps:
        if isinstance(index, slice):
            return Irreps(self.entries[index])
        return self.entries[index]

    def __str__(self) -> str:
        return "+".join(str(e) for e in self.entries)

    def __repr__(self) -> str:
        return f"Irreps({str(self)!r})"


def _parse(spec: object) -> tuple[MulIrrep, ...]:
    if isinstance(spec, Irreps):
        return spec.entries
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            return ()
        out = []
        for part in text.split("+"):
            match = _MUL_IRREP_RE.match(part)
            if match is None:
                raise ValueError(
                    f"Irreps: each term must look like '2x1o' or '1e'; got {part.strip()!r} in "
                    f"{spec!r}."
                )
            mul = int(match.group(1)) if match.group(1) is not None else 1
            out.append(MulIrrep(mul, Irrep.parse(match.group(2).replace(" ", ""))))
        return tuple(out)
    if isinstance(spec, (bytes, dict)) or not isinstance(spec, Iterable):
        raise TypeError(
            "Irreps: spec must be a string such as '2x0e + 1x1o', an Irreps or an iterable of "
            f"(mul, irrep) pairs; got {type(spec).__name__}."
        )
    out = []
    for item in spec:
        if isinstance(item, MulIrrep):
            out.append(item)
            continue
        if isinstance(item, (Irrep, str)):
            out.append(MulIrrep(1, _as_irrep(item)))
            continue
        try:
            mul, ir = item
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"Irreps: each item must be a (mul, irrep) pair; got {type(item).__name__}."
            ) from err
        if isinstance(mul, bool) or not isinstance(mul, int):
            raise TypeError(f"Irreps: a multiplicity must be an int; got {type(mul).__name__}.")
        if mul < 0:
            raise ValueError(f"Irreps: a multiplicity must be non-negative; got {mul}.")
        out.append(MulIrrep(int(mul), _as_irrep(ir)))
    return tuple(out)
