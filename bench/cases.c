/* vkgrad-bench's case table and the op cases' setup, one operation, and check against the C
 * reference (vkgrad/reference.h). Each row is one case; the ops and models still to come are
 * rows of kind VKGB_MISSING, listed as "not yet available" until their runner exists. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "vkgrad.h"
#include "vkgrad/reference.h"

#define Q VKGB_QUICK
#define M VKGB_MICRO
#define MODELS VKGB_MODELS
#define ALL (-100) /* VKG_REF_ALL */

/* p[] per kind: MATMUL {batch (0: none), M, K, N}; UNARY {rows, cols}; BINARY {a rows, a cols,
 * b rows (0: b is 1-D), b cols}; REDUCE {rows, cols, axis or ALL}; COPY {rows, cols}: a
 * transposed view made contiguous; RANDN {n}; COPYBW {MiB}; DISPATCH {dispatches per submit}. */
const vkgb_case vkgb_cases[] = {
    /* peaks and launch costs: the roofline every other case is placed on */
    { "peak/fp32 fma", "peak", Q | M, VKGB_FMA32, 0, { 0 }, 0, NULL },
    { "peak/fp16 fma", "peak", Q | M, VKGB_FMA16, 0, { 0 }, 0, NULL },
    { "peak/copy 64MiB vec4", "peak", Q | M, VKGB_COPYBW, 0, { 64 }, 0, NULL },
    { "launch/dispatch x500", "launch", Q | M, VKGB_DISPATCH, 0, { 500 }, 0, NULL },
    { "launch/submit round trip", "launch", Q | M, VKGB_ROUNDTRIP, 0, { 0 }, 0, NULL },
    /* matmul: square sweep */
    { "matmul/64", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 64, 64, 64 }, 0, NULL },
    { "matmul/128", "matmul", M, VKGB_MATMUL, 0, { 0, 128, 128, 128 }, 0, NULL },
    { "matmul/256", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 256, 256, 256 }, 0, NULL },
    { "matmul/512", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 512, 512, 512 }, 0, NULL },
    { "matmul/1024", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 1024, 1024, 1024 }, 0, NULL },
    { "matmul/2048", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 2048, 2048 }, 5, NULL },
    { "matmul/4096", "matmul", M, VKGB_MATMUL, 0, { 0, 4096, 4096, 4096 }, 2, NULL },
    /* matmul: the reference models' shapes (MLP on Fashion-MNIST; tiny transformer B=32, T=64,
     * d=128, 4 heads of 32, MLP 512, byte vocabulary 256) */
    { "matmul/mlp 128x784 @ 784x512", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 128, 784, 512 }, 0, NULL },
    { "matmul/mlp 128x512 @ 512x256", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 128, 512, 256 }, 0, NULL },
    { "matmul/mlp 128x256 @ 256x10", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 128, 256, 10 }, 0, NULL },
    { "matmul/gpt qkv 2048x128 @ 128x384", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 2048, 128, 384 }, 0, NULL },
    { "matmul/gpt scores 128x(64x32 @ 32x64)", "matmul", Q | M, VKGB_MATMUL, 0, { 128, 64, 32, 64 }, 0, NULL },
    { "matmul/gpt values 128x(64x64 @ 64x32)", "matmul", M, VKGB_MATMUL, 0, { 128, 64, 64, 32 }, 0, NULL },
    { "matmul/gpt proj 2048x128 @ 128x128", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 128, 128 }, 0, NULL },
    { "matmul/gpt mlp up 2048x128 @ 128x512", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 128, 512 }, 0, NULL },
    { "matmul/gpt mlp down 2048x512 @ 512x128", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 512, 128 }, 0, NULL },
    { "matmul/gpt logits 2048x128 @ 128x256", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 2048, 128, 256 }, 0, NULL },
    /* elementwise and reductions at model sizes */
    { "elementwise/add bias 128x512 + 512", "elementwise", Q | M, VKGB_BINARY, VKG_OP_ADD, { 128, 512, 0, 512 }, 0, NULL },
    { "elementwise/add 2048x128 + 2048x128", "elementwise", M, VKGB_BINARY, VKG_OP_ADD, { 2048, 128, 2048, 128 }, 0, NULL },
    { "elementwise/mul 2048x512 * 2048x512", "elementwise", M, VKGB_BINARY, VKG_OP_MUL, { 2048, 512, 2048, 512 }, 0, NULL },
    { "elementwise/relu 128x512", "elementwise", Q | M, VKGB_UNARY, VKG_OP_RELU, { 128, 512 }, 0, NULL },
    { "elementwise/gelu 2048x512", "elementwise", Q | M, VKGB_UNARY, VKG_OP_GELU, { 2048, 512 }, 0, NULL },
    { "elementwise/exp 2048x256", "elementwise", M, VKGB_UNARY, VKG_OP_EXP, { 2048, 256 }, 0, NULL },
    { "elementwise/tanh 32x512", "elementwise", M, VKGB_UNARY, VKG_OP_TANH, { 32, 512 }, 0, NULL },
    { "elementwise/relu 4096x4096", "elementwise", M, VKGB_UNARY, VKG_OP_RELU, { 4096, 4096 }, 0, NULL },
    { "reduce/sum rows 2048x256", "reduce", Q | M, VKGB_REDUCE, VKG_OP_SUM, { 2048, 256, 1 }, 0, NULL },
    { "reduce/max rows 2048x256", "reduce", M, VKGB_REDUCE, VKG_OP_MAX, { 2048, 256, 1 }, 0, NULL },
    { "reduce/sum cols 128x512", "reduce", M, VKGB_REDUCE, VKG_OP_SUM, { 128, 512, 0 }, 0, NULL },
    { "reduce/argmax rows 128x10", "reduce", Q | M, VKGB_REDUCE, VKG_OP_ARGMAX, { 128, 10, 1 }, 0, NULL },
    { "reduce/mean all 1024x1024", "reduce", Q | M, VKGB_REDUCE, VKG_OP_MEAN, { 1024, 1024, ALL }, 0, NULL },
    { "memory/transpose copy 2048x128", "memory", Q | M, VKGB_COPY, 0, { 2048, 128 }, 0, NULL },
    { "memory/transpose copy 1024x1024", "memory", M, VKGB_COPY, 0, { 1024, 1024 }, 0, NULL },
    { "random/randn 1M", "random", Q | M, VKGB_RANDN, 0, { 1 << 20 }, 0, NULL },
    /* ops and models that exist in the library but have no bench runner yet: one row each;
     * replace VKGB_MISSING by their kind when the runner lands */
    { "nn/conv2d cnn 128x1x28x28 k5 c32", "nn", Q | M, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for vkg_conv2d" },
    { "nn/softmax 2048x256", "nn", Q | M, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for vkg_softmax" },
    { "nn/layer_norm 2048x128", "nn", Q | M, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for vkg_layer_norm" },
    { "nn/attention 32x4x64x32", "nn", Q | M, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for fused attention" },
    { "nn/cross_entropy 2048x256", "nn", Q | M, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for vkg_cross_entropy" },
    { "optim/adam step 1M params", "optim", Q | M, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the Adam optimizer" },
    { "model/mlp train step", "model", Q | MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the MLP reference model" },
    { "model/mlp inference", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the MLP reference model" },
    { "model/cnn train step", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the CNN reference model" },
    { "model/cnn inference", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the CNN reference model" },
    { "model/lstm train step", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the LSTM reference model" },
    { "model/lstm inference", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the LSTM reference model" },
    { "model/transformer train step", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the transformer reference model" },
    { "model/transformer inference", "model", MODELS, VKGB_MISSING, 0, { 0 }, 0, "a bench runner for the transformer reference model" },
};
const int vkgb_ncases = (int)(sizeof vkgb_cases / sizeof vkgb_cases[0]);

/* ---- op cases ------------------------------------------------------------------------------ */
static void fill(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) { /* splitmix64, like the tests */
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = lo + (hi - lo) * (float)((double)(z >> 11) / 9007199254740992.0);
    }
}

static vkg_tensor *upload(vkg_shape s, float lo, float hi, uint64_t seed, float **host) {
    size_t n = (size_t)vkg_shape_numel(s);
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) return NULL;
    fill(x, n, lo, hi, seed);
    vkg_tensor *t = vkg_keep(vkg_from_data(s, x));
    if (host) *host = x;
    else free(x);
    return t;
}

static bool setup_fail(char *why, size_t size, const char *what) {
    snprintf(why, size, "%s: %s", what, vkg_last_error()[0] ? vkg_last_error() : "out of host memory");
    return false;
}

bool vkgb_inst_setup(vkgb_inst *s, const vkgb_case *c, char *why, size_t whysize) {
    memset(s, 0, sizeof *s);
    s->c = c;
    const int64_t *p = c->p;
    float *a = NULL, *b = NULL;
    bool ok = true;
    switch (c->kind) {
    case VKGB_MATMUL: {
        int64_t B = p[0], m = p[1], k = p[2], n = p[3];
        vkg_shape as = B ? VKG_SHAPE(B, m, k) : VKG_SHAPE(m, k), bs = B ? VKG_SHAPE(B, k, n) : VKG_SHAPE(k, n);
        s->in[0] = upload(as, -1, 1, 1, &a);
        s->in[1] = upload(bs, -1, 1, 2, &b);
        if (!s->in[0] || !s->in[1]) { ok = setup_fail(why, whysize, "inputs"); break; }
        int64_t nb = B ? B : 1;
        s->nout = (size_t)(nb * m * n);
        s->flops = 2.0 * (double)nb * (double)m * (double)n * (double)k;
        s->bytes = 4.0 * (double)nb * (double)(m * k + k * n + m * n);
        s->rtol = 1e-3;
        s->atol = 1e-5 * (double)k;
        if (B) snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld,%lld) @ (%lld,%lld,%lld)", (long long)B,
                        (long long)m, (long long)k, (long long)B, (long long)k, (long long)n);
        else snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld) @ (%lld,%lld)", (long long)m, (long long)k,
                      (long long)k, (long long)n);
        if (!B && (double)m * (double)n * (double)k > (double)(1 << 27)) {
            /* a full double-precision reference of 4096^3 takes minutes: check 8 spread rows */
            s->nrows = 8;
            s->row_len = n;
            s->ref = malloc((size_t)(8 * n) * sizeof *s->ref);
            if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
            for (int r = 0; r < 8; r++) {
                s->rows[r] = (m - 1) * r / 7;
                vkg_ref_matmul(s->ref + r * n, a + s->rows[r] * k, VKG_SHAPE(1, k), b, VKG_SHAPE(k, n));
            }
        } else {
            s->ref = malloc(s->nout * sizeof *s->ref);
            if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
            vkg_ref_matmul(s->ref, a, as, b, bs);
        }
        break;
    }
    case VKGB_UNARY: {
        vkg_shape xs = VKG_SHAPE(p[0], p[1]);
        bool positive = c->op == VKG_OP_LOG || c->op == VKG_OP_SQRT || c->op == VKG_OP_RSQRT;
        s->in[0] = upload(xs, positive ? 0.1f : -4.0f, 4.0f, 3, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        s->nout = (size_t)(p[0] * p[1]);
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_unary((vkg_op)c->op, s->ref, a, s->nout, 0.0f);
        s->bytes = 8.0 * (double)s->nout;
        s->rtol = 1e-4, s->atol = 1e-5;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld)", (long long)p[0], (long long)p[1]);
        break;
    }
    case VKGB_BINARY: {
        vkg_shape as = VKG_SHAPE(p[0], p[1]), bs = p[2] ? VKG_SHAPE(p[2], p[3]) : VKG_SHAPE(p[3]), ys;
        s->in[0] = upload(as, -2, 2, 4, &a);
        s->in[1] = upload(bs, 0.5f, 2, 5, &b);
        if (!s->in[0] || !s->in[1] || !vkg_broadcast_shape(as, bs, &ys)) { ok = setup_fail(why, whysize, "inputs"); break; }
        s->nout = (size_t)vkg_shape_numel(ys);
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_binary((vkg_op)c->op, s->ref, ys, a, as, b, bs);
        s->bytes = 4.0 * (double)(vkg_shape_numel(as) + vkg_shape_numel(bs) + vkg_shape_numel(ys));
        s->rtol = 1e-5, s->atol = 1e-6;
        char x[64], y[64];
        snprintf(s->shape, sizeof s->shape, "f32 %s, %s", vkg_shape_str(as, x, sizeof x), vkg_shape_str(bs, y, sizeof y));
        break;
    }
    case VKGB_REDUCE: {
        vkg_shape xs = VKG_SHAPE(p[0], p[1]);
        s->in[0] = upload(xs, -1, 1, 6, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        int axis = (int)p[2];
        s->nout = axis == ALL ? 1 : (size_t)(axis == 1 ? p[0] : p[1]);
        if (c->op == VKG_OP_ARGMAX) s->refi = malloc(s->nout * sizeof *s->refi);
        else s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref && !s->refi) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_reduce((vkg_op)c->op, s->ref, s->refi, a, xs, axis);
        s->flops = (double)(p[0] * p[1]);
        s->bytes = 4.0 * (double)(p[0] * p[1] + (int64_t)s->nout);
        s->rtol = 1e-4, s->atol = 1e-4;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld) axis %s", (long long)p[0], (long long)p[1],
                 axis == ALL ? "all" : axis ? "1" : "0");
        break;
    }
    case VKGB_COPY: {
        vkg_shape xs = VKG_SHAPE(p[0], p[1]);
        s->in[0] = upload(xs, -1, 1, 7, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        s->nout = (size_t)(p[0] * p[1]);
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        for (int64_t i = 0; i < p[1]; i++)
            for (int64_t j = 0; j < p[0]; j++) s->ref[i * p[0] + j] = a[j * p[1] + i];
        s->bytes = 8.0 * (double)s->nout;
        s->rtol = 0, s->atol = 0;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld) transposed", (long long)p[0], (long long)p[1]);
        break;
    }
    case VKGB_RANDN: {
        s->nout = (size_t)p[0];
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_randn(s->ref, s->nout, &(vkg_rand_desc){ .seed = 42 });
        s->bytes = 4.0 * (double)s->nout;
        s->rtol = 0, s->atol = 0; /* bitwise, as the random ops promise */
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,) seed 42", (long long)p[0]);
        break;
    }
    default:
        snprintf(why, whysize, "not an op case");
        ok = false;
    }
    free(a);
    free(b);
    if (!ok) vkgb_inst_free(s);
    return ok;
}

vkg_tensor *vkgb_inst_record(vkgb_inst *s) {
    const vkgb_case *c = s->c;
    switch (c->kind) {
    case VKGB_MATMUL: return vkg_matmul(s->in[0], s->in[1]);
    case VKGB_UNARY: return vkg_unary((vkg_op)c->op, s->in[0]);
    case VKGB_BINARY: return vkg_binary((vkg_op)c->op, s->in[0], s->in[1]);
    case VKGB_REDUCE:
        return c->p[2] == ALL ? vkg_reduce_all((vkg_op)c->op, s->in[0]) : vkg_reduce((vkg_op)c->op, s->in[0], (int)c->p[2], false);
    case VKGB_COPY: {
        vkg_tensor *t = vkg_transpose(s->in[0], 0, 1);
        vkg_tensor *y = vkg_contiguous(t);
        vkg_free(t);
        return y;
    }
    case VKGB_RANDN: return vkg_randn(VKG_SHAPE(c->p[0]), &(vkg_rand_desc){ .seed = 42 });
    default: return NULL;
    }
}

bool vkgb_inst_check(const vkgb_inst *s, const void *got, double *max_err, char *why, size_t whysize) {
    *max_err = 0;
    if (s->refi) {
        const int32_t *g = got;
        for (size_t i = 0; i < s->nout; i++)
            if (g[i] != s->refi[i]) {
                snprintf(why, whysize, "wrong result: element %zu is %d, the reference says %d", i, g[i], s->refi[i]);
                *max_err = INFINITY;
                return false;
            }
        return true;
    }
    const float *g = got;
    size_t n = s->nrows ? (size_t)(s->nrows * s->row_len) : s->nout;
    for (size_t i = 0; i < n; i++) {
        size_t gi = s->nrows ? (size_t)(s->rows[i / (size_t)s->row_len] * s->row_len) + i % (size_t)s->row_len : i;
        double w = s->ref[i], d = fabs((double)g[gi] - w), tol = s->atol + s->rtol * fabs(w);
        double e = tol > 0 ? d / tol : (d > 0 ? INFINITY : 0);
        if (isnan(g[gi]) != isnan(w)) e = INFINITY;
        if (e > *max_err) *max_err = e;
        if (e > 1.0) {
            snprintf(why, whysize, "wrong result: element %zu is %.9g, the reference says %.9g (tolerance %.3g)", gi,
                     (double)g[gi], w, tol);
            return false;
        }
    }
    return true;
}

void vkgb_inst_free(vkgb_inst *s) {
    for (int i = 0; i < 3; i++) vkg_free(s->in[i]);
    free(s->ref);
    free(s->refi);
    memset(s, 0, sizeof *s);
}
