"""Every public function and class documents its arguments, returns, raises and an example.

The public names are each public subpackage's ``__all__`` (the same walk as the API reference in
``docs/conf.py``), each object checked once under the shallowest name that exports it. Which
sections a docstring needs follows from the object (see :func:`required_sections`): ``Args:``
when there are arguments, ``Returns:`` (or ``Yields:``) when a function returns something,
``Raises:`` when there is input to refuse, and an ``Example:`` with ``>>>`` lines (run by
``tests/test_doctests.py``) always.

Every public name meets this (issue 19 emptied the backlog the check started with); a new
public name must too.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re

import pytest

import factorch


def public_objects() -> dict[str, object]:
    """Each public function and class once, under the shallowest subpackage exporting it."""
    modules = []
    for info in pkgutil.walk_packages(factorch.__path__, prefix="factorch."):
        parts = info.name.split(".")[1:]
        if any(p.startswith("_") or p == "internal" or p == "__main__" for p in parts):
            continue
        if getattr(importlib.import_module(info.name), "__all__", None):
            modules.append(info.name)
    # Subpackages first, as the API reference documents them; then what only the top level has.
    modules = [*sorted(modules, key=lambda n: (n.count("."), n)), "factorch"]
    seen: dict[int, str] = {}
    found: dict[str, object] = {}
    for name in modules:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            # Data (constants, ``Literal`` aliases) and click commands (documented by their
            # ``--help`` text and the command-line guide) are not checked.
            if not (inspect.isclass(obj) or inspect.isroutine(obj)) or id(obj) in seen:
                continue
            seen[id(obj)] = f"{name}.{attr}"
            found[f"{name}.{attr}"] = obj
    return found


def _doc(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    init = obj.__dict__.get("__init__") if inspect.isclass(obj) else None
    if init is not None:  # a class may document its constructor in ``__init__``
        doc += "\n" + (inspect.getdoc(init) or "")
    return doc


def _has(doc: str, *headings: str) -> bool:
    return any(re.search(rf"^{h}:\s*$", doc, re.M) for h in headings)


def _parameters(obj: object) -> list[str]:
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []
    params = [p for n, p in signature.parameters.items() if n not in ("self", "cls")]
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return []  # only ``*args, **kwargs`` (an abstract base's inherited constructor)
    return [p.name for p in params]


def required_sections(obj: object) -> set[str]:
    """The sections ``obj``'s docstring needs (the rules are the allow-list, in one place)."""
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return set()  # an exception class: its docstring says when it is raised
    if inspect.isclass(obj) and getattr(obj, "_is_protocol", False):
        return {"Example"}  # a callback protocol: no constructor; the call is the signature
    needed = {"Example"}
    params = _parameters(obj)
    if params:
        needed.add("Args")
    if inspect.isclass(obj):
        if issubclass(obj, tuple) and hasattr(obj, "_fields"):
            return needed  # a named tuple: a record whose constructor checks nothing
        if dataclasses.is_dataclass(obj):
            # A record: its fields may be documented as ``Attributes:``; a generated
            # constructor refuses nothing unless ``__post_init__`` checks the fields.
            if hasattr(obj, "__post_init__"):
                needed.add("Raises")
        elif params:
            needed.add("Raises")
        return needed
    annotation = inspect.signature(obj).return_annotation  # type: ignore[arg-type]
    if annotation not in (None, "None"):
        needed.add("Returns")
    if params:
        needed.add("Raises")
    return needed


def missing_sections(obj: object) -> set[str]:
    doc = _doc(obj)
    present = set()
    if _has(doc, "Args", "Attributes") if dataclasses.is_dataclass(obj) else _has(doc, "Args"):
        present.add("Args")
    if _has(doc, "Returns", "Yields"):
        present.add("Returns")
    if _has(doc, "Raises"):
        present.add("Raises")
    if _has(doc, "Example", "Examples") and ">>>" in doc:
        present.add("Example")
    return required_sections(obj) - present


OBJECTS = public_objects()


def test_the_walk_finds_the_public_api() -> None:
    assert len(OBJECTS) > 300, sorted(OBJECTS)
    for name in ("factorch.decomp.cp", "factorch.tensors.CPTensor", "factorch.algebra.unfold"):
        assert name in OBJECTS


@pytest.mark.parametrize("package", sorted({n.split(".")[1] for n in OBJECTS if n.count(".") > 1}))
def test_docstrings_have_their_sections(package: str) -> None:
    problems = []
    for name, obj in OBJECTS.items():
        if name.count(".") < 2 or name.split(".")[1] != package:
            continue
        missing = missing_sections(obj)
        if missing:
            problems.append(f"{name}: add {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_top_level_functions_have_their_sections() -> None:
    top = {n: o for n, o in OBJECTS.items() if n.count(".") == 1}
    problems = [
        f"{n}: missing {sorted(missing_sections(o))}" for n, o in top.items() if missing_sections(o)
    ]
    assert not problems, "\n".join(problems)


def test_the_rules_catch_a_bare_docstring() -> None:
    def bare(x: int) -> int:
        """Double ``x``."""
        return 2 * x

    def full(x: int) -> int:
        """Double ``x``.

        Args:
            x: a number.

        Returns:
            ``2 * x``.

        Raises:
            TypeError: never, in this test.

        Example:
            >>> full(2)
            4
        """
        return 2 * x

    assert missing_sections(bare) == {"Args", "Returns", "Raises", "Example"}
    assert missing_sections(full) == set()
