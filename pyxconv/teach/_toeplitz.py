"""Convolution as a matrix, and the transposed convolution that is its transpose.

Lecture 000 writes a 1-D convolution with the filter (a, b, c) as a banded
(Toeplitz) matrix ``M``: row ``i`` holds ``a, b, c`` in the columns of the
samples that output ``i`` sees. A 2-D convolution is a *doubly block
Toeplitz* matrix: a Toeplitz matrix of blocks, each block the Toeplitz
matrix of one kernel row. With several channels, ``M`` has one block per
(output channel, input channel) pair.

The transposed convolution is ``M.T``. The lecture shows three ways to see
it, and this module builds each one independently of the fast
implementation in :mod:`pyxconv.functional`, so they can be compared:

1. :func:`conv_matrix` and :func:`conv_transpose_matrix`: the dense matrices;
2. :func:`dilate_and_flip_transpose`: insert ``stride - 1`` zeros between
   input samples, pad, and convolve with the flipped, channel-swapped kernel;
3. :func:`pyxconv.functional.conv2d_backward`: the input gradient of a
   convolution is the transposed convolution of the output gradient, with
   the same filter.

:func:`conv_matrix_symbols` and :func:`format_matrix` print the matrices
with the lecture's letters; :func:`toeplitz_demo` reproduces the lecture's
worked examples WE-01 and WE-02.

The dense matrices grow as the product of the input and output sizes, so
they are for small examples: sizes whose matrix would have more than
``max_entries`` entries (default ``MAX_MATRIX_ENTRIES``, about a million) are
refused with a ``ValueError``.
"""
import math
import sys

import numpy as np

from pyxconv.functional import _conv as _conv_module
from pyxconv.functional._conv_transpose import _output_sizes
from pyxconv._validation import (
    SPATIAL_DIM_NAMES,
    as_int,
    check_finite_size,
    check_ndim,
    conv_output_size,
    float_arrays,
    int_tuple,
    padding_pairs,
)

MAX_MATRIX_ENTRIES = 2**20


__all__ = [
    "MAX_MATRIX_ENTRIES",
    "conv_matrix",
    "conv_matrix_symbols",
    "conv_transpose_matrix",
    "dilate",
    "dilate_and_flip_transpose",
    "format_matrix",
    "toeplitz_demo",
]


def _tap_index(kernel, c_in, c_out, groups, in_spatial, out_spatial, stride, pads, dilation,
               max_entries):
    """Integer matrix of shape (C_out * prod(out), C_in * prod(in)).

    Entry ``[r, q]`` is the flat index into the weight of shape
    ``(C_out, C_in / groups, *kernel)`` of the tap that multiplies input
    element ``q`` in output element ``r``, or -1 where the matrix is zero.
    Built with plain index arithmetic, independently of the im2col kernels.
    """
    n_rows = c_out * math.prod(out_spatial)
    n_cols = c_in * math.prod(in_spatial)
    if n_rows * n_cols > max_entries:
        raise ValueError(
            f"the matrix would have {n_rows} x {n_cols} = {n_rows * n_cols} entries, more "
            f"than max_entries={max_entries}; it is a teaching tool for small sizes: use a "
            "smaller input_shape or fewer channels, or raise max_entries")
    nd = len(kernel)
    index = np.full((n_rows, n_cols), -1, dtype=np.intp)
    cig, cog = c_in // groups, c_out // groups
    kernel_volume = math.prod(kernel)
    out_pos = np.indices(out_spatial).reshape(nd, -1)  # (nd, L_out)
    out_flat = np.arange(out_pos.shape[1])
    for t, tap in enumerate(np.ndindex(*kernel)):
        # input coordinate read by every output position for this tap
        coords = [out_pos[i] * stride[i] - pads[i][0] + tap[i] * dilation[i] for i in range(nd)]
        inside = np.ones(out_pos.shape[1], dtype=bool)
        for i in range(nd):
            inside &= (coords[i] >= 0) & (coords[i] < in_spatial[i])
        in_flat = np.ravel_multi_index([c[inside] for c in coords], in_spatial) if nd else None
        o_flat = out_flat[inside]
        for co in range(c_out):
            gi = co // cog
            for cl in range(cig):
                ci = gi * cig + cl
                rows = co * out_pos.shape[1] + o_flat
                cols = ci * math.prod(in_spatial) + in_flat
                index[rows, cols] = (co * cig + cl) * kernel_volume + t
    return index


def _as_weight(weight):
    (weight,) = float_arrays(weight=weight)
    if weight.ndim in (1, 2):  # a single-channel filter (k,) or (kH, kW)
        weight = weight.reshape((1, 1) + weight.shape)
    if weight.ndim not in (3, 4, 5):
        raise ValueError(
            "weight must be (k,), (kH, kW), or (C_out, C_in/groups, *kernel) with 1 to 3 "
            f"spatial dimensions, got shape {weight.shape}")
    check_finite_size(weight.shape, "weight")
    return weight


def _spatial_and_channels(input_shape, nd, c_in_default, name="input_shape"):
    shape = (input_shape,) if not isinstance(input_shape, (tuple, list)) else tuple(input_shape)
    if len(shape) == nd:
        return int_tuple(shape, nd, name, 1), c_in_default
    if len(shape) == nd + 1:
        shape = int_tuple(shape, nd + 1, name, 1)
        return shape[1:], shape[0]
    raise ValueError(
        f"{name} must be the {nd} spatial sizes, or (C, *spatial) with {nd + 1} entries, "
        f"for a weight with {nd} spatial dimensions; got {input_shape!r}")


def _conv_geometry(weight_shape, input_shape, stride, padding, dilation, groups):
    nd = len(weight_shape) - 2
    groups = as_int(groups, "groups", 1)
    c_out = weight_shape[0]
    spatial, c_in = _spatial_and_channels(input_shape, nd, weight_shape[1] * groups)
    if weight_shape[1] * groups != c_in:
        raise ValueError(
            f"weight has {weight_shape[1]} input channels per group (shape "
            f"{tuple(weight_shape)}); with groups={groups} that needs C_in="
            f"{weight_shape[1] * groups}, but input_shape gives C_in={c_in}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels C_out={c_out}")
    kernel = tuple(weight_shape[2:])
    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    pads = padding_pairs(padding, nd, kernel, stride, dilation)
    out = tuple(
        conv_output_size(s, k, st, p[0], p[1], d, SPATIAL_DIM_NAMES[nd][i], "input_shape")
        for i, (s, k, st, p, d) in enumerate(zip(spatial, kernel, stride, pads, dilation)))
    return kernel, c_in, c_out, groups, spatial, out, stride, pads, dilation


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1,
                max_entries=MAX_MATRIX_ENTRIES):
    """The dense matrix of a convolution: ``conv(x).ravel() == M @ x.ravel()``.

    Parameters
    ----------
    weight : ndarray of shape (C_out, C_in / groups, *kernel), (kH, kW) or (k,)
        Filters with 1, 2 or 3 spatial dimensions, as for
        :func:`pyxconv.functional.conv2d`; a 1-D or 2-D array is a single
        filter for a single-channel input.
    input_shape : int or tuple of ints
        The input of one sample: its spatial sizes, or ``(C_in, *spatial)``.
    stride, padding, dilation, groups
        As for :func:`pyxconv.functional.conv2d` (padding may be an int, one
        int per dimension, ``(before, after)`` pairs, ``'valid'`` or
        ``'same'``).
    max_entries : int, default MAX_MATRIX_ENTRIES (2**20)
        Refuse matrices with more entries than this.

    Returns
    -------
    M : ndarray of shape (C_out * prod(out_spatial), C_in * prod(input spatial))
        Row ``co * L_out + l`` is output channel ``co`` at flat output
        position ``l``; column ``ci * L_in + q`` is input channel ``ci`` at
        flat position ``q`` (C order, as ``ravel`` gives).

    Raises
    ------
    ValueError
        If the matrix would exceed ``max_entries``, the channels do not match,
        or the kernel does not fit the padded input.

    Notes
    -----
    Output ``l`` at position ``o`` reads input ``o * s - p + t * d`` through
    tap ``t``; the matrix has ``w[t]`` at that column and zero elsewhere. For
    1-D, stride 1, every row is the row above shifted right by one: a
    Toeplitz matrix. In 2-D the matrix is block Toeplitz, and each block
    (one output row against one input row) is Toeplitz: *doubly block
    Toeplitz*. A stride ``s`` keeps every ``s``-th row of the stride-1
    matrix, per dimension.

    The output size per dimension is ``floor((n + p_before + p_after -
    d (k - 1) - 1) / s) + 1``, as in :func:`pyxconv.functional.conv2d`.

    Examples
    --------
    WE-01, lecture 000: the filter (a, b, c) = (1, 2, 3) on 7 samples. The
    valid convolution is the 5x7 banded matrix, and multiplying by it is the
    convolution:

    >>> import numpy as np
    >>> from pyxconv.teach import conv_matrix
    >>> T = conv_matrix([1, 2, 3], 7)
    >>> T.astype(int)
    array([[1, 2, 3, 0, 0, 0, 0],
           [0, 1, 2, 3, 0, 0, 0],
           [0, 0, 1, 2, 3, 0, 0],
           [0, 0, 0, 1, 2, 3, 0],
           [0, 0, 0, 0, 1, 2, 3]])
    >>> T @ np.arange(1, 8)
    array([14., 20., 26., 32., 38.])

    Stride 2 keeps rows 0, 2 and 4:

    >>> conv_matrix([1, 2, 3], 7, stride=2) @ np.arange(1, 8)
    array([14., 26., 38.])

    A 2x2 filter on a 3x3 image: a 4x9 doubly block Toeplitz matrix.

    >>> conv_matrix([[1, 2], [3, 4]], (3, 3)).astype(int)
    array([[1, 2, 0, 3, 4, 0, 0, 0, 0],
           [0, 1, 2, 0, 3, 4, 0, 0, 0],
           [0, 0, 0, 1, 2, 0, 3, 4, 0],
           [0, 0, 0, 0, 1, 2, 0, 3, 4]])
    """
    weight = _as_weight(weight)
    max_entries = as_int(max_entries, "max_entries", 1)
    kernel, c_in, c_out, groups, spatial, out, stride, pads, dilation = _conv_geometry(
        weight.shape, input_shape, stride, padding, dilation, groups)
    index = _tap_index(kernel, c_in, c_out, groups, spatial, out, stride, pads, dilation,
                       max_entries)
    flat = np.concatenate([weight.ravel(), np.zeros(1, dtype=weight.dtype)])
    return flat[index]  # index -1 picks the appended zero


def conv_matrix_symbols(names, input_shape, stride=1, padding=0, dilation=1,
                        max_entries=MAX_MATRIX_ENTRIES):
    """:func:`conv_matrix` of a single-channel filter whose taps are letters.

    Parameters
    ----------
    names : str, sequence of str, or list of lists of str
        The taps: ``"abc"`` or ``["w0", "w1", "w2"]`` for a 1-D filter, a
        list of rows for a 2-D one, e.g. ``[["a", "b"], ["c", "d"]]``.
    input_shape : int or tuple of ints
        Spatial size of the (single-channel) input.
    stride, padding, dilation, max_entries
        As for :func:`conv_matrix`.

    Returns
    -------
    ndarray of str
        The matrix with the tap names, and ``"0"`` where it is zero. Its
        transpose ``.T`` is the matrix of the transposed convolution.

    Raises
    ------
    ValueError
        As :func:`conv_matrix`, or for ragged names.

    Examples
    --------
    The slide of lecture 000 (WE-01): one zero of padding on the right adds
    the sixth row.

    >>> from pyxconv.teach import conv_matrix_symbols, format_matrix
    >>> print(format_matrix(conv_matrix_symbols("abc", 7, padding=[(0, 1)])))
    a b c 0 0 0 0
    0 a b c 0 0 0
    0 0 a b c 0 0
    0 0 0 a b c 0
    0 0 0 0 a b c
    0 0 0 0 0 a b
    """
    if isinstance(names, str):
        names = list(names)
    try:
        taps = np.array(names, dtype=object)
    except ValueError:
        raise ValueError(f"names must be a rectangular grid of tap names, got {names!r}") \
            from None
    if (taps.ndim not in (1, 2) or taps.size == 0
            or not all(isinstance(t, str) for t in taps.ravel())):
        raise ValueError(
            f"names must be a string, or a 1-D or 2-D grid of tap names; got {names!r}")
    max_entries = as_int(max_entries, "max_entries", 1)
    shape = (1, 1) + taps.shape
    kernel, c_in, c_out, groups, spatial, out, stride, pads, dilation = _conv_geometry(
        shape, input_shape, stride, padding, dilation, 1)
    index = _tap_index(kernel, c_in, c_out, groups, spatial, out, stride, pads, dilation,
                       max_entries)
    flat = np.array([str(t) for t in taps.ravel()] + ["0"], dtype=object)
    return flat[index].astype(str)


def conv_transpose_matrix(weight, input_shape, stride=1, padding=0, output_padding=0,
                          groups=1, dilation=1, max_entries=MAX_MATRIX_ENTRIES):
    """The dense matrix of a transposed convolution: the transpose of :func:`conv_matrix`.

    Parameters
    ----------
    weight : ndarray of shape (C_in, C_out / groups, *kernel), (kH, kW) or (k,)
        In the layout of :func:`pyxconv.functional.conv_transpose2d`.
    input_shape : int or tuple of ints
        The input ``x`` of one sample: its spatial sizes, or ``(C_in, *spatial)``.
    stride, padding, output_padding, groups, dilation
        As for :func:`pyxconv.functional.conv_transpose2d`.
    max_entries : int, default MAX_MATRIX_ENTRIES

    Returns
    -------
    ndarray of shape (C_out * prod(out_spatial), C_in * prod(input spatial))
        ``conv_transpose(x).ravel() == result @ x.ravel()``. It is
        ``conv_matrix(weight, out_shape, ...).T``, where the convolution maps
        the transposed convolution's output back to the size of ``x``.

    Raises
    ------
    ValueError
        As :func:`conv_matrix`, or ``output_padding`` not smaller than the
        stride or the dilation.

    Examples
    --------
    WE-02 at stride 2: the transpose of rows 0, 2, 4 of the valid 5x7 matrix
    spreads three samples over seven.

    >>> import numpy as np
    >>> from pyxconv.teach import conv_transpose_matrix
    >>> T2t = conv_transpose_matrix([1, 2, 3], 3, stride=2)
    >>> T2t.astype(int)
    array([[1, 0, 0],
           [2, 0, 0],
           [3, 1, 0],
           [0, 2, 0],
           [0, 3, 1],
           [0, 0, 2],
           [0, 0, 3]])
    >>> T2t @ np.array([1, -2, 3])
    array([ 1.,  2.,  1., -4., -3.,  6.,  9.])
    """
    weight = _as_weight(weight)
    max_entries = as_int(max_entries, "max_entries", 1)
    nd = weight.ndim - 2
    groups = as_int(groups, "groups", 1)
    c_x = weight.shape[0]
    spatial, c_in = _spatial_and_channels(input_shape, nd, c_x)
    if c_in != c_x:
        raise ValueError(
            f"weight has {c_x} input channels (shape {weight.shape}), but input_shape gives "
            f"C_in={c_in}")
    if c_x % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_x}")
    kernel = tuple(weight.shape[2:])
    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or {nd} ints, got {padding!r}")
    padding = int_tuple(padding, nd, "padding", 0)
    output_padding = int_tuple(output_padding, nd, "output_padding", 0)
    y_spatial = _output_sizes(spatial, kernel, stride, padding, output_padding, dilation,
                              "input_shape")
    c_y = weight.shape[1] * groups
    # The conv from y back to x: input y_spatial, output exactly `spatial`.
    pads = tuple((p, p) for p in padding)
    index = _tap_index(kernel, c_y, c_x, groups, y_spatial, spatial, stride, pads, dilation,
                       max_entries)
    flat = np.concatenate([weight.ravel(), np.zeros(1, dtype=weight.dtype)])
    return flat[index].T


def dilate(x, stride):
    """Insert ``stride - 1`` zeros between neighbouring samples of every spatial axis.

    Parameters
    ----------
    x : ndarray of shape (N, C, *spatial)
    stride : int or tuple of ints
        One per spatial dimension, >= 1.

    Returns
    -------
    ndarray of shape (N, C, *((n - 1) * stride + 1))

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.teach import dilate
    >>> dilate(np.array([[[1, -2, 3]]]), 2)
    array([[[ 1,  0, -2,  0,  3]]])
    """
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"x must be (N, C, *spatial) with at least one spatial axis, "
                         f"got shape {x.shape}")
    nd = x.ndim - 2
    stride = int_tuple(stride, nd, "stride", 1)
    shape = x.shape[:2] + tuple((n - 1) * s + 1 for n, s in zip(x.shape[2:], stride))
    out = np.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = x
    return out


def dilate_and_flip_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Transposed convolution the slow way: dilate, pad, flip, convolve.

    Lecture 000's "transposed convolution by dilation & flip". It gives the
    same result as :func:`pyxconv.functional.conv_transpose2d` (1-D, 2-D and
    3-D), but convolves over ``stride ** nd`` times more positions, most of
    them zeros.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, *spatial)
    weight : ndarray of shape (C_in, C_out / groups, *kernel)
    bias, stride, padding, output_padding, groups, dilation
        As for :func:`pyxconv.functional.conv_transpose2d`.

    Returns
    -------
    ndarray of shape (N, C_out, *out_spatial)

    Raises
    ------
    ValueError
        As :func:`pyxconv.functional.conv_transpose2d`.

    Notes
    -----
    1. **Dilate** the input: ``stride - 1`` zeros between samples, so
       neighbours land ``stride`` apart as their kernels do in the output.
    2. **Pad** with ``dilation * (k - 1) - padding`` zeros before and that
       plus ``output_padding`` after (crop if negative): every output
       position whose window touches a sample gets computed.
    3. **Flip and swap**: reverse the kernel along every spatial axis and
       swap its C_in and C_out axes (per group). A scatter of ``w[t]`` from
       input ``i`` to output ``i s + t d`` is a gather by output ``o`` of
       input ``(o - t d) / s``: a cross-correlation with the reversed kernel.
    4. **Convolve** (cross-correlate) with stride 1 and the same dilation.

    The size: ``(n - 1) s + 1`` after dilating, plus ``2 (d (k - 1) - p) +
    p_out`` after padding, minus ``d (k - 1)`` for the window:
    ``(n - 1) s - 2 p + d (k - 1) + p_out + 1``.

    Examples
    --------
    WE-02, stride 2: dilate (1, -2, 3) to (1, 0, -2, 0, 3), pad with
    k - 1 = 2 zeros, and cross-correlate with the flipped filter (3, 2, 1).

    >>> import numpy as np
    >>> from pyxconv.teach import dilate_and_flip_transpose
    >>> g = np.array([1, -2, 3]).reshape(1, 1, 3)
    >>> w = np.array([1, 2, 3]).reshape(1, 1, 3)
    >>> dilate_and_flip_transpose(g, w, stride=2)
    array([[[ 1.,  2.,  1., -4., -3.,  6.,  9.]]])
    """
    x, weight, bias = float_arrays(x=x, weight=weight, bias=bias)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must be (N, C_in, *spatial) with 1 to 3 spatial dimensions, "
                         f"got shape {x.shape}")
    nd = x.ndim - 2
    check_ndim(weight, nd + 2, "weight", "(C_in, C_out/groups, *kernel)")
    check_finite_size(x.shape, "x")
    check_finite_size(weight.shape, "weight")
    groups = as_int(groups, "groups", 1)
    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or {nd} ints, got {padding!r}")
    padding = int_tuple(padding, nd, "padding", 0)
    output_padding = int_tuple(output_padding, nd, "output_padding", 0)
    c_in = x.shape[1]
    if weight.shape[0] != c_in:
        raise ValueError(f"weight has {weight.shape[0]} input channels (shape "
                         f"{weight.shape}), but x has C_in={c_in} (shape {x.shape})")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    kernel = weight.shape[2:]
    _output_sizes(x.shape[2:], kernel, stride, padding, output_padding, dilation)
    # 1. dilate
    z = dilate(x, stride)
    # 2. pad (or crop where the padding is negative)
    for axis, (k, p, op, d) in enumerate(zip(kernel, padding, output_padding, dilation)):
        before, after = d * (k - 1) - p, d * (k - 1) - p + op
        axis += 2
        z = np.pad(z, [(0, 0)] * axis + [(max(before, 0), max(after, 0))]
                   + [(0, 0)] * (z.ndim - axis - 1))
        stop = z.shape[axis] + min(after, 0)
        z = z[(slice(None),) * axis + (slice(max(-before, 0), stop),)]
    # 3. flip spatially, swap C_in and C_out within each group
    cig, cog = c_in // groups, weight.shape[1]
    flipped = weight[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    swapped = (flipped.reshape((groups, cig, cog) + kernel).swapaxes(1, 2)
               .reshape((groups * cog, cig) + kernel))
    # 4. convolve, stride 1, same dilation
    conv = {1: _conv_module.conv1d, 2: _conv_module.conv2d, 3: _conv_module.conv3d}[nd]
    return conv(z, swapped, bias, stride=1, padding=0, dilation=dilation, groups=groups)


def format_matrix(matrix):
    """Text of a matrix, one line per row and columns aligned, as on a slide.

    Parameters
    ----------
    matrix : 2-D array of numbers or str
        Numbers that are all whole print as integers.

    Returns
    -------
    str

    Examples
    --------
    >>> from pyxconv.teach import format_matrix
    >>> print(format_matrix([[1.0, -2.0], [30.0, 4.0]]))
     1 -2
    30  4
    """
    m = np.asarray(matrix)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    if m.dtype.kind in "biuf" and m.size and np.all(np.isfinite(m)) and np.all(m == np.round(m)):
        cells = [[str(int(v)) for v in row] for row in m]
    else:
        cells = [[str(v) for v in row] for row in m]
    width = max((len(c) for row in cells for c in row), default=1)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


def toeplitz_demo(file=None):
    """Print lecture 000's worked examples WE-01 and WE-02.

    WE-01: the 1-D convolution with the filter (a, b, c) as a Toeplitz
    matrix (valid, padded on the right, stride 2), applied to
    x = (1, ..., 7) with (a, b, c) = (1, 2, 3). WE-02: its transpose, the
    transposed convolution, as a matrix and by dilation & flip, at stride 1
    (size-preserving, padding 1) and stride 2.

    Parameters
    ----------
    file : file-like, optional
        Where to print; standard output by default.

    Examples
    --------
    >>> from pyxconv.teach import toeplitz_demo
    >>> toeplitz_demo()  # doctest: +NORMALIZE_WHITESPACE
    WE-01: 1-D convolution with the filter (a, b, c) on 7 samples
    valid, stride 1 (5 x 7):
    a b c 0 0 0 0
    0 a b c 0 0 0
    0 0 a b c 0 0
    0 0 0 a b c 0
    0 0 0 0 a b c
    one zero of padding on the right, as on the slide (6 x 7):
    a b c 0 0 0 0
    0 a b c 0 0 0
    0 0 a b c 0 0
    0 0 0 a b c 0
    0 0 0 0 a b c
    0 0 0 0 0 a b
    stride 2 keeps rows 0, 2, 4 (3 x 7):
    a b c 0 0 0 0
    0 0 a b c 0 0
    0 0 0 0 a b c
    (a, b, c) = (1, 2, 3), x = [1 2 3 4 5 6 7]:
      T @ x        = [14 20 26 32 38]
      padded       = [14 20 26 32 38 20]
      stride 2     = [14 26 38]
    <BLANKLINE>
    WE-02: transposed convolution = transpose of the Toeplitz matrix
    S = size-preserving convolution (padding 1); S.T (7 x 7):
    b a 0 0 0 0 0
    c b a 0 0 0 0
    0 c b a 0 0 0
    0 0 c b a 0 0
    0 0 0 c b a 0
    0 0 0 0 c b a
    0 0 0 0 0 c b
    y = [ 1 -1  2  0  3  1 -2]:
      S.T @ y                       = [ 1  3  1  9  7  9 -1]
      conv_transpose1d(y, padding=1) = [ 1  3  1  9  7  9 -1]
      y * flipped filter (c, b, a)  = [ 1  3  1  9  7  9 -1]
    stride 2: T2.T (7 x 3):
    a 0 0
    b 0 0
    c a 0
    0 b 0
    0 c a
    0 0 b
    0 0 c
    g = [ 1 -2  3]:
      T2.T @ g                       = [ 1  2  1 -4 -3  6  9]
      conv_transpose1d(g, stride=2)  = [ 1  2  1 -4 -3  6  9]
      dilate: [ 1  0 -2  0  3], pad 2: [ 0  0  1  0 -2  0  3  0  0]
      * flipped filter (c, b, a)     = [ 1  2  1 -4 -3  6  9]
    """
    from pyxconv.functional import conv_transpose1d

    out = sys.stdout if file is None else file

    def say(*parts):
        print(*parts, file=out)

    def vec(v):
        return np.array2string(np.asarray(v).round().astype(int))

    w = np.array([1, 2, 3]).reshape(1, 1, 3)
    x = np.arange(1, 8)
    say("WE-01: 1-D convolution with the filter (a, b, c) on 7 samples")
    say("valid, stride 1 (5 x 7):")
    say(format_matrix(conv_matrix_symbols("abc", 7)))
    say("one zero of padding on the right, as on the slide (6 x 7):")
    say(format_matrix(conv_matrix_symbols("abc", 7, padding=[(0, 1)])))
    say("stride 2 keeps rows 0, 2, 4 (3 x 7):")
    say(format_matrix(conv_matrix_symbols("abc", 7, stride=2)))
    say(f"(a, b, c) = (1, 2, 3), x = {vec(x)}:")
    say(f"  T @ x        = {vec(conv_matrix(w, 7) @ x)}")
    say(f"  padded       = {vec(conv_matrix(w, 7, padding=[(0, 1)]) @ x)}")
    say(f"  stride 2     = {vec(conv_matrix(w, 7, stride=2) @ x)}")
    say()
    y = np.array([1, -1, 2, 0, 3, 1, -2])
    say("WE-02: transposed convolution = transpose of the Toeplitz matrix")
    say("S = size-preserving convolution (padding 1); S.T (7 x 7):")
    say(format_matrix(conv_matrix_symbols("abc", 7, padding=1).T))
    say(f"y = {vec(y)}:")
    say(f"  S.T @ y                       = {vec(conv_matrix(w, 7, padding=1).T @ y)}")
    say(f"  conv_transpose1d(y, padding=1) = "
        f"{vec(conv_transpose1d(y.reshape(1, 1, 7), w, padding=1).ravel())}")
    flipped = _conv_module.conv1d(y.reshape(1, 1, 7), w[..., ::-1], padding=1).ravel()
    say(f"  y * flipped filter (c, b, a)  = {vec(flipped)}")
    g = np.array([1, -2, 3])
    say("stride 2: T2.T (7 x 3):")
    say(format_matrix(conv_matrix_symbols("abc", 7, stride=2).T))
    say(f"g = {vec(g)}:")
    say(f"  T2.T @ g                       = {vec(conv_matrix(w, 7, stride=2).T @ g)}")
    say(f"  conv_transpose1d(g, stride=2)  = "
        f"{vec(conv_transpose1d(g.reshape(1, 1, 3), w, stride=2).ravel())}")
    dilated = dilate(g.reshape(1, 1, 3), 2).ravel()
    padded = np.pad(dilated, 2)
    say(f"  dilate: {vec(dilated)}, pad 2: {vec(padded)}")
    by_flip = dilate_and_flip_transpose(g.reshape(1, 1, 3), w, stride=2).ravel()
    say(f"  * flipped filter (c, b, a)     = {vec(by_flip)}")
