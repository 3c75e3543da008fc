"""Pooling layers: max (with switches), max-unpooling, average, global average."""

import numpy as np

from pyxconv import functional as F
from pyxconv._validation import int_tuple
from pyxconv.nn._module import Module

__all__ = ["AvgPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d", "MaxPool1d", "MaxPool2d", "MaxUnpool2d"]

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)"}


def _pool_out(size, k, s, p, d, ceil_mode):
    span = d * (k - 1) + 1
    out = (size + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _check_ndim(layer, x, nd):
    if not isinstance(x, np.ndarray) or x.ndim != nd + 2:
        raise ValueError(f"{type(layer).__name__} expected input of layout {_LAYOUTS[nd]}, "
                         f"got shape {getattr(x, 'shape', type(x).__name__)}")


class _MaxPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        nd = self._nd
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, nd, "stride", 1)
        self.padding = int_tuple(padding, nd, "padding", 0)
        self.dilation = int_tuple(dilation, nd, "dilation", 1)
        self.ceil_mode = bool(ceil_mode)
        for k, p in zip(self.kernel_size, self.padding):
            if 2 * p > k:
                raise ValueError(f"padding must be at most half the kernel size, got padding "
                                 f"{self.padding} for kernel_size {self.kernel_size}")
        self._fwd = F.max_pool1d if nd == 1 else F.max_pool2d
        self._bwd = F.max_pool1d_backward if nd == 1 else F.max_pool2d_backward
        self.indices = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2:
            _check_ndim(self, x, self._nd)
        out, self.indices = self._fwd(x, self.kernel_size, self.stride, self.padding,
                                      self.dilation, self.ceil_mode, return_indices=True)
        self._shape = x.shape
        return out

    def backward(self, grad_out):
        return self._bwd(grad_out, self.indices, self._shape)

    def output_shape(self, input_shape):
        n, c, *spatial = input_shape
        if len(spatial) != self._nd:
            raise ValueError(f"{type(self).__name__} expected input of layout "
                             f"{_LAYOUTS[self._nd]}, got shape {tuple(input_shape)}")
        out = tuple(_pool_out(s, k, st, p, d, self.ceil_mode) for s, k, st, p, d in zip(
            spatial, self.kernel_size, self.stride, self.padding, self.dilation))
        if min(out) < 1:
            raise ValueError(f"{type(self).__name__} with kernel {self.kernel_size} does not "
                             f"fit input shape {tuple(input_shape)}")
        return (n, c) + out

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


_MAX_DOC = """{nd}-D max pooling that keeps its switches, ``torch.nn.MaxPool{nd}d``.

    Parameters
    ----------
    kernel_size, stride, padding, dilation, ceil_mode
        As in :func:`pyxconv.functional.max_pool{nd}d`; ``stride`` defaults to
        ``kernel_size``.

    Attributes
    ----------
    indices : ndarray of int64 or None
        The switches of the last forward pass: for each output, the flat
        index of the maximum within its input plane. ``backward`` routes each
        gradient to that position; :class:`MaxUnpool2d` uses them to undo the
        pooling (lecture 003).
"""


class MaxPool1d(_MaxPoolNd):
    _nd = 1


class MaxPool2d(_MaxPoolNd):
    _nd = 2


MaxPool1d.__doc__ = _MAX_DOC.format(nd=1)
MaxPool2d.__doc__ = _MAX_DOC.format(nd=2) + """
    Examples
    --------
    Lecture 004 (WE-32): 2x2 pooling, stride 2.

    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool = nn.MaxPool2d(2)
    >>> x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], np.float32)
    >>> pool(x[None, None])[0, 0]
    array([[6., 8.],
           [3., 4.]], dtype=float32)
    >>> pool.indices[0, 0]
    array([[ 5,  7],
           [ 8, 15]])
"""


class MaxUnpool2d(Module):
    """Place values back at the switches of a :class:`MaxPool2d`, zeros elsewhere.

    ``forward(x, indices, output_size=None)``; pass ``pool.indices``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool, unpool = nn.MaxPool2d(2), nn.MaxUnpool2d(2)
    >>> x = np.array([[[[1, 2], [4, 3]]]], np.float32)
    >>> unpool(pool(x), pool.indices)[0, 0]
    array([[0., 0.],
           [4., 0.]], dtype=float32)
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = int_tuple(kernel_size, 2, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, 2, "stride", 1)
        self.padding = int_tuple(padding, 2, "padding", 0)

    def forward(self, x, indices, output_size=None):
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            _check_ndim(self, x, 2)
        self._indices = indices
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def backward(self, grad_out):
        return F.max_unpool2d_backward(grad_out, self._indices)

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c) + tuple((s - 1) * st - 2 * p + k for s, st, p, k in zip(
            (h, w), self.stride, self.padding, self.kernel_size))


class AvgPool2d(Module):
    """2-D average pooling, ``torch.nn.AvgPool2d`` (zeros of the padding counted).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad
        As in :func:`pyxconv.functional.avg_pool2d`.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = int_tuple(kernel_size, 2, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, 2, "stride", 1)
        self.padding = int_tuple(padding, 2, "padding", 0)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _args(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            _check_ndim(self, x, 2)
        self._shape = x.shape
        return F.avg_pool2d(x, *self._args())

    def backward(self, grad_out):
        return F.avg_pool2d_backward(grad_out, self._shape, *self._args())

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        out = tuple(_pool_out(s, k, st, p, 1, self.ceil_mode) for s, k, st, p in zip(
            (h, w), self.kernel_size, self.stride, self.padding))
        if min(out) < 1:
            raise ValueError(f"AvgPool2d with kernel {self.kernel_size} does not fit input "
                             f"shape {tuple(input_shape)}")
        return (n, c) + out

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """Mean over each channel's plane: ``(N, C, H, W) -> (N, C, 1, 1)`` (keeps dims, as
    ``torch.nn.AdaptiveAvgPool2d(1)``).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.GlobalAvgPool2d()(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
    array([1.5, 5.5])
    """

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            _check_ndim(self, x, 2)
        self._shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, grad_out):
        n, c, h, w = self._shape
        scale = grad_out.dtype.type(1.0 / (h * w))
        return np.broadcast_to(grad_out * scale, self._shape).copy()

    def output_shape(self, input_shape):
        n, c = input_shape[:2]
        return (n, c, 1, 1)

    def mult_adds(self, input_shape):
        return 0


class GlobalMaxPool2d(Module):
    """Maximum over each channel's plane: ``(N, C, H, W) -> (N, C, 1, 1)``, ONNX's
    GlobalMaxPool (``torch.nn.AdaptiveMaxPool2d(1)``).

    The switches of the last forward call are kept in ``indices``; ``backward``
    routes each plane's gradient to its maximum.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool = nn.GlobalMaxPool2d()
    >>> pool(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
    array([3., 7.])
    >>> pool.backward(np.ones((1, 2, 1, 1)))[0, 1]
    array([[0., 0.],
           [0., 1.]])
    """

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            _check_ndim(self, x, 2)
        self._shape = x.shape
        out, self.indices = F.global_max_pool2d(x, return_indices=True)
        return out

    def backward(self, grad_out):
        return F.global_max_pool2d_backward(grad_out, self.indices, self._shape)

    def output_shape(self, input_shape):
        n, c = input_shape[:2]
        return (n, c, 1, 1)

    def mult_adds(self, input_shape):
        return 0
