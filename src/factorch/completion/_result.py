"""Result and progress types of the completion algorithms.

Every completion method returns a frozen :class:`CompletionResult` whatever its options: the model
kept (the best one on the validation entries when a validation set is given, else the last), the
training and validation RMSE after every epoch, and how the run ended. Iterative methods call
``callback(state)`` with a :class:`CompletionState` after each epoch; returning ``True`` stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, TypeVar, cast

import torch

if TYPE_CHECKING:
    from torch import nn

    from ..tensors import FactorizedTensor

__all__ = ["CompletionCallback", "CompletionResult", "CompletionState", "Link"]

M = TypeVar("M")

Link = Literal["identity", "exp", "sigmoid"]


@dataclass(frozen=True)
class CompletionState(Generic[M]):
    """What a callback sees after each epoch.

    Attributes:
        epoch: 1-based index of the epoch (ALS sweep, optimizer round) just finished.
        train_rmse: RMSE on the training entries (neural models: mean over the epoch's
            mini-batches, as the model changed during the epoch).
        val_rmse: RMSE on the validation entries, NaN without a validation set.
        model: the current model (a factorized tensor or an ``nn.Module``; do not keep it
            without copying: it changes in place or is rebuilt next epoch).
        stage: which run of a multi-stage method this is (``"fit"``; DAIN: ``"base"`` or
            ``"augmented"``).

    Example:
        >>> from factorch.completion import cp_als
        >>> x = factorch.random.random_cp((5, 6, 7), 2, generator=torch.Generator().manual_seed(0))
        >>> mask = torch.rand(5, 6, 7, generator=torch.Generator().manual_seed(1)) < 0.5
        >>> seen = []
        >>> _ = cp_als(x.to_dense(), 2, mask=mask, max_iter=3, tol=0.0,
        ...            callback=lambda state: seen.append((state.epoch, state.stage)))
        >>> seen
        [(1, 'fit'), (2, 'fit'), (3, 'fit')]
    """

    epoch: int
    train_rmse: float
    val_rmse: float
    model: M
    stage: str = "fit"


CompletionCallback = Callable[[CompletionState], "bool | None"]


@dataclass(frozen=True)
class CompletionResult(Generic[M]):
    """The outcome of a completion method.

    Attributes:
        model: the fitted model: a ``CPTensor``, ``TuckerTensor``, ``TTTensor`` (entries via
            ``.entries``) or an ``nn.Module`` mapping ``(B, N)`` indices to ``(B,)`` values. With a
            validation set it is the model of ``best_epoch``.
        train_rmse: RMSE on the training entries after each epoch.
        val_rmse: RMSE on the validation entries after each epoch (empty without validation).
        best_epoch: 1-based epoch whose model is returned.
        epochs: epochs run.
        converged: True when the training objective changed by less than ``tol``.
        stopped_early: True when the validation RMSE did not improve for ``patience`` epochs.
        time_s: wall-clock seconds.
        link: map from model values to predictions (``"exp"`` for log-link GCP losses,
            ``"sigmoid"`` for the logit loss); :meth:`predict` applies it.
        extras: method-specific details (``"empty_slices"``, ``"loss"``, ...).

    Example:
        >>> from factorch.completion import cp_als
        >>> x = factorch.random.random_cp((5, 6, 7), 2, generator=torch.Generator().manual_seed(0))
        >>> mask = torch.rand(5, 6, 7, generator=torch.Generator().manual_seed(1)) < 0.5
        >>> result = cp_als(x.to_dense(), 2, mask=mask, max_iter=3, tol=0.0)
        >>> result.epochs, len(result.train_rmse), result.val_rmse, type(result.model).__name__
        (3, 3, (), 'CPTensor')
    """

    model: M
    train_rmse: tuple[float, ...]
    val_rmse: tuple[float, ...]
    best_epoch: int
    epochs: int
    converged: bool
    stopped_early: bool
    time_s: float
    link: Link = "identity"
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def best_val_rmse(self) -> float:
        """Validation RMSE of the returned model (NaN without validation)."""
        return self.val_rmse[self.best_epoch - 1] if self.val_rmse else float("nan")

    def predict(self, indices: torch.Tensor, *, batch_size: int = 65536) -> torch.Tensor:
        """Predictions at integer ``(B, N)`` indices (link applied). Not differentiable."""
        from ._metrics import predict

        model = cast("FactorizedTensor | nn.Module", self.model)  # every fit's model is one
        return predict(model, indices, batch_size=batch_size, link=self.link)
