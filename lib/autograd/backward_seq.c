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
 * hub's gradient, made once, so the pieces' gradients end up side by side (a concat). The hub is
 * private to the pieces, so nothing else adds into its gradient. Which positions along the axis
 * a piece has written (ip[3]) or promised to (ip[2], vkg_ag_grad_place) is kept in the hub's
 * node as bits, so the gradient is made uninitialised and only what no piece wrote is zeroed,
 * when the hub's rule runs: every piece's rule has run by then (the hub comes before them in the
 * forward). Zeroing all of it first cost a full pass (GPT's (B, T, 3E) qkv: 4 per step). An
 * axis longer than the bits is zeroed first, as before. */
#define SPLIT_BITS 62

/* The bits of a piece's positions; none when the hub's axis is too long to track. */
static uint64_t piece_bits(const vkg_node *piece, int64_t len) {
    if (piece->in[0]->shape.d[piece->axis] > SPLIT_BITS) return 0;
    return (((uint64_t)1 << len) - 1) << piece->ip[0];
}

/* The hub's gradient, made at the first piece's rule (or place): uninitialised where the bits
 * can tell what is written. */
static vkg_tensor *hub_grad(vkg_tensor *hub) {
    if (hub->gacc) return hub->gacc;
    vkg_node *h = hub->node;
    bool tracked = hub->shape.d[h->axis] <= SPLIT_BITS;
    h->ip[2] = h->ip[3] = 0;
    hub->gacc = tracked ? vkg_empty(hub->shape) : vkg_zeros(hub->shape);
    return hub->gacc;
}

static bool same_view(const vkg_tensor *a, const vkg_tensor *b) {
    if (a->storage != b->storage || a->offset != b->offset || a->shape.ndim != b->shape.ndim) return false;
    for (int i = 0; i < a->shape.ndim; i++)
        if (a->shape.d[i] != b->shape.d[i] || (a->shape.d[i] > 1 && a->strides[i] != b->strides[i])) return false;
    return true;
}

static vkg_status split_rule(const vkg_node *n, vkg_tensor *g) {
    if (n->ip[1] == 0) { /* the hub: zeros where no piece wrote */
        vkg_tensor *x = n->in[0];
        int64_t len = x->shape.d[n->axis];
        uint64_t done = (uint64_t)n->ip[3];
        for (int64_t i = 0; len <= SPLIT_BITS && i < len;) {
            if (done >> i & 1) {
                i++;
                continue;
            }
            int64_t j = i;
            while (j < len && !(done >> j & 1)) j++;
            vkg_tensor *gap = vkg_narrow(g, n->axis, i, j - i); /* a strided view: fill_ takes none */
            vkg_tensor *z = gap ? vkg_zeros(gap->shape) : NULL;
            vkg_status st = z ? vkg_copy_into(gap, z) : vkg_last_status();
            vkg_free(z);
            vkg_free(gap);
            if (st != VKG_OK) return st;
            i = j;
        }
        return vkg_ag_accumulate(x, g);
    }
    vkg_tensor *hub = n->in[0];
    int64_t len = g->shape.d[n->axis];
    if (!hub_grad(hub)) return vkg_last_status();
    vkg_tensor *place = vkg_narrow(hub->gacc, n->axis, n->ip[0], len);
    /* a gradient made in its place already (vkg_ag_grad_place) is not copied onto itself */
    vkg_status st = !place ? vkg_last_status() : same_view(place, g) ? VKG_OK : vkg_copy_into(place, g);
    vkg_free(place);
    if (st == VKG_OK) hub->node->ip[3] = (int64_t)((uint64_t)hub->node->ip[3] | piece_bits(n, len));
    return st;
}

vkg_tensor *vkg_ag_grad_place(vkg_tensor *x) {
    /* down the views to a split piece: x must be a bijective view of the whole piece, the hub
     * laid out as its gradient will be (contiguous), the piece not promised before (a second
     * user of it would overwrite the first one's gradient) */
    vkg_tensor *t = x;
    while (t && t->node && (t->node->op == VKG_NODE_PERMUTE || t->node->op == VKG_NODE_RESHAPE)) t = t->node->in[0];
    if (!t || !t->node || t->node->op != VKG_OP_SPLIT || t->node->ip[1] != 1) return NULL;
    vkg_node *piece = t->node;
    vkg_tensor *hub = piece->in[0];
    int64_t len = t->shape.d[piece->axis];
    uint64_t bits = piece_bits(piece, len);
    if (!bits || x->storage != hub->storage || vkg_numel(x) != vkg_numel(t) || !vkg_is_contiguous(hub)) return NULL;
    if (hub->gacc && (uint64_t)hub->node->ip[2] & bits) return NULL;
    if (!hub_grad(hub) || !vkg_is_contiguous(hub->gacc)) return NULL;
    hub->node->ip[2] = (int64_t)((uint64_t)hub->node->ip[2] | bits);
    return vkg_tensor_view_of(hub->gacc, x->shape, x->strides, hub->gacc->offset + (x->offset - hub->offset));
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
