"""The compiled extension is the one built from these sources, with OpenMP, and thread settings work."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import pyxconv
from pyxconv._kernels import _openmp_helpers

KERNEL_DIR = Path(pyxconv.__file__).parent / "_kernels"


def _source_hash():
    # The same recipe as setup.py's kernel_source_hash().
    digest = hashlib.sha256()
    sources = (sorted(KERNEL_DIR.glob("*.p[yx][xd]")) + sorted(KERNEL_DIR.glob("*.pxi.in"))
               + sorted(KERNEL_DIR.glob("*.h"))
               + [p for p in sorted(KERNEL_DIR.glob("*.pxi")) if p.name != "_build_info.pxi"])
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_imported_extension_was_built_from_current_sources():
    assert _openmp_helpers.source_hash() == _source_hash(), (
        "the imported kernels are a stale build; rebuild with pip install -e .")


def test_imported_extension_lives_in_the_imported_package():
    assert Path(_openmp_helpers.__file__).parent == KERNEL_DIR


def _compiler_has_openmp():
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "p.c"
        src.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads()<1;}\n")
        result = subprocess.run([cc, "-fopenmp", str(src), "-o", str(Path(tmp) / "p")],
                                capture_output=True)
        return result.returncode == 0


def test_openmp_is_compiled_in_where_the_compiler_supports_it():
    if not _compiler_has_openmp():
        pytest.skip("this compiler has no OpenMP")
    assert _openmp_helpers.openmp_enabled()


@pytest.mark.skipif(not _openmp_helpers.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("n", [1, 2, 3])
def test_num_threads_context_sets_the_parallel_region_size(n):
    with pyxconv.num_threads(n):
        assert pyxconv.get_num_threads() == n
        assert _openmp_helpers.threads_in_parallel_region(pyxconv.get_num_threads()) == n


@pytest.mark.skipif(not _openmp_helpers.openmp_enabled(), reason="built without OpenMP")
def test_set_num_threads_takes_effect_and_resets():
    default = pyxconv.get_num_threads()
    try:
        pyxconv.set_num_threads(1)
        assert pyxconv.get_num_threads() == 1
        pyxconv.set_num_threads(3)
        assert pyxconv.get_num_threads() == 3
    finally:
        pyxconv.set_num_threads(None)
    assert pyxconv.get_num_threads() == default


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                        ("2", TypeError)])
def test_thread_count_is_validated(bad, error):
    with pytest.raises(error, match="n_threads"):
        pyxconv.set_num_threads(bad)
    with pytest.raises(error, match="n_threads"):
        with pyxconv.num_threads(bad):
            pass


@pytest.mark.skipif(not _openmp_helpers.openmp_enabled(), reason="built without OpenMP")
def test_omp_num_threads_is_honoured():
    code = "import pyxconv; print(pyxconv.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "1"


@pytest.mark.skipif(not _openmp_helpers.openmp_enabled(), reason="built without OpenMP")
def test_threadpoolctl_sees_and_limits_the_openmp_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    apis = {pool["user_api"] for pool in threadpoolctl.threadpool_info()}
    assert "openmp" in apis
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert pyxconv.get_num_threads() == 1
        assert _openmp_helpers.threads_in_parallel_region(pyxconv.get_num_threads()) == 1


def test_show_config_reports_build_and_threads(capsys):
    pyxconv.show_config()
    text = capsys.readouterr().out
    assert pyxconv.__version__ in text
    assert f"openmp: {_openmp_helpers.openmp_enabled()}" in text
    assert f"numpy: {np.__version__}" in text
    assert "blas" in text.lower()


def test_workspace_limit_is_validated_and_restorable():
    try:
        pyxconv.set_workspace_limit(4096)
        assert pyxconv.get_workspace_limit() == 4096
        with pytest.raises(ValueError, match="1024"):
            pyxconv.set_workspace_limit(10)
        with pytest.raises(TypeError, match="n_bytes"):
            pyxconv.set_workspace_limit(1e6)
    finally:
        pyxconv.set_workspace_limit(None)
    assert pyxconv.get_workspace_limit() == 256 * 2**20


def test_demo_prints_the_lecture_result(capsys):
    from pyxconv.__main__ import main
    assert main(["demo"]) == 0
    text = capsys.readouterr().out
    assert "[[ 5  0 -2]" in text and "[ 4  9  7]]" in text


def test_submodules_are_reachable_from_a_plain_import():
    code = ("import pyxconv; print(pyxconv.nn.Conv2d.__name__, pyxconv.optim.SGD.__name__, "
            "pyxconv.data.read_idx.__name__, pyxconv.teach.summary.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["Conv2d", "SGD", "read_idx", "summary"]
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        pyxconv.nonexistent


_WAIT_CODE = """
import os, pyxconv
from pyxconv import _threads
from pyxconv.functional import _pool
print(os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"),
      _threads.threads_sleep_when_idle(), _pool._GRAIN)
"""


@pytest.mark.parametrize("env,expected", [
    ({}, "None 100000 False 16384"),  # pyxconv's default: spin ~1.7 ms, then sleep
    ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None True 262144"),
    ({"OMP_WAIT_POLICY": "passive"}, "passive None True 262144"),
    ({"GOMP_SPINCOUNT": "0"}, "None 0 True 262144"),
    ({"GOMP_SPINCOUNT": "5000"}, "None 5000 False 16384"),  # the user's value wins
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None False 16384"),
])
def test_wait_policy_default_and_user_settings(env, expected):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", _WAIT_CODE], env=dict(clean, **env),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected


def test_show_config_reports_the_wait_settings(capsys):
    pyxconv.show_config()
    text = capsys.readouterr().out
    assert f"GOMP_SPINCOUNT: {os.environ.get('GOMP_SPINCOUNT', '(unset)')}" in text
    assert "BLAS of the kernels (scipy.linalg.cython_blas): " in text
    from pyxconv import _blas
    assert f"kernels' instruction set (PYXCONV_ISA): {_blas.get_isa()} (available: " in text


@pytest.mark.skipif(not _openmp_helpers.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("kernel_threads", [1, 2])
def test_a_single_block_runs_with_the_blas_on_one_thread(kernel_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from pyxconv._parallel import map_blocks

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with pyxconv.num_threads(kernel_threads):
            seen = map_blocks(lambda block: blas_threads(), [0], 1)
        assert blas_threads() == before
    if not before:
        pytest.skip("no BLAS thread pool found")
    assert seen == [[1] * len(before)]


def test_blas_on_one_thread_nests_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from pyxconv import _parallel

    # every BLAS in the process: SciPy's, which the kernels call, and NumPy's
    assert len(_parallel.blas_thread_controls()) == len(
        [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"])

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        if not before or max(before) < 2:
            pytest.skip("no BLAS pool with two threads")
        with _parallel.blas_on_one_thread():
            assert max(blas_threads()) == 1
            with _parallel.blas_on_one_thread():
                assert max(blas_threads()) == 1
            assert max(blas_threads()) == 1  # the outer section still holds it
        assert blas_threads() == before
        with pytest.raises(KeyError):
            with _parallel.blas_on_one_thread():
                raise KeyError("inside")
        assert blas_threads() == before
