"""Pooling in 1, 2 and 3 dimensions: max pooling with switches, unpooling, average pooling.

Max pooling keeps the largest value of each window and records its
*switch*: where in the input that maximum came from. The switch is all the
backward pass needs (the gradient of a maximum flows to the element that
won, and nowhere else), and it is what unpooling uses to put activations
back where they came from, the deconvnet way of seeing what a feature map
encodes (lecture 000).

Names, arguments, output sizes and the index convention are PyTorch's, so
switches can be handed to ``torch.nn.functional.max_unpool2d`` and back.
Two extensions go beyond PyTorch, for what ONNX (and TensorFlow) allow:
padding wider than half the window, as long as every window still holds an
input element, and dilation in average pooling.
"""
import functools
import math

import numpy as np

from pyxconv._kernels import _pool
from pyxconv._threads import get_num_threads, threads_for, threads_sleep_when_idle
from pyxconv._validation import (
    FLOAT_DTYPES,
    SPATIAL_DIM_NAMES,
    UNCACHEABLE,
    CheckedCalls,
    as_int,
    check_finite_size,
    check_nonempty_sample,
    check_ndim,
    float_arrays,
    int_tuple,
    plain_key,
)

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_INT32_MAX = 2**31 - 1
# Below twice this many elements touched, a call runs on one thread. With
# threads that spin between loops (pyxconv's default policy) a second thread
# paid off from (8, 16, 16, 16) (32 K elements: 0.027 -> 0.022 ms forward).
# With OMP_WAIT_POLICY=PASSIVE, waking the second thread costs ~0.1 ms: the
# kernels do about a billion elements a second, and max_pool2d of
# (64, 6, 28, 28) (0.3 M elements) took 0.24 ms on one thread and on two.
_GRAIN = 2**18 if threads_sleep_when_idle() else 2**14


def _threads_for(elements):
    return threads_for(elements, _GRAIN)


def _flag(value, name):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def _resolve_stride(stride, kernel, nd):
    # PyTorch: stride=None (or an empty list) means stride = kernel_size.
    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        return kernel
    return int_tuple(stride, nd, "stride", 1)


def pool_output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Output length of a pooling window along one dimension, by PyTorch's rule.

    Parameters
    ----------
    size : int
        Input length along the dimension.
    kernel, stride, padding, dilation : int
        Window geometry along the dimension.
    ceil_mode : bool, default False
        Round up instead of down.

    Returns
    -------
    int
        ``floor((size + 2*padding - dilation*(kernel-1) - 1 + e) / stride) + 1``
        with ``e = stride - 1`` in ceil mode (else 0); in ceil mode, one less
        when the last window would start in the right padding or beyond. May
        be < 1 (the pooling functions then raise ``ValueError``).

    Examples
    --------
    The lectures' 2x2 pooling summary, ``ceil(W / 2)`` (WE-33), needs ceil mode:

    >>> from pyxconv.functional import pool_output_size
    >>> [pool_output_size(w, 2, 2, 0, ceil_mode=True) for w in (4, 5, 7, 32, 224)]
    [2, 3, 4, 16, 112]
    >>> [pool_output_size(w, 2, 2, 0) for w in (5, 7)]
    [2, 3]

    A window that would start in the right padding is dropped:

    >>> pool_output_size(5, 2, 2, 1, ceil_mode=True)
    3
    """
    size = as_int(size, "size", 1)
    kernel = as_int(kernel, "kernel", 1)
    stride = as_int(stride, "stride", 1)
    padding = as_int(padding, "padding", 0)
    dilation = as_int(dilation, "dilation", 1)
    span = dilation * (kernel - 1) + 1
    extra = stride - 1 if ceil_mode else 0
    out = (size + 2 * padding - span + extra) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _read_only(array):
    array.flags.writeable = False
    return array


class _PoolGeometry:
    """Sizes of one pooling call, padded out to 3 spatial dimensions.

    A 2-D problem of size (H, W) is the 3-D problem (1, H, W) with a kernel
    of depth 1, and a 1-D problem of length L is (1, 1, L); the kernels only
    see the 3-D form. Every check a user can trip is made here, before a
    kernel runs.

    Padding may exceed ``kernel_size // 2`` (PyTorch's limit), as ONNX and
    TensorFlow allow, as long as every window holds at least one input
    element: a window of padding alone has no maximum, and its average
    would divide by no element.
    """

    def __init__(self, in_spatial, kernel_size, stride, padding, dilation, ceil_mode, nd,
                 func, x_name="x"):
        names = SPATIAL_DIM_NAMES[nd]
        kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
        stride = _resolve_stride(stride, kernel, nd)
        padding = int_tuple(padding, nd, "padding", 0)
        dilation = int_tuple(dilation, nd, "dilation", 1)
        ceil_mode = _flag(ceil_mode, "ceil_mode")
        if math.prod(kernel) > _INT32_MAX:
            raise ValueError(f"{func}: kernel_size {kernel} has more than 2**31 - 1 taps")
        out = []
        for size, k, s, p, d, name in zip(in_spatial, kernel, stride, padding, dilation, names):
            o = pool_output_size(size, k, s, p, d, ceil_mode)
            if o < 1:
                raise ValueError(
                    f"{func}: output {name} would be {o} < 1: {name} of {x_name} is {size}, "
                    f"kernel_size {k}, stride {s}, padding {p}, dilation {d}; the (dilated) "
                    f"window spans {d * (k - 1) + 1} but the padded input is only "
                    f"{size + 2 * p}")
            starts = np.arange(o, dtype=np.int64) * s - p
            first = np.where(starts < 0, (-starts + d - 1) // d, 0)
            empty = (first >= k) | (starts + first * d >= size)
            if empty.any():
                bad = int(np.flatnonzero(empty)[0])
                raise ValueError(
                    f"{func}: window {bad} along the {name} holds only padding: padding={p} "
                    f"with input {name} {size}, kernel_size {k}, stride {s}, dilation {d} "
                    f"(window {bad} covers positions {int(starts[bad])} to "
                    f"{int(starts[bad]) + d * (k - 1)} in steps of {d}, none of them in "
                    f"[0, {size})); reduce the padding or the dilation")
            out.append(o)
        self.nd = nd
        self.in_spatial = tuple(in_spatial)
        self.out_spatial = tuple(out)
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.ceil_mode = ceil_mode
        fill = 3 - nd
        self.in3 = (1,) * fill + self.in_spatial
        self.out3 = (1,) * fill + self.out_spatial
        self.k3 = (1,) * fill + kernel
        self.s3 = (1,) * fill + stride
        self.p3 = (0,) * fill + padding
        self.d3 = (1,) * fill + dilation
        self._tap_offsets = None
        self._column_taps = None
        self._windows_of = None
        self._divisors = {}

    def kernel_args(self):
        return (*self.k3, *self.s3, *self.p3, *self.d3)

    def covers_each_plane(self):
        """One window, exactly the plane: the global pool."""
        return self.k3 == self.in3 and self.p3 == (0, 0, 0) and self.d3 == (1, 1, 1)

    def tap_offsets(self):
        """``offset[(c * kH + a) * kW + b] = c * dD * H * W + a * dH * W + b * dW``.

        Where tap (c, a, b) lies from the window origin in the flat plane.
        """
        if self._tap_offsets is None:
            self._tap_offsets = _read_only(self._compute_tap_offsets())
        return self._tap_offsets

    def column_taps(self):
        """Where each tap column is inside the input, for the max-pool kernel.

        Returns ``col_lo``, ``col_hi`` (one entry per kernel column b: tap b
        is inside the input for output columns ``[col_lo[b], col_hi[b])``)
        and ``first_col_tap`` (per output column: its first tap column inside
        the input). Computed once per geometry; the arrays are read-only.
        """
        if self._column_taps is None:
            self._column_taps = tuple(_read_only(a) for a in self._compute_column_taps())
        return self._column_taps

    def _compute_tap_offsets(self):
        k_d, k_h, k_w = self.k3
        d_d, d_h, d_w = self.d3
        _, in_h, in_w = self.in3
        depths = np.arange(k_d, dtype=np.int64) * (d_d * in_h * in_w)
        rows = np.arange(k_h, dtype=np.int64) * (d_h * in_w)
        cols = np.arange(k_w, dtype=np.int64) * d_w
        return (depths[:, None, None] + rows[None, :, None] + cols[None, None, :]).ravel()

    def _compute_column_taps(self):
        k_w, s_w, p_w, d_w, in_w, out_w = (self.k3[2], self.s3[2], self.p3[2], self.d3[2],
                                           self.in3[2], self.out3[2])
        offset = np.arange(k_w, dtype=np.int64) * d_w - p_w  # column of tap b at ow = 0
        col_lo = np.clip(-(offset // s_w), 0, out_w)  # ceil(-offset / s_w)
        col_hi = np.clip((in_w - 1 - offset) // s_w + 1, col_lo, out_w)
        start = np.arange(out_w, dtype=np.int64) * s_w - p_w
        first = np.where(start < 0, (-start + d_w - 1) // d_w, 0).astype(np.intc)
        return col_lo, col_hi, first

    def _tap_positions(self, dim):
        """(out, kernel) array: input position of tap j of window o along ``dim`` (0..2)."""
        o = np.arange(self.out3[dim], dtype=np.int64)
        j = np.arange(self.k3[dim], dtype=np.int64)
        return o[:, None] * self.s3[dim] - self.p3[dim] + j[None, :] * self.d3[dim]

    def avg_divisors(self, count_include_pad):
        """Per-dimension factors whose products are the average-pool divisors.

        The divisor of a window counts its taps (spaced by the dilation)
        that lie inside the input, or, with ``count_include_pad``, inside the
        *padded* input ``[-p, size + p)``: a tap beyond the right padding
        (possible in ceil mode) never counts. This is ONNX's reference
        AveragePool; without dilation it is PyTorch's
        ``min(start + k, size + p) - start`` (or the part inside the input).
        Computed once per geometry and ``count_include_pad``; read-only.
        """
        count_include_pad = bool(count_include_pad)
        if count_include_pad in self._divisors:
            return self._divisors[count_include_pad]
        factors = []
        for dim in range(3):
            size, p = self.in3[dim], self.p3[dim]
            pos = self._tap_positions(dim)
            if count_include_pad:
                inside = pos < size + p  # every tap starts at or after -p
            else:
                inside = (pos >= 0) & (pos < size)
            factors.append(_read_only(np.count_nonzero(inside, axis=1).astype(np.int64)))
        self._divisors[count_include_pad] = factors
        return factors

    def windows_of(self):
        """For each dimension, ``(ptr, idx)``: the windows holding input index i are
        ``idx[ptr[i]:ptr[i + 1]]``, ascending. With dilation they need not be
        contiguous. Computed once per geometry; the arrays are read-only.
        """
        if self._windows_of is None:
            lists = []
            for dim in range(3):
                size = self.in3[dim]
                pos = self._tap_positions(dim)
                o = np.broadcast_to(np.arange(pos.shape[0], dtype=np.int64)[:, None],
                                    pos.shape)
                keep = (pos >= 0) & (pos < size)
                pos, o = pos[keep], o[keep]
                order = np.lexsort((o, pos))
                ptr = np.zeros(size + 1, dtype=np.int64)
                np.cumsum(np.bincount(pos, minlength=size), out=ptr[1:])
                lists.append((_read_only(ptr), _read_only(np.ascontiguousarray(o[order]))))
            self._windows_of = tuple(lists)
        return self._windows_of


@functools.lru_cache(maxsize=256)
def _cached_geometry(*args):
    return _PoolGeometry(*args)


def _pool_geometry(in_spatial, kernel_size, stride, padding, dilation, ceil_mode, nd, func):
    """A _PoolGeometry, shared between calls with the same plain arguments.

    Building one costs ~50 us of Python, a fifth of a LeNet-sized max pool,
    and a training loop asks for the same few geometries again and again.
    """
    key = (tuple(in_spatial), plain_key(kernel_size), plain_key(stride), plain_key(padding),
           plain_key(dilation), ceil_mode if type(ceil_mode) is bool else UNCACHEABLE, nd, func)
    if UNCACHEABLE in key:
        return _PoolGeometry(in_spatial, kernel_size, stride, padding, dilation, ceil_mode, nd,
                             func)
    return _cached_geometry(*key)


def _index_array(indices, name, shape=None):
    if not isinstance(indices, np.ndarray):
        try:
            indices = np.asarray(indices)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be an integer array, got {type(indices).__name__}: "
                            f"{exc}") from None
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array (int64 switches), got dtype "
                        f"{indices.dtype}")
    if shape is not None and indices.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {indices.shape}")
    if indices.dtype.kind == "u" and indices.size and indices.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds a value above the int64 range")
    return np.ascontiguousarray(indices, dtype=np.int64)


def _check_index_range(indices, plane_size, name, plane_desc):
    """Every switch in [0, plane_size): one pass over the (planes, L) int64 array."""
    planes = indices.shape[0] * indices.shape[1]
    if indices.size == 0:
        return  # an empty batch: nothing to check
    lows = np.empty(planes, dtype=np.int64)
    highs = np.empty(planes, dtype=np.int64)
    # a plain streaming pass: below ~1M switches one thread beats waking a second
    _pool.index_bounds(indices.reshape(planes, -1), lows, highs,
                       _threads_for(indices.size // 2))
    low, high = int(lows.min()), int(highs.max())
    if low < 0 or high >= plane_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} holds {bad}, outside [0, {plane_size}): switches are flat indices into "
            f"a {plane_desc} plane")


def _shape_tuple(shape, nd, name):
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of {nd + 2} ints {_LAYOUTS[nd]}, got "
                        f"{type(shape).__name__}")
    if len(shape) != nd + 2:
        raise ValueError(f"{name} must have {nd + 2} entries {_LAYOUTS[nd]}, got {tuple(shape)}")
    # the batch may be empty (N = 0), as in PyTorch
    return (as_int(shape[0], name, 0),) + tuple(as_int(s, name, 1) for s in shape[1:])


def _float_input(x, nd, name="x"):
    (x,) = float_arrays(**{name: x})
    check_ndim(x, nd + 2, name, _LAYOUTS[nd])
    check_nonempty_sample(x.shape, name)
    return x


# --------------------------------------------------------------------------- max pooling


#: Max-pool calls already checked: (x's shape and dtype, the arguments as given,
#: the thread count) -> what the kernel call needs, so that a repeated call
#: (inference over many small inputs) skips the checks and the geometry's look-up.
_checked_max_pools = CheckedCalls()


def _max_pool_layout(shape, kernel_size, stride, padding, dilation, ceil_mode, nd):
    """(x3 shape, geometry, kernel arguments after ``switches``) for a checked input shape."""
    g = _pool_geometry(shape[2:], kernel_size, stride, padding, dilation, ceil_mode, nd,
                       f"max_pool{nd}d")
    args = (*g.kernel_args(), g.tap_offsets(), *g.column_taps(),
            _threads_for(math.prod(shape)))
    return (shape[0] * shape[1],) + g.in3, g, args


def _max_pool_call(x, kernel_size, stride, padding, dilation, ceil_mode, nd):
    """(x3, geometry, kernel arguments after ``switches``, (N, C)) of a max-pool call, checked once."""
    key = None
    if (type(x) is np.ndarray and x.dtype in FLOAT_DTYPES and x.flags.c_contiguous
            and type(ceil_mode) is bool):
        key = (x.shape, x.dtype.char, plain_key(kernel_size), plain_key(stride),
               plain_key(padding), plain_key(dilation), ceil_mode, nd, get_num_threads())
        if UNCACHEABLE in key:
            key = None
    if key is not None:
        known = _checked_max_pools.get(key)
        if known is not None:
            x3_shape, g, args = known
            return x.reshape(x3_shape), g, args, x.shape[:2]
    x = _float_input(x, nd)
    x3_shape, g, args = _max_pool_layout(x.shape, kernel_size, stride, padding, dilation,
                                         ceil_mode, nd)
    if key is not None:
        _checked_max_pools.put(key, (x3_shape, g, args))
    return np.ascontiguousarray(x).reshape(x3_shape), g, args, x.shape[:2]


def _max_pool_nd(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd):
    return_indices = _flag(return_indices, "return_indices")
    x3, g, args, (n, c) = _max_pool_call(x, kernel_size, stride, padding, dilation,
                                         ceil_mode, nd)
    planes = n * c
    out = np.empty((planes,) + g.out3, dtype=x3.dtype)
    # without return_indices the kernel writes no switches (the same values)
    switches = np.empty((planes,) + g.out3, dtype=np.int64) if return_indices else None
    _pool.max_pool_forward(x3, out, switches, *args)
    shape = (n, c) + g.out_spatial
    out = out.reshape(shape)
    if return_indices:
        return out, switches.reshape(shape)
    return out


def prepare_max_pool(input_shape, dtype, kernel_size, stride=None, padding=0, dilation=1,
                     ceil_mode=False):
    """A max pool's forward for one input shape and dtype, checked once: ``x -> out``.

    The arguments after ``dtype`` are those of :func:`max_pool2d`;
    ``input_shape`` (N, C, L), (N, C, H, W) or (N, C, D, H, W) says which
    of max_pool1d, 2d or 3d it is. Each call of the returned callable checks
    only that ``x`` is a C-contiguous ndarray of that shape and dtype
    (``TypeError`` otherwise) and returns the pooled values, the bits of
    ``max_pool2d(x, ...)`` without switches, for less per-call work: an
    eval-mode :class:`~pyxconv.nn.Sequential` runs its pooling layers so.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import prepare_max_pool
    >>> pool = prepare_max_pool((1, 1, 4, 4), np.float64, 2)
    >>> pool(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    if not isinstance(input_shape, tuple):
        raise TypeError(f"input_shape must be a tuple, got {type(input_shape).__name__}")
    nd = len(input_shape) - 2
    if nd not in (1, 2, 3):
        raise ValueError(f"input_shape must have 3, 4 or 5 entries (N, C, *spatial), got "
                         f"{input_shape}")
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    input_shape = _shape_tuple(input_shape, nd, "input_shape")  # sizes >= 1 but N >= 0
    x3_shape, g, args = _max_pool_layout(input_shape, kernel_size, stride, padding, dilation,
                                         _flag(ceil_mode, "ceil_mode"), nd)
    kernel = _pool.MaxPoolValues(dtype, x3_shape, x3_shape[:1] + g.out3, *args)
    out_shape = input_shape[:2] + g.out_spatial

    def forward(x):
        if getattr(x, "shape", None) != input_shape:
            raise TypeError(f"x must have shape {input_shape}, got {getattr(x, 'shape', None)}")
        out = np.empty(out_shape, dtype)
        kernel(x, out)  # checks the dtype and the layout
        return out
    return forward


def _max_pool_backward_nd(grad_out, indices, input_shape, nd):
    grad_out = _float_input(grad_out, nd, "grad_out")
    input_shape = _shape_tuple(input_shape, nd, "input_shape")
    indices = _index_array(indices, "indices", grad_out.shape)
    if grad_out.shape[:2] != input_shape[:2]:
        raise ValueError(
            f"grad_out has (N, C) = {grad_out.shape[:2]} but input_shape has "
            f"{input_shape[:2]}; they must match")
    return _place_at_switches(grad_out, indices, input_shape[2:],
                              "x".join(map(str, input_shape[2:])), _pool.max_pool_backward)


def _place_at_switches(values, indices, out_spatial, plane_desc, scatter_kernel):
    """Zeros of shape (N, C, *out_spatial) with ``values`` put at their switches.

    First try the dense path: when the output planes are tiled by
    non-overlapping windows (the output is a whole number of windows of the
    input's size, e.g. 2x2 stride 2 pooling) and every switch lies in its
    own window, as after a non-overlapping max pool, no two values meet and
    one gathered pass writes the result. Otherwise (overlapping windows, or
    switches from elsewhere) check the switches' range and run
    ``scatter_kernel``, which zeroes each plane and adds (backward) or
    writes (unpooling) into it. Both kernels write every element, into one
    array from ``np.empty``: with two large arrays alive at once (one from
    a failed dense attempt), glibc gave their memory back to the system
    after every call, and the page faults of fresh memory then cost more
    than the scatter (25 MB at 2 threads: 15 ms instead of 3).
    """
    n, c = values.shape[:2]
    if n == 0:  # an empty batch
        return np.zeros((n, c) + tuple(out_spatial), values.dtype)
    planes = n * c
    plane = math.prod(out_spatial)
    values = np.ascontiguousarray(values)
    out = np.empty((n, c) + tuple(out_spatial), dtype=values.dtype)
    # The dense path is written for planes of rows; 3-D pooling takes the general one.
    fill = 2 - len(out_spatial)
    small = (1,) * fill + values.shape[2:]
    big = (1,) * fill + tuple(out_spatial)
    tile = tuple(b // s for b, s in zip(big, small))
    if len(out_spatial) <= 2 and min(tile) >= 1:
        misses = _pool.scatter_into_tiles(values.reshape((planes,) + small),
                                          indices.reshape((planes,) + small),
                                          out.reshape((planes,) + big), *tile,
                                          _threads_for(out.size))
        if misses == 0:
            return out
    _check_index_range(indices, plane, "indices", plane_desc)
    scatter_kernel(values.reshape(planes, -1), indices.reshape(planes, -1),
                   out.reshape(planes, plane), _threads_for(out.size))
    return out


_MAX_NOTES = """
    Along each spatial dimension the output size is PyTorch's

    .. math::

        n_{out} = \\left\\lfloor \\frac{n_{in} + 2p - d\\,(k - 1) - 1 + e}{s}
                  \\right\\rfloor + 1

    with kernel size :math:`k`, stride :math:`s` (default :math:`k`), padding
    :math:`p`, dilation :math:`d`, and :math:`e = s - 1` in ceil mode (else 0).
    In ceil mode the last window is dropped if it would start in the right
    padding. It is the lectures' :math:`(N - F + 2P)/S + 1`; 2x2 pooling in
    ceil mode gives their :math:`\\lceil W/2 \\rceil` (WE-33).

    Padding acts as :math:`-\\infty`: it is never picked. PyTorch requires
    ``padding <= kernel_size // 2``; here, as in ONNX and TensorFlow, it may
    be wider as long as every window holds at least one input element. A
    window falling entirely on padding (wide padding, or dilated taps that
    straddle the input) raises ``ValueError``, where PyTorch would return
    -inf with a switch outside the input. Ties keep the first maximum in
    row-major scan order; a window holding NaN outputs NaN, with its switch
    on the (last) NaN, as PyTorch does.

    Switches are int64 flat indices into each input plane, ``ih * W + iw``
    (``il`` in 1-D, ``(id * H + ih) * W + iw`` in 3-D), PyTorch's
    ``return_indices=True`` convention.

    Dtypes: float32 (fast path) and float64 are kept; integer and bool inputs
    become float64.
"""

_MAX_RAISES = """Raises
    ------
    ValueError
        Wrong number of dimensions, an empty input, kernel or stride below 1,
        negative padding, an output {size} below 1, or a window holding only
        padding.
    TypeError
        Complex, object or string arrays, non-integer sizes."""

_MAX_PARAMS = """kernel_size : int or tuple of ints
        Window size along each spatial dimension.
    stride : int or tuple of ints, optional
        Step of the window; defaults to ``kernel_size`` (non-overlapping).
    padding : int or tuple of ints, default 0
        Implicit :math:`-\\infty` added on both sides. Wider than
        ``kernel_size // 2`` is allowed while every window keeps an input
        element.
    dilation : int or tuple of ints, default 1
        Spacing between window taps.
    ceil_mode : bool, default False
        Round the output size up instead of down, so a partial window at the
        end (within the padded input) still gives an output.
    return_indices : bool, default False
        Also return the switches. Without them the kernel writes none (the
        values are the same, bit for bit)."""


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool_nd(x, kernel_size, stride, padding, dilation, ceil_mode,
                        return_indices, 1)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool_nd(x, kernel_size, stride, padding, dilation, ceil_mode,
                        return_indices, 2)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool_nd(x, kernel_size, stride, padding, dilation, ceil_mode,
                        return_indices, 3)


max_pool1d.__doc__ = f"""1-D max pooling of a batch of sequences, with optional switches.

    Parameters
    ----------
    x : ndarray of shape (N, C, L)
        Input batch.
    {_MAX_PARAMS}

    Returns
    -------
    out : ndarray of shape (N, C, L_out)
        The maximum of each window.
    indices : ndarray of int64, shape (N, C, L_out)
        Only with ``return_indices=True``: the position ``l`` in the input
        sequence of each maximum.

    {_MAX_RAISES.format(size='length')}

    Notes
    -----{_MAX_NOTES}
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import max_pool1d
    >>> x = np.array([[[1, 5, 2, 2, 7, 3]]])
    >>> out, idx = max_pool1d(x, 2, return_indices=True)
    >>> out
    array([[[5., 2., 7.]]])
    >>> idx
    array([[[1, 2, 4]]])
    """

max_pool2d.__doc__ = f"""2-D max pooling of a batch of images, with optional switches.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input batch.
    {_MAX_PARAMS}

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out)
        The maximum of each window, channel by channel.
    indices : ndarray of int64, shape (N, C, H_out, W_out)
        Only with ``return_indices=True``: the switches, flat indices
        ``ih * W + iw`` into each input plane.

    {_MAX_RAISES.format(size='size')}

    Notes
    -----{_MAX_NOTES}
    Examples
    --------
    Lecture 003's 2x2, stride 2 max pool (WE-29). The switches sit at (0, 0),
    (1, 3), (2, 0) and (2, 3) of the 4x4 map, flat ``[[0, 7], [8, 11]]``:

    >>> import numpy as np
    >>> from pyxconv.functional import max_pool2d
    >>> x = np.array([[4, 1, -3, 1],
    ...               [2, 0, -2, 3],
    ...               [4, 2, -1, 2],
    ...               [2, 1, -1, 0]]).reshape(1, 1, 4, 4)
    >>> out, idx = max_pool2d(x, 2, stride=2, return_indices=True)
    >>> out[0, 0]
    array([[4., 3.],
           [4., 2.]])
    >>> idx[0, 0]
    array([[ 0,  7],
           [ 8, 11]])

    Lecture 004's example (WE-32) gives ``[[6, 8], [3, 4]]``:

    >>> x = np.array([[1, 1, 2, 4],
    ...               [5, 6, 7, 8],
    ...               [3, 2, 1, 0],
    ...               [1, 2, 3, 4]]).reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2)[0, 0]
    array([[6., 8.],
           [3., 4.]])

    Ceil mode gives the lectures' :math:`\\lceil W/2 \\rceil` (WE-33):

    >>> max_pool2d(np.zeros((1, 1, 5, 7)), 2, ceil_mode=True).shape
    (1, 1, 3, 4)
    """


max_pool3d.__doc__ = f"""3-D max pooling of a batch of volumes (NCDHW), with optional switches.

    Parameters
    ----------
    x : ndarray of shape (N, C, D, H, W)
        Input batch.
    {_MAX_PARAMS}

    Returns
    -------
    out : ndarray of shape (N, C, D_out, H_out, W_out)
        The maximum of each window, channel by channel.
    indices : ndarray of int64, shape (N, C, D_out, H_out, W_out)
        Only with ``return_indices=True``: the switches, flat indices
        ``(id * H + ih) * W + iw`` into each input volume, as
        ``torch.nn.functional.max_pool3d`` gives them.

    {_MAX_RAISES.format(size='size')}

    Notes
    -----{_MAX_NOTES}
    The window is scanned depth by depth, each depth slice row by row, so on
    ties the first maximum in ``(d, h, w)`` order wins, as in PyTorch.

    Examples
    --------
    Two 2x2x2 windows over a 2x2x4 volume. Their maxima, 9 at (d, h, w) =
    (1, 0, 0) and 15 at (1, 0, 2), have the switches ``(1 * 2 + 0) * 4 + 0
    = 8`` and ``(1 * 2 + 0) * 4 + 2 = 10``:

    >>> import numpy as np
    >>> from pyxconv.functional import max_pool3d
    >>> x = np.array([[[0, 1, 2, 3], [4, 5, 6, 7]],
    ...               [[9, 8, 15, 1], [2, 3, 4, 5]]]).reshape(1, 1, 2, 2, 4)
    >>> out, idx = max_pool3d(x, 2, return_indices=True)
    >>> out.ravel(), idx.ravel()
    (array([ 9., 15.]), array([ 8, 10]))
    """


def max_pool1d_backward(grad_out, indices, input_shape):
    return _max_pool_backward_nd(grad_out, indices, input_shape, 1)


def max_pool2d_backward(grad_out, indices, input_shape):
    return _max_pool_backward_nd(grad_out, indices, input_shape, 2)


def max_pool3d_backward(grad_out, indices, input_shape):
    return _max_pool_backward_nd(grad_out, indices, input_shape, 3)


_MAX_BACKWARD_DOC = """Gradient of :func:`{name}` with respect to its input, routed through the switches.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C, {out})
        Gradient of the loss with respect to the pooled output.
    indices : int ndarray of shape (N, C, {out})
        The switches returned by ``{name}(..., return_indices=True)``.
    input_shape : tuple of ints (N, C, {inp})
        Shape of the forward input.

    Returns
    -------
    grad_x : ndarray of shape (N, C, {inp})
        Zero everywhere except at the switches, which receive the gradient of
        every window they won (a sum where overlapping windows share one
        maximum, as with 3x3 windows at stride 2).

    Raises
    ------
    ValueError
        If ``indices`` and ``grad_out`` differ in shape, ``(N, C)`` differs
        from ``input_shape``, or a switch lies outside the input plane.
    TypeError
        If ``indices`` is not an integer array.

    Notes
    -----
    The maximum :math:`y = \\max_j x_j` has :math:`\\partial y / \\partial x_j
    = 1` at the winning :math:`j` and 0 elsewhere, so the upstream gradient
    goes to the switch only. The sums are made plane by plane, each plane by
    one thread in a fixed order, so the result does not depend on the number
    of threads.

    Examples
    --------
    {example}
    """

max_pool1d_backward.__doc__ = _MAX_BACKWARD_DOC.format(
    name="max_pool1d", out="L_out", inp="L",
    example=""">>> import numpy as np
    >>> from pyxconv.functional import max_pool1d, max_pool1d_backward
    >>> x = np.array([[[1, 5, 2, 2, 7, 3]]])
    >>> out, idx = max_pool1d(x, 2, return_indices=True)
    >>> max_pool1d_backward(np.array([[[10, 20, 30]]]), idx, x.shape)
    array([[[ 0., 10., 20.,  0., 30.,  0.]]])""")

max_pool2d_backward.__doc__ = _MAX_BACKWARD_DOC.format(
    name="max_pool2d", out="H_out, W_out", inp="H, W",
    example="""WE-29's switches route an upstream gradient ``[[1, 2], [3, 4]]`` to
    (0, 0), (1, 3), (2, 0) and (2, 3):

    >>> import numpy as np
    >>> from pyxconv.functional import max_pool2d, max_pool2d_backward
    >>> x = np.array([[4, 1, -3, 1],
    ...               [2, 0, -2, 3],
    ...               [4, 2, -1, 2],
    ...               [2, 1, -1, 0]]).reshape(1, 1, 4, 4)
    >>> out, idx = max_pool2d(x, 2, return_indices=True)
    >>> g = np.array([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    >>> max_pool2d_backward(g, idx, x.shape)[0, 0]
    array([[1., 0., 0., 0.],
           [0., 0., 0., 2.],
           [3., 0., 0., 4.],
           [0., 0., 0., 0.]])""")


max_pool3d_backward.__doc__ = _MAX_BACKWARD_DOC.format(
    name="max_pool3d", out="D_out, H_out, W_out", inp="D, H, W",
    example="""The gradient of each 2x2x2 window goes to its maximum, 9 and 15:

    >>> import numpy as np
    >>> from pyxconv.functional import max_pool3d, max_pool3d_backward
    >>> x = np.array([[[0, 1, 2, 3], [4, 5, 6, 7]],
    ...               [[9, 8, 15, 1], [2, 3, 4, 5]]]).reshape(1, 1, 2, 2, 4)
    >>> out, idx = max_pool3d(x, 2, return_indices=True)
    >>> g = np.array([10.0, 20.0]).reshape(1, 1, 1, 1, 2)
    >>> max_pool3d_backward(g, idx, x.shape)[0, 0]
    array([[[ 0.,  0.,  0.,  0.],
            [ 0.,  0.,  0.,  0.]],
    <BLANKLINE>
           [[10.,  0., 20.,  0.],
            [ 0.,  0.,  0.,  0.]]])""")


# ------------------------------------------------------------------------------ unpooling


def _unpool_output_spatial(in_spatial, kernel, stride, padding, output_size, nd, func):
    default = tuple((i - 1) * s + k - 2 * p
                    for i, k, s, p in zip(in_spatial, kernel, stride, padding))
    if output_size is None:
        for d, name in zip(default, SPATIAL_DIM_NAMES[nd]):
            if d < 1:
                raise ValueError(
                    f"{func}: the default output {name} (in - 1) * stride + kernel_size - "
                    f"2 * padding is {d} < 1; pass output_size")
        return default
    if isinstance(output_size, np.ndarray) or not isinstance(output_size, (list, tuple)):
        raise TypeError(f"output_size must be a tuple of {nd} ints (or {nd + 2} with N, C), "
                        f"got {output_size!r}")
    if len(output_size) == nd + 2:
        output_size = tuple(output_size)[2:]
    if len(output_size) != nd:
        raise ValueError(f"output_size must have {nd} entries (or {nd + 2}), got "
                         f"{tuple(output_size)!r}")
    sizes = tuple(as_int(v, "output_size", 1) for v in output_size)
    for dim, (o, d, s) in enumerate(zip(sizes, default, stride)):
        if not d - s < o < d + s:
            raise ValueError(
                f"{func}: invalid output_size {sizes}: dimension {dim} must be strictly "
                f"between {d - s} and {d + s} (the default size {d} +- stride {s})")
    return sizes


def _max_unpool_nd(x, indices, kernel_size, stride, padding, output_size, nd):
    func = f"max_unpool{nd}d"
    x = _float_input(x, nd)
    indices = _index_array(indices, "indices", x.shape)
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    stride = _resolve_stride(stride, kernel, nd)
    padding = int_tuple(padding, nd, "padding", 0)
    out_spatial = _unpool_output_spatial(x.shape[2:], kernel, stride, padding, output_size,
                                         nd, func)
    return _place_at_switches(x, indices, out_spatial,
                              "x".join(map(str, out_spatial)) + " output", _pool.max_unpool)


_UNPOOL_NOTES = """
    Unpooling is the partial inverse of max pooling: every pooled value goes
    back to the place it was taken from and everything else is zero, so
    ``max_unpool(max_pool(x))`` keeps exactly the maxima of ``x``. The
    deconvnet uses it to project a feature map back to the input space.

    The default output size along each dimension is
    ``(n_in - 1) * stride - 2 * padding + kernel_size``; ``output_size``
    chooses another one strictly within ``stride`` of it (needed, for
    instance, to restore an odd size pooled in floor mode), as in PyTorch.

    Where switches repeat (overlapping windows that share a maximum), the
    later one in row-major order of ``x`` wins, as in PyTorch; the writes
    are made plane by plane in a fixed order, so the result does not depend
    on the number of threads.
"""


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool_nd(x, indices, kernel_size, stride, padding, output_size, 1)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool_nd(x, indices, kernel_size, stride, padding, output_size, 2)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool_nd(x, indices, kernel_size, stride, padding, output_size, 3)


_UNPOOL_DOC = """Put each pooled value back at its switch: the partial inverse of :func:`{pool}`.

    Parameters
    ----------
    x : ndarray of shape (N, C, {small})
        Pooled values.
    indices : int ndarray of shape (N, C, {small})
        Switches from ``{pool}(..., return_indices=True)``: flat indices into
        each output plane.
    kernel_size, stride, padding : int or tuple of ints
        As given to :func:`{pool}` (``stride`` defaults to ``kernel_size``).
    output_size : tuple of ints, optional
        ``({big})``, or the full shape ``(N, C, {big})``.

    Returns
    -------
    out : ndarray of shape (N, C, {big})
        Zero except at the switches.

    Raises
    ------
    ValueError
        If ``indices`` does not have the shape of ``x``, a switch lies
        outside the output plane, or ``output_size`` is not within ``stride``
        of the default size.
    TypeError
        If ``indices`` is not an integer array, or for complex, object or
        string inputs.

    Notes
    -----{notes}
    Examples
    --------
    {example}
    """

max_unpool1d.__doc__ = _UNPOOL_DOC.format(
    pool="max_pool1d", small="L_in", big="L_out", notes=_UNPOOL_NOTES,
    example=""">>> import numpy as np
    >>> from pyxconv.functional import max_pool1d, max_unpool1d
    >>> x = np.array([[[1, 5, 2, 2, 7, 3]]])
    >>> out, idx = max_pool1d(x, 2, return_indices=True)
    >>> max_unpool1d(out, idx, 2)
    array([[[0., 5., 2., 0., 7., 0.]]])""")

max_unpool2d.__doc__ = _UNPOOL_DOC.format(
    pool="max_pool2d", small="H_in, W_in", big="H_out, W_out", notes=_UNPOOL_NOTES,
    example="""WE-32 pooled and unpooled: only the maxima 6, 8, 3 and 4 survive, each
    where it came from.

    >>> import numpy as np
    >>> from pyxconv.functional import max_pool2d, max_unpool2d
    >>> x = np.array([[1, 1, 2, 4],
    ...               [5, 6, 7, 8],
    ...               [3, 2, 1, 0],
    ...               [1, 2, 3, 4]]).reshape(1, 1, 4, 4)
    >>> out, idx = max_pool2d(x, 2, return_indices=True)
    >>> idx[0, 0]
    array([[ 5,  7],
           [ 8, 15]])
    >>> max_unpool2d(out, idx, 2)[0, 0]
    array([[0., 0., 0., 0.],
           [0., 6., 0., 8.],
           [3., 0., 0., 0.],
           [0., 0., 0., 4.]])""")


max_unpool3d.__doc__ = _UNPOOL_DOC.format(
    pool="max_pool3d", small="D_in, H_in, W_in", big="D_out, H_out, W_out",
    notes=_UNPOOL_NOTES,
    example="""Only the maxima of the two 2x2x2 windows, 9 and 15, come back:

    >>> import numpy as np
    >>> from pyxconv.functional import max_pool3d, max_unpool3d
    >>> x = np.array([[[0, 1, 2, 3], [4, 5, 6, 7]],
    ...               [[9, 8, 15, 1], [2, 3, 4, 5]]]).reshape(1, 1, 2, 2, 4)
    >>> out, idx = max_pool3d(x, 2, return_indices=True)
    >>> max_unpool3d(out, idx, 2)[0, 0]
    array([[[ 0.,  0.,  0.,  0.],
            [ 0.,  0.,  0.,  0.]],
    <BLANKLINE>
           [[ 9.,  0., 15.,  0.],
            [ 0.,  0.,  0.,  0.]]])""")


def _max_unpool_backward_nd(grad_out, indices, nd):
    grad_out = _float_input(grad_out, nd, "grad_out")
    indices = _index_array(indices, "indices")
    check_ndim(indices, nd + 2, "indices", _LAYOUTS[nd])
    if indices.shape[:2] != grad_out.shape[:2]:
        raise ValueError(f"indices has (N, C) = {indices.shape[:2]} but grad_out has "
                         f"{grad_out.shape[:2]}; they must match")
    check_nonempty_sample(indices.shape, "indices")
    plane = math.prod(grad_out.shape[2:])
    _check_index_range(indices, plane, "indices",
                       "x".join(map(str, grad_out.shape[2:])) + " output")
    planes = grad_out.shape[0] * grad_out.shape[1]
    if planes == 0:  # an empty batch
        return np.zeros(indices.shape, grad_out.dtype)
    gathered = np.take_along_axis(grad_out.reshape(planes, plane),
                                  indices.reshape(planes, -1), axis=1)
    return gathered.reshape(indices.shape)


def max_unpool1d_backward(grad_out, indices):
    return _max_unpool_backward_nd(grad_out, indices, 1)


def max_unpool2d_backward(grad_out, indices):
    return _max_unpool_backward_nd(grad_out, indices, 2)


def max_unpool3d_backward(grad_out, indices):
    return _max_unpool_backward_nd(grad_out, indices, 3)


_UNPOOL_BACKWARD_DOC = """Gradient of :func:`{unpool}` with respect to its input ``x``.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C, {big})
        Gradient of the loss with respect to the unpooled output.
    indices : int ndarray of shape (N, C, {small})
        The switches given to :func:`{unpool}`.

    Returns
    -------
    grad_x : ndarray of shape (N, C, {small})
        ``grad_out`` read at each switch (a gather). Where switches repeat,
        every copy gets the gradient of that position, as in PyTorch's
        autograd.

    Raises
    ------
    ValueError
        If the shapes do not match or a switch lies outside the output plane.
    TypeError
        If ``indices`` is not an integer array.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import {unpool}_backward
    >>> {example}
    """

max_unpool1d_backward.__doc__ = _UNPOOL_BACKWARD_DOC.format(
    unpool="max_unpool1d", big="L_out", small="L_in",
    example="""max_unpool1d_backward(np.arange(6).reshape(1, 1, 6), np.array([[[1, 2, 4]]]))
    array([[[1., 2., 4.]]])""")

max_unpool2d_backward.__doc__ = _UNPOOL_BACKWARD_DOC.format(
    unpool="max_unpool2d", big="H_out, W_out", small="H_in, W_in",
    example="""g = np.arange(16).reshape(1, 1, 4, 4)
    >>> max_unpool2d_backward(g, np.array([[[[5, 7], [8, 15]]]]))[0, 0]
    array([[ 5.,  7.],
           [ 8., 15.]])""")


max_unpool3d_backward.__doc__ = _UNPOOL_BACKWARD_DOC.format(
    unpool="max_unpool3d", big="D_out, H_out, W_out", small="D_in, H_in, W_in",
    example="""g = np.arange(16).reshape(1, 1, 2, 2, 4)
    >>> max_unpool3d_backward(g, np.array([[[[[8, 10]]]]])).ravel()
    array([ 8., 10.])""")


# ------------------------------------------------------------------------ average pooling


def _plane_mean(x):
    """(N, C, 1, 1) (or (N, C, 1)) means of each plane of a validated input."""
    n, c = x.shape[:2]
    out = np.empty(n * c, dtype=x.dtype)
    if n == 0:
        return out.reshape((n, c) + (1,) * (x.ndim - 2))
    _pool.plane_mean(np.ascontiguousarray(x).reshape(n * c, -1), out, _threads_for(x.size))
    return out.reshape((n, c) + (1,) * (x.ndim - 2))


def _spread_evenly(grad_out, input_shape):
    """Gradient of the plane mean: grad_out / plane size, rounded in grad_out's dtype."""
    grad_x = np.empty(input_shape, dtype=grad_out.dtype)
    grad_x[...] = grad_out / np.asarray(math.prod(input_shape[2:]), dtype=grad_out.dtype)
    return grad_x


def _avg_geometry(in_spatial, kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override, dilation, nd, func):
    g = _pool_geometry(in_spatial, kernel_size, stride, padding, dilation, ceil_mode, nd, func)
    count_include_pad = _flag(count_include_pad, "count_include_pad")
    if divisor_override is None:
        override = 0
    else:
        override = as_int(divisor_override, "divisor_override")
        if override == 0:
            raise ValueError("divisor_override must be a non-zero integer, got 0")
    return g, g.avg_divisors(count_include_pad), override


def _avg_pool_nd(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                 divisor_override, dilation, nd):
    func = f"avg_pool{nd}d"
    x = _float_input(x, nd)
    g, divs, override = _avg_geometry(x.shape[2:], kernel_size, stride, padding, ceil_mode,
                                      count_include_pad, divisor_override, dilation, nd, func)
    n, c = x.shape[:2]
    if g.covers_each_plane() and not override:
        # one window covering each plane: the global average pool
        return _plane_mean(x).reshape((n, c) + g.out_spatial)
    planes = n * c
    out = np.empty((planes,) + g.out3, dtype=x.dtype)
    n_threads = _threads_for(x.size)
    _pool.avg_pool_forward(np.ascontiguousarray(x).reshape((planes,) + g.in3), out,
                           *g.kernel_args(), *divs, override, n_threads)
    return out.reshape((n, c) + g.out_spatial)


def _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override, dilation, nd):
    func = f"avg_pool{nd}d_backward"
    grad_out = _float_input(grad_out, nd, "grad_out")
    input_shape = _shape_tuple(input_shape, nd, "input_shape")
    g, (div_d, div_h, div_w), override = _avg_geometry(
        input_shape[2:], kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override, dilation, nd, func)
    expected = tuple(input_shape[:2]) + g.out_spatial
    if grad_out.shape != expected:
        raise ValueError(f"grad_out must have the forward output's shape {expected}, got "
                         f"{grad_out.shape}")
    n, c = input_shape[:2]
    if g.covers_each_plane() and not override:
        return _spread_evenly(grad_out, input_shape)
    planes = n * c
    dtype = grad_out.dtype
    # grad_out / divisor, rounded in the gradient's dtype as PyTorch does
    divisor = (np.asarray(override, dtype) if override
               else (div_d[:, None, None] * div_h[None, :, None]
                     * div_w[None, None, :]).astype(dtype))
    scaled = np.ascontiguousarray(grad_out.reshape((planes,) + g.out3) / divisor, dtype=dtype)
    (d_ptr, d_idx), (h_ptr, h_idx), (w_ptr, w_idx) = g.windows_of()
    grad_x = np.empty((planes,) + g.in3, dtype=dtype)
    n_threads = _threads_for(grad_x.size)
    width = np.diff(w_ptr)
    single = bool((width <= 1).all())  # no input column lies in two windows
    ow_pick = np.full(g.in3[2], g.out3[2], dtype=np.int64)
    if single:
        ow_pick[width == 1] = w_idx
    _pool.avg_pool_backward(scaled, grad_x, d_ptr, d_idx, h_ptr, h_idx, w_ptr, w_idx,
                            ow_pick, single, n_threads)
    return grad_x.reshape(input_shape)


_AVG_NOTES = """
    Output sizes follow PyTorch's rule, as for max pooling (see
    :func:`max_pool2d`), dilation included.

    The divisor of a window counts its taps (``kernel_size`` of them per
    dimension, spaced by ``dilation``) that fall inside the input or, with
    ``count_include_pad``, inside the *padded* input: zero padding counts,
    a ceil-mode overhang beyond the padding does not. Without dilation this
    is PyTorch's divisor; with dilation (which PyTorch's average pooling
    lacks) it is ONNX's reference ``AveragePool`` (opset 19), which counts
    the taps the same way. ``divisor_override`` replaces both. Sums are
    accumulated in float64.

    Padding may exceed ``kernel_size // 2`` (PyTorch's limit), as ONNX and
    TensorFlow allow, as long as every window holds at least one input
    element; otherwise ``ValueError`` names the window.
"""

_AVG_PARAMS = """kernel_size : int or tuple of ints
        Window size along each spatial dimension.
    stride : int or tuple of ints, optional
        Step of the window; defaults to ``kernel_size``.
    padding : int or tuple of ints, default 0
        Implicit zeros on both sides. Wider than ``kernel_size // 2`` is
        allowed while every window keeps an input element.
    ceil_mode : bool, default False
        Round the output size up instead of down.
    count_include_pad : bool, default True
        Count the zero padding in the divisor."""

_AVG_DILATION = """dilation : int or tuple of ints, default 1
        Spacing between window taps (ONNX's ``dilations``; not in PyTorch)."""

_AVG_RAISES = """Raises
    ------
    ValueError
        Wrong number of dimensions, an empty input, kernel, stride or
        dilation below 1, negative padding, an output size below 1, a window
        holding only padding, or ``divisor_override=0``.
    TypeError
        Complex, object or string arrays, non-integer sizes."""


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, dilation=1):
    return _avg_pool_nd(x, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                        dilation, 1)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, dilation=1):
    return _avg_pool_nd(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override, dilation, 2)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, dilation=1):
    return _avg_pool_nd(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override, dilation, 3)


avg_pool1d.__doc__ = f"""1-D average pooling of a batch of sequences.

    Parameters
    ----------
    x : ndarray of shape (N, C, L)
        Input batch.
    {_AVG_PARAMS}
    {_AVG_DILATION}

    Returns
    -------
    out : ndarray of shape (N, C, L_out)

    {_AVG_RAISES}

    Notes
    -----{_AVG_NOTES}
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import avg_pool1d
    >>> x = np.array([[[1, 5, 2, 2, 7, 3]]])
    >>> avg_pool1d(x, 2)
    array([[[3., 2., 5.]]])

    With padding, the first window (padding, 1, 5) divides by 3 or, without
    counting the padding, by 2:

    >>> avg_pool1d(x, 3, stride=2, padding=1)
    array([[[2., 3., 4.]]])
    >>> avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False)
    array([[[3., 3., 4.]]])

    Dilation 2 averages every other element, (1 + 2) / 2, (5 + 2) / 2, ...:

    >>> avg_pool1d(x, 2, stride=1, dilation=2)
    array([[[1.5, 3.5, 4.5, 2.5]]])
    """

avg_pool2d.__doc__ = f"""2-D average pooling of a batch of images.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input batch.
    {_AVG_PARAMS}
    divisor_override : int, optional
        Divide every window sum by this number instead.
    {_AVG_DILATION}

    Returns
    -------
    out : ndarray of shape (N, C, H_out, W_out)

    {_AVG_RAISES}

    Notes
    -----{_AVG_NOTES}
    Examples
    --------
    WE-32's input, averaged over 2x2 windows instead of maximised:

    >>> import numpy as np
    >>> from pyxconv.functional import avg_pool2d
    >>> x = np.array([[1, 1, 2, 4],
    ...               [5, 6, 7, 8],
    ...               [3, 2, 1, 0],
    ...               [1, 2, 3, 4]]).reshape(1, 1, 4, 4)
    >>> avg_pool2d(x, 2)[0, 0]
    array([[3.25, 5.25],
           [2.  , 2.  ]])

    A dilated 2x2 window takes the four corners of each 3x3 block; the
    top-left one averages 1, 2, 3 and 1:

    >>> avg_pool2d(x, 2, stride=1, dilation=2)[0, 0]
    array([[1.75, 1.75],
           [4.  , 5.  ]])
    """

avg_pool3d.__doc__ = f"""3-D average pooling of a batch of volumes (NCDHW).

    Parameters
    ----------
    x : ndarray of shape (N, C, D, H, W)
        Input batch.
    {_AVG_PARAMS}
    divisor_override : int, optional
        Divide every window sum by this number instead.
    {_AVG_DILATION}

    Returns
    -------
    out : ndarray of shape (N, C, D_out, H_out, W_out)

    {_AVG_RAISES}

    Notes
    -----{_AVG_NOTES}
    Examples
    --------
    A 2x2x2 cube of 0..7 averages to 3.5; padding 1 with
    ``count_include_pad=False`` gives each corner element its own window:

    >>> import numpy as np
    >>> from pyxconv.functional import avg_pool3d
    >>> x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> avg_pool3d(x, 2)
    array([[[[[3.5]]]]])
    >>> avg_pool3d(x, 2, padding=1, count_include_pad=False)[0, 0, 0]
    array([[0., 1.],
           [2., 3.]])
    """


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, dilation=1):
    return _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, None, dilation, 1)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        dilation=1):
    return _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, divisor_override, dilation, 2)


def avg_pool3d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        dilation=1):
    return _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, divisor_override, dilation, 3)


_AVG_BACKWARD_DOC = """Gradient of :func:`{name}` with respect to its input.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C, {out})
        Gradient of the loss with respect to the pooled output.
    input_shape : tuple of ints (N, C, {inp})
        Shape of the forward input.
    kernel_size, stride, padding, ceil_mode, count_include_pad{extra}, dilation
        As given to the forward call.

    Returns
    -------
    grad_x : ndarray of shape (N, C, {inp})
        Each input element receives ``grad_out / divisor`` of every window
        that contains it (with dilation, every window one of whose taps it is).

    Raises
    ------
    ValueError
        If ``grad_out`` does not have the forward output's shape, or for any
        argument the forward call would reject.

    Notes
    -----
    Each input element gathers the contributions of the windows holding it
    (no scatter), in a fixed order, so the result does not depend on the
    number of threads.

    Examples
    --------
    {example}
    """

avg_pool1d_backward.__doc__ = _AVG_BACKWARD_DOC.format(
    name="avg_pool1d", out="L_out", inp="L", extra="",
    example=""">>> import numpy as np
    >>> from pyxconv.functional import avg_pool1d_backward
    >>> avg_pool1d_backward(np.array([[[2, 4, 6]]]), (1, 1, 6), 2)
    array([[[1., 1., 2., 2., 3., 3.]]])

    With dilation 2 the windows interleave: window 0 holds elements 0 and 2,
    window 1 holds 1 and 3.

    >>> avg_pool1d_backward(np.array([[[2, 4]]]), (1, 1, 4), 2, stride=1, dilation=2)
    array([[[1., 2., 1., 2.]]])""")

avg_pool2d_backward.__doc__ = _AVG_BACKWARD_DOC.format(
    name="avg_pool2d", out="H_out, W_out", inp="H, W", extra=", divisor_override",
    example="""Overlapping 2x2 windows at stride 1: the centre of a 3x3 map lies in
    all four windows.

    >>> import numpy as np
    >>> from pyxconv.functional import avg_pool2d_backward
    >>> avg_pool2d_backward(np.ones((1, 1, 2, 2)), (1, 1, 3, 3), 2, stride=1)[0, 0]
    array([[0.25, 0.5 , 0.25],
           [0.5 , 1.  , 0.5 ],
           [0.25, 0.5 , 0.25]])""")

avg_pool3d_backward.__doc__ = _AVG_BACKWARD_DOC.format(
    name="avg_pool3d", out="D_out, H_out, W_out", inp="D, H, W", extra=", divisor_override",
    example="""One 2x2x2 window: each of its 8 elements gets an eighth of the gradient.

    >>> import numpy as np
    >>> from pyxconv.functional import avg_pool3d_backward
    >>> avg_pool3d_backward(np.full((1, 1, 1, 1, 1), 8.0), (1, 1, 2, 2, 2), 2).ravel()
    array([1., 1., 1., 1., 1., 1., 1., 1.])""")


def global_avg_pool2d(x):
    """Average of each channel over the whole plane: GoogLeNet's final 7x7 average pool.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)

    Returns
    -------
    out : ndarray of shape (N, C, 1, 1)
        ``x.mean(axis=(2, 3), keepdims=True)``, summed in float64; the same as
        ``avg_pool2d(x, (H, W))`` (up to rounding) and PyTorch's
        ``adaptive_avg_pool2d(x, 1)``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D or is empty.
    TypeError
        Complex, object or string arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import global_avg_pool2d
    >>> x = np.array([[1, 1, 2, 4],
    ...               [5, 6, 7, 8],
    ...               [3, 2, 1, 0],
    ...               [1, 2, 3, 4]]).reshape(1, 1, 4, 4)
    >>> global_avg_pool2d(x)
    array([[[[3.125]]]])
    """
    x = _float_input(x, 2)
    return _plane_mean(x)


def global_avg_pool2d_backward(grad_out, input_shape):
    """Gradient of :func:`global_avg_pool2d`: ``grad_out / (H * W)`` spread over each plane.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C, 1, 1)
    input_shape : tuple of ints (N, C, H, W)

    Returns
    -------
    grad_x : ndarray of shape (N, C, H, W)

    Raises
    ------
    ValueError
        If ``grad_out`` does not have shape (N, C, 1, 1) for the given input.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import global_avg_pool2d_backward
    >>> global_avg_pool2d_backward(np.full((1, 1, 1, 1), 8.0), (1, 1, 2, 4))[0, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    grad_out = _float_input(grad_out, 2, "grad_out")
    input_shape = _shape_tuple(input_shape, 2, "input_shape")
    n, c, h, w = input_shape
    if grad_out.shape != (n, c, 1, 1):
        raise ValueError(f"grad_out must have the forward output's shape {(n, c, 1, 1)}, got "
                         f"{grad_out.shape}")
    return _spread_evenly(grad_out, input_shape)


# ----------------------------------------------------------------------- global max pooling


def global_max_pool2d(x, return_indices=False):
    """Maximum of each channel over the whole plane, ONNX's GlobalMaxPool.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    return_indices : bool, default False
        Also return the switches: the flat index ``h * W + w`` of each
        maximum within its plane, the first one on ties (PyTorch's
        ``adaptive_max_pool2d(x, 1, return_indices=True)`` convention).

    Returns
    -------
    out : ndarray of shape (N, C, 1, 1)
        ``x.max(axis=(2, 3), keepdims=True)``; a NaN in a plane makes its
        maximum NaN, as in PyTorch.
    indices : int64 ndarray of shape (N, C, 1, 1)
        Only if ``return_indices``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D or has an empty dimension other than the batch (an
        empty batch, N = 0, gives empty outputs, as for every pooling function).
    TypeError
        Complex, object or string arrays, or a non-bool ``return_indices``.

    Notes
    -----
    One NumPy ``argmax`` over each flattened plane; no compiled kernel is
    involved, so the result does not depend on the number of threads.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import global_max_pool2d
    >>> x = np.array([[1, 1, 2, 4],
    ...               [5, 6, 7, 8],
    ...               [3, 2, 1, 0],
    ...               [1, 2, 3, 4]]).reshape(1, 1, 4, 4)
    >>> out, idx = global_max_pool2d(x, return_indices=True)
    >>> out.ravel(), idx.ravel()
    (array([8.]), array([7]))
    """
    x = _float_input(x, 2)
    return_indices = _flag(return_indices, "return_indices")
    n, c = x.shape[:2]
    planes = x.reshape(n, c, x.shape[2] * x.shape[3])  # -1 cannot be inferred when N = 0
    idx = np.argmax(planes, axis=2)  # the first maximum, or the first NaN
    out = np.take_along_axis(planes, idx[:, :, None], axis=2).reshape(n, c, 1, 1)
    if return_indices:
        return out, idx.astype(np.int64).reshape(n, c, 1, 1)
    return out


def global_max_pool2d_backward(grad_out, indices, input_shape):
    """Gradient of :func:`global_max_pool2d`: each plane's gradient goes to its maximum.

    Parameters
    ----------
    grad_out : ndarray of shape (N, C, 1, 1)
    indices : int ndarray of shape (N, C, 1, 1)
        The switches from ``global_max_pool2d(x, return_indices=True)``.
    input_shape : tuple of ints (N, C, H, W)

    Returns
    -------
    grad_x : ndarray of shape (N, C, H, W)
        Zero except ``grad_out`` at each switch.

    Raises
    ------
    ValueError
        If ``grad_out`` is not (N, C, 1, 1) for the given input, or a switch
        lies outside ``[0, H * W)``.
    TypeError
        Non-integer switches.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import global_max_pool2d_backward
    >>> global_max_pool2d_backward(np.full((1, 1, 1, 1), 3.0), np.array([[[[5]]]]),
    ...                            (1, 1, 2, 4))[0, 0]
    array([[0., 0., 0., 0.],
           [0., 3., 0., 0.]])
    """
    grad_out = _float_input(grad_out, 2, "grad_out")
    input_shape = _shape_tuple(input_shape, 2, "input_shape")
    n, c = input_shape[:2]
    if grad_out.shape != (n, c, 1, 1):
        raise ValueError(f"grad_out must have the forward output's shape {(n, c, 1, 1)}, got "
                         f"{grad_out.shape}")
    return _max_pool_backward_nd(grad_out, indices, input_shape, 2)
