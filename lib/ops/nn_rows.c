/* Ops over one axis, one fused shader each way (shaders/nn_rows.comp, nn_rows_backward.comp):
 * softmax, log_softmax, logsumexp (max-subtracted), var and std (two passes). The input is
 * read in place as (outer, R, inner) through strides when the dims around the axis merge (any
 * transposed 2-D view does), else gathered by vkg_contiguous first. One invocation per row, or,
 * for few long rows, one workgroup per row combining through a fixed tree in shared memory:
 * either way a fixed order, so bitwise reproducible on a device. */
#include <math.h>

#include "ops/nn_internal.h"

/* Mirrors the Push block of shaders/nn_rows.comp: change both. */
typedef struct vkg_nn_rows_push {
    uint32_t outer, R, inner, x_off;
    int32_t so, sr, si;
    uint32_t y_off;
    float denom;
    float scale;   /* softmax family: x is read as x scale                          */
    uint32_t causal; /* softmax: T, entries r > (row % T) are -inf (0: none)           */
} vkg_nn_rows_push;

/* Mirrors the Push block of shaders/nn_rows_backward.comp: change both. */
typedef struct vkg_nn_rows_backward_push {
    uint32_t outer, R, inner, a_off;
    int32_t so, sr, si;
    uint32_t dx_off;
    uint32_t dy_off, aux_off;
    float denom;
    float scale;   /* softmax, log_softmax: dx is multiplied by it (the forward's scale) */
} vkg_nn_rows_backward_push;

#define LOCAL 64 /* a power of two: the workgroup variant's tree needs it */

/* Variant 1 (a workgroup per row) when rows are too few to fill the device or contiguous on a
 * GPU (vkg_rows_by_workgroup), or too long for one invocation to walk three times within
 * lavapipe's loop limit; its invocations walk R / LOCAL each, which must fit too (else a clear
 * error). Returns the group count, 0 on that error. */
static uint32_t rows_grid(uint64_t rows, int64_t R, int64_t r_stride, const char *fn, uint32_t *variant) {
    uint64_t cost = 3 * (uint64_t)R + 8, lane_cost = 3 * (((uint64_t)R + LOCAL - 1) / LOCAL) + 16;
    *variant = vkg_rows_by_workgroup(rows, (uint64_t)R, r_stride) || cost > vkg_loop_budget() / 2 ? 1u : 0u;
    if (*variant == 0) return vkg_groups_for_cost(rows, LOCAL, cost);
    if (vkg_loop_check(lane_cost, fn, "a row") != VKG_OK) return 0;
    return vkg_groups_for_cost(rows, 1, lane_cost);
}

/* t itself when its rows can be read in place, else a contiguous copy (no node recorded). */
static vkg_tensor *rows_input(vkg_tensor *t, int axis, vkg_nn_rows *r) {
    if (vkg_nn_rows_of(t, axis, r)) return t;
    vkg_no_grad_begin();
    vkg_tensor *c = vkg_copy(t);
    vkg_no_grad_end();
    if (c && !vkg_nn_rows_of(c, axis, r)) { /* cannot happen: a contiguous tensor always merges */
        vkg_free(c);
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_nn_rows: internal error");
    }
    return c;
}

static float var_denom(int64_t R, int correction) {
    double d = (double)R - correction;
    return d > 0 ? (float)d : 0.0f;
}

/* The shaders' VEC4 paths: rows along the last dims' run (inner 1) of whole vec4s. */
static bool rows_vec4(const vkg_nn_rows *r, int64_t off) { return r->inner == 1 && vkg_vec4_rows(r->R, r->so, r->sr, off); }

/* scale and causal: vkg_nn_softmax_scaled's (1 and 0 for the public ops). */
static vkg_tensor *rows_op(vkg_op op, vkg_tensor *x, int axis, bool keepdim, int correction, float scale,
                           int64_t causal) {
    const char *name = vkg_op_table[op].name;
    char fn[48];
    snprintf(fn, sizeof fn, "vkg_%s", name);
    if (!x || !vkg_require_f32(x, fn, "x")) return NULL;
    if (!vkg_norm_axis(&axis, x->shape.ndim, fn, x->shape)) return NULL;
    bool same_shape = op == VKG_OP_SOFTMAX || op == VKG_OP_LOG_SOFTMAX;
    vkg_shape out = { .ndim = 0 };
    for (int i = 0; i < x->shape.ndim; i++) {
        if (i != axis || same_shape) out.d[out.ndim++] = x->shape.d[i];
        else if (keepdim) out.d[out.ndim++] = 1;
    }
    int64_t R = x->shape.d[axis];
    float denom = var_denom(R, correction);
    vkg_tensor *y;
    if (R == 0 && !same_shape) { /* nothing to read: logsumexp -inf, var and std NaN (PyTorch) */
        vkg_no_grad_begin();
        y = vkg_full(out, op == VKG_OP_LOGSUMEXP ? -INFINITY : NAN);
        vkg_no_grad_end();
    } else {
        y = vkg_tensor_alloc(out, VKG_F32, false, fn);
        vkg_nn_rows r;
        vkg_tensor *xr = y && vkg_numel(x) > 0 ? rows_input(x, axis, &r) : NULL;
        if (xr) {
            vkg_nn_rows_push pc = { (uint32_t)r.outer, (uint32_t)r.R,  (uint32_t)r.inner, (uint32_t)xr->offset,
                                    (int32_t)r.so,     (int32_t)r.sr,  (int32_t)r.si,     (uint32_t)y->offset,
                                    denom,             scale,          (uint32_t)causal };
            uint64_t rows = (uint64_t)(r.outer * r.inner);
            uint32_t variant, groups = rows_grid(rows, r.R, r.sr, fn, &variant);
            bool vec4 = same_shape && variant == 0 && rows_vec4(&r, xr->offset) && y->offset % 4 == 0;
            vkg_dispatch_desc d = { .shader = "nn_rows", .op = op, .name = fn,
                                    .spec = { vkg_op_table[op].code, variant, vec4, vkg_row_regs(r.R, vec4) },
                                    .nspec = 4, .local_size = LOCAL, .groups = { groups }, .bind = { y, xr },
                                    .nout = 1, .push = &pc, .push_size = sizeof pc };
            if (vkg_texel_bind(&d, 2u, vec4 ? 0u : 2u)) { /* x through a texel view */
                d.shader = "nn_rows_tex";
                vkg_texel_rebase(&d, 1, (uint32_t *[]){ &pc.x_off }, 1);
            }
            vkg_status st = !groups ? vkg_last_status() : vkg_dispatch(&d);
            if (xr != x) vkg_free(xr);
            if (st != VKG_OK) {
                vkg_free(y);
                y = NULL;
            }
        } else if (y && vkg_numel(x) > 0) {
            vkg_free(y);
            y = NULL;
        }
    }
    vkg_node *n = vkg_node_record(y, op, &x, 1);
    if (n) {
        n->axis = axis;
        n->keepdim = keepdim;
        n->ip[0] = correction;
        n->s = scale;
    }
    return y;
}

vkg_tensor *vkg_softmax(vkg_tensor *x, int axis) { return rows_op(VKG_OP_SOFTMAX, x, axis, false, 0, 1.0f, 0); }
vkg_tensor *vkg_log_softmax(vkg_tensor *x, int axis) { return rows_op(VKG_OP_LOG_SOFTMAX, x, axis, false, 0, 1.0f, 0); }
vkg_tensor *vkg_logsumexp(vkg_tensor *x, int axis, bool keepdim) {
    return rows_op(VKG_OP_LOGSUMEXP, x, axis, keepdim, 0, 1.0f, 0);
}
vkg_tensor *vkg_var(vkg_tensor *x, int axis, bool keepdim, int correction) {
    return rows_op(VKG_OP_VAR, x, axis, keepdim, correction, 1.0f, 0);
}
vkg_tensor *vkg_std(vkg_tensor *x, int axis, bool keepdim, int correction) {
    return rows_op(VKG_OP_STD, x, axis, keepdim, correction, 1.0f, 0);
}

vkg_tensor *vkg_nn_softmax_scaled(vkg_tensor *x, float scale, bool causal) {
    int64_t T = x && x->shape.ndim >= 2 ? x->shape.d[x->shape.ndim - 2] : 0;
    return rows_op(VKG_OP_SOFTMAX, x, -1, false, 0, scale, causal ? T : 0);
}

vkg_tensor *vkg_nn_rows_backward(vkg_op op, vkg_tensor *a, int axis, vkg_tensor *dy, vkg_tensor *aux, float denom,
                                 float scale) {
    const char *fn = "vkg_nn_rows_backward";
    vkg_tensor *dx = vkg_tensor_alloc(a->shape, VKG_F32, false, fn);
    if (!dx || vkg_numel(a) == 0) return dx;
    vkg_nn_rows r;
    vkg_tensor *ar = rows_input(a, axis, &r), *dyc = vkg_contiguous(dy), *auxc = aux ? vkg_contiguous(aux) : NULL;
    vkg_status st = VKG_ERR_INVALID;
    if (ar && dyc && (auxc || !aux)) {
        vkg_nn_rows_backward_push pc = { (uint32_t)r.outer,   (uint32_t)r.R,   (uint32_t)r.inner,
                                         (uint32_t)ar->offset, (int32_t)r.so,  (int32_t)r.sr,
                                         (int32_t)r.si,       (uint32_t)dx->offset, (uint32_t)dyc->offset,
                                         auxc ? (uint32_t)auxc->offset : 0, denom, scale };
        uint64_t rows = (uint64_t)(r.outer * r.inner);
        uint32_t variant, groups = rows_grid(rows, r.R, r.sr, fn, &variant);
        bool vec4 = (op == VKG_OP_SOFTMAX || op == VKG_OP_LOG_SOFTMAX) && variant == 0 && rows_vec4(&r, ar->offset) &&
                    dx->offset % 4 == 0 && dyc->offset % 4 == 0;
        vkg_dispatch_desc d = { .shader = "nn_rows_backward", .op = op, .name = fn,
                                .spec = { vkg_op_table[op].code, variant, vec4, vkg_row_regs(r.R, vec4) },
                                .nspec = 4, .local_size = LOCAL, .groups = { groups },
                                .bind = { dx, ar, dyc, auxc ? auxc : dyc }, .nout = 1, .push = &pc,
                                .push_size = sizeof pc };
        if (vkg_texel_bind(&d, 0xeu, vec4 ? 0x8u : 0xeu)) { /* a, dy, aux through texel views */
            d.shader = "nn_rows_backward_tex";
            vkg_texel_rebase(&d, 1, (uint32_t *[]){ &pc.a_off, &pc.dy_off, &pc.aux_off }, 3);
        }
        st = !groups ? vkg_last_status() : vkg_dispatch(&d);
    }
    if (ar && ar != a) vkg_free(ar);
    if (dyc && dyc != dy) vkg_free(dyc);
    if (auxc && auxc != aux) vkg_free(auxc);
    if (st != VKG_OK) {
        vkg_free(dx);
        return NULL;
    }
    return dx;
}
