"""Save adapters (configs, per-module structure, adapter tensors only) and rebuild them on a base
model without any data-dependent initialisation; :mod:`factorch.io`'s model directory format,
shared with :func:`factorch.nn.save_pretrained` (compressed models).

The config (``factorch_config.json``, kind ``"adapters"``) records::

    {"adapters": {"<adapter>": {"method": "lora", "rank": 8, ...the config...}},
     "active": "<adapter>" | null,
     "modules": {"<module>": {"base": {"type": "Linear", "weight_shape": [..], "bias": true},
                              "adapters": {"<adapter>": {"shapes": {...}, ...structure...}}}}}

and ``model.safetensors`` the tensors ``<module>.<adapter>.<name>`` (e.g.
``encoder.layer.0.attention.self.query.default.lora_A``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from .. import nn as fnn
from ..io import (
    DEFAULT_MAX_ENTRIES,
    FileFormatError,
    read_model_config,
    read_model_tensors,
    save_model_files,
)
from ._config import AdapterConfig
from ._layer import AdaptedLayer, Adapter
from ._model import adapted_layers, attach, check_adapter_name, freeze_base, set_adapter
from ._model import adapter_names as model_adapter_names
from ._registry import get_method

__all__ = ["ADAPTERS_KIND", "from_pretrained", "save_pretrained"]

ADAPTERS_KIND = "adapters"
FACTORIZED_KIND = "factorized"  # what factorch.nn.save_pretrained writes


def _configs(model: nn.Module, names: Sequence[str]) -> dict[str, AdapterConfig]:
    out: dict[str, AdapterConfig] = {}
    for layer in adapted_layers(model).values():
        for key, adapter in layer.adapters.items():
            if key in names:
                out.setdefault(key, cast(Adapter, adapter).config)
    return out


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    adapter_names: Sequence[str] | None = None,
    force: bool = False,
) -> None:
    """Write the adapters of ``model`` (not the base weights) to ``directory``.

    A model without adapters but with factorized layers (from :func:`factorch.nn.compress`) is
    written by :func:`factorch.nn.save_pretrained` (its whole state); both kinds load with
    :func:`from_pretrained`. Files are written atomically, both or neither.

    Args:
        model: the adapted model.
        directory: target directory (created if missing).
        adapter_names: the adapters to save (default: all).
        force: replace existing files.

    Raises:
        ValueError: no adapters (and no factorized layers), an unknown adapter name.
        FileExistsError: the files exist and ``force`` is False.

    Example:
        >>> import tempfile
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> save_pretrained(model, tempfile.mkdtemp() + "/lora")
    """
    fn = "save_pretrained"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be an nn.Module; got {type(model).__name__}.")
    present = model_adapter_names(model)
    if not present:
        if fnn.model_config(model)["modules"]:
            fnn.save_pretrained(model, directory, force=force)
            return
        raise ValueError(
            f"{fn}: the model has no adapters (inject one first) and no factorized layers."
        )
    names = list(present) if adapter_names is None else list(adapter_names)
    unknown = [n for n in names if n not in present]
    if unknown or not names:
        raise ValueError(
            f"{fn}: adapter_names {unknown or names} not in the model's {list(present)}."
        )
    configs = _configs(model, names)
    modules: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    active = None
    for name, layer in adapted_layers(model).items():
        keys = [k for k in layer.adapters if k in names]
        if not keys:
            continue
        base = layer.base_layer
        entry: dict[str, Any] = {
            "base": {
                "type": type(base).__name__,
                "weight_shape": list(layer.weight.shape),
                "bias": layer.bias is not None,
            },
            "adapters": {},
        }
        for key in keys:
            adapter = cast(Adapter, layer.adapters[key])
            entry["adapters"][key] = adapter.structure()
            for t_name, t in adapter.state_dict().items():
                tensors[f"{name}.{key}.{t_name}"] = t
        modules[name] = entry
        if layer.active_adapter in names:
            active = layer.active_adapter
    config = {
        "adapters": {k: c.to_dict() for k, c in configs.items()},
        "active": active,
        "modules": modules,
    }
    save_model_files(directory, kind=ADAPTERS_KIND, config=config, tensors=tensors, force=force)


# --- load ----------------------------------------------------------------------------------------
def _parse_configs(raw: object) -> dict[str, AdapterConfig]:
    if not isinstance(raw, dict) or not raw:
        raise FileFormatError("factorch_config.json: 'adapters' must be a non-empty object.")
    out: dict[str, AdapterConfig] = {}
    for name, data in raw.items():
        try:
            check_adapter_name(name, "from_pretrained")
            method = get_method(
                data.get("method") if isinstance(data, dict) else None, "from_pretrained"
            )
            out[name] = method.config_class.from_dict(data)
        except (TypeError, ValueError) as e:
            raise FileFormatError(f"adapter {name!r}: invalid config ({e})") from None
    return out


def _base_of(model: nn.Module, name: str, record: object) -> tuple[nn.Module, nn.Module]:
    """``(module in the model, its base layer)``, checked against the recorded base."""
    where = f"module {name!r}"
    if not isinstance(name, str) or not name:
        raise FileFormatError(f"module names must be non-empty strings; got {name!r}.")
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise FileFormatError(
            f"{where}: the model has no such module; give the base model the adapters were "
            "trained on."
        ) from None
    base = module.base_layer if isinstance(module, AdaptedLayer) else module
    weight = getattr(base, "weight", None)
    info = record.get("base") if isinstance(record, dict) else None
    if not isinstance(info, dict) or not isinstance(weight, torch.Tensor):
        raise FileFormatError(f"{where}: the config must record its base layer.")
    got = {
        "type": type(base).__name__,
        "weight_shape": list(weight.shape),
        "bias": getattr(base, "bias", None) is not None,
    }
    if info != got:
        raise FileFormatError(
            f"{where}: the adapters were saved for a base {info!r:.200} but the model's module is "
            f"{got!r}; give the base model the adapters were trained on."
        )
    return module, base


def _build(
    model: nn.Module,
    modules: object,
    configs: Mapping[str, AdapterConfig],
) -> dict[str, dict[str, tuple[nn.Module, Adapter]]]:
    """adapter name -> module name -> (module, adapter rebuilt from its structure)."""
    if not isinstance(modules, dict) or not modules:
        raise FileFormatError("factorch_config.json: 'modules' must be a non-empty object.")
    built: dict[str, dict[str, tuple[nn.Module, Adapter]]] = {k: {} for k in configs}
    shared: dict[str, nn.ParameterDict | None] = {}
    for name, record in modules.items():
        module, base = _base_of(model, name, record)
        structures = record.get("adapters")
        if not isinstance(structures, dict) or not set(structures) <= set(configs):
            raise FileFormatError(f"module {name!r}: 'adapters' must map saved adapter names.")
        for key, structure in structures.items():
            cls = get_method(configs[key].method, "from_pretrained").layer_class
            where = f"module {name!r}, adapter {key!r}"
            if not isinstance(structure, dict):
                raise FileFormatError(f"{where}: the structure must be an object.")
            try:
                cls.check_base(base, "from_pretrained", name)
                if key not in shared:
                    like = cast(torch.Tensor, base.weight)
                    shared[key] = cls.make_shared(configs[key], None, structure, like)
                adapter = cls(base, configs[key], shared=shared[key], structure=structure)
            except (TypeError, ValueError, KeyError) as e:
                raise FileFormatError(f"{where}: cannot rebuild the adapter ({e})") from None
            if adapter.structure() != structure:
                raise FileFormatError(
                    f"{where}: the recorded structure {structure!r:.200} does not match the "
                    f"adapter its config builds ({adapter.structure()!r:.200})."
                )
            adapter.train(base.training)
            built[key][name] = (module, adapter)
    return built


def _load_tensors(
    built: Mapping[str, Mapping[str, tuple[nn.Module, Adapter]]],
    tensors: Mapping[str, torch.Tensor],
) -> None:
    expected: dict[str, tuple[Adapter, str]] = {}
    for key, per_module in built.items():
        for name, (_, adapter) in per_module.items():
            for t_name in adapter.state_dict():
                expected[f"{name}.{key}.{t_name}"] = (adapter, t_name)
    if set(expected) != set(tensors):
        missing = sorted(set(expected) - set(tensors))[:5]
        extra = sorted(set(tensors) - set(expected))[:5]
        raise FileFormatError(
            f"the saved tensors do not fit the adapters (missing {missing}, unexpected {extra})."
        )
    states: dict[int, tuple[Adapter, dict[str, torch.Tensor]]] = {}
    for full, (adapter, t_name) in expected.items():
        want = adapter.state_dict()[t_name]
        if tuple(want.shape) != tuple(tensors[full].shape):
            raise FileFormatError(
                f"tensor {full!r} has shape {tuple(tensors[full].shape)} in the file but the "
                f"adapter needs {tuple(want.shape)}."
            )
        states.setdefault(id(adapter), (adapter, {}))[1][t_name] = tensors[full]
    with torch.no_grad():
        for adapter, state in states.values():
            adapter.load_state_dict(state, strict=True)


def from_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    is_trainable: bool = False,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> nn.Module:
    """Rebuild saved adapters on ``model`` (the base model), in place, and load their weights.

    No data-dependent initialisation runs (no SVD, covariance or task vectors needed): each
    adapter is rebuilt from its recorded config and structure, checked against the base layer
    it attaches to (type, weight shape, bias), and the file's tensors must match it exactly.
    The recorded active adapter is activated. On any error the model is left unchanged. A
    directory of a compressed model (kind ``"factorized"``) is loaded with
    :func:`factorch.nn.from_pretrained`.

    Args:
        model: the base model.
        directory: written by :func:`save_pretrained`.
        is_trainable: leave the active adapter trainable (default: inference, all frozen).
        max_entries: refuse files holding more tensor entries (memory guard).

    Returns:
        ``model`` with the adapters.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        FileNotFoundError: no such directory or file.
        FileFormatError: anything wrong with the files, a mismatch with ``model``, an adapter
            name the model already has.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/lora"
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(4, 4)),
        ...                LoraConfig(target_modules=["0"], rank=1))
        >>> save_pretrained(model, path)
        >>> twin = from_pretrained(torch.nn.Sequential(torch.nn.Linear(4, 4)), path)
        >>> adapter_names(twin)
        ('default',)
    """
    fn = "from_pretrained"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be an nn.Module; got {type(model).__name__}.")
    files = read_model_config(directory, kind=(ADAPTERS_KIND, FACTORIZED_KIND))
    if files.kind == FACTORIZED_KIND:
        return fnn.from_pretrained(model, directory, max_entries=max_entries)
    if set(files.config) != {"adapters", "active", "modules"}:
        raise FileFormatError(
            "factorch_config.json: an adapters config has the keys adapters, active, modules; "
            f"got {sorted(files.config)}."
        )
    configs = _parse_configs(files.config["adapters"])
    taken = [k for k in configs if k in model_adapter_names(model)]
    if taken:
        raise FileFormatError(
            f"the model already has adapters named {taken}; delete_adapter them first."
        )
    active = files.config["active"]
    if active is not None and active not in configs:
        raise FileFormatError(f"factorch_config.json: active adapter {active!r} is not saved.")
    tensors = read_model_tensors(files, max_entries=max_entries)
    built = _build(model, files.config["modules"], configs)
    _load_tensors(built, tensors)
    for key, per_module in built.items():
        attach(model, per_module, key)
    set_adapter(
        model, active if active is not None else next(iter(configs)), trainable=is_trainable
    )
    freeze_base(model)
    return model
