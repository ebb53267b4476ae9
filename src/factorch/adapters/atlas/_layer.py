"""``AtlasLayer``: the task-vector blocks of one layer and their learned coefficients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn

from .._config import AdapterConfig
from .._layer import CONV_LAYERS, LINEAR_LAYERS, Adapter, allocate, base_weight
from ._config import AtlasConfig

__all__ = ["AtlasLayer", "task_vector"]


def task_vector(base: nn.Module, finetuned: nn.Module) -> dict[str, torch.Tensor]:
    """``{parameter name: finetuned - base}`` for every parameter of ``base`` (detached).

    Args:
        base: the pre-trained model.
        finetuned: a fine-tuned copy of it (same parameter names and shapes).

    Returns:
        The differences, detached copies (the aTLAS ``context`` is a sequence of these).

    Raises:
        ValueError: the two models' parameters differ in names or shapes.

    Example:
        >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> sorted(task_vector(a, b))
        ['bias', 'weight']
    """
    fn = "task_vector"
    ours = dict(base.named_parameters())
    theirs = dict(finetuned.named_parameters())
    if set(ours) != set(theirs):
        raise ValueError(f"{fn}: the models' parameter names differ; give two copies of one model.")
    out = {}
    for name, p in ours.items():
        if p.shape != theirs[name].shape:
            raise ValueError(
                f"{fn}: parameter {name!r} has shapes {tuple(p.shape)} and "
                f"{tuple(theirs[name].shape)}."
            )
        out[name] = (theirs[name].detach() - p.detach()).clone()
    return out


class AtlasLayer(Adapter):
    """aTLAS on one Linear or ConvNd (see :class:`AtlasConfig`): buffers ``task_weights``
    ``(T, *W.shape)`` (and ``task_biases (T, out)``), parameter ``coefficients`` ``(T, blocks)``
    (or the one shared ``(T,)`` vector for ``granularity="task"``).

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it;
            ``context`` is this layer's ``[(task weight, task bias or None), ...]``).

    Raises:
        ValueError: a task vector whose weight or bias has the wrong shape, or
            ``granularity="task"`` without the shared coefficients.

    Example:
        >>> base = torch.nn.Sequential(torch.nn.Linear(4, 3))
        >>> tuned = torch.nn.Sequential(torch.nn.Linear(4, 3))  # stands for a fine-tuned copy
        >>> model = inject(base, AtlasConfig(target_modules=["0"]),
        ...                context=[task_vector(base, tuned)])
        >>> adapter = model[0].adapters["default"]
        >>> tuple(adapter.task_weights.shape), tuple(adapter.coefficients.shape)
        ((1, 3, 4), (1, 2))
    """

    method: ClassVar[str] = "atlas"
    config_class: ClassVar[type[AdapterConfig]] = AtlasConfig
    supported: ClassVar[tuple[type[nn.Module], ...]] = LINEAR_LAYERS + CONV_LAYERS

    task_weights: torch.Tensor
    task_biases: torch.Tensor | None

    def __init__(
        self,
        base: nn.Module,
        config: AdapterConfig,
        *,
        context: object = None,
        generator: torch.Generator | None = None,
        shared: nn.ParameterDict | None = None,
        structure: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(base, config)
        cfg = cast(AtlasConfig, config)
        w = base_weight(base)
        if structure is not None:
            n_tasks = _recorded_tasks(structure)
        else:
            n_tasks = len(cast(Sequence[Any], context))
        out = self.weight_shape[0]
        shapes = [(n_tasks, *self.weight_shape)] + ([(n_tasks, out)] if self.has_bias else [])
        blocks = 2 if self.has_bias else 1
        if cfg.granularity == "block":
            shapes.append((n_tasks, blocks))
        tensors = allocate(shapes, w, type(self).__name__, f"{n_tasks} task vectors")
        self.register_buffer("task_weights", tensors[0])
        self.register_buffer("task_biases", tensors[1] if self.has_bias else None)
        if cfg.granularity == "block":
            self.coefficients: nn.Parameter | None = nn.Parameter(tensors[-1])
            self.shared: nn.ParameterDict | None = None
        else:
            if shared is None:
                raise ValueError("AtlasLayer: granularity='task' needs the shared coefficients.")
            self.coefficients = None
            self.shared = shared
        if structure is None:
            self._load_tasks(cast(Sequence[tuple[torch.Tensor, Any]], context))

    @torch.no_grad()
    def _load_tasks(self, tasks: Sequence[tuple[torch.Tensor, Any]]) -> None:
        fn = type(self).__name__
        for t, (tw, tb) in enumerate(tasks):
            if tuple(tw.shape) != self.weight_shape:
                raise ValueError(
                    f"{fn}: task vector {t} has a weight of shape {tuple(tw.shape)}; the layer's "
                    f"is {self.weight_shape}."
                )
            self.task_weights[t].copy_(tw)
            if self.task_biases is not None and tb is not None:
                if not isinstance(tb, torch.Tensor) or tuple(tb.shape) != (self.weight_shape[0],):
                    raise ValueError(f"{fn}: task vector {t} has a bias of the wrong shape.")
                self.task_biases[t].copy_(tb)

    @classmethod
    def module_context(cls, context: object, name: str, fn: str) -> object:
        """``[(tau_t weight, tau_t bias or None)]`` for this module, checked."""
        if isinstance(context, Mapping) or not isinstance(context, Sequence) or not context:
            raise ValueError(
                f"{fn}: aTLAS needs context=[task vector, ...], each a mapping from parameter "
                f"names to tensors (task_vector(base, finetuned)); got {type(context).__name__}."
            )
        out = []
        for t, tau in enumerate(context):
            if not isinstance(tau, Mapping) or not isinstance(
                tau.get(f"{name}.weight"), torch.Tensor
            ):
                raise ValueError(f"{fn}: task vector {t} has no tensor {name + '.weight'!r}.")
            out.append((tau[f"{name}.weight"], tau.get(f"{name}.bias")))
        return out

    @classmethod
    def make_shared(
        cls,
        config: AdapterConfig,
        context: object,
        structure: Mapping[str, Any] | None,
        like: torch.Tensor,
    ) -> nn.ParameterDict | None:
        if cast(AtlasConfig, config).granularity != "task":
            return None
        n = (
            _recorded_tasks(structure)
            if structure is not None
            else len(cast(Sequence[Any], context))
        )
        zeros = torch.zeros(n, dtype=like.dtype, device=like.device)
        return nn.ParameterDict({"coefficients": nn.Parameter(zeros)})

    def _lambdas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lambda for the weight, lambda for the bias)``, each ``(T,)``."""
        if self.coefficients is not None:
            c = self.coefficients
            return c[:, 0], c[:, -1]
        c = cast(nn.ParameterDict, self.shared)["coefficients"]  # granularity "task"
        return c, c

    def delta_weight(self, weight: torch.Tensor) -> torch.Tensor:
        lam, _ = self._lambdas()
        return torch.tensordot(lam.to(weight.dtype), self.task_weights.to(weight.dtype), dims=1)

    def delta_bias(self, bias: torch.Tensor | None) -> torch.Tensor | None:
        if self.task_biases is None:
            return None
        _, lam = self._lambdas()
        return torch.tensordot(lam, self.task_biases, dims=1)

    def structure(self) -> dict[str, Any]:
        out = super().structure()
        out["n_tasks"] = int(self.task_weights.shape[0])
        return out


def _recorded_tasks(structure: Mapping[str, Any]) -> int:
    n = structure.get("n_tasks")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the recorded n_tasks must be a positive int; got {n!r}.")
    return n
