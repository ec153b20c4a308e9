/* The LSTM cell: the two matmuls through vkg_matmul, then one fused shader for the biases, the
 * gate nonlinearities and the state update (shaders/lstm_cell.comp), and one for its backward
 * (lstm_cell_backward.comp). The node sits on a (2, B, Hd) result [h'; c'] and keeps the
 * activated gates; h' and c' are split views of it, so gradients flow from either or both. */
#include "ops/seq.h"

#define LOCAL 128

/* Mirrors the Push block of shaders/lstm_cell.comp: change both. */
typedef struct vkg_lstm_push {
    uint32_t B, Hd, flags, xw_off;
    uint32_t hw_off, b_off, c_off, y_off;
    uint32_t g_off;
} vkg_lstm_push;

/* Mirrors the Push block of shaders/lstm_cell_backward.comp: change both. */
typedef struct vkg_lstm_bw_push {
    uint32_t B, Hd, g_off, c_off;
    uint32_t dy_off, dg_off, dc_off;
} vkg_lstm_bw_push;

static bool is2(const vkg_tensor *t, int64_t r, int64_t c) {
    return t->shape.ndim == 2 && t->shape.d[0] == r && t->shape.d[1] == c;
}

vkg_status vkg_lstm_cell(vkg_tensor *x, vkg_tensor *h, vkg_tensor *c, vkg_tensor *w_ih, vkg_tensor *w_hh,
                         vkg_tensor *b_ih, vkg_tensor *b_hh, vkg_tensor **h_out, vkg_tensor **c_out) {
    const char *op = "vkg_lstm_cell";
    if (h_out) *h_out = NULL;
    if (c_out) *c_out = NULL;
    if (!x || !h || !c || !w_ih || !w_hh) return vkg_last_status() != VKG_OK ? vkg_last_status() : VKG_ERR_INVALID;
    if (!h_out || !c_out) return vkg_fail(VKG_ERR_INVALID, "%s: h_out and c_out must not be NULL", op);
    vkg_tensor *all[7] = { x, h, c, w_ih, w_hh, b_ih, b_hh };
    static const char *names[7] = { "x", "h", "c", "w_ih", "w_hh", "b_ih", "b_hh" };
    for (int i = 0; i < 7; i++)
        if (all[i] && !vkg_require_f32(all[i], op, names[i])) return vkg_last_status();
    char s[7][64];
    for (int i = 0; i < 7; i++) {
        if (all[i]) vkg_shape_str(all[i]->shape, s[i], sizeof s[i]);
        else snprintf(s[i], sizeof s[i], "NULL");
    }
    bool ok = x->shape.ndim == 2 && h->shape.ndim == 2;
    int64_t B = ok ? x->shape.d[0] : 0, I = ok ? x->shape.d[1] : 0, Hd = ok ? h->shape.d[1] : 0;
    ok = ok && is2(h, B, Hd) && is2(c, B, Hd) && is2(w_ih, 4 * Hd, I) && is2(w_hh, 4 * Hd, Hd);
    for (int i = 5; i < 7; i++) ok = ok && (!all[i] || (all[i]->shape.ndim == 1 && all[i]->shape.d[0] == 4 * Hd));
    if (!ok)
        return vkg_fail(VKG_ERR_INVALID, "%s: x %s, h %s, c %s, w_ih %s, w_hh %s, b_ih %s, b_hh %s do not fit: expected "
                                         "x (B, I), h and c (B, Hd), w_ih (4Hd, I), w_hh (4Hd, Hd), biases (4Hd)",
                        op, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    vkg_tensor *xw = vkg_contiguous(vkg_matmul(x, vkg_transpose(w_ih, 0, 1)));
    vkg_tensor *hw = vkg_contiguous(vkg_matmul(h, vkg_transpose(w_hh, 0, 1)));
    vkg_tensor *bias = vkg_contiguous(b_ih && b_hh ? vkg_add(b_ih, b_hh) : b_ih ? b_ih : b_hh);
    vkg_tensor *cc = vkg_contiguous(c);
    if (!xw || !hw || !cc || ((b_ih || b_hh) && !bias)) return vkg_last_status();
    vkg_tensor *y = vkg_tensor_alloc(VKG_SHAPE(2, B, Hd), VKG_F32, false, op);
    vkg_tensor *gates = y ? vkg_tensor_alloc(VKG_SHAPE(B, 4 * Hd), VKG_F32, false, op) : NULL;
    if (!gates) {
        vkg_free(y);
        return vkg_last_status();
    }
    if (B * Hd > 0) {
        vkg_lstm_push pc = { (uint32_t)B, (uint32_t)Hd, bias ? 1u : 0u, (uint32_t)xw->offset, (uint32_t)hw->offset,
                             bias ? (uint32_t)bias->offset : 0u, (uint32_t)cc->offset, (uint32_t)y->offset,
                             (uint32_t)gates->offset };
        if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "lstm_cell", .op = VKG_OP_LSTM_CELL, .name = op,
                                               .local_size = LOCAL, .groups = { vkg_groups_for((uint64_t)(B * Hd), LOCAL) },
                                               .bind = { y, gates, xw, hw, bias ? bias : xw, cc }, .nout = 2,
                                               .push = &pc, .push_size = sizeof pc }) != VKG_OK) {
            vkg_free(y);
            vkg_free(gates);
            return vkg_last_status();
        }
    }
    if (!vkg_node_record(y, VKG_OP_LSTM_CELL, (vkg_tensor *[]){ xw, hw, bias, cc, gates }, 5)) vkg_free(gates);
    vkg_tensor *piece[2];
    vkg_status st = vkg_split(y, (const int64_t[]){ 1, 1 }, 2, 0, piece);
    if (st != VKG_OK) return st;
    *h_out = vkg_squeeze(piece[0], 0);
    *c_out = vkg_squeeze(piece[1], 0);
    if (!*h_out || !*c_out) {
        *h_out = *c_out = NULL;
        return vkg_last_status();
    }
    return VKG_OK;
}

vkg_status vkg_lstm_cell_grad(vkg_tensor *gates, vkg_tensor *c, vkg_tensor *g, vkg_tensor **dgates, vkg_tensor **dc) {
    const char *op = "lstm_cell backward";
    *dgates = *dc = NULL;
    int64_t B = c->shape.d[0], Hd = c->shape.d[1];
    vkg_tensor *gc = vkg_contiguous(g);
    vkg_tensor *tg = gc ? vkg_tensor_alloc(VKG_SHAPE(B, 4 * Hd), VKG_F32, false, op) : NULL;
    vkg_tensor *tc = tg ? vkg_tensor_alloc(VKG_SHAPE(B, Hd), VKG_F32, false, op) : NULL;
    vkg_status st = tc ? VKG_OK : vkg_last_status();
    if (st == VKG_OK && B * Hd > 0) {
        vkg_lstm_bw_push pc = { (uint32_t)B, (uint32_t)Hd, (uint32_t)gates->offset, (uint32_t)c->offset,
                                (uint32_t)gc->offset, (uint32_t)tg->offset, (uint32_t)tc->offset };
        st = vkg_dispatch(&(vkg_dispatch_desc){ .shader = "lstm_cell_backward", .op = VKG_OP_LSTM_CELL, .name = op,
                                                .local_size = LOCAL, .groups = { vkg_groups_for((uint64_t)(B * Hd), LOCAL) },
                                                .bind = { tg, tc, gates, c, gc }, .nout = 2, .push = &pc,
                                                .push_size = sizeof pc });
    }
    if (gc && gc != g) vkg_free(gc);
    if (st != VKG_OK) {
        vkg_free(tg);
        vkg_free(tc);
        return st;
    }
    *dgates = tg;
    *dc = tc;
    return VKG_OK;
}
