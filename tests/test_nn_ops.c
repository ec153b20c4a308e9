/* The nn group's ops (vkgrad/nn_ops.h): forward against the C reference on sizes that are not
 * multiples of the workgroup size, broadcast masks, transposed and strided views; every
 * differentiable op through the shared gradient check (tests/gradcheck.c); the bad inputs each
 * op refuses, with their messages; NULL propagation; dropout's reproducible mask; the documented
 * NaN of an out-of-range class target. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

#define SEED 31337u

/* ---- helpers ------------------------------------------------------------------------------ */
static float *rnd(size_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    vkgt_fill(x, n, lo, hi, seed);
    return x;
}

/* A device tensor of shape s holding host values v (row-major in s); as a transposed view of
 * a tensor stored the other way when `transposed` (last two dims). */
static vkg_tensor *dev(vkg_shape s, const float *v, bool transposed) {
    if (!transposed) {
        vkg_tensor *t = vkg_from_data(s, v);
        cr_assert_not_null(t, "%s", vkg_last_error());
        return t;
    }
    vkg_shape ts = s;
    int a = s.ndim - 2, b = s.ndim - 1;
    ts.d[a] = s.d[b];
    ts.d[b] = s.d[a];
    int64_t R = s.d[a], C = s.d[b], n = vkg_shape_numel(s), B = (R > 0 && C > 0) ? n / (R * C) : 0;
    float *tb = malloc((size_t)(n ? n : 1) * sizeof *tb);
    for (int64_t k = 0; k < B; k++)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) tb[k * R * C + j * R + i] = v[k * R * C + i * C + j];
    vkg_tensor *t = vkg_transpose(vkg_from_data(ts, tb), a, b);
    free(tb);
    cr_assert_not_null(t, "%s", vkg_last_error());
    cr_assert(!vkg_is_contiguous(t) || R == 1 || C == 1);
    return t;
}

static vkg_tensor *dev_i32(vkg_shape s, const int32_t *v) {
    vkg_tensor *t = vkg_from_data_dtype(s, VKG_I32, v);
    cr_assert_not_null(t, "%s", vkg_last_error());
    return t;
}

static void expect_close(vkg_tensor *y, const float *want, size_t n, float rtol, float atol, const char *what) {
    cr_assert_not_null(y, "%s: %s", what, vkg_last_error());
    cr_assert_eq((size_t)vkg_numel(y), n, "%s: %lld elements, want %zu", what, (long long)vkg_numel(y), n);
    float *got = vkgt_read(y);
    vkgt_assert_close(got, want, n, rtol, atol, what);
    free(got);
}

/* The op failed with a message that contains each of the fragments. */
static void expect_error(vkg_tensor *r, const char *what, const char *frag1, const char *frag2) {
    cr_assert_null(r, "%s: should fail", what);
    const char *m = vkg_last_error();
    cr_assert(strstr(m, frag1) != NULL, "%s: message \"%s\" lacks \"%s\"", what, m, frag1);
    if (frag2) cr_assert(strstr(m, frag2) != NULL, "%s: message \"%s\" lacks \"%s\"", what, m, frag2);
    vkg_clear_error();
}

/* ---- forward against the reference -------------------------------------------------------- */
VKG_TEST(nn_ops, clamp_masked_fill_forward) {
    vkg_scope_begin();
    const vkg_shape shapes[] = { VKG_SHAPE(131), VKG_SHAPE(37, 129), VKG_SHAPE(3, 5, 7), VKG_SCALAR };
    for (int k = 0; k < 4; k++) {
        vkg_shape s = shapes[k];
        size_t n = (size_t)vkg_shape_numel(s);
        float *x = rnd(n, -3, 3, SEED + (uint64_t)k), *want = malloc(n * sizeof *want);
        for (int tr = 0; tr < (s.ndim >= 2 ? 2 : 1); tr++) {
            vkg_tensor *xt = dev(s, x, tr);
            vkg_ref_clamp(want, x, n, -1.0f, 0.5f);
            expect_close(vkg_clamp(xt, -1.0f, 0.5f), want, n, 0, 0, "clamp");
            vkg_ref_clamp(want, x, n, -INFINITY, 0.25f);
            expect_close(vkg_clamp(xt, -INFINITY, 0.25f), want, n, 0, 0, "clamp max only");
            vkg_ref_clamp(want, x, n, 2.0f, 1.0f); /* lo > hi: hi everywhere */
            expect_close(vkg_clamp(xt, 2.0f, 1.0f), want, n, 0, 0, "clamp lo > hi");
        }
        free(x);
        free(want);
    }
    float nanv[3] = { NAN, -5, 5 }, want3[3] = { NAN, -1, 1 };
    expect_close(vkg_clamp(vkg_from_data(VKG_SHAPE(3), nanv), -1, 1), want3, 3, 0, 0, "clamp NaN");

    /* masked_fill with masks of every broadcast kind, x transposed or not */
    const vkg_shape xs[] = { VKG_SHAPE(37, 129), VKG_SHAPE(4, 5, 6), VKG_SHAPE(4, 5, 6), VKG_SHAPE(9, 7) };
    const vkg_shape ms[] = { VKG_SHAPE(37, 129), VKG_SHAPE(5, 1), VKG_SHAPE(4, 1, 6), VKG_SCALAR };
    for (int k = 0; k < 4; k++) {
        size_t n = (size_t)vkg_shape_numel(xs[k]), nm = (size_t)vkg_shape_numel(ms[k]);
        float *x = rnd(n, -2, 2, SEED + 10 + (uint64_t)k), *m = rnd(nm, 0, 1, SEED + 20 + (uint64_t)k);
        for (size_t i = 0; i < nm; i++) m[i] = m[i] < 0.4f ? 1.0f : 0.0f;
        if (k == 3) m[0] = 1.0f;
        float *want = malloc(n * sizeof *want);
        vkg_ref_masked_fill(want, x, xs[k], m, ms[k], -7.5f);
        for (int tr = 0; tr < 2; tr++)
            expect_close(vkg_masked_fill(dev(xs[k], x, tr), dev(ms[k], m, false), -7.5f), want, n, 0, 0,
                         "masked_fill");
        free(x);
        free(m);
        free(want);
    }
    vkg_scope_end();
}

VKG_TEST(nn_ops, rows_forward) {
    vkg_scope_begin();
    typedef struct { vkg_shape s; int axis; bool tr; } rcase;
    const rcase cases[] = {
        { VKG_SHAPE(37, 129), 1, false }, { VKG_SHAPE(37, 129), 0, false }, { VKG_SHAPE(37, 129), -1, true },
        { VKG_SHAPE(3, 5, 300), 1, false }, { VKG_SHAPE(3, 5, 7), 2, true }, { VKG_SHAPE(1), 0, false },
        { VKG_SHAPE(200, 3), 1, false },
        /* few long rows: the workgroup-per-row variant */
        { VKG_SHAPE(3001, 2), 0, false }, { VKG_SHAPE(3, 1000), -1, true },
        /* contiguous rows of a multiple of 4: softmax and log_softmax take the vec4 path, rows of up
         * to 256 kept in registers on a CPU device, longer ones (264) read in loops */
        { VKG_SHAPE(37, 128), 1, false }, { VKG_SHAPE(5, 3, 12), -1, false }, { VKG_SHAPE(16, 264), 1, false },
    };
    const vkg_op ops[] = { VKG_OP_SOFTMAX, VKG_OP_LOG_SOFTMAX, VKG_OP_LOGSUMEXP, VKG_OP_VAR, VKG_OP_STD };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const rcase *c = &cases[k];
        size_t n = (size_t)vkg_shape_numel(c->s);
        float *x = rnd(n, -4, 4, SEED + 30 + k), *want = malloc(n * sizeof *want);
        vkg_tensor *xt = dev(c->s, x, c->tr);
        for (int j = 0; j < 5; j++) {
            vkg_op op = ops[j];
            for (int corr = 0; corr < (op >= VKG_OP_VAR ? 2 : 1); corr++) {
                vkg_tensor *y = NULL;
                bool keep = (k + (size_t)j) % 2 == 0;
                switch (op) {
                case VKG_OP_SOFTMAX: y = vkg_softmax(xt, c->axis); vkg_ref_softmax(want, x, c->s, c->axis); break;
                case VKG_OP_LOG_SOFTMAX:
                    y = vkg_log_softmax(xt, c->axis);
                    vkg_ref_log_softmax(want, x, c->s, c->axis);
                    break;
                case VKG_OP_LOGSUMEXP:
                    y = vkg_logsumexp(xt, c->axis, keep);
                    vkg_ref_logsumexp(want, x, c->s, c->axis);
                    break;
                case VKG_OP_VAR:
                    y = vkg_var(xt, c->axis, keep, corr);
                    vkg_ref_var(want, x, c->s, c->axis, corr);
                    break;
                default:
                    y = vkg_std(xt, c->axis, keep, corr);
                    vkg_ref_std(want, x, c->s, c->axis, corr);
                    break;
                }
                cr_assert_not_null(y, "%s: %s", vkg_op_table[op].name, vkg_last_error());
                int ax = c->axis < 0 ? c->axis + c->s.ndim : c->axis;
                bool same = op == VKG_OP_SOFTMAX || op == VKG_OP_LOG_SOFTMAX;
                cr_assert_eq(vkg_ndim(y), same || keep ? c->s.ndim : c->s.ndim - 1, "%s keepdim", vkg_op_table[op].name);
                if (keep && !same) cr_assert_eq(vkg_dim(y, ax), 1);
                size_t ny = same ? n : n / (size_t)c->s.d[ax];
                char what[96];
                snprintf(what, sizeof what, "%s case %zu correction %d", vkg_op_table[op].name, k, corr);
                if (c->s.d[ax] == 1 && corr == 1) { /* R - correction = 0: NaN (0 / 0), like PyTorch */
                    float *got = vkgt_read(y);
                    for (size_t i = 0; i < ny; i++) cr_assert(isnan(got[i]) && isnan(want[i]), "%s: NaN", what);
                    free(got);
                    continue;
                }
                expect_close(y, want, ny, 2e-5f, 2e-6f, what);
            }
        }
        free(x);
        free(want);
    }
    /* stable for large values: no overflow to inf or NaN */
    float big[4] = { 1000, 999, -1000, 0 }, sm[4], lse[1];
    vkg_ref_softmax(sm, big, VKG_SHAPE(4), 0);
    vkg_ref_logsumexp(lse, big, VKG_SHAPE(4), 0);
    expect_close(vkg_softmax(vkg_from_data(VKG_SHAPE(4), big), 0), sm, 4, 1e-6f, 1e-7f, "softmax large");
    expect_close(vkg_logsumexp(vkg_from_data(VKG_SHAPE(4), big), 0, false), lse, 1, 1e-6f, 0, "logsumexp large");
    float ninf[2] = { -INFINITY, -INFINITY };
    cr_assert_eq(vkg_item(vkg_logsumexp(vkg_from_data(VKG_SHAPE(2), ninf), 0, false)), -INFINITY);
    vkg_scope_end();
}

VKG_TEST(nn_ops, losses_forward) {
    vkg_scope_begin();
    /* C = 128 (contiguous): cross_entropy's vec4 path both ways */
    const int64_t Ns[] = { 1, 37, 200, 33 }, Cs[] = { 5, 129, 3, 128 };
    for (int k = 0; k < 4; k++) {
        int64_t N = Ns[k], C = Cs[k];
        float *x = rnd((size_t)(N * C), -5, 5, SEED + 40 + (uint64_t)k);
        float *lp = malloc((size_t)(N * C) * sizeof *lp);
        vkg_ref_log_softmax(lp, x, VKG_SHAPE(N, C), 1);
        int32_t *t = malloc((size_t)N * sizeof *t);
        float *u = rnd((size_t)N, 0, 1, SEED + 50 + (uint64_t)k);
        for (int64_t i = 0; i < N; i++) t[i] = (int32_t)(u[i] * (float)C) % (int32_t)C;
        if (N > 2) t[1] = -100; /* ignored by default */
        float *want = malloc((size_t)N * sizeof *want);
        for (int tr = 0; tr < 2; tr++)
            for (int r = 0; r < 3; r++) {
                vkg_reduction red = (vkg_reduction)r;
                vkg_loss_desc d = { .reduction = red };
                size_t ny = red == VKG_REDUCTION_NONE ? (size_t)N : 1;
                vkg_ref_cross_entropy(want, x, N, C, t, red, -100);
                expect_close(vkg_cross_entropy(dev(VKG_SHAPE(N, C), x, tr), dev_i32(VKG_SHAPE(N), t), &d), want, ny,
                             2e-5f, 2e-5f, "cross_entropy");
                vkg_ref_nll_loss(want, lp, N, C, t, red, -100);
                expect_close(vkg_nll_loss(dev(VKG_SHAPE(N, C), lp, tr), dev_i32(VKG_SHAPE(N), t), &d), want, ny,
                             2e-5f, 2e-5f, "nll_loss");
                /* cross_entropy is log_softmax + nll_loss */
                vkg_tensor *two = vkg_nll_loss(vkg_log_softmax(dev(VKG_SHAPE(N, C), x, tr), 1), dev_i32(VKG_SHAPE(N), t),
                                               &d);
                vkg_ref_cross_entropy(want, x, N, C, t, red, -100);
                expect_close(two, want, ny, 2e-5f, 2e-5f, "nll_loss(log_softmax)");
            }
        /* a class index of our own to ignore */
        vkg_loss_desc d2 = { .has_ignore_index = true, .ignore_index = t[0] };
        vkg_ref_cross_entropy(want, x, N, C, t, VKG_REDUCTION_MEAN, t[0]);
        vkg_tensor *l2 = vkg_cross_entropy(dev(VKG_SHAPE(N, C), x, false), dev_i32(VKG_SHAPE(N), t), &d2);
        if (N == 1) cr_assert(isnan(vkg_item(l2)), "every sample ignored: the mean is NaN");
        else expect_close(l2, want, 1, 2e-5f, 2e-5f, "cross_entropy ignore_index");
        free(x);
        free(lp);
        free(t);
        free(u);
        free(want);
    }
    /* elementwise losses, also with transposed operands */
    const vkg_shape ss[] = { VKG_SHAPE(131), VKG_SHAPE(37, 129), VKG_SHAPE(2, 3, 5) };
    for (int k = 0; k < 3; k++) {
        size_t n = (size_t)vkg_shape_numel(ss[k]);
        float *x = rnd(n, -30, 30, SEED + 60 + (uint64_t)k), *t = rnd(n, 0, 1, SEED + 70 + (uint64_t)k);
        float *want = malloc(n * sizeof *want);
        bool tr = ss[k].ndim >= 2;
        for (int r = 0; r < 3; r++) {
            vkg_reduction red = (vkg_reduction)r;
            size_t ny = red == VKG_REDUCTION_NONE ? n : 1;
            vkg_ref_mse_loss(want, x, t, n, red);
            expect_close(vkg_mse_loss(dev(ss[k], x, tr), dev(ss[k], t, false), red), want, ny, 2e-5f, 1e-5f, "mse_loss");
            vkg_ref_bce_with_logits(want, x, t, n, red);
            expect_close(vkg_binary_cross_entropy_with_logits(dev(ss[k], x, false), dev(ss[k], t, tr), red), want, ny,
                         2e-5f, 1e-5f, "binary_cross_entropy_with_logits");
        }
        free(x);
        free(t);
        free(want);
    }
    /* bce at extreme logits stays finite and exact-ish */
    float xe[4] = { 100, -100, 20, -20 }, te[4] = { 1, 0, 0, 1 }, we[4];
    vkg_ref_bce_with_logits(we, xe, te, 4, VKG_REDUCTION_NONE);
    expect_close(vkg_binary_cross_entropy_with_logits(vkg_from_data(VKG_SHAPE(4), xe), vkg_from_data(VKG_SHAPE(4), te),
                                                      VKG_REDUCTION_NONE),
                 we, 4, 1e-5f, 1e-30f, "bce extremes");
    vkg_scope_end();
}

VKG_TEST(nn_ops, cross_entropy_out_of_range_target_is_nan) {
    /* documented: not checked on the host; the sample's loss and gradient row are NaN (rows of 3
     * classes take the scalar loops, rows of 8 the vec4 path) */
    const int classes[2] = { 3, 8 };
    for (int k = 0; k < 2; k++) {
        vkg_scope_begin();
        int C = classes[k];
        float x[16];
        for (int i = 0; i < 2 * C; i++) x[i] = (float)(i + 1);
        int32_t t[2] = { 1, C + 4 };
        vkg_tensor *lg = vkg_requires_grad(vkg_from_data(VKG_SHAPE(2, C), x), true);
        vkg_tensor *none =
            vkg_cross_entropy(lg, dev_i32(VKG_SHAPE(2), t), &(vkg_loss_desc){ .reduction = VKG_REDUCTION_NONE });
        float *l = vkgt_read(none);
        cr_assert(isfinite(l[0]) && isnan(l[1]), "C %d: losses %g %g", C, (double)l[0], (double)l[1]);
        free(l);
        vkg_tensor *mean = vkg_cross_entropy(lg, dev_i32(VKG_SHAPE(2), t), NULL);
        cr_assert(isnan(vkg_item(mean)));
        cr_assert_eq(vkg_backward(mean), VKG_OK, "%s", vkg_last_error());
        float *g = vkgt_read(vkg_grad(lg));
        for (int i = 0; i < C; i++) cr_assert(isfinite(g[i]), "C %d: the good sample's gradient is finite", C);
        for (int i = C; i < 2 * C; i++) cr_assert(isnan(g[i]), "C %d: the bad sample's gradient row is NaN", C);
        free(g);
        vkg_scope_end();
    }
    vkg_scope_begin();
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    int32_t neg[2] = { -1, 0 };
    cr_assert(isnan(vkg_item(vkg_nll_loss(vkg_from_data(VKG_SHAPE(2, 3), x), dev_i32(VKG_SHAPE(2), neg), NULL))));
    vkg_scope_end();
}

VKG_TEST(nn_ops, layer_norm_forward) {
    vkg_scope_begin();
    /* D a multiple of 4 takes the kernels' vec4 path (also through the gradchecks below): rows of
     * up to 256 kept in registers on a CPU device, longer ones (264) read in loops */
    const vkg_shape ss[] = { VKG_SHAPE(37, 129), VKG_SHAPE(3, 5, 7), VKG_SHAPE(300, 2), VKG_SHAPE(1, 1),
                             VKG_SHAPE(33, 128), VKG_SHAPE(2, 3, 12), VKG_SHAPE(5, 264) };
    for (int k = 0; k < 7; k++) {
        vkg_shape s = ss[k];
        int64_t D = s.d[s.ndim - 1], rows = vkg_shape_numel(s) / D;
        size_t n = (size_t)vkg_shape_numel(s);
        float *x = rnd(n, -3, 5, SEED + 80 + (uint64_t)k), *w = rnd((size_t)D, 0.5f, 2, SEED + 81),
              *b = rnd((size_t)D, -1, 1, SEED + 82);
        float *want = malloc(n * sizeof *want);
        for (int variant = 0; variant < 4; variant++) {
            bool hw = variant & 1, hb = variant & 2;
            vkg_ref_layer_norm(want, NULL, NULL, x, hw ? w : NULL, hb ? b : NULL, rows, D, 1e-5f);
            vkg_tensor *y = vkg_layer_norm(dev(s, x, s.ndim >= 2 && variant == 3), hw ? dev(VKG_SHAPE(D), w, false) : NULL,
                                           hb ? dev(VKG_SHAPE(D), b, false) : NULL, VKG_LAYER_NORM_EPS);
            expect_close(y, want, n, 1e-4f, 2e-5f, "layer_norm");
        }
        free(x);
        free(w);
        free(b);
        free(want);
    }
    vkg_scope_end();
}

VKG_TEST(nn_ops, dropout_mask_is_the_bernoulli_stream) {
    vkg_scope_begin();
    size_t n = 10007;
    float *x = rnd(n, -2, 2, SEED + 90), *want = malloc(n * sizeof *want);
    vkg_tensor *xt = vkg_from_data(VKG_SHAPE(10007), x);
    vkg_rand_desc rng = { .seed = 1234, .offset = 17 };
    vkg_ref_dropout(want, x, n, 0.3f, true, &rng);
    vkg_tensor *y = vkg_dropout(xt, 0.3f, true, &rng);
    expect_close(y, want, n, 0, 0, "dropout"); /* bitwise: the same Philox words, the same products */
    float *got = vkgt_read(y);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        kept += got[i] != 0;
        if (got[i] != 0) cr_assert_eq(got[i], x[i] * (1.0f / 0.7f));
    }
    cr_assert(fabs((double)kept / (double)n - 0.7) < 0.03, "kept %zu of %zu", kept, n);
    free(got);
    /* the same (seed, offset): the same mask; another offset: another one */
    expect_close(vkg_dropout(xt, 0.3f, true, &rng), want, n, 0, 0, "dropout again");
    float *other = vkgt_read(vkg_dropout(xt, 0.3f, true, &(vkg_rand_desc){ .seed = 1234, .offset = 18 }));
    cr_assert(memcmp(other, want, n * sizeof(float)) != 0);
    free(other);
    /* eval is the identity (the same tensor); p = 0 keeps everything */
    cr_assert_eq(vkg_dropout(xt, 0.5f, false, NULL), xt);
    expect_close(vkg_dropout(xt, 0.0f, true, NULL), x, n, 0, 0, "dropout p = 0");
    /* transposed input: the mask follows the logical (row-major) order */
    float *x2 = rnd(35, -1, 1, SEED + 91), w2[35];
    vkg_ref_dropout(w2, x2, 35, 0.5f, true, &rng);
    expect_close(vkg_dropout(dev(VKG_SHAPE(5, 7), x2, true), 0.5f, true, &rng), w2, 35, 0, 0, "dropout transposed");
    free(x2);
    free(x);
    free(want);
    vkg_scope_end();
}

/* ---- gradient checks ------------------------------------------------------------------------ */
typedef struct nn_case {
    vkg_op op;
    int nin;
    vkg_shape shape[3];
    bool transposed[3];
    int axis;
    bool keepdim;
    int correction;
    float lo, hi, value, p;
    vkg_reduction reduction;
    bool has_ignore;
    int32_t ignore;
    bool has_w, has_b;
    uint64_t seed;
} nn_case;

static int32_t *targets_of(const nn_case *c, const double *x, int64_t N) {
    int32_t *t = malloc((size_t)(N ? N : 1) * sizeof *t);
    for (int64_t i = 0; i < N; i++) t[i] = (int32_t)x[i];
    (void)c;
    return t;
}

static void nn_init(int i, double *x, size_t n, void *ctx) {
    const nn_case *c = ctx;
    float *f = rnd(n, 0, 1, c->seed + 1000 * (uint64_t)i);
    for (size_t k = 0; k < n; k++) {
        double u = f[k];
        if (c->op == VKG_OP_MASKED_FILL && i == 1) x[k] = u < 0.4 ? 1 : 0;
        else if ((c->op == VKG_OP_CROSS_ENTROPY || c->op == VKG_OP_NLL_LOSS) && i == 1) {
            int64_t C = c->shape[0].d[1];
            x[k] = (double)((int64_t)(u * (double)C) % C);
            if (k % 4 == 2) x[k] = c->has_ignore ? c->ignore : -100; /* some ignored */
        } else if (c->op == VKG_OP_BCE_WITH_LOGITS && i == 1) x[k] = u;
        else if (c->op == VKG_OP_NLL_LOSS && i == 0) x[k] = -0.1 - 3 * u;
        else x[k] = (u < 0.5 ? -1 : 1) * (0.2 + 3.6 * fabs(u - 0.5));
    }
    free(f);
}

static vkg_tensor *nn_device(vkg_tensor **in, void *ctx) {
    const nn_case *c = ctx;
    vkg_loss_desc d = { .reduction = c->reduction, .has_ignore_index = c->has_ignore, .ignore_index = c->ignore };
    switch (c->op) {
    case VKG_OP_CLAMP: return vkg_clamp(in[0], c->lo, c->hi);
    case VKG_OP_MASKED_FILL: return vkg_masked_fill(in[0], in[1], c->value);
    case VKG_OP_DROPOUT: return vkg_dropout(in[0], c->p, true, &(vkg_rand_desc){ .seed = c->seed, .offset = 3 });
    case VKG_OP_SOFTMAX: return vkg_softmax(in[0], c->axis);
    case VKG_OP_LOG_SOFTMAX: return vkg_log_softmax(in[0], c->axis);
    case VKG_OP_LOGSUMEXP: return vkg_logsumexp(in[0], c->axis, c->keepdim);
    case VKG_OP_VAR: return vkg_var(in[0], c->axis, c->keepdim, c->correction);
    case VKG_OP_STD: return vkg_std(in[0], c->axis, c->keepdim, c->correction);
    case VKG_OP_CROSS_ENTROPY: return vkg_cross_entropy(in[0], in[1], &d);
    case VKG_OP_NLL_LOSS: return vkg_nll_loss(in[0], in[1], &d);
    case VKG_OP_MSE_LOSS: return vkg_mse_loss(in[0], in[1], c->reduction);
    case VKG_OP_BCE_WITH_LOGITS: return vkg_binary_cross_entropy_with_logits(in[0], in[1], c->reduction);
    case VKG_OP_LAYER_NORM:
        return vkg_layer_norm(in[0], c->has_w ? in[1] : NULL, c->has_b ? in[c->has_w ? 2 : 1] : NULL, VKG_LAYER_NORM_EPS);
    default: return NULL;
    }
}

static void nn_forward(double *y, vkg_shape ys, double *const *x, void *ctx) {
    const nn_case *c = ctx;
    vkg_shape s = c->shape[0];
    size_t n = (size_t)vkg_shape_numel(s);
    int32_t ig = c->has_ignore ? c->ignore : -100;
    (void)ys;
    switch (c->op) {
    case VKG_OP_CLAMP: vkg_ref_clamp_f64(y, x[0], n, c->lo, c->hi); break;
    case VKG_OP_MASKED_FILL: vkg_ref_masked_fill_f64(y, x[0], s, x[1], c->shape[1], c->value); break;
    case VKG_OP_DROPOUT: vkg_ref_dropout_f64(y, x[0], n, c->p, true, &(vkg_rand_desc){ .seed = c->seed, .offset = 3 }); break;
    case VKG_OP_SOFTMAX: vkg_ref_softmax_f64(y, x[0], s, c->axis); break;
    case VKG_OP_LOG_SOFTMAX: vkg_ref_log_softmax_f64(y, x[0], s, c->axis); break;
    case VKG_OP_LOGSUMEXP: vkg_ref_logsumexp_f64(y, x[0], s, c->axis); break;
    case VKG_OP_VAR: vkg_ref_var_f64(y, x[0], s, c->axis, c->correction); break;
    case VKG_OP_STD: vkg_ref_std_f64(y, x[0], s, c->axis, c->correction); break;
    case VKG_OP_CROSS_ENTROPY:
    case VKG_OP_NLL_LOSS: {
        int32_t *t = targets_of(c, x[1], s.d[0]);
        if (c->op == VKG_OP_CROSS_ENTROPY) vkg_ref_cross_entropy_f64(y, x[0], s.d[0], s.d[1], t, c->reduction, ig);
        else vkg_ref_nll_loss_f64(y, x[0], s.d[0], s.d[1], t, c->reduction, ig);
        free(t);
        break;
    }
    case VKG_OP_MSE_LOSS: vkg_ref_mse_loss_f64(y, x[0], x[1], n, c->reduction); break;
    case VKG_OP_BCE_WITH_LOGITS: vkg_ref_bce_with_logits_f64(y, x[0], x[1], n, c->reduction); break;
    case VKG_OP_LAYER_NORM: {
        int64_t D = s.d[s.ndim - 1];
        vkg_ref_layer_norm_f64(y, NULL, NULL, x[0], c->has_w ? x[1] : NULL, c->has_b ? x[c->has_w ? 2 : 1] : NULL,
                               (int64_t)n / D, D, 1e-5f);
        break;
    }
    default: cr_assert_fail("no reference");
    }
}

static void nn_backward(double *const *dx, vkg_shape ys, double *const *x, const double *dy, void *ctx) {
    const nn_case *c = ctx;
    vkg_shape s = c->shape[0];
    size_t n = (size_t)vkg_shape_numel(s);
    int32_t ig = c->has_ignore ? c->ignore : -100;
    (void)ys;
    switch (c->op) {
    case VKG_OP_CLAMP: vkg_ref_clamp_backward_f64(dx[0], x[0], dy, n, c->lo, c->hi); break;
    case VKG_OP_MASKED_FILL: vkg_ref_masked_fill_backward_f64(dx[0], s, x[1], c->shape[1], dy); break;
    case VKG_OP_DROPOUT:
        vkg_ref_dropout_backward_f64(dx[0], dy, n, c->p, true, &(vkg_rand_desc){ .seed = c->seed, .offset = 3 });
        break;
    case VKG_OP_SOFTMAX: vkg_ref_softmax_backward_f64(dx[0], x[0], s, c->axis, dy); break;
    case VKG_OP_LOG_SOFTMAX: vkg_ref_log_softmax_backward_f64(dx[0], x[0], s, c->axis, dy); break;
    case VKG_OP_LOGSUMEXP: vkg_ref_logsumexp_backward_f64(dx[0], x[0], s, c->axis, dy); break;
    case VKG_OP_VAR: vkg_ref_var_backward_f64(dx[0], x[0], s, c->axis, c->correction, dy); break;
    case VKG_OP_STD: vkg_ref_std_backward_f64(dx[0], x[0], s, c->axis, c->correction, dy); break;
    case VKG_OP_CROSS_ENTROPY:
    case VKG_OP_NLL_LOSS: {
        int32_t *t = targets_of(c, x[1], s.d[0]);
        if (c->op == VKG_OP_CROSS_ENTROPY)
            vkg_ref_cross_entropy_backward_f64(dx[0], x[0], s.d[0], s.d[1], t, c->reduction, ig, dy);
        else vkg_ref_nll_loss_backward_f64(dx[0], s.d[0], s.d[1], t, c->reduction, ig, dy);
        free(t);
        break;
    }
    case VKG_OP_MSE_LOSS: vkg_ref_mse_loss_backward_f64(dx[0], dx[1], x[0], x[1], n, c->reduction, dy); break;
    case VKG_OP_BCE_WITH_LOGITS:
        vkg_ref_bce_with_logits_backward_f64(dx[0], dx[1], x[0], x[1], n, c->reduction, dy);
        break;
    case VKG_OP_LAYER_NORM: {
        int64_t D = s.d[s.ndim - 1];
        vkg_ref_layer_norm_backward_f64(dx[0], c->has_w ? dx[1] : NULL, c->has_b ? dx[c->has_w ? 2 : 1] : NULL, x[0],
                                        c->has_w ? x[1] : NULL, (int64_t)n / D, D, 1e-5f, dy);
        break;
    }
    default: cr_assert_fail("no backward reference");
    }
}

static bool gradchecked[VKG_OP_COUNT];

static void gradcheck(nn_case c, uint64_t seed) {
    c.seed = seed;
    vkgt_gc g = { .name = vkg_op_table[c.op].name, .nin = c.nin, .init = nn_init, .device = nn_device,
                  .forward = nn_forward, .backward = nn_backward, .ctx = &c, .seed = seed };
    for (int i = 0; i < c.nin; i++) {
        g.shape[i] = c.shape[i];
        g.transposed[i] = c.transposed[i];
    }
    if (c.op == VKG_OP_MASKED_FILL) g.constant[1] = true;
    if (c.op == VKG_OP_CROSS_ENTROPY || c.op == VKG_OP_NLL_LOSS) g.dtype[1] = VKG_I32;
    vkgt_gradcheck(&g);
    gradchecked[c.op] = true;
}

VKG_TEST(nn_ops, elementwise_gradcheck) {
    gradcheck((nn_case){ .op = VKG_OP_CLAMP, .nin = 1, .shape = { VKG_SHAPE(37) }, .lo = -1.0f, .hi = 0.8f }, SEED);
    gradcheck((nn_case){ .op = VKG_OP_CLAMP, .nin = 1, .shape = { VKG_SHAPE(5, 7) }, .transposed = { true },
                         .lo = -INFINITY, .hi = 0.5f },
              SEED + 1);
    gradcheck((nn_case){ .op = VKG_OP_MASKED_FILL, .nin = 2, .shape = { VKG_SHAPE(5, 7), VKG_SHAPE(7) },
                         .transposed = { true }, .value = 3.0f },
              SEED + 2);
    gradcheck((nn_case){ .op = VKG_OP_MASKED_FILL, .nin = 2, .shape = { VKG_SHAPE(4, 3, 5), VKG_SHAPE(4, 1, 5) },
                         .value = -1.0f },
              SEED + 3);
    gradcheck((nn_case){ .op = VKG_OP_DROPOUT, .nin = 1, .shape = { VKG_SHAPE(6, 9) }, .transposed = { true }, .p = 0.4f },
              SEED + 4);
    gradcheck((nn_case){ .op = VKG_OP_DROPOUT, .nin = 1, .shape = { VKG_SHAPE(41) }, .p = 0.1f }, SEED + 5);
}

VKG_TEST(nn_ops, rows_gradcheck) {
    const vkg_op ops[] = { VKG_OP_SOFTMAX, VKG_OP_LOG_SOFTMAX, VKG_OP_LOGSUMEXP, VKG_OP_VAR, VKG_OP_STD };
    for (int j = 0; j < 5; j++) {
        gradcheck((nn_case){ .op = ops[j], .nin = 1, .shape = { VKG_SHAPE(5, 7) }, .axis = 1, .correction = 1 },
                  SEED + 10 + (uint64_t)j);
        gradcheck((nn_case){ .op = ops[j], .nin = 1, .shape = { VKG_SHAPE(5, 7) }, .axis = 0, .keepdim = true,
                             .transposed = { true } },
                  SEED + 20 + (uint64_t)j);
        gradcheck((nn_case){ .op = ops[j], .nin = 1, .shape = { VKG_SHAPE(2, 3, 4) }, .axis = -2, .correction = 1,
                             .transposed = { true } },
                  SEED + 30 + (uint64_t)j);
        /* few long rows: one workgroup per row */
        gradcheck((nn_case){ .op = ops[j], .nin = 1, .shape = { VKG_SHAPE(600, 2) }, .axis = 0, .correction = 1,
                             .transposed = { true } },
                  SEED + 35 + (uint64_t)j);
        /* contiguous rows of 8: the vec4 path of softmax and log_softmax (in registers on a CPU
         * device); rows of 264 take its loops */
        gradcheck((nn_case){ .op = ops[j], .nin = 1, .shape = { VKG_SHAPE(3, 8) }, .axis = 1, .correction = 1 },
                  SEED + 40 + (uint64_t)j);
        if (j < 2)
            gradcheck((nn_case){ .op = ops[j], .nin = 1, .shape = { VKG_SHAPE(16, 264) }, .axis = 1 },
                      SEED + 45 + (uint64_t)j);
    }
    /* NaN wins the vec4 path's max whichever lane holds it; -inf entries give 0 */
    vkg_scope_begin();
    float v[16] = { 1, 2, 3, 4, 5, NAN, 7, 8, -INFINITY, 0, 1, -INFINITY, 2, 2, 2, 2 };
    float *y = vkgt_read(vkg_softmax(vkg_from_data(VKG_SHAPE(2, 8), v), 1));
    for (int i = 0; i < 8; i++) cr_assert(isnan(y[i]), "softmax of a row with NaN: y[%d] = %g", i, (double)y[i]);
    cr_assert(y[8] == 0.0f && y[11] == 0.0f && y[9] > 0.0f, "-inf gives 0: %g %g", (double)y[8], (double)y[11]);
    free(y);
    vkg_scope_end();
}

VKG_TEST(nn_ops, losses_gradcheck) {
    for (int r = 0; r < 3; r++) {
        vkg_reduction red = (vkg_reduction)r;
        for (int op = 0; op < 2; op++) {
            vkg_op o = op ? VKG_OP_NLL_LOSS : VKG_OP_CROSS_ENTROPY;
            gradcheck((nn_case){ .op = o, .nin = 2, .shape = { VKG_SHAPE(9, 5), VKG_SHAPE(9) }, .reduction = red },
                      SEED + 40 + (uint64_t)(r * 2 + op));
            gradcheck((nn_case){ .op = o, .nin = 2, .shape = { VKG_SHAPE(6, 4), VKG_SHAPE(6) }, .transposed = { true },
                                 .reduction = red, .has_ignore = true, .ignore = 1 },
                      SEED + 50 + (uint64_t)(r * 2 + op));
            gradcheck((nn_case){ .op = o, .nin = 2, .shape = { VKG_SHAPE(7, 8), VKG_SHAPE(7) }, .reduction = red,
                                 .has_ignore = true, .ignore = 2 },
                      SEED + 56 + (uint64_t)(r * 2 + op));
        }
        gradcheck((nn_case){ .op = VKG_OP_MSE_LOSS, .nin = 2, .shape = { VKG_SHAPE(5, 7), VKG_SHAPE(5, 7) },
                             .transposed = { true, false }, .reduction = red },
                  SEED + 60 + (uint64_t)r);
        gradcheck((nn_case){ .op = VKG_OP_BCE_WITH_LOGITS, .nin = 2, .shape = { VKG_SHAPE(5, 7), VKG_SHAPE(5, 7) },
                             .transposed = { false, true }, .reduction = red },
                  SEED + 70 + (uint64_t)r);
    }
}

VKG_TEST(nn_ops, layer_norm_gradcheck) {
    for (int v = 0; v < 4; v++) {
        bool hw = v & 1, hb = v & 2;
        nn_case c = { .op = VKG_OP_LAYER_NORM, .nin = 1 + hw + hb, .shape = { VKG_SHAPE(4, 7) }, .has_w = hw, .has_b = hb,
                      .transposed = { v == 3 } };
        for (int i = 1; i < c.nin; i++) c.shape[i] = VKG_SHAPE(7);
        gradcheck(c, SEED + 80 + (uint64_t)v);
    }
    gradcheck((nn_case){ .op = VKG_OP_LAYER_NORM, .nin = 3, .shape = { VKG_SHAPE(2, 3, 5), VKG_SHAPE(5), VKG_SHAPE(5) },
                         .has_w = true, .has_b = true },
              SEED + 90);
    gradcheck((nn_case){ .op = VKG_OP_LAYER_NORM, .nin = 3, .shape = { VKG_SHAPE(3, 8), VKG_SHAPE(8), VKG_SHAPE(8) },
                         .has_w = true, .has_b = true },
              SEED + 91);
}

/* A pre-LN residual block, y = h + layer_norm(h): h's gradient from the residual path is added
 * by the layer norm's backward kernel as it stores dx (lib/autograd/backward_nn.c), so
 * dh = dy + the layer's own dx; against the reference, rows of 12 (vec4, in registers on a CPU
 * device), 264 (vec4, read in loops) and 7 (scalar). */
VKG_TEST(nn_ops, layer_norm_in_a_residual_block) {
    const int dims[3] = { 12, 264, 7 };
    for (int k = 0; k < 3; k++) {
        vkg_scope_begin();
        int R = 5, D = dims[k];
        float *x = rnd(R * D, -3, 5, SEED + 100 + (uint64_t)k), *pw = rnd(D, 0.5f, 2, SEED + 102);
        float *dy = rnd(R * D, -1, 1, SEED + 103 + (uint64_t)k);
        vkg_tensor *x0 = vkg_requires_grad(vkg_from_data(VKG_SHAPE(R, D), x), true);
        vkg_tensor *h = vkg_mul(x0, vkg_full(VKG_SHAPE(1), 1.0f)); /* inside the graph, as a block's input is */
        vkg_tensor *y = vkg_add(h, vkg_layer_norm(h, vkg_from_data(VKG_SHAPE(D), pw), NULL, VKG_LAYER_NORM_EPS));
        cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = vkg_from_data(VKG_SHAPE(R, D), dy) }),
                     VKG_OK, "%s", vkg_last_error());
        double *xd = malloc((size_t)(R * D) * sizeof *xd), *dyd = malloc((size_t)(R * D) * sizeof *dyd);
        double *dx = calloc((size_t)(R * D), sizeof *dx), wd[264];
        for (int i = 0; i < R * D; i++) xd[i] = x[i], dyd[i] = dy[i];
        for (int d = 0; d < D; d++) wd[d] = pw[d];
        vkg_ref_layer_norm_backward_f64(dx, NULL, NULL, xd, wd, R, D, 1e-5, dyd);
        float *got = vkgt_read(vkg_grad(x0));
        for (int i = 0; i < R * D; i++) {
            double want = dyd[i] + dx[i];
            cr_assert(fabs(got[i] - want) <= 1e-4 + 1e-4 * fabs(want), "D %d: dx[%d] = %g, want %g", D, i,
                      (double)got[i], want);
        }
        free(got), free(xd), free(dyd), free(dx), free(x), free(pw), free(dy);
        vkg_scope_end();
    }
}

/* Many rows: dw and db are summed in chunks of rows (lib/ops/layer_norm.c) and come out as
 * tensors of their own; both against the reference. */
VKG_TEST(nn_ops, layer_norm_weight_gradients_over_many_rows) {
    vkg_scope_begin();
    enum { R = 257, D = 12 };
    float *x = rnd(R * D, -3, 5, SEED + 95), *pw = rnd(D, 0.5f, 2, SEED + 96), *pb = rnd(D, -1, 1, SEED + 97);
    float *dy = rnd(R * D, -1, 1, SEED + 98);
    vkg_tensor *w = vkg_requires_grad(vkg_from_data(VKG_SHAPE(D), pw), true);
    vkg_tensor *b = vkg_requires_grad(vkg_from_data(VKG_SHAPE(D), pb), true);
    vkg_tensor *y = vkg_layer_norm(vkg_from_data(VKG_SHAPE(R, D), x), w, b, VKG_LAYER_NORM_EPS);
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = vkg_from_data(VKG_SHAPE(R, D), dy) }),
                 VKG_OK, "%s", vkg_last_error());
    double *xd = malloc(R * D * sizeof *xd), *dyd = malloc(R * D * sizeof *dyd), wd[D], dw[D] = { 0 }, db[D] = { 0 };
    for (int i = 0; i < R * D; i++) xd[i] = x[i], dyd[i] = dy[i];
    for (int d = 0; d < D; d++) wd[d] = pw[d];
    vkg_ref_layer_norm_backward_f64(NULL, dw, db, xd, wd, R, D, 1e-5, dyd);
    float *gw = vkgt_read(vkg_grad(w)), *gb = vkgt_read(vkg_grad(b));
    for (int d = 0; d < D; d++) {
        cr_assert(fabs(gw[d] - dw[d]) <= 1e-3 + 1e-4 * fabs(dw[d]), "dw[%d] = %g, want %g", d, (double)gw[d], dw[d]);
        cr_assert(fabs(gb[d] - db[d]) <= 1e-3 + 1e-4 * fabs(db[d]), "db[%d] = %g, want %g", d, (double)gb[d], db[d]);
    }
    free(gw);
    free(gb);
    free(xd);
    free(dyd);
    free(x);
    free(pw);
    free(pb);
    free(dy);
    vkg_scope_end();
}

/* Rows that are views: a column window of a wider tensor, starting at a multiple of 4 floats
 * (the vec4 path) and not (the scalar one), with w and b views as well; forward and backward
 * against the reference on the same values. */
VKG_TEST(nn_ops, layer_norm_of_column_windows) {
    vkg_scope_begin();
    enum { R = 5, W = 20, D = 12 };
    float *all = rnd(R * W, -3, 5, SEED + 92), *pw = rnd(W, 0.5f, 2, SEED + 93), *pb = rnd(W, -1, 1, SEED + 94);
    for (int start = 2; start <= 4; start += 2) {
        float x[R * D], want[R * D], dy[R * D];
        for (int i = 0; i < R; i++)
            for (int d = 0; d < D; d++) {
                x[i * D + d] = all[i * W + start + d];
                dy[i * D + d] = 0.1f * (float)(i - d);
            }
        vkg_ref_layer_norm(want, NULL, NULL, x, pw + start, pb + start, R, D, 1e-5f);
        vkg_tensor *xt = vkg_requires_grad(vkg_from_data(VKG_SHAPE(R, W), all), true);
        vkg_tensor *wt = vkg_from_data(VKG_SHAPE(W), pw), *bt = vkg_from_data(VKG_SHAPE(W), pb);
        vkg_tensor *y = vkg_layer_norm(vkg_narrow(xt, 1, start, D), vkg_narrow(wt, 0, start, D), vkg_narrow(bt, 0, start, D),
                                       VKG_LAYER_NORM_EPS);
        expect_close(y, want, R * D, 1e-4f, 2e-5f, "layer_norm of a column window");
        cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = vkg_from_data(VKG_SHAPE(R, D), dy) }),
                     VKG_OK, "%s", vkg_last_error());
        double xd[R * D], dyd[R * D], wd[D], dxd[R * D] = { 0 };
        for (int i = 0; i < R * D; i++) xd[i] = x[i], dyd[i] = dy[i];
        for (int d = 0; d < D; d++) wd[d] = pw[start + d];
        vkg_ref_layer_norm_backward_f64(dxd, NULL, NULL, xd, wd, R, D, 1e-5, dyd);
        float *g = vkgt_read(vkg_grad(xt));
        for (int i = 0; i < R; i++)
            for (int d = 0; d < W; d++) {
                float got = g[i * W + d];
                float exp = d >= start && d < start + D ? (float)dxd[i * D + d - start] : 0.0f;
                cr_assert(fabsf(got - exp) <= 1e-4f + 1e-4f * fabsf(exp), "dx[%d][%d] = %g, want %g (start %d)", i, d,
                          (double)got, (double)exp, start);
            }
        free(g);
    }
    free(all);
    free(pw);
    free(pb);
    vkg_scope_end();
}

/* Runs in its own process: repeats one small check per op, so that every differentiable nn op
 * of the table is seen to be gradchecked by this file. */
VKG_TEST(nn_ops, every_nn_op_is_gradchecked) {
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_NN || !vkg_op_table[op].has_backward) continue;
        nn_case c = { .op = op, .nin = 1, .shape = { VKG_SHAPE(3, 4) }, .axis = 1, .lo = -0.5f, .hi = 0.5f, .p = 0.5f };
        if (op == VKG_OP_MASKED_FILL || op == VKG_OP_MSE_LOSS || op == VKG_OP_BCE_WITH_LOGITS) {
            c.nin = 2;
            c.shape[1] = VKG_SHAPE(3, 4);
        }
        if (op == VKG_OP_CROSS_ENTROPY || op == VKG_OP_NLL_LOSS) {
            c.nin = 2;
            c.shape[1] = VKG_SHAPE(3);
        }
        gradcheck(c, SEED + 100 + (uint64_t)op);
    }
    for (int op = 0; op < VKG_OP_COUNT; op++)
        if (vkg_op_table[op].kind == VKG_KIND_NN)
            cr_assert(gradchecked[op] || !vkg_op_table[op].has_backward, "%s is not gradchecked", vkg_op_table[op].name);
}

/* ---- refusals and NULL ------------------------------------------------------------------------ */
VKG_TEST(nn_ops, bad_inputs_are_refused) {
    vkg_scope_begin();
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(4, 5)), *t4 = vkg_zeros(VKG_SHAPE(4));
    vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(4), VKG_I32, (int32_t[]){ 0, 1, 2, 3 });
    vkg_tensor *xi = vkg_empty_dtype(VKG_SHAPE(4, 5), VKG_I32);
    /* losses: wrong target shape, dtype, logits rank, reduction */
    expect_error(vkg_cross_entropy(x, vkg_from_data_dtype(VKG_SHAPE(5), VKG_I32, (int32_t[]){ 0, 0, 0, 0, 0 }), NULL),
                 "cross_entropy target (5,)", "vkg_cross_entropy", "target must be (4,), but it is (5,) i32");
    expect_error(vkg_cross_entropy(x, vkg_reshape(ti, VKG_SHAPE(4, 1)), NULL), "cross_entropy target (4, 1)",
                 "target must be (4,)", "(4, 1)");
    expect_error(vkg_cross_entropy(x, t4, NULL), "cross_entropy f32 target", "vkg_cross_entropy: target is (4,) f32",
                 "must be i32");
    expect_error(vkg_cross_entropy(vkg_zeros(VKG_SHAPE(2, 2, 2)), ti, NULL), "cross_entropy 3-d logits",
                 "logits is (2, 2, 2) f32", "(N, C)");
    expect_error(vkg_cross_entropy(x, ti, &(vkg_loss_desc){ .reduction = (vkg_reduction)7 }), "bad reduction",
                 "vkg_cross_entropy: reduction 7", NULL);
    expect_error(vkg_nll_loss(x, vkg_zeros(VKG_SHAPE(4)), NULL), "nll_loss f32 target", "vkg_nll_loss", "must be i32");
    expect_error(vkg_nll_loss(x, vkg_from_data_dtype(VKG_SHAPE(3), VKG_I32, (int32_t[]){ 0, 0, 0 }), NULL),
                 "nll_loss target (3,)", "vkg_nll_loss: log_probs is (4, 5) f32", "target must be (4,)");
    expect_error(vkg_mse_loss(x, vkg_zeros(VKG_SHAPE(4, 1)), VKG_REDUCTION_MEAN), "mse_loss target (4, 1)",
                 "vkg_mse_loss: input is (4, 5) f32 but target is (4, 1) f32", "same shape");
    expect_error(vkg_mse_loss(x, xi, VKG_REDUCTION_MEAN), "mse_loss i32 target", "vkg_mse_loss: target", "f32");
    expect_error(vkg_binary_cross_entropy_with_logits(x, vkg_zeros(VKG_SHAPE(5, 4)), VKG_REDUCTION_SUM),
                 "bce target (5, 4)", "vkg_binary_cross_entropy_with_logits: logits is (4, 5) f32", "(5, 4)");
    expect_error(vkg_binary_cross_entropy_with_logits(x, x, (vkg_reduction)-1), "bce reduction", "reduction -1", NULL);
    /* axes and dtypes */
    expect_error(vkg_softmax(x, 2), "softmax axis 2", "vkg_softmax: axis 2 is out of range for shape (4, 5)", NULL);
    expect_error(vkg_log_softmax(x, -3), "log_softmax axis -3", "vkg_log_softmax: axis -3", NULL);
    expect_error(vkg_logsumexp(x, 5, false), "logsumexp axis 5", "vkg_logsumexp: axis 5", NULL);
    expect_error(vkg_var(x, 2, false, 1), "var axis 2", "vkg_var: axis 2", NULL);
    expect_error(vkg_std(vkg_scalar(1.0f), 0, false, 1), "std of a 0-d tensor", "vkg_std: axis 0", "()");
    expect_error(vkg_softmax(xi, 1), "softmax i32", "vkg_softmax: x is (4, 5) i32", "f32");
    expect_error(vkg_clamp(xi, 0, 1), "clamp i32", "vkg_clamp: x is (4, 5) i32", NULL);
    /* layer_norm parameters */
    expect_error(vkg_layer_norm(x, vkg_ones(VKG_SHAPE(4)), NULL, 1e-5f), "layer_norm weight (4,)",
                 "vkg_layer_norm: x is (4, 5) f32, so weight must be (5,), but it is (4,) f32", NULL);
    expect_error(vkg_layer_norm(x, NULL, vkg_zeros(VKG_SHAPE(1, 5)), 1e-5f), "layer_norm bias (1, 5)",
                 "bias must be (5,), but it is (1, 5)", NULL);
    expect_error(vkg_layer_norm(x, NULL, NULL, -1.0f), "layer_norm eps", "vkg_layer_norm: eps = -1", NULL);
    expect_error(vkg_layer_norm(vkg_scalar(1.0f), NULL, NULL, 1e-5f), "layer_norm 0-d", "vkg_layer_norm: x is ()", NULL);
    /* dropout p, clamp bounds, masked_fill mask */
    expect_error(vkg_dropout(x, 1.0f, true, NULL), "dropout p 1", "vkg_dropout: p = 1 is outside [0, 1)", NULL);
    expect_error(vkg_dropout(x, -0.1f, true, NULL), "dropout p -0.1", "vkg_dropout: p = -0.1", NULL);
    expect_error(vkg_dropout(x, NAN, false, NULL), "dropout p NaN", "vkg_dropout: p = nan", NULL);
    expect_error(vkg_clamp(x, NAN, 1), "clamp NaN", "vkg_clamp: the bounds nan and 1", NULL);
    expect_error(vkg_masked_fill(x, vkg_ones(VKG_SHAPE(4)), 0), "masked_fill mask (4,)",
                 "vkg_masked_fill: mask (4,) does not broadcast to x (4, 5)", NULL);
    expect_error(vkg_masked_fill(x, vkg_ones(VKG_SHAPE(2, 4, 5)), 0), "masked_fill mask (2, 4, 5)",
                 "mask (2, 4, 5) does not broadcast to x (4, 5)", NULL);
    expect_error(vkg_masked_fill(x, vkg_empty_dtype(VKG_SHAPE(5), VKG_I32), 0), "masked_fill i32 mask",
                 "vkg_masked_fill: mask is (5,) i32", NULL);
    vkg_scope_end();
}

VKG_TEST(nn_ops, null_in_null_out) {
    vkg_scope_begin();
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(2, 3));
    vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(2), VKG_I32, (int32_t[]){ 0, 1 });
    vkg_clear_error();
    cr_assert_null(vkg_clamp(NULL, 0, 1));
    cr_assert_null(vkg_masked_fill(NULL, x, 0));
    cr_assert_null(vkg_masked_fill(x, NULL, 0));
    cr_assert_null(vkg_dropout(NULL, 0.5f, true, NULL));
    cr_assert_null(vkg_dropout(NULL, 0.5f, false, NULL));
    cr_assert_null(vkg_softmax(NULL, 0));
    cr_assert_null(vkg_log_softmax(NULL, 0));
    cr_assert_null(vkg_logsumexp(NULL, 0, true));
    cr_assert_null(vkg_var(NULL, 0, false, 1));
    cr_assert_null(vkg_std(NULL, 0, false, 1));
    cr_assert_null(vkg_cross_entropy(NULL, ti, NULL));
    cr_assert_null(vkg_cross_entropy(x, NULL, NULL));
    cr_assert_null(vkg_nll_loss(NULL, ti, NULL));
    cr_assert_null(vkg_nll_loss(x, NULL, NULL));
    cr_assert_null(vkg_mse_loss(NULL, x, VKG_REDUCTION_MEAN));
    cr_assert_null(vkg_mse_loss(x, NULL, VKG_REDUCTION_MEAN));
    cr_assert_null(vkg_binary_cross_entropy_with_logits(NULL, x, VKG_REDUCTION_MEAN));
    cr_assert_null(vkg_binary_cross_entropy_with_logits(x, NULL, VKG_REDUCTION_MEAN));
    cr_assert_null(vkg_layer_norm(NULL, x, x, 1e-5f));
    cr_assert_eq(vkg_last_status(), VKG_OK, "a NULL input sets no message: %s", vkg_last_error());
    vkg_scope_end();
}

VKG_TEST(nn_ops, training_step_through_several_nn_ops) {
    /* a tiny classifier: layer_norm -> dropout -> matmul -> cross_entropy; gradients flow into
     * the norm's parameters and a weight used by two losses accumulates */
    vkg_tensor *g = vkg_keep(vkg_requires_grad(vkg_ones(VKG_SHAPE(6)), true));
    vkg_tensor *w = vkg_keep(vkg_requires_grad(vkg_randn(VKG_SHAPE(6, 3), &(vkg_rand_desc){ .seed = 9 }), true));
    vkg_scope_begin();
    vkg_tensor *x = vkg_randn(VKG_SHAPE(5, 6), &(vkg_rand_desc){ .seed = 10 });
    vkg_tensor *h = vkg_dropout(vkg_layer_norm(x, g, NULL, VKG_LAYER_NORM_EPS), 0.2f, true, &(vkg_rand_desc){ .seed = 3 });
    vkg_tensor *logits = vkg_matmul(h, w);
    vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(5), VKG_I32, (int32_t[]){ 0, 2, 1, -100, 2 });
    vkg_tensor *loss = vkg_add(vkg_cross_entropy(logits, ti, NULL), vkg_mse_loss(vkg_softmax(logits, 1),
                                                                                  vkg_zeros(VKG_SHAPE(5, 3)), VKG_REDUCTION_SUM));
    cr_assert_not_null(loss, "%s", vkg_last_error());
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    float *gg = vkgt_read(vkg_grad(g)), *gw = vkgt_read(vkg_grad(w));
    for (int i = 0; i < 6; i++) cr_assert(isfinite(gg[i]));
    for (int i = 0; i < 18; i++) cr_assert(isfinite(gw[i]));
    free(gg);
    free(gw);
    vkg_scope_end();
}

VKG_TEST(nn_ops, empty_tensors) {
    vkg_scope_begin();
    cr_assert_eq(vkg_numel(vkg_softmax(vkg_zeros(VKG_SHAPE(0, 5)), 1)), 0);
    cr_assert_eq(vkg_numel(vkg_clamp(vkg_zeros(VKG_SHAPE(0)), 0, 1)), 0);
    cr_assert_eq(vkg_numel(vkg_dropout(vkg_empty(VKG_SHAPE(3, 0)), 0.5f, true, NULL)), 0);
    cr_assert_eq(vkg_numel(vkg_layer_norm(vkg_zeros(VKG_SHAPE(0, 4)), vkg_ones(VKG_SHAPE(4)), NULL, 1e-5f)), 0);
    float *l = vkgt_read(vkg_logsumexp(vkg_empty(VKG_SHAPE(3, 0)), 1, false)); /* PyTorch: -inf */
    for (int i = 0; i < 3; i++) cr_assert_eq(l[i], -INFINITY);
    free(l);
    cr_assert(isnan(vkg_item(vkg_var(vkg_zeros(VKG_SHAPE(0)), 0, false, 1))));
    /* no samples: the sum is 0, the mean 0 / 0 = NaN (PyTorch) */
    vkg_tensor *x0 = vkg_zeros(VKG_SHAPE(0, 3)), *t0 = vkg_empty_dtype(VKG_SHAPE(0), VKG_I32);
    cr_assert_eq(vkg_item(vkg_cross_entropy(x0, t0, &(vkg_loss_desc){ .reduction = VKG_REDUCTION_SUM })), 0.0f);
    cr_assert(isnan(vkg_item(vkg_cross_entropy(x0, t0, NULL))));
    cr_assert(isnan(vkg_item(vkg_mse_loss(vkg_zeros(VKG_SHAPE(0)), vkg_zeros(VKG_SHAPE(0)), VKG_REDUCTION_MEAN))));
    vkg_scope_end();
}
