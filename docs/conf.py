"""Sphinx configuration for the factorch documentation (``make docs``).

The API reference is generated at build time from the package itself: every public subpackage
(a package, or a module without a leading underscore, that is not an ``internal`` module and has
an ``__all__``) gets one page listing its ``__all__``. A subpackage merged later appears without
editing anything here. MathJax is copied from the ``django-static-mathjax`` wheel (plain MathJax 3
files, Apache-2.0) into ``_static/mathjax`` so that the built site opens from ``file://`` with no
network.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import shutil
import sys
import typing
from pathlib import Path

import factorch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pages
import known_issues

HERE = Path(__file__).resolve().parent

project = "factorch"
author = "The factorch authors"
copyright = "2026, the factorch authors"
release = factorch.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "gallery/README.rst", "**/sg_execution_times.rst"]
templates_path = ["_templates"]
html_theme = "furo"
html_title = f"factorch {release}"
html_static_path = ["_static"]
html_css_files = ["factorch.css"]
html_show_sourcelink = False
html_copy_source = False

# ---- docstrings: Google style (napoleon), type hints in the signature -------------------------
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields; autodoc documents the members themselves
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "undoc-members": True}
autosummary_generate = False  # the pages below are written by _write_api_pages()

# ---- benchmark pages, rendered from benchmarks/results/*.json (see bench_pages.py) -------------

bench_pages.write_pages()
python_use_unqualified_type_names = True

# Broken references to factorch's own names fail the build; names from torch, numpy and the
# standard library cannot be resolved without network inventories and are not checked.
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|numpy|np|nn|typing|typing_extensions|collections|contextlib|os|pathlib|io|types)"
        r"(\..*)?",
    ),
    (
        r"py:.*",
        r"(Tensor|Module|Generator|Path|PathLike|dtype|device|Callable|Sequence|Mapping"
        r"|Iterator|Iterable|Any|Literal|Self|TypeAlias|Figure|Axes|DataFrame|ndarray|T|R|M|F|_.*"
        r"|Parameter|Size|ArrayLike|Number|datetime|click\..*|matplotlib\..*|e3nn\..*"
        r"|hypothesis\..*|SearchStrategy|ShapeArg)",
    ),
    (r"py:.*", r"factorch(\.[a-z]+)*\._[a-z_]+\.[A-Z]"),  # TypeVars of private modules
    (r"py:.*", r"t\.Any"),
    # Private types in public signatures (an internal base class, a helper record): not
    # documented on purpose; a public name is resolved before this list is consulted.
    (r"py:class", r"factorch(\.[a-z]+)*\._[a-z_]+\.\w+"),
]

# ---- math without network -----------------------------------------------------------------------


def _copy_mathjax() -> str:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "docs: MathJax is missing; install the docs extra: pip install -e '.[docs]'"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    source = root / "es5" / "tex-svg.js"  # SVG output: no web fonts to load
    target = HERE / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target / "tex-svg.js")
    shutil.copyfile(root / "LICENSE", target / "LICENSE")
    return "mathjax/tex-svg.js"


mathjax_path = _copy_mathjax()

# ---- API pages, generated from the package ------------------------------------------------------


def public_modules() -> list[str]:
    """Every documented module: public subpackages and public modules that declare ``__all__``."""
    names = []
    for info in pkgutil.walk_packages(factorch.__path__, prefix="factorch."):
        parts = info.name.split(".")[1:]
        if any(p.startswith("_") or p == "internal" for p in parts):
            continue
        module = importlib.import_module(info.name)
        if getattr(module, "__all__", None):
            names.append(info.name)
    return sorted(names)


def _kind(obj: object) -> str:
    if typing.get_origin(obj) is not None:
        return "data"  # a type alias such as ``Literal["a", "b"]`` (callable, but not a function)
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj) and not isinstance(obj, type):
        return "function"
    return "data"


def _first_sentence(obj: object) -> str:
    """The docstring's first sentence, cut only outside ``literals`` so the markup stays valid."""
    doc = inspect.getdoc(obj) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    inside = False
    for i, ch in enumerate(paragraph):
        if paragraph.startswith("``", i):
            inside = not inside
        if ch == "." and not inside and (i + 1 == len(paragraph) or paragraph[i + 1] == " "):
            return paragraph[: i + 1]
    return paragraph


def _summary_table(module: object, public: list[str]) -> list[str]:
    rows = [".. list-table::", "   :widths: 30 70", ""]
    for attr in public:
        obj = getattr(module, attr)
        summary = "" if _kind(obj) == "data" or inspect.ismodule(obj) else _first_sentence(obj)
        rows += [f"   * - :py:obj:`{attr}`", f"     - {summary}"]
    return [*rows, ""]


def _data_doc(package: str, attr: str, obj: object) -> list[str]:
    """The documentation of a re-exported constant or ``Literal`` alias: the string after its
    assignment (or a ``#:`` comment) in the module of ``package`` that defines it. Such values
    carry no ``__doc__``, and autodoc reads only the module the directive names."""
    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(package)
    if not hasattr(module, "__path__"):
        return []  # a plain module: autodoc reads its own comments
    for info in pkgutil.iter_modules(module.__path__):
        if info.name == "__main__":  # importing it would run a command line
            continue
        name = f"{package}.{info.name}"
        try:
            docs = ModuleAnalyzer.for_module(name).find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in docs and getattr(importlib.import_module(name), attr, None) is obj:
            return [line for line in docs[("", attr)] if line is not None]
    return []


def _write_api_pages() -> None:
    out = HERE / "api" / "generated"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    documented: dict[int, str] = {}
    modules = public_modules()
    for name in modules:
        module = importlib.import_module(name)
        lines = [name, "=" * len(name), "", f".. automodule:: {name}", "   :no-members:", ""]
        public = [n for n in module.__all__ if not n.startswith("__")]
        lines += [f".. currentmodule:: {name}", ""]
        lines += _summary_table(module, public)
        for attr in public:
            obj = getattr(module, attr)
            if inspect.ismodule(obj):
                continue
            key = id(obj)
            if key in documented and _kind(obj) != "data":
                lines += [f".. py:currentmodule:: {name}", ""]
                lines += [f"``{attr}``: documented in :py:obj:`{documented[key]}`.", ""]
                continue
            if _kind(obj) != "data":
                documented[key] = f"{name}.{attr}"
            kind = _kind(obj)
            directive = {"class": "autoclass", "exception": "autoexception"}.get(
                kind, "autofunction" if kind == "function" else "autodata"
            )
            lines += [f".. {directive}:: {attr}"]
            if kind == "data":
                lines += ["   :no-value:", "   :annotation:", ""]
                lines += [f"   {line}".rstrip() for line in _data_doc(name, attr, obj)]
            lines.append("")
        (out / f"{name}.rst").write_text("\n".join(lines), encoding="utf-8")
    toc = ["API reference", "=============", ""]
    toc += [
        "Generated from each public subpackage's ``__all__`` at build time.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    toc += [f"   {name}" for name in modules]
    (out / "index.rst").write_text("\n".join(toc) + "\n", encoding="utf-8")


_write_api_pages()

# ---- benchmark pages, rendered from benchmarks/results/*.json (see bench_pages.py) -------------

bench_pages.write_pages()

# ---- the executed example gallery ---------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": ["gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "backreferences_dir": None,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "min_reported_time": 1,
    "show_memory": False,
    "write_computation_times": False,
    "reset_modules": ("matplotlib", "conf_gallery.reset_torch"),
}


# ---- references to factorch's own names -------------------------------------------------------
# Docstrings name objects the way a reader of that module would (``WeightFormat``,
# ``CPTensor.canonicalize``, ``factorch.nn.formats.register_format``), while each object is
# documented once, on the page of the shallowest public package that exports it. A reference
# Sphinx cannot resolve by itself is resolved here when it names exactly one documented factorch
# object (by its dotted suffix); anything else stays a broken reference and fails the build.


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def _in_class(candidates: list[str], objects: dict, context: str, target: str) -> list[str]:
    """Candidates that are members of the class ``context`` (or of one of its bases)."""
    owners = [n for n in objects if n.endswith("." + context)]
    if len(owners) != 1:
        return candidates
    module_name, _, cls_name = owners[0].rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name, None)
    for base in getattr(cls, "__mro__", ()):
        found = [n for n in candidates if n.endswith(f".{base.__name__}.{target}")]
        if len(found) == 1:
            return found
    return candidates


def _resolve_factorch_reference(app, env, node, contnode):  # type: ignore[no-untyped-def]
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    if not target:
        return None
    objects = {
        name: entry
        for name, entry in env.get_domain("py").objects.items()
        if name.startswith("factorch.") and not entry.aliased and _is_public(name)
    }
    candidates = [n for n in objects if n == target or n.endswith("." + target)]
    if not candidates and target.startswith("factorch.") and target.count(".") >= 2:
        # ``factorch.nn.formats.CPWeight`` is documented as ``factorch.nn.CPWeight``: the same
        # object re-exported by a parent package of the same subpackage.
        sub, tail = target.split(".")[1], target.split(".")[-1]
        candidates = [n for n in objects if n.split(".")[1] == sub and n.endswith("." + tail)]
    context = node.get("py:class")
    if len(candidates) > 1 and context:
        candidates = _in_class(candidates, objects, context, target)
    if len(candidates) != 1:
        if target in known_issues.UNRESOLVED_TARGETS:
            return contnode  # shown as plain text; listed for its owner to fix
        return None
    entry = objects[candidates[0]]
    return make_refnode(
        app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, candidates[0]
    )


def _is_click_command(obj: object) -> bool:
    return any(c.__module__.startswith("click") for c in type(obj).__mro__)


_SEVERAL_NAMES = re.compile(r"^(\s+)([A-Za-z_]\w*(?:, [A-Za-z_]\w*)+): (.*)$")


def _split_attribute_lists(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    """``a, b: text`` in an ``Attributes:`` section becomes one entry per name (napoleon's
    fields take a single name)."""
    section = ""
    out: list[str] = []
    for line in lines:
        if line and not line[0].isspace():
            section = line.strip()
        match = _SEVERAL_NAMES.match(line) if section == "Attributes:" else None
        if match:
            indent, names, text = match.groups()
            out += [f"{indent}{n}: {text}" for n in names.split(", ")]
        else:
            out.append(line)
    lines[:] = out


def _process_docstring(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    module = getattr(obj, "__module__", None) or ""
    if what != "module" and module and not module.startswith("factorch"):
        # A dataclass field whose default is a torch function would show torch's docstring.
        lines.clear()
    elif name in known_issues.LITERAL_DOCSTRINGS or _is_click_command(obj):
        # Not reStructuredText (click help text, or a docstring listed as needing a fix).
        text = inspect.getdoc(obj) or ""
        lines[:] = ["::", "", *("    " + line for line in text.splitlines()), ""]


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _resolve_factorch_reference)
    app.connect("autodoc-process-docstring", _split_attribute_lists, priority=400)
    app.connect("autodoc-process-docstring", _process_docstring)
