/* pyxconv's helpers for col2im and the transposed convolution's fold, used by
 * _im2col.pyx: the fold of a plane by phases (its adds of runs and its
 * interleave), the split of a plane row into its two phases, a transposed copy and
 * a float32 sum. (The matrix products are in gemm_kernels.h.)
 *
 * Written once, as plain loops that the compiler vectorises: the fold helpers in
 * fold_kernels_template.h, instantiated per element type and instruction set with
 * the ISA numbers and target attributes of gemm_kernels.h. On x86-64 with GCC or
 * Clang there are AVX-512F, AVX2 and baseline (SSE2) instances; elsewhere the
 * baseline one (NEON on AArch64). pyxconv_fold_plane_f32(isa, ...) and the other
 * dispatchers run the instance of `isa`, which pyxconv_cpu_has_isa(isa) must
 * allow, and the baseline for PYXCONV_ISA_NONE or an ISA this build lacks. Each
 * helper adds, copies or sums value by value in one fixed order, so every instance
 * gives the same bits (tested by running the kernels under each PYXCONV_ISA).
 *
 * (Before, these were AVX-512 intrinsics with SSE-only or empty stand-ins: AVX2
 * CPUs ran the fold as Cython's own loops, a second copy of it, and on AArch64 the
 * transposed copy did nothing, leaving the weight gradient of large transposed
 * convolutions wrong wherever the own GEMM ran there.)
 */
#ifndef PYXCONV_SIMD_KERNELS_H
#define PYXCONV_SIMD_KERNELS_H

#include <stddef.h>
#include <string.h>

#include "conv_geometry.h"
#include "gemm_kernels.h"

#define PYXCONV_ATTR
#define PYXCONV_T float
#define PYXCONV_SUFFIX f32_base
#include "fold_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_SUFFIX
#define PYXCONV_T double
#define PYXCONV_SUFFIX f64_base
#include "fold_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR

#if defined(PYXCONV_GEMM_X86)
#define PYXCONV_ATTR PYXCONV_ATTR_AVX2
#define PYXCONV_T float
#define PYXCONV_SUFFIX f32_avx2
#include "fold_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_SUFFIX
#define PYXCONV_T double
#define PYXCONV_SUFFIX f64_avx2
#include "fold_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR

#define PYXCONV_ATTR PYXCONV_ATTR_AVX512
#define PYXCONV_T float
#define PYXCONV_SUFFIX f32_avx512
#include "fold_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_SUFFIX
#define PYXCONV_T double
#define PYXCONV_SUFFIX f64_avx512
#include "fold_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR
#endif

/* The instance of `isa` of fold helper `name` for element type `type` (f32, f64) */
#define PYXCONV_BY_ISA(isa, name, type, ...) PYXCONV_CALL_BY_ISA(isa, name##_##type, __VA_ARGS__)

static inline void pyxconv_fold_plane_f32(int isa, const float* cols, float* plane,
                                          float* buffer, int has_bias, float bias, ptrdiff_t c,
                                          ptrdiff_t positions, const pyxconv_conv_geometry* g,
                                          ptrdiff_t band_rows, const ptrdiff_t* tables) {
    PYXCONV_BY_ISA(isa, pyxconv_fold_plane, f32, cols, plane, buffer, has_bias, bias, c,
                   positions, g, band_rows, tables);
}

static inline void pyxconv_fold_plane_f64(int isa, const double* cols, double* plane,
                                          double* buffer, int has_bias, double bias,
                                          ptrdiff_t c, ptrdiff_t positions,
                                          const pyxconv_conv_geometry* g, ptrdiff_t band_rows,
                                          const ptrdiff_t* tables) {
    PYXCONV_BY_ISA(isa, pyxconv_fold_plane, f64, cols, plane, buffer, has_bias, bias, c,
                   positions, g, band_rows, tables);
}

static inline void pyxconv_deinterleave_f32(int isa, const float* row, float* even,
                                            float* odd, ptrdiff_t half) {
    PYXCONV_BY_ISA(isa, pyxconv_deinterleave, f32, row, even, odd, half);
}

static inline void pyxconv_deinterleave_f64(int isa, const double* row, double* even,
                                            double* odd, ptrdiff_t half) {
    PYXCONV_BY_ISA(isa, pyxconv_deinterleave, f64, row, even, odd, half);
}

/* dst (cols x rows) = src (rows x cols)^T, both contiguous: the transposed copy of
 * an operand that the GEMM needs by rows, in 8 x 8 blocks (a row-by-row copy's
 * stores, rows values apart, ran at a fraction of the speed for 128 x 256). */
#define PYXCONV_DEFINE_TRANSPOSE(NAME, T)                                                \
static void NAME(const T* PYXCONV_RESTRICT src, T* PYXCONV_RESTRICT dst, ptrdiff_t rows,  \
                 ptrdiff_t cols) {                                                        \
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += 8) {                                         \
        ptrdiff_t r1 = r0 + 8 < rows ? r0 + 8 : rows;                                    \
        for (ptrdiff_t c0 = 0; c0 < cols; c0 += 8) {                                     \
            ptrdiff_t c1 = c0 + 8 < cols ? c0 + 8 : cols;                                \
            for (ptrdiff_t c = c0; c < c1; c++)                                          \
                for (ptrdiff_t r = r0; r < r1; r++)                                      \
                    dst[c * rows + r] = src[r * cols + c];                               \
        }                                                                                \
    }                                                                                    \
}
PYXCONV_DEFINE_TRANSPOSE(pyxconv_transpose_f32, float)
PYXCONV_DEFINE_TRANSPOSE(pyxconv_transpose_f64, double)

/* values[0] + ... + values[count - 1], accumulated in double: value i goes to running
 * sum i % 8, the eight are combined in a fixed order, and the tail is added one value
 * at a time (the order of _im2col.pyx's _sum for float64). */
static double pyxconv_sum_f32(const float* values, ptrdiff_t count) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, total;
    ptrdiff_t i;
    for (i = 0; i + 8 <= count; i += 8) {
        s0 += values[i];
        s1 += values[i + 1];
        s2 += values[i + 2];
        s3 += values[i + 3];
        s4 += values[i + 4];
        s5 += values[i + 5];
        s6 += values[i + 6];
        s7 += values[i + 7];
    }
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    for (; i < count; i++)
        total += values[i];
    return total;
}

#endif  /* PYXCONV_SIMD_KERNELS_H */
