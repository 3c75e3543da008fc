"""The documentation: worked-example coverage, the textbook's doctests, the tutorials.

The full Sphinx build (html with -W, doctest builder, headless-browser check)
runs in ``.ci/steps/docs.sh``; these tests are the fast part of it that runs
with the test suite.
"""
import doctest
import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = ROOT / "tutorials"
SHARED = Path(__file__).parents[1].parent / "shared"
CATALOG = SHARED / "worked-examples.md"

CHAPTERS = sorted((DOCS / "textbook").glob("*.rst"))
TUTORIAL_FILES = sorted(TUTORIALS.glob("tut_*.py"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _textbook_sources():
    """Chapters and tutorials: where a worked example must be computed.

    The index page ``worked_examples.rst`` only lists the IDs, so it does not count.
    """
    return {p: p.read_text(encoding="utf-8") for p in CHAPTERS + TUTORIAL_FILES}


def _toctree_chapters():
    index = (DOCS / "textbook" / "index.rst").read_text(encoding="utf-8")
    body = index.split(".. toctree::", 1)[1]
    return [line.strip() for line in body.splitlines()
            if line.strip() and not line.strip().startswith(":") and line.startswith("   ")]


@pytest.mark.skipif(not CATALOG.exists(), reason="../shared/worked-examples.md is absent")
def test_every_worked_example_of_the_catalog_is_in_the_textbook():
    ids = sorted(set(re.findall(r"\bWE-\d\d\b", CATALOG.read_text(encoding="utf-8"))))
    assert len(ids) == 33
    text = "\n".join(_textbook_sources().values())
    missing = [we for we in ids if we not in text]
    assert not missing, f"worked examples not in the textbook or tutorials: {missing}"


def test_every_worked_example_has_a_labelled_section_in_a_chapter_of_the_toctree():
    chapters = _toctree_chapters()
    text = "\n".join((DOCS / "textbook" / f"{c}.rst").read_text(encoding="utf-8")
                     for c in chapters)
    labels = set(re.findall(r"^\.\. _we-(\d\d):$", text, flags=re.M))
    headings = set(re.findall(r"^WE-(\d\d)\b.*$", text, flags=re.M))
    expected = {f"{i:02d}" for i in range(1, 34)}
    assert expected - labels == set(), f"no '.. _we-NN:' label: {sorted(expected - labels)}"
    assert expected - headings == set(), f"no 'WE-NN' heading: {sorted(expected - headings)}"


def test_every_chapter_is_in_the_toctree_or_reported_pending():
    in_toctree = set(_toctree_chapters())
    on_disk = {p.stem for p in CHAPTERS if p.stem != "index"}
    assert on_disk == in_toctree, f"chapters outside the toctree: {sorted(on_disk - in_toctree)}"


def test_errata_boxes_exist_for_the_five_wrong_slides():
    text = "\n".join(p.read_text(encoding="utf-8") for p in CHAPTERS)
    for we in ("WE-10", "WE-16", "WE-20", "WE-24", "WE-25"):
        assert re.search(rf"\.\. admonition:: Erratum \({we}\)", text), we


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_textbook_doctests(chapter, monkeypatch):
    """Every >>> example of the chapter, run as the Sphinx doctest builder runs it."""
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    result = doctest.testfile(str(chapter), module_relative=False, optionflags=FLAGS,
                              verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
    if chapter.stem != "index":
        assert result.attempted > 0


@pytest.mark.parametrize("tutorial", TUTORIAL_FILES, ids=lambda p: p.stem)
def test_tutorial_runs(tutorial, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYXCONV_TUTORIAL_QUICK", "1")  # tutorials that train run shortened
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tutorial.parent)
    try:
        runpy.run_path(str(tutorial), run_name="__main__")
    finally:
        plt.close("all")
    assert capsys.readouterr().out.strip(), "a tutorial prints what it computes"


def test_performance_page_generation_with_and_without_results(tmp_path):
    sys.path.insert(0, str(DOCS))
    try:
        import perfplot
    finally:
        sys.path.remove(str(DOCS))
    pytest.importorskip("matplotlib")
    empty = tmp_path / "empty"
    empty.mkdir()
    rst = perfplot.generate(empty, tmp_path / "out1")
    assert "No benchmark results" in rst.read_text()
    results = tmp_path / "results"
    results.mkdir()
    (results / "conv.json").write_text(
        '[{"op": "conv2d", "case": "a", "threads": 1, "pyxconv_ms": 1.5, "torch_ms": 1.0,'
        ' "ratio": 1.5}, {"op": "conv2d", "case": "a", "threads": 2, "pyxconv_ms": 0.9,'
        ' "torch_ms": 0.6, "ratio": 1.5}]')
    (results / "broken.json").write_text("{not json")
    rst = perfplot.generate(results, tmp_path / "out2")
    text = rst.read_text()
    assert "conv2d" in text and "perf_conv2d.png" in text
    assert (tmp_path / "out2" / "perf_conv2d.png").stat().st_size > 1000


def test_api_reference_lists_only_names_that_exist():
    """api.rst groups names by hand; a stale one would break the -W build.

    Public names that api.rst does not list yet are documented anyway: the build
    writes them to ``generated/api_more_<module>.rst`` (docs/conf.py).
    """
    import importlib

    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    stale, current = [], None
    for line in api.splitlines():
        m = re.match(r"^\.\. currentmodule:: (\S+)$", line)
        if m:
            current = importlib.import_module(m.group(1))
            continue
        m = re.match(r"^   (\w+)$", line)
        if m and current is not None and not hasattr(current, m.group(1)):
            stale.append(f"{current.__name__}.{m.group(1)}")
    assert not stale, f"docs/api.rst lists names that do not exist: {stale}"
    for module in ("pyxconv", "pyxconv.functional", "pyxconv.teach", "pyxconv.nn",
                   "pyxconv.optim", "pyxconv.data", "pyxconv.models", "pyxconv.train"):
        assert f".. include:: generated/api_more_{module}.rst" in api, module


@pytest.mark.parametrize("module", ["pyxconv.functional", "pyxconv.teach"])
def test_every_public_function_has_a_doctest_example(module):
    """numpydoc docstrings with an Examples section that runs (pytest --doctest-modules)."""
    import importlib
    import inspect

    mod = importlib.import_module(module)
    missing = [name for name in mod.__all__
               if inspect.isfunction(getattr(mod, name))
               and ("Examples" not in (getattr(mod, name).__doc__ or "")
                    or ">>>" not in (getattr(mod, name).__doc__ or ""))]
    assert not missing, f"{module}: no Examples doctest in {missing}"


def test_every_worked_example_section_computes_its_numbers_in_a_doctest():
    """Between a '.. _we-NN:' label and the next section label there is a >>> example."""
    empty = []
    for chapter in CHAPTERS:
        text = chapter.read_text(encoding="utf-8")
        pieces = re.split(r"^\.\. _([\w-]+):$", text, flags=re.M)
        for label, body in zip(pieces[1::2], pieces[2::2]):
            if re.fullmatch(r"we-\d\d", label) and ">>>" not in body:
                empty.append(f"{chapter.name}: {label}")
    assert not empty, f"worked examples without a doctest: {empty}"
