/* concat, stack and split. concat writes each input into its slice of the output with the copy
 * shader (vkg_copy_into); split makes views, no copy. Their graph nodes: a concat node lists its
 * inputs (chained through a view of the output's tail past VKG_NODE_MAX_IN inputs); split puts
 * one hub node on a full view of x and a piece node on each piece, so that the backward writes
 * the pieces' gradients side by side into one gradient of x (lib/autograd/backward_seq.c). */
#include <stdlib.h>
#include <string.h>

#include "ops/seq.h"

void vkg_concat_record(vkg_tensor *y, int op, vkg_tensor *const *in, int n, int axis) {
    if (!y || !vkg_grad_enabled()) return;
    bool needed = false;
    for (int i = 0; i < n; i++) needed |= in[i]->requires_grad;
    if (!needed) return;
    vkg_tensor *slot[VKG_NODE_MAX_IN];
    int direct = n <= VKG_NODE_MAX_IN ? n : VKG_NODE_MAX_IN - 1;
    for (int i = 0; i < direct; i++) slot[i] = in[i];
    int nin = direct;
    if (direct < n) { /* the tail: a view of y's remaining part, recorded as a concat of the rest */
        int64_t start = 0;
        for (int i = 0; i < direct; i++) start += in[i]->shape.d[axis];
        vkg_shape ts = y->shape;
        ts.d[axis] -= start;
        vkg_tensor *tail = vkg_tensor_view_of(y, ts, y->strides, y->offset + start * y->strides[axis]);
        if (!tail) return;
        vkg_concat_record(tail, op, in + direct, n - direct, axis);
        slot[nin++] = tail;
    }
    vkg_node *node = vkg_node_record(y, op, slot, nin);
    if (node) node->axis = axis;
}

/* The check and the copies shared by concat and stack (whose inputs are already unsqueezed). */
static vkg_tensor *join(vkg_op op, vkg_tensor *const *t, int n, int axis, const char *name) {
    char a[192], b[192];
    vkg_tensor *first = t[0];
    if (first->dtype != VKG_F32 && first->dtype != VKG_I32)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: tensor 0 is %s; this op takes f32 or i32", name,
                             vkg_desc(first, a, sizeof a));
    if (!vkg_norm_axis(&axis, first->shape.ndim, name, first->shape)) return NULL;
    vkg_shape ys = first->shape;
    ys.d[axis] = 0;
    for (int i = 0; i < n; i++) {
        const vkg_tensor *u = t[i];
        bool same = u->dtype == first->dtype && u->shape.ndim == first->shape.ndim;
        for (int d = 0; same && d < u->shape.ndim; d++) same = d == axis || u->shape.d[d] == first->shape.d[d];
        if (!same)
            return vkg_fail_null(VKG_ERR_INVALID, "%s: tensor %d is %s but tensor 0 is %s: they differ outside axis %d",
                                 name, i, vkg_desc(u, a, sizeof a), vkg_desc(first, b, sizeof b), axis);
        ys.d[axis] += u->shape.d[axis];
    }
    vkg_tensor *y = vkg_tensor_alloc(ys, first->dtype, false, name);
    if (!y) return NULL;
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = t[i]->shape.d[axis];
        if (len > 0 && vkg_numel(t[i]) > 0) {
            vkg_shape ps = ys;
            ps.d[axis] = len;
            vkg_tensor *part = vkg_tensor_view_of(y, ps, y->strides, y->offset + start * y->strides[axis]);
            vkg_status st = part ? vkg_copy_into(part, t[i]) : vkg_last_status();
            vkg_free(part);
            if (st != VKG_OK) {
                vkg_free(y);
                return NULL;
            }
        }
        start += len;
    }
    vkg_concat_record(y, op, t, n, axis);
    return y;
}

static bool check_list(vkg_tensor *const *t, int n, const char *name, bool *any_null) {
    *any_null = false;
    if (!t || n <= 0) {
        vkg_fail(VKG_ERR_INVALID, "%s: %d tensors%s; it needs at least one", name, t ? n : 0, t ? "" : " (NULL list)");
        return false;
    }
    for (int i = 0; i < n; i++) *any_null |= !t[i];
    return !*any_null;
}

vkg_tensor *vkg_concat(vkg_tensor *const *tensors, int n, int axis) {
    bool null_in;
    if (!check_list(tensors, n, "vkg_concat", &null_in)) return NULL;
    return join(VKG_OP_CONCAT, tensors, n, axis, "vkg_concat");
}

vkg_tensor *vkg_stack(vkg_tensor *const *tensors, int n, int axis) {
    const char *name = "vkg_stack";
    bool null_in;
    if (!check_list(tensors, n, name, &null_in)) return NULL;
    char a[192], b[192];
    const vkg_tensor *first = tensors[0];
    int nd = first->shape.ndim;
    if (nd >= VKG_MAX_DIMS) return vkg_fail_null(VKG_ERR_INVALID, "%s: tensors already have %d dims", name, nd);
    if (axis < -(nd + 1) || axis > nd)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: axis %d is out of range for stacking %s (%d dims)", name, axis,
                             vkg_shape_str(first->shape, a, sizeof a), nd);
    if (axis < 0) axis += nd + 1;
    for (int i = 1; i < n; i++) {
        const vkg_tensor *u = tensors[i];
        if (!vkg_shape_eq(&u->shape, &first->shape) ||
            u->dtype != first->dtype)
            return vkg_fail_null(VKG_ERR_INVALID, "%s: tensor %d is %s but tensor 0 is %s: stacked tensors must match",
                                 name, i, vkg_desc(u, a, sizeof a), vkg_desc(first, b, sizeof b));
    }
    vkg_tensor **u = calloc((size_t)n, sizeof *u);
    if (!u) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", name);
    vkg_tensor *y = NULL;
    int made = 0;
    for (; made < n; made++)
        if (!(u[made] = vkg_unsqueeze(tensors[made], axis))) break;
    if (made == n) y = join(VKG_OP_STACK, u, n, axis, name);
    /* the node refers to the views (a freed input would be refused by the backward) */
    for (int i = 0; i < made; i++)
        if (!y || !y->node) vkg_free(u[i]);
    free(u);
    return y;
}

vkg_status vkg_split(vkg_tensor *x, const int64_t *sizes, int n, int axis, vkg_tensor **out) {
    const char *name = "vkg_split";
    if (out)
        for (int i = 0; i < n; i++) out[i] = NULL;
    if (!x) return vkg_last_status() != VKG_OK ? vkg_last_status() : VKG_ERR_INVALID;
    char a[192];
    if (!out || !sizes || n <= 0)
        return vkg_fail(VKG_ERR_INVALID, "%s: %d pieces, sizes %s, out %s: it needs n >= 1, sizes and out", name, n,
                        sizes ? "given" : "NULL", out ? "given" : "NULL");
    if (!vkg_norm_axis(&axis, x->shape.ndim, name, x->shape)) return vkg_last_status();
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return vkg_fail(VKG_ERR_INVALID, "%s: size %d is %lld; sizes cannot be negative", name, i,
                            (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != x->shape.d[axis])
        return vkg_fail(VKG_ERR_INVALID, "%s: the sizes sum to %lld but dim %d of x %s is %lld", name, (long long)total,
                        axis, vkg_shape_str(x->shape, a, sizeof a), (long long)x->shape.d[axis]);
    /* the hub: a full view of x that gathers the pieces' gradients (ip[1] = 0) */
    vkg_tensor *hub = x;
    if (x->requires_grad && vkg_grad_enabled()) {
        hub = vkg_tensor_view_of(x, x->shape, x->strides, x->offset);
        if (!hub) return vkg_last_status();
        vkg_node *h = vkg_node_record(hub, VKG_OP_SPLIT, &x, 1);
        if (h) h->axis = axis;
    }
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        vkg_shape ps = x->shape;
        ps.d[axis] = sizes[i];
        out[i] = vkg_tensor_view_of(hub, ps, x->strides, x->offset + start * x->strides[axis]);
        if (!out[i]) {
            for (int j = 0; j < i; j++) {
                vkg_free(out[j]);
                out[j] = NULL;
            }
            if (hub != x) vkg_free(hub);
            return vkg_last_status();
        }
        vkg_node *p = vkg_node_record(out[i], VKG_OP_SPLIT, &hub, 1);
        if (p) {
            p->axis = axis;
            p->ip[0] = start;
            p->ip[1] = 1; /* a piece */
        }
        start += sizes[i];
    }
    return VKG_OK; /* the hub lives in the scope: the pieces' nodes refer to it */
}
