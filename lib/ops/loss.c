/* Losses: cross_entropy and nll_loss (class targets; shaders/class_loss.comp and
 * class_loss_backward.comp, fused log-softmax + NLL both ways), mse_loss and
 * binary_cross_entropy_with_logits (elementwise, shaders/nn_pointwise.comp). Per-sample losses
 * are reduced by the table's sum (a fixed order), so the losses are bitwise reproducible. */
#include <math.h>

#include "ops/nn_internal.h"

/* Mirrors the Push block of shaders/class_loss.comp: change both. */
typedef struct vkg_class_loss_push {
    uint32_t N, C, x_off, t_off;
    int32_t sN, sC, sT, ignore;
    uint32_t loss_off, valid_off;
} vkg_class_loss_push;

/* Mirrors the Push block of shaders/class_loss_backward.comp: change both. */
typedef struct vkg_class_loss_backward_push {
    uint32_t N, C, x_off, t_off;
    int32_t sN, sC, sT, ignore;
    uint32_t dx_off, g_off;
    int32_t g_st;
    uint32_t mode; /* 0: g[n], 1: g[0], 2: g[0] / count[0] */
    uint32_t count_off;
} vkg_class_loss_backward_push;

#define LOCAL 64

static bool reduction_ok(vkg_reduction r, const char *fn) {
    if (r == VKG_REDUCTION_MEAN || r == VKG_REDUCTION_SUM || r == VKG_REDUCTION_NONE) return true;
    vkg_fail(VKG_ERR_INVALID, "%s: reduction %d is not mean, sum or none", fn, (int)r);
    return false;
}

/* ---- class losses ----------------------------------------------------------------------------- */
static vkg_tensor *class_loss(vkg_op op, vkg_tensor *x, vkg_tensor *target, const vkg_loss_desc *desc) {
    const char *fn = op == VKG_OP_CROSS_ENTROPY ? "vkg_cross_entropy" : "vkg_nll_loss";
    const char *xn = op == VKG_OP_CROSS_ENTROPY ? "logits" : "log_probs";
    if (!x || !target) return NULL;
    vkg_loss_desc d = desc ? *desc : (vkg_loss_desc){ 0 };
    int32_t ignore = d.has_ignore_index ? d.ignore_index : -100;
    if (!reduction_ok(d.reduction, fn) || !vkg_require_f32(x, fn, xn)) return NULL;
    char a[192], b[192];
    if (x->shape.ndim != 2)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: %s is %s; it must be (N, C)", fn, xn, vkg_desc(x, a, sizeof a));
    if (target->dtype != VKG_I32)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: target is %s; it must be i32 class indices", fn,
                             vkg_desc(target, b, sizeof b));
    if (target->shape.ndim != 1 || target->shape.d[0] != x->shape.d[0])
        return vkg_fail_null(VKG_ERR_INVALID, "%s: %s is %s, so target must be (%lld,), but it is %s", fn, xn,
                             vkg_desc(x, a, sizeof a), (long long)x->shape.d[0], vkg_desc(target, b, sizeof b));
    int64_t N = x->shape.d[0], C = x->shape.d[1];
    vkg_tensor *loss = vkg_tensor_alloc(VKG_SHAPE(N), VKG_F32, false, fn);
    vkg_tensor *valid = vkg_tensor_alloc(VKG_SHAPE(N), VKG_F32, false, fn);
    vkg_tensor *y = NULL, *count = NULL;
    if (!loss || !valid) goto fail;
    /* one invocation per sample walks its C classes twice: within lavapipe's loop limit up to
     * about 24,000 classes; past it, refused rather than silently cut short */
    if (N > 0 && vkg_loop_check(2 * (uint64_t)C + 4, fn, "one sample's classes") != VKG_OK) goto fail;
    if (N > 0) {
        vkg_class_loss_push pc = { (uint32_t)N, (uint32_t)C, (uint32_t)x->offset, (uint32_t)target->offset,
                                   (int32_t)x->strides[0], (int32_t)x->strides[1], (int32_t)target->strides[0],
                                   ignore, (uint32_t)loss->offset, (uint32_t)valid->offset };
        bool vec4 = vkg_vec4_rows(C, x->strides[0], x->strides[1], x->offset); /* class_loss.comp's VEC4 */
        /* C = 0: every target is out of range; x has no bytes to bind, so bind loss in its place */
        vkg_dispatch_desc dd = { .shader = "class_loss", .op = op, .name = fn,
                                 .spec = { vkg_op_table[op].code, vec4 }, .nspec = 2, .local_size = LOCAL,
                                 .groups = { vkg_groups_for_cost((uint64_t)N, LOCAL, 2 * (uint64_t)C + 4) },
                                 .bind = { loss, valid, C > 0 ? x : loss, target }, .nout = 2,
                                 .push = &pc, .push_size = sizeof pc };
        if (C > 0 && vkg_texel_bind(&dd, 4u, vec4 ? 0u : 4u)) { /* x through a texel view */
            dd.shader = "class_loss_tex";
            vkg_texel_rebase(&dd, 2, (uint32_t *[]){ &pc.x_off }, 1);
        }
        if (vkg_dispatch(&dd) != VKG_OK) goto fail;
    }
    vkg_no_grad_begin();
    if (d.reduction == VKG_REDUCTION_NONE) {
        y = loss;
        loss = NULL;
    } else if (d.reduction == VKG_REDUCTION_SUM) {
        y = vkg_sum_all(loss);
    } else { /* the mean over the samples that are not ignored */
        count = vkg_sum_all(valid);
        vkg_tensor *total = vkg_sum_all(loss);
        y = vkg_div(total, count);
        vkg_free(total);
    }
    vkg_no_grad_end();
    if (!y) goto fail;
    vkg_node *n = vkg_node_record(y, op, (vkg_tensor *[]){ x, target, count }, 3);
    if (n) {
        n->ip[0] = d.reduction;
        n->ip[1] = ignore;
    } else {
        vkg_free(count);
    }
    vkg_free(loss);
    vkg_free(valid);
    return y;
fail:
    vkg_free(loss);
    vkg_free(valid);
    vkg_free(count);
    return NULL;
}

vkg_tensor *vkg_cross_entropy(vkg_tensor *logits, vkg_tensor *target, const vkg_loss_desc *desc) {
    return class_loss(VKG_OP_CROSS_ENTROPY, logits, target, desc);
}

vkg_tensor *vkg_nll_loss(vkg_tensor *log_probs, vkg_tensor *target, const vkg_loss_desc *desc) {
    return class_loss(VKG_OP_NLL_LOSS, log_probs, target, desc);
}

vkg_tensor *vkg_nn_class_loss_backward(vkg_op op, vkg_tensor *x, vkg_tensor *target, vkg_tensor *g,
                                       vkg_tensor *count, vkg_reduction reduction, int32_t ignore_index) {
    const char *fn = "vkg_cross_entropy backward";
    vkg_tensor *dx = vkg_tensor_alloc(x->shape, VKG_F32, false, fn);
    int64_t N = x->shape.d[0], C = x->shape.d[1];
    if (!dx || N * C == 0) return dx;
    if (vkg_loop_check(3 * (uint64_t)C + 4, fn, "one sample's classes") != VKG_OK) {
        vkg_free(dx);
        return NULL;
    }
    uint32_t mode = reduction == VKG_REDUCTION_NONE ? 0 : reduction == VKG_REDUCTION_SUM ? 1 : 2;
    vkg_class_loss_backward_push pc = { (uint32_t)N,
                                        (uint32_t)C,
                                        (uint32_t)x->offset,
                                        (uint32_t)target->offset,
                                        (int32_t)x->strides[0],
                                        (int32_t)x->strides[1],
                                        (int32_t)target->strides[0],
                                        ignore_index,
                                        (uint32_t)dx->offset,
                                        (uint32_t)g->offset,
                                        g->shape.ndim == 1 ? (int32_t)g->strides[0] : 0,
                                        mode,
                                        count ? (uint32_t)count->offset : 0 };
    bool vec4 = vkg_vec4_rows(C, x->strides[0], x->strides[1], x->offset) && dx->offset % 4 == 0;
    vkg_dispatch_desc dd = { .shader = "class_loss_backward", .op = op, .name = fn,
                             .spec = { vkg_op_table[op].code, vec4, vkg_row_regs(C, vec4) },
                             .nspec = 3, .local_size = LOCAL,
                             .groups = { vkg_groups_for_cost((uint64_t)N, LOCAL, 3 * (uint64_t)C + 4) },
                             .bind = { dx, x, target, g, count ? count : g }, .nout = 1, .push = &pc,
                             .push_size = sizeof pc };
    if (vkg_texel_bind(&dd, 0x1au, vec4 ? 0x18u : 0x1au)) { /* x, g and count through texel views */
        dd.shader = "class_loss_backward_tex";
        vkg_texel_rebase(&dd, 1, (uint32_t *[]){ &pc.x_off, NULL, &pc.g_off, &pc.count_off }, 4);
    }
    if (vkg_dispatch(&dd) != VKG_OK) {
        vkg_free(dx);
        return NULL;
    }
    return dx;
}

/* ---- elementwise losses -------------------------------------------------------------------- */
static vkg_tensor *pointwise_loss(vkg_op op, uint32_t code, vkg_tensor *x, vkg_tensor *t, vkg_reduction reduction) {
    const char *fn = op == VKG_OP_MSE_LOSS ? "vkg_mse_loss" : "vkg_binary_cross_entropy_with_logits";
    const char *xn = op == VKG_OP_MSE_LOSS ? "input" : "logits";
    if (!x || !t) return NULL;
    if (!reduction_ok(reduction, fn) || !vkg_require_f32(x, fn, xn) || !vkg_require_f32(t, fn, "target")) return NULL;
    if (!vkg_shape_eq(&x->shape, &t->shape)) {
        char a[192], b[192];
        return vkg_fail_null(VKG_ERR_INVALID, "%s: %s is %s but target is %s; they must have the same shape", fn, xn,
                             vkg_desc(x, a, sizeof a), vkg_desc(t, b, sizeof b));
    }
    vkg_tensor *e = vkg_nn_pointwise(code, op, fn, x->shape, x, t, NULL, 0.0f, 0.0f);
    if (!e) return NULL;
    vkg_tensor *y = e;
    if (reduction != VKG_REDUCTION_NONE) {
        vkg_no_grad_begin();
        y = reduction == VKG_REDUCTION_SUM ? vkg_sum_all(e) : vkg_mean_all(e);
        vkg_no_grad_end();
        vkg_free(e);
        if (!y) return NULL;
    }
    vkg_node *n = vkg_node_record(y, op, (vkg_tensor *[]){ x, t }, 2);
    if (n) n->ip[0] = reduction;
    return y;
}

vkg_tensor *vkg_mse_loss(vkg_tensor *input, vkg_tensor *target, vkg_reduction reduction) {
    return pointwise_loss(VKG_OP_MSE_LOSS, NN_PW_MSE, input, target, reduction);
}

vkg_tensor *vkg_binary_cross_entropy_with_logits(vkg_tensor *logits, vkg_tensor *target, vkg_reduction reduction) {
    return pointwise_loss(VKG_OP_BCE_WITH_LOGITS, NN_PW_BCE, logits, target, reduction);
}
