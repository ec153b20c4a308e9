/* layer_norm over the last dim: one fused forward (shaders/layer_norm.comp) that also saves the
 * per-row (mean, rstd), and a fused backward (shaders/layer_norm_backward.comp): dx per row, and
 * dw, db per column summed over the rows in order. x is read in place through strides when its
 * leading dims merge, else gathered first. */
#include <math.h>

#include "ops/nn_internal.h"

/* Mirrors the Push block of shaders/layer_norm.comp: change both. */
typedef struct vkg_layer_norm_push {
    uint32_t rows, D, x_off, y_off;
    int32_t s_row, s_col;
    uint32_t stats_off, pad;
    uint32_t w_off, b_off;
    int32_t w_st, b_st;
    float eps;
} vkg_layer_norm_push;

/* Mirrors the Push block of shaders/layer_norm_backward.comp: change both. */
typedef struct vkg_layer_norm_backward_push {
    uint32_t rows, D, x_off, out_off;
    int32_t s_row, s_col;
    uint32_t dy_off, stats_off;
    uint32_t w_off;
    int32_t w_st;
    uint32_t pad;
    uint32_t per, items;  /* dw and db: rows per chunk, chunks x D */
    uint32_t acc_off;
} vkg_layer_norm_backward_push;

#define LOCAL 64

/* x as (rows, D) with one stride each, in place or gathered (no node recorded). */
static vkg_tensor *rows_view(vkg_tensor *x, vkg_nn_rows *r) {
    int axis = x->shape.ndim - 1;
    if (vkg_nn_rows_of(x, axis, r)) return x;
    vkg_no_grad_begin();
    vkg_tensor *c = vkg_copy(x);
    vkg_no_grad_end();
    if (c) vkg_nn_rows_of(c, axis, r);
    return c;
}

static bool check_param(vkg_tensor *p, const char *what, vkg_tensor *x) {
    if (!p) return true;
    if (!vkg_require_f32(p, "vkg_layer_norm", what)) return false;
    int64_t D = x->shape.d[x->shape.ndim - 1];
    if (p->shape.ndim == 1 && p->shape.d[0] == D) return true;
    char a[192], b[192];
    vkg_fail(VKG_ERR_INVALID, "vkg_layer_norm: x is %s, so %s must be (%lld,), but it is %s", vkg_desc(x, a, sizeof a),
             what, (long long)D, vkg_desc(p, b, sizeof b));
    return false;
}

/* The shaders' VEC4 paths read w and b as vec4 too (absent ones are not read). */
static bool vec4_param(const vkg_tensor *p) { return !p || vkg_vec4_rows(p->shape.d[0], 0, p->strides[0], p->offset); }

vkg_tensor *vkg_layer_norm(vkg_tensor *x, vkg_tensor *weight, vkg_tensor *bias, float eps) {
    const char *fn = "vkg_layer_norm";
    if (!x) return NULL;
    if (!vkg_require_f32(x, fn, "x")) return NULL;
    char a[192];
    if (x->shape.ndim < 1)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s; it needs a last dim to normalize over", fn,
                             vkg_desc(x, a, sizeof a));
    if (!check_param(weight, "weight", x) || !check_param(bias, "bias", x)) return NULL;
    if (!(eps >= 0.0f) || isinf(eps)) return vkg_fail_null(VKG_ERR_INVALID, "%s: eps = %g must be finite and >= 0", fn, (double)eps);
    int64_t D = x->shape.d[x->shape.ndim - 1], rows = 1;
    for (int i = 0; i < x->shape.ndim - 1; i++) rows *= x->shape.d[i];
    vkg_tensor *y = vkg_tensor_alloc(x->shape, VKG_F32, false, fn);
    vkg_tensor *stats = vkg_tensor_alloc(VKG_SHAPE(rows, 2), VKG_F32, false, fn);
    if (!y || !stats) goto fail;
    if (vkg_numel(x) > 0) {
        vkg_nn_rows r;
        vkg_tensor *xr = rows_view(x, &r);
        if (!xr) goto fail;
        vkg_layer_norm_push pc = { .rows = (uint32_t)rows,
                                   .D = (uint32_t)D,
                                   .x_off = (uint32_t)xr->offset,
                                   .y_off = (uint32_t)y->offset,
                                   .s_row = (int32_t)r.so,
                                   .s_col = (int32_t)r.sr,
                                   .stats_off = (uint32_t)stats->offset,
                                   .w_off = weight ? (uint32_t)weight->offset : 0,
                                   .b_off = bias ? (uint32_t)bias->offset : 0,
                                   .w_st = weight ? (int32_t)weight->strides[0] : 0,
                                   .b_st = bias ? (int32_t)bias->strides[0] : 0,
                                   .eps = eps };
        bool vec4 = vkg_vec4_rows(D, r.so, r.sr, xr->offset) && y->offset % 4 == 0 && vec4_param(weight) &&
                    vec4_param(bias);
        vkg_dispatch_desc d = {
            .shader = "layer_norm", .op = VKG_OP_LAYER_NORM, .name = fn, .local_size = LOCAL,
            /* VEC4, FLAGS (w, b present), ROW4 */
            .spec = { vec4, (weight ? 1u : 0u) | (bias ? 2u : 0u), vkg_row_regs(D, vec4) }, .nspec = 3,
            .groups = { vkg_groups_for_cost((uint64_t)rows, LOCAL, 3 * (uint64_t)D + 4) },
            .bind = { y, stats, xr, weight ? weight : xr, bias ? bias : xr }, .nout = 2, .push = &pc,
            .push_size = sizeof pc };
        if (vkg_texel_bind(&d, 0x1cu, vec4 ? 0u : 0x1cu)) { /* x, w, b through texel views */
            d.shader = "layer_norm_tex";
            vkg_texel_rebase(&d, 2, (uint32_t *[]){ &pc.x_off, &pc.w_off, &pc.b_off }, 3);
        }
        vkg_status st = vkg_dispatch(&d);
        if (xr != x) vkg_free(xr);
        if (st != VKG_OK) goto fail;
    }
    /* the stats are saved as a fourth input (no gradient) for the backward */
    vkg_node *n = vkg_node_record(y, VKG_OP_LAYER_NORM, (vkg_tensor *[]){ x, weight, bias, stats }, 4);
    if (n) n->s = eps;
    else vkg_free(stats);
    return y;
fail:
    vkg_free(y);
    vkg_free(stats);
    return NULL;
}

vkg_status vkg_nn_layer_norm_backward(vkg_tensor *x, vkg_tensor *w, vkg_tensor *stats, vkg_tensor *dy, vkg_tensor *acc,
                                      vkg_tensor **dx, vkg_tensor **dw, vkg_tensor **db) {
    const char *fn = "vkg_layer_norm backward";
    int64_t D = x->shape.d[x->shape.ndim - 1], rows = stats->shape.d[0];
    vkg_nn_rows r;
    vkg_tensor *xr = NULL, *dyc = NULL, *part = NULL;
    vkg_status st = VKG_OK;
    bool want_wb = dw && db;
    if (dx) *dx = vkg_tensor_alloc(x->shape, VKG_F32, false, fn);
    if (want_wb) *dw = *db = NULL;
    if (dx && !*dx) {
        st = vkg_last_status();
        goto done;
    }
    if (vkg_numel(x) == 0) {
        if (want_wb && (!(*dw = vkg_zeros(VKG_SHAPE(D))) || !(*db = vkg_zeros(VKG_SHAPE(D))))) st = vkg_last_status();
        goto done;
    }
    xr = rows_view(x, &r);
    dyc = vkg_contiguous(dy);
    if (!xr || !dyc) {
        st = vkg_last_status();
        goto done;
    }
    vkg_layer_norm_backward_push pc = { .rows = (uint32_t)rows,
                                        .D = (uint32_t)D,
                                        .x_off = (uint32_t)xr->offset,
                                        .s_row = (int32_t)r.so,
                                        .s_col = (int32_t)r.sr,
                                        .dy_off = (uint32_t)dyc->offset,
                                        .stats_off = (uint32_t)stats->offset,
                                        .w_off = w ? (uint32_t)w->offset : 0,
                                        .w_st = w ? (int32_t)w->strides[0] : 0,
                                        .acc_off = acc ? (uint32_t)acc->offset : 0 };
    /* dw and db sum over the rows: split into chunks (vkg_split_rows) whose partial sums, (2,
     * chunks, D), are added in order, so that the rows of a long batch neither run past
     * lavapipe's loop limit nor leave a device with only D invocations to run. dw and db come
     * out as tensors of their own, which the parameters keep without a copy. */
    bool vec4 = vkg_vec4_rows(D, r.so, r.sr, xr->offset) && dyc->offset % 4 == 0 && vec4_param(w) &&
                (!acc || acc->offset % 4 == 0);
    uint64_t per, chunks = vkg_split_rows((uint64_t)rows, 1, (uint64_t)D, &per);
    if ((st = vkg_loop_check(2 * (uint64_t)D + 4, fn, "one row")) != VKG_OK) goto done;
    if (want_wb && !(part = vkg_tensor_alloc(VKG_SHAPE(2, (int64_t)chunks, D), VKG_F32, false, fn))) {
        st = vkg_last_status();
        goto done;
    }
    vkg_tensor *outs[2] = { dx ? *dx : NULL, part }; /* OP 0 writes dx, OP 1 the partial sums */
    for (uint32_t op = 0; op < 2 && st == VKG_OK; op++) {
        vkg_tensor *out = outs[op];
        if (!out) continue;
        pc.out_off = (uint32_t)out->offset;
        pc.per = (uint32_t)per;
        pc.items = (uint32_t)(chunks * (uint64_t)D);
        bool v4 = vec4 && (op == 1 || out->offset % 4 == 0); /* OP 1 stores floats */
        uint64_t n = op == 0 ? (uint64_t)rows : v4 ? pc.items / 4 : pc.items;
        uint64_t cost = op == 0 ? 2 * (uint64_t)D + 4 : per + 4;
        vkg_dispatch_desc d = { .shader = "layer_norm_backward", .op = VKG_OP_LAYER_NORM, .name = fn,
                                .spec = { op, v4, (w ? 1u : 0u) | (acc ? 2u : 0u), vkg_row_regs(D, op == 0 && v4) },
                                .nspec = 4,
                                .local_size = LOCAL,
                                .groups = { vkg_groups_for_cost(n, LOCAL, cost) },
                                .bind = { out, xr, dyc, stats, w ? w : xr, acc ? acc : dyc },
                                .nout = 1 };
        /* every input through a texel view where the device reads those faster (the stats as
         * floats always) */
        vkg_layer_norm_backward_push p = pc;
        if (vkg_texel_bind(&d, 0x3eu, v4 ? 0x08u : 0x3eu)) {
            d.shader = "layer_norm_backward_tex";
            vkg_texel_rebase(&d, 1, (uint32_t *[]){ &p.x_off, &p.dy_off, &p.stats_off, &p.w_off, &p.acc_off }, 5);
        }
        d.push = &p;
        d.push_size = sizeof p;
        st = vkg_dispatch(&d);
    }
    for (int i = 0; i < 2 && st == VKG_OK && part; i++) {
        vkg_tensor *p = vkg_squeeze(vkg_narrow(part, 0, i, 1), 0);             /* (chunks, D) */
        vkg_tensor *sum = chunks > 1 ? vkg_sum(p, 0, false) : vkg_squeeze(p, 0); /* (D) */
        if (sum != p) vkg_free(p);
        *(i == 0 ? dw : db) = sum;
        if (!sum) st = vkg_last_status();
    }
done:
    vkg_free(part);
    if (xr && xr != x) vkg_free(xr);
    if (dyc && dyc != dy) vkg_free(dyc);
    if (st != VKG_OK) {
        if (dx) {
            vkg_free(*dx);
            *dx = NULL;
        }
        if (want_wb) {
            vkg_free(*dw);
            vkg_free(*db);
            *dw = *db = NULL;
        }
    }
    return st;
}
