/* Winograd's minimal filtering F(2x2, 3x3) for float32 3x3 convolutions of stride 1:
 * each 2x2 block of outputs (a tile) comes from the 4x4 input patch under it with 16
 * multiplications per channel pair instead of 36 (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016):
 *
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 *
 * g the 3x3 kernel, d the 4x4 patch, (.) the elementwise product, and
 *
 *     B^T = [1  0 -1  0]    G = [1    0    0 ]    A^T = [1 1  1  0]
 *           [0  1  1  0]        [1/2  1/2  1/2]          [0 1 -1 -1]
 *           [0 -1  1  0]        [1/2 -1/2  1/2]
 *           [0  1  0 -1]        [0    0    1 ]
 *
 * Summed over input channels, the 16 elementwise products become 16 matrix products
 * U_e (C_out x C_in) @ V_e (C_in x tiles), made by the own GEMM (gemm_kernels.h).
 * The transforms add and subtract only (G's halves are exact), so the result differs
 * from the direct sum by rounding only: a few float32 ulps more than im2col's.
 *
 * A task is a run of consecutive tiles of one sample (row-major over the tile grid):
 * it transforms their patches into V, makes the 16 products into M and transforms M
 * back into the sample's output, every value in one fixed order, so results do not
 * depend on which thread runs the task or on the thread count. Reads outside the input
 * (padding, and the last tile's overhang) are zeros; writes outside the output are
 * dropped. */
#ifndef PYXCONV_WINOGRAD_KERNELS_H
#define PYXCONV_WINOGRAD_KERNELS_H

#include <stddef.h>
#include <string.h>

#include "gemm_kernels.h"

typedef struct {
    ptrdiff_t c_in, c_out, in_h, in_w, out_h, out_w;
    ptrdiff_t pad_top, pad_left;  /* the bottom and right paddings are implied by out_h, out_w */
    ptrdiff_t tiles_h, tiles_w;   /* ceil(out / 2) */
} pyxconv_winograd_geometry;

/* u[(e * c_out + o) * c_in + c] = (G g G^T)[e] for g = w[o, c] (c_out, c_in, 3, 3),
 * e = 4 * row + column of the 4x4 transformed kernel, for output channel o; the loop
 * runs across input channels, each of the 16 values a contiguous row of u */
static void pyxconv_winograd_weights(const float* w, float* u, ptrdiff_t c_out,
                                     ptrdiff_t c_in, ptrdiff_t o) {
    float* uo = u + o * c_in;
    const ptrdiff_t e_stride = c_out * c_in;
    for (ptrdiff_t c = 0; c < c_in; c++) {
        const float* g = w + (o * c_in + c) * 9;
        float t[4][3];
        for (int j = 0; j < 3; j++) {  /* G g: down each kernel column */
            t[0][j] = g[j];
            t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
            t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
            t[3][j] = g[6 + j];
        }
        for (int i = 0; i < 4; i++) {  /* (G g) G^T: along each row */
            uo[(4 * i + 0) * e_stride + c] = t[i][0];
            uo[(4 * i + 1) * e_stride + c] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            uo[(4 * i + 2) * e_stride + c] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            uo[(4 * i + 3) * e_stride + c] = t[i][2];
        }
    }
}

/* The transforms, once per instruction set (winograd_kernels_template.h): loops
 * across the tiles of a tile row, which the compiler vectorises */
#define PYXCONV_ATTR
#define PYXCONV_SUFFIX base
#include "winograd_kernels_template.h"
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR
#if defined(PYXCONV_GEMM_X86)
#define PYXCONV_ATTR PYXCONV_ATTR_AVX2
#define PYXCONV_SUFFIX avx2
#include "winograd_kernels_template.h"
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR
#define PYXCONV_ATTR PYXCONV_ATTR_AVX512
#define PYXCONV_SUFFIX avx512
#include "winograd_kernels_template.h"
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR
#endif

/* Distance between the 16 matrices of V (or M) for products of `rows` rows and
 * `count` columns: rows * count, plus 16 floats where that is a multiple of 1 KiB,
 * so that the 16 streams the transforms write and read do not share cache sets
 * (4 KiB apart, they did: the input transform took as long as the products). */
static inline ptrdiff_t pyxconv_winograd_stride(ptrdiff_t rows, ptrdiff_t count) {
    const ptrdiff_t size = rows * count;
    return size % 256 == 0 ? size + 16 : size;
}

/* Scratch floats of one task of `count` tiles: V, M and the padded input rows */
static inline ptrdiff_t pyxconv_winograd_scratch(const pyxconv_winograd_geometry* g,
                                                 ptrdiff_t count) {
    return 16 * (pyxconv_winograd_stride(g->c_in, count)
                 + pyxconv_winograd_stride(g->c_out, count)) + 4 * (2 * g->tiles_w + 2);
}

/* Tiles [first, first + count) of one sample: x (c_in, in_h, in_w) to out (c_out,
 * out_h, out_w), with u from pyxconv_winograd_weights, in the caller's scratch of
 * pyxconv_winograd_scratch(g, count) floats, on instruction set isa (an own-GEMM
 * one: AVX-512, AVX2 or NEON) */
static void pyxconv_winograd_tiles(int isa, const pyxconv_winograd_geometry* g,
                                   const float* x, const float* u, const float* bias,
                                   int relu, float* out, ptrdiff_t first, ptrdiff_t count,
                                   float* scratch) {
    const ptrdiff_t v_stride = pyxconv_winograd_stride(g->c_in, count);
    const ptrdiff_t m_stride = pyxconv_winograd_stride(g->c_out, count);
    float* v = scratch;
    float* m = v + 16 * v_stride;
    float* rows = m + 16 * m_stride;
#if defined(PYXCONV_GEMM_X86)
    if (isa == PYXCONV_ISA_AVX512)
        pyxconv_winograd_input_avx512(g, x, first, count, v, v_stride, rows);
    else if (isa == PYXCONV_ISA_AVX2)
        pyxconv_winograd_input_avx2(g, x, first, count, v, v_stride, rows);
    else
#endif
        pyxconv_winograd_input_base(g, x, first, count, v, v_stride, rows);
    for (int e = 0; e < 16; e++)
        pyxconv_sgemm_isa(isa, g->c_out, count, g->c_in, u + e * g->c_out * g->c_in, g->c_in,
                          1, v + e * v_stride, count, m + e * m_stride, count, 0);
#if defined(PYXCONV_GEMM_X86)
    if (isa == PYXCONV_ISA_AVX512)
        pyxconv_winograd_output_avx512(g, m, m_stride, bias, relu, first, count, out);
    else if (isa == PYXCONV_ISA_AVX2)
        pyxconv_winograd_output_avx2(g, m, m_stride, bias, relu, first, count, out);
    else
#endif
        pyxconv_winograd_output_base(g, m, m_stride, bias, relu, first, count, out);
}

#endif  /* PYXCONV_WINOGRAD_KERNELS_H */
