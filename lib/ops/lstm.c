/* The LSTM cell and the LSTM over a sequence. The cell: the two matmuls through vkg_matmul, then
 * one fused shader for the biases, the gate nonlinearities and the state update
 * (shaders/lstm_cell.comp), and one for its backward (lstm_cell_backward.comp). The node sits on
 * a (2, B, Hd) result [h'; c'] and keeps the activated gates; h' and c' are split views of it,
 * so gradients flow from either or both. The sequence op (vkg_lstm, below) is what the LSTM
 * layer uses: one node for all T steps, so weight gradients are computed once per sequence. */
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

/* The seven inputs of the cell and of the sequence op (optional ones NULL): each given one must
 * be f32; s gets each one's shape for the shape message ("NULL" for an absent one). */
static bool check_inputs(vkg_tensor *const all[7], const char *const names[7], const char *op, char s[7][64]) {
    for (int i = 0; i < 7; i++)
        if (all[i] && !vkg_require_f32(all[i], op, names[i])) return false;
    for (int i = 0; i < 7; i++) {
        if (all[i]) vkg_shape_str(all[i]->shape, s[i], sizeof s[i]);
        else snprintf(s[i], sizeof s[i], "NULL");
    }
    return true;
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
    char s[7][64];
    if (!check_inputs(all, names, op, s)) return vkg_last_status();
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

/* ---- the whole-sequence LSTM ------------------------------------------------------------------
 * vkg_lstm runs one layer over (B, T, I) as one op with one node, so the weight gradients are
 * computed once per sequence, not once per step: x W_ih^T for all B*T rows in one matmul, then
 * per step one (B, Hd) x (Hd, 4Hd) matmul and the fused step kernel (shaders/lstm_seq.comp),
 * which writes h_t in place into the output and saves the gates, c_t and h_{t-1} for the
 * backward. The result R is one flat tensor [out (B, T, Hd) | c_n (B, Hd)] carrying the node;
 * out, h_n (a view of out's last step) and c_n are views of it. */

/* The status of a failure that may have left no message (a NULL passed on). */
static vkg_status failed(void) { return vkg_last_status() != VKG_OK ? vkg_last_status() : VKG_ERR_INVALID; }

/* Mirrors the Push block of shaders/lstm_seq.comp: change both. */
typedef struct vkg_lstm_seq_push {
    uint32_t B, T, Hd, t;
    uint32_t r_off, s_off, xw_off, hw_off;
    uint32_t c0_off, h0_off;
    uint32_t s_tex;       /* lstm_seq*_tex: s_off in S's texel view */
} vkg_lstm_seq_push;

/* Mirrors the Push block of shaders/lstm_seq_backward.comp: change both. */
typedef struct vkg_lstm_seq_bw_push {
    uint32_t B, T, Hd, t;
    uint32_t dg_off, dc_off, s_off, g_off;
    uint32_t dh_off, c0_off;
    uint32_t dc_tex;      /* lstm_seq_backward*_tex: dc_off in dc's texel view */
} vkg_lstm_seq_bw_push;

/* The step kernels' STEP constant (shaders/lstm_seq*.comp: change both): the first and last
 * steps, and which optional inputs are bound. */
enum { SEQ_FIRST = 1, SEQ_LAST = 2, SEQ_HAS_HW = 4, SEQ_HAS_C0 = 8, SEQ_HAS_H0 = 16 };  /* lstm_seq.comp     */
enum { SEQ_BW_HAS_DH = 4, SEQ_BW_HAS_C0 = 8 };                                       /* lstm_seq_backward */

/* Rows t of a (B, T, W) contiguous tensor base (from element offset off): a (B, W) view. */
/* The *_vec4 sequence kernels (four units an invocation, vec4 buffers) need every bound
 * tensor to start at a multiple of 4 floats; NULL entries are not bound. */
static bool offsets4(const vkg_tensor *const *t, int n) {
    for (int i = 0; i < n; i++)
        if (t[i] && t[i]->offset % 4 != 0) return false;
    return true;
}

static vkg_tensor *step_view(vkg_tensor *base, int64_t off, int64_t B, int64_t T, int64_t W, int64_t t) {
    int64_t st[VKG_MAX_DIMS] = { T * W, 1 };
    return vkg_tensor_view_of(base, VKG_SHAPE(B, W), st, base->offset + off + t * W);
}

/* a^T b (m, n) for a (R, m) and b (R, n): the weight gradients, summed over all B*T rows. One
 * matmul walks K = R inside each invocation, and lavapipe ends an invocation's loops after 65535
 * iterations (matmul_reg takes K four at a time: wrong past about 262k rows), so past LSTM_ROWS
 * rows the sum is cut into chunks of one matmul each, added in order. */
#define LSTM_ROWS 65536
static vkg_tensor *rows_matmul_tn(vkg_tensor *a, vkg_tensor *b) {
    int64_t R = a->shape.d[0];
    if (R <= LSTM_ROWS) return vkg_matmul(vkg_transpose(a, 0, 1), b);
    vkg_tensor *acc = NULL;
    for (int64_t r0 = 0; r0 < R; r0 += LSTM_ROWS) {
        int64_t len = R - r0 < LSTM_ROWS ? R - r0 : LSTM_ROWS;
        vkg_tensor *p = vkg_matmul(vkg_transpose(vkg_narrow(a, 0, r0, len), 0, 1), vkg_narrow(b, 0, r0, len));
        acc = acc ? vkg_add(acc, p) : p;
        if (!acc) return NULL;
    }
    return acc;
}

/* Dispatches a step kernel (shaders/lstm_seq*.comp) whose inputs are bindings 2-5 and, at 6, a
 * view of the buffer the step reads before it writes: all as texel views where the device reads
 * those faster (shaders/lstm_tex.glsl), their push offsets off[0..4] then rebased, else binding 6
 * dropped. names: the module as is, _vec4, _tex, _vec4_tex. */
static vkg_status seq_dispatch(vkg_dispatch_desc *d, bool v4, uint32_t *const off[5], const char *const names[4]) {
    bool tex = vkg_texel_bind(d, 0x7cu, v4 ? 0u : 0x7cu);
    if (tex) vkg_texel_rebase(d, 2, off, 5);
    else d->bind[6] = NULL;
    d->shader = names[(tex ? 2 : 0) + (v4 ? 1 : 0)];
    return vkg_dispatch(d);
}

/* Runs the forward with grad mode off; R and S are allocated by the caller. */
static vkg_status lstm_seq_run(vkg_tensor *R, vkg_tensor *S, vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0,
                               vkg_tensor *w_ih, vkg_tensor *w_hh, vkg_tensor *bias, int64_t B, int64_t T, int64_t I,
                               int64_t Hd) {
    const char *op = "vkg_lstm";
    vkg_status st = VKG_OK;
    vkg_tensor *xc = vkg_contiguous(x);
    vkg_tensor *x2 = xc ? vkg_reshape(xc, VKG_SHAPE(B * T, I)) : NULL;               /* (B*T, I)   */
    vkg_tensor *wiT = vkg_transpose(w_ih, 0, 1);                                       /* (I, 4Hd)   */
    /* the biases go in with the matmul's epilogue, once per row of x, not per step */
    vkg_tensor *xw = !x2 ? NULL : bias ? vkg_matmul_bias_act(x2, wiT, bias, VKG_ACTIVATION_NONE) : vkg_matmul(x2, wiT);
    vkg_tensor *whT = vkg_transpose(w_hh, 0, 1);                                       /* (Hd, 4Hd)  */
    vkg_tensor *h0c = h0 ? vkg_contiguous(h0) : NULL, *c0c = c0 ? vkg_contiguous(c0) : NULL;
    if (!xw || !whT || (h0 && !h0c) || (c0 && !c0c)) {
        st = failed();
        goto done;
    }
    for (int64_t t = 0; t < T && st == VKG_OK; t++) {
        vkg_tensor *hp = t == 0 ? h0c : step_view(R, 0, B, T, Hd, t - 1);               /* (B, Hd)    */
        vkg_tensor *hw = hp ? vkg_matmul(hp, whT) : NULL;                               /* (B, 4Hd)   */
        if ((t > 0 || h0c) && !hw) st = failed();
        if (st == VKG_OK) {
            uint32_t step = (t == 0 ? SEQ_FIRST : 0) | (t == T - 1 ? SEQ_LAST : 0) | (hw ? SEQ_HAS_HW : 0) |
                            (c0c ? SEQ_HAS_C0 : 0) | (h0c ? SEQ_HAS_H0 : 0);
            vkg_lstm_seq_push pc = { (uint32_t)B, (uint32_t)T, (uint32_t)Hd, (uint32_t)t, (uint32_t)R->offset,
                                     (uint32_t)S->offset, (uint32_t)xw->offset, hw ? (uint32_t)hw->offset : 0u,
                                     c0c ? (uint32_t)c0c->offset : 0u, h0c ? (uint32_t)h0c->offset : 0u, 0u };
            bool v4 = Hd % 4 == 0 && offsets4((const vkg_tensor *[]){ R, S, xw, hw, c0c, h0c }, 6);
            vkg_dispatch_desc d = { .op = VKG_OP_LSTM, .name = op, .spec = { step }, .nspec = 1, .local_size = LOCAL,
                                    .groups = { vkg_groups_for((uint64_t)(B * Hd / (v4 ? 4 : 1)), LOCAL) },
                                    .bind = { R, S, xw, hw ? hw : xw, c0c ? c0c : xw, h0c ? h0c : xw, S },
                                    .nout = 2, .push = &pc, .push_size = sizeof pc };
            pc.s_tex = pc.s_off;
            st = seq_dispatch(&d, v4, (uint32_t *[]){ &pc.xw_off, &pc.hw_off, &pc.c0_off, &pc.h0_off, &pc.s_tex },
                              (const char *[]){ "lstm_seq", "lstm_seq_vec4", "lstm_seq_tex", "lstm_seq_vec4_tex" });
        }
        if (hw) vkg_free(hw);
        if (t > 0) vkg_free(hp);
    }
done:
    if (xc && xc != x) vkg_free(xc);
    if (x2 && x2 != xc) vkg_free(x2);
    vkg_free(xw);
    vkg_free(wiT);
    vkg_free(whT);
    if (h0c && h0c != h0) vkg_free(h0c);
    if (c0c && c0c != c0) vkg_free(c0c);
    return st;
}

vkg_status vkg_lstm(vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0, vkg_tensor *w_ih, vkg_tensor *w_hh, vkg_tensor *b_ih,
                    vkg_tensor *b_hh, vkg_tensor **out, vkg_tensor **h_n, vkg_tensor **c_n) {
    const char *op = "vkg_lstm";
    if (out) *out = NULL;
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!x || !w_ih || !w_hh) return failed();
    if (!out) return vkg_fail(VKG_ERR_INVALID, "%s: out must not be NULL", op);
    vkg_tensor *all[7] = { x, h0, c0, w_ih, w_hh, b_ih, b_hh };
    static const char *names[7] = { "x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh" };
    char s[7][64];
    if (!check_inputs(all, names, op, s)) return vkg_last_status();
    bool ok = x->shape.ndim == 3 && w_hh->shape.ndim == 2 && x->shape.d[1] >= 1;
    int64_t B = ok ? x->shape.d[0] : 0, T = ok ? x->shape.d[1] : 0, I = ok ? x->shape.d[2] : 0;
    int64_t Hd = ok ? w_hh->shape.d[1] : 0;
    ok = ok && Hd >= 1 && is2(w_ih, 4 * Hd, I) && is2(w_hh, 4 * Hd, Hd);
    for (int i = 1; i < 3; i++) ok = ok && (!all[i] || is2(all[i], B, Hd));
    for (int i = 5; i < 7; i++) ok = ok && (!all[i] || (all[i]->shape.ndim == 1 && all[i]->shape.d[0] == 4 * Hd));
    if (!ok)
        return vkg_fail(VKG_ERR_INVALID, "%s: x %s, h0 %s, c0 %s, w_ih %s, w_hh %s, b_ih %s, b_hh %s do not fit: expected "
                                         "x (B, T >= 1, I) (batch first), h0 and c0 (B, Hd) or NULL, w_ih (4Hd, I), "
                                         "w_hh (4Hd, Hd), biases (4Hd) or NULL",
                        op, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    /* the shaders index with 32-bit offsets */
    if (B * T * 6 * Hd + x->offset > INT32_MAX || vkg_numel(x) > INT32_MAX)
        return vkg_fail(VKG_ERR_INVALID, "%s: x %s with Hd %lld is too large (its saved state exceeds 2^31 elements)", op,
                        s[0], (long long)Hd);
    vkg_tensor *R = vkg_tensor_alloc(VKG_SHAPE(B * T * Hd + B * Hd), VKG_F32, false, op);
    vkg_tensor *S = R ? vkg_tensor_alloc(VKG_SHAPE(B * T * 6 * Hd), VKG_F32, false, op) : NULL;
    if (!S) {
        vkg_free(R);
        return failed();
    }
    vkg_no_grad_begin();
    vkg_tensor *bias = b_ih && b_hh ? vkg_add(b_ih, b_hh) : b_ih ? b_ih : b_hh;
    vkg_tensor *bc = vkg_contiguous(bias);
    vkg_status st = (b_ih || b_hh) && !bc ? failed() : VKG_OK;
    if (st == VKG_OK && B > 0) st = lstm_seq_run(R, S, x, h0, c0, w_ih, w_hh, bc, B, T, I, Hd);
    if (bc && bc != b_ih && bc != b_hh) vkg_free(bc);
    if (bias && bias != bc && bias != b_ih && bias != b_hh) vkg_free(bias);
    vkg_no_grad_end();
    if (st != VKG_OK) {
        vkg_free(R);
        vkg_free(S);
        return st;
    }
    if (!vkg_node_record(R, VKG_OP_LSTM, (vkg_tensor *[]){ x, w_ih, w_hh, b_ih, b_hh, h0, c0, S }, 8)) vkg_free(S);
    vkg_tensor *o = vkg_reshape(vkg_narrow(R, 0, 0, B * T * Hd), VKG_SHAPE(B, T, Hd));
    vkg_tensor *hn = h_n && o ? vkg_squeeze(vkg_narrow(o, 1, T - 1, 1), 1) : NULL;
    vkg_tensor *cn = c_n ? vkg_reshape(vkg_narrow(R, 0, B * T * Hd, B * Hd), VKG_SHAPE(B, Hd)) : NULL;
    if (!o || (h_n && !hn) || (c_n && !cn)) return failed();
    *out = o;
    if (h_n) *h_n = hn;
    if (c_n) *c_n = cn;
    return VKG_OK;
}

vkg_status vkg_lstm_grad(vkg_tensor *x, vkg_tensor *w_ih, vkg_tensor *w_hh, vkg_tensor *c0, vkg_tensor *saved,
                         vkg_tensor *g, vkg_tensor **dx, vkg_tensor **dh0, vkg_tensor **dc0, vkg_tensor **dw_ih,
                         vkg_tensor **dw_hh, vkg_tensor **db) {
    const char *op = "lstm backward";
    vkg_tensor **outs[6] = { dx, dh0, dc0, dw_ih, dw_hh, db };
    for (int i = 0; i < 6; i++)
        if (outs[i]) *outs[i] = NULL;
    int64_t B = x->shape.d[0], T = x->shape.d[1], I = x->shape.d[2], Hd = w_hh->shape.d[1], G = 4 * Hd;
    vkg_status st = VKG_OK;
    vkg_tensor *gc = vkg_contiguous(g), *c0c = c0 ? vkg_contiguous(c0) : NULL;
    vkg_tensor *dG = gc ? vkg_tensor_alloc(VKG_SHAPE(B * T, G), VKG_F32, false, op) : NULL;   /* (B*T, 4Hd) */
    vkg_tensor *dc = dG ? vkg_tensor_alloc(VKG_SHAPE(B, Hd), VKG_F32, false, op) : NULL;      /* (B, Hd)    */
    vkg_tensor *dh = NULL, *xc = NULL;
    if (!dc || (c0 && !c0c)) {
        st = failed();
        goto done;
    }
    for (int64_t t = T - 1; t >= 0 && st == VKG_OK && B > 0; t--) {
        uint32_t step = (t == 0 ? SEQ_FIRST : 0u) | (t == T - 1 ? SEQ_LAST : 0u) | (dh ? SEQ_BW_HAS_DH : 0u) |
                        (c0c ? SEQ_BW_HAS_C0 : 0u);
        vkg_lstm_seq_bw_push pc = { (uint32_t)B, (uint32_t)T, (uint32_t)Hd, (uint32_t)t, (uint32_t)dG->offset,
                                    (uint32_t)dc->offset, (uint32_t)saved->offset, (uint32_t)gc->offset,
                                    dh ? (uint32_t)dh->offset : 0u, c0c ? (uint32_t)c0c->offset : 0u, 0u };
        bool v4 = Hd % 4 == 0 && offsets4((const vkg_tensor *[]){ dG, dc, saved, gc, dh, c0c }, 6);
        vkg_dispatch_desc d = { .op = VKG_OP_LSTM, .name = op, .spec = { step }, .nspec = 1, .local_size = LOCAL,
                                .groups = { vkg_groups_for((uint64_t)(B * Hd / (v4 ? 4 : 1)), LOCAL) },
                                .bind = { dG, dc, saved, gc, dh ? dh : gc, c0c ? c0c : gc, dc }, .nout = 2,
                                .push = &pc, .push_size = sizeof pc };
        pc.dc_tex = pc.dc_off;
        st = seq_dispatch(&d, v4, (uint32_t *[]){ &pc.s_off, &pc.g_off, &pc.dh_off, &pc.c0_off, &pc.dc_tex },
                          (const char *[]){ "lstm_seq_backward", "lstm_seq_backward_vec4", "lstm_seq_backward_tex",
                                            "lstm_seq_backward_vec4_tex" });
        vkg_free(dh);
        dh = NULL;
        if (st != VKG_OK || (t == 0 && !dh0)) break;
        vkg_tensor *dgt = step_view(dG, 0, B, T, G, t);                                    /* (B, 4Hd)   */
        dh = dgt ? vkg_matmul(dgt, w_hh) : NULL;                                           /* (B, Hd)    */
        vkg_free(dgt);
        if (!dh) st = failed();
    }
    if (st != VKG_OK) goto done;
    if (dh0) {
        *dh0 = B > 0 ? dh : vkg_zeros(VKG_SHAPE(B, Hd));
        dh = NULL;
    }
    if (dc0) {
        *dc0 = B > 0 ? dc : vkg_zeros(VKG_SHAPE(B, Hd));
        if (B > 0) dc = NULL;
    }
    if (dw_ih || dx) {
        xc = vkg_contiguous(x);
        vkg_tensor *x2 = vkg_reshape(xc, VKG_SHAPE(B * T, I));
        if (dw_ih) *dw_ih = rows_matmul_tn(dG, x2);                                        /* (4Hd, I)   */
        if (dx) *dx = vkg_reshape(vkg_matmul(dG, w_ih), VKG_SHAPE(B, T, I));              /* (B, T, I)  */
        if (x2 != xc) vkg_free(x2);
    }
    if (dw_hh) {
        int64_t st2[VKG_MAX_DIMS] = { Hd, 1 };
        vkg_tensor *hp = vkg_tensor_view_of(saved, VKG_SHAPE(B * T, Hd), st2, saved->offset + B * T * 5 * Hd);
        *dw_hh = hp ? rows_matmul_tn(dG, hp) : NULL;                                        /* (4Hd, Hd)  */
        vkg_free(hp);
    }
    if (db) *db = vkg_sum(dG, 0, false);                                                   /* (4Hd)      */
    for (int i = 0; i < 6; i++)
        if (outs[i] && !*outs[i]) st = failed();
done:
    if (gc && gc != g) vkg_free(gc);
    if (c0c && c0c != c0) vkg_free(c0c);
    if (xc && xc != x) vkg_free(xc);
    vkg_free(dh);
    vkg_free(dc);
    vkg_free(dG);
    if (st != VKG_OK)
        for (int i = 0; i < 6; i++)
            if (outs[i]) {
                vkg_free(*outs[i]);
                *outs[i] = NULL;
            }
    return st;
}
