/* pyxconv's AVX-512 helpers for col2im and the transposed convolution's fold,
 * used by _im2col.pyx: adds of long runs, the stride-2 deinterleave, the fold
 * of a plane by phases, a 4x4 SSE transpose and a float32 sum. (The matrix
 * products are in gemm_kernels.h, one source for every instruction set.)
 *
 * The AVX-512 functions are compiled for AVX-512F whatever the compiler's
 * default target (the target attribute), and must only be called when
 * pyxconv_cpu_has_avx512f() says the CPU and the operating system support it;
 * each gives the bits of the portable loop it replaces (tested).
 */
#ifndef PYXCONV_SIMD_KERNELS_H
#define PYXCONV_SIMD_KERNELS_H

#include <stddef.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define PYXCONV_AVX512_KERNEL_BUILT 1
#include <immintrin.h>

#define PYXCONV_AVX512 __attribute__((target("avx512f")))
#define PYXCONV_AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

/* dst[i] += src[i] for 0 <= i < n: col2im's adds, 16 at a time (exact: each
 * element gets one addition, as in any other order of the loop). */
PYXCONV_AVX512_INLINE void pyxconv_add_run(float* dst, const float* src, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i),
                                                _mm512_loadu_ps(src + i)));
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, tail,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(tail, dst + i),
                                            _mm512_maskz_loadu_ps(tail, src + i)));
    }
}

static PYXCONV_AVX512 void pyxconv_add_avx512(float* dst, const float* src, ptrdiff_t n) {
    pyxconv_add_run(dst, src, n);
}

/* row[2m] = even[m] (+ bias), row[2m + 1] = odd[m] (+ bias) for 0 <= m < half:
 * a plane row put together from its two phases. */
PYXCONV_AVX512_INLINE void pyxconv_interleave(float* row, const float* even,
                                              const float* odd, ptrdiff_t half,
                                              int has_bias, float bias) {
    const __m512i low = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    const __m512i high = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10,
                                          25, 9, 24, 8);
    __m512 b = _mm512_set1_ps(bias);
    ptrdiff_t m = 0;
    for (; m + 16 <= half; m += 16) {
        __m512 e = _mm512_loadu_ps(even + m), o = _mm512_loadu_ps(odd + m);
        if (has_bias) {
            e = _mm512_add_ps(e, b);
            o = _mm512_add_ps(o, b);
        }
        _mm512_storeu_ps(row + 2 * m, _mm512_permutex2var_ps(e, low, o));
        _mm512_storeu_ps(row + 2 * m + 16, _mm512_permutex2var_ps(e, high, o));
    }
    for (; m < half; m++) {
        row[2 * m] = has_bias ? even[m] + bias : even[m];
        row[2 * m + 1] = has_bias ? odd[m] + bias : odd[m];
    }
}

/* _im2col.pyx's _fold_plane for float32, compiled for AVX-512: the same loops and
 * tables, adding in the same order (so the same bits), with the adds and the
 * rows' interleave 16 lanes wide and inline (from Cython, each short row's add
 * was a call). On the benchmark's transposed convolution this took the forward's
 * work besides its products from about 1.2 to 0.6 ms (1 thread). */
static PYXCONV_AVX512 void pyxconv_fold_plane_avx512(
        const float* cols, float* plane, float* buffer, int has_bias, float bias,
        ptrdiff_t c, ptrdiff_t positions, ptrdiff_t in_d, ptrdiff_t in_h, ptrdiff_t in_w,
        ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t k_d, ptrdiff_t k_h, ptrdiff_t k_w,
        ptrdiff_t stride_h, ptrdiff_t stride_w, ptrdiff_t band_rows,
        const ptrdiff_t* tables) {
    ptrdiff_t span_h = (in_h + stride_h - 1) / stride_h;
    ptrdiff_t span_w = (in_w + stride_w - 1) / stride_w;
    ptrdiff_t phase_size = band_rows * span_w;
    const ptrdiff_t* depth_table = tables;
    const ptrdiff_t* row_taps = tables + in_d * k_d;
    const ptrdiff_t* col_taps = row_taps + 4 * k_h;
    ptrdiff_t kernel_volume = k_d * k_h * k_w;
    ptrdiff_t id, band_lo, band_hi, a, b, e, od, oh, oh_lo, oh_hi, lo, hi, shift, ph, pw, mh,
        ih, m, i;
    for (id = 0; id < in_d; id++) {
        for (band_lo = 0; band_lo < span_h; band_lo += band_rows) {
            band_hi = band_lo + band_rows < span_h ? band_lo + band_rows : span_h;
            memset(buffer, 0, (size_t)(stride_h * stride_w * phase_size) * sizeof(float));
            for (a = 0; a < k_d; a++) {
                od = depth_table[id * k_d + a];
                if (od < 0)
                    continue;
                for (b = 0; b < k_h; b++) {
                    /* rows of tap b that land in the band: mh = oh + shift */
                    shift = row_taps[4 * b + 3];
                    oh_lo = row_taps[4 * b];
                    if (oh_lo < band_lo - shift)
                        oh_lo = band_lo - shift;
                    oh_hi = row_taps[4 * b + 1];
                    if (oh_hi > band_hi - shift)
                        oh_hi = band_hi - shift;
                    if (oh_lo >= oh_hi)
                        continue;
                    const float* src = cols + (c * kernel_volume + (a * k_h + b) * k_w) * positions
                        + od * out_h * out_w;
                    for (e = 0; e < k_w; e++, src += positions) {
                        lo = col_taps[4 * e];
                        hi = col_taps[4 * e + 1];
                        /* buffer position of output (oh, ow): dst + oh * span_w + ow */
                        float* dst = buffer
                            + (row_taps[4 * b + 2] * stride_w + col_taps[4 * e + 2]) * phase_size
                            + (shift - band_lo) * span_w + col_taps[4 * e + 3];
                        if (lo == 0 && hi == out_w && span_w == out_w)
                            pyxconv_add_run(dst + oh_lo * out_w, src + oh_lo * out_w,
                                            (oh_hi - oh_lo) * out_w);
                        else if (hi > lo)
                            for (oh = oh_lo; oh < oh_hi; oh++)
                                pyxconv_add_run(dst + oh * span_w + lo, src + oh * out_w + lo,
                                                hi - lo);
                    }
                }
            }
            /* the band's plane rows: ih = stride_h * mh + ph */
            for (ph = 0; ph < stride_h; ph++) {
                for (mh = band_lo; mh < band_hi; mh++) {
                    ih = mh * stride_h + ph;
                    if (ih >= in_h)
                        break;
                    float* row = plane + (id * in_h + ih) * in_w;
                    const float* even = buffer + ph * stride_w * phase_size
                        + (mh - band_lo) * span_w;
                    if (stride_w == 1) {
                        if (has_bias)
                            for (i = 0; i < in_w; i++)
                                row[i] = even[i] + bias;
                        else
                            memcpy(row, even, (size_t)in_w * sizeof(float));
                    } else if (stride_w == 2) {
                        pyxconv_interleave(row, even, even + phase_size, in_w / 2, has_bias,
                                           bias);
                        if (in_w % 2) {
                            m = in_w / 2;
                            row[2 * m] = has_bias ? even[m] + bias : even[m];
                        }
                    } else {
                        for (pw = 0; pw < stride_w; pw++)
                            for (m = 0; m < span_w; m++) {
                                i = m * stride_w + pw;
                                if (i >= in_w)
                                    break;
                                row[i] = has_bias ? even[pw * phase_size + m] + bias
                                                  : even[pw * phase_size + m];
                            }
                    }
                }
            }
        }
    }
}

/* even[m] = row[2m], odd[m] = row[2m + 1] for 0 <= m < half: a plane row split
 * into its two phases. */
static PYXCONV_AVX512 void pyxconv_deinterleave_avx512(const float* row, float* even,
                                                       float* odd, ptrdiff_t half) {
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                           4, 2, 0);
    const __m512i odds = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7,
                                          5, 3, 1);
    ptrdiff_t m = 0;
    for (; m + 16 <= half; m += 16) {
        __m512 first = _mm512_loadu_ps(row + 2 * m), second = _mm512_loadu_ps(row + 2 * m + 16);
        _mm512_storeu_ps(even + m, _mm512_permutex2var_ps(first, evens, second));
        _mm512_storeu_ps(odd + m, _mm512_permutex2var_ps(first, odds, second));
    }
    for (; m < half; m++) {
        even[m] = row[2 * m];
        odd[m] = row[2 * m + 1];
    }
}

/* dst (cols x rows) = src (rows x cols)^T, both contiguous: the transposed copy of
 * an operand that the GEMM needs by rows. In 4 x 4 blocks through SSE registers
 * (every x86-64 CPU has them); the edges one value at a time. */
static void pyxconv_transpose_f32(const float* src, float* dst, ptrdiff_t rows,
                                  ptrdiff_t cols) {
    ptrdiff_t r, c, r0, c0;
    for (r0 = 0; r0 + 4 <= rows; r0 += 4) {
        for (c0 = 0; c0 + 4 <= cols; c0 += 4) {
            __m128 row0 = _mm_loadu_ps(src + (r0 + 0) * cols + c0);
            __m128 row1 = _mm_loadu_ps(src + (r0 + 1) * cols + c0);
            __m128 row2 = _mm_loadu_ps(src + (r0 + 2) * cols + c0);
            __m128 row3 = _mm_loadu_ps(src + (r0 + 3) * cols + c0);
            _MM_TRANSPOSE4_PS(row0, row1, row2, row3);
            _mm_storeu_ps(dst + (c0 + 0) * rows + r0, row0);
            _mm_storeu_ps(dst + (c0 + 1) * rows + r0, row1);
            _mm_storeu_ps(dst + (c0 + 2) * rows + r0, row2);
            _mm_storeu_ps(dst + (c0 + 3) * rows + r0, row3);
        }
        for (r = r0; r < r0 + 4; r++)
            for (c = c0; c < cols; c++)
                dst[c * rows + r] = src[r * cols + c];
    }
    for (r = r0; r < rows; r++)
        for (c = 0; c < cols; c++)
            dst[c * rows + r] = src[r * cols + c];
}

/* values[0] + ... + values[count - 1], accumulated in double: eight running sums
 * in four SSE2 registers, combined in a fixed order (so the same bits on every
 * run and thread), the tail one value at a time. */
static double pyxconv_sum_f32(const float* values, ptrdiff_t count) {
    __m128d sum0 = _mm_setzero_pd(), sum1 = _mm_setzero_pd();
    __m128d sum2 = _mm_setzero_pd(), sum3 = _mm_setzero_pd();
    double lanes[8], total;
    ptrdiff_t i;
    for (i = 0; i + 8 <= count; i += 8) {
        __m128 low = _mm_loadu_ps(values + i), high = _mm_loadu_ps(values + i + 4);
        sum0 = _mm_add_pd(sum0, _mm_cvtps_pd(low));
        sum1 = _mm_add_pd(sum1, _mm_cvtps_pd(_mm_movehl_ps(low, low)));
        sum2 = _mm_add_pd(sum2, _mm_cvtps_pd(high));
        sum3 = _mm_add_pd(sum3, _mm_cvtps_pd(_mm_movehl_ps(high, high)));
    }
    _mm_storeu_pd(lanes, sum0);
    _mm_storeu_pd(lanes + 2, sum1);
    _mm_storeu_pd(lanes + 4, sum2);
    _mm_storeu_pd(lanes + 6, sum3);
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
          + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < count; i++)
        total += values[i];
    return total;
}

static int pyxconv_cpu_has_avx512f(void) {
    /* CPUID and the OS's register state (XCR0), both checked by the builtin */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

#else  /* another compiler or architecture: the kernel is not built */
#define PYXCONV_AVX512_KERNEL_BUILT 0

/* Stubs, so that _im2col.pyx compiles everywhere. They do nothing: every call
 * in _im2col.pyx sits behind use of the AVX-512 kernels, which
 * pyxconv_cpu_has_avx512f() (0 here) never allows. */


static void pyxconv_add_avx512(float* dst, const float* src, ptrdiff_t n) {
    (void)dst; (void)src; (void)n;
}

static void pyxconv_fold_plane_avx512(
        const float* cols, float* plane, float* buffer, int has_bias, float bias,
        ptrdiff_t c, ptrdiff_t positions, ptrdiff_t in_d, ptrdiff_t in_h, ptrdiff_t in_w,
        ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t k_d, ptrdiff_t k_h, ptrdiff_t k_w,
        ptrdiff_t stride_h, ptrdiff_t stride_w, ptrdiff_t band_rows,
        const ptrdiff_t* tables) {
    (void)cols; (void)plane; (void)buffer; (void)has_bias; (void)bias; (void)c;
    (void)positions; (void)in_d; (void)in_h; (void)in_w; (void)out_h; (void)out_w;
    (void)k_d; (void)k_h; (void)k_w; (void)stride_h; (void)stride_w; (void)band_rows;
    (void)tables;
}

static void pyxconv_deinterleave_avx512(const float* row, float* even, float* odd,
                                        ptrdiff_t half) {
    (void)row; (void)even; (void)odd; (void)half;
}

static void pyxconv_transpose_f32(const float* src, float* dst, ptrdiff_t rows,
                                  ptrdiff_t cols) {
    (void)src; (void)dst; (void)rows; (void)cols;
}

static double pyxconv_sum_f32(const float* values, ptrdiff_t count) {
    (void)values; (void)count;
    return 0.0;
}

static int pyxconv_cpu_has_avx512f(void) { return 0; }
#endif

#endif  /* PYXCONV_SIMD_KERNELS_H */
