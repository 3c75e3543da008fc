/* One instance of the max-pool row loops of pool_kernels.h, which includes this file
 * once per element type and instruction set after defining
 *
 *     PYXCONV_T       the element type (float or double)
 *     PYXCONV_UINT    the unsigned integer of its width (uint32_t or uint64_t)
 *     PYXCONV_SUFFIX  the instance's name suffix (f32_avx512, f64_base, ...)
 *     PYXCONV_ATTR    its target attribute (empty for the compiler's baseline)
 *
 * Branch-free selects across output columns, which the compiler vectorises for the
 * instance's instruction set. Comparisons and copies only: every instance gives the
 * same values and switches. The rule is PyTorch's CPU kernel's (see _pool.pyx): the
 * running maximum starts at -inf with the switch on the window's first valid tap,
 * and a value replaces it when v > m or v is NaN. No include guard: included
 * repeatedly. */

#define PYXCONV_CAT_(a, b) a##_##b
#define PYXCONV_CAT(a, b) PYXCONV_CAT_(a, b)
#define PYXCONV_FN(name) PYXCONV_CAT(name, PYXCONV_SUFFIX)

/* take ? v : cur, as bit masks: with gcc's default -ftrapping-math a floating-point
 * ?: stays a compare and a branch in the scalar tail of a vectorised loop, and on
 * random data that branch, mispredicted half the time, cost more than the vector
 * body (a 3x3 stride-2 pool of 28-column rows ran 20% slower on AVX2 than on SSE2). */
static inline PYXCONV_ATTR PYXCONV_T PYXCONV_FN(pyxconv_pool_select)(int take, PYXCONV_T v,
                                                                     PYXCONV_T cur) {
    PYXCONV_UINT vb, cb, mask = (PYXCONV_UINT)0 - (PYXCONV_UINT)take;
    memcpy(&vb, &v, sizeof vb);
    memcpy(&cb, &cur, sizeof cb);
    vb = (vb & mask) | (cb & ~mask);
    memcpy(&v, &vb, sizeof v);
    return v;
}

/* One output row (od, oh) of a max pool with any geometry. The taps (c, a, b) of the
 * window (depth, row, column) are the outer loops, in row-major scan order, and the
 * output columns the inner one: each column keeps its running maximum in `best` and
 * the number (c * k_h + a) * k_w + b of its winning tap in `tap` (per-thread scratch
 * of out_w entries). Tap column b lies inside the input for the output columns
 * [col_lo[b], col_hi[b]); depth slices and rows outside the input are skipped as a
 * whole. A column starts from its first valid tap (c0, a0, first_col_tap[ow]). The
 * window origin plus tap_offset[tap] then gives the switch (switches NULL: values
 * only). */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_max_row_generic)(
        const PYXCONV_T* plane, const pyxconv_pool_sizes* z, const pyxconv_pool_taps* taps,
        PYXCONV_T* PYXCONV_RESTRICT out, int64_t* PYXCONV_RESTRICT switches, ptrdiff_t od,
        ptrdiff_t oh, PYXCONV_T* PYXCONV_RESTRICT best, int* PYXCONV_RESTRICT tap) {
    const ptrdiff_t in_h = z->in_h, in_w = z->in_w, out_w = z->out_w;
    const ptrdiff_t k_h = z->k_h, k_w = z->k_w, s_w = z->s_w;
    const ptrdiff_t d_d = z->d_d, d_h = z->d_h, d_w = z->d_w, p_w = z->p_w;
    const ptrdiff_t start_d = od * z->s_d - z->p_d;
    const ptrdiff_t c0 = pyxconv_pool_first_tap(start_d, d_d);
    const ptrdiff_t c1 = pyxconv_pool_end_tap(start_d, d_d, z->k_d, z->in_d);
    const ptrdiff_t start_h = oh * z->s_h - z->p_h;
    const ptrdiff_t a0 = pyxconv_pool_first_tap(start_h, d_h);
    const ptrdiff_t a1 = pyxconv_pool_end_tap(start_h, d_h, k_h, in_h);
    const int first = (int)((c0 * k_h + a0) * k_w);
    ptrdiff_t ow, a, b, c, lo, hi;
    int64_t origin;
    for (ow = 0; ow < out_w; ow++) {
        best[ow] = -(PYXCONV_T)INFINITY;
        tap[ow] = first + taps->first_col_tap[ow];
    }
    for (c = c0; c < c1; c++) {
        for (a = a0; a < a1; a++) {
            for (b = 0; b < k_w; b++) {
                const int t = (int)((c * k_h + a) * k_w + b);
                const PYXCONV_T* src = plane + ((start_d + c * d_d) * in_h + start_h + a * d_h)
                                       * in_w - p_w + b * d_w;
                lo = taps->col_lo[b];
                hi = taps->col_hi[b];
                /* the stride as a constant where it is 1 or 2, so that the loads are
                 * plain or de-interleaving vector loads rather than gathers */
#define PYXCONV_MAX_TAP_LOOP(STEP)                                                       \
                for (ow = lo; ow < hi; ow++) {                                          \
                    const PYXCONV_T v = src[ow * (STEP)], cur = best[ow];               \
                    const int take = (v > cur) | (v != v);                              \
                    best[ow] = PYXCONV_FN(pyxconv_pool_select)(take, v, cur);           \
                    tap[ow] = (t & -take) | (tap[ow] & (take - 1));                     \
                }
                if (s_w == 1) {
                    PYXCONV_MAX_TAP_LOOP(1)
                } else if (s_w == 2) {
                    PYXCONV_MAX_TAP_LOOP(2)
                } else {
                    PYXCONV_MAX_TAP_LOOP(s_w)
                }
#undef PYXCONV_MAX_TAP_LOOP
            }
        }
    }
    memcpy(out, best, (size_t)out_w * sizeof(PYXCONV_T));
    if (switches != NULL) {
        origin = (int64_t)((start_d * in_h + start_h) * in_w - p_w);
        for (ow = 0; ow < out_w; ow++)
            switches[ow] = origin + ow * s_w + taps->tap_offset[tap[ow]];
    }
}

/* One output row of the common 2x2, stride 2, unpadded max pool (windows all inside),
 * in the same rule and scan order, as selects on a tap code 0..3; a second loop
 * turns the codes into switches. */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_max_row_2x2)(
        const PYXCONV_T* plane, ptrdiff_t in_w, PYXCONV_T* PYXCONV_RESTRICT out,
        int64_t* PYXCONV_RESTRICT switches, ptrdiff_t oh, ptrdiff_t out_w,
        int* PYXCONV_RESTRICT tap) {
    const PYXCONV_T* r0 = plane + 2 * oh * in_w;
    const PYXCONV_T* r1 = r0 + in_w;
    const int64_t base = (int64_t)(2 * oh * in_w);
    ptrdiff_t ow;
    for (ow = 0; ow < out_w; ow++) {
        PYXCONV_T m = r0[2 * ow], v;
        int k = 0, take;
        v = r0[2 * ow + 1];
        take = (v > m) | (v != v);
        m = PYXCONV_FN(pyxconv_pool_select)(take, v, m);
        k = (1 & -take) | (k & (take - 1));
        v = r1[2 * ow];
        take = (v > m) | (v != v);
        m = PYXCONV_FN(pyxconv_pool_select)(take, v, m);
        k = (2 & -take) | (k & (take - 1));
        v = r1[2 * ow + 1];
        take = (v > m) | (v != v);
        m = PYXCONV_FN(pyxconv_pool_select)(take, v, m);
        k = (3 & -take) | (k & (take - 1));
        out[ow] = m;
        tap[ow] = k;
    }
    for (ow = 0; ow < out_w; ow++)
        switches[ow] = base + 2 * ow + (tap[ow] & 1) + (int64_t)(tap[ow] >> 1) * in_w;
}

/* pyxconv_max_row_2x2 without the switches: the same selects, in the same order */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_max_row_2x2_values)(
        const PYXCONV_T* plane, ptrdiff_t in_w, PYXCONV_T* PYXCONV_RESTRICT out, ptrdiff_t oh,
        ptrdiff_t out_w) {
    const PYXCONV_T* r0 = plane + 2 * oh * in_w;
    const PYXCONV_T* r1 = r0 + in_w;
    ptrdiff_t ow;
    for (ow = 0; ow < out_w; ow++) {
        PYXCONV_T m = r0[2 * ow], v;
        v = r0[2 * ow + 1];
        m = PYXCONV_FN(pyxconv_pool_select)((v > m) | (v != v), v, m);
        v = r1[2 * ow];
        m = PYXCONV_FN(pyxconv_pool_select)((v > m) | (v != v), v, m);
        v = r1[2 * ow + 1];
        m = PYXCONV_FN(pyxconv_pool_select)((v > m) | (v != v), v, m);
        out[ow] = m;
    }
}

/* Output row `task` (plane, output depth, output row) of the max pool of z: out and
 * switches (NULL: values only) are the whole outputs; best and tap the calling
 * thread's scratch rows of out_w entries. */
static inline PYXCONV_ATTR void PYXCONV_FN(pyxconv_max_pool_row)(
        const PYXCONV_T* x, PYXCONV_T* out, int64_t* switches, const pyxconv_pool_sizes* z,
        const pyxconv_pool_taps* taps, PYXCONV_T* best, int* tap, ptrdiff_t task) {
    const ptrdiff_t in_h = z->in_h, in_w = z->in_w, out_h = z->out_h, out_w = z->out_w;
    const ptrdiff_t rows = z->out_d * out_h, plane = z->in_d * in_h * in_w;
    const ptrdiff_t p = task / rows, r = task - p * rows;
    const ptrdiff_t od = z->out_d == 1 ? 0 : r / out_h, oh = r - od * out_h;
    PYXCONV_T* out_row = out + task * out_w;
    int64_t* switch_row = switches != NULL ? switches + task * out_w : NULL;
    ptrdiff_t i;
    if (pyxconv_pool_is_2x2(z)) {
        const PYXCONV_T* slice = x + p * plane + od * in_h * in_w;
        if (switch_row == NULL) {
            PYXCONV_FN(pyxconv_max_row_2x2_values)(slice, in_w, out_row, oh, out_w);
        } else {
            PYXCONV_FN(pyxconv_max_row_2x2)(slice, in_w, out_row, switch_row, oh, out_w, tap);
            if (od != 0)
                for (i = 0; i < out_w; i++)
                    switch_row[i] += (int64_t)(od * in_h * in_w);
        }
    } else {
        PYXCONV_FN(pyxconv_max_row_generic)(x + p * plane, z, taps, out_row, switch_row, od,
                                            oh, best, tap);
    }
}

/* Output rows [first, end) of the max pool of z, in order (see pyxconv_max_pool_row) */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_max_pool_rows)(
        const PYXCONV_T* x, PYXCONV_T* out, int64_t* switches, const pyxconv_pool_sizes* z,
        const pyxconv_pool_taps* taps, PYXCONV_T* best, int* tap, ptrdiff_t first,
        ptrdiff_t end) {
    for (ptrdiff_t task = first; task < end; task++)
        PYXCONV_FN(pyxconv_max_pool_row)(x, out, switches, z, taps, best, tap, task);
}

#undef PYXCONV_FN
#undef PYXCONV_CAT
#undef PYXCONV_CAT_
