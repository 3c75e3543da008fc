"""Check the built site: links, images, math, and no CDN.

Usage: ``python docs/check_site.py [docs/_build/html] [--screenshots DIR] [--no-browser]``

1. Every page: each local ``href``/``src`` points at a file that exists and,
   for ``#fragment`` links, at an element with that id; no script, style
   sheet or font is loaded from another host (MathJax is served locally).
2. Key pages in headless Chromium (Debian's ``chromium``): each page is
   opened with ``?sitecheck``, which makes ``_static/sitecheck.js`` report,
   after MathJax has finished, the images that did not load, the math that
   was not rendered or rendered as an error, and in-page links to missing
   anchors. A screenshot of each key page is saved.

Exits 1 if anything is wrong, printing what.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

KEY_PAGES = {
    # page: minimum number of math elements it must render
    "index.html": 0,
    "textbook/conv2d.html": 5,
    "textbook/output_size.html": 5,
    "textbook/backprop.html": 5,
    "textbook/pooling.html": 2,
    "textbook/architectures.html": 1,
    "textbook/transposed_conv.html": 2,
    "textbook/training.html": 2,
    "worked_examples.html": 0,
    "auto_tutorials/index.html": 0,
    "auto_tutorials/tut_07_training_lenet.html": 0,
    "auto_tutorials/tut_03_explain_one_cell.html": 0,
    "api.html": 0,
    "generated/pyxconv.teach.conv_output_size.html": 1,
    "performance.html": 0,
}


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.refs, self.external = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            value = attrs.get(key)
            if not value:
                continue
            parts = urlsplit(value)
            if parts.scheme in ("http", "https") or value.startswith("//"):
                if tag in ("script", "img") or (tag == "link" and attrs.get("rel") in
                                                 ("stylesheet", "preload")):
                    self.external.append(value)
                continue
            if parts.scheme in ("mailto", "data", "javascript"):
                continue
            self.refs.append((tag, value))


def check_links(site):
    problems, pages = [], {}
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.relative_to(site).parts or "_sources" in page.relative_to(site).parts:
            continue  # theme templates and copied sources, not pages
        collector = _Collector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = collector
    for page, collector in pages.items():
        rel = page.relative_to(site.resolve())
        for url in collector.external:
            problems.append(f"{rel}: loads {url} from another host")
        for tag, value in collector.refs:
            parts = urlsplit(value)
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if parts.path.endswith("/"):
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{rel}: <{tag}> {value} -> missing file")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{rel}: <{tag}> {value} -> missing anchor")
    return problems, len(pages)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def check_in_browser(site, chromium, shots):
    problems = []
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--disable-dev-shm-usage", "--no-first-run", "--allow-file-access-from-files",
            "--virtual-time-budget=20000"]
    for page, min_math in KEY_PAGES.items():
        path = site / page
        if not path.exists():
            problems.append(f"{page}: not built")
            continue
        url = path.resolve().as_uri() + "?sitecheck"
        run = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=120)
        match = re.search(r'<pre id="sitecheck-result"[^>]*>(.*?)</pre>', run.stdout, re.S)
        if not match:
            problems.append(f"{page}: the page's self-check did not report "
                            f"(exit {run.returncode}: {run.stderr.strip()[-300:]})")
            continue
        report = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&")
                            .replace("&lt;", "<").replace("&gt;", ">"))
        print(f"  {page}: {report['images']} images, {report['math']} math elements")
        if report["brokenImages"]:
            problems.append(f"{page}: images that did not load: {report['brokenImages']}")
        if report["unrenderedMath"]:
            problems.append(f"{page}: math not rendered: {report['unrenderedMath'][:5]}")
        if report["mathErrors"]:
            problems.append(f"{page}: {report['mathErrors']} MathJax errors")
        if report["brokenAnchors"]:
            problems.append(f"{page}: links to missing anchors: {report['brokenAnchors']}")
        if report["math"] < min_math:
            problems.append(f"{page}: {report['math']} math elements, expected >= {min_math}")
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            png = shots / (page.replace("/", "__").replace(".html", ".png"))
            subprocess.run(base + ["--window-size=1280,1800", f"--screenshot={png}",
                                   path.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
            if not png.exists() or png.stat().st_size < 5000:
                problems.append(f"{page}: no screenshot")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default=str(Path(__file__).parent / "_build" / "html"))
    parser.add_argument("--screenshots", default=None, help="directory for PNG screenshots")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--require-browser", action="store_true",
                        help="fail if no chromium is installed")
    args = parser.parse_args(argv)
    site = Path(args.site)
    if not (site / "index.html").exists():
        print(f"check_site: no built site at {site}", file=sys.stderr)
        return 1
    problems, n_pages = check_links(site)
    print(f"check_site: {n_pages} pages, links and images checked")
    if not args.no_browser:
        chromium = find_chromium()
        if chromium is None:
            if args.require_browser:
                problems.append("no chromium found")
            else:
                print("check_site: no chromium; browser check skipped")
        else:
            shots = Path(args.screenshots) if args.screenshots else None
            problems += check_in_browser(site, chromium, shots)
    for p in problems:
        print("  PROBLEM:", p)
    print(f"check_site: {'FAILED' if problems else 'passed'} ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
