# Part of _im2col.pyx (included there, in order): whole per-sample steps: im2col, GEMM
# and col2im of a sample in one nogil loop.

# ---------------------------------------------------------------------------
# Whole per-sample convolution steps (im2col, GEMM, col2im) in one nogil loop.
# One OpenMP loop over samples does all of a sample's work on one thread,
# without the GIL, so a thread never waits for another between the steps.

cdef inline void _unfold_sample(const floating* sample, floating* cols, bint fold,
                                Py_ssize_t channels, const conv_geometry* g) noexcept nogil:
    """im2col (or with ``fold`` col2im) of one whole sample, columns as (K, L)."""
    cdef Py_ssize_t c
    for c in range(channels):
        _unfold_plane(sample + c * g.plane, cols, fold, c, 0, g.positions, 0, g.out_d * g.out_h,
                      g)


cdef inline void _check_sample_arrays(Py_ssize_t n, Py_ssize_t channels, const conv_geometry* g,
                                      Py_ssize_t c_out, Py_ssize_t k, Py_ssize_t positions,
                                      Py_ssize_t n_second, Py_ssize_t weight_rows,
                                      Py_ssize_t cols_n, Py_ssize_t cols_k, Py_ssize_t cols_l,
                                      int n_threads) except *:
    """The callers' promises, checked: a wrong shape here would write out of bounds."""
    if (c_out > _GEMM_INT_MAX or k > _GEMM_INT_MAX or positions > _GEMM_INT_MAX
            or n_threads < 1):
        raise ValueError("a per-sample GEMM dimension exceeds the BLAS's 32-bit integers")
    if (weight_rows != c_out or k != channels * g.kernel_volume or n_second != n
            or positions != g.positions or n_threads < 1
            or cols_n != n or cols_k != k or cols_l != positions):
        raise ValueError("inconsistent array shapes for a per-sample convolution step")


def conv_forward_samples(const floating[:, :, :, :, ::1] x, const floating[:, ::1] weight,
                         const floating[::1] bias, floating[:, :, ::1] cols,
                         floating[:, :, ::1] out,
                         ConvGeometry geometry not None, int n_threads):
    """Per sample n: ``cols[n] = im2col(x[n])``, ``out[n] = weight @ cols[n] (+ bias)``.

    x (N, C, D, H, W); weight (C_out, K) with K = C * k_d * k_h * k_w; bias
    (C_out,) or None; cols (N, K, L), kept by the caller for the backward
    pass, and out (N, C_out, L), with L the output positions. Samples are
    independent, so any thread count gives the same bits.
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1], positions = out.shape[2]
    check_planes(g, x.shape, "x")
    _check_sample_arrays(n, channels, g, c_out, k, positions, out.shape[0], weight.shape[0],
                         cols.shape[0], cols.shape[1], cols.shape[2], n_threads)
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
        _unfold_sample(&x[s, 0, 0, 0, 0], &cols[s, 0, 0], False, channels, g)
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
                          ConvGeometry geometry not None, int n_threads, *,
                          Py_ssize_t samples_per_product=1):
    """Per sample n, the weight gradient's product and (optionally) the input gradient.

    cols (N, K, L) as :func:`conv_forward_samples` left them.
    ``products[j] = sum of grad_out[n] @ cols[n]^T`` (C_out, K), or with
    ``transposed`` its transpose ``cols[n] @ grad_out[n]^T`` (K, C_out), over
    the run of samples [j * spp, (j + 1) * spp) (``samples_per_product``), added
    in order by one thread with the GEMM's accumulate; the caller sums the runs
    in order. The transposed form makes the products of
    :func:`weight_grad_blocks` with one block, so the two give the same bits.
    With products None only the input gradient is made. With grad_x (N, C, D, H, W) given
    (zeroed by the caller), the columns' gradient ``weight^T @ grad_out[n]``
    goes to the thread's row of ``workspace``, where it stays in cache, and
    col2im adds it into grad_x[n]. ``workspace`` is (n_threads,
    :func:`backward_workspace_size`), or None when that size is 0.
    """
    cdef Py_ssize_t n = cols.shape[0], k = cols.shape[1], positions = cols.shape[2]
    cdef Py_ssize_t c_out = grad_out.shape[1]
    cdef const conv_geometry* g = &geometry.g
    cdef bint needs_input_grad = grad_x is not None
    cdef Py_ssize_t channels = k // g.kernel_volume
    if needs_input_grad:
        if grad_x.shape[0] != n:
            raise ValueError(f"grad_x has {grad_x.shape[0]} samples, cols {n}")
        check_planes(g, grad_x.shape, "grad_x")
        channels = grad_x.shape[1]
    _check_sample_arrays(n, channels, g, c_out, k, positions, grad_out.shape[0],
                         weight.shape[0], n, weight.shape[1], grad_out.shape[2], n_threads)
    cdef Py_ssize_t needed = backward_workspace_size(k, c_out, positions, transposed,
                                                     needs_input_grad)
    if needed and (workspace is None or workspace.shape[0] < n_threads
                   or workspace.shape[1] < needed):
        raise ValueError(f"workspace must be ({n_threads}, >= {needed})")
    if samples_per_product < 1:
        raise ValueError(f"samples_per_product must be >= 1, got {samples_per_product}")
    if samples_per_product > n:
        samples_per_product = n if n > 0 else 1
    cdef Py_ssize_t runs = (n + samples_per_product - 1) // samples_per_product
    cdef bint has_products = products is not None
    if has_products and (products.shape[0] != runs
                         or products.shape[1] != (k if transposed else c_out)
                         or products.shape[2] != (c_out if transposed else k)):
        raise ValueError("products has the wrong shape")
    cdef Py_ssize_t run, s, s0, s1, o, p
    cdef floating* grad_cols
    cdef floating* grad_t
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    for run in prange(runs, nogil=True, schedule="guided", num_threads=n_threads):
        if pyxconv_interrupt_poll(stp):
            continue
        s0 = run * samples_per_product
        s1 = s0 + samples_per_product if s0 + samples_per_product < n else n
        for s in range(s0, s1):
            if has_products and transposed:
                # grad_out[n]^T copied first: OpenBLAS ran (K, L) @ (L, C_out) faster
                # from a contiguous right operand than with its transpose flag
                grad_t = &workspace[threadid(), 0]
                _transpose(&grad_out[s, 0, 0], grad_t, c_out, positions)
                _gemm(False, False, k, c_out, positions, &cols[s, 0, 0], positions,
                      grad_t, c_out, &products[run, 0, 0], c_out, s > s0)
            elif has_products:
                _gemm(False, True, c_out, k, positions, &grad_out[s, 0, 0], positions,
                      &cols[s, 0, 0], positions, &products[run, 0, 0], k, s > s0)
            if needs_input_grad:
                grad_cols = &workspace[threadid(), 0]
                _gemm(True, False, k, positions, c_out, &weight[0, 0], k, &grad_out[s, 0, 0],
                      positions, grad_cols, positions)
                _unfold_sample(&grad_x[s, 0, 0, 0, 0], grad_cols, True, channels, g)
    pyxconv_interrupt_raise(stp)
