"""Explain one output cell of a 2-D convolution, as a lecture slide does.

A slide shows the window of the input under the kernel, the kernel, the
pointwise products and their sum. :func:`explain_output_cell` computes
exactly those from the arrays a student passes to
:func:`pyxconv.functional.conv2d`, so the table can be checked against the
library's output.
"""
from dataclasses import dataclass

import numpy as np

from pyxconv._validation import as_int, float_arrays, padding_pairs

__all__ = ["CellExplanation", "explain_output_cell"]


def _fmt(value):
    """An integer-valued float as an int, anything else in short form."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def _term(value):
    s = _fmt(value)
    return f"({s})" if s.startswith("-") else s


def _grid(matrix, width):
    cells = [[_fmt(v) for v in row] for row in matrix]
    return [" ".join(c.rjust(width) for c in row) for row in cells]


@dataclass(frozen=True, repr=False)
class CellExplanation:
    """One output cell of a 2-D convolution, taken apart.

    Attributes
    ----------
    index : (int, int)
        The output position ``(i, j)``.
    rows, cols : range
        The rows and columns of the padded input that the window covers.
    window : ndarray of shape (C_in, kH, kW)
        The (zero-padded) input under the kernel.
    kernel : ndarray of shape (C_in, kH, kW)
        The filter.
    products : ndarray of shape (C_in, kH, kW)
        ``window * kernel``, element by element.
    bias : float
        Added once to the sum (0 without a bias).
    value : float
        ``products.sum() + bias``: the output cell.

    Its ``str`` (and ``repr``) is the lecture's table: one block per input
    channel with window, kernel and products side by side, then the sum.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.teach import explain_output_cell
    >>> cell = explain_output_cell(np.arange(9).reshape(3, 3), np.eye(2), (1, 1))
    >>> cell.window[0].astype(int)
    array([[4, 5],
           [7, 8]])
    >>> cell.value
    12.0
    >>> print(cell)
    output cell (1, 1): rows 1..2, columns 1..2 of the padded input
    window   kernel   products
       4 5      1 0        4 0
       7 8      0 1        0 8
    sum: 4 + 0 + 0 + 8 = 12
    """

    index: tuple
    rows: range
    cols: range
    window: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    bias: float
    value: float

    def __str__(self):
        i, j = self.index
        lines = [f"output cell ({i}, {j}): rows {self.rows.start}..{self.rows.stop - 1}, "
                 f"columns {self.cols.start}..{self.cols.stop - 1} of the padded input"]
        channels = self.window.shape[0]
        sums = []
        for c in range(channels):
            mats = (self.window[c], self.kernel[c], self.products[c])
            cell = max(len(_fmt(v)) for m in mats for v in m.ravel())
            blocks = [_grid(m, cell) for m in mats]
            widths = [max(len(line) for line in b) for b in blocks]
            widths = [max(w, len(t)) for w, t in zip(widths, ("window", "kernel", "products"))]
            if channels > 1:
                lines.append(f"input channel {c}:")
            lines.append("   ".join(t.ljust(w) for t, w in
                                    zip(("window", "kernel", "products"), widths)).rstrip())
            for parts in zip(*blocks):
                lines.append("   ".join(p.rjust(w) for p, w in zip(parts, widths)).rstrip())
            terms = " + ".join(_term(v) for v in self.products[c].ravel())
            total = self.products[c].sum()
            lines.append(f"sum: {terms} = {_fmt(total)}")
            sums.append(total)
        if channels > 1 or self.bias:
            terms = [_term(s) for s in sums]
            if self.bias or channels == 1:
                terms.append(f"{_term(self.bias)} (bias)")
            lines.append(f"output: {' + '.join(terms)} = {_fmt(self.value)}")
        return "\n".join(lines)

    __repr__ = __str__


def _pad_pairs(padding, in_hw, kernel_hw, stride):
    if isinstance(padding, str) and padding.lower() == "same" and any(s > 1 for s in stride):
        # TensorFlow-style 'same' at stride > 1: output ceil(n / s), extra zero after.
        from pyxconv.functional import same_padding
        return same_padding(in_hw, kernel_hw, stride)
    return padding_pairs(padding, 2, kernel_hw, stride, (1, 1))


def explain_output_cell(x, weight, index, stride=1, padding=0, bias=None, *,
                        sample=0, out_channel=0):
    """Take one output cell of a 2-D cross-correlation apart: window, kernel, products, sum.

    Parameters
    ----------
    x : ndarray of shape (H, W), (C_in, H, W) or (N, C_in, H, W)
        The input, as given to :func:`pyxconv.functional.conv2d` (or one
        image or one channel of it).
    weight : ndarray of shape (kH, kW), (C_in, kH, kW) or (C_out, C_in, kH, kW)
        The filters.
    index : (int, int)
        Output position ``(i, j)``.
    stride : int or (int, int), default 1
    padding : int, pairs, 'valid' or 'same', default 0
        As in :func:`pyxconv.functional.conv2d`; ``'same'`` with a stride
        above 1 is TensorFlow's (output ``ceil(n / s)``, the extra zero at
        the bottom and right, as in lecture 003).
    bias : float or ndarray of shape (C_out,), optional
        The bias of the explained filter is added to the sum.
    sample : int, default 0
        Which image of a 4-D ``x``.
    out_channel : int, default 0
        Which filter of a 4-D ``weight``.

    Returns
    -------
    CellExplanation
        Printed, it is the lecture's table. Its ``value`` equals
        ``conv2d(x, weight, bias, stride, padding)[sample, out_channel, i, j]``.

    Raises
    ------
    ValueError
        If the shapes do not match, ``index`` is outside the output, or
        ``sample``/``out_channel`` is out of range.
    TypeError
        If ``index`` is not a pair of integers, or an array has an
        unsupported dtype.

    Notes
    -----
    Output cell :math:`(i, j)` is

    .. math::

        o_{ij} = b + \\sum_{c} \\sum_{u, v} \\tilde x_{c,\\, iS + u,\\, jS + v}\\, w_{c, u, v},

    where :math:`\\tilde x` is the zero-padded input: the window starts at
    row :math:`iS` and column :math:`jS` of the padded input. There is no
    kernel flip (cross-correlation), as in every lecture example.

    Examples
    --------
    Lecture 003's first cell (WE-23): the products sum to 1.

    >>> import numpy as np
    >>> from pyxconv.teach import explain_output_cell
    >>> x = np.array([[4, 1, -3, 1], [2, 0, -2, 3], [4, 2, -1, 2], [2, 1, -1, 0]])
    >>> kernel = np.array([[2, -1, 2], [-2, 0, 1], [1, 3, 4]])
    >>> explain_output_cell(x, kernel, (0, 0))
    output cell (0, 0): rows 0..2, columns 0..2 of the padded input
    window     kernel     products
     4  1 -3    2 -1  2    8 -1 -6
     2  0 -2   -2  0  1   -4  0 -2
     4  2 -1    1  3  4    4  6 -4
    sum: 8 + (-1) + (-6) + (-4) + 0 + (-2) + 4 + 6 + (-4) = 1

    The value is what :func:`~pyxconv.functional.conv2d` computes there:

    >>> from pyxconv.functional import conv2d
    >>> print(conv2d(x[None, None], kernel[None, None])[0, 0, 0, 0])
    1.0
    """
    x, weight = float_arrays(x=x, weight=weight)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    elif x.ndim != 4:
        raise ValueError(f"x must have shape (H, W), (C_in, H, W) or (N, C_in, H, W), "
                         f"got {x.shape}")
    if weight.ndim == 2:
        weight = weight[None, None]
    elif weight.ndim == 3:
        weight = weight[None]
    elif weight.ndim != 4:
        raise ValueError(f"weight must have shape (kH, kW), (C_in, kH, kW) or "
                         f"(C_out, C_in, kH, kW), got {weight.shape}")
    sample = as_int(sample, "sample", 0)
    out_channel = as_int(out_channel, "out_channel", 0)
    if sample >= x.shape[0]:
        raise ValueError(f"sample={sample} but x holds {x.shape[0]} images")
    if out_channel >= weight.shape[0]:
        raise ValueError(f"out_channel={out_channel} but weight holds {weight.shape[0]} filters")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight has {weight.shape[1]} input channels but x has {x.shape[1]}")
    if not isinstance(index, (tuple, list)) or len(index) != 2:
        raise TypeError(f"index must be a pair (i, j), got {index!r}")
    i, j = (as_int(v, "index", 0) for v in index)
    if isinstance(stride, (tuple, list)):
        if len(stride) != 2:
            raise ValueError(f"stride must be an int or 2 ints, got {stride!r}")
        stride = tuple(as_int(s, "stride", 1) for s in stride)
    else:
        stride = (as_int(stride, "stride", 1),) * 2
    kernel = weight[out_channel]
    kh, kw = kernel.shape[1:]
    pads = _pad_pairs(padding, x.shape[2:], (kh, kw), stride)
    image = np.pad(x[sample], ((0, 0),) + tuple(pads))
    out_h = (image.shape[1] - kh) // stride[0] + 1
    out_w = (image.shape[2] - kw) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"the {kh}x{kw} kernel is larger than the padded input "
                         f"{image.shape[1]}x{image.shape[2]}")
    if i >= out_h or j >= out_w:
        raise ValueError(f"index={(i, j)} is outside the {out_h}x{out_w} output")
    if bias is None:
        b = 0.0
    else:
        b_arr = np.asarray(bias, dtype=float)
        if b_arr.ndim == 0:
            b = float(b_arr)
        elif b_arr.shape == (weight.shape[0],):
            b = float(b_arr[out_channel])
        else:
            raise ValueError(f"bias must be a number or have shape ({weight.shape[0]},), "
                             f"got {b_arr.shape}")
    rows = range(i * stride[0], i * stride[0] + kh)
    cols = range(j * stride[1], j * stride[1] + kw)
    window = image[:, rows.start:rows.stop, cols.start:cols.stop].copy()
    products = window * kernel
    value = float(products.sum() + b)
    return CellExplanation((i, j), rows, cols, window, kernel.copy(), products, b, value)
