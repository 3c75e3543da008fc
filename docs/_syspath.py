"""Which pyxconv the documentation imports: the installed one, not an unbuilt source tree.

``python -m sphinx ... docs out`` run from the repository root puts the root
first on ``sys.path`` (``python -m`` adds the current directory), so a plain
``import pyxconv`` would find the source tree. After ``pip install ".[docs]"``
(not editable) that tree has no compiled kernels, and the import fails. An
editable install or an in-place build (``setup.py build_ext --inplace``) puts
the compiled modules in the source tree, which is then the right package.
"""
import importlib.machinery
import os
from pathlib import Path


def has_compiled_kernels(root):
    """True if ``root/pyxconv/_kernels`` holds a compiled module for this interpreter."""
    kernels = Path(root) / "pyxconv" / "_kernels"
    return any((kernels / f"_openmp_helpers{suffix}").exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def without_unbuilt_source_tree(path, root, cwd=None):
    """``path`` (a ``sys.path`` list) less the entries that are ``root``, unless it is built.

    ``""`` stands for the current directory ``cwd``.
    """
    root = Path(root).resolve()
    if has_compiled_kernels(root):
        return list(path)
    cwd = Path(cwd or os.getcwd())
    return [entry for entry in path if Path(entry or cwd).resolve() != root]
