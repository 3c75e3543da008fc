/* pyxconv's own float32 GEMM, one C source for every instruction set.
 *
 *     C (m x n) = A (m x k) @ B (k x n)        (or C += ..., with accumulate)
 *
 * B and C are row-major with leading dimensions ldb and ldc. A is addressed by
 * two strides, element (i, p) at a[i * a_row + p * a_col], one of which must be
 * 1: row-major A is (lda, 1), a transposed one (1, lda), which costs nothing.
 *
 * The kernel is written once with GCC/Clang vector extensions (a vector of W
 * floats) and instantiated per instruction set by PYXCONV_DEFINE_GEMM:
 *
 *     AVX-512F   W = 16, tiles of 12 rows x 32 columns (24 of 32 registers accumulate)
 *     AVX2 + FMA W = 8,  tiles of  6 rows x 16 columns (12 of 16)
 *     NEON       W = 4,  tiles of  8 rows x  8 columns (16 of 32)
 *
 * The x86 variants are compiled for their instruction set whatever the
 * compiler's default target (the target attribute) and must only be called
 * when pyxconv_cpu_has_isa() says the CPU and the operating system support it.
 * It packs only B's panel of DEPTH x 2W values (a 16 KiB copy at most, on the
 * stack) and nothing of A, so it has no set-up cost: the convolutions' products
 * are many small ones, one or two per sample or panel. Packing A as well (into
 * tile order) measured slower for products under about a thousand columns and
 * no faster above, once the next panel of B is prefetched.
 *
 * Each element of C is one chain of fused multiply-adds over p = 0, 1, ...,
 * k - 1, in that order (passes of PYXCONV_GEMM_DEPTH values of p continue the
 * chain from C, exactly), so its value depends on its own row of A and column
 * of B only: not on the tiling, the other sizes, the thread that runs it, or the
 * instruction set (the multiply-adds are fused on each: `acc += a * b` is
 * contracted, which GCC does by default and Clang within one expression).
 * Columns past the last whole panel are computed from a zero-padded copy of B's
 * panel into a small tile, then copied out, so no load or store leaves the
 * operands.
 */
#ifndef PYXCONV_GEMM_KERNELS_H
#define PYXCONV_GEMM_KERNELS_H

#include <stddef.h>
#include <string.h>

/* restrict, for the loops of every header built on this one */
#if defined(__GNUC__) || defined(__clang__)
#define PYXCONV_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define PYXCONV_RESTRICT __restrict
#else
#define PYXCONV_RESTRICT
#endif

/* Values of p per pass over C: a panel of B (DEPTH x 2W floats) then stays in
 * L1 while every tile of its columns reads it, even when B's rows lie 4 KiB
 * apart and map to the same cache sets. */
#define PYXCONV_GEMM_DEPTH 128

/* Instruction sets, as _im2col.pyx numbers them */
#define PYXCONV_ISA_NONE 0
#define PYXCONV_ISA_AVX2 1
#define PYXCONV_ISA_AVX512 2
#define PYXCONV_ISA_NEON 3

#if defined(__GNUC__) || defined(__clang__)

/* One tile: ROWS rows of C by 2W columns, all of them present. A_COLUMNS: A is
 * transposed in memory (a_row == 1). V is the vector type; VU the same with
 * 4-byte alignment, for unaligned loads and stores. */
#define PYXCONV_GEMM_TILE(NAME, ATTR, V, VU, W, ROWS, A_COLUMNS)                       \
static inline ATTR void NAME(ptrdiff_t depth, const float* a, ptrdiff_t a_row,          \
                             ptrdiff_t a_col, const float* b, ptrdiff_t ldb, float* c,    \
                             ptrdiff_t ldc, int accumulate) {                             \
    V left[ROWS], right[ROWS];                                                           \
    _Pragma("GCC unroll 16")                                                             \
    for (int r = 0; r < ROWS; r++) {                                                     \
        if (accumulate) {                                                                \
            left[r] = *(const VU*)(c + r * ldc);                                         \
            right[r] = *(const VU*)(c + r * ldc + W);                                    \
        } else {                                                                         \
            left[r] = (V){0};                                                            \
            right[r] = (V){0};                                                           \
        }                                                                                \
    }                                                                                    \
    for (ptrdiff_t p = 0; p < depth; p++) {                                              \
        V b_lo = *(const VU*)(b + p * ldb);                                              \
        V b_hi = *(const VU*)(b + p * ldb + W);                                          \
        _Pragma("GCC unroll 16")                                                         \
        for (int r = 0; r < ROWS; r++) {                                                 \
            float a_rp = A_COLUMNS ? a[p * a_col + r] : a[r * a_row + p];                \
            left[r] += a_rp * b_lo;                                                      \
            right[r] += a_rp * b_hi;                                                     \
        }                                                                                \
    }                                                                                    \
    _Pragma("GCC unroll 16")                                                             \
    for (int r = 0; r < ROWS; r++) {                                                     \
        *(VU*)(c + r * ldc) = left[r];                                                   \
        *(VU*)(c + r * ldc + W) = right[r];                                              \
    }                                                                                    \
}

/* Rows [0, rows) of C with rows <= ROWS, through the tile of ROWS rows or the
 * smaller ones (halving), in row-major or transposed A. */
#define PYXCONV_GEMM_ROW_TILES(PREFIX, ATTR, V, VU, W, ROWS)                           \
PYXCONV_GEMM_TILE(PREFIX##_rows_##ROWS, ATTR, V, VU, W, ROWS, 0)                       \
PYXCONV_GEMM_TILE(PREFIX##_cols_##ROWS, ATTR, V, VU, W, ROWS, 1)

#define PYXCONV_TILE_CALL(PREFIX, ROWS, depth, a, a_row, a_col, b, ldb, c, ldc, add)     \
    do {                                                                                 \
        if ((a_row) == 1)                                                                \
            PREFIX##_cols_##ROWS(depth, a, a_row, a_col, b, ldb, c, ldc, add);           \
        else                                                                             \
            PREFIX##_rows_##ROWS(depth, a, a_row, a_col, b, ldb, c, ldc, add);           \
    } while (0)

/* The whole GEMM for one instruction set: tiles of R0 rows, then R1, R2, R3, 1
 * (R0 > R1 > R2 > R3 > 1) for the last rows. */
#define PYXCONV_DEFINE_GEMM(NAME, ATTR, V, VU, W, R0, R1, R2, R3)                         \
PYXCONV_GEMM_ROW_TILES(NAME##_t, ATTR, V, VU, W, R0)                                   \
PYXCONV_GEMM_ROW_TILES(NAME##_t, ATTR, V, VU, W, R1)                                   \
PYXCONV_GEMM_ROW_TILES(NAME##_t, ATTR, V, VU, W, R2)                                   \
PYXCONV_GEMM_ROW_TILES(NAME##_t, ATTR, V, VU, W, R3)                                   \
PYXCONV_GEMM_ROW_TILES(NAME##_t, ATTR, V, VU, W, 1)                                    \
/* Rows [0, m) of one panel of 2W columns of B and C. */                                 \
static inline ATTR void NAME##_panel(ptrdiff_t m, ptrdiff_t depth, const float* a,       \
                                     ptrdiff_t a_row, ptrdiff_t a_col, const float* b,    \
                                     ptrdiff_t ldb, float* c, ptrdiff_t ldc, int add) {    \
    ptrdiff_t i = 0;                                                                     \
    for (; i + R0 <= m; i += R0)                                                         \
        PYXCONV_TILE_CALL(NAME##_t, R0, depth, a + i * a_row, a_row, a_col, b, ldb,      \
                          c + i * ldc, ldc, add);                                        \
    if (m - i >= R1) {                                                                   \
        PYXCONV_TILE_CALL(NAME##_t, R1, depth, a + i * a_row, a_row, a_col, b, ldb,      \
                          c + i * ldc, ldc, add);                                        \
        i += R1;                                                                         \
    }                                                                                    \
    if (m - i >= R2) {                                                                   \
        PYXCONV_TILE_CALL(NAME##_t, R2, depth, a + i * a_row, a_row, a_col, b, ldb,      \
                          c + i * ldc, ldc, add);                                        \
        i += R2;                                                                         \
    }                                                                                    \
    if (m - i >= R3) {                                                                   \
        PYXCONV_TILE_CALL(NAME##_t, R3, depth, a + i * a_row, a_row, a_col, b, ldb,      \
                          c + i * ldc, ldc, add);                                        \
        i += R3;                                                                         \
    }                                                                                    \
    for (; i < m; i++)                                                                   \
        PYXCONV_TILE_CALL(NAME##_t, 1, depth, a + i * a_row, a_row, a_col, b, ldb,       \
                          c + i * ldc, ldc, add);                                        \
}                                                                                        \
static ATTR void NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float* a,             \
                      ptrdiff_t a_row, ptrdiff_t a_col, const float* b, ptrdiff_t ldb,   \
                      float* c, ptrdiff_t ldc, int accumulate) {                         \
    /* B's panel, packed: B's rows ldb apart (4 KiB and its multiples are common) would  \
     * share a few L1 sets and evict each other. The last, partial panel is zero-padded  \
     * and its C goes through a small tile. */                                           \
    float b_panel[PYXCONV_GEMM_DEPTH * 2 * W] __attribute__((aligned(64)));              \
    float c_edge[R0 * 2 * W] __attribute__((aligned(64)));                               \
    ptrdiff_t p0, j, i, r, depth, width;                                                 \
    if (a_row != 1 && a_col != 1)                                                        \
        return;  /* outside the contract; the callers never pass it (see the top) */     \
    if (k <= 0) {  /* an empty sum: C = 0, or C unchanged */                             \
        if (!accumulate)                                                                 \
            for (i = 0; i < m; i++)                                                      \
                memset(c + i * ldc, 0, (size_t)n * sizeof(float));                       \
        return;                                                                          \
    }                                                                                    \
    ptrdiff_t full_n = n - n % (2 * W);                                                  \
    for (p0 = 0; p0 < k; p0 += PYXCONV_GEMM_DEPTH) {                                     \
        depth = k - p0 < PYXCONV_GEMM_DEPTH ? k - p0 : PYXCONV_GEMM_DEPTH;               \
        /* after the first pass C holds the partial chains: continue them */             \
        int add = accumulate || p0 > 0;                                                  \
        const float* b_block = b + p0 * ldb;                                             \
        const float* a_block = a + p0 * a_col;                                           \
        for (j = 0; j < full_n; j += 2 * W) {                                            \
            /* the next panel's rows are fetched while this one is computed */           \
            ptrdiff_t next = j + 2 * W < n ? j + 2 * W : j;                              \
            for (r = 0; r < depth; r++) {                                                \
                memcpy(b_panel + r * 2 * W, b_block + r * ldb + j,                       \
                       (size_t)(2 * W) * sizeof(float));                                 \
                __builtin_prefetch(b_block + r * ldb + next, 0, 3);                      \
                __builtin_prefetch(b_block + r * ldb + next + 2 * W - 1, 0, 3);          \
            }                                                                            \
            NAME##_panel(m, depth, a_block, a_row, a_col, b_panel, 2 * W, c + j, ldc, add); \
        }                                                                                \
        if (full_n == n)                                                                 \
            continue;                                                                    \
        width = n - full_n;                                                              \
        for (r = 0; r < depth; r++) {                                                    \
            memcpy(b_panel + r * 2 * W, b_block + r * ldb + full_n,                      \
                   (size_t)width * sizeof(float));                                       \
            memset(b_panel + r * 2 * W + width, 0, (size_t)(2 * W - width) * sizeof(float)); \
        }                                                                                \
        for (i = 0; i < m; i += R0) {                                                    \
            ptrdiff_t rows = m - i < R0 ? m - i : R0;                                    \
            if (add)                                                                     \
                for (r = 0; r < rows; r++)                                               \
                    memcpy(c_edge + r * 2 * W, c + (i + r) * ldc + full_n,               \
                           (size_t)width * sizeof(float));                               \
            NAME##_panel(rows, depth, a_block + i * a_row, a_row, a_col, b_panel, 2 * W, \
                         c_edge, 2 * W, add);                                            \
            for (r = 0; r < rows; r++)                                                   \
                memcpy(c + (i + r) * ldc + full_n, c_edge + r * 2 * W,                   \
                       (size_t)width * sizeof(float));                                   \
        }                                                                                \
    }                                                                                    \
}

#endif  /* GCC or Clang */

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define PYXCONV_GEMM_X86 1

typedef float pyxconv_v8 __attribute__((vector_size(32)));
typedef float pyxconv_v8u __attribute__((vector_size(32), aligned(4)));
typedef float pyxconv_v16 __attribute__((vector_size(64)));
typedef float pyxconv_v16u __attribute__((vector_size(64), aligned(4)));

#define PYXCONV_ATTR_AVX2 __attribute__((target("avx2,fma")))
#define PYXCONV_ATTR_AVX512 __attribute__((target("avx512f")))

PYXCONV_DEFINE_GEMM(pyxconv_sgemm_avx2_impl, PYXCONV_ATTR_AVX2, pyxconv_v8, pyxconv_v8u,
                    8, 6, 4, 3, 2)
PYXCONV_DEFINE_GEMM(pyxconv_sgemm_avx512_impl, PYXCONV_ATTR_AVX512, pyxconv_v16,
                    pyxconv_v16u, 16, 12, 8, 4, 2)

static int pyxconv_cpu_has_isa(int isa) {
    /* CPUID and the OS's register state (XCR0), both checked by the builtins */
    __builtin_cpu_init();
    if (isa == PYXCONV_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == PYXCONV_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") ? 1 : 0;
    return isa == PYXCONV_ISA_NONE;
}

#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
#define PYXCONV_GEMM_NEON 1

/* NEON is part of every AArch64 CPU: no target attribute, no run-time check */
typedef float pyxconv_v4 __attribute__((vector_size(16)));
typedef float pyxconv_v4u __attribute__((vector_size(16), aligned(4)));

PYXCONV_DEFINE_GEMM(pyxconv_sgemm_neon_impl, , pyxconv_v4, pyxconv_v4u, 4, 8, 4, 3, 2)

static int pyxconv_cpu_has_isa(int isa) {
    return isa == PYXCONV_ISA_NEON || isa == PYXCONV_ISA_NONE;
}

#else
static int pyxconv_cpu_has_isa(int isa) { return isa == PYXCONV_ISA_NONE; }
#endif

/* The GEMM on instruction set `isa`, which pyxconv_cpu_has_isa(isa) allowed;
 * does nothing for an instruction set this build lacks (the callers never ask). */
static inline void pyxconv_sgemm_isa(int isa, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float* a,
                              ptrdiff_t a_row, ptrdiff_t a_col, const float* b, ptrdiff_t ldb,
                              float* c, ptrdiff_t ldc, int accumulate) {
#if defined(PYXCONV_GEMM_X86)
    if (isa == PYXCONV_ISA_AVX512)
        pyxconv_sgemm_avx512_impl(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
    else if (isa == PYXCONV_ISA_AVX2)
        pyxconv_sgemm_avx2_impl(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
#elif defined(PYXCONV_GEMM_NEON)
    if (isa == PYXCONV_ISA_NEON)
        pyxconv_sgemm_neon_impl(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
#else
    (void)isa; (void)m; (void)n; (void)k; (void)a; (void)a_row; (void)a_col; (void)b;
    (void)ldb; (void)c; (void)ldc; (void)accumulate;
#endif
}

/* name_avx512(...), name_avx2(...) or name_base(...) by the ISA number: the dispatch of
 * every kernel written once per instruction set (the baseline for an ISA this build
 * lacks, and off x86-64) */
#if defined(PYXCONV_GEMM_X86)
#define PYXCONV_CALL_BY_ISA(isa, name, ...)                                              \
    do {                                                                                 \
        if ((isa) == PYXCONV_ISA_AVX512)                                                 \
            name##_avx512(__VA_ARGS__);                                                  \
        else if ((isa) == PYXCONV_ISA_AVX2)                                              \
            name##_avx2(__VA_ARGS__);                                                    \
        else                                                                             \
            name##_base(__VA_ARGS__);                                                    \
    } while (0)
#else
#define PYXCONV_CALL_BY_ISA(isa, name, ...)                                              \
    do {                                                                                 \
        (void)(isa);                                                                     \
        name##_base(__VA_ARGS__);                                                        \
    } while (0)
#endif

#endif  /* PYXCONV_GEMM_KERNELS_H */
