"""Layers with parameters or shape changes: convolutions, Linear, Flatten, Dropout, BatchNorm2d."""
import math

import numpy as np

from pyxconv import functional as F
from pyxconv._blas import ensure_gemm
from pyxconv._kernels import _im2col
from pyxconv._parallel import blas_on_one_thread, map_blocks, small_product
from pyxconv._threads import threads_for
from pyxconv._workspace import thread_workspace
from pyxconv.functional._conv import _Geometry, _run_col2im, _run_im2col
from pyxconv.functional._conv_transpose import check_output_padding
from pyxconv.functional._validation import (
    as_int,
    conv_output_size,
    int_tuple,
    padding_pairs,
)
from pyxconv.nn import init
from pyxconv.nn._module import Module

__all__ = ["BatchNorm2d", "Conv1d", "Conv2d", "Conv3d", "Dropout", "Flatten", "Linear",
           "manual_seed"]

_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_rng = np.random.default_rng()

#: Conv2d keeps its input's column matrix (im2col) for the backward pass when
#: it takes at most this many bytes; larger layers call the chunked functional
#: backward, which rebuilds the columns piece by piece.
COLUMN_CACHE_BYTES = 64 * 2**20

#: With several threads, Conv2d's cached path gives each thread at least this
#: many multiply-adds; below twice that it runs on one thread. LeNet-5's layers
#: (7.5 M and 15 M multiply-adds a forward) both gain: a training step at 2
#: threads took 4.94 ms with both split, 5.26 ms with only the second, 6.00 ms
#: with neither (alternating runs in one process, measured on the NumPy path
#: with sleeping threads; with spinning threads splitting is cheaper still).
PARALLEL_MULT_ADDS_PER_THREAD = 2**21

#: From this many column-matrix rows (C_in * kH * kW) up, Conv2d's cached path
#: takes the weight gradient's per-sample products as cols[n] @ g[n]^T.
WEIGHT_GRAD_TRANSPOSED_MIN_ROWS = 128


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
        self._cols = None
        self._shape_memo = None
        self._geometry_memo = None
        self._fwd = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
        self._bwd = (F.conv1d_backward, F.conv2d_backward, F.conv3d_backward)[nd - 1]

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != self._nd + 2 \
                or x.shape[1] != self.in_channels:
            _check_input(self, x, self._nd + 2, self.in_channels, _LAYOUTS[self._nd])
        w, b = self._checked_parameters()
        if (self.training and self._nd == 2 and self.groups == 1 and x.dtype == w.dtype
                and x.shape[0] * self._cols_bytes_per_sample(x) <= COLUMN_CACHE_BYTES):
            return self._forward_cached(x, w, b)
        self._cols = None
        self._x = x
        return self._fwd(x, w, b, self.stride, self._pads, self.dilation, self.groups)

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

    def _out_shape(self, shape):
        cached = self._shape_memo
        if cached is not None and cached[0] == shape:
            return cached[1]
        out = self.output_shape(shape)
        self._shape_memo = (shape, out)
        return out

    def _cols_bytes_per_sample(self, x):
        out = self._out_shape(x.shape)
        return math.prod(out[2:]) * self.in_channels * math.prod(self.kernel_size) * x.itemsize

    def _geometry_for(self, x):
        cached = self._geometry_memo
        if cached is not None and cached[0] == x.shape:
            return cached[1]
        g = _Geometry(x.shape[2:], self.kernel_size, self.stride, self._pads, self.dilation,
                      1, x.shape[0], self.in_channels, self.out_channels)
        self._geometry_memo = (x.shape, g)
        return g

    def _sample_blocks(self, g):
        """(threads over samples, kernel threads, sample ranges) for the cached path.

        Every sample is computed on its own (its im2col, its GEMMs, its col2im),
        so any split of the batch gives the same bits. The direct kernels loop
        over the samples on ``max`` of the two thread counts; the NumPy path
        gives the blocks of samples to Python threads that each run the kernels
        and the BLAS on one core (see pyxconv._parallel).
        """
        n = g.n
        elements = n * g.rows * g.positions
        n_parallel = min(threads_for(elements * g.c_out, PARALLEL_MULT_ADDS_PER_THREAD), n)
        kernel_threads = threads_for(elements) if n_parallel == 1 else 1
        n_blocks = min(n, 2 * n_parallel) if n_parallel > 1 else 1  # none empty
        bounds = [n * i // n_blocks for i in range(n_blocks + 1)]
        return n_parallel, kernel_threads, list(zip(bounds[:-1], bounds[1:]))

    def _forward_cached(self, x, w, b):
        # columns (N, C_in*kH*kW, L) from the im2col kernel, kept for backward;
        # one GEMM per sample writes straight into the (N, C_out, L) output: all of it
        # in one nogil OpenMP loop when the kernels can call the BLAS (pyxconv._blas),
        # else im2col and numpy.matmul on blocks of samples
        x = np.ascontiguousarray(x)
        g = self._geometry_for(x)
        n, k, positions = g.n, g.rows, g.positions
        x5 = x.reshape((n, self.in_channels) + g.in3)
        w2 = w.reshape(self.out_channels, -1)
        cols = np.empty((n, k, positions), dtype=x.dtype)
        out = np.empty((n, self.out_channels, positions), dtype=x.dtype)
        n_parallel, kernel_threads, blocks = self._sample_blocks(g)
        if ensure_gemm():
            with blas_on_one_thread():
                _im2col.conv_forward_samples(x5, np.ascontiguousarray(w2),
                                             None if b is None
                                             else np.ascontiguousarray(b, dtype=x.dtype),
                                             cols, out,
                                             *g.kernel_args(), max(n_parallel, kernel_threads))
            self._x, self._cols = x, cols
            return out.reshape(self._out_shape(x.shape))

        def forward_block(block):
            n0, n1 = block
            _run_im2col(x5, cols[n0:n1].reshape(-1), g, n0, n1 - n0, 0, g.out_rows,
                        kernel_threads, per_sample=True)
            np.matmul(w2, cols[n0:n1], out=out[n0:n1])
            if b is not None:
                out[n0:n1] += b[:, None]

        map_blocks(forward_block, blocks, n_parallel)
        self._x, self._cols = x, cols
        return out.reshape(self._out_shape(x.shape))

    def backward(self, grad_out):
        self._checked_parameters()
        if self._cols is not None:
            return self._backward_cached(grad_out)
        gx, gw, gb = self._bwd(grad_out, self._x, self.weight.data, self.stride, self._pads,
                               self.dilation, self.groups, self.requires_input_grad)
        self.weight.grad += gw
        if self.bias is not None:
            self.bias.grad += gb
        return gx

    def _backward_cached(self, grad_out):
        x, cols = self._x, self._cols
        expected = self._out_shape(x.shape)
        if getattr(grad_out, "shape", None) != expected:
            raise ValueError(f"{type(self).__name__}.backward expected grad_out of shape "
                             f"{expected}, got {getattr(grad_out, 'shape', None)}")
        geometry = self._geometry_for(x)
        n, k, positions = geometry.n, geometry.rows, geometry.positions
        # the layer's dtype: the kernels take one (a float64 gradient for a float32 layer
        # is rounded, as the float32 weight gradient it adds to would round it anyway)
        g = np.ascontiguousarray(grad_out, dtype=x.dtype).reshape(n, self.out_channels,
                                                                  positions)
        w2_t = self.weight.data.reshape(self.out_channels, -1).T
        # dL/dW = sum_n g[n] @ cols[n]^T (the per-sample products are summed below, in
        # sample order); dL/dcols = W^T @ g[n], folded back onto the input by col2im.
        # With many rows the products are taken transposed, cols[n] @ g[n]^T: OpenBLAS
        # ran them 2x faster on LeNet's second layer (K = 150), slower below K = 128.
        transposed = k >= WEIGHT_GRAD_TRANSPOSED_MIN_ROWS
        if transposed:
            products = np.empty((n, k, self.out_channels), dtype=g.dtype)
        else:
            products = np.empty((n, self.out_channels, k), dtype=g.dtype)
        needs_input_grad = self.requires_input_grad

        def backward_block(block):
            n0, n1 = block
            if transposed:
                g_t = np.ascontiguousarray(g[n0:n1].transpose(0, 2, 1))
                np.matmul(cols[n0:n1], g_t, out=products[n0:n1])
            else:
                np.matmul(g[n0:n1], cols[n0:n1].transpose(0, 2, 1), out=products[n0:n1])
            if needs_input_grad:
                np.matmul(w2_t, g[n0:n1], out=grad_cols[n0:n1])
                _run_col2im(grad_cols[n0:n1].reshape(-1), grad_x5, geometry, n0, n1 - n0, 0,
                            geometry.out_rows, kernel_threads, per_sample=True)

        n_parallel, kernel_threads, blocks = self._sample_blocks(geometry)
        if needs_input_grad:
            grad_x = np.zeros(x.shape, dtype=g.dtype)  # col2im adds
            grad_x5 = grad_x.reshape((n, self.in_channels) + geometry.in3)
        if ensure_gemm():
            threads = max(n_parallel, kernel_threads)
            size = _im2col.backward_workspace_size(k, self.out_channels, positions, transposed,
                                                   needs_input_grad)
            workspace = thread_workspace(threads, size, g.dtype) if size else None
            with blas_on_one_thread():
                _im2col.conv_backward_samples(
                    cols, g, np.ascontiguousarray(self.weight.data.reshape(self.out_channels, -1)),
                    products, transposed, grad_x5 if needs_input_grad else None, workspace,
                    *geometry.kernel_args(), threads)
        else:
            if needs_input_grad:
                grad_cols = np.empty((n, k, positions), dtype=g.dtype)
            map_blocks(backward_block, blocks, n_parallel)
        grad_w = products.sum(axis=0)
        self.weight.grad += (grad_w.T if transposed else grad_w).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(axis=(0, 2))
        return grad_x if needs_input_grad else None

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
        self._x = x
        with small_product(x.size * self.out_features):
            out = x @ self.weight.data.T
        if self.bias is not None:
            out += self.bias.data
        return out

    def backward(self, grad_out):
        x2 = self._x.reshape(-1, self.in_features)
        g2 = grad_out.reshape(-1, self.out_features)
        with small_product(x2.size * self.out_features):
            self.weight.grad += g2.T @ x2
            grad_x = grad_out @ self.weight.data
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


class BatchNorm2d(Module):
    """Batch normalisation over ``(N, H, W)`` for each channel, as ``torch.nn.BatchNorm2d``.

    Training: ``y = weight * (x - mean_B) / sqrt(var_B + eps) + bias`` with the
    batch's mean and (biased) variance, and the running statistics updated as
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased
    variance). Evaluation: the running statistics replace the batch's.

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
    >>> bn = nn.BatchNorm2d(1)
    >>> y = bn(np.array([[[[1.0, 3.0]]]], np.float32))
    >>> np.round(y, 3)
    array([[[[-1.,  1.]]]], dtype=float32)
    >>> bn.running_mean, bn.running_var
    (array([0.2], dtype=float32), array([1.1], dtype=float32))
    """

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

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != self.num_features:
            _check_input(self, x, 4, self.num_features, "(N, C, H, W)")
        if self.training:
            m = x.shape[0] * x.shape[2] * x.shape[3]
            if m < 2:
                raise ValueError(f"BatchNorm2d needs more than one value per channel in "
                                 f"training, got input shape {x.shape}")
            mean = x.mean(axis=(0, 2, 3))
            centred = x - mean[:, None, None]
            var = np.einsum("nchw,nchw->c", centred, centred) / m
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
            centred = x - mean[:, None, None]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat = centred * inv_std[:, None, None]
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, self.training
        if not self.affine:
            return xhat
        return xhat * self.weight.data[:, None, None] + self.bias.data[:, None, None]

    def backward(self, grad_out):
        xhat, inv_std = self._xhat, self._inv_std
        if self.affine:
            self.weight.grad += np.einsum("nchw,nchw->c", grad_out, xhat)
            self.bias.grad += grad_out.sum(axis=(0, 2, 3))
            scale = self.weight.data * inv_std
        else:
            scale = inv_std
        if not self._batch_stats:
            return grad_out * scale[:, None, None]
        m = grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[3]
        g_mean = grad_out.mean(axis=(0, 2, 3))
        gx_mean = np.einsum("nchw,nchw->c", grad_out, xhat) / m
        return (grad_out - g_mean[:, None, None] - xhat * gx_mean[:, None, None]) \
            * scale[:, None, None]

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ConvTranspose2d(Module):
    """2-D transposed convolution layer, ``torch.nn.ConvTranspose2d``'s parameters.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, output_padding, groups, dilation
        As in :func:`pyxconv.functional.conv_transpose2d`.
    bias : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter of shape (in_channels, out_channels / groups, kH, kW)
    bias : Parameter of shape (out_channels,) or None

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> up = nn.ConvTranspose2d(4, 2, 2, stride=2)
    >>> up(np.zeros((1, 4, 5, 5), np.float32)).shape
    (1, 2, 10, 10)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=np.float32):
        super().__init__()
        self.in_channels = as_int(in_channels, "in_channels", 1)
        self.out_channels = as_int(out_channels, "out_channels", 1)
        self.kernel_size = int_tuple(kernel_size, 2, "kernel_size", 1)
        self.stride = int_tuple(stride, 2, "stride", 1)
        self.padding = int_tuple(padding, 2, "padding", 0)
        self.output_padding = int_tuple(output_padding, 2, "output_padding", 0)
        self.dilation = int_tuple(dilation, 2, "dilation", 1)
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

    def _args(self):
        return (self.stride, self.padding, self.output_padding, self.groups, self.dilation)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != self.in_channels:
            _check_input(self, x, 4, self.in_channels, _LAYOUTS[2])
        self._x = x
        b = None if self.bias is None else self.bias.data
        return F.conv_transpose2d(x, self.weight.data, b, *self._args())

    def backward(self, grad_out):
        gx, gw, gb = F.conv_transpose2d_backward(grad_out, self._x, self.weight.data,
                                                 *self._args(), self.requires_input_grad)
        self.weight.grad += gw
        if self.bias is not None:
            self.bias.grad += gb
        return gx

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"ConvTranspose2d expected input with {self.in_channels} channels, "
                             f"got shape {tuple(input_shape)}")
        out = tuple((s - 1) * st - 2 * p + d * (k - 1) + op + 1 for s, st, p, d, k, op in zip(
            (h, w), self.stride, self.padding, self.dilation, self.kernel_size,
            self.output_padding))
        return (n, self.out_channels) + out

    def mult_adds(self, input_shape):
        n, c, h, w = input_shape
        return n * c * h * w * (self.out_channels // self.groups) * math.prod(self.kernel_size)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
