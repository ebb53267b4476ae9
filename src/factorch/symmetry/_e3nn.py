"""Conversions between factorch's and e3nn's layouts and irreps (e3nn imported lazily).

factorch uses e3nn's real basis inside every irrep (same harmonics, same Clebsch--Gordan signs),
so a single vector of irreps is laid out identically in both libraries. The difference is the
*channel* axis: factorch's tensor products take ``(..., C, irreps.dim)`` (C channels, each a full
vector of ``irreps``), while e3nn folds channels into multiplicities, ``(..., (C x irreps).dim)``
with every block ``mul x ir`` becoming ``(C * mul) x ir``. :func:`to_e3nn_layout` and
:func:`from_e3nn_layout` convert (channel-major within a block: copy ``c * mul + u``).

e3nn is an optional, test-time dependency: only :func:`irreps_to_e3nn` imports it.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import check_irreps, check_real_tensor
from ._irreps import Irreps

__all__ = [
    "e3nn_layout_irreps",
    "from_e3nn_layout",
    "irreps_from_e3nn",
    "irreps_to_e3nn",
    "to_e3nn_layout",
]


def irreps_to_e3nn(irreps: Irreps | str) -> Any:
    """An ``e3nn.o3.Irreps`` equal to ``irreps`` (imports e3nn; ``ImportError`` names the fix).

    Args:
        irreps: factorch :class:`Irreps` or a string.

    Returns:
        An ``e3nn.o3.Irreps``.

    Raises:
        ImportError: e3nn is not installed (the message names the fix).
        TypeError: a value ``Irreps`` cannot read.
        ValueError: a malformed irreps specification.

    Example:
        >>> irreps_to_e3nn("2x0e + 1x1o")  # doctest: +SKIP
        2x0e+1x1o
    """
    ir = check_irreps(irreps, "irreps_to_e3nn", "irreps")
    try:
        from e3nn import o3
    except ImportError as err:  # pragma: no cover - e3nn is installed in the test environment
        raise ImportError(
            "irreps_to_e3nn: e3nn is not installed; install it (pip install e3nn) or keep "
            "factorch.symmetry.Irreps."
        ) from err
    return o3.Irreps(str(ir))


def irreps_from_e3nn(irreps: object) -> Irreps:
    """factorch :class:`Irreps` from an ``e3nn.o3.Irreps`` (or anything ``Irreps`` accepts).

    Args:
        irreps: an ``e3nn.o3.Irreps``, a string, or ``(mul, (l, p))`` pairs.

    Returns:
        The equal factorch :class:`Irreps`.

    Raises:
        TypeError: a value ``Irreps`` cannot read.
        ValueError: a malformed irreps specification.

    Example:
        >>> irreps_from_e3nn([(2, (0, 1)), (1, (1, -1))])
        Irreps('2x0e+1x1o')
    """
    return check_irreps(irreps, "irreps_from_e3nn", "irreps")


def e3nn_layout_irreps(irreps: Irreps | str, channels: int) -> Irreps:
    """The e3nn irreps of ``channels`` channels of ``irreps``: ``mul x ir`` -> ``(C mul) x ir``.

    Args:
        irreps: the irreps of one channel.
        channels: the number of channels ``C``.

    Returns:
        The irreps of the flattened layout of :func:`to_e3nn_layout`.

    Raises:
        TypeError: ``irreps`` that cannot be read.
        ValueError: malformed ``irreps``, or ``channels`` that is not a positive int.

    Example:
        >>> e3nn_layout_irreps("0e + 1o", 2)
        Irreps('2x0e+2x1o')
    """
    ir = check_irreps(irreps, "e3nn_layout_irreps", "irreps")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"e3nn_layout_irreps: channels must be a positive int; got {channels!r}.")
    return Irreps([(e.mul * channels, e.irrep) for e in ir])


def to_e3nn_layout(x: torch.Tensor, irreps: Irreps | str) -> torch.Tensor:
    """``(..., C, irreps.dim)`` -> ``(..., C * irreps.dim)`` in e3nn's layout of ``C x irreps``.

    Block ``mul x ir`` of channel ``c`` lands in block ``(C mul) x ir`` at copies
    ``c * mul ... c * mul + mul - 1``. A permutation of entries: exact, differentiable.

    Args:
        x: ``(..., C, irreps.dim)`` features.
        irreps: the irreps of one channel.

    Returns:
        ``(..., C * irreps.dim)`` in e3nn's order.

    Raises:
        TypeError, ValueError: a non-floating tensor, fewer than 2 dimensions, or a last
            dimension other than ``irreps.dim``.

    Example:
        >>> x = torch.arange(8.0).reshape(2, 4)  # 2 channels of "0e + 1o"
        >>> to_e3nn_layout(x, "0e + 1o").tolist()  # e3nn "2x0e + 2x1o"
        [0.0, 4.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    """
    fn = "to_e3nn_layout"
    ir = check_irreps(irreps, fn, "irreps")
    x = check_real_tensor(x, fn, "x", min_ndim=2, last_dim=ir.dim)
    c = x.shape[-2]
    parts = [x[..., s].reshape(*x.shape[:-2], c * (s.stop - s.start)) for s in ir.slices()]
    return torch.cat(parts, dim=-1) if parts else x.reshape(*x.shape[:-2], 0)


def from_e3nn_layout(x: torch.Tensor, irreps: Irreps | str, channels: int) -> torch.Tensor:
    """Inverse of :func:`to_e3nn_layout`: ``(..., C * irreps.dim)`` -> ``(..., C, irreps.dim)``.

    Args:
        x: ``(..., C * irreps.dim)`` features in e3nn's order.
        irreps: the irreps of one channel.
        channels: the number of channels ``C``.

    Returns:
        ``(..., C, irreps.dim)``.

    Raises:
        TypeError, ValueError: a non-floating tensor, a bad ``channels``, or a last dimension
            other than ``channels * irreps.dim``.

    Example:
        >>> x = torch.arange(8.0).reshape(2, 4)
        >>> torch.equal(from_e3nn_layout(to_e3nn_layout(x, "0e + 1o"), "0e + 1o", 2), x)
        True
    """
    fn = "from_e3nn_layout"
    ir = check_irreps(irreps, fn, "irreps")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{fn}: channels must be a positive int; got {channels!r}.")
    x = check_real_tensor(x, fn, "x", last_dim=channels * ir.dim)
    lead = x.shape[:-1]
    parts = []
    start = 0
    for s in ir.slices():
        width = s.stop - s.start
        parts.append(x[..., start : start + channels * width].reshape(*lead, channels, width))
        start += channels * width
    return torch.cat(parts, dim=-1)
