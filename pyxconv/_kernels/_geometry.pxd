# The sizes of one convolution as the im2col, per-sample, tile, group, fold and direct
# kernels read them: one struct, passed by pointer, instead of 15 scalars an argument
# each. Always 3-D: a 2-D problem is (1, H, W), a 1-D one (1, 1, W).
#
# A Python caller makes a ConvGeometry once (a convolution's plan keeps it); its
# constructor checks every size, so a kernel that takes one only has to check that
# its arrays match it.

cdef struct conv_geometry:
    # the input (for a transposed convolution: its output) and the output
    Py_ssize_t in_d, in_h, in_w
    Py_ssize_t out_d, out_h, out_w
    Py_ssize_t k_d, k_h, k_w
    Py_ssize_t stride_d, stride_h, stride_w
    # padding before each dimension; the output size fixes the padding after
    Py_ssize_t pad_d, pad_h, pad_w
    Py_ssize_t dil_d, dil_h, dil_w
    # derived: k_d * k_h * k_w, out_d * out_h * out_w, in_d * in_h * in_w
    Py_ssize_t kernel_volume, positions, plane


cdef class ConvGeometry:
    cdef conv_geometry g
