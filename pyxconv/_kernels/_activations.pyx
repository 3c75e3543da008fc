"""ReLU, forward and backward, as PyTorch computes them.

Forward ``out = 0 if x < 0 else x``: a NaN input stays NaN (``NaN < 0`` is
false), and -0.0 stays -0.0. Backward ``grad_in = 0 if out <= 0 else grad``:
a select, not a product, so the masked entries are +0.0 even where ``grad``
is negative, infinite or NaN (``grad * (out > 0)`` gives -0.0 or NaN there),
and the gradient passes where the output is NaN. These are the rules of
torch.relu and its threshold_backward.

Element-wise on flat C-contiguous arrays, split into contiguous blocks among
the threads: no element depends on another, so the result is the same at
any thread count. Both loops are branch-free selects, which the compiler
vectorises.
"""
from cython cimport floating
from cython.parallel cimport prange

cimport numpy as cnp

from pyxconv._kernels._arrays cimport array_data

cnp.import_array()


cdef void _relu(const floating* x, floating* out, Py_ssize_t n, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    if n_threads == 1:  # no parallel region: starting one costs more than a small loop
        for i in range(n):
            v = x[i]
            out[i] = 0 if v < 0 else v
        return
    for i in prange(n, schedule="static", num_threads=n_threads):
        v = x[i]
        out[i] = 0 if v < 0 else v


def relu_forward(x, out, int n_threads):
    """``out[i] = 0 if x[i] < 0 else x[i]``; x and out C-contiguous ndarrays of one float dtype.

    The arrays may have any shape (they are read flat) but must have the same
    size; ``out`` may be ``x``. The arrays are taken as ndarrays rather than
    memoryviews: ReLU runs on small arrays too (a fully connected layer's
    output at batch 1), where making two memoryviews cost more than the loop.
    """
    if not cnp.PyArray_Check(x):
        raise TypeError(f"x must be an ndarray, got {type(x).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void* xd = array_data(x, "x", typenum, n)
    cdef void* od = array_data(out, "out", typenum, n, True)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _relu(<const float*>xd, <float*>od, n, n_threads)
        else:
            _relu(<const double*>xd, <double*>od, n, n_threads)


def relu_backward(const floating[::1] grad_out, const floating[::1] out,
                  floating[::1] grad_in, int n_threads):
    """``grad_in[i] = 0 if out[i] <= 0 else grad_out[i]``; all three the same length."""
    cdef Py_ssize_t n = out.shape[0], i
    if grad_out.shape[0] != n or grad_in.shape[0] != n:
        raise ValueError(f"grad_out ({grad_out.shape[0]}), out ({n}) and grad_in "
                         f"({grad_in.shape[0]}) differ in length")
    cdef floating o, g
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        # both loaded unconditionally: a load under the condition kept gcc from
        # vectorising the loop (1.36 ms instead of 0.08 on LeNet's first ReLU)
        o = out[i]
        g = grad_out[i]
        grad_in[i] = 0 if o <= 0 else g
