"""Model-level verbs: inject adapters, switch, disable, delete, merge, count parameters.

All of them work in place on an ``nn.Module`` whose targeted layers have been wrapped in
:class:`~factorch.adapters.AdaptedLayer` (module names stay those of the base model, the base
layer under ``<name>.base_layer``). The adapter state lives in those wrappers only.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .._checks import check_generator
from ._config import ALL_LINEAR, AdapterConfig
from ._layer import AdaptedLayer, Adapter
from ._registry import get_method

__all__ = [
    "ParameterCount",
    "adapted_layers",
    "adapter_names",
    "delete_adapter",
    "disable_adapters",
    "disabled",
    "enable_adapters",
    "inject",
    "merge",
    "merge_and_unload",
    "set_adapter",
    "trainable_parameters",
    "unload",
    "unmerge",
]


def _check_model(model: object, fn: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be an nn.Module; got {type(model).__name__}.")
    return model


def adapted_layers(model: nn.Module) -> dict[str, AdaptedLayer]:
    """The :class:`AdaptedLayer` wrappers of ``model`` by module name.

    Args:
        model: the model to look in.

    Returns:
        ``{module name: wrapper}`` in module order (empty when ``model`` has no adapter).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> list(adapted_layers(inject(model, LoraConfig(target_modules=["1"], rank=1))))
        ['1']
    """
    _check_model(model, "adapted_layers")
    return {n: m for n, m in model.named_modules() if isinstance(m, AdaptedLayer)}


def adapter_names(model: nn.Module) -> tuple[str, ...]:
    """Names of the adapters present in ``model`` (in order of first appearance).

    Args:
        model: the model to look in.

    Returns:
        The names, each once (empty when ``model`` has no adapter).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> _ = inject(model, LoraConfig(target_modules=["0"], rank=2), adapter_name="wide")
        >>> adapter_names(model)
        ('default', 'wide')
    """
    seen: dict[str, None] = {}
    for layer in adapted_layers(model).values():
        seen.update(dict.fromkeys(layer.adapters))
    return tuple(seen)


def check_adapter_name(name: object, fn: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
        raise ValueError(
            f"{fn}: adapter_name must be a non-empty identifier (letters, digits, _ and -); "
            f"got {name!r}."
        )
    return name


# --- targeting -----------------------------------------------------------------------------------
def _output_embedding(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if callable(getter):
        try:
            out = getter()
        except (AttributeError, NotImplementedError):
            return None
        return out if isinstance(out, nn.Module) else None
    return None


def _name_matches(name: str, patterns: str | tuple[str, ...]) -> bool:
    if isinstance(patterns, str):
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _candidates(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Modules an adapter may target: every module except the insides of adapted layers
    (an :class:`AdaptedLayer` stands for its base layer, under the same name)."""
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in inside):
            continue
        if isinstance(module, AdaptedLayer):
            inside.append(f"{name}." if name else "")
        yield name, module


def find_targets(model: nn.Module, config: AdapterConfig, fn: str) -> dict[str, nn.Module]:
    """The modules ``config`` targets, by name (wrappers or plain layers); errors name ``fn``."""
    targets = cast("str | tuple[str, ...]", config.target_modules)
    excludes = cast("str | tuple[str, ...]", config.exclude_modules)
    output = _output_embedding(model) if targets == ALL_LINEAR else None
    found: dict[str, nn.Module] = {}
    names: list[str] = []
    for name, module in _candidates(model):
        if not name:
            continue
        names.append(name)
        base = module.base_layer if isinstance(module, AdaptedLayer) else module
        if targets == ALL_LINEAR:
            hit = type(base) is nn.Linear and base is not output
        else:
            hit = _name_matches(name, targets)
        if hit and not _name_matches(name, excludes):
            found[name] = module
    if not found:
        sample = [n for n in names if "." not in n or n.count(".") <= 3][:8]
        raise ValueError(
            f"{fn}: no module of the model matches target_modules={config.target_modules!r} "
            f"(exclude_modules={config.exclude_modules!r}); module names look like {sample}."
        )
    return found


# --- inject --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _errors_named(prefix: str) -> Iterator[None]:
    """Re-raise ``TypeError``/``ValueError`` from inside with ``prefix`` in front of the message
    (unless it already starts with the entry point's name), keeping the type."""
    try:
        yield
    except (TypeError, ValueError) as err:
        msg = str(err)
        if msg.startswith(prefix.split(":")[0] + ":"):
            raise
        raise type(err)(f"{prefix}: {msg}") from err


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def freeze_base(model: nn.Module) -> None:
    """``requires_grad=False`` on every parameter outside the adapters."""
    adapter_params = {
        id(p) for layer in adapted_layers(model).values() for p in layer.adapters.parameters()
    }
    for p in model.parameters():
        if id(p) not in adapter_params:
            p.requires_grad_(False)


def attach(
    model: nn.Module,
    built: Mapping[str, tuple[nn.Module, Adapter]],
    adapter_name: str,
) -> None:
    """Put built adapters into the model (wrapping plain layers); nothing can fail here."""
    for name, (module, adapter) in built.items():
        if isinstance(module, AdaptedLayer):
            wrapper = module
        else:
            wrapper = AdaptedLayer(module)
            _set_module(model, name, wrapper)
        wrapper.adapters[adapter_name] = adapter


def inject(
    model: nn.Module,
    config: AdapterConfig,
    *,
    adapter_name: str = "default",
    context: object = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Add the adapter ``config`` describes to the targeted layers of ``model``, in place.

    Each targeted layer is wrapped in an :class:`AdaptedLayer` (an already wrapped one gets one
    more adapter); the new adapter becomes the active one everywhere (:func:`set_adapter`), and
    every parameter of the model outside the adapters is frozen (``requires_grad=False``), so
    only the active adapter trains. At initialisation every built-in method leaves the model's
    function unchanged. On any error nothing is changed.

    Args:
        model: the model to adapt.
        config: a registered method's config (:class:`~factorch.adapters.LoraConfig`, ...).
        adapter_name: the new adapter's name (several can coexist; see :func:`set_adapter`).
        context: data the method needs to initialise (CorDA: ``{module name: input
            covariance}`` from :func:`~factorch.adapters.collect_covariances`; aTLAS: the task
            vectors); None for the others.
        generator: random source of the initial weights (default: torch's global one).

    Returns:
        ``model`` (modified in place).

    Raises:
        TypeError: not a model or a config; a targeted module the method cannot adapt.
        ValueError: no module matches ``target_modules``; a bad or duplicate adapter name;
            missing context; a rank the layers cannot fit in memory.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(),
        ...                             torch.nn.Linear(8, 2))
        >>> model = inject(model, LoraConfig(target_modules=["0"], rank=2))
        >>> trainable_parameters(model).trainable
        32
    """
    fn = "inject"
    _check_model(model, fn)
    if not isinstance(config, AdapterConfig):
        raise TypeError(
            f"{fn}: config must be an adapter config (e.g. LoraConfig); "
            f"got {type(config).__name__}."
        )
    method = get_method(config.method, fn)
    adapter_name = check_adapter_name(adapter_name, fn)
    generator = check_generator(generator, fn)
    if adapter_name in adapter_names(model):
        raise ValueError(
            f"{fn}: the model already has an adapter named {adapter_name!r}; choose another "
            "adapter_name or delete_adapter it first."
        )
    targets = find_targets(model, config, fn)
    cls = method.layer_class
    built: dict[str, tuple[nn.Module, Adapter]] = {}
    for name, module in targets.items():
        base = module.base_layer if isinstance(module, AdaptedLayer) else module
        cls.check_base(base, fn, name)
    bases = {n: m.base_layer if isinstance(m, AdaptedLayer) else m for n, m in targets.items()}
    with _errors_named(fn):
        like = cast(torch.Tensor, next(iter(bases.values())).weight)
        shared = cls.make_shared(config, context, None, like)
        for name, module in targets.items():
            base = bases[name]
            part = cls.module_context(context, name, fn)
            with _errors_named(f"{fn}: module {name!r}"):
                adapter = cls(base, config, context=part, generator=generator, shared=shared)
            adapter.train(base.training)
            built[name] = (module, adapter)
    attach(model, built, adapter_name)
    set_adapter(model, adapter_name)
    freeze_base(model)
    return model


# --- switch, disable, delete ---------------------------------------------------------------------
def set_adapter(model: nn.Module, adapter_name: str, *, trainable: bool = True) -> nn.Module:
    """Make ``adapter_name`` the active adapter of every layer that has it (layers without it
    run their base layer). Its parameters get ``requires_grad=trainable``, every other adapter's
    ``False``.

    Args:
        model: an adapted model.
        adapter_name: the adapter to activate.
        trainable: whether its parameters train.

    Returns:
        ``model`` (modified in place).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: no such adapter; a layer has another adapter merged (unmerge first).

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> _ = inject(model, LoraConfig(target_modules=["0"], rank=2), adapter_name="wide")
        >>> set_adapter(model, "default")[0].active_adapter  # inject activated "wide"
        'default'
    """
    fn = "set_adapter"
    _check_model(model, fn)
    if adapter_name not in adapter_names(model):
        raise ValueError(
            f"{fn}: no adapter named {adapter_name!r}; the model has {list(adapter_names(model))}."
        )
    layers = adapted_layers(model)
    for name, layer in layers.items():
        if layer.merged_adapter not in (None, adapter_name):
            raise ValueError(
                f"{fn}: adapter {layer.merged_adapter!r} is merged into {name!r}; unmerge(model) "
                "before switching adapters."
            )
    for layer in layers.values():
        layer.active_adapter = adapter_name if adapter_name in layer.adapters else None
        for key, adapter in layer.adapters.items():
            adapter.requires_grad_(trainable and key == adapter_name)
    return model


def _set_disabled(model: nn.Module, value: bool, fn: str) -> nn.Module:
    _check_model(model, fn)
    for layer in adapted_layers(model).values():
        layer.disabled = value
    return model


def disable_adapters(model: nn.Module) -> nn.Module:
    """Run every layer as its base layer (adapters kept; merged ones are bypassed exactly).

    Args:
        model: an adapted model.

    Returns:
        ``model`` (modified in place; :func:`enable_adapters` undoes it).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> disable_adapters(model)[0].disabled
        True
    """
    return _set_disabled(model, True, "disable_adapters")


def enable_adapters(model: nn.Module) -> nn.Module:
    """Undo :func:`disable_adapters`.

    Args:
        model: an adapted model.

    Returns:
        ``model`` (modified in place), its layers running their active adapters again.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> enable_adapters(disable_adapters(model))[0].disabled
        False
    """
    return _set_disabled(model, False, "enable_adapters")


@contextlib.contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Context in which ``model`` runs without its adapters (the previous state is restored).

    Args:
        model: an adapted model.

    Yields:
        ``model``, its adapters disabled until the block exits (even by an exception).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> with disabled(model):
        ...     y = model(torch.ones(1, 4))
    """
    layers = adapted_layers(_check_model(model, "disabled"))
    before = {name: layer.disabled for name, layer in layers.items()}
    _set_disabled(model, True, "disabled")
    try:
        yield model
    finally:
        for name, layer in layers.items():
            layer.disabled = before[name]


def delete_adapter(model: nn.Module, adapter_name: str) -> nn.Module:
    """Remove ``adapter_name`` from every layer; a layer left without adapters is unwrapped back
    to its base layer.

    Args:
        model: an adapted model.
        adapter_name: the adapter to remove.

    Returns:
        ``model`` (modified in place).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: no such adapter, or it is merged (unmerge first).

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> type(delete_adapter(model, "default")[0]).__name__  # unwrapped: no adapter left
        'Linear'
    """
    fn = "delete_adapter"
    _check_model(model, fn)
    if adapter_name not in adapter_names(model):
        raise ValueError(
            f"{fn}: no adapter named {adapter_name!r}; the model has {list(adapter_names(model))}."
        )
    layers = adapted_layers(model)
    for name, layer in layers.items():
        if layer.merged_adapter == adapter_name:
            raise ValueError(
                f"{fn}: adapter {adapter_name!r} is merged into {name!r}; unmerge first."
            )
    for name, layer in layers.items():
        if adapter_name in layer.adapters:
            del layer.adapters[adapter_name]
            if layer.active_adapter == adapter_name:
                layer.active_adapter = None
            if not len(layer.adapters):
                _set_module(model, name, layer.release())
    return model


# --- merge ---------------------------------------------------------------------------------------
def merge(model: nn.Module) -> nn.Module:
    """Fold the active adapter into each layer's base weight (and bias), in place.

    The merged model computes the same function as the unmerged one (up to rounding) with no
    adapter overhead; the exact base weights are kept so :func:`unmerge` restores them bit for
    bit. Not differentiable.

    Args:
        model: an adapted model.

    Returns:
        ``model`` (modified in place).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: a merge would produce NaN/Inf (nothing is merged in that layer), or an
            adapter changes the bias of a layer that has none.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> x = torch.ones(2, 4)
        >>> y = model(x)
        >>> torch.allclose(merge(model)(x), y), model[0].merged_adapter
        (True, 'default')
    """
    fn = "merge"
    for name, layer in adapted_layers(_check_model(model, fn)).items():
        layer.merge(fn, name)
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Undo :func:`merge`: restore the exact base weights and biases.

    Args:
        model: an adapted model (a layer without a merged adapter is left as it is).

    Returns:
        ``model`` (modified in place).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> unmerge(merge(model))[0].merged_adapter is None
        True
    """
    for layer in adapted_layers(_check_model(model, "unmerge")).values():
        layer.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge the active adapter and replace every adapted layer by its base layer, in place.

    The result is the base model's architecture (plain ``nn.Linear``/``nn.Conv*d``) computing
    the adapted function; all adapters are dropped. For a model compressed by
    :func:`factorch.nn.compress` (factorized layers), use :func:`factorch.nn.merge_and_unload`.
    A model that is itself an adapted layer is returned as its (merged) base layer.

    Args:
        model: an adapted model.

    Returns:
        ``model`` (modified in place), or the base layer when ``model`` is an adapted layer.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: a merge would produce NaN/Inf, or an adapter changes the bias of a layer
            that has none.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> type(merge_and_unload(model)[0]).__name__
        'Linear'
    """
    fn = "merge_and_unload"
    layers = adapted_layers(_check_model(model, fn))
    for name, layer in layers.items():
        if not layer.disabled:
            layer.merge(fn, name)
    if "" in layers:
        return layers[""].release()
    for name, layer in layers.items():
        _set_module(model, name, layer.release())
    return model


def unload(model: nn.Module) -> nn.Module:
    """Remove every adapter without merging (merged ones are unmerged first): the base model.

    Args:
        model: an adapted model.

    Returns:
        ``model`` (modified in place), or the base layer when ``model`` is an adapted layer.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> type(unload(model)[0]).__name__
        'Linear'
    """
    layers = adapted_layers(_check_model(model, "unload"))
    for layer in layers.values():
        layer.unmerge()
    if "" in layers:
        return layers[""].release()
    for name, layer in layers.items():
        _set_module(model, name, layer.release())
    return model


# --- parameter report ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterCount:
    """Parameter counts of an adapted model (each shared tensor counted once).

    Attributes:
        trainable: parameters with ``requires_grad``.
        total: all parameters.
        adapters: parameters of each named adapter (trainable or not).

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> print(trainable_parameters(model))
        trainable params: 8 || all params: 28 || trainable%: 28.5714
    """

    trainable: int
    total: int
    adapters: Mapping[str, int]

    @property
    def fraction(self) -> float:
        """``trainable / total``."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
            f"trainable%: {100 * self.fraction:.4f}"
        )


def trainable_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameter counts, and the size of each adapter (PEFT's
    ``print_trainable_parameters`` as a value: ``print(trainable_parameters(model))``).

    Args:
        model: any model (adapted or not).

    Returns:
        A :class:`ParameterCount`.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> count = trainable_parameters(model)
        >>> count.trainable, count.total, dict(count.adapters)
        (8, 28, {'default': 8})
    """
    _check_model(model, "trainable_parameters")
    params = list(model.parameters())  # deduplicated by torch
    per: dict[str, dict[int, int]] = {}
    for layer in adapted_layers(model).values():
        for key, adapter in layer.adapters.items():
            per.setdefault(key, {}).update({id(p): p.numel() for p in adapter.parameters()})
    return ParameterCount(
        trainable=sum(p.numel() for p in params if p.requires_grad),
        total=sum(p.numel() for p in params),
        adapters={k: sum(v.values()) for k, v in per.items()},
    )
