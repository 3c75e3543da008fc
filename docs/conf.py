"""Sphinx configuration of the pyxconv documentation.

Built with ``sphinx-build -W -b html docs docs/_build/html`` (and ``-b doctest``).
Everything the site shows is made by the build: the doctests print what
pyxconv computes, ``.. plot::`` figures and the tutorials (sphinx-gallery)
run at build time, and MathJax is served from the build's own static files
(copied from the ``django-static-mathjax`` package), so no page needs the
internet.
"""
import json
import os
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))  # perfplot.py, _syspath.py
# The docs document the installed pyxconv (editable or not): the source tree is
# never put ahead of it, and is taken off sys.path where it has no compiled
# kernels (python -m sphinx from the repository root puts it there).
import _syspath  # noqa: E402

sys.path[:] = _syspath.without_unbuilt_source_tree(sys.path, ROOT)

import pyxconv  # noqa: E402

project = "pyxconv"
author = "the pyxconv developers"
copyright = "2026, the pyxconv developers"
version = release = pyxconv.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/static", "**/sg_execution_times.rst",
                    "textbook/_pending/*"]
root_doc = "index"
nitpicky = False

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pyxconv {release}"
html_static_path = ["_static", "generated/static"]
html_css_files = ["pyxconv.css"]
html_js_files = ["sitecheck.js"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_show_sourcelink = False

# -- Math without a CDN ------------------------------------------------------
# MathJax 3 (SVG output, fonts built in) comes from the django-static-mathjax
# wheel on PyPI and is copied into the build's _static/ below.
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {"tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]}}


def _copy_mathjax():
    try:
        import mathjax
    except ImportError as exc:  # pragma: no cover - a docs dependency is missing
        raise RuntimeError("the docs need the 'django-static-mathjax' package "
                           "(pip install -e '.[docs]')") from exc
    src = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    dst = DOCS / "generated" / "static" / "mathjax"
    if (dst / "tex-svg.js").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "tex-svg.js", dst / "tex-svg.js")
    # extensions that the autoload of tex-svg.js may request
    shutil.copytree(src / "input" / "tex" / "extensions",
                    dst / "input" / "tex" / "extensions", dirs_exist_ok=True)


_copy_mathjax()

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Doctests ------------------------------------------------------------------
import doctest  # noqa: E402

doctest_default_flags = (doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
                         | doctest.IGNORE_EXCEPTION_DETAIL)
doctest_global_setup = """
import numpy as np
try:  # optional extras: pages guard their examples with ``:skipif: not HAS_ONNX``
    import onnx, onnxruntime
    HAS_ONNX = True
except ImportError:
    HAS_ONNX = False
"""
# doctest blocks in the API pages are the docstrings' Examples; pytest runs
# those with --doctest-modules already, but running them here too is cheap.

# -- Figures from code (.. plot::) -------------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"
plot_rcparams = {"figure.autolayout": True, "font.size": 10}

# -- Tutorials (sphinx-gallery) ----------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "tutorials"),
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/tut_",
    "ignore_pattern": r"__init__\.py|_common\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "show_signature": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "backreferences_dir": None,
    "doc_module": (),
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 10**9,
    "write_computation_times": False,
    "plot_gallery": "True",
    "reset_modules": ("matplotlib",),
}

# -- Performance page ----------------------------------------------------------
import perfplot  # noqa: E402  (docs/perfplot.py)


def _escape_star_args(app, what, name, obj, options, lines):
    """Escape a lone ``*name`` (as in ``(N, C, *spatial)``) outside inline literals.

    Shape notation like ``ndarray of shape (N, C, *spatial)`` in a numpydoc type
    line is read by docutils as the start of an emphasis that never ends, a
    warning (an error under -W). Inside ``literals`` it is fine and is left alone.
    """
    import re

    for i, line in enumerate(lines):
        if "*" not in line:
            continue
        parts = line.split("``")
        for j in range(0, len(parts), 2):  # outside double-backtick literals
            seg = parts[j]
            if "shape (" in seg:  # a shape: every * in it is a literal star
                parts[j] = re.sub(r"(?<![\\*])\*(?!\*)", r"\\*", seg)
            elif seg.count("*") == 1:
                parts[j] = re.sub(r"(?<![\\*])\*(?=[A-Za-z_])", r"\\*", seg)
        lines[i] = "``".join(parts)


API_MODULES = ["pyxconv", "pyxconv.functional", "pyxconv.teach", "pyxconv.nn", "pyxconv.optim",
               "pyxconv.data", "pyxconv.models", "pyxconv.train", "pyxconv.distributed",
               "pyxconv.onnx", "pyxconv.onnx.backend"]


def write_api_more(app=None):
    """Write ``generated/api_more_<module>.rst`` for api.rst to include.

    Each lists the public names (``__all__``) of a module that api.rst does not
    group by hand yet, so that a function added by anyone is documented at once.
    """
    import importlib
    import inspect
    import re

    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    listed, current = {}, None
    for line in api.splitlines():
        m = re.match(r"^\.\. currentmodule:: (\S+)$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^   (\w+)$", line)
        if m and current:
            listed.setdefault(current, set()).add(m.group(1))
    out = DOCS / "generated"
    out.mkdir(parents=True, exist_ok=True)
    for module in API_MODULES:
        mod = importlib.import_module(module)
        extra = []
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            if (obj is None or not callable(obj) or inspect.ismodule(obj)
                    or name in listed.get(module, set())):
                continue
            extra.append((name, "autoclass" if inspect.isclass(obj) else "autofunction"))
        text = f".. Public names of {module} not yet grouped in api.rst (generated).\n"
        if extra:
            text += "\nMore\n~~~~\n\n"
            for name, directive in extra:
                text += f".. {directive}:: {module}.{name}\n   :no-index:\n\n"
        (out / f"api_more_{module}.rst").write_text(text, encoding="utf-8")


def write_onnx_tables(app=None):
    """Write ``generated/onnx_operators.rst`` and ``generated/onnx_excluded.rst``.

    From ``pyxconv.onnx._ops.OPS``/``DESCRIPTIONS`` and
    ``pyxconv.onnx.backend.excluded_node_tests()``, the lists the code and its
    tests use, so the chapter cannot disagree with them. With onnx installed
    the node-test cases of each operator are counted too.
    """
    import re

    from pyxconv.onnx import _ops, backend

    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from onnx.backend.test.loader import load_node_model_tests

            names = [c.name for c in load_node_model_tests()]
    except ImportError:
        names = None
    excluded = backend.excluded_node_tests()

    def cases(op):
        if names is None or op not in backend.NODE_TEST_OPERATORS:
            return "yes" if op in backend.NODE_TEST_OPERATORS else "--"
        mine = [n for n in names if re.search(backend.NODE_TEST_OPERATORS[op], n)
                and not re.search(r"_expanded(_ver\d+)?$", n)]
        skipped = [n for n in mine if any(re.search(p, n) for p in excluded)]
        return f"{len(mine) - len(skipped)} of {len(mine)} run"

    rows = [("Operator", "Node tests", "How pyxconv runs it")]
    rows += [(f"``{op}``", cases(op), _ops.DESCRIPTIONS[op]) for op in sorted(_ops.OPS)]
    lines = [".. Generated by docs/conf.py from pyxconv.onnx._ops (do not edit).", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 22 14 64", ""]
    for row in rows:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    out = DOCS / "generated"
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx_operators.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = [".. Generated by docs/conf.py from pyxconv.onnx.backend (do not edit).", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 40 60", "",
             "   * - Case names matching", "     - Reason"]
    for pattern, reason in excluded.items():
        lines += [f"   * - ``{pattern}``", f"     - {reason}"]
    (out / "onnx_excluded.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")


def setup(app):
    app.connect("builder-inited", write_api_more)
    app.connect("builder-inited", write_onnx_tables)
    app.connect("builder-inited", lambda app: perfplot.generate(ROOT / "benchmarks" / "results",
                                                               DOCS / "generated"))
    # before numpydoc (priority 500) reformats the docstring
    app.connect("autodoc-process-docstring", _escape_star_args, priority=400)
