# Part of _im2col.pyx (included there, in order): one image on many threads (position
# tiles), and the inference forward by panels.

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
                       ConvGeometry geometry not None,
                       int n_threads):
    """``cols[n] = im2col(x[n])``, then ``out[n] = weight @ cols[n] (+ bias)`` by position tiles.

    Shapes as in :func:`conv_forward_samples`; ``tile`` (>= 1) output positions
    a product.
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1], positions = out.shape[2]
    check_planes(g, x.shape, "x")
    _check_sample_arrays(n, channels, g, c_out, k,
                         positions, out.shape[0], weight.shape[0], cols.shape[0],
                         cols.shape[1], cols.shape[2], n_threads)
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != c_out:
        raise ValueError(f"bias has {bias.shape[0]} values for {c_out} output channels")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if n == 0 or positions == 0:
        return
    cdef Py_ssize_t tiles = _position_tiles(positions, tile)
    cdef Py_ssize_t task, s, c, t, p0, width, o, p
    cdef floating* out_row
    cdef floating b
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
                          g.out_d * g.out_h, g)
        for task in prange(n * tiles, schedule="static"):
            if pyxconv_interrupt_poll(stp):
                continue
            s = task // tiles
            t = task - s * tiles
            p0 = t * tile
            width = _tile_width(positions, tile, p0 // tile, tiles)
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
                        ConvGeometry geometry not None,
                        int n_threads):
    """Per sample n: ``products[n] = grad_out[n] @ cols[n]^T`` (C_out, K) in blocks of
    ``row_block`` columns, and, with grad_x (N, C, D, H, W) given, ``grad_cols[n] =
    weight^T @ grad_out[n]`` in tiles of ``tile`` positions, folded by col2im into
    grad_x[n], which this overwrites. grad_cols (N, K, L), or None without grad_x.
    With products None, the input gradient only (the convolutions make their
    weight gradient with :func:`weight_grad_blocks`).
    """
    cdef Py_ssize_t n = cols.shape[0], k = cols.shape[1], positions = cols.shape[2]
    cdef Py_ssize_t c_out = grad_out.shape[1]
    cdef const conv_geometry* g = &geometry.g
    cdef bint needs_input_grad = grad_x is not None
    cdef Py_ssize_t channels = k // g.kernel_volume
    if needs_input_grad:
        if grad_x.shape[0] != n:
            raise ValueError(f"grad_x has {grad_x.shape[0]} samples, cols {n}")
        if (grad_cols is None or grad_cols.shape[0] != n or grad_cols.shape[1] != k
                or grad_cols.shape[2] != positions):
            raise ValueError(f"grad_cols must be ({n}, {k}, {positions})")
        check_planes(g, grad_x.shape, "grad_x")
        channels = grad_x.shape[1]
    _check_sample_arrays(n, channels, g, c_out, k, positions,
                         grad_out.shape[0], weight.shape[0], n, weight.shape[1],
                         grad_out.shape[2], n_threads)
    cdef bint has_products = products is not None
    if has_products and (products.shape[0] != n or products.shape[1] != c_out
                         or products.shape[2] != k):
        raise ValueError(f"products must be ({n}, {c_out}, {k})")
    if row_block < 1 or tile < 1:
        raise ValueError(f"row_block and tile must be >= 1, got {row_block} and {tile}")
    if n == 0:
        return
    cdef Py_ssize_t blocks = (k + row_block - 1) // row_block
    cdef Py_ssize_t tiles = _position_tiles(positions, tile)
    cdef Py_ssize_t task, s, c, j0, rows, p0, width
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    with nogil, parallel(num_threads=n_threads):
        for task in prange(n * blocks if has_products else 0, schedule="static"):
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
                width = _tile_width(positions, tile, p0 // tile, tiles)
                _gemm(True, False, k, width, c_out, &weight[0, 0], k, &grad_out[s, 0, p0],
                      positions, &grad_cols[s, 0, p0], positions)
            for task in prange(n * channels, schedule="guided"):
                if pyxconv_interrupt_poll(stp):
                    continue
                s = task // channels
                c = task - s * channels
                memset(&grad_x[s, c, 0, 0, 0], 0, g.plane * sizeof(floating))
                _unfold_plane(&grad_x[s, c, 0, 0, 0], &grad_cols[s, 0, 0], True, c, 0,
                              positions, 0, g.out_d * g.out_h, g)
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
                        ConvGeometry geometry not None,
                        int n_threads, bint relu=False):
    """``out[n] = weight @ im2col(x[n]) (+ bias)``, panel by panel of output rows.

    x (N, C, D, H, W); weight (C_out, K); bias (C_out,) or None; out (N,
    C_out, L). Each thread allocates one panel buffer of K * rows_per_panel *
    out_w values (the caller keeps that under its workspace limit). With
    ``relu``, the bias pass also applies ReLU as pyxconv's ReLU kernel does
    (``0 if v < 0 else v``: NaN and -0.0 stay), while the panel is in cache.
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1], positions = out.shape[2]
    check_planes(g, x.shape, "x")
    _check_sample_arrays(n, channels, g, c_out, k,
                         positions, out.shape[0], weight.shape[0], n, k, positions, n_threads)
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != c_out:
        raise ValueError(f"bias has {bias.shape[0]} values for {c_out} output channels")
    cdef Py_ssize_t out_rows = g.out_d * g.out_h, out_w = g.out_w
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
                              g)
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
