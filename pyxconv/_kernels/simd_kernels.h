/* pyxconv's own float32 GEMM for CPUs with AVX-512, used by the per-sample
 * convolution kernels of _im2col.pyx.
 *
 *     C (m x n) = A (m x k) @ B (k x n)        (or C += ..., with accumulate)
 *
 * B and C are row-major with leading dimensions ldb and ldc. A is addressed by
 * two strides, element (i, p) at a[i * a_row + p * a_col], one of which must be
 * 1: row-major A is (lda, 1), a transposed one (1, lda), which costs nothing.
 * (The tiles read a row-major A along p and a transposed one along i, with
 * the other stride 1; pyxconv_sgemm_avx512 refuses other strides.)
 *
 * Why not NumPy's OpenBLAS: the convolutions' products are many small ones,
 * one or two per sample (k = 64 to 512, n = a few hundred). On them OpenBLAS
 * reached about 125 GFLOP/s on one core of the development machine (Sapphire
 * Rapids, 2.6 GHz) and this kernel about 170: it packs nothing and has no set-up
 * cost, and its tiles of 12 x 32 keep 24 of the 32 vector registers accumulating.
 *
 * Each element of C is one chain of fused multiply-adds over p = 0, 1, ...,
 * k - 1, in that order (blocks of p continue the chain from C, exactly), so its
 * value depends on its own row of A and column of B only: not on the tiling,
 * the other sizes or the thread that runs it.
 *
 * The kernel is compiled for AVX-512F whatever the compiler's default target
 * (the target attribute), and must only be called when
 * pyxconv_cpu_has_avx512f() says the CPU and the operating system support it.
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

/* Rows of A per tile; the column panel is 32 floats (two registers). */
#define PYXCONV_TILE_ROWS 12
/* Values of p per pass over C. A panel of B (PYXCONV_DEPTH x 32 floats, 16 KiB)
 * then stays in L2 and mostly in L1 while every tile of its columns reads it, even
 * when B's rows lie 4 KiB apart and map to the same cache sets: with 512 such
 * rows a 64 x 1024 x 576 product ran at 87 GFLOP/s, with 128 at 155. */
#define PYXCONV_DEPTH 128

/* One tile: rows [0, ROWS) of C, columns [0, 32), or those under the masks lo and
 * hi when not FULL. A_COLUMNS: A is transposed in memory (a_row == 1), and one
 * value of p reads ROWS consecutive floats of it. Unrolled by the compiler into
 * 2 * ROWS accumulating registers; the masks and flags are compile-time constants
 * of each variant, so the inner loop carries none of them. */
#define PYXCONV_DEFINE_TILE(NAME, ROWS, FULL, A_COLUMNS)                                 \
PYXCONV_AVX512_INLINE void NAME(                                                         \
        ptrdiff_t depth, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,               \
        const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc, int accumulate,          \
        __mmask16 lo, __mmask16 hi) {                                                    \
    __m512 left[ROWS], right[ROWS];                                                      \
    _Pragma("GCC unroll 16")                                                             \
    for (int r = 0; r < ROWS; r++) {                                                     \
        if (accumulate) {                                                                \
            left[r] = FULL ? _mm512_loadu_ps(c + r * ldc)                                \
                           : _mm512_maskz_loadu_ps(lo, c + r * ldc);                     \
            right[r] = FULL ? _mm512_loadu_ps(c + r * ldc + 16)                          \
                            : _mm512_maskz_loadu_ps(hi, c + r * ldc + 16);               \
        } else {                                                                         \
            left[r] = _mm512_setzero_ps();                                               \
            right[r] = _mm512_setzero_ps();                                              \
        }                                                                                \
    }                                                                                    \
    for (ptrdiff_t p = 0; p < depth; p++) {                                              \
        __m512 b_lo = FULL ? _mm512_loadu_ps(b + p * ldb)                                \
                           : _mm512_maskz_loadu_ps(lo, b + p * ldb);                     \
        __m512 b_hi = FULL ? _mm512_loadu_ps(b + p * ldb + 16)                           \
                           : _mm512_maskz_loadu_ps(hi, b + p * ldb + 16);                \
        _Pragma("GCC unroll 16")                                                         \
        for (int r = 0; r < ROWS; r++) {                                                 \
            __m512 a_rp = _mm512_set1_ps(A_COLUMNS ? a[p * a_col + r] : a[r * a_row + p]); \
            left[r] = _mm512_fmadd_ps(a_rp, b_lo, left[r]);                              \
            right[r] = _mm512_fmadd_ps(a_rp, b_hi, right[r]);                            \
        }                                                                                \
    }                                                                                    \
    _Pragma("GCC unroll 16")                                                             \
    for (int r = 0; r < ROWS; r++) {                                                     \
        if (FULL) {                                                                      \
            _mm512_storeu_ps(c + r * ldc, left[r]);                                      \
            _mm512_storeu_ps(c + r * ldc + 16, right[r]);                                \
        } else {                                                                         \
            _mm512_mask_storeu_ps(c + r * ldc, lo, left[r]);                             \
            _mm512_mask_storeu_ps(c + r * ldc + 16, hi, right[r]);                       \
        }                                                                                \
    }                                                                                    \
}

#define PYXCONV_DEFINE_TILES(ROWS)                                                       \
PYXCONV_DEFINE_TILE(pyxconv_tile_##ROWS##_rows_full, ROWS, 1, 0)                         \
PYXCONV_DEFINE_TILE(pyxconv_tile_##ROWS##_rows_edge, ROWS, 0, 0)                         \
PYXCONV_DEFINE_TILE(pyxconv_tile_##ROWS##_cols_full, ROWS, 1, 1)                         \
PYXCONV_DEFINE_TILE(pyxconv_tile_##ROWS##_cols_edge, ROWS, 0, 1)                         \
PYXCONV_AVX512_INLINE void pyxconv_tile_##ROWS(                                          \
        ptrdiff_t depth, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,               \
        const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc, int accumulate,          \
        __mmask16 lo, __mmask16 hi) {                                                    \
    int full = lo == (__mmask16)0xFFFF && hi == (__mmask16)0xFFFF;                       \
    if (a_row == 1 && full)                                                              \
        pyxconv_tile_##ROWS##_cols_full(depth, a, a_row, a_col, b, ldb, c, ldc,          \
                                        accumulate, lo, hi);                             \
    else if (a_row == 1)                                                                 \
        pyxconv_tile_##ROWS##_cols_edge(depth, a, a_row, a_col, b, ldb, c, ldc,          \
                                        accumulate, lo, hi);                             \
    else if (full)                                                                       \
        pyxconv_tile_##ROWS##_rows_full(depth, a, a_row, a_col, b, ldb, c, ldc,          \
                                        accumulate, lo, hi);                             \
    else                                                                                 \
        pyxconv_tile_##ROWS##_rows_edge(depth, a, a_row, a_col, b, ldb, c, ldc,          \
                                        accumulate, lo, hi);                             \
}

PYXCONV_DEFINE_TILES(12)
PYXCONV_DEFINE_TILES(8)
PYXCONV_DEFINE_TILES(4)
PYXCONV_DEFINE_TILES(2)
PYXCONV_DEFINE_TILES(1)

/* Masks of the two registers of a panel whose first `width` columns exist. */
PYXCONV_AVX512_INLINE void pyxconv_panel_masks(ptrdiff_t width, __mmask16* lo,
                                               __mmask16* hi) {
    *lo = width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1u);
    *hi = width >= 32 ? (__mmask16)0xFFFF
        : width > 16 ? (__mmask16)((1u << (width - 16)) - 1u) : (__mmask16)0;
}

static PYXCONV_AVX512 void pyxconv_sgemm_avx512(
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float* a, ptrdiff_t a_row,
        ptrdiff_t a_col, const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc,
        int accumulate) {
    ptrdiff_t p0, j, i, depth;
    __mmask16 lo, hi;
    if (a_row != 1 && a_col != 1)
        return;  /* outside the contract; the callers never pass it (see the top) */
    if (k <= 0) {  /* an empty sum: C = 0, or C unchanged */
        if (!accumulate)
            for (i = 0; i < m; i++)
                for (j = 0; j < n; j++)
                    c[i * ldc + j] = 0.0f;
        return;
    }
    for (p0 = 0; p0 < k; p0 += PYXCONV_DEPTH) {
        depth = k - p0 < PYXCONV_DEPTH ? k - p0 : PYXCONV_DEPTH;
        /* after the first block C holds the partial chains: continue them */
        int add = accumulate || p0 > 0;
        const float* a_block = a + p0 * a_col;
        const float* b_block = b + p0 * ldb;
        for (j = 0; j < n; j += 32) {
            pyxconv_panel_masks(n - j, &lo, &hi);
            for (i = 0; i + 12 <= m; i += 12)
                pyxconv_tile_12(depth, a_block + i * a_row, a_row, a_col, b_block + j, ldb,
                                c + i * ldc + j, ldc, add, lo, hi);
            if (m - i >= 8) {
                pyxconv_tile_8(depth, a_block + i * a_row, a_row, a_col, b_block + j, ldb,
                               c + i * ldc + j, ldc, add, lo, hi);
                i += 8;
            }
            if (m - i >= 4) {
                pyxconv_tile_4(depth, a_block + i * a_row, a_row, a_col, b_block + j, ldb,
                               c + i * ldc + j, ldc, add, lo, hi);
                i += 4;
            }
            if (m - i >= 2) {
                pyxconv_tile_2(depth, a_block + i * a_row, a_row, a_col, b_block + j, ldb,
                               c + i * ldc + j, ldc, add, lo, hi);
                i += 2;
            }
            if (m - i >= 1)
                pyxconv_tile_1(depth, a_block + i * a_row, a_row, a_col, b_block + j, ldb,
                               c + i * ldc + j, ldc, add, lo, hi);
        }
    }
}

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

static void pyxconv_sgemm_avx512(
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float* a, ptrdiff_t a_row,
        ptrdiff_t a_col, const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc,
        int accumulate) {
    (void)m; (void)n; (void)k; (void)a; (void)a_row; (void)a_col; (void)b; (void)ldb;
    (void)c; (void)ldc; (void)accumulate;
}

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
