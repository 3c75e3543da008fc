"""Layers with parameters or shape changes: convolutions, Linear, Flatten, Dropout, BatchNorm."""
import math

import numpy as np

from pyxconv import functional as F
from pyxconv._grad_mode import is_grad_enabled
from pyxconv._parallel import small_product
from pyxconv._validation import (
    as_int,
    check_output_padding,
    conv_output_size,
    int_tuple,
    padding_pairs,
)
from pyxconv.nn import init
from pyxconv.nn._module import BackwardBeforeForwardError, Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
           "ConvTranspose2d", "ConvTranspose3d", "Dropout", "Flatten", "Linear", "manual_seed"]

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_rng = np.random.default_rng()

#: Conv2d keeps its input's column matrix (im2col) for the backward pass when
#: it takes at most this many bytes; larger layers call the chunked functional
#: backward, which rebuilds the columns piece by piece.
COLUMN_CACHE_BYTES = 64 * 2**20


def manual_seed(seed):
    """Seed the generator that initialises new layers and draws dropout masks.

    Examples
    --------
    >>> from pyxconv import nn
    >>> nn.manual_seed(0); a = nn.Linear(2, 2).weight.data
    >>> nn.manual_seed(0); b = nn.Linear(2, 2).weight.data
    >>> bool((a == b).all())
    True
    """
    global _rng
    _rng = np.random.default_rng(seed)


def _default_rng():
    return _rng


def _check_input(layer, x, ndim, channels, layout, dim=1):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{type(layer).__name__} expects an ndarray, got {type(x).__name__}")
    if x.ndim != ndim or x.shape[dim] != channels:
        raise ValueError(
            f"{type(layer).__name__} expected input of layout {layout} with {channels} "
            f"channels, got shape {x.shape}")


class _ConvNd(Module):
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32):
        super().__init__()
        nd = self._nd
        self.in_channels = as_int(in_channels, "in_channels", 1)
        self.out_channels = as_int(out_channels, "out_channels", 1)
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = int_tuple(stride, nd, "stride", 1)
        self.dilation = int_tuple(dilation, nd, "dilation", 1)
        self.groups = as_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups={self.groups} must divide in_channels={self.in_channels} "
                             f"and out_channels={self.out_channels}")
        self._pads = padding_pairs(padding, nd, self.kernel_size, self.stride, self.dilation)
        self.padding = padding
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = self._param("weight", np.empty(shape, dtype=dtype))
        self.bias = self._param("bias", np.empty(self.out_channels, dtype=dtype)) if bias else None
        init.torch_default_(self.weight, self.bias, rng=_default_rng())
        self.requires_input_grad = True
        self._x = self._cols = self._plan = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2 \
                or x.shape[1] != self.in_channels:
            _check_input(self, x, self._nd + 2, self.in_channels, _LAYOUTS[self._nd])
        w, b = self._checked_parameters()
        x, w, b, plan = F.prepare_conv(x, w, b, self.stride, self._pads, self.dilation,
                                       self.groups, self._nd)
        # what backward needs: nothing under no_grad; the input, and in training
        # mode the forward's columns too where the plan keeps them
        # (ConvPlan.keeps_columns) and they fit COLUMN_CACHE_BYTES
        keep = is_grad_enabled()
        keep_columns = (keep and self.training and plan.keeps_columns
                        and x.shape[0] * plan.g.rows * plan.g.positions * x.itemsize
                        <= COLUMN_CACHE_BYTES)
        out, cols = plan.forward(x, w, b, keep_columns=keep_columns)
        self._x, self._cols, self._plan = (x, cols, plan) if keep else (None, None, None)
        return out.reshape((plan.g.n, self.out_channels) + plan.g.out_spatial)

    def fused_forward(self, x, weight, bias, relu=False):
        """This convolution with other parameters, and ReLU in its output pass; keeps nothing.

        For an eval-mode :class:`~pyxconv.nn.Sequential`, which folds a following
        BatchNorm into ``weight`` and ``bias`` (arrays of this layer's shapes).
        """
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2 \
                or x.shape[1] != self.in_channels:
            _check_input(self, x, self._nd + 2, self.in_channels, _LAYOUTS[self._nd])
        x, w, b, plan = F.prepare_conv(x, weight, bias, self.stride, self._pads,
                                       self.dilation, self.groups, self._nd)
        self._x = self._cols = self._plan = None
        out, _ = plan.forward(x, w, b, relu=relu)
        return out.reshape((plan.g.n, self.out_channels) + plan.g.out_spatial)

    def _checked_parameters(self):
        """(weight, bias) arrays, refused if someone replaced them with other shapes."""
        w = self.weight.data
        b = None if self.bias is None else self.bias.data
        expected = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        if w.shape != expected or (b is not None and b.shape != (self.out_channels,)):
            raise ValueError(f"{type(self).__name__}'s weight {w.shape} or bias "
                             f"{None if b is None else b.shape} was replaced by one of another "
                             f"shape; expected {expected} and ({self.out_channels},)")
        return w, b

    def backward(self, grad_out):
        w, _ = self._checked_parameters()
        x, plan = self._x, self._plan
        if plan is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward needs a forward call outside no_grad() first")
        expected = (plan.g.n, self.out_channels) + plan.g.out_spatial
        if getattr(grad_out, "shape", None) != expected:
            raise ValueError(f"{type(self).__name__}.backward expected grad_out of shape "
                             f"{expected}, got {getattr(grad_out, 'shape', None)}")
        # the layer's dtype: a float64 gradient for a float32 layer is rounded, as the
        # float32 weight gradient it adds to would round it anyway
        g = np.ascontiguousarray(grad_out, dtype=x.dtype)
        gx, gw, gb = plan.backward(g, x, np.ascontiguousarray(w, dtype=x.dtype), self._cols,
                                   self.requires_input_grad)
        self.weight.grad += gw
        if self.bias is not None:
            self.bias.grad += gb
        return gx

    def output_shape(self, input_shape):
        n, c, *spatial = input_shape
        if c != self.in_channels or len(spatial) != self._nd:
            raise ValueError(f"{type(self).__name__} expected input of layout "
                             f"{_LAYOUTS[self._nd]} with {self.in_channels} channels, "
                             f"got shape {tuple(input_shape)}")
        out = tuple(conv_output_size(s, k, st, p[0], p[1], d, f"dim {i}")
                    for i, (s, k, st, p, d) in enumerate(
                        zip(spatial, self.kernel_size, self.stride, self._pads, self.dilation)))
        return (n, self.out_channels) + out

    def mult_adds(self, input_shape):
        out = self.output_shape(input_shape)
        per_output = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        return math.prod(out) * per_output

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}")


_CONV_DOC = """{nd}-D convolution layer (cross-correlation), ``torch.nn.Conv{nd}d``'s parameters.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation, groups
        As in :func:`pyxconv.functional.conv{nd}d`.
    bias : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter of shape (out_channels, in_channels / groups, {kernel})
    bias : Parameter of shape (out_channels,) or None
    requires_input_grad : bool
        Set to False on a first layer to skip computing the input gradient
        (``backward`` then returns None).

    Notes
    -----
    Initialised as PyTorch does: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the
    weight and the bias; see :mod:`pyxconv.nn.init` for He and Xavier.
    The forward pass keeps a reference to its input for ``backward``. In
    training mode, a 2-D layer with ``groups=1`` whose column matrix (``N * C_in * kH * kW *
    H_out * W_out`` values) fits in ``COLUMN_CACHE_BYTES`` (64 MiB) also keeps
    the columns, so ``backward`` does not rebuild them; otherwise it calls
    :func:`pyxconv.functional.conv2d_backward`, which works in chunks.
    On that cached path each sample's im2col, GEMMs and col2im run in one
    OpenMP loop without the GIL, with the GEMMs calling NumPy's own BLAS
    directly when it is the OpenBLAS of NumPy's wheels (``pyxconv.show_config()``
    tells); otherwise the same products go through ``numpy.matmul``.

    Examples
    --------
    Lecture 002 (WE-15): ten 5x5 filters on a 32x32x3 input with pad 2.

    >>> import numpy as np
    >>> from pyxconv import nn
    >>> conv = nn.Conv2d(3, 10, 5, padding=2)
    >>> conv(np.zeros((1, 3, 32, 32), np.float32)).shape
    (1, 10, 32, 32)
    >>> sum(p.data.size for p in conv.parameters())
    760
"""


class Conv1d(_ConvNd):
    _nd = 1


class Conv2d(_ConvNd):
    _nd = 2


class Conv3d(_ConvNd):
    _nd = 3


Conv1d.__doc__ = _CONV_DOC.format(nd=1, kernel="kL").split("    Examples")[0]
Conv2d.__doc__ = _CONV_DOC.format(nd=2, kernel="kH, kW")
Conv3d.__doc__ = _CONV_DOC.format(nd=3, kernel="kD, kH, kW").split("    Examples")[0]


class Linear(Module):
    """Fully connected layer, ``y = x W^T + b``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter of shape (out_features, in_features)
    bias : Parameter of shape (out_features,) or None

    Notes
    -----
    Input of shape ``(N, in_features)``, or ``(..., in_features)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> fc = nn.Linear(400, 120)
    >>> fc.weight.shape, fc(np.zeros((2, 400), np.float32)).shape
    ((120, 400), (2, 120))
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features = as_int(in_features, "in_features", 1)
        self.out_features = as_int(out_features, "out_features", 1)
        self.weight = self._param("weight", np.empty((self.out_features, self.in_features),
                                                     dtype=dtype))
        self.bias = self._param("bias", np.empty(self.out_features, dtype=dtype)) if bias else None
        init.torch_default_(self.weight, self.bias, rng=_default_rng())

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[-1] != self.in_features:
            if not isinstance(x, np.ndarray):
                raise TypeError(f"Linear expects an ndarray, got {type(x).__name__}")
            raise ValueError(f"Linear expected input of shape (N, {self.in_features}), "
                             f"got shape {getattr(x, 'shape', None)}")
        self._x = x if is_grad_enabled() else None
        weight, bias = self.weight.data, None if self.bias is None else self.bias.data
        if x.dtype != weight.dtype:
            # NumPy's promotion, which F.linear refuses: a float64 (or integer) input to a
            # float32 layer gives a float64 output, as it always has here
            with small_product(x.size * self.out_features,
                               one_row=x.size == self.in_features):
                out = x @ weight.T
            if bias is not None:
                out += bias
            return out
        return F.linear(x, weight, bias)

    def backward(self, grad_out):
        if self._x is None:
            raise BackwardBeforeForwardError(
                "Linear.backward needs a forward call outside no_grad() first")
        x2 = self._x.reshape(-1, self.in_features)
        g2 = grad_out.reshape(-1, self.out_features)
        weight = self.weight
        with small_product(x2.size * self.out_features, one_row=len(x2) == 1):
            if type(grad_out) is np.ndarray and x2.dtype == weight.data.dtype == g2.dtype:
                # the BLAS the forward calls (scipy's), whatever NumPy's is
                grad_x, grad_weight, _ = F.linear_backward(g2, x2, weight.data)
                grad_x = grad_x.reshape(self._x.shape)
                weight.grad += grad_weight
            else:  # NumPy's promotion, as in forward
                weight.grad += g2.T @ x2
                grad_x = grad_out @ weight.data
        if self.bias is not None:
            self.bias.grad += g2.sum(axis=0)
        return grad_x

    def output_shape(self, input_shape):
        if input_shape[-1] != self.in_features:
            raise ValueError(f"Linear expected input of shape (N, {self.in_features}), "
                             f"got shape {tuple(input_shape)}")
        return tuple(input_shape[:-1]) + (self.out_features,)

    def mult_adds(self, input_shape):
        return math.prod(input_shape[:-1]) * self.in_features * self.out_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` into one (default: all but the batch).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.Flatten()(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        nd = len(shape)
        s = self.start_dim % nd
        e = self.end_dim % nd
        if s > e:
            raise ValueError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) "
                             f"does not fit input shape {shape}")
        return shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(self.output_shape(x.shape))

    def backward(self, grad_out):
        return grad_out.reshape(self._shape)


class Dropout(Module):
    """Inverted dropout: zero each element with probability ``p`` while training.

    Kept elements are scaled by ``1 / (1 - p)`` so the expected activation is
    the same in training and evaluation; :meth:`eval` makes the layer the
    identity.

    Parameters
    ----------
    p : float in [0, 1), default 0.5
    seed : int, optional
        Seed of this layer's own mask generator; by default masks come from the
        generator of :func:`pyxconv.nn.manual_seed`.
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout probability p must be in [0, 1), got {p}")
        self.p = float(p)
        self._own_rng = None if seed is None else np.random.default_rng(seed)

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        rng = self._own_rng if self._own_rng is not None else _default_rng()
        self._mask = (rng.random(x.shape) >= self.p).astype(x.dtype) / x.dtype.type(1 - self.p)
        return x * self._mask

    def backward(self, grad_out):
        return grad_out if self._mask is None else grad_out * self._mask

    def extra_repr(self):
        return f"p={self.p}"


class _BatchNorm(Module):
    """Batch normalisation over every axis but the channel axis 1 (BatchNorm1d/2d)."""

    _ndims = (4,)
    _layout = "(N, C, H, W)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__()
        self.num_features = as_int(num_features, "num_features", 1)
        self.eps, self.momentum = float(eps), float(momentum)
        c = self.num_features
        self.affine = affine
        if affine:
            self.weight = self._param("weight", np.ones(c, dtype=dtype))
            self.bias = self._param("bias", np.zeros(c, dtype=dtype))
        else:
            self.weight = self.bias = None
        self._buffer("running_mean", np.zeros(c, dtype=dtype))
        self._buffer("running_var", np.ones(c, dtype=dtype))
        self._buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    @staticmethod
    def _geometry(ndim):
        """Reduced axes, the einsum of a per-channel dot product, the channel-vector shape."""
        axes = (0,) + tuple(range(2, ndim))
        letters = "nc" + "hw"[:ndim - 2]
        dot = f"{letters},{letters}->c"
        return axes, dot, (slice(None),) + (None,) * (ndim - 2)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim not in self._ndims \
                or x.shape[1] != self.num_features:
            ndim = x.ndim if isinstance(x, np.ndarray) and x.ndim in self._ndims \
                else self._ndims[-1]
            _check_input(self, x, ndim, self.num_features, self._layout)
        axes, dot, ch = self._geometry(x.ndim)
        if self.training:
            m = int(np.prod([x.shape[i] for i in axes]))
            if m < 2:
                raise ValueError(f"{type(self).__name__} needs more than one value per channel "
                                 f"in training, got input shape {x.shape}")
            mean = x.mean(axis=axes)
            centred = x - mean[ch]
            var = np.einsum(dot, centred, centred) / m
            mom = self.momentum
            rm, rv = self._buffers["running_mean"], self._buffers["running_var"]
            rm *= 1 - mom
            rm += mom * mean
            rv *= 1 - mom
            rv += mom * var * (m / (m - 1))
            self._buffers["num_batches_tracked"] += 1
        else:
            mean = self._buffers["running_mean"]
            var = self._buffers["running_var"]
            centred = x - mean[ch]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat = centred * inv_std[ch]
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, self.training
        if not self.affine:
            return xhat
        return xhat * self.weight.data[ch] + self.bias.data[ch]

    def backward(self, grad_out):
        xhat, inv_std = self._xhat, self._inv_std
        axes, dot, ch = self._geometry(grad_out.ndim)
        if self.affine:
            self.weight.grad += np.einsum(dot, grad_out, xhat)
            self.bias.grad += grad_out.sum(axis=axes)
            scale = self.weight.data * inv_std
        else:
            scale = inv_std
        if not self._batch_stats:
            return grad_out * scale[ch]
        m = int(np.prod([grad_out.shape[i] for i in axes]))
        g_mean = grad_out.mean(axis=axes)
        gx_mean = np.einsum(dot, grad_out, xhat) / m
        return (grad_out - g_mean[ch] - xhat * gx_mean[ch]) * scale[ch]

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


_BN_DOC = """Batch normalisation over {over} for each channel, as ``torch.nn.{name}``.

    Training: ``y = weight * (x - mean_B) / sqrt(var_B + eps) + bias`` with the
    batch's mean and (biased) variance, and the running statistics updated as
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased
    variance). Evaluation: the running statistics replace the batch's.
{inputs}
    Parameters
    ----------
    num_features : int
        Channels C.
    eps : float, default 1e-5
    momentum : float, default 0.1
    affine : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight, bias : Parameter of shape (C,)
    running_mean, running_var : ndarray of shape (C,)
    num_batches_tracked : ndarray of shape (), int64

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> bn = nn.{name}(1)
    >>> y = bn(np.array({example}, np.float32))
    >>> np.round(y, 3)
    array({result}, dtype=float32)
    >>> bn.running_mean, bn.running_var
    (array([0.2], dtype=float32), array([1.1], dtype=float32))
    """


class BatchNorm1d(_BatchNorm):
    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    _ndims = (4,)
    _layout = "(N, C, H, W)"


BatchNorm1d.__doc__ = _BN_DOC.format(
    over="``N`` (input ``(N, C)``) or ``(N, L)`` (input ``(N, C, L)``)", name="BatchNorm1d",
    inputs="\n    The input is a batch of feature vectors ``(N, C)`` (after a Linear layer)\n"
           "    or of sequences ``(N, C, L)`` (after a Conv1d).\n",
    example="[[1.0], [3.0]]", result="[[-1.],\n           [ 1.]]")
BatchNorm2d.__doc__ = _BN_DOC.format(over="``(N, H, W)``", name="BatchNorm2d", inputs="",
                                     example="[[[[1.0, 3.0]]]]", result="[[[[-1.,  1.]]]]")


class _ConvTransposeNd(Module):
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=np.float32):
        super().__init__()
        nd = self._nd
        self.in_channels = as_int(in_channels, "in_channels", 1)
        self.out_channels = as_int(out_channels, "out_channels", 1)
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = int_tuple(stride, nd, "stride", 1)
        self.padding = int_tuple(padding, nd, "padding", 0)
        self.output_padding = int_tuple(output_padding, nd, "output_padding", 0)
        self.dilation = int_tuple(dilation, nd, "dilation", 1)
        check_output_padding(self.output_padding, self.stride, self.dilation)
        self.groups = as_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups={self.groups} must divide in_channels={self.in_channels} "
                             f"and out_channels={self.out_channels}")
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self.weight = self._param("weight", np.empty(shape, dtype=dtype))
        self.bias = self._param("bias", np.empty(self.out_channels, dtype=dtype)) if bias else None
        # PyTorch computes the fan-in of a transposed conv weight from dim 1.
        init.torch_default_(self.weight, self.bias, rng=_default_rng())
        self.requires_input_grad = True
        self._x = None
        self._fwd = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
        self._bwd = (F.conv_transpose1d_backward, F.conv_transpose2d_backward,
                     F.conv_transpose3d_backward)[nd - 1]

    def _args(self):
        return (self.stride, self.padding, self.output_padding, self.groups, self.dilation)

    def forward(self, x):
        nd = self._nd
        if not isinstance(x, np.ndarray) or x.ndim != nd + 2 or x.shape[1] != self.in_channels:
            _check_input(self, x, nd + 2, self.in_channels, _LAYOUTS[nd])
        self._x = x if is_grad_enabled() else None
        b = None if self.bias is None else self.bias.data
        return self._fwd(x, self.weight.data, b, *self._args())

    def backward(self, grad_out):
        if self._x is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward needs a forward call outside no_grad() first")
        gx, gw, gb = self._bwd(grad_out, self._x, self.weight.data, *self._args(),
                               self.requires_input_grad)
        self.weight.grad += gw
        if self.bias is not None:
            self.bias.grad += gb
        return gx

    def output_shape(self, input_shape):
        n, c, *spatial = input_shape
        if c != self.in_channels or len(spatial) != self._nd:
            raise ValueError(f"{type(self).__name__} expected input of layout "
                             f"{_LAYOUTS[self._nd]} with {self.in_channels} channels, "
                             f"got shape {tuple(input_shape)}")
        out = F.conv_transpose_output_size(tuple(spatial), self.kernel_size, self.stride,
                                           self.padding, self.output_padding, self.dilation)
        return (n, self.out_channels) + tuple(out)

    def mult_adds(self, input_shape):
        n, c, *spatial = input_shape
        return (n * c * math.prod(spatial) * (self.out_channels // self.groups)
                * math.prod(self.kernel_size))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")


_CONV_TRANSPOSE_DOC = """{nd}-D transposed convolution layer, ``torch.nn.ConvTranspose{nd}d``'s parameters.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, output_padding, groups, dilation
        As in :func:`pyxconv.functional.conv_transpose{nd}d`.
    bias : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter of shape (in_channels, out_channels / groups, {kernel})
    bias : Parameter of shape (out_channels,) or None

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> up = nn.ConvTranspose{nd}d(4, 2, 2, stride=2)
    >>> up(np.zeros((1, 4) + (5,) * {nd}, np.float32)).shape
    (1, 2{doubled})
"""


class ConvTranspose1d(_ConvTransposeNd):
    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    _nd = 3


for _cls, _kernel, _doubled in ((ConvTranspose1d, "kL", ", 10"),
                                (ConvTranspose2d, "kH, kW", ", 10, 10"),
                                (ConvTranspose3d, "kD, kH, kW", ", 10, 10, 10")):
    _cls.__doc__ = _CONV_TRANSPOSE_DOC.format(nd=_cls._nd, kernel=_kernel, doubled=_doubled)
del _cls, _kernel, _doubled
