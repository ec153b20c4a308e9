/* Backward rules of the conv group's ops (VKG_KIND_CONV), like lib/autograd/backward.c: each
 * takes dL/dy and adds dL/dinput into the inputs that need it. The heavy parts are dedicated
 * kernels (lib/ops/conv.c, lib/ops/batch_norm.c); the C references are vkg_ref_*_backward in
 * lib/ops/conv_reference_impl.h. */
#include "autograd/autograd.h"
#include "ops/conv_internal.h"

static bool wants(const vkg_tensor *t) { return t && t->requires_grad; }

static vkg_status conv2d_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    vkg_conv2d_desc d = vkg_conv_desc_load(n->ip);
    vkg_status st = VKG_OK;
    if (wants(x)) st = vkg_ag_accumulate(x, vkg_conv2d_grad_input(g, w, x->shape, &d));
    if (st == VKG_OK && wants(w)) st = vkg_ag_accumulate(w, vkg_conv2d_grad_weight(g, x, n->in[3], w->shape, &d));
    if (st == VKG_OK && wants(b)) { /* sum over N and the output pixels, in a fixed order */
        vkg_shape s = g->shape;
        vkg_tensor *g3 = vkg_reshape(g, VKG_SHAPE(s.d[0], s.d[1], s.d[2] * s.d[3]));
        st = vkg_ag_accumulate(b, vkg_sum(vkg_sum(g3, 2, false), 0, false));
    }
    return st;
}

static vkg_status batch_norm_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *dx, *dw, *db;
    vkg_status st = vkg_batch_norm_grads(g, x, w, n->in[3], n->keepdim, wants(x) ? &dx : NULL, wants(w) ? &dw : NULL,
                                         wants(b) ? &db : NULL);
    if (st == VKG_OK && wants(x)) st = vkg_ag_accumulate(x, dx);
    if (st == VKG_OK && wants(w)) st = vkg_ag_accumulate(w, dw);
    if (st == VKG_OK && wants(b)) st = vkg_ag_accumulate(b, db);
    return st;
}

vkg_status vkg_backward_conv(vkg_tensor *t, vkg_tensor *g) {
    const vkg_node *n = t->node;
    switch ((vkg_op)n->op) {
    case VKG_OP_CONV2D: return conv2d_rule(n, g);
    case VKG_OP_MAX_POOL2D:
    case VKG_OP_AVG_POOL2D: {
        vkg_pool2d_desc d = vkg_pool_desc_load(n->ip);
        vkg_tensor *idx = n->op == VKG_OP_MAX_POOL2D ? n->in[1] : NULL;
        return vkg_ag_accumulate(n->in[0], vkg_pool2d_grad_input((vkg_op)n->op, g, idx, n->in[0]->shape, &d));
    }
    case VKG_OP_BATCH_NORM: return batch_norm_rule(n, g);
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
}
