"""Export any adapter's weight update as a LoRA of a chosen rank (truncated SVD), for tools that
only read LoRA (PEFT, vLLM, diffusers, SGLang)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from .._checks import check_positive_int
from .._numerics import power_of_two_scale
from ..io import write_files
from ._layer import Adapter, matrix_view
from ._model import adapted_layers

__all__ = ["LoraExport", "LoraFactors", "to_lora"]


@dataclass(frozen=True)
class LoraFactors:
    """One module's exported LoRA: ``dW ~= B A`` (scale 1).

    Attributes:
        A: ``(rank, *W.shape[1:])`` (a kernel for convolutions, as PEFT's ``lora_A``).
        B: ``(out, rank)``.
        relative_error: ``||dW - B A|| / ||dW||`` (0 for a zero update), from the discarded
            singular values: the true error of the export.
        bias_delta: the adapter's bias change, which a LoRA cannot carry (None: none).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(8, 6)),
        ...                LoraConfig(target_modules=["0"], rank=2), generator=gen)
        >>> with torch.no_grad():
        ...     _ = model[0].adapters["default"].lora_B.fill_(0.1)  # a nonzero update
        >>> export = to_lora(model, rank=2)
        >>> factors = export.modules["0"]
        >>> tuple(factors.A.shape), tuple(factors.B.shape), factors.relative_error < 1e-5
        ((2, 8), (6, 2), True)
    """

    A: torch.Tensor
    B: torch.Tensor
    relative_error: float
    bias_delta: torch.Tensor | None


@dataclass(frozen=True)
class LoraExport:
    """The LoRA export of one adapter (:func:`to_lora`).

    Attributes:
        rank: the LoRA rank (every module; singular values beyond a layer's own rank are
            zero-padded).
        adapter_name: the exported adapter.
        modules: per module name, its :class:`LoraFactors`.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(8, 6)),
        ...                LoraConfig(target_modules=["0"], rank=2), generator=gen)
        >>> with torch.no_grad():
        ...     _ = model[0].adapters["default"].lora_B.fill_(0.1)  # a nonzero update
        >>> export = to_lora(model, rank=2)
        >>> export.rank, export.adapter_name, list(export.modules)
        (2, 'default', ['0'])
    """

    rank: int
    adapter_name: str
    modules: Mapping[str, LoraFactors]

    @property
    def max_relative_error(self) -> float:
        return max((f.relative_error for f in self.modules.values()), default=0.0)

    def peft_state_dict(self, *, prefix: str = "base_model.model.") -> dict[str, torch.Tensor]:
        """PEFT's ``adapter_model.safetensors`` keys: ``<prefix><module>.lora_A.weight`` and
        ``.lora_B.weight`` (``lora_B`` of a convolution as a 1x1 kernel)."""
        out = {}
        for name, f in self.modules.items():
            b = f.B.reshape(*f.B.shape, *([1] * (f.A.ndim - 2)))
            out[f"{prefix}{name}.lora_A.weight"] = f.A.contiguous()
            out[f"{prefix}{name}.lora_B.weight"] = b.contiguous()
        return out

    def peft_config(self) -> dict[str, Any]:
        """PEFT's ``adapter_config.json``: a plain LoRA with ``lora_alpha = r`` (scale 1)."""
        return {
            "peft_type": "LORA",
            "task_type": None,
            "r": self.rank,
            "lora_alpha": self.rank,
            "lora_dropout": 0.0,
            "target_modules": sorted(self.modules),
            "bias": "none",
            "fan_in_fan_out": False,
            "use_rslora": False,
            "init_lora_weights": True,
            "inference_mode": True,
        }

    def save_peft(
        self, directory: str | os.PathLike[str], *, force: bool = False, drop_biases: bool = False
    ) -> None:
        """Write PEFT's two files (loadable with ``PeftModel.from_pretrained(base, directory)``).

        Raises:
            ValueError: the adapter changes biases (a LoRA file cannot hold them) and
                ``drop_biases`` is False.
            FileExistsError: the files exist and ``force`` is False.
        """
        from safetensors.torch import save

        changed = [n for n, f in self.modules.items() if f.bias_delta is not None]
        if changed and not drop_biases:
            raise ValueError(
                f"save_peft: adapter {self.adapter_name!r} changes the biases of {changed[:3]}, "
                "which a LoRA file cannot hold; pass drop_biases=True to write the weights only."
            )
        path = Path(directory)
        tensors = {k: v.detach().to("cpu").clone() for k, v in self.peft_state_dict().items()}
        write_files(
            {
                path / "adapter_config.json": json.dumps(self.peft_config(), indent=2).encode(),
                path / "adapter_model.safetensors": save(tensors, metadata={"format": "pt"}),
            },
            force=force,
        )


def _truncate(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(A, B, relative error)`` of the best rank-``rank`` ``B A`` of a matrix (float64 SVD on
    a power-of-two-scaled copy), zero-padded to ``rank``."""
    work = delta.detach().to(torch.float64)
    scale = power_of_two_scale(work)
    u, s, vh = torch.linalg.svd(work / scale, full_matrices=False)
    k = min(rank, s.shape[0])
    total = float(s.pow(2).sum())
    err = math.sqrt(float(s[k:].pow(2).sum()) / total) if total > 0 else 0.0
    root = torch.sqrt(s[:k] * scale)
    a = torch.zeros(rank, work.shape[1], dtype=torch.float64, device=work.device)
    b = torch.zeros(work.shape[0], rank, dtype=torch.float64, device=work.device)
    a[:k] = root[:, None] * vh[:k]
    b[:, :k] = u[:, :k] * root[None, :]
    return a, b, err


@torch.no_grad()
def to_lora(model: nn.Module, *, rank: int, adapter_name: str | None = None) -> LoraExport:
    """Export an adapter's weight update ``dW`` in every layer as a LoRA ``B A`` of ``rank``.

    Works for every method through :meth:`Adapter.delta_weight` (computed on the unmerged base
    weight): the best rank-``rank`` approximation of ``dW`` (Eckart--Young), with its true
    relative error per module. A LoRA adapter's own update at ``rank >= r`` is reproduced to
    rounding. Not differentiable.

    Args:
        model: an adapted model.
        rank: the LoRA rank (numpy ints accepted).
        adapter_name: which adapter (default: the active one).

    Returns:
        A :class:`LoraExport` (``save_peft`` writes PEFT's files).

    Raises:
        ValueError: no adapters, an unknown name, ``rank < 1``.

    Example:
        >>> model = inject(torch.nn.Sequential(torch.nn.Linear(8, 8)),
        ...                TLoraConfig(target_modules=["0"], rank=2))
        >>> to_lora(model, rank=4).modules["0"].B.shape
        torch.Size([8, 4])
    """
    fn = "to_lora"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be an nn.Module; got {type(model).__name__}.")
    rank = check_positive_int(rank, fn, "rank")
    layers = adapted_layers(model)
    if adapter_name is None:
        active = {layer.active_adapter for layer in layers.values()} - {None}
        if len(active) != 1:
            raise ValueError(
                f"{fn}: give adapter_name= (active adapters: {sorted(map(str, active))})."
            )
        adapter_name = cast(str, active.pop())
    modules: dict[str, LoraFactors] = {}
    for name, layer in layers.items():
        if adapter_name not in layer.adapters:
            continue
        adapter = cast(Adapter, layer.adapters[adapter_name])
        weight = layer.original_weight()
        delta = adapter.delta_weight(weight.detach())
        a, b, err = _truncate(matrix_view(delta), rank)
        shape = (rank, *weight.shape[1:])
        db = adapter.delta_bias(layer.original_bias())
        bias_delta = None if db is None or not bool(db.any()) else db.detach().clone()
        modules[name] = LoraFactors(
            a.reshape(shape).to(weight.dtype), b.to(weight.dtype), err, bias_delta
        )
    if not modules:
        raise ValueError(f"{fn}: the model has no adapter named {adapter_name!r}.")
    return LoraExport(rank, adapter_name, modules)
