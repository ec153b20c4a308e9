/* The conv group's C reference, written once for REAL = float (vkg_ref_*) and REAL = double
 * (vkg_ref_*_f64): included twice by lib/ops/conv_reference.c. Arrays are contiguous NCHW.
 * Forward sums run in double; backward references add into their outputs (llm.c). */

void NAME(conv2d)(REAL *y, const REAL *x, vkg_shape xs, const REAL *w, vkg_shape ws, const REAL *b,
                  const vkg_conv2d_desc *d) {
    conv_params p = conv_params_of(xs, ws, d);
    for (int64_t n = 0; n < p.N; n++)
        for (int64_t k = 0; k < p.K; k++) {
            int64_t c0 = (k / p.Kg) * p.Cg; /* first input channel of k's group */
            for (int64_t oh = 0; oh < p.OH; oh++)
                for (int64_t ow = 0; ow < p.OW; ow++) {
                    double acc = b ? (double)b[k] : 0.0;
                    for (int64_t c = 0; c < p.Cg; c++)
                        for (int64_t r = 0; r < p.kh; r++) {
                            int64_t ih = oh * p.sh - p.ph + r * p.dh;
                            if (ih < 0 || ih >= p.H) continue;
                            for (int64_t s = 0; s < p.kw; s++) {
                                int64_t iw = ow * p.sw - p.pw + s * p.dw;
                                if (iw < 0 || iw >= p.W) continue;
                                acc += (double)w[((k * p.Cg + c) * p.kh + r) * p.kw + s] *
                                       (double)x[((n * p.C + c0 + c) * p.H + ih) * p.W + iw];
                            }
                        }
                    y[((n * p.K + k) * p.OH + oh) * p.OW + ow] = (REAL)acc;
                }
        }
}

void NAME(conv2d_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *x, vkg_shape xs, const REAL *w,
                           vkg_shape ws, const REAL *dy, const vkg_conv2d_desc *d) {
    conv_params p = conv_params_of(xs, ws, d);
    for (int64_t n = 0; n < p.N; n++)
        for (int64_t k = 0; k < p.K; k++) {
            int64_t c0 = (k / p.Kg) * p.Cg;
            for (int64_t oh = 0; oh < p.OH; oh++)
                for (int64_t ow = 0; ow < p.OW; ow++) {
                    REAL g = dy[((n * p.K + k) * p.OH + oh) * p.OW + ow];
                    if (db) db[k] += g;
                    for (int64_t c = 0; c < p.Cg; c++)
                        for (int64_t r = 0; r < p.kh; r++) {
                            int64_t ih = oh * p.sh - p.ph + r * p.dh;
                            if (ih < 0 || ih >= p.H) continue;
                            for (int64_t s = 0; s < p.kw; s++) {
                                int64_t iw = ow * p.sw - p.pw + s * p.dw;
                                if (iw < 0 || iw >= p.W) continue;
                                int64_t xi = ((n * p.C + c0 + c) * p.H + ih) * p.W + iw;
                                int64_t wi = ((k * p.Cg + c) * p.kh + r) * p.kw + s;
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
                        }
                }
        }
}

void NAME(max_pool2d)(REAL *y, int32_t *idx, const REAL *x, vkg_shape xs, const vkg_pool2d_desc *d) {
    pool_params p = pool_params_of(xs, d);
    for (int64_t nc = 0; nc < p.NC; nc++)
        for (int64_t oh = 0; oh < p.OH; oh++)
            for (int64_t ow = 0; ow < p.OW; ow++) {
                REAL best = 0;
                int64_t bi = -1;
                for (int64_t r = 0; r < p.kh; r++) {
                    int64_t ih = oh * p.sh - p.ph + r;
                    if (ih < 0 || ih >= p.H) continue;
                    for (int64_t s = 0; s < p.kw; s++) {
                        int64_t iw = ow * p.sw - p.pw + s;
                        if (iw < 0 || iw >= p.W) continue;
                        REAL v = x[(nc * p.H + ih) * p.W + iw];
                        /* the first of ties; NaN wins (the first NaN), like PyTorch */
                        if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                            best = v;
                            bi = ih * p.W + iw;
                        }
                    }
                }
                int64_t o = (nc * p.OH + oh) * p.OW + ow;
                if (d->relu && best <= 0) { /* relu's floor: 0, from no element */
                    best = 0;
                    bi = -1;
                }
                y[o] = best;
                if (idx) idx[o] = (int32_t)bi;
            }
}

void NAME(max_pool2d_backward)(REAL *dx, const REAL *x, vkg_shape xs, const REAL *dy, const vkg_pool2d_desc *d) {
    pool_params p = pool_params_of(xs, d);
    int64_t ny = p.NC * p.OH * p.OW;
    REAL *y = malloc((size_t)(ny ? ny : 1) * sizeof *y);
    int32_t *idx = malloc((size_t)(ny ? ny : 1) * sizeof *idx);
    if (y && idx) {
        NAME(max_pool2d)(y, idx, x, xs, d);
        for (int64_t o = 0; o < ny; o++)
            if (idx[o] >= 0) dx[(o / (p.OH * p.OW)) * p.H * p.W + idx[o]] += dy[o];
    }
    free(y);
    free(idx);
}

void NAME(avg_pool2d)(REAL *y, const REAL *x, vkg_shape xs, const vkg_pool2d_desc *d) {
    pool_params p = pool_params_of(xs, d);
    for (int64_t nc = 0; nc < p.NC; nc++)
        for (int64_t oh = 0; oh < p.OH; oh++)
            for (int64_t ow = 0; ow < p.OW; ow++) {
                double acc = 0;
                for (int64_t r = 0; r < p.kh; r++) {
                    int64_t ih = oh * p.sh - p.ph + r;
                    if (ih < 0 || ih >= p.H) continue;
                    for (int64_t s = 0; s < p.kw; s++) {
                        int64_t iw = ow * p.sw - p.pw + s;
                        if (iw >= 0 && iw < p.W) acc += (double)x[(nc * p.H + ih) * p.W + iw];
                    }
                }
                y[(nc * p.OH + oh) * p.OW + ow] = (REAL)(acc / (double)(p.kh * p.kw));
            }
}

void NAME(avg_pool2d_backward)(REAL *dx, vkg_shape xs, const REAL *dy, const vkg_pool2d_desc *d) {
    pool_params p = pool_params_of(xs, d);
    for (int64_t nc = 0; nc < p.NC; nc++)
        for (int64_t oh = 0; oh < p.OH; oh++)
            for (int64_t ow = 0; ow < p.OW; ow++) {
                REAL g = dy[(nc * p.OH + oh) * p.OW + ow] / (REAL)(p.kh * p.kw);
                for (int64_t r = 0; r < p.kh; r++) {
                    int64_t ih = oh * p.sh - p.ph + r;
                    if (ih < 0 || ih >= p.H) continue;
                    for (int64_t s = 0; s < p.kw; s++) {
                        int64_t iw = ow * p.sw - p.pw + s;
                        if (iw >= 0 && iw < p.W) dx[(nc * p.H + ih) * p.W + iw] += g;
                    }
                }
            }
}

/* Per channel c: the mean and 1/sqrt(var + eps) used to normalise (batch or running stats). */
static void NAME(bn_stats)(double *mean, double *invstd, double *var_out, const REAL *x, vkg_shape xs, int64_t c,
                           bool train, const REAL *rm, const REAL *rv, double eps) {
    int64_t N, C, S;
    bn_dims(xs, &N, &C, &S);
    double m, v;
    if (train) {
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) sum += (double)x[(n * C + c) * S + i];
        m = sum / (double)(N * S);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                double e = (double)x[(n * C + c) * S + i] - m;
                sq += e * e;
            }
        v = sq / (double)(N * S);
    } else {
        m = (double)rm[c];
        v = (double)rv[c];
    }
    *mean = m;
    *invstd = 1.0 / sqrt(v + eps);
    if (var_out) *var_out = v;
}

void NAME(batch_norm)(REAL *y, const REAL *x, vkg_shape xs, const REAL *w, const REAL *b, REAL *running_mean,
                      REAL *running_var, const vkg_batch_norm_desc *d) {
    int64_t N, C, S;
    bn_dims(xs, &N, &C, &S);
    bool train;
    double momentum, eps;
    bn_options(d, &train, &momentum, &eps);
    for (int64_t c = 0; c < C; c++) {
        double mean, invstd, var;
        NAME(bn_stats)(&mean, &invstd, &var, x, xs, c, train, running_mean, running_var, eps);
        double wc = w ? (double)w[c] : 1.0, bc = b ? (double)b[c] : 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (n * C + c) * S + i;
                y[k] = (REAL)(((double)x[k] - mean) * invstd * wc + bc);
            }
        if (train && running_mean && running_var) {
            int64_t M = N * S;
            running_mean[c] = (REAL)((1 - momentum) * (double)running_mean[c] + momentum * mean);
            running_var[c] = (REAL)((1 - momentum) * (double)running_var[c] + momentum * var * (double)M / (double)(M - 1));
        }
    }
}

void NAME(batch_norm_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *x, vkg_shape xs, const REAL *w,
                               const REAL *running_mean, const REAL *running_var, const REAL *dy,
                               const vkg_batch_norm_desc *d) {
    int64_t N, C, S;
    bn_dims(xs, &N, &C, &S);
    bool train;
    double momentum, eps;
    bn_options(d, &train, &momentum, &eps);
    (void)momentum;
    double M = (double)(N * S);
    for (int64_t c = 0; c < C; c++) {
        double mean, invstd;
        NAME(bn_stats)(&mean, &invstd, NULL, x, xs, c, train, running_mean, running_var, eps);
        double sg = 0, sgx = 0, wc = w ? (double)w[c] : 1.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (n * C + c) * S + i;
                sg += (double)dy[k];
                sgx += (double)dy[k] * ((double)x[k] - mean) * invstd;
            }
        if (db) db[c] += (REAL)sg;
        if (dw) dw[c] += (REAL)sgx;
        if (!dx) continue;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (n * C + c) * S + i;
                double xhat = ((double)x[k] - mean) * invstd;
                double g = train ? (M * (double)dy[k] - sg - xhat * sgx) / M : (double)dy[k];
                dx[k] += (REAL)(wc * invstd * g);
            }
    }
}
