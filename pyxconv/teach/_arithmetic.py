"""The lectures' arithmetic, computed: output sizes, parameter and operation counts.

The lectures do these sums on slides (``(N - F + 2P)/S + 1``, ``F*F*C*K + K``,
``28*28*128*1*1*256``). Here they are functions, so that the documentation
prints numbers that pyxconv computed instead of numbers someone typed.
"""
import math
import numbers
from fractions import Fraction

from pyxconv._validation import as_int

__all__ = [
    "conv_mult_adds",
    "conv_output_size",
    "conv_params",
    "dense_params",
    "jacobian_bytes",
    "receptive_field",
]


def _pair(value, name, minimum):
    """An int or an (int, int) pair, as a tuple of 2 ints >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return tuple(as_int(v, name, minimum) for v in value)
    v = as_int(value, name, minimum)
    return (v, v)


def _check_bool(value, name):
    if not isinstance(value, (bool, int)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def conv_output_size(input_size, kernel_size, stride=1, padding=0, dilation=1, *,
                     ceil_mode=False, exact=False):
    """Output length of a convolution or pooling window along one dimension.

    Parameters
    ----------
    input_size : int
        Input length :math:`N` (>= 1).
    kernel_size : int
        Window length :math:`F` (>= 1).
    stride : int, default 1
        Step :math:`S` between windows (>= 1).
    padding : int or (int, int), default 0
        Zeros added on each side (:math:`P`), or a ``(before, after)`` pair.
    dilation : int, default 1
        Spacing between kernel taps; the window then spans
        :math:`d(F - 1) + 1` samples.
    ceil_mode : bool, default False
        Round the number of steps up instead of down (PyTorch's pooling
        ``ceil_mode``): a last, partial window is kept if it starts inside
        the input or its left padding.
    exact : bool, default False
        Return the lecture's unrounded value :math:`(N - F + 2P)/S + 1` as a
        :class:`fractions.Fraction`. A non-integer value means that the
        filter "doesn't fit".

    Returns
    -------
    int or fractions.Fraction
        The output length.

    Raises
    ------
    ValueError
        If a size is below 1, the padding is negative, or the window is
        longer than the padded input.
    TypeError
        If a size is not an integer.

    Notes
    -----
    With padding :math:`P` on both sides the output size is

    .. math::

        N_{out} = \\left\\lfloor \\frac{N + 2P - d(F - 1) - 1}{S} \\right\\rfloor + 1,

    which for :math:`d = 1` is the lectures' :math:`(N - F + 2P)/S + 1`:
    the first window starts at 0, the last one at the largest multiple of
    :math:`S` that leaves room for :math:`F` samples, and there is one
    output per start.

    Examples
    --------
    The lectures' 7x7 input and 3x3 filter (WE-12):

    >>> from pyxconv.teach import conv_output_size
    >>> [conv_output_size(7, 3, stride=s) for s in (1, 2)]
    [5, 3]
    >>> print(conv_output_size(7, 3, stride=3, exact=True))
    7/3

    2x2 pooling of an odd size needs ``ceil_mode`` to give ``ceil(W/2)`` (WE-33):

    >>> conv_output_size(5, 2, stride=2), conv_output_size(5, 2, stride=2, ceil_mode=True)
    (2, 3)
    """
    n = as_int(input_size, "input_size", 1)
    k = as_int(kernel_size, "kernel_size", 1)
    s = as_int(stride, "stride", 1)
    d = as_int(dilation, "dilation", 1)
    before, after = _pair(padding, "padding", 0)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    span = d * (k - 1) + 1
    padded = n + before + after
    if span > padded:
        raise ValueError(
            f"kernel_size={k} (span {span} with dilation {d}) is longer than the "
            f"padded input ({n} + {before} + {after} = {padded})")
    if exact:
        return Fraction(padded - span, s) + 1
    if not ceil_mode:
        return (padded - span) // s + 1
    out = -(-(padded - span) // s) + 1
    if (out - 1) * s >= n + before:  # the last window would start in the right padding
        out -= 1
    return out


def conv_params(c_in, c_out, kernel_size, bias=True, groups=1):
    """Number of learnable parameters of a convolution layer.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels (:math:`C` and :math:`K`).
    kernel_size : int or tuple of ints
        Filter size :math:`F` (an int means :math:`F \\times F`), or one
        size per spatial dimension.
    bias : bool, default True
        Count one bias per output channel.
    groups : int, default 1
        Grouped convolution: each filter sees ``c_in / groups`` channels.

    Returns
    -------
    int
        :math:`F^2 C K + K` for a square 2-D kernel with bias.

    Raises
    ------
    ValueError
        If a size is below 1 or ``groups`` does not divide both channel counts.
    TypeError
        If a size is not an integer.

    Notes
    -----
    Each filter spans the full input depth (of its group), so it has
    :math:`F \\cdot F \\cdot C` weights; :math:`K` filters add :math:`K` biases.

    Examples
    --------
    Ten 5x5 filters on a 32x32x3 image (WE-15): 76 parameters per filter.

    >>> from pyxconv.teach import conv_params
    >>> conv_params(3, 1, 5), conv_params(3, 10, 5)
    (76, 760)
    """
    c_in = as_int(c_in, "c_in", 1)
    c_out = as_int(c_out, "c_out", 1)
    groups = as_int(groups, "groups", 1)
    bias = _check_bool(bias, "bias")
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    if isinstance(kernel_size, (tuple, list)):
        if not kernel_size:
            raise ValueError("kernel_size must not be empty")
        taps = math.prod(as_int(k, "kernel_size", 1) for k in kernel_size)
    else:
        k = as_int(kernel_size, "kernel_size", 1)
        taps = k * k
    return taps * (c_in // groups) * c_out + (c_out if bias else 0)


def dense_params(n_in, n_out, bias=True):
    """Number of learnable parameters of a fully connected layer.

    Parameters
    ----------
    n_in, n_out : int
        Input features (for an image, ``H * W * C`` after flattening) and
        output units.
    bias : bool, default True
        Count one bias per output unit.

    Returns
    -------
    int
        ``n_in * n_out (+ n_out)``.

    Raises
    ------
    ValueError
        If a size is below 1.
    TypeError
        If a size is not an integer.

    Examples
    --------
    Lecture 004's MLP on flattened 28x28 MNIST digits (WE-08), weights only:

    >>> from pyxconv.teach import dense_params
    >>> dense_params(28 * 28, 128, bias=False) + dense_params(128, 10, bias=False)
    101632
    """
    n_in = as_int(n_in, "n_in", 1)
    n_out = as_int(n_out, "n_out", 1)
    bias = _check_bool(bias, "bias")
    return n_in * n_out + (n_out if bias else 0)


def conv_mult_adds(output_size, c_in, c_out, kernel_size):
    """Multiply-accumulate operations of one convolution layer, for one image.

    Parameters
    ----------
    output_size : int or (int, int)
        Spatial size of the output (an int means square).
    c_in, c_out : int
        Input and output channels.
    kernel_size : int or (int, int)
        Filter size (an int means square).

    Returns
    -------
    int
        ``H_out * W_out * c_out * kH * kW * c_in``: every output value is a
        dot product of length ``kH * kW * c_in``.

    Raises
    ------
    ValueError
        If a size is below 1.
    TypeError
        If a size is not an integer.

    Examples
    --------
    The 3x3 branch of GoogLeNet's naive inception module (WE-19):
    ``28*28*192*3*3*256``.

    >>> from pyxconv.teach import conv_mult_adds
    >>> conv_mult_adds(28, 256, 192, 3)
    346816512
    """
    h, w = _pair(output_size, "output_size", 1)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    c_in = as_int(c_in, "c_in", 1)
    c_out = as_int(c_out, "c_out", 1)
    return h * w * c_out * kh * kw * c_in


def receptive_field(layers):
    """Receptive field of a stack of convolution or pooling layers, in input samples.

    Parameters
    ----------
    layers : sequence of int or of (kernel_size, stride) or (kernel_size, stride, dilation)
        The layers from the input up. An int is a stride-1 layer of that
        kernel size.

    Returns
    -------
    int
        How many consecutive input samples (along one dimension) one output
        of the last layer depends on.

    Raises
    ------
    ValueError
        If ``layers`` is empty or a size is below 1.
    TypeError
        If a layer is not an int or a tuple of ints.

    Notes
    -----
    Layer :math:`l` widens the field by :math:`d_l (F_l - 1)` samples of its
    own input, and one sample of its input is :math:`\\prod_{i<l} S_i`
    samples of the network's input, so

    .. math::

        r = 1 + \\sum_l d_l (F_l - 1) \\prod_{i < l} S_i .

    Examples
    --------
    Three stacked 3x3 convolutions see as much as one 7x7 (WE-18):

    >>> from pyxconv.teach import receptive_field
    >>> receptive_field([3, 3, 3])
    7
    >>> receptive_field([(3, 1), (2, 2), (3, 1)])  # conv, 2x2 pool, conv
    8
    """
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a sequence of layers, got {type(layers).__name__}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must not be empty")
    field, jump = 1, 1
    for i, layer in enumerate(layers):
        name = f"layers[{i}]"
        if isinstance(layer, (tuple, list)):
            if not 1 <= len(layer) <= 3:
                raise ValueError(
                    f"{name} must be kernel_size or (kernel_size, stride[, dilation]), "
                    f"got {layer!r}")
            k, s, d = (tuple(layer) + (1, 1))[:3]
        elif isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
            k, s, d = layer, 1, 1
        else:
            raise TypeError(f"{name} must be an int or a tuple of ints, got {layer!r}")
        k = as_int(k, name, 1)
        s = as_int(s, name, 1)
        d = as_int(d, name, 1)
        field += d * (k - 1) * jump
        jump *= s
    return field


def jacobian_bytes(n, d, m, itemsize=4):
    """Memory of the explicit Jacobian of a layer mapping (n, d) to (n, m).

    Parameters
    ----------
    n : int
        Batch size.
    d, m : int
        Input and output features per sample.
    itemsize : int, default 4
        Bytes per entry (4 for float32).

    Returns
    -------
    int
        ``(n * d) * (n * m) * itemsize``: every output value's derivative
        with respect to every input value.

    Raises
    ------
    ValueError
        If a size is below 1.
    TypeError
        If a size is not an integer.

    Notes
    -----
    Backpropagation never builds this matrix: for ``y = x @ w`` the product
    of the upstream gradient with the Jacobian is just ``grad_y @ w.T``.

    Examples
    --------
    Lecture 002's example, N = 64 and D = M = 4096 (WE-11): 256 GiB.

    >>> from pyxconv.teach import jacobian_bytes
    >>> jacobian_bytes(64, 4096, 4096)
    274877906944
    >>> jacobian_bytes(64, 4096, 4096) / 2**30
    256.0
    """
    n = as_int(n, "n", 1)
    d = as_int(d, "d", 1)
    m = as_int(m, "m", 1)
    itemsize = as_int(itemsize, "itemsize", 1)
    return n * d * n * m * itemsize
