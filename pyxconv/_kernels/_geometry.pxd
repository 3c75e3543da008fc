# The sizes of one convolution as the im2col, per-sample, tile, group, fold and direct
# kernels read them: one struct (conv_geometry.h, so that the C kernels take it too),
# passed by pointer, instead of 15 scalars an argument each.
#
# A Python caller makes a ConvGeometry once (a convolution's plan keeps it); its
# constructor checks every size, so a kernel that takes one only has to check that
# its arrays match it.

cdef extern from "conv_geometry.h":
    # the fields are documented in the header, which the C kernels include too
    ctypedef struct conv_geometry "pyxconv_conv_geometry":
        Py_ssize_t in_d, in_h, in_w
        Py_ssize_t out_d, out_h, out_w
        Py_ssize_t k_d, k_h, k_w
        Py_ssize_t stride_d, stride_h, stride_w
        Py_ssize_t pad_d, pad_h, pad_w
        Py_ssize_t dil_d, dil_h, dil_w
        Py_ssize_t kernel_volume, positions, plane


cdef class ConvGeometry:
    cdef conv_geometry g


cdef inline int check_planes(const conv_geometry* g, Py_ssize_t* shape, str name) except -1:
    """ValueError unless an array's planes, shape[2:5] of (N, C, D, H, W), are g's input."""
    if shape[2] != g.in_d or shape[3] != g.in_h or shape[4] != g.in_w:
        raise ValueError(f"{name} has planes of {shape[2]} x {shape[3]} x {shape[4]}; the "
                         f"geometry's input is {g.in_d} x {g.in_h} x {g.in_w}")
    return 0
