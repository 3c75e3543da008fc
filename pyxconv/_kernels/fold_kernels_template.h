/* One instance of the fold helpers of simd_kernels.h, which includes this file once
 * per element type and instruction set after defining
 *
 *     PYXCONV_T       the element type (float or double)
 *     PYXCONV_SUFFIX  the instance's name suffix (f32_avx512, f64_base, ...)
 *     PYXCONV_ATTR    its target attribute (empty for the compiler's baseline)
 *
 * Plain loops, which the compiler vectorises for the instance's instruction set.
 * Every value is added, copied or given its bias on its own, in one fixed order,
 * so every instance gives the same bits. No include guard: included repeatedly. */

#define PYXCONV_CAT_(a, b) a##_##b
#define PYXCONV_CAT(a, b) PYXCONV_CAT_(a, b)
#define PYXCONV_FN(name) PYXCONV_CAT(name, PYXCONV_SUFFIX)

/* dst[i] += src[i] for 0 <= i < n (the two never overlap) */
static inline PYXCONV_ATTR void PYXCONV_FN(pyxconv_add_run)(
        PYXCONV_T* PYXCONV_RESTRICT dst, const PYXCONV_T* PYXCONV_RESTRICT src, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* row[2m] = even[m] (+ bias), row[2m + 1] = odd[m] (+ bias) for 0 <= m < half: a
 * plane row put together from its two phases */
static inline PYXCONV_ATTR void PYXCONV_FN(pyxconv_interleave)(
        PYXCONV_T* PYXCONV_RESTRICT row, const PYXCONV_T* PYXCONV_RESTRICT even,
        const PYXCONV_T* PYXCONV_RESTRICT odd, ptrdiff_t half, int has_bias, PYXCONV_T bias) {
    if (has_bias) {
        for (ptrdiff_t m = 0; m < half; m++) {
            row[2 * m] = even[m] + bias;
            row[2 * m + 1] = odd[m] + bias;
        }
    } else {
        for (ptrdiff_t m = 0; m < half; m++) {
            row[2 * m] = even[m];
            row[2 * m + 1] = odd[m];
        }
    }
}

/* even[m] = row[2m], odd[m] = row[2m + 1] for 0 <= m < half: a plane row split into
 * its two phases (im2col by phases, _split_phases) */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_deinterleave)(
        const PYXCONV_T* PYXCONV_RESTRICT row, PYXCONV_T* PYXCONV_RESTRICT even,
        PYXCONV_T* PYXCONV_RESTRICT odd, ptrdiff_t half) {
    for (ptrdiff_t m = 0; m < half; m++) {
        even[m] = row[2 * m];
        odd[m] = row[2 * m + 1];
    }
}

/* plane = col2im(channel c's column rows of one sample's (K, L) columns) (+ bias),
 * written whole: summed band by band of phase rows in `buffer` (stride_h *
 * stride_w * band_rows * span_w values, span = ceil(in / stride)), each tap adding
 * its column rows at a fixed shift into one phase, then written row by row with
 * the bias. `tables` as _fold_tables makes them. */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_fold_plane)(
        const PYXCONV_T* cols, PYXCONV_T* plane, PYXCONV_T* buffer, int has_bias,
        PYXCONV_T bias, ptrdiff_t c, ptrdiff_t positions, const pyxconv_conv_geometry* g,
        ptrdiff_t band_rows, const ptrdiff_t* tables) {
    const ptrdiff_t in_d = g->in_d, in_h = g->in_h, in_w = g->in_w;
    const ptrdiff_t out_h = g->out_h, out_w = g->out_w;
    const ptrdiff_t k_d = g->k_d, k_h = g->k_h, k_w = g->k_w;
    const ptrdiff_t stride_h = g->stride_h, stride_w = g->stride_w;
    const ptrdiff_t span_h = (in_h + stride_h - 1) / stride_h;
    const ptrdiff_t span_w = (in_w + stride_w - 1) / stride_w;
    const ptrdiff_t phase_size = band_rows * span_w;
    const ptrdiff_t* depth_table = tables;
    const ptrdiff_t* row_taps = tables + in_d * k_d;
    const ptrdiff_t* col_taps = row_taps + 4 * k_h;
    const ptrdiff_t kernel_volume = g->kernel_volume;
    ptrdiff_t id, band_lo, band_hi, a, b, e, od, oh, oh_lo, oh_hi, lo, hi, shift, ph, pw, mh,
        ih, m, i;
    for (id = 0; id < in_d; id++) {
        for (band_lo = 0; band_lo < span_h; band_lo += band_rows) {
            band_hi = band_lo + band_rows < span_h ? band_lo + band_rows : span_h;
            memset(buffer, 0, (size_t)(stride_h * stride_w * phase_size) * sizeof(PYXCONV_T));
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
                    const PYXCONV_T* src = cols
                        + (c * kernel_volume + (a * k_h + b) * k_w) * positions
                        + od * out_h * out_w;
                    for (e = 0; e < k_w; e++, src += positions) {
                        lo = col_taps[4 * e];
                        hi = col_taps[4 * e + 1];
                        /* buffer position of output (oh, ow): dst + oh * span_w + ow */
                        PYXCONV_T* dst = buffer
                            + (row_taps[4 * b + 2] * stride_w + col_taps[4 * e + 2]) * phase_size
                            + (shift - band_lo) * span_w + col_taps[4 * e + 3];
                        if (lo == 0 && hi == out_w && span_w == out_w)
                            PYXCONV_FN(pyxconv_add_run)(dst + oh_lo * out_w, src + oh_lo * out_w,
                                                        (oh_hi - oh_lo) * out_w);
                        else if (hi > lo)
                            for (oh = oh_lo; oh < oh_hi; oh++)
                                PYXCONV_FN(pyxconv_add_run)(dst + oh * span_w + lo,
                                                            src + oh * out_w + lo, hi - lo);
                    }
                }
            }
            /* the band's plane rows: ih = stride_h * mh + ph */
            for (ph = 0; ph < stride_h; ph++) {
                for (mh = band_lo; mh < band_hi; mh++) {
                    ih = mh * stride_h + ph;
                    if (ih >= in_h)
                        break;
                    PYXCONV_T* row = plane + (id * in_h + ih) * in_w;
                    const PYXCONV_T* even = buffer + ph * stride_w * phase_size
                        + (mh - band_lo) * span_w;
                    if (stride_w == 1) {
                        if (has_bias)
                            for (i = 0; i < in_w; i++)
                                row[i] = even[i] + bias;
                        else
                            memcpy(row, even, (size_t)in_w * sizeof(PYXCONV_T));
                    } else if (stride_w == 2) {
                        PYXCONV_FN(pyxconv_interleave)(row, even, even + phase_size, in_w / 2,
                                                       has_bias, bias);
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

#undef PYXCONV_FN
#undef PYXCONV_CAT
#undef PYXCONV_CAT_
