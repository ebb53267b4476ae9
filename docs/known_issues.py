"""Docstring problems the documentation build tolerates for now, each listed for its owner.

The build runs with warnings as errors. A problem in a docstring that the docs helper does not
own is listed here instead of being hidden by a blanket setting: an unresolved reference in
``UNRESOLVED_TARGETS`` is rendered as plain text, a docstring in ``LITERAL_DOCSTRINGS`` is shown
as preformatted text. Fix the docstring, then delete its entry; any new problem fails the build.

The one entry left needs a code change, not a docstring fix (see its comment).
"""

from __future__ import annotations

# Reference targets that name private or undocumented objects (file in the comment).
UNRESOLVED_TARGETS: frozenset[str] = frozenset(
    {
        # adapters/_format_adapter.py: the Literal alias of FormatAdapterConfig.implementation
        # appears in the generated signatures of the format adapters' configs; the fix is to
        # export it (with a docstring) from factorch.adapters, a code change.
        "AdapterImplementation",
    }
)

# Docstrings that are not valid reStructuredText (owner in the comment). None at present.
LITERAL_DOCSTRINGS: frozenset[str] = frozenset()
