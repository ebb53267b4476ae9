"""``CordaLayer``: LoRA factors from the covariance-oriented SVD of ``W C``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ..._checks import as_tensor
from ..._numerics import HALF_DTYPES, power_of_two_scale
from .._config import AdapterConfig
from .._layer import LINEAR_LAYERS
from ..lora import LoraLayer, LowRankConfig
from ._config import CordaConfig

__all__ = ["CordaLayer", "damped_covariance", "oriented_svd"]

_MAX_DOUBLINGS = 64


def damped_covariance(
    covariance: torch.Tensor, damping: float, fn: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C', C'^-1)`` with ``C' = C + lambda mean(diag C) I``, ``lambda`` doubled from
    ``damping`` until ``||C' C'^-1 - I||_F < 0.05`` (the rule of PEFT's CorDA)."""
    n = covariance.shape[0]
    eye = torch.eye(n, dtype=covariance.dtype, device=covariance.device)
    level = float(torch.diagonal(covariance).mean())
    if not level > 0:
        raise ValueError(
            f"{fn}: the context covariance is zero (no activation reached this layer); collect "
            "it on batches that run through the module."
        )
    lam = damping
    for _ in range(_MAX_DOUBLINGS):
        fixed = covariance + (lam * level) * eye
        inv = torch.linalg.inv(fixed)
        if float(torch.linalg.matrix_norm(fixed @ inv - eye)) < 0.05:
            return fixed, inv
        lam *= 2
    raise ValueError(f"{fn}: the context covariance cannot be inverted stably.")


def oriented_svd(
    weight: torch.Tensor, covariance: torch.Tensor, damping: float, fn: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U, S, V_hat^T)`` with ``W = U diag(S) V_hat^T``, from ``W C' = U S V^T`` and
    ``V_hat^T = V^T C'^-1``; singular values descending. Autocast off, float32 or float64,
    ``W`` scaled by a power of two (exact).

    Args:
        weight: ``W``, ``(out, in)``.
        covariance: ``C``, the ``(in, in)`` covariance of the layer's inputs.
        damping: the initial ``lambda`` of ``C' = C + lambda mean(diag C) I`` (doubled until
            ``C'`` inverts stably).
        fn: the caller's name, which starts the error messages.

    Returns:
        ``(U, S, V_hat^T)`` in the working dtype.

    Raises:
        ValueError: a weight with NaN or Inf entries, a zero covariance, or one that no
            damping makes stably invertible.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> w = torch.randn(4, 3, generator=gen, dtype=torch.float64)
        >>> x = torch.randn(10, 3, generator=gen, dtype=torch.float64)
        >>> u, s, v_hat_t = oriented_svd(w, x.T @ x / 10, 0.01, "demo")
        >>> torch.allclose(u @ torch.diag(s) @ v_hat_t, w)
        True
    """
    work = torch.float32 if weight.dtype in HALF_DTYPES else weight.dtype
    w = weight.detach().to(work)
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{fn}: the base weight has NaN or Inf entries; CorDA needs a finite one.")
    c = covariance.detach().to(device=w.device, dtype=work)
    scale = power_of_two_scale(w)
    with torch.autocast(w.device.type, enabled=False):
        fixed, inv = damped_covariance(c, damping, fn)
        u, s, vh = torch.linalg.svd((w / scale) @ fixed, full_matrices=False)
        v_hat_t = vh @ inv
    return u, s * scale, v_hat_t


class CordaLayer(LoraLayer):
    """CorDA on one ``nn.Linear`` (see :class:`CordaConfig`); a :class:`LoraLayer` whose
    ``A, B`` (and frozen ``A_0, B_0``) come from :func:`oriented_svd`.

    Args:
        base, config, context, generator, shared, structure: as
            :class:`~factorch.adapters.Adapter` (:func:`~factorch.adapters.inject` builds it;
            ``context`` is this layer's ``(in, in)`` input covariance).

    Raises:
        ValueError: a covariance of the wrong shape, with NaN or Inf entries, zero, or not
            stably invertible; a base weight with NaN or Inf entries; a rank above
            ``min(out, in)``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8))
        >>> config = CordaConfig(target_modules=["0"], rank=2)
        >>> gen = torch.Generator().manual_seed(0)
        >>> covariances = collect_covariances(model, config, [torch.randn(16, 8, generator=gen)])
        >>> x = torch.ones(2, 8)
        >>> y = model(x)
        >>> _ = inject(model, config, context=covariances)
        >>> type(model[0].adapters["default"]).__name__, torch.allclose(model(x), y, atol=1e-5)
        ('CordaLayer', True)
    """

    method: ClassVar[str] = "corda"
    config_class: ClassVar[type[AdapterConfig]] = CordaConfig
    supported: ClassVar[tuple[type[nn.Module], ...]] = LINEAR_LAYERS

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
        super().__init__(
            base, config, context=context, generator=generator, shared=shared, structure=structure
        )

    @classmethod
    def anchored(cls, config: LowRankConfig) -> bool:
        return True

    @classmethod
    def module_context(cls, context: object, name: str, fn: str) -> object:
        if not isinstance(context, Mapping):
            raise ValueError(
                f"{fn}: CorDA needs context={{module name: input covariance}} (from "
                f"collect_covariances); got {type(context).__name__}."
            )
        if name not in context:
            raise ValueError(
                f"{fn}: no covariance for module {name!r} in context; collect_covariances with "
                "the same config."
            )
        return context[name]

    def initialise(
        self, weight: torch.Tensor, generator: torch.Generator | None, context: object
    ) -> None:
        fn = "CordaLayer"
        cfg = cast(CordaConfig, self.config)
        n = weight.shape[1]
        if context is not None and not isinstance(context, torch.Tensor):
            context = as_tensor(context, fn, "covariance")  # numpy arrays, nested lists
        if not isinstance(context, torch.Tensor) or tuple(context.shape) != (n, n):
            got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context)
            raise ValueError(f"{fn}: the covariance must be a ({n}, {n}) tensor; got {got}.")
        if not bool(torch.isfinite(context).all()):
            raise ValueError(f"{fn}: the covariance has NaN or Inf entries.")
        r = cfg.rank
        if r > min(weight.shape):
            raise ValueError(
                f"{fn}: rank {r} exceeds min(out, in) = {min(weight.shape)}; use a smaller rank."
            )
        u, s, v_hat_t = oriented_svd(weight, context, cfg.damping, fn)
        sl = slice(0, r) if cfg.mode == "ipm" else slice(s.shape[0] - r, s.shape[0])
        self.set_factors(u[:, sl], s[sl], v_hat_t[sl])
