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
 * e = 4 * row + column of the 4x4 transformed kernel, for output channel o. The
 * kernels of a block of input channels are first copied tap by tap, so that the
 * arithmetic runs across input channels with unit strides and vectorises (read in
 * place, nine values apart, it did not: 0.43 ms for 128 x 128 kernels at one thread,
 * now 0.07). */
static void pyxconv_winograd_weights(const float* w, float* u, ptrdiff_t c_out,
                                     ptrdiff_t c_in, ptrdiff_t o) {
    enum { BLOCK = 64 };
    float g[9][BLOCK];
    float* uo = u + o * c_in;
    const ptrdiff_t e_stride = c_out * c_in;
    for (ptrdiff_t c0 = 0; c0 < c_in; c0 += BLOCK) {
        const ptrdiff_t n = c_in - c0 < BLOCK ? c_in - c0 : BLOCK;
        const float* wo = w + (o * c_in + c0) * 9;
        for (ptrdiff_t i = 0; i < n; i++)
            for (int j = 0; j < 9; j++)
                g[j][i] = wo[i * 9 + j];
        float* PYXCONV_RESTRICT row[16];
        for (int e = 0; e < 16; e++)
            row[e] = uo + e * e_stride + c0;
        /* row r of G g is (t0, t1, t2) = A + sign B + C of kernel rows A, B, C (halved),
         * or kernel row 0 or 2 itself; times G^T along it, it gives u[4 r .. 4 r + 3] */
#define PYXCONV_WINOGRAD_ROW(R, T0, T1, T2)                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                               \
            const float t0 = (T0), t1 = (T1), t2 = (T2);                                  \
            row[4 * (R)][i] = t0;                                                         \
            row[4 * (R) + 1][i] = 0.5f * (t0 + t1 + t2);                                  \
            row[4 * (R) + 2][i] = 0.5f * (t0 - t1 + t2);                                  \
            row[4 * (R) + 3][i] = t2;                                                     \
        }
        PYXCONV_WINOGRAD_ROW(0, g[0][i], g[1][i], g[2][i])
        PYXCONV_WINOGRAD_ROW(1, 0.5f * (g[0][i] + g[3][i] + g[6][i]),
                             0.5f * (g[1][i] + g[4][i] + g[7][i]),
                             0.5f * (g[2][i] + g[5][i] + g[8][i]))
        PYXCONV_WINOGRAD_ROW(2, 0.5f * (g[0][i] - g[3][i] + g[6][i]),
                             0.5f * (g[1][i] - g[4][i] + g[7][i]),
                             0.5f * (g[2][i] - g[5][i] + g[8][i]))
        PYXCONV_WINOGRAD_ROW(3, g[6][i], g[7][i], g[8][i])
#undef PYXCONV_WINOGRAD_ROW
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
    PYXCONV_CALL_BY_ISA(isa, pyxconv_winograd_input, g, x, first, count, v, v_stride,
                            rows);
    for (int e = 0; e < 16; e++)
        pyxconv_sgemm_isa(isa, g->c_out, count, g->c_in, u + e * g->c_out * g->c_in, g->c_in,
                          1, v + e * v_stride, count, m + e * m_stride, count, 0);
    PYXCONV_CALL_BY_ISA(isa, pyxconv_winograd_output, g, m, m_stride, bias, relu, first,
                            count, out);
}

/* The weight gradient's share of tiles [first, first + count) of one sample: dU^T
 * (16, c_in, c_out), value e of channels (c, o) at du[(e * c_in + c) * c_out + o],
 * += V_e (c_in x count) @ M'_e (count x c_out), where V is the input transform of x
 * (as the forward's) and M' that of the output gradient gy (c_out, out_h, out_w):
 * the gradient of U = G g G^T, summed over tiles. accumulate 0 starts the sums. The
 * caller's scratch holds pyxconv_winograd_scratch(g, count) floats. Each element of
 * dU^T continues one chain of multiply-adds over the tiles, in the order the
 * calls come. */
static void pyxconv_winograd_weight_grad_tiles(int isa, const pyxconv_winograd_geometry* g,
                                               const float* x, const float* gy, float* du,
                                               ptrdiff_t first, ptrdiff_t count,
                                               float* scratch, int accumulate) {
    const ptrdiff_t v_stride = pyxconv_winograd_stride(g->c_in, count);
    const ptrdiff_t m_stride = pyxconv_winograd_stride(g->c_out, count);
    float* v = scratch;
    float* m = v + 16 * v_stride;
    float* rows = m + 16 * m_stride;
    PYXCONV_CALL_BY_ISA(isa, pyxconv_winograd_input, g, x, first, count, v, v_stride,
                            rows);
    PYXCONV_CALL_BY_ISA(isa, pyxconv_winograd_grad_output, g, gy, first, count, m,
                            m_stride);
    for (int e = 0; e < 16; e++)
        pyxconv_sgemm_isa(isa, g->c_in, g->c_out, count, v + e * v_stride, count, 1,
                          m + e * m_stride, g->c_out, du + e * g->c_in * g->c_out, g->c_out,
                          accumulate);
}

#endif  /* PYXCONV_WINOGRAD_KERNELS_H */
