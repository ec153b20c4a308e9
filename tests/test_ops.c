/* Every op of the table against its C reference (vkgrad/reference.h): sizes that are not
 * multiples of the workgroup size, 0-size and 1-element tensors, broadcasting of every kind,
 * non-contiguous views as inputs. The loops walk vkg_op_table, so a new op of a known kind is
 * tested without a new line here; the last test checks that every op was covered. */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/ops.h"
#include "support.h"
#include "vkgrad/graph.h"

#define SEED 20261126u

/* A test input: host values and the device tensor, possibly a non-contiguous view of them. */
typedef struct input {
    vkg_shape shape;
    float *host;   /* contiguous values in `shape` (what the view shows)                    */
    vkg_tensor *t; /* device tensor with these values                                        */
} input;

typedef enum layout { CONTIG, TRANSPOSED, STRIDED, EXPANDED } layout;

/* Makes a tensor of `shape` whose values are host, laid out as asked: a transposed view of a
 * contiguous tensor, every second element of a larger one, or an expand of a size-1 dim. */
static input make_input(vkg_shape shape, float lo, float hi, uint64_t seed, layout how) {
    input in = { .shape = shape };
    size_t n = (size_t)vkg_shape_numel(shape);
    in.host = malloc((n ? n : 1) * sizeof(float));
    vkgt_fill(in.host, n, lo, hi, seed);
    if (how == TRANSPOSED && shape.ndim >= 2) {
        /* store the transpose of the last two dims, then transpose back as a view */
        vkg_shape ts = shape;
        int a = shape.ndim - 2, b = shape.ndim - 1;
        ts.d[a] = shape.d[b];
        ts.d[b] = shape.d[a];
        float *tbuf = malloc((n ? n : 1) * sizeof(float));
        int64_t R = shape.d[a], C = shape.d[b], batch = (R > 0 && C > 0) ? (int64_t)n / (R * C) : 0;
        for (int64_t k = 0; k < batch; k++)
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++) tbuf[k * R * C + j * R + i] = in.host[k * R * C + i * C + j];
        vkg_tensor *base = vkg_from_data(ts, tbuf);
        in.t = vkg_transpose(base, a, b);
        free(tbuf);
    } else if (how == STRIDED && shape.ndim >= 1) {
        vkg_shape big = shape;
        big.d[shape.ndim - 1] *= 2;
        size_t nb = (size_t)vkg_shape_numel(big);
        float *bbuf = calloc(nb ? nb : 1, sizeof(float));
        for (size_t i = 0; i < n; i++) bbuf[2 * i] = in.host[i];
        vkg_tensor *base = vkg_from_data(big, bbuf);
        in.t = vkg_slice(base, -1, 0, big.d[shape.ndim - 1], 2);
        free(bbuf);
    } else if (how == EXPANDED && shape.ndim >= 1) {
        /* values constant along dim 0, stored once */
        vkg_shape one = shape;
        one.d[0] = 1;
        size_t row = (size_t)vkg_shape_numel(one);
        for (size_t i = row; i < n; i++) in.host[i] = in.host[i % (row ? row : 1)];
        vkg_tensor *base = vkg_from_data(one, in.host);
        in.t = vkg_expand(base, shape);
    } else {
        in.t = vkg_from_data(shape, in.host);
    }
    cr_assert_not_null(in.t, "make_input: %s", vkg_last_error());
    if (how != CONTIG && shape.ndim >= 1 && vkg_shape_numel(shape) > 1 && shape.d[shape.ndim - 1] > 1)
        cr_assert(!vkg_is_contiguous(in.t), "the view should not be contiguous");
    return in;
}

static bool covered[VKG_OP_COUNT];

static float tol_for(vkg_op op) {
    switch (op) { /* GLSL's exp/log/pow are allowed a few ulp; the others are exact or nearly */
    case VKG_OP_EXP:
    case VKG_OP_LOG:
    case VKG_OP_TANH:
    case VKG_OP_SIGMOID:
    case VKG_OP_GELU:
    case VKG_OP_SILU:
    case VKG_OP_POW:
    case VKG_OP_RSQRT: return 2e-5f;
    default: return 2e-6f;
    }
}

static void check_unary(vkg_op op, vkg_shape shape, layout how, float lo, float hi, float s, uint64_t seed) {
    vkg_scope_begin();
    input in = make_input(shape, lo, hi, seed, how);
    vkg_tensor *y = op == VKG_OP_POW ? vkg_pow(in.t, s) : vkg_unary(op, in.t);
    cr_assert_not_null(y, "%s: %s", vkg_op_table[op].name, vkg_last_error());
    cr_assert_eq(vkg_ndim(y), shape.ndim);
    size_t n = (size_t)vkg_shape_numel(shape);
    float *got = vkgt_read(y), *want = malloc((n ? n : 1) * sizeof(float));
    vkg_ref_unary(op, want, in.host, n, s);
    char what[96];
    snprintf(what, sizeof what, "%s (layout %d, seed %llu)", vkg_op_table[op].name, how, (unsigned long long)seed);
    vkgt_assert_close(got, want, n, tol_for(op), 1e-6f, what);
    free(got);
    free(want);
    free(in.host);
    vkg_scope_end();
    covered[op] = true;
}

VKG_TEST(ops, unary_against_reference) {
    const vkg_shape shapes[] = { VKG_SHAPE(0), VKG_SCALAR, VKG_SHAPE(1), VKG_SHAPE(37), VKG_SHAPE(129),
                                 VKG_SHAPE(1000), VKG_SHAPE(3, 5, 7), VKG_SHAPE(13, 17) };
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_UNARY) continue;
        bool positive = op == VKG_OP_LOG || op == VKG_OP_SQRT || op == VKG_OP_RSQRT || op == VKG_OP_POW;
        float lo = positive ? 0.05f : -6.0f, hi = positive ? 6.0f : 6.0f;
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            check_unary((vkg_op)op, shapes[k], CONTIG, lo, hi, 3.0f, SEED + k);
            if (shapes[k].ndim >= 2) {
                check_unary((vkg_op)op, shapes[k], TRANSPOSED, lo, hi, 2.5f, SEED + 10 + k);
                check_unary((vkg_op)op, shapes[k], STRIDED, lo, hi, 0.5f, SEED + 20 + k);
                check_unary((vkg_op)op, shapes[k], EXPANDED, lo, hi, 2.0f, SEED + 30 + k);
            }
        }
    }
}

VKG_TEST(ops, unary_large_values) {
    /* saturation: no overflow to NaN in exp-based ops for |x| up to 100 */
    const vkg_op ops[] = { VKG_OP_EXP, VKG_OP_TANH, VKG_OP_SIGMOID, VKG_OP_GELU, VKG_OP_SILU, VKG_OP_RELU };
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) check_unary(ops[i], VKG_SHAPE(301), CONTIG, -100.0f, 100.0f, 0, SEED);
    /* pow with integral exponents on negative bases keeps the sign, like powf */
    check_unary(VKG_OP_POW, VKG_SHAPE(100), CONTIG, -3.0f, 3.0f, 3.0f, SEED);
    check_unary(VKG_OP_POW, VKG_SHAPE(100), CONTIG, -3.0f, 3.0f, 2.0f, SEED);
    check_unary(VKG_OP_POW, VKG_SHAPE(100), CONTIG, 0.1f, 3.0f, -1.5f, SEED);
}

typedef struct pair {
    vkg_shape a, b;
    layout la, lb;
} pair;

static const pair PAIRS[] = {
    { VKG_SHAPE(129), VKG_SHAPE(129), CONTIG, CONTIG },
    { VKG_SHAPE(0), VKG_SHAPE(0), CONTIG, CONTIG },
    { VKG_SHAPE(1), VKG_SHAPE(1), CONTIG, CONTIG },
    { VKG_SCALAR, VKG_SHAPE(5, 6), CONTIG, CONTIG },        /* 0-d against a matrix            */
    { VKG_SHAPE(7, 9), VKG_SHAPE(9), CONTIG, CONTIG },      /* row vector                      */
    { VKG_SHAPE(7, 9), VKG_SHAPE(7, 1), CONTIG, CONTIG },   /* column vector                   */
    { VKG_SHAPE(4, 1, 5), VKG_SHAPE(3, 1), CONTIG, CONTIG },/* both grow: (4, 3, 5)            */
    { VKG_SHAPE(1, 17), VKG_SHAPE(19, 1), CONTIG, CONTIG }, /* outer product shape            */
    { VKG_SHAPE(2, 3, 4, 5, 6), VKG_SHAPE(3, 1, 5, 1), CONTIG, CONTIG },
    { VKG_SHAPE(13, 17), VKG_SHAPE(13, 17), TRANSPOSED, STRIDED },
    { VKG_SHAPE(6, 33), VKG_SHAPE(33), EXPANDED, STRIDED },
    { VKG_SHAPE(2, 3, 4, 5, 6, 7), VKG_SHAPE(2, 3, 4, 5, 6, 7), TRANSPOSED, CONTIG },
};

static void check_binary(vkg_op op, const pair *p, uint64_t seed) {
    vkg_scope_begin();
    bool rounded = op == VKG_OP_EQ || op == VKG_OP_LT || op == VKG_OP_GT || op == VKG_OP_MAXIMUM || op == VKG_OP_MINIMUM;
    input a = make_input(p->a, -4.0f, 4.0f, seed, p->la);
    input b = make_input(p->b, op == VKG_OP_DIV ? 0.5f : -4.0f, 4.0f, seed + 1, p->lb);
    if (rounded) { /* small integers make ties and equal pairs common */
        size_t na = (size_t)vkg_shape_numel(p->a), nb = (size_t)vkg_shape_numel(p->b);
        for (size_t i = 0; i < na; i++) a.host[i] = roundf(a.host[i]);
        for (size_t i = 0; i < nb; i++) b.host[i] = roundf(b.host[i]);
        a.t = vkg_from_data(p->a, a.host);
        b.t = vkg_from_data(p->b, b.host);
    }
    vkg_tensor *y = vkg_binary(op, a.t, b.t);
    char sa[64], sb[64];
    cr_assert_not_null(y, "%s %s %s: %s", vkg_op_table[op].name, vkg_shape_str(p->a, sa, sizeof sa),
                       vkg_shape_str(p->b, sb, sizeof sb), vkg_last_error());
    vkg_shape ys;
    cr_assert(vkg_broadcast_shape(p->a, p->b, &ys));
    size_t n = (size_t)vkg_shape_numel(ys);
    cr_assert_eq(vkg_numel(y), (int64_t)n);
    float *got = vkgt_read(y), *want = malloc((n ? n : 1) * sizeof(float));
    vkg_ref_binary(op, want, ys, a.host, p->a, b.host, p->b);
    char what[160];
    snprintf(what, sizeof what, "%s %s %s (seed %llu)", vkg_op_table[op].name, sa, sb, (unsigned long long)seed);
    vkgt_assert_close(got, want, n, tol_for(op), 1e-6f, what);
    /* the scalar form: b is the number 1.5 */
    vkg_tensor *ys2 = vkg_binary_scalar(op, a.t, 1.5f);
    cr_assert_not_null(ys2, "%s scalar: %s", vkg_op_table[op].name, vkg_last_error());
    float *got2 = vkgt_read(ys2);
    size_t na = (size_t)vkg_shape_numel(p->a);
    for (size_t i = 0; i < na; i++) want[i] = vkg_ref_binary1(op, a.host[i], 1.5f);
    vkgt_assert_close(got2, want, na, tol_for(op), 1e-6f, what);
    free(got);
    free(got2);
    free(want);
    free(a.host);
    free(b.host);
    vkg_scope_end();
    covered[op] = true;
}

VKG_TEST(ops, binary_against_reference) {
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_BINARY) continue;
        for (size_t k = 0; k < sizeof PAIRS / sizeof *PAIRS; k++) check_binary((vkg_op)op, &PAIRS[k], SEED + 100 * k);
    }
}

VKG_TEST(ops, where_against_reference) {
    const vkg_shape cs[] = { VKG_SHAPE(7, 9), VKG_SHAPE(9), VKG_SHAPE(7, 1), VKG_SCALAR, VKG_SHAPE(0, 9) };
    const vkg_shape as[] = { VKG_SHAPE(7, 9), VKG_SHAPE(7, 9), VKG_SHAPE(9), VKG_SHAPE(3, 1, 1), VKG_SHAPE(9) };
    const vkg_shape bs[] = { VKG_SHAPE(7, 9), VKG_SHAPE(1), VKG_SHAPE(7, 9), VKG_SHAPE(4, 1), VKG_SHAPE(0, 1) };
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
        vkg_scope_begin();
        input c = make_input(cs[k], 0.0f, 2.0f, SEED + k, CONTIG);
        size_t nc = (size_t)vkg_shape_numel(cs[k]);
        for (size_t i = 0; i < nc; i++) c.host[i] = floorf(c.host[i]); /* 0 or 1 */
        c.t = vkg_from_data(cs[k], c.host);
        input a = make_input(as[k], -1.0f, 1.0f, SEED + 7, k == 0 ? TRANSPOSED : CONTIG);
        input b = make_input(bs[k], -1.0f, 1.0f, SEED + 8, CONTIG);
        vkg_tensor *y = vkg_where(c.t, a.t, b.t);
        cr_assert_not_null(y, "where case %zu: %s", k, vkg_last_error());
        vkg_shape ab, ys;
        cr_assert(vkg_broadcast_shape(as[k], bs[k], &ab) && vkg_broadcast_shape(ab, cs[k], &ys));
        size_t n = (size_t)vkg_shape_numel(ys);
        float *got = vkgt_read(y), *want = malloc((n ? n : 1) * sizeof(float));
        vkg_ref_where(want, ys, c.host, cs[k], a.host, as[k], b.host, bs[k]);
        vkgt_assert_close(got, want, n, 0.0f, 0.0f, "where");
        free(got);
        free(want);
        free(c.host);
        free(a.host);
        free(b.host);
        vkg_scope_end();
    }
    covered[VKG_OP_WHERE] = true;
}

static void check_reduce(vkg_op op, vkg_shape shape, int axis, bool keepdim, layout how, uint64_t seed) {
    vkg_scope_begin();
    input in = make_input(shape, -3.0f, 3.0f, seed, how);
    if (op == VKG_OP_ARGMAX || op == VKG_OP_MAX || op == VKG_OP_MIN) { /* ties: first index wins */
        size_t n = (size_t)vkg_shape_numel(shape);
        for (size_t i = 0; i < n; i++) in.host[i] = roundf(in.host[i]);
        vkg_tensor *base = vkg_from_data(shape, in.host);
        in.t = how == TRANSPOSED ? vkg_contiguous(base) : base;
        if (how == TRANSPOSED && shape.ndim >= 2) { /* the same values, read through a transposed view */
            vkg_tensor *tt = vkg_contiguous(vkg_transpose(base, -1, -2));
            in.t = vkg_transpose(tt, -1, -2);
        }
    }
    bool all = axis == VKG_REF_ALL;
    vkg_tensor *y = all ? vkg_reduce_all(op, in.t) : vkg_reduce(op, in.t, axis, keepdim);
    char ss[64];
    cr_assert_not_null(y, "%s %s axis %d: %s", vkg_op_table[op].name, vkg_shape_str(shape, ss, sizeof ss), axis,
                       vkg_last_error());
    int64_t outer = 1, inner = 1, R = vkg_shape_numel(shape);
    if (!all) {
        int ax = axis < 0 ? axis + shape.ndim : axis;
        R = shape.d[ax];
        for (int i = 0; i < shape.ndim; i++) {
            if (i < ax) outer *= shape.d[i];
            if (i > ax) inner *= shape.d[i];
        }
        cr_assert_eq(vkg_ndim(y), keepdim ? shape.ndim : shape.ndim - 1);
    } else {
        cr_assert_eq(vkg_ndim(y), 0);
    }
    /* a float sum of R terms in [-3, 3] may differ from the double reference by about R ulps of
     * its running total: allow for it (a truncated sum misses whole terms, far more) */
    float atol = op == VKG_OP_SUM ? 1e-5f + 2e-7f * (float)R : 1e-5f;
    size_t n = (size_t)(outer * inner);
    cr_assert_eq(vkg_numel(y), (int64_t)n);
    char what[128];
    snprintf(what, sizeof what, "%s %s axis %d keepdim %d layout %d", vkg_op_table[op].name, ss, axis, keepdim, how);
    if (op == VKG_OP_ARGMAX) {
        cr_assert_eq(vkg_tensor_dtype(y), VKG_I32);
        int32_t *got = malloc((n ? n : 1) * sizeof(int32_t)), *want = malloc((n ? n : 1) * sizeof(int32_t));
        cr_assert_eq(vkg_tensor_read(y, got, n * sizeof(int32_t)), VKG_OK);
        vkg_ref_reduce(op, NULL, want, in.host, shape, axis);
        for (size_t i = 0; i < n; i++) cr_assert_eq(got[i], want[i], "%s: output %zu is %d, want %d", what, i, got[i], want[i]);
        free(got);
        free(want);
    } else {
        float *got = vkgt_read(y), *want = malloc((n ? n : 1) * sizeof(float));
        vkg_ref_reduce(op, want, NULL, in.host, shape, axis);
        vkgt_assert_close(got, want, n, 1e-5f, atol, what);
        free(got);
        free(want);
    }
    free(in.host);
    vkg_scope_end();
    covered[op] = true;
}

VKG_TEST(ops, reduce_against_reference) {
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        if (vkg_op_table[op].kind != VKG_KIND_REDUCE) continue;
        vkg_op o = (vkg_op)op;
        check_reduce(o, VKG_SHAPE(37), 0, false, CONTIG, SEED);
        check_reduce(o, VKG_SHAPE(1), 0, true, CONTIG, SEED);
        check_reduce(o, VKG_SHAPE(5, 300), 1, false, CONTIG, SEED + 1);
        check_reduce(o, VKG_SHAPE(5, 300), 0, true, CONTIG, SEED + 2);
        check_reduce(o, VKG_SHAPE(3, 4, 5), 1, true, CONTIG, SEED + 3);
        check_reduce(o, VKG_SHAPE(3, 4, 5), -1, false, CONTIG, SEED + 4);
        check_reduce(o, VKG_SHAPE(3, 4, 5), 0, false, CONTIG, SEED + 5);
        check_reduce(o, VKG_SHAPE(2, 3000), 1, false, CONTIG, SEED + 6);   /* workgroup per output  */
        /* few outputs side by side: on CPU devices chunks of rows, an invocation each, merged */
        check_reduce(o, VKG_SHAPE(300, 5), 0, false, CONTIG, SEED + 14);
        check_reduce(o, VKG_SHAPE(4, 300, 6), 1, true, CONTIG, SEED + 15);
        check_reduce(o, VKG_SHAPE(20000, 3), 0, false, CONTIG, SEED + 16);
        /* ... four neighbouring columns per invocation (sums, inner a multiple of 4) */
        check_reduce(o, VKG_SHAPE(300, 12), 0, false, CONTIG, SEED + 17);
        check_reduce(o, VKG_SHAPE(2, 523, 8), 1, false, CONTIG, SEED + 18);
        check_reduce(o, VKG_SHAPE(1000, 132), 0, true, CONTIG, SEED + 19);
        check_reduce(o, VKG_SHAPE(300, 70000), 1, false, CONTIG, SEED + 12); /* rows past lavapipe's 65535-iteration loop limit */
        /* a row of 9M: each of one workgroup's 128 lanes would still loop 70,313 times (an earlier
         * kernel did, and dropped the rest); split across workgroups, then merged */
        check_reduce(o, VKG_SHAPE(9000011), VKG_REF_ALL, false, CONTIG, SEED + 13);
        check_reduce(o, VKG_SHAPE(3001), VKG_REF_ALL, false, CONTIG, SEED + 7);
        check_reduce(o, VKG_SHAPE(7, 130), VKG_REF_ALL, false, CONTIG, SEED + 8);
        check_reduce(o, VKG_SHAPE(13, 17), 0, false, TRANSPOSED, SEED + 9);
        check_reduce(o, VKG_SHAPE(13, 17), 1, true, TRANSPOSED, SEED + 10);
        check_reduce(o, VKG_SCALAR, VKG_REF_ALL, false, CONTIG, SEED + 11);
    }
    /* sum and mean over an empty axis: 0 and NaN, like PyTorch */
    vkg_scope_begin();
    vkg_tensor *e = vkg_zeros(VKG_SHAPE(0, 5));
    float *s = vkgt_read(vkg_sum(e, 0, false));
    for (int i = 0; i < 5; i++) cr_assert_eq(s[i], 0.0f);
    free(s);
    float *m = vkgt_read(vkg_mean(e, 0, false));
    cr_assert(isnan(m[0]));
    free(m);
    vkg_scope_end();
}

/* Every matmul kernel is forced in turn (VKG_MATMUL_VARIANT; "" is the device's own choice)
 * and must really run, whatever the operands: reg and reg_sg read one that is not vec4-readable
 * one float per load (reg_sg runs reg where subgroups are not 8 wide). */
static const char *const matmul_variants[] = { "", "general", "reg", "reg_sg", "tiled", "reg_tex", "reg_sg_tex" };

/* Whether a test runs matmul variant name ("" the device's choice). Under GPU-assisted
 * validation (VKG_VALIDATE=full, ctest ops_sync_validation) each instrumented reg kernel is a
 * fresh LLVM compile of tens of seconds to minutes on lavapipe (minutes with the epilogue's
 * fourth binding, in CoroSplit), and every layout, tile, store mode and epilogue is a kernel of
 * its own: with a cold shader cache (a fresh CI machine) the device's choice alone (reg_sg there)
 * took test_ops past ctest's 15-minute limit. So there only general and tiled run; the other
 * ctest runs of this file check every kernel and the device's choice. */
static bool variant_runs(const char *name) {
    const char *val = getenv("VKG_VALIDATE");
    return !(val && strcmp(val, "full") == 0) || strcmp(name, "general") == 0 || strcmp(name, "tiled") == 0;
}

/* Whether variant used may run when name was asked for: reg_sg needs subgroups of 8 with
 * shuffles (lavapipe; elsewhere reg runs), the _tex forms texel buffers (else the plain form). */
static bool matmul_ran_as_asked(const char *name, const char *used) {
    if (strcmp(used, name) == 0) return true;
    const vkg_device_info *d = vkg_device();
    char want[32];
    snprintf(want, sizeof want, "%s", name);
    char *tex = strstr(want, "_tex");
    if (tex && !d->texel_buffers) *tex = '\0';
    char *sg = strstr(want, "_sg");
    if (sg && d->subgroup_size != 8) memmove(sg, sg + 3, strlen(sg + 3) + 1);
    return strcmp(used, want) == 0;
}

static void check_matmul_views(vkg_tensor *ta, const float *ha, vkg_shape as, vkg_tensor *tb, const float *hb,
                               vkg_shape bs, const char *what) {
    int64_t K = as.d[as.ndim - 1];
    for (size_t v = 0; v < sizeof matmul_variants / sizeof *matmul_variants; v++) {
        const char *name = matmul_variants[v];
        if (!variant_runs(name)) continue;
        setenv("VKG_MATMUL_VARIANT", name, 1);
        vkg_tensor *c = vkg_matmul(ta, tb);
        cr_assert_not_null(c, "%s [%s]: %s", what, name, vkg_last_error());
        const char *used = vkg_matmul_variant_last();
        size_t n = (size_t)vkg_numel(c);
        if (*name && n > 0 && K > 0)
            cr_assert(matmul_ran_as_asked(name, used), "%s: asked for %s, %s ran", what, name, used);
        float *got = vkgt_read(c), *want = malloc((n ? n : 1) * sizeof(float));
        vkg_ref_matmul(want, ha, as, hb, bs);
        char w2[224];
        snprintf(w2, sizeof w2, "%s [%s ran %s]", what, *name ? name : "default", used);
        /* f32 accumulation over K terms against a double reference */
        vkgt_assert_close(got, want, n, 1e-5f, 2e-6f * (float)(K + 1), w2);
        free(got);
        free(want);
        vkg_free(c);
    }
    unsetenv("VKG_MATMUL_VARIANT");
    covered[VKG_OP_MATMUL] = true;
}

static void check_matmul(vkg_shape as, vkg_shape bs, layout la, layout lb, uint64_t seed) {
    vkg_scope_begin();
    input a = make_input(as, -1.0f, 1.0f, seed, la);
    input b = make_input(bs, -1.0f, 1.0f, seed + 1, lb);
    char sa[64], sb[64], what[160];
    snprintf(what, sizeof what, "matmul %s @ %s (layouts %d %d)", vkg_shape_str(as, sa, sizeof sa),
             vkg_shape_str(bs, sb, sizeof sb), la, lb);
    check_matmul_views(a.t, a.host, as, b.t, b.host, bs, what);
    free(a.host);
    free(b.host);
    vkg_scope_end();
}

/* A (M, K) and B (K, N) as narrowed views of wider rows (row stride kpad, a multiple of 4), so
 * that K % 4 != 0 still takes the vec4 path: A's rows hold K, B is the transpose of (N, K). */
static void check_matmul_k_tail(int64_t M, int64_t K, int64_t N, uint64_t seed) {
    vkg_scope_begin();
    int64_t kpad = (K + 3) / 4 * 4 + 4;
    float *ha = malloc((size_t)(M * K) * sizeof(float)), *hb = malloc((size_t)(K * N) * sizeof(float));
    float *pa = calloc((size_t)(M * kpad), sizeof(float)), *pb = calloc((size_t)(N * kpad), sizeof(float));
    vkgt_fill(ha, (size_t)(M * K), -1.0f, 1.0f, seed);
    vkgt_fill(hb, (size_t)(K * N), -1.0f, 1.0f, seed + 1);
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) pa[i * kpad + k] = ha[i * K + k];
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) pb[j * kpad + k] = hb[k * N + j];
    for (int64_t i = K; i < kpad; i++) /* what a vec4 read past K sees must not leak in */
        for (int64_t r = 0; r < (M > N ? M : N); r++) {
            if (r < M) pa[r * kpad + i] = NAN;
            if (r < N) pb[r * kpad + i] = INFINITY;
        }
    vkg_tensor *a = vkg_narrow(vkg_from_data(VKG_SHAPE(M, kpad), pa), 1, 0, K);
    vkg_tensor *b = vkg_transpose(vkg_narrow(vkg_from_data(VKG_SHAPE(N, kpad), pb), 1, 0, K), 0, 1);
    cr_assert(a && b, "%s", vkg_last_error());
    char what[160];
    snprintf(what, sizeof what, "matmul (%lld, %lld) @ (%lld, %lld), rows of stride %lld", (long long)M,
             (long long)K, (long long)K, (long long)N, (long long)kpad);
    check_matmul_views(a, ha, VKG_SHAPE(M, K), b, hb, VKG_SHAPE(K, N), what);
    free(ha);
    free(hb);
    free(pa);
    free(pb);
    vkg_scope_end();
}

VKG_TEST(ops, matmul_against_reference) {
    check_matmul(VKG_SHAPE(1, 1), VKG_SHAPE(1, 1), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(5, 7), VKG_SHAPE(7, 3), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(64, 64), VKG_SHAPE(64, 64), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(65, 33), VKG_SHAPE(33, 17), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(512, 384), VKG_SHAPE(384, 257), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(65, 33), VKG_SHAPE(33, 17), TRANSPOSED, TRANSPOSED, SEED);  /* A^T, B^T read in place */
    check_matmul(VKG_SHAPE(31, 40), VKG_SHAPE(40, 9), STRIDED, CONTIG, SEED);
    check_matmul(VKG_SHAPE(7), VKG_SHAPE(7, 3), CONTIG, CONTIG, SEED);                 /* 1-D @ 2-D */
    check_matmul(VKG_SHAPE(5, 7), VKG_SHAPE(7), CONTIG, CONTIG, SEED);                 /* 2-D @ 1-D */
    check_matmul(VKG_SHAPE(7), VKG_SHAPE(7), CONTIG, CONTIG, SEED);                    /* dot */
    check_matmul(VKG_SHAPE(3, 5, 7), VKG_SHAPE(3, 7, 4), CONTIG, CONTIG, SEED);        /* batched */
    check_matmul(VKG_SHAPE(2, 1, 5, 7), VKG_SHAPE(3, 7, 4), CONTIG, TRANSPOSED, SEED); /* broadcast batch */
    check_matmul(VKG_SHAPE(4, 9, 6), VKG_SHAPE(6, 5), TRANSPOSED, CONTIG, SEED);       /* batch @ matrix */
    check_matmul(VKG_SHAPE(7), VKG_SHAPE(2, 7, 3), CONTIG, CONTIG, SEED);              /* 1-D @ batch */
    check_matmul(VKG_SHAPE(2, 1, 3, 1, 4, 5), VKG_SHAPE(1, 2, 1, 3, 5, 6), CONTIG, CONTIG, SEED); /* 4 batch dims */
    check_matmul(VKG_SHAPE(3, 0), VKG_SHAPE(0, 4), CONTIG, CONTIG, SEED);              /* K = 0: zeros */
    check_matmul(VKG_SHAPE(0, 5), VKG_SHAPE(5, 4), CONTIG, CONTIG, SEED);              /* empty */
    /* vec4-readable operands: vec4 loads, with edges in M and N, and in K below */
    check_matmul(VKG_SHAPE(37, 20), VKG_SHAPE(20, 52), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(130, 96), VKG_SHAPE(96, 200), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(36, 24), VKG_SHAPE(24, 44), TRANSPOSED, TRANSPOSED, SEED); /* A^T, B^T */
    check_matmul(VKG_SHAPE(12, 13), VKG_SHAPE(13, 4), TRANSPOSED, CONTIG, SEED);  /* K = 13 over A^T */
    /* reg_sg's tiles for a short, narrow C (TM 16, TN 4), vec4 stores with edges in M and N */
    check_matmul(VKG_SHAPE(12, 36), VKG_SHAPE(36, 28), TRANSPOSED, TRANSPOSED, SEED);
    check_matmul(VKG_SHAPE(3, 6, 16), VKG_SHAPE(3, 16, 20), CONTIG, CONTIG, SEED);  /* TM 8, batched */
    check_matmul(VKG_SHAPE(2, 1, 8, 12), VKG_SHAPE(3, 12, 16), CONTIG, CONTIG, SEED); /* broadcast */
    check_matmul(VKG_SHAPE(12), VKG_SHAPE(12, 8), CONTIG, CONTIG, SEED);          /* 1-D @ 2-D */
    check_matmul(VKG_SHAPE(40, 12), VKG_SHAPE(12), CONTIG, CONTIG, SEED);         /* 2-D @ 1-D */
    check_matmul(VKG_SHAPE(12), VKG_SHAPE(12), CONTIG, CONTIG, SEED);             /* dot */
    check_matmul(VKG_SHAPE(1, 4), VKG_SHAPE(4, 1), CONTIG, CONTIG, SEED);
    /* one operand read one float per load, the other by vec4s: the MLP's dY (128, 10) @ W
     * and X^T @ dY, with a K tail */
    check_matmul(VKG_SHAPE(37, 10), VKG_SHAPE(10, 44), CONTIG, CONTIG, SEED);
    check_matmul(VKG_SHAPE(40, 37), VKG_SHAPE(37, 10), TRANSPOSED, CONTIG, SEED);
    check_matmul_k_tail(33, 7, 70, SEED);
    check_matmul_k_tail(5, 1, 3, SEED);
    check_matmul_k_tail(64, 30, 64, SEED);
}

/* ---- matmul_bias_act: the epilogue in every kernel ---------------------------------------
 * act(a @ b + bias) against the C reference with each kernel forced, and bitwise against the
 * unfused ops (matmul, add, relu) run on the same kernel: the epilogue does the same float add
 * and max as they do. The bias is a strided view with an offset (every second element of a
 * larger tensor, from the third), so the kernels' bias offset and stride are exercised. Under
 * VKG_MATMUL_SPLIT_K=4 (ctest ops_staging_pooled_split_k) the default choice runs the epilogue
 * after the sum. */
static const char *const act_names[] = { "none", "relu", "gelu" };

/* ... and with a residual r laid out as rl (vkg_matmul_bias_act_residual, act none): r +
 * product, bitwise vkg_add(r, the unfused product); a contiguous r is read by the kernels, any
 * other view goes the two-pass way */
static void check_epilogue(vkg_shape as, vkg_shape bs, layout la, layout lb, bool with_bias, vkg_activation act,
                           bool with_r, layout rl, uint64_t seed) {
    vkg_scope_begin();
    input a = make_input(as, -1.0f, 1.0f, seed, la);
    input b = make_input(bs, -1.0f, 1.0f, seed + 1, lb);
    int64_t K = as.d[as.ndim - 1], N = bs.ndim == 1 ? 1 : bs.d[bs.ndim - 1];
    float *hbias = NULL;
    vkg_tensor *bias = NULL;
    if (with_bias) {
        size_t nbig = (size_t)(2 * N + 3);
        float *big = malloc(nbig * sizeof *big);
        vkgt_fill(big, nbig, -1.0f, 1.0f, seed + 2);
        hbias = malloc((size_t)(N ? N : 1) * sizeof *hbias);
        for (int64_t j = 0; j < N; j++) hbias[j] = big[3 + 2 * j];
        bias = vkg_slice(vkg_from_data(VKG_SHAPE((int64_t)nbig), big), 0, 3, 3 + 2 * N, 2);
        cr_assert_not_null(bias, "%s", vkg_last_error());
        free(big);
    }
    input r = { 0 };
    vkg_shape cs = { 0 }; /* the product's shape (operands of 2 dims or more here) */
    if (with_r) {
        int an = as.ndim - 2, bn = bs.ndim - 2;
        cs.ndim = (an > bn ? an : bn) + 2;
        for (int i = 0; i < cs.ndim - 2; i++) {
            int ia = i - (cs.ndim - 2 - an), ib = i - (cs.ndim - 2 - bn);
            int64_t da = ia >= 0 ? as.d[ia] : 1, db = ib >= 0 ? bs.d[ib] : 1;
            cs.d[i] = da == 1 ? db : da;
        }
        cs.d[cs.ndim - 2] = as.d[as.ndim - 2];
        cs.d[cs.ndim - 1] = bs.d[bs.ndim - 1];
    }
    if (with_r) r = make_input(cs, -1.0f, 1.0f, seed + 3, rl);
    char sa[64], sb[64], what[224];
    snprintf(what, sizeof what, "matmul_bias_act%s %s @ %s (layouts %d %d), bias %d, %s", with_r ? "_residual" : "",
             vkg_shape_str(as, sa, sizeof sa), vkg_shape_str(bs, sb, sizeof sb), la, lb, with_bias, act_names[act]);
    for (size_t v = 0; v < sizeof matmul_variants / sizeof *matmul_variants; v++) {
        const char *name = matmul_variants[v];
        if (!variant_runs(name)) continue;
        setenv("VKG_MATMUL_VARIANT", name, 1);
        vkg_tensor *c = with_r ? vkg_matmul_bias_act_residual(a.t, b.t, bias, r.t)
                               : vkg_matmul_bias_act(a.t, b.t, bias, act);
        cr_assert_not_null(c, "%s [%s]: %s", what, name, vkg_last_error());
        const char *used = vkg_matmul_variant_last();
        size_t n = (size_t)vkg_numel(c);
        if (*name && n > 0 && K > 0)
            cr_assert(matmul_ran_as_asked(name, used), "%s: asked for %s, %s ran", what, name, used);
        vkg_tensor *u = vkg_matmul(a.t, b.t);
        if (bias) u = vkg_add(u, bias);
        if (act == VKG_ACTIVATION_RELU) u = vkg_relu(u);
        if (act == VKG_ACTIVATION_GELU) u = vkg_gelu(u);
        if (with_r) u = vkg_add(r.t, u);
        cr_assert_not_null(u, "%s unfused: %s", what, vkg_last_error());
        cr_assert_eq(vkg_ndim(c), vkg_ndim(u));
        float *got = vkgt_read(c), *unfused = vkgt_read(u), *want = malloc((n ? n : 1) * sizeof(float));
        vkg_ref_matmul_bias_act(want, a.host, as, b.host, bs, hbias, act);
        for (size_t i = 0; with_r && i < n; i++) want[i] += r.host[i];
        char w2[300];
        snprintf(w2, sizeof w2, "%s [%s ran %s]", what, *name ? name : "default", used);
        vkgt_assert_close(got, want, n, 1e-5f, 2e-6f * (float)(K + 1), w2);
        for (size_t i = 0; i < n; i++)
            cr_assert(got[i] == unfused[i] || (isnan(got[i]) && isnan(unfused[i])),
                      "%s: element %zu is %.9g fused, %.9g unfused", w2, i, got[i], unfused[i]);
        free(got);
        free(unfused);
        free(want);
        vkg_free(c);
    }
    unsetenv("VKG_MATMUL_VARIANT");
    free(hbias);
    free(a.host);
    free(b.host);
    free(r.host);
    vkg_scope_end();
    covered[VKG_OP_MATMUL_BIAS_ACT] = true;
}

static void check_matmul_bias_act(vkg_shape as, vkg_shape bs, layout la, layout lb, bool with_bias, vkg_activation act,
                                  uint64_t seed) {
    check_epilogue(as, bs, la, lb, with_bias, act, false, CONTIG, seed);
}

/* Every shape and layout with the bias alone; the activations (with and without a bias) on three
 * shapes that take each kernel's scalar and vec4 stores, edges and A^T, B^T in place. The
 * epilogue applies the activation to the accumulators alike whatever the tile and the operands'
 * layouts, and each (kernel, tile, layouts, epilogue) is a pipeline of its own that lavapipe
 * compiles on first use in about 0.85 s: with every activation on every shape this test compiled
 * 203 of them, 200 s of the op tests' time from a cold cache. */
VKG_TEST(ops, matmul_bias_act_against_reference) {
    for (int act = VKG_ACTIVATION_NONE; act <= VKG_ACTIVATION_GELU; act++)
        for (int wb = 0; wb < 2; wb++) {
            if (!wb && act == VKG_ACTIVATION_NONE) continue; /* that is vkg_matmul */
            vkg_activation ac = (vkg_activation)act;
            uint64_t sd = SEED + 10 * (uint64_t)act + (uint64_t)wb;
            check_matmul_bias_act(VKG_SHAPE(5, 7), VKG_SHAPE(7, 3), CONTIG, CONTIG, wb, ac, sd);
            /* vec4-readable: vec4 loads, edges in M and N, A^T and B^T in place */
            check_matmul_bias_act(VKG_SHAPE(37, 20), VKG_SHAPE(20, 52), CONTIG, CONTIG, wb, ac, sd);
            check_matmul_bias_act(VKG_SHAPE(36, 24), VKG_SHAPE(24, 44), TRANSPOSED, TRANSPOSED, wb, ac, sd);
            if (act != VKG_ACTIVATION_NONE) continue;
            check_matmul_bias_act(VKG_SHAPE(65, 33), VKG_SHAPE(33, 17), CONTIG, CONTIG, wb, ac, sd);
            check_matmul_bias_act(VKG_SHAPE(65, 33), VKG_SHAPE(33, 17), TRANSPOSED, TRANSPOSED, wb, ac, sd);
            check_matmul_bias_act(VKG_SHAPE(31, 40), VKG_SHAPE(40, 9), STRIDED, CONTIG, wb, ac, sd);
            check_matmul_bias_act(VKG_SHAPE(3, 5, 7), VKG_SHAPE(3, 7, 4), CONTIG, CONTIG, wb, ac, sd); /* batched */
            check_matmul_bias_act(VKG_SHAPE(2, 1, 5, 7), VKG_SHAPE(3, 7, 4), CONTIG, TRANSPOSED, wb, ac, sd);
            check_matmul_bias_act(VKG_SHAPE(7), VKG_SHAPE(7, 3), CONTIG, CONTIG, wb, ac, sd);  /* 1-D @ 2-D */
            check_matmul_bias_act(VKG_SHAPE(5, 7), VKG_SHAPE(7), CONTIG, CONTIG, wb, ac, sd);  /* bias (1) */
            check_matmul_bias_act(VKG_SHAPE(2, 1, 3, 1, 4, 5), VKG_SHAPE(1, 2, 1, 3, 5, 6), CONTIG, CONTIG, wb, ac,
                                  sd); /* batch dims that do not fold: gathered copies */
            check_matmul_bias_act(VKG_SHAPE(3, 0), VKG_SHAPE(0, 4), CONTIG, CONTIG, wb, ac, sd); /* K = 0 */
            check_matmul_bias_act(VKG_SHAPE(0, 5), VKG_SHAPE(5, 4), CONTIG, CONTIG, wb, ac, sd); /* empty */
            check_matmul_bias_act(VKG_SHAPE(130, 96), VKG_SHAPE(96, 200), CONTIG, TRANSPOSED, wb, ac, sd);
            check_matmul_bias_act(VKG_SHAPE(2, 1, 8, 12), VKG_SHAPE(3, 12, 16), CONTIG, CONTIG, wb, ac, sd);
        }
}

VKG_TEST(ops, matmul_bias_act_residual_against_reference) {
    const vkg_activation no = VKG_ACTIVATION_NONE;
    for (int wb = 0; wb < 2; wb++) { /* without and with a bias: scalar and vec4 stores */
        uint64_t sd = SEED + 40 + (uint64_t)wb;
        check_epilogue(VKG_SHAPE(5, 7), VKG_SHAPE(7, 3), CONTIG, CONTIG, wb, no, true, CONTIG, sd);
        check_epilogue(VKG_SHAPE(37, 20), VKG_SHAPE(20, 52), CONTIG, CONTIG, wb, no, true, CONTIG, sd);
    }
    uint64_t sd = SEED + 42;
    /* (B, T, E); batched; r a strided view; K = 0 */
    check_epilogue(VKG_SHAPE(2, 9, 12), VKG_SHAPE(12, 16), CONTIG, TRANSPOSED, true, no, true, CONTIG, sd);
    check_epilogue(VKG_SHAPE(3, 5, 7), VKG_SHAPE(3, 7, 4), CONTIG, CONTIG, true, no, true, CONTIG, sd);
    check_epilogue(VKG_SHAPE(37, 20), VKG_SHAPE(20, 52), CONTIG, CONTIG, true, no, true, STRIDED, sd);
    check_epilogue(VKG_SHAPE(3, 0), VKG_SHAPE(0, 4), CONTIG, CONTIG, true, no, true, CONTIG, sd);
}

VKG_TEST(ops, matmul_bias_act_residual_refuses) {
    vkg_tensor *a = vkg_zeros(VKG_SHAPE(4, 3)), *b = vkg_zeros(VKG_SHAPE(3, 5));
    cr_assert_null(vkg_matmul_bias_act_residual(a, b, NULL, vkg_zeros(VKG_SHAPE(4, 6))));
    cr_assert(strstr(vkg_last_error(), "vkg_matmul_bias_act_residual: r is (4, 6) but the product is (4, 5)"), "%s",
              vkg_last_error());
    cr_assert_null(vkg_matmul_bias_act_residual(a, b, NULL, vkg_zeros(VKG_SHAPE(5))));
    cr_assert(strstr(vkg_last_error(), "r is (5,) but the product is (4, 5)"), "%s", vkg_last_error());
    cr_assert_null(vkg_matmul_bias_act_residual(a, b, NULL, NULL));
    cr_assert_null(vkg_matmul_bias_act_residual(a, b, vkg_zeros(VKG_SHAPE(4)), vkg_zeros(VKG_SHAPE(4, 5))));
    cr_assert(strstr(vkg_last_error(), "bias is (4,) but b is (3, 5)"), "%s", vkg_last_error());
}

/* ---- matmul_row_bias: the epilogue's bias over rows (conv2d's per-channel bias) -----------
 * a @ b + bias[m] with each kernel forced, against the C reference plus the bias per row, and
 * bitwise against the unfused ops (matmul, then add of the bias as an (M, 1) column) on the same
 * kernel. The bias is a strided view with an offset, as in check_matmul_bias_act; the shapes
 * include conv2d's (K, C kh kw) @ (N, C kh kw, OH OW), the weight broadcast over the batch. */
static void check_matmul_row_bias(vkg_shape as, vkg_shape bs, layout la, layout lb, uint64_t seed) {
    vkg_scope_begin();
    input a = make_input(as, -1.0f, 1.0f, seed, la);
    input b = make_input(bs, -1.0f, 1.0f, seed + 1, lb);
    int64_t K = as.d[as.ndim - 1], M = as.d[as.ndim - 2];
    size_t nbig = (size_t)(2 * M + 3);
    float *big = malloc(nbig * sizeof *big), *hbias = malloc((size_t)(M ? M : 1) * sizeof *hbias);
    vkgt_fill(big, nbig, -1.0f, 1.0f, seed + 2);
    for (int64_t i = 0; i < M; i++) hbias[i] = big[3 + 2 * i];
    vkg_tensor *bias = vkg_slice(vkg_from_data(VKG_SHAPE((int64_t)nbig), big), 0, 3, 3 + 2 * M, 2);
    cr_assert_not_null(bias, "%s", vkg_last_error());
    free(big);
    char sa[64], sb[64], what[224];
    snprintf(what, sizeof what, "matmul_row_bias %s @ %s (layouts %d %d)", vkg_shape_str(as, sa, sizeof sa),
             vkg_shape_str(bs, sb, sizeof sb), la, lb);
    for (size_t v = 0; v < sizeof matmul_variants / sizeof *matmul_variants; v++) {
        const char *name = matmul_variants[v];
        if (!variant_runs(name)) continue;
        setenv("VKG_MATMUL_VARIANT", name, 1);
        vkg_tensor *c = vkg_matmul_row_bias(a.t, b.t, bias);
        cr_assert_not_null(c, "%s [%s]: %s", what, name, vkg_last_error());
        const char *used = vkg_matmul_variant_last();
        vkg_tensor *u = vkg_add(vkg_matmul(a.t, b.t), vkg_unsqueeze(bias, 1));
        cr_assert_not_null(u, "%s unfused: %s", what, vkg_last_error());
        size_t n = (size_t)vkg_numel(c);
        float *got = vkgt_read(c), *unfused = vkgt_read(u), *want = malloc((n ? n : 1) * sizeof(float));
        vkg_ref_matmul_bias_act(want, a.host, as, b.host, bs, NULL, VKG_ACTIVATION_NONE);
        for (size_t i = 0; i < n; i++) want[i] += hbias[(i / (size_t)bs.d[bs.ndim - 1]) % (size_t)M];
        char w2[300];
        snprintf(w2, sizeof w2, "%s [%s ran %s]", what, *name ? name : "default", used);
        vkgt_assert_close(got, want, n, 1e-5f, 2e-6f * (float)(K + 1), w2);
        for (size_t i = 0; i < n; i++)
            cr_assert(got[i] == unfused[i], "%s: element %zu is %.9g fused, %.9g unfused", w2, i, got[i], unfused[i]);
        free(got), free(unfused), free(want);
    }
    unsetenv("VKG_MATMUL_VARIANT");
    free(hbias), free(a.host), free(b.host);
    vkg_scope_end();
}

VKG_TEST(ops, matmul_row_bias_against_reference) {
    check_matmul_row_bias(VKG_SHAPE(5, 7), VKG_SHAPE(7, 3), CONTIG, CONTIG, SEED);
    check_matmul_row_bias(VKG_SHAPE(65, 33), VKG_SHAPE(33, 17), TRANSPOSED, CONTIG, SEED + 1);
    check_matmul_row_bias(VKG_SHAPE(31, 40), VKG_SHAPE(40, 9), STRIDED, CONTIG, SEED + 2);
    check_matmul_row_bias(VKG_SHAPE(3, 5, 7), VKG_SHAPE(3, 7, 4), CONTIG, CONTIG, SEED + 3); /* batched */
    /* conv2d's forms: the first layer's (32, 9 padded to 12) and odd ones, weight broadcast */
    check_matmul_row_bias(VKG_SHAPE(13, 12), VKG_SHAPE(3, 12, 49), CONTIG, CONTIG, SEED + 4);
    check_matmul_row_bias(VKG_SHAPE(37, 20), VKG_SHAPE(2, 20, 52), CONTIG, CONTIG, SEED + 5);
    check_matmul_row_bias(VKG_SHAPE(3, 0), VKG_SHAPE(0, 4), CONTIG, CONTIG, SEED + 6); /* K = 0 */
}

VKG_TEST(ops, matmul_row_bias_refuses) {
    vkg_tensor *a = vkg_ones(VKG_SHAPE(4, 3)), *b = vkg_ones(VKG_SHAPE(3, 5));
    cr_assert_null(vkg_matmul_row_bias(a, b, vkg_ones(VKG_SHAPE(5))));
    cr_assert(strstr(vkg_last_error(), "bias is (5,) but a is (4, 3): bias must be (4,)"), "%s", vkg_last_error());
    cr_assert_null(vkg_matmul_row_bias(a, b, vkg_ones(VKG_SHAPE(4, 1))));
    cr_assert_null(vkg_matmul_row_bias(a, b, NULL));
}

/* What vkg_matmul_bias_act refuses, each with a message that names it and the shapes. */
VKG_TEST(ops, matmul_bias_act_refuses) {
    vkg_scope_begin();
    vkg_tensor *a = vkg_ones(VKG_SHAPE(4, 3)), *b = vkg_ones(VKG_SHAPE(3, 5));
    const struct { vkg_tensor *bias; int act; const char *says; } bad[] = {
        { vkg_ones(VKG_SHAPE(4)), VKG_ACTIVATION_NONE, "bias is (4,) but b is (3, 5): bias must be (5,)" },
        { vkg_ones(VKG_SHAPE(1, 5)), VKG_ACTIVATION_RELU, "bias is (1, 5)" },
        { vkg_ones(VKG_SCALAR), VKG_ACTIVATION_RELU, "bias must be (5,)" },
        { vkg_empty_dtype(VKG_SHAPE(5), VKG_I32), VKG_ACTIVATION_RELU, "bias" },
        { NULL, 7, "act 7" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vkg_clear_error();
        cr_assert_null(vkg_matmul_bias_act(a, b, bad[i].bias, (vkg_activation)bad[i].act), "case %zu", i);
        cr_assert(strstr(vkg_last_error(), "vkg_matmul_bias_act") || strstr(vkg_last_error(), "matmul_bias_act"),
                  "case %zu: %s", i, vkg_last_error());
        cr_assert(strstr(vkg_last_error(), bad[i].says), "case %zu: %s", i, vkg_last_error());
    }
    vkg_clear_error();
    cr_assert_null(vkg_matmul_bias_act(vkg_ones(VKG_SHAPE(4, 2)), b, NULL, VKG_ACTIVATION_RELU));
    cr_assert(strstr(vkg_last_error(), "inner sizes 2 != 3"), "%s", vkg_last_error());
    vkg_clear_error(); /* NULL in, NULL out, no message */
    cr_assert_null(vkg_matmul_bias_act(NULL, b, NULL, VKG_ACTIVATION_RELU));
    cr_assert_null(vkg_matmul_bias_act(a, NULL, vkg_ones(VKG_SHAPE(5)), VKG_ACTIVATION_RELU));
    cr_assert_str_empty(vkg_last_error());
    vkg_scope_end();
}

/* vkg_matmul_into: a (..., M, K) @ b (..., K, N) written through the view dst of a store of
 * `store` elements (its layout given by shape, perm and the narrow below), with every kernel;
 * the elements of the store outside dst keep their sentinel. */
static void check_matmul_into(vkg_shape as, vkg_shape bs, vkg_shape ss, const int *perm, int64_t col0, int64_t ncol,
                              uint64_t seed) {
    vkg_scope_begin();
    int64_t na = vkg_shape_numel(as), nb = vkg_shape_numel(bs), ns = vkg_shape_numel(ss);
    float *ha = malloc((size_t)na * sizeof(float)), *hb = malloc((size_t)nb * sizeof(float));
    vkgt_fill(ha, (size_t)na, -1.0f, 1.0f, seed);
    vkgt_fill(hb, (size_t)nb, -1.0f, 1.0f, seed + 1);
    vkg_tensor *a = vkg_from_data(as, ha), *b = vkg_from_data(bs, hb);
    float *want = NULL;
    int64_t nc = 0;
    char sa[64], sb[64], sst[64], what[256];
    for (size_t v = 0; v < sizeof matmul_variants / sizeof *matmul_variants; v++) {
        const char *name = matmul_variants[v];
        if (!variant_runs(name)) continue;
        setenv("VKG_MATMUL_VARIANT", name, 1);
        vkg_tensor *store = vkg_full(ss, 7.0f);
        vkg_tensor *dst = perm ? vkg_permute(store, perm) : store;
        if (ncol > 0) dst = vkg_narrow(dst, dst->shape.ndim - 1, col0, ncol);
        cr_assert_not_null(dst, "%s", vkg_last_error());
        if (!want) {
            nc = vkg_numel(dst);
            want = malloc((size_t)nc * sizeof(float));
            vkg_ref_matmul(want, ha, as, hb, bs);
        }
        snprintf(what, sizeof what, "matmul_into %s @ %s into a view of %s [%s]", vkg_shape_str(as, sa, sizeof sa),
                 vkg_shape_str(bs, sb, sizeof sb), vkg_shape_str(ss, sst, sizeof sst), *name ? name : "default");
        cr_assert_eq(vkg_matmul_into(dst, a, b), dst, "%s: %s", what, vkg_last_error());
        float *got = vkgt_read(dst), *all = vkgt_read(store);
        vkgt_assert_close(got, want, (size_t)nc, 1e-5f, 2e-6f * (float)(as.d[as.ndim - 1] + 1), what);
        size_t touched = 0;
        for (int64_t i = 0; i < ns; i++) touched += all[i] != 7.0f;
        cr_assert_leq(touched, (size_t)nc, "%s: %zu elements written outside the destination", what, touched - (size_t)nc);
        free(got);
        free(all);
    }
    unsetenv("VKG_MATMUL_VARIANT");
    free(ha);
    free(hb);
    free(want);
    vkg_scope_end();
}

VKG_TEST(ops, matmul_into_strided_destinations) {
    const int heads[4] = { 0, 2, 1, 3 }, tr[2] = { 1, 0 };
    /* attention's heads side by side: (B, H, T, D) into a (B, T, H, D) store; odd, then vec4 */
    check_matmul_into(VKG_SHAPE(2, 3, 5, 7), VKG_SHAPE(2, 3, 7, 6), VKG_SHAPE(2, 5, 3, 6), heads, 0, 0, SEED);
    check_matmul_into(VKG_SHAPE(2, 3, 9, 8), VKG_SHAPE(2, 3, 8, 8), VKG_SHAPE(2, 9, 3, 8), heads, 0, 0, SEED + 2);
    /* a row stride: columns 2..10 of (5, 13) rows, then 4..11 of (37, 16) (vec4 stores) */
    check_matmul_into(VKG_SHAPE(5, 7), VKG_SHAPE(7, 9), VKG_SHAPE(5, 13), NULL, 2, 9, SEED + 4);
    check_matmul_into(VKG_SHAPE(37, 20), VKG_SHAPE(20, 8), VKG_SHAPE(37, 16), NULL, 4, 8, SEED + 6);
    /* three batch dims that fold into two in C; a broadcast batch */
    check_matmul_into(VKG_SHAPE(2, 3, 2, 5, 7), VKG_SHAPE(2, 3, 2, 7, 4), VKG_SHAPE(2, 3, 2, 5, 4), NULL, 0, 0, SEED + 8);
    check_matmul_into(VKG_SHAPE(2, 1, 5, 7), VKG_SHAPE(3, 7, 4), VKG_SHAPE(2, 3, 5, 4), NULL, 0, 0, SEED + 10);
    /* what the kernels do not write (a transposed destination: its last dim is strided) is
     * written by a copy after the product */
    check_matmul_into(VKG_SHAPE(6, 5), VKG_SHAPE(5, 9), VKG_SHAPE(9, 6), tr, 0, 0, SEED + 12);
    /* the destination must have the product's shape */
    vkg_scope_begin();
    vkg_clear_error();
    cr_assert_null(vkg_matmul_into(vkg_zeros(VKG_SHAPE(4, 6)), vkg_ones(VKG_SHAPE(4, 3)), vkg_ones(VKG_SHAPE(3, 5))));
    cr_assert(strstr(vkg_last_error(), "the product is (4, 5) but its destination is (4, 6)"), "%s", vkg_last_error());
    vkg_scope_end();
}

/* One (M, K) @ (K, N) product checked against the reference; returns the dispatches it took
 * (1 when nothing was timed; a timed class runs every candidate 3 times first). */
static uint64_t tuned_matmul(int64_t M, int64_t K, int64_t N, const char *what) {
    vkg_scope_begin();
    vkg_shape as = VKG_SHAPE(M, K), bs = VKG_SHAPE(K, N);
    input a = make_input(as, -1.0f, 1.0f, SEED, CONTIG), b = make_input(bs, -1.0f, 1.0f, SEED + 1, CONTIG);
    uint64_t d0 = vkg_stream_stats_get().dispatches;
    vkg_tensor *c = vkg_matmul(a.t, b.t);
    uint64_t n = vkg_stream_stats_get().dispatches - d0;
    cr_assert_not_null(c, "%s: %s", what, vkg_last_error());
    float *got = vkgt_read(c), *want = malloc((size_t)(M * N) * sizeof(float));
    vkg_ref_matmul(want, a.host, as, b.host, bs);
    vkgt_assert_close(got, want, (size_t)(M * N), 1e-5f, 2e-6f * (float)(K + 1), what); /* the chosen kernel's C */
    free(got);
    free(want);
    free(a.host);
    free(b.host);
    vkg_scope_end();
    return n;
}

/* The tuning file's lines (-1: no file); the variant of the first line into v. */
static int tune_file_lines(const char *dir, char *v, size_t vsize) {
    char pat[1200], line[256];
    snprintf(pat, sizeof pat, "%s/matmul-tune-*.txt", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return -1;
    FILE *f = fopen(g.gl_pathv[0], "r");
    globfree(&g);
    if (!f) return -1;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (n++ == 0 && colon && v && vsize >= 32) sscanf(colon + 1, "%31s", v);
    }
    fclose(f);
    return n;
}

static void remove_dir(const char *dir) {
    char pat[1200];
    snprintf(pat, sizeof pat, "%s/*", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
    rmdir(dir);
}

static void tune_context(const char *dir, bool validate) {
    vkg_shutdown();
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = validate, .cache_dir = dir }), VKG_OK, "%s", vkg_last_error());
}

/* Autotuning (lib/ops/matmul.c "autotuning"). The default (VKG_TUNE unset) times a shape class on
 * its first use, writes the choice beside the pipeline cache, and never times that class again:
 * not on the next call, not in the next context, which reads the file. cached and off never
 * time; full times again. Nothing is timed under validation, inside a graph capture, or by
 * default while VKG_EXPLAIN reports. Timing needs a context without the validation layer: the
 * test makes its own, in a directory of its own (ctest pins VKG_TUNE=off for every other test). */
VKG_TEST(ops, matmul_autotune) {
    const char *base = getenv("VKG_TEST_CACHE");
    if (!base) cr_skip_test("VKG_TEST_CACHE is not set: no cache directory to tune into");
    const char *val = getenv("VKG_VALIDATE");
    if (val && *val) /* the environment's validation would apply to every context here */
        cr_skip_test("VKG_VALIDATE is set: nothing is timed under validation; the plain run of this file tunes");
    char dir[1100], v[32] = "", v2[32] = "";
    mkdir(base, 0755);
    snprintf(dir, sizeof dir, "%s/tune-XXXXXX", base);
    cr_assert_not_null(mkdtemp(dir));
    unsetenv("VKG_TUNE");
    unsetenv("VKG_MATMUL_SPLIT_K"); /* one kernel per product: a sum after it is no timing */
    tune_context(dir, false);
    /* the default: a new class is timed once and written; (37, 20) @ (20, 52) and (40, 20) @
     * (20, 60) share a class (ceil log2 of M, K, N: 6, 5, 6; both vec4-readable) */
    cr_assert_gt(tuned_matmul(37, 20, 52, "first use"), 1, "the default did not time a new class");
    cr_assert_eq(tune_file_lines(dir, v, sizeof v), 1, "the default did not write its choice");
    cr_assert_eq(tuned_matmul(37, 20, 52, "second call"), 1, "the class was timed again");
    cr_assert_eq(tuned_matmul(40, 20, 60, "same class"), 1, "the class was timed again");
    cr_assert_str_eq(vkg_matmul_variant_last(), v, "the call ran %s, the file says %s", vkg_matmul_variant_last(), v);
    /* a second context reads the file and times nothing */
    tune_context(dir, false);
    cr_assert_eq(tuned_matmul(37, 20, 52, "next context"), 1, "the next context timed a class the file has");
    cr_assert_str_eq(vkg_matmul_variant_last(), v, "the next context ran %s, the file says %s",
                     vkg_matmul_variant_last(), v);
    /* cached and off: a new class runs untimed and is not written; off runs the rule */
    setenv("VKG_TUNE", "cached", 1);
    cr_assert_eq(tuned_matmul(9, 70, 5, "cached, new class"), 1, "VKG_TUNE=cached timed");
    setenv("VKG_TUNE", "off", 1);
    cr_assert_eq(tuned_matmul(37, 20, 52, "off"), 1, "VKG_TUNE=off timed");
    cr_assert_eq(tune_file_lines(dir, NULL, 0), 1, "cached or off wrote the file");
    /* full: the class in the file is timed again in this context (once), and stays one line */
    setenv("VKG_TUNE", "full", 1);
    cr_assert_gt(tuned_matmul(37, 20, 52, "full"), 1, "VKG_TUNE=full did not time");
    cr_assert_eq(tuned_matmul(37, 20, 52, "full, again"), 1, "VKG_TUNE=full timed twice in one context");
    cr_assert_eq(tune_file_lines(dir, v2, sizeof v2), 1, "full added a line for a class the file had");
    unsetenv("VKG_TUNE");
    /* inside a graph capture the host cannot wait: a new class runs the rule, the capture holds */
    vkg_scope_begin();
    vkg_tensor *a = vkg_ones(VKG_SHAPE(3, 200)), *b = vkg_ones(VKG_SHAPE(200, 6)), *c = NULL;
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK, "%s", vkg_last_error());
    c = vkg_matmul(a, b);
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "a new class inside a capture: %s", vkg_last_error());
    float got[18];
    cr_assert_eq(vkg_tensor_read(c, got, sizeof got), VKG_OK);
    for (int i = 0; i < 18; i++) cr_assert_eq(got[i], 200.0f, "element %d is %g", i, (double)got[i]);
    vkg_graph_free(g);
    vkg_scope_end();
    cr_assert_eq(tune_file_lines(dir, NULL, 0), 1, "a capture tuned");
    /* a run that VKG_EXPLAIN (or VKG_PROFILE) reports is not tuned by default, so its report
     * shows only its own dispatches; full tunes there, out of the report */
    setenv("VKG_EXPLAIN", "/dev/null", 1);
    tune_context(dir, false);
    cr_assert_eq(tuned_matmul(9, 70, 5, "explained, new class"), 1, "tuned while VKG_EXPLAIN reports");
    cr_assert_eq(tune_file_lines(dir, NULL, 0), 1, "tuned while VKG_EXPLAIN reports");
    setenv("VKG_TUNE", "full", 1);
    cr_assert_gt(tuned_matmul(9, 70, 5, "explained, full"), 1, "VKG_TUNE=full did not time under VKG_EXPLAIN");
    cr_assert_eq(tune_file_lines(dir, NULL, 0), 2, "VKG_TUNE=full did not write its choice");
    unsetenv("VKG_TUNE");
    unsetenv("VKG_EXPLAIN");
    /* under validation the layer's cost swamps the kernels': nothing is timed */
    tune_context(dir, true);
    cr_assert_eq(tuned_matmul(20, 9, 70, "validation, new class"), 1, "tuned under validation");
    cr_assert_eq(tune_file_lines(dir, NULL, 0), 2, "tuned under validation");
    vkg_shutdown(); /* the pipeline cache is saved: then the directory can go */
    remove_dir(dir);
    tune_context(base, true);
}

VKG_TEST(ops, copy_fill_arange) {
    vkg_scope_begin();
    /* copy of a 6-d permuted view: the 8-dim gather */
    vkg_shape s = VKG_SHAPE(2, 3, 4, 5, 3, 2);
    input in = make_input(s, -1.0f, 1.0f, SEED, CONTIG);
    int perm[6] = { 5, 3, 1, 0, 2, 4 };
    vkg_tensor *p = vkg_permute(in.t, perm);
    vkg_tensor *c = vkg_contiguous(p);
    cr_assert(vkg_is_contiguous(c));
    cr_assert(!vkg_shares_storage(c, in.t));
    size_t n = (size_t)vkg_shape_numel(s);
    float *got = vkgt_read(c), *want = vkgt_read(p); /* host gather of the view */
    vkgt_assert_close(got, want, n, 0.0f, 0.0f, "contiguous of permute");
    free(got);
    free(want);
    covered[VKG_OP_COPY] = true;

    float *f = vkgt_read(vkg_full(VKG_SHAPE(131), 2.5f));
    for (int i = 0; i < 131; i++) cr_assert_eq(f[i], 2.5f);
    free(f);
    cr_assert_eq(vkg_item(vkg_zeros(VKG_SCALAR)), 0.0f);
    cr_assert_eq(vkg_item(vkg_ones(VKG_SHAPE(1, 1))), 1.0f);
    covered[VKG_OP_FILL] = true;

    vkg_tensor *r = vkg_arange(-2.0f, 3.0f, 0.5f);
    cr_assert_eq(vkg_numel(r), 10);
    float *a = vkgt_read(r);
    for (int i = 0; i < 10; i++) cr_assert_eq(a[i], -2.0f + 0.5f * (float)i);
    free(a);
    cr_assert_eq(vkg_numel(vkg_arange(5.0f, 0.0f, 1.0f)), 0);
    covered[VKG_OP_ARANGE] = true;
    free(in.host);
    vkg_scope_end();
}

/* ---- the vec4 modules and the index walk ------------------------------------------------------
 * The elementwise, copy and fill kernels take four elements an item where every operand allows it
 * (shaders/elementwise.glsl) and fall back to one float elsewhere. Each case below is a view of a
 * host slab: rows of width `w` cut at column `c0` (c0 = 0, w = W: contiguous) of a (rows, W)
 * tensor, whose host values are gathered here, not by the device. Sizes leave n % 4 tails, and
 * the big ones give every invocation many items, so the carried digits wrap several dims. */
typedef struct cut {
    int64_t rows, W, c0, w;
} cut;

typedef struct slab {
    float *host;   /* the (rows, w) values the view shows */
    vkg_tensor *t; /* the view                            */
} slab;

static slab make_cut(cut c, uint64_t seed, float lo, float hi) {
    size_t nb = (size_t)(c.rows * c.W), n = (size_t)(c.rows * c.w);
    float *base = malloc((nb ? nb : 1) * sizeof(float));
    vkgt_fill(base, nb, lo, hi, seed);
    slab s = { .host = malloc((n ? n : 1) * sizeof(float)) };
    for (int64_t r = 0; r < c.rows; r++)
        for (int64_t j = 0; j < c.w; j++) s.host[r * c.w + j] = base[r * c.W + c.c0 + j];
    vkg_tensor *t = vkg_from_data(VKG_SHAPE(c.rows, c.W), base);
    s.t = vkg_narrow(t, 1, c.c0, c.w);
    free(base);
    cr_assert_not_null(s.t, "%s", vkg_last_error());
    return s;
}

/* Whether the vec4 module of `shader` ran since the last call (the dispatched variants). */
static bool ran_vec4(const char *shader) {
    char buf[1024], name[64];
    vkg_trace_variants(buf, sizeof buf);
    snprintf(name, sizeof name, "%s_vec4", shader);
    return strstr(buf, name) != NULL;
}

/* cuts for one operand: contiguous at offsets 0..4 (4099 and 70001 elements, n % 4 = 3 and 1),
 * short ones, a column block at an aligned and at a misaligned column, rows of a width that is
 * not a multiple of 4 */
static const cut CUTS[] = {
    { 1, 4103, 0, 4099 }, { 1, 4103, 1, 4099 }, { 1, 4103, 2, 4099 }, { 1, 4103, 3, 4099 },
    { 1, 4103, 4, 4099 }, { 1, 70005, 4, 70001 }, { 1, 9, 1, 6 }, { 1, 7, 0, 7 },
    { 37, 12, 4, 8 }, { 37, 12, 1, 8 }, { 37, 10, 0, 8 }, { 301, 24, 8, 16 },
};
/* whether each cut is read as vec4 (alone, or with another cut that is) */
static const bool CUT_VEC4[] = { 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1 };
#define NCUTS (sizeof CUTS / sizeof *CUTS)

VKG_TEST(ops, elementwise_vec4_and_fallbacks) {
    const vkg_op unary_ops[] = { VKG_OP_RELU, VKG_OP_GELU, VKG_OP_EXP, VKG_OP_POW };
    const vkg_op grad_ops[] = { VKG_OP_RELU, VKG_OP_GELU, VKG_OP_TANH, VKG_OP_SILU };
    const vkg_op binary_ops[] = { VKG_OP_ADD, VKG_OP_DIV, VKG_OP_MAXIMUM };
    for (size_t k = 0; k < NCUTS; k++) {
        vkg_scope_begin();
        cut c = CUTS[k];
        size_t n = (size_t)(c.rows * c.w);
        char what[160];
        slab x = make_cut(c, SEED + k, -3.0f, 3.0f);
        /* the second operand: the same cut one column on where the first is vec4-able (so one of
         * the two is misaligned), else at column 0 of a contiguous slab */
        bool shift = CUT_VEC4[k] && c.c0 + c.w + 1 <= c.W;
        cut cb = shift ? (cut){ c.rows, c.W, c.c0 + 1, c.w } : (cut){ c.rows, c.w, 0, c.w };
        slab b = make_cut(cb, SEED + 50 + k, 0.5f, 3.0f);
        float *want = malloc(n * sizeof(float));
        ran_vec4("unary");
        for (size_t i = 0; i < sizeof unary_ops / sizeof *unary_ops; i++) {
            vkg_op op = unary_ops[i];
            float *got = vkgt_read(op == VKG_OP_POW ? vkg_pow(x.t, 3.0f) : vkg_unary(op, x.t));
            vkg_ref_unary(op, want, x.host, n, 3.0f);
            snprintf(what, sizeof what, "%s of cut %zu", vkg_op_table[op].name, k);
            vkgt_assert_close(got, want, n, tol_for(op), 1e-6f, what);
            cr_assert_eq(ran_vec4("unary"), CUT_VEC4[k], "%s: vec4 module %s", what, CUT_VEC4[k] ? "not used" : "used");
            free(got);
        }
        for (size_t i = 0; i < sizeof grad_ops / sizeof *grad_ops; i++) {
            vkg_op op = grad_ops[i];
            /* x and g both vec4-able, then g misaligned against an aligned x */
            for (int mis = 0; mis < 2; mis++) {
                slab g = mis ? b : x;
                float *got = vkgt_read(vkg_unary_grad(op, x.t, g.t));
                memset(want, 0, n * sizeof(float)); /* the reference adds into dx */
                vkg_ref_unary_backward(op, want, x.host, g.host, n, 0.0f);
                snprintf(what, sizeof what, "%s backward of cut %zu (g %s)", vkg_op_table[op].name, k, mis ? "other" : "x");
                vkgt_assert_close(got, want, n, 1e-4f, 1e-6f, what);
                bool vec4 = CUT_VEC4[k] && !(mis && shift);
                cr_assert_eq(ran_vec4("unary_backward"), vec4, "%s: vec4 module %s", what, vec4 ? "not used" : "used");
                free(got);
            }
        }
        for (size_t i = 0; i < sizeof binary_ops / sizeof *binary_ops; i++) {
            vkg_op op = binary_ops[i];
            vkg_shape s = VKG_SHAPE(c.rows, c.w);
            float *got = vkgt_read(vkg_binary(op, x.t, b.t));
            vkg_ref_binary(op, want, s, x.host, s, b.host, s);
            snprintf(what, sizeof what, "%s of cut %zu and cut (%lld, %lld) at %lld", vkg_op_table[op].name, k,
                     (long long)cb.rows, (long long)cb.W, (long long)cb.c0);
            vkgt_assert_close(got, want, n, tol_for(op), 1e-6f, what);
            bool vec4 = CUT_VEC4[k] && !shift;
            cr_assert_eq(ran_vec4("binary"), vec4, "%s: vec4 module %s", what, vec4 ? "not used" : "used");
            free(got);
            got = vkgt_read(vkg_binary_scalar(op, x.t, 1.5f));
            for (size_t e = 0; e < n; e++) want[e] = vkg_ref_binary1(op, x.host[e], 1.5f);
            vkgt_assert_close(got, want, n, tol_for(op), 1e-6f, what);
            cr_assert_eq(ran_vec4("binary"), CUT_VEC4[k], "%s scalar: vec4 module", what);
            free(got);
        }
        /* copy: contiguous of the view, and copy_into a cut of the same shape */
        float *got = vkgt_read(vkg_contiguous(x.t));
        vkgt_assert_close(got, x.host, n, 0.0f, 0.0f, "contiguous");
        free(got);
        slab d = make_cut(c, SEED + 90 + k, 0.0f, 1.0f);
        ran_vec4("copy");
        cr_assert_eq(vkg_copy_into(d.t, b.t), VKG_OK, "%s", vkg_last_error());
        bool copy_vec4 = CUT_VEC4[k] && !shift;
        cr_assert_eq(ran_vec4("copy"), copy_vec4, "copy_into cut %zu: vec4 module", k);
        got = vkgt_read(d.t);
        vkgt_assert_close(got, b.host, n, 0.0f, 0.0f, "copy_into");
        free(got);
        if (vkg_is_contiguous(d.t)) { /* fill and arange write a contiguous tensor at its offset */
            cr_assert_not_null(vkg_fill_(d.t, -2.5f));
            got = vkgt_read(d.t);
            for (size_t e = 0; e < n; e++) cr_assert_eq(got[e], -2.5f, "fill of cut %zu, element %zu", k, e);
            free(got);
            cr_assert_eq(ran_vec4("fill"), CUT_VEC4[k], "fill of cut %zu: vec4 module", k);
        }
        free(want);
        free(x.host);
        free(b.host);
        free(d.host);
        vkg_scope_end();
    }
}

/* Broadcasts the vec4 module takes (an input constant along the innermost run, or running along
 * it with outer strides that are multiples of 4) and two it does not, against the reference. */
VKG_TEST(ops, broadcast_vec4_and_fallbacks) {
    const struct {
        vkg_shape a, b;
        bool vec4;
    } cases[] = {
        { VKG_SHAPE(3, 5, 8), VKG_SHAPE(8), true },        /* bias along the last dim, (B, T, C) + (C) */
        { VKG_SHAPE(2, 3, 12), VKG_SHAPE(3, 1), true },    /* per channel, (N, K, P) + (K, 1)         */
        { VKG_SHAPE(6, 4, 8), VKG_SHAPE(6, 1, 8), true },  /* a middle dim broadcast                   */
        { VKG_SHAPE(4, 9), VKG_SHAPE(1), true },           /* one element, n % 4 = 0 but odd rows       */
        { VKG_SCALAR, VKG_SHAPE(5, 7), true },             /* 0-d against a matrix: one dim, a tail     */
        { VKG_SHAPE(40, 100, 36), VKG_SHAPE(100, 1), true },/* many items an invocation, wraps 2 dims   */
        { VKG_SHAPE(7, 9), VKG_SHAPE(9), false },          /* rows of 9                                 */
        { VKG_SHAPE(5, 6), VKG_SHAPE(5, 1), false },       /* runs of 6: not whole vec4                 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        vkg_scope_begin();
        input a = make_input(cases[k].a, -2.0f, 2.0f, SEED + k, CONTIG);
        input b = make_input(cases[k].b, 0.5f, 2.0f, SEED + 20 + k, CONTIG);
        vkg_shape ys;
        cr_assert(vkg_broadcast_shape(cases[k].a, cases[k].b, &ys));
        size_t n = (size_t)vkg_shape_numel(ys);
        float *want = malloc(n * sizeof(float));
        char what[96], sa[48], sb[48];
        snprintf(what, sizeof what, "%s and %s", vkg_shape_str(cases[k].a, sa, sizeof sa),
                 vkg_shape_str(cases[k].b, sb, sizeof sb));
        ran_vec4("binary");
        for (int swap = 0; swap < 2; swap++) { /* the broadcast operand first, then second */
            input *p = swap ? &b : &a, *q = swap ? &a : &b;
            float *got = vkgt_read(vkg_sub(p->t, q->t));
            vkg_ref_binary(VKG_OP_SUB, want, ys, p->host, p->shape, q->host, q->shape);
            vkgt_assert_close(got, want, n, 1e-6f, 1e-6f, what);
            cr_assert_eq(ran_vec4("binary"), cases[k].vec4, "%s: vec4 module", what);
            free(got);
        }
        /* where(cond, a, b) with the condition broadcast like b */
        input c = make_input(cases[k].b, 0.0f, 2.0f, SEED + 40 + k, CONTIG);
        size_t nc = (size_t)vkg_shape_numel(cases[k].b);
        for (size_t i = 0; i < nc; i++) c.host[i] = floorf(c.host[i]);
        c.t = vkg_from_data(cases[k].b, c.host);
        float *got = vkgt_read(vkg_where(c.t, a.t, b.t));
        vkg_ref_where(want, ys, c.host, cases[k].b, a.host, cases[k].a, b.host, cases[k].b);
        vkgt_assert_close(got, want, n, 0.0f, 0.0f, what);
        cr_assert_eq(ran_vec4("binary"), cases[k].vec4, "where %s: vec4 module", what);
        free(got);
        free(want);
        free(a.host);
        free(b.host);
        free(c.host);
        vkg_scope_end();
    }
}

/* The copy walk over permuted views, big enough that every invocation moves many items (carries
 * through several dims at each step): reversed dims (no two merge: three to walk), head splits
 * (B, T, H, D) -> (B, H, T, D) whose innermost D runs in both views (vec4 when D % 4 == 0), and
 * 1-element and 0-d copies. */
VKG_TEST(ops, copy_walks_views) {
    const struct {
        vkg_shape s;
        int perm[4];
        bool vec4;
    } cases[] = {
        { VKG_SHAPE(37, 29, 23), { 2, 1, 0 }, false },
        { VKG_SHAPE(3, 37, 5, 8), { 0, 2, 1, 3 }, true },
        { VKG_SHAPE(3, 37, 5, 6), { 0, 2, 1, 3 }, false },
        { VKG_SHAPE(2, 300, 4, 12), { 2, 0, 1, 3 }, true },
        { VKG_SHAPE(1), { 0 }, false },
        { VKG_SCALAR, { 0 }, false },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        vkg_scope_begin();
        vkg_shape s = cases[k].s, ps = s;
        input in = make_input(s, -1.0f, 1.0f, SEED + k, CONTIG);
        size_t n = (size_t)vkg_shape_numel(s);
        int64_t st[VKG_MAX_DIMS], pst[VKG_MAX_DIMS], idx[VKG_MAX_DIMS] = { 0 };
        for (int d = s.ndim - 1, acc = 1; d >= 0; d--) {
            st[d] = acc;
            acc *= (int)s.d[d];
        }
        for (int d = 0; d < s.ndim; d++) {
            ps.d[d] = s.d[cases[k].perm[d]];
            pst[d] = st[cases[k].perm[d]];
        }
        /* want: the permuted view's elements in order, gathered on the host */
        float *want = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            int64_t src = 0;
            for (int d = 0; d < s.ndim; d++) src += idx[d] * pst[d];
            want[i] = in.host[src];
            for (int d = s.ndim - 1; d >= 0 && ++idx[d] == ps.d[d]; d--) idx[d] = 0;
        }
        vkg_tensor *v = s.ndim > 1 ? vkg_permute(in.t, cases[k].perm) : in.t;
        ran_vec4("copy");
        float *got = vkgt_read(s.ndim > 1 ? vkg_contiguous(v) : vkg_copy(v));
        char what[96], ss[64];
        snprintf(what, sizeof what, "copy of %s permuted", vkg_shape_str(s, ss, sizeof ss));
        vkgt_assert_close(got, want, n, 0.0f, 0.0f, what);
        cr_assert_eq(ran_vec4("copy"), cases[k].vec4, "%s: vec4 module", what);
        free(got);
        free(want);
        free(in.host);
        vkg_scope_end();
    }
}

/* Runs last in its own process, so it re-runs one check per kind and then asserts that every
 * row of the table has a kind this file knows how to test. */
VKG_TEST(ops, every_op_has_a_test) {
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        vkg_op_kind k = vkg_op_table[op].kind;
        cr_assert(k == VKG_KIND_UNARY || k == VKG_KIND_BINARY || k == VKG_KIND_TERNARY || k == VKG_KIND_REDUCE ||
                      k == VKG_KIND_MATMUL || k == VKG_KIND_COPY || k == VKG_KIND_FILL ||
                      k == VKG_KIND_RANDOM /* tests/test_random.c */ || k == VKG_KIND_NN ||
                      k == VKG_KIND_CONV || k == VKG_KIND_SEQ, /* tests/test_<group>_ops.c */
                  "op %s has a kind the op tests do not cover", vkg_op_table[op].name);
        cr_assert(vkg_op_table[op].has_reference, "op %s has no C reference", vkg_op_table[op].name);
    }
}
