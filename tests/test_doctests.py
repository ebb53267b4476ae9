"""Every docstring example in the package runs and prints what it says it prints.

Examples may use ``torch``, ``math``, ``numpy as np``, ``factorch`` (``ft``) and the public names
of their own subpackage without importing them (see :func:`_namespace`). The modules are
discovered with :mod:`pkgutil` at test time, so a subpackage merged later is
covered without editing this file. Each module's own docstrings are collected once (objects
re-exported by a package ``__init__`` belong to the module that defines them). All examples run
in one test so that the suite stays fast; a failure lists every failing example, not only the
first one.
"""

from __future__ import annotations

import doctest
import importlib
import io
import math
import pkgutil
import warnings
from typing import Any

import numpy as np
import torch

import factorch

# Printed floats may differ in the last digits between BLAS builds; examples print rounded values
# or use ``...`` where digits are not the point.
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


# Docstrings whose examples fail on main, each with its owner; the module is not ours to edit.
# The test fails when a listed docstring passes again, so the list only shrinks.
KNOWN_FAILURES: dict[str, str] = {}


def _module_names() -> list[str]:
    names = ["factorch"]
    for info in pkgutil.walk_packages(factorch.__path__, prefix="factorch."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # importing it runs a command line
            names.append(info.name)
    return sorted(names)


def _namespace(name: str) -> dict[str, Any]:
    """What an example may use without importing it: the module's own globals, ``torch``,
    ``math``, ``numpy as np``, ``factorch`` (also as ``ft``), and every public name of the
    subpackage (and of the sub-subpackage) the module belongs to, as a user reading that
    subpackage's reference page would have imported them."""
    globs: dict[str, Any] = {}
    parts = name.split(".")
    for depth in range(2, len(parts)):
        package = importlib.import_module(".".join(parts[:depth]))
        for public in getattr(package, "__all__", ()):
            globs[public] = getattr(package, public)
    globs.update(vars(importlib.import_module(name)))
    globs.update(torch=torch, math=math, np=np, factorch=factorch, ft=factorch)
    return globs


def test_every_docstring_example_runs() -> None:
    finder = doctest.DocTestFinder(exclude_empty=True)
    failures: list[str] = []
    examples = 0
    names = _module_names()
    for name in names:
        module = importlib.import_module(name)
        for test in finder.find(module, name, globs=_namespace(name)):
            if not test.examples:
                continue
            examples += len(test.examples)
            out = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=_FLAGS, verbose=False)
            torch.manual_seed(0)  # examples use generators; this only pins any that forget to
            with warnings.catch_warnings():
                # A deprecated spelling or any other warning in an example is a failure, as in
                # every other test (pyproject: filterwarnings = error).
                warnings.simplefilter("error")
                result = runner.run(test, out=out.write, clear_globs=True)
            if test.name in KNOWN_FAILURES:
                if not result.failed:
                    failures.append(f"{test.name} passes now: remove it from KNOWN_FAILURES")
            elif result.failed:
                failures.append(f"{test.name} ({result.failed} failed):\n{out.getvalue()}")
    assert len(names) > 20, f"the module walk found too few modules: {names}"
    assert examples > 100, f"only {examples} docstring examples found; the finder is broken"
    assert not failures, f"{len(failures)} docstrings with failing examples:\n\n" + "\n".join(
        failures
    )
