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
from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset


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
    for task in prange(n_count * channels, nogil=True, schedule="guided",
                       num_threads=n_threads):
        n = task // channels
        c = task - n * channels
        _unfold_plane(&x[n_start + n, c, 0, 0, 0], cols_ptr, False, c, n * sample_stride,
                      row_stride, row_start, row_count, in_d, in_h, in_w, out_h, out_w,
                      k_d, k_h, k_w, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                      dil_d, dil_h, dil_w)


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
    for task in prange(n_count * channels, nogil=True, schedule="guided",
                       num_threads=n_threads):
        n = task // channels
        c = task - n * channels
        _unfold_plane(&grad_x[n_start + n, c, 0, 0, 0], cols_ptr, True, c, n * sample_stride,
                      row_stride, row_start, row_count, in_d, in_h, in_w, out_h, out_w,
                      k_d, k_h, k_w, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                      dil_d, dil_h, dil_w)


# ---------------------------------------------------------------------------
# Whole per-sample convolution steps (im2col, GEMM, col2im) in one nogil loop.
#
# The GEMMs call NumPy's own BLAS through C function pointers that
# pyxconv._blas finds and hands over with set_gemm; without them these
# functions refuse to run and the callers take their NumPy path. One OpenMP
# loop over samples does all of a sample's work on one thread, without the
# GIL, so a thread never waits for another between the steps.

ctypedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int64_t m, int64_t n,
                          int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                          int64_t ldb, float beta, float* c, int64_t ldc) noexcept nogil
ctypedef void (*dgemm_fn)(int order, int trans_a, int trans_b, int64_t m, int64_t n,
                          int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                          int64_t ldb, double beta, double* c, int64_t ldc) noexcept nogil

cdef sgemm_fn _sgemm = NULL
cdef dgemm_fn _dgemm = NULL

# CBLAS's enumerations
cdef enum:
    CBLAS_ROW_MAJOR = 101
    CBLAS_NO_TRANS = 111
    CBLAS_TRANS = 112


def set_gemm(size_t sgemm, size_t dgemm):
    """Install ILP64 ``cblas_sgemm``/``cblas_dgemm`` entry points (addresses; 0 removes them)."""
    global _sgemm, _dgemm
    if (sgemm == 0) != (dgemm == 0):
        raise ValueError("set_gemm needs both GEMM entry points, or neither")
    _sgemm = <sgemm_fn>sgemm
    _dgemm = <dgemm_fn>dgemm


def has_gemm():
    """Whether :func:`set_gemm` installed the GEMM entry points."""
    return _sgemm != NULL


cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       floating* c, Py_ssize_t ldc) noexcept nogil:
    """Row-major ``c = op(a) @ op(b)``, as NumPy's matmul calls it."""
    cdef int ta = CBLAS_TRANS if trans_a else CBLAS_NO_TRANS
    cdef int tb = CBLAS_TRANS if trans_b else CBLAS_NO_TRANS
    if floating is float:
        _sgemm(CBLAS_ROW_MAJOR, ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc)
    else:
        _dgemm(CBLAS_ROW_MAJOR, ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc)


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
    if _sgemm == NULL:
        raise RuntimeError("no GEMM entry points installed (see pyxconv._blas)")
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
    for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
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
    for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
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
    output positions. ``out`` is overwritten: each sample is zeroed, folded
    into and given its bias while it is in cache. The columns go to the
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
    cdef Py_ssize_t s, c, p
    cdef floating* cols
    cdef floating* target
    cdef floating b
    for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
        cols = &workspace[threadid(), 0]
        _gemm(True, False, k, positions, m, &weight[0, 0], k, &x[s, 0, 0], positions,
              cols, positions)
        target = &out[s, 0, 0, 0, 0]
        memset(target, 0, channels * plane * sizeof(floating))
        _unfold_sample(target, cols, True, channels, positions, in_d, in_h, in_w,
                       out_d, out_h, out_w, k_d, k_h, k_w, stride_d, stride_h, stride_w,
                       pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
        if has_bias:
            for c in range(channels):
                b = bias[c]
                for p in range(plane):
                    target[c * plane + p] = target[c * plane + p] + b


def unfold_samples(const floating[:, :, :, :, ::1] y, const floating[:, ::1] weight,
                   floating[:, :, ::1] out, const floating[:, :, ::1] x,
                   floating[:, :, ::1] products, floating[:, ::1] workspace,
                   Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                   Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                   Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                   Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                   Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                   int n_threads):
    """Per sample n, with ``cols = im2col(y[n])`` in the thread's row of ``workspace``:

    ``out[n] = weight @ cols`` unless out is None (a convolution of y), and
    ``products[n] = cols @ x[n]^T`` (K, M) unless products is None (the
    weight gradient's share of the sample, transposed, with x the gradient
    of that convolution's output; the caller sums them over n, in order).
    y (N, C, D, H, W); weight (M, K) with K = C * k_d * k_h * k_w; out and x
    (N, M, L) with L the output positions; workspace (n_threads, >= K * L).
    For a transposed convolution, y is the gradient of its output and x its
    input: out is then the input's gradient. (With x[n]^T copied first, as
    the chunked path does, the transposed benchmark layer's backward took
    14.9 ms instead of 12.1.)
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
    if has_products:
        if x is None or x.shape[0] != n or x.shape[1] != m or x.shape[2] != positions:
            raise ValueError(f"products need x of shape ({n}, {m}, {positions})")
        if products.shape[0] != n or products.shape[1] != k or products.shape[2] != m:
            raise ValueError(f"products must be ({n}, {k}, {m})")
    if workspace.shape[0] < n_threads or workspace.shape[1] < k * positions:
        raise ValueError(f"workspace must be ({n_threads}, >= {k * positions})")
    cdef Py_ssize_t s
    cdef floating* cols
    for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
        cols = &workspace[threadid(), 0]
        _unfold_sample(&y[s, 0, 0, 0, 0], cols, False, channels, positions, in_d, in_h, in_w,
                       out_d, out_h, out_w, k_d, k_h, k_w, stride_d, stride_h, stride_w,
                       pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
        if has_out:
            _gemm(False, False, m, positions, k, &weight[0, 0], k, cols, positions,
                  &out[s, 0, 0], positions)
        if has_products:
            _gemm(False, True, k, m, positions, cols, positions, &x[s, 0, 0], positions,
                  &products[s, 0, 0], m)
