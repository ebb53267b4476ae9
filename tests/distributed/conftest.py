"""A one-rank gloo process group inside the test process, for the distributed entry points'
argument checks and single-rank runs (multi-rank runs launch their own processes)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch.distributed as dist


@pytest.fixture(scope="module")
def one_rank() -> Iterator[None]:
    """``torch.distributed`` initialized with one rank (gloo, in-memory store), torn down
    after the module."""
    if dist.is_initialized():
        yield
        return
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
