# The check of an ndarray argument, shared by the kernels that take ndarrays rather than
# memoryviews (a memoryview costs ~0.3 us to make, more than a small layer's loop):
# the direct convolution, the prepared max pool, the fully connected forward and ReLU.
# Each module that cimports it calls cnp.import_array() at import.

cimport numpy as cnp


cdef inline void* array_data(object array, str name, int typenum, Py_ssize_t size,
                             bint writeable=False) except? NULL:
    """The data of ``array``: a C-contiguous ndarray of ``typenum`` with ``size`` elements.

    TypeError naming the argument otherwise, ValueError if ``writeable`` and it
    is read-only.
    """
    if not (cnp.PyArray_Check(array) and cnp.PyArray_TYPE(array) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(array) and cnp.PyArray_SIZE(array) == size):
        raise TypeError(f"{name} must be a C-contiguous{' writeable' if writeable else ''} "
                        f"{'float32' if typenum == cnp.NPY_FLOAT32 else 'float64'} ndarray "
                        f"of {size} elements, got {type(array).__name__} "
                        f"{getattr(array, 'dtype', '')} {getattr(array, 'shape', '')}")
    if writeable and not cnp.PyArray_ISWRITEABLE(array):
        raise ValueError(f"{name} is read-only")
    return cnp.PyArray_DATA(array)
