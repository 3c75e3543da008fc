"""Independent blocks of work spread over Python threads, one core each.

A convolution processed in chunks alternates two thread pools: the BLAS's
(for the GEMMs) and OpenMP's (for im2col/col2im). On a small machine the
pools hand the cores back and forth: each OpenMP region that wakes a
sleeping thread cost about 0.1 ms here, and BLAS threads spin after their
GEMM on the cores the OpenMP threads need. With 2 threads, the transposed
convolution of the benchmarks ran no faster than with 1.

:func:`map_blocks` instead gives each Python thread whole chunks and runs
everything in them on that thread: the kernels through
``pyxconv.num_threads(1)`` and the BLAS limited to one thread for the
duration of the call (:func:`blas_on_one_thread`; the limit is process-wide,
so other threads' BLAS calls made meanwhile also run on one thread). A chunk is
computed the same way whichever thread takes it, so results do not depend
on the number of threads, to the bit; callers that combine the chunks'
results do so in chunk order.
"""
import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from pyxconv._blas import (blas_thread_controls, gemms_single_threaded_below,
                           gemvs_single_threaded_below)
from pyxconv._threads import num_threads

_lock = threading.Lock()
_executor = None
_executor_workers = 0


def _forget_threads_after_fork():
    """In a forked child the pool's threads do not exist: start afresh on next use."""
    global _lock, _executor, _executor_workers, _blas_lock, _blas_users, _blas_limiter
    _lock = threading.Lock()
    _executor, _executor_workers = None, 0
    _blas_lock = threading.Lock()
    _blas_users, _blas_limiter = 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_after_fork)


def _pool(workers):
    """The shared executor, able to run ``workers`` threads at once.

    Its threads start on first use. A larger request replaces it; the old
    one is not shut down, since another call may still be submitting to it
    (its idle threads end when it is collected).
    """
    global _executor, _executor_workers
    with _lock:
        if _executor is None or _executor_workers < workers:
            _executor_workers = max(workers, os.cpu_count() or 1)
            _executor = ThreadPoolExecutor(max_workers=_executor_workers,
                                           thread_name_prefix="pyxconv")
        return _executor


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


def blas_on_one_thread():
    """The BLAS on one thread inside the block, for the whole process.

    pyxconv's convolutions make all their GEMMs this way, whatever its own
    thread count: OpenBLAS on several threads sums some products in another
    order (found on a Conv2d(76, 12, 3) over a (3, 76, 24, 24) batch), so a
    GEMM's bits would depend on the BLAS's thread count; and its threads
    would take turns on the cores with pyxconv's. Parallelism comes from
    pyxconv's threads, over samples or chunks.

    Counted, so that calls overlapping in several Python threads restore the
    BLAS's own setting once, when the last of them ends (two limits saved and
    restored out of order would leave it at one thread); nestable. Every
    BLAS threadpoolctl finds is limited (SciPy's, which the kernels call, and
    NumPy's, which the NumPy path calls), through the thread-count functions
    of threadpoolctl's controllers, found once (:func:`pyxconv._blas.blas_thread_controls`).

    A plain object's ``__enter__``/``__exit__`` rather than a generator:
    inference calls of a few microseconds make this block on every call.
    """
    return _BLAS_ON_ONE_THREAD


class _BlasOnOneThread:
    __slots__ = ()

    def __enter__(self):
        global _blas_users, _blas_limiter
        with _blas_lock:
            if _blas_users == 0:
                _blas_limiter = _CountRestorer.limit(blas_thread_controls())
            _blas_users += 1
        return self

    def __exit__(self, *exc_info):
        global _blas_users, _blas_limiter
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore()
                _blas_limiter = None
        return False


_BLAS_ON_ONE_THREAD = _BlasOnOneThread()


class _CountRestorer:
    """Sets each BLAS's thread count to one; ``restore`` puts the old counts back."""

    __slots__ = ("_restore", "_through_threadpoolctl")

    @classmethod
    def limit(cls, controls):
        """The restorer of the BLASes now on more than one thread, or None if none is."""
        restore = [(set_, count) for get, set_ in controls if (count := get() or 1) > 1]
        if not restore:
            return None
        limiter = cls()
        limiter._restore = restore
        # threadpoolctl's own methods (not raw C functions) need the ownership cleared
        limiter._through_threadpoolctl = any(hasattr(set_, "__self__") for set_, _ in restore)
        if limiter._through_threadpoolctl:
            _release_blas_control()
        for set_, _ in restore:
            set_(1)
        return limiter

    def restore(self):
        if self._through_threadpoolctl:
            _release_blas_control()
        for set_, original in self._restore:
            set_(original)


def _release_blas_control():
    """Let any thread set OpenBLAS's thread count through threadpoolctl.

    threadpoolctl (3.8) lets only the first Python thread that sets a
    process-wide pool's size change it afterwards, and silently ignores the
    others; the first and the last of overlapping calls here may run on
    different threads, so each change is made with that ownership cleared.
    """
    import threadpoolctl

    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


#: Matrix products of fewer multiply-adds run with the BLAS on one thread
#: (:func:`small_product`): LeNet-5's fully connected layers (3 M) gained
#: nothing from a second BLAS thread, and that thread then spun for a while
#: on the core pyxconv's next parallel section needed (a LeNet training
#: step at 2 threads: 7.0 ms with it, 5.5 ms without).
SMALL_PRODUCT_MULT_ADDS = 2**24


_NO_LIMIT = contextlib.nullcontext()


def small_product(mult_adds, one_row=False):
    """Context for one matrix product: the BLAS on one thread if it is small.

    For a product of ``mult_adds`` multiply-adds below
    ``SMALL_PRODUCT_MULT_ADDS``; otherwise the BLAS keeps its threads. On
    the products of fully connected layers we tried above that size (up to
    64x9216x4096), OpenBLAS gave the same bits on 1 and 2 threads, so this
    changed only speed there; it is not a guarantee of OpenBLAS's (see
    :func:`blas_on_one_thread`). A product of ``one_row`` (batch 1: the
    kernels make it a gemv) always runs on one thread, unless its matrix is
    small enough that OpenBLAS keeps it there itself: a threaded gemv's bits
    may follow the BLAS's thread count.
    """
    if one_row:
        if mult_adds < gemvs_single_threaded_below():
            return _NO_LIMIT
        return blas_on_one_thread()
    if mult_adds < gemms_single_threaded_below():
        return _NO_LIMIT  # OpenBLAS runs it on the calling thread anyway
    if mult_adds < SMALL_PRODUCT_MULT_ADDS:
        return blas_on_one_thread()
    return _NO_LIMIT


def map_blocks(fn, blocks, n_threads):
    """``[fn(block) for block in blocks]``, on up to ``n_threads`` threads.

    The calling thread takes part, so ``n_threads - 1`` pool threads are
    woken. Blocks are handed out one at a time, in order, to whichever
    thread is free. Exceptions propagate; once a block has raised (or the
    caller is interrupted by Ctrl-C) no thread starts another, so an
    interrupt waits for the blocks in progress only. With ``n_threads`` 1, or a single
    block, it is a plain loop on the calling thread, whose kernels keep
    their thread count. The BLAS runs on one thread throughout (see
    :func:`blas_on_one_thread`).
    """
    blocks = list(blocks)
    n_threads = min(n_threads, len(blocks))
    if n_threads <= 1:
        # the BLAS on one thread here too: its bits must not depend on the thread
        # count, and the blocks' kernels may use several OpenMP threads
        with blas_on_one_thread():
            return [fn(block) for block in blocks]
    results = [None] * len(blocks)
    counter = itertools.count()
    counter_lock = threading.Lock()
    # set when any thread's block raised (KeyboardInterrupt included): the others
    # finish the block they hold and claim no more
    stop = [False]

    def work():
        with num_threads(1):
            while not stop[0]:
                with counter_lock:
                    i = next(counter)
                if i >= len(blocks):
                    return
                try:
                    results[i] = fn(blocks[i])
                except BaseException:
                    stop[0] = True
                    raise

    with blas_on_one_thread():
        futures = []
        try:
            pool = _pool(n_threads - 1)
            for _ in range(n_threads - 1):
                futures.append(pool.submit(work))
        except RuntimeError:
            pass  # the interpreter is shutting down (an atexit hook): this thread does it all
        try:
            work()
        except BaseException:
            stop[0] = True
            raise
        finally:
            # Ctrl-C while waiting here also stops the pool threads at their next block
            try:
                for future in futures:
                    future.result()
            except BaseException:
                stop[0] = True
                raise
    return results


def waves(items, size):
    """``items`` in consecutive lists of ``size`` (the last may be shorter)."""
    iterator = iter(items)
    while wave := list(itertools.islice(iterator, size)):
        yield wave
