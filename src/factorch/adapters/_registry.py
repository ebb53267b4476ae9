"""Adapter methods by name: each method registers its config class and its layer class."""

from __future__ import annotations

from dataclasses import dataclass

from ._config import AdapterConfig
from ._layer import Adapter

__all__ = ["Method", "available_methods", "get_method", "register_method"]


@dataclass(frozen=True)
class Method:
    """A registered adapter method: its name, config class and layer class.

    Attributes:
        name: the registry name (the config's ``method``).
        config_class: the method's :class:`AdapterConfig` subclass.
        layer_class: the method's :class:`Adapter` subclass.

    Example:
        >>> method = get_method("lora", "demo")
        >>> method.name, method.config_class.__name__
        ('lora', 'LoraConfig')
    """

    name: str
    config_class: type[AdapterConfig]
    layer_class: type[Adapter]


_METHODS: dict[str, Method] = {}


def register_method(layer_class: type[Adapter]) -> None:
    """Register an adapter method (its ``layer_class.config_class`` names it by ``method``).

    Unlike PEFT, whose method names must exist in its ``PeftType`` enum, any library can add a
    method here; :func:`~factorch.adapters.inject`, saving and loading then work with it.

    Args:
        layer_class: the method's :class:`Adapter` subclass; its ``config_class`` and ``method``
            name the config class and the method. Registering the same class again is a no-op.

    Raises:
        TypeError: not an :class:`Adapter` subclass with an :class:`AdapterConfig` subclass.
        ValueError: an empty name, or another method already registered under it.

    Example:
        >>> sorted(available_methods())[:3]
        ['atlas', 'corda', 'left']
    """
    fn = "register_method"
    if not isinstance(layer_class, type) or not issubclass(layer_class, Adapter):
        raise TypeError(f"{fn}: layer_class must be an Adapter subclass; got {layer_class!r}.")
    config_class = layer_class.config_class
    if not issubclass(config_class, AdapterConfig) or config_class is AdapterConfig:
        raise TypeError(f"{fn}: {layer_class.__name__}.config_class must subclass AdapterConfig.")
    name = config_class.method
    if not isinstance(name, str) or not name or layer_class.method != name:
        raise ValueError(
            f"{fn}: {config_class.__name__}.method and {layer_class.__name__}.method must be the "
            f"same non-empty name; got {name!r} and {layer_class.method!r}."
        )
    known = _METHODS.get(name)
    if known is not None and known.layer_class is not layer_class:
        raise ValueError(f"{fn}: method {name!r} is already registered ({known.layer_class}).")
    _METHODS[name] = Method(name, config_class, layer_class)


def get_method(name: object, fn: str) -> Method:
    """The method registered as ``name``; ``ValueError`` listing the known ones otherwise.

    Args:
        name: a name of :func:`available_methods`.
        fn: the caller's name, which starts the error message.

    Returns:
        The :class:`Method` record.

    Raises:
        ValueError: ``name`` is not a registered method (the message lists them).

    Example:
        >>> get_method("tucker", "demo").layer_class.__name__
        'TuckerLayer'
    """
    if not isinstance(name, str) or name not in _METHODS:
        raise ValueError(f"{fn}: unknown adapter method {name!r}; registered: {sorted(_METHODS)}.")
    return _METHODS[name]


def available_methods() -> tuple[str, ...]:
    """Names of the registered adapter methods.

    Returns:
        The names, in registration order (built-in methods first).

    Example:
        >>> "lora" in available_methods()
        True
    """
    return tuple(_METHODS)
