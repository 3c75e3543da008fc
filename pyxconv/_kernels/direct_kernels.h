/* Direct float32 convolution: no im2col.
 *
 *     out[o, (od, oh, ow)] = sum over p = (c, a, b, e) of
 *         wt[p, o] * x[c, od * s_d + a * d_d, oh * s_h + b * d_h, ow * s_w + e * d_w]
 *
 * on a padded sample x (the caller pads; see pyxconv_direct_reads_past_sample). The
 * output channels are the vector lanes: NV vectors of W channels hold one output
 * position's channels (a block; more channels run block after block), and a tile
 * holds RO positions along one output row, so each input value is one broadcast and
 * each weight row NV vector loads. It is a GEMM whose A operand (the im2col columns)
 * is read where it lies in the input instead of being copied out first. The
 * weights come packed as wt, one K x NV*W matrix per block (the last block's channels
 * zero-padded), K = C_in * kernel volume in the weight's own (c, a, b, e) order. onnxruntime's NCHWc kernels
 * (MlasConvNchwcFloatKernel) vectorise over output channels the same way.
 *
 * Each output is one chain of fused multiply-adds over p = 0 .. K-1 in order from
 * zero, the chain pyxconv's own GEMM makes from the im2col columns, so the value
 * depends on the output's own inputs and weights only: not on the tile, the thread
 * or the instruction set. The bias is then added, and ReLU applied, as the panels'
 * output pass does.
 *
 * A tile always computes RO positions; those past the row's end read further along
 * the padded sample (or past it, into the slack the caller provides), and their
 * results are dropped.
 */
#ifndef PYXCONV_DIRECT_KERNELS_H
#define PYXCONV_DIRECT_KERNELS_H

#include <stddef.h>
#include "gemm_kernels.h"

/* The padded sample's and the output's geometry. dp, hp, wp: the padded extents. */
typedef struct {
    ptrdiff_t channels, dp, hp, wp;
    ptrdiff_t k_d, k_h, k_w;
    ptrdiff_t stride_d, stride_h, stride_w;
    ptrdiff_t dil_d, dil_h, dil_w;
    ptrdiff_t out_h, out_w, positions;
    ptrdiff_t c_out;
} pyxconv_direct_geometry;

/* Kernel variants: vector width W, vectors per position NV, positions per tile RO.
 * More output channels than NV * W run in blocks of NV * W. (AVX2 with 16 registers
 * fits 4 vectors of channels for only 3 positions; on 128 -> 128 channels, 3x3, 28x28
 * that ran at 82 GF/s against 53 for 2 vectors and 6 positions.) */
#define PYXCONV_DIRECT_NONE 0
#define PYXCONV_DIRECT_AVX2_8 1     /* W 8,  NV 1, RO 12: up to 8 channels   */
#define PYXCONV_DIRECT_AVX2_16 2    /* W 8,  NV 2, RO 6:  up to 16 channels  */
#define PYXCONV_DIRECT_AVX512_16 3  /* W 16, NV 1, RO 12: up to 16 channels  */
#define PYXCONV_DIRECT_AVX512_32 4  /* W 16, NV 2, RO 12: up to 32 channels  */
#define PYXCONV_DIRECT_NEON_4 5     /* W 4,  NV 1, RO 12: up to 4 channels   */
#define PYXCONV_DIRECT_NEON_8 6     /* W 4,  NV 2, RO 12: up to 8 channels   */
#define PYXCONV_DIRECT_AVX2_32 7    /* W 8,  NV 4, RO 3:  blocks of 32 channels */
#define PYXCONV_DIRECT_AVX512_64 8  /* W 16, NV 4, RO 6:  blocks of 64 channels */
#define PYXCONV_DIRECT_NEON_16 9    /* W 4,  NV 4, RO 6:  blocks of 16 channels */
/* Positions in the lanes instead, for few output channels at stride 1 (below): RC
 * channels by NP vectors of W consecutive output positions of one row. */
#define PYXCONV_DIRECT_AVX512_ROW 10  /* W 16, NP 2, RC 6: 32 positions, 6 channels */
#define PYXCONV_DIRECT_AVX2_ROW 11    /* W 8,  NP 2, RC 6: 16 positions, 6 channels */
#define PYXCONV_DIRECT_NEON_ROW 12    /* W 4,  NP 4, RC 6: 16 positions, 6 channels */

#if defined(__GNUC__) || defined(__clang__)

/* One tile, in registers acc[ROWS][NVEC] of W lanes each. With POSITIONS 0 the lanes
 * are output channels (NVEC vectors of a block's channels, loaded from wt) and the
 * ROWS rows output positions (each input one broadcast, stride_w apart: STRIDE_ONE
 * fixes it at 1); with POSITIONS 1 the lanes are consecutive output positions (NVEC
 * unaligned loads of inputs, stride 1 only) and the ROWS rows channels (each weight
 * one broadcast). Either way each output is one FMA chain over p in (c, a, b, e)
 * order. The tile is stored as ROWS rows of NVEC * W values. */
#define PYXCONV_DIRECT_TILE(NAME, ATTR, V, VU, W, ROWS, NVEC, POSITIONS, STRIDE_ONE)       \
static inline __attribute__((always_inline)) ATTR void NAME(                               \
        const pyxconv_direct_geometry* g, const float* row, const float* wt, float* tile,  \
        const ptrdiff_t k_w) {                                                              \
    V acc[ROWS][NVEC];                                                                      \
    const ptrdiff_t sw = STRIDE_ONE ? 1 : g->stride_w;                                      \
    const ptrdiff_t slice = g->hp * g->wp, plane = g->dp * slice;                           \
    ptrdiff_t c, a, b, e;                                                                   \
    int i, j;                                                                               \
    _Pragma("GCC unroll 16")                                                                \
    for (i = 0; i < ROWS; i++)                                                              \
        for (j = 0; j < NVEC; j++)                                                          \
            acc[i][j] = (V){0};                                                             \
    for (c = 0; c < g->channels; c++)                                                       \
        for (a = 0; a < g->k_d; a++)                                                        \
            for (b = 0; b < g->k_h; b++) {                                                  \
                const float* q = row + c * plane + a * g->dil_d * slice + b * g->dil_h * g->wp; \
                for (e = 0; e < k_w; e++, wt += POSITIONS ? ROWS : NVEC * W) {             \
                    const float* qe = q + e * g->dil_w;                                     \
                    V vec[NVEC];                                                            \
                    for (j = 0; j < NVEC; j++)                                              \
                        vec[j] = POSITIONS ? *(const VU*)(qe + j * W)                       \
                                           : *(const V*)(wt + j * W);                       \
                    _Pragma("GCC unroll 16")                                                \
                    for (i = 0; i < ROWS; i++) {                                            \
                        float s = POSITIONS ? wt[i] : qe[i * sw];                           \
                        for (j = 0; j < NVEC; j++)                                          \
                            acc[i][j] += s * vec[j];                                        \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
    _Pragma("GCC unroll 16")                                                                \
    for (i = 0; i < ROWS; i++)                                                              \
        for (j = 0; j < NVEC; j++)                                                          \
            *(V*)(tile + (i * NVEC + j) * W) = acc[i][j];                                   \
}

/* One output row (od, oh) of one sample: for each block of output channels, its tiles
 * along the row, then bias and ReLU on the way out to out (the sample's C_out x L
 * output). wt holds the blocks one after another, each K x (block width). A block is
 * NVEC * W channels by ROWS positions (POSITIONS 0) or ROWS channels by NVEC * W
 * positions (POSITIONS 1). */
#define PYXCONV_DIRECT_ROW(NAME, ATTR, V, VU, W, ROWS, NVEC, POSITIONS)                      \
PYXCONV_DIRECT_TILE(NAME##_tile_1, ATTR, V, VU, W, ROWS, NVEC, POSITIONS, 1)                 \
PYXCONV_DIRECT_TILE(NAME##_tile_s, ATTR, V, VU, W, ROWS, NVEC, POSITIONS, 0)                 \
static ATTR void NAME(const pyxconv_direct_geometry* g, const float* xp, const float* wt,  \
                      const float* bias, int relu, float* out, ptrdiff_t od, ptrdiff_t oh) { \
    enum { BLOCK = POSITIONS ? ROWS : NVEC * W, SPAN = POSITIONS ? NVEC * W : ROWS };       \
    float tile[ROWS * NVEC * W] __attribute__((aligned(64)));                               \
    const ptrdiff_t start = ((od * g->stride_d) * g->hp + oh * g->stride_h) * g->wp;        \
    const ptrdiff_t first = (od * g->out_h + oh) * g->out_w;                                \
    const ptrdiff_t k = g->channels * g->k_d * g->k_h * g->k_w;                             \
    ptrdiff_t c0, c1, ow0, o, r, count;                                                     \
    int j;                                                                                  \
    for (c0 = 0; c0 < g->c_out; c0 += BLOCK) {                                              \
        const float* wt_block = wt + c0 * k;                                                \
        c1 = g->c_out - c0 < BLOCK ? g->c_out : c0 + BLOCK;                                 \
        for (ow0 = 0; ow0 < g->out_w; ow0 += SPAN) {                                        \
            count = g->out_w - ow0 < SPAN ? g->out_w - ow0 : SPAN;                          \
            /* rows of 3 and 5 taps as constants, for their loops to unroll */              \
            if ((POSITIONS || g->stride_w == 1) && g->k_w == 3)                             \
                NAME##_tile_1(g, xp + start + ow0, wt_block, tile, 3);                      \
            else if ((POSITIONS || g->stride_w == 1) && g->k_w == 5)                        \
                NAME##_tile_1(g, xp + start + ow0, wt_block, tile, 5);                      \
            else if (POSITIONS || g->stride_w == 1)                                         \
                NAME##_tile_1(g, xp + start + ow0, wt_block, tile, g->k_w);                 \
            else                                                                            \
                NAME##_tile_s(g, xp + start + ow0 * g->stride_w, wt_block, tile, g->k_w);   \
            for (o = c0; o < c1; o++) {                                                     \
                float* dst = out + o * g->positions + first + ow0;                          \
                float bias_o = bias ? bias[o] : 0.0f;                                       \
                if (POSITIONS && count == SPAN) {  /* whole vectors, as below */            \
                    for (j = 0; j < NVEC; j++) {                                            \
                        V value = *(const V*)(tile + (o - c0) * SPAN + j * W);              \
                        if (bias)                                                           \
                            value = value + bias_o;                                         \
                        if (relu) {  /* zero where value < 0: NaN and -0.0 stay */          \
                            __typeof__(value < value) below = value < (V){0};               \
                            value = (V)((__typeof__(below))value & ~below);                 \
                        }                                                                   \
                        *(VU*)(dst + j * W) = value;                                        \
                    }                                                                       \
                    continue;                                                               \
                }                                                                           \
                for (r = 0; r < count; r++) {                                               \
                    float value = POSITIONS ? tile[(o - c0) * SPAN + r]                     \
                                            : tile[r * BLOCK + o - c0];                     \
                    if (bias)                                                               \
                        value = value + bias_o;                                             \
                    dst[r] = relu && value < 0 ? 0.0f : value;                              \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

#endif  /* GCC or Clang */

#if defined(PYXCONV_GEMM_X86)
/*                 name                       target               V            VU            W  ROWS NVEC POS */
PYXCONV_DIRECT_ROW(pyxconv_direct_avx2_8,     PYXCONV_ATTR_AVX2,   pyxconv_v8,  pyxconv_v8u,  8,  12,  1,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx2_16,    PYXCONV_ATTR_AVX2,   pyxconv_v8,  pyxconv_v8u,  8,   6,  2,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx2_32,    PYXCONV_ATTR_AVX2,   pyxconv_v8,  pyxconv_v8u,  8,   3,  4,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx2_row,   PYXCONV_ATTR_AVX2,   pyxconv_v8,  pyxconv_v8u,  8,   6,  2,  1)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx512_16,  PYXCONV_ATTR_AVX512, pyxconv_v16, pyxconv_v16u, 16, 12,  1,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx512_32,  PYXCONV_ATTR_AVX512, pyxconv_v16, pyxconv_v16u, 16, 12,  2,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx512_64,  PYXCONV_ATTR_AVX512, pyxconv_v16, pyxconv_v16u, 16,  6,  4,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_avx512_row, PYXCONV_ATTR_AVX512, pyxconv_v16, pyxconv_v16u, 16,  6,  2,  1)
#elif defined(PYXCONV_GEMM_NEON)
PYXCONV_DIRECT_ROW(pyxconv_direct_neon_4,     ,                    pyxconv_v4,  pyxconv_v4u,  4,  12,  1,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_neon_8,     ,                    pyxconv_v4,  pyxconv_v4u,  4,  12,  2,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_neon_16,    ,                    pyxconv_v4,  pyxconv_v4u,  4,   6,  4,  0)
PYXCONV_DIRECT_ROW(pyxconv_direct_neon_row,   ,                    pyxconv_v4,  pyxconv_v4u,  4,   6,  4,  1)
#endif

/* The variant for c_out channels on instruction set isa (PYXCONV_ISA_*), or
 * PYXCONV_DIRECT_NONE. AVX-512 CPUs run the AVX2 variant for up to 8 channels:
 * half the lanes of a 16-wide vector would be idle. */
static inline int pyxconv_direct_variant(int isa, ptrdiff_t c_out) {
    if (c_out < 1 || !pyxconv_cpu_has_isa(isa))
        return PYXCONV_DIRECT_NONE;
#if defined(PYXCONV_GEMM_X86)
    if (isa == PYXCONV_ISA_AVX512 && pyxconv_cpu_has_isa(PYXCONV_ISA_AVX2) && c_out <= 8)
        return PYXCONV_DIRECT_AVX2_8;
    if (isa == PYXCONV_ISA_AVX512)
        return c_out <= 16 ? PYXCONV_DIRECT_AVX512_16
             : c_out <= 32 ? PYXCONV_DIRECT_AVX512_32 : PYXCONV_DIRECT_AVX512_64;
    if (isa == PYXCONV_ISA_AVX2)
        return c_out <= 8 ? PYXCONV_DIRECT_AVX2_8
             : c_out <= 16 ? PYXCONV_DIRECT_AVX2_16 : PYXCONV_DIRECT_AVX2_32;
#elif defined(PYXCONV_GEMM_NEON)
    if (isa == PYXCONV_ISA_NEON)
        return c_out <= 4 ? PYXCONV_DIRECT_NEON_4
             : c_out <= 8 ? PYXCONV_DIRECT_NEON_8 : PYXCONV_DIRECT_NEON_16;
#endif
    return PYXCONV_DIRECT_NONE;
}

/* Channels per position of a variant (the packed weights' row length), and its tile. */
static inline ptrdiff_t pyxconv_direct_width(int variant) {
    switch (variant) {
        case PYXCONV_DIRECT_AVX2_8: return 8;
        case PYXCONV_DIRECT_AVX2_16: return 16;
        case PYXCONV_DIRECT_AVX512_16: return 16;
        case PYXCONV_DIRECT_AVX512_32: return 32;
        case PYXCONV_DIRECT_NEON_4: return 4;
        case PYXCONV_DIRECT_NEON_8: return 8;
        case PYXCONV_DIRECT_AVX2_32: return 32;
        case PYXCONV_DIRECT_AVX512_64: return 64;
        case PYXCONV_DIRECT_NEON_16: return 16;
        case PYXCONV_DIRECT_AVX512_ROW: case PYXCONV_DIRECT_AVX2_ROW:
        case PYXCONV_DIRECT_NEON_ROW:
            return 6;
        default: return 0;
    }
}

static inline ptrdiff_t pyxconv_direct_tile(int variant) {
    switch (variant) {
        case PYXCONV_DIRECT_NONE: return 0;
        case PYXCONV_DIRECT_AVX2_16: case PYXCONV_DIRECT_AVX512_64: case PYXCONV_DIRECT_NEON_16:
            return 6;
        case PYXCONV_DIRECT_AVX2_32: return 3;
        case PYXCONV_DIRECT_AVX512_ROW: return 32;
        case PYXCONV_DIRECT_AVX2_ROW: case PYXCONV_DIRECT_NEON_ROW: return 16;
        default: return 12;
    }
}

/* The variant for a convolution of k column rows (C_in x kernel volume; 0: unknown):
 * the row-vectorised one at stride 1 with rows of at least half its tile, for at most 8
 * output channels (6 channels fill its rows; 8 fill 8 of 12, as the 8-lane channel
 * tile fills 6 of 8 with LeNet's 6), or for any number when k is below twice the
 * channel tile's width: the channel tile's results are transposed into the output
 * one value at a time, about width / k of its multiply-adds, where the row tile
 * stores whole vectors. Else the above. */
static inline int pyxconv_direct_variant_for(int isa, ptrdiff_t c_out, ptrdiff_t stride_w,
                                             ptrdiff_t out_w, ptrdiff_t k) {
    int by_channels = pyxconv_direct_variant(isa, c_out);
    int by_rows = PYXCONV_DIRECT_NONE;
    if (by_channels == PYXCONV_DIRECT_NONE || stride_w != 1)
        return by_channels;
    if (c_out > 8 && !(k > 0 && k < 2 * pyxconv_direct_width(by_channels)))
        return by_channels;
#if defined(PYXCONV_GEMM_X86)
    by_rows = isa == PYXCONV_ISA_AVX512 ? PYXCONV_DIRECT_AVX512_ROW : PYXCONV_DIRECT_AVX2_ROW;
#elif defined(PYXCONV_GEMM_NEON)
    by_rows = PYXCONV_DIRECT_NEON_ROW;
#endif
    if (by_rows != PYXCONV_DIRECT_NONE && 2 * out_w >= pyxconv_direct_tile(by_rows))
        return by_rows;
    return by_channels;
}

/* Floats read past the padded sample's end by the last tile of the last row (0 when
 * every read stays inside). */
static inline ptrdiff_t pyxconv_direct_reads_past_sample(const pyxconv_direct_geometry* g,
                                                  ptrdiff_t out_d, int variant) {
    ptrdiff_t ro = pyxconv_direct_tile(variant);
    ptrdiff_t last_tile = (g->out_w - 1) / ro * ro;
    ptrdiff_t slice = g->hp * g->wp;
    ptrdiff_t last = (g->channels - 1) * g->dp * slice
                   + ((out_d - 1) * g->stride_d + (g->k_d - 1) * g->dil_d) * slice
                   + ((g->out_h - 1) * g->stride_h + (g->k_h - 1) * g->dil_h) * g->wp
                   + (last_tile + ro - 1) * g->stride_w + (g->k_w - 1) * g->dil_w;
    ptrdiff_t size = g->channels * g->dp * slice;
    return last >= size ? last - size + 1 : 0;
}

/* A row kernel: output row (od, oh) of one sample (see PYXCONV_DIRECT_ROW). */
typedef void (*pyxconv_direct_row_fn)(const pyxconv_direct_geometry* g, const float* xp,
                                      const float* wt, const float* bias, int relu,
                                      float* out, ptrdiff_t od, ptrdiff_t oh);

/* The row kernel of a variant pyxconv_direct_variant_for returned (NULL for none). */
static inline pyxconv_direct_row_fn pyxconv_direct_kernel(int variant) {
    switch (variant) {
#if defined(PYXCONV_GEMM_X86)
        case PYXCONV_DIRECT_AVX2_8: return pyxconv_direct_avx2_8;
        case PYXCONV_DIRECT_AVX2_16: return pyxconv_direct_avx2_16;
        case PYXCONV_DIRECT_AVX2_32: return pyxconv_direct_avx2_32;
        case PYXCONV_DIRECT_AVX2_ROW: return pyxconv_direct_avx2_row;
        case PYXCONV_DIRECT_AVX512_16: return pyxconv_direct_avx512_16;
        case PYXCONV_DIRECT_AVX512_32: return pyxconv_direct_avx512_32;
        case PYXCONV_DIRECT_AVX512_64: return pyxconv_direct_avx512_64;
        case PYXCONV_DIRECT_AVX512_ROW: return pyxconv_direct_avx512_row;
#elif defined(PYXCONV_GEMM_NEON)
        case PYXCONV_DIRECT_NEON_4: return pyxconv_direct_neon_4;
        case PYXCONV_DIRECT_NEON_8: return pyxconv_direct_neon_8;
        case PYXCONV_DIRECT_NEON_16: return pyxconv_direct_neon_16;
        case PYXCONV_DIRECT_NEON_ROW: return pyxconv_direct_neon_row;
#endif
        default: return NULL;
    }
}

#endif  /* PYXCONV_DIRECT_KERNELS_H */
