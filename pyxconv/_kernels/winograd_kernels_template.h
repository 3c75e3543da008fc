/* One instance of the Winograd transforms of winograd_kernels.h, which includes this
 * file once per instruction set after defining PYXCONV_SUFFIX (the instance's name
 * suffix) and PYXCONV_ATTR (its target attribute, empty for the baseline). Adds and
 * subtracts only, each value in one fixed order: every instance gives the same bits.
 * No include guard: included repeatedly. */

#define PYXCONV_WCAT_(a, b) a##_##b
#define PYXCONV_WCAT(a, b) PYXCONV_WCAT_(a, b)
#define PYXCONV_WFN(name) PYXCONV_WCAT(name, PYXCONV_SUFFIX)

/* Inner tiles [lo, hi) of one tile row, whose patches lie inside the input: rows points
 * at the patches' first input row, column 0 of tile 0 (the padding subtracted). Each
 * chunk of tiles first gets B^T d of its columns, once per input column (neighbouring
 * tiles share two) and split into even and odd columns, so that both passes read
 * with unit strides and vectorise; the operations, and so the bits, are
 * those of B^T d B done patch by patch. */
static inline PYXCONV_ATTR void PYXCONV_WFN(pyxconv_winograd_inner_run)(
        const float* PYXCONV_RESTRICT rows, ptrdiff_t in_w, ptrdiff_t lo,
        ptrdiff_t hi, float* PYXCONV_RESTRICT v, ptrdiff_t stride) {
    enum { CHUNK = 64 };
    float even[4][CHUNK + 1], odd[4][CHUNK + 1];
    const float* x0 = rows;
    const float* x1 = x0 + in_w;
    const float* x2 = x1 + in_w;
    const float* x3 = x2 + in_w;
    for (ptrdiff_t q0 = lo; q0 < hi; q0 += CHUNK) {
        const ptrdiff_t q1 = hi - q0 < CHUNK ? hi : q0 + CHUNK, n = q1 - q0;
        /* columns 2 q0 .. 2 q1 + 1: the chunk's tiles read up to 2 (q1 - 1) + 3 */
        for (ptrdiff_t i = 0; i <= n; i++) {
            const ptrdiff_t col = 2 * (q0 + i);
            even[0][i] = x0[col] - x2[col];
            even[1][i] = x1[col] + x2[col];
            even[2][i] = x2[col] - x1[col];
            even[3][i] = x1[col] - x3[col];
            odd[0][i] = x0[col + 1] - x2[col + 1];
            odd[1][i] = x1[col + 1] + x2[col + 1];
            odd[2][i] = x2[col + 1] - x1[col + 1];
            odd[3][i] = x1[col + 1] - x3[col + 1];
        }
        float* vq = v + q0;
        for (int r = 0; r < 4; r++) {
            const float* te = even[r];
            const float* to = odd[r];
            float* v0 = vq + (4 * r) * stride;
            float* v1 = vq + (4 * r + 1) * stride;
            float* v2 = vq + (4 * r + 2) * stride;
            float* v3 = vq + (4 * r + 3) * stride;
            for (ptrdiff_t i = 0; i < n; i++) {
                v0[i] = te[i] - te[i + 1];
                v1[i] = to[i] + te[i + 1];
                v2[i] = te[i + 1] - to[i];
                v3[i] = to[i] - to[i + 1];
            }
        }
    }
}

/* V: the transformed patches of tiles [first, first + count) of sample x, value e of
 * channel c and tile k at v[e * stride + c * count + k], a tile row's run at a time.
 * Where a run's patches reach into the padding, its four input rows are first copied
 * into `rows` (4 x (2 tiles_w + 2) floats) with zeros around, so that every tile goes
 * through the vectorised pyxconv_winograd_inner_run. */
static PYXCONV_ATTR void PYXCONV_WFN(pyxconv_winograd_input)(
        const pyxconv_winograd_geometry* g, const float* x, ptrdiff_t first, ptrdiff_t count,
        float* PYXCONV_RESTRICT v, ptrdiff_t stride,
        float* PYXCONV_RESTRICT rows) {
    const ptrdiff_t in_h = g->in_h, in_w = g->in_w, plane = in_h * in_w;
    const ptrdiff_t tiles_w = g->tiles_w, pad_left = g->pad_left;
    const ptrdiff_t padded_w = 2 * tiles_w + 2;
    /* tiles tx in [inner_lo, inner_hi) have their patch's columns inside the input */
    const ptrdiff_t inner_lo = (pad_left + 1) / 2;
    ptrdiff_t inner_hi = in_w - 4 + pad_left >= 0 ? (in_w - 4 + pad_left) / 2 + 1 : 0;
    if (inner_hi > tiles_w)
        inner_hi = tiles_w;
    for (ptrdiff_t c = 0; c < g->c_in; c++) {
        const float* xc = x + c * plane;
        float* vc = v + c * count;
        for (ptrdiff_t k = 0; k < count;) {
            const ptrdiff_t t = first + k, ty = t / tiles_w, tx = t - ty * tiles_w;
            const ptrdiff_t run = count - k < tiles_w - tx ? count - k : tiles_w - tx;
            const ptrdiff_t r0 = 2 * ty - g->pad_top;
            if (r0 >= 0 && r0 + 4 <= in_h && tx >= inner_lo && tx + run <= inner_hi) {
                PYXCONV_WFN(pyxconv_winograd_inner_run)(xc + r0 * in_w - pad_left, in_w, tx,
                                                        tx + run, vc + k - tx, stride);
            } else {
                /* buffer column j holds input column j - pad_left */
                for (int i = 0; i < 4; i++) {
                    float* row = rows + i * padded_w;
                    const ptrdiff_t r = r0 + i;
                    memset(row, 0, (size_t)padded_w * sizeof(float));
                    if (r >= 0 && r < in_h) {
                        const ptrdiff_t lo = pad_left, hi = pad_left + in_w < padded_w
                                                            ? pad_left + in_w : padded_w;
                        if (hi > lo)
                            memcpy(row + lo, xc + r * in_w, (size_t)(hi - lo) * sizeof(float));
                    }
                }
                PYXCONV_WFN(pyxconv_winograd_inner_run)(rows, padded_w, tx, tx + run,
                                                        vc + k - tx, stride);
            }
            k += run;
        }
    }
}

/* 0 if y < 0 else y (NaN and -0.0 stay), as the other kernels' fused ReLU */
static inline PYXCONV_ATTR float PYXCONV_WFN(pyxconv_winograd_relu)(float y, int relu) {
    return relu && y < 0.0f ? 0.0f : y;
}

/* Sample out's tiles [first, first + count) from M (value e of channel o and tile k
 * at m[e * stride + o * count + k]): A^T m A, plus
 * bias[o] (bias NULL: none), then ReLU when relu is set. Tiles whose 2x2 outputs
 * all lie inside go through one loop across a tile row's run. */
static PYXCONV_ATTR void PYXCONV_WFN(pyxconv_winograd_output)(
        const pyxconv_winograd_geometry* g, const float* PYXCONV_RESTRICT m,
        ptrdiff_t stride, const float* bias, int relu, ptrdiff_t first, ptrdiff_t count,
        float* PYXCONV_RESTRICT out) {
    const ptrdiff_t out_h = g->out_h, out_w = g->out_w;
    const ptrdiff_t tiles_w = g->tiles_w, whole_w = out_w / 2;
    for (ptrdiff_t o = 0; o < g->c_out; o++) {
        const float b = bias != NULL ? bias[o] : 0.0f;
        float* plane = out + o * out_h * out_w;
        const float* mo = m + o * count;
        for (ptrdiff_t k = 0; k < count;) {
            const ptrdiff_t t = first + k, ty = t / tiles_w, tx = t - ty * tiles_w;
            const ptrdiff_t run = count - k < tiles_w - tx ? count - k : tiles_w - tx;
            const int both_rows = 2 * ty + 1 < out_h;
            const ptrdiff_t hi = both_rows ? (whole_w < tx + run ? whole_w : tx + run) : tx;
            const float* PYXCONV_RESTRICT mk = mo + k - tx;
            float* PYXCONV_RESTRICT y0 = plane + 2 * ty * out_w;
            float* PYXCONV_RESTRICT y1 = y0 + out_w;
            ptrdiff_t q;
            for (q = tx; q < hi; q++) {
                const float* mt = mk + q;
                const float s00 = mt[0] + mt[4 * stride] + mt[8 * stride];
                const float s01 = mt[stride] + mt[5 * stride] + mt[9 * stride];
                const float s02 = mt[2 * stride] + mt[6 * stride] + mt[10 * stride];
                const float s03 = mt[3 * stride] + mt[7 * stride] + mt[11 * stride];
                const float s10 = mt[4 * stride] - mt[8 * stride] - mt[12 * stride];
                const float s11 = mt[5 * stride] - mt[9 * stride] - mt[13 * stride];
                const float s12 = mt[6 * stride] - mt[10 * stride] - mt[14 * stride];
                const float s13 = mt[7 * stride] - mt[11 * stride] - mt[15 * stride];
                y0[2 * q] = PYXCONV_WFN(pyxconv_winograd_relu)(s00 + s01 + s02 + b, relu);
                y0[2 * q + 1] = PYXCONV_WFN(pyxconv_winograd_relu)(s01 - s02 - s03 + b, relu);
                y1[2 * q] = PYXCONV_WFN(pyxconv_winograd_relu)(s10 + s11 + s12 + b, relu);
                y1[2 * q + 1] = PYXCONV_WFN(pyxconv_winograd_relu)(s11 - s12 - s13 + b, relu);
            }
            for (; q < tx + run; q++) {  /* the last row or column of tiles: part outside */
                const float* mt = mk + q;
                float s[2][4];
                for (int j = 0; j < 4; j++) {
                    s[0][j] = mt[j * stride] + mt[(4 + j) * stride] + mt[(8 + j) * stride];
                    s[1][j] = mt[(4 + j) * stride] - mt[(8 + j) * stride]
                              - mt[(12 + j) * stride];
                }
                for (int i = 0; i < 2 && 2 * ty + i < out_h; i++) {
                    float* yr = plane + (2 * ty + i) * out_w;
                    yr[2 * q] = PYXCONV_WFN(pyxconv_winograd_relu)(
                        s[i][0] + s[i][1] + s[i][2] + b, relu);
                    if (2 * q + 1 < out_w)
                        yr[2 * q + 1] = PYXCONV_WFN(pyxconv_winograd_relu)(
                            s[i][1] - s[i][2] - s[i][3] + b, relu);
                }
            }
            k += run;
        }
    }
}

/* M' for the weight gradient: A dY A^T of the 2x2 output-gradient tile dY of each
 * tile k in [first, first + count) and output channel o, value e at
 * m[e * stride + k * c_out + o] (tile-major: the products read it as a row-major
 * count x c_out matrix). Outputs past the last row or column are zeros. With A^T =
 * [1 1 1 0; 0 1 -1 -1], the rows of A dY are dY0, dY0 + dY1, dY0 - dY1, -dY1, and
 * each row (r0, r1) times A^T gives r0, r0 + r1, r0 - r1, -r1. */
static PYXCONV_ATTR void PYXCONV_WFN(pyxconv_winograd_grad_output)(
        const pyxconv_winograd_geometry* g, const float* gy, ptrdiff_t first,
        ptrdiff_t count, float* PYXCONV_RESTRICT m, ptrdiff_t stride) {
    const ptrdiff_t out_h = g->out_h, out_w = g->out_w, plane = out_h * out_w;
    const ptrdiff_t c_out = g->c_out;
    for (ptrdiff_t k = 0; k < count; k++) {
        const ptrdiff_t t = first + k, ty = t / g->tiles_w, tx = t - ty * g->tiles_w;
        const ptrdiff_t r = 2 * ty, q = 2 * tx;
        const int down = r + 1 < out_h, right = q + 1 < out_w;
        const float* y0 = gy + r * out_w + q;
        float* mk = m + k * c_out;
        for (ptrdiff_t o = 0; o < c_out; o++) {
            const float* yo = y0 + o * plane;
            const float a = yo[0], b = right ? yo[1] : 0.0f;
            const float c = down ? yo[out_w] : 0.0f, d = down && right ? yo[out_w + 1] : 0.0f;
            /* rows of A dY: (a, b), (a + c, b + d), (a - c, b - d), (-c, -d) */
            const float z[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};
            for (int i = 0; i < 4; i++) {
                mk[(4 * i) * stride + o] = z[i][0];
                mk[(4 * i + 1) * stride + o] = z[i][0] + z[i][1];
                mk[(4 * i + 2) * stride + o] = z[i][0] - z[i][1];
                mk[(4 * i + 3) * stride + o] = -z[i][1];
            }
        }
    }
}

#undef PYXCONV_WFN
#undef PYXCONV_WCAT
#undef PYXCONV_WCAT_
