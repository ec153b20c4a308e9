/* batch_norm (NCHW or (N, C)): per-channel statistics in one workgroup per channel with a
 * fixed-order tree (batch_norm_stats.comp), the running stats updated in place by the same
 * dispatch, then an elementwise normalisation (batch_norm.comp); backward: per-channel sums in
 * the same way and an elementwise dx (batch_norm_backward.comp). */
#include <inttypes.h>
#include <string.h>

#include "ops/conv_internal.h"
#include "ops/ops.h"

/* Mirrors the Push block of shaders/batch_norm.glsl: change both. */
typedef struct vkg_bn_push {
    uint32_t N, C, S, flags; /* flags: bit 0 train, bit 1 running stats tracked, bit 2 weight, bit 3 bias */
    float momentum, eps;
    uint32_t n, pad;
    uint32_t off[8];         /* offset of binding i, in elements */
} vkg_bn_push;
_Static_assert(sizeof(vkg_bn_push) <= VKG_PUSH_SIZE, "push constants too large");

enum { BN_TRAIN = 1, BN_TRACK = 2, BN_WEIGHT = 4, BN_BIAS = 8 };

#define LOCAL 128    /* elementwise stages */
#define LOCAL_RED 64 /* one workgroup per channel; at most 256 (batch_norm.glsl's shared array) */

static vkg_status bn_dispatch(const char *shader, uint32_t stage, const char *name, vkg_bn_push *pc,
                              vkg_tensor *const *bind, int nbind, int nout, bool per_channel) {
    vkg_dispatch_desc d = { .shader = shader, .op = VKG_OP_BATCH_NORM, .name = name, .nout = nout, .push = pc,
                            .push_size = sizeof *pc, .spec = { stage }, .nspec = 1 };
    for (int i = 0; i < nbind; i++) {
        d.bind[i] = bind[i];
        pc->off[i] = (uint32_t)bind[i]->offset;
    }
    d.local_size = per_channel ? LOCAL_RED : LOCAL;
    /* a channel's workgroup walks its N S values twice, LOCAL_RED ways */
    uint64_t lane_cost = 2 * (((uint64_t)pc->N * pc->S + LOCAL_RED - 1) / LOCAL_RED) + 16;
    if (per_channel && vkg_loop_check(lane_cost, name, "one channel's values") != VKG_OK) return vkg_last_status();
    d.groups[0] = per_channel ? vkg_groups_for_cost(pc->C, 1, lane_cost) : vkg_groups_for(pc->n, LOCAL);
    return vkg_dispatch(&d);
}

static bool channel_vector(const vkg_tensor *t, int64_t C, const char *what, const vkg_tensor *x, bool contiguous) {
    char a[192], b[192];
    if (!vkg_require_f32(t, "vkg_batch_norm", what)) return false;
    if (t->shape.ndim != 1 || t->shape.d[0] != C) {
        vkg_fail(VKG_ERR_INVALID, "vkg_batch_norm: %s is %s but x %s has %" PRId64 " channels", what,
                 vkg_desc(t, a, sizeof a), vkg_desc(x, b, sizeof b), C);
        return false;
    }
    if (contiguous && !vkg_is_contiguous(t)) {
        vkg_fail(VKG_ERR_INVALID, "vkg_batch_norm: %s %s is a non-contiguous view; running stats are updated in place",
                 what, vkg_desc(t, a, sizeof a));
        return false;
    }
    return true;
}

vkg_tensor *vkg_batch_norm(vkg_tensor *x, vkg_tensor *weight, vkg_tensor *bias, vkg_tensor *running_mean,
                           vkg_tensor *running_var, const vkg_batch_norm_desc *desc) {
    if (!x) return NULL;
    const char *op = "vkg_batch_norm";
    char a[192];
    vkg_batch_norm_desc d = desc ? *desc : (vkg_batch_norm_desc){ 0 };
    if (d.momentum == 0.0f) d.momentum = 0.1f;
    if (d.eps == 0.0f) d.eps = 1e-5f;
    if (!vkg_require_f32(x, op, "x")) return NULL;
    if (x->shape.ndim < 2)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s; it must be (N, C) or (N, C, ...)", op, vkg_desc(x, a, sizeof a));
    if (!(d.eps > 0.0f) || !(d.momentum >= 0.0f && d.momentum <= 1.0f))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: eps %g must be positive and momentum %g in [0, 1]", op, (double)d.eps,
                             (double)d.momentum);
    int64_t N = x->shape.d[0], C = x->shape.d[1], S = 1;
    for (int i = 2; i < x->shape.ndim; i++) S *= x->shape.d[i];
    if ((weight && !channel_vector(weight, C, "weight", x, false)) || (bias && !channel_vector(bias, C, "bias", x, false)) ||
        (running_mean && !channel_vector(running_mean, C, "running_mean", x, true)) ||
        (running_var && !channel_vector(running_var, C, "running_var", x, true)))
        return NULL;
    if (!running_mean != !running_var)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: running_mean and running_var go together (one of them is NULL)", op);
    if (!d.train && !running_mean)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: eval mode needs running_mean and running_var", op);
    if (d.train && N * S <= 1)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s: training needs more than one value per channel", op,
                             vkg_desc(x, a, sizeof a));
    if (vkg_numel(x) >= (int64_t)1 << 31)
        return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: x %s has 2^31 elements or more", op, vkg_desc(x, a, sizeof a));
    vkg_tensor *y = vkg_tensor_alloc(x->shape, VKG_F32, false, op);
    vkg_tensor *stats = y ? vkg_tensor_alloc(VKG_SHAPE(2, C), VKG_F32, false, op) : NULL;
    if (!stats) {
        vkg_free(y);
        return NULL;
    }
    vkg_tensor *xc = vkg_contiguous(x), *wc = weight ? vkg_contiguous(weight) : NULL;
    vkg_tensor *bc = bias ? vkg_contiguous(bias) : NULL;
    vkg_status st = (!xc || (weight && !wc) || (bias && !bc)) ? vkg_last_status() : VKG_OK;
    if (st == VKG_OK && C > 0) {
        vkg_bn_push pc = { (uint32_t)N, (uint32_t)C, (uint32_t)S,
                           (d.train ? BN_TRAIN : 0) | (running_mean ? BN_TRACK : 0) | (wc ? BN_WEIGHT : 0) |
                               (bc ? BN_BIAS : 0),
                           d.momentum, d.eps, (uint32_t)vkg_numel(x), 0, { 0 } };
        bool track = running_mean != NULL;
        vkg_tensor *sb[4] = { stats, track ? running_mean : stats, track ? running_var : stats, xc };
        st = bn_dispatch("batch_norm_stats", 0, op, &pc, sb, 4, d.train && track ? 3 : 1, true);
        if (st == VKG_OK && vkg_numel(x) > 0) {
            vkg_tensor *ab[5] = { y, xc, stats, wc ? wc : xc, bc ? bc : xc };
            st = bn_dispatch("batch_norm", 0, op, &pc, ab, 5, 1, false);
        }
    }
    if (xc && xc != x) vkg_free(xc);
    if (wc && wc != weight) vkg_free(wc);
    if (bc && bc != bias) vkg_free(bc);
    if (st != VKG_OK) {
        vkg_free(y);
        vkg_free(stats);
        return NULL;
    }
    /* the stats the forward used are the node's fourth input: backward needs no running stats,
     * which a later training step may already have changed */
    vkg_node *n = vkg_node_record(y, VKG_OP_BATCH_NORM, (vkg_tensor *[]){ x, weight, bias, stats }, 4);
    if (n) {
        n->keepdim = d.train;
        n->s = d.eps;
    } else {
        vkg_free(stats);
    }
    return y;
}

vkg_status vkg_batch_norm_grads(vkg_tensor *g, vkg_tensor *x, vkg_tensor *weight, vkg_tensor *stats, bool train,
                                vkg_tensor **dx, vkg_tensor **dweight, vkg_tensor **dbias) {
    const char *name = "batch_norm backward";
    if (dx) *dx = NULL;
    if (dweight) *dweight = NULL;
    if (dbias) *dbias = NULL;
    int64_t N = x->shape.d[0], C = x->shape.d[1], S = 1;
    for (int i = 2; i < x->shape.ndim; i++) S *= x->shape.d[i];
    vkg_tensor *gc = vkg_contiguous(g), *xc = vkg_contiguous(x), *wc = weight ? vkg_contiguous(weight) : NULL;
    vkg_tensor *sums = vkg_tensor_alloc(VKG_SHAPE(2, C), VKG_F32, false, name);
    vkg_tensor *gx = dx ? vkg_tensor_alloc(x->shape, VKG_F32, false, name) : NULL;
    vkg_status st = (!gc || !xc || (weight && !wc) || !sums || (dx && !gx)) ? vkg_last_status() : VKG_OK;
    if (st == VKG_OK && C > 0) {
        vkg_bn_push pc = { (uint32_t)N, (uint32_t)C, (uint32_t)S, (train ? BN_TRAIN : 0) | (wc ? BN_WEIGHT : 0), 0, 0,
                           (uint32_t)vkg_numel(x), 0, { 0 } };
        /* both stages are one module: stage 0 binds all six bindings too, the last two unused */
        vkg_tensor *rb[6] = { sums, gc, xc, stats, stats, stats };
        st = bn_dispatch("batch_norm_backward", 0, name, &pc, rb, 6, 1, true);
        if (st == VKG_OK && gx && vkg_numel(x) > 0) {
            vkg_tensor *eb[6] = { gx, gc, xc, stats, sums, wc ? wc : sums };
            st = bn_dispatch("batch_norm_backward", 1, name, &pc, eb, 6, 1, false);
        }
    }
    if (gc && gc != g) vkg_free(gc);
    if (xc && xc != x) vkg_free(xc);
    if (wc && wc != weight) vkg_free(wc);
    if (st != VKG_OK) {
        vkg_free(sums);
        vkg_free(gx);
        return st;
    }
    if (dx) *dx = gx;
    if (dbias) *dbias = vkg_reshape(vkg_narrow(sums, 0, 0, 1), VKG_SHAPE(C));
    if (dweight) *dweight = vkg_reshape(vkg_narrow(sums, 0, 1, 1), VKG_SHAPE(C));
    return VKG_OK;
}
