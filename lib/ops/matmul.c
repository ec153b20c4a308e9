/* matmul with PyTorch's semantics: 1-D operands are promoted to matrices and the added dim is
 * dropped from the result; batch dims broadcast; both operands are read through their
 * strides, so a transposed view costs no copy. */
#include "ops/ops.h"

/* Mirrors the Push block of shaders/matmul.comp: change both. */
typedef struct vkg_matmul_push {
    uint32_t mnk[4];
    uint32_t bshape[4];
    int32_t a_bst[4], b_bst[4];
    int32_t a_mat[4], b_mat[4];
    uint32_t c_off[4];
} vkg_matmul_push;

#define TILE 64 /* 16 x 16 invocations, 4 x 4 outputs each: shaders/matmul.comp */

/* Batch dims of an operand, aligned right against the broadcast batch shape. */
static void batch_strides(const vkg_tensor *t, int nb_t, const vkg_shape *bs, int64_t *st) {
    for (int i = 0; i < bs->ndim; i++) {
        int ti = i - (bs->ndim - nb_t);
        st[i] = (ti < 0 || t->shape.d[ti] == 1) ? 0 : t->strides[ti];
    }
}

static vkg_tensor *matmul_forward(vkg_tensor *a, vkg_tensor *b) {
    if (!a || !b) return NULL;
    if (!vkg_require_f32(a, "matmul", "a") || !vkg_require_f32(b, "matmul", "b")) return NULL;
    char x[160], y[160];
    if (a->shape.ndim == 0 || b->shape.ndim == 0)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: a is %s and b is %s; both need at least 1 dim",
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y));
    /* matrix views of both operands (1-D promoted) */
    int an = a->shape.ndim, bn = b->shape.ndim;
    int64_t M = an == 1 ? 1 : a->shape.d[an - 2], K = a->shape.d[an - 1];
    int64_t a_rs = an == 1 ? 0 : a->strides[an - 2], a_cs = a->strides[an - 1];
    int64_t Kb = bn == 1 ? b->shape.d[0] : b->shape.d[bn - 2], N = bn == 1 ? 1 : b->shape.d[bn - 1];
    int64_t b_rs = bn == 1 ? b->strides[0] : b->strides[bn - 2], b_cs = bn == 1 ? 0 : b->strides[bn - 1];
    if (K != Kb)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: a is %s but b is %s: inner sizes %lld != %lld",
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y),
                             (long long)K, (long long)Kb);
    int a_nb = an > 2 ? an - 2 : 0, b_nb = bn > 2 ? bn - 2 : 0;
    vkg_shape as = { .ndim = a_nb }, bsh = { .ndim = b_nb }, batch;
    for (int i = 0; i < a_nb; i++) as.d[i] = a->shape.d[i];
    for (int i = 0; i < b_nb; i++) bsh.d[i] = b->shape.d[i];
    if (!vkg_broadcast_shape(as, bsh, &batch))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: batch dims of a %s and b %s do not broadcast",
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y));
    vkg_shape out = batch;
    if (an > 1) out.d[out.ndim++] = M;
    if (bn > 1) out.d[out.ndim++] = N;

    int64_t ast[VKG_MAX_DIMS], bst[VKG_MAX_DIMS];
    batch_strides(a, a_nb, &batch, ast);
    batch_strides(b, b_nb, &batch, bst);
    /* fold batch dims into at most 3: drop size-1 dims, merge dims contiguous in both operands */
    int64_t bdim[VKG_MAX_DIMS], sa[VKG_MAX_DIMS], sb[VKG_MAX_DIMS];
    int nb = 0;
    for (int i = 0; i < batch.ndim; i++) {
        if (batch.d[i] == 1) continue;
        if (nb > 0 && sa[nb - 1] == ast[i] * batch.d[i] && sb[nb - 1] == bst[i] * batch.d[i]) {
            bdim[nb - 1] *= batch.d[i];
            sa[nb - 1] = ast[i];
            sb[nb - 1] = bst[i];
            continue;
        }
        bdim[nb] = batch.d[i];
        sa[nb] = ast[i];
        sb[nb] = bst[i];
        nb++;
    }
    if (nb > 3) {
        /* rare: operands whose batch dims do not fold into 3; gather each one with batch dims
         * into a contiguous copy of the full batch shape, which then folds into one */
        vkg_tensor *cp[2] = { a, b };
        const int nds[2] = { an, bn };
        for (int k = 0; k < 2; k++) {
            if (nds[k] <= 2) continue;
            vkg_shape e = batch;
            e.d[e.ndim++] = cp[k]->shape.d[nds[k] - 2];
            e.d[e.ndim++] = cp[k]->shape.d[nds[k] - 1];
            vkg_tensor *v = vkg_expand(cp[k], e);
            cp[k] = v ? vkg_copy(v) : NULL;
            vkg_free(v);
        }
        vkg_tensor *r = (cp[0] && cp[1]) ? matmul_forward(cp[0], cp[1]) : NULL;
        if (cp[0] != a) vkg_free(cp[0]);
        if (cp[1] != b) vkg_free(cp[1]);
        return r;
    }
    vkg_tensor *c = vkg_tensor_alloc(out, VKG_F32, false, "matmul");
    if (!c) return NULL;
    int64_t nbatch = vkg_shape_numel(batch);
    if (vkg_numel(c) == 0) return c;
    if (K == 0) return vkg_fill_(c, 0.0f);
    vkg_matmul_push pc = { .mnk = { (uint32_t)M, (uint32_t)N, (uint32_t)K, (uint32_t)nbatch },
                           .bshape = { 1, 1, 1, 1 },
                           .a_mat = { (int32_t)a_rs, (int32_t)a_cs, (int32_t)a->offset },
                           .b_mat = { (int32_t)b_rs, (int32_t)b_cs, (int32_t)b->offset },
                           .c_off = { (uint32_t)c->offset } };
    for (int i = 0; i < nb; i++) { /* right-align into the 3 slots */
        int slot = 3 - nb + i;
        pc.bshape[slot] = (uint32_t)bdim[i];
        pc.a_bst[slot] = (int32_t)sa[i];
        pc.b_bst[slot] = (int32_t)sb[i];
    }
    uint32_t gz = nbatch > 65535 ? 65535 : (uint32_t)nbatch;
    uint32_t gx = (uint32_t)((N + TILE - 1) / TILE), gy = (uint32_t)((M + TILE - 1) / TILE);
    if (gx > 65535 || gy > 65535) {
        return vkg_fail_null(VKG_ERR_TOO_LARGE, "vkg_matmul: %lld x %lld output is larger than one dispatch covers",
                             (long long)M, (long long)N);
    }
    if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "matmul", .op = VKG_OP_MATMUL, .name = "matmul",
                                           .local_size = 16, .groups = { gx, gy, gz }, .bind = { c, a, b }, .nout = 1,
                                           .push = &pc, .push_size = sizeof pc }) != VKG_OK) {
        vkg_free(c);
        return NULL;
    }
    return c;
}

vkg_tensor *vkg_matmul(vkg_tensor *a, vkg_tensor *b) {
    vkg_tensor *c = matmul_forward(a, b);
    vkg_node_record(c, VKG_OP_MATMUL, (vkg_tensor *[]){ a, b }, 2); /* backward: lib/autograd */
    return c;
}
