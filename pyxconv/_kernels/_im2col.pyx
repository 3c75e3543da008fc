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
from cython.parallel cimport prange


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
        src = src + offset
        for o in range(lo, hi):
            dst[o] = src[o]
    else:
        for o in range(lo, hi):
            dst[o] = src[o * stride + offset]
    for o in range(hi, n_out):
        dst[o] = 0


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
    cdef Py_ssize_t kernel_volume = k_d * k_h * k_w
    cdef floating* dst
    cdef Py_ssize_t o
    for a in range(k_d):
        for b in range(k_h):
            for e in range(k_w):
                row = c * kernel_volume + (a * k_h + b) * k_w + e
                # Valid output columns for this tap: hoisted out of the row loop.
                offset_w = e * dil_w - pad_w
                lo = _first_valid(offset_w, stride_w)
                hi = _end_valid(offset_w, stride_w, in_w, out_w)
                # Padding wider than the output row: no column of it is valid.
                if lo > out_w:
                    lo = out_w
                if hi < lo:
                    hi = lo
                od = row_start // out_h
                oh = row_start - od * out_h
                dst = cols + sample_offset + row * row_stride
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
    cdef floating* cols_ptr = <floating*>&cols[0]  # only read when folding
    for task in prange(n_count * channels, nogil=True, schedule="guided",
                       num_threads=n_threads):
        n = task // channels
        c = task - n * channels
        _unfold_plane(&grad_x[n_start + n, c, 0, 0, 0], cols_ptr, True, c, n * sample_stride,
                      row_stride, row_start, row_count, in_d, in_h, in_w, out_h, out_w,
                      k_d, k_h, k_w, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                      dil_d, dil_h, dil_w)
