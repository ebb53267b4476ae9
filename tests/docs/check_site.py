"""Open the built documentation in headless Chromium and check it (``make docs-check``).

Not part of ``make test``: it needs the built site and a browser. It fails (exit status 1) rather
than skipping when something is missing, and installs Debian's ``chromium`` with apt when it is
absent and the script runs as root.

Checks:

* every internal link and resource (``href``/``src`` without a scheme, with its ``#fragment``)
  of every HTML page resolves to a file (and an element id) of the site;
* no page loads a script, stylesheet, image or font from the network (the site opens from
  ``file://``);
* the landing page, one API page and one gallery page, rendered by Chromium: a title, no error
  text, every image loaded, math typeset by the local MathJax; a screenshot of each is written to
  ``--screenshots`` (downscaled PNGs, committed under ``docs/_screenshots``).

Usage: ``python tests/docs/check_site.py docs/_build/html --screenshots docs/_screenshots``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

PAGES = {
    "landing": "index.html",
    "api": "api/generated/factorch.decomp.html",
    "gallery": "auto_examples/plot_cp_tucker_tt.html",
}
ERROR_TEXT = (
    "Traceback (most recent call last)",
    "System Message",
    "Unknown directive",
    "Math input error",
    "Exception occurred",
)
PROBE = """
<script>
window.addEventListener("load", async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const images = Array.from(document.images);
  const result = {
    title: document.title,
    images: images.length,
    broken_images: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    math_sources: document.querySelectorAll(".math").length,
    math_typeset: document.querySelectorAll("mjx-container").length,
    math_errors: document.querySelectorAll("mjx-merror").length,
    text: document.body.innerText,
  };
  const out = document.createElement("pre");
  out.id = "factorch-probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(str(values[key]))
        for key in ("href", "src"):
            if values.get(key):
                self.refs.append((tag, str(values[key])))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def check_links(site: Path) -> list[str]:
    problems: list[str] = []
    parsed = {p: _parse(p) for p in site.rglob("*.html")}
    for page, links in parsed.items():
        for tag, url in links.refs:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") or url.startswith("//"):
                if tag in ("script", "link", "img", "source", "iframe"):
                    problems.append(f"{page.relative_to(site)}: loads {url} from the network")
                continue
            if parts.scheme:  # mailto:, javascript:, data:
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(site)}: broken link {url}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{page.relative_to(site)}: missing anchor {url}")
    return problems


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("check_site: installing Debian's chromium with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
        found = shutil.which("chromium")
        if found:
            return found
    sys.exit("check_site: no chromium found; install it (Debian: apt-get install chromium).")


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--window-size=1280,900",
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def check_page(browser: str, site: Path, name: str, page: str, shots: Path) -> list[str]:
    path = site / page
    if not path.exists():
        return [f"{page}: not built"]
    html = path.read_text(encoding="utf-8")
    probe_path = path.with_name(f"_probe_{path.name}")
    probe_path.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _chromium(browser, "--dump-dom", probe_path.as_uri()).stdout
    finally:
        probe_path.unlink()
    start = dom.find('<pre id="factorch-probe">')
    if start < 0:
        return [f"{page}: the page did not finish loading in Chromium"]
    raw = dom[start + len('<pre id="factorch-probe">') : dom.find("</pre>", start)]
    result = json.loads(raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    problems = []
    if "factorch" not in result["title"]:
        problems.append(f"{page}: title {result['title']!r} does not name factorch")
    problems += [f"{page}: image not loaded: {src}" for src in result["broken_images"]]
    if result["math_sources"] and not result["math_typeset"]:
        problems.append(f"{page}: {result['math_sources']} formulas, none typeset by MathJax")
    if result["math_errors"]:
        problems.append(f"{page}: {result['math_errors']} MathJax errors")
    problems += [f"{page}: shows {text!r}" for text in ERROR_TEXT if text in result["text"]]
    if name == "gallery" and result["images"] < 2:
        problems.append(f"{page}: the gallery page shows {result['images']} images; figures?")
    shot = shots / f"{name}.png"
    _chromium(browser, f"--screenshot={shot}", path.as_uri())
    if not shot.exists():
        problems.append(f"{page}: no screenshot written")
    else:
        _shrink(shot)
    print(
        f"check_site: {page}: title {result['title']!r}, {result['images']} images, "
        f"{result['math_typeset']}/{result['math_sources']} formulas typeset"
    )
    return problems


def _shrink(path: Path) -> None:
    """Halve the screenshot and store it with a palette, so the committed PNGs stay small."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").resize((image.width // 2, image.height // 2))
        small.quantize(colors=64).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--screenshots", type=Path, default=Path("docs/_screenshots"))
    args = parser.parse_args()
    site = args.site.resolve()
    if not (site / "index.html").exists():
        sys.exit(f"check_site: {site}/index.html does not exist; run `make docs` first.")
    args.screenshots.mkdir(parents=True, exist_ok=True)
    problems = check_links(site)
    print(f"check_site: {len(list(site.rglob('*.html')))} pages, links checked")
    browser = find_chromium()
    for name, page in PAGES.items():
        problems += check_page(browser, site, name, page, args.screenshots.resolve())
    for problem in problems:
        print("check_site: FAIL:", problem)
    print(f"check_site: {'FAILED' if problems else 'passed'} ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
