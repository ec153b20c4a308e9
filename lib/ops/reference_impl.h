/* The C reference, written once for REAL = float (vkg_ref_*) and REAL = double (vkg_ref_*_f64):
 * included twice by lib/ops/reference.c. <tgmath.h> picks expf or exp by the argument's type.
 * Backward references add into their outputs (llm.c's convention) and undo broadcasting. */

REAL NAME(unary1)(vkg_op op, REAL x, REAL s) {
    switch (op) {
    case VKG_OP_NEG: return -x;
    case VKG_OP_ABS: return fabs(x);
    case VKG_OP_EXP: return exp(x);
    case VKG_OP_LOG: return log(x);
    case VKG_OP_SQRT: return sqrt(x);
    case VKG_OP_RSQRT: return 1 / sqrt(x);
    case VKG_OP_TANH: return tanh(x);
    case VKG_OP_SIGMOID: return 1 / (1 + exp(-x));
    case VKG_OP_RELU: return x > 0 ? x : 0;
    case VKG_OP_GELU: return (REAL)0.5 * x * (1 + tanh((REAL)0.7978845608028654 * (x + (REAL)0.044715 * x * x * x)));
    case VKG_OP_SILU: return x / (1 + exp(-x));
    case VKG_OP_POW: return pow(x, s);
    default: return NAN;
    }
}

void NAME(unary)(vkg_op op, REAL *y, const REAL *x, size_t n, REAL s) {
    for (size_t i = 0; i < n; i++) y[i] = NAME(unary1)(op, x[i], s);
}

REAL NAME(binary1)(vkg_op op, REAL a, REAL b) {
    switch (op) {
    case VKG_OP_ADD: return a + b;
    case VKG_OP_SUB: return a - b;
    case VKG_OP_MUL: return a * b;
    case VKG_OP_DIV: return a / b;
    case VKG_OP_MAXIMUM: return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b);
    case VKG_OP_MINIMUM: return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b);
    case VKG_OP_LT: return a < b ? 1 : 0;
    case VKG_OP_GT: return a > b ? 1 : 0;
    case VKG_OP_EQ: return a == b ? 1 : 0;
    default: return NAN;
    }
}

void NAME(binary)(vkg_op op, REAL *y, vkg_shape ys, const REAL *a, vkg_shape as, const REAL *b, vkg_shape bs) {
    int64_t n = vkg_shape_numel(ys);
    for (int64_t i = 0; i < n; i++)
        y[i] = NAME(binary1)(op, a[vkg_ref_broadcast_index(i, ys, as)], b[vkg_ref_broadcast_index(i, ys, bs)]);
}

void NAME(where)(REAL *y, vkg_shape ys, const REAL *cond, vkg_shape cs, const REAL *a, vkg_shape as, const REAL *b,
                 vkg_shape bs) {
    int64_t n = vkg_shape_numel(ys);
    for (int64_t i = 0; i < n; i++)
        y[i] = cond[vkg_ref_broadcast_index(i, ys, cs)] != 0 ? a[vkg_ref_broadcast_index(i, ys, as)]
                                                             : b[vkg_ref_broadcast_index(i, ys, bs)];
}

/* (outer, R, inner) of a reduction over axis, or over everything for VKG_REF_ALL. */
static void NAME(reduce_dims)(vkg_shape xs, int axis, int64_t *outer, int64_t *R, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    *R = vkg_shape_numel(xs);
    if (axis == VKG_REF_ALL) return;
    if (axis < 0) axis += xs.ndim;
    for (int i = 0; i < xs.ndim; i++) {
        if (i < axis) *outer *= xs.d[i];
        if (i > axis) *inner *= xs.d[i];
    }
    *R = xs.d[axis];
}

void NAME(reduce)(vkg_op op, REAL *y, int32_t *yi, const REAL *x, vkg_shape xs, int axis) {
    int64_t outer, R, inner;
    NAME(reduce_dims)(xs, axis, &outer, &R, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const REAL *p = x + o * R * inner + in;
            double acc = 0.0;
            REAL best = 0;
            int32_t bi = 0;
            for (int64_t r = 0; r < R; r++) {
                REAL v = p[r * inner];
                acc += v;
                if (r == 0) {
                    best = v;
                    bi = 0;
                } else if (!isnan(best) && (isnan(v) || (op == VKG_OP_MIN ? v < best : v > best))) {
                    best = v; /* the first NaN wins, like PyTorch; ties keep the first index */
                    bi = (int32_t)r;
                }
            }
            int64_t k = o * inner + in;
            switch (op) {
            case VKG_OP_SUM: y[k] = (REAL)acc; break;
            case VKG_OP_MEAN: y[k] = (REAL)(acc / (double)R); break;
            case VKG_OP_MAX:
            case VKG_OP_MIN: y[k] = best; break;
            case VKG_OP_ARGMAX: yi[k] = bi; break;
            default: break;
            }
        }
}

/* M, K, N and the broadcast batch shape of a matmul, with 1-D operands promoted. */
static int64_t NAME(matmul_dims)(vkg_shape as, vkg_shape bs, int64_t *M, int64_t *K, int64_t *N, vkg_shape *ab,
                                 vkg_shape *bb, vkg_shape *batch) {
    int an = as.ndim, bn = bs.ndim;
    *M = an == 1 ? 1 : as.d[an - 2];
    *K = as.d[an - 1];
    *N = bn == 1 ? 1 : bs.d[bn - 1];
    *ab = (vkg_shape){ .ndim = an > 2 ? an - 2 : 0 };
    *bb = (vkg_shape){ .ndim = bn > 2 ? bn - 2 : 0 };
    for (int i = 0; i < ab->ndim; i++) ab->d[i] = as.d[i];
    for (int i = 0; i < bb->ndim; i++) bb->d[i] = bs.d[i];
    vkg_broadcast_shape(*ab, *bb, batch);
    return vkg_shape_numel(*batch);
}

void NAME(matmul)(REAL *c, const REAL *a, vkg_shape as, const REAL *b, vkg_shape bs) {
    int64_t M, K, N;
    vkg_shape ab, bb, batch;
    int64_t nb = NAME(matmul_dims)(as, bs, &M, &K, &N, &ab, &bb, &batch);
    for (int64_t t = 0; t < nb; t++) {
        const REAL *pa = a + vkg_ref_broadcast_index(t, batch, ab) * M * K;
        const REAL *pb = b + vkg_ref_broadcast_index(t, batch, bb) * K * N;
        REAL *pc = c + t * M * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0.0;
                for (int64_t k = 0; k < K; k++) acc += (double)pa[i * K + k] * pb[k * N + j];
                pc[i * N + j] = (REAL)acc;
            }
    }
}

void NAME(matmul_bias_act)(REAL *c, const REAL *a, vkg_shape as, const REAL *b, vkg_shape bs, const REAL *bias,
                           vkg_activation act) {
    int64_t M, K, N;
    vkg_shape ab, bb, batch;
    int64_t n = NAME(matmul_dims)(as, bs, &M, &K, &N, &ab, &bb, &batch) * M * N;
    NAME(matmul)(c, a, as, b, bs);
    for (int64_t i = 0; i < n; i++) {
        REAL z = bias ? c[i] + bias[i % N] : c[i];
        c[i] = act == VKG_ACTIVATION_RELU ? (z > 0 ? z : 0) : act == VKG_ACTIVATION_GELU ? NAME(unary1)(VKG_OP_GELU, z, 0) : z;
    }
}

/* ---- backward ------------------------------------------------------------------------------- */
REAL NAME(unary_grad1)(vkg_op op, REAL x, REAL s) {
    switch (op) {
    case VKG_OP_NEG: return -1;
    case VKG_OP_ABS: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case VKG_OP_EXP: return exp(x);
    case VKG_OP_LOG: return 1 / x;
    case VKG_OP_SQRT: return (REAL)0.5 / sqrt(x);
    case VKG_OP_RSQRT: return (REAL)-0.5 / (x * sqrt(x));
    case VKG_OP_TANH: {
        REAL t = tanh(x);
        return 1 - t * t;
    }
    case VKG_OP_SIGMOID: {
        REAL sg = 1 / (1 + exp(-x));
        return sg * (1 - sg);
    }
    case VKG_OP_RELU: return x > 0 ? 1 : 0;
    case VKG_OP_GELU: {
        const REAL c = (REAL)0.7978845608028654, k = (REAL)0.044715;
        REAL t = tanh(c * (x + k * x * x * x));
        return (REAL)0.5 * (1 + t) + (REAL)0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x);
    }
    case VKG_OP_SILU: {
        REAL sg = 1 / (1 + exp(-x));
        return sg * (1 + x * (1 - sg));
    }
    case VKG_OP_POW: return s * pow(x, s - 1);
    default: return NAN;
    }
}

void NAME(unary_backward)(vkg_op op, REAL *dx, const REAL *x, const REAL *dy, size_t n, REAL s) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * NAME(unary_grad1)(op, x[i], s);
}

/* d/da and d/db of one binary op at (a, b); ties of maximum/minimum share the gradient. */
static void NAME(binary_grad1)(vkg_op op, REAL a, REAL b, REAL *ga, REAL *gb) {
    switch (op) {
    case VKG_OP_ADD: *ga = 1; *gb = 1; break;
    case VKG_OP_SUB: *ga = 1; *gb = -1; break;
    case VKG_OP_MUL: *ga = b; *gb = a; break;
    case VKG_OP_DIV: *ga = 1 / b; *gb = -a / (b * b); break;
    case VKG_OP_MAXIMUM: *ga = a > b ? 1 : a == b ? (REAL)0.5 : 0; *gb = 1 - *ga; break;
    case VKG_OP_MINIMUM: *ga = a < b ? 1 : a == b ? (REAL)0.5 : 0; *gb = 1 - *ga; break;
    default: *ga = *gb = 0; break;
    }
}

void NAME(binary_backward)(vkg_op op, REAL *da, vkg_shape as, REAL *db, vkg_shape bs, const REAL *a, const REAL *b,
                           const REAL *dy, vkg_shape ys) {
    int64_t n = vkg_shape_numel(ys);
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = vkg_ref_broadcast_index(i, ys, as), ib = vkg_ref_broadcast_index(i, ys, bs);
        REAL ga, gb;
        NAME(binary_grad1)(op, a[ia], b[ib], &ga, &gb);
        if (da) da[ia] += dy[i] * ga;
        if (db) db[ib] += dy[i] * gb;
    }
}

void NAME(where_backward)(REAL *da, vkg_shape as, REAL *db, vkg_shape bs, const REAL *cond, vkg_shape cs,
                          const REAL *dy, vkg_shape ys) {
    int64_t n = vkg_shape_numel(ys);
    for (int64_t i = 0; i < n; i++) {
        bool c = cond[vkg_ref_broadcast_index(i, ys, cs)] != 0;
        if (c && da) da[vkg_ref_broadcast_index(i, ys, as)] += dy[i];
        if (!c && db) db[vkg_ref_broadcast_index(i, ys, bs)] += dy[i];
    }
}

void NAME(reduce_backward)(vkg_op op, REAL *dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy) {
    int64_t outer, R, inner;
    NAME(reduce_dims)(xs, axis, &outer, &R, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const REAL *p = x + o * R * inner + in;
            REAL *q = dx + o * R * inner + in;
            REAL g = dy[o * inner + in];
            if (op == VKG_OP_SUM || op == VKG_OP_MEAN) {
                REAL share = op == VKG_OP_MEAN ? g / (REAL)R : g;
                for (int64_t r = 0; r < R; r++) q[r * inner] += share;
                continue;
            }
            REAL best = p[0]; /* max/min: shared evenly among ties, like torch.amax */
            for (int64_t r = 1; r < R; r++)
                if (op == VKG_OP_MAX ? p[r * inner] > best : p[r * inner] < best) best = p[r * inner];
            int64_t ties = 0;
            for (int64_t r = 0; r < R; r++) ties += p[r * inner] == best;
            for (int64_t r = 0; r < R; r++)
                if (p[r * inner] == best) q[r * inner] += g / (REAL)ties;
        }
}

void NAME(matmul_backward)(REAL *da, REAL *db, const REAL *a, vkg_shape as, const REAL *b, vkg_shape bs,
                           const REAL *dc) {
    int64_t M, K, N;
    vkg_shape ab, bb, batch;
    int64_t nb = NAME(matmul_dims)(as, bs, &M, &K, &N, &ab, &bb, &batch);
    for (int64_t t = 0; t < nb; t++) {
        int64_t oa = vkg_ref_broadcast_index(t, batch, ab) * M * K, ob = vkg_ref_broadcast_index(t, batch, bb) * K * N;
        const REAL *g = dc + t * M * N;
        for (int64_t i = 0; da && i < M; i++)
            for (int64_t k = 0; k < K; k++) {
                double acc = 0.0;
                for (int64_t j = 0; j < N; j++) acc += (double)g[i * N + j] * b[ob + k * N + j];
                da[oa + i * K + k] += (REAL)acc;
            }
        for (int64_t k = 0; db && k < K; k++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0.0;
                for (int64_t i = 0; i < M; i++) acc += (double)a[oa + i * K + k] * g[i * N + j];
                db[ob + k * N + j] += (REAL)acc;
            }
    }
}

void NAME(matmul_bias_act_backward)(REAL *da, REAL *db, REAL *dbias, const REAL *a, vkg_shape as, const REAL *b,
                                    vkg_shape bs, const REAL *bias, vkg_activation act, const REAL *c, const REAL *dc) {
    int64_t M, K, N;
    vkg_shape ab, bb, batch;
    int64_t n = NAME(matmul_dims)(as, bs, &M, &K, &N, &ab, &bb, &batch) * M * N;
    REAL *dz = malloc((size_t)(n ? n : 1) * sizeof *dz);
    if (!dz) return;
    if (act == VKG_ACTIVATION_GELU) { /* gelu'(z), z = a @ b + bias made again */
        NAME(matmul_bias_act)(dz, a, as, b, bs, bias, VKG_ACTIVATION_NONE);
        for (int64_t i = 0; i < n; i++) dz[i] = dc[i] * NAME(unary_grad1)(VKG_OP_GELU, dz[i], 0);
    } else
        for (int64_t i = 0; i < n; i++) dz[i] = act == VKG_ACTIVATION_RELU && !(c[i] > 0) ? 0 : dc[i];
    NAME(matmul_backward)(da, db, a, as, b, bs, dz);
    for (int64_t i = 0; dbias && i < n; i++) dbias[i % N] += dz[i];
    free(dz);
}
