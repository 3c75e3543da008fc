# Part of _im2col.pyx (included there, in order): unfold and fold of planes: im2col and
# col2im, the primitives every step uses.

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


cdef inline void _copy_rows(const floating* plane, floating* dst, const conv_geometry* g,
                            Py_ssize_t id_, Py_ssize_t ih0, Py_ssize_t row_count,
                            Py_ssize_t offset_w, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """im2col of one tap over ``row_count`` output rows of one depth slice.

    Output row r reads input row ``ih0 + r * stride_h`` of depth ``id_``; rows
    outside the input (padding) are zeros. The valid rows are computed once,
    so the copy loop has no test per row: on LeNet's layers, whose rows are
    10 and 28 values long, the tests and the loop set-up cost more than the
    copies.
    """
    cdef Py_ssize_t r, r_lo, r_hi
    cdef Py_ssize_t in_h = g.in_h, in_w = g.in_w, out_w = g.out_w
    cdef Py_ssize_t stride_h = g.stride_h, stride_w = g.stride_w
    cdef const floating* src
    if id_ < 0 or id_ >= g.in_d:
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


cdef inline void _add_rows(const floating* src, floating* plane, const conv_geometry* g,
                           Py_ssize_t id_, Py_ssize_t ih0, Py_ssize_t row_count,
                           Py_ssize_t offset_w, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """col2im of one tap over ``row_count`` output rows of one depth slice.

    The adjoint of _copy_rows: column row r is added into input row
    ``ih0 + r * stride_h`` of depth ``id_``; rows in the padding are skipped.
    The same rows in the same order as the general loop, so the same sums.
    """
    cdef Py_ssize_t r, r_lo, r_hi
    cdef Py_ssize_t in_h = g.in_h, in_w = g.in_w, out_w = g.out_w
    cdef Py_ssize_t stride_h = g.stride_h, stride_w = g.stride_w
    cdef floating* row
    if id_ < 0 or id_ >= g.in_d:
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
                           Py_ssize_t row_start, Py_ssize_t row_count, const conv_geometry* g,
                           Py_ssize_t a, Py_ssize_t b, Py_ssize_t offset_w,
                           Py_ssize_t lo0, Py_ssize_t hi0, Py_ssize_t lo1, Py_ssize_t hi1,
                           Py_ssize_t pair_lo, Py_ssize_t pair_hi) noexcept nogil:
    """im2col or col2im of taps e and e + 1 of one kernel row (stride 2 along the width,
    no dilation).

    ``src`` is the column row of tap e; tap e + 1's follows it at
    ``row_stride``. Tap e reads or adds at ``2o + offset_w`` for o in
    [lo0, hi0), and tap e + 1 one column to the right for o in [lo1, hi1);
    over their common range [pair_lo, pair_hi) both go in one pass, the
    edges one tap at a time.
    """
    cdef Py_ssize_t r, od, oh, id_, ih, o
    cdef Py_ssize_t in_d = g.in_d, in_h = g.in_h, in_w = g.in_w
    cdef Py_ssize_t out_h = g.out_h, out_w = g.out_w
    cdef Py_ssize_t stride_d = g.stride_d, stride_h = g.stride_h
    cdef Py_ssize_t pad_d = g.pad_d, pad_h = g.pad_h, dil_d = g.dil_d, dil_h = g.dil_h
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
                               const conv_geometry* g) noexcept nogil:
    """im2col (fold false) or col2im (fold true) of one (sample, channel) plane.

    For col2im ``plane`` is written through (it is the gradient plane); the
    const qualifier is cast away by the caller.
    """
    cdef Py_ssize_t a, b, e, r, od, oh, id_, ih, row, lo, hi, offset_w
    cdef Py_ssize_t lo1, hi1, pair_lo, pair_hi
    cdef Py_ssize_t in_d = g.in_d, in_h = g.in_h, in_w = g.in_w
    cdef Py_ssize_t out_h = g.out_h, out_w = g.out_w
    cdef Py_ssize_t k_d = g.k_d, k_h = g.k_h, k_w = g.k_w
    cdef Py_ssize_t stride_d = g.stride_d, stride_h = g.stride_h, stride_w = g.stride_w
    cdef Py_ssize_t pad_d = g.pad_d, pad_h = g.pad_h, pad_w = g.pad_w
    cdef Py_ssize_t dil_d = g.dil_d, dil_h = g.dil_h, dil_w = g.dil_w
    cdef Py_ssize_t kernel_volume = g.kernel_volume
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
                              row_start, row_count, g, a, b, offset_w, lo, hi, lo1, hi1,
                              pair_lo, pair_hi)
                    continue
                od = row_start // out_h
                oh = row_start - od * out_h
                dst = cols + sample_offset + row * row_stride
                if oh + row_count <= out_h:
                    # All rows in one depth slice (always so in 1-D and 2-D): the
                    # input rows they touch are known in advance, no test per row.
                    if fold:
                        _add_rows(dst, <floating*>plane, g, od * stride_d - pad_d + a * dil_d,
                                  oh * stride_h - pad_h + b * dil_h, row_count, offset_w, lo, hi)
                    else:
                        _copy_rows(plane, dst, g, od * stride_d - pad_d + a * dil_d,
                                   oh * stride_h - pad_h + b * dil_h, row_count, offset_w, lo, hi)
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


cdef int _check_unfold_arguments(const conv_geometry* g, Py_ssize_t* shape, Py_ssize_t cols_size,
                                 Py_ssize_t sample_stride, Py_ssize_t row_stride,
                                 Py_ssize_t n_start, Py_ssize_t n_count, Py_ssize_t row_start,
                                 Py_ssize_t row_count, int n_threads, str name) except -1:
    """The chunk lies in the array, and its columns in the buffer, one range per (sample,
    column row), none overlapping another (tasks on other threads write them)."""
    check_planes(g, shape, name)
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if n_count <= 0 or row_count <= 0:
        return 0
    cdef Py_ssize_t out_rows = g.out_d * g.out_h
    # compared by subtraction: a sum of huge arguments would wrap past the check
    if (n_start < 0 or n_start > shape[0] or n_count > shape[0] - n_start or row_start < 0
            or row_start > out_rows or row_count > out_rows - row_start):
        raise ValueError(f"samples [{n_start}, {n_start} + {n_count}) and output rows "
                         f"[{row_start}, {row_start} + {row_count}) are not all in {name} "
                         f"({shape[0]} samples, {out_rows} output rows)")
    # in Python integers (typed object: Cython would infer C arithmetic), exact for any
    # arguments
    cdef object rows = <object>shape[1] * <object>g.kernel_volume
    cdef object width = <object>row_count * <object>g.out_w
    cdef object last = ((<object>n_count - 1) * <object>sample_stride
                        + (rows - 1) * <object>row_stride + width)
    if sample_stride < 0 or row_stride < 0 or last > cols_size:
        raise ValueError(f"the column buffer of {cols_size} values is too small for strides "
                         f"({sample_stride}, {row_stride}): it needs {last}")
    # disjoint ranges of `width` values: rows inside samples, or samples inside rows
    if not ((row_stride >= width or rows == 1) and (sample_stride >= width or n_count == 1)
            and (sample_stride >= rows * row_stride or row_stride >= n_count * sample_stride)):
        raise ValueError(f"strides ({sample_stride}, {row_stride}) make the columns of "
                         f"{n_count} samples x {rows} rows of {width} values overlap")
    return 0


def im2col(const floating[:, :, :, :, ::1] x, floating[::1] cols,
           Py_ssize_t sample_stride, Py_ssize_t row_stride,
           Py_ssize_t n_start, Py_ssize_t n_count,
           Py_ssize_t row_start, Py_ssize_t row_count, ConvGeometry geometry not None,
           int n_threads):
    """Unfold x of shape (N, C, D, H, W) into ``cols`` (see the module notes)."""
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t channels = x.shape[1]
    cdef Py_ssize_t task, n, c
    _check_unfold_arguments(g, x.shape, cols.shape[0], sample_stride, row_stride, n_start,
                            n_count, row_start, row_count, n_threads, "x")
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
                      row_stride, row_start, row_count, g)
    pyxconv_interrupt_raise(stp)


def col2im(const floating[::1] cols, floating[:, :, :, :, ::1] grad_x,
           Py_ssize_t sample_stride, Py_ssize_t row_stride,
           Py_ssize_t n_start, Py_ssize_t n_count,
           Py_ssize_t row_start, Py_ssize_t row_count, ConvGeometry geometry not None,
           int n_threads):
    """Fold ``cols`` back, adding into grad_x of shape (N, C, D, H, W).

    The adjoint of :func:`im2col` for the same arguments. grad_x is added to,
    not overwritten, so chunks over output rows accumulate. Each task owns one
    (sample, channel) plane of grad_x and adds into it in a fixed order.
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t channels = grad_x.shape[1]
    cdef Py_ssize_t task, n, c
    _check_unfold_arguments(g, grad_x.shape, cols.shape[0], sample_stride, row_stride, n_start,
                            n_count, row_start, row_count, n_threads, "grad_x")
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
                      row_stride, row_start, row_count, g)
    pyxconv_interrupt_raise(stp)
