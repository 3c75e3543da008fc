# Part of _im2col.pyx (included there, in order): grouped and depthwise convolutions,
# one task per (sample, group).

# ---------------------------------------------------------------------------
# Grouped convolutions (depthwise among them), without Python between groups.
# A task is one (sample, group): im2col of the group's C_in/groups planes into
# the thread's columns (K_g x L, K_g = C_in/groups * kernel volume), then the
# group's product out[s, group rows] = weight[group rows] @ cols. The backward's
# weight gradient loops over groups in parallel and over samples in order inside
# each (the same sums at any thread count); its input gradient is again one task
# per (sample, group), each folding into the group's own planes.

cdef inline void _unfold_group(const floating* sample, floating* cols, bint fold,
                               Py_ssize_t first, Py_ssize_t count,
                               const conv_geometry* g) noexcept nogil:
    """im2col (col2im with fold) of planes [first, first + count) of one sample as (K_g, L)."""
    cdef Py_ssize_t c
    for c in range(count):
        _unfold_plane(sample + (first + c) * g.plane, cols, fold, c, 0, g.positions, 0,
                      g.out_d * g.out_h, g)


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
                        ConvGeometry geometry not None, int n_threads):
    """``out[n, group] = weight[group] @ im2col(x[n, group]) (+ bias)`` per (sample, group).

    x (N, C, D, H, W); weight (C_out, K_g); bias (C_out,) or None; out (N,
    C_out, L); workspace (n_threads, >= K_g * L).
    """
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t c_out = out.shape[1], k_g = weight.shape[1], positions = out.shape[2]
    check_planes(g, x.shape, "x")
    _check_group_arrays(n, channels, c_out, groups, g.kernel_volume, k_g, positions,
                        g.positions, weight.shape[0], workspace.shape[0],
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
        _unfold_group(&x[s, 0, 0, 0, 0], cols, False, gi * cig, cig, g)
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
                         ConvGeometry geometry not None, int n_threads):
    """grad_weight (C_out, K_g) = sum_n grad_out[n, group] @ im2col(x[n, group])^T, in sample
    order (overwritten); with grad_x given, grad_x[n, group] = col2im(weight[group]^T @
    grad_out[n, group]) (overwritten)."""
    cdef const conv_geometry* g = &geometry.g
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t c_out = grad_out.shape[1], k_g = weight.shape[1]
    cdef Py_ssize_t positions = grad_out.shape[2]
    check_planes(g, x.shape, "x")
    _check_group_arrays(n, channels, c_out, groups, g.kernel_volume, k_g, positions,
                        g.positions, weight.shape[0], workspace.shape[0],
                        workspace.shape[1], n_threads)
    if (grad_out.shape[0] != n or grad_weight.shape[0] != c_out
            or grad_weight.shape[1] != k_g):
        raise ValueError("grad_out or grad_weight has the wrong shape")
    cdef bint needs_input_grad = grad_x is not None
    if needs_input_grad and (grad_x.shape[0] != n or grad_x.shape[1] != channels
                             or grad_x.shape[2] != g.in_d or grad_x.shape[3] != g.in_h
                             or grad_x.shape[4] != g.in_w):
        raise ValueError("grad_x must have x's shape")
    cdef Py_ssize_t cig = channels // groups, cog = c_out // groups
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
            _unfold_group(&x[s, 0, 0, 0, 0], cols, False, gi * cig, cig, g)
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
        memset(&grad_x[s, gi * cig, 0, 0, 0], 0, cig * g.plane * sizeof(floating))
        _unfold_group(&grad_x[s, 0, 0, 0, 0], cols, True, gi * cig, cig, g)
    pyxconv_interrupt_raise(stp)
