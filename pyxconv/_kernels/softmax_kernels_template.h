/* One instance of the softmax row loops of softmax_kernels.h, which includes this
 * file once per instruction set after defining PYXCONV_SUFFIX (the instance's name
 * suffix) and PYXCONV_ATTR (its target attribute, empty for the baseline). The
 * exponentials inlined here are compiled, and vectorised, for the instance's
 * instruction set. No include guard: included repeatedly. */

#define PYXCONV_CAT_(a, b) a##_##b
#define PYXCONV_CAT(a, b) PYXCONV_CAT_(a, b)
#define PYXCONV_FN(name) PYXCONV_CAT(name, PYXCONV_SUFFIX)

/* max_j z[j], n >= 1, over integer keys: an integer maximum vectorises, a
   float one does not (see pyxconv_exp_nonpositive_f). A NaN with the sign bit
   clear wins, one with it set loses; either way exp(z - m) is NaN later. */
static PYXCONV_ATTR float PYXCONV_FN(pyxconv_row_max_f)(const float *z, ptrdiff_t n) {
    int32_t key = pyxconv_order_key(z[0]), other;
    ptrdiff_t j;
    float m;
    for (j = 1; j < n; j++) {
        other = pyxconv_order_key(z[j]);
        key = other > key ? other : key;
    }
    key ^= (int32_t)((uint32_t)(key >> 31) & 0x7FFFFFFFu);  /* the key map is an involution */
    memcpy(&m, &key, sizeof m);
    return m;
}

/* e[j] = exp(e[j]) for a block of already shifted values (all <= 0). */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_exp_inplace_f)(float *e, ptrdiff_t count) {
    ptrdiff_t j;
    for (j = 0; j < count; j++)
        e[j] = pyxconv_exp_nonpositive_f(e[j]);
}

/* e[j] = exp(z[j] - m); returns sum_j e[j] (eight partial sums, fixed order),
   accumulated in double: a float32 sum over 2**26 classes drifted by 6e-3
   (softmax summing to 1.0063), the double one rounds once, at the end. */
static PYXCONV_ATTR float PYXCONV_FN(pyxconv_exp_sum_f)(const float *z, float m, float *e,
                                                       ptrdiff_t n) {
    ptrdiff_t j;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (j = 0; j < n; j++)
        e[j] = pyxconv_exp_nonpositive_f(z[j] - m);
    for (j = 0; j + 8 <= n; j += 8) {
        s0 += e[j];     s1 += e[j + 1]; s2 += e[j + 2]; s3 += e[j + 3];
        s4 += e[j + 4]; s5 += e[j + 5]; s6 += e[j + 6]; s7 += e[j + 7];
    }
    for (; j < n; j++)
        s0 += e[j];
    return (float)(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)));
}

/* the float64 forms */
static PYXCONV_ATTR void PYXCONV_FN(pyxconv_exp_inplace_d)(double *e, ptrdiff_t count) {
    ptrdiff_t j;
    for (j = 0; j < count; j++)
        e[j] = pyxconv_exp_nonpositive_d(e[j]);
}

static PYXCONV_ATTR double PYXCONV_FN(pyxconv_exp_sum_d)(const double *z, double m, double *e,
                                                        ptrdiff_t n) {
    ptrdiff_t j;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (j = 0; j < n; j++)
        e[j] = pyxconv_exp_nonpositive_d(z[j] - m);
    for (j = 0; j + 8 <= n; j += 8) {
        s0 += e[j];     s1 += e[j + 1]; s2 += e[j + 2]; s3 += e[j + 3];
        s4 += e[j + 4]; s5 += e[j + 5]; s6 += e[j + 6]; s7 += e[j + 7];
    }
    for (; j < n; j++)
        s0 += e[j];
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}

#undef PYXCONV_FN
#undef PYXCONV_CAT
#undef PYXCONV_CAT_
