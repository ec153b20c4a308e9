/* Autograd tests. Every op of the table that has a backward is checked three ways on the same
 * inputs: the C reference backward (double) against central finite differences of the C
 * reference forward (double), and the device backward against the C reference backward — on
 * sizes that are not multiples of the workgroup size, with broadcasting and non-contiguous
 * inputs. Then the engine itself: accumulation, no_grad, detach, views, the refusals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gradcheck.h"

#define SEED 7001u
#define MAXIN 3

typedef struct gc_case {
    vkg_op op;
    int nin;
    vkg_shape shape[MAXIN];
    bool transposed[MAXIN]; /* the op sees a transposed view of a leaf stored the other way */
    bool scalar_form;       /* binary op with scalar second operand s                      */
    float s;                /* pow exponent or the scalar operand                          */
    int axis;               /* reductions: axis, or VKG_REF_ALL                            */
    bool keepdim;
    uint64_t seed;
} gc_case;

static bool positive_domain(vkg_op op) {
    return op == VKG_OP_LOG || op == VKG_OP_SQRT || op == VKG_OP_RSQRT || op == VKG_OP_POW;
}

/* Inputs away from kinks (relu, abs at 0) and, for division, from 0. */
static void make_values(double *x, size_t n, vkg_op op, int which, uint64_t seed) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    vkgt_fill(f, n, -1.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) {
        double u = f[i];
        if (positive_domain(op) || (op == VKG_OP_DIV && which == 1)) x[i] = 0.5 + 1.5 * fabs(u);
        else if (op == VKG_OP_WHERE && which == 0) x[i] = u > 0 ? 1.0 : 0.0;
        else x[i] = (u < 0 ? -1 : 1) * (0.2 + 1.8 * fabs(u));
        x[i] = (float)x[i]; /* the device sees the float value: the reference must too */
    }
    free(f);
}

static void ref_forward(const gc_case *c, double *y, vkg_shape ys, double *const *x) {
    switch (vkg_op_table[c->op].kind) {
    case VKG_KIND_UNARY: vkg_ref_unary_f64(c->op, y, x[0], (size_t)vkg_shape_numel(c->shape[0]), c->s); break;
    case VKG_KIND_BINARY:
        if (c->scalar_form) {
            double s = c->s;
            vkg_ref_binary_f64(c->op, y, ys, x[0], c->shape[0], &s, VKG_SCALAR);
        } else {
            vkg_ref_binary_f64(c->op, y, ys, x[0], c->shape[0], x[1], c->shape[1]);
        }
        break;
    case VKG_KIND_TERNARY: vkg_ref_where_f64(y, ys, x[0], c->shape[0], x[1], c->shape[1], x[2], c->shape[2]); break;
    case VKG_KIND_REDUCE: vkg_ref_reduce_f64(c->op, y, NULL, x[0], c->shape[0], c->axis); break;
    case VKG_KIND_MATMUL: vkg_ref_matmul_f64(y, x[0], c->shape[0], x[1], c->shape[1]); break;
    case VKG_KIND_COPY: memcpy(y, x[0], sizeof(double) * (size_t)vkg_shape_numel(ys)); break;
    default: cr_assert_fail("no reference for %s", vkg_op_table[c->op].name);
    }
}

/* dx[i] = dL/dx_i for L = sum(y * w). */
static void ref_backward(const gc_case *c, double *const *dx, vkg_shape ys, double *const *x, const double *w) {
    switch (vkg_op_table[c->op].kind) {
    case VKG_KIND_UNARY: vkg_ref_unary_backward_f64(c->op, dx[0], x[0], w, (size_t)vkg_shape_numel(ys), c->s); break;
    case VKG_KIND_BINARY:
        if (c->scalar_form) {
            double s = c->s, ds = 0;
            vkg_ref_binary_backward_f64(c->op, dx[0], c->shape[0], &ds, VKG_SCALAR, x[0], &s, w, ys);
        } else {
            vkg_ref_binary_backward_f64(c->op, dx[0], c->shape[0], dx[1], c->shape[1], x[0], x[1], w, ys);
        }
        break;
    case VKG_KIND_TERNARY: vkg_ref_where_backward_f64(dx[1], c->shape[1], dx[2], c->shape[2], x[0], c->shape[0], w, ys); break;
    case VKG_KIND_REDUCE: vkg_ref_reduce_backward_f64(c->op, dx[0], x[0], c->shape[0], c->axis, w); break;
    case VKG_KIND_MATMUL: vkg_ref_matmul_backward_f64(dx[0], dx[1], x[0], c->shape[0], x[1], c->shape[1], w); break;
    case VKG_KIND_COPY:
        for (int64_t i = 0; i < vkg_shape_numel(ys); i++) dx[0][i] += w[i];
        break;
    default: cr_assert_fail("no backward reference for %s", vkg_op_table[c->op].name);
    }
}

static vkg_tensor *device_forward(const gc_case *c, vkg_tensor **in) {
    switch (vkg_op_table[c->op].kind) {
    case VKG_KIND_UNARY: return c->op == VKG_OP_POW ? vkg_pow(in[0], c->s) : vkg_unary(c->op, in[0]);
    case VKG_KIND_BINARY: return c->scalar_form ? vkg_binary_scalar(c->op, in[0], c->s) : vkg_binary(c->op, in[0], in[1]);
    case VKG_KIND_TERNARY: return vkg_where(in[0], in[1], in[2]);
    case VKG_KIND_REDUCE: return c->axis == VKG_REF_ALL ? vkg_reduce_all(c->op, in[0]) : vkg_reduce(c->op, in[0], c->axis, c->keepdim);
    case VKG_KIND_MATMUL: return vkg_matmul(in[0], in[1]);
    case VKG_KIND_COPY: return vkg_copy(in[0]);
    default: return NULL;
    }
}

static bool differentiable_input(const gc_case *c, int i) { return !(c->op == VKG_OP_WHERE && i == 0); }

/* Adapters from a table row to the shared gradient check (tests/gradcheck.c). */
static void gc_init(int i, double *x, size_t n, void *ctx) {
    const gc_case *c = ctx;
    make_values(x, n, c->op, i, c->seed + (uint64_t)i);
}
static vkg_tensor *gc_device(vkg_tensor **in, void *ctx) { return device_forward(ctx, in); }
static void gc_forward(double *y, vkg_shape ys, double *const *x, void *ctx) { ref_forward(ctx, y, ys, x); }
static void gc_backward(double *const *dx, vkg_shape ys, double *const *x, const double *dy, void *ctx) {
    ref_backward(ctx, dx, ys, x, dy);
}

static void gradcheck(const gc_case *c0, uint64_t seed) {
    gc_case c = *c0;
    c.seed = seed;
    vkgt_gc g = { .name = vkg_op_table[c.op].name, .nin = c.nin, .init = gc_init, .device = gc_device,
                  .forward = gc_forward, .backward = gc_backward, .ctx = &c, .seed = seed };
    for (int i = 0; i < c.nin; i++) {
        g.shape[i] = c.shape[i];
        g.transposed[i] = c.transposed[i];
        g.constant[i] = !differentiable_input(&c, i);
    }
    vkgt_gradcheck(&g);
}

VKG_TEST(autograd, unary_gradcheck) {
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_UNARY) continue;
        cr_assert(vkg_op_table[op].has_backward, "%s has no backward", vkg_op_table[op].name);
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(37) }, .s = 3.0f }, SEED + (uint64_t)op);
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(5, 7) }, .transposed = { true }, .s = 1.5f },
                  SEED + 50 + (uint64_t)op);
    }
}

VKG_TEST(autograd, binary_gradcheck) {
    const vkg_shape a[] = { VKG_SHAPE(37), VKG_SHAPE(4, 1, 5), VKG_SHAPE(5, 7), VKG_SCALAR };
    const vkg_shape b[] = { VKG_SHAPE(37), VKG_SHAPE(3, 1), VKG_SHAPE(7), VKG_SHAPE(2, 3) };
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_BINARY || !vkg_op_table[op].has_backward) continue;
        for (int k = 0; k < 4; k++)
            gradcheck(&(gc_case){ .op = op, .nin = 2, .shape = { a[k], b[k] }, .transposed = { k == 2 } },
                      SEED + 100 * (uint64_t)k + (uint64_t)op);
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(6, 5) }, .scalar_form = true, .s = 0.7f },
                  SEED + 7 + (uint64_t)op);
    }
}

VKG_TEST(autograd, where_gradcheck) {
    gradcheck(&(gc_case){ .op = VKG_OP_WHERE, .nin = 3, .shape = { VKG_SHAPE(5, 7), VKG_SHAPE(5, 7), VKG_SHAPE(7) },
                          .transposed = { false, true, false } },
              SEED);
    gradcheck(&(gc_case){ .op = VKG_OP_WHERE, .nin = 3, .shape = { VKG_SHAPE(7), VKG_SHAPE(3, 1), VKG_SCALAR } }, SEED + 1);
}

VKG_TEST(autograd, reduce_gradcheck) {
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_REDUCE || !vkg_op_table[op].has_backward) continue;
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(5, 7) }, .axis = 1 }, SEED + (uint64_t)op);
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(5, 7) }, .axis = 0, .keepdim = true,
                              .transposed = { true } },
                  SEED + 10 + (uint64_t)op);
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(3, 4, 5) }, .axis = VKG_REF_ALL }, SEED + 20 + (uint64_t)op);
        gradcheck(&(gc_case){ .op = op, .nin = 1, .shape = { VKG_SHAPE(2, 700) }, .axis = -1 }, SEED + 30 + (uint64_t)op);
    }
}

VKG_TEST(autograd, matmul_and_copy_gradcheck) {
    const vkg_shape a[] = { VKG_SHAPE(5, 7), VKG_SHAPE(7), VKG_SHAPE(5, 7), VKG_SHAPE(2, 1, 3, 4), VKG_SHAPE(6, 9), VKG_SHAPE(7) };
    const vkg_shape b[] = { VKG_SHAPE(7, 3), VKG_SHAPE(7, 3), VKG_SHAPE(7), VKG_SHAPE(5, 4, 2), VKG_SHAPE(9, 4), VKG_SHAPE(7) };
    for (int k = 0; k < 6; k++)
        gradcheck(&(gc_case){ .op = VKG_OP_MATMUL, .nin = 2, .shape = { a[k], b[k] }, .transposed = { k == 4, k == 4 } },
                  SEED + (uint64_t)k);
    gradcheck(&(gc_case){ .op = VKG_OP_COPY, .nin = 1, .shape = { VKG_SHAPE(6, 5) }, .transposed = { true } }, SEED);
}

/* matmul_bias_act: inputs a, b and (with a bias) bias (N); the reference backward takes the
 * output, as the device rule does (relu's mask from y; gelu's z the reference makes again, the
 * device rule reads what the kernel stored). */
typedef struct bias_act_case {
    vkg_shape as, bs;
    bool bias;
    vkg_activation act;
} bias_act_case;

static void ba_init(int i, double *x, size_t n, void *ctx) {
    (void)ctx;
    make_values(x, n, VKG_OP_MATMUL_BIAS_ACT, i, SEED + 31 * (uint64_t)i + n);
}
static vkg_tensor *ba_device(vkg_tensor **in, void *ctx) {
    const bias_act_case *c = ctx;
    return vkg_matmul_bias_act(in[0], in[1], c->bias ? in[2] : NULL, c->act);
}
static void ba_forward(double *y, vkg_shape ys, double *const *x, void *ctx) {
    const bias_act_case *c = ctx;
    (void)ys;
    vkg_ref_matmul_bias_act_f64(y, x[0], c->as, x[1], c->bs, c->bias ? x[2] : NULL, c->act);
}
static void ba_backward(double *const *dx, vkg_shape ys, double *const *x, const double *dy, void *ctx) {
    const bias_act_case *c = ctx;
    size_t n = (size_t)vkg_shape_numel(ys);
    double *y = malloc((n ? n : 1) * sizeof *y);
    ba_forward(y, ys, x, ctx);
    vkg_ref_matmul_bias_act_backward_f64(dx[0], dx[1], c->bias ? dx[2] : NULL, x[0], c->as, x[1], c->bs,
                                         c->bias ? x[2] : NULL, c->act, y, dy);
    free(y);
}

VKG_TEST(autograd, matmul_bias_act_gradcheck) {
    /* shapes off the workgroup sizes; transposed views; batched (the bias's gradient sums the
     * batch too); a 1-D a; a 1-D b (bias (1)) */
    const vkg_shape a[] = { VKG_SHAPE(5, 7), VKG_SHAPE(6, 9), VKG_SHAPE(2, 3, 4), VKG_SHAPE(2, 1, 3, 4), VKG_SHAPE(7),
                            VKG_SHAPE(5, 7), VKG_SHAPE(37, 20) };
    const vkg_shape b[] = { VKG_SHAPE(7, 3), VKG_SHAPE(9, 4), VKG_SHAPE(4, 5), VKG_SHAPE(5, 4, 2), VKG_SHAPE(7, 3),
                            VKG_SHAPE(7), VKG_SHAPE(20, 13) };
    static const char *const act_names[] = { "none", "relu", "gelu" };
    for (int act = VKG_ACTIVATION_NONE; act <= VKG_ACTIVATION_GELU; act++)
        for (int wb = 0; wb < 2; wb++)
            for (int k = 0; k < (int)(sizeof a / sizeof *a); k++) {
                if (!wb && act == VKG_ACTIVATION_NONE) continue; /* vkg_matmul's check */
                bias_act_case c = { a[k], b[k], wb, (vkg_activation)act };
                vkg_shape bias = VKG_SHAPE(b[k].ndim == 1 ? 1 : b[k].d[b[k].ndim - 1]);
                char name[64];
                snprintf(name, sizeof name, "matmul_bias_act case %d bias %d %s", k, wb, act_names[act]);
                bool tr = k == 1 || k == 6;
                vkgt_gc g = { .name = name, .nin = wb ? 3 : 2, .shape = { a[k], b[k], bias },
                              .transposed = { tr, tr }, .init = ba_init, .device = ba_device, .forward = ba_forward,
                              .backward = ba_backward, .ctx = &c, .seed = SEED + (uint64_t)(100 * act + 10 * wb + k) };
                vkgt_gradcheck(&g);
            }
    /* gelu's z is stored by each kernel's epilogue: each forced in turn (the loop above ran the
     * device's choice); an odd N (scalar stores) and one of 16 (vec4 stores) */
    const char *const kernels[] = { "general", "tiled", "reg", "reg_sg" };
    const char *val = getenv("VKG_VALIDATE");
    for (int v = 0; v < 4; v++)
        for (int k = 0; k < 2; k++) {
            if (val && strcmp(val, "full") == 0 && v >= 2) continue; /* GPU-AV: minutes per reg kernel */
            vkg_shape as = VKG_SHAPE(9, 20), bs = k ? VKG_SHAPE(20, 16) : VKG_SHAPE(20, 13);
            bias_act_case c = { as, bs, true, VKG_ACTIVATION_GELU };
            char name[64];
            snprintf(name, sizeof name, "matmul_bias_act gelu %s N %lld", kernels[v], (long long)bs.d[1]);
            setenv("VKG_MATMUL_VARIANT", kernels[v], 1);
            vkgt_gc g = { .name = name, .nin = 3, .shape = { as, bs, VKG_SHAPE(bs.d[1]) }, .init = ba_init,
                          .device = ba_device, .forward = ba_forward, .backward = ba_backward, .ctx = &c,
                          .seed = SEED + 500 + (uint64_t)(10 * v + k) };
            vkgt_gradcheck(&g);
            unsetenv("VKG_MATMUL_VARIANT");
        }
    /* and z from the ops that run the epilogue after a split-K sum */
    setenv("VKG_MATMUL_SPLIT_K", "4", 1);
    bias_act_case c = { VKG_SHAPE(9, 20), VKG_SHAPE(20, 13), true, VKG_ACTIVATION_GELU };
    vkgt_gc g = { .name = "matmul_bias_act gelu split-K", .nin = 3, .shape = { c.as, c.bs, VKG_SHAPE(13) },
                  .init = ba_init, .device = ba_device, .forward = ba_forward, .backward = ba_backward, .ctx = &c,
                  .seed = SEED + 600 };
    vkgt_gradcheck(&g);
    unsetenv("VKG_MATMUL_SPLIT_K");
}

/* GELU's backward folded into the product that makes its upstream gradient (gelu_fold in
 * lib/autograd/backward.c): h = gelu(x W1^T + b1), y = h W2^T, backward from a given dy. With
 * the product h's only consumer, gelu' runs in its epilogue; a second consumer of h (a relu the
 * backward never reaches) turns the fold off. The gradients of x, W1, b1 and W2 are bitwise
 * equal both ways, for each kernel forced, N odd (scalar stores) and a multiple of 4 (vec4
 * stores), x 3-D like the transformer's (B, T, E); the explain trace shows that only the
 * unfolded runs dispatched gelu's own backward. */
static char fold_trace[64];
static void fold_init(void) {
    snprintf(fold_trace, sizeof fold_trace, "/tmp/vkg_fold_XXXXXX");
    int fd = mkstemp(fold_trace);
    cr_assert(fd >= 0);
    close(fd);
    setenv("VKG_EXPLAIN", fold_trace, 1);
    vkgt_setup();
}

static vkg_tensor *fold_leaf(vkg_shape s, uint64_t seed) { return vkgt_leaf(s, -1.5f, 1.5f, seed); }

/* the four gradients, read back, of the chain above; with second_consumer h has another */
static void fold_grads(vkg_shape xs, int64_t H, int64_t O, bool second_consumer, float *out[4], size_t n[4]) {
    vkg_scope_begin();
    int64_t I = xs.d[xs.ndim - 1];
    vkg_tensor *in[4] = { fold_leaf(xs, SEED + 1), fold_leaf(VKG_SHAPE(H, I), SEED + 2),
                          fold_leaf(VKG_SHAPE(H), SEED + 3), fold_leaf(VKG_SHAPE(O, H), SEED + 4) };
    vkg_tensor *h = vkg_matmul_bias_act(in[0], vkg_transpose(in[1], 0, 1), in[2], VKG_ACTIVATION_GELU);
    vkg_tensor *other = second_consumer ? vkg_relu(h) : NULL;
    vkg_tensor *y = vkg_matmul(h, vkg_transpose(in[3], 0, 1));
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_assert(!second_consumer || other, "%s", vkg_last_error());
    vkg_shape ys = { .ndim = xs.ndim };
    for (int i = 0; i < xs.ndim - 1; i++) ys.d[i] = xs.d[i];
    ys.d[xs.ndim - 1] = O;
    vkg_tensor *dy = fold_leaf(ys, SEED + 5);
    vkg_requires_grad(dy, false);
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = dy }), VKG_OK, "%s", vkg_last_error());
    for (int i = 0; i < 4; i++) {
        out[i] = vkgt_read(vkg_grad(in[i]));
        n[i] = (size_t)vkg_numel(in[i]);
    }
    vkg_scope_end();
}

static int count_of(const char *text, const char *s) {
    int c = 0;
    for (const char *p = strstr(text, s); p; p = strstr(p + 1, s)) c++;
    return c;
}

Test(autograd, gelu_fold_matches_the_unfolded_backward, .init = fold_init) {
    static const char *const names[] = { "x", "W1", "b1", "W2" };
    const char *const kernels[] = { "", "general", "tiled", "reg", "reg_sg", "reg_tex", "reg_sg_tex" };
    const vkg_shape xs[] = { VKG_SHAPE(2, 5, 12), VKG_SHAPE(9, 20) };
    const int64_t hs[] = { 16, 13 };
    int runs = 0;
    for (size_t v = 0; v < sizeof kernels / sizeof *kernels; v++)
        for (int k = 0; k < 2; k++) {
            setenv("VKG_MATMUL_VARIANT", kernels[v], 1);
            float *folded[4], *unfolded[4];
            size_t n[4];
            fold_grads(xs[k], hs[k], 7, false, folded, n);
            fold_grads(xs[k], hs[k], 7, true, unfolded, n);
            runs++;
            for (int i = 0; i < 4; i++) {
                for (size_t e = 0; e < n[i]; e++)
                    cr_assert(folded[i][e] == unfolded[i][e], "[%s] H %lld: d%s[%zu] is %.9g folded, %.9g not",
                              kernels[v], (long long)hs[k], names[i], e, folded[i][e], unfolded[i][e]);
                free(folded[i]);
                free(unfolded[i]);
            }
        }
    unsetenv("VKG_MATMUL_VARIANT");
    vkgt_finish();
    FILE *f = fopen(fold_trace, "rb");
    cr_assert_not_null(f);
    static char text[1 << 22];
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = '\0';
    fclose(f);
    remove(fold_trace);
    cr_assert_lt(len, sizeof text - 1, "the trace is longer than the buffer");
    cr_expect_eq(count_of(text, " gelu backward: "), runs, "one gelu backward per unfolded run, none per folded one");
}

/* vkg_matmul_bias_act_residual's backward: the gradients of x, W, b and r are bitwise those of
 * vkg_add(r, vkg_matmul_bias_act(x, W^T, b, none)), for the device's kernel and two forced. */
static void residual_grads(bool fused, float *out[4], size_t n[4]) {
    vkg_scope_begin();
    vkg_tensor *in[4] = { vkgt_leaf(VKG_SHAPE(2, 5, 12), -1.5f, 1.5f, SEED + 11),
                          vkgt_leaf(VKG_SHAPE(16, 12), -1.5f, 1.5f, SEED + 12),
                          vkgt_leaf(VKG_SHAPE(16), -1.5f, 1.5f, SEED + 13),
                          vkgt_leaf(VKG_SHAPE(2, 5, 16), -1.5f, 1.5f, SEED + 14) };
    vkg_tensor *wt = vkg_transpose(in[1], 0, 1);
    vkg_tensor *y = fused ? vkg_matmul_bias_act_residual(in[0], wt, in[2], in[3])
                          : vkg_add(in[3], vkg_matmul_bias_act(in[0], wt, in[2], VKG_ACTIVATION_NONE));
    cr_assert_not_null(y, "%s", vkg_last_error());
    vkg_tensor *dy = vkg_requires_grad(vkgt_leaf(VKG_SHAPE(2, 5, 16), -1.5f, 1.5f, SEED + 15), false);
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = dy }), VKG_OK, "%s", vkg_last_error());
    for (int i = 0; i < 4; i++) {
        out[i] = vkgt_read(vkg_grad(in[i]));
        n[i] = (size_t)vkg_numel(in[i]);
    }
    vkg_scope_end();
}

VKG_TEST(autograd, matmul_bias_act_residual_matches_the_add) {
    static const char *const names[] = { "x", "W", "b", "r" };
    const char *const kernels[] = { "", "tiled", "reg_sg" };
    for (size_t v = 0; v < sizeof kernels / sizeof *kernels; v++) {
        setenv("VKG_MATMUL_VARIANT", kernels[v], 1);
        float *fused[4], *added[4];
        size_t n[4];
        residual_grads(true, fused, n);
        residual_grads(false, added, n);
        for (int i = 0; i < 4; i++) {
            for (size_t e = 0; e < n[i]; e++)
                cr_assert(fused[i][e] == added[i][e], "[%s] d%s[%zu] is %.9g fused, %.9g added", kernels[v], names[i],
                          e, fused[i][e], added[i][e]);
            free(fused[i]);
            free(added[i]);
        }
    }
    unsetenv("VKG_MATMUL_VARIANT");
}

VKG_TEST(autograd, every_differentiable_op_is_checked) {
    /* the gradchecks above ran in other processes: repeat one per kind here, then check the table */
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        const vkg_op_info *o = &vkg_op_table[op];
        if (!o->has_backward) continue;
        cr_assert(o->kind == VKG_KIND_UNARY || o->kind == VKG_KIND_BINARY || o->kind == VKG_KIND_TERNARY ||
                      o->kind == VKG_KIND_REDUCE || o->kind == VKG_KIND_MATMUL || o->kind == VKG_KIND_COPY ||
                      o->kind == VKG_KIND_CONV /* gradchecks in tests/test_conv_ops.c */ ||
                      o->kind == VKG_KIND_NN /* gradchecks in tests/test_nn_ops.c */ ||
                      o->kind == VKG_KIND_SEQ /* gradchecks in tests/test_seq_ops.c */,
                  "%s has a backward of a kind the gradchecks do not cover", o->name);
    }
}

/* ---- the engine ----------------------------------------------------------------------------- */
static float *grad_of(vkg_tensor *t) {
    vkg_tensor *g = vkg_grad(t);
    cr_assert_not_null(g, "no gradient");
    return vkgt_read(g);
}

VKG_TEST(autograd, accumulates_uses_and_calls) {
    vkg_tensor *x = vkg_requires_grad(vkg_from_data(VKG_SHAPE(3), (float[]){ 1, 2, 3 }), true);
    vkg_scope_begin();
    /* x used twice: d/dx sum(x*x + 3x) = 2x + 3 */
    vkg_tensor *l = vkg_sum_all(vkg_add(vkg_mul(x, x), vkg_mul_scalar(x, 3.0f)));
    cr_assert_eq(vkg_backward(l), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    float *g = grad_of(x);
    cr_assert_eq(g[0], 5.0f);
    cr_assert_eq(g[2], 9.0f);
    free(g);
    vkg_scope_begin(); /* a second backward adds */
    cr_assert_eq(vkg_backward(vkg_sum_all(x)), VKG_OK);
    vkg_scope_end();
    g = grad_of(x);
    cr_assert_eq(g[1], 8.0f);
    free(g);
    vkg_zero_grad(x);
    cr_assert_null(vkg_grad(x));
    vkg_memory_stats m = vkg_memory_stats_get();
    cr_assert_leq(m.in_use, 64, "only x remains: %llu bytes", (unsigned long long)m.in_use);
}

/* A leaf keeps a gradient the backward made without copying it (autograd.c, grad_adoptable):
 * two leaves handed one gradient, the caller's grad_output and a transposed weight's gradient
 * must still each end up with a buffer of their own. */
VKG_TEST(autograd, leaf_gradients_do_not_share_buffers) {
    vkg_tensor *a = vkg_requires_grad(vkg_from_data(VKG_SHAPE(3), (float[]){ 1, 2, 3 }), true);
    vkg_tensor *b = vkg_requires_grad(vkg_from_data(VKG_SHAPE(3), (float[]){ 4, 5, 6 }), true);
    vkg_tensor *gy = vkg_from_data(VKG_SHAPE(3), (float[]){ 1, 2, 3 });
    vkg_scope_begin();
    /* add's rule hands the same gradient to a and b */
    cr_assert_eq(vkg_backward(vkg_sum_all(vkg_add(a, b))), VKG_OK, "%s", vkg_last_error());
    cr_assert_not_null(vkg_fill_(vkg_grad(a), 7.0f));
    float *gb = grad_of(b);
    for (int i = 0; i < 3; i++) cr_assert_eq(gb[i], 1.0f, "b's gradient changed with a's: %g", (double)gb[i]);
    free(gb);
    vkg_zero_grad(a);
    vkg_zero_grad(b);
    /* grad_output passed straight through to a leaf, whether the output is the leaf or an add */
    cr_assert_eq(vkg_backward_desc_run(a, &(vkg_backward_desc){ .grad_output = gy }), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_backward_desc_run(vkg_add(b, vkg_zeros(VKG_SHAPE(3))), &(vkg_backward_desc){ .grad_output = gy }),
                 VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    cr_assert_not_null(vkg_fill_(gy, -1.0f));
    float *ga = grad_of(a);
    gb = grad_of(b);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ga[i], (float)(i + 1), "a's gradient follows the caller's grad_output: %g", (double)ga[i]);
        cr_assert_eq(gb[i], (float)(i + 1), "b's gradient follows the caller's grad_output: %g", (double)gb[i]);
    }
    free(ga);
    free(gb);
    /* a weight used as W^T over batched rows: its gradient is contiguous, and right */
    vkg_tensor *w = vkg_requires_grad(vkg_from_data(VKG_SHAPE(2, 3), (float[]){ 1, 2, 3, 4, 5, 6 }), true);
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(2, 2, 3), (float[]){ 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1 });
    vkg_scope_begin();
    cr_assert_eq(vkg_backward(vkg_sum_all(vkg_matmul(x, vkg_transpose(w, 0, 1)))), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    cr_assert(vkg_is_contiguous(vkg_grad(w)));
    float *gw = grad_of(w); /* every row of w gets the sum of x's rows: (2, 2, 2) */
    for (int i = 0; i < 6; i++) cr_assert_eq(gw[i], 2.0f, "dw[%d] = %g", i, (double)gw[i]);
    free(gw);
}

VKG_TEST(autograd, views_and_broadcasting) {
    float v[12];
    for (int i = 0; i < 12; i++) v[i] = (float)i;
    vkg_tensor *x = vkg_requires_grad(vkg_from_data(VKG_SHAPE(3, 4), v), true);
    vkg_tensor *b = vkg_requires_grad(vkg_from_data(VKG_SHAPE(4), (float[]){ 1, 1, 1, 1 }), true);
    vkg_scope_begin();
    /* reshape, permute, slice and expand in one chain */
    vkg_tensor *r = vkg_reshape(x, VKG_SHAPE(2, 6));              /* (2, 6)    */
    vkg_tensor *p = vkg_transpose(r, 0, 1);                        /* (6, 2)    */
    vkg_tensor *s = vkg_slice(p, 0, 1, 6, 2);                      /* rows 1, 3, 5: (3, 2) */
    vkg_tensor *e = vkg_expand(vkg_unsqueeze(s, 0), VKG_SHAPE(4, 3, 2));
    vkg_tensor *loss = vkg_sum_all(vkg_add(e, vkg_zeros(VKG_SHAPE(2))));
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    /* broadcasting: b (4,) added to every row of x (3, 4) */
    vkg_tensor *l2 = vkg_sum_all(vkg_mul(vkg_add(x, b), vkg_full(VKG_SHAPE(3, 4), 2.0f)));
    cr_assert_eq(vkg_backward(l2), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    float *gx = grad_of(x), *gb = grad_of(b);
    /* x flat index k = 6*row + col of r; p[j][i] = r[i][j]; s takes j = 1, 3, 5: 4 copies each */
    for (int k = 0; k < 12; k++) {
        int col = k % 6;
        float want = (col % 2 == 1 ? 4.0f : 0.0f) + 2.0f;
        cr_assert_eq(gx[k], want, "x[%d]: %g, want %g", k, (double)gx[k], (double)want);
    }
    for (int j = 0; j < 4; j++) cr_assert_eq(gb[j], 6.0f);
    free(gx);
    free(gb);
}

/* Slices of a tensor inside the graph add their gradients into one gradient of it, in place:
 * overlapping slices, a strided one, and a whole use of the same tensor all count. */
VKG_TEST(autograd, slices_of_a_node_accumulate) {
    float v[8], w[8];
    for (int i = 0; i < 8; i++) v[i] = (float)i - 3.0f, w[i] = 0.5f * (float)i + 1.0f;
    vkg_tensor *a = vkg_requires_grad(vkg_from_data(VKG_SHAPE(8), v), true);
    vkg_tensor *wt = vkg_from_data(VKG_SHAPE(8), w);
    vkg_scope_begin();
    vkg_tensor *x = vkg_mul_scalar(a, 3.0f);                           /* a node, not a leaf */
    vkg_tensor *l1 = vkg_sum_all(vkg_mul(vkg_narrow(x, 0, 0, 5), vkg_narrow(wt, 0, 0, 5)));
    vkg_tensor *l2 = vkg_sum_all(vkg_mul_scalar(vkg_narrow(x, 0, 3, 5), 2.0f));   /* overlaps 3, 4 */
    vkg_tensor *l3 = vkg_sum_all(vkg_slice(x, 0, 1, 8, 3));                        /* 1, 4, 7 */
    vkg_tensor *l4 = vkg_sum_all(vkg_mul(x, wt));                                  /* all of x */
    vkg_tensor *loss = vkg_add(vkg_add(l1, l2), vkg_add(l3, l4));
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    float *ga = grad_of(a);
    for (int i = 0; i < 8; i++) {
        float dx = (i < 5 ? w[i] : 0.0f) + (i >= 3 ? 2.0f : 0.0f) + (i % 3 == 1 ? 1.0f : 0.0f) + w[i];
        cr_assert_float_eq(ga[i], 3.0f * dx, 1e-5f, "a[%d]: %g, want %g", i, (double)ga[i], (double)(3.0f * dx));
    }
    free(ga);
}

VKG_TEST(autograd, no_grad_and_detach) {
    vkg_tensor *w = vkg_requires_grad(vkg_ones(VKG_SHAPE(4)), true);
    vkg_scope_begin();
    vkg_no_grad_begin();
    vkg_tensor *y = vkg_mul_scalar(w, 2.0f);
    vkg_no_grad_end();
    cr_assert(!vkg_tensor_requires_grad(y), "no_grad records nothing");
    vkg_tensor *d = vkg_detach(vkg_mul_scalar(w, 3.0f));
    cr_assert(!vkg_tensor_requires_grad(d));
    cr_assert(vkg_is_leaf(d));
    vkg_tensor *l = vkg_sum_all(vkg_mul(w, d)); /* d is a constant: d/dw = d = 3 */
    cr_assert_eq(vkg_backward(l), VKG_OK);
    vkg_scope_end();
    float *g = grad_of(w);
    cr_assert_eq(g[3], 3.0f);
    free(g);
    cr_assert(vkg_grad_enabled());
}

VKG_TEST(autograd, grad_output_for_non_scalars) {
    vkg_tensor *x = vkg_requires_grad(vkg_from_data(VKG_SHAPE(2, 2), (float[]){ 1, 2, 3, 4 }), true);
    vkg_scope_begin();
    vkg_tensor *y = vkg_mul(x, x);
    vkg_clear_error();
    cr_assert_eq(vkg_backward(y), VKG_ERR_INVALID, "a non-scalar needs grad_output");
    cr_assert(strstr(vkg_last_error(), "(2, 2)") && strstr(vkg_last_error(), "grad_output"), "%s", vkg_last_error());
    vkg_tensor *gy = vkg_from_data(VKG_SHAPE(2, 2), (float[]){ 1, 0, 0, 1 });
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = gy }), VKG_OK, "%s", vkg_last_error());
    vkg_tensor *bad = vkg_ones(VKG_SHAPE(4));
    cr_assert_eq(vkg_backward_desc_run(vkg_mul(x, x), &(vkg_backward_desc){ .grad_output = bad }), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "(4,)"), "%s", vkg_last_error());
    vkg_scope_end();
    float *g = grad_of(x);
    cr_assert_eq(g[0], 2.0f);
    cr_assert_eq(g[1], 0.0f);
    cr_assert_eq(g[3], 8.0f);
    free(g);
}

VKG_TEST(autograd, refusals) {
    vkg_tensor *w = vkg_requires_grad(vkg_ones(VKG_SHAPE(3)), true);
    /* backward twice through a freed graph */
    vkg_scope_begin();
    vkg_tensor *l = vkg_sum_all(vkg_exp(w));
    cr_assert_eq(vkg_backward(l), VKG_OK);
    vkg_clear_error();
    cr_assert_eq(vkg_backward(l), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "already freed") && strstr(vkg_last_error(), "retain_graph"), "%s",
              vkg_last_error());
    /* ... unless the first one retained it */
    vkg_tensor *l2 = vkg_sum_all(vkg_exp(w));
    cr_assert_eq(vkg_backward_desc_run(l2, &(vkg_backward_desc){ .retain_graph = true }), VKG_OK);
    cr_assert_eq(vkg_backward(l2), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    /* a graph whose scope ended: the loss was kept, the tensors it came from were not */
    vkg_scope_begin();
    vkg_tensor *kept = vkg_keep(vkg_sum_all(vkg_mul(vkg_exp(w), w)));
    vkg_scope_end();
    vkg_clear_error();
    cr_assert_eq(vkg_backward(kept), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "freed") && strstr(vkg_last_error(), "scope"), "%s", vkg_last_error());
    vkg_free(kept);
    /* a loss that needs no gradient, an i32 leaf, NULL */
    vkg_scope_begin();
    cr_assert_eq(vkg_backward(vkg_sum_all(vkg_ones(VKG_SHAPE(3)))), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "does not require grad"), "%s", vkg_last_error());
    int32_t ints[2] = { 1, 2 };
    cr_assert_null(vkg_requires_grad(vkg_from_data_dtype(VKG_SHAPE(2), VKG_I32, ints), true));
    cr_assert(strstr(vkg_last_error(), "i32"), "%s", vkg_last_error());
    cr_assert_null(vkg_requires_grad(vkg_exp(w), false), "a computed tensor cannot drop requires_grad");
    vkg_clear_error();
    cr_assert_neq(vkg_backward(NULL), VKG_OK);
    vkg_scope_end();
}

/* Same seed, same device: two runs of 20 steps of a small network give identical bits. */
static void train_20_steps(float *out, size_t n) {
    vkg_tensor *w1 = vkg_keep(vkg_requires_grad(vkg_randn(VKG_SHAPE(8, 16), &(vkg_rand_desc){ .seed = 3, .std = 0.3f }), true));
    vkg_tensor *w2 = vkg_keep(vkg_requires_grad(vkg_randn(VKG_SHAPE(16, 1), &(vkg_rand_desc){ .seed = 4, .std = 0.3f }), true));
    vkg_tensor *x = vkg_keep(vkg_randn(VKG_SHAPE(32, 8), &(vkg_rand_desc){ .seed = 5 }));
    vkg_tensor *t = vkg_keep(vkg_rand(VKG_SHAPE(32, 1), &(vkg_rand_desc){ .seed = 6 }));
    for (int step = 0; step < 20; step++) {
        vkg_scope_begin();
        vkg_tensor *pred = vkg_matmul(vkg_tanh(vkg_matmul(x, w1)), w2);
        vkg_tensor *d = vkg_sub(pred, t);
        cr_assert_eq(vkg_backward(vkg_mean_all(vkg_mul(d, d))), VKG_OK, "%s", vkg_last_error());
        vkg_no_grad_begin(); /* plain SGD, in place of the optimizers to come */
        vkg_tensor *n1 = vkg_sub(w1, vkg_mul_scalar(vkg_grad(w1), 0.1f));
        vkg_tensor *n2 = vkg_sub(w2, vkg_mul_scalar(vkg_grad(w2), 0.1f));
        vkg_no_grad_end();
        float h1[8 * 16], h2[16];
        cr_assert_eq(vkg_tensor_read(n1, h1, sizeof h1), VKG_OK);
        cr_assert_eq(vkg_tensor_read(n2, h2, sizeof h2), VKG_OK);
        cr_assert_eq(vkg_tensor_write(w1, h1, sizeof h1), VKG_OK);
        cr_assert_eq(vkg_tensor_write(w2, h2, sizeof h2), VKG_OK);
        vkg_zero_grad(w1);
        vkg_zero_grad(w2);
        vkg_scope_end();
    }
    cr_assert_eq(vkg_tensor_read(w1, out, n * sizeof(float)), VKG_OK);
}

VKG_TEST(autograd, training_is_bitwise_reproducible) {
    float a[128], b[128];
    train_20_steps(a, 128);
    vkg_shutdown();
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK);
    train_20_steps(b, 128);
    cr_assert_arr_eq(a, b, sizeof a, "two runs with one seed must give identical parameters");
}
