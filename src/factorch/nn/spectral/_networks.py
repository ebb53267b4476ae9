"""Weight formats as tensor networks, so a spectral convolution can contract its truncated
spectrum with the factors directly.

A spectral weight is a tensor over ``(in, out, k_1, ..., k_d)`` (or ``(layer, in, out, k..)`` when
one factorized tensor is shared by all layers). Each built-in format writes that tensor as an
einsum of its factors:

=========  ===========================================================================
format     network (weight modes ``m_0 .. m_{N-1}``, internal rank labels ``r``)
=========  ===========================================================================
cp         ``r, m_0 r, ..., m_{N-1} r``  (weights, then one factor per mode)
tucker     ``r_0..r_{N-1}, m_0 r_0, ..., m_{N-1} r_{N-1}``  (core, then the factors)
tt / tr    ``a m_0 b_1, b_1 m_1 b_2, ..., b_{N-1} m_{N-1} z`` (``z = a`` closes the ring)
lowrank    ``m_0 r, m_1 .. m_{N-1} r``  (``V`` reshaped)
=========  ===========================================================================

The spectral convolution appends the input spectrum ``b i k..`` (and a one-hot vector on the
layer mode for a shared tensor) and asks opt_einsum for the cheapest contraction order; the cost
of that network is compared with rebuilding the weight and contracting densely (the rule of
``implementation="auto"``). :func:`register_spectral_network` adds a network for a format
registered with :func:`factorch.nn.register_format`; formats without one are rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import opt_einsum
import torch

from ..formats import WeightFormat
from ._direct import cp_weight_modes_first

__all__ = [
    "Network",
    "NetworkBuilder",
    "network_for",
    "register_spectral_network",
    "symbols",
]


@dataclass(frozen=True)
class Network:
    """A format's factors as einsum operands.

    Attributes:
        subscripts: one subscript string per operand.
        operands: maps the format's factors (in its order) to the operands (e.g. reshapes).
        modes_first_weight: optional; for a weight over ``(in, out, k..)`` (one layer, not
            separable), builds it from the operands straight in the modes-first layout
            ``(K, I, O)`` of the spectral layers' batched contraction (``K`` the kept modes
            flattened, last fastest; differentiable). None: the layer rebuilds the weight in
            its own layout and copies it.

    Example:
        >>> net = Network(("ia", "ja"), lambda factors: list(factors))  # a low-rank ``A B^T``
        >>> a, b = torch.ones(3, 2), torch.ones(4, 2)
        >>> torch.einsum(",".join(net.subscripts) + "->ij", *net.operands([a, b])).shape
        torch.Size([3, 4])
    """

    subscripts: tuple[str, ...]
    operands: Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]
    modes_first_weight: Callable[[Sequence[torch.Tensor]], torch.Tensor] | None = None


NetworkBuilder = Callable[[WeightFormat, str, Callable[[int], str]], Network]
"""``(format, weight mode labels, fresh label source) -> Network``."""

_NETWORKS: dict[str, NetworkBuilder] = {}


def symbols(start: int) -> Callable[[int], str]:
    """Fresh einsum labels ``opt_einsum.get_symbol(start + i)``."""
    return lambda i: opt_einsum.get_symbol(start + i)


def register_spectral_network(format: str, builder: NetworkBuilder) -> None:
    """Let spectral convolutions contract format ``format``'s factors directly.

    Args:
        format: the registry name of the format (``WeightFormat.format``).
        builder: ``builder(fmt, labels, fresh)`` returns the :class:`Network` whose einsum over
            the factors is the format's tensor with modes labelled ``labels`` (one character per
            mode); ``fresh(i)`` gives the ``i``-th unused label for internal (rank) indices.

    Raises:
        ValueError: ``format`` that is not a non-empty name.
        TypeError: ``builder`` that is not callable.

    Example:
        >>> def diag(fmt, labels, fresh):  # a hypothetical format storing only a diagonal
        ...     return Network((labels[0],), lambda f: [f[0]])
        >>> register_spectral_network("my-diagonal", diag)
    """
    if not isinstance(format, str) or not format:
        raise ValueError(f"register_spectral_network: format must be a name; got {format!r}.")
    if not callable(builder):
        raise TypeError(
            f"register_spectral_network: builder must be callable; got {type(builder).__name__}."
        )
    _NETWORKS[format] = builder


def network_for(fmt: WeightFormat, labels: str, fresh: Callable[[int], str]) -> Network | None:
    """The network of ``fmt`` over modes ``labels``, or None when none is registered."""
    builder = _NETWORKS.get(fmt.format)
    return None if builder is None else builder(fmt, labels, fresh)


def _identity(factors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return list(factors)


def _cp(fmt: WeightFormat, labels: str, fresh: Callable[[int], str]) -> Network:
    r = fresh(0)
    return Network((r, *(m + r for m in labels)), _identity, cp_weight_modes_first)


def _tucker(fmt: WeightFormat, labels: str, fresh: Callable[[int], str]) -> Network:
    ranks = "".join(fresh(i) for i in range(len(labels)))
    return Network((ranks, *(m + r for m, r in zip(labels, ranks))), _identity)


def _chain(ring: bool) -> NetworkBuilder:
    def build(fmt: WeightFormat, labels: str, fresh: Callable[[int], str]) -> Network:
        n = len(labels)
        bonds = [fresh(i) for i in range(n + 1)]
        if ring:
            bonds[-1] = bonds[0]
        subs = tuple(bonds[k] + labels[k] + bonds[k + 1] for k in range(n))
        return Network(subs, _identity)

    return build


def _lowrank(fmt: WeightFormat, labels: str, fresh: Callable[[int], str]) -> Network:
    r = fresh(0)
    rest = fmt.layout.tensor_shape[1:]

    def operands(factors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        u, v = factors
        return [u, v.reshape(*rest, v.shape[-1])]

    return Network((labels[0] + r, labels[1:] + r), operands)


register_spectral_network("cp", _cp)
register_spectral_network("tucker", _tucker)
register_spectral_network("tt", _chain(ring=False))
register_spectral_network("tr", _chain(ring=True))
register_spectral_network("lowrank", _lowrank)
