# Part of _im2col.pyx (included there, in order): a convolution's weight gradient,
# grad_W^T = sum over samples of cols[n] @ grad_out[n]^T, split over independent outputs.
#
# A task owns a block of the column matrix's rows (the rows of whole input
# channels: grad_W's columns for those channels) and a run of consecutive
# samples. It adds that run's products into its block of ``partial[run]``, sample
# after sample, with the GEMM's accumulate; the caller sums the runs in order.
# Blocks and runs are set by the shapes alone (see
# pyxconv.functional._conv.weight_grad_split), never by the thread count, and
# every element of a block is the same chain of sums whichever thread runs it, so
# the bits do not depend on the thread count. The columns are either the kept
# ones (N, K, L) or, with ``cols`` None, unfolded here from x, block by block,
# into the thread's row of ``workspace``: the same values, the same products,
# the same bits. A task makes whole products (one block) unless the partial sums
# of enough runs would not fit the caller's bound. The memory is ``runs`` weight-sized partial sums, which the
# caller bounds, instead of one product per sample.

cpdef Py_ssize_t weight_grad_workspace_size(bint kept, bint transposed, Py_ssize_t block_rows,
                                             Py_ssize_t c_out, Py_ssize_t positions):
    """Elements a thread needs in :func:`weight_grad_blocks`'s workspace: grad_out[n]^T
    when ``transposed``, and without kept columns a block of them."""
    return ((_aligned_count(positions * c_out, 8) if transposed else 0)
            + (0 if kept else block_rows * positions))


def weight_grad_blocks(const floating[:, :, :, :, ::1] x, const floating[:, :, ::1] cols,
                       const floating[:, :, ::1] grad_out, floating[:, :, ::1] partial,
                       floating[:, ::1] workspace, bint transposed,
                       Py_ssize_t block_channels, Py_ssize_t samples_per_run,
                       ConvGeometry geometry not None, int n_threads):
    """``partial[r] = sum over the samples n of run r of grad_out[n] @ cols[n]^T`` (C_out, K),
    or with ``transposed`` its transpose ``cols[n] @ grad_out[n]^T`` (K, C_out).

    x (N, C, D, H, W), the convolution's input; cols (N, K, L) its columns, or
    None to unfold them from x; grad_out (N, C_out, L); partial (runs, C_out,
    K), transposed (runs, K, C_out), with runs = ceil(N / samples_per_run),
    overwritten; workspace (n_threads, >= :func:`weight_grad_workspace_size`), or None
    when that size is 0.
    The transposed form takes grad_out[n]^T, copied to the thread's workspace:
    pyxconv's own float32 GEMM reads its right operand by rows, and OpenBLAS
    too ran (K, L) @ (L, C_out) faster from a contiguous right operand than
    with its transpose flag (LeNet's second layer, K = 150: 0.35 against 0.52
    ms). With few rows the other form is faster (LeNet's first layer, K = 25:
    0.45 against 0.67 ms at batch 32).
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = grad_out.shape[0], c_out = grad_out.shape[1]
    cdef Py_ssize_t positions = grad_out.shape[2]
    cdef Py_ssize_t channels = x.shape[1]
    cdef Py_ssize_t kernel_volume = g.kernel_volume
    check_planes(g, x.shape, "x")
    cdef Py_ssize_t k = channels * kernel_volume
    cdef bint kept = cols is not None
    _check_sample_arrays(n, channels, g, c_out, k, positions,
                         x.shape[0], c_out, n, k, positions, n_threads)
    if kept and (cols.shape[0] != n or cols.shape[1] != k or cols.shape[2] != positions):
        raise ValueError(f"cols must be ({n}, {k}, {positions})")
    if block_channels < 1 or samples_per_run < 1:
        raise ValueError(f"block_channels and samples_per_run must be >= 1, got "
                         f"{block_channels} and {samples_per_run}")
    if block_channels > channels:
        block_channels = channels if channels > 0 else 1
    if samples_per_run > n:
        samples_per_run = n if n > 0 else 1
    cdef Py_ssize_t runs = (n + samples_per_run - 1) // samples_per_run
    cdef Py_ssize_t blocks = (channels + block_channels - 1) // block_channels
    cdef Py_ssize_t block_rows = block_channels * kernel_volume
    if (partial.shape[0] != runs or partial.shape[1] != (k if transposed else c_out)
            or partial.shape[2] != (c_out if transposed else k)):
        raise ValueError(f"partial must be ({runs}, {k if transposed else c_out}, "
                         f"{c_out if transposed else k})")
    cdef Py_ssize_t needed = weight_grad_workspace_size(kept, transposed, block_rows, c_out,
                                                        positions)
    cdef bint has_workspace = workspace is not None
    if needed and (not has_workspace or workspace.shape[0] < n_threads
                   or workspace.shape[1] < needed):
        raise ValueError(f"workspace must be ({n_threads}, >= {needed})")
    if n == 0 or k == 0 or c_out == 0:
        return
    if positions == 0:
        memset(&partial[0, 0, 0], 0, runs * k * c_out * sizeof(floating))
        return
    cdef Py_ssize_t task, s, o, p, run, blk, c, c0, c1, rows, s0, s1
    cdef const floating* a
    cdef floating* grad_t
    cdef floating* buffer
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for task in prange(runs * blocks, nogil=True, schedule="dynamic", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        run = task // blocks
        blk = task - run * blocks
        c0 = blk * block_channels
        c1 = c0 + block_channels if c0 + block_channels < channels else channels
        rows = (c1 - c0) * kernel_volume
        s0 = run * samples_per_run
        s1 = s0 + samples_per_run if s0 + samples_per_run < n else n
        grad_t = &workspace[threadid(), 0] if has_workspace else NULL
        buffer = grad_t + (_aligned_count(positions * c_out, 8) if transposed else 0)
        for s in range(s0, s1):
            if transposed:
                _transpose(&grad_out[s, 0, 0], grad_t, c_out, positions)
            if kept:
                a = &cols[s, c0 * kernel_volume, 0]
            else:
                for c in range(c0, c1):
                    _unfold_plane(&x[s, c, 0, 0, 0], buffer, False, c - c0, 0, positions,
                                  0, g.out_d * g.out_h, g)
                a = buffer
            if transposed:
                _gemm(False, False, rows, c_out, positions, a, positions, grad_t, c_out,
                      &partial[run, c0 * kernel_volume, 0], c_out, s > s0)
            else:
                _gemm(False, True, c_out, rows, positions, &grad_out[s, 0, 0], positions,
                      a, positions, &partial[run, 0, c0 * kernel_volume], k, s > s0)
    pyxconv_interrupt_raise(stp)


# ---------------------------------------------------------------------------
# 1x1 convolutions with stride 1 and no padding: the input is its own column
# matrix, so each step is one product, by (sample, tile of positions) tasks; the
# tile is set by the shapes, never by the thread count.

def pointwise_products(const floating[:, ::1] weight, bint transpose_weight,
                       const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       const floating[::1] bias, bint relu, Py_ssize_t tile, int n_threads):
    """``out[n][:, t] = op(weight) @ x[n][:, t]`` (+ bias, then ReLU) for every tile t of positions.

    op(weight) is weight (M, K), or its transpose with ``transpose_weight``
    (weight then (K, M)); x (N, K, L); out (N, M, L); bias (M,) or None; ``relu``
    clamps negatives (``0 if v < 0 else v``) in the same pass. The forward of a
    pointwise convolution is ``pointwise_products(W, False, x, out, b, ...)``,
    its input gradient ``pointwise_products(W, True, grad_out, grad_x, None, ...)``.
    """
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], positions = x.shape[2]
    cdef Py_ssize_t m = weight.shape[1] if transpose_weight else weight.shape[0]
    cdef Py_ssize_t w_cols = weight.shape[0] if transpose_weight else weight.shape[1]
    if w_cols != k or out.shape[0] != n or out.shape[1] != m or out.shape[2] != positions:
        raise ValueError(f"pointwise products of weight {tuple(weight.shape)[:2]} "
                         f"(transposed: {bool(transpose_weight)}), x {tuple(x.shape)[:3]} "
                         f"and out {tuple(out.shape)[:3]} do not fit")
    if m > _GEMM_INT_MAX or k > _GEMM_INT_MAX or positions > _GEMM_INT_MAX or n_threads < 1:
        raise ValueError("a pointwise GEMM dimension exceeds the BLAS's 32-bit integers")
    cdef bint has_bias = bias is not None
    if has_bias and bias.shape[0] != m:
        raise ValueError(f"bias has {bias.shape[0]} values for {m} output channels")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if n == 0 or m == 0 or positions == 0:
        return
    if k == 0:
        memset(&out[0, 0, 0], 0, n * m * positions * sizeof(floating))
    cdef Py_ssize_t tiles = _position_tiles(positions, tile)
    cdef Py_ssize_t task, s, p0, width, o, p
    cdef floating* row
    cdef floating b
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for task in prange(n * tiles, nogil=True, schedule="static", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        s = task // tiles
        p0 = (task - s * tiles) * tile
        width = _tile_width(positions, tile, p0 // tile, tiles)
        if k > 0:
            _gemm(transpose_weight, False, m, width, k, &weight[0, 0], m if transpose_weight else k,
                  &x[s, 0, p0], positions, &out[s, 0, p0], positions)
        if has_bias or relu:
            for o in range(m):
                row = &out[s, o, p0]
                b = bias[o] if has_bias else 0
                for p in range(width):
                    if has_bias:
                        row[p] = row[p] + b
                    if relu and row[p] < 0:
                        row[p] = 0
    pyxconv_interrupt_raise(stp)
