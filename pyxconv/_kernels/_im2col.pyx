"""im2col and col2im for 1-, 2- and 3-D convolution.

Design
------
One 3-D kernel serves every dimensionality: a 1-D input is viewed as
(N, C, 1, 1, W) and a 2-D input as (N, C, 1, H, W), which costs nothing.

The column matrix has one row per (channel, kernel offset) pair,
``row = c * KD*KH*KW + (a * KH + b) * KW + e``, and one column per output
position of each sample in the chunk. Where a column lives in the flat
buffer ``cols`` is set by two strides chosen by the caller:

    cols[(n - n_start) * sample_stride + row * row_stride + r_local * OW + ow]

with ``r_local`` the output row (od, oh) counted from ``row_start``. This
lets the Python layer choose the GEMM layout by measurement:
``(K, nb*L)`` (one large GEMM for the chunk) or ``(nb, K, L)`` (one GEMM a
sample) without a second kernel.

Chunks: a call fills samples ``[n_start, n_start + n_count)`` and output rows
``[row_start, row_start + row_count)`` only, so large inputs are processed in
pieces whose buffer stays under the workspace cap.

Stride 2 along the width, without dilation (downsampling convolutions,
and the transposed convolutions that upsample by 2): taps e and e + 1 of a
kernel row read or write the even and odd elements of one stretch of an
input row, so they are handled in one pass with contiguous loads and stores
(``_tap_pair``) instead of two passes of stride-2 ones. On the 4x4,
stride-2 transposed convolution of the benchmarks this took col2im from
3.2 to 1.9 ms and im2col from 3.0 to 1.9 ms (1 thread). col2im still adds
into each input element in tap order, so its sums are unchanged to the bit.

Parallelism: both directions loop over independent (sample, channel) tasks,
scheduled "guided": a thread that loses its core (to a BLAS worker still
spinning after a GEMM, or another process) takes fewer tasks instead of
holding up the region. Which thread runs a task does not change its result.
im2col writes disjoint rows of ``cols``; col2im adds into the disjoint input
plane of its own (sample, channel), in a fixed order, so its result does not
depend on the thread count, bit for bit.

The callers guarantee: arrays C-contiguous, every size >= 1, strides and
dilations >= 1, paddings >= 0, and ``cols`` large enough for the strides.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from pyxconv._kernels._interrupt cimport (
    pyxconv_interrupt, pyxconv_interrupt_init, pyxconv_interrupt_poll, pyxconv_interrupt_raise)


cdef extern from *:
    """
    /* dst[i] += src[i] for lo <= i < hi; the two never overlap (restrict), which
       spares the compiler's run-time overlap test on loops of a few values. */
    static inline void pyxconv_add_float(float* restrict dst, const float* restrict src,
                                         Py_ssize_t lo, Py_ssize_t hi) {
        for (Py_ssize_t i = lo; i < hi; i++) dst[i] += src[i];
    }
    static inline void pyxconv_add_double(double* restrict dst, const double* restrict src,
                                          Py_ssize_t lo, Py_ssize_t hi) {
        for (Py_ssize_t i = lo; i < hi; i++) dst[i] += src[i];
    }
    """
    void pyxconv_add_float(float* dst, const float* src, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil
    void pyxconv_add_double(double* dst, const double* src, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil


cdef inline void _add(floating* dst, const floating* src, Py_ssize_t lo,
                      Py_ssize_t hi) noexcept nogil:
    """dst[i] += src[i] for lo <= i < hi (the two do not overlap)."""
    if floating is float:
        # AVX-512 pays for its call on long runs only: LeNet's 10-value rows ran slower
        if _use_avx512 and hi - lo >= 64:
            pyxconv_add_avx512(dst + lo, src + lo, hi - lo)
        else:
            pyxconv_add_float(dst, src, lo, hi)
    else:
        pyxconv_add_double(dst, src, lo, hi)


cdef inline Py_ssize_t _first_valid(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    """Smallest o >= 0 with o * stride + offset >= 0."""
    if offset >= 0:
        return 0
    return (-offset + stride - 1) // stride


cdef inline Py_ssize_t _end_valid(Py_ssize_t offset, Py_ssize_t stride,
                                  Py_ssize_t size, Py_ssize_t n_out) noexcept nogil:
    """One past the largest o < n_out with o * stride + offset < size."""
    cdef Py_ssize_t last = size - 1 - offset
    if last < 0:
        return 0
    last = last // stride + 1
    return last if last < n_out else n_out


cdef inline void _copy_row(const floating* src, floating* dst, Py_ssize_t n_out,
                           Py_ssize_t stride, Py_ssize_t offset, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil:
    """dst[o] = src[o * stride + offset] for lo <= o < hi, zero elsewhere in [0, n_out)."""
    cdef Py_ssize_t o
    for o in range(lo):
        dst[o] = 0
    if stride == 1:
        # memcpy rather than a loop: rows are often short (10 values in LeNet's
        # second layer), and the loop's setup cost more than the copy
        if hi > lo:
            memcpy(dst + lo, src + offset + lo, (hi - lo) * sizeof(floating))
    else:
        for o in range(lo, hi):
            dst[o] = src[o * stride + offset]
    for o in range(hi, n_out):
        dst[o] = 0


cdef inline void _copy_rows(const floating* plane, floating* dst, Py_ssize_t id_,
                            Py_ssize_t ih0, Py_ssize_t row_count, Py_ssize_t in_d,
                            Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t out_w,
                            Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t offset_w,
                            Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """im2col of one tap over ``row_count`` output rows of one depth slice.

    Output row r reads input row ``ih0 + r * stride_h`` of depth ``id_``; rows
    outside the input (padding) are zeros. The valid rows are computed once,
    so the copy loop has no test per row: on LeNet's layers, whose rows are
    10 and 28 values long, the tests and the loop set-up cost more than the
    copies.
    """
    cdef Py_ssize_t r, r_lo, r_hi
    cdef const floating* src
    if id_ < 0 or id_ >= in_d:
        r_lo = r_hi = row_count
    else:
        r_lo = _valid_range_lo(ih0, stride_h, row_count)
        r_hi = _valid_range_hi(ih0, stride_h, in_h, row_count, r_lo)
    if r_lo > 0:
        memset(dst, 0, r_lo * out_w * sizeof(floating))
    if r_lo < r_hi:
        src = plane + (id_ * in_h + ih0 + r_lo * stride_h) * in_w
        for r in range(r_lo, r_hi):
            _copy_row(src, dst + r * out_w, out_w, stride_w, offset_w, lo, hi)
            src = src + stride_h * in_w
    if r_hi < row_count:
        memset(dst + r_hi * out_w, 0, (row_count - r_hi) * out_w * sizeof(floating))


cdef inline void _add_rows(const floating* src, floating* plane, Py_ssize_t id_,
                           Py_ssize_t ih0, Py_ssize_t row_count, Py_ssize_t in_d,
                           Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t out_w,
                           Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t offset_w,
                           Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """col2im of one tap over ``row_count`` output rows of one depth slice.

    The adjoint of _copy_rows: column row r is added into input row
    ``ih0 + r * stride_h`` of depth ``id_``; rows in the padding are skipped.
    The same rows in the same order as the general loop, so the same sums.
    """
    cdef Py_ssize_t r, r_lo, r_hi
    cdef floating* row
    if id_ < 0 or id_ >= in_d:
        return
    r_lo = _valid_range_lo(ih0, stride_h, row_count)
    r_hi = _valid_range_hi(ih0, stride_h, in_h, row_count, r_lo)
    if r_lo < r_hi:
        row = plane + (id_ * in_h + ih0 + r_lo * stride_h) * in_w
        for r in range(r_lo, r_hi):
            _add_row(src + r * out_w, row, stride_w, offset_w, lo, hi)
            row = row + stride_h * in_w


cdef inline void _add_row(const floating* src, floating* dst, Py_ssize_t stride,
                          Py_ssize_t offset, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dst[o * stride + offset] += src[o] for lo <= o < hi."""
    cdef Py_ssize_t o
    if stride == 1:
        dst = dst + offset
        for o in range(lo, hi):
            dst[o] += src[o]
    else:
        for o in range(lo, hi):
            dst[o * stride + offset] += src[o]


cdef inline Py_ssize_t _valid_range_lo(Py_ssize_t offset, Py_ssize_t stride,
                                      Py_ssize_t n_out) noexcept nogil:
    """First output column whose tap at ``offset`` lies in the input (at most n_out)."""
    cdef Py_ssize_t lo = _first_valid(offset, stride)
    # Padding wider than the output row: no column of it is valid.
    return lo if lo < n_out else n_out


cdef inline Py_ssize_t _valid_range_hi(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                      Py_ssize_t n_out, Py_ssize_t lo) noexcept nogil:
    """One past the last such column, and never below ``lo``."""
    cdef Py_ssize_t hi = _end_valid(offset, stride, size, n_out)
    return hi if hi > lo else lo


cdef inline void _tap_pair(const floating* plane, floating* src, bint fold, Py_ssize_t row_stride,
                                Py_ssize_t row_start, Py_ssize_t row_count,
                                Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                                Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t a, Py_ssize_t b,
                                Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t pad_d,
                                Py_ssize_t pad_h, Py_ssize_t dil_d, Py_ssize_t dil_h,
                                Py_ssize_t offset_w, Py_ssize_t lo0, Py_ssize_t hi0,
                                Py_ssize_t lo1, Py_ssize_t hi1, Py_ssize_t pair_lo,
                                Py_ssize_t pair_hi) noexcept nogil:
    """im2col or col2im of taps e and e + 1 of one kernel row (stride 2 along the width,
    no dilation).

    ``src`` is the column row of tap e; tap e + 1's follows it at
    ``row_stride``. Tap e reads or adds at ``2o + offset_w`` for o in
    [lo0, hi0), and tap e + 1 one column to the right for o in [lo1, hi1);
    over their common range [pair_lo, pair_hi) both go in one pass, the
    edges one tap at a time.
    """
    cdef Py_ssize_t r, od, oh, id_, ih, o
    cdef floating* src1 = src + row_stride
    cdef floating* plane_row
    od = row_start // out_h
    oh = row_start - od * out_h
    for r in range(row_count):
        id_ = od * stride_d - pad_d + a * dil_d
        ih = oh * stride_h - pad_h + b * dil_h
        if not (0 <= id_ < in_d and 0 <= ih < in_h):
            if not fold:
                for o in range(out_w):
                    src[o] = 0
                    src1[o] = 0
        elif not fold:
            _copy_row_pair(plane + (id_ * in_h + ih) * in_w, src, src1, out_w, offset_w,
                           lo0, hi0, lo1, hi1, pair_lo, pair_hi)
        else:
            plane_row = <floating*>plane + (id_ * in_h + ih) * in_w
            _add_row(src, plane_row, 2, offset_w, lo0, pair_lo if pair_lo < hi0 else hi0)
            _add_row(src1, plane_row, 2, offset_w + 1, lo1, pair_lo if pair_lo < hi1 else hi1)
            _add_row_pair(src, src1, plane_row, offset_w, pair_lo, pair_hi)
            _add_row(src, plane_row, 2, offset_w, pair_hi if pair_hi > lo0 else lo0, hi0)
            _add_row(src1, plane_row, 2, offset_w + 1, pair_hi if pair_hi > lo1 else lo1, hi1)
        src = src + out_w
        src1 = src1 + out_w
        oh = oh + 1
        if oh == out_h:
            oh = 0
            od = od + 1


cdef inline void _copy_row_pair(const floating* src, floating* dst0, floating* dst1,
                                Py_ssize_t n_out, Py_ssize_t offset, Py_ssize_t lo0,
                                Py_ssize_t hi0, Py_ssize_t lo1, Py_ssize_t hi1,
                                Py_ssize_t pair_lo, Py_ssize_t pair_hi) noexcept nogil:
    """_copy_row of taps e and e + 1 (stride 2, no dilation) into their two column rows.

    Over the common valid range one pass reads a contiguous stretch of the
    input row and deals its even and odd elements to the two rows; the edges
    go one tap at a time, and zeros fill what lies in the padding.
    """
    cdef Py_ssize_t o
    cdef const floating* s = src + offset
    for o in range(lo0):
        dst0[o] = 0
    for o in range(lo1):
        dst1[o] = 0
    for o in range(lo0, pair_lo if pair_lo < hi0 else hi0):
        dst0[o] = s[2 * o]
    for o in range(lo1, pair_lo if pair_lo < hi1 else hi1):
        dst1[o] = s[2 * o + 1]
    for o in range(pair_lo, pair_hi):
        dst0[o] = s[2 * o]
        dst1[o] = s[2 * o + 1]
    for o in range(pair_hi if pair_hi > lo0 else lo0, hi0):
        dst0[o] = s[2 * o]
    for o in range(pair_hi if pair_hi > lo1 else lo1, hi1):
        dst1[o] = s[2 * o + 1]
    for o in range(hi0, n_out):
        dst0[o] = 0
    for o in range(hi1, n_out):
        dst1[o] = 0


cdef inline void _add_row_pair(const floating* src0, const floating* src1, floating* dst,
                               Py_ssize_t offset, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dst[2o + offset] += src0[o] and dst[2o + offset + 1] += src1[o] for lo <= o < hi.

    Two neighbouring taps of a stride-2 fold fill the even and the odd
    columns of one output stretch: one pass with contiguous stores, which
    the compiler vectorises, instead of two passes of strided ones (col2im of
    the 4x4, stride-2 transposed convolution took 3.2 ms one tap at a time).
    """
    cdef Py_ssize_t o
    dst = dst + offset
    for o in range(lo, hi):
        dst[2 * o] += src0[o]
        dst[2 * o + 1] += src1[o]


cdef inline void _unfold_plane(const floating* plane, floating* cols, bint fold,
                               Py_ssize_t c, Py_ssize_t sample_offset, Py_ssize_t row_stride,
                               Py_ssize_t row_start, Py_ssize_t row_count,
                               Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                               Py_ssize_t out_h, Py_ssize_t out_w,
                               Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                               Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                               Py_ssize_t dil_d, Py_ssize_t dil_h,
                               Py_ssize_t dil_w) noexcept nogil:
    """im2col (fold false) or col2im (fold true) of one (sample, channel) plane.

    For col2im ``plane`` is written through (it is the gradient plane); the
    const qualifier is cast away by the caller.
    """
    cdef Py_ssize_t a, b, e, r, od, oh, id_, ih, row, lo, hi, offset_w
    cdef Py_ssize_t lo1, hi1, pair_lo, pair_hi
    cdef Py_ssize_t kernel_volume = k_d * k_h * k_w
    cdef floating* dst
    cdef Py_ssize_t o
    cdef bint paired = stride_w == 2 and dil_w == 1
    for a in range(k_d):
        for b in range(k_h):
            for e in range(k_w):
                if paired and e % 2 == 1:
                    continue  # folded with tap e - 1
                row = c * kernel_volume + (a * k_h + b) * k_w + e
                # Valid output columns for this tap: hoisted out of the row loop.
                offset_w = e * dil_w - pad_w
                lo = _valid_range_lo(offset_w, stride_w, out_w)
                hi = _valid_range_hi(offset_w, stride_w, in_w, out_w, lo)
                if paired and e + 1 < k_w:
                    # Taps e and e + 1 together. For col2im each input element still
                    # receives its contributions in tap order, so the sums are unchanged.
                    lo1 = _valid_range_lo(offset_w + 1, stride_w, out_w)
                    hi1 = _valid_range_hi(offset_w + 1, stride_w, in_w, out_w, lo1)
                    pair_lo = lo if lo > lo1 else lo1
                    pair_hi = hi if hi < hi1 else hi1
                    if pair_hi < pair_lo:
                        pair_hi = pair_lo
                    _tap_pair(plane, cols + sample_offset + row * row_stride, fold, row_stride,
                                   row_start, row_count, in_d, in_h, in_w, out_h, out_w,
                                   a, b, stride_d, stride_h, pad_d, pad_h, dil_d, dil_h,
                                   offset_w, lo, hi, lo1, hi1, pair_lo, pair_hi)
                    continue
                od = row_start // out_h
                oh = row_start - od * out_h
                dst = cols + sample_offset + row * row_stride
                if oh + row_count <= out_h:
                    # All rows in one depth slice (always so in 1-D and 2-D): the
                    # input rows they touch are known in advance, no test per row.
                    if fold:
                        _add_rows(dst, <floating*>plane, od * stride_d - pad_d + a * dil_d,
                                  oh * stride_h - pad_h + b * dil_h, row_count, in_d, in_h,
                                  in_w, out_w, stride_h, stride_w, offset_w, lo, hi)
                    else:
                        _copy_rows(plane, dst, od * stride_d - pad_d + a * dil_d,
                                   oh * stride_h - pad_h + b * dil_h, row_count, in_d, in_h,
                                   in_w, out_w, stride_h, stride_w, offset_w, lo, hi)
                    continue
                for r in range(row_count):
                    id_ = od * stride_d - pad_d + a * dil_d
                    ih = oh * stride_h - pad_h + b * dil_h
                    if id_ < 0 or id_ >= in_d or ih < 0 or ih >= in_h:
                        if not fold:
                            for o in range(out_w):
                                dst[o] = 0
                    elif fold:
                        _add_row(dst, <floating*>plane + (id_ * in_h + ih) * in_w,
                                 stride_w, offset_w, lo, hi)
                    else:
                        _copy_row(plane + (id_ * in_h + ih) * in_w, dst, out_w,
                                  stride_w, offset_w, lo, hi)
                    dst = dst + out_w
                    oh = oh + 1
                    if oh == out_h:
                        oh = 0
                        od = od + 1


def im2col(const floating[:, :, :, :, ::1] x, floating[::1] cols,
           Py_ssize_t sample_stride, Py_ssize_t row_stride,
           Py_ssize_t n_start, Py_ssize_t n_count,
           Py_ssize_t row_start, Py_ssize_t row_count,
           Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
           Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
           Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
           Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
           Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
           int n_threads):
    """Unfold x of shape (N, C, D, H, W) into ``cols`` (see the module notes)."""
    cdef Py_ssize_t channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t task, n, c
    if n_count <= 0 or row_count <= 0 or cols.shape[0] == 0:
        return  # nothing to unfold (and no first element to point at)
    cdef floating* cols_ptr = &cols[0]
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for task in prange(n_count * channels, nogil=True, schedule="guided",
                       num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        n = task // channels
        c = task - n * channels
        _unfold_plane(&x[n_start + n, c, 0, 0, 0], cols_ptr, False, c, n * sample_stride,
                      row_stride, row_start, row_count, in_d, in_h, in_w, out_h, out_w,
                      k_d, k_h, k_w, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                      dil_d, dil_h, dil_w)
    pyxconv_interrupt_raise(stp)


def col2im(const floating[::1] cols, floating[:, :, :, :, ::1] grad_x,
           Py_ssize_t sample_stride, Py_ssize_t row_stride,
           Py_ssize_t n_start, Py_ssize_t n_count,
           Py_ssize_t row_start, Py_ssize_t row_count,
           Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
           Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
           Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
           Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
           Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
           int n_threads):
    """Fold ``cols`` back, adding into grad_x of shape (N, C, D, H, W).

    The adjoint of :func:`im2col` for the same arguments. grad_x is added to,
    not overwritten, so chunks over output rows accumulate. Each task owns one
    (sample, channel) plane of grad_x and adds into it in a fixed order.
    """
    cdef Py_ssize_t channels = grad_x.shape[1]
    cdef Py_ssize_t in_d = grad_x.shape[2], in_h = grad_x.shape[3], in_w = grad_x.shape[4]
    cdef Py_ssize_t task, n, c
    if n_count <= 0 or row_count <= 0 or cols.shape[0] == 0:
        return  # nothing to fold (and no first element to point at)
    cdef floating* cols_ptr = <floating*>&cols[0]  # only read when folding
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for task in prange(n_count * channels, nogil=True, schedule="guided",
                       num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        n = task // channels
        c = task - n * channels
        _unfold_plane(&grad_x[n_start + n, c, 0, 0, 0], cols_ptr, True, c, n * sample_stride,
                      row_stride, row_start, row_count, in_d, in_h, in_w, out_h, out_w,
                      k_d, k_h, k_w, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                      dil_d, dil_h, dil_w)
    pyxconv_interrupt_raise(stp)


# ---------------------------------------------------------------------------
# Whole per-sample convolution steps (im2col, GEMM, col2im) in one nogil loop.
#
# The GEMMs call the BLAS that SciPy links (scipy.linalg.cython_blas: OpenBLAS
# in SciPy's wheels, MKL under conda, Accelerate on macOS), cimported at build
# time, so every installation has the same path. One OpenMP loop over samples
# does all of a sample's work on one thread, without the GIL, so a thread never
# waits for another between the steps. The callers hold the BLAS to one thread
# meanwhile (pyxconv._parallel.blas_on_one_thread).

from scipy.linalg.cython_blas cimport dgemm as _blas_dgemm, sgemm as _blas_sgemm

#: The largest size the BLAS's 32-bit integers hold; callers keep every GEMM
#: dimension and leading dimension at or under it (:func:`gemm_dimension_limit`).
cdef Py_ssize_t _GEMM_INT_MAX = 2147483647


def gemm_dimension_limit():
    """The largest m, n, k or leading dimension the per-sample kernels' GEMM accepts."""
    return _GEMM_INT_MAX


cdef extern from "simd_kernels.h":
    int PYXCONV_AVX512_KERNEL_BUILT
    int pyxconv_cpu_has_avx512f() noexcept nogil
    void pyxconv_transpose_f32(const float* src, float* dst, Py_ssize_t rows,
                               Py_ssize_t cols) noexcept nogil
    double pyxconv_sum_f32(const float* values, Py_ssize_t count) noexcept nogil
    void pyxconv_add_avx512(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void pyxconv_deinterleave_avx512(const float* row, float* even, float* odd,
                                     Py_ssize_t half) noexcept nogil
    void pyxconv_fold_plane_avx512(const float* cols, float* plane, float* buffer,
                                   int has_bias, float bias, Py_ssize_t c, Py_ssize_t positions,
                                   Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                                   Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t k_d,
                                   Py_ssize_t k_h, Py_ssize_t k_w, Py_ssize_t stride_h,
                                   Py_ssize_t stride_w, Py_ssize_t band_rows,
                                   const Py_ssize_t* tables) noexcept nogil


cdef extern from "gemm_kernels.h":
    int PYXCONV_ISA_NONE, PYXCONV_ISA_AVX2, PYXCONV_ISA_AVX512, PYXCONV_ISA_NEON
    int pyxconv_cpu_has_isa(int isa) noexcept nogil
    void pyxconv_sgemm_isa(int isa, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                           Py_ssize_t a_row, Py_ssize_t a_col, const float* b,
                           Py_ssize_t ldb, float* c, Py_ssize_t ldc,
                           int accumulate) noexcept nogil


# pyxconv's own float32 GEMM (gemm_kernels.h) serves the float32 products on the
# best instruction set the CPU has (AVX-512, AVX2 + FMA or NEON) unless set_isa
# picks a lower one; float64, small products and other CPUs use the BLAS.
# AVX-512's other helpers (simd_kernels.h) run when the ISA is AVX-512.
_ISA_NAMES = {"none": PYXCONV_ISA_NONE, "avx2": PYXCONV_ISA_AVX2,
              "avx512": PYXCONV_ISA_AVX512, "neon": PYXCONV_ISA_NEON}
cdef bint _avx512_available = PYXCONV_AVX512_KERNEL_BUILT and pyxconv_cpu_has_avx512f()


cdef int _best_isa():
    for isa in (PYXCONV_ISA_AVX512, PYXCONV_ISA_AVX2, PYXCONV_ISA_NEON):
        if pyxconv_cpu_has_isa(isa):
            return isa
    return PYXCONV_ISA_NONE


cdef int _gemm_isa = _best_isa()
cdef bint _use_avx512 = _gemm_isa == PYXCONV_ISA_AVX512 and _avx512_available


cdef inline Py_ssize_t _aligned_count(Py_ssize_t count, Py_ssize_t itemsize) noexcept nogil:
    """count rounded up to whole 64-byte lines of items."""
    cdef Py_ssize_t per_line = 64 // itemsize
    return (count + per_line - 1) // per_line * per_line


cdef inline void* _align_up(void* block) noexcept nogil:
    """The first 64-byte boundary in ``block``, allocated 64 bytes larger than needed.

    The own GEMM's loads of b are a tenth faster from line-aligned rows.
    """
    return <void*>((<size_t>block + 63) & ~(<size_t>63))


cdef inline floating _sum(const floating* values, Py_ssize_t count) noexcept nogil:
    """values[0] + ... + values[count - 1], accumulated in double in eight running
    sums added in a fixed order: the same bits on every run and thread. (float32
    in SSE2 registers, pyxconv_sum_f32, where the AVX-512 kernels are in use;
    the loop below gives the same sums.)"""
    cdef double lanes[8]
    cdef Py_ssize_t i, lane
    if floating is float and _use_avx512:
        return <floating>pyxconv_sum_f32(values, count)
    for lane in range(8):
        lanes[lane] = 0
    for i in range(count - count % 8):
        lanes[i % 8] += values[i]
    cdef double total = (((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                         + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])))
    for i in range(count - count % 8, count):
        total += values[i]
    return <floating>total


# Small products stay on the BLAS: the own kernel's tiles are 12 rows by 32 columns,
# and on LeNet's layers (6 and 16 output channels, 25 and 150 rows) it ran 5 to 8%
# slower than OpenBLAS.
cdef enum:
    _OWN_SGEMM_MIN_ROWS = 24
    _OWN_SGEMM_MIN_COLUMNS = 32
    _OWN_SGEMM_MIN_DEPTH = 32


cdef inline bint _own_sgemm_serves(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Whether a float32 product (m x k) @ (k x n) goes to pyxconv's own GEMM."""
    return (_gemm_isa != PYXCONV_ISA_NONE and m >= _OWN_SGEMM_MIN_ROWS and n >= _OWN_SGEMM_MIN_COLUMNS
            and k >= _OWN_SGEMM_MIN_DEPTH)


def isa_available(str isa):
    """Whether the own float32 GEMM can run on ``isa`` ("avx512", "avx2", "neon", "none") here."""
    if isa not in _ISA_NAMES:
        raise ValueError(f"unknown instruction set {isa!r}; known: {', '.join(_ISA_NAMES)}")
    return bool(pyxconv_cpu_has_isa(_ISA_NAMES[isa]))


def get_isa():
    """The instruction set the own float32 GEMM runs on ("none": every product on the BLAS)."""
    for name, value in _ISA_NAMES.items():
        if value == _gemm_isa:
            return name


def set_isa(str isa):
    """Run the own float32 GEMM on ``isa``, which :func:`isa_available` allows; returns the old one."""
    global _gemm_isa, _use_avx512
    if not isa_available(isa):
        raise ValueError(f"instruction set {isa!r} is not available on this CPU or build")
    previous = get_isa()
    _gemm_isa = _ISA_NAMES[isa]
    _use_avx512 = _gemm_isa == PYXCONV_ISA_AVX512 and _avx512_available
    return previous


def sgemm_own(const float[:, :] a, const float[:, :] b, float[:, :] c,
              bint transpose_a=False, bint accumulate=False, str isa=None):
    """``c = a @ b`` on pyxconv's own float32 GEMM, for tests.

    With transpose_a, ``a.T @ b``; with accumulate, ``c += ...``; ``isa``
    picks the instruction set (default: the one in use). Rows may be strided
    (views of wider arrays), elements within a row contiguous.
    """
    cdef int chosen = _gemm_isa if isa is None else _ISA_NAMES.get(isa, -1)
    if chosen == PYXCONV_ISA_NONE or chosen < 0 or not pyxconv_cpu_has_isa(chosen):
        raise RuntimeError(f"pyxconv's own GEMM is not available here on {isa or get_isa()!r}")
    if a.strides[1] != sizeof(float) or b.strides[1] != sizeof(float) \
            or c.strides[1] != sizeof(float) or a.strides[0] < 0 or b.strides[0] < 0 \
            or c.strides[0] < 0:
        raise ValueError("a, b and c need contiguous rows (and rows in increasing order)")
    cdef Py_ssize_t m = a.shape[1] if transpose_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if transpose_a else a.shape[1]
    cdef Py_ssize_t n = b.shape[1]
    if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"shapes do not match: a ({a.shape[0]}, {a.shape[1]}), "
                         f"b ({b.shape[0]}, {b.shape[1]}), c ({c.shape[0]}, {c.shape[1]}), "
                         f"transpose_a={transpose_a}")
    if m == 0 or n == 0:
        return
    cdef Py_ssize_t lda = a.strides[0] // sizeof(float)
    cdef const float* a_ptr = &a[0, 0] if a.shape[0] and a.shape[1] else NULL
    cdef const float* b_ptr = &b[0, 0] if k else NULL
    with nogil:
        pyxconv_sgemm_isa(chosen, m, n, k, a_ptr, 1 if transpose_a else lda,
                          lda if transpose_a else 1, b_ptr, b.strides[0] // sizeof(float),
                          &c[0, 0], c.strides[0] // sizeof(float), accumulate)


cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       floating* c, Py_ssize_t ldc, bint accumulate=False) noexcept nogil:
    """Row-major ``c = op(a) @ op(b)``, as NumPy's matmul calls it (``+=`` with accumulate).

    float32 goes to pyxconv's own kernel when it is in use, except with a
    transposed b (its vector loads need b's rows contiguous); callers that
    need that product transpose b themselves first (:func:`unfold_samples`).
    """
    if floating is float:
        if _own_sgemm_serves(m, n, k) and not trans_b:
            pyxconv_sgemm_isa(_gemm_isa, m, n, k, a, 1 if trans_a else lda,
                              lda if trans_a else 1, b, ldb, c, ldc, accumulate)
            return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the Fortran
    # BLAS gets the operands swapped, each still with its own transpose flag.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int m_ = <int>m, n_ = <int>n, k_ = <int>k
    # BLAS wants leading dimensions >= 1 even for empty operands
    cdef int lda_ = <int>(lda if lda > 1 else 1)
    cdef int ldb_ = <int>(ldb if ldb > 1 else 1)
    cdef int ldc_ = <int>(ldc if ldc > 1 else 1)
    cdef floating alpha = 1
    cdef floating beta = 1 if accumulate else 0
    if m == 0 or n == 0:
        return
    if floating is float:
        _blas_sgemm(&tb, &ta, &n_, &m_, &k_, &alpha, <float*>b, &ldb_, <float*>a, &lda_,
                    &beta, c, &ldc_)
    else:
        _blas_dgemm(&tb, &ta, &n_, &m_, &k_, &alpha, <double*>b, &ldb_, <double*>a, &lda_,
                    &beta, c, &ldc_)


cdef inline void _unfold_sample(const floating* sample, floating* cols, bint fold,
                                Py_ssize_t channels, Py_ssize_t positions,
                                Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                                Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                                Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                                Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                                Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                                Py_ssize_t dil_d, Py_ssize_t dil_h,
                                Py_ssize_t dil_w) noexcept nogil:
    """im2col (or with ``fold`` col2im) of one whole sample, columns as (K, L)."""
    cdef Py_ssize_t c
    cdef Py_ssize_t plane = in_d * in_h * in_w
    for c in range(channels):
        _unfold_plane(sample + c * plane, cols, fold, c, 0, positions, 0, out_d * out_h,
                      in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w, stride_d, stride_h,
                      stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)


cdef inline void _check_sample_arrays(Py_ssize_t n, Py_ssize_t channels, Py_ssize_t kernel_volume,
                                      Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                                      Py_ssize_t c_out, Py_ssize_t k, Py_ssize_t positions,
                                      Py_ssize_t n_second, Py_ssize_t weight_rows,
                                      Py_ssize_t cols_n, Py_ssize_t cols_k, Py_ssize_t cols_l,
                                      int n_threads) except *:
    """The callers' promises, checked: a wrong shape here would write out of bounds."""
    if (c_out > _GEMM_INT_MAX or k > _GEMM_INT_MAX or positions > _GEMM_INT_MAX
            or n_threads < 1):
        raise ValueError("a per-sample GEMM dimension exceeds the BLAS's 32-bit integers")
    if (weight_rows != c_out or k != channels * kernel_volume or n_second != n
            or positions != out_d * out_h * out_w or n_threads < 1
            or cols_n != n or cols_k != k or cols_l != positions):
        raise ValueError("inconsistent array shapes for a per-sample convolution step")


def conv_forward_samples(const floating[:, :, :, :, ::1] x, const floating[:, ::1] weight,
                         const floating[::1] bias, floating[:, :, ::1] cols,
                         floating[:, :, ::1] out,
                         Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                         Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                         Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                         Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                         Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                         int n_threads):
    """Per sample n: ``cols[n] = im2col(x[n])``, ``out[n] = weight @ cols[n] (+ bias)``.

    x (N, C, D, H, W); weight (C_out, K) with K = C * k_d * k_h * k_w; bias
    (C_out,) or None; cols (N, K, L), kept by the caller for the backward
    pass, and out (N, C_out, L), with L the output positions. Samples are
    independent, so any thread count gives the same bits.
    """
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1], positions = out.shape[2]
    _check_sample_arrays(n, channels, k_d * k_h * k_w, out_d, out_h, out_w, c_out, k,
                         positions, out.shape[0], weight.shape[0], cols.shape[0],
                         cols.shape[1], cols.shape[2], n_threads)
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != c_out:
        raise ValueError(f"bias has {bias.shape[0]} values for {c_out} output channels")
    cdef Py_ssize_t s, o, p
    cdef floating* out_row
    cdef floating b
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        _unfold_sample(&x[s, 0, 0, 0, 0], &cols[s, 0, 0], False, channels, positions,
                       in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w,
                       stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
        _gemm(False, False, c_out, positions, k, &weight[0, 0], k, &cols[s, 0, 0], positions,
              &out[s, 0, 0], positions)
        if has_bias:
            for o in range(c_out):
                out_row = &out[s, o, 0]
                b = bias[o]
                for p in range(positions):
                    out_row[p] = out_row[p] + b
    pyxconv_interrupt_raise(stp)


cpdef Py_ssize_t backward_workspace_size(Py_ssize_t k, Py_ssize_t c_out, Py_ssize_t positions,
                                         bint transposed, bint needs_input_grad):
    """Elements a thread needs in :func:`conv_backward_samples`'s workspace."""
    cdef Py_ssize_t needed = k * positions if needs_input_grad else 0
    if transposed and c_out * positions > needed:
        needed = c_out * positions
    return needed


def conv_backward_samples(const floating[:, :, ::1] cols, const floating[:, :, ::1] grad_out,
                          const floating[:, ::1] weight, floating[:, :, ::1] products,
                          bint transposed, floating[:, :, :, :, ::1] grad_x,
                          floating[:, ::1] workspace,
                          Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                          Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                          Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                          Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                          Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                          int n_threads):
    """Per sample n, the weight gradient's product and (optionally) the input gradient.

    cols (N, K, L) as :func:`conv_forward_samples` left them.
    ``products[n] = grad_out[n] @ cols[n]^T`` (C_out, K), or with
    ``transposed`` its transpose ``cols[n] @ grad_out[n]^T`` (K, C_out); the
    caller sums them over n, in order. With grad_x (N, C, D, H, W) given
    (zeroed by the caller), the columns' gradient ``weight^T @ grad_out[n]``
    goes to the thread's row of ``workspace``, where it stays in cache, and
    col2im adds it into grad_x[n]. ``workspace`` is (n_threads,
    :func:`backward_workspace_size`), or None when that size is 0.
    """
    cdef Py_ssize_t n = cols.shape[0], k = cols.shape[1], positions = cols.shape[2]
    cdef Py_ssize_t c_out = grad_out.shape[1]
    cdef bint needs_input_grad = grad_x is not None
    cdef Py_ssize_t kernel_volume = k_d * k_h * k_w
    cdef Py_ssize_t channels = k // kernel_volume
    cdef Py_ssize_t in_d = 0, in_h = 0, in_w = 0
    if needs_input_grad:
        if grad_x.shape[0] != n:
            raise ValueError(f"grad_x has {grad_x.shape[0]} samples, cols {n}")
        channels, in_d, in_h, in_w = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3], grad_x.shape[4]
    _check_sample_arrays(n, channels, kernel_volume, out_d, out_h, out_w, c_out, k, positions,
                         grad_out.shape[0], weight.shape[0], n, weight.shape[1],
                         grad_out.shape[2], n_threads)
    cdef Py_ssize_t needed = backward_workspace_size(k, c_out, positions, transposed,
                                                     needs_input_grad)
    if needed and (workspace is None or workspace.shape[0] < n_threads
                   or workspace.shape[1] < needed):
        raise ValueError(f"workspace must be ({n_threads}, >= {needed})")
    if (products.shape[0] != n or products.shape[1] != (k if transposed else c_out)
            or products.shape[2] != (c_out if transposed else k)):
        raise ValueError("products has the wrong shape")
    cdef Py_ssize_t s, o, p
    cdef floating* grad_cols
    cdef floating* grad_t
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        if transposed:
            # grad_out[n]^T copied first: OpenBLAS ran (K, L) @ (L, C_out) faster
            # from a contiguous right operand than with its transpose flag
            grad_t = &workspace[threadid(), 0]
            for o in range(c_out):
                for p in range(positions):
                    grad_t[p * c_out + o] = grad_out[s, o, p]
            _gemm(False, False, k, c_out, positions, &cols[s, 0, 0], positions,
                  grad_t, c_out, &products[s, 0, 0], c_out)
        else:
            _gemm(False, True, c_out, k, positions, &grad_out[s, 0, 0], positions,
                  &cols[s, 0, 0], positions, &products[s, 0, 0], k)
        if needs_input_grad:
            grad_cols = &workspace[threadid(), 0]
            _gemm(True, False, k, positions, c_out, &weight[0, 0], k, &grad_out[s, 0, 0],
                  positions, grad_cols, positions)
            _unfold_sample(&grad_x[s, 0, 0, 0, 0], grad_cols, True, channels, positions,
                           in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w, stride_d,
                           stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
    pyxconv_interrupt_raise(stp)


# ---------------------------------------------------------------------------
# col2im into a small buffer, for fold_samples.
#
# col2im proper zeroes the plane, then adds every column row into it where it
# falls: along the width with the convolution's stride, in short strided loops.
# Here a plane is instead summed band by band in a buffer that stays in L1, then
# given its bias and written once. In the buffer, plane rows and columns are split
# by phase: plane element (ih, iw) with ih = s_h * mh + ph and iw = s_w * mw + pw
# lives at [ph][pw][mh][mw]. A tap then adds its column rows at a fixed shift
# into one phase, in contiguous loops; when the tap reaches every column of the
# band (interior taps, ``span_w == out_w``), its whole band is one loop.
# The column rows are read in order, a stream the hardware prefetches.
#
# Each element still receives its taps in (a, b, e) order, starting from zero,
# so the sums are col2im's to the bit (tested). On the 4x4, stride-2 transposed
# convolution of the benchmarks, this took the fold from about 2.4 ms (with the
# zeroing and the bias pass) to about 1.2 ms; float32 on AVX-512 CPUs runs the same
# loops compiled for AVX-512 (pyxconv_fold_plane_avx512), about 0.6 ms.

cdef enum:
    # values of one buffer band or phase buffer: 16 KiB in float32 (32 KiB in
    # float64), inside a core's L1 of 48 KiB on the development machine
    _BAND_VALUES = 4096


cdef inline Py_ssize_t _output_index(Py_ssize_t position, Py_ssize_t pad, Py_ssize_t tap_offset,
                                     Py_ssize_t stride, Py_ssize_t n_out) noexcept nogil:
    """The output index o with ``o * stride - pad + tap_offset == position``, or -1."""
    cdef Py_ssize_t t = position + pad - tap_offset
    if t < 0 or t % stride != 0:  # t >= 0 first: C and Python agree on % and // then
        return -1
    t = t // stride
    return t if t < n_out else -1


cdef inline void _tap_phase(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t pad,
                            Py_ssize_t* phase, Py_ssize_t* shift) noexcept nogil:
    """offset = stride * shift + phase with 0 <= phase < stride (offset >= -pad)."""
    cdef Py_ssize_t lift = (pad + stride - 1) // stride  # makes the operands >= 0
    cdef Py_ssize_t shifted = offset + lift * stride
    phase[0] = shifted % stride
    shift[0] = shifted // stride - lift


cdef Py_ssize_t* _fold_tables(Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                              Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                              Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                              Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                              Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                              Py_ssize_t dil_d, Py_ssize_t dil_h,
                              Py_ssize_t dil_w) except NULL:
    """Index tables shared by every plane of a fold (free them with ``free``).

    First ``in_d * k_d`` values: the output depth od that plane depth id_
    takes from depth tap a, or -1, at ``id_ * k_d + a``. Then four values per
    row tap b, and four per column tap e: the first and one past the last
    output row (column) whose tap lies inside the plane, and the tap's phase
    and shift (:func:`_tap_phase`).
    """
    cdef Py_ssize_t n_d = in_d * k_d
    cdef Py_ssize_t* tables = <Py_ssize_t*>malloc((n_d + 4 * (k_h + k_w)) * sizeof(Py_ssize_t))
    if tables == NULL:
        raise MemoryError("no memory for col2im's index tables")
    cdef Py_ssize_t i, t, offset
    cdef Py_ssize_t* entry
    for i in range(in_d):
        for t in range(k_d):
            tables[i * k_d + t] = _output_index(i, pad_d, t * dil_d, stride_d, out_d)
    for t in range(k_h + k_w):
        entry = tables + n_d + 4 * t
        if t < k_h:
            offset = t * dil_h - pad_h  # output row o lands on plane row o * s_h + offset
            entry[0] = _valid_range_lo(offset, stride_h, out_h)
            entry[1] = _valid_range_hi(offset, stride_h, in_h, out_h, entry[0])
            _tap_phase(offset, stride_h, pad_h, &entry[2], &entry[3])
        else:
            offset = (t - k_h) * dil_w - pad_w
            entry[0] = _valid_range_lo(offset, stride_w, out_w)
            entry[1] = _valid_range_hi(offset, stride_w, in_w, out_w, entry[0])
            _tap_phase(offset, stride_w, pad_w, &entry[2], &entry[3])
    return tables


cdef inline Py_ssize_t _band_rows(Py_ssize_t span_h, Py_ssize_t stride_h, Py_ssize_t stride_w,
                                  Py_ssize_t span_w) noexcept nogil:
    """Phase rows per band: as many as fit _BAND_VALUES, at least one."""
    cdef Py_ssize_t rows = _BAND_VALUES // (stride_h * stride_w * span_w)
    if rows < 1:
        return 1
    return rows if rows < span_h else span_h


cdef inline void _fold_plane(const floating* cols, floating* plane, floating* buffer,
                             bint has_bias, floating bias, Py_ssize_t c,
                             Py_ssize_t positions, Py_ssize_t in_d, Py_ssize_t in_h,
                             Py_ssize_t in_w, Py_ssize_t out_h, Py_ssize_t out_w,
                             Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                             Py_ssize_t stride_h, Py_ssize_t stride_w,
                             const Py_ssize_t* tables) noexcept nogil:
    """``plane = col2im(channel c's column rows) (+ bias)``, written whole.

    cols is one sample's (K, L) column matrix; ``buffer`` holds
    ``stride_h * stride_w * band_rows * span_w`` values (:func:`_band_rows`),
    with span_h and span_w the phase rows and columns, ceil(in / stride).
    """
    cdef Py_ssize_t span_h = (in_h + stride_h - 1) // stride_h
    cdef Py_ssize_t span_w = (in_w + stride_w - 1) // stride_w
    cdef Py_ssize_t band_rows = _band_rows(span_h, stride_h, stride_w, span_w)
    cdef Py_ssize_t phase_size = band_rows * span_w  # values of one phase in the band
    cdef const Py_ssize_t* depth_table = tables
    cdef const Py_ssize_t* row_taps = tables + in_d * k_d
    cdef const Py_ssize_t* col_taps = row_taps + 4 * k_h
    cdef Py_ssize_t kernel_volume = k_d * k_h * k_w
    cdef Py_ssize_t id_, a, b, e, od, oh, oh_lo, oh_hi, lo, hi, i
    cdef Py_ssize_t band, band_lo, band_hi, mh, ph, pw, ih, m
    cdef bint whole_rows
    cdef const floating* src
    cdef floating* dst
    cdef floating* row
    cdef const floating* even
    cdef const floating* odd
    for id_ in range(in_d):
        for band in range((span_h + band_rows - 1) // band_rows):
            band_lo = band * band_rows
            band_hi = band_lo + band_rows if band_lo + band_rows < span_h else span_h
            for i in range(stride_h * stride_w * phase_size):
                buffer[i] = 0
            for a in range(k_d):
                od = depth_table[id_ * k_d + a]
                if od < 0:
                    continue
                for b in range(k_h):
                    # rows of tap b that land in the band: mh = oh + shift
                    oh_lo = row_taps[4 * b]
                    if oh_lo < band_lo - row_taps[4 * b + 3]:
                        oh_lo = band_lo - row_taps[4 * b + 3]
                    oh_hi = row_taps[4 * b + 1]
                    if oh_hi > band_hi - row_taps[4 * b + 3]:
                        oh_hi = band_hi - row_taps[4 * b + 3]
                    src = cols + (c * kernel_volume + (a * k_h + b) * k_w) * positions \
                        + od * out_h * out_w
                    if oh_lo >= oh_hi:
                        continue
                    for e in range(k_w):
                        lo = col_taps[4 * e]
                        hi = col_taps[4 * e + 1]
                        # buffer position of output (oh, ow): dst + oh * span_w + ow
                        dst = buffer + (row_taps[4 * b + 2] * stride_w + col_taps[4 * e + 2]) \
                            * phase_size + (row_taps[4 * b + 3] - band_lo) * span_w \
                            + col_taps[4 * e + 3]
                        whole_rows = lo == 0 and hi == out_w and span_w == out_w
                        if whole_rows:
                            _add(dst, src, oh_lo * out_w, oh_hi * out_w)
                        else:
                            for oh in range(oh_lo, oh_hi):
                                _add(dst + oh * span_w, src + oh * out_w, lo, hi)
                        src = src + positions
            # the band's plane rows: ih = stride_h * mh + ph
            for ph in range(stride_h):
                for mh in range(band_lo, band_hi):
                    ih = mh * stride_h + ph
                    if ih >= in_h:
                        break
                    row = plane + (id_ * in_h + ih) * in_w
                    even = buffer + (ph * stride_w) * phase_size + (mh - band_lo) * span_w
                    if stride_w == 1:
                        if has_bias:
                            for i in range(in_w):
                                row[i] = even[i] + bias
                        else:
                            memcpy(row, even, in_w * sizeof(floating))
                    elif stride_w == 2:
                        odd = even + phase_size
                        for m in range(in_w // 2):
                            row[2 * m] = even[m] + bias if has_bias else even[m]
                            row[2 * m + 1] = odd[m] + bias if has_bias else odd[m]
                        if in_w % 2:
                            m = in_w // 2
                            row[2 * m] = even[m] + bias if has_bias else even[m]
                    else:
                        for pw in range(stride_w):
                            for m in range(span_w):
                                i = m * stride_w + pw
                                if i >= in_w:
                                    break
                                row[i] = even[pw * phase_size + m] + bias if has_bias \
                                    else even[pw * phase_size + m]


cdef inline bint _phases_fit(Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t stride_h,
                             Py_ssize_t stride_w) noexcept nogil:
    """Whether :func:`_unfold_plane_phased` applies: a stride, and one depth slice
    split by phases fits in one band buffer (_BAND_VALUES)."""
    if stride_h > in_h or stride_w > in_w:  # mostly padding; and keeps the product small
        return False
    cdef Py_ssize_t span_h = (in_h + stride_h - 1) // stride_h
    cdef Py_ssize_t span_w = (in_w + stride_w - 1) // stride_w
    return (stride_h > 1 or stride_w > 1) and \
        stride_h * stride_w * span_h * span_w <= _BAND_VALUES


cdef inline bint _fold_phases_fit(Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t stride_h,
                                  Py_ssize_t stride_w) noexcept nogil:
    """Whether :func:`_fold_plane` applies: one phase row of every phase fits in a band."""
    if stride_h > in_h or stride_w > in_w:  # mostly padding; and keeps the product small
        return False
    return stride_h * stride_w * ((in_w + stride_w - 1) // stride_w) <= _BAND_VALUES


cdef inline void _split_phases(const floating* plane_slice, floating* buffer, Py_ssize_t in_h,
                               Py_ssize_t in_w, Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t span_h, Py_ssize_t span_w) noexcept nogil:
    """buffer[ph][pw][mh][mw] = plane_slice[s_h * mh + ph, s_w * mw + pw]."""
    cdef Py_ssize_t phase_size = span_h * span_w
    cdef Py_ssize_t ih, iw, m
    cdef bint split
    cdef const floating* row
    cdef floating* even
    cdef floating* odd
    for ih in range(in_h):
        row = plane_slice + ih * in_w
        even = buffer + (ih % stride_h) * stride_w * phase_size + (ih // stride_h) * span_w
        if stride_w == 1:
            memcpy(even, row, in_w * sizeof(floating))
        elif stride_w == 2:
            odd = even + phase_size
            split = False
            if floating is float:
                if _use_avx512:
                    pyxconv_deinterleave_avx512(row, even, odd, in_w // 2)
                    split = True
            if not split:
                for m in range(in_w // 2):
                    even[m] = row[2 * m]
                    odd[m] = row[2 * m + 1]
            if in_w % 2:
                even[in_w // 2] = row[in_w - 1]
        else:
            for iw in range(in_w):
                even[(iw % stride_w) * phase_size + iw // stride_w] = row[iw]


cdef inline void _zero_short(floating* dst, Py_ssize_t count) noexcept nogil:
    """dst[0:count] = 0; a store or two for the one or two columns of padding at a
    row's edge, where a call to memset cost more than the stores."""
    if count == 1:
        dst[0] = 0
    elif count == 2:
        dst[0] = 0
        dst[1] = 0
    elif count > 2:
        memset(dst, 0, count * sizeof(floating))


cdef inline void _unfold_plane_phased(const floating* plane, floating* cols, floating* buffer,
                                      Py_ssize_t c, Py_ssize_t positions, Py_ssize_t in_d,
                                      Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t out_d,
                                      Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t k_d,
                                      Py_ssize_t k_h, Py_ssize_t k_w, Py_ssize_t stride_d,
                                      Py_ssize_t stride_h, Py_ssize_t stride_w,
                                      Py_ssize_t pad_d, Py_ssize_t dil_d,
                                      const Py_ssize_t* tables) noexcept nogil:
    """im2col of channel c's plane into one sample's (K, L) columns, by phases.

    The adjoint of :func:`_fold_plane`, for strided convolutions: each depth
    slice is first split by phases into ``buffer`` (:func:`_split_phases`;
    :func:`_phases_fit` must hold), where a tap's source rows are then
    contiguous, at a fixed shift: an interior tap's whole column block is
    one memcpy, and no loop reads with a stride. ``tables`` as
    :func:`_fold_tables` makes them. The columns are those of im2col, value
    for value: copies, and zeros in the padding.
    """
    cdef Py_ssize_t span_h = (in_h + stride_h - 1) // stride_h
    cdef Py_ssize_t span_w = (in_w + stride_w - 1) // stride_w
    cdef Py_ssize_t phase_size = span_h * span_w
    cdef const Py_ssize_t* row_taps = tables + in_d * k_d
    cdef const Py_ssize_t* col_taps = row_taps + 4 * k_h
    cdef Py_ssize_t kernel_volume = k_d * k_h * k_w
    cdef Py_ssize_t slice_size = out_h * out_w
    cdef Py_ssize_t od, a, b, e, id_, oh, oh_lo, oh_hi, lo, hi, first
    cdef floating* dst
    cdef const floating* src
    cdef Py_ssize_t value_size = sizeof(floating)
    for od in range(out_d):
        for a in range(k_d):
            id_ = od * stride_d - pad_d + a * dil_d
            dst = cols + (c * kernel_volume + a * k_h * k_w) * positions + od * slice_size
            if id_ < 0 or id_ >= in_d:
                for b in range(k_h * k_w):  # the whole slice lies in the padding
                    memset(dst + b * positions, 0, slice_size * value_size)
                continue
            _split_phases(plane + id_ * in_h * in_w, buffer, in_h, in_w, stride_h, stride_w,
                          span_h, span_w)
            for b in range(k_h):
                oh_lo = row_taps[4 * b]
                oh_hi = row_taps[4 * b + 1]
                for e in range(k_w):
                    lo = col_taps[4 * e]
                    hi = col_taps[4 * e + 1]
                    # output (oh, ow) reads src[oh * span_w + ow]
                    src = buffer + (row_taps[4 * b + 2] * stride_w + col_taps[4 * e + 2]) \
                        * phase_size + row_taps[4 * b + 3] * span_w + col_taps[4 * e + 3]
                    if oh_lo > 0:
                        memset(dst, 0, oh_lo * out_w * value_size)
                    if span_w == out_w and hi > lo and oh_hi > oh_lo:
                        # the tap's rows as one run: from its first valid value to its
                        # last, then zeros over the columns between rows that lie in
                        # the padding (what the run copied there are neighbours)
                        first = oh_lo * out_w + lo
                        memcpy(dst + first, src + first,
                               ((oh_hi - 1) * out_w + hi - first) * value_size)
                        for oh in range(oh_lo, oh_hi):
                            _zero_short(dst + oh * out_w, lo)
                            _zero_short(dst + oh * out_w + hi, out_w - hi)
                    else:
                        for oh in range(oh_lo, oh_hi):
                            if lo > 0:
                                memset(dst + oh * out_w, 0, lo * value_size)
                            if hi > lo:
                                memcpy(dst + oh * out_w + lo, src + oh * span_w + lo,
                                       (hi - lo) * value_size)
                            if hi < out_w:
                                memset(dst + oh * out_w + hi, 0, (out_w - hi) * value_size)
                    if oh_hi < out_h:
                        memset(dst + oh_hi * out_w, 0, (out_h - oh_hi) * out_w * value_size)
                    dst = dst + positions


def fold_samples(const floating[:, :, ::1] x, const floating[:, ::1] weight,
                 const floating[::1] bias, floating[:, :, :, :, ::1] out,
                 floating[:, ::1] workspace,
                 Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                 Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                 Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                 Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                 Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                 int n_threads):
    """Per sample n: ``out[n] = col2im(weight^T @ x[n]) (+ bias)``, a transposed convolution.

    x (N, M, L); weight (M, K) with K = C * k_d * k_h * k_w; bias (C,) or
    None; out (N, C, D, H, W), whose convolution with this geometry has L
    output positions. ``out`` is overwritten: each row of a sample's planes
    is summed in a buffer that stays in L1, given its bias and written once
    (:func:`_fold_plane`, for float32 strided folds its AVX-512 port
    pyxconv_fold_plane_avx512); adding the bias in a second pass would give the
    same bits. The columns go to the
    thread's row of ``workspace`` (n_threads, >= K * L).
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], positions = x.shape[2]
    cdef Py_ssize_t k = weight.shape[1], channels = out.shape[1]
    cdef Py_ssize_t in_d = out.shape[2], in_h = out.shape[3], in_w = out.shape[4]
    _check_sample_arrays(n, channels, k_d * k_h * k_w, out_d, out_h, out_w, m, k, positions,
                         out.shape[0], weight.shape[0], n, k, positions, n_threads)
    if workspace.shape[0] < n_threads or workspace.shape[1] < k * positions:
        raise ValueError(f"workspace must be ({n_threads}, >= {k * positions})")
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != channels:
        raise ValueError(f"bias has {bias.shape[0]} values for {channels} output channels")
    cdef Py_ssize_t plane = in_d * in_h * in_w
    cdef Py_ssize_t s, c, t, p
    cdef floating* cols
    cdef floating* target
    cdef floating* band
    cdef floating b
    cdef bint folded
    # the planes summed band by band (_fold_plane), or else zeroed and folded into
    cdef bint phased = _fold_phases_fit(in_h, in_w, stride_h, stride_w)
    cdef Py_ssize_t band_size = 0, band_rows = 0
    cdef Py_ssize_t* tables = NULL
    cdef floating* bands = NULL
    # pyxconv's own float32 GEMM gets x[n] copied to a line-aligned buffer (see _align_up)
    cdef bint copy_x = floating is float and _own_sgemm_serves(k, positions, m)
    cdef Py_ssize_t copy_size = _aligned_count(positions * m, sizeof(floating))
    cdef void* copies_block = NULL
    cdef floating* x_copies = NULL
    cdef floating* x_copy
    cdef const floating* x_s
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    try:
        if phased:
            band_rows = _band_rows((in_h + stride_h - 1) // stride_h, stride_h, stride_w,
                                   (in_w + stride_w - 1) // stride_w)
            band_size = stride_h * stride_w * ((in_w + stride_w - 1) // stride_w) * band_rows
            tables = _fold_tables(in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w,
                                  stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                                  dil_d, dil_h, dil_w)
            bands = <floating*>malloc(n_threads * band_size * sizeof(floating))
            if bands == NULL:
                raise MemoryError("no memory for col2im's band buffers")
        if copy_x:
            copies_block = malloc(n_threads * copy_size * sizeof(floating) + 64)
            if copies_block == NULL:
                raise MemoryError("no memory for the copies of x")
            x_copies = <floating*>_align_up(copies_block)
        for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
            if pyxconv_interrupt_poll(stp):
                continue
            t = threadid()
            cols = &workspace[t, 0]
            x_s = &x[s, 0, 0]
            if copy_x:
                x_copy = x_copies + t * copy_size
                memcpy(x_copy, &x[s, 0, 0], m * positions * sizeof(floating))
                x_s = x_copy
            target = &out[s, 0, 0, 0, 0]
            _gemm(True, False, k, positions, m, &weight[0, 0], k, x_s, positions,
                  cols, positions)
            if phased:
                band = bands + t * band_size
                for c in range(channels):
                    folded = False
                    if floating is float:
                        # the same loops, compiled for AVX-512; strided only: with stride
                        # 1 a tap's short row is loaded right after the previous tap
                        # stored it, one column over, and masked stores do not forward
                        # (LeNet's second layer: backward 1.72 ms, against 1.41)
                        if _use_avx512 and stride_w > 1:
                            pyxconv_fold_plane_avx512(
                                cols, target + c * plane, band, has_bias,
                                bias[c] if has_bias else 0, c, positions, in_d, in_h, in_w,
                                out_h, out_w, k_d, k_h, k_w, stride_h, stride_w, band_rows,
                                tables)
                            folded = True
                    if not folded:
                        _fold_plane(cols, target + c * plane, band, has_bias,
                                    bias[c] if has_bias else 0, c, positions, in_d, in_h,
                                    in_w, out_h, out_w, k_d, k_h, k_w, stride_h, stride_w,
                                    tables)
            else:
                memset(target, 0, channels * plane * sizeof(floating))
                _unfold_sample(target, cols, True, channels, positions, in_d, in_h, in_w,
                               out_d, out_h, out_w, k_d, k_h, k_w, stride_d, stride_h,
                               stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
                if has_bias:
                    for c in range(channels):
                        b = bias[c]
                        for p in range(plane):
                            target[c * plane + p] = target[c * plane + p] + b
        pyxconv_interrupt_raise(stp)
    finally:
        free(copies_block)
        free(bands)
        free(tables)


def unfold_samples(const floating[:, :, :, :, ::1] y, const floating[:, ::1] weight,
                   floating[:, :, ::1] out, const floating[:, :, ::1] x,
                   floating[:, :, ::1] products, floating[:, ::1] workspace,
                   Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                   Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                   Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                   Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                   Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                   int n_threads, *, Py_ssize_t samples_per_product=1,
                   floating[:, ::1] channel_sums=None):
    """Per sample n, with ``cols = im2col(y[n])`` in the thread's row of ``workspace``:

    ``out[n] = weight @ cols`` unless out is None (a convolution of y), and
    ``cols @ x[n]^T`` (K, M) unless products is None (the weight gradient's
    share of the sample, transposed, with x the gradient of that convolution's
    output). Those shares are summed in order over each run of
    ``samples_per_product`` samples, by one thread, into ``products[j]`` for
    samples [j * spp, (j + 1) * spp); the caller sums the runs in order. How
    runs are cut depends on the arguments only, never on the thread count.
    With ``channel_sums`` (N, C) given, each channel of y is also summed
    there, per sample (a transposed convolution's bias gradient).
    y (N, C, D, H, W); weight (M, K) with K = C * k_d * k_h * k_w; out and x
    (N, M, L) with L the output positions; workspace (n_threads, >= K * L).
    For a transposed convolution, y is the gradient of its output and x its
    input: out is then the input's gradient. The weight-gradient product is
    made from x[n] as it is, with the BLAS's transpose flag, except where
    pyxconv's own GEMM makes it: that kernel reads its right operand by rows,
    so x[n]^T is first copied to a line-aligned buffer of the thread's.
    """
    cdef Py_ssize_t n = y.shape[0], channels = y.shape[1]
    cdef Py_ssize_t in_d = y.shape[2], in_h = y.shape[3], in_w = y.shape[4]
    cdef Py_ssize_t m = weight.shape[0], k = weight.shape[1]
    cdef Py_ssize_t positions = out_d * out_h * out_w
    cdef bint has_out = out is not None, has_products = products is not None
    _check_sample_arrays(n, channels, k_d * k_h * k_w, out_d, out_h, out_w, m, k, positions,
                         n, m, n, k, positions, n_threads)
    if has_out and (out.shape[0] != n or out.shape[1] != m or out.shape[2] != positions):
        raise ValueError(f"out must be ({n}, {m}, {positions})")
    if samples_per_product < 1:
        raise ValueError(f"samples_per_product must be >= 1, got {samples_per_product}")
    if samples_per_product > n:
        samples_per_product = n if n > 0 else 1  # one run (and no overflow below)
    cdef Py_ssize_t runs = (n + samples_per_product - 1) // samples_per_product
    if has_products:
        if x is None or x.shape[0] != n or x.shape[1] != m or x.shape[2] != positions:
            raise ValueError(f"products need x of shape ({n}, {m}, {positions})")
        if products.shape[0] != runs or products.shape[1] != k or products.shape[2] != m:
            raise ValueError(f"products must be ({runs}, {k}, {m})")
    cdef bint has_sums = channel_sums is not None
    if has_sums and (channel_sums.shape[0] != n or channel_sums.shape[1] != channels):
        raise ValueError(f"channel_sums must be ({n}, {channels})")
    if workspace.shape[0] < n_threads or workspace.shape[1] < k * positions:
        raise ValueError(f"workspace must be ({n_threads}, >= {k * positions})")
    cdef Py_ssize_t run, s, t, o, p
    cdef floating* cols
    cdef floating* x_t
    # pyxconv's own float32 GEMM reads b by rows: it gets x[n]^T copied, (L, M). The
    # copy costs about what a product of 30 to 60 rows gains; below 64 rows the
    # BLAS takes x[n] transposed as it is (a 3-channel 3x3 conv's backward: 1.97 ms
    # with the copy, 1.71 without).
    cdef bint copy_x = (floating is float and _own_sgemm_serves(k, m, positions)
                        and has_products and k >= 64)
    cdef Py_ssize_t copy_size = _aligned_count(positions * m, sizeof(floating))
    cdef void* copies_block = NULL
    cdef floating* x_copies = NULL
    # strided: im2col through a buffer of each depth slice split by phases
    cdef bint phased = _phases_fit(in_h, in_w, stride_h, stride_w)
    cdef Py_ssize_t* tables = NULL
    cdef floating* phase_buffers = NULL
    cdef floating* phase_buffer
    cdef Py_ssize_t c
    cdef Py_ssize_t plane = in_d * in_h * in_w
    if phased:
        tables = _fold_tables(in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w,
                              stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                              dil_d, dil_h, dil_w)
        # zeroed once: a tap's run may copy phase values that no row of the plane
        # filled (odd sizes), before zeros overwrite them
        phase_buffers = <floating*>calloc(n_threads * _BAND_VALUES, sizeof(floating))
        if phase_buffers == NULL:
            free(tables)
            raise MemoryError("no memory for im2col's phase buffers")
    if copy_x:
        copies_block = malloc(n_threads * copy_size * sizeof(floating) + 64)
        if copies_block == NULL:
            free(tables)
            free(phase_buffers)
            raise MemoryError("no memory for the transposed copies of x")
        x_copies = <floating*>_align_up(copies_block)
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    try:
        for run in prange(runs, nogil=True, schedule="guided", num_threads=n_threads):
            if pyxconv_interrupt_poll(stp):
                continue
            t = threadid()
            cols = &workspace[t, 0]
            for s in range(run * samples_per_product,
                             min(n, (run + 1) * samples_per_product)):
                if has_sums:
                    for c in range(channels):
                        channel_sums[s, c] = _sum(&y[s, c, 0, 0, 0], plane)
                if phased:
                    phase_buffer = phase_buffers + t * _BAND_VALUES
                    for c in range(channels):
                        _unfold_plane_phased(&y[s, c, 0, 0, 0], cols, phase_buffer, c, positions,
                                             in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h,
                                             k_w, stride_d, stride_h, stride_w, pad_d, dil_d,
                                             tables)
                else:
                    _unfold_sample(&y[s, 0, 0, 0, 0], cols, False, channels, positions, in_d,
                                   in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w, stride_d,
                                   stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
                if has_out:
                    _gemm(False, False, m, positions, k, &weight[0, 0], k, cols, positions,
                          &out[s, 0, 0], positions)
                if copy_x:
                    x_t = x_copies + t * copy_size
                    if floating is float:  # (copy_x implies float32)
                        pyxconv_transpose_f32(&x[s, 0, 0], x_t, m, positions)
                    _gemm(False, False, k, m, positions, cols, positions, x_t, m,
                          &products[run, 0, 0], m, s > run * samples_per_product)
                elif has_products:
                    _gemm(False, True, k, m, positions, cols, positions, &x[s, 0, 0], positions,
                          &products[run, 0, 0], m, s > run * samples_per_product)
        pyxconv_interrupt_raise(stp)
    finally:
        free(copies_block)
        free(phase_buffers)
        free(tables)


# ---------------------------------------------------------------------------
# Few samples on many threads: the work of a batch smaller than the thread
# count split over independent outputs instead of over samples.
#
# The forward unfolds every (sample, channel) plane into one column buffer
# (N, K, L), then makes the products tile by tile: tile t of sample s is
# out[s, :, t*w:(t+1)*w] = weight @ cols[s, :, t*w:(t+1)*w]. The backward's
# weight gradient is split over blocks of the column matrix's rows (each block
# of grad_W's columns is one product over all positions), and its input
# gradient over position tiles (grad_cols = weight^T @ grad_out, tile by tile),
# folded back plane by plane. Tiles are set by the shapes (the caller's
# ``tile``), never by the thread count, so every thread count makes the same
# GEMM calls and gives the same bits.

def conv_forward_tiles(const floating[:, :, :, :, ::1] x, const floating[:, ::1] weight,
                       const floating[::1] bias, floating[:, :, ::1] cols,
                       floating[:, :, ::1] out, Py_ssize_t tile,
                       Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                       Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                       Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                       Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                       Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                       int n_threads):
    """``cols[n] = im2col(x[n])``, then ``out[n] = weight @ cols[n] (+ bias)`` by position tiles.

    Shapes as in :func:`conv_forward_samples`; ``tile`` (>= 1) output positions
    a product.
    """
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1], positions = out.shape[2]
    _check_sample_arrays(n, channels, k_d * k_h * k_w, out_d, out_h, out_w, c_out, k,
                         positions, out.shape[0], weight.shape[0], cols.shape[0],
                         cols.shape[1], cols.shape[2], n_threads)
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != c_out:
        raise ValueError(f"bias has {bias.shape[0]} values for {c_out} output channels")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if n == 0 or positions == 0:
        return
    cdef Py_ssize_t tiles = (positions + tile - 1) // tile
    cdef Py_ssize_t task, s, c, t, p0, width, o, p
    cdef floating* out_row
    cdef floating b
    cdef Py_ssize_t plane = in_d * in_h * in_w
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    with nogil, parallel(num_threads=n_threads):
        for task in prange(n * channels, schedule="guided"):
            if pyxconv_interrupt_poll(stp):
                continue
            s = task // channels
            c = task - s * channels
            _unfold_plane(&x[s, c, 0, 0, 0], &cols[s, 0, 0], False, c, 0, positions, 0,
                          out_d * out_h, in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w,
                          stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                          dil_d, dil_h, dil_w)
        for task in prange(n * tiles, schedule="static"):
            if pyxconv_interrupt_poll(stp):
                continue
            s = task // tiles
            t = task - s * tiles
            p0 = t * tile
            width = positions - p0 if positions - p0 < tile else tile
            _gemm(False, False, c_out, width, k, &weight[0, 0], k, &cols[s, 0, p0], positions,
                  &out[s, 0, p0], positions)
            if has_bias:
                for o in range(c_out):
                    out_row = &out[s, o, p0]
                    b = bias[o]
                    for p in range(width):
                        out_row[p] = out_row[p] + b
    pyxconv_interrupt_raise(stp)


def conv_backward_tiles(const floating[:, :, ::1] cols, const floating[:, :, ::1] grad_out,
                        const floating[:, ::1] weight, floating[:, :, ::1] products,
                        floating[:, :, :, :, ::1] grad_x, floating[:, :, ::1] grad_cols,
                        Py_ssize_t row_block, Py_ssize_t tile,
                        Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                        Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                        Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                        Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                        Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                        int n_threads):
    """Per sample n: ``products[n] = grad_out[n] @ cols[n]^T`` (C_out, K) in blocks of
    ``row_block`` columns, and, with grad_x (N, C, D, H, W) given, ``grad_cols[n] =
    weight^T @ grad_out[n]`` in tiles of ``tile`` positions, folded by col2im into
    grad_x[n], which this overwrites. grad_cols (N, K, L), or None without grad_x.
    """
    cdef Py_ssize_t n = cols.shape[0], k = cols.shape[1], positions = cols.shape[2]
    cdef Py_ssize_t c_out = grad_out.shape[1]
    cdef bint needs_input_grad = grad_x is not None
    cdef Py_ssize_t kernel_volume = k_d * k_h * k_w
    cdef Py_ssize_t channels = k // kernel_volume
    cdef Py_ssize_t in_d = 0, in_h = 0, in_w = 0
    if needs_input_grad:
        if grad_x.shape[0] != n:
            raise ValueError(f"grad_x has {grad_x.shape[0]} samples, cols {n}")
        if (grad_cols is None or grad_cols.shape[0] != n or grad_cols.shape[1] != k
                or grad_cols.shape[2] != positions):
            raise ValueError(f"grad_cols must be ({n}, {k}, {positions})")
        channels, in_d, in_h, in_w = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3], grad_x.shape[4]
    _check_sample_arrays(n, channels, kernel_volume, out_d, out_h, out_w, c_out, k, positions,
                         grad_out.shape[0], weight.shape[0], n, weight.shape[1],
                         grad_out.shape[2], n_threads)
    if products.shape[0] != n or products.shape[1] != c_out or products.shape[2] != k:
        raise ValueError(f"products must be ({n}, {c_out}, {k})")
    if row_block < 1 or tile < 1:
        raise ValueError(f"row_block and tile must be >= 1, got {row_block} and {tile}")
    if n == 0:
        return
    cdef Py_ssize_t blocks = (k + row_block - 1) // row_block
    cdef Py_ssize_t tiles = (positions + tile - 1) // tile
    cdef Py_ssize_t task, s, c, j0, rows, p0, width
    cdef Py_ssize_t plane = in_d * in_h * in_w
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    with nogil, parallel(num_threads=n_threads):
        for task in prange(n * blocks, schedule="static"):
            if pyxconv_interrupt_poll(stp):
                continue
            s = task // blocks
            j0 = (task - s * blocks) * row_block
            rows = k - j0 if k - j0 < row_block else row_block
            _gemm(False, True, c_out, rows, positions, &grad_out[s, 0, 0], positions,
                  &cols[s, j0, 0], positions, &products[s, 0, j0], k)
        if needs_input_grad:
            for task in prange(n * tiles, schedule="static"):
                if pyxconv_interrupt_poll(stp):
                    continue
                s = task // tiles
                p0 = (task - s * tiles) * tile
                width = positions - p0 if positions - p0 < tile else tile
                _gemm(True, False, k, width, c_out, &weight[0, 0], k, &grad_out[s, 0, p0],
                      positions, &grad_cols[s, 0, p0], positions)
            for task in prange(n * channels, schedule="guided"):
                if pyxconv_interrupt_poll(stp):
                    continue
                s = task // channels
                c = task - s * channels
                memset(&grad_x[s, c, 0, 0, 0], 0, plane * sizeof(floating))
                _unfold_plane(&grad_x[s, c, 0, 0, 0], &grad_cols[s, 0, 0], True, c, 0,
                              positions, 0, out_d * out_h, in_d, in_h, in_w, out_h, out_w,
                              k_d, k_h, k_w, stride_d, stride_h, stride_w, pad_d, pad_h,
                              pad_w, dil_d, dil_h, dil_w)
    pyxconv_interrupt_raise(stp)


# ---------------------------------------------------------------------------
# The forward by panels, for inference: no column matrix is kept, so none is
# made whole. A task is one panel of one sample, ``rows_per_panel`` output rows
# (od, oh) of it: im2col of those rows into the thread's panel buffer (K x
# rows * out_w), small enough to stay in the core's L2, then the GEMM
# out[s, :, rows] = weight @ panel straight from it. Tasks are independent and
# write disjoint parts of out, and how a sample is cut into panels depends on the
# shapes alone, so any thread count gives the same bits; one image with several
# panels uses every thread.

def conv_forward_panels(const floating[:, :, :, :, ::1] x, const floating[:, ::1] weight,
                        const floating[::1] bias, floating[:, :, ::1] out,
                        Py_ssize_t rows_per_panel,
                        Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                        Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                        Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                        Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                        Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                        int n_threads, bint relu=False):
    """``out[n] = weight @ im2col(x[n]) (+ bias)``, panel by panel of output rows.

    x (N, C, D, H, W); weight (C_out, K); bias (C_out,) or None; out (N,
    C_out, L). Each thread allocates one panel buffer of K * rows_per_panel *
    out_w values (the caller keeps that under its workspace limit). With
    ``relu``, the bias pass also applies ReLU as pyxconv's ReLU kernel does
    (``0 if v < 0 else v``: NaN and -0.0 stay), while the panel is in cache.
    """
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1], positions = out.shape[2]
    _check_sample_arrays(n, channels, k_d * k_h * k_w, out_d, out_h, out_w, c_out, k,
                         positions, out.shape[0], weight.shape[0], n, k, positions, n_threads)
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != c_out:
        raise ValueError(f"bias has {bias.shape[0]} values for {c_out} output channels")
    cdef Py_ssize_t out_rows = out_d * out_h
    if rows_per_panel < 1 or rows_per_panel > out_rows:
        raise ValueError(f"rows_per_panel must be in [1, {out_rows}], got {rows_per_panel}")
    if n == 0 or positions == 0:
        return
    cdef Py_ssize_t panels = (out_rows + rows_per_panel - 1) // rows_per_panel
    cdef Py_ssize_t panel_size = _aligned_count(k * rows_per_panel * out_w, sizeof(floating))
    cdef Py_ssize_t task, s, c, r0, rows, width, o, p
    cdef floating* out_row
    cdef floating* panel
    cdef void* block
    cdef floating b, v
    cdef Py_ssize_t plane = in_d * in_h * in_w
    block = malloc(n_threads * panel_size * sizeof(floating) + 64)
    if block == NULL:
        raise MemoryError("no memory for the threads' panel buffers")
    cdef floating* panels_base = <floating*>_align_up(block)
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    try:
        for task in prange(n * panels, nogil=True, schedule="guided", num_threads=n_threads):
            if pyxconv_interrupt_poll(stp):
                continue
            panel = panels_base + threadid() * panel_size
            s = task // panels
            r0 = (task - s * panels) * rows_per_panel
            rows = out_rows - r0 if out_rows - r0 < rows_per_panel else rows_per_panel
            width = rows * out_w
            for c in range(channels):
                _unfold_plane(&x[s, c, 0, 0, 0], panel, False, c, 0, width, r0, rows,
                              in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w,
                              stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                              dil_d, dil_h, dil_w)
            _gemm(False, False, c_out, width, k, &weight[0, 0], k, panel, width,
                  &out[s, 0, r0 * out_w], positions)
            if has_bias or relu:
                for o in range(c_out):
                    out_row = &out[s, o, r0 * out_w]
                    b = bias[o] if has_bias else 0
                    if relu:
                        for p in range(width):
                            v = out_row[p] + b if has_bias else out_row[p]
                            out_row[p] = 0 if v < 0 else v
                    else:
                        for p in range(width):
                            out_row[p] = out_row[p] + b
        pyxconv_interrupt_raise(stp)
    finally:
        free(block)


# ---------------------------------------------------------------------------
# Grouped convolutions (depthwise among them), without Python between groups.
# A task is one (sample, group): im2col of the group's C_in/groups planes into
# the thread's columns (K_g x L, K_g = C_in/groups * kernel volume), then the
# group's product out[s, group rows] = weight[group rows] @ cols. The backward's
# weight gradient loops over groups in parallel and over samples in order inside
# each (the same sums at any thread count); its input gradient is again one task
# per (sample, group), each folding into the group's own planes.

cdef inline void _unfold_group(const floating* sample, floating* cols, bint fold,
                               Py_ssize_t first, Py_ssize_t count, Py_ssize_t positions,
                               Py_ssize_t out_rows, Py_ssize_t in_d, Py_ssize_t in_h,
                               Py_ssize_t in_w, Py_ssize_t out_h, Py_ssize_t out_w,
                               Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                               Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                               Py_ssize_t dil_d, Py_ssize_t dil_h,
                               Py_ssize_t dil_w) noexcept nogil:
    """im2col (col2im with fold) of planes [first, first + count) of one sample as (K_g, L)."""
    cdef Py_ssize_t c
    cdef Py_ssize_t plane = in_d * in_h * in_w
    for c in range(count):
        _unfold_plane(sample + (first + c) * plane, cols, fold, c, 0, positions, 0, out_rows,
                      in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w, stride_d, stride_h,
                      stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)


cdef inline void _check_group_arrays(Py_ssize_t n, Py_ssize_t channels, Py_ssize_t c_out,
                                     Py_ssize_t groups, Py_ssize_t kernel_volume,
                                     Py_ssize_t k_g, Py_ssize_t positions,
                                     Py_ssize_t out_positions, Py_ssize_t weight_rows,
                                     Py_ssize_t workspace_rows, Py_ssize_t workspace_size,
                                     int n_threads) except *:
    if (groups < 1 or channels % groups or c_out % groups or weight_rows != c_out
            or k_g != channels // groups * kernel_volume or positions != out_positions
            or n_threads < 1 or workspace_rows < n_threads or workspace_size < k_g * positions
            or c_out > _GEMM_INT_MAX or k_g > _GEMM_INT_MAX or positions > _GEMM_INT_MAX):
        raise ValueError("inconsistent array shapes for a grouped convolution step")


def conv_forward_groups(const floating[:, :, :, :, ::1] x, const floating[:, ::1] weight,
                        const floating[::1] bias, floating[:, :, ::1] out,
                        floating[:, ::1] workspace, Py_ssize_t groups,
                        Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                        Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                        Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                        Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                        Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                        int n_threads):
    """``out[n, group] = weight[group] @ im2col(x[n, group]) (+ bias)`` per (sample, group).

    x (N, C, D, H, W); weight (C_out, K_g); bias (C_out,) or None; out (N,
    C_out, L); workspace (n_threads, >= K_g * L).
    """
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t c_out = out.shape[1], k_g = weight.shape[1], positions = out.shape[2]
    _check_group_arrays(n, channels, c_out, groups, k_d * k_h * k_w, k_g, positions,
                        out_d * out_h * out_w, weight.shape[0], workspace.shape[0],
                        workspace.shape[1], n_threads)
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} samples, x {n}")
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != c_out:
        raise ValueError(f"bias has {bias.shape[0]} values for {c_out} output channels")
    if n == 0 or positions == 0:
        return
    cdef Py_ssize_t cig = channels // groups, cog = c_out // groups
    cdef Py_ssize_t task, s, gi, o, p
    cdef floating* cols
    cdef floating* out_row
    cdef floating b
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for task in prange(n * groups, nogil=True, schedule="guided", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        s = task // groups
        gi = task - s * groups
        cols = &workspace[threadid(), 0]
        _unfold_group(&x[s, 0, 0, 0, 0], cols, False, gi * cig, cig, positions,
                      out_d * out_h, in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w,
                      stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
        _gemm(False, False, cog, positions, k_g, &weight[gi * cog, 0], k_g, cols, positions,
              &out[s, gi * cog, 0], positions)
        if has_bias:
            for o in range(gi * cog, (gi + 1) * cog):
                out_row = &out[s, o, 0]
                b = bias[o]
                for p in range(positions):
                    out_row[p] = out_row[p] + b
    pyxconv_interrupt_raise(stp)


def conv_backward_groups(const floating[:, :, :, :, ::1] x, const floating[:, :, ::1] grad_out,
                         const floating[:, ::1] weight, floating[:, ::1] grad_weight,
                         floating[:, :, :, :, ::1] grad_x, floating[:, ::1] workspace,
                         Py_ssize_t groups,
                         Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                         Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                         Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                         Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                         Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                         int n_threads):
    """grad_weight (C_out, K_g) = sum_n grad_out[n, group] @ im2col(x[n, group])^T, in sample
    order (overwritten); with grad_x given, grad_x[n, group] = col2im(weight[group]^T @
    grad_out[n, group]) (overwritten)."""
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t c_out = grad_out.shape[1], k_g = weight.shape[1]
    cdef Py_ssize_t positions = grad_out.shape[2]
    _check_group_arrays(n, channels, c_out, groups, k_d * k_h * k_w, k_g, positions,
                        out_d * out_h * out_w, weight.shape[0], workspace.shape[0],
                        workspace.shape[1], n_threads)
    if (grad_out.shape[0] != n or grad_weight.shape[0] != c_out
            or grad_weight.shape[1] != k_g):
        raise ValueError("grad_out or grad_weight has the wrong shape")
    cdef bint needs_input_grad = grad_x is not None
    if needs_input_grad and (grad_x.shape[0] != n or grad_x.shape[1] != channels
                             or grad_x.shape[2] != in_d or grad_x.shape[3] != in_h
                             or grad_x.shape[4] != in_w):
        raise ValueError("grad_x must have x's shape")
    cdef Py_ssize_t cig = channels // groups, cog = c_out // groups
    cdef Py_ssize_t plane = in_d * in_h * in_w
    cdef Py_ssize_t task, s, gi
    cdef floating* cols
    if n == 0:
        grad_weight[:, :] = 0
        return
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for gi in prange(groups, nogil=True, schedule="guided", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        cols = &workspace[threadid(), 0]
        for s in range(n):
            if pyxconv_interrupt_poll(stp):
                break  # grad_weight is the kernel's own output: not returned on an interrupt
            _unfold_group(&x[s, 0, 0, 0, 0], cols, False, gi * cig, cig, positions,
                          out_d * out_h, in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w,
                          stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                          dil_d, dil_h, dil_w)
            _gemm(False, True, cog, k_g, positions, &grad_out[s, gi * cog, 0], positions,
                  cols, positions, &grad_weight[gi * cog, 0], k_g, s > 0)
    pyxconv_interrupt_raise(stp)
    if not needs_input_grad:
        return
    for task in prange(n * groups, nogil=True, schedule="guided", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        s = task // groups
        gi = task - s * groups
        cols = &workspace[threadid(), 0]
        _gemm(True, False, k_g, positions, cog, &weight[gi * cog, 0], k_g,
              &grad_out[s, gi * cog, 0], positions, cols, positions)
        memset(&grad_x[s, gi * cig, 0, 0, 0], 0, cig * plane * sizeof(floating))
        _unfold_group(&grad_x[s, 0, 0, 0, 0], cols, True, gi * cig, cig, positions,
                      out_d * out_h, in_d, in_h, in_w, out_h, out_w, k_d, k_h, k_w,
                      stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
    pyxconv_interrupt_raise(stp)
