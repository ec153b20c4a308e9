/* The seq group's C reference, written once for REAL = float (vkg_ref_*) and REAL = double
 * (vkg_ref_*_f64): included twice by lib/ops/seq_reference.c. Backward functions add into
 * their outputs (llm.c's convention); sums run in index order, like the device. */

/* (outer, inner) around axis of shape s. */
static void NAME(seq_dims)(vkg_shape s, int axis, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (i < axis) *outer *= s.d[i];
        else if (i > axis) *inner *= s.d[i];
    }
}

void NAME(concat)(REAL *y, const REAL *const *x, const vkg_shape *xs, int n, int axis) {
    int64_t outer, inner, total = 0;
    NAME(seq_dims)(xs[0], axis, &outer, &inner);
    for (int i = 0; i < n; i++) total += xs[i].d[axis];
    for (int64_t o = 0, off = 0; o < outer; o++, off = 0)
        for (int i = 0; i < n; i++) {
            int64_t len = xs[i].d[axis] * inner;
            for (int64_t j = 0; j < len; j++) y[(o * total) * inner + off + j] = x[i][o * len + j];
            off += len;
        }
}

void NAME(concat_backward)(REAL *const *dx, const vkg_shape *xs, int n, int axis, const REAL *dy) {
    int64_t outer, inner, total = 0;
    NAME(seq_dims)(xs[0], axis, &outer, &inner);
    for (int i = 0; i < n; i++) total += xs[i].d[axis];
    for (int64_t o = 0, off = 0; o < outer; o++, off = 0)
        for (int i = 0; i < n; i++) {
            int64_t len = xs[i].d[axis] * inner;
            if (dx[i])
                for (int64_t j = 0; j < len; j++) dx[i][o * len + j] += dy[(o * total) * inner + off + j];
            off += len;
        }
}

void NAME(split)(REAL *const *y, const int64_t *sizes, int n, const REAL *x, vkg_shape xs, int axis) {
    int64_t outer, inner;
    NAME(seq_dims)(xs, axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0, off = 0; i < n; i++) {
            int64_t len = sizes[i] * inner;
            for (int64_t j = 0; j < len; j++) y[i][o * len + j] = x[o * xs.d[axis] * inner + off + j];
            off += len;
        }
}

void NAME(split_backward)(REAL *dx, vkg_shape xs, int axis, const int64_t *sizes, int n, const REAL *const *dy) {
    int64_t outer, inner;
    NAME(seq_dims)(xs, axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0, off = 0; i < n; i++) {
            int64_t len = sizes[i] * inner;
            if (dy[i])
                for (int64_t j = 0; j < len; j++) dx[o * xs.d[axis] * inner + off + j] += dy[i][o * len + j];
            off += len;
        }
}

void NAME(stack)(REAL *y, const REAL *const *x, vkg_shape xs, int n, int axis) {
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < xs.ndim; i++) {
        if (i < axis) outer *= xs.d[i];
        else inner *= xs.d[i];
    }
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < inner; j++) y[(o * n + i) * inner + j] = x[i][o * inner + j];
}

void NAME(stack_backward)(REAL *const *dx, vkg_shape xs, int n, int axis, const REAL *dy) {
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < xs.ndim; i++) {
        if (i < axis) outer *= xs.d[i];
        else inner *= xs.d[i];
    }
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n; i++)
            if (dx[i])
                for (int64_t j = 0; j < inner; j++) dx[i][o * inner + j] += dy[(o * n + i) * inner + j];
}

void NAME(index_select)(REAL *y, const REAL *x, vkg_shape xs, int axis, const int32_t *index, int64_t m) {
    int64_t outer, inner, N = xs.d[axis];
    NAME(seq_dims)(xs, axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) {
            int64_t r = index[j];
            for (int64_t i = 0; i < inner; i++)
                y[(o * m + j) * inner + i] = (r >= 0 && r < N) ? x[(o * N + r) * inner + i] : (REAL)NAN;
        }
}

void NAME(index_select_backward)(REAL *dx, vkg_shape xs, int axis, const int32_t *index, int64_t m, const REAL *dy) {
    int64_t outer, inner, N = xs.d[axis];
    NAME(seq_dims)(xs, axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) {
            int64_t r = index[j];
            if (r < 0 || r >= N) continue;
            for (int64_t i = 0; i < inner; i++) dx[(o * N + r) * inner + i] += dy[(o * m + j) * inner + i];
        }
}

/* Row-major offset in shape s of coordinates c, with c[axis] replaced by r. */
static int64_t NAME(offset_of)(const int64_t *c, vkg_shape s, int axis, int64_t r) {
    int64_t off = 0;
    for (int d = 0; d < s.ndim; d++) off = off * s.d[d] + (d == axis ? r : c[d]);
    return off;
}

/* The coordinates c of row-major element q of shape s. */
static void NAME(unravel)(int64_t q, vkg_shape s, int64_t *c) {
    for (int d = s.ndim - 1; d >= 0; d--) {
        c[d] = q % s.d[d];
        q /= s.d[d];
    }
}

void NAME(gather)(REAL *y, const REAL *x, vkg_shape xs, int axis, const int32_t *index, vkg_shape is) {
    int64_t n = vkg_shape_numel(is), c[VKG_MAX_DIMS];
    for (int64_t q = 0; q < n; q++) {
        NAME(unravel)(q, is, c);
        int64_t r = index[q];
        y[q] = (r >= 0 && r < xs.d[axis]) ? x[NAME(offset_of)(c, xs, axis, r)] : (REAL)NAN;
    }
}

void NAME(gather_backward)(REAL *dx, vkg_shape xs, int axis, const int32_t *index, vkg_shape is, const REAL *dy) {
    int64_t n = vkg_shape_numel(is), c[VKG_MAX_DIMS];
    for (int64_t q = 0; q < n; q++) {
        NAME(unravel)(q, is, c);
        int64_t r = index[q];
        if (r >= 0 && r < xs.d[axis]) dx[NAME(offset_of)(c, xs, axis, r)] += dy[q];
    }
}

void NAME(embedding)(REAL *y, const REAL *weight, int64_t V, int64_t D, const int32_t *index, int64_t m) {
    NAME(index_select)(y, weight, VKG_SHAPE(V, D), 0, index, m);
}

void NAME(embedding_backward)(REAL *dweight, int64_t V, int64_t D, const int32_t *index, int64_t m, const REAL *dy) {
    NAME(index_select_backward)(dweight, VKG_SHAPE(V, D), 0, index, m, dy);
}

/* Index of the mask element for (b, h, t, s) with ms broadcast to (B, H, T, S). */
static int64_t NAME(mask_at)(vkg_shape ms, int64_t b, int64_t h, int64_t t, int64_t s) {
    int64_t c[4] = { b, h, t, s }, off = 0;
    for (int d = 0; d < ms.ndim; d++) {
        int64_t coord = c[4 - ms.ndim + d];
        off = off * ms.d[d] + (ms.d[d] == 1 ? 0 : coord);
    }
    return off;
}

/* The scores of one query row (b, h, t), -inf where masked out; returns the row's max. */
static REAL NAME(sdpa_scores)(REAL *sc, const REAL *q, const REAL *k, const REAL *mask, vkg_shape ms, int64_t b,
                              int64_t h, int64_t t, int64_t H, int64_t T, int64_t S, int64_t Dh, bool causal,
                              REAL scale) {
    const REAL *qr = q + ((b * H + h) * T + t) * Dh;
    REAL mx = -INFINITY;
    for (int64_t s = 0; s < S; s++) {
        const REAL *kr = k + ((b * H + h) * S + s) * Dh;
        REAL dot = 0;
        for (int64_t d = 0; d < Dh; d++) dot += qr[d] * kr[d];
        REAL x = dot * scale;
        if (mask) x += mask[NAME(mask_at)(ms, b, h, t, s)];
        if (causal && s > t) x = -INFINITY;
        sc[s] = x;
        if (x > mx) mx = x;
    }
    return mx;
}

void NAME(sdpa)(REAL *o, REAL *lse, const REAL *q, const REAL *k, const REAL *v, const REAL *mask, vkg_shape ms,
                int64_t B, int64_t H, int64_t T, int64_t S, int64_t Dh, int64_t Dv, bool causal, REAL scale) {
    REAL *sc = malloc((size_t)(S + 1) * sizeof *sc);
    if (!sc) return;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                REAL mx = NAME(sdpa_scores)(sc, q, k, mask, ms, b, h, t, H, T, S, Dh, causal, scale);
                REAL *orow = o + ((b * H + h) * T + t) * Dv, sum = 0;
                for (int64_t d = 0; d < Dv; d++) orow[d] = 0;
                if (mx == -INFINITY) { /* every key masked out: zeros */
                    if (lse) lse[(b * H + h) * T + t] = -INFINITY;
                    continue;
                }
                for (int64_t s = 0; s < S; s++) sum += exp(sc[s] - mx);
                for (int64_t s = 0; s < S; s++) {
                    REAL p = exp(sc[s] - mx) / sum;
                    const REAL *vr = v + ((b * H + h) * S + s) * Dv;
                    for (int64_t d = 0; d < Dv; d++) orow[d] += p * vr[d];
                }
                if (lse) lse[(b * H + h) * T + t] = mx + log(sum);
            }
    free(sc);
}

void NAME(sdpa_backward)(REAL *dq, REAL *dk, REAL *dv, const REAL *q, const REAL *k, const REAL *v, const REAL *mask,
                         vkg_shape ms, int64_t B, int64_t H, int64_t T, int64_t S, int64_t Dh, int64_t Dv, bool causal,
                         REAL scale, const REAL *dout) {
    REAL *sc = malloc((size_t)(S + 1) * sizeof *sc), *dp = malloc((size_t)(S + 1) * sizeof *dp);
    if (!sc || !dp) goto done;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                REAL mx = NAME(sdpa_scores)(sc, q, k, mask, ms, b, h, t, H, T, S, Dh, causal, scale);
                if (mx == -INFINITY) continue;
                REAL sum = 0, delta = 0;
                for (int64_t s = 0; s < S; s++) sum += exp(sc[s] - mx);
                const REAL *dor = dout + ((b * H + h) * T + t) * Dv;
                const REAL *qr = q + ((b * H + h) * T + t) * Dh;
                for (int64_t s = 0; s < S; s++) { /* p_s, dp_s = dout . v_s, delta = sum p dp */
                    const REAL *vr = v + ((b * H + h) * S + s) * Dv;
                    REAL p = exp(sc[s] - mx) / sum, d = 0;
                    for (int64_t e = 0; e < Dv; e++) d += dor[e] * vr[e];
                    sc[s] = p;
                    dp[s] = d;
                    delta += p * d;
                }
                for (int64_t s = 0; s < S; s++) {
                    REAL p = sc[s], ds = p * (dp[s] - delta) * scale;
                    const REAL *kr = k + ((b * H + h) * S + s) * Dh;
                    if (dq)
                        for (int64_t d = 0; d < Dh; d++) dq[((b * H + h) * T + t) * Dh + d] += ds * kr[d];
                    if (dk)
                        for (int64_t d = 0; d < Dh; d++) dk[((b * H + h) * S + s) * Dh + d] += ds * qr[d];
                    if (dv)
                        for (int64_t e = 0; e < Dv; e++) dv[((b * H + h) * S + s) * Dv + e] += p * dor[e];
                }
            }
done:
    free(sc);
    free(dp);
}

/* Pre-activation gates of row b: x w_ih^T + b_ih + h w_hh^T + b_hh, 4Hd values. */
static void NAME(lstm_gates)(REAL *g, const REAL *x, const REAL *h, const REAL *w_ih, const REAL *w_hh,
                             const REAL *b_ih, const REAL *b_hh, int64_t b, int64_t In, int64_t Hd) {
    for (int64_t j = 0; j < 4 * Hd; j++) {
        REAL a = (b_ih ? b_ih[j] : 0) + (b_hh ? b_hh[j] : 0);
        for (int64_t i = 0; i < In; i++) a += x[b * In + i] * w_ih[j * In + i];
        for (int64_t i = 0; i < Hd; i++) a += h[b * Hd + i] * w_hh[j * Hd + i];
        g[j] = a;
    }
}

static REAL NAME(lstm_sigmoid)(REAL x) { return 1 / (1 + exp(-x)); }

void NAME(lstm_cell)(REAL *h1, REAL *c1, const REAL *x, const REAL *h, const REAL *c, const REAL *w_ih,
                     const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, int64_t B, int64_t In, int64_t Hd) {
    REAL *g = malloc((size_t)(4 * Hd + 1) * sizeof *g);
    if (!g) return;
    for (int64_t b = 0; b < B; b++) {
        NAME(lstm_gates)(g, x, h, w_ih, w_hh, b_ih, b_hh, b, In, Hd);
        for (int64_t j = 0; j < Hd; j++) {
            REAL ig = NAME(lstm_sigmoid)(g[j]), fg = NAME(lstm_sigmoid)(g[Hd + j]);
            REAL gg = tanh(g[2 * Hd + j]), og = NAME(lstm_sigmoid)(g[3 * Hd + j]);
            REAL cn = fg * c[b * Hd + j] + ig * gg;
            c1[b * Hd + j] = cn;
            h1[b * Hd + j] = og * tanh(cn);
        }
    }
    free(g);
}

void NAME(lstm_cell_backward)(REAL *dx, REAL *dh, REAL *dc, REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,
                              const REAL *x, const REAL *h, const REAL *c, const REAL *w_ih, const REAL *w_hh,
                              const REAL *b_ih, const REAL *b_hh, int64_t B, int64_t In, int64_t Hd, const REAL *dh1,
                              const REAL *dc1) {
    REAL *g = malloc((size_t)(4 * Hd + 1) * sizeof *g), *dg = malloc((size_t)(4 * Hd + 1) * sizeof *dg);
    if (!g || !dg) goto done;
    for (int64_t b = 0; b < B; b++) {
        NAME(lstm_gates)(g, x, h, w_ih, w_hh, b_ih, b_hh, b, In, Hd);
        for (int64_t j = 0; j < Hd; j++) {
            REAL ig = NAME(lstm_sigmoid)(g[j]), fg = NAME(lstm_sigmoid)(g[Hd + j]);
            REAL gg = tanh(g[2 * Hd + j]), og = NAME(lstm_sigmoid)(g[3 * Hd + j]);
            REAL cp = c[b * Hd + j], cn = fg * cp + ig * gg, tc = tanh(cn);
            REAL gh = dh1 ? dh1[b * Hd + j] : 0, gc = (dc1 ? dc1[b * Hd + j] : 0) + gh * og * (1 - tc * tc);
            dg[j] = gc * gg * ig * (1 - ig);
            dg[Hd + j] = gc * cp * fg * (1 - fg);
            dg[2 * Hd + j] = gc * ig * (1 - gg * gg);
            dg[3 * Hd + j] = gh * tc * og * (1 - og);
            if (dc) dc[b * Hd + j] += gc * fg;
        }
        for (int64_t j = 0; j < 4 * Hd; j++) {
            if (db_ih) db_ih[j] += dg[j];
            if (db_hh) db_hh[j] += dg[j];
            for (int64_t i = 0; i < In; i++) {
                if (dx) dx[b * In + i] += dg[j] * w_ih[j * In + i];
                if (dw_ih) dw_ih[j * In + i] += dg[j] * x[b * In + i];
            }
            for (int64_t i = 0; i < Hd; i++) {
                if (dh) dh[b * Hd + i] += dg[j] * w_hh[j * Hd + i];
                if (dw_hh) dw_hh[j * Hd + i] += dg[j] * h[b * Hd + i];
            }
        }
    }
done:
    free(g);
    free(dg);
}

/* The whole-sequence LSTM as the cell unrolled over time: hs and cs (T + 1, B, Hd) hold h_{t-1}
 * and c_{t-1} at row t (h0, c0 or zeros at row 0); xt is the (B, In) input of one step. */
static void NAME(lstm_unroll)(REAL *hs, REAL *cs, REAL *xt, const REAL *x, const REAL *h0, const REAL *c0,
                              const REAL *w_ih, const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, int64_t B,
                              int64_t T, int64_t In, int64_t Hd) {
    int64_t n = B * Hd;
    for (int64_t i = 0; i < n; i++) {
        hs[i] = h0 ? h0[i] : 0;
        cs[i] = c0 ? c0[i] : 0;
    }
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < In; i++) xt[b * In + i] = x[(b * T + t) * In + i];
        NAME(lstm_cell)(hs + (t + 1) * n, cs + (t + 1) * n, xt, hs + t * n, cs + t * n, w_ih, w_hh, b_ih, b_hh, B, In, Hd);
    }
}

void NAME(lstm)(REAL *out, REAL *h_n, REAL *c_n, const REAL *x, const REAL *h0, const REAL *c0, const REAL *w_ih,
                const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, int64_t B, int64_t T, int64_t In, int64_t Hd) {
    int64_t n = B * Hd;
    REAL *hs = malloc((size_t)((T + 1) * n + 1) * sizeof *hs), *cs = malloc((size_t)((T + 1) * n + 1) * sizeof *cs);
    REAL *xt = malloc((size_t)(B * In + 1) * sizeof *xt);
    if (!hs || !cs || !xt) goto done;
    NAME(lstm_unroll)(hs, cs, xt, x, h0, c0, w_ih, w_hh, b_ih, b_hh, B, T, In, Hd);
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < Hd; j++)
                if (out) out[(b * T + t) * Hd + j] = hs[(t + 1) * n + b * Hd + j];
    for (int64_t i = 0; i < n; i++) {
        if (h_n) h_n[i] = hs[T * n + i];
        if (c_n) c_n[i] = cs[T * n + i];
    }
done:
    free(hs);
    free(cs);
    free(xt);
}

void NAME(lstm_backward)(REAL *dx, REAL *dh0, REAL *dc0, REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,
                         const REAL *x, const REAL *h0, const REAL *c0, const REAL *w_ih, const REAL *w_hh,
                         const REAL *b_ih, const REAL *b_hh, int64_t B, int64_t T, int64_t In, int64_t Hd,
                         const REAL *dout, const REAL *dh_n, const REAL *dc_n) {
    int64_t n = B * Hd;
    REAL *hs = malloc((size_t)((T + 1) * n + 1) * sizeof *hs), *cs = malloc((size_t)((T + 1) * n + 1) * sizeof *cs);
    REAL *xt = malloc((size_t)(B * In + 1) * sizeof *xt), *dxt = malloc((size_t)(B * In + 1) * sizeof *dxt);
    REAL *dh = malloc((size_t)(4 * n + 1) * sizeof *dh), *dc = dh + n, *dhp = dh + 2 * n, *dcp = dh + 3 * n;
    if (!hs || !cs || !xt || !dxt || !dh) goto done;
    NAME(lstm_unroll)(hs, cs, xt, x, h0, c0, w_ih, w_hh, b_ih, b_hh, B, T, In, Hd);
    for (int64_t i = 0; i < n; i++) {
        dh[i] = dh_n ? dh_n[i] : 0;
        dc[i] = dc_n ? dc_n[i] : 0;
    }
    for (int64_t t = T - 1; t >= 0; t--) { /* through time: the cell's backward at each step */
        for (int64_t b = 0; b < B; b++) {
            for (int64_t j = 0; j < Hd; j++) dh[b * Hd + j] += dout ? dout[(b * T + t) * Hd + j] : 0;
            for (int64_t i = 0; i < In; i++) {
                xt[b * In + i] = x[(b * T + t) * In + i];
                dxt[b * In + i] = 0;
            }
        }
        for (int64_t i = 0; i < n; i++) dhp[i] = dcp[i] = 0;
        NAME(lstm_cell_backward)(dxt, dhp, dcp, dw_ih, dw_hh, db_ih, db_hh, xt, hs + t * n, cs + t * n, w_ih, w_hh, b_ih,
                                 b_hh, B, In, Hd, dh, dc);
        if (dx)
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < In; i++) dx[(b * T + t) * In + i] += dxt[b * In + i];
        for (int64_t i = 0; i < n; i++) {
            dh[i] = dhp[i];
            dc[i] = dcp[i];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (dh0) dh0[i] += dh[i];
        if (dc0) dc0[i] += dc[i];
    }
done:
    free(hs);
    free(cs);
    free(xt);
    free(dxt);
    free(dh);
}
