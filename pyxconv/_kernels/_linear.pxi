# Part of _im2col.pyx (included there, after _gemm_dispatch.pxi): the forward of a
# fully connected layer, out = x @ weight.T (+ bias) (ReLU), on the GEMM of the
# convolutions, with the bias and the ReLU in one pass over the product.
#
# Arrays are taken as ndarrays, not memoryviews: at batch 1 (LeNet's 400 -> 120)
# the product takes about a microsecond, and four memoryviews cost more than that.

cimport numpy as cnp

from pyxconv._kernels._arrays cimport array_data

cnp.import_array()


cdef inline void _bias_relu(floating* out, const floating* bias, Py_ssize_t rows,
                            Py_ssize_t width, bint relu) noexcept nogil:
    """``out[r, j] += bias[j]`` (bias may be NULL), then ReLU (``0 if v < 0 else v``)."""
    cdef Py_ssize_t r, j
    cdef floating v
    cdef floating* row
    for r in range(rows):
        row = out + r * width
        if bias != NULL:
            for j in range(width):
                row[j] = row[j] + bias[j]
        if relu:
            for j in range(width):
                v = row[j]
                row[j] = 0 if v < 0 else v


def linear_forward(x, weight, bias, out, bint relu=False):
    """``out = x @ weight.T (+ bias)``, ReLU with ``relu``: a fully connected layer's forward.

    x (N, I) and weight (F, I) C-contiguous float32 or float64 ndarrays of one
    dtype, bias (F,) or None, out (N, F) writeable; TypeError otherwise
    (ValueError for a read-only out). The product runs on the BLAS (scipy's
    cython_blas, as the convolutions' do), on the calling thread's BLAS
    threads; the bias and the ReLU in one pass.
    """
    if not cnp.PyArray_Check(x):
        raise TypeError(f"x must be an ndarray, got {type(x).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if cnp.PyArray_NDIM(x) != 2 or not cnp.PyArray_Check(weight) \
            or cnp.PyArray_NDIM(weight) != 2:
        raise TypeError("x and weight must be 2-D ndarrays")
    cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0), k = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t f = cnp.PyArray_DIM(weight, 0)
    if max(n, k, f) > _GEMM_INT_MAX:
        raise ValueError(f"a dimension of ({n}, {k}) @ ({f}, {k}).T passes the BLAS's limit")
    cdef void* xd = array_data(x, "x", typenum, n * k)
    cdef void* wd = array_data(weight, "weight", typenum, f * k)
    cdef void* bd = array_data(bias, "bias", typenum, f) if bias is not None else NULL
    cdef void* od = array_data(out, "out", typenum, n * f, True)
    if n == 0 or f == 0:
        return
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if k == 0:
                memset(od, 0, n * f * sizeof(float))
            else:
                _gemm(False, True, n, f, k, <const float*>xd, k, <const float*>wd, k,
                      <float*>od, f)
            _bias_relu(<float*>od, <const float*>bd, n, f, relu)
        else:
            if k == 0:
                memset(od, 0, n * f * sizeof(double))
            else:
                _gemm(False, True, n, f, k, <const double*>xd, k, <const double*>wd, k,
                      <double*>od, f)
            _bias_relu(<double*>od, <const double*>bd, n, f, relu)


def linear_backward(x, weight, grad_out, grad_weight, grad_x, bint accumulate=False):
    """A fully connected layer's backward: ``grad_weight = grad_out.T @ x`` (``+=`` with
    ``accumulate``) and ``grad_x = grad_out @ weight`` (unless grad_x is None).

    x (N, I), weight (F, I), grad_out (N, F), grad_weight (F, I) and grad_x
    (N, I): C-contiguous ndarrays of one float dtype, TypeError otherwise
    (ValueError for a read-only output). Both products run on the BLAS (scipy's
    cython_blas, as :func:`linear_forward`'s), on the calling thread's BLAS
    threads.
    """
    if not cnp.PyArray_Check(x):
        raise TypeError(f"x must be an ndarray, got {type(x).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    for name, array in (("x", x), ("weight", weight), ("grad_out", grad_out),
                        ("grad_weight", grad_weight), ("grad_x", grad_x)):
        if array is None and name == "grad_x":
            continue  # the only optional one
        if not cnp.PyArray_Check(array) or cnp.PyArray_NDIM(array) != 2:
            raise TypeError(f"{name} must be a 2-D ndarray, got {type(array).__name__}")
    cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0), k = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t f = cnp.PyArray_DIM(weight, 0)
    if (cnp.PyArray_DIM(weight, 1) != k or cnp.PyArray_DIM(grad_out, 0) != n
            or cnp.PyArray_DIM(grad_out, 1) != f or cnp.PyArray_DIM(grad_weight, 0) != f
            or cnp.PyArray_DIM(grad_weight, 1) != k
            or (grad_x is not None and (cnp.PyArray_DIM(grad_x, 0) != n
                                        or cnp.PyArray_DIM(grad_x, 1) != k))):
        raise ValueError(f"linear_backward's shapes do not fit x ({n}, {k}) and weight "
                         f"({f}, {k})")
    if max(n, k, f) > _GEMM_INT_MAX:
        raise ValueError(f"a dimension of ({n}, {k}) @ ({f}, {k}).T passes the BLAS's limit")
    cdef void* xd = array_data(x, "x", typenum, n * k)
    cdef void* wd = array_data(weight, "weight", typenum, f * k)
    cdef void* gd = array_data(grad_out, "grad_out", typenum, n * f)
    cdef void* gwd = array_data(grad_weight, "grad_weight", typenum, f * k, True)
    cdef void* gxd = array_data(grad_x, "grad_x", typenum, n * k, True) \
        if grad_x is not None else NULL
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if n > 0:
                _blas_gemm(True, False, f, k, n, <const float*>gd, f, <const float*>xd, k,
                           <float*>gwd, k, accumulate)
            elif not accumulate:
                memset(gwd, 0, f * k * sizeof(float))
            if gxd != NULL:
                if f == 0:
                    memset(gxd, 0, n * k * sizeof(float))
                else:
                    _blas_gemm(False, False, n, k, f, <const float*>gd, f, <const float*>wd,
                               k, <float*>gxd, k, False)
        else:
            if n > 0:
                _blas_gemm(True, False, f, k, n, <const double*>gd, f, <const double*>xd, k,
                           <double*>gwd, k, accumulate)
            elif not accumulate:
                memset(gwd, 0, f * k * sizeof(double))
            if gxd != NULL:
                if f == 0:
                    memset(gxd, 0, n * k * sizeof(double))
                else:
                    _blas_gemm(False, False, n, k, f, <const double*>gd, f,
                               <const double*>wd, k, <double*>gxd, k, False)
