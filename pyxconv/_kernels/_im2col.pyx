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

The callers guarantee C-contiguous arrays; every kernel checks its arrays
against its ``ConvGeometry`` (whose sizes, strides, dilations and paddings
were checked when it was made), and im2col/col2im check that the chunk lies
in the batch and that the column buffer holds its strides' disjoint ranges.

Layout: this module is one extension built from the files it includes, one
idea each, in this order (later parts use what earlier ones define):
``_unfold_fold.pxi`` (im2col/col2im of planes), ``_gemm_dispatch.pxi`` (the
matrix products and the instruction-set state), ``_linear.pxi`` (a fully
connected layer's forward on those products), ``_per_sample.pxi`` (whole
per-sample steps), ``_weight_grad.pxi`` (the weight gradient by blocks of
channels; the pointwise products), ``_fold_phases.pxi`` (col2im by phases),
``_tiles_panels.pxi`` (one image on many threads; the inference panels) and ``_groups.pxi``
(grouped convolutions). The direct convolution kernels are a module of their
own (``_direct.pyx``). Every kernel takes the convolution's sizes as one
``ConvGeometry`` (``_geometry.pxd``), whose ``conv_geometry`` struct the inner
loops get by pointer, and checks its arrays against it.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from pyxconv._kernels._geometry cimport ConvGeometry, check_planes, conv_geometry
from pyxconv._kernels._isa cimport (
    PYXCONV_ISA_NONE, best_isa, isa_name, isa_number, pyxconv_cpu_has_isa)
from pyxconv._kernels._interrupt cimport (
    pyxconv_interrupt, pyxconv_interrupt_init, pyxconv_interrupt_poll, pyxconv_interrupt_raise)

include "_unfold_fold.pxi"
include "_gemm_dispatch.pxi"
include "_linear.pxi"
include "_per_sample.pxi"
include "_weight_grad.pxi"
include "_fold_phases.pxi"
include "_tiles_panels.pxi"
include "_groups.pxi"
