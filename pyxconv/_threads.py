"""How many threads pyxconv's kernels use.

The kernels are OpenMP loops. By default they use ``omp_get_max_threads()``,
which honours ``OMP_NUM_THREADS`` and limits set with threadpoolctl
(``threadpool_limits(n, user_api="openmp")``). :func:`set_num_threads`
overrides that for pyxconv alone, and :func:`num_threads` does so for a block.

Convolutions run each sample's im2col, GEMMs and col2im in one OpenMP loop
over the samples, calling NumPy's BLAS from the loop's threads
(``pyxconv._blas``). Where that BLAS cannot be called so (or with groups,
or samples too large for the workspace), they work in chunks that
alternate GEMMs and im2col/col2im, and with several threads whole chunks go
to a small pool of Python threads, each running the kernels and the BLAS
on one core (``pyxconv._parallel``). Either way the BLAS runs on one thread
while a convolution runs, for the whole process, and results are the same,
to the bit, at any thread count, pyxconv's or the BLAS's.

The matrix products go to the BLAS that NumPy ships, which has its own
thread pool. Idle threads of either pool busy-wait for a while after their
work; if the two pools took turns on a machine with few cores, each would
spin on the cores the other needs. So inside pyxconv's parallel sections the
BLAS runs on one thread (or is called from pyxconv's own threads), and
OpenBLAS's threads stay idle; only products outside them (``Linear`` on
large inputs, and the user's own) use the BLAS's threads.

Waiting policy. ``import pyxconv`` sets ``GOMP_SPINCOUNT=100000`` unless
the environment sets it or ``OMP_WAIT_POLICY``: an idle OpenMP thread spins
about 1.7 ms (measured here) before it sleeps. With
``OMP_WAIT_POLICY=PASSIVE`` an OpenMP loop that wakes a sleeping thread took
about 0.1 ms before any work was done, on a 2-core virtual machine, and a
LeNet-5 training step runs a dozen loops with short serial gaps: at 2
threads a step took 5.1 ms with PASSIVE and 3.6 ms with the spin. The
policy's cost: a program that alternates pyxconv's kernels with its own
multi-threaded NumPy matrix products pays it, because pyxconv's spinning
threads delay the BLAS's (measured: a 400x400 matmul followed by a max-pool,
1.2 ms a pair with PASSIVE, 4.7 ms with the spin). Such a program should set
``OMP_WAIT_POLICY=PASSIVE`` before any OpenMP runtime loads (before importing
pyxconv, torch or scikit-learn); :func:`threads_sleep_when_idle` then
reports it, and pooling keeps small inputs on one thread.
"""
import contextlib
import operator
import os
import threading

from pyxconv._kernels import _openmp_helpers

#: Whether the kernels were built with OpenMP (asked once: get_num_threads runs per call).
_OPENMP = _openmp_helpers.openmp_enabled()
_state = threading.local()
_global_override = None
# True in a process made by os.fork() from one that had imported pyxconv, until
# the user sets a thread count there: see _single_threaded_after_fork
_forked_child = False


def _single_threaded_after_fork():
    """In a forked child, run every kernel on one thread until told otherwise.

    GNU libgomp is not fork-safe: a child forked after the parent ran an
    OpenMP parallel region inherits a thread pool whose threads do not exist
    in the child, and its first parallel region with more than one thread
    waits for them forever. A region of one thread does not touch the pool.
    So the child runs single-threaded (as PyTorch does) until
    :func:`set_num_threads` or :func:`num_threads` is called in it. The
    parent's per-thread overrides do not carry over.
    """
    global _state, _global_override, _forked_child
    _state = threading.local()
    _global_override = None
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_single_threaded_after_fork)


def in_forked_child():
    """Whether this process was forked from one running pyxconv and no thread count was set since.

    While true, :func:`get_num_threads` returns 1 (see :func:`set_num_threads`).
    """
    return _forked_child


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
        1 when pyxconv was built without OpenMP, and 1 in a process forked
        from one that had imported pyxconv, until a thread count is set there
        (see :func:`set_num_threads`).

    Examples
    --------
    >>> import pyxconv
    >>> with pyxconv.num_threads(1):
    ...     pyxconv.get_num_threads()
    1
    """
    if not _OPENMP:
        return 1
    local = getattr(_state, "override", None)
    if local is not None:
        return local
    if _global_override is not None:
        return _global_override
    if _forked_child:
        return 1
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
    The count covers pyxconv's OpenMP kernels, whose convolution loops
    call the BLAS themselves, and the Python threads among which a
    chunked convolution shares its chunks; while a convolution runs the
    BLAS is limited to one thread for the whole process. Small work stays on
    one thread. Results are the same, bit for bit, at any thread count.

    Idle OpenMP threads spin about 1.7 ms before they sleep
    (``GOMP_SPINCOUNT=100000``, set by ``import pyxconv`` unless the
    environment sets it or ``OMP_WAIT_POLICY``), so the many short loops of
    a training step do not each pay ~0.1 ms to wake a thread. A program that
    alternates pyxconv's kernels with its own multi-threaded NumPy matrix
    products should set ``OMP_WAIT_POLICY=PASSIVE`` before importing
    pyxconv (see the notes of ``pyxconv._threads``).

    In a process made by ``os.fork()`` (``multiprocessing``'s default start
    method on Linux before Python 3.14), the kernels run on one thread until
    this function or :func:`num_threads` is called there: GNU libgomp's
    thread pool does not survive a fork, and a parallel region in the child
    of a parent that had run one would wait forever. Asking for more than
    one thread in such a child is the caller's risk (it hangs with libgomp
    if the parent had run multi-threaded kernels); use the ``forkserver``
    or ``spawn`` start methods for multi-threaded workers.

    Examples
    --------
    >>> import pyxconv
    >>> pyxconv.set_num_threads(1)
    >>> pyxconv.get_num_threads()
    1
    >>> pyxconv.set_num_threads(None)  # back to OMP_NUM_THREADS or the core count
    """
    global _global_override, _forked_child
    _global_override = None if n is None else _check_thread_count(n)
    _forked_child = False


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


def _sleeping_policy(environ):
    policy = environ.get("OMP_WAIT_POLICY", "").strip().lower()
    spin = environ.get("GOMP_SPINCOUNT", "").strip()
    return policy == "passive" or spin == "0"


# read once: libgomp reads the environment once, when it loads
_THREADS_SLEEP_WHEN_IDLE = _sleeping_policy(os.environ)


def threads_sleep_when_idle():
    """Whether idle OpenMP threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``).

    As the environment said when pyxconv was imported. When they do, every
    parallel loop pays to wake them, and kernels need more work before a
    second thread pays off.
    """
    return _THREADS_SLEEP_WHEN_IDLE


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
