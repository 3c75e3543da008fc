"""Activations (lecture 003's table), element-wise, with their derivatives.

==========  ==============================================  ================================
layer       f(x)                                            f'(x)
==========  ==============================================  ================================
ReLU        max(0, x)                                       1 if x > 0 else 0
LeakyReLU   x if x > 0 else a x  (a = 0.01)                 1 if x > 0 else a
PReLU       x if x > 0 else a x  (a learned, per channel)   1 or a; df/da = x if x <= 0
ELU         x if x > 0 else alpha (e^x - 1)                 1 if x > 0 else f(x) + alpha
Sigmoid     1 / (1 + e^-x)                                  f (1 - f)
Tanh        tanh x                                          1 - f^2
Softplus    log(1 + e^(beta x)) / beta                      sigmoid(beta x)
==========  ==============================================  ================================
"""
import numpy as np

from pyxconv._kernels import _activations
from pyxconv._threads import threads_for
from pyxconv.nn._module import Module

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Sigmoid", "Softplus", "Tanh"]

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ReLU(Module):
    """``max(0, x)``; the gradient passes where the output is positive.

    As ``torch.relu``: ``0 if x < 0 else x``, so a NaN input gives NaN (and
    -0.0 stays -0.0), and the backward pass is a select (``0 if out <= 0
    else grad``), so masked entries are +0.0 whatever the incoming gradient. float32 and float64 run in a compiled kernel on
    pyxconv's threads.

    Examples
    --------
    Lecture 003 (WE-27):

    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.ReLU()(np.array([[-3.0, 2.0], [0.0, 5.0]]))
    array([[0., 2.],
           [0., 5.]])
    """

    def forward(self, x):
        if isinstance(x, np.ndarray) and x.dtype in _KERNEL_DTYPES:
            x = np.asarray(x, order="C")  # keeps a 0-d array 0-d
            out = np.empty_like(x)
            _activations.relu_forward(x.reshape(-1), out.reshape(-1), threads_for(x.size))
        else:
            x = np.asarray(x)
            out = np.where(x < 0, x.dtype.type(0), x)
        self._out = out
        return out

    def backward(self, grad_out):
        out = self._out
        if getattr(grad_out, "shape", None) != out.shape:
            raise ValueError(f"ReLU.backward expected grad_out of shape {out.shape}, got "
                             f"{getattr(grad_out, 'shape', None)}")
        # a select, as torch's threshold_backward: +0 where masked, even for a
        # negative, infinite or NaN gradient
        if out.dtype in _KERNEL_DTYPES and grad_out.dtype == out.dtype:
            grad_out = np.asarray(grad_out, order="C")
            grad_in = np.empty_like(out)
            _activations.relu_backward(grad_out.reshape(-1), out.reshape(-1),
                                       grad_in.reshape(-1), threads_for(out.size))
            return grad_in
        return np.where(out <= 0, grad_out.dtype.type(0), grad_out)


class LeakyReLU(Module):
    """``x`` for ``x > 0`` else ``negative_slope * x``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.LeakyReLU(0.1)(np.array([-2.0, 3.0]))
    array([-0.2,  3. ])
    """

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        self._pos = x > 0
        return np.where(self._pos, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad_out):
        return np.where(self._pos, grad_out, grad_out * grad_out.dtype.type(self.negative_slope))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """Leaky ReLU whose negative slope is learned, one per channel or one shared.

    Parameters
    ----------
    num_parameters : int, default 1
        1 (one slope for all channels) or the number of channels (axis 1).
    init : float, default 0.25
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter of shape (num_parameters,)

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.PReLU()(np.array([[-4.0, 4.0]], np.float32))
    array([[-1.,  4.]], dtype=float32)
    """

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = int(num_parameters)
        self.weight = self._param("weight", np.full(self.num_parameters, init, dtype=dtype))

    def _slope(self, x):
        a = self.weight.data
        if self.num_parameters == 1:
            return a.reshape((1,) * x.ndim)
        if x.ndim < 2 or x.shape[1] != self.num_parameters:
            raise ValueError(f"PReLU with {self.num_parameters} parameters expected input with "
                             f"{self.num_parameters} channels on axis 1, got shape {x.shape}")
        return a.reshape((1, -1) + (1,) * (x.ndim - 2))

    def forward(self, x):
        slope = self._slope(x)
        self._x = x
        return np.where(x > 0, x, x * slope)

    def backward(self, grad_out):
        x = self._x
        neg = x <= 0
        contrib = grad_out * x * neg
        if self.num_parameters == 1:
            self.weight.grad += contrib.sum()
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            self.weight.grad += contrib.sum(axis=axes)
        return np.where(neg, grad_out * self._slope(x), grad_out)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """``x`` for ``x > 0`` else ``alpha * (exp(x) - 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> np.round(nn.ELU()(np.array([-1.0, 2.0])), 4)
    array([-0.6321,  2.    ])
    """

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x):
        self._pos = x > 0
        neg = self.alpha * np.expm1(np.minimum(x, 0))
        out = np.where(self._pos, x, neg.astype(x.dtype, copy=False))
        self._out = out
        return out

    def backward(self, grad_out):
        return np.where(self._pos, grad_out, grad_out * (self._out + self.alpha))

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2`` (no overflow).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.Sigmoid()(np.array([0.0]))
    array([0.5])
    """

    def forward(self, x):
        out = 0.5 * (1 + np.tanh(0.5 * x))
        self._out = out
        return out

    def backward(self, grad_out):
        return grad_out * self._out * (1 - self._out)


class Tanh(Module):
    """Hyperbolic tangent.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> nn.Tanh()(np.array([0.0]))
    array([0.])
    """

    def forward(self, x):
        out = np.tanh(x)
        self._out = out
        return out

    def backward(self, grad_out):
        return grad_out * (1 - self._out * self._out)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold`` (as PyTorch).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv import nn
    >>> np.round(nn.Softplus()(np.array([0.0, 30.0])), 4)
    array([ 0.6931, 30.    ])
    """

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x):
        bx = self.beta * x
        self._x = x
        self._linear = bx > self.threshold
        soft = (np.logaddexp(0, bx) / self.beta).astype(x.dtype, copy=False)
        return np.where(self._linear, x, soft)

    def backward(self, grad_out):
        sig = 0.5 * (1 + np.tanh(0.5 * self.beta * self._x))
        return np.where(self._linear, grad_out, grad_out * sig)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"
