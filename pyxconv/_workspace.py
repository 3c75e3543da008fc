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
