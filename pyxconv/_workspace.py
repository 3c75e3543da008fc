"""The cap on the im2col workspace.

Convolutions unfold their input into a column matrix of
``C_in * prod(kernel_size)`` rows and one column per output position. For a
chunk of ``nb`` samples and ``r`` output rows of width ``W_out`` that matrix
takes

    bytes = itemsize * C_in * prod(kernel_size) * nb * r * W_out

pyxconv picks the largest chunk (whole samples first, then output rows of a
single sample) whose column matrix fits under the cap, so memory stays
bounded for any batch or image size. The default cap is 256 MiB.
"""
import operator

import numpy as np

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_limit = DEFAULT_WORKSPACE_LIMIT


def get_workspace_limit():
    """The cap on the im2col workspace, in bytes (default 256 MiB).

    Examples
    --------
    >>> import pyxconv
    >>> pyxconv.get_workspace_limit() // 2**20
    256
    """
    return _limit


def set_workspace_limit(n_bytes):
    """Set the cap on the im2col workspace, in bytes.

    Parameters
    ----------
    n_bytes : int or None
        New cap, at least 1 KiB. ``None`` restores the default of 256 MiB.

    Raises
    ------
    ValueError
        If ``n_bytes`` is below 1024.
    TypeError
        If ``n_bytes`` is not an integer.

    Examples
    --------
    A 1 MiB cap makes a large convolution run in more, smaller chunks, with the
    same result:

    >>> import numpy as np, pyxconv
    >>> from pyxconv.functional import conv2d
    >>> x = np.ones((8, 16, 32, 32), np.float32); w = np.ones((4, 16, 3, 3), np.float32)
    >>> pyxconv.set_workspace_limit(2**20)
    >>> small_chunks = conv2d(x, w)
    >>> pyxconv.set_workspace_limit(None)
    >>> bool((small_chunks == conv2d(x, w)).all())
    True
    """
    global _limit
    if n_bytes is None:
        _limit = DEFAULT_WORKSPACE_LIMIT
        return
    try:
        n_bytes = operator.index(n_bytes)
    except TypeError:
        raise TypeError(
            f"n_bytes must be an integer, got {type(n_bytes).__name__}") from None
    if n_bytes < 1024:
        raise ValueError(f"n_bytes must be at least 1024, got {n_bytes}")
    _limit = n_bytes


#: Alignment of the per-thread workspaces' rows, in bytes: one cache line, and one
#: AVX-512 register. NumPy aligns large arrays to 16 bytes only, and the float32
#: GEMM loses about a tenth of its speed when the rows it loads straddle lines.
WORKSPACE_ALIGNMENT = 64


def thread_workspace(threads, size, dtype):
    """An uninitialised (threads, >= size) array whose rows start on a 64-byte boundary.

    Each row is one thread's buffer; the row length is ``size`` rounded up
    so that every row starts aligned.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv._workspace import thread_workspace
    >>> w = thread_workspace(2, 100, np.float32)
    >>> w.shape, w.ctypes.data % 64, w[1].ctypes.data % 64
    ((2, 112), 0, 0)
    """
    dtype = np.dtype(dtype)
    per_line = WORKSPACE_ALIGNMENT // dtype.itemsize
    row = -(-size // per_line) * per_line
    raw = np.empty(threads * row * dtype.itemsize + WORKSPACE_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % WORKSPACE_ALIGNMENT
    return raw[start:start + threads * row * dtype.itemsize].view(dtype).reshape(threads, row)
