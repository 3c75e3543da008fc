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

cimport numpy as cnp

from pyxconv._kernels._arrays cimport array_data

from pyxconv._kernels._geometry cimport ConvGeometry, check_planes, conv_geometry
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
                                   Py_ssize_t out_w, Py_ssize_t k) noexcept nogil
    Py_ssize_t pyxconv_direct_width(int variant) noexcept nogil
    Py_ssize_t pyxconv_direct_tile(int variant) noexcept nogil
    Py_ssize_t pyxconv_direct_reads_past_sample(const pyxconv_direct_geometry* g,
                                                Py_ssize_t out_d, int variant) noexcept nogil
    ctypedef void (*pyxconv_direct_row_fn)(const pyxconv_direct_geometry* g, const float* xp,
                                           const float* wt, const float* bias, int relu,
                                           float* out, Py_ssize_t od,
                                           Py_ssize_t oh) noexcept nogil
    pyxconv_direct_row_fn pyxconv_direct_kernel(int variant) noexcept nogil


cnp.import_array()

_ISA_NAMES = {"none": PYXCONV_ISA_NONE, "avx2": PYXCONV_ISA_AVX2,
              "avx512": PYXCONV_ISA_AVX512, "neon": PYXCONV_ISA_NEON}


cdef int _variant(str isa, Py_ssize_t c_out, Py_ssize_t stride_w, Py_ssize_t out_w,
                  Py_ssize_t rows) except -1:
    if isa not in _ISA_NAMES:
        raise ValueError(f"unknown instruction set {isa!r}; known: {', '.join(_ISA_NAMES)}")
    return pyxconv_direct_variant_for(_ISA_NAMES[isa], c_out, stride_w, out_w, rows)


def channel_width(str isa, Py_ssize_t c_out, Py_ssize_t stride_w=0, Py_ssize_t out_w=0,
                  Py_ssize_t rows=0):
    """Output channels per block of the direct kernel for ``c_out`` channels on ``isa``.

    The kernel runs the output channels in blocks of this many (one, two or
    four vectors, or 6 rows of the row-vectorised tile that stride-1 layers
    with few channels or few column ``rows`` get); 0 when there is no direct
    kernel on ``isa`` (the instruction set is missing from this CPU or build,
    or is "none"). ``stride_w`` and ``out_w`` (0: unknown) are the output
    row's; ``rows`` (0: unknown) is K, input channels times kernel volume.
    """
    return pyxconv_direct_width(_variant(isa, c_out, stride_w, out_w, rows))


def tile_positions(str isa, Py_ssize_t c_out, Py_ssize_t stride_w=0, Py_ssize_t out_w=0,
                   Py_ssize_t rows=0):
    """Output positions per tile of the direct kernel, as for :func:`channel_width` (0: none)."""
    return pyxconv_direct_tile(_variant(isa, c_out, stride_w, out_w, rows))


cdef inline Py_ssize_t _extent(Py_ssize_t out, Py_ssize_t kernel, Py_ssize_t stride,
                               Py_ssize_t dilation) noexcept nogil:
    """Input extent (padding included) that ``out`` outputs read."""
    return (out - 1) * stride + (kernel - 1) * dilation + 1


cdef void _fill_geometry(pyxconv_direct_geometry* d, Py_ssize_t channels, Py_ssize_t c_out,
                         const conv_geometry* g) noexcept nogil:
    """The convolution ``g`` as the direct kernels take it, with the layout of its padded
    sample buffer."""
    d.channels, d.c_out, d.positions = channels, c_out, g.positions
    d.k_d, d.k_h, d.k_w = g.k_d, g.k_h, g.k_w
    d.stride_d, d.stride_h, d.stride_w = g.stride_d, g.stride_h, g.stride_w
    d.dil_d, d.dil_h, d.dil_w = g.dil_d, g.dil_h, g.dil_w
    d.out_h, d.out_w = g.out_h, g.out_w
    # the buffer's layout holds the padded input and every window; unpadded, it is x's own
    d.dp = max(_extent(g.out_d, g.k_d, g.stride_d, g.dil_d), g.pad_d + g.in_d)
    d.hp = max(_extent(g.out_h, g.k_h, g.stride_h, g.dil_h), g.pad_h + g.in_h)
    d.wp = max(_extent(g.out_w, g.k_w, g.stride_w, g.dil_w), g.pad_w + g.in_w)


cdef inline Py_ssize_t _buffer_floats(const pyxconv_direct_geometry* g, Py_ssize_t out_d,
                                      int variant) noexcept nogil:
    """Floats of one padded sample buffer: the layout, then the last tile's overrun."""
    cdef Py_ssize_t past = pyxconv_direct_reads_past_sample(g, out_d, variant)
    return (g.channels * g.dp * g.hp * g.wp + past + 15) // 16 * 16


cdef inline Py_ssize_t _weight_floats(int variant, Py_ssize_t c_out, Py_ssize_t k) noexcept nogil:
    """Floats of the packed weights: blocks of the variant's width, each K x width."""
    cdef Py_ssize_t width = pyxconv_direct_width(variant)
    return (c_out + width - 1) // width * k * width


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


cdef struct _direct_run:
    # one convolution's fixed sizes, worked out once (by a call or a DirectConv)
    pyxconv_direct_geometry g
    pyxconv_direct_row_fn row_kernel
    Py_ssize_t n, channels, in_d, in_h, in_w, pad_d, pad_h, pad_w
    Py_ssize_t out_d, out_h, k, width, weight_size, buffer_size, buffers
    Py_ssize_t past, sample_size
    bint padded
    int n_threads


cdef int _prepare_run(_direct_run* r, str isa, Py_ssize_t n, Py_ssize_t channels,
                      Py_ssize_t c_out, const conv_geometry* g, int n_threads) except -1:
    """Fill ``r`` for these sizes; ValueError for sizes no kernel can run."""
    cdef int variant = _variant(isa, c_out, g.stride_w, g.out_w, channels * g.kernel_volume)
    r.row_kernel = pyxconv_direct_kernel(variant)
    if r.row_kernel == NULL:
        raise ValueError(f"no direct kernel for {c_out} output channels on {isa!r} here")
    if min(n, channels) < 0 or c_out < 1 or n_threads < 1:
        raise ValueError(f"inconsistent arguments for a direct convolution: {n} samples, "
                         f"{channels} -> {c_out} channels, {n_threads} threads")
    _fill_geometry(&r.g, channels, c_out, g)
    r.n, r.channels, r.in_d, r.in_h, r.in_w = n, channels, g.in_d, g.in_h, g.in_w
    r.pad_d, r.pad_h, r.pad_w = g.pad_d, g.pad_h, g.pad_w
    r.out_d, r.out_h, r.k = g.out_d, g.out_h, channels * g.kernel_volume
    r.padded = g.pad_d > 0 or g.pad_h > 0 or g.pad_w > 0
    if not r.padded and (r.g.dp != g.in_d or r.g.hp != g.in_h or r.g.wp != g.in_w):
        r.padded = True  # windows past the input's end (never with PyTorch's sizes)
    r.past = pyxconv_direct_reads_past_sample(&r.g, g.out_d, variant)
    r.sample_size = channels * g.plane
    r.buffer_size = _buffer_floats(&r.g, g.out_d, variant)
    r.width = pyxconv_direct_width(variant)
    r.weight_size = _weight_floats(variant, c_out, r.k)
    r.buffers = n if n < n_threads else n_threads
    r.n_threads = n_threads
    return 0


cdef inline bint _sample_copied(const _direct_run* r, Py_ssize_t s) noexcept nogil:
    """Whether sample s is read from a padded copy (see the module notes)."""
    return r.padded or r.past > (r.n - 1 - s) * r.sample_size


cdef void _run(const _direct_run* r, const float* x, const float* weight, const float* bias,
               float* out, bint relu, float* wt, pyxconv_interrupt* stp) noexcept nogil:
    """The convolution of ``r`` into ``out``; ``wt`` holds the packed weights, then the buffers."""
    cdef Py_ssize_t n = r.n, k = r.k, width = r.width, c_out = r.g.c_out
    cdef Py_ssize_t out_rows = r.out_d * r.out_h, out_h = r.out_h
    cdef Py_ssize_t out_size = c_out * r.g.positions
    cdef float* buffer_base = wt + r.weight_size
    cdef Py_ssize_t s, task, row, p, o
    cdef const float* src
    cdef float* packed
    if n == 0:
        return
    # blocks of `width` channels, each K x width, the last one zero-padded
    memset(wt, 0, r.weight_size * sizeof(float))
    for o in range(c_out):
        packed = wt + (o // width) * k * width + o % width
        for p in range(k):
            packed[p * width] = weight[o * k + p]
    if r.n_threads == 1:  # no parallel region: starting one costs ~1 us, a small layer's time
        for s in range(n):
            if pyxconv_interrupt_poll(stp):
                break
            _sample_rows(r, x, bias, out, relu, wt, buffer_base, s)
    elif n >= r.n_threads:
        for s in prange(n, schedule="guided", num_threads=r.n_threads):
            if pyxconv_interrupt_poll(stp):
                continue
            _sample_rows(r, x, bias, out, relu, wt, buffer_base + threadid() * r.buffer_size, s)
    else:
        # one image (or a few) on every thread: first the copies, then row tasks
        for s in prange(n, schedule="static", num_threads=r.n_threads):
            if _sample_copied(r, s):
                _pad_sample(x + s * r.sample_size, buffer_base + s * r.buffer_size,
                            r.channels, r.in_d, r.in_h, r.in_w, r.pad_d, r.pad_h, r.pad_w,
                            &r.g, r.buffer_size)
        for task in prange(n * out_rows, schedule="guided", num_threads=r.n_threads):
            if pyxconv_interrupt_poll(stp):
                continue
            s = task // out_rows
            row = task - s * out_rows
            if _sample_copied(r, s):
                src = buffer_base + s * r.buffer_size
            else:
                src = x + s * r.sample_size
            r.row_kernel(&r.g, src, wt, bias, relu, out + s * out_size, row // out_h,
                         row % out_h)


cdef inline void _sample_rows(const _direct_run* r, const float* x, const float* bias,
                              float* out, bint relu, const float* wt, float* buffer,
                              Py_ssize_t s) noexcept nogil:
    """Every output row of sample s, its padded copy (when it needs one) made in ``buffer``."""
    cdef const float* src = x + s * r.sample_size
    cdef Py_ssize_t row
    if _sample_copied(r, s):
        _pad_sample(src, buffer, r.channels, r.in_d, r.in_h, r.in_w, r.pad_d, r.pad_h,
                    r.pad_w, &r.g, r.buffer_size)
        src = buffer
    for row in range(r.out_d * r.out_h):
        r.row_kernel(&r.g, src, wt, bias, relu, out + s * r.g.c_out * r.g.positions,
                     row // r.out_h, row % r.out_h)


cdef inline Py_ssize_t _workspace_floats(const _direct_run* r) noexcept nogil:
    """Floats of the packed weights and the buffers, plus a cache line to align them."""
    return r.weight_size + r.buffers * r.buffer_size + 16


cdef inline float* _workspace_start(void* block) noexcept nogil:
    """The first cache line of a block of _workspace_floats: where the packed weights go."""
    return <float*>((<uintptr_t>block + 63) // 64 * 64)


def conv_forward_direct(const float[:, :, :, :, ::1] x, const float[:, ::1] weight,
                        const float[::1] bias, float[:, :, ::1] out, str isa,
                        ConvGeometry geometry not None, int n_threads, bint relu=False):
    """``out[n] = weight @ im2col(x[n]) (+ bias)``, ReLU with ``relu``, without the columns.

    x (N, C, D, H, W) float32; weight (C_out, K), K = C * k_d * k_h * k_w;
    bias (C_out,) or None; out (N, C_out, L), L the geometry's output
    positions. Raises ValueError when ``isa`` has no direct kernel for C_out channels
    (:func:`channel_width` is 0) or the shapes disagree.
    """
    cdef _direct_run r
    cdef const conv_geometry* g = &geometry.g
    check_planes(g, x.shape, "x")
    _prepare_run(&r, isa, x.shape[0], x.shape[1], out.shape[1], g, n_threads)
    if (weight.shape[0] != r.g.c_out or weight.shape[1] != r.k or out.shape[0] != r.n
            or out.shape[2] != r.g.positions
            or (bias is not None and bias.shape[0] != r.g.c_out)):
        raise ValueError("inconsistent arguments for a direct convolution")
    if not (x.is_c_contig() and out.is_c_contig()):
        raise ValueError("x and out must be C-contiguous")
    if r.n == 0 or r.g.positions == 0:
        return
    # what workspace_bytes reports
    cdef void* block = malloc(_workspace_floats(&r) * sizeof(float))
    if block == NULL:
        raise MemoryError("no memory for the direct convolution's buffers")
    cdef pyxconv_interrupt st
    pyxconv_interrupt_init(&st)
    with nogil:
        _run(&r, &x[0, 0, 0, 0, 0], &weight[0, 0], &bias[0] if bias is not None else NULL,
             &out[0, 0, 0], relu, _workspace_start(block), &st)
    free(block)
    pyxconv_interrupt_raise(&st)


cdef class DirectConv:
    """:func:`conv_forward_direct` for fixed sizes, its workspace kept: for repeated calls.

    Made with the sizes of the arrays :func:`conv_forward_direct` takes:
    ``DirectConv(isa, n, channels, c_out, geometry, n_threads)``. A call
    ``conv(x, weight, bias, out, relu)`` checks only that the arrays are
    C-contiguous float32 of the sizes it was made for (TypeError otherwise),
    then runs: about a microsecond less per call than the function, which
    takes its arguments as memoryviews and allocates its workspace.
    ``workspace_bytes`` is what it holds.
    """
    cdef _direct_run r
    cdef void* block
    cdef float* wt
    cdef readonly Py_ssize_t workspace_bytes

    def __cinit__(self, str isa, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t c_out,
                  ConvGeometry geometry not None, int n_threads):
        _prepare_run(&self.r, isa, n, channels, c_out, &geometry.g, n_threads)
        self.workspace_bytes = _workspace_floats(&self.r) * sizeof(float)
        self.block = malloc(self.workspace_bytes)
        if self.block == NULL:
            raise MemoryError("no memory for the direct convolution's buffers")
        self.wt = _workspace_start(self.block)

    def __dealloc__(self):
        free(self.block)

    def __call__(self, x, weight, bias, out, bint relu=False):
        cdef const _direct_run* r = &self.r
        cdef int f32 = cnp.NPY_FLOAT32
        cdef const float* xd = <const float*>array_data(x, "x", f32, r.n * r.sample_size)
        cdef const float* wd = <const float*>array_data(weight, "weight", f32, r.g.c_out * r.k)
        cdef const float* bd = NULL
        if bias is not None:
            bd = <const float*>array_data(bias, "bias", f32, r.g.c_out)
        cdef float* od = <float*>array_data(out, "out", f32, r.n * r.g.c_out * r.g.positions,
                                            True)
        cdef pyxconv_interrupt st
        pyxconv_interrupt_init(&st)
        with nogil:
            _run(r, xd, wd, bd, od, relu, self.wt, &st)
        pyxconv_interrupt_raise(&st)


def workspace_bytes(Py_ssize_t n, Py_ssize_t channels, Py_ssize_t c_out, str isa,
                    ConvGeometry geometry not None, int n_threads):
    """Bytes :func:`conv_forward_direct` allocates for these sizes (0: no direct kernel).

    The packed weights and one padded sample buffer per thread (at most one
    per sample), as the kernel computes them.
    """
    if pyxconv_direct_kernel(_variant(isa, c_out, geometry.g.stride_w, geometry.g.out_w,
                                      channels * geometry.g.kernel_volume)) == NULL:
        return 0
    cdef _direct_run r
    _prepare_run(&r, isa, n, channels, c_out, &geometry.g, n_threads)
    return _workspace_floats(&r) * sizeof(float)
