"""Transposed convolution in 1, 2 and 3 dimensions: forward and backward.

Design
------
A transposed convolution is the input-gradient computation of an ordinary
convolution, run forward. Take the convolution ("the conv") whose *input* has
the transposed convolution's output size and whose *output* has the size of
the transposed convolution's input ``x``. Its weight has layout
``(C_out_conv, C_in_conv / groups, *k) = (C_in, C_out / groups, *k)``, which
is exactly the layout PyTorch gives the weight of a transposed convolution, so
the same array serves both. Then, per group,

* forward: ``cols = W.T @ x`` (one GEMM), then :func:`col2im` scatters the
  columns onto the output: the conv's input gradient, with ``x`` in the role
  of the conv's output gradient;
* backward, input: ``grad_x = W @ im2col(grad_out)``, the conv's forward;
* backward, weight: ``grad_W = x @ im2col(grad_out).T``, the conv's weight
  gradient with ``x`` as its output gradient;
* backward, bias: ``grad_out`` summed over the batch and every position.

The backward pass unfolds ``grad_out`` once and uses the column matrix for
both products. Nothing is dilated with zeros: the column matrix has
``C_out / groups * prod(k)`` rows per group and one column per *input*
position, which is ``stride ** nd`` times fewer columns than the dilated
formulation would convolve over.

The conv geometry has padding ``padding`` before and ``padding -
output_padding`` after along each dimension (possibly negative: the
``output_padding`` extra rows and columns at the end are part of the conv's
input that no window has to reach). The im2col/col2im kernels only use the
padding *before* and the two sizes, and check every index against the
input's extent, so the geometry is built with symmetric padding and then
given the exact output size (the size of ``x``).

With one group, and NumPy's BLAS callable from the kernels (see
:mod:`pyxconv._blas`), each sample is done in one nogil OpenMP loop: the
GEMM writes the thread's own column buffer, which stays in cache, and
col2im folds it into the sample's output, zeroed just before and given its
bias just after; the backward unfolds ``grad_out`` into the buffer and makes
both products from it. The weight gradient's per-sample products are summed
in sample order, in waves whose size depends on the shapes alone, so the
result does not depend on the thread count. On the benchmark's 4x4 stride-2
layer this took the forward from 6.6 to 6.4 ms at 1 thread and from 4.2 to
3.3 ms at 2; the small layer's, 0.26 to 0.16 ms and 0.28 to 0.13 ms.

Otherwise (groups, other BLASes, samples whose columns are over the
workspace limit) large inputs go in chunks of about 1 MiB of columns. With
several threads, whole chunks go to separate Python threads, each running its GEMMs and
kernels on one core (:func:`pyxconv._parallel.map_blocks`), instead of every
chunk running on all threads in turn: on 2 cores the forward of the
benchmark's 4x4 stride-2 layer took 4.1 ms that way, against 6.4 ms. A
chunk is computed the same way on any thread and the weight gradients of
the chunks are summed in chunk order, so results do not depend on the
thread count. The forward only spreads chunks of whole samples (chunks of
rows of one sample fold onto overlapping rows of the output).
"""
import math
import threading

import numpy as np

from pyxconv._kernels import _im2col
from pyxconv._parallel import map_blocks, waves
from pyxconv._threads import get_num_threads, threads_for
from pyxconv._workspace import get_workspace_limit, thread_workspace
from pyxconv.functional._conv import (
    _Geometry,
    pointwise_tile,
    sample_threads,
    weight_grad,
    weight_gradient_by_samples,
    _run_col2im,
    _run_im2col,
    _thread_workspace,
    parallel_threads,
)
from pyxconv._validation import (
    SPATIAL_DIM_NAMES,
    as_int,
    check_finite_size,
    check_nonempty_sample,
    check_output_padding,
    check_ndim,
    float_arrays,
    int_tuple,
)

_LAYOUTS = {1: "(N, C_in, L)", 2: "(N, C_in, H, W)", 3: "(N, C_in, D, H, W)"}
_OUT_LAYOUTS = {1: "(N, C_out, L_out)", 2: "(N, C_out, H_out, W_out)",
                3: "(N, C_out, D_out, H_out, W_out)"}
_WEIGHT_LAYOUTS = {1: "(C_in, C_out/groups, kL)", 2: "(C_in, C_out/groups, kH, kW)",
                   3: "(C_in, C_out/groups, kD, kH, kW)"}

__all__ = [
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "conv_transpose_output_size",
]


def conv_transpose_output_size(input_size, kernel_size, stride=1, padding=0,
                               output_padding=0, dilation=1):
    """Output size of a transposed convolution along each spatial dimension.

    Parameters
    ----------
    input_size : int or tuple of ints
        Spatial size of the input, e.g. ``(H_in, W_in)``.
    kernel_size, stride, padding, output_padding, dilation : int or tuple of ints
        As given to :func:`conv_transpose2d`.

    Returns
    -------
    tuple of ints
        ``(n_in - 1) * stride - 2 * padding + dilation * (k - 1)
        + output_padding + 1`` per dimension.

    Raises
    ------
    ValueError
        If ``output_padding`` is not smaller than the stride or the dilation,
        or if a size comes out below 1.

    Examples
    --------
    A 4x4 kernel with stride 2 and padding 1 doubles the size (the DCGAN
    upsampling layer):

    >>> from pyxconv.functional import conv_transpose_output_size
    >>> conv_transpose_output_size((16, 16), 4, stride=2, padding=1)
    (32, 32)
    """
    sizes = (input_size,) if not isinstance(input_size, (tuple, list)) else tuple(input_size)
    nd = len(sizes)
    if nd not in SPATIAL_DIM_NAMES:
        raise ValueError(f"input_size must have 1, 2 or 3 dimensions, got {input_size!r}")
    sizes = int_tuple(sizes, nd, "input_size", 1)
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    stride = int_tuple(stride, nd, "stride", 1)
    padding = int_tuple(padding, nd, "padding", 0)
    output_padding = int_tuple(output_padding, nd, "output_padding", 0)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    return _output_sizes(sizes, kernel, stride, padding, output_padding, dilation)


def _output_sizes(sizes, kernel, stride, padding, output_padding, dilation, name="x"):
    names = SPATIAL_DIM_NAMES[len(sizes)]
    check_output_padding(output_padding, stride, dilation)
    out = []
    for dim, n_in, k, s, p, op, d in zip(names, sizes, kernel, stride, padding,
                                         output_padding, dilation):
        n_out = (n_in - 1) * s - 2 * p + d * (k - 1) + op + 1
        if n_out < 1:
            raise ValueError(
                f"output {dim} would be {n_out} < 1: (n_in - 1) * stride - 2 * padding + "
                f"dilation * (k - 1) + output_padding + 1 with n_in={n_in} ({name}), "
                f"stride={s}, padding={p}, dilation={d}, k={k}, output_padding={op}; "
                "reduce the padding")
        out.append(n_out)
    return tuple(out)


class _TransposedGeometry(_Geometry):
    """The geometry of the convolution whose input gradient this transposed conv is.

    ``in_spatial`` is the transposed conv's output size, ``out_spatial`` the
    size of its input ``x``; ``c_in`` is its C_out and ``c_out`` its C_in.
    """

    def __init__(self, x_spatial, y_spatial, kernel, stride, padding, dilation, groups, n,
                 c_in_t, c_out_t):
        pads = tuple((p, p) for p in padding)
        super().__init__(y_spatial, kernel, stride, pads, dilation, groups, n,
                         c_out_t, c_in_t, x_name="the output")
        # The symmetric-padding conv may see more windows than x has positions
        # (output_padding >= stride, allowed when output_padding < dilation);
        # the conv that matches is the one with x's size as its output.
        fill = 3 - self.nd
        self.out_spatial = tuple(x_spatial)
        self.out3 = (1,) * fill + self.out_spatial
        self.positions = math.prod(self.out_spatial)
        self.out_rows = self.out3[0] * self.out3[1]
        self.out_w = self.out3[2]

    @property
    def is_pointwise(self):
        return super().is_pointwise and self.in_spatial == self.out_spatial


def _normalise(x, weight, bias, stride, padding, output_padding, groups, dilation, nd):
    x, weight, bias = float_arrays(x=x, weight=weight, bias=bias)
    check_ndim(x, nd + 2, "x", _LAYOUTS[nd])
    check_ndim(weight, nd + 2, "weight", _WEIGHT_LAYOUTS[nd])
    check_nonempty_sample(x.shape, "x")
    check_finite_size(weight.shape, "weight")
    groups = as_int(groups, "groups", 1)
    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    if isinstance(padding, str):
        raise ValueError(
            f"padding must be an int or {nd} ints for a transposed convolution, got "
            f"{padding!r}")
    padding = int_tuple(padding, nd, "padding", 0)
    output_padding = int_tuple(output_padding, nd, "output_padding", 0)
    kernel = tuple(weight.shape[2:])
    c_in = x.shape[1]
    if weight.shape[0] != c_in:
        raise ValueError(
            f"weight has {weight.shape[0]} input channels (shape {weight.shape}, layout "
            f"{_WEIGHT_LAYOUTS[nd]}), but x has C_in={c_in} (shape {x.shape})")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    c_out = weight.shape[1] * groups
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(
            f"bias must have shape ({c_out},) to match C_out = weight.shape[1] * groups "
            f"= {weight.shape[1]} * {groups}, got {bias.shape}")
    y_spatial = _output_sizes(x.shape[2:], kernel, stride, padding, output_padding, dilation)
    g = _TransposedGeometry(x.shape[2:], y_spatial, kernel, stride, padding, dilation,
                            groups, x.shape[0], c_in, c_out)
    return np.ascontiguousarray(x), np.ascontiguousarray(weight), bias, g


# A chunk's column matrix is written by the GEMM and read straight back by
# col2im (forward) or written by im2col and read by two GEMMs (backward); it
# should stay in the per-core L2 cache between the two. Measured on the
# benchmark layer 32x64x16x16 -> 32, k 4, stride 2 (2 MiB L2 per core): with
# 1 MiB chunks the forward takes 8.3 ms of CPU time, with 4 MiB chunks 11.7 ms.
_CHUNK_BYTES = 2**20


def _chunks(g, itemsize, n_buffers=1):
    """(n_start, n_count, row_start, row_count) pieces of about _CHUNK_BYTES each.

    Stays under the workspace limit: when even one output row of a sample is
    over the cache-sized target, the geometry's own chunking (which raises a
    clear MemoryError when one row is over the limit) decides.
    """
    cap = get_workspace_limit() // n_buffers
    target = min(cap, _CHUNK_BYTES)
    per_sample = g.rows * g.positions * itemsize
    per_row = g.rows * g.out_w * itemsize
    if per_sample <= target:
        per_chunk = max(1, target // per_sample)
        for n0 in range(0, g.n, per_chunk):
            yield n0, min(per_chunk, g.n - n0), 0, g.out_rows
    elif per_row <= target:
        rows_per_chunk = target // per_row
        for n0 in range(g.n):
            for r0 in range(0, g.out_rows, rows_per_chunk):
                yield n0, 1, r0, min(rows_per_chunk, g.out_rows - r0)
    else:
        yield from g.chunks(itemsize, n_buffers)


def _column_block(a, n0, nb, start, m):
    """a[n0:n0+nb, :, start:start+m] of shape (nb, C, m) as (C, nb * m), contiguous."""
    block = a[n0:n0 + nb, :, start:start + m]
    if nb == 1:
        return np.ascontiguousarray(block[0])
    return np.ascontiguousarray(block.transpose(1, 0, 2)).reshape(a.shape[1], nb * m)


def _pointwise_threads(g):
    """Threads for the pointwise kernel: by the work, at most one per (sample, tile) task."""
    return max(1, min(threads_for(g.n * g.rows * g.positions),
                      g.n * -(-g.positions // pointwise_tile(g))))


def _transpose_forward(x, weight, bias, g):
    """out of shape (N, C_out) + output spatial; x and weight contiguous."""
    n, groups = g.n, g.groups
    if n == 0:  # an empty batch: torch's empty output, no kernel
        return np.zeros((0, g.c_in) + g.in_spatial, x.dtype)
    cxg, cyg = g.c_out // groups, g.c_in // groups  # x and output channels per group
    kg = cyg * g.kernel_volume
    w = weight.reshape(groups, cxg, kg)
    xs = x.reshape(n, g.c_out, g.positions)
    if g.is_pointwise and groups == 1 and sample_threads(g, 0, x.itemsize):
        # out[n] = W^T @ x[n]: the pointwise kernel, bias in its pass
        out = np.empty((n, g.c_in, g.positions), dtype=x.dtype)
        with g.blas_limit:
            _im2col.pointwise_products(w[0], True, xs, out, None if bias is None
                                       else np.ascontiguousarray(bias), False,
                                       pointwise_tile(g), _pointwise_threads(g))
        return out.reshape((n, g.c_in) + g.in_spatial)
    if g.is_pointwise:
        out = np.empty((n, g.c_in, g.positions), dtype=x.dtype)
        for gi in range(groups):
            np.matmul(w[gi].T, xs[:, gi * cxg:(gi + 1) * cxg],
                      out=out[:, gi * cyg:(gi + 1) * cyg])
        out = out.reshape((n, g.c_in) + g.in_spatial)
    else:
        threads = sample_threads(g, g.rows * g.positions, x.itemsize)
        if threads:
            # one nogil loop over samples: GEMM into the thread's columns, then the
            # sample's output summed band by band in a small buffer, given its bias
            # and written once (col2im by phases)
            out = np.empty((n, g.c_in) + g.in_spatial, dtype=x.dtype)
            workspace = thread_workspace(threads, g.rows * g.positions, x.dtype)
            b = None if bias is None else np.ascontiguousarray(bias)
            with g.blas_limit:
                _im2col.fold_samples(xs, w[0], b, out.reshape((n, g.c_in) + g.in3), workspace,
                                     g.kernel_geometry, threads)
            return out
        out = np.zeros((n, g.c_in) + g.in_spatial, dtype=x.dtype)
        out5 = out.reshape((n, g.c_in) + g.in3)
        chunks = list(_chunks(g, x.itemsize))
        # Chunks of whole samples fold into disjoint parts of the output and can go to
        # separate threads; chunks of rows of one sample overlap there.
        whole_samples = all(rc == g.out_rows for _, _, _, rc in chunks)
        n_parallel = parallel_threads(g, x.itemsize, chunks) if whole_samples else 1
        kernel_threads = get_num_threads() if n_parallel == 1 else 1
        local = threading.local()

        def fold_chunk(chunk):
            n0, nb, r0, rc = chunk
            m = rc * g.out_w
            size = g.rows * nb * m
            workspace = _thread_workspace(local, "cols", size, x.dtype)
            cols2 = workspace.reshape(g.rows, nb * m)
            xc = _column_block(xs, n0, nb, r0 * g.out_w, m)
            for gi in range(groups):
                np.matmul(w[gi].T, xc[gi * cxg:(gi + 1) * cxg],
                          out=cols2[gi * kg:(gi + 1) * kg])
            _run_col2im(workspace, out5, g, n0, nb, r0, rc, kernel_threads)

        map_blocks(fold_chunk, chunks, n_parallel)
    if bias is not None:
        out += bias.reshape((1, -1) + (1,) * g.nd)
    return out


def _transpose_backward(grad_out, x, weight, g, needs_input_grad):
    n, groups = g.n, g.groups
    if n == 0:  # an empty batch: zero gradients, as torch gives
        return (np.zeros(x.shape, x.dtype) if needs_input_grad else None,
                np.zeros(weight.shape, x.dtype), np.zeros(g.c_in, x.dtype))
    cxg, cyg = g.c_out // groups, g.c_in // groups
    kg = cyg * g.kernel_volume
    w = weight.reshape(groups, cxg, kg)
    xs = x.reshape(n, g.c_out, g.positions)
    go = grad_out.reshape(n, g.c_in, -1)
    grad_bias = None
    grad_x = np.empty((n, g.c_out, g.positions), dtype=x.dtype) if needs_input_grad else None
    if g.is_pointwise and groups == 1 and sample_threads(g, 0, x.itemsize):
        # grad_x[n] = W @ go[n] by the pointwise kernel; grad_W = sum x[n] @ go[n]^T,
        # the weight gradient of the 1x1 convolution from x to grad_out
        threads = _pointwise_threads(g)
        if needs_input_grad:
            with g.blas_limit:
                _im2col.pointwise_products(w[0], False, go, grad_x, None, False,
                                           pointwise_tile(g), threads)
        conv = _Geometry(g.out_spatial, (1,) * g.nd, (1,) * g.nd, ((0, 0),) * g.nd,
                         (1,) * g.nd, 1, n, g.c_out, g.c_in)
        grad_w = weight_grad(go, x, xs, conv, threads).T.reshape(1, cxg, kg)
    elif g.is_pointwise:
        grad_w = np.zeros((groups, cxg, kg), dtype=x.dtype)
        for gi in range(groups):
            go_g = go[:, gi * cyg:(gi + 1) * cyg]
            x_g = xs[:, gi * cxg:(gi + 1) * cxg]
            grad_w[gi] = np.tensordot(x_g, go_g, axes=([0, 2], [0, 2]))
            if needs_input_grad:
                np.matmul(w[gi], go_g, out=grad_x[:, gi * cxg:(gi + 1) * cxg])
    elif threads := sample_threads(g, g.rows * g.positions, x.itemsize):
        # one nogil loop over the samples of a wave: im2col of grad_out into the
        # thread's columns, then both GEMMs; the waves' weight gradients are summed
        # in sample order, waves of a size set by the shapes alone
        # (grad_out's channels are summed there too, for the bias, while in cache)
        go5 = grad_out.reshape((n, g.c_in) + g.in3)
        workspace = thread_workspace(threads, g.rows * g.positions, x.dtype)
        channel_sums = np.empty((n, g.c_in), x.dtype)
        with g.blas_limit:
            grad_w_t = weight_gradient_by_samples(go5, w[0], xs, g, threads, workspace,
                                                  grad_x if needs_input_grad else None,
                                                  channel_sums)
        grad_w = grad_w_t.T
        grad_bias = channel_sums.sum(axis=0)
    else:
        go5 = grad_out.reshape((n, g.c_in) + g.in3)
        grad_w_t = np.zeros((groups, kg, cxg), dtype=x.dtype)
        chunks = list(_chunks(g, x.itemsize))
        n_parallel = parallel_threads(g, x.itemsize, chunks)
        kernel_threads = get_num_threads() if n_parallel == 1 else 1
        local = threading.local()

        def unfold_chunk(chunk):
            """The chunk's share of grad_x (written in place) and of grad_W (returned)."""
            n0, nb, r0, rc = chunk
            m = rc * g.out_w
            start = r0 * g.out_w
            size = g.rows * nb * m
            cols = _thread_workspace(local, "cols", size, x.dtype)
            _run_im2col(go5, cols, g, n0, nb, r0, rc, kernel_threads)
            cols2 = cols.reshape(g.rows, nb * m)
            # x of the chunk as (nb * m, C_in): the weight gradient is computed
            # transposed, cols @ x.T, which runs faster in BLAS than x @ cols.T
            # (both operands contiguous; 3.6 vs 5.0 ms on the benchmark layer)
            x_t = np.ascontiguousarray(
                xs[n0:n0 + nb, :, start:start + m].transpose(0, 2, 1)).reshape(nb * m, g.c_out)
            partial = []
            for gi in range(groups):
                c = cols2[gi * kg:(gi + 1) * kg]
                partial.append(c @ x_t[:, gi * cxg:(gi + 1) * cxg])
                if needs_input_grad:
                    product = w[gi] @ c
                    grad_x[n0:n0 + nb, gi * cxg:(gi + 1) * cxg, start:start + m] = (
                        product.reshape(cxg, nb, m).transpose(1, 0, 2))
            return partial

        # The chunks' weight gradients are summed in chunk order, whichever thread made
        # them; a few at a time, so that waiting partial sums stay few.
        for wave in waves(chunks, 2 * n_parallel):
            for partial in map_blocks(unfold_chunk, wave, n_parallel):
                for gi in range(groups):
                    grad_w_t[gi] += partial[gi]
        grad_w = grad_w_t.transpose(0, 2, 1)
    if grad_bias is None:
        grad_bias = go.sum(axis=(0, 2))
    if needs_input_grad:
        grad_x = grad_x.reshape(x.shape)
    return grad_x, np.ascontiguousarray(grad_w).reshape(weight.shape), grad_bias


def _conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups, dilation,
                       nd):
    x, weight, bias, g = _normalise(x, weight, bias, stride, padding, output_padding, groups,
                                    dilation, nd)
    return _transpose_forward(x, weight, bias, g)


def _conv_transpose_backward_nd(grad_out, x, weight, stride, padding, output_padding, groups,
                                dilation, needs_input_grad, nd):
    grad_out, x, weight = float_arrays(grad_out=grad_out, x=x, weight=weight)
    x, weight, _, g = _normalise(x, weight, None, stride, padding, output_padding, groups,
                                 dilation, nd)
    expected = (g.n, g.c_in) + g.in_spatial
    if grad_out.shape != expected:
        raise ValueError(
            f"grad_out must have the output's shape {expected} {_OUT_LAYOUTS[nd]}, got "
            f"{grad_out.shape}")
    grad_out = np.ascontiguousarray(grad_out)
    return _transpose_backward(grad_out, x, weight, g, bool(needs_input_grad))


_NOTES = """
    Three equivalent views (lecture 000), all tested:

    1. **Transposed matrix.** If the convolution with this weight (read as a
       conv weight of shape ``(C_in, C_out / groups, *k)``, mapping C_out
       channels to C_in) is the matrix ``M`` with
       ``conv(y).ravel() == M @ y.ravel()``, the transposed convolution is
       ``M.T``. See :func:`pyxconv.teach.conv_matrix`.
    2. **Dilation & flip.** Insert ``stride - 1`` zeros between input samples,
       pad with ``dilation * (k - 1) - padding`` zeros on each side (plus
       ``output_padding`` after), and cross-correlate with the spatially
       flipped kernel whose C_in and C_out axes are swapped. See
       :func:`pyxconv.teach.dilate_and_flip_transpose`.
    3. **Backpropagation.** It is the gradient of that convolution with
       respect to its input: ``conv{nd}d_backward(g, y, w, s, p)[0] ==
       conv_transpose{nd}d(g, w, None, s, p, output_padding)``, with the
       ``output_padding`` that gives back the size of ``y``.

    Output size, along each spatial dimension:

    .. math::

        n_{out} = (n_{in} - 1)\\,s - 2p + d\\,(k - 1) + p_{out} + 1

    Derivation: input sample ``i`` spreads the kernel over output positions
    ``i s - p + j d`` for taps ``j = 0 .. k-1``. The last sample ``n_in - 1``
    reaches ``(n_in - 1) s + d (k - 1)`` before cropping, which makes
    ``(n_in - 1) s + d (k - 1) + 1`` positions; ``p`` are cropped from each
    end. The convolution that maps back (stride ``s``, padding ``p``) has
    ``floor((n_out + 2p - d (k - 1) - 1) / s) + 1 = n_in`` outputs for every
    ``n_out`` up to ``s - 1`` larger, so the size is ambiguous by up to
    ``s - 1``: ``output_padding`` (:math:`p_{out}`) picks it. It must be
    smaller than the stride or the dilation, as in PyTorch.

    Implementation: per group, the column matrix ``W.T @ x`` (one GEMM),
    folded onto the output by the col2im kernel, deterministically for any
    thread count. The backward pass unfolds ``grad_out`` with im2col once and
    uses it for the input and the weight gradient. The column matrix of a
    chunk takes ``itemsize * C_out * prod(k) * samples * positions_in`` bytes,
    kept under :func:`pyxconv.get_workspace_limit`.

    Dtypes: as :func:`conv{nd}d`: float32 and float64 are kept, integers
    promote, mixing float32 and float64 raises ``TypeError``.
"""

_PARAMS = """
    bias : ndarray of shape (C_out,), optional
        Added to every output position of each channel.
    stride : int or tuple of ints, default 1
        Spacing, in the output, between the kernels spread by adjacent inputs.
    padding : int or tuple of ints, default 0
        ``dilation * (k - 1) - padding`` zeros of implicit padding: the
        output is cropped by ``padding`` at both ends of every dimension. The
        same ``padding`` as the convolution this one undoes.
    output_padding : int or tuple of ints, default 0
        Extra size added at the end of each dimension (smaller than the
        stride or the dilation), to pick among the output sizes that the
        convolution with this stride maps to the same input size.
    groups : int, default 1
        Split the channels into ``groups`` independent transposed convolutions.
    dilation : int or tuple of ints, default 1
        Spacing between kernel taps.
"""

_RAISES = """
    Raises
    ------
    ValueError
        Wrong number of dimensions, ``weight.shape[0] != C_in``, groups not
        dividing C_in, bias of the wrong shape, negative padding or output
        padding, ``output_padding`` not smaller than the stride or the
        dilation, or an output size below 1.
    TypeError
        Complex, object or string arrays, mixed float32 and float64 operands,
        non-integer sizes.
"""


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                              dilation, 1)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                              dilation, 2)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose_nd(x, weight, bias, stride, padding, output_padding, groups,
                              dilation, 3)


conv_transpose1d.__doc__ = f"""1-D transposed convolution ("deconvolution") of a batch of sequences.

    Each input sample scatters a copy of the kernel, scaled by its value, into
    the output; copies from adjacent samples are ``stride`` apart and overlap
    by summing.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, L_in)
        Input batch.
    weight : ndarray of shape (C_in, C_out / groups, kL)
        Filters, in PyTorch's layout for transposed convolutions (the layout
        of the convolution it transposes, which maps C_out to C_in).{_PARAMS}
    Returns
    -------
    out : ndarray of shape (N, C_out, L_out)
        ``L_out = (L_in - 1) * stride - 2 * padding + dilation * (kL - 1)
        + output_padding + 1``.
{_RAISES}
    Notes
    -----{_NOTES.replace("{nd}", "1")}
    Examples
    --------
    Lecture 000's transposed convolution with filter (a, b, c) = (1, 2, 3)
    (WE-02). With stride 1 and padding 1 it is the transpose of the 7x7
    size-preserving Toeplitz matrix: cross-correlation with the flipped
    filter (3, 2, 1).

    >>> import numpy as np
    >>> from pyxconv.functional import conv_transpose1d
    >>> w = np.array([1, 2, 3]).reshape(1, 1, 3)
    >>> y = np.array([1, -1, 2, 0, 3, 1, -2]).reshape(1, 1, 7)
    >>> conv_transpose1d(y, w, padding=1)
    array([[[ 1.,  3.,  1.,  9.,  7.,  9., -1.]]])

    With stride 2 (the transpose of rows 0, 2, 4 of the valid 5x7 matrix),
    three samples become seven:

    >>> conv_transpose1d(np.array([[[1, -2, 3]]]), w, stride=2)
    array([[[ 1.,  2.,  1., -4., -3.,  6.,  9.]]])
    """

conv_transpose2d.__doc__ = f"""2-D transposed convolution ("deconvolution") of a batch of images.

    Each input pixel scatters a copy of the kernel, scaled by its value, into
    the output; copies from adjacent pixels are ``stride`` apart and overlap
    by summing. It is the upsampling layer of DCGAN generators and U-Net
    decoders, and the input gradient of :func:`conv2d`.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H_in, W_in)
        Input batch.
    weight : ndarray of shape (C_in, C_out / groups, kH, kW)
        Filters, in PyTorch's layout for transposed convolutions (the layout
        of the convolution it transposes, which maps C_out to C_in).{_PARAMS}
    Returns
    -------
    out : ndarray of shape (N, C_out, H_out, W_out)
        ``H_out = (H_in - 1) * stride - 2 * padding + dilation * (kH - 1)
        + output_padding + 1``, and the same for the width.
{_RAISES}
    Notes
    -----{_NOTES.replace("{nd}", "2")}
    Examples
    --------
    Each pixel stamps the 2x2 kernel of ones, scaled by its value, at
    stride 2 (no overlap) or stride 1 (overlaps add):

    >>> import numpy as np
    >>> from pyxconv.functional import conv_transpose2d
    >>> x = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> w = np.ones((1, 1, 2, 2))
    >>> conv_transpose2d(x, w, stride=2)[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    >>> conv_transpose2d(x, w)[0, 0]
    array([[ 1.,  3.,  2.],
           [ 4., 10.,  6.],
           [ 3.,  7.,  4.]])

    ``output_padding`` adds the row and column that a stride-2 convolution
    with padding 1 would have ignored:

    >>> conv_transpose2d(x, np.ones((1, 1, 3, 3)), stride=2, padding=1).shape
    (1, 1, 3, 3)
    >>> conv_transpose2d(x, np.ones((1, 1, 3, 3)), stride=2, padding=1,
    ...                  output_padding=1).shape
    (1, 1, 4, 4)
    """

conv_transpose3d.__doc__ = f"""3-D transposed convolution of a batch of volumes.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, D_in, H_in, W_in)
        Input batch.
    weight : ndarray of shape (C_in, C_out / groups, kD, kH, kW)
        Filters, in PyTorch's layout for transposed convolutions.{_PARAMS}
    Returns
    -------
    out : ndarray of shape (N, C_out, D_out, H_out, W_out)
        Sizes as in :func:`conv_transpose2d`, for each of the three dimensions.
{_RAISES}
    Notes
    -----{_NOTES.replace("{nd}", "3")}
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import conv_transpose3d
    >>> out = conv_transpose3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2)), stride=2)
    >>> out.shape, out.sum()
    ((1, 1, 4, 4, 4), np.float64(64.0))
    """

_BACKWARD_DOC = """Gradients of :func:`{name}` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C_out, {out})
        Gradient of the loss with respect to the output of :func:`{name}`.
    x : ndarray of shape (N, C_in, {inp})
        The input given to the forward call.
    weight : ndarray of shape (C_in, C_out / groups, {ker})
        The weight given to the forward call.
    stride, padding, output_padding, groups, dilation
        As given to the forward call.
    needs_input_grad : bool, default True
        Compute ``grad_x``.

    Returns
    -------
    grad_x : ndarray like x, or None
        The *convolution* of ``grad_out`` with the same weight and stride,
        padding and dilation (:func:`{conv}`): the transpose of a transpose.
        ``None`` when ``needs_input_grad`` is false.
    grad_weight : ndarray like weight
        For each tap, the sum over input positions of ``x`` times the
        ``grad_out`` value that tap wrote to.
    grad_bias : ndarray of shape (C_out,)
        ``grad_out`` summed over the batch and all positions.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have the forward output's shape, or for any
        argument the forward call would reject.

    Notes
    -----
    ``grad_out`` is unfolded once with im2col; the input gradient is
    ``W @ cols`` and the weight gradient ``x @ cols.T``, per group.

    Examples
    --------
    {example}
    """


def conv_transpose1d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, needs_input_grad=True):
    return _conv_transpose_backward_nd(grad_out, x, weight, stride, padding, output_padding,
                                       groups, dilation, needs_input_grad, 1)


def conv_transpose2d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, needs_input_grad=True):
    return _conv_transpose_backward_nd(grad_out, x, weight, stride, padding, output_padding,
                                       groups, dilation, needs_input_grad, 2)


def conv_transpose3d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, needs_input_grad=True):
    return _conv_transpose_backward_nd(grad_out, x, weight, stride, padding, output_padding,
                                       groups, dilation, needs_input_grad, 3)


conv_transpose1d_backward.__doc__ = _BACKWARD_DOC.format(
    name="conv_transpose1d", conv="conv1d", out="L_out", inp="L_in", ker="kL",
    example="""WE-02 at stride 2: g = (1, -2, 3) spread by the filter (1, 2, 3).
    The input gradient is the stride-2 *convolution* of the upstream gradient
    with the same filter: window ``i`` starts at ``2 i`` and meets the 1 of
    ``up`` under tap ``i``.

    >>> import numpy as np
    >>> from pyxconv.functional import conv_transpose1d_backward
    >>> g = np.array([1, -2, 3]).reshape(1, 1, 3)
    >>> w = np.array([1, 2, 3]).reshape(1, 1, 3)
    >>> up = np.array([1, 0, 0, 1, 0, 0, 1]).reshape(1, 1, 7)
    >>> grad_x, grad_w, grad_b = conv_transpose1d_backward(up, g, w, stride=2)
    >>> grad_x
    array([[[1., 2., 3.]]])
    >>> grad_w
    array([[[ 1., -2.,  3.]]])
    >>> grad_b
    array([3.])""")
conv_transpose2d_backward.__doc__ = _BACKWARD_DOC.format(
    name="conv_transpose2d", conv="conv2d", out="H_out, W_out", inp="H_in, W_in",
    ker="kH, kW",
    example="""The gradient of the sum of the outputs: each input pixel wrote the
    whole kernel once, so its gradient is the kernel's sum.

    >>> import numpy as np
    >>> from pyxconv.functional import conv_transpose2d_backward
    >>> x = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> w = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> grad_x, grad_w, grad_b = conv_transpose2d_backward(np.ones((1, 1, 3, 3)), x, w)
    >>> grad_x[0, 0]
    array([[10., 10.],
           [10., 10.]])
    >>> grad_w[0, 0]
    array([[10., 10.],
           [10., 10.]])
    >>> grad_b
    array([9.])""")
conv_transpose3d_backward.__doc__ = _BACKWARD_DOC.format(
    name="conv_transpose3d", conv="conv3d", out="D_out, H_out, W_out",
    inp="D_in, H_in, W_in", ker="kD, kH, kW",
    example=""">>> import numpy as np
    >>> from pyxconv.functional import conv_transpose3d_backward
    >>> x = np.ones((1, 1, 1, 1, 1)); w = np.ones((1, 1, 2, 2, 2))
    >>> grad_x, grad_w, grad_b = conv_transpose3d_backward(np.ones((1, 1, 2, 2, 2)), x, w)
    >>> grad_x.ravel(), grad_w.sum(), grad_b
    (array([8.]), np.float64(8.0), array([8.]))""")
