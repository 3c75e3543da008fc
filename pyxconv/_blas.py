"""The matrix products inside the compiled kernels: which code makes them.

Convolutions (functional and layers, transposed too) run each sample's
im2col, GEMMs and col2im in one OpenMP loop without the GIL
(``_im2col.conv_forward_samples``, ``conv_backward_samples``,
``unfold_samples``, ``fold_samples``). Their GEMMs are C calls into the BLAS
that SciPy links, cimported from ``scipy.linalg.cython_blas`` when the kernels
are compiled, as scikit-learn's ``sklearn/utils/_cython_blas.pyx`` does:
OpenBLAS in SciPy's wheels, MKL under conda, Accelerate on macOS. Nothing is
looked up by symbol name at run time, so every installation takes the same
path, whichever BLAS NumPy itself uses.

float32 products of at least 32 columns and depth 8 go instead to pyxconv's own GEMM
(``_kernels/gemm_kernels.h``) where the CPU has AVX2 with FMA, AVX-512 or
NEON: the same C source compiled for each instruction set, chosen at import.
``PYXCONV_ISA`` in the environment (``avx512``, ``avx2`` or ``none``) or
:func:`set_isa` picks a lower one, so an AVX-512 machine can run and time
the AVX2 code; ``none`` leaves every product to the BLAS. Each element of an
own-GEMM product is the same chain of fused multiply-adds on either
instruction set, so the choice does not change a result's bits. The same
switch picks the instance of the fold helpers (``_kernels/simd_kernels.h``:
col2im by phases, its adds and interleaves), of the softmax row loops and of
the max-pool row loops (``_kernels/pool_kernels.h``), which give the same
bits on every instruction set.

``PYXCONV_DIRECT_GEMM=0``, or :func:`allow_direct_gemm`, sends the callers
down their NumPy path instead (chunks of ``numpy.matmul`` on Python threads),
the path that grouped convolutions take; tests use it to compare the two.
"""
import ctypes
import os
import threading
import warnings
from pathlib import Path

from pyxconv._kernels import _im2col, _pool, _softmax

_lock = threading.Lock()


def _fresh_lock_after_fork():
    """A lock another parent thread held at the fork would stay locked in the child."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_after_fork)

_state = {"enabled": os.environ.get("PYXCONV_DIRECT_GEMM", "1") != "0",
          "controls": None, "library": None, "single_thread_below": 0}

#: OpenBLAS runs a GEMM of m*n*k below 65536 * GEMM_MULTITHREAD_THRESHOLD (4
#: unless built otherwise) multiply-adds on the calling thread alone
#: (``interface/gemm.c``); pyxconv counts on a quarter of that, which holds
#: for any threshold >= 1. Other BLASes document no such bound.
OPENBLAS_SINGLE_THREAD_GEMM = 65536

#: ... and a GEMV whose matrix has m*n below 2304 * GEMM_MULTITHREAD_THRESHOLD
#: elements (``interface/gemv.c``); again the bound for a threshold of 1. Above
#: it OpenBLAS splits a gemv's rows over its threads, and the rows at the end
#: of each thread's range take other code: the bits could then follow the
#: BLAS's thread count.
OPENBLAS_SINGLE_THREAD_GEMV = 2304

#: instruction sets of the own float32 GEMM, best first, as PYXCONV_ISA names them
ISA_CHOICES = ("avx512", "avx2", "none")


def _isa_from_environment():
    """Apply ``PYXCONV_ISA`` (or the older ``PYXCONV_AVX512=0``) at import."""
    requested = os.environ.get("PYXCONV_ISA", "").strip().lower()
    if not requested and os.environ.get("PYXCONV_AVX512", "1") == "0":
        requested = "avx2"  # the older switch: AVX-512 off
    if not requested:
        return
    if requested not in ISA_CHOICES:
        raise ImportError(f"PYXCONV_ISA must be one of {', '.join(ISA_CHOICES)}; "
                          f"got {requested!r}")
    # the best available at or below the one asked for
    below = ISA_CHOICES[ISA_CHOICES.index(requested):]
    chosen = next(isa for isa in below if _im2col.isa_available(isa))
    if chosen != requested:
        warnings.warn(f"PYXCONV_ISA={requested}: not available on this CPU or build; "
                      f"using {chosen}", RuntimeWarning, stacklevel=2)
    set_isa(chosen)


def available_isas():
    """The instruction sets of the own float32 GEMM that this CPU and build can run, best first.

    Always ends with ``"none"`` (every product on the BLAS).
    """
    return tuple(isa for isa in ISA_CHOICES if _im2col.isa_available(isa))


def get_isa():
    """The instruction set the own float32 GEMM runs on now (``"none"``: the BLAS)."""
    return _im2col.get_isa()


def set_isa(isa):
    """Run the own float32 GEMM on ``isa`` (``"avx512"``, ``"avx2"``, ``"none"``); returns the old one.

    Asking for an instruction set this CPU or build lacks raises
    ``ValueError`` naming the ones available (:func:`available_isas`).
    Every other kernel with code per instruction set follows it: the fold
    helpers (col2im by phases; the same bits on each), the direct
    convolution (planned per call), the softmax and cross-entropy row loops
    and the max-pool row loops (``"none"``: the compiler's baseline).
    """
    if isa not in ISA_CHOICES:
        raise ValueError(f"isa must be one of {', '.join(ISA_CHOICES)}; got {isa!r}")
    if not _im2col.isa_available(isa):
        raise ValueError(f"isa {isa!r} is not available on this CPU or build; "
                         f"available: {', '.join(available_isas())}")
    _softmax.set_isa(isa)
    _pool.set_isa(isa)
    return _im2col.set_isa(isa)


def ensure_gemm():
    """Whether the kernels make their own GEMM calls (True unless turned off for tests)."""
    return _state["enabled"]


def allow_direct_gemm(enabled):
    """Allow (True) or forbid (False) the kernels' GEMM calls; returns the old setting.

    Forbidding them sends the callers down their NumPy path, for comparisons.
    """
    old = _state["enabled"]
    _state["enabled"] = bool(enabled)
    return old


def float32_gemm():
    """What makes the per-sample kernels' float32 products: a short description."""
    isa = get_isa()
    if isa != "none":
        return (f"pyxconv's own GEMM, {isa.upper()} (products of >= 32 columns, depth >= 8; "
                "smaller ones: the BLAS)")
    if available_isas() == ("none",):
        return "the BLAS (no AVX2 or AVX-512 on this CPU or build)"
    return "the BLAS (pyxconv's own GEMM turned off: PYXCONV_ISA=none)"


def _find_controls():
    """threadpoolctl's controllers of every BLAS in the process, and SciPy's BLAS's file."""
    import scipy
    from threadpoolctl import ThreadpoolController

    try:
        controllers = [lib for lib in ThreadpoolController().lib_controllers
                       if lib.user_api == "blas"]
    except Exception:  # a library threadpoolctl cannot read: leave thread counts alone
        return [], None
    scipy_dir = Path(scipy.__file__).resolve().parent
    homes = (scipy_dir, scipy_dir.parent / "scipy.libs")
    library = None
    for lib in controllers:
        path = Path(lib.filepath).resolve()
        if any(home in path.parents for home in homes):
            library = str(path)
    return controllers, library


def blas_thread_controls():
    """[(get, set), ...]: thread-count functions of each BLAS loaded (SciPy's and NumPy's).

    Found once with threadpoolctl; the kernels call SciPy's and the NumPy
    path NumPy's, and :func:`pyxconv._parallel.blas_on_one_thread` holds
    both to one thread.
    """
    if _state["controls"] is None:
        with _lock:
            if _state["controls"] is None:
                controllers, _state["library"] = _find_controls()
                if controllers and all(lib.internal_api == "openblas" for lib in controllers):
                    _state["single_thread_below"] = OPENBLAS_SINGLE_THREAD_GEMM
                _state["controls"] = [_raw_thread_functions(lib) for lib in controllers]
    return _state["controls"]


def gemvs_single_threaded_below():
    """Matrix elements below which every BLAS loaded runs a GEMV on one thread, or 0.

    :data:`OPENBLAS_SINGLE_THREAD_GEMV` where :func:`gemms_single_threaded_below`
    finds only OpenBLAS; 0 otherwise.
    """
    return OPENBLAS_SINGLE_THREAD_GEMV if gemms_single_threaded_below() else 0


def gemms_single_threaded_below():
    """Multiply-adds below which every BLAS loaded runs a GEMM on one thread, or 0.

    :data:`OPENBLAS_SINGLE_THREAD_GEMM` when each BLAS loaded is OpenBLAS;
    0 (no such bound) when one is MKL, Accelerate, BLIS or another. Callers
    whose products all fall below it need not hold the BLAS to one thread.
    """
    blas_thread_controls()
    return _state["single_thread_below"]


def _raw_thread_functions(lib):
    """(get, set) of one BLAS: its own C functions where threadpoolctl can name them.

    An OpenBLAS on its own pthreads pool is set through
    ``openblas_get/set_num_threads`` (with the library's symbol prefix and
    suffix, as threadpoolctl finds them): a fraction of a microsecond a call,
    where threadpoolctl's methods, which also arbitrate between Python threads,
    took several. Everything else goes through threadpoolctl's methods.
    """
    get_symbol = getattr(lib, "_get_symbol", None)
    if (lib.internal_api == "openblas" and get_symbol is not None
            and getattr(lib, "threading_layer", None) == "pthreads"):
        try:
            get, set_ = (get_symbol("openblas_get_num_threads"),
                         get_symbol("openblas_set_num_threads"))
        except Exception:  # a threadpoolctl whose internals differ
            get = set_ = None
        if get is not None and set_ is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            return get, set_
    return lib.get_num_threads, lib.set_num_threads


def gemm_library():
    """What the kernels' GEMM calls reach: the file of SciPy's BLAS, or a description."""
    blas_thread_controls()
    return _state["library"] or "the BLAS SciPy links (scipy.linalg.cython_blas)"


_isa_from_environment()
