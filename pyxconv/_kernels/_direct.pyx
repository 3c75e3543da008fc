"""Direct float32 convolution (no im2col): the forward of inference.

The kernels of ``direct_kernels.h`` read each input value where it lies, as
a broadcast, and keep an output position's channels in vector lanes, in
blocks of 8 to 64 channels by instruction set and channel count. For LeNet's
layers (6 and 16 output channels) the im2col columns cost as much as the
product, and a 16-row GEMM runs on the BLAS's edge kernels; for wide 3x3
layers the columns are a quarter of the time.

Each output is the FMA chain the own GEMM makes from the columns (see the
header), so results do not depend on the thread count. Tasks: whole samples
when there are at least as many as threads; otherwise (sample, output row)
pairs, after the samples' padded copies are made.

Padding: a sample is copied into a zero-padded buffer (one per thread) when
the convolution pads, and also when a tile's reads would pass the end of the
input array: when its last row's last tile reads further than the samples
after it reach (the last sample, or more for tiny samples). The
caller checks the arguments; this module checks again what would otherwise
read or write out of bounds.
"""
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from libc.stdint cimport uintptr_t

from pyxconv._kernels._interrupt cimport (
    pyxconv_interrupt, pyxconv_interrupt_init, pyxconv_interrupt_poll, pyxconv_interrupt_raise)


cdef extern from "direct_kernels.h":
    int PYXCONV_ISA_NONE, PYXCONV_ISA_AVX2, PYXCONV_ISA_AVX512, PYXCONV_ISA_NEON
    ctypedef struct pyxconv_direct_geometry:
        Py_ssize_t channels, dp, hp, wp
        Py_ssize_t k_d, k_h, k_w
        Py_ssize_t stride_d, stride_h, stride_w
        Py_ssize_t dil_d, dil_h, dil_w
        Py_ssize_t out_h, out_w, positions
        Py_ssize_t c_out
    int pyxconv_direct_variant(int isa, Py_ssize_t c_out) noexcept nogil
    int pyxconv_direct_variant_for(int isa, Py_ssize_t c_out, Py_ssize_t stride_w,
                                   Py_ssize_t out_w) noexcept nogil
    Py_ssize_t pyxconv_direct_width(int variant) noexcept nogil
    Py_ssize_t pyxconv_direct_tile(int variant) noexcept nogil
    Py_ssize_t pyxconv_direct_reads_past_sample(const pyxconv_direct_geometry* g,
                                                Py_ssize_t out_d, int variant) noexcept nogil
    ctypedef void (*pyxconv_direct_row_fn)(const pyxconv_direct_geometry* g, const float* xp,
                                           const float* wt, const float* bias, int relu,
                                           float* out, Py_ssize_t od,
                                           Py_ssize_t oh) noexcept nogil
    pyxconv_direct_row_fn pyxconv_direct_kernel(int variant) noexcept nogil


_ISA_NAMES = {"none": PYXCONV_ISA_NONE, "avx2": PYXCONV_ISA_AVX2,
              "avx512": PYXCONV_ISA_AVX512, "neon": PYXCONV_ISA_NEON}


cdef int _variant(str isa, Py_ssize_t c_out, Py_ssize_t stride_w, Py_ssize_t out_w) except -1:
    if isa not in _ISA_NAMES:
        raise ValueError(f"unknown instruction set {isa!r}; known: {', '.join(_ISA_NAMES)}")
    return pyxconv_direct_variant_for(_ISA_NAMES[isa], c_out, stride_w, out_w)


def channel_width(str isa, Py_ssize_t c_out, Py_ssize_t stride_w=0, Py_ssize_t out_w=0):
    """Output channels per block of the direct kernel for ``c_out`` channels on ``isa``.

    The kernel runs the output channels in blocks of this many (one, two or
    four vectors, or 6 rows of the row-vectorised tile that few channels at
    ``stride_w`` 1 get); 0 when there is no direct kernel on ``isa`` (the
    instruction set is missing from this CPU or build, or is "none").
    ``stride_w`` and ``out_w`` (0: unknown) are the output row's.
    """
    return pyxconv_direct_width(_variant(isa, c_out, stride_w, out_w))


def tile_positions(str isa, Py_ssize_t c_out, Py_ssize_t stride_w=0, Py_ssize_t out_w=0):
    """Output positions per tile of the direct kernel, as for :func:`channel_width` (0: none)."""
    return pyxconv_direct_tile(_variant(isa, c_out, stride_w, out_w))


cdef inline Py_ssize_t _extent(Py_ssize_t out, Py_ssize_t kernel, Py_ssize_t stride,
                               Py_ssize_t dilation) noexcept nogil:
    """Input extent (padding included) that ``out`` outputs read."""
    return (out - 1) * stride + (kernel - 1) * dilation + 1


cdef void _fill_geometry(pyxconv_direct_geometry* g, Py_ssize_t channels, Py_ssize_t c_out,
                         Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                         Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                         Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                         Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                         Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                         Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w) noexcept nogil:
    """The geometry of a convolution, with the layout of its padded sample buffer."""
    g.channels, g.c_out, g.positions = channels, c_out, out_d * out_h * out_w
    g.k_d, g.k_h, g.k_w = k_d, k_h, k_w
    g.stride_d, g.stride_h, g.stride_w = stride_d, stride_h, stride_w
    g.dil_d, g.dil_h, g.dil_w = dil_d, dil_h, dil_w
    g.out_h, g.out_w = out_h, out_w
    # the buffer's layout holds the padded input and every window; unpadded, it is x's own
    g.dp = max(_extent(out_d, k_d, stride_d, dil_d), pad_d + in_d)
    g.hp = max(_extent(out_h, k_h, stride_h, dil_h), pad_h + in_h)
    g.wp = max(_extent(out_w, k_w, stride_w, dil_w), pad_w + in_w)


cdef inline Py_ssize_t _buffer_floats(const pyxconv_direct_geometry* g, Py_ssize_t out_d,
                                      int variant) noexcept nogil:
    """Floats of one padded sample buffer: the layout, then the last tile's overrun."""
    cdef Py_ssize_t past = pyxconv_direct_reads_past_sample(g, out_d, variant)
    return (g.channels * g.dp * g.hp * g.wp + past + 15) // 16 * 16


cdef inline Py_ssize_t _weight_floats(int variant, Py_ssize_t c_out, Py_ssize_t k) noexcept nogil:
    """Floats of the packed weights: blocks of the variant's width, each K x width."""
    cdef Py_ssize_t width = pyxconv_direct_width(variant)
    return (c_out + width - 1) // width * k * width


def workspace_bytes(Py_ssize_t n, Py_ssize_t channels, Py_ssize_t c_out, str isa,
                    Py_ssize_t in_d, Py_ssize_t in_h, Py_ssize_t in_w,
                    Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                    Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                    Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                    Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                    Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w, int n_threads):
    """Bytes :func:`conv_forward_direct` allocates for these sizes (0: no direct kernel).

    The packed weights and one padded sample buffer per thread (at most one
    per sample), as the kernel computes them.
    """
    cdef int variant = _variant(isa, c_out, stride_w, out_w)
    if pyxconv_direct_kernel(variant) == NULL:
        return 0
    cdef pyxconv_direct_geometry g
    _fill_geometry(&g, channels, c_out, in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w,
                   stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
    cdef Py_ssize_t buffers = min(n, n_threads)
    return ((_weight_floats(variant, c_out, channels * k_d * k_h * k_w)
             + buffers * _buffer_floats(&g, out_d, variant)) * sizeof(float) + 64)


cdef void _pad_sample(const float* x, float* xp, Py_ssize_t channels, Py_ssize_t in_d,
                      Py_ssize_t in_h, Py_ssize_t in_w, Py_ssize_t pad_d, Py_ssize_t pad_h,
                      Py_ssize_t pad_w, const pyxconv_direct_geometry* g,
                      Py_ssize_t size) noexcept nogil:
    """x (C, D, H, W) into the zeroed buffer xp (C, dp, hp, wp, then slack) at the padding."""
    cdef Py_ssize_t c, d, h
    memset(xp, 0, size * sizeof(float))
    for c in range(channels):
        for d in range(in_d):
            for h in range(in_h):
                memcpy(xp + ((c * g.dp + d + pad_d) * g.hp + h + pad_h) * g.wp + pad_w,
                       x + ((c * in_d + d) * in_h + h) * in_w, in_w * sizeof(float))


def conv_forward_direct(const float[:, :, :, :, ::1] x, const float[:, ::1] weight,
                        const float[::1] bias, float[:, :, ::1] out, str isa,
                        Py_ssize_t out_d, Py_ssize_t out_h, Py_ssize_t out_w,
                        Py_ssize_t k_d, Py_ssize_t k_h, Py_ssize_t k_w,
                        Py_ssize_t stride_d, Py_ssize_t stride_h, Py_ssize_t stride_w,
                        Py_ssize_t pad_d, Py_ssize_t pad_h, Py_ssize_t pad_w,
                        Py_ssize_t dil_d, Py_ssize_t dil_h, Py_ssize_t dil_w,
                        int n_threads, bint relu=False):
    """``out[n] = weight @ im2col(x[n]) (+ bias)``, ReLU with ``relu``, without the columns.

    x (N, C, D, H, W) float32; weight (C_out, K), K = C * k_d * k_h * k_w;
    bias (C_out,) or None; out (N, C_out, out_d * out_h * out_w). Padding
    before each dimension is pad_*; the output sizes fix the padding after.
    Raises ValueError when ``isa`` has no direct kernel for C_out channels
    (:func:`channel_width` is 0) or the shapes disagree.
    """
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t in_d = x.shape[2], in_h = x.shape[3], in_w = x.shape[4]
    cdef Py_ssize_t c_out = out.shape[1], k = weight.shape[1]
    cdef Py_ssize_t positions = out_d * out_h * out_w
    if isa not in _ISA_NAMES:
        raise ValueError(f"unknown instruction set {isa!r}")
    cdef int variant = pyxconv_direct_variant_for(_ISA_NAMES[isa], c_out, stride_w, out_w)
    cdef pyxconv_direct_row_fn row_kernel = pyxconv_direct_kernel(variant)
    if row_kernel == NULL:
        raise ValueError(f"no direct kernel for {c_out} output channels on {isa!r} here")
    if (min(out_d, out_h, out_w, k_d, k_h, k_w, stride_d, stride_h, stride_w,
            dil_d, dil_h, dil_w) < 1 or min(pad_d, pad_h, pad_w) < 0 or n_threads < 1
            or weight.shape[0] != c_out or k != channels * k_d * k_h * k_w
            or out.shape[0] != n or out.shape[2] != positions
            or (bias is not None and bias.shape[0] != c_out)):
        raise ValueError("inconsistent arguments for a direct convolution")
    if not (x.is_c_contig() and out.is_c_contig()):
        raise ValueError("x and out must be C-contiguous")
    if n == 0 or positions == 0:
        return
    cdef bint padded = pad_d > 0 or pad_h > 0 or pad_w > 0
    cdef pyxconv_direct_geometry g
    _fill_geometry(&g, channels, c_out, in_d, in_h, in_w, out_d, out_h, out_w, k_d, k_h, k_w,
                   stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w)
    if not padded and (g.dp != in_d or g.hp != in_h or g.wp != in_w):
        padded = True  # windows past the input's end (never with PyTorch's sizes)
    cdef Py_ssize_t past = pyxconv_direct_reads_past_sample(&g, out_d, variant)
    cdef Py_ssize_t sample_size = channels * in_d * in_h * in_w
    cdef Py_ssize_t buffer_size = _buffer_floats(&g, out_d, variant)
    cdef Py_ssize_t width = pyxconv_direct_width(variant)
    cdef Py_ssize_t weight_size = _weight_floats(variant, c_out, k)
    cdef Py_ssize_t buffers = n if n < n_threads else n_threads
    cdef Py_ssize_t out_rows = out_d * out_h
    cdef bint by_rows = n < n_threads
    cdef Py_ssize_t s, task, row, p, o
    cdef const float* src
    cdef const float* w_rows
    cdef float* packed
    cdef float* xp
    cdef const float* bias_ptr = &bias[0] if bias is not None else NULL
    # what workspace_bytes reports
    cdef void* block = malloc((weight_size + buffers * buffer_size) * sizeof(float) + 64)
    if block == NULL:
        raise MemoryError("no memory for the direct convolution's buffers")
    cdef float* wt = <float*>((<uintptr_t>block + 63) // 64 * 64)
    cdef float* buffer_base = wt + weight_size
    cdef pyxconv_interrupt st
    cdef pyxconv_interrupt* stp = &st
    pyxconv_interrupt_init(stp)
    try:
        # blocks of `width` channels, each K x width, the last one zero-padded
        memset(wt, 0, weight_size * sizeof(float))
        w_rows = &weight[0, 0]
        for o in range(c_out):
            packed = wt + (o // width) * k * width + o % width
            for p in range(k):
                packed[p * width] = w_rows[o * k + p]
        if not by_rows:
            for s in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
                if pyxconv_interrupt_poll(stp):
                    continue
                src = &x[s, 0, 0, 0, 0]
                if padded or past > (n - 1 - s) * sample_size:
                    xp = buffer_base + threadid() * buffer_size
                    _pad_sample(src, xp, channels, in_d, in_h, in_w, pad_d, pad_h, pad_w,
                                &g, buffer_size)
                    src = xp
                for row in range(out_rows):
                    row_kernel(&g, src, wt, bias_ptr, relu, &out[s, 0, 0], row // out_h,
                               row % out_h)
        else:
            # one image (or a few) on every thread: first the copies, then row tasks
            for s in prange(n, nogil=True, schedule="static", num_threads=n_threads):
                if padded or past > (n - 1 - s) * sample_size:
                    _pad_sample(&x[s, 0, 0, 0, 0], buffer_base + s * buffer_size, channels,
                                in_d, in_h, in_w, pad_d, pad_h, pad_w, &g, buffer_size)
            for task in prange(n * out_rows, nogil=True, schedule="guided",
                               num_threads=n_threads):
                if pyxconv_interrupt_poll(stp):
                    continue
                s = task // out_rows
                row = task - s * out_rows
                if padded or past > (n - 1 - s) * sample_size:
                    src = buffer_base + s * buffer_size
                else:
                    src = &x[s, 0, 0, 0, 0]
                row_kernel(&g, src, wt, bias_ptr, relu, &out[s, 0, 0], row // out_h,
                           row % out_h)
        pyxconv_interrupt_raise(stp)
    finally:
        free(block)
