"""The fully connected layer's forward, ``x @ weight.T + bias``, as ``torch.nn.functional.linear``.

The product runs on the BLAS the convolutions call (scipy's ``cython_blas``),
whatever BLAS NumPy was built with, and the bias is added in the same
compiled pass; at batch 1 the whole call is a few microseconds.
"""
import math

import numpy as np

from pyxconv._kernels import _im2col
from pyxconv._parallel import small_product
from pyxconv._validation import FLOAT_DTYPES, check_ndim, float_arrays


def _features(x, weight):
    """``(out_features, in_features)`` of a 2-D weight that x's last dimension fits, or ValueError."""
    check_ndim(weight, 2, "weight", "(out_features, in_features)")
    out_features, in_features = weight.shape
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(f"x must have shape (..., {in_features}) for a weight of shape "
                         f"{weight.shape}, got {x.shape}")
    return out_features, in_features


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``: a fully connected layer, as ``torch.nn.functional.linear``.

    Parameters
    ----------
    x : array_like, shape (..., in_features)
    weight : array_like, shape (out_features, in_features)
    bias : array_like, shape (out_features,), optional

    Returns
    -------
    ndarray, shape (..., out_features), of the operands' common float dtype.

    Examples
    --------
    Lecture 002's fully connected layer: three inputs, two outputs.

    >>> import numpy as np
    >>> from pyxconv.functional import linear
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> weight = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    >>> linear(x, weight, np.array([0.0, 1.0]))
    array([[-2.,  4.]])
    """
    if not (type(x) is np.ndarray and type(weight) is np.ndarray and x.dtype in FLOAT_DTYPES
            and weight.dtype == x.dtype
            and (bias is None or (type(bias) is np.ndarray and bias.dtype == x.dtype))):
        x, weight, bias = float_arrays(x=x, weight=weight, bias=bias)
    out_features, in_features = _features(x, weight)
    if bias is not None and bias.shape != (out_features,):
        raise ValueError(f"bias must have shape ({out_features},), got {bias.shape}")
    out = np.empty(x.shape[:-1] + (out_features,), x.dtype)
    rows = math.prod(x.shape[:-1])
    with small_product(rows * in_features * out_features, one_row=rows == 1):
        _im2col.linear_forward(np.ascontiguousarray(x).reshape(rows, in_features),
                               np.ascontiguousarray(weight),
                               None if bias is None else np.ascontiguousarray(bias), out)
    return out


def linear_backward(grad_out, x, weight, needs_input_grad=True):
    """Gradients of :func:`linear`: ``(grad_x, grad_weight, grad_bias)``.

    ``grad_x = grad_out @ weight``, ``grad_weight = grad_out^T @ x`` (over
    every leading dimension of x) and ``grad_bias`` the sum of grad_out over
    them, as torch's autograd gives for ``torch.nn.functional.linear``. The
    products run on the BLAS :func:`linear` calls (scipy's ``cython_blas``).

    Parameters
    ----------
    grad_out : array_like, shape (..., out_features)
    x : array_like, shape (..., in_features)
    weight : array_like, shape (out_features, in_features)
    needs_input_grad : bool, default True
        False skips grad_x (returned as None).

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import linear_backward
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> weight = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    >>> grad_x, grad_weight, grad_bias = linear_backward(np.array([[1.0, 2.0]]), x, weight)
    >>> grad_x, grad_weight, grad_bias
    (array([[2., 1., 0.]]), array([[1., 2., 3.],
           [2., 4., 6.]]), array([1., 2.]))
    """
    if not (type(x) is np.ndarray and type(weight) is np.ndarray and x.dtype in FLOAT_DTYPES
            and weight.dtype == x.dtype and type(grad_out) is np.ndarray
            and grad_out.dtype == x.dtype):
        grad_out, x, weight = float_arrays(grad_out=grad_out, x=x, weight=weight)
    out_features, in_features = _features(x, weight)
    if grad_out.shape != x.shape[:-1] + (out_features,):
        raise ValueError(f"grad_out must have shape {x.shape[:-1] + (out_features,)} for x of "
                         f"shape {x.shape} and weight {weight.shape}, got {grad_out.shape}")
    rows = math.prod(x.shape[:-1])
    x2 = np.ascontiguousarray(x).reshape(rows, in_features)
    g2 = np.ascontiguousarray(grad_out).reshape(rows, out_features)
    grad_weight = np.empty(weight.shape, x.dtype)
    grad_x = np.empty(x.shape, x.dtype) if needs_input_grad else None
    with small_product(rows * in_features * out_features, one_row=rows == 1):
        _im2col.linear_backward(x2, np.ascontiguousarray(weight), g2, grad_weight,
                                None if grad_x is None else grad_x.reshape(rows, in_features))
    return grad_x, grad_weight, g2.sum(axis=0)


def prepare_linear(input_shape, weight, bias=None, relu=False):
    """:func:`linear` for inputs of one shape, checked once: a callable ``x -> out``.

    ``weight`` and ``bias`` (arrays of one float dtype) are bound: changes
    made to them in place show in later calls. Each call checks only that
    ``x`` is a C-contiguous ndarray of ``input_shape`` and the weight's dtype
    (``TypeError`` otherwise) and returns ``linear(x, weight, bias)``, the
    same bits, with ReLU applied (``0 if v < 0 else v``) when ``relu``: an
    eval-mode :class:`~pyxconv.nn.Sequential` runs its Linear layers so.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.functional import prepare_linear
    >>> forward = prepare_linear((1, 3), np.array([[1.0, 0.0, -1.0]]), relu=True)
    >>> forward(np.array([[1.0, 2.0, 3.0]])), forward(np.array([[3.0, 2.0, 1.0]]))
    (array([[0.]]), array([[2.]]))
    """
    if not (type(weight) is np.ndarray and weight.dtype in FLOAT_DTYPES
            and weight.flags.c_contiguous and weight.ndim == 2):
        raise TypeError(f"weight must be a C-contiguous 2-D float32 or float64 ndarray, got "
                        f"{type(weight).__name__} {getattr(weight, 'dtype', '')} "
                        f"{getattr(weight, 'shape', '')}")
    out_features, in_features = weight.shape
    if bias is not None and not (type(bias) is np.ndarray and bias.dtype == weight.dtype
                                 and bias.shape == (out_features,)):
        raise TypeError(f"bias must be a ({out_features},) ndarray of the weight's dtype "
                        f"{weight.dtype}, got {type(bias).__name__} {getattr(bias, 'dtype', '')} "
                        f"{getattr(bias, 'shape', '')}")
    input_shape = tuple(input_shape)
    if not input_shape or input_shape[-1] != in_features:
        raise ValueError(f"input_shape must be (..., {in_features}) for a weight of shape "
                         f"{weight.shape}, got {input_shape}")
    bias = None if bias is None else np.ascontiguousarray(bias)
    out_shape, dtype = input_shape[:-1] + (out_features,), weight.dtype
    rows = math.prod(input_shape[:-1])
    limit = small_product(rows * in_features * out_features, one_row=rows == 1)
    kernel = _im2col.linear_forward
    matrix = len(input_shape) == 2  # else the kernel gets x as (rows, in_features)

    def forward(x):
        if getattr(x, "shape", None) != input_shape or x.dtype != dtype:
            raise TypeError(f"x must be a C-contiguous {dtype} ndarray of shape {input_shape}, "
                            f"got {type(x).__name__} {getattr(x, 'dtype', '')} "
                            f"{getattr(x, 'shape', '')}")
        out = np.empty(out_shape, dtype)
        with limit:
            # the kernel checks the dtype and the layout
            kernel(x if matrix else x.reshape(rows, in_features), weight, bias, out, relu)
        return out
    return forward
