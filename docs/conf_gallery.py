"""State reset between gallery examples (imported by conf.py through ``reset_modules``)."""

from __future__ import annotations

import torch


def reset_torch(gallery_conf: object, fname: str) -> None:
    """Each example starts from the same torch state: default dtype and global seed."""
    del gallery_conf, fname
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
