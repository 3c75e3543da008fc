# Part of _im2col.pyx (included there, in order): col2im by phases into a small buffer,
# and the per-sample folds and unfolds built on it.

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
# zeroing and the bias pass) to about 1.2 ms, and to about 0.6 ms with the loops
# in C compiled for AVX-512. The fold of a plane is pyxconv_fold_plane_f32/_f64
# (fold_kernels_template.h, one instance per instruction set); this file makes
# its tables and calls it.

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


cdef Py_ssize_t* _fold_tables(const conv_geometry* g) except NULL:
    """Index tables shared by every plane of a fold (free them with ``free``).

    First ``in_d * k_d`` values: the output depth od that plane depth id_
    takes from depth tap a, or -1, at ``id_ * k_d + a``. Then four values per
    row tap b, and four per column tap e: the first and one past the last
    output row (column) whose tap lies inside the plane, and the tap's phase
    and shift (:func:`_tap_phase`).
    """
    cdef Py_ssize_t in_d = g.in_d, in_h = g.in_h, in_w = g.in_w
    cdef Py_ssize_t out_d = g.out_d, out_h = g.out_h, out_w = g.out_w
    cdef Py_ssize_t k_d = g.k_d, k_h = g.k_h, k_w = g.k_w
    cdef Py_ssize_t n_d = in_d * k_d
    cdef Py_ssize_t* tables = <Py_ssize_t*>malloc((n_d + 4 * (k_h + k_w)) * sizeof(Py_ssize_t))
    if tables == NULL:
        raise MemoryError("no memory for col2im's index tables")
    cdef Py_ssize_t i, t, offset
    cdef Py_ssize_t* entry
    for i in range(in_d):
        for t in range(k_d):
            tables[i * k_d + t] = _output_index(i, g.pad_d, t * g.dil_d, g.stride_d, out_d)
    for t in range(k_h + k_w):
        entry = tables + n_d + 4 * t
        if t < k_h:
            offset = t * g.dil_h - g.pad_h  # output row o lands on plane row o * s_h + offset
            entry[0] = _valid_range_lo(offset, g.stride_h, out_h)
            entry[1] = _valid_range_hi(offset, g.stride_h, in_h, out_h, entry[0])
            _tap_phase(offset, g.stride_h, g.pad_h, &entry[2], &entry[3])
        else:
            offset = (t - k_h) * g.dil_w - g.pad_w
            entry[0] = _valid_range_lo(offset, g.stride_w, out_w)
            entry[1] = _valid_range_hi(offset, g.stride_w, in_w, out_w, entry[0])
            _tap_phase(offset, g.stride_w, g.pad_w, &entry[2], &entry[3])
    return tables


cdef inline Py_ssize_t _band_rows(Py_ssize_t span_h, Py_ssize_t stride_h, Py_ssize_t stride_w,
                                  Py_ssize_t span_w) noexcept nogil:
    """Phase rows per band: as many as fit _BAND_VALUES, at least one."""
    cdef Py_ssize_t rows = _BAND_VALUES // (stride_h * stride_w * span_w)
    if rows < 1:
        return 1
    return rows if rows < span_h else span_h


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
    """Whether the fold by phases applies: one phase row of every phase fits in a band."""
    if stride_h > in_h or stride_w > in_w:  # mostly padding; and keeps the product small
        return False
    return stride_h * stride_w * ((in_w + stride_w - 1) // stride_w) <= _BAND_VALUES


cdef inline void _split_phases(const floating* plane_slice, floating* buffer, Py_ssize_t in_h,
                               Py_ssize_t in_w, Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t span_h, Py_ssize_t span_w) noexcept nogil:
    """buffer[ph][pw][mh][mw] = plane_slice[s_h * mh + ph, s_w * mw + pw]."""
    cdef Py_ssize_t phase_size = span_h * span_w
    cdef Py_ssize_t ih, iw
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
            if floating is float:
                pyxconv_deinterleave_f32(_gemm_isa, row, even, odd, in_w // 2)
            else:
                pyxconv_deinterleave_f64(_gemm_isa, row, even, odd, in_w // 2)
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
                                      Py_ssize_t c, Py_ssize_t positions,
                                      const conv_geometry* g,
                                      const Py_ssize_t* tables) noexcept nogil:
    """im2col of channel c's plane into one sample's (K, L) columns, by phases.

    The adjoint of the fold by phases (pyxconv_fold_plane), for strided
    convolutions: each depth slice is first split by phases into ``buffer`` (:func:`_split_phases`;
    :func:`_phases_fit` must hold), where a tap's source rows are then
    contiguous, at a fixed shift: an interior tap's whole column block is
    one memcpy, and no loop reads with a stride. ``tables`` as
    :func:`_fold_tables` makes them. The columns are those of im2col, value
    for value: copies, and zeros in the padding.
    """
    cdef Py_ssize_t in_d = g.in_d, in_h = g.in_h, in_w = g.in_w
    cdef Py_ssize_t out_d = g.out_d, out_h = g.out_h, out_w = g.out_w
    cdef Py_ssize_t k_d = g.k_d, k_h = g.k_h, k_w = g.k_w
    cdef Py_ssize_t stride_d = g.stride_d, stride_h = g.stride_h, stride_w = g.stride_w
    cdef Py_ssize_t pad_d = g.pad_d, dil_d = g.dil_d
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
                 ConvGeometry geometry not None, int n_threads):
    """Per sample n: ``out[n] = col2im(weight^T @ x[n]) (+ bias)``, a transposed convolution.

    x (N, M, L); weight (M, K) with K = C * k_d * k_h * k_w; bias (C,) or
    None; out (N, C, D, H, W), whose convolution with this geometry has L
    output positions. ``out`` is overwritten: each row of a sample's planes
    is summed in a buffer that stays in L1, given its bias and written once
    (pyxconv_fold_plane_f32/_f64 of simd_kernels.h, on the instruction set
    :func:`set_isa` chose); adding the bias in a second pass would give the
    same bits. The columns go to the
    thread's row of ``workspace`` (n_threads, >= K * L).
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], positions = x.shape[2]
    cdef Py_ssize_t k = weight.shape[1], channels = out.shape[1]
    cdef Py_ssize_t in_h = g.in_h, in_w = g.in_w, stride_h = g.stride_h, stride_w = g.stride_w
    check_planes(g, out.shape, "out")
    _check_sample_arrays(n, channels, g, m, k, positions,
                         out.shape[0], weight.shape[0], n, k, positions, n_threads)
    if workspace.shape[0] < n_threads or workspace.shape[1] < k * positions:
        raise ValueError(f"workspace must be ({n_threads}, >= {k * positions})")
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != channels:
        raise ValueError(f"bias has {bias.shape[0]} values for {channels} output channels")
    cdef Py_ssize_t plane = g.plane
    cdef Py_ssize_t s, c, t, p
    cdef floating* cols
    cdef floating* target
    cdef floating* band
    cdef floating b
    cdef int fold_isa = _gemm_isa
    # the planes summed band by band (pyxconv_fold_plane), or else zeroed and folded into
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
            tables = _fold_tables(g)
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
                    if floating is float:
                        pyxconv_fold_plane_f32(fold_isa, cols, target + c * plane, band,
                                               has_bias, bias[c] if has_bias else 0, c,
                                               positions, g, band_rows, tables)
                    else:
                        pyxconv_fold_plane_f64(fold_isa, cols, target + c * plane, band,
                                               has_bias, bias[c] if has_bias else 0, c,
                                               positions, g, band_rows, tables)
            else:
                memset(target, 0, channels * plane * sizeof(floating))
                _unfold_sample(target, cols, True, channels, g)
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
                   ConvGeometry geometry not None, int n_threads, *, Py_ssize_t samples_per_product=1,
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
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = y.shape[0], channels = y.shape[1]
    cdef Py_ssize_t m = weight.shape[0], k = weight.shape[1]
    cdef Py_ssize_t positions = g.positions
    check_planes(g, y.shape, "y")
    cdef bint has_out = out is not None, has_products = products is not None
    _check_sample_arrays(n, channels, g, m, k, positions,
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
    cdef bint phased = _phases_fit(g.in_h, g.in_w, g.stride_h, g.stride_w)
    cdef Py_ssize_t* tables = NULL
    cdef floating* phase_buffers = NULL
    cdef floating* phase_buffer
    cdef Py_ssize_t c
    cdef Py_ssize_t plane = g.plane
    if phased:
        tables = _fold_tables(g)
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
                                             g, tables)
                else:
                    _unfold_sample(&y[s, 0, 0, 0, 0], cols, False, channels, g)
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
