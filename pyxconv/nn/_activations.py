"""Activation layers: each keeps what its backward needs and calls :mod:`pyxconv.functional`.

The formulas and derivatives (lecture 003's table) are those of
``pyxconv.functional._activations``: ReLU is ``relu``, LeakyReLU
``leaky_relu``, PReLU ``prelu``, ELU ``elu``, Sigmoid ``sigmoid``, Tanh
``tanh`` and Softplus ``softplus``.
"""
import numpy as np

from pyxconv import functional as F
from pyxconv.nn._module import Module

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Sigmoid", "Softplus", "Tanh"]

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
        self._out = F.relu(x)
        return self._out

    def backward(self, grad_out):
        return F.relu_backward(grad_out, self._out)


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
        self._x = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, grad_out):
        return F.leaky_relu_backward(grad_out, self._x, self.negative_slope)

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

    def forward(self, x):
        self._x = x
        return F.prelu(x, self.weight.data)

    def backward(self, grad_out):
        grad_x, grad_weight = F.prelu_backward(grad_out, self._x, self.weight.data)
        self.weight.grad += grad_weight
        return grad_x

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
        self._x = x
        return F.elu(x, self.alpha)

    def backward(self, grad_out):
        return F.elu_backward(grad_out, self._x, self.alpha)

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
        self._out = F.sigmoid(x)
        return self._out

    def backward(self, grad_out):
        return F.sigmoid_backward(grad_out, self._out)


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
        self._out = F.tanh(x)
        return self._out

    def backward(self, grad_out):
        return F.tanh_backward(grad_out, self._out)


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
        self._x = x
        return F.softplus(x, self.beta, self.threshold)

    def backward(self, grad_out):
        return F.softplus_backward(grad_out, self._x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"
