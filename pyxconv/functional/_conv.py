"""Convolution (cross-correlation) in 1, 2 and 3 dimensions: forward and backward.

The algorithm is im2col + GEMM: the input is unfolded into a column matrix
(:func:`im2col`), one row per (input channel, kernel offset), one column per
output position, so that the convolution becomes one matrix product with the
weights reshaped to ``(C_out, C_in * prod(kernel_size))``. The backward pass
uses the same column matrix for the weight gradient and folds the column
gradient back onto the input with :func:`col2im`.

With one group, and NumPy's BLAS callable from the kernels (see
:mod:`pyxconv._blas`), this runs sample by sample in one nogil OpenMP loop
whose threads each unfold into their own column buffer, which stays in
cache: im2col then GEMM for the forward; for the backward one loop for the
weight gradient (per-sample products summed in sample order, in waves set by
the shapes) and one for the input gradient (GEMM then col2im). On the
benchmark's layers this took the geometric mean of forward+backward against
torch from 0.79 to 1.00 at 1 thread and from 0.60 to 0.85 at 2. Otherwise
(groups, other BLASes, samples over the workspace limit) the work goes in
chunks of about 1 MiB of columns, shared among Python threads (pyxconv._parallel).
"""
import contextlib
import functools
import math
import threading

import numpy as np

from pyxconv._blas import (ensure_gemm, gemms_single_threaded_below, gemvs_single_threaded_below,
                           get_isa)
from pyxconv._kernels import _direct, _im2col, _winograd
from pyxconv._kernels._geometry import ConvGeometry
from pyxconv._parallel import blas_on_one_thread, map_blocks, waves
from pyxconv._threads import get_num_threads, threads_for
from pyxconv._workspace import get_workspace_limit, thread_workspace
from pyxconv._validation import (
    FLOAT_DTYPES,
    SPATIAL_DIM_NAMES,
    UNCACHEABLE,
    CheckedCalls,
    as_int,
    check_allocation,
    check_finite_size,
    check_nonempty_sample,
    check_ndim,
    conv_output_size,
    float_arrays,
    int_tuple,
    padding_pairs,
    plain_key,
)

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_WEIGHT_LAYOUTS = {1: "(C_out, C_in/groups, kL)", 2: "(C_out, C_in/groups, kH, kW)",
                   3: "(C_out, C_in/groups, kD, kH, kW)"}

# Whole samples are grouped into one chunk until its column matrix reaches about
# this size: a column matrix that stays in cache between im2col and the GEMM is
# faster than one large product over a buffer that does not (measured on the
# benchmark layers: 4.6 ms vs 10.8 ms of im2col for 32x64x32x32, 3x3). Between
# 1 and 4 MiB one thread runs as fast; 1 MiB gives threads more chunks to share
# (LeNet's second layer, forward+backward at 2 threads: 3.4 ms with 4 MiB,
# 2.3 ms with 1 MiB).
_CHUNK_TARGET_BYTES = 1 * 2**20

# Below this many column-matrix rows per group, the backward takes the weight
# gradient as (cols @ go^T)^T rather than go @ cols^T: the backward of LeNet's
# second layer (150 rows) ran 13% faster, 32x64x32x32 3x3 (576 rows) 4%; at
# 1152 rows (128 channels, 3x3) the direct form was 5% faster.
_WEIGHT_GRAD_TRANSPOSED_BELOW_ROWS = 1024


class _Geometry:
    """Sizes of one convolution, padded out to 3 spatial dimensions.

    A 1-D problem of length L is the 3-D problem (1, 1, L); a 2-D problem
    (H, W) is (1, H, W). The kernels only ever see the 3-D form.
    """

    def __init__(self, in_spatial, kernel, stride, pads, dilation, groups, n, c_in, c_out,
                 x_name="x"):
        nd = len(in_spatial)
        names = SPATIAL_DIM_NAMES[nd]
        self.nd = nd
        self.n, self.c_in, self.c_out, self.groups = n, c_in, c_out, groups
        self.in_spatial = tuple(in_spatial)
        self.kernel, self.stride, self.pads, self.dilation = kernel, stride, pads, dilation
        self.out_spatial = tuple(
            conv_output_size(s, k, st, p[0], p[1], d, names[i], x_name)
            for i, (s, k, st, p, d) in enumerate(zip(in_spatial, kernel, stride, pads, dilation))
        )
        fill = 3 - nd
        self.in3 = (1,) * fill + self.in_spatial
        self.out3 = (1,) * fill + self.out_spatial
        self.k3 = (1,) * fill + tuple(kernel)
        self.s3 = (1,) * fill + tuple(stride)
        self.p3 = (0,) * fill + tuple(p[0] for p in pads)
        self.d3 = (1,) * fill + tuple(dilation)
        self.kernel_volume = math.prod(kernel)
        self.rows = c_in * self.kernel_volume  # K: rows of the column matrix
        self.positions = math.prod(self.out_spatial)  # L: output positions per sample
        self.out_rows = self.out3[0] * self.out3[1]  # (od, oh) rows of width out_w
        self.out_w = self.out3[2]

    @property
    def is_pointwise(self):
        """1x1 kernel, stride 1, no padding: the column matrix is the input itself."""
        return (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride)
                and all(p == (0, 0) for p in self.pads))

    @functools.cached_property
    def blas_limit(self):
        """``blas_on_one_thread()``, or a no-op where every product of this convolution,
        forward or backward, is one that OpenBLAS runs on the calling thread anyway
        (limiting and restoring its threads took 6 us a call, a tiny layer's whole
        backward): GEMMs below :func:`~pyxconv._blas.gemms_single_threaded_below`
        multiply-adds, and, where a product can have one row or one column (the
        kernels then call gemv), matrices below
        :func:`~pyxconv._blas.gemvs_single_threaded_below` elements."""
        one_row_or_column = 1 in (self.c_out // self.groups, self.out_w, self.positions)
        if (self.c_out * self.rows * self.positions >= gemms_single_threaded_below()
                or (one_row_or_column and self.rows * max(self.c_out, self.positions)
                    >= gemvs_single_threaded_below())):
            return blas_on_one_thread()
        return contextlib.nullcontext()

    @functools.cached_property
    def kernel_geometry(self):
        """The :class:`~pyxconv._kernels._geometry.ConvGeometry` every kernel of this
        convolution takes: the 3-D sizes, checked once."""
        return ConvGeometry(self.in3, self.out3, self.k3, self.s3, self.p3, self.d3)

    def chunks(self, itemsize, n_buffers=1):
        """Split the work into (n_start, n_count, row_start, row_count) pieces.

        Each piece's column matrix takes at most the workspace limit divided by
        ``n_buffers``. Whole samples are grouped while one fits; otherwise a
        single sample is split by output rows.
        """
        cap = get_workspace_limit() // n_buffers
        per_sample = self.rows * self.positions * itemsize
        if per_sample <= cap:
            per_chunk = max(1, min(self.n, min(cap, _CHUNK_TARGET_BYTES) // per_sample))
            for n0 in range(0, self.n, per_chunk):
                yield n0, min(per_chunk, self.n - n0), 0, self.out_rows
            return
        per_row = self.rows * self.out_w * itemsize
        rows_per_chunk = cap // per_row
        if rows_per_chunk < 1:
            raise MemoryError(
                f"one output row of the im2col matrix needs {per_row} bytes "
                f"({self.rows} rows x {self.out_w} columns x {itemsize} bytes), more than "
                f"the workspace limit of {cap} bytes; raise it with "
                "pyxconv.set_workspace_limit()"
            )
        for n0 in range(self.n):
            for r0 in range(0, self.out_rows, rows_per_chunk):
                yield n0, 1, r0, min(rows_per_chunk, self.out_rows - r0)


def _normalise_conv_args(x, weight, bias, stride, padding, dilation, groups, nd,
                         transposed=False):
    x, weight, bias = float_arrays(x=x, weight=weight, bias=bias)
    check_ndim(x, nd + 2, "x", _LAYOUTS[nd])
    check_ndim(weight, nd + 2, "weight", _WEIGHT_LAYOUTS[nd])
    check_nonempty_sample(x.shape, "x")
    check_finite_size(weight.shape, "weight")
    groups = as_int(groups, "groups", 1)
    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    kernel = tuple(weight.shape[2:])
    pads = padding_pairs(padding, nd, kernel, stride, dilation)
    c_in = x.shape[1]
    c_out = weight.shape[0]
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels C_out={c_out}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(
            f"weight has {weight.shape[1]} input channels per group (shape {weight.shape}); "
            f"with groups={groups} that needs C_in={weight.shape[1] * groups}, but x has "
            f"C_in={c_in} (shape {x.shape})"
        )
    if bias is not None:
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},) to match C_out, got {bias.shape}")
    plan = conv_plan(x.shape[2:], kernel, stride, pads, dilation, groups, x.shape[0], c_in,
                     c_out, x.dtype)
    geometry = plan.g
    check_allocation((geometry.n, c_out) + geometry.out_spatial, x.itemsize, "output")
    return np.ascontiguousarray(x), np.ascontiguousarray(weight), bias, geometry, plan


def _column_strides(geometry, nb, rc, per_sample):
    """(sample_stride, row_stride) of a chunk's column buffer: (K, nb*m) or (nb, K, m)."""
    m = rc * geometry.out_w
    return (geometry.rows * m, m) if per_sample else (m, nb * m)


def _run_im2col(x5, cols, geometry, n0, nb, r0, rc, n_threads, per_sample=False):
    """Fill ``cols`` as (K, nb*m) for one large GEMM, or (nb, K, m) for one GEMM a sample."""
    _im2col.im2col(x5, cols, *_column_strides(geometry, nb, rc, per_sample), n0, nb, r0, rc,
                   geometry.kernel_geometry, n_threads)


def _run_col2im(cols, grad_x5, geometry, n0, nb, r0, rc, n_threads, per_sample=False):
    """Add ``cols``, laid out as for :func:`_run_im2col`, back onto grad_x5."""
    _im2col.col2im(cols, grad_x5, *_column_strides(geometry, nb, rc, per_sample), n0, nb, r0,
                   rc, geometry.kernel_geometry, n_threads)


def parallel_threads(g, itemsize, chunks, n_buffers=1):
    """Python threads for a loop over ``chunks``: ``get_num_threads()``, or 1.

    One when there is one chunk, and when the threads' column buffers
    together (``n_buffers`` each) would pass the workspace limit: the chunks
    then run one after the other, each on all threads.
    """
    n_threads = min(get_num_threads(), len(chunks))
    largest = max(g.rows * nb * rc * g.out_w for _, nb, _, rc in chunks) * itemsize
    if n_threads <= 1 or n_threads * n_buffers * largest > get_workspace_limit():
        return 1
    return n_threads


#: The direct path's weight-gradient products are made for waves of samples
#: whose products take at most this many bytes.
_PRODUCTS_BYTES = 4 * 2**20

#: The weight gradient cuts a batch into runs of consecutive samples: the kernel
#: sums a run's products in place (one product to read back per run, not per
#: sample), and the runs, shared among the threads, are summed here in order.
#: A run holds at most _SAMPLES_PER_RUN samples, and there are at least
#: _PRODUCT_RUNS runs where the batch allows, so the loop over runs can keep
#: max(8, N / 4) threads busy. Set by the batch size alone, so the bits do not
#: depend on the thread count. (Transposed benchmark layer, backward at 1
#: thread: 9.18 ms with runs of 4 samples, 9.38 with runs of 2, 9.68 with one
#: sample a run.)
_PRODUCT_RUNS = 8
_SAMPLES_PER_RUN = 4


def samples_per_run(n):
    """Samples of a weight-gradient run, for a batch of n (>= 1): at most 4, and small
    enough to give 8 runs where n allows.

    >>> [samples_per_run(n) for n in (1, 8, 9, 32, 64, 1000)]
    [1, 1, 2, 4, 4, 4]
    """
    return max(1, min(_SAMPLES_PER_RUN, -(-n // _PRODUCT_RUNS)))


def sample_threads(g, per_thread_elements, itemsize):
    """Threads for the direct per-sample kernels, or 0 when they do not apply.

    They need NumPy's BLAS as C functions (:mod:`pyxconv._blas`), one group,
    and per-thread columns within the workspace limit; larger samples go the
    chunked way instead.
    """
    if g.groups != 1 or not ensure_gemm():
        return 0
    threads = min(g.n, threads_for(g.n * per_thread_elements))
    if threads * per_thread_elements * itemsize > get_workspace_limit():
        threads = 1
        if per_thread_elements * itemsize > get_workspace_limit():
            return 0
    return threads


def weight_gradient_by_samples(y5, weight2, x3, g, threads, workspace, out3=None,
                               channel_sums=None):
    """sum_n im2col(y5[n]) @ x3[n]^T, (K, M), in sample order and in waves set by the shapes.

    The kernel sums each run of a few consecutive samples itself
    (:func:`samples_per_run`, whatever the thread count); the runs are summed
    here, in order, a wave of at most _PRODUCTS_BYTES at a time. With ``out3``
    (N, M, L) given, also ``out3[n] = weight2 @ im2col(y5[n])`` from the same
    columns, and with ``channel_sums`` (N, C) each channel of y5[n] summed
    (:func:`_im2col.unfold_samples`).
    """
    n, k, m = g.n, weight2.shape[1], weight2.shape[0]
    per_run = samples_per_run(n)
    runs_per_wave = max(1, min(-(-n // per_run), _PRODUCTS_BYTES // (k * m * x3.itemsize)))
    wave = runs_per_wave * per_run
    products = np.empty((runs_per_wave, k, m), x3.dtype)
    total = np.zeros((k, m), dtype=x3.dtype)
    for n0 in range(0, n, wave):
        nb = min(wave, n - n0)
        runs = -(-nb // per_run)
        _im2col.unfold_samples(y5[n0:n0 + nb], weight2,
                               None if out3 is None else out3[n0:n0 + nb], x3[n0:n0 + nb],
                               products[:runs], workspace, g.kernel_geometry, threads,
                               samples_per_product=per_run,
                               channel_sums=None if channel_sums is None
                               else channel_sums[n0:n0 + nb])
        total += products[:runs].sum(axis=0)
    return total


def _thread_workspace(local, name, size, dtype):
    """A flat buffer of ``size`` elements, kept per thread in ``local`` across chunks."""
    buffer = getattr(local, name, None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=dtype)
        setattr(local, name, buffer)
    return buffer[:size]


def pointwise_tile(g):
    """Positions of one pointwise product: a whole sample, or position tiles for small batches.

    Set by the shapes alone (as the ``"tiles"`` algorithm's are), so the bits
    do not depend on the thread count.
    """
    return g.positions if g.n >= TILES_BELOW_SAMPLES else position_tile(g.positions)


def _forward_pointwise(x, w, bias, out, g, threads, relu):
    """1x1, stride 1, no padding: the columns are the input itself, one product a task."""
    with g.blas_limit:
        _im2col.pointwise_products(w[0], False, x.reshape(g.n, g.c_in, g.positions), out,
                                   bias, relu, pointwise_tile(g), threads)


#: The weight gradient (:func:`weight_grad`) keeps one weight-sized partial sum per
#: run of samples, together at most this many bytes (at least one).
WEIGHT_GRAD_PARTIAL_BYTES = 16 * 2**20
#: It aims at this many tasks, so that up to 16 threads get shares: runs of
#: samples, each making whole products as long as their partial sums fit in
#: WEIGHT_GRAD_PARTIAL_BYTES, and for larger weights blocks of input channels too.
#: Whole products are the fastest: (32, 64, 32, 32) -> 64 3x3 took 34 ms by blocks
#: of 4 channels against 26 ms whole at 1 thread, since each block re-reads every
#: sample's grad_out.
_WEIGHT_GRAD_TASKS = 16


def weight_grad_split(g, itemsize):
    """``(block_channels, samples_per_run)`` of :func:`weight_grad`, from the shapes alone.

    >>> from pyxconv.functional._conv import _Geometry, weight_grad_split
    >>> def split(n, c_in, c_out, hw):
    ...     g = _Geometry((hw, hw), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, n, c_in, c_out)
    ...     return weight_grad_split(g, 4)
    >>> split(32, 64, 64, 32)     # 16 runs of 2 samples, whole products
    (64, 2)
    >>> split(32, 512, 512, 7)    # a 9.4 MB weight: one run, 16 blocks of 32 channels
    (32, 32)
    >>> split(32, 256, 256, 14)   # 2.4 MB: 7 runs (of 5 samples), 3 blocks of 86 channels
    (86, 5)
    """
    partial_bytes = max(1, g.rows * g.c_out * itemsize)
    runs = max(1, min(g.n, _WEIGHT_GRAD_TASKS, WEIGHT_GRAD_PARTIAL_BYTES // partial_bytes))
    blocks = min(max(1, g.c_in), -(-_WEIGHT_GRAD_TASKS // runs))
    return -(-max(1, g.c_in) // blocks), -(-g.n // runs) if g.n else 1


def weight_grad_transposed(g, itemsize):
    """Whether the weight gradient's products are made transposed (:data:`WEIGHT_GRAD_TRANSPOSED_FROM_ROWS`).

    Only where one thread's copy of grad_out[n]^T fits in the workspace limit:
    a 1x1 layer of 2048 channels on 256x256 would need 512 MB a thread. Set by
    the shapes and the limit, never by the thread count.
    """
    return (g.rows >= WEIGHT_GRAD_TRANSPOSED_FROM_ROWS
            and g.c_out * g.positions * itemsize <= get_workspace_limit())


def weight_grad(go, x, cols, g, threads):
    """grad_W (C_out, K) of a one-group convolution, from its kept columns or from x.

    Tasks of (block of input channels, run of samples), shared among the
    threads (:func:`_im2col.weight_grad_blocks`): no product per sample is
    kept, only one partial sum per run, within
    :data:`WEIGHT_GRAD_PARTIAL_BYTES`; the runs are summed in order. The
    kept columns and columns unfolded again give the same bits.
    """
    block, per_run = weight_grad_split(g, x.dtype.itemsize)
    runs = -(-g.n // per_run)
    transposed = weight_grad_transposed(g, x.dtype.itemsize)
    partial = np.empty((runs, g.rows, g.c_out) if transposed else (runs, g.c_out, g.rows),
                       dtype=x.dtype)
    size = _im2col.weight_grad_workspace_size(cols is not None, transposed,
                                              block * g.kernel_volume, g.c_out, g.positions)
    # the threads' buffers within the workspace limit (fewer threads: the same bits)
    threads = max(1, min(threads, get_workspace_limit() // max(1, size * x.dtype.itemsize)))
    workspace = thread_workspace(threads, size, x.dtype) if size else None
    with g.blas_limit:
        _im2col.weight_grad_blocks(x.reshape((g.n, g.c_in) + g.in3), cols, go, partial,
                                   workspace, transposed, block, per_run, g.kernel_geometry,
                                   threads)
    total = partial[0] if runs == 1 else partial.sum(axis=0)
    return total.T if transposed else total


def _forward_samples(x, w, bias, out, g, threads, keep_columns):
    """One nogil loop over samples: im2col into the thread's columns, then the GEMM.

    With ``keep_columns``, the columns go to an (N, K, L) array, returned for
    the backward pass (:func:`_im2col.conv_forward_samples`); the bias is added
    in the loop.
    """
    x5 = x.reshape((g.n, g.c_in) + g.in3)
    with g.blas_limit:
        if keep_columns:
            cols = np.empty((g.n, g.rows, g.positions), dtype=x.dtype)
            _im2col.conv_forward_samples(x5, w[0], bias, cols, out, g.kernel_geometry, threads)
            return cols
        workspace = thread_workspace(threads, g.rows * g.positions, x.dtype)
        _im2col.unfold_samples(x5, w[0], out, None, None, workspace, g.kernel_geometry, threads)
        if bias is not None:
            out += bias.reshape(1, -1, 1)
    return None


#: A panel's columns (the "panels" forward) take at most this many bytes per
#: thread. Larger panels let the GEMM reuse the weights over more columns (the
#: weights are read once per panel); smaller ones stay in a small L2. Measured on
#: a 1 MiB-L2 core: 128 -> 128 channels 3x3 on 16x16 ran at 63 GF/s with 256 KiB
#: panels (48 columns) and 92 GF/s with 1 MiB; LeNet's layers were no slower.
PANEL_BYTES = 2**20

#: The own GEMM's widest tile has this many columns; a panel whose width is not a
#: multiple of it computes its last tile on zero padding.
_PANEL_COLUMN_MULTIPLE = 32


def panel_rows(g, itemsize):
    """Output rows (od, oh) of one panel of the forward by panels: the shape's choice alone.

    The most rows within :data:`PANEL_BYTES`, or a few fewer when that makes the
    panel's width (rows x out_w columns) waste less of the GEMM's last tile.
    """
    per_row = g.rows * g.out_w * itemsize
    most = max(1, min(g.out_rows, PANEL_BYTES // per_row))
    if most == g.out_rows:
        return most

    def waste(rows):
        width = rows * g.out_w
        return (-width) % _PANEL_COLUMN_MULTIPLE / width

    return min(range(max(1, most * 3 // 4), most + 1), key=lambda rows: (waste(rows), -rows))


def _forward_panels(x, w, bias, out, plan, relu):
    """Inference: im2col of a few output rows at a time into the thread's panel, then the GEMM."""
    with plan.g.blas_limit:
        _im2col.conv_forward_panels(x.reshape(plan._x5_shape), w[0], bias, out,
                                    plan._panel_rows, plan.g.kernel_geometry, plan.panel_threads,
                                    relu=relu)


def _forward_direct(x, w, bias, out, plan, relu):
    """Inference by the direct kernel: no columns (:mod:`pyxconv._kernels._direct`)."""
    _direct.conv_forward_direct(x.reshape(plan._x5_shape), w[0], bias, out, plan.isa,
                                plan.g.kernel_geometry, plan.direct_threads, relu=relu)


def _forward_winograd(x, w, bias, out, plan, relu):
    """A forward without columns by Winograd's F(2x2, 3x3) (:mod:`pyxconv._kernels._winograd`)."""
    g = plan.g
    u = _winograd.transform_weights(w[0].reshape((g.c_out, g.c_in, 3, 3)), plan.winograd_threads)
    _winograd.conv_forward(x, u, bias, out.reshape((g.n, g.c_out) + g.out_spatial),
                           g.pads[0][0], g.pads[1][0], plan.isa, plan.winograd_threads,
                           relu=relu)


def _input_grad_winograd(go, weight, grad_x, plan):
    """grad_x by Winograd: grad_out correlated with the kernel flipped in both spatial
    axes and its channel axes swapped, padded by 2 - p on each side."""
    g = plan.g
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    u = _winograd.transform_weights(flipped, plan.winograd_threads)
    _winograd.conv_forward(go.reshape((g.n, g.c_out) + g.out_spatial), u, None, grad_x,
                           2 - g.pads[0][0], 2 - g.pads[1][0], plan.isa,
                           plan.winograd_threads)


def _weight_grad_winograd(go, x, grad_w, plan):
    """grad_W by Winograd: dU = sum over tiles of (A dY A^T) (.) (B^T d B), the
    gradient of U = G g G^T, then dg = G^T dU G (the forward's transforms, transposed).

    The batch's tiles go in :func:`~pyxconv._kernels._winograd.weight_grad_runs`
    runs, fixed by the shapes; their sums are added in order."""
    g = plan.g
    total = g.n * -(-g.out_spatial[0] // 2) * -(-g.out_spatial[1] // 2)
    runs = _winograd.weight_grad_runs(g.c_in, g.c_out, total)
    du = np.empty((runs, 16, g.c_in, g.c_out), np.float32)
    _winograd.conv_weight_grad(x, go.reshape((g.n, g.c_out) + g.out_spatial), du,
                               g.pads[0][0], g.pads[1][0], plan.isa, plan.winograd_threads)
    d = du[0] if runs == 1 else du.sum(axis=0)
    d = d.reshape(4, 4, g.c_in, g.c_out)
    # G^T (3 x 4) = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1], down the rows, then along
    half_sum, half_diff = 0.5 * (d[1] + d[2]), 0.5 * (d[1] - d[2])
    t = np.stack([d[0] + half_sum, half_diff, half_sum + d[3]])  # (3, 4, C_in, C_out)
    half_sum, half_diff = 0.5 * (t[:, 1] + t[:, 2]), 0.5 * (t[:, 1] - t[:, 2])
    dg = np.stack([t[:, 0] + half_sum, half_diff, half_sum + t[:, 3]], axis=1)
    grad_w[0] = dg.transpose(3, 2, 0, 1).reshape(g.c_out, g.rows)


#: Winograd's F(2x2, 3x3) runs a 3x3, stride-1 forward without columns when both the
#: input and the output channels number at least this many: 16 products of C_out x
#: C_in replace one of C_out x 9 C_in, and the transforms, which cost about C_in +
#: C_out per tile, must stay small beside them. Measured at 1 thread, AVX-512 (Zen 4),
#: against the panels: 32 x 64 x 32 x 32 -> 64 went from 25.8 to 15.5 ms, 32 x 128 x
#: 16 x 16 -> 128 from 26.4 to 15.8, 32 x 32 x 32 x 32 -> 32 from 9.0 to 5.0; at 16
#: channels it was no faster than the direct kernel.
WINOGRAD_MIN_CHANNELS = 32

#: ... at most this many channels in and out together: a task's 16 matrices of
#: transformed inputs and products then hold 32 tiles (the GEMM's columns) within
#: the 1 MiB of scratch (:data:`pyxconv._kernels._winograd.SCRATCH_FLOATS`); with
#: fewer columns the products run on the GEMM's zero-padded edge panels.
#: 32 x 512 x 4 x 4 -> 512 took 131 ms there against 35 for the direct kernel.
WINOGRAD_MAX_CHANNELS = 512

#: ... and at least this many 2x2 output tiles per sample (the products' columns).
#: The weights' transform, 16 x C_out x C_in values made at every call, is then
#: small beside the products: 0.07 ms for 128 x 128 channels at 1 thread, where one
#: 28 x 28 image's forward took 1.7 ms (direct kernel 2.3); one 14 x 14 image of 256
#: channels (49 tiles) took 1.8 ms against 2.7 for the panels.
WINOGRAD_MIN_TILES = 32

#: The direct kernel runs an inference forward when the column rows (K values,
#: one per input channel and tap) are at least this many times the output
#: channels of one block: each tile's results are transposed into the (C_out, L)
#: output one value at a time, which costs about block / K of the tile's
#: multiply-adds. Measured at 1 thread, AVX-512: LeNet's 6->16 5x5 (K = 150)
#: went from 31 to 77 GF/s and its 1->6 5x5 (K = 25) from 41 to 46; 3->32 3x3
#: (K = 27) fell from 78 to 58.
DIRECT_MIN_ROWS_PER_CHANNEL = 2

#: ... and when its tiles hold at least this many output positions: each
#: weight vector loaded serves that many multiply-adds. AVX2's tile for more
#: than 16 channels holds 3 (four vectors of channels fill its 16 registers);
#: on 64 -> 64 channels, 3x3, 32x32 it ran at 75 GF/s where AVX2's panels
#: reached 81. AVX-512's 6-position tile for 64 channels ran at 94 (panels 78).
DIRECT_MIN_TILE_POSITIONS = 6

#: ... unless one block's packed weights (K x block floats) take at most this many
#: bytes: then they stay in the first-level cache however few positions a tile
#: reuses them for. LeNet-style stems and 7x7 stride-2 layers on few input channels
#: qualify; (1, 3, 224, 224) -> 64 7x7 stride 2 (18 KiB a block) ran 10-35% faster
#: than AVX2's panels, while 1 x 512 x 7 x 7 -> 512 3x3 (576 KiB a block) took
#: twice the panels' time and a 64 -> 128 3x3 stride-2 layer (72 KiB) 12% more.
DIRECT_SHORT_TILE_MAX_WEIGHT_BYTES = 32 * 1024


def _forward_tiles(x, w, bias, out, g, threads):
    """Few samples on many threads: im2col of every plane, then the GEMM by position tiles."""
    cols = np.empty((g.n, g.rows, g.positions), dtype=x.dtype)
    with g.blas_limit:
        _im2col.conv_forward_tiles(x.reshape((g.n, g.c_in) + g.in3), w[0], bias, cols, out,
                                   position_tile(g.positions), g.kernel_geometry, threads)
    return cols


def _forward_groups(x, weight, bias, out, g, threads):
    """Grouped: one nogil loop over (sample, group) tasks, each with its group's columns."""
    workspace = thread_workspace(threads, g.rows // g.groups * g.positions, x.dtype)
    with g.blas_limit:
        _im2col.conv_forward_groups(x.reshape((g.n, g.c_in) + g.in3),
                                    weight.reshape(g.c_out, -1), bias, out, workspace, g.groups,
                                    g.kernel_geometry, threads)


def _backward_groups(go, x, weight, grad_w, grad_x, g, threads):
    workspace = thread_workspace(threads, g.rows // g.groups * g.positions, x.dtype)
    gw = np.empty((g.c_out, g.rows // g.groups), dtype=x.dtype)
    with g.blas_limit:
        _im2col.conv_backward_groups(
            x.reshape((g.n, g.c_in) + g.in3), go, weight.reshape(g.c_out, -1), gw,
            None if grad_x is None else grad_x.reshape((g.n, g.c_in) + g.in3), workspace,
            g.groups, g.kernel_geometry, threads)
    grad_w[...] = gw.reshape(grad_w.shape)


def _forward_chunks(x, w, out, g):
    """Chunks of samples (or of one sample's rows) shared among Python threads."""
    n, groups = g.n, g.groups
    cog, kg = g.c_out // groups, (g.c_in // groups) * g.kernel_volume
    x5 = x.reshape((n, g.c_in) + g.in3)
    chunks = list(g.chunks(x.itemsize))
    n_parallel = parallel_threads(g, x.itemsize, chunks)
    local = threading.local()

    def forward_chunk(chunk):
        n0, nb, r0, rc = chunk
        m = rc * g.out_w
        size = g.rows * nb * m
        cols = _thread_workspace(local, "cols", size, x.dtype)
        kernel_threads = threads_for(size) if n_parallel == 1 else 1
        _run_im2col(x5, cols, g, n0, nb, r0, rc, kernel_threads, per_sample=True)
        cols3 = cols.reshape(nb, g.rows, m)
        target = out[n0:n0 + nb, :, r0 * g.out_w:r0 * g.out_w + m]
        for gi in range(groups):
            np.matmul(w[gi], cols3[:, gi * kg:(gi + 1) * kg],
                      out=target[:, gi * cog:(gi + 1) * cog])

    map_blocks(forward_chunk, chunks, n_parallel)


def _backward_pointwise(go, x, w, grad_w, grad_x, g, threads):
    """The input is its own column matrix: grad_W from it, grad_x = W^T @ grad_out by tiles."""
    grad_w[0] = weight_grad(go, x, x.reshape(g.n, g.c_in, g.positions), g, threads)
    if grad_x is not None:
        with g.blas_limit:
            _im2col.pointwise_products(w[0], True, go, grad_x.reshape(g.n, g.c_in, g.positions),
                                       None, False, pointwise_tile(g), threads)


def _backward_samples(go, x, w, grad_w, grad_x, g, threads, cols):
    """Nogil loops over samples, each through the thread's own columns.

    With the forward's columns (``cols``, (N, K, L)) and a weight small enough
    for whole products (:func:`weight_grad_split`): one loop makes each run of
    samples' share of grad_W and their input gradients
    (:func:`_im2col.conv_backward_samples`). Otherwise :func:`weight_grad`
    makes grad_W (from the kept columns, or unfolding them again, with the same
    bits), and the input gradient follows: W^T @ go[n] folded by col2im.
    """
    n = g.n
    x5 = x.reshape((n, g.c_in) + g.in3)
    gx5 = grad_x.reshape((n, g.c_in) + g.in3) if grad_x is not None else None
    block, per_run = weight_grad_split(g, x.dtype.itemsize)
    if cols is None or block < g.c_in:
        grad_w[0] = weight_grad(go, x, cols, g, threads)
        if gx5 is None:
            return
    with g.blas_limit:
        if cols is not None and block == g.c_in:
            # whole products: one loop makes each sample's share of grad_W and its
            # grad_x while grad_out[n] is in cache, the products of weight_grad
            runs = -(-n // per_run)
            transposed = weight_grad_transposed(g, x.dtype.itemsize)
            products = np.empty((runs, g.rows, g.c_out) if transposed
                                else (runs, g.c_out, g.rows), dtype=x.dtype)
            size = _im2col.backward_workspace_size(g.rows, g.c_out, g.positions, transposed,
                                                   gx5 is not None)
            workspace = thread_workspace(threads, size, x.dtype) if size else None
            if gx5 is not None:
                gx5[...] = 0  # col2im adds
            _im2col.conv_backward_samples(cols, go, w[0], products, transposed, gx5,
                                          workspace, g.kernel_geometry, threads,
                                          samples_per_product=per_run)
            total = products[0] if runs == 1 else products.sum(axis=0)
            grad_w[0] = total.T if transposed else total
        elif cols is not None:
            size = _im2col.backward_workspace_size(g.rows, g.c_out, g.positions, False, True)
            workspace = thread_workspace(threads, size, x.dtype)
            gx5[...] = 0  # col2im adds
            _im2col.conv_backward_samples(cols, go, w[0], None, False, gx5, workspace,
                                          g.kernel_geometry, threads)
        else:
            workspace = thread_workspace(threads, g.rows * g.positions, x.dtype)
            _im2col.fold_samples(go, w[0], None, gx5, workspace, g.kernel_geometry, threads)


def _backward_tiles(go, x, w, grad_w, grad_x, g, threads, cols):
    """Few samples on many threads: grad_W by blocks of column rows, grad_x by position tiles."""
    n = g.n
    if cols is None:
        cols = np.empty((n, g.rows, g.positions), dtype=x.dtype)
        _run_im2col(x.reshape((n, g.c_in) + g.in3), cols.reshape(-1), g, 0, n, 0, g.out_rows,
                    threads, per_sample=True)
    grad_w[0] = weight_grad(go, x, cols, g, threads)
    if grad_x is None:
        return
    with g.blas_limit:
        _im2col.conv_backward_tiles(
            cols, go, w[0], None, grad_x.reshape((n, g.c_in) + g.in3), np.empty_like(cols),
            row_block(g.rows), position_tile(g.positions), g.kernel_geometry, threads)


def _backward_chunks(go, x, w, grad_w, grad_x, g):
    """Chunks of samples (or of one sample's rows) shared among Python threads."""
    n, groups = g.n, g.groups
    cog, kg = g.c_out // groups, (g.c_in // groups) * g.kernel_volume
    needs_input_grad = grad_x is not None
    x5 = x.reshape((n, g.c_in) + g.in3)
    gx5 = None
    if needs_input_grad:
        grad_x[...] = 0
        gx5 = grad_x.reshape((n, g.c_in) + g.in3)
    n_buffers = 2 if needs_input_grad else 1
    transposed = kg < _WEIGHT_GRAD_TRANSPOSED_BELOW_ROWS
    chunks = list(g.chunks(x.itemsize, n_buffers))
    # Chunks of rows of one sample fold onto overlapping rows of grad_x.
    whole_samples = all(rc == g.out_rows for _, _, _, rc in chunks)
    n_parallel = parallel_threads(g, x.itemsize, chunks, n_buffers) if whole_samples else 1
    local = threading.local()

    def backward_chunk(chunk):
        """The chunk's share of grad_x (added in place) and of grad_W (returned)."""
        n0, nb, r0, rc = chunk
        m = rc * g.out_w
        size = g.rows * nb * m
        cols = _thread_workspace(local, "cols", size, x.dtype)
        kernel_threads = threads_for(size) if n_parallel == 1 else 1
        _run_im2col(x5, cols, g, n0, nb, r0, rc, kernel_threads)
        cols2 = cols.reshape(g.rows, nb * m)
        # (nb, C_out, m) -> (C_out, nb * m), the layout of the column matrix
        go2 = np.ascontiguousarray(
            go[n0:n0 + nb, :, r0 * g.out_w:r0 * g.out_w + m].transpose(1, 0, 2)
        ).reshape(g.c_out, nb * m)
        if needs_input_grad:
            grad_cols = _thread_workspace(local, "grad_cols", size, x.dtype)
            grad_cols2 = grad_cols.reshape(g.rows, nb * m)
        partial = []
        for gi in range(groups):
            go_g = go2[gi * cog:(gi + 1) * cog]
            if transposed:
                partial.append((cols2[gi * kg:(gi + 1) * kg]
                                @ np.ascontiguousarray(go_g.T)).T)
            else:
                partial.append(go_g @ cols2[gi * kg:(gi + 1) * kg].T)
            if needs_input_grad:
                np.matmul(w[gi].T, go_g, out=grad_cols2[gi * kg:(gi + 1) * kg])
        if needs_input_grad:
            _run_col2im(grad_cols, gx5, g, n0, nb, r0, rc, kernel_threads)
        return partial

    # The chunks' weight gradients are added in chunk order, whichever thread made
    # them; a few chunks at a time, so that few partial sums wait.
    for wave in waves(chunks, 2 * n_parallel):
        for partial in map_blocks(backward_chunk, wave, n_parallel):
            for gi in range(groups):
                grad_w[gi] += partial[gi]


#: The algorithms a convolution plan can pick, in the order :class:`ConvPlan` tries them.
CONV_ALGORITHMS = ("pointwise", "tiles", "samples", "groups", "chunks", "direct", "winograd")

#: Column rows from which the weight gradient's products are made transposed,
#: ``cols[n] @ go[n]^T`` (K, C_out), with go[n]^T copied first: OpenBLAS ran it 2x
#: faster on LeNet's second layer (K = 150), and the own GEMM needs it; below,
#: ``go[n] @ cols[n]^T`` (C_out, K) with the BLAS's transpose flag was faster
#: (LeNet's first layer, K = 25: 0.45 against 0.67 ms at batch 32).
WEIGHT_GRAD_TRANSPOSED_FROM_ROWS = 128

#: Batches of fewer samples than this run by ``"tiles"``, so that one image uses every
#: core. Set by the shape alone, never by the thread count: ``"samples"`` and
#: ``"tiles"`` cut their products differently (tiles narrower than the own GEMM's
#: panels go to the BLAS; the weight gradient is made as a product of other
#: shapes), so a choice made by the thread count gave one image other bits on 2
#: threads than on 1. On one thread tiles cost 2-4% on one image and up to 15%
#: on three (64 -> 64 channels 3x3 on 56x56, fwd+bwd); on two they ran up to 1.8x
#: faster.
TILES_BELOW_SAMPLES = 4

#: Tiles aim at this many per sample, so that 2 to 8 threads get even shares.
_TILES_PER_SAMPLE = 16
#: Tile widths are whole vector panels of the own GEMM (32 floats on AVX-512).
_TILE_QUANTUM = 32


def position_tile(positions):
    """Output positions of one product in the ``"tiles"`` algorithm (set by the shape alone).

    >>> [position_tile(p) for p in (100, 784, 3136, 12544)]
    [64, 64, 224, 800]
    """
    per_tile = -(-positions // _TILES_PER_SAMPLE)
    return max(2 * _TILE_QUANTUM, -(-per_tile // _TILE_QUANTUM) * _TILE_QUANTUM)


def row_block(rows):
    """Column-matrix rows of one weight-gradient product in the ``"tiles"`` backward.

    >>> [row_block(k) for k in (25, 150, 576, 1152)]
    [64, 64, 64, 96]
    """
    return position_tile(rows)


_forced_algorithm = None


@contextlib.contextmanager
def conv_algorithm(name):
    """Force every convolution planned inside the block to use algorithm ``name``.

    For tests and benchmarks: ``"pointwise"`` (1x1, stride 1, no padding, one
    group: the input is the column matrix), ``"tiles"`` (one image on many threads: im2col of the whole
    sample, GEMMs by position tiles), ``"samples"`` (one nogil loop over
    samples, each thread on its own column buffer), ``"groups"`` (one task per
    sample and group, for grouped convolutions), ``"chunks"`` (NumPy matmul
    over chunks on Python threads), ``"direct"`` (the forward without kept
    columns by the direct kernel, float32 and one group only; the backward
    and a forward that keeps its columns then run as the planner would
    choose), ``"winograd"`` (likewise, by Winograd's F(2x2, 3x3): float32, 2-D
    3x3 kernels of stride 1 and dilation 1, one group), or None for the
    planner's own choice. A name the convolution cannot run raises
    ``ValueError`` when it is planned. Process-wide while the block runs.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import conv2d, conv_algorithm
    >>> x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    >>> with conv_algorithm("chunks"):
    ...     conv2d(x, w)[0, 0]
    array([[9., 9.],
           [9., 9.]])
    """
    global _forced_algorithm
    if name is not None and name not in CONV_ALGORITHMS:
        raise ValueError(f"name must be one of {', '.join(CONV_ALGORITHMS)} or None; "
                         f"got {name!r}")
    previous, _forced_algorithm = _forced_algorithm, name
    _plan_cache.cache_clear()
    try:
        yield
    finally:
        _forced_algorithm = previous
        _plan_cache.cache_clear()


class ConvPlan:
    """How one convolution runs: made once per (shapes, dtype, geometry, threads), then run.

    As onnxruntime's ``MlasConvPrepare`` and oneDNN's primitive descriptors
    do, the plan looks at the shapes once and records the algorithm (one of
    :data:`CONV_ALGORITHMS`) and the thread count; :meth:`forward` and
    :meth:`backward` then only run it. Functional calls find their plan in a
    small cache (:func:`conv_plan`); layers keep theirs.

    The choice, in order: ``"pointwise"`` for 1x1 kernels with stride 1 and no
    padding, one group; ``"tiles"`` for batches of fewer than :data:`TILES_BELOW_SAMPLES`
    samples, so that one image uses every core; ``"samples"`` otherwise;
    ``"groups"`` for grouped (and depthwise) convolutions, one task per
    (sample, group); ``"chunks"`` when a sample's columns pass the workspace
    limit (by rows of one sample) or the kernels' own GEMM calls are turned
    off (see :mod:`pyxconv._blas`). Each gives the same bits at every thread
    count.

    A forward that keeps no columns (inference) runs ``"direct"`` instead
    (float32, one group, not pointwise) when the column rows are at least
    :data:`DIRECT_MIN_ROWS_PER_CHANNEL` times the kernel's block of output
    channels and its tiles hold :data:`DIRECT_MIN_TILE_POSITIONS` positions
    (or a block's weights fit in :data:`DIRECT_SHORT_TILE_MAX_WEIGHT_BYTES`),
    and ``"winograd"`` (Winograd's F(2x2, 3x3), in training too) for 3x3
    stride-1 layers within :data:`WINOGRAD_MIN_CHANNELS`,
    :data:`WINOGRAD_MAX_CHANNELS` and :data:`WINOGRAD_MIN_TILES`:
    ``plan.inference_algorithm`` says what it runs.
    """

    def __init__(self, g, dtype, threads):
        self.g, self.dtype, self.max_threads = g, np.dtype(dtype), threads
        self.isa = get_isa()
        self.direct_threads = max(1, min(threads, threads_for(g.n * g.rows * g.positions),
                                         g.n * g.out_rows))
        # the direct kernel's block of output channels and tile of positions (0: none)
        self._direct_width = _direct.channel_width(self.isa, g.c_out, g.s3[2], g.out_w, g.rows)
        self._direct_tile = _direct.tile_positions(self.isa, g.c_out, g.s3[2], g.out_w, g.rows)
        forced = _forced_algorithm
        self.winograd_threads = max(1, min(threads, threads_for(g.n * g.rows * g.positions)))
        self.winograd = forced == "winograd" or (forced is None and self._winograd_pays())
        if forced == "winograd":
            if not self._winograd_runs():
                raise ValueError(
                    f"conv_algorithm('winograd') cannot run this convolution ({self.dtype}, "
                    f"kernel {g.kernel}, stride {g.stride}, dilation {g.dilation}, "
                    f"groups={g.groups}, instruction set {self.isa!r}): it takes float32, "
                    f"2-D 3x3 kernels of stride 1 and dilation 1, one group, and an "
                    f"own-GEMM instruction set (not 'none')")
            forced = None
        self.direct = not self.winograd and (
            forced == "direct" or (forced is None and self._direct_pays()))
        if forced == "direct":
            if not self._direct_runs():
                raise ValueError(
                    f"conv_algorithm('direct') cannot run this convolution ({self.dtype}, "
                    f"groups={g.groups}, instruction set {self.isa!r}): the direct kernel "
                    f"takes float32, one group, an own-GEMM instruction set (not 'none'), "
                    f"and a padded sample per thread within the workspace limit")
            forced = None
        self.algorithm, self.threads = self._choose(forced)
        self.winograd_input_grad = self._winograd_input_grad(_forced_algorithm == "winograd")
        # its scratch is the forward's, which _winograd_runs checked
        self.winograd_weight_grad = self.winograd and self.algorithm in ("samples", "tiles")
        # the forward without kept columns runs panel by panel (see forward)
        panels = g.n * -(-g.out_rows // panel_rows(g, self.dtype.itemsize))
        self.panel_threads = max(1, min(threads, threads_for(g.n * g.rows * g.positions),
                                        panels))
        # what every forward call passes the kernels, worked out once
        self._x5_shape = (g.n, g.c_in) + g.in3
        self._panel_rows = panel_rows(g, self.dtype.itemsize)

    @property
    def keeps_columns(self):
        """Whether a training forward keeps its columns for :meth:`backward` (when they fit).

        Not where the direct kernel runs the forward of a batch by samples: its
        forward, then the columns unfolded again block by block in the backward,
        ran as fast or faster than im2col + GEMM with 5 MB of columns kept
        (LeNet-5's layers at batch 64: 1.17 and 1.53 ms against 1.41 and 1.82 for
        forward + backward; 3x3 layers of 64-128 channels within 4%), and the
        training forward then has the direct kernel's bits, as inference has.
        Nor where Winograd's F(2x2, 3x3) runs the forward (:data:`WINOGRAD_MIN_CHANNELS`):
        it makes no columns, and its backward makes both gradients by Winograd
        too where every padding is at most 2 (otherwise both from the columns
        unfolded again); training and inference forwards again agree to the bit.
        """
        return not (self.winograd or (self.direct and self.algorithm == "samples"))

    def _winograd_runs(self):
        """Whether Winograd's F(2x2, 3x3) can run this plan's forward within the workspace limit."""
        g = self.g
        return (self.dtype == np.float32 and g.nd == 2 and g.groups == 1
                and tuple(g.kernel) == (3, 3) and tuple(g.stride) == (1, 1)
                and tuple(g.dilation) == (1, 1) and self.isa != "none" and ensure_gemm()
                and g.positions > 0 and self._winograd_fits(g.c_in, g.c_out, g.out_spatial))

    def _winograd_fits(self, c_in, c_out, out_spatial):
        """Whether every thread's Winograd scratch for ``c_in`` -> ``c_out`` channels and
        ``out_spatial`` outputs stays within the workspace limit."""
        return (4 * self.winograd_threads * _winograd.workspace_floats(c_in, c_out, *out_spatial)
                <= get_workspace_limit())

    def _winograd_sizes_pay(self, c_in, c_out, out_spatial):
        """Whether Winograd pays for n samples of ``c_in`` -> ``c_out`` channels and
        ``out_spatial`` outputs (the forward's, or the input gradient's)."""
        tiles = -(-out_spatial[0] // 2) * -(-out_spatial[1] // 2)
        return (min(c_in, c_out) >= WINOGRAD_MIN_CHANNELS
                and c_in + c_out <= WINOGRAD_MAX_CHANNELS and tiles >= WINOGRAD_MIN_TILES)

    def _winograd_pays(self):
        """Whether the planner picks Winograd for forwards without columns."""
        g = self.g
        return (g.nd == 2 and self._winograd_sizes_pay(g.c_in, g.c_out, g.out_spatial)
                and self._winograd_runs())

    def _winograd_input_grad(self, forced):
        """Whether the backward makes the input gradient by Winograd too: the full
        correlation of grad_out with the flipped kernel, a 3x3 stride-1 convolution
        of C_out -> C_in channels with paddings 2 - p (so every p must be <= 2)."""
        g = self.g
        return (self.winograd and all(p <= 2 for pair in g.pads for p in pair)
                and self.algorithm in ("samples", "tiles")
                and (forced or self._winograd_sizes_pay(g.c_out, g.c_in, g.in_spatial))
                and self._winograd_fits(g.c_out, g.c_in, g.in_spatial))

    def _direct_runs(self):
        """Whether the direct kernel can run this plan's forward within the workspace limit."""
        g = self.g
        return (self.dtype == np.float32 and g.groups == 1 and ensure_gemm()
                and self._direct_width > 0
                and _direct.workspace_bytes(g.n, g.c_in, g.c_out, self.isa, g.kernel_geometry,
                                            self.direct_threads)
                <= get_workspace_limit())

    def _direct_pays(self):
        """Whether the planner picks the direct kernel for forwards without columns."""
        g = self.g
        block = min(g.c_out, self._direct_width)
        weights_cached = 4 * g.rows * self._direct_width <= DIRECT_SHORT_TILE_MAX_WEIGHT_BYTES
        return (not g.is_pointwise and g.rows >= DIRECT_MIN_ROWS_PER_CHANNEL * block
                and (self._direct_tile >= DIRECT_MIN_TILE_POSITIONS or weights_cached)
                and self._direct_runs())

    @property
    def inference_algorithm(self):
        """What a forward without kept columns runs: ``"winograd"``, ``"direct"``,
        ``"panels"`` or :attr:`algorithm`."""
        if self.winograd:
            return "winograd"
        if self.direct:
            return "direct"
        return "panels" if self.algorithm in ("samples", "tiles") else self.algorithm

    def _choose(self, forced):
        g, itemsize = self.g, self.dtype.itemsize
        per_sample = g.rows * g.positions
        limit = get_workspace_limit()
        direct = g.groups == 1 and ensure_gemm() and g.n >= 1
        runnable = {"pointwise": g.is_pointwise and direct, "chunks": True}
        runnable["tiles"] = direct and g.n * per_sample * itemsize <= limit
        sample_count = sample_threads(g, per_sample, itemsize) if direct else 0
        runnable["samples"] = sample_count > 0
        group_columns = g.rows // g.groups * g.positions * itemsize
        group_threads = max(1, min(self.max_threads, threads_for(g.n * per_sample),
                                   g.n * g.groups))
        runnable["groups"] = (g.groups > 1 and ensure_gemm() and g.n >= 1
                              and group_threads * group_columns <= limit)
        tile_threads = min(self.max_threads, threads_for(g.n * per_sample),
                           g.n * -(-g.positions // position_tile(g.positions)))
        if forced is not None:
            if not runnable[forced]:
                raise ValueError(f"conv_algorithm({forced!r}) cannot run this convolution "
                                 f"(groups={g.groups}, kernel {g.kernel}, stride {g.stride}, "
                                 f"{g.n} samples of {per_sample * itemsize} column bytes)")
            choice = forced
        elif runnable["pointwise"]:
            choice = "pointwise"
        elif runnable["tiles"] and g.n < TILES_BELOW_SAMPLES:
            choice = "tiles"
        elif runnable["samples"]:
            choice = "samples"
        elif runnable["groups"]:
            choice = "groups"
        else:
            choice = "chunks"
        if choice == "tiles":
            return choice, max(1, tile_threads)
        if choice == "pointwise":
            tasks = g.n * -(-g.positions // pointwise_tile(g))
            return choice, max(1, min(self.max_threads, threads_for(g.n * per_sample), tasks))
        if choice == "groups":
            return choice, group_threads
        if choice == "samples":
            return choice, sample_count
        return choice, 1

    def _check(self, name, array, shape):
        if not (isinstance(array, np.ndarray) and array.dtype == self.dtype
                and array.shape == shape and array.flags.c_contiguous):
            raise ValueError(
                f"this plan's {name} must be a C-contiguous {self.dtype} array of shape "
                f"{shape}; got {type(array).__name__} {getattr(array, 'dtype', '')} "
                f"{getattr(array, 'shape', '')} (use prepare_conv to make one)")

    def _check_operands(self, x, weight):
        g = self.g
        self._check("x", x, (g.n, g.c_in) + g.in_spatial)
        self._check("weight", weight, (g.c_out, g.c_in // g.groups) + tuple(g.kernel))

    def forward(self, x, weight, bias, keep_columns=False, relu=False):
        """``(out, columns)``: out (N, C_out, L) and, when kept, the (N, K, L) columns.

        x, weight and bias are contiguous arrays of the plan's dtype and
        shapes (as :func:`prepare_conv` returns them; others raise
        ``ValueError``). Columns are kept (``keep_columns``) by the algorithms
        that make them whole ("samples", "tiles"); :meth:`backward` then
        reuses them. Without ``keep_columns`` those two run the forward by
        panels instead: a few output rows' columns at a time
        (:data:`PANEL_BYTES`), unfolded and multiplied while they are in the
        core's cache, the panels of all samples shared among the threads.
        ``relu`` applies ReLU to the output (``0 if v < 0 else v``), in the
        panels' bias pass where they run (an eval-mode Sequential's fused
        Conv -> BatchNorm -> ReLU).
        """
        self._check_operands(x, weight)
        if bias is not None:
            self._check("bias", bias, (self.g.c_out,))
        return self._forward(x, weight, bias, keep_columns, relu)

    def _forward(self, x, weight, bias, keep_columns=False, relu=False):
        """:meth:`forward` on operands known to fit the plan."""
        g = self.g
        if g.n == 0:  # an empty batch: torch's empty output, no kernel
            cols = np.zeros((0, g.rows, g.positions), x.dtype) if keep_columns else None
            return np.zeros((0, g.c_out, g.positions), x.dtype), cols
        w = weight.reshape(g.groups, g.c_out // g.groups, -1)
        out = np.empty((g.n, g.c_out, g.positions), dtype=x.dtype)
        cols = None
        if self.winograd and not keep_columns:
            _forward_winograd(x, w, bias, out, self, relu)
            bias, relu = None, False  # done in the kernel
        elif self.direct and not keep_columns:
            _forward_direct(x, w, bias, out, self, relu)
            bias, relu = None, False  # done in the kernel
        elif self.algorithm == "pointwise":
            _forward_pointwise(x, w, bias, out, g, self.threads, relu)
            bias, relu = None, False  # done in the loop
        elif self.algorithm in ("samples", "tiles") and not keep_columns:
            _forward_panels(x, w, bias, out, self, relu)
            bias, relu = None, False  # done in the loop
        elif self.algorithm == "samples":
            cols = _forward_samples(x, w, bias, out, g, self.threads, keep_columns)
            bias = None
        elif self.algorithm == "tiles":
            cols = _forward_tiles(x, w, bias, out, g, self.threads)
            bias = None
        elif self.algorithm == "groups":
            _forward_groups(x, weight, bias, out, g, self.threads)
            bias = None
        else:
            _forward_chunks(x, w, out, g)
        if bias is not None:
            out += bias.reshape(1, -1, 1)
        if relu:
            out[out < 0] = 0  # NaN and -0.0 stay, as in the kernel
        return out, (cols if keep_columns else None)

    def bind(self, weight, bias=None, relu=False):
        """This plan's inference forward as a callable ``x -> out``, the parameters bound.

        For repeated forwards of one input shape (an eval-mode
        :class:`~pyxconv.nn.Sequential` runs its layers so): ``weight`` and
        ``bias`` are checked once, as :meth:`forward` checks them, and each
        call then checks only ``x`` and returns the output, of shape (N,
        C_out, *out_spatial). The bound arrays are read at each call, so
        changes made in place show; an array put in their place does not.
        Where the plan runs the direct kernel, the callable keeps that
        kernel's workspace (the packed weights and a padded sample per
        thread, within :func:`pyxconv.get_workspace_limit`) instead of
        allocating it per call. The results have the bits of :meth:`forward`
        without kept columns.

        Examples
        --------
        >>> import numpy as np
        >>> from pyxconv.functional import prepare_conv
        >>> x, w, b, plan = prepare_conv(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))
        >>> forward = plan.bind(w, b)
        >>> forward(x)
        array([[[[9., 9.],
                 [9., 9.]]]])
        """
        g = self.g
        self._check("weight", weight, (g.c_out, g.c_in // g.groups) + tuple(g.kernel))
        if bias is not None:
            self._check("bias", bias, (g.c_out,))
        x_shape, out_shape = (g.n, g.c_in) + g.in_spatial, (g.n, g.c_out) + g.out_spatial
        if not (self.direct and g.n > 0 and g.positions > 0):
            def forward(x):
                self._check("x", x, x_shape)
                return self._forward(x, weight, bias, relu=relu)[0].reshape(out_shape)
            return forward
        conv = _direct.DirectConv(self.isa, g.n, g.c_in, g.c_out, g.kernel_geometry,
                                  self.direct_threads)
        dtype = self.dtype

        def forward(x):
            if type(x) is not np.ndarray or x.shape != x_shape:
                self._check("x", x, x_shape)
            out = np.empty(out_shape, dtype)
            conv(x, weight, bias, out, relu)  # checks the dtype and the layout
            return out
        return forward

    def backward(self, grad_out, x, weight, columns=None, needs_input_grad=True):
        """``(grad_x, grad_weight, grad_bias)`` from grad_out (N, C_out, L) or the output's shape.

        ``columns``: what :meth:`forward` kept, or None to rebuild them.
        """
        g = self.g
        self._check_operands(x, weight)
        if isinstance(grad_out, np.ndarray) and grad_out.shape == (g.n, g.c_out) + g.out_spatial:
            grad_out = grad_out.reshape(g.n, g.c_out, g.positions)
        self._check("grad_out", grad_out, (g.n, g.c_out, g.positions))
        if columns is not None:
            self._check("columns", columns, (g.n, g.rows, g.positions))
        if g.n == 0:  # an empty batch: zero gradients, as torch gives
            return (np.zeros(x.shape, x.dtype) if needs_input_grad else None,
                    np.zeros(weight.shape, x.dtype), np.zeros(g.c_out, x.dtype))
        groups, cog = g.groups, g.c_out // g.groups
        w = weight.reshape(groups, cog, -1)
        go = grad_out.reshape(g.n, g.c_out, g.positions)
        grad_bias = go.sum(axis=(0, 2))
        grad_w = np.zeros(w.shape, dtype=x.dtype)
        grad_x = np.empty(x.shape, dtype=x.dtype) if needs_input_grad else None
        if self.winograd_weight_grad and (grad_x is None or self.winograd_input_grad):
            _weight_grad_winograd(go, x, grad_w, self)
            if grad_x is not None:
                _input_grad_winograd(go, weight, grad_x, self)
        elif self.winograd_input_grad and grad_x is not None:
            grad_w[0] = weight_grad(go, x, columns, g, self.threads)
            _input_grad_winograd(go, weight, grad_x, self)
        elif self.algorithm == "pointwise":
            _backward_pointwise(go, x, w, grad_w, grad_x, g, self.threads)
        elif self.algorithm == "samples":
            _backward_samples(go, x, w, grad_w, grad_x, g, self.threads, columns)
        elif self.algorithm == "tiles":
            _backward_tiles(go, x, w, grad_w, grad_x, g, self.threads, columns)
        elif self.algorithm == "groups":
            _backward_groups(go, x, weight, grad_w, grad_x, g, self.threads)
        else:
            _backward_chunks(go, x, w, grad_w, grad_x, g)
        return grad_x, grad_w.reshape(weight.shape), grad_bias

    def __repr__(self):
        return (f"ConvPlan({self.algorithm!r}, inference={self.inference_algorithm!r}, "
                f"threads={self.threads}, n={self.g.n}, "
                f"c_in={self.g.c_in}, c_out={self.g.c_out}, kernel={self.g.kernel}, "
                f"out={self.g.out_spatial}, {self.dtype})")


@functools.lru_cache(maxsize=64)
def _plan_cache(key):
    (in_spatial, kernel, stride, pads, dilation, groups, n, c_in, c_out, dtype, settings) = key
    g = _Geometry(in_spatial, kernel, stride, pads, dilation, groups, n, c_in, c_out)
    return ConvPlan(g, dtype, settings[0])


def conv_plan(in_spatial, kernel, stride, pads, dilation, groups, n, c_in, c_out, dtype):
    """The :class:`ConvPlan` of a convolution, from a small cache.

    Keyed by every argument and by what the choice reads
    (:func:`plan_settings`), so a changed setting gets a new plan. The arguments are trusted: :func:`prepare_conv`
    checks them first.

    >>> plan = conv_plan((56, 56), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, 8, 64, 64,
    ...                  np.float32)
    >>> plan.algorithm, plan.g.out_spatial
    ('samples', (56, 56))
    """
    key = (tuple(in_spatial), tuple(kernel), tuple(stride),
           tuple(tuple(p) for p in pads), tuple(dilation), groups, n, c_in, c_out,
           np.dtype(dtype).str, plan_settings())
    return _plan_cache(key)


def plan_settings():
    """What a :class:`ConvPlan`'s choice reads besides the call: a plan made under others is stale.

    A tuple of the thread count, the workspace limit, whether the kernels may
    call the BLAS, the own GEMM's instruction set and the algorithm forced by
    :func:`conv_algorithm`. Callers that keep plans (or callables from
    :meth:`ConvPlan.bind`) compare it to make new ones when a setting changed.

    Examples
    --------
    >>> import pyxconv
    >>> from pyxconv.functional import plan_settings
    >>> with pyxconv.num_threads(1):
    ...     plan_settings()[0]
    1
    """
    return (get_num_threads(), get_workspace_limit(), ensure_gemm(), get_isa(),
            _forced_algorithm)


def prepare_conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, nd=2):
    """Check a convolution's arguments once and return them ready for its plan.

    The engine's entry for callers that run the plan themselves (the layers
    of :mod:`pyxconv.nn`, which keep the forward's columns for the backward
    pass). Arguments as for :func:`conv2d` (``nd`` spatial dimensions).

    Returns
    -------
    x, weight, bias : contiguous ndarrays of one float dtype (bias may be None)
    plan : ConvPlan
        Its ``forward(x, weight, bias, keep_columns)`` gives ``(out, columns)``
        with out of shape (N, C_out, L), L the output positions; its
        ``backward(grad_out, x, weight, columns, needs_input_grad)`` gives
        ``(grad_x, grad_weight, grad_bias)``. ``plan.g.out_spatial`` is the
        output's spatial shape.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import prepare_conv
    >>> x, w, b, plan = prepare_conv(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))
    >>> out, columns = plan.forward(x, w, b, keep_columns=True)
    >>> out.reshape(2, 2), columns.shape    # (N, C_in * 3 * 3, 2 * 2)
    (array([[9., 9.],
           [9., 9.]]), (1, 9, 4))
    """
    if isinstance(nd, bool) or nd not in (1, 2, 3):
        raise ValueError(f"nd must be 1, 2 or 3, got {nd!r}")
    x, weight, bias, plan = _checked_conv_call(x, weight, bias, stride, padding, dilation,
                                               groups, nd)
    if bias is not None:
        bias = np.ascontiguousarray(bias)
    return x, weight, bias, plan


#: Plans of calls already checked, keyed by what the checks read: the arrays'
#: shapes and dtype, the other arguments as given, and the settings a plan
#: depends on.
_checked_calls = CheckedCalls()


def _checked_call_key(x, weight, bias, stride, padding, dilation, groups, nd):
    """The key of an already checked call, or None where the arguments cannot make one."""
    if not (type(x) is np.ndarray and type(weight) is np.ndarray
            and x.dtype in FLOAT_DTYPES and weight.dtype == x.dtype):
        return None
    if bias is None:
        bias_shape = None
    elif type(bias) is np.ndarray and bias.dtype == x.dtype:
        bias_shape = bias.shape
    else:
        return None
    arguments = (plain_key(stride), plain_key(padding), plain_key(dilation), plain_key(groups))
    if UNCACHEABLE in arguments:
        return None
    return (x.shape, weight.shape, bias_shape, x.dtype.char, arguments, nd, plan_settings())


def _checked_conv_call(x, weight, bias, stride, padding, dilation, groups, nd):
    """(x, weight, bias, plan) of a call: checked once per key of :data:`_checked_calls`."""
    key = _checked_call_key(x, weight, bias, stride, padding, dilation, groups, nd)
    plan = _checked_calls.get(key) if key is not None else None
    if plan is None:
        x, weight, bias, _, plan = _normalise_conv_args(x, weight, bias, stride, padding,
                                                        dilation, groups, nd)
        if key is not None:
            _checked_calls.put(key, plan)
    else:
        x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    return x, weight, bias, plan


def _conv_nd(x, weight, bias, stride, padding, dilation, groups, nd):
    x, weight, bias, plan = _checked_conv_call(x, weight, bias, stride, padding, dilation,
                                               groups, nd)
    g = plan.g
    out, _ = plan._forward(x, weight, None if bias is None else np.ascontiguousarray(bias))
    return out.reshape((g.n, g.c_out) + g.out_spatial)


def _conv_backward_nd(grad_out, x, weight, stride, padding, dilation, groups,
                      needs_input_grad, nd):
    grad_out, x, weight = float_arrays(grad_out=grad_out, x=x, weight=weight)
    x, weight, _, g, plan = _normalise_conv_args(x, weight, None, stride, padding, dilation,
                                                 groups, nd)
    expected = (g.n, g.c_out) + g.out_spatial
    if grad_out.shape != expected:
        raise ValueError(
            f"grad_out must have the output's shape {expected}, got {grad_out.shape}")
    grad_out = np.ascontiguousarray(grad_out)
    return plan.backward(grad_out, x, weight, None, bool(needs_input_grad))


_SHARED_NOTES = """
    The operation is cross-correlation (no kernel flip), as in PyTorch and in
    every worked example of the lectures. Along each spatial dimension the
    output size is

    .. math::

        n_{out} = \\left\\lfloor \\frac{n_{in} + p_{before} + p_{after}
                  - d\\,(k - 1) - 1}{s} \\right\\rfloor + 1

    with kernel size :math:`k`, stride :math:`s`, dilation :math:`d` and
    padding :math:`p`. It is the lectures' :math:`(N - F + 2P)/S + 1` with the
    dilated kernel span :math:`d(k-1)+1` as :math:`F`, floored as PyTorch does.
    A kernel wider than the padded input raises ``ValueError``.

    Dtypes: float32 (fast path) and float64 are kept; integer and bool arrays
    are promoted to the other operands' float dtype, else float64; mixing
    float32 and float64 raises ``TypeError``.

    Memory: the column matrix of a chunk takes
    ``itemsize * C_in * prod(kernel_size) * samples * positions`` bytes and is
    kept under :func:`pyxconv.get_workspace_limit` (256 MiB by default) by
    processing samples, or rows of one sample, in chunks.
"""

_PARAMS = """
    bias : ndarray of shape (C_out,), optional
        Added to every output position of each channel.
    stride : int or tuple of ints, default 1
        Step of the window along each spatial dimension.
    padding : int, tuple, 'valid' or 'same', default 0
        Zeros added around the input: an int for every side, one int per
        dimension (both sides), or one ``(before, after)`` pair per dimension.
        ``'valid'`` means no padding; ``'same'`` keeps the input size (stride 1
        only; an odd total puts the extra zero after, as PyTorch does).
    dilation : int or tuple of ints, default 1
        Spacing between kernel taps.
    groups : int, default 1
        Split the channels into ``groups`` independent convolutions.
"""


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_nd(x, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_nd(x, weight, bias, stride, padding, dilation, groups, 2)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_nd(x, weight, bias, stride, padding, dilation, groups, 3)


conv1d.__doc__ = f"""1-D convolution (cross-correlation) of a batch of sequences.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, L)
        Input batch.
    weight : ndarray of shape (C_out, C_in / groups, kL)
        Filters.{_PARAMS}
    Returns
    -------
    out : ndarray of shape (N, C_out, L_out)

    Raises
    ------
    ValueError
        Wrong number of dimensions, channel or group mismatch, sizes below 1,
        negative padding, or a kernel wider than the padded input.
    TypeError
        Complex, object or string arrays, mixed float32 and float64 operands,
        non-integer sizes.

    Notes
    -----{_SHARED_NOTES}
    Examples
    --------
    Lecture 001's second-layer filter (WE-06): four taps over a 2-channel
    volume of 8 time steps, written (time, channel) as on the slide.

    >>> import numpy as np
    >>> from pyxconv.functional import conv1d
    >>> volume = np.array([[1.2, 0.1], [1.6, -0.6], [2.3, -0.6], [2.9, -0.1],
    ...                    [2.4, 0.6], [1.5, 0.9], [0.2, 0.7], [-0.6, 0.5]])
    >>> taps = np.array([[1, -1], [-1, -1], [-1, -1], [1, 1]])
    >>> conv1d(volume.T[None], taps.T[None]).round(6)
    array([[[ 1.2,  0.7, -0.5, -1.5, -1.6]]])
    """

conv2d.__doc__ = f"""2-D convolution (cross-correlation) of a batch of images.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
        Input batch.
    weight : ndarray of shape (C_out, C_in / groups, kH, kW)
        Filters.{_PARAMS}
    Returns
    -------
    out : ndarray of shape (N, C_out, H_out, W_out)

    Raises
    ------
    ValueError
        Wrong number of dimensions, channel or group mismatch, sizes below 1,
        negative padding, ``'same'`` with stride > 1, or a kernel larger than
        the padded input.
    TypeError
        Complex, object or string arrays, mixed float32 and float64 operands,
        non-integer sizes.

    Notes
    -----{_SHARED_NOTES}
    Examples
    --------
    A 3x3 box filter over a 4x4 ramp, with and without padding:

    >>> import numpy as np
    >>> from pyxconv.functional import conv2d
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> box = np.ones((1, 1, 3, 3))
    >>> conv2d(x, box)
    array([[[[45., 54.],
             [81., 90.]]]])
    >>> conv2d(x, box, padding=1, stride=2)
    array([[[[10., 24.],
             [51., 90.]]]])
    """

conv3d.__doc__ = f"""3-D convolution (cross-correlation) of a batch of volumes.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, D, H, W)
        Input batch.
    weight : ndarray of shape (C_out, C_in / groups, kD, kH, kW)
        Filters.{_PARAMS}
    Returns
    -------
    out : ndarray of shape (N, C_out, D_out, H_out, W_out)

    Raises
    ------
    ValueError
        Wrong number of dimensions, channel or group mismatch, sizes below 1,
        negative padding, or a kernel larger than the padded input.
    TypeError
        Complex, object or string arrays, mixed float32 and float64 operands.

    Notes
    -----{_SHARED_NOTES}
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import conv3d
    >>> x = np.ones((1, 1, 3, 3, 3))
    >>> conv3d(x, np.ones((1, 1, 2, 2, 2))).shape
    (1, 1, 2, 2, 2)
    >>> conv3d(x, np.ones((1, 1, 2, 2, 2)))[0, 0, 0]
    array([[8., 8.],
           [8., 8.]])
    """

_BACKWARD_DOC = """Gradients of :func:`{name}` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C_out, {out})
        Gradient of the loss with respect to the output of :func:`{name}`.
    x : ndarray of shape (N, C_in, {inp})
        The input given to the forward call.
    weight : ndarray of shape (C_out, C_in / groups, {ker})
        The weight given to the forward call.
    stride, padding, dilation, groups
        As given to the forward call.
    needs_input_grad : bool, default True
        Compute ``grad_x``. The first layer of a network never needs it.

    Returns
    -------
    grad_x : ndarray like x, or None
        ``None`` when ``needs_input_grad`` is false. It is the transposed
        convolution of ``grad_out`` with the same weight.
    grad_weight : ndarray like weight
        For each filter tap, the sum over output positions of ``grad_out``
        times the input value that tap saw.
    grad_bias : ndarray of shape (C_out,)
        ``grad_out`` summed over the batch and all positions. Computed whether
        or not the forward call had a bias.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have the forward output's shape, or for any
        argument the forward call would reject.

    Examples
    --------
    {example}
    """


def conv1d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    needs_input_grad=True):
    return _conv_backward_nd(grad_out, x, weight, stride, padding, dilation, groups,
                             needs_input_grad, 1)


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    needs_input_grad=True):
    return _conv_backward_nd(grad_out, x, weight, stride, padding, dilation, groups,
                             needs_input_grad, 2)


def conv3d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    needs_input_grad=True):
    return _conv_backward_nd(grad_out, x, weight, stride, padding, dilation, groups,
                             needs_input_grad, 3)


conv1d_backward.__doc__ = _BACKWARD_DOC.format(
    name="conv1d", out="L_out", inp="L", ker="kL",
    example="""Lecture 000's 1-D rules (WE-03): x = 1..7, filter (1, 2, 3), upstream
    gradient (1, 0, -1, 2, 1).

    >>> import numpy as np
    >>> from pyxconv.functional import conv1d_backward
    >>> x = np.arange(1, 8).reshape(1, 1, 7)
    >>> w = np.array([1, 2, 3]).reshape(1, 1, 3)
    >>> g = np.array([1, 0, -1, 2, 1]).reshape(1, 1, 5)
    >>> grad_x, grad_w, grad_b = conv1d_backward(g, x, w)
    >>> grad_x
    array([[[1., 2., 2., 0., 2., 8., 3.]]])
    >>> grad_w
    array([[[11., 14., 17.]]])
    >>> grad_b
    array([3.])""")
conv2d_backward.__doc__ = _BACKWARD_DOC.format(
    name="conv2d", out="H_out, W_out", inp="H, W", ker="kH, kW",
    example="""The gradient of the sum of the outputs: every input pixel gets the
    number of windows it falls in.

    >>> import numpy as np
    >>> from pyxconv.functional import conv2d_backward
    >>> x = np.zeros((1, 1, 3, 3)); w = np.ones((1, 1, 2, 2))
    >>> grad_x, grad_w, grad_b = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    >>> grad_x[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> grad_b
    array([4.])""")
conv3d_backward.__doc__ = _BACKWARD_DOC.format(
    name="conv3d", out="D_out, H_out, W_out", inp="D, H, W", ker="kD, kH, kW",
    example=""">>> import numpy as np
    >>> from pyxconv.functional import conv3d_backward
    >>> x = np.ones((1, 1, 2, 2, 2)); w = np.ones((1, 1, 2, 2, 2))
    >>> grad_x, grad_w, grad_b = conv3d_backward(np.ones((1, 1, 1, 1, 1)), x, w)
    >>> grad_w.sum(), grad_b
    (np.float64(8.0), array([1.]))""")


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold every window of a batch of images into a column (``unfold``).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride, padding, dilation : int or (int, int), or padding pairs
        As in :func:`conv2d`.

    Returns
    -------
    cols : ndarray of shape (N, C * kH * kW, L)
        Row ``c * kH * kW + u * kW + v`` holds input channel ``c`` at kernel
        offset ``(u, v)``; column ``l = i * W_out + j`` is output position
        ``(i, j)``. The same layout as ``torch.nn.functional.unfold``.

    Notes
    -----
    With the weights reshaped to ``(C_out, C * kH * kW)``, the convolution is
    the matrix product ``weight @ cols[n]``, reshaped to
    ``(C_out, H_out, W_out)``. That product is what makes convolution fast: it
    runs in an optimised BLAS GEMM.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import im2col
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> im2col(x, 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    (x,) = float_arrays(x=x)
    check_ndim(x, 4, "x", _LAYOUTS[2])
    check_finite_size(x.shape, "x")
    kernel = int_tuple(kernel_size, 2, "kernel_size", 1)
    stride = int_tuple(stride, 2, "stride", 1)
    dilation = int_tuple(dilation, 2, "dilation", 1)
    pads = padding_pairs(padding, 2, kernel, stride, dilation)
    n, c = x.shape[:2]
    g = _Geometry(x.shape[2:], kernel, stride, pads, dilation, 1, n, c, 1)
    check_allocation((n, g.rows, g.positions), x.itemsize, "column matrix")
    cols = np.empty((n, g.rows, g.positions), dtype=x.dtype)
    x5 = np.ascontiguousarray(x).reshape((n, c) + g.in3)
    _run_im2col(x5, cols.reshape(-1), g, 0, n, 0, g.out_rows, threads_for(cols.size),
                per_sample=True)
    return cols


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """Fold columns back into images, summing overlaps (``fold``); the adjoint of :func:`im2col`.

    Parameters
    ----------
    cols : ndarray of shape (N, C * kH * kW, L)
    output_size : (int, int)
        ``(H, W)`` of the images to rebuild.
    kernel_size, stride, padding, dilation
        As given to :func:`im2col`.

    Returns
    -------
    x : ndarray of shape (N, C, H, W)
        Each input pixel receives the sum of every column entry that copied it.

    Examples
    --------
    Folding the unfolded image counts how many windows saw each pixel:

    >>> import numpy as np
    >>> from pyxconv.functional import col2im, im2col
    >>> cols = im2col(np.ones((1, 1, 3, 3)), 2)
    >>> col2im(cols, (3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    (cols,) = float_arrays(cols=cols)
    check_ndim(cols, 3, "cols", "(N, C * kH * kW, L)")
    check_finite_size(cols.shape, "cols")
    out_hw = int_tuple(output_size, 2, "output_size", 1)
    kernel = int_tuple(kernel_size, 2, "kernel_size", 1)
    stride = int_tuple(stride, 2, "stride", 1)
    dilation = int_tuple(dilation, 2, "dilation", 1)
    pads = padding_pairs(padding, 2, kernel, stride, dilation)
    n, rows, positions = cols.shape
    kernel_volume = kernel[0] * kernel[1]
    if rows % kernel_volume:
        raise ValueError(
            f"cols has {rows} rows, not a multiple of the kernel's {kernel_volume} taps")
    c = rows // kernel_volume
    g = _Geometry(out_hw, kernel, stride, pads, dilation, 1, n, c, 1,
                  x_name="output_size")
    if positions != g.positions:
        raise ValueError(
            f"cols has {positions} columns but output_size={out_hw} with this kernel, "
            f"stride, padding and dilation gives {g.out_spatial} = {g.positions} positions")
    check_allocation((n, c) + out_hw, cols.itemsize, "output")
    x = np.zeros((n, c) + out_hw, dtype=cols.dtype)
    _run_col2im(np.ascontiguousarray(cols).reshape(-1), x.reshape((n, c) + g.in3), g, 0, n, 0,
                g.out_rows, threads_for(cols.size), per_sample=True)
    return x


def same_padding(input_size, kernel_size, stride=1, dilation=1):
    """TensorFlow-style ``'same'`` padding pairs, for any stride.

    The output size is ``ceil(input_size / stride)``; the padding needed for
    that is split with the extra zero after (bottom/right), as TensorFlow and
    lecture 003's tutorial do.

    Parameters
    ----------
    input_size : int or tuple of ints
        Spatial size of the input, e.g. ``(H, W)``.
    kernel_size, stride, dilation : int or tuple of ints

    Returns
    -------
    tuple of (before, after) pairs
        To pass as ``padding``.

    Examples
    --------
    Lecture 003's 4x4 input, 3x3 kernel, stride 2 (WE-25):

    >>> from pyxconv.functional import same_padding
    >>> same_padding((4, 4), 3, stride=2)
    ((0, 1), (0, 1))
    """
    sizes = (input_size,) if not isinstance(input_size, (tuple, list)) else tuple(input_size)
    nd = len(sizes)
    sizes = int_tuple(sizes, nd, "input_size", 1)
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    pairs = []
    for n_in, k, s, d in zip(sizes, kernel, stride, dilation):
        n_out = -(-n_in // s)
        total = max(0, (n_out - 1) * s + d * (k - 1) + 1 - n_in)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)
