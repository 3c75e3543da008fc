/* The sizes of one convolution, as every kernel takes them: the C side of
 * _geometry.pxd's conv_geometry (ConvGeometry holds one, checked when it is made).
 * Always 3-D: a 2-D problem is (1, H, W), a 1-D one (1, 1, W). For a transposed
 * convolution, "in" is its output and "out" its input. */
#ifndef PYXCONV_CONV_GEOMETRY_H
#define PYXCONV_CONV_GEOMETRY_H

#include <stddef.h>

typedef struct {
    ptrdiff_t in_d, in_h, in_w;
    ptrdiff_t out_d, out_h, out_w;
    ptrdiff_t k_d, k_h, k_w;
    ptrdiff_t stride_d, stride_h, stride_w;
    /* padding before each dimension; the output size fixes the padding after */
    ptrdiff_t pad_d, pad_h, pad_w;
    ptrdiff_t dil_d, dil_h, dil_w;
    /* derived: k_d * k_h * k_w, out_d * out_h * out_w, in_d * in_h * in_w */
    ptrdiff_t kernel_volume, positions, plane;
} pyxconv_conv_geometry;

#endif  /* PYXCONV_CONV_GEOMETRY_H */
