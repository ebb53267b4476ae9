"""Small models and one case per adapter method, shared by the adapter tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import factorch.adapters as fa


def mlp(dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8)).to(dtype).eval()


def cnn(dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 4, 3, padding=1, bias=False, padding_mode="reflect"),
        )
        .to(dtype)
        .eval()
    )


def mlp_input(dtype: torch.dtype = torch.float64, n: int = 6) -> torch.Tensor:
    return torch.randn(n, 12, generator=torch.Generator().manual_seed(1), dtype=dtype)


def cnn_input(dtype: torch.dtype = torch.float64, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=dtype)


def task_vectors(model: nn.Module, n: int = 3, seed: int = 5) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        tuned = copy.deepcopy(model)
        with torch.no_grad():
            for p in tuned.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        out.append(fa.task_vector(model, tuned))
    return out


@dataclass(frozen=True)
class Case:
    """One adapter case: a base model factory, its input, a config and the inject context."""

    name: str
    model: Callable[..., nn.Module]
    input: Callable[..., torch.Tensor]
    config: fa.AdapterConfig
    context: Callable[[nn.Module], Any] | None = None

    def build(self, dtype: torch.dtype = torch.float64) -> tuple[nn.Module, nn.Module, Any]:
        """``(base copy, adapted model, input)``."""
        base = self.model(dtype)
        adapted = copy.deepcopy(base)
        ctx = self.context(adapted) if self.context is not None else None
        fa.inject(adapted, self.config, context=ctx, generator=torch.Generator().manual_seed(3))
        return base, adapted, self.input(dtype)

    def __repr__(self) -> str:
        return self.name


def _covariances(config: fa.AdapterConfig) -> Callable[[nn.Module], Any]:
    def make(model: nn.Module) -> Any:
        x = mlp_input(next(model.parameters()).dtype, n=40)
        return fa.collect_covariances(model, config, [x[:20], x[20:]])

    return make


LINEAR = "all-linear"
CONVS = ["0", "2"]
_CORDA_KPM = fa.CordaConfig(target_modules=LINEAR, rank=3, mode="kpm")
_CORDA_IPM = fa.CordaConfig(target_modules=LINEAR, rank=3, mode="ipm", use_rslora=True)

CASES = [
    Case("lora", mlp, mlp_input, fa.LoraConfig(target_modules=LINEAR, rank=3)),
    Case(
        "lora-rslora-gauss",
        mlp,
        mlp_input,
        fa.LoraConfig(target_modules=LINEAR, rank=3, alpha=2, use_rslora=True, init="gaussian"),
    ),
    Case("lora-pissa", mlp, mlp_input, fa.LoraConfig(target_modules=LINEAR, rank=3, init="pissa")),
    Case("lora-conv", cnn, cnn_input, fa.LoraConfig(target_modules=CONVS, rank=2)),
    Case("tlora", mlp, mlp_input, fa.TLoraConfig(target_modules=LINEAR, rank=2, transform_rank=2)),
    Case(
        "tlora-lora-residual",
        mlp,
        mlp_input,
        fa.TLoraConfig(target_modules=LINEAR, rank=2, transform_rank=1, residual="lora"),
    ),
    Case("tlora-conv", cnn, cnn_input, fa.TLoraConfig(target_modules=CONVS, n_factors=2)),
    Case("corda-kpm", mlp, mlp_input, _CORDA_KPM, _covariances(_CORDA_KPM)),
    Case("corda-ipm", mlp, mlp_input, _CORDA_IPM, _covariances(_CORDA_IPM)),
    Case("left-conv", cnn, cnn_input, fa.LeftConfig(target_modules=CONVS, rank=2)),
    Case(
        "left-linear",
        mlp,
        mlp_input,
        fa.LeftConfig(target_modules=LINEAR, rank=2, modulate_bias=True),
    ),
    Case("atlas-block", mlp, mlp_input, fa.AtlasConfig(target_modules=LINEAR), task_vectors),
    Case(
        "atlas-task",
        mlp,
        mlp_input,
        fa.AtlasConfig(target_modules=LINEAR, granularity="task"),
        task_vectors,
    ),
    Case("atlas-conv", cnn, cnn_input, fa.AtlasConfig(target_modules=CONVS), task_vectors),
    Case("tucker", mlp, mlp_input, fa.TuckerConfig(target_modules=LINEAR, rank=2)),
    Case("tucker-conv", cnn, cnn_input, fa.TuckerConfig(target_modules=CONVS, rank=2)),
    Case("tt", mlp, mlp_input, fa.TTConfig(target_modules=LINEAR, rank=2, n_factors=2)),
    Case("tt-conv", cnn, cnn_input, fa.TTConfig(target_modules=CONVS, rank=2)),
    # "auto" takes the factors for the Tucker convolutions and the merged kernel for the TT
    # ones at these sizes: the other path of each, forced.
    Case(
        "tucker-conv-merged",
        cnn,
        cnn_input,
        fa.TuckerConfig(target_modules=CONVS, rank=2, implementation="merged"),
    ),
    Case(
        "tt-conv-factorized",
        cnn,
        cnn_input,
        fa.TTConfig(target_modules=CONVS, rank=2, implementation="factorized"),
    ),
]


def adapter_params(model: nn.Module) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for layer in fa.adapted_layers(model).values():
        for p in layer.adapters.parameters():
            seen[id(p)] = p
    return list(seen.values())


@torch.no_grad()
def perturb(model: nn.Module, scale: float = 0.1, seed: int = 7) -> None:
    """Move every adapter parameter away from its init (so the contract is not trivial)."""
    g = torch.Generator().manual_seed(seed)
    for p in adapter_params(model):
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
