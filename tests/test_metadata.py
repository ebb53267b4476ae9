"""Release metadata agrees with the package: one version, cited and recorded in the changelog."""

from __future__ import annotations

import re
from pathlib import Path

import factorch

ROOT = Path(__file__).resolve().parents[1]


def test_citation_version_is_the_package_version() -> None:
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    found = re.search(r'^version:\s*"?([^"\n]+)"?\s*$', text, flags=re.MULTILINE)
    assert found is not None, "CITATION.cff has no version: line"
    assert found.group(1) == factorch.__version__


def test_changelog_has_a_section_for_the_package_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{factorch.__version__}]" in text


def test_pyproject_takes_the_version_from_the_package() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^dynamic = \["version"\]', text, flags=re.MULTILINE)
    assert 'version = { attr = "factorch.__version__" }' in text
    assert not re.search(r'^version = "', text, flags=re.MULTILINE), "a second version string"
