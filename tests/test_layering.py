"""The import graph of src/factorch follows the layering (issue 10.4).

Every module of the package is parsed with ``ast`` (imports inside functions included), relative
imports are resolved, and each import is mapped to the *unit* it reaches: a subpackage
(``factorch.decomp``), a top-level infrastructure module (``factorch._checks``) or the root
package. The test fails on

1. a cycle between subpackages;
2. an import against the direction of :data:`ALLOWED` (a subpackage may import only the units
   listed for it; a subpackage missing from the table fails until it is given a row);
3. an import of another subpackage's private name (``from ..decomp import _x``) or private
   module (``factorch.decomp._tt``); shared kernels live in each subpackage's ``internal``
   module under names without a leading underscore. The top-level infrastructure modules
   :data:`INFRASTRUCTURE` may be imported by any subpackage and import no subpackage.

The root package re-exports the subpackages and may import anything; a subpackage may import
only dunder metadata (``__version__``) from it.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "factorch"

INFRASTRUCTURE = frozenset({"_checks", "_numerics", "_timing"})

# What each subpackage may import (besides itself and INFRASTRUCTURE). The direction:
# algebra -> tensors -> {decomp, random} -> {completion, testing, nn} -> front ends.
_BASE = frozenset({"algebra", "tensors"})
ALLOWED: dict[str, frozenset[str]] = {
    "algebra": frozenset(),
    "symmetry": frozenset(),
    "tensors": frozenset({"algebra"}),
    "decomp": _BASE,
    "random": _BASE,
    "testing": _BASE | {"random"},
    "completion": _BASE | {"decomp"},
    "nn": _BASE | {"decomp"},
    "io": _BASE | {"decomp"},
    "datasets": _BASE | {"decomp", "io"},
    "plot": _BASE | {"decomp", "completion", "io"},
    "cli": _BASE | {"decomp", "completion", "random", "nn", "io", "datasets", "plot"},
}


# Imports allowed to break rule 3 while a refactor is in flight, listed one by one so nothing
# else slips through. Empty: keep it that way.
KNOWN_STRAGGLERS: frozenset[tuple[str, str]] = frozenset()


@dataclasses.dataclass(frozen=True)
class Import:
    """One imported module (and name, for ``from X import name``) at a line of a module."""

    module: str  # the importing module, e.g. "factorch.nn._chain"
    line: int
    target: str  # the imported module, e.g. "factorch.decomp._tt"
    name: str | None  # the imported name of ``from target import name``, if not a module

    def __str__(self) -> str:
        what = self.target + (f" import {self.name}" if self.name else "")
        return f"{self.module}:{self.line} imports {what}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (
        PACKAGE.parent / rel / "__init__.py"
    ).is_file()


def _imports(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "factorch":
                    yield Import(module, node.lineno, alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "factorch":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if _is_module(full):
                    yield Import(module, node.lineno, full, None)
                else:
                    yield Import(module, node.lineno, source, alias.name)


def _unit(dotted: str) -> str:
    """``factorch.decomp._tt`` -> ``decomp``; ``factorch._checks`` -> ``_checks``; root: ``""``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in _imports(path)]


def _cross_unit(imports: list[Import]) -> list[Import]:
    return [i for i in imports if _unit(i.module) != _unit(i.target)]


def _subpackages() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def test_the_walker_sees_the_package():
    imports = _all_imports()
    assert len(imports) > 100
    assert any(str(i).startswith("factorch.tensors._cp:") for i in imports)
    # relative imports resolve: tensors builds on algebra's internal kernels
    assert any(
        i.module.startswith("factorch.tensors") and i.target == "factorch.algebra.internal"
        for i in imports
    )


def test_every_subpackage_has_a_row():
    missing = [s for s in _subpackages() if s not in ALLOWED]
    assert not missing, (
        f"subpackages without a row in tests/test_layering.py ALLOWED: {missing}; add one "
        "stating which subpackages each may import"
    )


def test_no_cycle_between_subpackages():
    graph: dict[str, set[str]] = {s: set() for s in _subpackages()}
    for imp in _cross_unit(_all_imports()):
        src, dst = _unit(imp.module), _unit(imp.target)
        if src in graph and dst in graph:
            graph[src].add(dst)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle between subpackages: " + " -> ".join(cycle))


def test_imports_follow_the_direction():
    bad = []
    for imp in _cross_unit(_all_imports()):
        src, dst = _unit(imp.module), _unit(imp.target)
        if src in ("", "__main__") or dst in INFRASTRUCTURE:
            continue
        if src in INFRASTRUCTURE:
            bad.append(f"{imp} (infrastructure imports no subpackage)")
        elif dst == "":
            if not (imp.name or "").startswith("__"):
                bad.append(f"{imp} (only dunder metadata may come from the root package)")
        elif dst not in ALLOWED.get(src, frozenset()):
            bad.append(f"{imp} ({src} may import {sorted(ALLOWED.get(src, ()))})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_private_names_or_modules_across_subpackages():
    bad = []
    for imp in _cross_unit(_all_imports()):
        if _unit(imp.target) in INFRASTRUCTURE:
            continue
        private_module = any(p.startswith("_") for p in imp.target.split(".")[2:])
        name = imp.name or ""
        private_name = name.startswith("_") and not name.startswith("__")
        if (private_module or private_name) and (imp.module, imp.target) not in KNOWN_STRAGGLERS:
            bad.append(str(imp))
    assert not bad, (
        "imports of another subpackage's private module or name (use its internal module):\n"
        + "\n".join(bad)
    )


def test_the_table_itself_is_acyclic():
    for a, b in itertools.permutations(ALLOWED, 2):
        assert not (b in ALLOWED[a] and a in ALLOWED[b]), (a, b)
