/* The nn group's C reference, written once for REAL = float (vkg_ref_*) and REAL = double
 * (vkg_ref_*_f64): included twice by lib/ops/nn_reference.c. <tgmath.h> picks expf or exp by the
 * argument's type. Sums run in double whatever REAL is. Backward references add into their
 * outputs (llm.c's convention). */

void NAME(clamp)(REAL *y, const REAL *x, size_t n, REAL lo, REAL hi) {
    for (size_t i = 0; i < n; i++) {
        REAL v = x[i];
        if (!isnan(v)) {
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
        }
        y[i] = v;
    }
}

void NAME(clamp_backward)(REAL *dx, const REAL *x, const REAL *dy, size_t n, REAL lo, REAL hi) {
    for (size_t i = 0; i < n; i++)
        if (x[i] >= lo && x[i] <= hi) dx[i] += dy[i];
}

void NAME(masked_fill)(REAL *y, const REAL *x, vkg_shape xs, const REAL *mask, vkg_shape ms, REAL value) {
    int64_t n = vkg_shape_numel(xs);
    for (int64_t i = 0; i < n; i++) y[i] = mask[vkg_ref_broadcast_index(i, xs, ms)] != 0 ? value : x[i];
}

void NAME(masked_fill_backward)(REAL *dx, vkg_shape xs, const REAL *mask, vkg_shape ms, const REAL *dy) {
    int64_t n = vkg_shape_numel(xs);
    for (int64_t i = 0; i < n; i++)
        if (mask[vkg_ref_broadcast_index(i, xs, ms)] == 0) dx[i] += dy[i];
}

/* y = x * keep * scale (or dy -> dx when accumulate): the mask of vkg_dropout. */
static void NAME(dropout_apply)(REAL *y, const REAL *x, size_t n, float p, bool train, const vkg_rand_desc *rng,
                                bool accumulate) {
    float *keep = NULL;
    float scale = 1.0f;
    if (train) {
        keep = malloc((n ? n : 1) * sizeof *keep);
        if (!keep) return;
        vkg_ref_bernoulli(keep, n, 1.0f - p, rng);
        scale = 1.0f / (1.0f - p);
    }
    for (size_t i = 0; i < n; i++) {
        REAL v = train ? x[i] * (REAL)keep[i] * (REAL)scale : x[i];
        y[i] = accumulate ? y[i] + v : v;
    }
    free(keep);
}

void NAME(dropout)(REAL *y, const REAL *x, size_t n, float p, bool train, const vkg_rand_desc *rng) {
    NAME(dropout_apply)(y, x, n, p, train, rng, false);
}

void NAME(dropout_backward)(REAL *dx, const REAL *dy, size_t n, float p, bool train, const vkg_rand_desc *rng) {
    NAME(dropout_apply)(dx, dy, n, p, train, rng, true);
}

/* (outer, R, inner) of the axis of xs. */
static void NAME(axis_dims)(vkg_shape xs, int axis, int64_t *outer, int64_t *R, int64_t *inner) {
    if (axis < 0) axis += xs.ndim;
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < xs.ndim; i++) {
        if (i < axis) *outer *= xs.d[i];
        if (i > axis) *inner *= xs.d[i];
    }
    *R = xs.d[axis];
}

#define NN_ROWS_(xs, axis)                                        \
    int64_t outer, R, inner;                                      \
    NAME(axis_dims)(xs, axis, &outer, &R, &inner);                \
    for (int64_t o = 0; o < outer; o++)                           \
        for (int64_t in = 0; in < inner; in++)

#define AT_(p, r) (p)[o * R * inner + (r) * inner + in]

/* max and log(sum(exp(x - max))) of one row */
static void NAME(row_lse)(const REAL *x, int64_t R, int64_t stride, REAL *mx, REAL *lse) {
    REAL m = -INFINITY;
    for (int64_t r = 0; r < R; r++)
        if (x[r * stride] > m || isnan(x[r * stride])) m = x[r * stride];
    double s = 0;
    for (int64_t r = 0; r < R; r++) s += exp((double)(x[r * stride] - m));
    *mx = m;
    *lse = (REAL)log(s);
}

void NAME(softmax)(REAL *y, const REAL *x, vkg_shape xs, int axis) {
    NN_ROWS_(xs, axis) {
        REAL m, l;
        NAME(row_lse)(&AT_(x, 0), R, inner, &m, &l);
        for (int64_t r = 0; r < R; r++) AT_(y, r) = exp(AT_(x, r) - m - l);
    }
}

void NAME(log_softmax)(REAL *y, const REAL *x, vkg_shape xs, int axis) {
    NN_ROWS_(xs, axis) {
        REAL m, l;
        NAME(row_lse)(&AT_(x, 0), R, inner, &m, &l);
        for (int64_t r = 0; r < R; r++) AT_(y, r) = AT_(x, r) - m - l;
    }
}

void NAME(logsumexp)(REAL *y, const REAL *x, vkg_shape xs, int axis) {
    NN_ROWS_(xs, axis) {
        REAL m, l;
        NAME(row_lse)(&AT_(x, 0), R, inner, &m, &l);
        y[o * inner + in] = isinf(m) ? m : m + l; /* all -inf: -inf, like PyTorch */
    }
}

void NAME(softmax_backward)(REAL *dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy) {
    NN_ROWS_(xs, axis) {
        REAL m, l;
        NAME(row_lse)(&AT_(x, 0), R, inner, &m, &l);
        double s = 0;
        for (int64_t r = 0; r < R; r++) s += (double)(AT_(dy, r) * exp(AT_(x, r) - m - l));
        for (int64_t r = 0; r < R; r++) AT_(dx, r) += exp(AT_(x, r) - m - l) * (AT_(dy, r) - (REAL)s);
    }
}

void NAME(log_softmax_backward)(REAL *dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy) {
    NN_ROWS_(xs, axis) {
        REAL m, l;
        NAME(row_lse)(&AT_(x, 0), R, inner, &m, &l);
        double s = 0;
        for (int64_t r = 0; r < R; r++) s += AT_(dy, r);
        for (int64_t r = 0; r < R; r++) AT_(dx, r) += AT_(dy, r) - exp(AT_(x, r) - m - l) * (REAL)s;
    }
}

void NAME(logsumexp_backward)(REAL *dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy) {
    NN_ROWS_(xs, axis) {
        REAL m, l;
        NAME(row_lse)(&AT_(x, 0), R, inner, &m, &l);
        for (int64_t r = 0; r < R; r++) AT_(dx, r) += dy[o * inner + in] * exp(AT_(x, r) - m - l);
    }
}

/* mean and the sum of squared deviations of one row (two passes, in double) */
static void NAME(row_moments)(const REAL *x, int64_t R, int64_t stride, double *mean, double *ssd) {
    double s = 0;
    for (int64_t r = 0; r < R; r++) s += x[r * stride];
    double m = s / (double)R, q = 0;
    for (int64_t r = 0; r < R; r++) q += ((double)x[r * stride] - m) * ((double)x[r * stride] - m);
    *mean = m;
    *ssd = q;
}

static double NAME(var_denom)(int64_t R, int correction) {
    double d = (double)R - correction;
    return d > 0 ? d : 0;
}

void NAME(var)(REAL *y, const REAL *x, vkg_shape xs, int axis, int correction) {
    NN_ROWS_(xs, axis) {
        double m, q;
        NAME(row_moments)(&AT_(x, 0), R, inner, &m, &q);
        y[o * inner + in] = (REAL)(q / NAME(var_denom)(R, correction));
    }
}

void NAME(std)(REAL *y, const REAL *x, vkg_shape xs, int axis, int correction) {
    NN_ROWS_(xs, axis) {
        double m, q;
        NAME(row_moments)(&AT_(x, 0), R, inner, &m, &q);
        y[o * inner + in] = (REAL)sqrt(q / NAME(var_denom)(R, correction));
    }
}

void NAME(var_backward)(REAL *dx, const REAL *x, vkg_shape xs, int axis, int correction, const REAL *dy) {
    NN_ROWS_(xs, axis) {
        double m, q;
        NAME(row_moments)(&AT_(x, 0), R, inner, &m, &q);
        double k = 2.0 * dy[o * inner + in] / NAME(var_denom)(R, correction);
        for (int64_t r = 0; r < R; r++) AT_(dx, r) += (REAL)(k * ((double)AT_(x, r) - m));
    }
}

void NAME(std_backward)(REAL *dx, const REAL *x, vkg_shape xs, int axis, int correction, const REAL *dy) {
    NN_ROWS_(xs, axis) {
        double m, q;
        NAME(row_moments)(&AT_(x, 0), R, inner, &m, &q);
        double d = NAME(var_denom)(R, correction), sd = sqrt(q / d);
        if (sd == 0) continue; /* PyTorch: no gradient where std is 0 */
        double k = dy[o * inner + in] / (d * sd);
        for (int64_t r = 0; r < R; r++) AT_(dx, r) += (REAL)(k * ((double)AT_(x, r) - m));
    }
}

#undef NN_ROWS_
#undef AT_

/* The reduced loss from per-sample losses l (n of them) of which `count` are not ignored. */
static void NAME(reduce_loss)(REAL *y, const double *l, int64_t n, double count, vkg_reduction reduction) {
    if (reduction == VKG_REDUCTION_NONE) {
        for (int64_t i = 0; i < n; i++) y[i] = (REAL)l[i];
        return;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += l[i];
    y[0] = (REAL)(reduction == VKG_REDUCTION_SUM ? s : s / count);
}

/* dL/d(loss of sample i), given dy of the reduced loss. */
static double NAME(loss_grad)(const REAL *dy, int64_t i, double count, vkg_reduction reduction) {
    switch (reduction) {
    case VKG_REDUCTION_NONE: return dy[i];
    case VKG_REDUCTION_SUM: return dy[0];
    default: return dy[0] / count;
    }
}

static double NAME(class_count)(const int32_t *target, int64_t N, int32_t ignore_index) {
    double c = 0;
    for (int64_t i = 0; i < N; i++) c += target[i] != ignore_index;
    return c;
}

/* -log_probs[target] per sample, or of log_softmax(logits) when `softmax`. */
static void NAME(class_loss)(REAL *y, const REAL *x, int64_t N, int64_t C, const int32_t *target,
                             vkg_reduction reduction, int32_t ignore_index, bool softmax) {
    double *l = malloc((size_t)(N ? N : 1) * sizeof *l);
    if (!l) return;
    for (int64_t i = 0; i < N; i++) {
        int32_t t = target[i];
        if (t == ignore_index) l[i] = 0;
        else if (t < 0 || t >= C) l[i] = NAN;
        else if (!softmax) l[i] = -(double)x[i * C + t];
        else {
            REAL m, lse;
            NAME(row_lse)(x + i * C, C, 1, &m, &lse);
            l[i] = (double)m + (double)lse - (double)x[i * C + t];
        }
    }
    NAME(reduce_loss)(y, l, N, NAME(class_count)(target, N, ignore_index), reduction);
    free(l);
}

void NAME(cross_entropy)(REAL *y, const REAL *logits, int64_t N, int64_t C, const int32_t *target,
                         vkg_reduction reduction, int32_t ignore_index) {
    NAME(class_loss)(y, logits, N, C, target, reduction, ignore_index, true);
}

void NAME(nll_loss)(REAL *y, const REAL *log_probs, int64_t N, int64_t C, const int32_t *target,
                    vkg_reduction reduction, int32_t ignore_index) {
    NAME(class_loss)(y, log_probs, N, C, target, reduction, ignore_index, false);
}

void NAME(cross_entropy_backward)(REAL *dlogits, const REAL *logits, int64_t N, int64_t C, const int32_t *target,
                                  vkg_reduction reduction, int32_t ignore_index, const REAL *dy) {
    double count = NAME(class_count)(target, N, ignore_index);
    for (int64_t i = 0; i < N; i++) {
        int32_t t = target[i];
        if (t == ignore_index) continue;
        double g = NAME(loss_grad)(dy, i, count, reduction);
        REAL m, lse;
        NAME(row_lse)(logits + i * C, C, 1, &m, &lse);
        bool bad = t < 0 || t >= C;
        for (int64_t c = 0; c < C; c++)
            dlogits[i * C + c] += bad ? (REAL)NAN : (REAL)(g * ((double)exp(logits[i * C + c] - m - lse) - (c == t)));
    }
}

void NAME(nll_loss_backward)(REAL *dlog_probs, int64_t N, int64_t C, const int32_t *target, vkg_reduction reduction,
                             int32_t ignore_index, const REAL *dy) {
    double count = NAME(class_count)(target, N, ignore_index);
    for (int64_t i = 0; i < N; i++) {
        int32_t t = target[i];
        if (t == ignore_index) continue;
        if (t < 0 || t >= C) {
            for (int64_t c = 0; c < C; c++) dlog_probs[i * C + c] += (REAL)NAN;
            continue;
        }
        dlog_probs[i * C + t] += (REAL)-NAME(loss_grad)(dy, i, count, reduction);
    }
}

/* Elementwise losses: per-element value, and its derivatives in x and t. */
static double NAME(pointwise_loss)(bool bce, REAL x, REAL t, double *gx, double *gt) {
    if (!bce) {
        double d = (double)x - (double)t;
        *gx = 2 * d;
        *gt = -2 * d;
        return d * d;
    }
    double xd = x, td = t;
    *gx = 1 / (1 + exp(-xd)) - td;
    *gt = -xd;
    return (xd > 0 ? xd : 0) - xd * td + log1p(exp(-fabs(xd)));
}

static void NAME(pointwise_forward)(bool bce, REAL *y, const REAL *x, const REAL *t, size_t n, vkg_reduction reduction) {
    double *l = malloc((n ? n : 1) * sizeof *l), gx, gt;
    if (!l) return;
    for (size_t i = 0; i < n; i++) l[i] = NAME(pointwise_loss)(bce, x[i], t[i], &gx, &gt);
    NAME(reduce_loss)(y, l, (int64_t)n, (double)n, reduction);
    free(l);
}

static void NAME(pointwise_backward)(bool bce, REAL *dx, REAL *dt, const REAL *x, const REAL *t, size_t n,
                                     vkg_reduction reduction, const REAL *dy) {
    for (size_t i = 0; i < n; i++) {
        double gx, gt, g = NAME(loss_grad)(dy, (int64_t)i, (double)n, reduction);
        NAME(pointwise_loss)(bce, x[i], t[i], &gx, &gt);
        if (dx) dx[i] += (REAL)(g * gx);
        if (dt) dt[i] += (REAL)(g * gt);
    }
}

void NAME(mse_loss)(REAL *y, const REAL *x, const REAL *t, size_t n, vkg_reduction reduction) {
    NAME(pointwise_forward)(false, y, x, t, n, reduction);
}
void NAME(mse_loss_backward)(REAL *dx, REAL *dt, const REAL *x, const REAL *t, size_t n, vkg_reduction reduction,
                             const REAL *dy) {
    NAME(pointwise_backward)(false, dx, dt, x, t, n, reduction, dy);
}
void NAME(bce_with_logits)(REAL *y, const REAL *x, const REAL *t, size_t n, vkg_reduction reduction) {
    NAME(pointwise_forward)(true, y, x, t, n, reduction);
}
void NAME(bce_with_logits_backward)(REAL *dx, REAL *dt, const REAL *x, const REAL *t, size_t n,
                                    vkg_reduction reduction, const REAL *dy) {
    NAME(pointwise_backward)(true, dx, dt, x, t, n, reduction, dy);
}

void NAME(layer_norm)(REAL *y, REAL *mean, REAL *rstd, const REAL *x, const REAL *w, const REAL *b, int64_t rows,
                      int64_t D, REAL eps) {
    for (int64_t i = 0; i < rows; i++) {
        double m, q;
        NAME(row_moments)(x + i * D, D, 1, &m, &q);
        double rs = 1 / sqrt(q / (double)D + (double)eps);
        for (int64_t d = 0; d < D; d++) {
            double v = ((double)x[i * D + d] - m) * rs;
            if (w) v *= w[d];
            if (b) v += b[d];
            y[i * D + d] = (REAL)v;
        }
        if (mean) mean[i] = (REAL)m;
        if (rstd) rstd[i] = (REAL)rs;
    }
}

void NAME(layer_norm_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *x, const REAL *w, int64_t rows, int64_t D,
                               REAL eps, const REAL *dy) {
    for (int64_t i = 0; i < rows; i++) {
        double m, q;
        NAME(row_moments)(x + i * D, D, 1, &m, &q);
        double rs = 1 / sqrt(q / (double)D + (double)eps);
        const REAL *g = dy + i * D, *xi = x + i * D;
        double mg = 0, mgx = 0; /* means of dxhat and dxhat * xhat */
        for (int64_t d = 0; d < D; d++) {
            double xh = ((double)xi[d] - m) * rs, gh = (double)g[d] * (w ? (double)w[d] : 1.0);
            mg += gh;
            mgx += gh * xh;
            if (dw) dw[d] += (REAL)((double)g[d] * xh);
            if (db) db[d] += g[d];
        }
        mg /= (double)D;
        mgx /= (double)D;
        for (int64_t d = 0; dx && d < D; d++) {
            double xh = ((double)xi[d] - m) * rs, gh = (double)g[d] * (w ? (double)w[d] : 1.0);
            dx[i * D + d] += (REAL)(rs * (gh - mg - xh * mgx));
        }
    }
}
