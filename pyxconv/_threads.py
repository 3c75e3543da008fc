"""How many threads pyxconv's kernels use.

The kernels are OpenMP loops. By default they use ``omp_get_max_threads()``,
which honours ``OMP_NUM_THREADS`` and limits set with threadpoolctl
(``threadpool_limits(n, user_api="openmp")``). :func:`set_num_threads`
overrides that for pyxconv alone, and :func:`num_threads` does so for a block.

Convolutions work in chunks that alternate GEMMs and im2col/col2im. With
several threads, whole chunks (and, in the Conv2d layer, blocks of samples)
go to a small pool of Python threads, each running the kernels and the BLAS
on one core, rather than every chunk using every thread of two pools in
turn (``pyxconv._parallel``). While such a call runs, the BLAS is limited
to one thread for the whole process. Results are the same, to the bit, at
any thread count.

The matrix products go to the BLAS that NumPy ships, which has its own
thread pool. pyxconv's OpenMP loops and the BLAS calls run one after the
other, but idle threads of either pool busy-wait for a while after their
work, and on a machine with few cores that steals the cores the other pool
needs. So that idle OpenMP threads sleep, ``import pyxconv`` sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it, and the
kernels run on one thread when the work is small (:func:`threads_for`).

What a second thread costs, measured on a 2-core virtual machine: with
PASSIVE waiting, an OpenMP region that wakes a sleeping thread took about
0.1 ms before any work was done (5 us on one thread), so work below a few
tenths of a millisecond runs faster on one thread. Letting the threads spin
briefly instead (``GOMP_SPINCOUNT``) removed that cost in a loop of pyxconv
calls, but made a convolution that alternates BLAS calls and pyxconv kernels
up to 8x slower: the spinning threads of one pool took the cores the other
pool's threads needed.
"""
import contextlib
import operator
import threading

from pyxconv._kernels import _openmp_helpers

_state = threading.local()
_global_override = None


def _check_thread_count(n):
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n_threads must be an integer, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"n_threads must be >= 1, got {n}")
    return n


def get_num_threads():
    """Number of threads the kernels will use in this Python thread.

    Returns
    -------
    int
        The value of the innermost :func:`num_threads` block, else the value
        given to :func:`set_num_threads`, else ``omp_get_max_threads()``
        (``OMP_NUM_THREADS``, threadpoolctl limits, or the core count). Always
        1 when pyxconv was built without OpenMP.

    Examples
    --------
    >>> import pyxconv
    >>> with pyxconv.num_threads(1):
    ...     pyxconv.get_num_threads()
    1
    """
    if not _openmp_helpers.openmp_enabled():
        return 1
    local = getattr(_state, "override", None)
    if local is not None:
        return local
    if _global_override is not None:
        return _global_override
    return max(1, _openmp_helpers.omp_max_threads())


def set_num_threads(n):
    """Set the number of threads pyxconv uses, for every Python thread.

    Parameters
    ----------
    n : int or None
        Number of threads, >= 1. ``None`` goes back to the default
        (``OMP_NUM_THREADS`` or the core count).

    Raises
    ------
    ValueError
        If ``n < 1``.
    TypeError
        If ``n`` is not an integer.

    Notes
    -----
    The count covers pyxconv's OpenMP kernels and the Python threads among
    which a convolution shares its chunks (or, in the Conv2d layer, blocks of
    samples): each of those threads runs the kernels and the BLAS on one
    core, and while such a call runs the BLAS is limited to one thread for
    the whole process. Small work stays on one thread. Results are the same,
    bit for bit, at any thread count.

    Examples
    --------
    >>> import pyxconv
    >>> pyxconv.set_num_threads(1)
    >>> pyxconv.get_num_threads()
    1
    >>> pyxconv.set_num_threads(None)  # back to OMP_NUM_THREADS or the core count
    """
    global _global_override
    _global_override = None if n is None else _check_thread_count(n)


@contextlib.contextmanager
def num_threads(n):
    """Context manager: use ``n`` threads inside the block, in this Python thread.

    Parameters
    ----------
    n : int
        Number of threads, >= 1.

    Examples
    --------
    >>> import numpy as np, pyxconv
    >>> from pyxconv.functional import conv2d
    >>> x = np.ones((1, 1, 4, 4)); w = np.ones((1, 1, 3, 3))
    >>> with pyxconv.num_threads(1):
    ...     conv2d(x, w)[0, 0]
    array([[9., 9.],
           [9., 9.]])
    """
    n = _check_thread_count(n)
    previous = getattr(_state, "override", None)
    _state.override = n
    try:
        yield n
    finally:
        _state.override = previous


# Below this many elements a thread, waking a team of OpenMP threads costs more
# than it saves; on a loaded machine a woken thread can wait a whole scheduler
# slice (measured: a 4x8x12x12 max-pool took 0.8 ms on two threads, 0.12 ms on one).
ELEMENTS_PER_THREAD = 16384


def threads_for(elements, per_thread=None):
    """Threads for a kernel that touches ``elements`` values: 1 for small work.

    At most :func:`get_num_threads`, and no more than one thread per
    ``per_thread`` elements (default ``ELEMENTS_PER_THREAD``; a kernel whose
    break-even point was measured elsewhere passes its own). Kernels give the
    same result at any thread count, so this only changes speed.
    """
    if per_thread is None:
        per_thread = ELEMENTS_PER_THREAD
    if elements < 2 * per_thread:
        return 1
    return max(1, min(get_num_threads(), elements // per_thread))
