"""Max pooling with switches, its backward and unpooling; average pooling and its backward.

Design
------
Every kernel works on a stack of planes: the Python layer views an input of
shape (N, C, D, H, W) as (N*C, D, H, W), a 2-D input (N, C, H, W) as
(N*C, 1, H, W) and a 1-D input (N, C, L) as (N*C, 1, 1, L), so one 3-D
kernel serves all three dimensionalities (the scatter kernels see flat
planes).

Switches are int64 flat indices ``(id * H + ih) * W + iw`` into the input
plane, as PyTorch's ``return_indices=True`` gives them.

Max pooling follows PyTorch's CPU kernel exactly: the running maximum starts
at -inf with the switch on the window's first valid element, and a value
replaces it when ``v > m`` or ``v`` is NaN. Hence ties keep the first
maximum in row-major scan order, padding (never read) acts as -inf, and a
window holding NaN outputs NaN with its switch on the last NaN of the scan.

Speed: the max-pool row loops (``pool_kernels_template.h``) run across
output columns with branch-free selects (bit masks, not ``?:``), which the
compiler vectorises, scalar tails included. They are compiled once per
instruction set and run on the one ``pyxconv._blas.set_isa``
(``PYXCONV_ISA``) picks for every kernel. The running maxima and winning tap
numbers of a row live in scratch rows that each OpenMP thread mallocs at the
start of the parallel block and frees at its end (scratch rows handed in
from NumPy, side by side in one array, made two threads slower than one).
The 2x2, stride 2, unpadded case has its own loop. Average pooling sums in
float64.

Parallelism, and why results never depend on the thread count:

* Forwards (max and average) gather: each output element reads its own
  window. The loop runs over (plane, output depth, output row) tasks, so a large plane of
  a small batch is still spread over the threads.
* ``max_pool_backward`` and ``max_unpool`` scatter through user-supplied
  switches, which may repeat (overlapping windows share a maximum). Each
  plane is one task, handled by one thread in a fixed order: the first
  adds its gradients in output order, the second writes in input order so
  the last duplicate wins, as in PyTorch.
* ``scatter_into_tiles`` serves both when the windows tile the plane
  without overlap and every switch lies in its own window (as after a 2x2
  stride-2 pool): then no two values meet, and each (plane, rows) task
  zeroes its block and writes its values. It checks the switches itself
  and writes nothing for a block where one is outside its window.
* ``avg_pool_backward`` gathers: every input element sums the gradients of
  the windows that contain it, so it too runs over (plane, input depth,
  input row) tasks.
* Tasks are handed out in dynamic chunks; since each task owns its outputs
  and runs in a fixed order, which thread runs it does not matter.

The callers guarantee: arrays C-contiguous with the shapes below, sizes and
strides >= 1, paddings >= 0, every window holds at least one input element,
and every switch handed to ``max_pool_backward`` or ``max_unpool`` lies in
``[0, D * H * W)`` of its plane (checked in Python, since bounds checks are off
here).
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

import numpy as np
cimport numpy as cnp

from pyxconv._kernels._arrays cimport array_data
from pyxconv._kernels._isa cimport available_isa_number, best_isa, isa_name

from pyxconv._kernels._interrupt cimport (
    pyxconv_interrupt, pyxconv_interrupt_init, pyxconv_interrupt_poll, pyxconv_interrupt_raise)

cnp.import_array()


cdef inline Py_ssize_t _chunk(Py_ssize_t n_tasks, int n_threads) noexcept nogil:
    """Chunk size of a dynamic schedule: about 16 chunks a thread.

    Dynamic rather than static scheduling keeps the threads busy when the
    machine is shared (a thread that loses its core does not hold up a fixed
    share of the work). Which thread runs a task never changes its result.
    """
    cdef Py_ssize_t chunk = n_tasks // (16 * n_threads)
    return chunk if chunk > 1 else 1


cdef inline Py_ssize_t _row_depth(Py_ssize_t row, Py_ssize_t out_d, Py_ssize_t out_h) noexcept nogil:
    """Output depth of task row ``row`` (od * out_h + oh); 1-D and 2-D pooling skip the division."""
    return 0 if out_d == 1 else row // out_h


cdef extern from "pool_kernels.h" nogil:
    # The max-pool row loops, written once in C and compiled per instruction set
    # (pool_kernels_template.h), as the fold helpers and softmax loops are.
    ctypedef struct pyxconv_pool_sizes:
        Py_ssize_t planes, in_d, in_h, in_w, out_d, out_h, out_w
        Py_ssize_t k_d, k_h, k_w, s_d, s_h, s_w, p_d, p_h, p_w, d_d, d_h, d_w
        int n_threads
    ctypedef struct pyxconv_pool_taps:
        const int64_t* tap_offset
        const int64_t* col_lo
        const int64_t* col_hi
        const int* first_col_tap
    Py_ssize_t pyxconv_pool_first_tap(Py_ssize_t start, Py_ssize_t dilation) noexcept
    Py_ssize_t pyxconv_pool_end_tap(Py_ssize_t start, Py_ssize_t dilation, Py_ssize_t kernel,
                                    Py_ssize_t size) noexcept
    void pyxconv_max_pool_rows_f32(int isa, const float* x, float* out, int64_t* switches,
                                   const pyxconv_pool_sizes* z, const pyxconv_pool_taps* taps,
                                   float* best, int* tap, Py_ssize_t first,
                                   Py_ssize_t end) noexcept
    void pyxconv_max_pool_rows_f64(int isa, const double* x, double* out, int64_t* switches,
                                   const pyxconv_pool_sizes* z, const pyxconv_pool_taps* taps,
                                   double* best, int* tap, Py_ssize_t first,
                                   Py_ssize_t end) noexcept


# the instruction set of the max-pool row loops: the best one here, until
# pyxconv._blas.set_isa (PYXCONV_ISA) picks another for every kernel
cdef int _isa = best_isa()


def set_isa(str isa):
    """Run the max-pool row loops on ``isa`` (as pyxconv._blas.set_isa, which calls this); returns the old one."""
    global _isa
    previous = isa_name(_isa)
    _isa = available_isa_number(isa)
    return previous


def get_isa():
    """The instruction set the max-pool row loops run on."""
    return isa_name(_isa)


cdef inline void _max_pool_rows(const floating* x, floating* out, int64_t* switches,
                                const pyxconv_pool_sizes* z, const pyxconv_pool_taps* taps,
                                floating* best, int* tap, Py_ssize_t first,
                                Py_ssize_t end) noexcept nogil:
    """Output rows [first, end) of the max pool of ``z`` (see pool_kernels_template.h)."""
    if floating is float:
        pyxconv_max_pool_rows_f32(_isa, x, out, switches, z, taps, best, tap, first, end)
    else:
        pyxconv_max_pool_rows_f64(_isa, x, out, switches, z, taps, best, tap, first, end)


cdef int _max_pool_run(const floating* x, floating* out, int64_t* switches,
                       const pyxconv_pool_sizes* z, const pyxconv_pool_taps* taps,
                       pyxconv_interrupt* stp) noexcept nogil:
    """The max pool of ``z`` (switches NULL: values only); 1 when a scratch malloc failed.

    Tasks are output rows (plane, output depth, output row), handed out in
    dynamic chunks of consecutive rows.
    """
    cdef Py_ssize_t n_tasks = z.planes * z.out_d * z.out_h
    cdef Py_ssize_t chunk = _chunk(n_tasks, z.n_threads)
    cdef Py_ssize_t n_chunks = (n_tasks + chunk - 1) // chunk
    cdef Py_ssize_t i, first, end
    cdef floating* best = NULL
    cdef int* tap = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed  # variables assigned in a parallel block are private
    if z.n_threads == 1:  # no parallel region: starting one costs ~1 us, a small pool's time
        best = <floating*>malloc(z.out_w * sizeof(floating))
        tap = <int*>malloc(z.out_w * sizeof(int))
        if best == NULL or tap == NULL:
            failed = 1
        else:
            for i in range(n_chunks):
                if pyxconv_interrupt_poll(stp):
                    break
                first = i * chunk
                end = first + chunk if first + chunk < n_tasks else n_tasks
                _max_pool_rows(x, out, switches, z, taps, best, tap, first, end)
        free(best)
        free(tap)
        return failed
    with parallel(num_threads=z.n_threads):
        best = <floating*>malloc(z.out_w * sizeof(floating))
        tap = <int*>malloc(z.out_w * sizeof(int))
        if best == NULL or tap == NULL:
            failed_flag[0] = 1
        for i in prange(n_chunks, schedule="dynamic"):
            if pyxconv_interrupt_poll(stp):
                continue
            if best == NULL or tap == NULL:
                continue
            first = i * chunk
            end = first + chunk if first + chunk < n_tasks else n_tasks
            _max_pool_rows(x, out, switches, z, taps, best, tap, first, end)
        free(best)
        free(tap)
    return failed


cdef inline pyxconv_pool_sizes _pool_sizes(
        Py_ssize_t planes, Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t out_d,
        Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
        Py_ssize_t s_d, Py_ssize_t s_h, Py_ssize_t s_w, Py_ssize_t p_d, Py_ssize_t p_h,
        Py_ssize_t p_w, Py_ssize_t d_d, Py_ssize_t d_h, Py_ssize_t d_w, int n_threads) noexcept:
    """The sizes struct of one max pool, field by field."""
    cdef pyxconv_pool_sizes z
    z.planes, z.in_d, z.in_h, z.in_w = planes, in_d, in_h, in_w
    z.out_d, z.out_h, z.out_w = out_d, out_h, out_w
    z.k_d, z.k_h, z.k_w, z.s_d, z.s_h, z.s_w = k_d, k_h, k_w, s_d, s_h, s_w
    z.p_d, z.p_h, z.p_w, z.d_d, z.d_h, z.d_w = p_d, p_h, p_w, d_d, d_h, d_w
    z.n_threads = n_threads
    return z


cdef int _check_tap_tables(const int64_t[::1] tap_offset, const int64_t[::1] col_lo,
                           const int64_t[::1] col_hi, const int[::1] first_col_tap,
                           Py_ssize_t taps, Py_ssize_t k_w, Py_ssize_t out_w) except -1:
    """ValueError unless the tables have one entry per tap, kernel column and output column."""
    if (tap_offset.shape[0] != taps or col_lo.shape[0] != k_w or col_hi.shape[0] != k_w
            or first_col_tap.shape[0] != out_w):
        raise ValueError("the tap tables do not match the window")
    return 0


def max_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                     int64_t[:, :, :, ::1] switches,
                     Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                     Py_ssize_t s_d, Py_ssize_t s_h, Py_ssize_t s_w,
                     Py_ssize_t p_d, Py_ssize_t p_h, Py_ssize_t p_w,
                     Py_ssize_t d_d, Py_ssize_t d_h, Py_ssize_t d_w,
                     const int64_t[::1] tap_offset, const int64_t[::1] col_lo,
                     const int64_t[::1] col_hi, const int[::1] first_col_tap, int n_threads):
    """out, switches (P, OD, OH, OW) = max pool of x (P, D, H, W); see the module notes.

    ``switches`` may be None (inference): then only the values are written, by
    the same selects in the same order, so ``out`` has the same bits.

    ``tap_offset[(c * k_h + a) * k_w + b] = c * d_d * H * W + a * d_h * W +
    b * d_w``: where tap (c, a, b) lies from the window's origin in the flat
    plane. ``col_lo``, ``col_hi`` (k_w entries) and ``first_col_tap`` (OW
    entries): see pyxconv_max_row_generic in pool_kernels_template.h. Tasks are (plane, output depth, output
    row) triples. Each OpenMP thread allocates its own rows of running
    maxima and winning taps (``OW`` entries each); raises MemoryError if it
    cannot.
    """
    if out.shape[0] != x.shape[0]:
        raise ValueError("out must have x's planes")
    if switches is not None and (switches.shape[0] != out.shape[0]
                                 or switches.shape[1] != out.shape[1]
                                 or switches.shape[2] != out.shape[2]
                                 or switches.shape[3] != out.shape[3]):
        raise ValueError("switches must have the output's shape")
    _check_tap_tables(tap_offset, col_lo, col_hi, first_col_tap, k_d * k_h * k_w, k_w,
                      out.shape[3])
    cdef pyxconv_pool_sizes z = _pool_sizes(x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                                            out.shape[1], out.shape[2], out.shape[3],
                                            k_d, k_h, k_w, s_d, s_h, s_w, p_d, p_h, p_w,
                                            d_d, d_h, d_w, n_threads)
    if z.planes == 0 or z.out_d * z.out_h * z.out_w == 0:
        return
    cdef pyxconv_pool_taps taps
    taps.tap_offset = &tap_offset[0]
    taps.col_lo = &col_lo[0]
    taps.col_hi = &col_hi[0]
    taps.first_col_tap = &first_col_tap[0]
    cdef pyxconv_interrupt st
    pyxconv_interrupt_init(&st)
    cdef int failed
    with nogil:
        failed = _max_pool_run(&x[0, 0, 0, 0], &out[0, 0, 0, 0],
                               &switches[0, 0, 0, 0] if switches is not None else NULL, &z,
                               &taps, &st)
    pyxconv_interrupt_raise(&st)
    if failed:
        raise MemoryError("max_pool: no memory for the per-thread scratch rows")


cdef class MaxPoolValues:
    """:func:`max_pool_forward` without switches, for fixed sizes: for repeated calls.

    ``MaxPoolValues(dtype, x_shape, out_shape, k_d, ..., n_threads)`` takes
    the (P, D, H, W) shapes of x and out, then :func:`max_pool_forward`'s
    arguments after ``switches``. A call ``pool(x, out)`` checks only that
    the arrays are C-contiguous ndarrays of the dtype (float32 or float64)
    and sizes it was made for (TypeError otherwise), then runs, about two
    microseconds less per call than the function, which takes seven
    memoryviews.
    """
    cdef pyxconv_pool_sizes z
    cdef pyxconv_pool_taps taps  # points into the four tables below, which it keeps alive
    cdef int typenum
    cdef const int64_t[::1] tap_offset, col_lo, col_hi
    cdef const int[::1] first_col_tap

    def __init__(self, dtype, tuple x_shape, tuple out_shape,
                 Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                 Py_ssize_t s_d, Py_ssize_t s_h, Py_ssize_t s_w,
                 Py_ssize_t p_d, Py_ssize_t p_h, Py_ssize_t p_w,
                 Py_ssize_t d_d, Py_ssize_t d_h, Py_ssize_t d_w,
                 const int64_t[::1] tap_offset, const int64_t[::1] col_lo,
                 const int64_t[::1] col_hi, const int[::1] first_col_tap, int n_threads):
        dtype = np.dtype(dtype)
        if dtype == np.float32:
            self.typenum = cnp.NPY_FLOAT32
        elif dtype == np.float64:
            self.typenum = cnp.NPY_FLOAT64
        else:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if len(x_shape) != 4 or len(out_shape) != 4 or x_shape[0] != out_shape[0]:
            raise ValueError(f"x_shape {x_shape} and out_shape {out_shape} must be "
                             "(P, D, H, W) shapes of the same P")
        if (min(x_shape[1:] + out_shape[1:]) < 1 or min(k_d, k_h, k_w, s_d, s_h, s_w,
                d_d, d_h, d_w, n_threads) < 1 or min(p_d, p_h, p_w, x_shape[0]) < 0):
            raise ValueError("inconsistent arguments for a max pool")
        _check_tap_tables(tap_offset, col_lo, col_hi, first_col_tap, k_d * k_h * k_w, k_w,
                          out_shape[3])
        self.z = _pool_sizes(x_shape[0], x_shape[1], x_shape[2], x_shape[3], out_shape[1],
                             out_shape[2], out_shape[3], k_d, k_h, k_w, s_d, s_h, s_w,
                             p_d, p_h, p_w, d_d, d_h, d_w, n_threads)
        self.tap_offset, self.col_lo, self.col_hi = tap_offset, col_lo, col_hi
        self.first_col_tap = first_col_tap
        self.taps.tap_offset = &self.tap_offset[0]
        self.taps.col_lo = &self.col_lo[0]
        self.taps.col_hi = &self.col_hi[0]
        self.taps.first_col_tap = &self.first_col_tap[0]

    def __call__(self, x, out):
        cdef const pyxconv_pool_sizes* z = &self.z
        cdef void* xd = array_data(x, "x", self.typenum, z.planes * z.in_d * z.in_h * z.in_w)
        cdef void* od = array_data(out, "out", self.typenum,
                                   z.planes * z.out_d * z.out_h * z.out_w, True)
        if z.planes == 0:
            return
        cdef pyxconv_interrupt st
        pyxconv_interrupt_init(&st)
        cdef int failed
        with nogil:
            if self.typenum == cnp.NPY_FLOAT32:
                failed = _max_pool_run(<const float*>xd, <float*>od, <int64_t*>NULL, z,
                                       &self.taps, &st)
            else:
                failed = _max_pool_run(<const double*>xd, <double*>od, <int64_t*>NULL, z,
                                       &self.taps, &st)
        pyxconv_interrupt_raise(&st)
        if failed:
            raise MemoryError("max_pool: no memory for the per-thread scratch rows")


def max_pool_backward(const floating[:, ::1] grad_out, const int64_t[:, ::1] switches,
                      floating[:, ::1] grad_x, int n_threads):
    """grad_x (P, H*W) = zeros + grad_out (P, L) added at the switches, plane by plane.

    Each plane is zeroed just before its additions, while it stays in
    cache: with ``np.zeros`` instead, a large gradient was zeroed in a
    separate pass over memory (a memset when the allocator reuses memory),
    which cost as much as the scatter itself.
    """
    cdef Py_ssize_t planes = grad_out.shape[0], n_out = grad_out.shape[1]
    cdef Py_ssize_t plane_size = grad_x.shape[1]
    cdef Py_ssize_t p, i
    cdef floating* dst
    cdef const floating* src
    cdef const int64_t* where
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for p in prange(planes, nogil=True, schedule="dynamic", chunksize=_chunk(planes, n_threads),
                    num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        dst = &grad_x[p, 0]
        src = &grad_out[p, 0]
        where = &switches[p, 0]
        for i in range(plane_size):
            dst[i] = 0
        for i in range(n_out):
            dst[where[i]] += src[i]
    pyxconv_interrupt_raise(stp)


cdef inline Py_ssize_t _tile_misses(const int64_t* switches, Py_ssize_t oh0, Py_ssize_t oh1,
                                    Py_ssize_t out_w, Py_ssize_t in_w, Py_ssize_t k_h,
                                    Py_ssize_t k_w) noexcept nogil:
    """How many of the windows in output rows [oh0, oh1) have their switch outside them.

    ``switches`` points at output row oh0. Window (oh, ow) covers the k_h x
    k_w tile whose top-left element is ``oh * k_h * W + ow * k_w``.
    """
    cdef int64_t origin, local, a
    cdef Py_ssize_t oh, ow, misses = 0
    cdef const int64_t* row
    for oh in range(oh0, oh1):
        origin = oh * k_h * in_w
        row = switches + (oh - oh0) * out_w
        if k_h == 2 and k_w == 2:
            for ow in range(out_w):
                local = row[ow] - origin - 2 * ow
                misses += ((local != 0) & (local != 1) & (local != in_w)
                           & (local != in_w + 1))
        else:
            for ow in range(out_w):
                local = row[ow] - origin - ow * k_w
                if local < 0 or local >= k_h * in_w:
                    misses += 1
                else:
                    a = local // in_w
                    misses += local - a * in_w >= k_w
    return misses


cdef inline Py_ssize_t _tile_rows(const floating* values, const int64_t* switches,
                                  floating* plane, Py_ssize_t oh0, Py_ssize_t oh1,
                                  Py_ssize_t out_w, Py_ssize_t in_w, Py_ssize_t zero_end,
                                  Py_ssize_t k_h, Py_ssize_t k_w) noexcept nogil:
    """Output rows [oh0, oh1) of a plane tiled by k_h x k_w windows, put in place.

    ``values`` and ``switches`` point at output row oh0. If a switch lies
    outside its window, returns the number of such windows having written
    nothing. Otherwise zeroes the plane's elements [oh0 * k_h * W, zero_end)
    (one contiguous block), writes each value at its switch, and returns 0.

    Check, zero, write: three plain loops with no branch that depends on the
    data (the write's bounds test is always true here; it keeps the write
    inside the block even if another thread changed a switch since the
    check). A single loop of per-element selects (value or zero) ran 4x
    slower: the compiler turned the selects into branches that mispredict on
    every other tap.
    """
    cdef Py_ssize_t i
    cdef Py_ssize_t first = oh0 * k_h * in_w
    cdef uint64_t position
    cdef Py_ssize_t misses = _tile_misses(switches, oh0, oh1, out_w, in_w, k_h, k_w)
    if misses:
        return misses
    for i in range(first, zero_end):
        plane[i] = 0
    for i in range((oh1 - oh0) * out_w):
        position = <uint64_t>(switches[i] - first)
        if position < <uint64_t>(zero_end - first):
            plane[first + <Py_ssize_t>position] = values[i]
    return 0


def scatter_into_tiles(const floating[:, :, ::1] values, const int64_t[:, :, ::1] switches,
                       floating[:, :, ::1] out, Py_ssize_t k_h, Py_ssize_t k_w,
                       int n_threads):
    """out (P, H, W) = zeros with values (P, OH, OW) put at their switches, if they all fit.

    The planes of ``out`` are tiled by non-overlapping k_h x k_w windows from
    the origin (``OH * k_h <= H``, ``OW * k_w <= W``). When every switch lies
    in its own window, no two values share an element, so max-pool's
    backward (a scatter-add) and unpooling (a scatter) both reduce to
    zeroing each block of rows while it is in cache and writing the values:
    no separate zeroing pass over memory and no separate range check. Tasks
    are whole planes, or blocks of output rows when there are few planes.

    Returns 0 when every switch lies in its own window. Otherwise returns
    the number of misses seen before the tasks stopped (they stop once one
    is seen); ``out`` is then incomplete and the caller takes the general
    path.
    """
    cdef Py_ssize_t planes = out.shape[0], in_h = out.shape[1], in_w = out.shape[2]
    cdef Py_ssize_t out_h = values.shape[1], out_w = values.shape[2]
    cdef Py_ssize_t rows_per_task = out_h if planes >= 8 * n_threads else 1
    cdef Py_ssize_t blocks = (out_h + rows_per_task - 1) // rows_per_task
    cdef Py_ssize_t n_tasks = planes * blocks
    cdef Py_ssize_t task, p, oh0, oh1, zero_end, block_misses
    cdef Py_ssize_t misses = 0
    cdef int stop = 0
    cdef volatile int* stop_flag = &stop  # shared: variables assigned in prange are private
    # Switches from an overlapping pool miss at once: find out before waking threads.
    misses = _tile_misses(&switches[0, 0, 0], 0, rows_per_task, out_w, in_w, k_h, k_w)
    if misses:
        return misses
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for task in prange(n_tasks, nogil=True, schedule="dynamic",
                       chunksize=_chunk(n_tasks, n_threads), num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        if stop_flag[0]:
            continue
        p = task // blocks
        oh0 = (task - p * blocks) * rows_per_task
        oh1 = oh0 + rows_per_task if oh0 + rows_per_task < out_h else out_h
        zero_end = oh1 * k_h * in_w if oh1 < out_h else in_h * in_w
        block_misses = _tile_rows(&values[p, oh0, 0], &switches[p, oh0, 0], &out[p, 0, 0],
                                  oh0, oh1, out_w, in_w, zero_end, k_h, k_w)
        if block_misses:
            stop_flag[0] = 1
            misses += block_misses
    pyxconv_interrupt_raise(stp)
    return misses


def max_unpool(const floating[:, ::1] x, const int64_t[:, ::1] switches,
               floating[:, ::1] out, int n_threads):
    """out (P, M) = zeros, then out[p, switches[p, i]] = x[p, i] in order of i (last wins).

    Each plane is zeroed just before its writes (see max_pool_backward).
    """
    cdef Py_ssize_t planes = x.shape[0], n_in = x.shape[1]
    cdef Py_ssize_t plane_size = out.shape[1]
    cdef Py_ssize_t p, i
    cdef floating* dst
    cdef const floating* src
    cdef const int64_t* where
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for p in prange(planes, nogil=True, schedule="dynamic", chunksize=_chunk(planes, n_threads),
                    num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        dst = &out[p, 0]
        src = &x[p, 0]
        where = &switches[p, 0]
        for i in range(plane_size):
            dst[i] = 0
        for i in range(n_in):
            dst[where[i]] = src[i]
    pyxconv_interrupt_raise(stp)


def index_bounds(const int64_t[:, ::1] switches, int64_t[::1] lows, int64_t[::1] highs,
                 int n_threads):
    """lows[p], highs[p] = min and max of switches[p, :]: one pass for the range check."""
    cdef Py_ssize_t planes = switches.shape[0], n = switches.shape[1]
    cdef Py_ssize_t p, i
    cdef const int64_t* row
    cdef int64_t low, high, v
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for p in prange(planes, nogil=True, schedule="dynamic", chunksize=_chunk(planes, n_threads),
                    num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        row = &switches[p, 0]
        low = row[0]
        high = row[0]
        for i in range(1, n):
            v = row[i]
            low = v if v < low else low
            high = v if v > high else high
        lows[p] = low
        highs[p] = high
    pyxconv_interrupt_raise(stp)


def avg_pool_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                     Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                     Py_ssize_t s_d, Py_ssize_t s_h, Py_ssize_t s_w,
                     Py_ssize_t p_d, Py_ssize_t p_h, Py_ssize_t p_w,
                     Py_ssize_t d_d, Py_ssize_t d_h, Py_ssize_t d_w,
                     const int64_t[::1] div_d, const int64_t[::1] div_h,
                     const int64_t[::1] div_w, int64_t divisor_override, int n_threads):
    """out (P, OD, OH, OW) = window sums of x (P, D, H, W) / (div_d[od] * div_h[oh] * div_w[ow]).

    Window taps are spaced by the dilations (d_d, d_h, d_w); only taps inside
    the input are summed. ``divisor_override`` replaces the divisor when
    non-zero. Per output row (od, oh), the window's input rows (every depth
    tap, then every row tap, in order) are first summed column by column
    into a float64 buffer of W entries (each thread allocates its own), a
    loop the compiler vectorises; each output then adds its column taps.
    """
    cdef Py_ssize_t planes = x.shape[0], in_d = x.shape[1], in_h = x.shape[2]
    cdef Py_ssize_t in_w = x.shape[3]
    cdef Py_ssize_t out_d = out.shape[1], out_h = out.shape[2], out_w = out.shape[3]
    cdef Py_ssize_t rows = out_d * out_h
    cdef Py_ssize_t n_tasks = planes * rows
    cdef Py_ssize_t chunk = _chunk(n_tasks, n_threads)
    cdef Py_ssize_t task, p, od, oh, ow, r, w, w0, w1, a, a0, a1, c, c0, c1, b, b0, b1
    cdef Py_ssize_t start_d, start_h, start_w
    cdef int64_t row_div
    cdef const floating* row
    cdef floating* orow
    cdef double* colsum = NULL
    cdef double total, divisor
    cdef int failed = 0
    cdef int* failed_flag = &failed  # variables assigned in a parallel block are private
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    with nogil, parallel(num_threads=n_threads):
        colsum = <double*>malloc(in_w * sizeof(double))
        if colsum == NULL:
            failed_flag[0] = 1
        for task in prange(n_tasks, schedule="dynamic", chunksize=chunk):
            if pyxconv_interrupt_poll(stp):
                continue
            if colsum == NULL:
                continue
            p = task // rows
            r = task - p * rows
            od = _row_depth(r, out_d, out_h)
            oh = r - od * out_h
            start_d = od * s_d - p_d
            c0 = pyxconv_pool_first_tap(start_d, d_d)
            c1 = pyxconv_pool_end_tap(start_d, d_d, k_d, in_d)
            start_h = oh * s_h - p_h
            a0 = pyxconv_pool_first_tap(start_h, d_h)
            a1 = pyxconv_pool_end_tap(start_h, d_h, k_h, in_h)
            for w in range(in_w):
                colsum[w] = 0
            for c in range(c0, c1):
                for a in range(a0, a1):
                    row = &x[p, start_d + c * d_d, start_h + a * d_h, 0]
                    for w in range(in_w):
                        colsum[w] = colsum[w] + row[w]
            orow = &out[p, od, oh, 0]
            row_div = div_d[od] * div_h[oh]
            if d_w == 1:
                for ow in range(out_w):
                    w0 = ow * s_w - p_w
                    w1 = w0 + k_w
                    if w0 < 0:
                        w0 = 0
                    if w1 > in_w:
                        w1 = in_w
                    total = 0
                    for w in range(w0, w1):
                        total = total + colsum[w]
                    if divisor_override != 0:
                        divisor = <double>divisor_override
                    else:
                        divisor = <double>(row_div * div_w[ow])
                    orow[ow] = <floating>(total / divisor)
            else:
                for ow in range(out_w):
                    start_w = ow * s_w - p_w
                    b0 = pyxconv_pool_first_tap(start_w, d_w)
                    b1 = pyxconv_pool_end_tap(start_w, d_w, k_w, in_w)
                    total = 0
                    for b in range(b0, b1):
                        total = total + colsum[start_w + b * d_w]
                    if divisor_override != 0:
                        divisor = <double>divisor_override
                    else:
                        divisor = <double>(row_div * div_w[ow])
                    orow[ow] = <floating>(total / divisor)
        free(colsum)
    pyxconv_interrupt_raise(stp)
    if failed:
        raise MemoryError("avg_pool: no memory for the per-thread scratch rows")


def avg_pool_backward(const floating[:, :, :, ::1] scaled, floating[:, :, :, ::1] grad_x,
                      const int64_t[::1] od_ptr, const int64_t[::1] od_idx,
                      const int64_t[::1] oh_ptr, const int64_t[::1] oh_idx,
                      const int64_t[::1] ow_ptr, const int64_t[::1] ow_idx,
                      const int64_t[::1] ow_pick, bint single, int n_threads):
    """grad_x (P, D, H, W): each element sums ``scaled`` (grad_out / divisor) over its windows.

    The windows holding input index i along a dimension are listed by the
    caller, ascending, as ``idx[ptr[i]:ptr[i + 1]]`` (``od_*`` for depth,
    ``oh_*`` for rows, ``ow_*`` for columns); with dilation they need not be
    contiguous. Per input row (id, ih), the window rows are summed into a
    float64 buffer of OW + 1 entries (each thread allocates its own), in
    the order od, then oh; then each element adds its window columns. When
    no column lies in two windows (``single``), element iw just reads entry
    ``ow_pick[iw]``: its window, or the always-zero entry OW when it lies in
    none. The order of every sum is fixed, so the thread count never
    changes the result.
    """
    cdef Py_ssize_t planes = grad_x.shape[0], in_d = grad_x.shape[1], in_h = grad_x.shape[2]
    cdef Py_ssize_t in_w = grad_x.shape[3]
    cdef Py_ssize_t out_w = scaled.shape[3]
    cdef Py_ssize_t rows = in_d * in_h
    cdef Py_ssize_t n_tasks = planes * rows
    cdef Py_ssize_t chunk = _chunk(n_tasks, n_threads)
    cdef Py_ssize_t task, p, r, i_d, ih, iw, ow, jd, jh, j
    cdef const floating* row
    cdef floating* grow
    cdef const int64_t* pick = &ow_pick[0]
    cdef double* rowsum = NULL
    cdef double total
    cdef int failed = 0
    cdef int* failed_flag = &failed  # variables assigned in a parallel block are private
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    with nogil, parallel(num_threads=n_threads):
        rowsum = <double*>malloc((out_w + 1) * sizeof(double))
        if rowsum == NULL:
            failed_flag[0] = 1
        for task in prange(n_tasks, schedule="dynamic", chunksize=chunk):
            if pyxconv_interrupt_poll(stp):
                continue
            if rowsum == NULL:
                continue
            p = task // rows
            r = task - p * rows
            if in_d == 1:
                i_d = 0
                ih = r
            else:
                i_d = r // in_h
                ih = r - i_d * in_h
            for ow in range(out_w + 1):
                rowsum[ow] = 0
            for jd in range(od_ptr[i_d], od_ptr[i_d + 1]):
                for jh in range(oh_ptr[ih], oh_ptr[ih + 1]):
                    row = &scaled[p, od_idx[jd], oh_idx[jh], 0]
                    for ow in range(out_w):
                        rowsum[ow] = rowsum[ow] + row[ow]
            grow = &grad_x[p, i_d, ih, 0]
            if single:
                for iw in range(in_w):
                    grow[iw] = <floating>rowsum[pick[iw]]
            else:
                for iw in range(in_w):
                    total = 0
                    for j in range(ow_ptr[iw], ow_ptr[iw + 1]):
                        total = total + rowsum[ow_idx[j]]
                    grow[iw] = <floating>total
        free(rowsum)
    pyxconv_interrupt_raise(stp)
    if failed:
        raise MemoryError("avg_pool backward: no memory for the per-thread scratch rows")


def plane_mean(const floating[:, ::1] x, floating[::1] out, int n_threads):
    """out[p] = mean of x[p, :] (P planes of L elements): the global average pool.

    Four float64 partial sums in a fixed order break the latency chain of
    one running sum; the order never depends on the thread count.
    """
    cdef Py_ssize_t planes = x.shape[0], n = x.shape[1]
    cdef Py_ssize_t p, i, n4 = n - n % 4
    cdef const floating* src
    cdef double t0, t1, t2, t3
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for p in prange(planes, nogil=True, schedule="dynamic", chunksize=_chunk(planes, n_threads),
                    num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        src = &x[p, 0]
        t0 = 0
        t1 = 0
        t2 = 0
        t3 = 0
        for i in range(0, n4, 4):
            t0 = t0 + src[i]
            t1 = t1 + src[i + 1]
            t2 = t2 + src[i + 2]
            t3 = t3 + src[i + 3]
        for i in range(n4, n):
            t0 = t0 + src[i]
        out[p] = <floating>(((t0 + t1) + (t2 + t3)) / <double>n)
    pyxconv_interrupt_raise(stp)
