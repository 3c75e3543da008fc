"""How the kernels were built, and the OpenMP thread count they use."""
include "_build_info.pxi"

from cython.parallel cimport parallel
from pyxconv._kernels._omp_compat cimport (
    omp_get_max_threads, omp_get_num_threads, omp_get_thread_num)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return BUILT_WITH_OPENMP


def boundscheck_enabled():
    """True for a debug build (PYXCONV_DEBUG_CYTHON=1)."""
    return BUILT_WITH_BOUNDSCHECK


def source_hash():
    """SHA-256 of the kernel sources this extension was compiled from."""
    return SOURCE_HASH


def omp_max_threads():
    """``omp_get_max_threads()``: honours OMP_NUM_THREADS and threadpoolctl limits."""
    return omp_get_max_threads()


def threads_in_parallel_region(int n_threads):
    """How many threads a parallel region with ``num_threads=n_threads`` really gets."""
    cdef int seen = 1
    cdef int* seen_by_master = &seen  # variables assigned in a parallel block are private
    with nogil, parallel(num_threads=n_threads):
        if omp_get_thread_num() == 0:
            seen_by_master[0] = omp_get_num_threads()
    return seen
