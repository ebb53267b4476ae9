"""Symmetry as tensor structure (work in progress)."""
