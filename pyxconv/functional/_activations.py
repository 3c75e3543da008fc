"""Element-wise activations (lecture 003's table) and their gradients.

==========  ==============================================  ================================
function    f(x)                                            f'(x)
==========  ==============================================  ================================
relu        max(0, x)                                       1 if x > 0 else 0
leaky_relu  x if x > 0 else a x  (a = 0.01)                 1 if x > 0 else a
prelu       x if x > 0 else a x  (a learned, per channel)   1 or a; df/da = x if x <= 0
elu         x if x > 0 else alpha (e^x - 1)                 1 if x > 0 else f(x) + alpha
sigmoid     1 / (1 + e^-x)                                  f (1 - f)
tanh        tanh x                                          1 - f^2
softplus    log(1 + e^(beta x)) / beta                      sigmoid(beta x)
==========  ==============================================  ================================

The names and arguments are those of ``torch.nn.functional``. Each forward
function has a ``*_backward`` partner that takes the gradient of the loss with
respect to the output and what the forward pass saw (its input ``x`` or, where
the derivative is cheaper from it, its output ``out``) and returns the gradient
with respect to the input. Inputs are float32 or float64 arrays of any shape
(integer and bool arrays are converted to float64, as everywhere in
:mod:`pyxconv.functional`); outputs have the input's shape and dtype.
"""
import numbers

import numpy as np

from pyxconv._kernels import _activations
from pyxconv._threads import threads_for
from pyxconv._validation import float_arrays

__all__ = [
    "elu", "elu_backward", "leaky_relu", "leaky_relu_backward", "prelu", "prelu_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "softplus", "softplus_backward",
    "tanh", "tanh_backward",
]


def _real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _floats(**named):
    """The named arrays in one float dtype; None is refused by name."""
    for name, value in named.items():
        if value is None:
            raise TypeError(f"{name} must be an array, got None")
    return float_arrays(**named)


def _with_gradient(grad_out, saved, saved_name):
    """grad_out and the saved forward array, checked to be of one shape and dtype."""
    grad_out, saved = _floats(grad_out=grad_out, **{saved_name: saved})
    if grad_out.shape != saved.shape:
        raise ValueError(f"expected grad_out of shape {saved.shape} (the shape of "
                         f"{saved_name}), got {grad_out.shape}")
    return grad_out, saved


def relu(x):
    """``max(0, x)`` element-wise, as ``torch.relu``.

    ``0 if x < 0 else x``: a NaN input gives NaN and -0.0 stays -0.0. Runs in
    a compiled kernel on pyxconv's threads.

    Examples
    --------
    Lecture 003 (WE-27):

    >>> import numpy as np
    >>> from pyxconv.functional import relu, relu_backward
    >>> out = relu(np.array([[-3.0, 2.0], [0.0, 5.0]]))
    >>> out
    array([[0., 2.],
           [0., 5.]])
    >>> relu_backward(np.ones((2, 2)), out)
    array([[0., 1.],
           [0., 1.]])
    """
    (x,) = _floats(x=x)
    x = np.asarray(x, order="C")  # as np.ascontiguousarray, but a 0-d array stays 0-d
    out = np.empty_like(x)
    _activations.relu_forward(x, out, threads_for(x.size))
    return out


def relu_(x):
    """:func:`relu` in place on ``x``, a C-contiguous float ndarray; returns ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import relu_
    >>> x = np.array([-1.0, 0.5])
    >>> relu_(x) is x, x
    (True, array([0. , 0.5]))
    """
    try:
        _activations.relu_forward(x, x, threads_for(x.size))  # checks x itself
    except (TypeError, ValueError, AttributeError):  # not an ndarray, its dtype, layout, read-only
        raise TypeError(f"relu_ needs a writeable C-contiguous float32 or float64 ndarray, "
                        f"got {type(x).__name__} {getattr(x, 'dtype', '')}") from None
    return x


def relu_backward(grad_out, out):
    """Gradient of :func:`relu` from its output: ``0 if out <= 0 else grad_out``.

    A select, as torch's ``threshold_backward``: masked entries are +0.0 even
    where the incoming gradient is negative, infinite or NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import relu_backward
    >>> relu_backward(np.array([-1.0, np.nan, 2.0]), np.array([0.0, 0.0, 3.0]))
    array([0., 0., 2.])
    """
    grad_out, out = _with_gradient(grad_out, out, "out")
    grad_out, out = np.asarray(grad_out, order="C"), np.asarray(out, order="C")
    grad_in = np.empty_like(out)
    _activations.relu_backward(grad_out.reshape(-1), out.reshape(-1), grad_in.reshape(-1),
                               threads_for(out.size))
    return grad_in


def leaky_relu(x, negative_slope=0.01):
    """``x`` where ``x > 0``, else ``negative_slope * x``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import leaky_relu
    >>> leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    (x,) = _floats(x=x)
    slope = x.dtype.type(_real(negative_slope, "negative_slope"))
    return np.where(x > 0, x, x * slope)


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    """Gradient of :func:`leaky_relu` with respect to its input ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import leaky_relu_backward
    >>> leaky_relu_backward(np.array([1.0, 1.0]), np.array([-2.0, 3.0]), 0.1)
    array([0.1, 1. ])
    """
    grad_out, x = _with_gradient(grad_out, x, "x")
    slope = x.dtype.type(_real(negative_slope, "negative_slope"))
    return np.where(x > 0, grad_out, grad_out * slope)


def _prelu_slope(x, weight):
    if weight.ndim != 1:
        raise ValueError(f"weight must be 1-D, one slope or one per channel, got shape "
                         f"{weight.shape}")
    if weight.shape[0] == 1:
        return weight.reshape((1,) * x.ndim)
    if x.ndim < 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"weight holds {weight.shape[0]} slopes, so x must have "
                         f"{weight.shape[0]} channels on axis 1, got shape {x.shape}")
    return weight.reshape((1, -1) + (1,) * (x.ndim - 2))


def prelu(x, weight):
    """Leaky ReLU with the slopes ``weight``: one shared, or one per channel (axis 1).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import prelu

    Two samples (rows) of two channels (columns), slopes 0.25 and 0.5:

    >>> prelu(np.array([[-4.0, 4.0], [-2.0, -1.0]]), np.array([0.25, 0.5]))
    array([[-1. ,  4. ],
           [-0.5, -0.5]])
    """
    x, weight = _floats(x=x, weight=weight)
    return np.where(x > 0, x, x * _prelu_slope(x, weight))


def prelu_backward(grad_out, x, weight):
    """Gradients of :func:`prelu`: ``(grad_x, grad_weight)``.

    ``grad_weight`` sums ``grad_out * x`` over the entries where ``x <= 0``: over
    everything for one shared slope, over all axes but 1 for per-channel slopes.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import prelu_backward
    >>> grad_x, grad_weight = prelu_backward(np.ones((1, 2)), np.array([[-4.0, 4.0]]),
    ...                                      np.array([0.25]))
    >>> grad_x, grad_weight
    (array([[0.25, 1.  ]]), array([-4.]))
    """
    grad_out, x, weight = _floats(grad_out=grad_out, x=x, weight=weight)
    if grad_out.shape != x.shape:
        raise ValueError(f"expected grad_out of shape {x.shape} (the shape of x), "
                         f"got {grad_out.shape}")
    slope = _prelu_slope(x, weight)
    negative = x <= 0
    contribution = np.where(negative, grad_out * x, x.dtype.type(0))
    if weight.shape[0] == 1:
        grad_weight = contribution.sum().reshape(1)
    else:
        grad_weight = contribution.sum(axis=(0,) + tuple(range(2, x.ndim)))
    return np.where(negative, grad_out * slope, grad_out), grad_weight.astype(x.dtype, copy=False)


def elu(x, alpha=1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import elu
    >>> np.round(elu(np.array([-1.0, 2.0])), 4)
    array([-0.6321,  2.    ])
    """
    (x,) = _floats(x=x)
    alpha = _real(alpha, "alpha")
    negative_part = (alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
    return np.where(x > 0, x, negative_part)


def elu_backward(grad_out, x, alpha=1.0):
    """Gradient of :func:`elu` with respect to its input: 1, or ``alpha * exp(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import elu_backward
    >>> elu_backward(np.ones(2), np.array([0.0, 2.0]), alpha=0.5)
    array([0.5, 1. ])
    """
    grad_out, x = _with_gradient(grad_out, x, "x")
    alpha = _real(alpha, "alpha")
    slope = (alpha * np.exp(np.minimum(x, 0))).astype(x.dtype, copy=False)
    return np.where(x > 0, grad_out, grad_out * slope)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2`` so nothing overflows.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import sigmoid, sigmoid_backward
    >>> out = sigmoid(np.array([0.0, 1000.0, -1000.0]))
    >>> out
    array([0.5, 1. , 0. ])
    >>> sigmoid_backward(np.ones(3), out)
    array([0.25, 0.  , 0.  ])
    """
    (x,) = _floats(x=x)
    half = x.dtype.type(0.5)
    return half * (1 + np.tanh(half * x))


def sigmoid_backward(grad_out, out):
    """Gradient of :func:`sigmoid` from its output: ``grad_out * out * (1 - out)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import sigmoid_backward
    >>> sigmoid_backward(np.array([2.0]), np.array([0.5]))
    array([0.5])
    """
    grad_out, out = _with_gradient(grad_out, out, "out")
    return grad_out * out * (1 - out)


def tanh(x):
    """Hyperbolic tangent.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import tanh
    >>> tanh(np.array([0.0]))
    array([0.])
    """
    (x,) = _floats(x=x)
    return np.tanh(x)


def tanh_backward(grad_out, out):
    """Gradient of :func:`tanh` from its output: ``grad_out * (1 - out**2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import tanh_backward
    >>> tanh_backward(np.array([1.0, 1.0]), np.array([0.0, 0.5]))
    array([1.  , 0.75])
    """
    grad_out, out = _with_gradient(grad_out, out, "out")
    return grad_out * (1 - out * out)


def softplus(x, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x > threshold``.

    As PyTorch: the linear branch keeps large inputs exact.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import softplus
    >>> np.round(softplus(np.array([0.0, 30.0])), 4)
    array([ 0.6931, 30.    ])
    """
    (x,) = _floats(x=x)
    beta, threshold = _real(beta, "beta"), _real(threshold, "threshold")
    if beta == 0:
        raise ValueError("beta must be nonzero, got 0.0")
    scaled = beta * x
    smooth = (np.logaddexp(0, scaled) / beta).astype(x.dtype, copy=False)
    return np.where(scaled > threshold, x, smooth)


def softplus_backward(grad_out, x, beta=1.0, threshold=20.0):
    """Gradient of :func:`softplus` with respect to its input: ``sigmoid(beta * x)``, or 1.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import softplus_backward
    >>> softplus_backward(np.ones(2), np.array([0.0, 30.0]))
    array([0.5, 1. ])
    """
    grad_out, x = _with_gradient(grad_out, x, "x")
    beta, threshold = _real(beta, "beta"), _real(threshold, "threshold")
    scaled = beta * x
    slope = (0.5 * (1 + np.tanh(0.5 * scaled))).astype(x.dtype, copy=False)
    return np.where(scaled > threshold, grad_out, grad_out * slope)
