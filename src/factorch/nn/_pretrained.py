"""Save, reload and densify models whose layers are factorized (e.g. by :func:`compress`).

The on-disk format is :mod:`factorch.io`'s model directory (``factorch_config.json`` +
``model.safetensors``) of kind ``"factorized"``: the config records, per factorized module, the
layer class, its constructor arguments and its weight format (format, rank, layout), exactly
the layer's :meth:`~factorch.nn.FactorizedLayer.config`; the safetensors file holds the whole
``state_dict``. :func:`from_pretrained` rebuilds those layers from their configs inside a model
of the original (dense) architecture, without running any decomposition, then loads the state.
:func:`factorch.adapters.from_pretrained` reads the same directories.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..io import (
    DEFAULT_MAX_ENTRIES,
    FileFormatError,
    read_model_config,
    read_model_tensors,
    save_model_files,
)
from ._conv import FactorizedConv1d, FactorizedConv2d, FactorizedConv3d
from ._embedding import FactorizedEmbedding
from ._layer import FactorizedLayer
from ._linear import FactorizedLinear
from ._maestro import LowRankConv1d, LowRankConv2d, LowRankConv3d, LowRankLinear

__all__ = ["FACTORIZED_KIND", "from_pretrained", "merge_and_unload", "model_config"]

FACTORIZED_KIND = "factorized"

_LAYERS: dict[str, tuple[Callable[..., FactorizedLayer], type[nn.Module]]] = {
    cls.__name__: (cls.from_config, dense)
    for cls, dense in (
        (FactorizedLinear, nn.Linear),
        (FactorizedConv1d, nn.Conv1d),
        (FactorizedConv2d, nn.Conv2d),
        (FactorizedConv3d, nn.Conv3d),
        (FactorizedEmbedding, nn.Embedding),
        (LowRankLinear, nn.Linear),
        (LowRankConv1d, nn.Conv1d),
        (LowRankConv2d, nn.Conv2d),
        (LowRankConv3d, nn.Conv3d),
    )
}
"""Layer class name -> (its ``from_config``, the dense class it stands for)."""


def _to_dense(layer: FactorizedLayer) -> nn.Module:
    to_dense: Callable[[], nn.Module] | None = getattr(layer, "to_dense", None)
    if to_dense is None:
        raise TypeError(
            f"merge_and_unload: {type(layer).__name__} has no dense counterpart (no to_dense)."
        )
    return to_dense()


def _factorized_modules(model: nn.Module) -> dict[str, FactorizedLayer]:
    """The outermost factorized layers of ``model`` by name (``""`` for the model itself)."""
    out: dict[str, FactorizedLayer] = {}
    for name, module in model.named_modules():
        if isinstance(module, FactorizedLayer) and not any(
            name.startswith(f"{p}.") or p == "" for p in out
        ):
            out[name] = module
    return out


def model_config(model: nn.Module) -> dict[str, Any]:
    """``{"modules": {name: layer config}}`` for every factorized layer of ``model``.

    The per-module entry is :meth:`FactorizedLayer.config` (layer class, constructor arguments,
    weight format with rank and layout): enough to rebuild the layer without decomposing.

    Args:
        model: a model with factorized layers (the others are not listed).

    Returns:
        A JSON-serialisable dict ``{"modules": {module name: layer config}}``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(16, 8))
        >>> small, report = factorch.nn.compress(model, layer_ranks={"0": 2})
        >>> model_config(small)["modules"]["0"]["weight"]["rank"]
        2
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_config: model must be an nn.Module; got {type(model).__name__}.")
    modules = _factorized_modules(model)
    if "" in modules:
        raise TypeError(
            "model_config: the model is itself a factorized layer; wrap it in a container "
            "(e.g. nn.Sequential(layer)) to save it as a model."
        )
    return {"modules": {name: layer.config() for name, layer in modules.items()}}


def save_pretrained(
    model: nn.Module, directory: str | os.PathLike[str], *, force: bool = False
) -> None:
    """Write a model with factorized layers (e.g. from :func:`compress`) to ``directory``.

    Records :func:`model_config` and the whole ``state_dict`` (see the module docstring), so
    that :func:`from_pretrained` can rebuild it inside a fresh model of the original
    architecture without decomposing anything. Files are written atomically, both or neither.

    Args:
        model: the model (it may also have no factorized layer: then it is a plain checkpoint).
        directory: target directory (created if missing).
        force: replace existing files.

    Raises:
        TypeError: not an ``nn.Module``; a state entry that is not a tensor of a supported dtype.
        FileExistsError: the files exist and ``force`` is False.

    Example:
        >>> import tempfile
        >>> model = torch.nn.Sequential(torch.nn.Linear(16, 8))
        >>> small, _ = factorch.nn.compress(model, layer_ranks={"0": 2})
        >>> save_pretrained(small, tempfile.mkdtemp() + "/small")
    """
    config = model_config(model)
    state = model.state_dict()
    save_model_files(directory, kind=FACTORIZED_KIND, config=config, tensors=state, force=force)


def _build(name: str, entry: object, target: nn.Module) -> FactorizedLayer | None:
    """The factorized layer ``entry`` describes for the module ``target`` of the model (None when
    ``target`` already is that layer), checked against ``target``; FileFormatError otherwise."""
    where = f"module {name!r}"
    if not isinstance(entry, Mapping) or entry.get("layer") not in _LAYERS:
        got = entry.get("layer") if isinstance(entry, Mapping) else type(entry).__name__
        raise FileFormatError(
            f"{where}: the config must name a factorized layer ({', '.join(_LAYERS)}); got {got!r}."
        )
    from_config, dense = _LAYERS[entry["layer"]]
    if isinstance(target, FactorizedLayer) and target.config() == entry:
        return None
    if type(target) is not dense:
        raise FileFormatError(
            f"{where}: the file holds a {entry['layer']}, which replaces an {dense.__name__}, but "
            f"the model's module is a {type(target).__name__}; give the model of the architecture "
            "the file was saved from."
        )
    weight = target.weight
    if not isinstance(weight, torch.Tensor):
        raise FileFormatError(f"{where}: the model's module has no weight tensor.")
    try:
        layer = from_config(entry, device=weight.device, dtype=weight.dtype)
    except (KeyError, TypeError, ValueError) as e:
        raise FileFormatError(f"{where}: invalid layer config ({e}).") from None
    if layer.config() != entry:
        raise FileFormatError(
            f"{where}: the recorded config is inconsistent (rebuilt as {layer.config()!r:.200})."
        )
    shape = layer.parametrization.weight_shape
    if isinstance(layer, FactorizedEmbedding):
        shape = (layer.num_embeddings, layer.embedding_dim)
    has_bias = getattr(target, "bias", None) is not None
    if tuple(weight.shape) != tuple(shape) or has_bias != (
        getattr(layer, "bias", None) is not None
    ):
        raise FileFormatError(
            f"{where}: the file's layer has weight shape {tuple(shape)} (bias={not has_bias}) but "
            f"the model's {type(target).__name__} has {tuple(weight.shape)} (bias={has_bias})."
        )
    layer.train(target.training)
    return layer


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def from_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> nn.Module:
    """Load a directory written by :func:`save_pretrained` into ``model``, in place.

    ``model`` is a model of the original architecture (dense layers where the file has
    factorized ones; its weights are overwritten). Each factorized layer is rebuilt from its
    recorded config (no decomposition runs), on the device and in the dtype of the layer it
    replaces and in that layer's training/eval mode; then the saved state is loaded. The file is
    checked first: every recorded module must exist with the right type and shape, and the
    state's names and shapes must match the rebuilt model exactly. On any error the model is
    left as it was.

    Args:
        model: the base model (dense architecture).
        directory: written by :func:`save_pretrained`.
        max_entries: refuse files holding more tensor entries (memory guard).

    Returns:
        ``model`` with its factorized layers in place and the saved weights.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        FileNotFoundError: no such directory or file.
        FileFormatError: anything wrong with the files or a mismatch with ``model``.

    Example:
        >>> import tempfile
        >>> model = torch.nn.Sequential(torch.nn.Linear(16, 8))
        >>> small, _ = factorch.nn.compress(model, layer_ranks={"0": 2})
        >>> path = tempfile.mkdtemp() + "/small"
        >>> save_pretrained(small, path)
        >>> twin = from_pretrained(torch.nn.Sequential(torch.nn.Linear(16, 8)), path)
        >>> type(twin[0]).__name__
        'FactorizedLinear'
    """
    fn = "from_pretrained"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be an nn.Module; got {type(model).__name__}.")
    files = read_model_config(directory, kind=FACTORIZED_KIND)
    modules = files.config.get("modules")
    if set(files.config) != {"modules"} or not isinstance(modules, dict):
        raise FileFormatError("factorch_config.json: a factorized model's config is {'modules'}.")
    tensors = read_model_tensors(files, max_entries=max_entries)
    swaps: list[tuple[str, nn.Module, nn.Module]] = []
    try:
        for name, entry in modules.items():
            if not isinstance(name, str) or not name:
                raise FileFormatError(f"module names must be non-empty strings; got {name!r}.")
            try:
                target = model.get_submodule(name)
            except AttributeError:
                raise FileFormatError(
                    f"module {name!r}: the model has no such module; give the model of the "
                    "architecture the file was saved from."
                ) from None
            layer = _build(name, entry, target)
            if layer is not None:
                _set(model, name, layer)
                swaps.append((name, target, layer))
        _load_state(model, tensors)
    except BaseException:
        for name, old, _ in reversed(swaps):
            _set(model, name, old)
        raise
    return model


def _load_state(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    state = model.state_dict()
    if set(state) != set(tensors):
        missing = sorted(set(state) - set(tensors))[:5]
        extra = sorted(set(tensors) - set(state))[:5]
        raise FileFormatError(
            f"the saved state does not fit the model (missing {missing}, unexpected {extra}); "
            "give the model of the architecture the file was saved from."
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(tensors[key].shape):
            raise FileFormatError(
                f"tensor {key!r} has shape {tuple(tensors[key].shape)} in the file but "
                f"{tuple(value.shape)} in the model."
            )
    with torch.no_grad():
        model.load_state_dict(dict(tensors), strict=True)


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Turn every factorized layer of ``model`` back into a dense one, in place.

    Each :class:`FactorizedLayer` is replaced by its ``to_dense()`` (``nn.Linear``,
    ``nn.Conv{1,2,3}d`` or ``nn.Embedding`` holding the rebuilt weight and the bias, on the same
    device and dtype and in the same training/eval mode), so the model computes the same
    function with plain torch layers. A model that is itself a factorized layer is returned as
    its dense counterpart. Not differentiable (weights are detached copies).

    Args:
        model: a model with factorized layers (any other layer is left as it is).

    Returns:
        ``model`` (modified in place), or the dense layer when ``model`` is a factorized layer.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(16, 8))
        >>> small, _ = factorch.nn.compress(model, layer_ranks={"0": 2})
        >>> type(merge_and_unload(small)[0]).__name__
        'Linear'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"merge_and_unload: model must be an nn.Module; got {type(model).__name__}."
        )
    modules = _factorized_modules(model)
    if "" in modules:
        return _to_dense(modules[""])
    for name, layer in modules.items():
        _set(model, name, _to_dense(layer))
    return model
