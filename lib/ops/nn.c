/* The nn group's elementwise ops (clamp, masked_fill, dropout) and the engine they, the
 * elementwise losses and their backward rules share: shaders/nn_pointwise.comp with up to three
 * inputs read in place through strides (broadcast dims have stride 0), coalesced to at most 4
 * dims; an input too tangled for that is first gathered by vkg_contiguous. */
#include <math.h>

#include "ops/nn_internal.h"

/* Mirrors the Push block of shaders/nn_pointwise.comp: change both. */
typedef struct vkg_nn_pointwise_push {
    uint32_t n, out_off, pad0, pad1;
    uint32_t shape[4];
    int32_t st[3][4];
    uint32_t off[4];
    float s[4];
} vkg_nn_pointwise_push;

_Static_assert(sizeof(vkg_nn_pointwise_push) <= VKG_PUSH_SIZE, "push constants too large");

#define LOCAL 128

/* Broadcast strides of each input against out, size-1 dims dropped, dims merged where they are
 * contiguous with each other in every input; returns the coalesced dim count. */
static int coalesce(vkg_shape out, vkg_tensor *const *in, int nin, int64_t *shape, int64_t st[3][VKG_MAX_DIMS]) {
    int nd = out.ndim, m = 0;
    for (int i = 0; i < nd; i++) {
        if (out.d[i] == 1) continue;
        int64_t s[3];
        for (int j = 0; j < nin; j++) {
            int ti = i - (nd - in[j]->shape.ndim);
            s[j] = (ti < 0 || in[j]->shape.d[ti] == 1) ? 0 : in[j]->strides[ti];
        }
        bool merge = m > 0;
        for (int j = 0; merge && j < nin; j++) merge = st[j][m - 1] == s[j] * out.d[i];
        if (merge) {
            shape[m - 1] *= out.d[i];
            for (int j = 0; j < nin; j++) st[j][m - 1] = s[j];
            continue;
        }
        shape[m] = out.d[i];
        for (int j = 0; j < nin; j++) st[j][m] = s[j];
        m++;
    }
    return m;
}

vkg_tensor *vkg_nn_pointwise(uint32_t code, vkg_op op, const char *name, vkg_shape out, vkg_tensor *a,
                             vkg_tensor *b, vkg_tensor *c, float s0, float s1) {
    vkg_tensor *in[3] = { a, b, c }, *tmp[3] = { NULL, NULL, NULL };
    int nin = c ? 3 : b ? 2 : 1;
    int64_t shape[VKG_MAX_DIMS], st[3][VKG_MAX_DIMS];
    vkg_tensor *y = NULL;
    int nd = coalesce(out, in, nin, shape, st);
    if (nd > 4) { /* gather every input into out's shape: then they all merge into one dim */
        vkg_no_grad_begin();
        for (int j = 0; j < nin; j++) {
            vkg_tensor *e = vkg_expand(in[j], out);
            tmp[j] = e ? vkg_copy(e) : NULL;
            vkg_free(e);
            in[j] = tmp[j];
        }
        vkg_no_grad_end();
        for (int j = 0; j < nin; j++)
            if (!in[j]) goto done;
        nd = coalesce(out, in, nin, shape, st);
    }
    y = vkg_tensor_alloc(out, VKG_F32, false, name);
    int64_t n = y ? vkg_numel(y) : 0;
    if (!y || n == 0) goto done;
    vkg_nn_pointwise_push pc = { .n = (uint32_t)n, .out_off = (uint32_t)y->offset, .s = { s0, s1 } };
    for (int d = 0; d < 4; d++) {
        int src = nd - 4 + d; /* right-aligned; leading dims 1 */
        pc.shape[d] = src >= 0 ? (uint32_t)shape[src] : 1;
        for (int j = 0; j < 3; j++) pc.st[j][d] = (src >= 0 && j < nin) ? (int32_t)st[j][src] : 0;
    }
    for (int j = 0; j < nin; j++) pc.off[j] = (uint32_t)in[j]->offset;
    vkg_dispatch_desc d = { .shader = "nn_pointwise", .op = op, .name = name, .spec = { code }, .nspec = 1,
                            .local_size = LOCAL, .groups = { vkg_groups_for((uint64_t)n, LOCAL) },
                            .bind = { y, in[0], nin > 1 ? in[1] : in[0], nin > 2 ? in[2] : in[0] }, .nout = 1,
                            .push = &pc, .push_size = sizeof pc };
    if (vkg_dispatch(&d) != VKG_OK) {
        vkg_free(y);
        y = NULL;
    }
done:
    for (int j = 0; j < 3; j++) vkg_free(tmp[j]);
    return y;
}

/* Merges dims [from, to) of t into one stride when they are contiguous with each other. */
static bool merge_dims(const vkg_tensor *t, int from, int to, int64_t *size, int64_t *stride) {
    int64_t n = 1, s = 0;
    int last = -1;
    for (int i = to - 1; i >= from; i--) {
        if (t->shape.d[i] == 1) continue;
        if (last >= 0 && t->strides[i] != t->strides[last] * t->shape.d[last]) return false;
        if (last < 0) s = t->strides[i];
        last = i;
        n *= t->shape.d[i];
    }
    for (int i = from; i < to; i++)
        if (t->shape.d[i] == 0) n = 0;
    *size = n;
    *stride = s;
    return true;
}

bool vkg_nn_rows_of(const vkg_tensor *t, int axis, vkg_nn_rows *r) {
    r->R = t->shape.d[axis];
    r->sr = t->strides[axis];
    return merge_dims(t, 0, axis, &r->outer, &r->so) && merge_dims(t, axis + 1, t->shape.ndim, &r->inner, &r->si);
}

/* ---- clamp, masked_fill, dropout ---------------------------------------------------------- */
vkg_tensor *vkg_clamp(vkg_tensor *x, float lo, float hi) {
    if (!x || !vkg_require_f32(x, "vkg_clamp", "x")) return NULL;
    if (isnan(lo) || isnan(hi))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_clamp: the bounds %g and %g must not be NaN (use -INFINITY or "
                                              "INFINITY for a missing one)", (double)lo, (double)hi);
    vkg_tensor *y = vkg_nn_pointwise(NN_PW_CLAMP, VKG_OP_CLAMP, "vkg_clamp", x->shape, x, NULL, NULL, lo, hi);
    vkg_node *n = vkg_node_record(y, VKG_OP_CLAMP, &x, 1);
    if (n) {
        n->ip[0] = vkg_nn_fbits(lo);
        n->ip[1] = vkg_nn_fbits(hi);
    }
    return y;
}

vkg_tensor *vkg_masked_fill(vkg_tensor *x, vkg_tensor *mask, float value) {
    if (!x || !mask) return NULL;
    if (!vkg_require_f32(x, "vkg_masked_fill", "x") || !vkg_require_f32(mask, "vkg_masked_fill", "mask")) return NULL;
    vkg_shape bs;
    if (!vkg_broadcast_shape(x->shape, mask->shape, &bs) || !vkg_shape_eq(&bs, &x->shape)) {
        char a[160], b[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_masked_fill: mask %s does not broadcast to x %s",
                             vkg_shape_str(mask->shape, b, sizeof b), vkg_shape_str(x->shape, a, sizeof a));
    }
    vkg_tensor *y = vkg_nn_pointwise(NN_PW_MASKED_FILL, VKG_OP_MASKED_FILL, "vkg_masked_fill", x->shape, x, mask,
                                     NULL, value, 0.0f);
    vkg_node *n = vkg_node_record(y, VKG_OP_MASKED_FILL, (vkg_tensor *[]){ x, mask }, 2);
    if (n) n->s = value;
    return y;
}

vkg_tensor *vkg_dropout(vkg_tensor *x, float p, bool train, const vkg_rand_desc *rng) {
    if (!x || !vkg_require_f32(x, "vkg_dropout", "x")) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) /* NaN fails too */
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_dropout: p = %g is outside [0, 1)", (double)p);
    if (!train) return x; /* eval: the identity, like PyTorch (the same tensor) */
    vkg_tensor *keep = vkg_bernoulli(x->shape, 1.0f - p, rng);
    if (!keep) return NULL;
    float scale = 1.0f / (1.0f - p);
    vkg_tensor *y = vkg_nn_pointwise(NN_PW_SCALE_MASK, VKG_OP_DROPOUT, "vkg_dropout", x->shape, x, keep, NULL, scale,
                                     0.0f);
    /* the mask is saved as a second input (it needs no gradient) for the backward */
    vkg_node *n = vkg_node_record(y, VKG_OP_DROPOUT, (vkg_tensor *[]){ x, keep }, 2);
    if (n) n->s = scale;
    else vkg_free(keep); /* no node: nothing needs the mask any more */
    return y;
}
