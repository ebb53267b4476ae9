"""Checkpoints: the weights as safetensors and the structure as JSON, from which the model is
rebuilt without pickling anything.

A checkpoint is a directory with ``model.safetensors`` (every parameter and buffer once: tensors
shared by several layers, e.g. a jointly factorized spectral weight, are stored under their first
name; complex tensors as their real views, listed in the JSON) and ``config.json``
(``{"format": "factorch-operator", "version": 1, "model": name, "config": ..., "normalized":
bool, "complex": [...], "metadata": {...}}``). Both files are written atomically, all or none,
and an existing checkpoint is only replaced with ``force=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import check_targets, write_files
from ..models import model_config, model_from_config
from ._trainer import NormalizedOperator

__all__ = ["checkpoint_files", "load_checkpoint", "save_checkpoint"]

_FORMAT = "factorch-operator"
_VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def _unique_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict with each shared tensor once (first name), complex tensors as real views."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    out: dict[str, torch.Tensor] = {}
    complex_keys = []
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen[key] = name
        t = t.detach().cpu()
        if t.is_complex():
            complex_keys.append(name)
            t = torch.view_as_real(t.resolve_conj())
        out[name] = t.contiguous()
    return out, complex_keys


def checkpoint_files(
    model: nn.Module, *, metadata: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """The checkpoint of ``model`` as ``{"model.safetensors": .., "config.json": ..}`` bytes (for
    writers that add files of their own; :func:`save_checkpoint` writes them).

    Args:
        model: an FNO, TFNO or MGTFNO, possibly in a :class:`NormalizedOperator`.
        metadata: extra JSON values recorded in ``config.json``.

    Returns:
        The two files' names and bytes.

    Raises:
        TypeError: not a factorch operator (FNO, TFNO, MGTFNO, possibly normalized).

    Example:
        >>> from factorch.models import FNO
        >>> sorted(checkpoint_files(FNO(1, 1, 4, hidden_channels=4)))
        ['config.json', 'model.safetensors']
    """
    from safetensors.torch import save

    fn = "checkpoint_files"
    normalized = isinstance(model, NormalizedOperator)
    inner = model.operator if isinstance(model, NormalizedOperator) else model
    if not isinstance(inner, nn.Module):
        raise TypeError(f"{fn}: model must be a factorch operator; got {type(inner).__name__}.")
    try:
        description = model_config(inner)
    except TypeError as err:
        raise TypeError(f"{fn}: {str(err).split(': ', 1)[1]}") from err
    tensors, complex_keys = _unique_state(model)
    config = {
        "format": _FORMAT,
        "version": _VERSION,
        **description,
        "normalized": normalized,
        "complex": complex_keys,
        "metadata": dict(metadata or {}),
    }
    text = json.dumps(config, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return {WEIGHTS: save(tensors), CONFIG: text.encode()}


def save_checkpoint(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    force: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (an FNO / TFNO / MGTFNO, possibly inside a
    :class:`~factorch.train.NormalizedOperator`) to ``directory`` (module docstring).

    Args:
        model: the model to save.
        directory: created if needed; gets ``model.safetensors`` and ``config.json``.
        force: replace an existing checkpoint (otherwise ``FileExistsError``).
        metadata: JSON values recorded with it (e.g. errors, data parameters).

    Returns:
        The directory.

    Raises:
        TypeError: not a factorch operator, or ``directory`` not a path.
        FileExistsError: the files exist and ``force`` is False (nothing is written).

    Example:
        >>> import tempfile
        >>> from factorch.models import FNO
        >>> path = save_checkpoint(FNO(1, 1, 4, hidden_channels=4), tempfile.mkdtemp())
        >>> sorted(p.name for p in path.iterdir())
        ['config.json', 'model.safetensors']
    """
    fn = "save_checkpoint"
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{fn}: directory must be a path; got {type(directory).__name__}.")
    out = Path(directory)
    try:
        blobs = checkpoint_files(model, metadata=metadata)
    except TypeError as err:
        raise TypeError(f"{fn}: {str(err).split(': ', 1)[1]}") from err
    files: dict[str | os.PathLike[str], bytes] = {out / k: v for k, v in blobs.items()}
    check_targets(files, force=force)
    write_files(files, force=force)
    return out


def load_checkpoint(
    directory: str | os.PathLike[str], *, device: torch.device | str | None = None
) -> nn.Module:
    """Rebuild the model a :func:`save_checkpoint` directory holds and load its weights.

    Args:
        directory: the checkpoint directory.
        device: where to put the model (default: the CPU).

    Returns:
        The model (a :class:`~factorch.train.NormalizedOperator` when it was saved as one), in
        eval mode, with exactly the saved parameters (shared tensors tied again).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: not a factorch checkpoint, or weights that do not fit the structure.

    Example:
        >>> import tempfile
        >>> from factorch.models import FNO
        >>> path = save_checkpoint(FNO(1, 1, 4, hidden_channels=4), tempfile.mkdtemp())
        >>> type(load_checkpoint(path)).__name__
        'FNO'
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    fn = "load_checkpoint"
    root = Path(directory)
    try:
        config = json.loads((root / CONFIG).read_text())
        blob = (root / WEIGHTS).read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{fn}: {root} is not a readable checkpoint ({err}).") from err
    if not isinstance(config, dict) or config.get("format") != _FORMAT:
        raise ValueError(f"{fn}: {root / CONFIG} is not a factorch operator checkpoint.")
    complex_keys = config.get("complex", [])
    if (
        not isinstance(config.get("model"), str)
        or not isinstance(config.get("config"), dict)
        or not isinstance(complex_keys, list)
        or not all(isinstance(k, str) for k in complex_keys)
        or not isinstance(config.get("normalized", False), bool)
    ):
        raise ValueError(
            f"{fn}: {root / CONFIG} is malformed: it needs 'model' (a name), 'config' (an "
            "object), 'complex' (a list of names) and 'normalized' (a bool); re-save the model "
            "with save_checkpoint."
        )
    try:
        tensors = load(blob)
    except SafetensorError as err:
        raise ValueError(
            f"{fn}: {root / WEIGHTS} is not a valid safetensors file ({err})."
        ) from err
    dtypes = {
        t.dtype for k, t in tensors.items() if k not in complex_keys and t.is_floating_point()
    }
    dtype = torch.float64 if torch.float64 in dtypes else torch.float32
    try:
        model = model_from_config(
            {"model": config["model"], "config": config["config"]}, dtype=dtype
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{fn}: {root / CONFIG} describes no model factorch can build ({err})."
        ) from err
    if config.get("normalized"):
        names = ("in_mean", "in_std", "out_mean", "out_std")
        if not all(n in tensors for n in names):
            raise ValueError(f"{fn}: a normalized checkpoint needs {names} in {WEIGHTS}.")
        model = NormalizedOperator(model, *(tensors[n].clone() for n in names))
    for key in complex_keys:
        if key in tensors:
            tensors[key] = torch.view_as_complex(tensors[key].contiguous())
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ValueError(f"{fn}: the weights have entries the model lacks: {unexpected[:5]}.")
    for k, t in tensors.items():
        if expected[k].shape != t.shape:
            raise ValueError(
                f"{fn}: weight {k!r} has shape {tuple(t.shape)}; the model expects "
                f"{tuple(expected[k].shape)}."
            )
    with torch.no_grad():
        model.load_state_dict(tensors, strict=False)
    # Every missing entry must be an alias of a loaded tensor (a shared weight).
    kept = set(tensors)
    state = model.state_dict()
    ptrs = {state[k].untyped_storage().data_ptr() for k in kept}
    orphans = [k for k in missing if state[k].untyped_storage().data_ptr() not in ptrs]
    if orphans:
        raise ValueError(f"{fn}: the weights lack entries the model needs: {orphans[:5]}.")
    model.eval()
    return model.to(device) if device is not None else model
