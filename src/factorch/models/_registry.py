"""Models by name, so a checkpoint's JSON config rebuilds the right class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .fno import FNO, FNOConfig
from .mg_tfno import MGTFNO, MGTFNOConfig
from .tfno import TFNO

__all__ = ["model_config", "model_from_config"]

_MODELS: dict[str, type[nn.Module]] = {FNO.name: FNO, TFNO.name: TFNO, MGTFNO.name: MGTFNO}


def model_config(model: nn.Module) -> dict[str, Any]:
    """``{"model": name, "config": JSON}`` of a factorch operator (FNO, TFNO, MGTFNO).

    Args:
        model: an FNO, TFNO or MGTFNO.

    Returns:
        The model's name and its config as JSON values.

    Raises:
        TypeError: ``model`` of another type.

    Example:
        >>> model_config(FNO(1, 1, 4, hidden_channels=4))["model"]
        'fno'
    """
    if not isinstance(model, (FNO, MGTFNO)):
        raise TypeError(
            f"model_config: model must be a factorch.models FNO, TFNO or MGTFNO; got "
            f"{type(model).__name__}."
        )
    return {"model": type(model).name, "config": model.config.to_json()}


def model_from_config(
    data: Mapping[str, Any],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """A freshly initialised model from :func:`model_config`'s output (load its state dict for
    the trained weights; :func:`factorch.train.load_checkpoint` does both).

    Args:
        data: the output of :func:`model_config`.
        device: where the parameters live.
        dtype: the parameters' real dtype.

    Returns:
        The model, freshly initialised.

    Raises:
        ValueError: not a model config, or an unknown model name.

    Example:
        >>> model = FNO(1, 1, 4, hidden_channels=4)
        >>> type(model_from_config(model_config(model))).__name__
        'FNO'
    """
    fn = "model_from_config"
    if not isinstance(data, Mapping) or "model" not in data or "config" not in data:
        raise ValueError(f"{fn}: expected a mapping with 'model' and 'config'; got {data!r:.80}.")
    cls = _MODELS.get(data["model"])
    if cls is None:
        raise ValueError(f"{fn}: model must be one of {sorted(_MODELS)}; got {data['model']!r}.")
    if cls is MGTFNO:
        return MGTFNO.from_config(
            MGTFNOConfig.from_json(data["config"]), device=device, dtype=dtype
        )
    config = FNOConfig.from_json(data["config"])
    return cls.from_config(config, device=device, dtype=dtype)  # type: ignore[attr-defined]
