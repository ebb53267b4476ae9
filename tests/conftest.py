"""Shared fixtures and markers for the whole test suite.

* ``@pytest.mark.cuda``: the test needs a CUDA device; it is skipped where none exists.
* ``generator``: a fresh ``torch.Generator`` seeded with 0 (CPU).
* ``tensorly_backend``: switch TensorLy's *global* backend inside one test and restore the
  previous backend afterwards, so anchor comparisons never leak state into other tests::

      def test_x(tensorly_backend):
          tl = tensorly_backend("numpy")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
import torch
from hypothesis import settings

# CI must not flake: the fuzz tests draw the same examples on every run (set
# FACTORCH_HYPOTHESIS_PROFILE=explore to draw fresh ones while hunting bugs locally).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)


def pytest_configure(config: pytest.Config) -> None:
    # Test tensors are small: one intra-op thread avoids OpenMP spin/launch overhead, which on a
    # shared 2-core machine made tiny ALS iterations 30x slower than with one thread.
    torch.set_num_threads(1)
    settings.load_profile(os.environ.get("FACTORCH_HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def tensorly_backend() -> Iterator[Callable[[str], ModuleType]]:
    tl = pytest.importorskip("tensorly")
    previous = tl.get_backend()

    def use(name: str) -> ModuleType:
        tl.set_backend(name)
        return tl

    try:
        yield use
    finally:
        tl.set_backend(previous)
