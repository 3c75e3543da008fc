/* The max-pool row loops, one instance per element type and instruction set
 * (pool_kernels_template.h): the baseline and AVX2 (which AVX-512 also runs, see
 * below), with gemm_kernels.h's ISA numbers and target attributes, as the fold
 * helpers and the softmax loops have them. A call takes the
 * ISA number of the instance to run (the baseline for PYXCONV_ISA_NONE or an ISA
 * this build lacks), so PYXCONV_ISA switches these kernels with all the others. */
#ifndef PYXCONV_POOL_KERNELS_H
#define PYXCONV_POOL_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gemm_kernels.h"

/* One max pool's sizes and window geometry: planes of in_d x in_h x in_w pooled to
 * out_d x out_h x out_w by k_* windows at strides s_*, paddings p_*, dilations d_*. */
typedef struct {
    ptrdiff_t planes, in_d, in_h, in_w, out_d, out_h, out_w;
    ptrdiff_t k_d, k_h, k_w, s_d, s_h, s_w, p_d, p_h, p_w, d_d, d_h, d_w;
    int n_threads;
} pyxconv_pool_sizes;

/* The tap tables of _pool.pyx's max_pool_forward (see _max_pool_tables in
 * pyxconv/functional/_pool.py) */
typedef struct {
    const int64_t* tap_offset;  /* per tap: its offset from the window origin */
    const int64_t* col_lo;      /* per kernel column: first output column inside */
    const int64_t* col_hi;      /* per kernel column: one past the last */
    const int* first_col_tap;   /* per output column: its first valid kernel column */
} pyxconv_pool_taps;

/* Smallest tap j >= 0 with start + j * dilation >= 0 */
static inline ptrdiff_t pyxconv_pool_first_tap(ptrdiff_t start, ptrdiff_t dilation) {
    if (start >= 0)
        return 0;
    if (dilation == 1)
        return -start;
    return (-start + dilation - 1) / dilation;
}

/* One past the largest tap j < kernel with start + j * dilation < size */
static inline ptrdiff_t pyxconv_pool_end_tap(ptrdiff_t start, ptrdiff_t dilation,
                                             ptrdiff_t kernel, ptrdiff_t size) {
    ptrdiff_t last = size - 1 - start;
    if (last < 0)
        return 0;
    last = dilation == 1 ? last + 1 : last / dilation + 1;
    return last < kernel ? last : kernel;
}

/* The 2x2, stride 2, unpadded, undilated 2-D pool with every window inside: its
 * own loops */
static inline int pyxconv_pool_is_2x2(const pyxconv_pool_sizes* z) {
    return z->k_d == 1 && z->s_d == 1 && z->p_d == 0 && z->d_d == 1 && z->k_h == 2
           && z->k_w == 2 && z->s_h == 2 && z->s_w == 2 && z->p_h == 0 && z->p_w == 0
           && z->d_h == 1 && z->d_w == 1 && 2 * z->out_h <= z->in_h
           && 2 * z->out_w <= z->in_w;
}

#define PYXCONV_ATTR
#define PYXCONV_T float
#define PYXCONV_UINT uint32_t
#define PYXCONV_SUFFIX f32_base
#include "pool_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_UINT
#undef PYXCONV_SUFFIX
#define PYXCONV_T double
#define PYXCONV_UINT uint64_t
#define PYXCONV_SUFFIX f64_base
#include "pool_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_UINT
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR

#if defined(PYXCONV_GEMM_X86)
#define PYXCONV_ATTR PYXCONV_ATTR_AVX2
#define PYXCONV_T float
#define PYXCONV_UINT uint32_t
#define PYXCONV_SUFFIX f32_avx2
#include "pool_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_UINT
#undef PYXCONV_SUFFIX
#define PYXCONV_T double
#define PYXCONV_UINT uint64_t
#define PYXCONV_SUFFIX f64_avx2
#include "pool_kernels_template.h"
#undef PYXCONV_T
#undef PYXCONV_UINT
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR

/* On AVX-512 the AVX2 instance runs: pooled rows are short (LeNet's 14 columns,
 * ResNet's 28 or 56), so 16-lane vectors leave most of a row to the scalar tail. On
 * a Zen 4 with 512-bit vectors the 3x3 stride-2 pool of 32-column rows took 14.1 ms
 * against AVX2's 9.2, and LeNet's 2x2 pool 0.35 ms against 0.17. */
#define PYXCONV_POOL_BY_ISA(isa, name, ...)                                              \
    do {                                                                                 \
        if ((isa) == PYXCONV_ISA_AVX512 || (isa) == PYXCONV_ISA_AVX2)                    \
            name##_avx2(__VA_ARGS__);                                                    \
        else                                                                             \
            name##_base(__VA_ARGS__);                                                    \
    } while (0)
#else
#define PYXCONV_POOL_BY_ISA(isa, name, ...)                                              \
    do {                                                                                 \
        (void)(isa);                                                                     \
        name##_base(__VA_ARGS__);                                                        \
    } while (0)
#endif

/* Output rows [first, end) of the max pool of z (tasks: plane, output depth, output
 * row), on the instance of `isa` */
static inline void pyxconv_max_pool_rows_f32(int isa, const float* x, float* out,
                                             int64_t* switches, const pyxconv_pool_sizes* z,
                                             const pyxconv_pool_taps* taps, float* best,
                                             int* tap, ptrdiff_t first, ptrdiff_t end) {
    PYXCONV_POOL_BY_ISA(isa, pyxconv_max_pool_rows_f32, x, out, switches, z, taps, best, tap,
                        first, end);
}

static inline void pyxconv_max_pool_rows_f64(int isa, const double* x, double* out,
                                             int64_t* switches, const pyxconv_pool_sizes* z,
                                             const pyxconv_pool_taps* taps, double* best,
                                             int* tap, ptrdiff_t first, ptrdiff_t end) {
    PYXCONV_POOL_BY_ISA(isa, pyxconv_max_pool_rows_f64, x, out, switches, z, taps, best, tap,
                        first, end);
}

#endif  /* PYXCONV_POOL_KERNELS_H */
