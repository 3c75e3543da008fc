"""Pooling layers in 1, 2 and 3 dimensions: max (with switches), max-unpooling, average,
global average and global max."""

import numpy as np

from pyxconv import functional as F
from pyxconv._grad_mode import is_grad_enabled
from pyxconv._validation import int_tuple, pooled_spatial_shape
from pyxconv.nn._module import BackwardBeforeForwardError, Module

__all__ = ["AvgPool1d", "AvgPool2d", "AvgPool3d", "GlobalAvgPool2d", "GlobalMaxPool2d",
           "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d"]

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_ndim(layer, x, nd):
    if not isinstance(x, np.ndarray) or x.ndim != nd + 2:
        raise ValueError(f"{type(layer).__name__} expected input of layout {_LAYOUTS[nd]}, "
                         f"got shape {getattr(x, 'shape', type(x).__name__)}")


def _check_shape(layer, input_shape, nd):
    shape = tuple(input_shape)
    if len(shape) != nd + 2:
        raise ValueError(f"{type(layer).__name__} expected input of layout {_LAYOUTS[nd]}, "
                         f"got shape {shape}")
    return shape


def _pooled_shape(layer, input_shape, dilation, ceil_mode):
    """Output shape by the functional's own geometry, so the same inputs fail the same way."""
    nd = layer._nd
    shape = _check_shape(layer, input_shape, nd)
    return shape[:2] + pooled_spatial_shape(shape[2:], layer.kernel_size, layer.stride,
                                            layer.padding, dilation, ceil_mode, nd,
                                            type(layer).__name__)


class _MaxPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                 keep_indices=False):
        super().__init__()
        nd = self._nd
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, nd, "stride", 1)
        self.padding = int_tuple(padding, nd, "padding", 0)
        self.dilation = int_tuple(dilation, nd, "dilation", 1)
        self.ceil_mode = bool(ceil_mode)
        self.keep_indices = bool(keep_indices)
        self._fwd = getattr(F, f"max_pool{nd}d")
        self._bwd = getattr(F, f"max_pool{nd}d_backward")
        self.indices = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2:
            _check_ndim(self, x, self._nd)
        # backward needs the switches only in training outside no_grad; unpooling after an
        # evaluation pass asks for them with keep_indices=True. Otherwise the kernel
        # writes none.
        keep = self.keep_indices or (self.training and is_grad_enabled())
        out = self._fwd(x, self.kernel_size, self.stride, self.padding, self.dilation,
                        self.ceil_mode, return_indices=keep)
        if keep:
            out, self.indices = out
        else:
            self.indices = None
        self._shape = x.shape
        return out

    def backward(self, grad_out):
        if self.indices is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward needs the switches of a forward call in "
                "training mode outside no_grad() (or keep_indices=True)")
        return self._bwd(grad_out, self.indices, self._shape)

    def output_shape(self, input_shape):
        return _pooled_shape(self, input_shape, self.dilation, self.ceil_mode)

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            text += f", dilation={self.dilation}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        return text


_MAX_DOC = """{nd}-D max pooling that keeps its switches, ``torch.nn.MaxPool{nd}d``.

    Parameters
    ----------
    kernel_size, stride, padding, dilation, ceil_mode
        As in :func:`pyxconv.functional.max_pool{nd}d`; ``stride`` defaults to
        ``kernel_size``. Padding may exceed ``kernel_size // 2`` as long as
        every window holds an input element.
    keep_indices : bool, default False
        Keep the switches after a forward call in evaluation mode or under
        :func:`pyxconv.no_grad` too (for :class:`MaxUnpool{nd}d`).

    Attributes
    ----------
    indices : ndarray of int64 or None
        The switches of the last forward pass: for each output, the flat
        index of the maximum within its input plane. ``backward`` routes each
        gradient to that position; :class:`MaxUnpool{nd}d` uses them to undo
        the pooling (lecture 003). Kept in training mode outside ``no_grad``,
        or always with ``keep_indices=True``; otherwise None.
"""


class MaxPool1d(_MaxPoolNd):
    _nd = 1


class MaxPool2d(_MaxPoolNd):
    _nd = 2


class MaxPool3d(_MaxPoolNd):
    _nd = 3


MaxPool1d.__doc__ = _MAX_DOC.format(nd=1) + """
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool = nn.MaxPool1d(2)
    >>> pool(np.array([[[1.0, 5.0, 2.0, 2.0, 7.0, 3.0]]]))
    array([[[5., 2., 7.]]])
    >>> pool.indices
    array([[[1, 2, 4]]])
"""
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
MaxPool3d.__doc__ = _MAX_DOC.format(nd=3) + """
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool = nn.MaxPool3d(2, stride=1)
    >>> x = np.arange(27.0).reshape(1, 1, 3, 3, 3)
    >>> pool(x)[0, 0]
    array([[[13., 14.],
            [16., 17.]],
    <BLANKLINE>
           [[22., 23.],
            [25., 26.]]])
    >>> pool.output_shape((8, 4, 16, 16, 16))
    (8, 4, 15, 15, 15)
"""


class _MaxUnpoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        nd = self._nd
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, nd, "stride", 1)
        self.padding = int_tuple(padding, nd, "padding", 0)
        self._fwd = getattr(F, f"max_unpool{nd}d")
        self._bwd = getattr(F, f"max_unpool{nd}d_backward")

    def forward(self, x, indices, output_size=None):
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2:
            _check_ndim(self, x, self._nd)
        out = self._fwd(x, indices, self.kernel_size, self.stride, self.padding, output_size)
        self._indices = indices if is_grad_enabled() else None
        return out

    def backward(self, grad_out):
        if self._indices is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward needs a forward call outside no_grad() first")
        return self._bwd(grad_out, self._indices)

    def output_shape(self, input_shape):
        """The default unpooled shape, ``(in - 1) * stride - 2 * padding + kernel_size``."""
        shape = _check_shape(self, input_shape, self._nd)
        return shape[:2] + tuple((s - 1) * st - 2 * p + k for s, st, p, k in zip(
            shape[2:], self.stride, self.padding, self.kernel_size))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


_UNPOOL_DOC = """Place values back at the switches of a :class:`MaxPool{nd}d`, zeros elsewhere.

    ``forward(x, indices, output_size=None)``; pass ``pool.indices``. As
    ``torch.nn.MaxUnpool{nd}d``; see :func:`pyxconv.functional.max_unpool{nd}d`.

    Parameters
    ----------
    kernel_size, stride, padding
        As given to the pooling layer; ``stride`` defaults to ``kernel_size``.
"""


class MaxUnpool1d(_MaxUnpoolNd):
    _nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    _nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    _nd = 3


MaxUnpool1d.__doc__ = _UNPOOL_DOC.format(nd=1) + """
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool, unpool = nn.MaxPool1d(2), nn.MaxUnpool1d(2)
    >>> x = np.array([[[1.0, 5.0, 2.0, 2.0, 7.0, 3.0]]])
    >>> unpool(pool(x), pool.indices)
    array([[[0., 5., 2., 0., 7., 0.]]])
"""
MaxUnpool2d.__doc__ = _UNPOOL_DOC.format(nd=2) + """
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
MaxUnpool3d.__doc__ = _UNPOOL_DOC.format(nd=3) + """
    Examples
    --------
    In evaluation mode the pooling layer keeps its switches only when asked:

    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool = nn.MaxPool3d(2, keep_indices=True).eval()
    >>> unpool = nn.MaxUnpool3d(2)
    >>> x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> unpool(pool(x), pool.indices).ravel()
    array([0., 0., 0., 0., 0., 0., 0., 7.])
"""


class _AvgPoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, dilation=1):
        super().__init__()
        nd = self._nd
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else int_tuple(stride, nd, "stride", 1)
        self.padding = int_tuple(padding, nd, "padding", 0)
        self.dilation = int_tuple(dilation, nd, "dilation", 1)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override
        self._fwd = getattr(F, f"avg_pool{nd}d")
        self._bwd = getattr(F, f"avg_pool{nd}d_backward")

    def _args(self):
        args = (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad)
        if self._nd > 1:
            args += (self.divisor_override,)
        return args

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2:
            _check_ndim(self, x, self._nd)
        self._shape = x.shape
        return self._fwd(x, *self._args(), dilation=self.dilation)

    def backward(self, grad_out):
        return self._bwd(grad_out, self._shape, *self._args(), dilation=self.dilation)

    def output_shape(self, input_shape):
        return _pooled_shape(self, input_shape, self.dilation, self.ceil_mode)

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            text += f", dilation={self.dilation}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        if not self.count_include_pad:
            text += ", count_include_pad=False"
        if self.divisor_override is not None:
            text += f", divisor_override={self.divisor_override}"
        return text


_AVG_DOC = """{nd}-D average pooling, ``torch.nn.AvgPool{nd}d`` (zeros of the padding counted).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad{extra}
        As in :func:`pyxconv.functional.avg_pool{nd}d`; ``stride`` defaults
        to ``kernel_size``.
    dilation : int or tuple of ints, default 1, keyword-only
        Spacing between window taps (ONNX's ``dilations``; PyTorch's layer
        has none). The divisor then counts the taps, as ONNX's reference
        ``AveragePool`` does.
"""


class AvgPool1d(_AvgPoolNd):
    _nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, *, dilation=1):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                         dilation=dilation)


class AvgPool2d(_AvgPoolNd):
    _nd = 2


class AvgPool3d(_AvgPoolNd):
    _nd = 3


AvgPool1d.__doc__ = _AVG_DOC.format(nd=1, extra="") + """
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.AvgPool1d(2)(np.array([[[1.0, 5.0, 2.0, 2.0, 7.0, 3.0]]]))
    array([[[3., 2., 5.]]])
    >>> nn.AvgPool1d(2, stride=1, dilation=2)
    AvgPool1d(kernel_size=(2,), stride=(1,), padding=(0,), dilation=(2,))
"""
AvgPool2d.__doc__ = _AVG_DOC.format(nd=2, extra=", divisor_override") + """
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
"""
AvgPool3d.__doc__ = _AVG_DOC.format(nd=3, extra=", divisor_override") + """
    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> pool = nn.AvgPool3d(2)
    >>> pool(np.arange(8.0).reshape(1, 1, 2, 2, 2)).ravel()
    array([3.5])
    >>> pool.backward(np.full((1, 1, 1, 1, 1), 8.0)).ravel()
    array([1., 1., 1., 1., 1., 1., 1., 1.])
"""


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
