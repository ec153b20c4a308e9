/* Backward rules of the nn group's ops (VKG_KIND_NN), like lib/autograd/backward.c: each takes
 * dL/dy of a node's output and adds dL/dx into its inputs through vkg_ag_accumulate. The
 * elementwise ones reuse shaders/nn_pointwise.comp; the row ops, class losses and layer_norm have
 * fused backward shaders (lib/ops/nn_internal.h). The C references are vkg_ref_*_backward in
 * lib/ops/nn_reference_impl.h. */
#include "autograd/autograd.h"
#include "ops/nn_internal.h"

static vkg_status rows_rule(vkg_tensor *y, const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0];
    vkg_op op = (vkg_op)n->op;
    int64_t R = x->shape.d[n->axis];
    double d = (double)R - (double)n->ip[0];
    float denom = d > 0 ? (float)d : 0.0f;
    vkg_tensor *gx;
    switch (op) {
    case VKG_OP_SOFTMAX:
    case VKG_OP_LOG_SOFTMAX: gx = vkg_nn_rows_backward(op, y, n->axis, g, NULL, 0.0f, n->s); break;
    case VKG_OP_LOGSUMEXP:
    case VKG_OP_STD: gx = vkg_nn_rows_backward(op, x, n->axis, g, y, denom, 1.0f); break;
    default: gx = vkg_nn_rows_backward(op, x, n->axis, g, NULL, denom, 1.0f); break;
    }
    return vkg_ag_accumulate(x, gx);
}

/* mse_loss and bce_with_logits: the per-element gradient factor is g, or g / numel (mean). */
static vkg_status pointwise_loss_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0], *t = n->in[1];
    float k = n->ip[0] == VKG_REDUCTION_MEAN ? 1.0f / (float)vkg_numel(x) : 1.0f;
    bool mse = n->op == VKG_OP_MSE_LOSS;
    const char *fn = mse ? "mse_loss backward" : "binary_cross_entropy_with_logits backward";
    vkg_status st = VKG_OK;
    if (x->requires_grad) {
        vkg_tensor *gx = mse ? vkg_nn_pointwise(NN_PW_MSE_BACKWARD, (vkg_op)n->op, fn, x->shape, x, t, g, 2.0f * k, 0.0f)
                             : vkg_nn_pointwise(NN_PW_BCE_BACKWARD_X, (vkg_op)n->op, fn, x->shape, x, t, g, k, 0.0f);
        st = vkg_ag_accumulate(x, gx);
    }
    if (st == VKG_OK && t->requires_grad) {
        vkg_tensor *gt = mse ? vkg_nn_pointwise(NN_PW_MSE_BACKWARD, (vkg_op)n->op, fn, x->shape, x, t, g, -2.0f * k, 0.0f)
                             : vkg_nn_pointwise(NN_PW_BCE_BACKWARD_T, (vkg_op)n->op, fn, x->shape, x, t, g, k, 0.0f);
        st = vkg_ag_accumulate(t, gt);
    }
    return st;
}

static vkg_status layer_norm_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *stats = n->in[3];
    bool want_wb = (w && w->requires_grad) || (b && b->requires_grad);
    vkg_tensor *dx = NULL, *dw = NULL, *db = NULL;
    /* a pre-LN block's input also has the residual path's gradient: added as dx is stored
     * (the transformer's step: 8 adds of (32, 64, 128) fewer) */
    vkg_tensor *acc = x->requires_grad ? vkg_ag_partial_sum(x) : NULL;
    vkg_status st = vkg_nn_layer_norm_backward(x, w, stats, g, acc, x->requires_grad ? &dx : NULL,
                                               want_wb ? &dw : NULL, want_wb ? &db : NULL);
    if (st == VKG_OK && dx && acc) vkg_ag_set_sum(x, dx);
    else if (st == VKG_OK && dx) st = vkg_ag_accumulate(x, dx);
    if (st == VKG_OK && w && w->requires_grad) st = vkg_ag_accumulate(w, dw);
    if (st == VKG_OK && b && b->requires_grad) st = vkg_ag_accumulate(b, db);
    return st;
}

vkg_status vkg_backward_nn(vkg_tensor *t, vkg_tensor *g) {
    const vkg_node *n = t->node;
    vkg_tensor *x = n->in[0];
    const char *name = vkg_node_name(n->op);
    switch ((vkg_op)n->op) {
    case VKG_OP_CLAMP:
        return vkg_ag_accumulate(x, vkg_nn_pointwise(NN_PW_CLAMP_BACKWARD, VKG_OP_CLAMP, "clamp backward", x->shape, g, x,
                                                     NULL, vkg_nn_bitsf(n->ip[0]), vkg_nn_bitsf(n->ip[1])));
    case VKG_OP_MASKED_FILL: /* the filled places get none: fill them with 0 in dy */
        return vkg_ag_accumulate(x, vkg_nn_pointwise(NN_PW_MASKED_FILL, VKG_OP_MASKED_FILL, "masked_fill backward",
                                                     x->shape, g, n->in[1], NULL, 0.0f, 0.0f));
    case VKG_OP_DROPOUT: /* the same mask and scale */
        return vkg_ag_accumulate(x, vkg_nn_pointwise(NN_PW_SCALE_MASK, VKG_OP_DROPOUT, "dropout backward", x->shape, g,
                                                     n->in[1], NULL, n->s, 0.0f));
    case VKG_OP_SOFTMAX:
    case VKG_OP_LOG_SOFTMAX:
    case VKG_OP_LOGSUMEXP:
    case VKG_OP_VAR:
    case VKG_OP_STD: return rows_rule(t, n, g);
    case VKG_OP_CROSS_ENTROPY:
    case VKG_OP_NLL_LOSS:
        return vkg_ag_accumulate(x, vkg_nn_class_loss_backward((vkg_op)n->op, x, n->in[1], g, n->in[2],
                                                               (vkg_reduction)n->ip[0], (int32_t)n->ip[1]));
    case VKG_OP_MSE_LOSS:
    case VKG_OP_BCE_WITH_LOGITS: return pointwise_loss_rule(n, g);
    case VKG_OP_LAYER_NORM: return layer_norm_rule(n, g);
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", name);
    }
}
