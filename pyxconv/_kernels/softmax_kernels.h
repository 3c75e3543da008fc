/* The float32 and float64 row loops of the softmax and cross-entropy kernels
 * (_softmax.pyx): the maximum of a row, its exponentials and their sum. Written
 * once (softmax_kernels_template.h) and instantiated per instruction set with
 * gemm_kernels.h's ISA numbers and target attributes, as the fold helpers of
 * simd_kernels.h are: AVX-512F, AVX2 with FMA and the baseline on x86-64 with GCC
 * or Clang, the baseline elsewhere (NEON on AArch64). pyxconv_row_max_f(isa, ...)
 * and the other dispatchers run the instance of `isa` (the baseline for
 * PYXCONV_ISA_NONE or an ISA this build lacks), so PYXCONV_ISA switches these
 * loops with every other kernel. The AVX2 and AVX-512 instances fuse the
 * polynomials' multiply-adds, the baseline does not: results agree to an ulp
 * or two between them, and on any one instruction set do not depend on the
 * thread count. */
#ifndef PYXCONV_SOFTMAX_KERNELS_H
#define PYXCONV_SOFTMAX_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gemm_kernels.h"

/* exp(x) for x <= 0 (or NaN), branch-free so that loops over it vectorise.
   exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 (ln 2 in two
   parts so that k ln 2 is exact), exp(r) by Cephes' expf polynomial
   (about 1 ulp). Below -87, where 2^k would leave the normal range, the
   result is 0 (the true value is < 1.7e-38); -inf gives 0, NaN stays NaN.
   The clamp and the zeroing are integer bit masks, not if/?:, because
   with gcc's default -ftrapping-math a floating-point branch is never
   turned into a vector select and the loop would stay scalar. */
static inline float pyxconv_exp_nonpositive_f(float x) {
    uint32_t u, mask, bits;
    float xc, fk, r, r2, p, scale;
    int32_t k;
    memcpy(&u, &x, sizeof u);
    /* all ones where 87 < |x| <= inf (x <= 0 is assumed), else 0 */
    mask = 0u - (uint32_t)(((u & 0x7FFFFFFFu) > 0x42AE0000u)
                           & ((u & 0x7FFFFFFFu) <= 0x7F800000u));
    u = (u & ~mask) | (0xC2AE0000u & mask);  /* -87.0f */
    memcpy(&xc, &u, sizeof xc);
    /* round to nearest: adding 1.5 * 2^23 pushes the fraction bits out */
    fk = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    r = xc - fk * 0.693359375f;
    r = r - fk * -2.12194440e-4f;
    r2 = r * r;
    p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
          + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    k = (int32_t)fk;
    bits = ((uint32_t)(k + 127)) << 23;
    memcpy(&scale, &bits, sizeof scale);
    p = p * scale;
    memcpy(&bits, &p, sizeof bits);
    bits &= ~mask;
    memcpy(&p, &bits, sizeof p);
    return p;
}

/* An int32 that orders like the float v (negative floats: magnitude bits flipped). */
static inline int32_t pyxconv_order_key(float v) {
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b ^ (int32_t)((uint32_t)(b >> 31) & 0x7FFFFFFFu);
}

/* The float64 exp(x) for x <= 0 (or NaN), branch-free as the float32 one.
   k = round(x / ln 2) by the 1.5 * 2^52 trick, whose sum t also holds k in
   its low bits, so 2^k is built with integer operations only (no
   double-to-int64 conversion, which does not vectorise before AVX-512).
   r = x - k ln 2 with fdlibm's two-part ln 2, |r| <= 0.347, and exp(r) by
   its Taylor polynomial to degree 13 (truncation < 5e-18, so the result is
   within a few ulp). Below -708 the result is 0 (true value < 3.3e-308);
   -inf gives 0, NaN stays NaN. */
static inline double pyxconv_exp_nonpositive_d(double x) {
    uint64_t u, mask, bits, tb;
    double xc, t, fk, r, p, scale;
    memcpy(&u, &x, sizeof u);
    mask = (uint64_t)0 - (uint64_t)(((u & 0x7FFFFFFFFFFFFFFFull) > 0x4086200000000000ull)
                                    & ((u & 0x7FFFFFFFFFFFFFFFull) <= 0x7FF0000000000000ull));
    u = (u & ~mask) | (0xC086200000000000ull & mask);  /* -708.0 */
    memcpy(&xc, &u, sizeof xc);
    t = xc * 1.4426950408889634074 + 6755399441055744.0;
    fk = t - 6755399441055744.0;
    memcpy(&tb, &t, sizeof tb);
    bits = (tb - 0x4338000000000000ull + 1023u) << 52;  /* (k + 1023) << 52 */
    r = xc - fk * 6.93147180369123816490e-01;
    r = r - fk * 1.90821492927058770002e-10;
    p = 1.6059043836821613e-10;
    p = p * r + 2.08767569878681e-09;
    p = p * r + 2.505210838544172e-08;
    p = p * r + 2.755731922398589e-07;
    p = p * r + 2.7557319223985893e-06;
    p = p * r + 2.48015873015873e-05;
    p = p * r + 1.984126984126984e-04;
    p = p * r + 1.388888888888889e-03;
    p = p * r + 8.333333333333333e-03;
    p = p * r + 4.1666666666666664e-02;
    p = p * r + 1.6666666666666666e-01;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    memcpy(&scale, &bits, sizeof scale);
    p = p * scale;
    memcpy(&bits, &p, sizeof bits);
    bits &= ~mask;
    memcpy(&p, &bits, sizeof p);
    return p;
}

#define PYXCONV_ATTR
#define PYXCONV_SUFFIX base
#include "softmax_kernels_template.h"
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR

#if defined(PYXCONV_GEMM_X86)
#define PYXCONV_ATTR PYXCONV_ATTR_AVX2
#define PYXCONV_SUFFIX avx2
#include "softmax_kernels_template.h"
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR
#define PYXCONV_ATTR PYXCONV_ATTR_AVX512
#define PYXCONV_SUFFIX avx512
#include "softmax_kernels_template.h"
#undef PYXCONV_SUFFIX
#undef PYXCONV_ATTR
#define PYXCONV_SOFTMAX_BY_ISA(isa, name, ...)                                           \
    ((isa) == PYXCONV_ISA_AVX512 ? name##_avx512(__VA_ARGS__)                           \
     : (isa) == PYXCONV_ISA_AVX2 ? name##_avx2(__VA_ARGS__) : name##_base(__VA_ARGS__))
#else
#define PYXCONV_SOFTMAX_BY_ISA(isa, name, ...) ((void)(isa), name##_base(__VA_ARGS__))
#endif

static inline float pyxconv_row_max_f(int isa, const float* z, ptrdiff_t n) {
    return PYXCONV_SOFTMAX_BY_ISA(isa, pyxconv_row_max_f, z, n);
}

static inline float pyxconv_exp_sum_f(int isa, const float* z, float m, float* e, ptrdiff_t n) {
    return PYXCONV_SOFTMAX_BY_ISA(isa, pyxconv_exp_sum_f, z, m, e, n);
}

static inline void pyxconv_exp_inplace_f(int isa, float* e, ptrdiff_t count) {
    PYXCONV_SOFTMAX_BY_ISA(isa, pyxconv_exp_inplace_f, e, count);
}

static inline double pyxconv_exp_sum_d(int isa, const double* z, double m, double* e,
                                       ptrdiff_t n) {
    return PYXCONV_SOFTMAX_BY_ISA(isa, pyxconv_exp_sum_d, z, m, e, n);
}

static inline void pyxconv_exp_inplace_d(int isa, double* e, ptrdiff_t count) {
    PYXCONV_SOFTMAX_BY_ISA(isa, pyxconv_exp_inplace_d, e, count);
}

#endif  /* PYXCONV_SOFTMAX_KERNELS_H */
