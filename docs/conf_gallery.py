"""State reset between gallery examples (imported by conf.py through ``reset_modules``)."""

from __future__ import annotations

import torch


def reset_torch(gallery_conf: object, fname: str) -> None:
    """Each example starts from the same torch state: default dtype, global seed and one
    intra-op thread (the examples are small; on a shared or oversubscribed machine several
    threads spin-wait and made the build ten times slower, measured on 2 loaded cores)."""
    del gallery_conf, fname
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
