"""The format registry: the one place a format name is looked up.

Layers, :func:`~factorch.nn.compress` and configs name a format by its ``format`` string;
:func:`get_format` maps it to the :class:`~factorch.nn.formats.WeightFormat` subclass that owns
its logic. The built-in formats are registered by :mod:`factorch.nn.formats`; a new one is added
with :func:`register_format` (one call, after defining the subclass).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._spec import TensorLayout
from ._base import WeightFormat

__all__ = [
    "available_formats",
    "format_from_config",
    "get_format",
    "register_format",
    "unregister_format",
]

_REGISTRY: dict[str, type[WeightFormat]] = {}


def register_format(cls: type[WeightFormat], *, replace: bool = False) -> type[WeightFormat]:
    """Make ``cls`` available to the layers and :func:`~factorch.nn.compress` as ``cls.format``.

    Usable as a class decorator. The registry is the one place a format name is looked up;
    :func:`unregister_format` removes an entry again (e.g. at the end of a test).

    Args:
        cls: a concrete :class:`WeightFormat` subclass whose ``format`` is its name.
        replace: allow replacing a different class registered under the same name.

    Returns:
        ``cls`` (so it works as a decorator).

    Raises:
        TypeError: not a :class:`WeightFormat` subclass, or one with abstract methods left.
        ValueError: an empty name, or a name taken by another class (without ``replace``).

    Example:
        >>> class Diagonal(LowRankWeight):  # a variant of a built-in, under its own name
        ...     format = "diag-lowrank"
        >>> register_format(Diagonal) is Diagonal
        True
        >>> unregister_format("diag-lowrank")
    """
    fn = "register_format"
    if not (isinstance(cls, type) and issubclass(cls, WeightFormat)):
        raise TypeError(f"{fn}: expected a WeightFormat subclass; got {cls!r}.")
    if getattr(cls, "__abstractmethods__", ()):
        raise TypeError(
            f"{fn}: {cls.__name__} does not implement {sorted(cls.__abstractmethods__)}."
        )
    name = cls.format
    if not isinstance(name, str) or not name:
        raise ValueError(f"{fn}: {cls.__name__}.format must be a non-empty name; got {name!r}.")
    if name in _REGISTRY and _REGISTRY[name] is not cls and not replace:
        raise ValueError(
            f"{fn}: format {name!r} is already registered to {_REGISTRY[name].__name__}; "
            "pass replace=True to override it."
        )
    _REGISTRY[name] = cls
    return cls


def unregister_format(name: str) -> None:
    """Remove a registered format (``KeyError``-free: unknown names are ignored).

    Args:
        name: the registry name of the format.

    Raises:
        TypeError: ``name`` is not a string.

    Example:
        >>> unregister_format("no-such-format")  # unknown: ignored
        >>> "cp" in available_formats()
        True
    """
    if not isinstance(name, str):
        raise TypeError(f"unregister_format: name must be a str; got {type(name).__name__}.")
    _REGISTRY.pop(name, None)


def available_formats() -> tuple[str, ...]:
    """Names of the registered formats, in registration order.

    Returns:
        The names, built-in formats first, then those added by :func:`register_format`.

    Example:
        >>> available_formats()[:5]
        ('lowrank', 'cp', 'tucker', 'tt', 'tr')
    """
    return tuple(_REGISTRY)


def get_format(name: object, fn: str = "get_format") -> type[WeightFormat]:
    """The format class registered as ``name``.

    Args:
        name: a name of :func:`available_formats`.
        fn: the caller's name, which starts the error message.

    Returns:
        The :class:`WeightFormat` subclass (not an instance).

    Raises:
        ValueError: an unregistered name; the message starts with ``fn`` and lists the choices.

    Example:
        >>> get_format("tucker").__name__
        'TuckerWeight'
    """
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(f"{fn}: format must be one of {available_formats()}; got {name!r}.")


def format_from_config(config: Mapping[str, Any]) -> WeightFormat:
    """Rebuild a format from :meth:`WeightFormat.config` (no decomposition is run).

    Args:
        config: the dict :meth:`WeightFormat.config` returned (after a JSON round trip too).

    Returns:
        A new :class:`WeightFormat` of the recorded class, layout and rank.

    Raises:
        ValueError: not a format config, or an unregistered format name.

    Example:
        >>> fmt = get_format("cp")(TensorLayout.identity((4, 6)), 3)
        >>> format_from_config(fmt.config()).rank
        3
    """
    fn = "format_from_config"
    if not isinstance(config, Mapping) or not {"format", "rank", "layout"} <= set(config):
        raise ValueError(
            f"{fn}: config must be a mapping with 'format', 'rank' and 'layout'; got {config!r}."
        )
    cls = get_format(config["format"], fn)
    lay = config["layout"]
    layout = TensorLayout(
        tuple(lay["weight_shape"]),
        tuple(lay["split"]),
        tuple(lay["order"]),
        tuple(lay["tensor_shape"]),
    )
    rank = config["rank"]
    return cls(layout, rank if isinstance(rank, int) else tuple(rank))
