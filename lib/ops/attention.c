/* scaled_dot_product_attention: a fused forward (shaders/attention.comp: scores, online
 * softmax and the weighted sum per query row, keeping the row's logsumexp) and a backward in
 * three dispatches (attention_delta.comp, then attention_backward.comp for dq and for dk/dv),
 * all recomputing scores instead of storing the (T, S) matrix, all in a fixed order. On CPU
 * devices, small enough scores go through batched matmuls instead (matmul_path below). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn_internal.h"
#include "ops/seq.h"

#define LOCAL 64

/* Mirrors the Push blocks of shaders/attention.comp and attention_backward.comp: change all. */
typedef struct vkg_attention_push {
    uint32_t B, H, T, S;
    uint32_t Dh, Dv, flags, nchunk;
    float scale;
    uint32_t q_off, k_off, v_off;
    uint32_t o_off, lse_off, m_off, do_off; /* backward: o_off = dq/dk, lse_off = dv */
    int32_t mst[4];
} vkg_attention_push;

/* Mirrors the Push block of shaders/attention_delta.comp: change both. */
typedef struct vkg_attention_delta_push {
    uint32_t rows, Dv, o_off, do_off;
    uint32_t lse_off, st_off;
} vkg_attention_delta_push;

/* Columns per invocation (the shaders' DC constant): the smallest of 4, 8, 16, 32 that holds d,
 * so that small heads do not pay for a 32-wide accumulator; wider rows take several chunks. */
static uint32_t chunk_width(int64_t d) {
    uint32_t w = 4;
    while (w < 32 && (int64_t)w < d) w *= 2;
    return w;
}
static uint32_t chunks(int64_t d, uint32_t w) { return d > 0 ? (uint32_t)((d + w - 1) / w) : 1u; }

/* Loop iterations of one work item of the forward or backward kernels: a walk over the keys (or
 * queries) with a dot product over Dh and one over Dv at each step. The loops over a chunk of
 * DC accumulators have a constant trip count, which the driver unrolls (measured on lavapipe:
 * T = S = 1500, Dh = 32 is right, 3000 is cut short). Too long a walk is refused, never cut. */
static uint64_t item_cost(int64_t T, int64_t S, int64_t Dh, int64_t Dv) {
    int64_t n = T > S ? T : S;
    return (uint64_t)n * (uint64_t)(Dh + Dv + 2) + 8;
}

/* Push constants common to the forward and backward; the mask's strides over (B, H, T, S). */
static vkg_attention_push make_push(const vkg_tensor *q, const vkg_tensor *k, const vkg_tensor *v, const vkg_tensor *mask,
                                    bool causal, float scale) {
    vkg_attention_push pc = { .B = (uint32_t)q->shape.d[0], .H = (uint32_t)q->shape.d[1], .T = (uint32_t)q->shape.d[2],
                              .S = (uint32_t)k->shape.d[2], .Dh = (uint32_t)q->shape.d[3],
                              .Dv = (uint32_t)v->shape.d[3], .flags = (causal ? 1u : 0u) | (mask ? 2u : 0u),
                              .scale = scale, .q_off = (uint32_t)q->offset, .k_off = (uint32_t)k->offset,
                              .v_off = (uint32_t)v->offset };
    if (mask) {
        pc.m_off = (uint32_t)mask->offset;
        for (int d = 0; d < mask->shape.ndim; d++) {
            int j = 4 - mask->shape.ndim + d;
            pc.mst[j] = mask->shape.d[d] == 1 ? 0 : (int32_t)mask->strides[d];
        }
    }
    return pc;
}

/* The matmul path: softmax(q k^T scale + causal) v as recorded ops (batched matmuls and a row
 * softmax that scales and masks the scores as it reads them), whose backward autograd derives. On a CPU device the tuned matmul kernels run the
 * products many times faster than the fused kernel's per-row gathers (GPT's attention, B 32, H 4,
 * T 64: see models/README.md), and its length is bound by memory, not by lavapipe's loop
 * limit. It keeps the (B, H, T, S) scores, so it is taken only while they stay small; a
 * user mask keeps the fused kernel, whose rows with every key masked give zeros, not NaN.
 * VKG_ATTENTION_VARIANT=fused|matmul forces either (comparisons, tests). */
#define SCORES_BYTES ((int64_t)64 << 20)

static bool matmul_path(const int64_t *qd, const int64_t *kd, const vkg_tensor *mask) {
    const char *v = getenv("VKG_ATTENTION_VARIANT");
    if (v && strcmp(v, "fused") == 0) return false;
    if (mask || qd[0] * qd[1] * qd[2] * kd[2] == 0) return false;
    if (v && strcmp(v, "matmul") == 0) return true;
    return vkg_ctx.info.type == VKG_DEVICE_CPU && 4 * qd[0] * qd[1] * qd[2] * kd[2] <= SCORES_BYTES;
}

/* merged: the result is (B, T, H Dv), the heads side by side (MultiheadAttention's layout):
 * the last product writes through a (B, H, T, Dv) view of it, so the heads need no copy. */
static vkg_tensor *attention_by_matmul(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, bool causal, float scale,
                                       bool merged) {
    /* the scale and the causal mask are applied as the softmax reads the scores */
    vkg_tensor *scores = vkg_matmul(q, vkg_transpose(k, 2, 3));
    vkg_tensor *p = vkg_nn_softmax_scaled(scores, scale, causal);
    if (!merged) return vkg_matmul(p, v);
    if (!p) return NULL;
    int64_t B = q->shape.d[0], H = q->shape.d[1], T = q->shape.d[2], Dv = v->shape.d[3];
    vkg_tensor *store = vkg_tensor_alloc(VKG_SHAPE(B, T, H, Dv), VKG_F32, false, "vkg_scaled_dot_product_attention");
    vkg_tensor *o = store ? vkg_transpose(store, 1, 2) : NULL; /* (B, H, T, Dv), no node: store has none */
    if (!o || !vkg_matmul_into(o, p, v)) {
        vkg_free(o);
        vkg_free(store);
        return NULL;
    }
    vkg_node_record(o, VKG_OP_MATMUL, (vkg_tensor *[]){ p, v }, 2); /* vkg_matmul's node: its backward */
    return vkg_reshape(vkg_transpose(o, 1, 2), VKG_SHAPE(B, T, H * Dv));
}

static vkg_tensor *sdpa(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, const vkg_attention_desc *desc, bool merged) {
    const char *op = "vkg_scaled_dot_product_attention";
    vkg_attention_desc dd = desc ? *desc : (vkg_attention_desc){ 0 };
    if (!q || !k || !v) return NULL;
    if (!vkg_require_f32(q, op, "q") || !vkg_require_f32(k, op, "k") || !vkg_require_f32(v, op, "v")) return NULL;
    char a[160], b[160], c[160], e[160];
    if (q->shape.ndim != 4 || k->shape.ndim != 4 || v->shape.ndim != 4)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: q %s, k %s and v %s must all be 4-D (B, H, T|S, D)", op,
                             vkg_shape_str(q->shape, a, sizeof a), vkg_shape_str(k->shape, b, sizeof b),
                             vkg_shape_str(v->shape, c, sizeof c));
    const int64_t *qd = q->shape.d, *kd = k->shape.d, *vd = v->shape.d;
    if (kd[0] != qd[0] || kd[1] != qd[1] || kd[3] != qd[3] || vd[0] != qd[0] || vd[1] != qd[1] || vd[2] != kd[2])
        return vkg_fail_null(VKG_ERR_INVALID, "%s: q %s, k %s and v %s do not fit: expected q (B, H, T, Dh), k (B, H, S, "
                                              "Dh), v (B, H, S, Dv)",
                             op, vkg_shape_str(q->shape, a, sizeof a), vkg_shape_str(k->shape, b, sizeof b),
                             vkg_shape_str(v->shape, c, sizeof c));
    vkg_tensor *mask = dd.mask;
    vkg_shape scores = VKG_SHAPE(qd[0], qd[1], qd[2], kd[2]);
    if (mask) {
        if (!vkg_require_f32(mask, op, "mask")) return NULL;
        bool fits = mask->shape.ndim <= 4;
        for (int d = 0; fits && d < mask->shape.ndim; d++) {
            int64_t m = mask->shape.d[d], want = scores.d[4 - mask->shape.ndim + d];
            fits = m == want || m == 1;
        }
        if (!fits)
            return vkg_fail_null(VKG_ERR_INVALID, "%s: mask is %s but the scores are %s (B, H, T, S): the mask does not "
                                                  "broadcast to them",
                                 op, vkg_shape_str(mask->shape, a, sizeof a), vkg_shape_str(scores, e, sizeof e));
        if (mask->requires_grad && vkg_grad_enabled())
            return vkg_fail_null(VKG_ERR_INVALID, "%s: the mask %s requires grad; masks get no gradient here (detach it)",
                                 op, vkg_shape_str(mask->shape, a, sizeof a));
    }
    if (!isfinite(dd.scale))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: scale %g is not finite", op, (double)dd.scale);
    float scale = dd.scale != 0.0f ? dd.scale : (qd[3] > 0 ? 1.0f / sqrtf((float)qd[3]) : 1.0f);
    if (matmul_path(qd, kd, mask)) return attention_by_matmul(q, k, v, dd.causal, scale, merged);

    vkg_tensor *qc = vkg_contiguous(q), *kc = qc ? vkg_contiguous(k) : NULL, *vc = kc ? vkg_contiguous(v) : NULL;
    vkg_tensor *o = vc ? vkg_tensor_alloc(VKG_SHAPE(qd[0], qd[1], qd[2], vd[3]), VKG_F32, false, op) : NULL;
    vkg_tensor *lse = o ? vkg_tensor_alloc(VKG_SHAPE(qd[0], qd[1], qd[2]), VKG_F32, false, op) : NULL;
    if (!lse) goto fail;
    uint64_t rows = (uint64_t)(qd[0] * qd[1] * qd[2]);
    if (vkg_numel(qc) == 0 || vkg_numel(kc) == 0 || vkg_numel(vc) == 0) { /* nothing to attend to: zeros */
        if (vkg_numel(o) > 0 && !vkg_fill_(o, 0.0f)) goto fail;
        if (vkg_numel(lse) > 0 && !vkg_fill_(lse, -INFINITY)) goto fail;
    } else {
        uint64_t cost = item_cost(qd[2], kd[2], qd[3], vd[3]);
        if (vkg_loop_check(cost, op, "one query's walk over the keys") != VKG_OK) goto fail;
        vkg_attention_push pc = make_push(qc, kc, vc, mask, dd.causal, scale);
        uint32_t dc = chunk_width(vd[3]);
        pc.nchunk = chunks(vd[3], dc);
        pc.o_off = (uint32_t)o->offset;
        pc.lse_off = (uint32_t)lse->offset;
        if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "attention", .op = VKG_OP_SDPA, .name = op, .spec = { dc },
                                               .nspec = 1, .local_size = LOCAL,
                                               .groups = { vkg_groups_for_cost(rows * pc.nchunk, LOCAL, cost) },
                                               .bind = { o, lse, qc, kc, vc, mask ? mask : qc }, .nout = 2,
                                               .push = &pc, .push_size = sizeof pc }) != VKG_OK)
            goto fail;
    }
    vkg_node *n = vkg_node_record(o, VKG_OP_SDPA, (vkg_tensor *[]){ qc, kc, vc, mask, lse }, 5);
    if (n) {
        n->s = scale;
        n->ip[0] = dd.causal;
    } else { /* the copies are not needed for a backward */
        if (qc != q) vkg_free(qc);
        if (kc != k) vkg_free(kc);
        if (vc != v) vkg_free(vc);
        vkg_free(lse);
    }
    if (merged) o = vkg_reshape(vkg_contiguous(vkg_transpose(o, 1, 2)), VKG_SHAPE(qd[0], qd[2], qd[1] * vd[3]));
    return o;
fail:
    vkg_free(o);
    vkg_free(lse);
    if (qc && qc != q) vkg_free(qc);
    if (kc && kc != k) vkg_free(kc);
    if (vc && vc != v) vkg_free(vc);
    return NULL;
}

vkg_tensor *vkg_scaled_dot_product_attention(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, const vkg_attention_desc *desc) {
    return sdpa(q, k, v, desc, false);
}

vkg_tensor *vkg_sdpa_merged(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, const vkg_attention_desc *desc) {
    return sdpa(q, k, v, desc, true);
}

vkg_status vkg_sdpa_grad(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, vkg_tensor *mask, vkg_tensor *o, vkg_tensor *lse,
                         bool causal, float scale, vkg_tensor *g, vkg_tensor **dq, vkg_tensor **dk, vkg_tensor **dv) {
    const char *op = "scaled_dot_product_attention backward";
    if (dq) *dq = NULL;
    if (dk) *dk = NULL;
    if (dv) *dv = NULL;
    vkg_tensor *gc = vkg_contiguous(g), *st = NULL, *tq = NULL, *tk = NULL, *tv = NULL;
    if (!gc) return vkg_last_status();
    bool work = vkg_numel(q) > 0 && vkg_numel(k) > 0 && vkg_numel(v) > 0; /* else the gradients are zeros */
    if (dq) tq = work ? vkg_empty(q->shape) : vkg_zeros(q->shape);
    if (dk || dv) {
        tk = work ? vkg_empty(k->shape) : vkg_zeros(k->shape);
        tv = work ? vkg_empty(v->shape) : vkg_zeros(v->shape);
    }
    vkg_status s = VKG_OK;
    if ((dq && !tq) || ((dk || dv) && (!tk || !tv))) goto fail;
    uint64_t rows = (uint64_t)(q->shape.d[0] * q->shape.d[1] * q->shape.d[2]);
    uint64_t cost = item_cost(q->shape.d[2], k->shape.d[2], q->shape.d[3], v->shape.d[3]);
    if (work && vkg_loop_check(cost, op, "one query's walk over the keys") != VKG_OK) goto fail;
    if (work) {
        st = vkg_tensor_alloc(VKG_SHAPE((int64_t)rows, 2), VKG_F32, false, op);
        if (!st) goto fail;
        vkg_attention_delta_push dp = { (uint32_t)rows, (uint32_t)v->shape.d[3], (uint32_t)o->offset,
                                        (uint32_t)gc->offset, (uint32_t)lse->offset, (uint32_t)st->offset };
        if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "attention_delta", .op = VKG_OP_SDPA, .name = op,
                                               .local_size = LOCAL,
                                               .groups = { vkg_groups_for_cost(rows, LOCAL, (uint64_t)v->shape.d[3] + 2) },
                                               .bind = { st, o, gc, lse }, .nout = 1, .push = &dp,
                                               .push_size = sizeof dp }) != VKG_OK)
            goto fail;
        vkg_attention_push pc = make_push(q, k, v, mask, causal, scale);
        pc.do_off = (uint32_t)gc->offset;
        const vkg_tensor *m = mask ? mask : q;
        if (tq) {
            uint32_t dc = chunk_width(q->shape.d[3]);
            pc.nchunk = chunks(q->shape.d[3], dc);
            pc.o_off = (uint32_t)tq->offset;
            if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "attention_backward", .op = VKG_OP_SDPA, .name = op,
                                                   .spec = { 1, dc }, .nspec = 2, .local_size = LOCAL,
                                                   .groups = { vkg_groups_for_cost(rows * pc.nchunk, LOCAL, cost) },
                                                   .bind = { tq, tq, q, k, v, m, gc, st }, .nout = 2, .push = &pc,
                                                   .push_size = sizeof pc }) != VKG_OK)
                goto fail;
        }
        if (tk) {
            uint64_t keys = (uint64_t)(k->shape.d[0] * k->shape.d[1] * k->shape.d[2]);
            int64_t dmax = q->shape.d[3] > v->shape.d[3] ? q->shape.d[3] : v->shape.d[3];
            uint32_t dc = chunk_width(dmax);
            pc.nchunk = chunks(dmax, dc);
            pc.o_off = (uint32_t)tk->offset;
            pc.lse_off = (uint32_t)tv->offset;
            if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "attention_backward", .op = VKG_OP_SDPA, .name = op,
                                                   .spec = { 2, dc }, .nspec = 2, .local_size = LOCAL,
                                                   .groups = { vkg_groups_for_cost(keys * pc.nchunk, LOCAL, cost) },
                                                   .bind = { tk, tv, q, k, v, m, gc, st }, .nout = 2, .push = &pc,
                                                   .push_size = sizeof pc }) != VKG_OK)
                goto fail;
        }
    }
    if (dq) *dq = tq;
    if (dk) *dk = tk;
    else vkg_free(tk);
    if (dv) *dv = tv;
    else vkg_free(tv);
    vkg_free(st);
    if (gc != g) vkg_free(gc);
    return VKG_OK;
fail:
    s = vkg_last_status();
    vkg_free(tq);
    vkg_free(tk);
    vkg_free(tv);
    vkg_free(st);
    if (gc != g) vkg_free(gc);
    return s;
}
