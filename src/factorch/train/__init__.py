"""Training neural operators: relative losses, a small trainer, checkpoints.

* Losses: :func:`relative_lp`, :func:`relative_h1` (spectral derivatives on periodic grids, finite
  differences otherwise) and their modules :class:`LpLoss`, :class:`H1Loss`.
* :func:`train_operator`: AdamW with a schedule, per-channel standardisation
  (:class:`NormalizedOperator`), evaluation on test sets at any resolution, optional progress bar;
  :func:`evaluate` for the relative L2/H1 errors of a model on data.
* :func:`save_checkpoint` / :func:`load_checkpoint`: safetensors weights plus a JSON config from
  which the model is rebuilt.
"""

from ._checkpoint import checkpoint_files as checkpoint_files
from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import save_checkpoint as save_checkpoint
from ._losses import H1Loss as H1Loss
from ._losses import LpLoss as LpLoss
from ._losses import gradients as gradients
from ._losses import relative_h1 as relative_h1
from ._losses import relative_lp as relative_lp
from ._trainer import EpochRecord as EpochRecord
from ._trainer import NormalizedOperator as NormalizedOperator
from ._trainer import TrainResult as TrainResult
from ._trainer import evaluate as evaluate
from ._trainer import train_operator as train_operator

__all__ = [
    "EpochRecord",
    "H1Loss",
    "LpLoss",
    "NormalizedOperator",
    "TrainResult",
    "checkpoint_files",
    "evaluate",
    "gradients",
    "load_checkpoint",
    "relative_h1",
    "relative_lp",
    "save_checkpoint",
    "train_operator",
]
