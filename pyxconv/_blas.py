"""NumPy's own BLAS, called from inside the compiled kernels.

Convolutions (functional and layers, transposed too) run each sample's
im2col, GEMMs and col2im in one OpenMP loop without the GIL
(``_im2col.conv_forward_samples``, ``conv_backward_samples``,
``unfold_samples``, ``fold_samples``). That needs the GEMM as a C
function, which NumPy does not export; its wheels, though, ship OpenBLAS as
a shared library with the ILP64 CBLAS interface (``scipy_cblas_sgemm64_``,
64-bit integers). :func:`ensure_gemm` finds that library among the ones
loaded in the process (with threadpoolctl, which reads the same libraries
to set their thread counts), looks the two entry points up with ctypes and
hands them to the kernels. The products are then made by the same library
as ``numpy.matmul`` makes them.

Where NumPy's BLAS is something else (Accelerate, MKL, a system OpenBLAS
without the suffixed symbols), nothing is installed and the callers keep
their NumPy path: the same products, slower, and equal to the last bit
except where NumPy switches to a matrix-vector routine (one output channel,
or one output position) or a chunk groups a sum differently.
``PYXCONV_DIRECT_GEMM=0`` in the environment, or ``allow_direct_gemm(False)``,
does the same (tests use it to run both paths).

Measured: LeNet-5's training step (batch 64), alternating the two paths in
one process, 5.14 -> 5.05 ms at 1 thread and 5.79 -> 5.02 ms at 2, before
other changes: no Python runs between the samples' steps, and threads never
wait for the GIL.

On CPUs with AVX-512 (checked at import), the per-sample kernels make their
float32 products of at least 24 x 32 x 32 with pyxconv's own GEMM instead
(``_kernels/simd_kernels.h``): on the convolutions' per-sample shapes it
ran at 170-180 GFLOP/s where OpenBLAS ran at about 125, one core of a
Sapphire Rapids. float64, small products and other CPUs stay on the BLAS.
``PYXCONV_AVX512=0`` in the environment, or ``use_avx512(False)``, turns it
and the other AVX-512 helpers off.
"""
import ctypes
import os
import threading
from pathlib import Path

from pyxconv._kernels import _im2col

#: Symbol names tried in order: (sgemm, dgemm), ILP64 only, since the kernels
#: pass 64-bit integers.
_GEMM_SYMBOLS = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),  # NumPy >= 2 wheels (scipy-openblas64)
    ("cblas_sgemm64_", "cblas_dgemm64_"),  # OpenBLAS built with the 64_ suffix
)

_lock = threading.Lock()
_state = {"searched": False, "library": None, "threads": None, "enabled": True}

if os.environ.get("PYXCONV_AVX512", "1") == "0":
    _im2col.use_avx512(False)


def _numpy_blas_paths():
    """Files of the BLAS libraries loaded in this process that ship inside NumPy."""
    import numpy
    from threadpoolctl import threadpool_info

    numpy_dir = Path(numpy.__file__).resolve().parent
    # numpy/.dylibs (macOS wheels) lies in the first; numpy.libs (Linux, Windows) is beside it
    homes = (numpy_dir, numpy_dir.parent / "numpy.libs")
    paths = []
    try:
        infos = threadpool_info()
    except Exception:  # a library threadpoolctl cannot read: use the NumPy path
        return []
    for info in infos:
        if info.get("user_api") != "blas" or info.get("internal_api") != "openblas":
            continue
        path = Path(info["filepath"]).resolve()
        if any(home in path.parents for home in homes):
            paths.append(str(path))
    return paths


#: (get, set) thread-count functions of the library, by the GEMM symbols' prefix
_THREAD_SYMBOLS = {
    "scipy_cblas_sgemm64_": ("scipy_openblas_get_num_threads64_",
                             "scipy_openblas_set_num_threads64_"),
    "cblas_sgemm64_": ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
}


def _find_gemm():
    """(library path, sgemm address, dgemm address, (get, set) or None) of NumPy's BLAS."""
    for path in _numpy_blas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for s_name, d_name in _GEMM_SYMBOLS:
            s_fn = getattr(library, s_name, None)
            d_fn = getattr(library, d_name, None)
            if s_fn is not None and d_fn is not None:
                get_name, set_name = _THREAD_SYMBOLS[s_name]
                get_fn = getattr(library, get_name, None)
                set_fn = getattr(library, set_name, None)
                threads = None
                if get_fn is not None and set_fn is not None:
                    get_fn.restype, get_fn.argtypes = ctypes.c_int, []
                    set_fn.restype, set_fn.argtypes = None, [ctypes.c_int]
                    threads = (get_fn, set_fn)
                return (path, ctypes.cast(s_fn, ctypes.c_void_p).value,
                        ctypes.cast(d_fn, ctypes.c_void_p).value, threads)
    return None


def ensure_gemm():
    """True when the kernels can call NumPy's BLAS (searched for once, on first use)."""
    if _state["searched"]:
        return _state["enabled"] and _state["library"] is not None
    with _lock:
        if not _state["searched"]:
            found = None
            if os.environ.get("PYXCONV_DIRECT_GEMM", "1") != "0":
                found = _find_gemm()
            if found is not None:
                _state["library"], _state["threads"] = found[0], found[3]
                _im2col.set_gemm(found[1], found[2])
            _state["searched"] = True
    return _state["enabled"] and _state["library"] is not None


def allow_direct_gemm(enabled):
    """Allow (True) or forbid (False) the kernels' direct GEMM calls; returns the old setting.

    Forbidding them sends the callers down their NumPy path, for comparisons.
    """
    old = _state["enabled"]
    _state["enabled"] = bool(enabled)
    return old


def use_avx512(enabled):
    """Use (True) or not (False) pyxconv's AVX-512 kernels where the CPU has them.

    Returns the old setting. Off, every product goes to NumPy's BLAS and the
    helpers run as portable loops (the results agree to rounding; see
    :func:`float32_gemm`).
    """
    return _im2col.use_avx512(bool(enabled))


def float32_gemm():
    """What makes the per-sample kernels' float32 products: a short description."""
    if _im2col.avx512_in_use():
        return "pyxconv's AVX-512 kernel (products from 24 x 32 x 32; smaller ones: the BLAS)"
    if not _im2col.avx512_available():
        return "the BLAS (no AVX-512 kernel on this CPU or build)"
    return "the BLAS (pyxconv's AVX-512 kernel turned off)"


def numpy_blas_threads():
    """(get, set) of the thread count of NumPy's OpenBLAS as ctypes functions, or None.

    Found with the GEMM entry points (:func:`ensure_gemm`), whether or not
    the kernels may call them.
    """
    ensure_gemm()
    return _state["threads"]


def gemm_library():
    """Path of the BLAS library the kernels call, or None (see :func:`ensure_gemm`)."""
    return _state["library"] if ensure_gemm() else None
