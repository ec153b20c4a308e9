/* Backward rules of the seq group's ops (VKG_KIND_SEQ), like lib/autograd/backward.c: joins
 * and cuts as slices and writes of the gradient, the index ops, attention, the LSTM cell and the
 * whole-sequence LSTM through their dedicated backward kernels (lib/ops/seq.h), every sum in a
 * fixed order. */
#include "autograd/autograd.h"
#include "ops/seq.h"

/* concat / stack: each input gets its slice of g (a tail view gets the rest, in[nin - 1]). */
static vkg_status concat_rule(const vkg_node *n, vkg_tensor *g) {
    int64_t off = 0;
    for (int i = 0; i < n->nin; i++) {
        vkg_tensor *u = n->in[i];
        int64_t len = u->shape.d[n->axis];
        vkg_status st = u->requires_grad ? vkg_ag_accumulate(u, vkg_narrow(g, n->axis, off, len)) : VKG_OK;
        if (st != VKG_OK) return st;
        off += len;
    }
    return VKG_OK;
}

/* split: the hub (ip[1] = 0) hands its gradient to x; a piece writes g into its place in the
 * hub's gradient, made once as zeros, so the pieces' gradients end up side by side (a concat)
 * and pieces without a gradient leave zeros. The hub is private to the pieces, so nothing else
 * adds into its gradient. */
static vkg_status split_rule(const vkg_node *n, vkg_tensor *g) {
    if (n->ip[1] == 0) return vkg_ag_accumulate(n->in[0], g);
    vkg_tensor *hub = n->in[0];
    if (!hub->gacc && !(hub->gacc = vkg_zeros(hub->shape))) return vkg_last_status();
    vkg_tensor *place = vkg_narrow(hub->gacc, n->axis, n->ip[0], g->shape.d[n->axis]);
    vkg_status st = place ? vkg_copy_into(place, g) : vkg_last_status();
    vkg_free(place);
    return st;
}

vkg_status vkg_backward_seq(vkg_tensor *t, vkg_tensor *g) {
    const vkg_node *n = t->node;
    switch ((vkg_op)n->op) {
    case VKG_OP_CONCAT:
    case VKG_OP_STACK: return concat_rule(n, g);
    case VKG_OP_SPLIT: return split_rule(n, g);
    case VKG_OP_INDEX_SELECT:
    case VKG_OP_GATHER:
    case VKG_OP_EMBEDDING: {
        vkg_tensor *x = n->in[0];
        if (!x->requires_grad) return VKG_OK;
        vkg_tensor *dx = vkg_index_grad((vkg_op)n->op, x->shape, n->axis, n->in[1], g);
        return dx ? vkg_ag_accumulate(x, dx) : vkg_last_status();
    }
    case VKG_OP_SDPA: {
        vkg_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *dq, *dk, *dv;
        vkg_status st = vkg_sdpa_grad(q, k, v, n->in[3], t, n->in[4], n->ip[0] != 0, n->s, g,
                                      q->requires_grad ? &dq : NULL, k->requires_grad ? &dk : NULL,
                                      v->requires_grad ? &dv : NULL);
        if (st == VKG_OK && q->requires_grad) st = vkg_ag_accumulate(q, dq);
        if (st == VKG_OK && k->requires_grad) st = vkg_ag_accumulate(k, dk);
        if (st == VKG_OK && v->requires_grad) st = vkg_ag_accumulate(v, dv);
        return st;
    }
    case VKG_OP_LSTM_CELL: { /* in: xw, hw, bias (or NULL), c, saved gates */
        vkg_tensor *dgates, *dc;
        vkg_status st = vkg_lstm_cell_grad(n->in[4], n->in[3], g, &dgates, &dc);
        if (st == VKG_OK) st = vkg_ag_accumulate(n->in[0], dgates);
        if (st == VKG_OK) st = vkg_ag_accumulate(n->in[1], dgates);
        if (st == VKG_OK && n->in[2]) st = vkg_ag_accumulate(n->in[2], dgates); /* summed over the batch */
        if (st == VKG_OK) st = vkg_ag_accumulate(n->in[3], dc);
        return st;
    }
    case VKG_OP_LSTM: { /* in: x, w_ih, w_hh, b_ih, b_hh, h0, c0 (each bias, h0, c0 may be NULL), saved */
        vkg_tensor *x = n->in[0], *w_ih = n->in[1], *w_hh = n->in[2], *b_ih = n->in[3], *b_hh = n->in[4];
        vkg_tensor *h0 = n->in[5], *c0 = n->in[6], *dx, *dh0, *dc0, *dw_ih, *dw_hh, *db;
        bool want_b = (b_ih && b_ih->requires_grad) || (b_hh && b_hh->requires_grad);
        vkg_status st = vkg_lstm_grad(x, w_ih, w_hh, c0, n->in[7], g, x->requires_grad ? &dx : NULL,
                                      h0 && h0->requires_grad ? &dh0 : NULL, c0 && c0->requires_grad ? &dc0 : NULL,
                                      w_ih->requires_grad ? &dw_ih : NULL, w_hh->requires_grad ? &dw_hh : NULL,
                                      want_b ? &db : NULL);
        if (st == VKG_OK && x->requires_grad) st = vkg_ag_accumulate(x, dx);
        if (st == VKG_OK && h0 && h0->requires_grad) st = vkg_ag_accumulate(h0, dh0);
        if (st == VKG_OK && c0 && c0->requires_grad) st = vkg_ag_accumulate(c0, dc0);
        if (st == VKG_OK && w_ih->requires_grad) st = vkg_ag_accumulate(w_ih, dw_ih);
        if (st == VKG_OK && w_hh->requires_grad) st = vkg_ag_accumulate(w_hh, dw_hh);
        if (st == VKG_OK && b_ih && b_ih->requires_grad) st = vkg_ag_accumulate(b_ih, db); /* both biases get it */
        if (st == VKG_OK && b_hh && b_hh->requires_grad) st = vkg_ag_accumulate(b_hh, db);
        return st;
    }
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
}
