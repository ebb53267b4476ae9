"""The ``Example:`` blocks in the docstrings of factorch.adapters, of the model-file functions of
factorch.nn and of factorch.io's model directory run and print what they show (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

import factorch
import factorch.adapters as fa

MODULES = [
    "factorch.adapters",
    "factorch.adapters._export",
    "factorch.adapters._model",
    "factorch.adapters._registry",
    "factorch.adapters._serialization",
    "factorch.adapters.atlas._config",
    "factorch.adapters.atlas._layer",
    "factorch.adapters.corda._config",
    "factorch.adapters.corda._covariance",
    "factorch.adapters.left._config",
    "factorch.adapters.left._loss",
    "factorch.adapters.lora._config",
    "factorch.adapters.tlora._config",
    "factorch.adapters.tlora._layer",
    "factorch.adapters.tt._config",
    "factorch.adapters.tucker._config",
    "factorch.io._models",
    "factorch.nn._pretrained",
]


@pytest.mark.parametrize("name", MODULES)
def test_adapters_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    names = {n: getattr(fa, n) for n in fa.__all__} if name.startswith("factorch.adapters") else {}
    globs = {**names, "torch": torch, "factorch": factorch}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
