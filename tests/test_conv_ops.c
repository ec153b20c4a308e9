/* Tests of the conv group (conv2d, max_pool2d, avg_pool2d, batch_norm): forward against the C
 * reference on odd shapes (not multiples of the workgroup size or of the kernels' register
 * blocks), strides, padding, dilation, groups, 1x1 kernels, transposed inputs and the CNN
 * reference model's shapes; the shared gradient check on small shapes; the bad inputs each op
 * refuses, with their messages; NULL propagation; reproducibility. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

#define SEED 9301u

/* A tensor of shape s filled from a seed; transposed: the same values read through a
 * transposed view (last two dims) of a tensor stored the other way. host gets the values. */
static vkg_tensor *make(vkg_shape s, uint64_t seed, bool transposed, float **host) {
    size_t n = (size_t)vkg_shape_numel(s);
    float *v = malloc((n + 1) * sizeof *v);
    vkgt_fill(v, n, -1.0f, 1.0f, seed);
    vkg_tensor *t;
    if (transposed) {
        vkg_shape st = s;
        st.d[s.ndim - 2] = s.d[s.ndim - 1];
        st.d[s.ndim - 1] = s.d[s.ndim - 2];
        t = vkg_transpose(vkg_from_data(st, v), -1, -2); /* values: the transpose of v */
        cr_assert_not_null(t);
        cr_assert(!vkg_is_contiguous(t));
        free(v);
        v = vkgt_read(t);
    } else {
        t = vkg_from_data(s, v);
    }
    cr_assert_not_null(t, "%s", vkg_last_error());
    *host = v;
    return t;
}

/* ---- conv2d forward --------------------------------------------------------------------------- */
typedef struct conv_case {
    int64_t N, C, H, W, K, kh, kw;
    vkg_conv2d_desc d;
    bool bias, transposed;
} conv_case;

static void check_conv(const conv_case *c, uint64_t seed) {
    vkg_scope_begin();
    int G = c->d.groups ? c->d.groups : 1;
    vkg_shape xs = VKG_SHAPE(c->N, c->C, c->H, c->W), ws = VKG_SHAPE(c->K, c->C / G, c->kh, c->kw);
    float *xh, *wh, *bh = NULL;
    vkg_tensor *x = make(xs, seed, c->transposed, &xh), *w = make(ws, seed + 1, false, &wh);
    vkg_tensor *b = c->bias ? make(VKG_SHAPE(c->K), seed + 2, false, &bh) : NULL;
    vkg_tensor *y = vkg_conv2d(x, w, b, &c->d);
    cr_assert_not_null(y, "%s", vkg_last_error());
    const char *forced = getenv("VKG_CONV_VARIANT");
    /* the rule: groups go direct, and everything when forced; the rest is an implicit GEMM on
     * CPU devices (or when forced) where x's rows are contiguous, else im2col */
    bool direct = G > 1 || (forced && strcmp(forced, "direct") == 0);
    bool implicit = forced ? strcmp(forced, "implicit") == 0 : vkg_device()->type == VKG_DEVICE_CPU;
    bool im2col = c->transposed || !implicit;
    cr_assert_str_eq(vkg_conv2d_variant_last(), direct ? "direct4x4" : im2col ? "im2col+matmul" : "implicit-gemm");
    vkg_shape ys = vkg_tensor_shape(y);
    size_t ny = (size_t)vkg_shape_numel(ys);
    float *want = malloc((ny + 1) * sizeof *want), *got = vkgt_read(y);
    vkg_ref_conv2d(want, xh, xs, wh, ws, bh, &c->d);
    char what[128], sh[64];
    snprintf(what, sizeof what, "conv2d x %s K %lld seed %llu", vkg_shape_str(xs, sh, sizeof sh), (long long)c->K,
             (unsigned long long)seed);
    vkgt_assert_close(got, want, ny, 1e-4f, 1e-4f, what);
    free(xh), free(wh), free(bh), free(want), free(got);
    vkg_scope_end();
}

VKG_TEST(conv_ops, conv2d_against_reference) {
    const conv_case cases[] = {
        /* the odd shape: stride 2, padding 1, dilation 2 */
        { 2, 3, 7, 9, 5, 3, 3, { .stride = { 2, 2 }, .padding = { 1, 1 }, .dilation = { 2, 2 } }, true, false },
        /* groups = C_in, C_out a multiple (depthwise x 2) */
        { 2, 3, 7, 9, 6, 3, 3, { .stride = { 2, 2 }, .padding = { 1, 1 }, .dilation = { 2, 2 }, .groups = 3 }, false, false },
        { 2, 4, 8, 5, 8, 3, 3, { .padding = { 1, 1 }, .groups = 4 }, true, true },
        /* 1x1 kernels; channels that are not multiples of the register block */
        { 2, 5, 5, 6, 7, 1, 1, { .groups = 1 }, true, false },
        { 1, 3, 6, 7, 3, 1, 1, { .stride = { 2, 3 } }, false, true },
        /* asymmetric everything, groups of 3 output channels */
        { 3, 4, 6, 11, 6, 2, 3, { .stride = { 1, 2 }, .padding = { 0, 1 }, .dilation = { 2, 1 }, .groups = 2 }, true, false },
        /* transposed x, "same" 3x3 */
        { 1, 2, 6, 5, 3, 3, 3, { .padding = { 1, 1 } }, true, true },
        /* kernel as large as the padded input: one output pixel */
        { 1, 2, 3, 4, 2, 5, 6, { .padding = { 1, 1 } }, true, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_conv(&cases[i], SEED + 10 * i);
}

VKG_TEST(conv_ops, conv2d_cnn_model_shapes) {
    /* the CNN reference model at batch 2: conv 1->32 3x3 pad 1 on 28x28, max-pool 2,
     * conv 32->64 3x3 pad 1 on 14x14 */
    check_conv(&(conv_case){ 2, 1, 28, 28, 32, 3, 3, { .padding = { 1, 1 } }, true, false }, SEED);
    check_conv(&(conv_case){ 2, 32, 14, 14, 64, 3, 3, { .padding = { 1, 1 } }, true, false }, SEED + 1);
    vkg_scope_begin();
    float *xh;
    vkg_shape xs = VKG_SHAPE(2, 32, 28, 28);
    vkg_tensor *x = make(xs, SEED + 2, false, &xh);
    vkg_tensor *idx = NULL;
    vkg_tensor *y = vkg_max_pool2d_with_indices(x, &(vkg_pool2d_desc){ .kernel = { 2, 2 } }, &idx);
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_assert_not_null(idx);
    cr_assert_eq(vkg_tensor_dtype(idx), VKG_I32);
    size_t ny = 2 * 32 * 14 * 14;
    float *want = malloc(ny * sizeof *want), *got = vkgt_read(y);
    int32_t *wi = malloc(ny * sizeof *wi), *gi = malloc(ny * sizeof *gi);
    vkg_ref_max_pool2d(want, wi, xh, xs, &(vkg_pool2d_desc){ .kernel = { 2, 2 } });
    cr_assert_eq(vkg_tensor_read(idx, gi, ny * sizeof *gi), VKG_OK);
    cr_assert_eq(memcmp(got, want, ny * sizeof *got), 0, "max pooling is exact");
    cr_assert_eq(memcmp(gi, wi, ny * sizeof *gi), 0, "argmax indices");
    free(xh), free(want), free(got), free(wi), free(gi);
    vkg_scope_end();
}

/* ---- pooling forward ---------------------------------------------------------------------------- */
static void check_pool(vkg_op op, vkg_shape xs, vkg_pool2d_desc d, bool transposed, uint64_t seed) {
    vkg_scope_begin();
    float *xh;
    vkg_tensor *x = make(xs, seed, transposed, &xh), *idx = NULL;
    vkg_tensor *y = op == VKG_OP_MAX_POOL2D ? vkg_max_pool2d_with_indices(x, &d, &idx) : vkg_avg_pool2d(x, &d);
    cr_assert_not_null(y, "%s", vkg_last_error());
    size_t ny = (size_t)vkg_numel(y);
    float *want = malloc((ny + 1) * sizeof *want), *got = vkgt_read(y);
    int32_t *wi = malloc((ny + 1) * sizeof *wi), *gi = malloc((ny + 1) * sizeof *gi);
    char what[128], sh[64];
    snprintf(what, sizeof what, "%s x %s%s", vkg_op_table[op].name, vkg_shape_str(xs, sh, sizeof sh),
             transposed ? " transposed" : "");
    if (op == VKG_OP_MAX_POOL2D) {
        vkg_ref_max_pool2d(want, wi, xh, xs, &d);
        cr_assert_eq(vkg_tensor_read(idx, gi, ny * sizeof *gi), VKG_OK);
        for (size_t i = 0; i < ny; i++) cr_assert_eq(gi[i], wi[i], "%s: index %zu: %d, want %d", what, i, gi[i], wi[i]);
    } else {
        vkg_ref_avg_pool2d(want, xh, xs, &d);
    }
    vkgt_assert_close(got, want, ny, 1e-6f, 1e-6f, what);
    free(xh), free(want), free(got), free(wi), free(gi);
    vkg_scope_end();
}

VKG_TEST(conv_ops, pool2d_against_reference) {
    for (int k = 0; k < 2; k++) {
        vkg_op op = k ? VKG_OP_AVG_POOL2D : VKG_OP_MAX_POOL2D;
        check_pool(op, VKG_SHAPE(2, 3, 7, 9), (vkg_pool2d_desc){ .kernel = { 3, 3 }, .stride = { 2, 2 }, .padding = { 1, 1 } },
                   false, SEED + 1);
        check_pool(op, VKG_SHAPE(2, 3, 7, 9), (vkg_pool2d_desc){ .kernel = { 2, 3 }, .padding = { 1, 1 } }, true, SEED + 2);
        check_pool(op, VKG_SHAPE(1, 5, 13, 6), (vkg_pool2d_desc){ .kernel = { 2, 2 } }, false, SEED + 3);
        check_pool(op, VKG_SHAPE(3, 2, 5, 5), (vkg_pool2d_desc){ .kernel = { 5, 5 }, .stride = { 1, 1 }, .padding = { 2, 1 } },
                   false, SEED + 4);
        check_pool(op, VKG_SHAPE(2, 2, 8, 7), (vkg_pool2d_desc){ .kernel = { 3, 2 }, .stride = { 1, 3 } }, false, SEED + 5);
    }
}

/* .relu: relu(max_pool2d(x)) in one pass. Against the reference (which applies the floor after
 * the window max), on the shapes of pool2d_against_reference, including the pairs-of-columns
 * path and the CNN's; inputs in [-1, 1], so that some windows are all negative (floor: value 0,
 * index -1) and the rest keep their max and argmax; and against the unfused relu of max_pool2d,
 * bitwise. */
VKG_TEST(conv_ops, max_pool2d_relu_against_reference) {
    const struct { vkg_shape xs; vkg_pool2d_desc d; bool transposed; } cases[] = {
        { VKG_SHAPE(2, 3, 7, 9), { .kernel = { 3, 3 }, .stride = { 2, 2 }, .padding = { 1, 1 }, .relu = true }, false },
        { VKG_SHAPE(2, 3, 7, 9), { .kernel = { 2, 3 }, .padding = { 1, 1 }, .relu = true }, true },
        { VKG_SHAPE(1, 5, 13, 6), { .kernel = { 2, 2 }, .relu = true }, false },
        { VKG_SHAPE(3, 2, 5, 5), { .kernel = { 5, 5 }, .stride = { 1, 1 }, .padding = { 2, 1 }, .relu = true }, false },
        { VKG_SHAPE(2, 32, 28, 28), { .kernel = { 2, 2 }, .relu = true }, false },
    };
    int floors = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        check_pool(VKG_OP_MAX_POOL2D, cases[k].xs, cases[k].d, cases[k].transposed, SEED + 20 + k);
        vkg_scope_begin();
        float *xh;
        vkg_tensor *x = make(cases[k].xs, SEED + 20 + k, cases[k].transposed, &xh), *idx = NULL;
        vkg_pool2d_desc plain = cases[k].d;
        plain.relu = false;
        float *got = vkgt_read(vkg_max_pool2d_with_indices(x, &cases[k].d, &idx));
        float *unfused = vkgt_read(vkg_relu(vkg_max_pool2d(x, &plain)));
        size_t n = (size_t)vkg_numel(idx);
        int32_t *gi = malloc(n * sizeof *gi);
        cr_assert_eq(vkg_tensor_read(idx, gi, n * sizeof *gi), VKG_OK);
        for (size_t i = 0; i < n; i++) {
            cr_assert(got[i] == unfused[i], "case %zu element %zu: %g fused, %g unfused", k, i, got[i], unfused[i]);
            cr_assert_eq(gi[i] < 0, got[i] == 0.0f, "case %zu element %zu: %g with index %d", k, i, got[i], gi[i]);
            floors += gi[i] < 0;
        }
        free(xh), free(got), free(unfused), free(gi);
        vkg_scope_end();
    }
    cr_assert(floors > 0, "no window was all negative: the floor went untested");
}

VKG_TEST(conv_ops, max_pool2d_ties_take_the_first_index) {
    float x[16] = { 0 };
    x[5] = x[6] = 2.0f; /* a tie inside the windows at (0, 1) via the stride-1 pool below */
    vkg_tensor *t = vkg_from_data(VKG_SHAPE(1, 1, 4, 4), x), *idx = NULL;
    cr_assert_not_null(vkg_max_pool2d_with_indices(t, &(vkg_pool2d_desc){ .kernel = { 2, 2 } }, &idx));
    int32_t got[4];
    cr_assert_eq(vkg_tensor_read(idx, got, sizeof got), VKG_OK);
    const int32_t want[4] = { 5, 6, 8, 10 }; /* all-zero windows: their first element */
    for (int i = 0; i < 4; i++) cr_assert_eq(got[i], want[i], "window %d: %d, want %d", i, got[i], want[i]);
    /* stride 1: the window over (1..2, 1..2) holds the tie 5, 6: the first wins, and backward
     * routes the whole gradient there */
    vkg_requires_grad(t, true);
    vkg_tensor *y = vkg_max_pool2d_with_indices(t, &(vkg_pool2d_desc){ .kernel = { 2, 2 }, .stride = { 1, 1 } }, &idx);
    cr_assert_not_null(y);
    int32_t g9[9];
    cr_assert_eq(vkg_tensor_read(idx, g9, sizeof g9), VKG_OK);
    cr_assert_eq(g9[4], 5);
    cr_assert_eq(vkg_backward(vkg_sum_all(y)), VKG_OK, "%s", vkg_last_error());
    float *g = vkgt_read(vkg_grad(t));
    /* each window's gradient goes to its argmax, as the reference picks it */
    float want_g[16] = { 0 };
    float y_ref[9];
    int32_t i_ref[9];
    vkg_ref_max_pool2d(y_ref, i_ref, x, VKG_SHAPE(1, 1, 4, 4), &(vkg_pool2d_desc){ .kernel = { 2, 2 }, .stride = { 1, 1 } });
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(g9[i], i_ref[i]);
        want_g[i_ref[i]] += 1.0f;
    }
    for (int i = 0; i < 16; i++) cr_assert_eq(g[i], want_g[i], "dx[%d] = %g, want %g", i, g[i], want_g[i]);
    free(g);
}

/* ---- batch_norm forward --------------------------------------------------------------------------- */
static void check_bn(vkg_shape xs, bool train, bool affine, bool track, bool transposed, uint64_t seed) {
    vkg_scope_begin();
    int64_t C = xs.d[1];
    float *xh, *wh = NULL, *bh = NULL, rm[64], rv[64], rm_want[64], rv_want[64];
    vkg_tensor *x = make(xs, seed, transposed, &xh);
    for (int64_t c = 0; c < C; c++) {
        rm[c] = rm_want[c] = 0.1f * (float)c - 0.2f;
        rv[c] = rv_want[c] = 0.5f + 0.25f * (float)c;
    }
    vkg_tensor *w = affine ? make(VKG_SHAPE(C), seed + 1, false, &wh) : NULL;
    vkg_tensor *b = affine ? make(VKG_SHAPE(C), seed + 2, false, &bh) : NULL;
    vkg_tensor *rmt = track ? vkg_from_data(VKG_SHAPE(C), rm) : NULL, *rvt = track ? vkg_from_data(VKG_SHAPE(C), rv) : NULL;
    vkg_batch_norm_desc d = { .train = train, .momentum = 0.3f };
    vkg_tensor *y = vkg_batch_norm(x, w, b, rmt, rvt, &d);
    cr_assert_not_null(y, "%s", vkg_last_error());
    size_t ny = (size_t)vkg_numel(y);
    float *want = malloc(ny * sizeof *want), *got = vkgt_read(y);
    vkg_ref_batch_norm(want, xh, xs, wh, bh, track ? rm_want : NULL, track ? rv_want : NULL, &d);
    char what[128], sh[64];
    snprintf(what, sizeof what, "batch_norm x %s train %d affine %d track %d", vkg_shape_str(xs, sh, sizeof sh), train,
             affine, track);
    vkgt_assert_close(got, want, ny, 1e-4f, 1e-4f, what);
    if (track) {
        float *gm = vkgt_read(rmt), *gv = vkgt_read(rvt);
        vkgt_assert_close(gm, rm_want, (size_t)C, 1e-5f, 1e-6f, "running_mean");
        vkgt_assert_close(gv, rv_want, (size_t)C, 1e-5f, 1e-6f, "running_var");
        if (!train) cr_assert_eq(memcmp(gm, rm, (size_t)C * sizeof *gm), 0, "eval mode leaves the running stats");
        free(gm), free(gv);
        cr_assert(!vkg_tensor_requires_grad(rmt) && !vkg_tensor_requires_grad(rvt));
    }
    free(xh), free(wh), free(bh), free(want), free(got);
    vkg_scope_end();
}

VKG_TEST(conv_ops, batch_norm_against_reference) {
    check_bn(VKG_SHAPE(3, 5, 4, 3), true, true, true, false, SEED);
    check_bn(VKG_SHAPE(3, 5, 4, 3), false, true, true, false, SEED + 1);
    check_bn(VKG_SHAPE(2, 3, 7, 9), true, false, false, true, SEED + 2);
    check_bn(VKG_SHAPE(2, 3, 7, 9), false, false, true, true, SEED + 3);
    check_bn(VKG_SHAPE(6, 7), true, true, true, false, SEED + 4);
    check_bn(VKG_SHAPE(2, 32, 14, 14), true, true, true, false, SEED + 5); /* rows longer than a workgroup */
    /* running stats are buffers: a second train step moves them again, with no graph */
    vkg_tensor *rm = vkg_zeros(VKG_SHAPE(2)), *rv = vkg_ones(VKG_SHAPE(2));
    vkg_tensor *x = vkg_requires_grad(vkg_from_data(VKG_SHAPE(2, 2), (float[]){ 1, 2, 3, 6 }), true);
    for (int i = 0; i < 2; i++)
        cr_assert_not_null(vkg_batch_norm(x, NULL, NULL, rm, rv, &(vkg_batch_norm_desc){ .train = true }));
    float m[2], v[2];
    cr_assert_eq(vkg_tensor_read(rm, m, sizeof m), VKG_OK);
    cr_assert_eq(vkg_tensor_read(rv, v, sizeof v), VKG_OK);
    /* mean (2, 4), unbiased var (2, 8); twice with momentum 0.1 */
    cr_assert_float_eq(m[0], 0.19f * 2.0f, 1e-6f);
    cr_assert_float_eq(m[1], 0.19f * 4.0f, 1e-6f);
    cr_assert_float_eq(v[0], 0.81f + 0.19f * 2.0f, 1e-6f);
    cr_assert_float_eq(v[1], 0.81f + 0.19f * 8.0f, 1e-6f);
    cr_assert(!vkg_tensor_requires_grad(rm));
}

/* ---- gradient checks --------------------------------------------------------------------------- */
typedef struct gc_ctx {
    vkg_op op;
    vkg_shape xs, ws;
    vkg_conv2d_desc cd;
    vkg_pool2d_desc pd;
    vkg_batch_norm_desc bd;
    bool bias, affine;
    double rm[16], rv[16];
} gc_ctx;

static vkg_tensor *gc_device(vkg_tensor **in, void *p) {
    gc_ctx *c = p;
    switch (c->op) {
    case VKG_OP_CONV2D: return vkg_conv2d(in[0], in[1], c->bias ? in[2] : NULL, &c->cd);
    case VKG_OP_MAX_POOL2D: return vkg_max_pool2d(in[0], &c->pd);
    case VKG_OP_AVG_POOL2D: return vkg_avg_pool2d(in[0], &c->pd);
    case VKG_OP_BATCH_NORM: {
        float rm[16], rv[16];
        for (int64_t i = 0; i < c->xs.d[1]; i++) rm[i] = (float)c->rm[i], rv[i] = (float)c->rv[i];
        vkg_tensor *rmt = vkg_from_data(VKG_SHAPE(c->xs.d[1]), rm), *rvt = vkg_from_data(VKG_SHAPE(c->xs.d[1]), rv);
        return vkg_batch_norm(in[0], c->affine ? in[1] : NULL, c->affine ? in[2] : NULL, rmt, rvt, &c->bd);
    }
    default: return NULL;
    }
}

static void gc_forward(double *y, vkg_shape ys, double *const *x, void *p) {
    (void)ys;
    gc_ctx *c = p;
    switch (c->op) {
    case VKG_OP_CONV2D: vkg_ref_conv2d_f64(y, x[0], c->xs, x[1], c->ws, c->bias ? x[2] : NULL, &c->cd); break;
    case VKG_OP_MAX_POOL2D: vkg_ref_max_pool2d_f64(y, NULL, x[0], c->xs, &c->pd); break;
    case VKG_OP_AVG_POOL2D: vkg_ref_avg_pool2d_f64(y, x[0], c->xs, &c->pd); break;
    case VKG_OP_BATCH_NORM: {
        double rm[16], rv[16]; /* the forward updates them: work on copies */
        memcpy(rm, c->rm, sizeof rm);
        memcpy(rv, c->rv, sizeof rv);
        vkg_ref_batch_norm_f64(y, x[0], c->xs, c->affine ? x[1] : NULL, c->affine ? x[2] : NULL, rm, rv, &c->bd);
        break;
    }
    default: break;
    }
}

static void gc_backward(double *const *dx, vkg_shape ys, double *const *x, const double *dy, void *p) {
    (void)ys;
    gc_ctx *c = p;
    switch (c->op) {
    case VKG_OP_CONV2D:
        vkg_ref_conv2d_backward_f64(dx[0], dx[1], c->bias ? dx[2] : NULL, x[0], c->xs, x[1], c->ws, dy, &c->cd);
        break;
    case VKG_OP_MAX_POOL2D: vkg_ref_max_pool2d_backward_f64(dx[0], x[0], c->xs, dy, &c->pd); break;
    case VKG_OP_AVG_POOL2D: vkg_ref_avg_pool2d_backward_f64(dx[0], c->xs, dy, &c->pd); break;
    case VKG_OP_BATCH_NORM:
        vkg_ref_batch_norm_backward_f64(dx[0], c->affine ? dx[1] : NULL, c->affine ? dx[2] : NULL, x[0], c->xs,
                                        c->affine ? x[1] : NULL, c->rm, c->rv, dy, &c->bd);
        break;
    default: break;
    }
}

static void gradcheck(gc_ctx *c, bool transposed_x, uint64_t seed) {
    vkgt_gc g = { .name = vkg_op_table[c->op].name, .nin = 1, .shape = { c->xs }, .transposed = { transposed_x },
                  .device = gc_device, .forward = gc_forward, .backward = gc_backward, .ctx = c, .seed = seed };
    if (c->op == VKG_OP_CONV2D) {
        g.nin = c->bias ? 3 : 2;
        g.shape[1] = c->ws;
        g.shape[2] = VKG_SHAPE(c->ws.d[0]);
    }
    if (c->op == VKG_OP_BATCH_NORM) {
        g.nin = c->affine ? 3 : 1;
        g.shape[1] = g.shape[2] = VKG_SHAPE(c->xs.d[1]);
        for (int64_t i = 0; i < c->xs.d[1]; i++) c->rm[i] = (float)(0.1 * (double)i - 0.3), c->rv[i] = (float)(0.6 + 0.2 * (double)i);
    }
    vkgt_gradcheck(&g);
}

VKG_TEST(conv_ops, conv2d_gradcheck) {
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(2, 3, 7, 9), .ws = VKG_SHAPE(5, 3, 3, 3), .bias = true,
                         .cd = { .stride = { 2, 2 }, .padding = { 1, 1 }, .dilation = { 2, 2 } } },
              false, SEED);
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(2, 3, 5, 6), .ws = VKG_SHAPE(6, 1, 3, 3),
                         .cd = { .padding = { 1, 1 }, .groups = 3 } },
              true, SEED + 1);
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(2, 5, 3, 4), .ws = VKG_SHAPE(3, 5, 1, 1), .bias = true }, false,
              SEED + 2);
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(1, 4, 6, 5), .ws = VKG_SHAPE(6, 2, 2, 3), .bias = true,
                         .cd = { .stride = { 1, 2 }, .padding = { 0, 1 }, .dilation = { 2, 1 }, .groups = 2 } },
              true, SEED + 3);
    /* stride 1 and groups 1: the input gradient too is an implicit GEMM, a convolution of g
     * with taps at minus the dilation; odd sizes, padding past the kernel's reach (1x1, pad 1) */
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(2, 3, 7, 6), .ws = VKG_SHAPE(5, 3, 3, 3), .bias = true,
                         .cd = { .padding = { 1, 2 }, .dilation = { 2, 1 } } },
              false, SEED + 5);
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(1, 2, 5, 3), .ws = VKG_SHAPE(3, 2, 1, 1),
                         .cd = { .padding = { 1, 1 } } },
              false, SEED + 6);
    /* 12 taps: the weight gradient's blocks of 9 taps (conv2d_backward_weight.comp), the last partial */
    gradcheck(&(gc_ctx){ .op = VKG_OP_CONV2D, .xs = VKG_SHAPE(2, 2, 6, 7), .ws = VKG_SHAPE(5, 2, 4, 3), .bias = true,
                         .cd = { .stride = { 2, 1 }, .padding = { 1, 2 }, .dilation = { 1, 2 } } },
              false, SEED + 4);
}

/* dw sums over N OH OW = 100 x 28 x 28 = 78,400 positions: past the 65,535 loop iterations after
 * which lavapipe ends a shader invocation's loops, so the sum must be split across invocations
 * (an earlier kernel summed the first ~80 images and dropped the rest, without an error). */
VKG_TEST(conv_ops, conv2d_weight_gradient_over_a_large_batch) {
    vkg_scope_begin();
    vkg_shape xs = VKG_SHAPE(100, 1, 28, 28), ws = VKG_SHAPE(2, 1, 3, 3), ys = VKG_SHAPE(100, 2, 28, 28);
    vkg_conv2d_desc cd = { .padding = { 1, 1 } };
    float *xh, *wh, *gh;
    vkg_tensor *x = make(xs, SEED, false, &xh), *w = vkg_requires_grad(make(ws, SEED + 1, false, &wh), true);
    vkg_tensor *g = make(ys, SEED + 2, false, &gh);
    vkg_tensor *y = vkg_conv2d(x, w, NULL, &cd);
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = g }), VKG_OK, "%s", vkg_last_error());
    float *got = vkgt_read(vkg_grad(w));
    size_t nx = (size_t)vkg_shape_numel(xs), ny = (size_t)vkg_shape_numel(ys);
    double *xd = malloc(nx * sizeof *xd), *gd = malloc(ny * sizeof *gd), *dx = calloc(nx, sizeof *dx), wd[18], dw[18] = { 0 };
    for (size_t i = 0; i < nx; i++) xd[i] = xh[i];
    for (size_t i = 0; i < ny; i++) gd[i] = gh[i];
    for (int i = 0; i < 18; i++) wd[i] = wh[i];
    vkg_ref_conv2d_backward_f64(dx, dw, NULL, xd, xs, wd, ws, gd, &cd);
    float want[18];
    for (int i = 0; i < 18; i++) want[i] = (float)dw[i];
    vkgt_assert_close(got, want, 18, 1e-4f, 1e-3f, "dw over 100 images of 28x28");
    free(xh), free(wh), free(gh), free(got), free(xd), free(gd), free(dx);
    vkg_scope_end();
}

VKG_TEST(conv_ops, pool2d_gradcheck) {
    for (int k = 0; k < 2; k++) {
        vkg_op op = k ? VKG_OP_AVG_POOL2D : VKG_OP_MAX_POOL2D;
        gradcheck(&(gc_ctx){ .op = op, .xs = VKG_SHAPE(2, 3, 7, 9),
                             .pd = { .kernel = { 3, 3 }, .stride = { 2, 2 }, .padding = { 1, 1 } } },
                  false, SEED + (uint64_t)k);
        gradcheck(&(gc_ctx){ .op = op, .xs = VKG_SHAPE(1, 2, 6, 5), .pd = { .kernel = { 2, 2 } } }, true, SEED + 2 + (uint64_t)k);
        /* 2 wide at stride 2 over rows of even length: pairs of columns (PAIRS) both ways, the
         * second with a row left over */
        gradcheck(&(gc_ctx){ .op = op, .xs = VKG_SHAPE(2, 3, 6, 8), .pd = { .kernel = { 2, 2 } } }, false, SEED + 8 + (uint64_t)k);
        gradcheck(&(gc_ctx){ .op = op, .xs = VKG_SHAPE(1, 2, 7, 6), .pd = { .kernel = { 2, 2 } } }, false, SEED + 10 + (uint64_t)k);
        /* windows that tile the input (one item per window), a row and a column left over */
        gradcheck(&(gc_ctx){ .op = op, .xs = VKG_SHAPE(2, 2, 7, 5), .pd = { .kernel = { 3, 2 } } }, false, SEED + 6 + (uint64_t)k);
        /* overlapping windows: several outputs route into one input */
        gradcheck(&(gc_ctx){ .op = op, .xs = VKG_SHAPE(1, 2, 5, 6), .pd = { .kernel = { 3, 2 }, .stride = { 1, 1 }, .padding = { 1, 1 } } },
                  false, SEED + 4 + (uint64_t)k);
    }
    /* max with relu: the gradient only where the max is taken and above 0 (the inputs, in
     * +-[0.2, 2], leave windows all negative), by the gather, tiles and pairs paths */
    const struct { vkg_shape xs; vkg_pool2d_desc d; } relu_cases[] = {
        { VKG_SHAPE(1, 2, 5, 6), { .kernel = { 3, 2 }, .stride = { 1, 1 }, .padding = { 1, 1 }, .relu = true } },
        { VKG_SHAPE(2, 2, 7, 5), { .kernel = { 3, 2 }, .relu = true } },
        { VKG_SHAPE(2, 3, 6, 8), { .kernel = { 2, 2 }, .relu = true } },
        { VKG_SHAPE(1, 2, 7, 6), { .kernel = { 2, 2 }, .relu = true } },
    };
    for (size_t k = 0; k < sizeof relu_cases / sizeof *relu_cases; k++)
        gradcheck(&(gc_ctx){ .op = VKG_OP_MAX_POOL2D, .xs = relu_cases[k].xs, .pd = relu_cases[k].d }, k == 3,
                  SEED + 30 + (uint64_t)k);
}

VKG_TEST(conv_ops, batch_norm_gradcheck) {
    gradcheck(&(gc_ctx){ .op = VKG_OP_BATCH_NORM, .xs = VKG_SHAPE(3, 4, 3, 5), .affine = true, .bd = { .train = true } },
              false, SEED);
    gradcheck(&(gc_ctx){ .op = VKG_OP_BATCH_NORM, .xs = VKG_SHAPE(2, 3, 4, 5), .affine = true, .bd = { .train = true } },
              true, SEED + 1);
    gradcheck(&(gc_ctx){ .op = VKG_OP_BATCH_NORM, .xs = VKG_SHAPE(7, 5), .affine = true, .bd = { .train = true } }, false,
              SEED + 2);
    gradcheck(&(gc_ctx){ .op = VKG_OP_BATCH_NORM, .xs = VKG_SHAPE(3, 4, 2, 3), .bd = { .train = true } }, false, SEED + 3);
    gradcheck(&(gc_ctx){ .op = VKG_OP_BATCH_NORM, .xs = VKG_SHAPE(3, 4, 3, 5), .affine = true }, false, SEED + 4); /* eval */
}

/* ---- refusals, NULL, reproducibility ------------------------------------------------------------- */
#define REFUSED(call, ...)                                                                                    \
    do {                                                                                                       \
        vkg_clear_error();                                                                                     \
        cr_assert_null(call, #call " was accepted");                                                           \
        cr_assert_eq(vkg_last_status(), VKG_ERR_INVALID);                                                      \
        const char *subs_[] = { __VA_ARGS__ };                                                                 \
        for (size_t i_ = 0; i_ < sizeof subs_ / sizeof *subs_; i_++)                                           \
            cr_assert(strstr(vkg_last_error(), subs_[i_]), #call ": message \"%s\" lacks \"%s\"", vkg_last_error(), \
                      subs_[i_]);                                                                              \
    } while (0)

VKG_TEST(conv_ops, conv2d_refuses_bad_inputs) {
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(1, 3, 5, 5)), *w = vkg_zeros(VKG_SHAPE(4, 3, 3, 3));
    REFUSED(vkg_conv2d(vkg_zeros(VKG_SHAPE(1, 1, 3, 3)), vkg_zeros(VKG_SHAPE(1, 1, 5, 5)), NULL, NULL), "vkg_conv2d",
            "kernel 5x5", "larger than the padded input 3x3");
    REFUSED(vkg_conv2d(vkg_zeros(VKG_SHAPE(1, 1, 3, 3)), vkg_zeros(VKG_SHAPE(1, 1, 3, 3)), NULL,
                       &(vkg_conv2d_desc){ .dilation = { 2, 2 } }),
            "extent 5x5", "larger than the padded input 3x3");
    REFUSED(vkg_conv2d(x, vkg_zeros(VKG_SHAPE(4, 1, 3, 3)), NULL, &(vkg_conv2d_desc){ .groups = 2 }), "(1, 3, 5, 5)",
            "do not divide into 2 groups");
    REFUSED(vkg_conv2d(x, vkg_zeros(VKG_SHAPE(3, 1, 3, 3)), NULL, &(vkg_conv2d_desc){ .groups = 2 }), "do not divide");
    REFUSED(vkg_conv2d(x, vkg_zeros(VKG_SHAPE(4, 2, 3, 3)), NULL, NULL), "vkg_conv2d", "(4, 2, 3, 3)", "(1, 3, 5, 5)");
    REFUSED(vkg_conv2d(x, w, vkg_zeros(VKG_SHAPE(3)), NULL), "bias is (3,)", "4 output channels");
    REFUSED(vkg_conv2d(x, w, vkg_zeros(VKG_SHAPE(1, 4)), NULL), "bias is (1, 4)");
    REFUSED(vkg_conv2d(vkg_zeros(VKG_SHAPE(3, 5, 5)), w, NULL, NULL), "4-D", "(3, 5, 5)");
    REFUSED(vkg_conv2d(x, vkg_zeros(VKG_SHAPE(4, 3, 9)), NULL, NULL), "4-D");
    REFUSED(vkg_conv2d(vkg_empty_dtype(VKG_SHAPE(1, 3, 5, 5), VKG_I32), w, NULL, NULL), "vkg_conv2d", "i32", "f32");
    REFUSED(vkg_conv2d(x, w, NULL, &(vkg_conv2d_desc){ .stride = { -1, 1 } }), "negative");
    REFUSED(vkg_conv2d(x, w, NULL, &(vkg_conv2d_desc){ .groups = -2 }), "groups -2");
    /* padding makes room: the same 5x5 kernel on 3x3 with padding 1 is fine */
    cr_assert_not_null(vkg_conv2d(vkg_zeros(VKG_SHAPE(1, 1, 3, 3)), vkg_zeros(VKG_SHAPE(1, 1, 5, 5)), NULL,
                                  &(vkg_conv2d_desc){ .padding = { 1, 1 } }), "%s", vkg_last_error());
}

VKG_TEST(conv_ops, pool2d_refuses_bad_inputs) {
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(1, 2, 4, 4));
    REFUSED(vkg_max_pool2d(x, &(vkg_pool2d_desc){ .kernel = { 5, 5 } }), "vkg_max_pool2d", "kernel 5x5",
            "larger than the padded input 4x4");
    REFUSED(vkg_avg_pool2d(x, &(vkg_pool2d_desc){ .kernel = { 7, 2 }, .padding = { 1, 0 } }), "vkg_avg_pool2d",
            "larger than the padded input 6x4");
    REFUSED(vkg_max_pool2d(x, &(vkg_pool2d_desc){ .kernel = { 2, 2 }, .padding = { 2, 0 } }), "at most half the kernel");
    REFUSED(vkg_avg_pool2d(x, &(vkg_pool2d_desc){ .kernel = { 0, 2 } }), "must be positive");
    REFUSED(vkg_max_pool2d(x, &(vkg_pool2d_desc){ .kernel = { 2, 2 }, .stride = { -1, 1 } }), "must be positive");
    REFUSED(vkg_max_pool2d(x, NULL), "vkg_max_pool2d", "NULL");
    REFUSED(vkg_avg_pool2d(x, &(vkg_pool2d_desc){ .kernel = { 2, 2 }, .relu = true }), "vkg_avg_pool2d",
            "relu is for max pooling only");
    REFUSED(vkg_avg_pool2d(vkg_zeros(VKG_SHAPE(2, 4, 4)), &(vkg_pool2d_desc){ .kernel = { 2, 2 } }), "4-D", "(2, 4, 4)");
    REFUSED(vkg_max_pool2d(vkg_empty_dtype(VKG_SHAPE(1, 1, 4, 4), VKG_I32), &(vkg_pool2d_desc){ .kernel = { 2, 2 } }), "f32");
}

VKG_TEST(conv_ops, batch_norm_refuses_bad_inputs) {
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(2, 3, 4, 4)), *c3 = vkg_ones(VKG_SHAPE(3)), *c4 = vkg_ones(VKG_SHAPE(4));
    vkg_batch_norm_desc train = { .train = true };
    REFUSED(vkg_batch_norm(x, c4, c3, c3, c3, &train), "vkg_batch_norm", "weight is (4,)", "3 channels");
    REFUSED(vkg_batch_norm(x, c3, c4, c3, c3, &train), "bias is (4,)");
    REFUSED(vkg_batch_norm(x, c3, c3, c4, c3, &train), "running_mean is (4,)");
    REFUSED(vkg_batch_norm(x, c3, c3, c3, NULL, &train), "go together");
    REFUSED(vkg_batch_norm(x, c3, c3, NULL, NULL, NULL), "eval mode needs running_mean");
    REFUSED(vkg_batch_norm(vkg_zeros(VKG_SHAPE(1, 3)), NULL, NULL, c3, c3, &train), "more than one value per channel");
    REFUSED(vkg_batch_norm(vkg_zeros(VKG_SHAPE(6)), NULL, NULL, NULL, NULL, &train), "(N, C)", "(6,)");
    vkg_tensor *strided = vkg_slice(vkg_ones(VKG_SHAPE(6)), 0, 0, 6, 2);
    REFUSED(vkg_batch_norm(x, NULL, NULL, strided, c3, &train), "non-contiguous");
    REFUSED(vkg_batch_norm(x, NULL, NULL, c3, c3, &(vkg_batch_norm_desc){ .train = true, .eps = -1.0f }), "eps");
    /* eval mode with one value per channel is fine */
    cr_assert_not_null(vkg_batch_norm(vkg_zeros(VKG_SHAPE(1, 3)), NULL, NULL, c3, c3, NULL), "%s", vkg_last_error());
}

VKG_TEST(conv_ops, null_in_null_out) {
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(1, 2, 4, 4)), *w = vkg_zeros(VKG_SHAPE(2, 2, 3, 3)), *c = vkg_ones(VKG_SHAPE(2));
    vkg_clear_error();
    vkg_pool2d_desc pd = { .kernel = { 2, 2 } };
    vkg_tensor *idx = x;
    cr_assert_null(vkg_conv2d(NULL, w, NULL, NULL));
    cr_assert_null(vkg_conv2d(x, NULL, c, NULL));
    cr_assert_null(vkg_max_pool2d(NULL, &pd));
    cr_assert_null(vkg_max_pool2d_with_indices(NULL, &pd, &idx));
    cr_assert_null(idx);
    cr_assert_null(vkg_avg_pool2d(NULL, &pd));
    cr_assert_null(vkg_batch_norm(NULL, c, c, c, c, NULL));
    cr_assert_str_empty(vkg_last_error(), "a NULL input set a message: %s", vkg_last_error());
    /* the table's rows of this group are all here */
    int n = 0;
    for (int op = 0; op < VKG_OP_COUNT; op++) n += vkg_op_table[op].kind == VKG_KIND_CONV;
    cr_assert_eq(n, 4);
}

/* Two runs of a small conv / batch-norm / pool network, forward and backward: bitwise equal. */
static float *run_once(void) {
    vkg_scope_begin();
    float *xh, *wh, *bh;
    vkg_tensor *x = vkg_requires_grad(make(VKG_SHAPE(2, 3, 9, 9), SEED, false, &xh), true);
    vkg_tensor *w = vkg_requires_grad(make(VKG_SHAPE(8, 3, 3, 3), SEED + 1, false, &wh), true);
    vkg_tensor *b = vkg_requires_grad(make(VKG_SHAPE(8), SEED + 2, false, &bh), true);
    vkg_tensor *rm = vkg_zeros(VKG_SHAPE(8)), *rv = vkg_ones(VKG_SHAPE(8));
    vkg_tensor *h = vkg_conv2d(x, w, b, &(vkg_conv2d_desc){ .padding = { 1, 1 } });
    h = vkg_relu(vkg_batch_norm(h, NULL, NULL, rm, rv, &(vkg_batch_norm_desc){ .train = true }));
    h = vkg_avg_pool2d(vkg_max_pool2d(h, &(vkg_pool2d_desc){ .kernel = { 2, 2 } }), &(vkg_pool2d_desc){ .kernel = { 2, 2 } });
    cr_assert_eq(vkg_backward(vkg_sum_all(vkg_mul(h, h))), VKG_OK, "%s", vkg_last_error());
    size_t nx = 2 * 3 * 81, nw = 8 * 27;
    float *out = malloc((nx + nw + 8 + 8) * sizeof *out), *gx = vkgt_read(vkg_grad(x)), *gw = vkgt_read(vkg_grad(w));
    float *gb = vkgt_read(vkg_grad(b)), *m = vkgt_read(rv);
    memcpy(out, gx, nx * sizeof *out);
    memcpy(out + nx, gw, nw * sizeof *out);
    memcpy(out + nx + nw, gb, 8 * sizeof *out);
    memcpy(out + nx + nw + 8, m, 8 * sizeof *out);
    free(xh), free(wh), free(bh), free(gx), free(gw), free(gb), free(m);
    vkg_scope_end();
    return out;
}

VKG_TEST(conv_ops, reproducible) {
    float *a = run_once(), *b = run_once();
    cr_assert_eq(memcmp(a, b, (2 * 3 * 81 + 8 * 27 + 16) * sizeof *a), 0, "two runs differ");
    free(a);
    free(b);
}
